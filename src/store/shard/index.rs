//! The row index of a partition: (view, layout, join key) to the arena record that holds the
//! key's current row.
//!
//! An entry is the record's start, the layout and a 32-bit hash of (view, join key): 16 bytes,
//! no copy of the key. The record holds the view and the key (and the event time and payload),
//! so a lookup compares against the arena's bytes, and a restore rebuilds the index in one pass
//! over the records with no allocation per row. Growing the table rehashes from the stored
//! hashes without touching the arena. The arena's records move only when it compacts, which
//! rewrites every entry's start ([`RowIndex::records_mut`]); growth keeps offsets.

use std::io;

use hashbrown::HashTable;
use memmap2::MmapMut;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::persist::format::RowRecordV2;
use crate::registry::{Layout, ViewId};
use crate::store::arena::{Arena, StoredRecord};

#[derive(Debug, Clone, Copy)]
struct IndexEntry {
    /// Where the record starts in the arena.
    record: u64,
    layout: Layout,
    hash: u32,
}

/// The partition's index: reads go through [`RowIndex::get`] with the arena the records are in.
pub(super) struct RowIndex {
    table: HashTable<IndexEntry>,
    /// Random per index, never stored (hashes are rebuilt at restore): with a known seed a
    /// writer could craft join keys sharing one 32-bit hash offline and make lookups linear.
    seed: u64,
}

impl Default for RowIndex {
    fn default() -> RowIndex {
        RowIndex {
            table: HashTable::new(),
            seed: rand::random(),
        }
    }
}

/// The table's hash of an entry: the 32 stored bits spread over the 64 (the table takes its
/// bucket from the low bits and its tag from the top ones).
fn table_hash(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl IndexEntry {
    /// The entry's record, if it is the record of (view, layout, key).
    fn record_of<'a>(
        &self,
        arena: &'a Arena,
        hash: u32,
        view: ViewId,
        layout: Layout,
        key: &[u8],
    ) -> Option<RowRecordV2<'a>> {
        if self.hash != hash || self.layout != layout {
            return None;
        }
        let record = arena.record_at(self.record as usize);
        (record.view == view && record.key == key).then_some(record)
    }
}

impl RowIndex {
    /// The (view, join key) part of an entry's hash, which the table spreads to 64 bits.
    fn key_hash(&self, view: ViewId, key: &[u8]) -> u32 {
        (xxh3_64_with_seed(key, self.seed ^ u64::from(view)) >> 32) as u32
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Room for `additional` more keys without growing.
    pub(super) fn reserve(&mut self, additional: usize) {
        self.table
            .reserve(additional, |entry| table_hash(entry.hash));
    }

    pub(super) fn shrink_to_fit(&mut self) {
        self.table.shrink_to_fit(|entry| table_hash(entry.hash));
    }

    /// Where the record of the key's current row starts in `arena`.
    pub(super) fn get(
        &self,
        arena: &Arena,
        view: ViewId,
        layout: Layout,
        key: &[u8],
    ) -> Option<usize> {
        let hash = self.key_hash(view, key);
        self.table
            .find(table_hash(hash), |entry| {
                entry.record_of(arena, hash, view, layout, key).is_some()
            })
            .map(|entry| entry.record as usize)
    }

    /// Where the record of the key's current row most likely starts: that of the first entry
    /// whose hash and layout match, without reading the arena to compare the key (the caller
    /// does, once the record is in the cache, and searches with `get` if it is another key's).
    pub(super) fn candidate(&self, view: ViewId, layout: Layout, key: &[u8]) -> Option<usize> {
        let hash = self.key_hash(view, key);
        self.table
            .find(table_hash(hash), |entry| {
                entry.hash == hash && entry.layout == layout
            })
            .map(|entry| entry.record as usize)
    }

    /// Points the key at the record starting at `record` (already in `arena`); answers where
    /// the key's previous record starts, if it had one.
    pub(super) fn insert(
        &mut self,
        arena: &Arena,
        view: ViewId,
        layout: Layout,
        key: &[u8],
        record: usize,
    ) -> Option<usize> {
        self.slot(arena, view, layout, key).point_at(record)
    }

    /// The key's place in the index, found once: a write reads the key's current record
    /// through it and then points it at the new one, without hashing or searching again. The
    /// record is the one the search compared the key with, not read a second time (~46
    /// instructions a row).
    pub(super) fn slot(
        &mut self,
        arena: &Arena,
        view: ViewId,
        layout: Layout,
        key: &[u8],
    ) -> IndexSlot<'_> {
        let hash = self.key_hash(view, key);
        let mut stored = None;
        let entry = self.table.entry(
            table_hash(hash),
            |entry| {
                let record = entry.record_of(arena, hash, view, layout, key);
                stored = record.map(|record| StoredRecord::of(entry.record as usize, &record));
                stored.is_some()
            },
            |entry| table_hash(entry.hash),
        );
        IndexSlot {
            entry,
            layout,
            hash,
            stored,
        }
    }

    /// Reads the key's entry and the first byte of its record, found by the hash alone (a
    /// 32-bit collision only reads another key's record): a write reads a batch's keys ahead
    /// of their `slot`s so that the cache misses of independent searches overlap, instead of
    /// each row waiting for its own (a large index and arena are far past the caches).
    pub(super) fn touch(&self, arena: &Arena, view: ViewId, layout: Layout, key: &[u8]) -> u8 {
        self.candidate(view, layout, key)
            .map_or(0, |record| arena.records()[record])
    }

    /// The entry that would index the record of (view, layout, key) starting at `record`, for
    /// [`RowIndex::in_table_order`] and [`RowIndex::insert_entry`].
    pub(super) fn entry_for(
        &self,
        view: ViewId,
        layout: Layout,
        key: &[u8],
        record: usize,
    ) -> NewEntry {
        NewEntry(IndexEntry {
            record: record as u64,
            layout,
            hash: self.key_hash(view, key),
        })
    }

    /// `entries` in the order of the table buckets their searches start at, as far as the
    /// table's size tells (call it after [`RowIndex::reserve`]); entries of one key keep their
    /// order. Inserted in this order, entries walk the table from one end to the other, each
    /// 2,048 buckets' stretch of it in the cache while its entries go in, where entries in a
    /// file's order each miss the cache twice (its control bytes and its bucket): 23 % of a
    /// 10 M-row restore's samples. A counting sort on the bucket's top bits: two passes.
    pub(super) fn in_table_order(&self, entries: &NewEntries) -> io::Result<NewEntries> {
        // What the table takes a bucket from: the hash's low bits, as many as buckets take.
        let bucket_bits = (self.table.capacity() * 8 / 7)
            .next_power_of_two()
            .trailing_zeros();
        let group_bits = bucket_bits.saturating_sub(11).min(16);
        let shift = bucket_bits - group_bits;
        let group = |entry: NewEntry| {
            let bucket = table_hash(entry.0.hash) & ((1u64 << bucket_bits) - 1);
            (bucket >> shift) as usize
        };
        let mut starts = vec![0usize; (1 << group_bits) + 1];
        for entry in entries.iter() {
            starts[group(entry) + 1] += 1;
        }
        for g in 1..starts.len() {
            starts[g] += starts[g - 1];
        }
        let mut ordered = NewEntries::with_capacity(entries.len)?;
        ordered.len = entries.len;
        for entry in entries.iter() {
            let at = &mut starts[group(entry)];
            ordered.set(*at, entry);
            *at += 1;
        }
        Ok(ordered)
    }

    /// Indexes `entry`'s record (already in `arena`), comparing its view and key with those
    /// of records whose entries have its hash and layout; answers where the key's previous
    /// record starts, if it had one.
    pub(super) fn insert_entry(&mut self, arena: &Arena, entry: NewEntry) -> Option<usize> {
        let NewEntry(new) = entry;
        // The records are read only for an entry of the same hash: reading the new one up
        // front would be a cache miss an insert again, the arena read in table order.
        let found = self.table.entry(
            table_hash(new.hash),
            |old| {
                old.hash == new.hash && old.layout == new.layout && {
                    let (old, new) = (
                        arena.record_at(old.record as usize),
                        arena.record_at(new.record as usize),
                    );
                    old.view == new.view && old.key == new.key
                }
            },
            |old| table_hash(old.hash),
        );
        match found {
            hashbrown::hash_table::Entry::Occupied(mut occupied) => {
                Some(std::mem::replace(&mut occupied.get_mut().record, new.record) as usize)
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(new);
                None
            }
        }
    }

    /// Every key's layout and record start.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Layout, usize)> + '_ {
        self.table
            .iter()
            .map(|entry| (entry.layout, entry.record as usize))
    }

    /// Keeps the keys for which `keep(layout, record start)` is true.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(Layout, usize) -> bool) {
        self.table
            .retain(|entry| keep(entry.layout, entry.record as usize));
    }

    /// Every key's record start, for a compaction to rewrite.
    pub(super) fn records_mut(&mut self) -> impl Iterator<Item = &mut u64> {
        self.table.iter_mut().map(|entry| &mut entry.record)
    }
}

/// An entry to put in a [`RowIndex`] in bulk: [`RowIndex::entry_for`].
#[derive(Debug, Clone, Copy)]
pub(super) struct NewEntry(IndexEntry);

/// Bytes an entry takes in [`NewEntries`]: record start, layout, hash.
const NEW_ENTRY_BYTES: usize = 16;

/// Entries to put in a [`RowIndex`] in bulk, in an anonymous mapping of their own: given back
/// to the system when dropped. In `Vec`s, a 10 M-row restore's two lists (160 MB) stayed in
/// the allocator's hands once freed, in the process's RSS (+190 MB three seconds after).
pub(super) struct NewEntries {
    map: MmapMut,
    len: usize,
}

impl NewEntries {
    /// Room for `capacity` entries; pages are only taken as entries are written, in huge
    /// pages where the system has them (a 4 KiB page a 256 entries cost a restore's kernel
    /// 78k page faults for 10 M rows).
    pub(super) fn with_capacity(capacity: usize) -> io::Result<NewEntries> {
        let map = MmapMut::map_anon((capacity * NEW_ENTRY_BYTES).max(NEW_ENTRY_BYTES))?;
        // Advice only: without huge pages the list works the same.
        let _ = map.advise(memmap2::Advice::HugePage);
        Ok(NewEntries { map, len: 0 })
    }

    /// Appends `entry`. Panics past the capacity: the caller sizes the list to the most
    /// entries it can push.
    pub(super) fn push(&mut self, entry: NewEntry) {
        self.set(self.len, entry);
        self.len += 1;
    }

    fn set(&mut self, i: usize, NewEntry(entry): NewEntry) {
        let bytes = &mut self.map[i * NEW_ENTRY_BYTES..(i + 1) * NEW_ENTRY_BYTES];
        bytes[..8].copy_from_slice(&entry.record.to_le_bytes());
        bytes[8..12].copy_from_slice(&entry.layout.to_le_bytes());
        bytes[12..].copy_from_slice(&entry.hash.to_le_bytes());
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = NewEntry> + '_ {
        self.map[..self.len * NEW_ENTRY_BYTES]
            .chunks_exact(NEW_ENTRY_BYTES)
            .map(|bytes| {
                let word = |range: std::ops::Range<usize>| -> [u8; 4] {
                    bytes[range].try_into().expect("four bytes")
                };
                NewEntry(IndexEntry {
                    record: u64::from_le_bytes(bytes[..8].try_into().expect("eight bytes")),
                    layout: u32::from_le_bytes(word(8..12)),
                    hash: u32::from_le_bytes(word(12..16)),
                })
            })
    }
}

impl NewEntry {
    /// Where the entry's record starts.
    pub(super) fn record(self) -> usize {
        self.0.record as usize
    }

    /// The same key's entry for its record starting at `record`.
    pub(super) fn at(self, record: usize) -> NewEntry {
        NewEntry(IndexEntry {
            record: record as u64,
            ..self.0
        })
    }
}

/// One key's place in a [`RowIndex`], from [`RowIndex::slot`].
pub(super) struct IndexSlot<'a> {
    entry: hashbrown::hash_table::Entry<'a, IndexEntry>,
    layout: Layout,
    hash: u32,
    /// The key's current record, if it has one.
    stored: Option<StoredRecord>,
}

impl IndexSlot<'_> {
    /// The key's current record, if the key has one.
    pub(super) fn current(&self) -> Option<StoredRecord> {
        self.stored
    }

    /// Points the key at the record starting at `record`; answers where its previous record
    /// starts, if it had one.
    pub(super) fn point_at(self, record: usize) -> Option<usize> {
        match self.entry {
            hashbrown::hash_table::Entry::Occupied(mut occupied) => {
                Some(std::mem::replace(&mut occupied.get_mut().record, record as u64) as usize)
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(IndexEntry {
                    record: record as u64,
                    layout: self.layout,
                    hash: self.hash,
                });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Entries put in in the table's order index every key, at its last record: the order
    /// moves entries across the table (a table of 32 Ki buckets: 16 stretches) but keeps a
    /// key's entries in order.
    #[test]
    fn entries_in_table_order_index_every_key_at_its_last_record() {
        const KEYS: u32 = 20_000;
        let mut arena = Arena::with_capacity(1 << 21).unwrap();
        let mut index = RowIndex::default();
        index.reserve(KEYS as usize);
        let mut entries = NewEntries::with_capacity(2 * KEYS as usize).unwrap();
        let mut last = HashMap::new();
        // Every key, then every seventh again.
        let keys = (0..KEYS).chain((0..KEYS).filter(|k| k % 7 == 0));
        for (i, k) in keys.enumerate() {
            let key = k.to_le_bytes();
            let record = RowRecordV2 {
                view: 1,
                flags: 0,
                event_time: i as i64,
                payload: b"p",
                key: &key,
            };
            let start = arena.append(&record).unwrap();
            entries.push(index.entry_for(1, 0, &key, start));
            last.insert(k, start);
        }
        let starts =
            |entries: &NewEntries| entries.iter().map(NewEntry::record).collect::<Vec<_>>();
        let ordered = index.in_table_order(&entries).unwrap();
        let (mut before, mut after) = (starts(&entries), starts(&ordered));
        assert_ne!(before, after, "reordered");
        before.sort_unstable();
        after.sort_unstable();
        assert_eq!(before, after, "a permutation");
        for entry in ordered.iter() {
            index.insert_entry(&arena, entry);
        }
        assert_eq!(index.len(), KEYS as usize);
        for k in 0..KEYS {
            assert_eq!(index.get(&arena, 1, 0, &k.to_le_bytes()), Some(last[&k]));
        }
    }

    /// A slot answers the key's current record as the arena reads it, none for a key of
    /// another view, layout or bytes; pointed at a new record, the next slot answers that.
    #[test]
    fn a_slot_holds_the_record_its_search_read() {
        let mut arena = Arena::with_capacity(1 << 12).unwrap();
        let mut index = RowIndex::default();
        let record = |event_time, payload: &'static [u8]| RowRecordV2 {
            view: 1,
            flags: 0,
            event_time,
            payload,
            key: b"k",
        };
        let first = arena.append(&record(5, b"one")).unwrap();
        assert_eq!(index.slot(&arena, 1, 0, b"k").current(), None);
        assert_eq!(index.insert(&arena, 1, 0, b"k", first), None);
        let stored = index.slot(&arena, 1, 0, b"k").current();
        assert_eq!(stored, Some(arena.stored_at(first)));
        for (view, layout, key) in [(2, 0, &b"k"[..]), (1, 1, b"k"), (1, 0, b"j")] {
            assert_eq!(index.slot(&arena, view, layout, key).current(), None);
        }
        // A touch reads the record's first byte (the view id's low byte), or nothing.
        assert_eq!(index.touch(&arena, 1, 0, b"k"), 1);
        assert_eq!(index.touch(&arena, 1, 1, b"k"), 0);
        let second = arena.append(&record(9, b"second")).unwrap();
        let slot = index.slot(&arena, 1, 0, b"k");
        assert_eq!(slot.point_at(second), Some(first));
        let stored = index.slot(&arena, 1, 0, b"k").current().unwrap();
        assert_eq!(stored, arena.stored_at(second));
        assert_eq!((stored.event_time, stored.payload_len), (9, 6));
    }
}

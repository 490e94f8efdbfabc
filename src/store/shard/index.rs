//! The row index of a partition: (view, layout, join key) to the arena record that holds the
//! key's current row.
//!
//! An entry is the record's start, the layout and a 32-bit hash of (view, join key): 16 bytes,
//! no copy of the key. The record holds the view and the key (and the event time and payload),
//! so a lookup compares against the arena's bytes, and a restore rebuilds the index in one pass
//! over the records with no allocation per row. Growing the table rehashes from the stored
//! hashes without touching the arena. The arena's records move only when it compacts, which
//! rewrites every entry's start ([`RowIndex::records_mut`]); growth keeps offsets.

use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::registry::{Layout, ViewId};
use crate::store::arena::Arena;

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
    fn is(&self, arena: &Arena, hash: u32, view: ViewId, layout: Layout, key: &[u8]) -> bool {
        if self.hash != hash || self.layout != layout {
            return false;
        }
        let record = arena.record_at(self.record as usize);
        record.view == view && record.key == key
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
                entry.is(arena, hash, view, layout, key)
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
    /// through it and then points it at the new one, without hashing or searching again.
    pub(super) fn slot(
        &mut self,
        arena: &Arena,
        view: ViewId,
        layout: Layout,
        key: &[u8],
    ) -> IndexSlot<'_> {
        let hash = self.key_hash(view, key);
        let entry = self.table.entry(
            table_hash(hash),
            |entry| entry.is(arena, hash, view, layout, key),
            |entry| table_hash(entry.hash),
        );
        IndexSlot {
            entry,
            layout,
            hash,
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

/// One key's place in a [`RowIndex`], from [`RowIndex::slot`].
pub(super) struct IndexSlot<'a> {
    entry: hashbrown::hash_table::Entry<'a, IndexEntry>,
    layout: Layout,
    hash: u32,
}

impl IndexSlot<'_> {
    /// Where the key's current record starts, if the key has one.
    pub(super) fn current(&self) -> Option<usize> {
        match &self.entry {
            hashbrown::hash_table::Entry::Occupied(occupied) => {
                Some(occupied.get().record as usize)
            }
            hashbrown::hash_table::Entry::Vacant(_) => None,
        }
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

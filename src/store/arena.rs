//! A growable, memory-mapped byte arena that holds one shard's rows as records: each row's
//! view, key, event time and payload, in the layout of a snapshot's `RowsV2` records
//! (`persist::format::RowRecordV2`), so that a snapshot can write live records as they are and
//! a restore can take a shard's records in one go.
//!
//! Records are appended; an overwritten row's record is flagged superseded and its bytes counted
//! dead. The arena grows by doubling (a new anonymous mapping, bytes copied over at the same
//! offsets) and compacts when more than half of what it holds is dead, or a third when a write
//! would otherwise grow it. A compaction moves the live records down within the mapping when no
//! loan holds it and it is at most four times their bytes (its pages are already faulted in:
//! a bulk load of overwrites then fills the same pages again instead of fresh ones the kernel
//! zeroes), else into a fresh mapping of twice their bytes. The arena is written by exactly one
//! shard actor.
//!
//! A snapshot export borrows the arena's bytes instead of copying them ([`Arena::lend`]): the
//! loan holds the mapping (growth and compaction move the arena to a fresh one and leave the old
//! one to the loan, which frees it when it ends) and the length written at the cut. Bytes below
//! that length are not written while a loan of the mapping is out: a record released meanwhile
//! is flagged when the last loan ends (its bytes are counted dead at once), so a loan reads the
//! records exactly as they were at its cut, from another thread, without a lock.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::sync::Arc;

use memmap2::{MmapMut, MmapRaw};

use crate::persist::format::{RowRecordV2, ROW_RECORD_HEADER_LEN, ROW_RECORD_SUPERSEDED};
use crate::time::Micros;

/// Below this, dead bytes are not worth a compaction pass.
const MIN_COMPACTION_BYTES: usize = 1 << 20;

/// A compaction keeps the mapping (moving records down in it) while it is at most this many
/// times the live bytes; a larger one is given back for a fresh mapping of twice them.
const IN_PLACE_MAPPED_PER_LIVE: usize = 4;

/// Where a record's flags are, from its start.
const FLAGS_AT: usize = 12;

/// An anonymous mapping, shared by the arena that writes it and the loans that read a prefix of
/// it. It hands out no references but the read slices of [`Mapping::bytes`]; the arena keeps
/// its writes clear of every slice alive (the borrow of `&mut Arena` for its own, the loan
/// rule for lent ones).
struct Mapping(MmapRaw);

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        Ok(Mapping(MmapMut::map_anon(len.max(4096))?.into()))
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// The first `len` bytes.
    fn bytes(&self, len: usize) -> &[u8] {
        assert!(len <= self.len(), "within the mapping");
        // SAFETY: in bounds (above); no write overlaps a slice while it lives (see the type).
        unsafe { std::slice::from_raw_parts(self.0.as_ptr(), len) }
    }

    /// The first `len` bytes, to write: `&mut` only through `Arc::get_mut`, so no loan holds
    /// the mapping and no slice of [`Mapping::bytes`] is alive.
    fn bytes_mut(&mut self, len: usize) -> &mut [u8] {
        assert!(len <= self.len(), "within the mapping");
        // SAFETY: in bounds (above); `&mut self` excludes every other reference to the mapping,
        // and its bytes are reached through `&self` or `&mut self` only.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr(), len) }
    }

    /// Copies `bytes` to `at`.
    ///
    /// # Safety
    /// No slice of [`Mapping::bytes`] that overlaps `at..at + bytes.len()` may be alive, on any
    /// thread.
    unsafe fn write(&self, at: usize, bytes: &[u8]) {
        assert!(at + bytes.len() <= self.len(), "within the mapping");
        // SAFETY: in bounds (above); no reader of these bytes (the caller's promise).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.0.as_mut_ptr().add(at), bytes.len())
        }
    }
}

/// A record as stored at its place in the arena (`Arena::stored_at`): the shard's writer reads
/// the key's current record once a row and hands it to `Arena::release`, which would read it a
/// second time (~65 instructions a read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRecord {
    pub start: usize,
    /// The whole record's length, header included.
    pub len: usize,
    pub flags: u32,
    pub event_time: Micros,
    pub payload_len: usize,
}

impl StoredRecord {
    /// `record`, read at `start`.
    pub fn of(start: usize, record: &RowRecordV2) -> StoredRecord {
        StoredRecord {
            start,
            len: record.len(),
            flags: record.flags,
            event_time: record.event_time,
            payload_len: record.payload.len(),
        }
    }
}

pub struct Arena {
    map: Arc<Mapping>,
    used: usize,
    dead: usize,
    /// Records not released: with `used - dead`, what a loan holds, known without a walk.
    live_rows: usize,
    /// Bytes of `map` lent to exports, 0 when none is: not written until every loan has ended.
    lent: usize,
    /// Records below `lent` released since their loan began: flagged when it ends.
    released_in_loan: HashSet<usize>,
    /// Room above `used` kept free for one step to come (an apply's undo, see [`Arena::hold`]):
    /// `used + held` never passes the mapping's length, and other appends grow the arena
    /// rather than use it.
    held: usize,
    /// Test builds: growth fails while this is set (`store::shard::faults`).
    #[cfg(test)]
    growth_fails: Arc<std::sync::atomic::AtomicBool>,
}

impl Arena {
    pub fn with_capacity(capacity: usize) -> io::Result<Arena> {
        Ok(Arena {
            map: Arc::new(Mapping::new(capacity)?),
            used: 0,
            dead: 0,
            live_rows: 0,
            lent: 0,
            released_in_loan: HashSet::new(),
            held: 0,
            #[cfg(test)]
            growth_fails: Arc::default(),
        })
    }

    /// An arena holding `records` (a snapshot's records of one shard: none superseded), with
    /// room to grow. Their headers are walked once, for the count of live rows.
    pub fn from_records(records: &[u8]) -> io::Result<Arena> {
        let mut arena = Arena::with_capacity(records.len() * 2)?;
        arena.write(0, records);
        arena.used = records.len();
        arena.live_rows = crate::persist::format::row_records(records).count();
        Ok(arena)
    }

    /// Appends `record`, growing the arena if needed; answers where it starts.
    pub fn append(&mut self, record: &RowRecordV2) -> io::Result<usize> {
        let len = record.len();
        self.reserve(len)?;
        let start = self.used;
        let payload_start = start + ROW_RECORD_HEADER_LEN;
        let key_start = payload_start + record.payload.len();
        self.write(start, &record.header());
        self.write(payload_start, record.payload);
        self.write(key_start, record.key);
        self.used += len;
        self.live_rows += 1;
        Ok(start)
    }

    /// Makes room for `additional` more bytes of records beside the held room, growing once as
    /// `append` would: the appends of that many bytes after it cannot fail. A step that must
    /// change nothing unless it succeeds (an apply's reshape) reserves before its first change.
    pub fn reserve(&mut self, additional: usize) -> io::Result<()> {
        self.make_room(self.held + additional)
    }

    /// Keeps `bytes` of the room reserved (see [`Arena::reserve`]) free from now on for one
    /// step to come, which takes it with [`Arena::reserve_held`]: the appends and reservations
    /// made meanwhile grow the arena (or fail for want of memory) rather than use it. Replaces
    /// the room held before; 0 gives it back.
    pub fn hold(&mut self, bytes: usize) {
        debug_assert!(self.used + bytes <= self.map.len(), "held room is reserved");
        self.held = bytes;
    }

    /// Makes room for `additional` more bytes for the step the held room was kept for, which
    /// uses it first (no growth when it is enough); the room is no longer held once this
    /// succeeds.
    pub fn reserve_held(&mut self, additional: usize) -> io::Result<()> {
        self.make_room(additional)?;
        self.held = 0;
        Ok(())
    }

    /// Grows the mapping, when it must, to hold `bytes` more than `used`.
    fn make_room(&mut self, bytes: usize) -> io::Result<()> {
        if self.used + bytes > self.map.len() {
            self.remap((self.used + bytes).max(self.map.len() * 2))?;
        }
        Ok(())
    }

    /// The record starting at byte `at`, which must be a record boundary below `used_len`.
    pub fn record_at(&self, at: usize) -> RowRecordV2<'_> {
        RowRecordV2::read(self.records(), at).expect("the arena holds whole records")
    }

    /// What a write needs of the record starting at `at` (a record boundary below
    /// `used_len`), read once: the row's event time and payload length, and what `release`
    /// needs.
    pub fn stored_at(&self, at: usize) -> StoredRecord {
        StoredRecord::of(at, &self.record_at(at))
    }

    /// Marks `record` superseded and its bytes dead (a newer row of its key replaced it, or its
    /// layout was reshaped); false if it already was. A lent record's flag is written when its
    /// loan ends. `record` is as `stored_at` read it, with nothing written to it since.
    pub fn release(&mut self, record: StoredRecord) -> bool {
        // The caller's copy decides what is flagged and counted dead: a stale one would corrupt
        // both silently, so the tests' builds check it against the bytes.
        debug_assert_eq!(
            record,
            self.stored_at(record.start),
            "released as read, with nothing written since"
        );
        let start = record.start;
        let released_in_loan = start < self.lent && self.released_in_loan.contains(&start);
        if record.flags & ROW_RECORD_SUPERSEDED != 0 || released_in_loan {
            return false;
        }
        self.dead += record.len;
        self.live_rows -= 1;
        if start < self.lent && !self.end_loan() {
            self.released_in_loan.insert(start);
        } else {
            self.write(start + FLAGS_AT, &ROW_RECORD_SUPERSEDED.to_le_bytes());
        }
        true
    }

    /// Lends the records written so far to an export; the loan ends when it is dropped.
    pub fn lend(&mut self) -> LentRecords {
        self.end_loan();
        self.lent = self.used;
        LentRecords {
            map: Arc::clone(&self.map),
            len: self.used,
            live_bytes: self.used - self.dead,
            live_rows: self.live_rows,
            // Released under an earlier loan still out, so not flagged yet.
            released: self.released_in_loan.clone(),
        }
    }

    /// True if no loan of the current mapping is out (any that was has ended: the records it
    /// kept from being flagged are flagged now).
    fn end_loan(&mut self) -> bool {
        if self.lent == 0 {
            return true;
        }
        // Unique again: every loan has been dropped, and its reads happened before this.
        if Arc::get_mut(&mut self.map).is_none() {
            return false;
        }
        self.lent = 0;
        self.flag_released_in_loan();
        true
    }

    fn flag_released_in_loan(&mut self) {
        for start in std::mem::take(&mut self.released_in_loan) {
            self.write(start + FLAGS_AT, &ROW_RECORD_SUPERSEDED.to_le_bytes());
        }
    }

    /// True when more than half of the used bytes are dead, or when `incoming` more bytes would
    /// not fit and a third are: compacting then spares growth its copy into a larger mapping,
    /// and still leaves a third of the mapping to fill before the next compaction (each byte
    /// appended is moved at most twice).
    pub fn wants_compaction(&self, incoming: usize) -> bool {
        let full = self.used + incoming > self.map.len();
        self.dead >= MIN_COMPACTION_BYTES
            && (self.dead * 2 > self.used || (full && self.dead * 3 >= self.used))
    }

    /// Rewrites the live records (given by where they start) back to back and updates every
    /// start in place: down within the mapping when no loan holds it and it is not oversized
    /// (its pages are there already, where a fresh mapping's are faulted in and zeroed by the
    /// kernel as they are filled), else into a fresh mapping, which a loan leaves the old one to.
    pub fn compact<'a>(
        &mut self,
        live_records: impl Iterator<Item = &'a mut u64>,
    ) -> io::Result<()> {
        let live = self.used - self.dead;
        let oversized = self.map.len() > IN_PLACE_MAPPED_PER_LIVE * live;
        match Arc::get_mut(&mut self.map) {
            Some(map) if !oversized => {
                let (used, live_rows) = compact_in_place(map.bytes_mut(self.used), live_records);
                self.finish_compaction(used, live_rows);
                Ok(())
            }
            _ => self.compact_into_fresh(live, live_records),
        }
    }

    /// Copies the live records into a fresh mapping of twice their bytes (at least their bytes
    /// and the held room).
    fn compact_into_fresh<'a>(
        &mut self,
        live: usize,
        live_records: impl Iterator<Item = &'a mut u64>,
    ) -> io::Result<()> {
        let fresh = self.new_mapping((live * 2).max(live + self.held))?;
        let (mut used, mut live_rows) = (0usize, 0);
        for record in live_records {
            let start = *record as usize;
            let len = self.record_at(start).len();
            // SAFETY: `fresh` is not shared yet.
            unsafe { fresh.write(used, &self.records()[start..start + len]) };
            *record = used as u64;
            used += len;
            live_rows += 1;
        }
        self.map = Arc::new(fresh);
        self.finish_compaction(used, live_rows);
        Ok(())
    }

    /// Counts after a compaction that left `live_rows` records in `used` bytes.
    fn finish_compaction(&mut self, used: usize, live_rows: usize) {
        self.used = used;
        self.dead = 0;
        self.live_rows = live_rows;
        // The released records were not among the live ones: nothing left to flag.
        self.lent = 0;
        self.released_in_loan.clear();
    }

    /// Moves the records to a fresh mapping of `capacity` bytes, at the same offsets. A loan
    /// keeps the old mapping.
    fn remap(&mut self, capacity: usize) -> io::Result<()> {
        let fresh = self.new_mapping(capacity)?;
        // SAFETY: `fresh` is not shared yet.
        unsafe { fresh.write(0, self.records()) };
        self.map = Arc::new(fresh);
        self.lent = 0;
        self.flag_released_in_loan();
        Ok(())
    }

    /// Copies `bytes` to `at`, which is at or above the lent bytes (or no loan is out).
    fn write(&mut self, at: usize, bytes: &[u8]) {
        debug_assert!(at >= self.lent || Arc::get_mut(&mut self.map).is_some());
        // SAFETY: the arena's own slices borrow it, so none is alive during `&mut self`; a
        // loan reads below `lent` only, and nothing below it is written while one is out.
        unsafe { self.map.write(at, bytes) }
    }

    /// Starts loading the record starting at `at` (see `store::prefetch`).
    pub fn prefetch(&self, at: usize) {
        if let Some(record) = self.records().get(at..) {
            crate::store::prefetch::prefetch(record.as_ptr());
        }
    }

    /// Every record written so far, live and superseded.
    pub fn records(&self) -> &[u8] {
        self.map.bytes(self.used)
    }

    /// Bytes mapped, bytes written, bytes dead.
    pub fn usage(&self) -> (usize, usize, usize) {
        (self.map.len(), self.used, self.dead)
    }

    /// A fresh mapping of `capacity` bytes (for growth or a compaction); in test builds, none
    /// while growth faults are injected.
    fn new_mapping(&self, capacity: usize) -> io::Result<Mapping> {
        #[cfg(test)]
        if self.growth_fails.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(io::Error::from_raw_os_error(12));
        }
        Mapping::new(capacity)
    }

    /// Test builds: from now on growth fails (out of memory) while `fails` is set.
    #[cfg(test)]
    pub fn inject_growth_faults(&mut self, fails: Arc<std::sync::atomic::AtomicBool>) {
        self.growth_fails = fails;
    }
}

/// Moves the live records (given by where they start) down to the front of `bytes`, in arena
/// order, and updates every start; answers the bytes they take and how many they are. Sorted by start, each record
/// moves to at or below where it was, over bytes no later record needs.
fn compact_in_place<'a>(
    bytes: &mut [u8],
    live_records: impl Iterator<Item = &'a mut u64>,
) -> (usize, usize) {
    let mut starts: Vec<(u64, &mut u64)> = live_records.map(|record| (*record, record)).collect();
    starts.sort_unstable_by_key(|(start, _)| *start);
    let (mut used, live_rows) = (0usize, starts.len());
    for (start, record) in starts {
        let start = start as usize;
        let len = RowRecordV2::read(bytes, start)
            .expect("the arena holds whole records")
            .len();
        bytes.copy_within(start..start + len, used);
        *record = used as u64;
        used += len;
    }
    (used, live_rows)
}

/// An arena's records lent to a snapshot export, as they were at the loan: read from any thread,
/// without a lock, for as long as it is held. Dropping it ends the loan.
pub struct LentRecords {
    map: Arc<Mapping>,
    len: usize,
    /// Bytes and number of the records live at the loan, as the arena counted them.
    live_bytes: usize,
    live_rows: usize,
    /// Records released before the loan whose flags an earlier loan kept from being written.
    released: HashSet<usize>,
}

impl LentRecords {
    /// Bytes of the records live at the loan: the length of [`LentRecords::live_runs`].
    pub fn live_bytes(&self) -> usize {
        self.live_bytes
    }

    /// How many records are live at the loan.
    pub fn live_rows(&self) -> usize {
        self.live_rows
    }

    /// The records live at the loan, in arena order: what tests read a loan as (a snapshot
    /// writes its runs).
    #[cfg(test)]
    pub fn live_records(&self) -> impl Iterator<Item = RowRecordV2<'_>> {
        self.live_runs().flat_map(|run| {
            crate::persist::format::row_records(run)
                .map(|record| record.expect("the arena holds whole records"))
        })
    }

    /// The records live at the loan as runs of records back to back (each run as long as no
    /// superseded record breaks it), in arena order.
    pub fn live_runs(&self) -> impl Iterator<Item = &[u8]> {
        let bytes = self.map.bytes(self.len);
        let mut at = 0;
        std::iter::from_fn(move || {
            let mut run = at;
            while at < bytes.len() {
                let record = RowRecordV2::read(bytes, at).expect("the arena holds whole records");
                let live = record.flags & ROW_RECORD_SUPERSEDED == 0
                    && (self.released.is_empty() || !self.released.contains(&at));
                let end = at + record.len();
                match (live, run == at) {
                    (true, _) => at = end,
                    (false, true) => {
                        at = end;
                        run = at;
                    }
                    (false, false) => break,
                }
            }
            (run < at).then(|| &bytes[run..at])
        })
    }
}

impl fmt::Debug for LentRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LentRecords")
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grows_and_compacts_without_losing_live_rows() {
        let mut arena = Arena::with_capacity(16).unwrap();
        let key = *b"key";
        let mut records: Vec<u64> = (0..1000u32)
            .map(|i| {
                let payload = i.to_le_bytes().repeat(300);
                let record = RowRecordV2 {
                    view: 0,
                    flags: 0,
                    event_time: i64::from(i),
                    payload: &payload,
                    key: &key,
                };
                arena.append(&record).unwrap() as u64
            })
            .collect();
        for &start in &records[..900] {
            arena.release(arena.stored_at(start as usize));
        }
        assert!(arena.wants_compaction(0));
        let mut live = records.split_off(900);
        arena.compact(live.iter_mut()).unwrap();
        for (i, &start) in live.iter().enumerate() {
            let record = arena.record_at(start as usize);
            assert_eq!(
                (record.event_time, record.flags, record.key, record.payload),
                (
                    900 + i as i64,
                    0,
                    &key[..],
                    &((900 + i) as u32).to_le_bytes().repeat(300)[..]
                )
            );
        }
        let (mapped, used, dead) = arena.usage();
        assert_eq!((used, dead), (100 * (ROW_RECORD_HEADER_LEN + 1200 + 3), 0));
        assert!(mapped <= 2 * used);
    }

    /// With no loan out and a mapping not oversized, a compaction moves the records down
    /// within it (the mapping is kept), in arena order whatever order their starts come in.
    #[test]
    fn compacts_in_place_when_no_loan_holds_the_mapping() {
        let mut arena = Arena::with_capacity(4096).unwrap();
        let starts: Vec<usize> = (0..60).map(|i| append(&mut arena, i)).collect();
        let kept = |i: &u8| !i.is_multiple_of(3);
        for i in (0..60u8).filter(|i| !kept(i)) {
            arena.release(arena.stored_at(starts[usize::from(i)]));
        }
        let (mapped, ..) = arena.usage();
        let mut live: Vec<u64> = (0..60u8)
            .rev()
            .filter(kept)
            .map(|i| starts[usize::from(i)] as u64)
            .collect();
        arena.compact(live.iter_mut()).unwrap();
        let record_len = ROW_RECORD_HEADER_LEN + 40 + 1;
        assert_eq!(arena.usage(), (mapped, 40 * record_len, 0));
        let moved = keys(live.iter().map(|&start| arena.record_at(start as usize)));
        assert_eq!(moved, (0..60u8).rev().filter(kept).collect::<Vec<u8>>());
        let loan = arena.lend();
        assert_eq!(read(&loan), (0..60u8).filter(kept).collect::<Vec<u8>>());
        assert!(loan
            .live_records()
            .all(|record| record.payload == [record.key[0]; 40]));
    }

    /// A write that would grow the arena compacts it first once a third of it is dead (and at
    /// least `MIN_COMPACTION_BYTES`); one that fits waits until half is.
    #[test]
    fn compacts_before_a_write_that_would_grow_the_arena() {
        let mut arena = Arena::with_capacity(4 << 20).unwrap();
        let payload = [7u8; 1000];
        let record = RowRecordV2 {
            view: 0,
            flags: 0,
            event_time: 0,
            payload: &payload,
            key: b"k",
        };
        let starts: Vec<usize> = (0..3000).map(|_| arena.append(&record).unwrap()).collect();
        for &start in &starts[..1100] {
            arena.release(arena.stored_at(start));
        }
        assert!(!arena.wants_compaction(0));
        assert!(!arena.wants_compaction(1 << 20), "fits");
        assert!(arena.wants_compaction(2 << 20), "would grow");
        for &start in &starts[1100..1600] {
            arena.release(arena.stored_at(start));
        }
        assert!(arena.wants_compaction(0), "half dead");
    }

    fn keys<'a>(records: impl Iterator<Item = RowRecordV2<'a>>) -> Vec<u8> {
        records.map(|record| record.key[0]).collect()
    }

    fn read(loan: &LentRecords) -> Vec<u8> {
        keys(loan.live_records())
    }

    fn append(arena: &mut Arena, i: u8) -> usize {
        let payload = [i; 40];
        let record = RowRecordV2 {
            view: 0,
            flags: 0,
            event_time: i64::from(i),
            payload: &payload,
            key: &[i],
        };
        arena.append(&record).unwrap()
    }

    /// A copy read before the record was written again (here: released) is refused, not trusted.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "released as read")]
    fn a_stale_copy_of_a_record_is_not_released() {
        let mut arena = Arena::with_capacity(64).unwrap();
        let start = append(&mut arena, 1);
        let stored = arena.stored_at(start);
        assert!(arena.release(stored));
        arena.release(stored);
    }

    #[test]
    fn a_loan_reads_its_cut_while_the_arena_releases_grows_and_compacts() {
        let mut arena = Arena::with_capacity(16).unwrap();
        let starts: Vec<usize> = (0..100).map(|i| append(&mut arena, i)).collect();
        let flags = |arena: &Arena, i: usize| arena.record_at(starts[i]).flags;
        for i in (0..10).chain([50]) {
            arena.release(arena.stored_at(starts[i]));
        }
        let first = arena.lend();
        // Released under the loan: counted dead now, flagged once the loan ends.
        assert!(arena.release(arena.stored_at(starts[10])));
        assert!(!arena.release(arena.stored_at(starts[10])), "released once");
        assert_eq!(flags(&arena, 10), 0);
        // A second loan of the same bytes leaves out what was released under the first.
        let second = arena.lend();
        arena.release(arena.stored_at(starts[11]));
        let live = |from: u8, to: u8| (from..to).filter(|&i| i != 50).collect::<Vec<u8>>();
        assert_eq!(read(&first), live(10, 100));
        assert_eq!(read(&second), live(11, 100));
        // A run stops at a superseded record.
        assert_eq!(first.live_runs().count(), 2);
        // Growth leaves the old mapping to the loans and flags what they held back.
        let grown: Vec<usize> = (100..200).map(|i| append(&mut arena, i)).collect();
        assert_eq!((flags(&arena, 10), flags(&arena, 11)), (1, 1));
        assert_eq!(read(&first), live(10, 100));
        let third = arena.lend();
        // Compaction, likewise.
        for &start in starts[12..].iter().chain(&grown[..90]) {
            arena.release(arena.stored_at(start));
        }
        let mut kept: Vec<u64> = grown[90..].iter().map(|&start| start as u64).collect();
        arena.compact(kept.iter_mut()).unwrap();
        let compacted = keys(kept.iter().map(|&start| arena.record_at(start as usize)));
        assert_eq!(compacted, (190..200).collect::<Vec<u8>>());
        assert_eq!(read(&first), live(10, 100));
        assert_eq!(read(&second), live(11, 100));
        assert_eq!(read(&third), live(12, 200));
        // Once the loans end, the arena writes anywhere again.
        drop((first, second, third));
        let loan = arena.lend();
        assert!(arena.release(arena.stored_at(kept[0] as usize)));
        drop(loan);
        assert_eq!(arena.record_at(kept[0] as usize).flags, 0);
        assert!(arena.release(arena.stored_at(kept[1] as usize)));
        let flags = |i: usize| arena.record_at(kept[i] as usize).flags;
        assert_eq!((flags(0), flags(1)), (1, 1));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Append(u8),
        Release(prop::sample::Index),
        Lend,
        EndLoan(prop::sample::Index),
        Compact,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => any::<u8>().prop_map(Step::Append),
            3 => any::<prop::sample::Index>().prop_map(Step::Release),
            1 => Just(Step::Lend),
            1 => any::<prop::sample::Index>().prop_map(Step::EndLoan),
            1 => Just(Step::Compact),
        ]
    }

    /// What a loan says it holds is what its walk finds.
    fn assert_counts_match_the_walk(loan: &LentRecords) {
        let bytes: usize = loan.live_runs().map(<[u8]>::len).sum();
        assert_eq!(
            (loan.live_bytes(), loan.live_rows()),
            (bytes, loan.live_records().count())
        );
    }

    proptest! {
        /// A loan's live bytes and rows, counted as the arena goes (no walk), against the live
        /// records of a model and the loan's own walk, whatever releases, growth, compaction
        /// and other loans came before and after it.
        #[test]
        fn a_loan_counts_its_live_records_without_a_walk(steps in prop::collection::vec(step(), 1..120)) {
            let mut arena = Arena::with_capacity(16).unwrap();
            // The model: where each live record starts, and its length.
            let mut live: Vec<(u64, usize)> = Vec::new();
            let mut loans = Vec::new();
            for step in steps {
                match step {
                    Step::Append(payload) => {
                        let payload = vec![payload; usize::from(payload)];
                        let record = RowRecordV2 { view: 0, flags: 0, event_time: 0, payload: &payload, key: b"k" };
                        live.push((arena.append(&record).unwrap() as u64, record.len()));
                    }
                    Step::Release(index) if !live.is_empty() => {
                        let (start, _) = live.remove(index.index(live.len()));
                        prop_assert!(arena.release(arena.stored_at(start as usize)));
                    }
                    Step::Lend => {
                        let loan = arena.lend();
                        let bytes: usize = live.iter().map(|&(_, len)| len).sum();
                        prop_assert_eq!((loan.live_bytes(), loan.live_rows()), (bytes, live.len()));
                        loans.push(loan);
                    }
                    Step::EndLoan(index) if !loans.is_empty() => {
                        loans.remove(index.index(loans.len()));
                    }
                    Step::Compact => {
                        let mut starts: Vec<u64> = live.iter().map(|&(start, _)| start).collect();
                        arena.compact(starts.iter_mut()).unwrap();
                        for ((start, len), moved) in live.iter_mut().zip(starts) {
                            *start = moved;
                            // Moved whole: `Append`'s payload is its length's byte.
                            let record = arena.record_at(moved as usize);
                            let byte = (*len - ROW_RECORD_HEADER_LEN - 1) as u8;
                            prop_assert_eq!((record.len(), record.key), (*len, &b"k"[..]));
                            prop_assert!(record.payload.iter().all(|&b| b == byte));
                        }
                    }
                    Step::Release(_) | Step::EndLoan(_) => {}
                }
                loans.iter().for_each(assert_counts_match_the_walk);
            }
            let loan = arena.lend();
            prop_assert_eq!(loan.live_rows(), live.len());
            assert_counts_match_the_walk(&loan);
            let restored = Arena::from_records(&loan.live_runs().collect::<Vec<_>>().concat()).unwrap().lend();
            prop_assert_eq!((restored.live_bytes(), restored.live_rows()), (loan.live_bytes(), loan.live_rows()));
        }
    }
}

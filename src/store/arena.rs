//! A growable, memory-mapped byte arena that holds one shard's rows as records: each row's
//! view, key, event time and payload, in the layout of a snapshot's `RowsV2` records
//! (`persist::format::RowRecordV2`), so that a snapshot can copy live records as they are and
//! a restore can take a shard's records in one go.
//!
//! Records are appended; an overwritten row's record is flagged superseded and its bytes counted
//! dead. The arena grows by doubling (a new anonymous mapping, bytes copied over at the same
//! offsets) and compacts when more than half of what it holds is dead, so space stays within
//! about twice the live bytes. The arena is written by exactly one shard actor.

use std::io;

use memmap2::MmapMut;

use crate::persist::format::{RowRecordV2, ROW_RECORD_HEADER_LEN, ROW_RECORD_SUPERSEDED};

/// Below this, dead bytes are not worth a compaction pass.
const MIN_COMPACTION_BYTES: usize = 1 << 20;

pub struct Arena {
    map: MmapMut,
    used: usize,
    dead: usize,
}

impl Arena {
    pub fn with_capacity(capacity: usize) -> io::Result<Arena> {
        Ok(Arena {
            map: MmapMut::map_anon(capacity.max(4096))?,
            used: 0,
            dead: 0,
        })
    }

    /// An arena holding `records` (a snapshot's records of one shard: none superseded), with
    /// room to grow.
    pub fn from_records(records: &[u8]) -> io::Result<Arena> {
        let mut arena = Arena::with_capacity(records.len() * 2)?;
        arena.map[..records.len()].copy_from_slice(records);
        arena.used = records.len();
        Ok(arena)
    }

    /// Appends `record`, growing the arena if needed; answers where it starts.
    pub fn append(&mut self, record: &RowRecordV2) -> io::Result<usize> {
        let len = record.len();
        if self.used + len > self.map.len() {
            let wanted = (self.used + len).max(self.map.len() * 2);
            self.remap(wanted)?;
        }
        let start = self.used;
        let payload_start = start + ROW_RECORD_HEADER_LEN;
        let key_start = payload_start + record.payload.len();
        self.map[start..payload_start].copy_from_slice(&record.header());
        self.map[payload_start..key_start].copy_from_slice(record.payload);
        self.map[key_start..start + len].copy_from_slice(record.key);
        self.used += len;
        Ok(start)
    }

    /// The record starting at byte `at`, which must be a record boundary below `used_len`.
    pub fn record_at(&self, at: usize) -> RowRecordV2<'_> {
        RowRecordV2::read(&self.map[..self.used], at).expect("the arena holds whole records")
    }

    /// Marks the record starting at `start` superseded and its bytes dead (a newer row of its
    /// key replaced it, or its layout was reshaped); false if it already was.
    pub fn release(&mut self, start: usize) -> bool {
        let record = self.record_at(start);
        if record.flags & ROW_RECORD_SUPERSEDED != 0 {
            return false;
        }
        self.dead += record.len();
        self.map[start + 12..start + 16].copy_from_slice(&ROW_RECORD_SUPERSEDED.to_le_bytes());
        true
    }

    /// True when more than half of the used bytes are dead.
    pub fn wants_compaction(&self) -> bool {
        self.dead >= MIN_COMPACTION_BYTES && self.dead * 2 > self.used
    }

    /// Rewrites the live records (given by where they start) into a fresh mapping and updates
    /// every start in place.
    pub fn compact<'a>(
        &mut self,
        live_records: impl Iterator<Item = &'a mut u64>,
    ) -> io::Result<()> {
        let live = self.used - self.dead;
        let mut fresh = MmapMut::map_anon((live * 2).max(4096))?;
        let mut used = 0usize;
        for record in live_records {
            let start = *record as usize;
            let len = self.record_at(start).len();
            fresh[used..used + len].copy_from_slice(&self.map[start..start + len]);
            *record = used as u64;
            used += len;
        }
        self.map = fresh;
        self.used = used;
        self.dead = 0;
        Ok(())
    }

    fn remap(&mut self, capacity: usize) -> io::Result<()> {
        let mut fresh = MmapMut::map_anon(capacity)?;
        fresh[..self.used].copy_from_slice(&self.map[..self.used]);
        self.map = fresh;
        Ok(())
    }

    /// Every record written so far, live and superseded.
    pub fn records(&self) -> &[u8] {
        &self.map[..self.used]
    }

    /// Bytes mapped, bytes written, bytes dead.
    pub fn usage(&self) -> (usize, usize, usize) {
        (self.map.len(), self.used, self.dead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            arena.release(start as usize);
        }
        assert!(arena.wants_compaction());
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
}

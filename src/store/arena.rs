//! A growable, memory-mapped byte arena that holds one shard's row payloads.
//!
//! Rows are appended; an overwritten row's bytes become dead and are counted. The arena grows by
//! doubling (a new anonymous mapping, live bytes copied over) and compacts when more than half of
//! what it holds is dead, so space stays within about twice the live bytes. The arena is owned by
//! exactly one shard actor and is never shared.

use std::io;

use memmap2::MmapMut;

/// Where a row's payload lives in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef {
    pub offset: u64,
    pub len: u32,
}

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

    /// Copies `bytes` into the arena, growing it if needed.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<RowRef> {
        if self.used + bytes.len() > self.map.len() {
            let wanted = (self.used + bytes.len()).max(self.map.len() * 2);
            self.remap(wanted)?;
        }
        let offset = self.used;
        self.map[offset..offset + bytes.len()].copy_from_slice(bytes);
        self.used += bytes.len();
        Ok(RowRef {
            offset: offset as u64,
            len: bytes.len() as u32,
        })
    }

    pub fn get(&self, row: RowRef) -> &[u8] {
        let start = row.offset as usize;
        &self.map[start..start + row.len as usize]
    }

    /// Marks a row's bytes as dead (it was overwritten or deleted).
    pub fn release(&mut self, row: RowRef) {
        self.dead += row.len as usize;
    }

    /// True when more than half of the used bytes are dead.
    pub fn wants_compaction(&self) -> bool {
        self.dead >= MIN_COMPACTION_BYTES && self.dead * 2 > self.used
    }

    /// Rewrites the live rows into a fresh mapping and updates every reference in place.
    pub fn compact<'a>(
        &mut self,
        live_rows: impl Iterator<Item = &'a mut RowRef>,
    ) -> io::Result<()> {
        let live = self.used - self.dead;
        let mut fresh = MmapMut::map_anon((live * 2).max(4096))?;
        let mut used = 0usize;
        for row in live_rows {
            let bytes = self.get(*row);
            fresh[used..used + bytes.len()].copy_from_slice(bytes);
            row.offset = used as u64;
            used += row.len as usize;
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

    /// Every byte written so far (live and dead rows), for a snapshot's copy.
    pub fn used(&self) -> &[u8] {
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
        let mut rows: Vec<RowRef> = (0..1000u32)
            .map(|i| arena.append(&i.to_le_bytes().repeat(300)).unwrap())
            .collect();
        for row in &rows[..900] {
            arena.release(*row);
        }
        assert!(arena.wants_compaction());
        let mut live = rows.split_off(900);
        arena.compact(live.iter_mut()).unwrap();
        for (i, row) in live.iter().enumerate() {
            assert_eq!(
                arena.get(*row),
                ((900 + i) as u32).to_le_bytes().repeat(300)
            );
        }
        let (mapped, used, dead) = arena.usage();
        assert_eq!((used, dead), (100 * 1200, 0));
        assert!(mapped <= 2 * used);
    }
}

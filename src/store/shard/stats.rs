//! `ShardStats`: how many rows a shard holds and what its arena costs. Asked through
//! `Router::usage` by each `/metrics` scrape. `ViewStats`: rows, payload bytes and aggregated
//! keys per view, for the console's Store page (`Router::view_usage`): the partition keeps them up
//! to date as writes are applied (`ViewUsages`), so asking costs a copy, never a walk over the
//! index (which would hold up the shard's writes for as long as it took); only an apply, which
//! rewrites the partition anyway, counts them again ([`ViewUsages::count`]).

use actix::{Handler, Message, MessageResult};

use super::{view_of_key, Partition, ShardActor};
use crate::registry::ViewId;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardUsage {
    pub rows: usize,
    pub arena_mapped_bytes: usize,
    pub arena_used_bytes: usize,
    pub arena_dead_bytes: usize,
}

pub struct ShardStats;

impl Message for ShardStats {
    type Result = ShardUsage;
}

impl Handler<ShardStats> for ShardActor {
    type Result = MessageResult<ShardStats>;

    fn handle(&mut self, _: ShardStats, _: &mut Self::Context) -> Self::Result {
        let partition = self.partition.read();
        let (mapped, used, dead) = partition.arena.usage();
        MessageResult(ShardUsage {
            rows: partition.index.len(),
            arena_mapped_bytes: mapped,
            arena_used_bytes: used,
            arena_dead_bytes: dead,
        })
    }
}

/// One view's share of a shard (or, summed by the router, of the store).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewUsage {
    /// Keys with a current row.
    pub rows: usize,
    /// Arena bytes of those rows' payloads.
    pub payload_bytes: usize,
    /// Keys holding aggregation tiles (aggregating views only).
    pub aggregated_keys: usize,
}

/// Index = view id: what the shard holds of each view, kept by the shard actor as it writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewUsages(Vec<ViewUsage>);

impl ViewUsages {
    pub fn new(n_views: usize) -> ViewUsages {
        ViewUsages(vec![ViewUsage::default(); n_views])
    }

    /// A row of `len` bytes stored for a key of `view`, replacing one of `replaced` bytes if
    /// the key had a row.
    pub fn row_stored(&mut self, view: ViewId, len: usize, replaced: Option<usize>) {
        if let Some(usage) = self.0.get_mut(view as usize) {
            match replaced {
                Some(old) => usage.payload_bytes = usage.payload_bytes - old + len,
                None => {
                    usage.rows += 1;
                    usage.payload_bytes += len;
                }
            }
        }
    }

    /// A row of `len` bytes counted for a key of `view` is not the key's row after all (a
    /// restore counts every record, then finds which of a key's records is its newest).
    pub fn row_dropped(&mut self, view: ViewId, len: usize) {
        if let Some(usage) = self.0.get_mut(view as usize) {
            usage.rows -= 1;
            usage.payload_bytes -= len;
        }
    }

    /// What `partition` holds of each view in its current layout, counted from scratch.
    pub fn count(partition: &Partition) -> ViewUsages {
        let mut usages = ViewUsages::new(partition.views.id_bound());
        for (layout, record) in partition.index.iter() {
            let record = partition.arena.record_at(record);
            if partition.is_current(record.view, layout) {
                usages.row_stored(record.view, record.payload.len(), None);
            }
        }
        for key in partition.tiles.keys() {
            let (view, layout) = view_of_key(key);
            if partition.is_current(view, layout) {
                usages.tiles_created(view);
            }
        }
        usages
    }

    /// A key of `view` that had no tiles has some.
    pub fn tiles_created(&mut self, view: ViewId) {
        if let Some(usage) = self.0.get_mut(view as usize) {
            usage.aggregated_keys += 1;
        }
    }
}

/// Index = view id.
pub struct ViewStats;

impl Message for ViewStats {
    type Result = Vec<ViewUsage>;
}

impl Handler<ViewStats> for ShardActor {
    type Result = MessageResult<ViewStats>;

    fn handle(&mut self, _: ViewStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.partition.read().view_usage.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_a_row_counts_its_bytes_once() {
        let mut usages = ViewUsages::new(2);
        usages.row_stored(1, 40, None);
        usages.row_stored(1, 10, None);
        usages.row_stored(1, 25, Some(40));
        usages.tiles_created(0);
        usages.row_stored(7, 1, None);
        let expected = [
            ViewUsage {
                rows: 0,
                payload_bytes: 0,
                aggregated_keys: 1,
            },
            ViewUsage {
                rows: 2,
                payload_bytes: 35,
                aggregated_keys: 0,
            },
        ];
        assert_eq!(usages.0, expected);
    }
}

//! `ShardStats`: how many rows a shard holds and what its arena costs. Asked through
//! `Router::usage` by each `/metrics` scrape. `ViewStats`: the same, per view (a walk over the
//! shard's index, under its read lock), for the console's Store page (`Router::view_usage`).

use actix::{Handler, Message, MessageResult};

use super::{view_of_index_key, ShardActor};

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

/// Index = view id.
pub struct ViewStats;

impl Message for ViewStats {
    type Result = Vec<ViewUsage>;
}

impl Handler<ViewStats> for ShardActor {
    type Result = MessageResult<ViewStats>;

    fn handle(&mut self, _: ViewStats, _: &mut Self::Context) -> Self::Result {
        let mut usage = vec![ViewUsage::default(); self.specs.len()];
        let partition = self.partition.read();
        let view_of = |key: &[u8]| view_of_index_key(key) as usize;
        for (key, slot) in &partition.index {
            if let Some(view) = usage.get_mut(view_of(key)) {
                view.rows += 1;
                view.payload_bytes += slot.row.len as usize;
            }
        }
        for key in partition.tiles.keys() {
            if let Some(view) = usage.get_mut(view_of(key)) {
                view.aggregated_keys += 1;
            }
        }
        MessageResult(usage)
    }
}

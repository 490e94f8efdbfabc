//! `ShardStats`: how many rows a shard holds and what its arena costs. Asked through
//! `Router::usage` by each `/metrics` scrape.

use actix::{Handler, Message, MessageResult};

use super::ShardActor;

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

//! Dropping keys from a partition: a partitioned cluster node that gave a cluster partition up
//! (its new owners hold it caught up) frees its rows and tiles.

use std::io;
use std::sync::Arc;

use actix::{Handler, Message};

use super::stats::ViewUsages;
use super::{view_of_key, ShardActor, KEY_PREFIX};
use crate::registry::ViewId;

/// Which keys to drop: true for a view and an encoded join key.
pub type DroppedKeys = Arc<dyn Fn(ViewId, &[u8]) -> bool + Send + Sync>;

/// Drops every key (row and tiles) that [`DroppedKeys`] says.
pub struct DropKeys(pub DroppedKeys);

impl Message for DropKeys {
    type Result = io::Result<()>;
}

impl Handler<DropKeys> for ShardActor {
    type Result = io::Result<()>;

    fn handle(&mut self, DropKeys(dropped): DropKeys, _: &mut Self::Context) -> io::Result<()> {
        let mut partition = self.partition.write();
        let partition = &mut *partition;
        let arena = &mut partition.arena;
        partition.index.retain(|_, start| {
            let record = arena.record_at(start);
            if !dropped(record.view, record.key) {
                return true;
            }
            arena.release(arena.stored_at(start));
            false
        });
        partition
            .tiles
            .retain(|key, _| !dropped(view_of_key(key).0, &key[KEY_PREFIX..]));
        partition.view_usage = ViewUsages::count(partition);
        partition.compact_if_due(0)
    }
}

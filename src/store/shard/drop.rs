//! Dropping keys from a partition: a partitioned cluster node that gave a cluster partition up
//! (its new owners hold it caught up) frees its rows and tiles.

use std::io;
use std::sync::Arc;

use actix::{Handler, Message};

use super::stats::ViewUsages;
use super::{view_of_key, Arena, ShardActor, KEY_PREFIX};
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
        let is_dropped = |key: &[u8]| dropped(view_of_key(key).0, &key[KEY_PREFIX..]);
        let mut partition = self.partition.write();
        let partition = &mut *partition;
        let export = &mut self.export;
        partition.index.retain(|key, slot| {
            if !is_dropped(key) {
                return true;
            }
            let start = Arena::record_start(slot.row);
            partition.arena.release(start);
            if let Some(export) = export.as_mut() {
                export.superseded(start);
            }
            false
        });
        partition.tiles.retain(|key, _| !is_dropped(key));
        partition.view_usage = ViewUsages::count(partition);
        partition.compact_if_due(self.export.is_some())
    }
}

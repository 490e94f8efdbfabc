//! `ExportRows`: a copy of every row of the shard, for a snapshot. Sent by the writer actor
//! right after it rotates the journal, so each shard exports exactly the writes journaled before
//! the rotation: together the shards' exports are a point-in-time cut.
//!
//! The copy stalls the shard's writes (reads go on: it holds only the read lock), so it is kept
//! flat: one memcpy of the arena's used bytes, the index keys appended to one buffer, and a
//! fixed-size entry per row. Building the on-disk rows from it happens on a blocking thread,
//! outside the shard.

use actix::{Handler, Message};
use tokio::sync::oneshot;

use super::{index_key, view_of_key, ShardActor, KEY_PREFIX};
use crate::persist::format::TilesV2;
use crate::store::tiles::{to_stored, TileSet};

/// One row of an export: where its key and payload are in the export's buffers.
#[derive(Debug, Clone, Copy)]
pub struct ExportEntry {
    pub view: u32,
    pub key_start: usize,
    pub key_len: usize,
    pub event_time: i64,
    pub payload_start: usize,
    pub payload_len: usize,
}

/// A shard's rows, flat, and its aggregation tiles in their stored form.
#[derive(Debug, Default)]
pub struct ShardExport {
    pub keys: Vec<u8>,
    pub arena: Vec<u8>,
    pub entries: Vec<ExportEntry>,
    pub tiles: Vec<TilesV2>,
}

pub struct ExportRows {
    pub done: oneshot::Sender<ShardExport>,
}

impl Message for ExportRows {
    type Result = ();
}

impl Handler<ExportRows> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: ExportRows, _: &mut Self::Context) {
        // A read lock: request threads keep reading while the copy is made; only this shard's
        // writes (which queue behind this message anyway) wait.
        let partition = self.partition.read();
        let mut export = ShardExport {
            keys: Vec::with_capacity(partition.index.len() * 16),
            arena: partition.arena.used().to_vec(),
            entries: Vec::with_capacity(partition.index.len()),
            tiles: partition
                .tiles
                .iter()
                .filter(|(key, _)| partition.is_current(key))
                .map(|(key, tiles)| to_stored(view_of_key(key).0, &key[KEY_PREFIX..], tiles))
                .collect(),
        };
        for (key, slot) in partition
            .index
            .iter()
            .filter(|(key, _)| partition.is_current(key))
        {
            let key_start = export.keys.len();
            export.keys.extend_from_slice(&key[KEY_PREFIX..]);
            export.entries.push(ExportEntry {
                view: view_of_key(key).0,
                key_start,
                key_len: key.len() - KEY_PREFIX,
                event_time: slot.event_time,
                payload_start: slot.row.offset as usize,
                payload_len: slot.row.len as usize,
            });
        }
        let _ = msg.done.send(export);
    }
}

/// `RestoreTiles`: put back tiles read from a snapshot.
pub struct RestoreTiles(pub Vec<(u32, Vec<u8>, TileSet)>);

impl Message for RestoreTiles {
    type Result = ();
}

impl Handler<RestoreTiles> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: RestoreTiles, _: &mut Self::Context) {
        let mut partition = self.partition.write();
        for (view, key, tiles) in msg.0 {
            let Some(layout) = partition.views.layout(view) else {
                continue;
            };
            partition.views.watermarks.advance(view, tiles.latest_event);
            let key = index_key(view, layout, &key).into_boxed_slice();
            if partition.tiles.insert(key, tiles).is_none() {
                partition.view_usage.tiles_created(view);
            }
        }
    }
}

//! `ExportRows`: the shard's rows and tiles for a snapshot, and their restore at start-up
//! (`RestoreRecords`, `RestoreTiles`). The writer actor sends `ExportRows` right after it
//! rotates the journal, so each shard's export is exactly the writes journaled before the
//! rotation: together the shards' exports are a point-in-time cut.
//!
//! The export does not stop the shard, nor copy its rows: at the cut the shard lends its
//! arena's records to it ([`Arena::lend`]: records written later are not part of it, records
//! released later still read as live) and copies the tiles. The snapshot writer then reads the
//! live records of the loan on its own low-priority thread, without a lock, and writes them as
//! they are, which is also the snapshot's layout (`persist::format::RowsV2`): nothing is
//! copied on the shard's thread, nothing re-encoded. Writes, growth and compaction go on
//! meanwhile; the loan keeps the mapping it read until it is dropped.

use std::io;
use std::sync::Arc;

use actix::{Handler, Message};
use tokio::sync::oneshot;

use super::index::NewEntries;
use super::{tile_key, view_of_key, ShardActor, KEY_PREFIX};
use crate::persist::format::{row_records, TilesV2, ROW_RECORD_HEADER_LEN};
use crate::store::arena::{Arena, LentRecords};
use crate::store::tiles::{to_stored, TileSet};

/// A shard's rows at the cut, as the arena's records lent, and its tiles in stored form.
#[derive(Debug)]
pub struct ShardExport {
    pub records: LentRecords,
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
        let records = self.partition.write().arena.lend();
        // Tiles change in place, so they are copied at the cut, whole (the current layouts'
        // only: a retiring layout's records are superseded likewise). Under the read lock:
        // this actor is the only writer, so nothing changes until it returns.
        let partition = self.partition.read();
        let tiles = partition
            .tiles
            .iter()
            .filter(|(key, _)| {
                let (view, layout) = view_of_key(key);
                partition.is_current(view, layout)
            })
            .map(|(key, tiles)| to_stored(view_of_key(key).0, &key[KEY_PREFIX..], tiles))
            .collect();
        // The snapshot may have been abandoned; nothing to do then.
        let _ = msg.done.send(ShardExport { records, tiles });
    }
}

/// `RestoreRecords`: an empty shard takes a snapshot's records of its rows as its arena and
/// rebuilds its index from them (each shard on its own thread, so in parallel). A record names
/// its view by id only: it is keyed under the view's current layout (layouts are not kept
/// across a restart, and a snapshot holds the current layouts' rows only). Answers the rows
/// stored and the records skipped (of views that no longer hold rows).
pub struct RestoreRecords {
    pub arena: Arena,
    /// How many rows the records hold, as the snapshot says: the index is sized once.
    pub rows: usize,
}

impl Message for RestoreRecords {
    type Result = io::Result<(usize, usize)>;
}

impl Handler<RestoreRecords> for ShardActor {
    type Result = io::Result<(usize, usize)>;

    fn handle(&mut self, msg: RestoreRecords, _: &mut Self::Context) -> Self::Result {
        let mut partition = self.partition.write();
        if !partition.index.is_empty() {
            return Err(io::Error::other(
                "records are restored into empty shards only",
            ));
        }
        partition.arena = msg.arena;
        let partition = &mut *partition;
        let views = Arc::clone(&partition.views);
        // A record takes at least its header: a damaged count cannot reserve more than that.
        let most = partition.arena.records().len() / ROW_RECORD_HEADER_LEN;
        partition.index.reserve(msg.rows.min(most));
        let mut latest = vec![None::<i64>; views.id_bound()];
        let (mut stored, mut skipped) = (0, 0);
        let mut superseded = Vec::new();
        // First every record in the file's order: checked, its view's time and counts kept,
        // its index entry made. The console's counts are kept here, where the records are
        // read in order, as if no key had two (counted from the index afterwards, each key's
        // record would be read at random: a cache miss a row). Then the entries go in, in
        // the table's order; a key's older records are taken back out of the counts.
        let mut entries = NewEntries::with_capacity(most)?;
        let mut at = 0;
        for record in row_records(partition.arena.records()) {
            let record = record.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let start = at;
            at += record.len();
            let view = record.view;
            if record.flags != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("row record at byte {start}: unknown flags {}", record.flags),
                ));
            }
            let layout = match views.layout(view) {
                Some(layout) if views.spec(view).is_none() => layout,
                _ => {
                    skipped += 1;
                    superseded.push(start);
                    continue;
                }
            };
            let newest = &mut latest[view as usize];
            *newest = Some(newest.map_or(record.event_time, |t| t.max(record.event_time)));
            partition
                .view_usage
                .row_stored(view, record.payload.len(), None);
            entries.push(partition.index.entry_for(view, layout, record.key, start));
        }
        let ordered = partition.index.in_table_order(&entries)?;
        drop(entries);
        for entry in ordered.iter() {
            let arena = &partition.arena;
            let Some(previous) = partition.index.insert_entry(arena, entry) else {
                stored += 1;
                continue;
            };
            // A snapshot holds one record per key; keep the newest if not (of equal times the
            // later in the file, which the entry is: the order keeps a key's entries in order).
            let lost = if arena.record_at(previous).event_time
                > arena.record_at(entry.record()).event_time
            {
                partition.index.insert_entry(arena, entry.at(previous));
                entry.record()
            } else {
                previous
            };
            let lost_record = arena.record_at(lost);
            partition
                .view_usage
                .row_dropped(lost_record.view, lost_record.payload.len());
            superseded.push(lost);
        }
        for start in superseded {
            partition.arena.release(partition.arena.stored_at(start));
        }
        for (view, time) in latest.into_iter().enumerate() {
            if let Some(time) = time {
                views.watermarks.advance(view as u32, time);
            }
        }
        Ok((stored, skipped))
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
            if partition
                .tiles
                .insert(tile_key(view, layout, &key), tiles)
                .is_none()
            {
                partition.view_usage.tiles_created(view);
            }
        }
    }
}

//! `ExportRows`: the shard's rows and tiles for a snapshot, and their restore at start-up
//! (`RestoreRecords`, `RestoreTiles`). The writer actor sends `ExportRows` right after it
//! rotates the journal, so each shard's export is exactly the writes journaled before the
//! rotation: together the shards' exports are a point-in-time cut.
//!
//! The export does not stop the shard. At the cut it notes where the arena ends (records
//! appended later are not part of it) and copies the tiles; then it walks the arena's records
//! below that point in chunks of [`CHUNK_BYTES`], one chunk per turn of the actor's loop, so the
//! write batches queued meanwhile are applied between chunks, and reads go on throughout (a
//! chunk holds the read lock only). A record is in the cut if it was live at the cut: not
//! superseded, or superseded after the cut (the writes note those while the export runs, see
//! [`RunningExport::superseded`]). Compaction waits for the export to end, so records stay where
//! they are; growth keeps offsets. The copy is the records' bytes as they are, which is also the
//! snapshot's layout (`persist::format::RowsV2`): nothing is re-encoded.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;

use actix::{AsyncContext, Context, Handler, Message};
use tokio::sync::oneshot;

use super::{tile_key, view_of_key, ShardActor, ViewUsages, KEY_PREFIX};
use crate::persist::format::{row_records, TilesV2, ROW_RECORD_HEADER_LEN, ROW_RECORD_SUPERSEDED};
use crate::store::arena::Arena;
use crate::store::tiles::{to_stored, TileSet};

/// Arena bytes an export walks per turn: bounds how long a write batch can wait behind it.
const CHUNK_BYTES: usize = if cfg!(test) { 512 } else { 1 << 20 };

/// A shard's live rows at the cut, as records back to back, and its tiles in stored form.
#[derive(Debug, Default)]
pub struct ShardExport {
    pub records: Vec<u8>,
    pub rows: usize,
    pub tiles: Vec<TilesV2>,
}

pub struct ExportRows {
    pub done: oneshot::Sender<ShardExport>,
}

impl Message for ExportRows {
    type Result = ();
}

/// An export walking the arena: records in `cursor..cut` are still to be looked at.
pub(super) struct RunningExport {
    cut: usize,
    cursor: usize,
    /// Starts of records below the cut, not yet walked, that a write superseded after the cut.
    superseded_after_cut: HashSet<usize>,
    export: ShardExport,
    done: oneshot::Sender<ShardExport>,
}

impl RunningExport {
    /// The record at `record_start` was just superseded: if the export has yet to reach it, it
    /// must still count it as live.
    pub(super) fn superseded(&mut self, record_start: usize) {
        if (self.cursor..self.cut).contains(&record_start) {
            self.superseded_after_cut.insert(record_start);
        }
    }

    /// Copies the records live at the cut from the next `budget` bytes; true when done.
    fn copy_chunk(&mut self, arena: &Arena, budget: usize) -> bool {
        let end = self.cut.min(self.cursor + budget);
        while self.cursor < end {
            let record = arena.record_at(self.cursor);
            if record.flags & ROW_RECORD_SUPERSEDED == 0
                || self.superseded_after_cut.remove(&self.cursor)
            {
                record.write_to(&mut self.export.records);
                self.export.rows += 1;
            }
            self.cursor += record.len();
        }
        self.cursor >= self.cut
    }
}

/// The next chunk of the running export.
struct ExportChunk;

impl Message for ExportChunk {
    type Result = ();
}

impl Handler<ExportRows> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: ExportRows, ctx: &mut Self::Context) {
        // Exports are one at a time: an earlier one still running is finished first.
        while self.export.is_some() {
            self.export_chunk(usize::MAX, ctx);
        }
        let partition = self.partition.read();
        let (_, used, dead) = partition.arena.usage();
        self.export = Some(RunningExport {
            cut: used,
            cursor: 0,
            superseded_after_cut: HashSet::new(),
            export: ShardExport {
                records: Vec::with_capacity(used - dead),
                rows: 0,
                // Tiles change in place, so they are copied at the cut, whole (the current
                // layouts' only: a retiring layout's records are superseded likewise).
                tiles: partition
                    .tiles
                    .iter()
                    .filter(|(key, _)| {
                        let (view, layout) = view_of_key(key);
                        partition.is_current(view, layout)
                    })
                    .map(|(key, tiles)| to_stored(view_of_key(key).0, &key[KEY_PREFIX..], tiles))
                    .collect(),
            },
            done: msg.done,
        });
        drop(partition);
        ctx.notify(ExportChunk);
    }
}

impl Handler<ExportChunk> for ShardActor {
    type Result = ();

    fn handle(&mut self, _: ExportChunk, ctx: &mut Self::Context) {
        self.export_chunk(CHUNK_BYTES, ctx);
    }
}

impl ShardActor {
    /// Walks the running export's next `budget` bytes; sends it when done, else asks for the
    /// next chunk behind whatever the mailbox holds.
    fn export_chunk(&mut self, budget: usize, ctx: &mut Context<Self>) {
        let Some(export) = self.export.as_mut() else {
            return;
        };
        if !export.copy_chunk(&self.partition.read().arena, budget) {
            ctx.notify(ExportChunk);
            return;
        }
        let export = self.export.take().expect("an export is running");
        // The snapshot may have been abandoned; nothing to do then.
        let _ = export.done.send(export.export);
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
            let arena = &partition.arena;
            match partition
                .index
                .insert(arena, view, layout, record.key, start)
            {
                None => stored += 1,
                // A snapshot holds one record per key; keep the newest if not.
                Some(kept) if arena.record_at(kept).event_time > record.event_time => {
                    partition
                        .index
                        .insert(arena, view, layout, record.key, kept);
                    superseded.push(start);
                }
                Some(replaced) => superseded.push(replaced),
            }
        }
        for start in superseded {
            partition.arena.release(start);
        }
        for (view, time) in latest.into_iter().enumerate() {
            if let Some(time) = time {
                views.watermarks.advance(view as u32, time);
            }
        }
        // The console's per-view counts are kept by writes; records restored in one go are
        // counted once here.
        partition.view_usage = ViewUsages::count(partition);
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
            let key = tile_key(view, layout, &key).into_boxed_slice();
            if partition.tiles.insert(key, tiles).is_none() {
                partition.view_usage.tiles_created(view);
            }
        }
    }
}

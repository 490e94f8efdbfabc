//! `ApplyRows`: store rows in the shard, newest event time wins (ties: the later write). Sent
//! only by the writer actor, with `do_send`, so rows arrive in journal order.

use std::sync::Arc;

use actix::{Handler, Message};
use tokio::sync::oneshot;

use super::{write_tile_key, ShardActor};
use crate::metrics::Queued;
use crate::persist::format::{RowRecordV2, ROW_RECORD_HEADER_LEN};
use crate::registry::{Layout, ViewId};
use crate::store::key::OwnedKey;
use crate::store::row::split_values;
use crate::store::tiles::TileSet;
use crate::time::Micros;

/// One row to store: its view, encoded join key, event time and encoded values.
#[derive(Debug, Clone)]
pub struct RowWrite {
    pub view: ViewId,
    /// The layout the row was encoded for; the writer refuses a batch made for another.
    pub layout: Layout,
    pub key: Vec<u8>,
    pub event_time: Micros,
    pub payload: Vec<u8>,
}

/// How many rows replaced or created a key's row, and how many were older than what is stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    pub stored: usize,
    pub older_than_stored: usize,
}

pub struct ApplyRows {
    pub rows: Vec<RowWrite>,
    pub done: oneshot::Sender<std::io::Result<WriteOutcome>>,
    /// Counts the batch in the shard's mailbox depth until it is applied.
    pub queued: Queued,
}

impl Message for ApplyRows {
    type Result = ();
}

impl Handler<ApplyRows> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: ApplyRows, _: &mut Self::Context) {
        let outcome = self.apply(msg.rows);
        drop(msg.queued);
        // The writer may have given up waiting (its caller went away); the rows are applied anyway.
        let _ = msg.done.send(outcome);
    }
}

/// Rows whose index entries and records are read ahead of their writes, at a time: enough
/// searches to overlap their misses, few enough that what they bring stays in the cache.
const TOUCH_AHEAD: usize = 16;

/// Reads the plain rows' index entries and records ahead of their writes (`RowIndex::touch`).
fn touch_ahead(partition: &super::Partition, rows: &[RowWrite]) {
    let mut touched = 0u8;
    for row in rows
        .iter()
        .filter(|row| partition.views.spec(row.view).is_none())
    {
        touched ^= partition
            .index
            .touch(&partition.arena, row.view, row.layout, &row.key);
    }
    std::hint::black_box(touched);
}

impl ShardActor {
    /// Applies one batch under the write lock: readers see all of it or none of it.
    pub(super) fn apply(&mut self, rows: Vec<RowWrite>) -> std::io::Result<WriteOutcome> {
        let mut outcome = WriteOutcome::default();
        let mut partition = self.partition.write();
        let partition = &mut *partition;
        let views = Arc::clone(&partition.views);
        let incoming = rows
            .iter()
            .filter(|row| views.spec(row.view).is_none())
            .map(|row| ROW_RECORD_HEADER_LEN + row.key.len() + row.payload.len())
            .sum();
        partition.compact_if_due(incoming)?;
        // An aggregating row's tile key and values, refilled row by row: a key is boxed only
        // when it gets its first tiles.
        let mut key = Vec::new();
        let mut inputs = Vec::new();
        for (at, row) in rows.iter().enumerate() {
            if at % TOUCH_AHEAD == 0 {
                touch_ahead(partition, &rows[at..rows.len().min(at + TOUCH_AHEAD)]);
            }
            if let Some(spec) = views.spec(row.view) {
                write_tile_key(row.view, row.layout, &row.key, &mut key);
                // An aggregating view's row is one event: it goes into its tile, its values
                // read from the row's bytes (decoded only by the functions that keep them).
                inputs.clear();
                split_values(&row.payload, &mut inputs)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                partition.arrivals += 1;
                let seq = partition.arrivals;
                views.watermarks.advance(row.view, row.event_time);
                match partition.tiles.get_mut(key.as_slice()) {
                    Some(tiles) => tiles.add(spec, row.event_time, seq, &inputs),
                    None => {
                        partition.view_usage.tiles_created(row.view);
                        let mut tiles = TileSet::default();
                        tiles.add(spec, row.event_time, seq, &inputs);
                        partition.tiles.insert(OwnedKey::copy_of(&key), tiles);
                    }
                }
                outcome.stored += 1;
                continue;
            }
            // One search of the index a row: the slot found here is where the new record goes.
            let slot = partition
                .index
                .slot(&partition.arena, row.view, row.layout, &row.key);
            // The key's current record, as the index's search read it.
            let stored = slot.current();
            if stored.is_some_and(|stored| stored.event_time > row.event_time) {
                outcome.older_than_stored += 1;
                continue;
            }
            // Plain views' watermarks serve only the freshness metric.
            views.watermarks.advance(row.view, row.event_time);
            let record = partition.arena.append(&RowRecordV2 {
                view: row.view,
                flags: 0,
                event_time: row.event_time,
                payload: &row.payload,
                key: &row.key,
            })?;
            slot.point_at(record);
            partition.view_usage.row_stored(
                row.view,
                row.payload.len(),
                stored.map(|stored| stored.payload_len),
            );
            if let Some(stored) = stored {
                partition.arena.release(stored);
            }
            outcome.stored += 1;
        }
        partition.compact_if_due(0)?;
        Ok(outcome)
    }
}

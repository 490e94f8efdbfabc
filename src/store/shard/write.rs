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
        // Room for every record first: an arena that cannot grow part-way would leave part of
        // the batch written (and journaled whole, a restart would write the rest).
        partition.arena.reserve(incoming)?;
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
        // The batch is written: a compaction that finds no memory now leaves the arena as it
        // was (it is tried again at the next write), and does not make the write an error.
        if let Err(error) = partition.compact_if_due(0) {
            tracing::warn!(%error, "could not compact a shard's arena after a write; trying again at the next");
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::registry::value::Value;
    use crate::registry::{build_registry, WorkspaceFiles};
    use crate::store::row::encode_row;
    use crate::store::views::StoreViews;

    /// A batch whose records the arena cannot grow for writes none of them (readers see all
    /// of a batch or none of it, as a replay of its journal record would), and writes all of
    /// them once it can.
    #[test]
    fn a_batch_the_arena_cannot_grow_for_writes_nothing() {
        let text = r#"
[[entity]]
name = "user"
join_keys = [{ name = "user_id", type = "string" }]

[[batch_feature_view]]
name = "profile"
entities = ["user"]
timestamp_field = "ts"
features = [{ name = "city", type = "string" }]
"#;
        let files = WorkspaceFiles::new("ws".into(), true, [("repo.toml".into(), text.into())]);
        let registry = build_registry(&[files], None).unwrap();
        let view = registry.view_by_name("ws", "profile").unwrap();
        let (mut shard, partition) =
            ShardActor::new(4096, Arc::new(StoreViews::of(&registry))).unwrap();
        let rows: Vec<RowWrite> = (0..100)
            .map(|i| {
                let mut payload = Vec::new();
                encode_row(&[Value::String(format!("city number {i}"))], &mut payload);
                RowWrite {
                    view: view.id,
                    layout: view.layout,
                    key: format!("user-{i}").into_bytes(),
                    event_time: 1,
                    payload,
                }
            })
            .collect();
        let fails = Arc::new(AtomicBool::new(true));
        partition
            .write()
            .arena
            .inject_growth_faults(Arc::clone(&fails));
        assert!(shard.apply(rows.clone()).is_err());
        assert_eq!(partition.read().index.len(), 0, "no row of the batch");
        fails.store(false, Ordering::Relaxed);
        assert_eq!(shard.apply(rows).unwrap().stored, 100);
        assert_eq!(partition.read().index.len(), 100);
    }
}

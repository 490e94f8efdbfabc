//! `ReshapePartition` and `RetireLayouts`: an apply changed the repository. In one write-locked
//! step the shard copies the data of every view whose layout changed to its new layout, laid out
//! again where the form changed but keeps its data (columns or aggregates matched by name) and
//! left out where it does not (a cleared view starts empty), and takes the new views table; the
//! old layouts stay readable for requests begun before the apply. Once those are done,
//! `RetireLayouts` drops the old layouts' rows and tiles and a removed view's, and gives their
//! memory back at once (the arena compacted, the maps shrunk).
//!
//! `RevertReshape` undoes a reshape not yet retired (an apply whose snapshot failed, or whose
//! reshape failed in another shard, must leave nothing of itself served): the old table comes
//! back, the rows and tiles the reshape made go, and the old layouts' rows, released at the
//! reshape, are written again as live records.
//!
//! Both change nothing unless they succeed: the records they will write are gathered first (a
//! row that does not fit its new form refuses the reshape there) and the arena's room for all
//! of them reserved (`Arena::reserve`: growth may find no memory) before the first change. The
//! reshape reserves its undo's room too and holds it apart (`Arena::hold`) until it is retired
//! or undone: writes made in between grow the arena for their records (or fail for want of
//! memory) and never take that room, so the undo needs no memory and cannot fail for it (an
//! undo that failed would leave this shard on another table than the others).
//!
//! The old layouts' arena records are flagged superseded at the reshape, as an overwrite does:
//! a snapshot taken after the apply holds the current layouts' records only, and an export
//! whose cut came before the reshape still counts them (its loan reads them as they were). Until
//! `RetireLayouts` the index keeps pointing at them for the older requests, so compaction
//! waits for it.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use actix::{Handler, Message};
use tokio::sync::oneshot;

use super::{tile_key, view_of_key, Partition, ShardActor, ViewUsages, KEY_PREFIX};
use crate::persist::format::RowRecordV2;
use crate::registry::{Layout, ViewId};
use crate::store::key::OwnedKey;
use crate::store::layouts::remap_row;
use crate::store::tiles::TileSet;
use crate::store::views::StoreViews;
use crate::time::Micros;

/// What an apply does to one view's stored data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewReshape {
    /// The view is gone, or its stored form cannot be carried over: drop its rows and tiles.
    Clear,
    /// A row view: new column `i` holds old column `map[i]` (null when `None`).
    Columns(Vec<Option<usize>>),
    /// An aggregating view at the same interval: new aggregate `i`'s partials are old aggregate
    /// `map[i]`'s (empty when `None`).
    Aggregates(Vec<Option<usize>>),
}

pub struct ReshapePartition {
    pub views: Arc<StoreViews>,
    pub reshapes: Arc<Vec<(ViewId, ViewReshape)>>,
    pub done: oneshot::Sender<io::Result<()>>,
}

impl Message for ReshapePartition {
    type Result = ();
}

impl Handler<ReshapePartition> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: ReshapePartition, _: &mut Self::Context) {
        let reshaped = self.partition.write().reshape(msg.views, &msg.reshapes);
        let _ = msg.done.send(reshaped);
    }
}

/// Drop what only the retired layouts held.
pub struct RetireLayouts;

impl Message for RetireLayouts {
    type Result = ();
}

impl Handler<RetireLayouts> for ShardActor {
    type Result = ();

    fn handle(&mut self, _: RetireLayouts, _: &mut Self::Context) {
        self.partition.write().retire_layouts();
    }
}

/// Undo the last reshape (before `RetireLayouts`): back to the views table it replaced.
pub struct RevertReshape {
    /// The table the reshape taken back moved to: a shard that holds another (its own reshape
    /// failed, and its data is as it was) has nothing to take back.
    pub reshaped: Arc<StoreViews>,
    pub done: oneshot::Sender<io::Result<()>>,
}

impl Message for RevertReshape {
    type Result = ();
}

impl Handler<RevertReshape> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: RevertReshape, _: &mut Self::Context) {
        let reverted = self.partition.write().revert_reshape(&msg.reshaped);
        let _ = msg.done.send(reverted);
    }
}

/// A record a reshape or its undo writes again, under `layout`: copied out of the arena, which
/// is appended to meanwhile.
struct RecordCopy {
    view: ViewId,
    layout: Layout,
    key: Vec<u8>,
    event_time: Micros,
    payload: Vec<u8>,
}

impl RecordCopy {
    fn record(&self) -> RowRecordV2<'_> {
        RowRecordV2 {
            view: self.view,
            flags: 0,
            event_time: self.event_time,
            payload: &self.payload,
            key: &self.key,
        }
    }
}

/// The arena bytes `copies` take: their room is reserved before a reshape or its undo changes
/// anything (growth is what can fail, and `write_copies` then does not).
fn bytes_of(copies: &[RecordCopy]) -> usize {
    copies.iter().map(|copy| copy.record().len()).sum()
}

impl Partition {
    /// Appends `copies` (their room reserved) and points their keys at them.
    fn write_copies(&mut self, copies: Vec<RecordCopy>) -> io::Result<()> {
        for copy in copies {
            let record = self.arena.append(&copy.record())?;
            self.index
                .insert(&self.arena, copy.view, copy.layout, &copy.key, record);
        }
        Ok(())
    }

    /// Copies the data of every view whose layout `views` changes to its new layout and takes
    /// `views`, keeping the old table as `retiring` (see the module doc). Fails (a stored row
    /// that does not fit its new form, or no memory for the copies) before it changes anything.
    fn reshape(
        &mut self,
        views: Arc<StoreViews>,
        reshapes: &[(ViewId, ViewReshape)],
    ) -> io::Result<()> {
        let by_view: HashMap<ViewId, &ViewReshape> = reshapes
            .iter()
            .map(|(view, reshape)| (*view, reshape))
            .collect();
        // (view, layout) -> the new layout, when the view's data moves to it. Only current
        // data moves: a layout still retiring from an earlier apply is already dropped.
        let moves_to = |view: ViewId, layout: Layout| {
            if !self.is_current(view, layout) {
                return None;
            }
            let new_layout = views.layout(view)?;
            let cleared = by_view.get(&view) == Some(&&ViewReshape::Clear);
            (new_layout != layout && !cleared).then(|| (new_layout, by_view.get(&view)))
        };
        let mut rows = Vec::new();
        for (layout, record) in self.index.iter() {
            let record = self.arena.record_at(record);
            let Some((new_layout, reshape)) = moves_to(record.view, layout) else {
                continue;
            };
            let payload = match reshape {
                Some(ViewReshape::Columns(map)) => remap_row(record.payload, map)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
                _ => record.payload.to_vec(),
            };
            rows.push(RecordCopy {
                view: record.view,
                layout: new_layout,
                key: record.key.to_vec(),
                event_time: record.event_time,
                payload,
            });
        }
        let mut tiles: Vec<(OwnedKey, TileSet)> = Vec::new();
        for (key, tile_set) in &self.tiles {
            let (view, layout) = view_of_key(key);
            let Some((new_layout, reshape)) = moves_to(view, layout) else {
                continue;
            };
            let Some(spec) = views.spec(view) else {
                continue;
            };
            let mut tile_set = tile_set.clone();
            match reshape {
                Some(ViewReshape::Aggregates(map)) => tile_set.remap(map, spec),
                _ => tile_set.rebuild_rollups(spec),
            }
            tiles.push((tile_key(view, new_layout, &key[KEY_PREFIX..]), tile_set));
        }
        // Room for the undo's copies too (the records this reshape supersedes), held apart
        // until the apply settles: an apply taken back because memory ran out must not need
        // more of it to go back, nor must one whose snapshot failed after writes went on.
        let superseded: usize = (self.index.iter())
            .map(|(layout, start)| (layout, self.arena.record_at(start)))
            .filter(|(layout, record)| {
                self.is_current(record.view, *layout) && views.layout(record.view) != Some(*layout)
            })
            .map(|(_, record)| record.len())
            .sum();
        self.arena.reserve(bytes_of(&rows) + superseded)?;
        self.write_copies(rows)?;
        self.arena.hold(superseded);
        for (layout, start) in self.index.iter() {
            let view = self.arena.record_at(start).view;
            if views.layout(view) != Some(layout) {
                self.arena.release(self.arena.stored_at(start));
            }
        }
        for (key, tile_set) in tiles {
            self.tiles.insert(key, tile_set);
        }
        self.retiring = Some(std::mem::replace(&mut self.views, views));
        self.view_usage = ViewUsages::count(self);
        Ok(())
    }

    /// Takes back the views table the last reshape replaced (to `reshaped`): the keys of the
    /// layouts it made are dropped (their records released), and the keys of the layouts it
    /// replaced point at fresh copies of their records (released at the reshape, and a loan taken
    /// since reads them as superseded: they are not made live again in place). Nothing to do
    /// without that reshape still retiring. The copies fit the room the reshape held for them;
    /// were it short and the arena could not grow, this fails before it changes anything.
    fn revert_reshape(&mut self, reshaped: &Arc<StoreViews>) -> io::Result<()> {
        let before = match &self.retiring {
            Some(before) if Arc::ptr_eq(&self.views, reshaped) => Arc::clone(before),
            _ => return Ok(()),
        };
        let after = Arc::clone(&self.views);
        let made = |view: ViewId, layout: Layout| {
            after.layout(view) == Some(layout) && before.layout(view) != Some(layout)
        };
        let mut dropped = Vec::new();
        let mut revived = Vec::new();
        for (layout, start) in self.index.iter() {
            let record = self.arena.record_at(start);
            if made(record.view, layout) {
                dropped.push(start);
            } else if before.layout(record.view) == Some(layout)
                && after.layout(record.view) != Some(layout)
            {
                revived.push(RecordCopy {
                    view: record.view,
                    layout,
                    key: record.key.to_vec(),
                    event_time: record.event_time,
                    payload: record.payload.to_vec(),
                });
            }
        }
        // In the room the reshape held for them.
        self.arena.reserve_held(bytes_of(&revived))?;
        self.views = Arc::clone(&before);
        self.retiring = None;
        for start in dropped {
            self.arena.release(self.arena.stored_at(start));
        }
        let arena = &self.arena;
        self.index
            .retain(|layout, start| !made(arena.record_at(start).view, layout));
        self.write_copies(revived)?;
        self.tiles.retain(|key, _| {
            let (view, layout) = view_of_key(key);
            !made(view, layout)
        });
        self.view_usage = ViewUsages::count(self);
        Ok(())
    }

    /// Drops the retired layouts' keys (their records were released at the reshape) and
    /// compacts the arena. The apply is made by then: a compaction that finds no memory only
    /// leaves the arena as it was (logged), to be compacted by a later write's check.
    fn retire_layouts(&mut self) {
        let views = Arc::clone(&self.views);
        let is_current = |view: ViewId, layout: Layout| views.layout(view) == Some(layout);
        let rows_before = self.index.len();
        let arena = &self.arena;
        self.index
            .retain(|layout, start| is_current(arena.record_at(start).view, layout));
        let released = self.index.len() < rows_before;
        let tiles_before = self.tiles.len();
        self.tiles.retain(|key, _| {
            let (view, layout) = view_of_key(key);
            is_current(view, layout)
        });
        // Retired before the compaction is tried: a write's compaction check waits while a
        // table is retiring, so a failure here must not leave it so. No undo comes now: its
        // room is the writes' again.
        self.retiring = None;
        self.arena.hold(0);
        if released || self.tiles.len() < tiles_before {
            self.index.shrink_to_fit();
            self.tiles.shrink_to_fit();
        }
        if released {
            if let Err(error) = self.arena.compact(self.index.records_mut()) {
                tracing::warn!(%error, "could not compact a shard's arena after an apply; a later write tries again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::persist::format::ROW_RECORD_HEADER_LEN;
    use crate::registry::value::Value;
    use crate::registry::{build_registry, Registry, WorkspaceFiles};
    use crate::store::plan_reshapes;
    use crate::store::row::{decode_row, encode_row};
    use crate::store::shard::RowWrite;

    /// `profile` (a row view) and `spend` (an aggregating one); `more` adds a first column to
    /// the one and a second aggregate to the other, so that both are copied to new layouts.
    fn registry(more: bool, previous: Option<&Registry>) -> Registry {
        let (column, aggregate) = match more {
            true => (
                r#"{ name = "score", type = "int64" }, "#,
                r#", { column = "amt", function = "count", window = "1d" }"#,
            ),
            false => ("", ""),
        };
        let text = format!(
            r#"
[[entity]]
name = "user"
join_keys = [{{ name = "user_id", type = "string" }}]

[[push_source]]
name = "events"
schema = [{{ name = "user_id", type = "string" }}, {{ name = "amt", type = "float64" }}, {{ name = "ts", type = "timestamp" }}]

[[batch_feature_view]]
name = "profile"
entities = ["user"]
timestamp_field = "ts"
features = [{column}{{ name = "age", type = "int64" }}, {{ name = "city", type = "string" }}]

[[stream_feature_view]]
name = "spend"
entities = ["user"]
source = "events"
timestamp_field = "ts"
aggregation_interval = "1h"
aggregations = [{{ column = "amt", function = "sum", window = "1d" }}{aggregate}]
"#
        );
        let files = WorkspaceFiles::new("ws".into(), true, [("repo.toml".into(), text)]);
        build_registry(&[files], previous).unwrap()
    }

    /// Everything a reshape or its undo changes, to compare: the tables held, each key's
    /// record, the tiles, the arena's bytes and counts, the console's counts.
    #[derive(Debug, PartialEq)]
    struct State {
        views: *const StoreViews,
        retiring: Option<*const StoreViews>,
        keys: Vec<(Layout, usize)>,
        tiles: Vec<(Vec<u8>, TileSet)>,
        arena: Vec<u8>,
        arena_usage: (usize, usize, usize),
        view_usage: ViewUsages,
    }

    fn state(partition: &Partition) -> State {
        let mut keys: Vec<_> = partition.index.iter().collect();
        keys.sort_unstable();
        let mut tiles: Vec<_> = (partition.tiles.iter())
            .map(|(key, tiles)| (key.as_bytes().to_vec(), tiles.clone()))
            .collect();
        tiles.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        State {
            views: Arc::as_ptr(&partition.views),
            retiring: partition.retiring.as_ref().map(Arc::as_ptr),
            keys,
            tiles,
            arena: partition.arena.records().to_vec(),
            arena_usage: partition.arena.usage(),
            view_usage: partition.view_usage.clone(),
        }
    }

    /// A write of `values` to `view`'s `layout` under `key`.
    fn row_write(view: ViewId, layout: Layout, key: String, values: &[Value]) -> RowWrite {
        let mut payload = Vec::new();
        encode_row(values, &mut payload);
        RowWrite {
            view,
            layout,
            key: key.into_bytes(),
            event_time: 1,
            payload,
        }
    }

    /// The rows `partition` holds under `view`'s `layout`, by key.
    fn rows(partition: &Partition, view: ViewId, layout: Layout) -> BTreeMap<Vec<u8>, Vec<Value>> {
        (partition.index.iter())
            .filter(|(at_layout, _)| *at_layout == layout)
            .map(|(_, start)| partition.arena.record_at(start))
            .filter(|record| record.view == view)
            .map(|record| (record.key.to_vec(), decode_row(record.payload).unwrap()))
            .collect()
    }

    /// A reshape whose copies find no memory (the arena cannot grow, part-way through them)
    /// leaves the partition exactly as it was, and the same reshape works once it can grow; its
    /// undo then needs no growth (the reshape reserved the room for its copies).
    #[test]
    fn a_reshape_or_undo_that_cannot_grow_the_arena_changes_nothing() {
        const KEYS: usize = 60;
        let before = registry(false, None);
        let after = registry(true, Some(&before));
        let [profile, spend] = ["profile", "spend"].map(|name| {
            let (old, new) = (
                before.view_by_name("ws", name).unwrap(),
                after.view_by_name("ws", name).unwrap(),
            );
            assert_ne!(old.layout, new.layout, "{name} moves");
            (old.id, old.layout, new.layout)
        });
        let reshapes = plan_reshapes(&before, &after);
        let views_before = Arc::new(StoreViews::of(&before));
        let views_after = Arc::new(views_before.reshaped(&after, |_| false));
        let (mut shard, partition) = ShardActor::new(4096, Arc::clone(&views_before)).unwrap();
        let row = |view: (ViewId, Layout, Layout), key: usize, values: &[Value]| {
            row_write(view.0, view.1, format!("user-{key}"), values)
        };
        let city = Value::String("Oslo".into());
        let writes = (0..KEYS).flat_map(|key| {
            [
                row(profile, key, &[Value::Int64(key as i64), city.clone()]),
                row(spend, key, &[Value::Float64(2.5)]),
            ]
        });
        shard.apply(writes.collect()).unwrap();
        let fails = Arc::new(AtomicBool::new(true));
        let mut partition = partition.write();
        partition.arena.inject_growth_faults(Arc::clone(&fails));
        let (mapped, used, _) = partition.arena.usage();
        assert!(
            used < mapped && used * 2 > mapped,
            "the copies fit part-way: {used} of {mapped}"
        );

        let as_before = state(&partition);
        let refused = partition.reshape(Arc::clone(&views_after), &reshapes);
        assert_eq!(refused.unwrap_err().raw_os_error(), Some(12));
        assert!(
            state(&partition) == as_before,
            "a failed reshape changed the partition"
        );
        // Its undo (from another shard's failure) finds nothing to take back.
        partition.revert_reshape(&views_after).unwrap();
        assert!(
            state(&partition) == as_before,
            "an undo of nothing changed the partition"
        );

        fails.store(false, Ordering::Relaxed);
        partition
            .reshape(Arc::clone(&views_after), &reshapes)
            .unwrap();
        let moved: BTreeMap<_, _> = (0..KEYS)
            .map(|key| {
                let values = vec![Value::Null, Value::Int64(key as i64), city.clone()];
                (format!("user-{key}").into_bytes(), values)
            })
            .collect();
        assert_eq!(rows(&partition, profile.0, profile.2), moved);
        let new_tiles = (partition.tiles.keys())
            .filter(|key| view_of_key(key) == (spend.0, spend.2))
            .count();
        assert_eq!(new_tiles, KEYS);
        assert!(Arc::ptr_eq(&partition.views, &views_after));

        // The undo's copies of the old rows fit the room the reshape reserved for them: with
        // growth failing (the memory that failed another shard's reshape), it goes through.
        fails.store(true, Ordering::Relaxed);
        let old_rows = rows(&partition, profile.0, profile.1);
        partition.revert_reshape(&views_after).unwrap();
        assert!(Arc::ptr_eq(&partition.views, &views_before));
        assert!(partition.retiring.is_none());
        assert_eq!(rows(&partition, profile.0, profile.1), old_rows);
        assert!(rows(&partition, profile.0, profile.2).is_empty());
        assert_eq!(partition.view_usage, as_before.view_usage);
        assert!(
            state(&partition).tiles == as_before.tiles,
            "the tiles as they were"
        );

        // Made again and retired while no memory is to be had: the old layouts are dropped
        // all the same and the table no longer retires (the compaction, which could not be
        // made, is left to a later write's check; made now, it finds the arena intact).
        fails.store(false, Ordering::Relaxed);
        partition
            .reshape(Arc::clone(&views_after), &reshapes)
            .unwrap();
        fails.store(true, Ordering::Relaxed);
        let (_, used_before, _) = partition.arena.usage();
        partition.retire_layouts();
        assert!(partition.retiring.is_none());
        assert!(rows(&partition, profile.0, profile.1).is_empty());
        assert_eq!(rows(&partition, profile.0, profile.2), moved);
        assert_eq!(partition.arena.usage().1, used_before, "not compacted yet");
        fails.store(false, Ordering::Relaxed);
        let partition = &mut *partition;
        partition
            .arena
            .compact(partition.index.records_mut())
            .unwrap();
        assert!(partition.arena.usage().1 < used_before, "compacted");
        assert_eq!(rows(partition, profile.0, profile.2), moved);
    }

    /// Once the apply settles, retired or taken back, the room its reshape held for the undo is
    /// the writes' again: with the arena unable to grow, writes fill the mapping to its end
    /// (held for ever, it would leave that room unused and grow the arena needlessly).
    #[test]
    fn the_room_held_for_an_undo_is_given_back_when_the_apply_settles() {
        const KEYS: usize = 60;
        let before = registry(false, None);
        let after = registry(true, Some(&before));
        let (old, new) = (
            before.view_by_name("ws", "profile").unwrap(),
            after.view_by_name("ws", "profile").unwrap(),
        );
        let reshapes = plan_reshapes(&before, &after);
        let views_before = Arc::new(StoreViews::of(&before));
        let views_after = Arc::new(views_before.reshaped(&after, |_| false));
        let city = Value::String("Oslo".into());
        for undone in [false, true] {
            let (mut shard, partition) = ShardActor::new(4096, Arc::clone(&views_before)).unwrap();
            let writes = (0..KEYS).map(|key| {
                let values = [Value::Int64(key as i64), city.clone()];
                row_write(old.id, old.layout, format!("user-{key}"), &values)
            });
            shard.apply(writes.collect()).unwrap();
            let mut settled = partition.write();
            settled
                .reshape(Arc::clone(&views_after), &reshapes)
                .unwrap();
            let (view, layout) = match undone {
                true => {
                    settled.revert_reshape(&views_after).unwrap();
                    (old.id, old.layout)
                }
                false => {
                    settled.retire_layouts();
                    (new.id, new.layout)
                }
            };
            settled
                .arena
                .inject_growth_faults(Arc::new(AtomicBool::new(true)));
            drop(settled);
            let filler = |i: usize| {
                let values = [Value::Null, Value::Int64(0), city.clone()];
                row_write(view, layout, format!("filler-{i:05}"), &values)
            };
            let record_len = ROW_RECORD_HEADER_LEN + filler(0).key.len() + filler(0).payload.len();
            let refused = (0..100_000)
                .find_map(|i| shard.apply(vec![filler(i)]).err())
                .expect("the arena fills");
            assert_eq!(refused.raw_os_error(), Some(12), "{refused}");
            let (mapped, used, _) = partition.read().arena.usage();
            assert!(
                mapped - used < record_len,
                "undone {undone}: writes stopped with {} of {mapped} bytes unused",
                mapped - used
            );
        }
    }
}

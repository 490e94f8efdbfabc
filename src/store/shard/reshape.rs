//! `ReshapePartition` and `RetireLayouts`: an apply changed the repository. In one write-locked
//! step the shard copies the data of every view whose layout changed to its new layout, laid out
//! again where the form changed but keeps its data (columns or aggregates matched by name) and
//! left out where it does not (a cleared view starts empty), and takes the new views table; the
//! old layouts stay readable for requests begun before the apply. Once those are done,
//! `RetireLayouts` drops the old layouts' rows and tiles and a removed view's, and gives their
//! memory back at once (the arena compacted, the maps shrunk).
//!
//! `RevertReshape` undoes a reshape not yet retired (an apply whose snapshot failed must leave
//! nothing of itself served): the old table comes back, the rows and tiles the reshape made go,
//! and the old layouts' rows, released at the reshape, are written again as live records.
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
    type Result = io::Result<()>;
}

impl Handler<RetireLayouts> for ShardActor {
    type Result = io::Result<()>;

    fn handle(&mut self, _: RetireLayouts, _: &mut Self::Context) -> io::Result<()> {
        self.partition.write().retire_layouts()
    }
}

/// Undo the last reshape (before `RetireLayouts`): back to the views table it replaced.
pub struct RevertReshape {
    pub done: oneshot::Sender<io::Result<()>>,
}

impl Message for RevertReshape {
    type Result = ();
}

impl Handler<RevertReshape> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: RevertReshape, _: &mut Self::Context) {
        let reverted = self.partition.write().revert_reshape();
        let _ = msg.done.send(reverted);
    }
}

impl Partition {
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
            rows.push((
                record.view,
                new_layout,
                record.key.to_vec(),
                record.event_time,
                payload,
            ));
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
        for (view, layout, key, event_time, payload) in rows {
            let record = self.arena.append(&RowRecordV2 {
                view,
                flags: 0,
                event_time,
                payload: &payload,
                key: &key,
            })?;
            self.index.insert(&self.arena, view, layout, &key, record);
        }
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

    /// Takes back the views table the last reshape replaced: the keys of the layouts it made
    /// are dropped (their records released), and the keys of the layouts it replaced point at
    /// fresh copies of their records (released at the reshape, and a loan taken since reads them
    /// as superseded: they are not made live again in place). Nothing to do without a reshape
    /// still retiring.
    fn revert_reshape(&mut self) -> io::Result<()> {
        let Some(before) = self.retiring.take() else {
            return Ok(());
        };
        let after = std::mem::replace(&mut self.views, before);
        let made = |view: ViewId, layout: Layout| {
            after.layout(view) == Some(layout) && self.views.layout(view) != Some(layout)
        };
        let mut dropped = Vec::new();
        let mut revived = Vec::new();
        for (layout, start) in self.index.iter() {
            let record = self.arena.record_at(start);
            if made(record.view, layout) {
                dropped.push(start);
            } else if self.is_current(record.view, layout)
                && after.layout(record.view) != Some(layout)
            {
                revived.push((
                    record.view,
                    layout,
                    record.key.to_vec(),
                    record.event_time,
                    record.payload.to_vec(),
                ));
            }
        }
        for start in dropped {
            self.arena.release(self.arena.stored_at(start));
        }
        let arena = &self.arena;
        self.index
            .retain(|layout, start| !made(arena.record_at(start).view, layout));
        for (view, layout, key, event_time, payload) in revived {
            let record = self.arena.append(&RowRecordV2 {
                view,
                flags: 0,
                event_time,
                payload: &payload,
                key: &key,
            })?;
            self.index.insert(&self.arena, view, layout, &key, record);
        }
        self.tiles.retain(|key, _| {
            let (view, layout) = view_of_key(key);
            !made(view, layout)
        });
        self.view_usage = ViewUsages::count(self);
        Ok(())
    }

    /// Drops the retired layouts' keys (their records were released at the reshape).
    fn retire_layouts(&mut self) -> io::Result<()> {
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
        if released {
            self.arena.compact(self.index.records_mut())?;
        }
        if released || self.tiles.len() < tiles_before {
            self.index.shrink_to_fit();
            self.tiles.shrink_to_fit();
        }
        self.retiring = None;
        Ok(())
    }
}

//! `ReshapePartition` and `RetireLayouts`: an apply changed the repository. In one write-locked
//! step the shard copies the data of every view whose layout changed to its new layout, laid out
//! again where the form changed but keeps its data (columns or aggregates matched by name) and
//! left out where it does not (a cleared view starts empty), and takes the new views table; the
//! old layouts stay readable for requests begun before the apply. Once those are done,
//! `RetireLayouts` drops the old layouts' rows and tiles and a removed view's, and gives their
//! memory back at once (the arena compacted, the maps shrunk).
//!
//! The old layouts' arena records are flagged superseded at the reshape, as an overwrite does:
//! a snapshot taken after the apply holds the current layouts' records only, and an export
//! running across the reshape still counts them (they were live at its cut). Until
//! `RetireLayouts` the index keeps pointing at them for the older requests, so compaction
//! waits for it.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use actix::{Handler, Message};
use tokio::sync::oneshot;

use super::{index_key, view_of_key, Partition, ShardActor, Slot, ViewUsages, KEY_PREFIX};
use crate::persist::format::RowRecordV2;
use crate::registry::value::Value;
use crate::registry::ViewId;
use crate::store::arena::Arena;
use crate::store::row::{decode_row, encode_row};
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
        let mut partition = self.partition.write();
        let export = &mut self.export;
        let reshaped = partition.reshape(msg.views, &msg.reshapes, |start| {
            if let Some(export) = export {
                export.superseded(start);
            }
        });
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
        // Compaction would move records a running export has yet to pass; a later write
        // compacts instead.
        let may_compact = self.export.is_none();
        self.partition.write().retire_layouts(may_compact)
    }
}

impl Partition {
    /// `released` hears the start of every record the reshape flags superseded.
    fn reshape(
        &mut self,
        views: Arc<StoreViews>,
        reshapes: &[(ViewId, ViewReshape)],
        mut released: impl FnMut(usize),
    ) -> io::Result<()> {
        let by_view: HashMap<ViewId, &ViewReshape> = reshapes
            .iter()
            .map(|(view, reshape)| (*view, reshape))
            .collect();
        // (view, layout) -> the new layout, when the view's data moves to it. Only current
        // data moves: a layout still retiring from an earlier apply is already dropped.
        let moves_to = |key: &[u8]| {
            if !self.is_current(key) {
                return None;
            }
            let (view, layout) = view_of_key(key);
            let new_layout = views.layout(view)?;
            let cleared = by_view.get(&view) == Some(&&ViewReshape::Clear);
            (new_layout != layout && !cleared).then(|| {
                (
                    index_key(view, new_layout, &key[KEY_PREFIX..]),
                    by_view.get(&view),
                )
            })
        };
        let mut rows = Vec::new();
        for (key, slot) in &self.index {
            let Some((new_key, reshape)) = moves_to(key) else {
                continue;
            };
            let payload = self.arena.get(slot.row);
            let payload = match reshape {
                Some(ViewReshape::Columns(map)) => {
                    let values = decode_row(payload)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    let moved: Vec<Value> = map
                        .iter()
                        .map(|from| {
                            from.and_then(|j| values.get(j).cloned())
                                .unwrap_or_default()
                        })
                        .collect();
                    let mut payload = Vec::new();
                    encode_row(&moved, &mut payload);
                    payload
                }
                _ => payload.to_vec(),
            };
            rows.push((new_key, view_of_key(key).0, slot.event_time, payload));
        }
        let mut tiles: Vec<(Vec<u8>, TileSet)> = Vec::new();
        for (key, tile_set) in &self.tiles {
            let Some((new_key, reshape)) = moves_to(key) else {
                continue;
            };
            let Some(spec) = views.spec(view_of_key(key).0) else {
                continue;
            };
            let mut tile_set = tile_set.clone();
            match reshape {
                Some(ViewReshape::Aggregates(map)) => tile_set.remap(map, spec),
                _ => tile_set.rebuild_rollups(spec),
            }
            tiles.push((new_key, tile_set));
        }
        for (key, view, event_time, payload) in rows {
            let row = self.arena.append(&RowRecordV2 {
                view,
                flags: 0,
                event_time,
                payload: &payload,
                key: &key[KEY_PREFIX..],
            })?;
            self.index
                .insert(key.into_boxed_slice(), Slot { row, event_time });
        }
        for (key, slot) in &self.index {
            let (view, layout) = view_of_key(key);
            let start = Arena::record_start(slot.row);
            if views.layout(view) != Some(layout) && self.arena.release(start) {
                released(start);
            }
        }
        for (key, tile_set) in tiles {
            self.tiles.insert(key.into_boxed_slice(), tile_set);
        }
        self.retiring = Some(std::mem::replace(&mut self.views, views));
        self.view_usage = ViewUsages::count(self);
        Ok(())
    }

    /// Drops the retired layouts' keys (their records were released at the reshape).
    fn retire_layouts(&mut self, may_compact: bool) -> io::Result<()> {
        let views = Arc::clone(&self.views);
        let is_current = |key: &[u8]| {
            let (view, layout) = view_of_key(key);
            views.layout(view) == Some(layout)
        };
        let rows_before = self.index.len();
        self.index.retain(|key, _| is_current(key));
        let released = self.index.len() < rows_before;
        let tiles_before = self.tiles.len();
        self.tiles.retain(|key, _| is_current(key));
        if released && may_compact {
            self.arena
                .compact(self.index.values_mut().map(|slot| &mut slot.row))?;
        }
        if released || self.tiles.len() < tiles_before {
            self.index.shrink_to_fit();
            self.tiles.shrink_to_fit();
        }
        self.retiring = None;
        Ok(())
    }
}

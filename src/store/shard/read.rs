//! `ReadRows`: fetch the current rows of many keys in one message. For an aggregating view the
//! "row" is computed here: each aggregate over its window, ending at the leading edge.

use actix::{Handler, Message};

use super::{index_key, ShardActor};
use crate::registry::aggregation::{AggregationSpec, LeadingEdge};
use crate::registry::value::Value;
use crate::registry::ViewId;
use crate::store::row::encode_row;
use crate::store::tiles::tile_start;
use crate::time::Micros;

#[derive(Debug, Clone)]
pub struct Lookup {
    pub view: ViewId,
    pub key: Vec<u8>,
}

/// A row as read: its event time and encoded values (copied out of the arena). For an
/// aggregating view, `event_time` is the window's end (the effective time) and the values are
/// the aggregates (null for an empty window).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub event_time: Micros,
    pub payload: Vec<u8>,
}

/// When a read happens, which decides where aggregation windows end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadContext {
    pub now: Micros,
    /// Overrides each view's own leading edge (Tecton's `requestOptions.aggregationLeadingEdge`).
    pub leading_edge: Option<LeadingEdge>,
}

pub struct ReadRows {
    pub lookups: Vec<Lookup>,
    pub context: ReadContext,
}

impl Message for ReadRows {
    type Result = Vec<Option<StoredRow>>;
}

impl ShardActor {
    /// The end of the aggregation windows of `view` for this read: the last complete tile
    /// boundary before the request time, or before the latest event seen.
    fn window_end(&self, view: ViewId, spec: &AggregationSpec, context: ReadContext) -> Micros {
        let edge_time = match context.leading_edge.unwrap_or(spec.leading_edge) {
            LeadingEdge::WallClockTime => context.now,
            LeadingEdge::LatestEventTime => {
                self.watermarks.get(&view).copied().unwrap_or(context.now)
            }
        };
        tile_start(edge_time, spec.interval)
    }
}

impl Handler<ReadRows> for ShardActor {
    type Result = Vec<Option<StoredRow>>;

    fn handle(&mut self, msg: ReadRows, _: &mut Self::Context) -> Self::Result {
        let mut key = Vec::new();
        msg.lookups
            .iter()
            .map(|lookup| {
                key.clear();
                key.extend_from_slice(&index_key(lookup.view, &lookup.key));
                if let Some(spec) = self.spec(lookup.view) {
                    let tiles = self.tiles.get(key.as_slice())?;
                    let end = self.window_end(lookup.view, spec, msg.context);
                    let values: Vec<Value> = tiles
                        .values(spec, end)
                        .into_iter()
                        .map(Option::unwrap_or_default)
                        .collect();
                    let mut payload = Vec::new();
                    encode_row(&values, &mut payload);
                    return Some(StoredRow {
                        event_time: end,
                        payload,
                    });
                }
                self.index.get(key.as_slice()).map(|slot| StoredRow {
                    event_time: slot.event_time,
                    payload: self.arena.get(slot.row).to_vec(),
                })
            })
            .collect()
    }
}

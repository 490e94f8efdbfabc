//! Reading a partition: the current row of a key, straight from the index and arena, on the
//! request's own thread. For an aggregating view the "row" is its aggregates over windows ending
//! at the leading edge: the key's memo of them, or merged from its tiles.

use super::{write_tile_key, Partition};
use crate::registry::aggregation::{AggregationSpec, LeadingEdge};
use crate::registry::{Layout, ViewId};
use crate::store::key::{key_hash, HashedKey, OwnedKey};
use crate::store::tiles::{tile_start, AggregateMask, MemoReads};
use crate::store::watermark::Watermarks;
use crate::time::Micros;

/// One key of one view to read. Its fields are private so that its hash is always its key's:
/// a lookup carrying another key's hash would be read on the wrong shard, a silent miss.
#[derive(Debug, Clone)]
pub struct Lookup {
    view: ViewId,
    /// The layout the reader's registry gives the view: a partition that holds another (an
    /// apply reshaped it since the request began) answers nothing rather than misread it.
    layout: Layout,
    key: OwnedKey,
    /// `key_hash(view, key)`: what places the key on a shard, which serving hashed already
    /// to find a batch's duplicate lookups (hashing it again cost ~40 instructions a lookup).
    hash: u64,
    /// For an aggregating view, the aggregates to compute (the others read as null); a plain
    /// row is read whole.
    aggregates: AggregateMask,
}

impl Lookup {
    /// A lookup of `key` of `view`, its hash computed.
    pub fn new(view: ViewId, layout: Layout, key: Vec<u8>, aggregates: AggregateMask) -> Lookup {
        Lookup {
            view,
            layout,
            hash: key_hash(view, &key),
            key: OwnedKey::Heap(key),
            aggregates,
        }
    }

    /// A lookup of a key hashed already (serving hashes each key to find duplicates first).
    pub fn of_hashed(key: HashedKey<'_>, layout: Layout, aggregates: AggregateMask) -> Lookup {
        Lookup {
            view: key.view(),
            layout,
            key: OwnedKey::copy_of(key.key()),
            hash: key.hash(),
            aggregates,
        }
    }

    pub fn view(&self) -> ViewId {
        self.view
    }

    pub fn key(&self) -> &[u8] {
        self.key.as_bytes()
    }

    /// The key's [`key_hash`], which places it on a shard.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    pub fn aggregates(&self) -> AggregateMask {
        self.aggregates
    }

    /// Asks for `more` aggregates too (another feature of the request reads the same key).
    pub fn add_aggregates(&mut self, more: AggregateMask) {
        self.aggregates = self.aggregates.union(more);
    }
}

/// A row, owned: its event time and encoded values, as a forwarded read carries it (a local
/// read answers [`ReadRow`](crate::store::ReadRow)s, borrowed from one buffer).
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

impl Partition {
    /// Appends the current row of `lookup` to `payloads` (for an aggregating view, its
    /// aggregates over windows ending at the leading edge) and answers its event time (the
    /// windows' end); `None`, appending nothing, when there is none. `key` is scratch space for
    /// a tile key; `memos` the read's hold on the keys' memos. Called by request threads under
    /// the partition's read lock.
    pub fn read(
        &self,
        lookup: &Lookup,
        context: ReadContext,
        key: &mut Vec<u8>,
        memos: &mut MemoReads,
        payloads: &mut Vec<u8>,
    ) -> Option<Micros> {
        // A request begun before an apply reads the layout its registry knows, while it lasts.
        let views = if self.views.layout(lookup.view) == Some(lookup.layout) {
            &self.views
        } else {
            self.retiring
                .as_ref()
                .filter(|views| views.layout(lookup.view) == Some(lookup.layout))?
        };
        if let Some(spec) = views.spec(lookup.view) {
            write_tile_key(lookup.view, lookup.layout, lookup.key(), key);
            let tiles = self.tiles.get(key.as_slice())?;
            let (end, end_repeats) = window_end(lookup.view, spec, context, &views.watermarks);
            tiles.encoded_values(spec, end, end_repeats, lookup.aggregates, memos, payloads);
            return Some(end);
        }
        let record = self
            .index
            .get(&self.arena, lookup.view, lookup.layout, lookup.key())?;
        let record = self.arena.record_at(record);
        payloads.extend_from_slice(record.payload);
        Some(record.event_time)
    }
}

/// The end of the aggregation windows of `view` for this read: the last complete tile boundary
/// before the request time, or before the latest event the view has seen in any shard; and
/// whether later reads can end there too. All can but those of a continuous view (one-microsecond
/// tiles) at the request time, which end at their request's own microsecond.
fn window_end(
    view: ViewId,
    spec: &AggregationSpec,
    context: ReadContext,
    watermarks: &Watermarks,
) -> (Micros, bool) {
    let latest_event = match context.leading_edge.unwrap_or(spec.leading_edge) {
        LeadingEdge::WallClockTime => None,
        LeadingEdge::LatestEventTime => watermarks.get(view),
    };
    match latest_event {
        Some(edge_time) => (tile_start(edge_time, spec.interval), true),
        None => (tile_start(context.now, spec.interval), spec.interval > 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(interval: Micros, leading_edge: LeadingEdge) -> AggregationSpec {
        AggregationSpec {
            interval,
            leading_edge,
            inputs: Vec::new(),
            aggregates: Vec::new(),
            compaction: None,
        }
    }

    fn at(now: Micros, leading_edge: Option<LeadingEdge>) -> ReadContext {
        ReadContext { now, leading_edge }
    }

    /// Only a continuous view's windows ending at the request time end where no later read
    /// will (so their values are not memoised); tile-aligned and latest-event ends repeat.
    #[test]
    fn only_continuous_ends_at_the_request_time_cannot_repeat() {
        use LeadingEdge::{LatestEventTime, WallClockTime};
        let (view, watermarks) = (0, Watermarks::new(1));
        let continuous = spec(1, WallClockTime);
        let minutes = spec(60_000_000, WallClockTime);
        let now = 125_000_123;
        assert_eq!(
            window_end(view, &continuous, at(now, None), &watermarks),
            (now, false)
        );
        assert_eq!(
            window_end(view, &minutes, at(now, None), &watermarks),
            (120_000_000, true)
        );
        // No event seen yet: a latest-event end is the request time too.
        let by_event = at(now, Some(LatestEventTime));
        assert_eq!(
            window_end(view, &continuous, by_event, &watermarks),
            (now, false)
        );
        watermarks.advance(view, 99_000_007);
        assert_eq!(
            window_end(view, &continuous, by_event, &watermarks),
            (99_000_007, true)
        );
        let by_clock = at(now, Some(WallClockTime));
        let continuous_by_event = spec(1, LatestEventTime);
        assert_eq!(
            window_end(view, &continuous_by_event, by_clock, &watermarks),
            (now, false)
        );
        assert_eq!(
            window_end(view, &continuous_by_event, at(now, None), &watermarks),
            (99_000_007, true)
        );
    }
}

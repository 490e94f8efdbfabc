//! Reading a partition: the current row of a key, straight from the index and arena, on the
//! request's own thread. For an aggregating view the "row" is its aggregates over windows ending
//! at the leading edge: the key's memo of them, or merged from its tiles.

use super::{write_tile_key, Partition};
use crate::registry::aggregation::{AggregationSpec, LeadingEdge};
use crate::registry::{Layout, ViewId};
use crate::store::key::{key_hash, HashedKey, OwnedKey};
use crate::store::tiles::{tile_start, AggregateMask, MemoReads, TileSet};
use crate::store::views::StoreViews;
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
    /// Whether the read is timed (for Tecton's `sloInfo`): untimed, its latency is zero and
    /// its two clock reads are saved (~90 instructions each).
    pub timed: bool,
}

/// Where a lookup's row is, as the first of a read's two passes over a shard's lookups found
/// it: the second reads it. Between the two, the lines the second needs are on their way into
/// the cache (see `store::prefetch`), for every lookup of the pass at once.
#[derive(Clone, Copy, Default)]
pub enum Located<'a> {
    /// No row (or none in the layout the reader knows).
    #[default]
    Missing,
    /// An aggregating view's key: its tiles, and the views they are stored for.
    Tiles {
        views: &'a StoreViews,
        spec: &'a AggregationSpec,
        tiles: &'a TileSet,
    },
    /// A plain view's key: the arena record its index entry points at (hash and layout
    /// matched; the key is compared when it is read).
    Record(usize),
}

impl Partition {
    /// Finds where the current row of `lookup` is and starts loading it: its tiles' memo, or
    /// its record. `key` is scratch space for a tile key; `memos` the read's hold on the keys'
    /// memos. Called by request threads under the partition's read lock.
    pub fn locate(&self, lookup: &Lookup, key: &mut Vec<u8>, memos: &mut MemoReads) -> Located<'_> {
        // A request begun before an apply reads the layout its registry knows, while it lasts.
        let views = if self.views.layout(lookup.view) == Some(lookup.layout) {
            &self.views
        } else {
            match self.retiring.as_ref() {
                Some(views) if views.layout(lookup.view) == Some(lookup.layout) => views,
                _ => return Located::Missing,
            }
        };
        if let Some(spec) = views.spec(lookup.view) {
            write_tile_key(lookup.view, lookup.layout, lookup.key(), key);
            return match self.tiles.get(key.as_slice()) {
                Some(tiles) => {
                    tiles.prefetch_memo(memos);
                    Located::Tiles { views, spec, tiles }
                }
                None => Located::Missing,
            };
        }
        match self
            .index
            .candidate(lookup.view, lookup.layout, lookup.key())
        {
            Some(record) => {
                self.arena.prefetch(record);
                Located::Record(record)
            }
            None => Located::Missing,
        }
    }

    /// Appends the current row of `lookup`, as `locate` found it, to `payloads` (for an
    /// aggregating view, its aggregates over windows ending at the leading edge) and answers
    /// its event time (the windows' end); `None`, appending nothing, when there is none.
    pub fn read_located(
        &self,
        lookup: &Lookup,
        located: Located<'_>,
        context: ReadContext,
        memos: &mut MemoReads,
        payloads: &mut Vec<u8>,
    ) -> Option<Micros> {
        match located {
            Located::Missing => None,
            Located::Tiles { views, spec, tiles } => {
                let (end, end_repeats) = window_end(lookup.view, spec, context, &views.watermarks);
                tiles.encoded_values(spec, end, end_repeats, lookup.aggregates, memos, payloads);
                Some(end)
            }
            Located::Record(candidate) => {
                let (view, layout, key) = (lookup.view, lookup.layout, lookup.key());
                let mut record = self.arena.record_at(candidate);
                if record.view != view || record.key != key {
                    // Another key with the same 32-bit hash (rare): the full search.
                    let found = self.index.get(&self.arena, view, layout, key)?;
                    record = self.arena.record_at(found);
                }
                payloads.extend_from_slice(record.payload);
                Some(record.event_time)
            }
        }
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
        ReadContext {
            now,
            leading_edge,
            timed: false,
        }
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

    /// A plain lookup located at another key's record (a 32-bit hash shared by two keys, or
    /// the same key of another view) still reads its own row: the key is compared before the
    /// record is read, and the index searched in full when it differs.
    #[test]
    fn a_record_located_for_another_key_reads_the_lookups_own() {
        use crate::persist::format::{RowRecordV2, ViewRefV1};
        use std::sync::Arc;
        let names = ["a", "b"].map(|view| ViewRefV1 {
            workspace: "test".into(),
            view: view.into(),
        });
        let views = Arc::new(StoreViews::new(names.to_vec(), vec![None, None]));
        let (_actor, partition) = super::super::ShardActor::new(1 << 12, views).unwrap();
        let mut partition = partition.write();
        let mut record_of = |view, key: &[u8], payload: &[u8]| {
            let record = partition
                .arena
                .append(&RowRecordV2 {
                    view,
                    flags: 0,
                    event_time: 7,
                    payload,
                    key,
                })
                .unwrap();
            let Partition { index, arena, .. } = &mut *partition;
            index.insert(arena, view, 0, key, record);
            record
        };
        let mine = record_of(0, b"mine", b"my row");
        let other_key = record_of(0, b"other", b"another key's row");
        let other_view = record_of(1, b"mine", b"another view's row");
        let lookup = Lookup::new(0, 0, b"mine".to_vec(), AggregateMask::ALL);
        let context = at(0, None);
        let mut key = Vec::new();
        let mut memos = MemoReads::default();
        let located = partition.locate(&lookup, &mut key, &mut memos);
        assert!(matches!(located, Located::Record(at) if at == mine));
        let mut read_at = |lookup: &Lookup, candidate| {
            let mut payloads = Vec::new();
            let located = Located::Record(candidate);
            let read = partition.read_located(lookup, located, context, &mut memos, &mut payloads);
            (read, payloads)
        };
        for candidate in [mine, other_key, other_view] {
            assert_eq!(read_at(&lookup, candidate), (Some(7), b"my row".to_vec()));
        }
        let absent = Lookup::new(0, 0, b"absent".to_vec(), AggregateMask::ALL);
        assert_eq!(read_at(&absent, mine), (None, Vec::new()));
    }

    /// A read of more lookups than a pass stages (16 a shard) over plain and aggregating
    /// keys, absent ones and repeats answers each lookup with its own row, as a read of it
    /// alone does.
    #[test]
    fn a_long_read_answers_each_lookup_with_its_own_row() {
        use crate::persist::format::ViewRefV1;
        use crate::registry::aggregation::{AggregateFeature, Function, Window};
        use crate::registry::types::DataType;
        use crate::registry::value::Value;
        use crate::registry::Field;
        use crate::store::row::{decode_row, encode_row};
        use crate::store::{Router, RowWrite};
        use std::sync::Arc;

        let hour = 3_600_000_000;
        let sums = Arc::new(AggregationSpec {
            interval: hour,
            leading_edge: LeadingEdge::WallClockTime,
            inputs: vec![Field {
                name: "x".into(),
                data_type: DataType::Int64,
            }],
            aggregates: vec![AggregateFeature {
                input: 0,
                function: Function::Sum,
                window: Window::Time {
                    size: 24 * hour,
                    offset: 0,
                },
            }],
            compaction: None,
        });
        let names = ["plain", "sums"].map(|view| ViewRefV1 {
            workspace: "test".into(),
            view: view.into(),
        });
        let key = |i: i64| i.to_le_bytes().to_vec();
        let row = |i: i64| {
            let mut payload = Vec::new();
            encode_row(&[Value::Int64(i)], &mut payload);
            payload
        };
        actix::System::new().block_on(async {
            let router = Router::start(2, 1 << 16, names.to_vec(), vec![None, Some(sums)]).unwrap();
            // Keys 0..40 of both views; key i's plain row and its one event hold i.
            let writes = (0..40)
                .flat_map(|i| {
                    [(0, 1), (1, 5 * hour)].map(|(view, event_time)| RowWrite {
                        view,
                        layout: 0,
                        key: key(i),
                        event_time,
                        payload: row(i),
                    })
                })
                .collect();
            router.write(writes).await.unwrap();
            // Keys 0..50 of each view, alternating, then some again: 50 per view, 10 absent.
            let lookups: Vec<Lookup> = (0..50)
                .chain([3, 41, 17])
                .flat_map(|i| [0, 1].map(|view| Lookup::new(view, 0, key(i), AggregateMask::ALL)))
                .collect();
            let context = at(10 * hour, None);
            let read = router.read(&lookups, context);
            for (i, lookup) in lookups.iter().enumerate() {
                let alone = router.read(std::slice::from_ref(lookup), context);
                let (row, alone) = (read.row(i), alone.row(0));
                let k = i64::from_le_bytes(lookup.key().try_into().unwrap());
                assert_eq!(row.is_some(), k < 40, "lookup {i}");
                if let (Some(row), Some(alone)) = (row, alone) {
                    assert_eq!(row.payload, alone.payload, "lookup {i}");
                    assert_eq!(row.event_time, alone.event_time, "lookup {i}");
                    assert_eq!(decode_row(row.payload).unwrap(), vec![Value::Int64(k)]);
                }
            }
        });
    }
}

//! Tiled aggregation state: per key, one partial aggregate per aggregate feature for each
//! epoch-aligned tile of `aggregation_interval`, merged at read time over the complete tiles of
//! each window. Every partial merges associatively, so a window's value is exact.
//!
//! Tiles older than the view's horizon (longest window + offset + one tile) before the key's
//! latest event are never read again: they are dropped, or, when the view has lifetime
//! windows, merged into one `compacted` partial per aggregate. Memory per key is therefore
//! bounded by horizon / interval tiles.
//!
//! Between two tile boundaries and two writes of a key its window values do not change: each
//! key keeps its last read's values (`memo.rs`), which a read for the same window end and
//! aggregates copies instead of merging the tiles again.

mod map;
mod memo;
mod partial;
mod rollup;
mod sketch;
mod stored;
#[cfg(test)]
mod tests;

use crate::registry::aggregation::{AggregationSpec, Window};
use crate::registry::value::Value;
use crate::store::row::{encode_row, EncodedValue};
use crate::time::Micros;

pub use map::TileMap;
pub use memo::MemoReads;
pub use partial::Partial;
pub use stored::{from_stored, to_stored};

/// The value of an empty window, or of an aggregate a read does not compute.
static NULL: Value = Value::Null;

/// Which aggregates of a view a read computes: bit i for aggregate i (past the 64th, always).
/// A service that selects one feature of an aggregating view does not merge the others'
/// windows; the others read as null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregateMask(u64);

impl AggregateMask {
    pub const ALL: AggregateMask = AggregateMask(u64::MAX);

    pub fn union(self, other: AggregateMask) -> AggregateMask {
        AggregateMask(self.0 | other.0)
    }

    /// The mask as bits (bit i: aggregate i), as a forwarded read carries it.
    pub fn bits(self) -> u64 {
        self.0
    }

    /// The aggregates of bits `bits` (a service lookup's `aggregate_bits`, a forwarded read's).
    pub fn from_bits(bits: u64) -> AggregateMask {
        AggregateMask(bits)
    }

    pub fn contains(self, i: usize) -> bool {
        i >= 64 || self.0 & (1 << i) != 0
    }
}

/// The tiles of one key of one view. Its fields are public to read and to build a set from its
/// stored form; every change after that goes through a `&mut self` method here, which clears
/// the memo first.
#[derive(Debug, Clone)]
pub struct TileSet {
    /// Tile start -> one partial per aggregate.
    pub tiles: TileMap,
    /// Tiles merged once past the horizon (only for views with lifetime windows).
    pub compacted: Option<Vec<Partial>>,
    pub latest_event: Micros,
    /// With compaction: tiles starting before this are coarse (one per compaction width).
    pub coarse_until: Micros,
    /// Coarser merges of `tiles` for long windows: derived, so equality ignores it.
    rollups: rollup::Rollups,
    /// The last read's encoded values, for its window end and aggregates: derived too.
    memo: memo::MemoCell,
}

impl PartialEq for TileSet {
    fn eq(&self, other: &TileSet) -> bool {
        self.tiles == other.tiles
            && self.compacted == other.compacted
            && self.latest_event == other.latest_event
            && self.coarse_until == other.coarse_until
    }
}

impl Default for TileSet {
    fn default() -> TileSet {
        TileSet {
            tiles: TileMap::default(),
            compacted: None,
            latest_event: 0,
            coarse_until: Micros::MIN,
            rollups: rollup::Rollups::default(),
            memo: memo::MemoCell::default(),
        }
    }
}

/// The start of the tile holding `time`.
pub fn tile_start(time: Micros, interval: Micros) -> Micros {
    time.div_euclid(interval) * interval
}

impl TileSet {
    /// Adds one event: `inputs` are its values in the spec's input order, as the bytes of its
    /// stored row (`row::split_values`), which only the functions that keep a value decode.
    pub fn add(
        &mut self,
        spec: &AggregationSpec,
        event_time: Micros,
        seq: u64,
        inputs: &[EncodedValue],
    ) {
        self.memo.clear();
        let start = self.tile_of(spec, event_time);
        let tile = self.tiles.get_or_insert_with(start, || {
            spec.aggregates
                .iter()
                .map(|a| Partial::empty(a.function))
                .collect()
        });
        partial::add_event(tile, spec, event_time, seq, inputs);
        self.rollups.add(spec, &self.tiles, event_time, seq, inputs);
        self.latest_event = self.latest_event.max(event_time);
        self.coarsen(spec);
        self.drop_old(spec);
    }

    /// Builds the roll-ups for `spec` (after a restore: they are not stored).
    /// Lays the tiles out for `spec`, which an apply gave the view: aggregate `i` takes the
    /// partials of old aggregate `sources[i]` (the same function over the same column), or
    /// starts empty.
    pub fn remap(&mut self, sources: &[Option<usize>], spec: &AggregationSpec) {
        self.memo.clear();
        let remap = |partials: &mut Vec<Partial>| {
            let moved = sources
                .iter()
                .zip(&spec.aggregates)
                .map(|(source, aggregate)| {
                    source
                        .and_then(|j| partials.get(j).cloned())
                        .unwrap_or_else(|| Partial::empty(aggregate.function))
                })
                .collect();
            *partials = moved;
        };
        self.tiles.values_mut().for_each(remap);
        self.compacted.iter_mut().for_each(remap);
        self.rebuild_rollups(spec);
    }

    pub fn rebuild_rollups(&mut self, spec: &AggregationSpec) {
        // Blocks merged in another order can round a float sum differently.
        self.memo.clear();
        self.rollups.rebuild(spec, &self.tiles);
    }

    /// The start of the tile (fine or coarse) an event at `time` belongs to.
    fn tile_of(&self, spec: &AggregationSpec, time: Micros) -> Micros {
        match spec.compaction {
            Some(coarse) if time < self.coarse_until => tile_start(time, coarse),
            _ => tile_start(time, spec.interval),
        }
    }

    /// With compaction: merges fine tiles older than the previous whole day into daily tiles.
    fn coarsen(&mut self, spec: &AggregationSpec) {
        let Some(coarse) = spec.compaction else {
            return;
        };
        let boundary = tile_start(self.latest_event, coarse) - coarse;
        if boundary <= self.coarse_until {
            return;
        }
        // Coarse tiles start before `coarse_until`, the fine ones left at `boundary`: the
        // merged ones go between them.
        let fine: Vec<_> = self.tiles.drain(self.coarse_until..boundary).collect();
        for (start, tile) in fine {
            let into = self
                .tiles
                .get_or_insert_with(tile_start(start, coarse), || {
                    spec.aggregates
                        .iter()
                        .map(|a| Partial::empty(a.function))
                        .collect()
                });
            for ((into, from), aggregate) in into.iter_mut().zip(tile).zip(&spec.aggregates) {
                into.merge(aggregate.function, &from);
            }
        }
        self.coarse_until = boundary;
    }

    /// Drops (or compacts) tiles no window ending at or after the latest event can reach.
    fn drop_old(&mut self, spec: &AggregationSpec) {
        let keep_from = tile_start(self.latest_event, spec.interval) - spec.horizon();
        // Mostly nothing is that old: no range search, no list.
        if self
            .tiles
            .first_start()
            .is_none_or(|first| first >= keep_from)
        {
            return;
        }
        // A tile goes once it ends before `keep_from` (coarse tiles are wider). Those are the
        // first ones: the only tile starting before `keep_from` that ends after it is a coarse
        // one, and every tile after it starts past `keep_from` (fine ones at `coarse_until`).
        let width = |start: Micros| match spec.compaction {
            Some(coarse) if start < self.coarse_until => coarse,
            _ => spec.interval,
        };
        let kept_from = self
            .tiles
            .range(..keep_from)
            .map(|(start, _)| *start)
            .find(|start| start + width(*start) > keep_from)
            .unwrap_or(keep_from);
        let mut dropped_any = false;
        for (_, tile) in self.tiles.drain(..kept_from) {
            dropped_any = true;
            if spec.has_lifetime() {
                let compacted = self.compacted.get_or_insert_with(|| {
                    spec.aggregates
                        .iter()
                        .map(|a| Partial::empty(a.function))
                        .collect()
                });
                for ((into, from), aggregate) in
                    compacted.iter_mut().zip(tile).zip(&spec.aggregates)
                {
                    into.merge(aggregate.function, &from);
                }
            }
        }
        if dropped_any {
            self.rollups.drop_before(keep_from);
        }
    }

    /// Whether these tiles were built for `spec`'s aggregates (one partial of the right kind
    /// per aggregate in every tile).
    pub fn fits(&self, spec: &AggregationSpec) -> bool {
        let kinds_match = |partials: &Vec<Partial>| {
            partials.len() == spec.aggregates.len()
                && partials.iter().zip(&spec.aggregates).all(|(p, a)| {
                    std::mem::discriminant(p) == std::mem::discriminant(&Partial::empty(a.function))
                })
        };
        self.tiles.values().all(kinds_match) && self.compacted.as_ref().is_none_or(kinds_match)
    }

    /// The tile starts a window `[from, to)` reads: when `from` falls among coarse tiles, the
    /// window starts at that coarse tile's start (Tecton's sawtooth windows).
    fn window(&self, spec: &AggregationSpec, from: Micros, to: Micros) -> std::ops::Range<Micros> {
        match spec.compaction {
            Some(coarse) if from < self.coarse_until => tile_start(from, coarse)..to,
            _ => from..to,
        }
    }

    /// Starts loading the key's memo, which `encoded_values` most likely copies.
    pub fn prefetch_memo(&self, reads: &mut MemoReads) {
        self.memo.prefetch(reads);
    }

    /// Appends each aggregate's value over its window ending at `end` (a tile boundary),
    /// encoded as a row, to `out`: null for an empty window and for those not in `wanted`. From
    /// the memo when the last read asked for the same end and aggregates and the tiles did not
    /// change since; otherwise merged from the tiles, and memoised if `end_repeats` (a later
    /// read can end there too: a memo of an end no read asks for again would only cost its
    /// allocation).
    pub fn encoded_values(
        &self,
        spec: &AggregationSpec,
        end: Micros,
        end_repeats: bool,
        wanted: AggregateMask,
        reads: &mut MemoReads,
        out: &mut Vec<u8>,
    ) {
        if self.memo.copy_to(end, wanted, reads, out) {
            return;
        }
        let values = self.values(spec, end, wanted);
        let start = out.len();
        encode_row(values.iter().map(|v| v.as_ref().unwrap_or(&NULL)), out);
        if end_repeats {
            self.memo.publish(end, wanted, reads, &out[start..]);
        }
    }

    /// Each aggregate's value over its window ending at `end` (a tile boundary); `None` for
    /// those not in `wanted`. Aggregates over the same window are merged in one walk. Never
    /// reads the memo (`encoded_values` does).
    pub fn values(
        &self,
        spec: &AggregationSpec,
        end: Micros,
        wanted: AggregateMask,
    ) -> Vec<Option<Value>> {
        let aggregates = &spec.aggregates;
        let mut values = vec![None; aggregates.len()];
        let mut totals = Vec::with_capacity(aggregates.len());
        for (first, aggregate) in aggregates.iter().enumerate() {
            let window = aggregate.window;
            // The group of this window was merged with the first wanted aggregate over it.
            let merged_before = aggregates[..first]
                .iter()
                .enumerate()
                .any(|(i, a)| a.window == window && wanted.contains(i));
            if !wanted.contains(first) || merged_before {
                continue;
            }
            totals.clear();
            totals.extend(
                aggregates
                    .iter()
                    .enumerate()
                    .skip(first)
                    .filter(|(i, a)| a.window == window && wanted.contains(*i))
                    .map(|(i, a)| (i, a.function, Partial::empty(a.function))),
            );
            match window {
                Window::Time { size, offset } => {
                    let range = self.window(spec, end - offset - size, end - offset);
                    self.rollups.merge_range(&self.tiles, range, &mut totals);
                    for (i, function, total) in &totals {
                        values[*i] = total.finish(*function);
                    }
                }
                Window::Lifetime => {
                    self.rollups
                        .merge_range(&self.tiles, Micros::MIN..end, &mut totals);
                    for (i, function, total) in &mut totals {
                        if let Some(compacted) = &self.compacted {
                            total.merge(*function, &compacted[*i]);
                        }
                        values[*i] = total.finish(*function);
                    }
                }
                Window::Series {
                    size,
                    start,
                    end: last,
                    step,
                } => {
                    // Windows ending `start - step`, `start - 2 step`, ... `last` before `end`,
                    // oldest first; all empty is missing data.
                    let offsets = (1..).map(|k| start - k * step).take_while(|o| *o >= last);
                    let mut series = vec![Vec::new(); totals.len()];
                    for o in offsets {
                        let range = self.window(spec, end - o - size, end - o);
                        self.rollups.merge_range(&self.tiles, range, &mut totals);
                        for ((_, function, total), windows) in totals.iter_mut().zip(&mut series) {
                            windows.push(total.finish(*function));
                            *total = Partial::empty(*function);
                        }
                    }
                    for ((i, _, _), windows) in totals.iter().zip(series) {
                        values[*i] = windows.iter().any(Option::is_some).then(|| {
                            Value::Array(
                                windows.into_iter().map(Option::unwrap_or_default).collect(),
                            )
                        });
                    }
                }
            }
        }
        values
    }
}

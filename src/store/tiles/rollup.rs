//! Roll-ups: coarser partials over a key's fine tiles, so that a long window merges a few dozen
//! partials instead of hundreds (a 3-day window over 10-minute tiles: at most ~50 instead of 432).
//!
//! Level `k` holds, for each epoch-aligned block of `widths[k]`, the merge of every fine tile
//! starting in that block. Each level's width is a multiple of the one below, so block edges are
//! tile edges. Invariant: a block starting at or after the key's first tile exists exactly when a
//! tile starts in it, and equals the merge of those tiles (up to floating-point rounding: merges
//! happen in another order). Reads start at the first tile, so they see only such blocks.
//! Roll-ups are derived state: never stored, rebuilt from the tiles after a restore. Views with
//! Tecton's compaction (daily coarse tiles) read their fine tiles directly.

use std::collections::BTreeMap;
use std::ops::Range;

use super::partial::Partial;
use crate::registry::aggregation::{AggregationSpec, Function};
use crate::registry::value::Value;
use crate::time::{Micros, MICROS_PER_SECOND};

/// Blocks per block of the level above (and fine tiles per first-level block).
const FAN_OUT: i64 = 12;

/// The roll-up levels of one key's tiles.
#[derive(Debug, Clone, Default)]
pub(super) struct Rollups {
    /// The widths these levels were built for; `None`: no roll-ups, read the tiles.
    widths: Option<[Micros; 2]>,
    levels: [BTreeMap<Micros, Vec<Partial>>; 2],
}

/// The widths of the two levels for `spec`, or `None` when the view compacts its tiles.
/// Continuous views (one-microsecond tiles) start at a minute, so a block holds many events.
pub(super) fn widths(spec: &AggregationSpec) -> Option<[Micros; 2]> {
    if spec.compaction.is_some() {
        return None;
    }
    let minute = 60 * MICROS_PER_SECOND;
    let per_block = FAN_OUT.max((minute + spec.interval - 1) / spec.interval);
    let first = spec.interval.checked_mul(per_block)?;
    Some([first, first.checked_mul(FAN_OUT)?])
}

fn empty(spec: &AggregationSpec) -> Vec<Partial> {
    spec.aggregates
        .iter()
        .map(|a| Partial::empty(a.function))
        .collect()
}

fn merge_into(into: &mut [Partial], from: &[Partial], spec: &AggregationSpec) {
    for ((into, from), aggregate) in into.iter_mut().zip(from).zip(&spec.aggregates) {
        into.merge(aggregate.function, from);
    }
}

impl Rollups {
    /// Rebuilds every level from the fine tiles, for `spec`'s widths.
    pub fn rebuild(&mut self, spec: &AggregationSpec, tiles: &BTreeMap<Micros, Vec<Partial>>) {
        *self = Rollups {
            widths: widths(spec),
            levels: Default::default(),
        };
        let Some(widths) = self.widths else { return };
        for (level, width) in widths.into_iter().enumerate() {
            let (below, rest) = self.levels.split_at_mut(level);
            let source = below.last().unwrap_or(tiles);
            for (start, partials) in source {
                let block = rest[0]
                    .entry(start.div_euclid(width) * width)
                    .or_insert_with(|| empty(spec));
                merge_into(block, partials, spec);
            }
        }
    }

    /// Adds one event to the block holding it on every level (the caller has added it to its
    /// tile). Rebuilds first if these roll-ups were made for other widths (or none, after a
    /// restore).
    pub fn add(
        &mut self,
        spec: &AggregationSpec,
        tiles: &BTreeMap<Micros, Vec<Partial>>,
        event_time: Micros,
        seq: u64,
        inputs: &[Value],
    ) {
        if self.widths != widths(spec) {
            return self.rebuild(spec, tiles);
        }
        let Some(widths) = self.widths else { return };
        for (level, width) in self.levels.iter_mut().zip(widths) {
            let block = level
                .entry(event_time.div_euclid(width) * width)
                .or_insert_with(|| empty(spec));
            for (partial, aggregate) in block.iter_mut().zip(&spec.aggregates) {
                let value = inputs.get(aggregate.input).unwrap_or(&Value::Null);
                partial.add(aggregate.function, event_time, seq, value);
            }
        }
    }

    /// After the tiles starting before `keep_from` were dropped: drops the blocks starting
    /// before it. A block straddling `keep_from` held dropped tiles, but no read reaches it:
    /// reads start at the first tile left, and `keep_from` is a tile edge (windows are
    /// multiples of the interval), so every tile left starts at or after it.
    pub fn drop_before(&mut self, keep_from: Micros) {
        for blocks in &mut self.levels {
            *blocks = blocks.split_off(&keep_from);
        }
    }

    /// How many blocks the levels hold.
    #[cfg(test)]
    pub fn blocks(&self) -> usize {
        self.levels.iter().map(BTreeMap::len).sum()
    }

    /// Merges `group`'s aggregates (index, function) of every tile starting in `range` into
    /// `totals` (parallel to `group`), using the largest blocks that fit inside the range and
    /// fine tiles at its edges.
    pub fn merge_range(
        &self,
        tiles: &BTreeMap<Micros, Vec<Partial>>,
        group: &[(usize, Function)],
        range: Range<Micros>,
        totals: &mut [Partial],
    ) {
        // Nothing starts before the first tile; a lifetime window's MIN start would overflow
        // when rounded to a block edge.
        let first_tile = tiles
            .first_key_value()
            .map_or(range.end, |(start, _)| *start);
        let range = range.start.max(first_tile)..range.end;
        let levels = self.widths.map_or(0, |w| w.len());
        self.merge_level(levels, tiles, group, range, totals);
    }

    /// Level 0 is the fine tiles; level `k` is `levels[k - 1]`.
    fn merge_level(
        &self,
        level: usize,
        tiles: &BTreeMap<Micros, Vec<Partial>>,
        group: &[(usize, Function)],
        range: Range<Micros>,
        totals: &mut [Partial],
    ) {
        if range.start >= range.end {
            return;
        }
        let merge = |totals: &mut [Partial], partials: &[Partial]| {
            for (total, &(i, function)) in totals.iter_mut().zip(group) {
                total.merge(function, &partials[i]);
            }
        };
        let (Some(widths), Some(below)) = (self.widths, level.checked_sub(1)) else {
            for (_, tile) in tiles.range(range) {
                merge(totals, tile);
            }
            return;
        };
        let width = widths[below];
        // The whole blocks inside the range.
        let aligned = range.start.div_euclid(width) * width;
        let first = if aligned < range.start {
            aligned + width
        } else {
            aligned
        };
        let last = range.end.div_euclid(width) * width;
        if first >= last {
            return self.merge_level(below, tiles, group, range, totals);
        }
        self.merge_level(below, tiles, group, range.start..first, totals);
        for (_, block) in self.levels[below].range(first..last) {
            merge(totals, block);
        }
        self.merge_level(below, tiles, group, last..range.end, totals);
    }
}

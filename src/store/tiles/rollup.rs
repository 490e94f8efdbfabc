//! Roll-ups: coarser partials over a key's fine tiles, so that a long window merges a few dozen
//! partials instead of hundreds (a 3-day window over 10-minute tiles: at most ~50 instead of 432).
//!
//! Level `k` holds, for each epoch-aligned block of `widths[k]`, the merge of every fine tile
//! starting in that block. Each level's width is a multiple of the one below, so block edges are
//! tile edges. Invariant: a block starting at or after the key's first tile exists exactly when a
//! tile starts in it, and equals the merge of those tiles (up to floating-point rounding: merges
//! happen in another order). Reads start at the first tile, so they see only such blocks.
//!
//! Except in the open blocks (on each level, the one holding the key's last tile, where events
//! mostly arrive): there only the aggregates whose merge depends on its order (float sums and
//! moments) are kept per event, so that their bits stay those of per-event blocks. The others
//! merge exactly in any order (counts, extremes, last, the ordered lists, the sketches: see
//! `merges_exactly`): a block gets them once, merged from its parts, when it closes (an event
//! lands past its end), and a walk reads an open block's parts for them instead. An event
//! therefore costs those aggregates one tile update instead of three.
//!
//! Roll-ups are derived state: never stored, rebuilt from the tiles after a restore. Views with
//! Tecton's compaction (daily coarse tiles) read their fine tiles directly, and so does a key
//! until it has more than [`BUILT_PAST_TILES`] tiles: its roll-ups are then built from its
//! tiles, as after a restore, and kept up event by event from there.

use std::collections::VecDeque;
use std::ops::Range;

use super::map::{Tile, TileMap};
use super::partial::{add_event, add_event_where, Partial};
use crate::registry::aggregation::{AggregationSpec, Function};
use crate::store::row::EncodedValue;
use crate::time::{Micros, MICROS_PER_SECOND};

/// Blocks per block of the level above (and fine tiles per first-level block).
const FAN_OUT: i64 = 12;

/// A key gets roll-ups once it has more fine tiles than this. Most keys of a view have a few
/// tiles, which a read merges as fast as their blocks, and their blocks would copy every
/// partial twice (a sketch's registers too): 41 % of the heap of `quiver bench`'s demo data
/// set was roll-ups (DHAT, 2,000 keys). Twice a block's tiles, so that a key near the
/// threshold does not build and drop its roll-ups event after event: once built they stay,
/// whatever the horizon drops, until the next rebuild.
pub(super) const BUILT_PAST_TILES: usize = 2 * FAN_OUT as usize;

#[cfg(test)]
thread_local! {
    /// Set by the tests of the roll-ups' own invariants, which build them from a key's first
    /// tile (as every key had them before [`BUILT_PAST_TILES`]).
    pub(super) static FROM_FIRST_TILE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The widths of the roll-ups a key with `tiles` has when they are (re)built: none until it
/// has more than [`BUILT_PAST_TILES`] tiles.
fn built_widths(spec: &AggregationSpec, tiles: &TileMap) -> Option<[Micros; 2]> {
    #[cfg(test)]
    if FROM_FIRST_TILE.with(std::cell::Cell::get) {
        return widths(spec);
    }
    widths(spec).filter(|_| tiles.len() > BUILT_PAST_TILES)
}

/// The roll-up levels of one key's tiles, if it has them (`None`: read the tiles). Boxed: most
/// keys have none, and a key map's entry holds this inline (8 bytes, not 104).
#[derive(Debug, Clone, Default)]
pub(super) struct Rollups(Option<Box<Levels>>);

/// Built roll-ups.
#[derive(Debug, Clone)]
struct Levels {
    /// The widths these levels were built for.
    widths: [Micros; 2],
    levels: [Blocks; 2],
    /// The start of the key's last tile (none yet): it decides the open blocks.
    last_tile: Option<Micros>,
}

/// One level's blocks, ordered by start: events mostly arrive in time order, so a block is
/// mostly pushed at the back, and old ones go from the front; a window finds its blocks with
/// two binary searches over contiguous starts instead of two B-tree descents.
type Blocks = VecDeque<Tile>;

/// Puts an empty block starting at `start` at index `at` of `blocks`. A level's first block
/// takes room for itself alone: most keys have events in one block of each level, and a
/// deque's first push reserves four (~200 bytes a key more over the two levels).
fn insert_block(blocks: &mut Blocks, at: usize, start: Micros, spec: &AggregationSpec) {
    if blocks.capacity() == 0 {
        blocks.reserve_exact(1);
    }
    blocks.insert(at, (start, empty(spec)));
}

/// The index in `blocks` of the first block starting at or after `time`.
fn position(blocks: &Blocks, time: Micros) -> usize {
    blocks.partition_point(|(start, _)| *start < time)
}

/// The start of the block of `width` holding `time`.
fn block_start(time: Micros, width: Micros) -> Micros {
    time.div_euclid(width) * width
}

/// Whether partials of `function` merge to the same bits in any order, so an open block can
/// leave them to its close. Float sums and moments round differently in another order (an
/// integer sum would not, but it is as cheap to keep per event as to merge).
pub(super) fn merges_exactly(function: Function) -> bool {
    !matches!(
        function,
        Function::Sum
            | Function::Mean
            | Function::VarSamp
            | Function::VarPop
            | Function::StddevSamp
            | Function::StddevPop
    )
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

/// Fills `blocks` (empty) with the blocks of `width` over `source`, which is ordered by start.
fn blocks_of<'a>(
    source: impl Iterator<Item = &'a Tile>,
    width: Micros,
    blocks: &mut Blocks,
    spec: &AggregationSpec,
) {
    for (start, partials) in source {
        let block_start = block_start(*start, width);
        if blocks.back().is_none_or(|(s, _)| *s != block_start) {
            insert_block(blocks, blocks.len(), block_start, spec);
        }
        let (_, block) = blocks.back_mut().expect("pushed above");
        merge_into(block, partials, spec);
    }
}

impl Rollups {
    /// Rebuilds every level from the fine tiles, for `spec`'s widths; none while the key has
    /// [`BUILT_PAST_TILES`] tiles or fewer.
    pub fn rebuild(&mut self, spec: &AggregationSpec, tiles: &TileMap) {
        self.0 = built_widths(spec, tiles).map(|widths| {
            let mut built = Levels {
                widths,
                levels: Default::default(),
                last_tile: tiles.last_start(),
            };
            let [first, second] = widths;
            let [lower, upper] = &mut built.levels;
            blocks_of(tiles.iter(), first, lower, spec);
            blocks_of(lower.iter(), second, upper, spec);
            Box::new(built)
        });
    }

    /// Adds one event to the block holding it on every level (the caller has added it to its
    /// tile): in an open block, only to the aggregates that do not merge exactly. An event past
    /// the last tile's blocks closes them first. Builds them instead if the key has none and
    /// has come past [`BUILT_PAST_TILES`] tiles, or rebuilds them if they were made for other
    /// widths.
    pub fn add(
        &mut self,
        spec: &AggregationSpec,
        tiles: &TileMap,
        event_time: Micros,
        seq: u64,
        inputs: &[EncodedValue],
    ) {
        match &mut self.0 {
            // Built ones stay while the spec's widths do, however few tiles the horizon leaves.
            Some(built) if Some(built.widths) == widths(spec) => {
                built.add(spec, tiles, event_time, seq, inputs)
            }
            _ => self.rebuild(spec, tiles),
        }
    }

    /// After the tiles starting before `keep_from` were dropped: drops the blocks starting
    /// before it. A block straddling `keep_from` held dropped tiles, but no read reaches it:
    /// reads start at the first tile left, and `keep_from` is a tile edge (windows are
    /// multiples of the interval), so every tile left starts at or after it.
    pub fn drop_before(&mut self, keep_from: Micros) {
        for blocks in self.0.iter_mut().flat_map(|built| &mut built.levels) {
            blocks.drain(..position(blocks, keep_from));
        }
    }

    /// Each level's block starts, in order (none without roll-ups).
    #[cfg(test)]
    pub fn block_starts(&self) -> Vec<Vec<Micros>> {
        let Some(built) = &self.0 else {
            return vec![Vec::new(); 2];
        };
        built
            .levels
            .iter()
            .map(|blocks| blocks.iter().map(|(start, _)| *start).collect())
            .collect()
    }

    /// Merges the aggregates of every tile starting in `range` into `totals`, each entry an
    /// aggregate's index, function and running total, using the largest blocks that fit inside
    /// the range and fine tiles at its edges.
    pub fn merge_range(&self, tiles: &TileMap, range: Range<Micros>, totals: &mut [Total]) {
        let (Some(first_tile), Some(last_tile)) = (tiles.first_start(), tiles.last_start()) else {
            return;
        };
        // Nothing starts before the first tile; a lifetime window's MIN start would overflow
        // when rounded to a block edge.
        let range = range.start.max(first_tile)..range.end;
        let levels = self.0.as_ref().map_or(0, |built| built.levels.len());
        let walk = Walk {
            rollups: self.0.as_deref(),
            tiles,
            last_tile,
        };
        walk.merge_level(levels, range, totals, Taken::All);
    }
}

impl Levels {
    /// [`Rollups::add`] for built roll-ups of the spec's widths.
    fn add(
        &mut self,
        spec: &AggregationSpec,
        tiles: &TileMap,
        event_time: Micros,
        seq: u64,
        inputs: &[EncodedValue],
    ) {
        let widths = self.widths;
        let tile = block_start(event_time, spec.interval);
        match self.last_tile {
            Some(last) if last >= tile => {}
            Some(last) => {
                self.close(spec, tiles, widths, last, tile);
                self.last_tile = Some(tile);
            }
            None => self.last_tile = Some(tile),
        }
        let last_tile = self.last_tile.unwrap_or(tile);
        for (blocks, width) in self.levels.iter_mut().zip(widths) {
            let start = block_start(event_time, width);
            // In time order the event's block is the last one.
            let at = match blocks.back() {
                Some((last, _)) if *last == start => blocks.len() - 1,
                _ => position(blocks, start),
            };
            if blocks.get(at).is_none_or(|(s, _)| *s != start) {
                insert_block(blocks, at, start, spec);
            }
            let block = &mut blocks[at].1;
            if start == block_start(last_tile, width) {
                add_event_where(block, spec, event_time, seq, inputs, |f| !merges_exactly(f));
            } else {
                add_event(block, spec, event_time, seq, inputs);
            }
        }
    }

    /// The last tile moves from `last` to `tile`: the blocks holding `last` that do not hold
    /// `tile` close, each taking the exactly merging aggregates from its parts (tiles for the
    /// first level, the first level's blocks, closed just before, for the second).
    fn close(
        &mut self,
        spec: &AggregationSpec,
        tiles: &TileMap,
        widths: [Micros; 2],
        last: Micros,
        tile: Micros,
    ) {
        let [lower, upper] = &mut self.levels;
        let [first, second] = widths;
        let start = block_start(last, first);
        if start != block_start(tile, first) {
            let parts = tiles.range(start..start + first).map(|(_, p)| p);
            close_block(lower, start, parts, spec);
        }
        let start = block_start(last, second);
        if start != block_start(tile, second) {
            let from = position(lower, start);
            let parts = lower.range(from..position(lower, start + second));
            close_block(upper, start, parts.map(|(_, p)| p), spec);
        }
    }
}

/// Sets the exactly merging aggregates of the block of `blocks` starting at `start` (if it is
/// there: a block straddling the horizon may have gone) to the merge of `parts`.
fn close_block<'a>(
    blocks: &mut Blocks,
    start: Micros,
    parts: impl Iterator<Item = &'a Vec<Partial>>,
    spec: &AggregationSpec,
) {
    let at = position(blocks, start);
    let Some((_, block)) = blocks.get_mut(at).filter(|(s, _)| *s == start) else {
        return;
    };
    // A rebuild merged them already; start over rather than merge twice.
    for (partial, aggregate) in block.iter_mut().zip(&spec.aggregates) {
        if merges_exactly(aggregate.function) {
            *partial = Partial::empty(aggregate.function);
        }
    }
    for part in parts {
        for ((into, from), aggregate) in block.iter_mut().zip(part).zip(&spec.aggregates) {
            if merges_exactly(aggregate.function) {
                into.merge(aggregate.function, from);
            }
        }
    }
}

/// An aggregate a read merges: its index in the view, its function and its running total.
pub(super) type Total = (usize, Function, Partial);

/// Which of a walk's totals a step merges.
#[derive(Debug, Clone, Copy)]
enum Taken {
    All,
    /// Those that merge exactly (an open block's parts).
    Exact,
    /// Those that do not (what an open block holds).
    Inexact,
}

impl Taken {
    fn takes(self, function: Function) -> bool {
        match self {
            Taken::All => true,
            Taken::Exact => merges_exactly(function),
            Taken::Inexact => !merges_exactly(function),
        }
    }
}

/// One window's merge over one key's tiles and roll-ups.
struct Walk<'a> {
    rollups: Option<&'a Levels>,
    tiles: &'a TileMap,
    /// No tile (and so no block) starts after it: a range past it is empty, and the walk skips
    /// its binary search (windows of keys that saw no recent event end past their last tile).
    /// The blocks holding it are the open ones.
    last_tile: Micros,
}

impl Walk<'_> {
    /// Level 0 is the fine tiles; level `k` is `levels[k - 1]`. The totals `taken` picks merge,
    /// each in the order of the plain recursive walk (the exact ones, in any order, read an
    /// open block's parts in its place).
    fn merge_level(&self, level: usize, range: Range<Micros>, totals: &mut [Total], taken: Taken) {
        if range.start >= range.end || range.start > self.last_tile {
            return;
        }
        let merge = |totals: &mut [Total], partials: &[Partial], taken: Taken| {
            // The usual case asks nothing of the functions.
            if let Taken::All = taken {
                for (i, function, total) in totals.iter_mut() {
                    total.merge(*function, &partials[*i]);
                }
                return;
            }
            for (i, function, total) in totals.iter_mut() {
                if taken.takes(*function) {
                    total.merge(*function, &partials[*i]);
                }
            }
        };
        let (Some(rollups), Some(below)) = (self.rollups, level.checked_sub(1)) else {
            for (_, tile) in self.tiles.range(range) {
                merge(totals, tile, taken);
            }
            return;
        };
        let width = rollups.widths[below];
        // The whole blocks inside the range.
        let aligned = block_start(range.start, width);
        let first = if aligned < range.start {
            aligned + width
        } else {
            aligned
        };
        let last = block_start(range.end, width);
        if first >= last {
            return self.merge_level(below, range, totals, taken);
        }
        self.merge_level(below, range.start..first, totals, taken);
        if first <= self.last_tile {
            let blocks = &rollups.levels[below];
            let from = position(blocks, first);
            for (start, block) in blocks.range(from..position(blocks, last)) {
                // No block starts after the last tile: the open one is the one past it.
                if start + width <= self.last_tile {
                    merge(totals, block, taken);
                    continue;
                }
                if let Taken::All = taken {
                    merge(totals, block, Taken::Inexact);
                }
                if totals
                    .iter()
                    .any(|(_, function, _)| merges_exactly(*function))
                {
                    self.merge_level(below, *start..start + width, totals, Taken::Exact);
                }
            }
        }
        self.merge_level(below, last..range.end, totals, taken);
    }
}

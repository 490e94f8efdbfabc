//! `TileMap`: one key's tiles, tile start -> one partial per aggregate, as a `VecDeque` kept
//! sorted by start (as the roll-ups keep their blocks). Most keys hold one or two tiles, for
//! which a `BTreeMap` allocated a whole leaf node (~384 bytes) and a read walked node pointers;
//! here a tile takes its 32 bytes and a lookup is a binary search over the starts.
//!
//! Events mostly land in the last tile or push a new one at the back, and the horizon drops
//! tiles from the front: a deque, not a `Vec`, so that a continuous view (a tile per event)
//! does not move all its tiles for each event. An out-of-order event that opens a tile in the
//! middle moves the tiles on its shorter side: at most half the horizon's tiles (433 of 32
//! bytes for a busy key at 10 minutes over 3 days), fine for the tile counts views have, but
//! a continuous view's key with many events in its window pays it for each late event.

use std::collections::{vec_deque, VecDeque};
use std::ops::{Bound, RangeBounds};

use super::partial::Partial;
use crate::time::Micros;

/// One tile: its start and one partial per aggregate.
pub type Tile = (Micros, Vec<Partial>);

/// One key's tiles, ordered by start, one per start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TileMap(VecDeque<Tile>);

impl TileMap {
    #[expect(
        clippy::len_without_is_empty,
        reason = "callers count tiles against a threshold; none asks for none"
    )]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The tiles in order of start.
    pub fn iter(&self) -> vec_deque::Iter<'_, Tile> {
        self.0.iter()
    }

    pub fn values(&self) -> impl Iterator<Item = &Vec<Partial>> {
        self.0.iter().map(|(_, partials)| partials)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Vec<Partial>> {
        self.0.iter_mut().map(|(_, partials)| partials)
    }

    pub fn first_start(&self) -> Option<Micros> {
        self.0.front().map(|(start, _)| *start)
    }

    pub fn last_start(&self) -> Option<Micros> {
        self.0.back().map(|(start, _)| *start)
    }

    /// The tiles starting in `range`, in order.
    pub fn range(&self, range: impl RangeBounds<Micros>) -> vec_deque::Iter<'_, Tile> {
        self.0.range(self.indices(range))
    }

    /// Removes the tiles starting in `range` and yields them in order.
    pub fn drain(&mut self, range: impl RangeBounds<Micros>) -> vec_deque::Drain<'_, Tile> {
        let indices = self.indices(range);
        self.0.drain(indices)
    }

    /// The partials of the tile starting at `start`, made by `empty` if there is none.
    pub fn get_or_insert_with(
        &mut self,
        start: Micros,
        empty: impl FnOnce() -> Vec<Partial>,
    ) -> &mut Vec<Partial> {
        // In time order the event's tile is the last one, or a new one after it.
        let at = match self.0.back() {
            Some((last, _)) if *last == start => self.0.len() - 1,
            Some((last, _)) if *last < start => self.0.len(),
            None => 0,
            Some(_) => self.position(start),
        };
        if self.0.get(at).is_none_or(|(s, _)| *s != start) {
            // Most keys keep one or two tiles: grow one at a time up to four, not to four at
            // once as a first push would (128 bytes for a key's one tile).
            if self.0.len() == self.0.capacity() && self.0.len() < 4 {
                self.0.reserve_exact(1);
            }
            self.0.insert(at, (start, empty()));
        }
        &mut self.0[at].1
    }

    /// The index of the first tile starting at or after `time`.
    fn position(&self, time: Micros) -> usize {
        self.0.partition_point(|(start, _)| *start < time)
    }

    fn indices(&self, range: impl RangeBounds<Micros>) -> std::ops::Range<usize> {
        let from = match range.start_bound() {
            Bound::Included(start) => self.position(*start),
            Bound::Excluded(start) => self.0.partition_point(|(s, _)| s <= start),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(end) => self.0.partition_point(|(s, _)| s <= end),
            Bound::Excluded(end) => self.position(*end),
            Bound::Unbounded => self.0.len(),
        };
        // An empty range may have its end before its start.
        from..to.max(from)
    }
}

/// From tiles in any order, as a `BTreeMap` collects them: sorted by start, and of tiles with
/// the same start the last one kept. Stored tiles are written in order, one per start, so a
/// snapshot only ever takes the check; sorting keeps any other input reading as it did.
impl FromIterator<Tile> for TileMap {
    fn from_iter<T: IntoIterator<Item = Tile>>(tiles: T) -> TileMap {
        let mut tiles: Vec<Tile> = tiles.into_iter().collect();
        if !tiles.is_sorted_by(|a, b| a.0 < b.0) {
            // Stable: tiles with the same start stay in input order, and the last one stays.
            tiles.sort_by_key(|(start, _)| *start);
            tiles.dedup_by(|next, kept| {
                let same = next.0 == kept.0;
                if same {
                    std::mem::swap(next, kept);
                }
                same
            });
        }
        TileMap(tiles.into())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn partials(n: i64) -> Vec<Partial> {
        vec![Partial::Count(n)]
    }

    fn entries(map: &TileMap) -> Vec<(Micros, i64)> {
        map.iter().map(|(start, p)| (*start, count(p))).collect()
    }

    fn model_entries<'a>(
        tiles: impl Iterator<Item = (&'a Micros, &'a Vec<Partial>)>,
    ) -> Vec<(Micros, i64)> {
        tiles.map(|(start, p)| (*start, count(p))).collect()
    }

    fn count(partials: &[Partial]) -> i64 {
        match partials {
            [Partial::Count(n)] => *n,
            other => panic!("{other:?}"),
        }
    }

    /// One change to the map and to its model.
    #[derive(Debug, Clone)]
    enum Op {
        /// Adds one to the tile at a start (made if missing).
        Add(Micros),
        /// Drops the tiles starting before a start.
        DropBefore(Micros),
        /// Drains the tiles starting in a range.
        Drain(Micros, Micros),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            // Mostly in time order, as events come.
            6 => (0i64..60).prop_map(Op::Add),
            1 => (0i64..60).prop_map(Op::DropBefore),
            1 => (0i64..60, 0i64..60).prop_map(|(a, b)| Op::Drain(a, b)),
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_a_btreemap(ops in prop::collection::vec(op(), 0..80), ranges in prop::collection::vec((-5i64..65, -5i64..65), 1..8)) {
            let mut map = TileMap::default();
            let mut model: BTreeMap<Micros, Vec<Partial>> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Add(start) => {
                        let tile = map.get_or_insert_with(start, || partials(0));
                        tile[0] = Partial::Count(count(tile) + 1);
                        let tile = model.entry(start).or_insert_with(|| partials(0));
                        tile[0] = Partial::Count(count(tile) + 1);
                    }
                    Op::DropBefore(start) => {
                        let dropped: Vec<_> = map.drain(..start).map(|(s, p)| (s, count(&p))).collect();
                        let kept = model.split_off(&start);
                        let expected = model_entries(model.iter());
                        model = kept;
                        prop_assert_eq!(dropped, expected);
                    }
                    Op::Drain(from, to) => {
                        let drained: Vec<_> = map.drain(from..to).map(|(s, p)| (s, count(&p))).collect();
                        let expected = if from < to { model_entries(model.range(from..to)) } else { Vec::new() };
                        model.retain(|start, _| !(from..to).contains(start));
                        prop_assert_eq!(drained, expected);
                    }
                }
                prop_assert_eq!(entries(&map), model_entries(model.iter()));
                prop_assert_eq!(map.len(), model.len());
                prop_assert_eq!(map.first_start(), model.first_key_value().map(|(s, _)| *s));
                prop_assert_eq!(map.last_start(), model.last_key_value().map(|(s, _)| *s));
            }
            for (from, to) in ranges {
                let got: Vec<_> = map.range(from..to).map(|(s, p)| (*s, count(p))).collect();
                let expected = if from < to { model_entries(model.range(from..to)) } else { Vec::new() };
                prop_assert_eq!(got, expected);
                let got: Vec<_> = map.range(from..).map(|(s, _)| *s).collect();
                prop_assert_eq!(got, model.range(from..).map(|(s, _)| *s).collect::<Vec<_>>());
                let got: Vec<_> = map.range(..=to).map(|(s, _)| *s).collect();
                prop_assert_eq!(got, model.range(..=to).map(|(s, _)| *s).collect::<Vec<_>>());
            }
            let values: Vec<i64> = map.values().map(|p| count(p)).collect();
            prop_assert_eq!(values, model.values().map(|p| count(p)).collect::<Vec<_>>());
            let model_map: TileMap = model.into_iter().collect();
            prop_assert_eq!(map, model_map);
        }

        #[test]
        fn collects_as_a_btreemap_does(tiles in prop::collection::vec((0i64..20, 0i64..1000), 0..40)) {
            let tiles: Vec<Tile> = tiles.into_iter().map(|(start, n)| (start, partials(n))).collect();
            let map: TileMap = tiles.iter().cloned().collect();
            let model: BTreeMap<Micros, Vec<Partial>> = tiles.into_iter().collect();
            prop_assert_eq!(entries(&map), model_entries(model.iter()));
        }
    }
}

//! Every function, window kind and compaction mode against a brute-force computation over the
//! raw events.

use std::collections::BTreeMap;

use super::partial::{as_f64, compare};
use super::*;
use crate::registry::aggregation::{AggregateFeature, Function};
use crate::registry::types::DataType;
use crate::registry::Field;
use crate::store::row::{encode_row, split_values, EncodedValue};
use proptest::prelude::*;

const I: Micros = 10;

/// Calls `f` with `values` as a shard reads an event's: from the bytes of a stored row.
fn with_encoded<R>(values: &[Value], f: impl FnOnce(&[EncodedValue]) -> R) -> R {
    let mut row = Vec::new();
    encode_row(values, &mut row);
    let mut inputs = Vec::new();
    split_values(&row, &mut inputs).expect("a row just encoded");
    f(&inputs)
}

fn add_event(
    tiles: &mut TileSet,
    spec: &AggregationSpec,
    time: Micros,
    seq: u64,
    values: &[Value],
) {
    with_encoded(values, |inputs| tiles.add(spec, time, seq, inputs));
}

fn add_value(partial: &mut Partial, function: Function, time: Micros, seq: u64, value: &Value) {
    with_encoded(std::slice::from_ref(value), |inputs| {
        partial.add(function, time, seq, inputs[0])
    });
}

fn spec(function: Function, window: Window) -> AggregationSpec {
    AggregationSpec {
        interval: I,
        leading_edge: crate::registry::aggregation::LeadingEdge::WallClockTime,
        inputs: vec![Field {
            name: "x".into(),
            data_type: DataType::Int64,
        }],
        aggregates: vec![AggregateFeature {
            input: 0,
            function,
            window,
        }],
        compaction: None,
    }
}

/// The same aggregate computed from the raw events, the slow obvious way.
fn brute_force(
    function: Function,
    events: &[(Micros, u64, Value)],
    from: Micros,
    to: Micros,
) -> Option<Value> {
    let mut inside: Vec<&(Micros, u64, Value)> = events
        .iter()
        .filter(|e| e.0 >= from && e.0 < to && !e.2.is_null())
        .collect();
    type Event<'a> = &'a (Micros, u64, Value);
    inside.sort_by_key(|e| (e.0, e.1));
    if inside.is_empty() {
        return None;
    }
    let numbers: Vec<f64> = inside.iter().filter_map(|e| as_f64(&e.2)).collect();
    let n = numbers.len() as f64;
    let mean = numbers.iter().sum::<f64>() / n;
    let m2: f64 = numbers.iter().map(|x| (x - mean).powi(2)).sum();
    fn values(list: Vec<Event>) -> Value {
        Value::Array(list.iter().map(|e| e.2.clone()).collect())
    }
    fn distinct(ordered: Vec<Event>) -> Vec<Event> {
        let mut seen: Vec<Value> = Vec::new();
        let mut out = Vec::new();
        for e in ordered {
            if !seen.contains(&e.2) {
                seen.push(e.2.clone());
                out.push(e);
            }
        }
        out
    }
    Some(match function {
        Function::Count => Value::Int64(inside.len() as i64),
        Function::Sum => Value::Int64(
            inside
                .iter()
                .map(|e| if let Value::Int64(i) = e.2 { i } else { 0 })
                .sum(),
        ),
        Function::Mean => Value::Float64(mean),
        Function::VarPop => Value::Float64(m2 / n),
        Function::StddevPop => Value::Float64((m2 / n).sqrt()),
        Function::VarSamp if n > 1.0 => Value::Float64(m2 / (n - 1.0)),
        Function::StddevSamp if n > 1.0 => Value::Float64((m2 / (n - 1.0)).sqrt()),
        Function::VarSamp | Function::StddevSamp => return None,
        Function::Min => inside.iter().map(|e| e.2.clone()).min_by(compare).unwrap(),
        Function::Max => inside.iter().map(|e| e.2.clone()).max_by(compare).unwrap(),
        Function::Last => inside.last().unwrap().2.clone(),
        Function::LastN(k) => values(inside.iter().rev().take(k).rev().copied().collect()),
        Function::FirstN(k) => values(inside.iter().take(k).copied().collect()),
        Function::LastDistinctN(k) => {
            let mut newest_first = distinct(inside.iter().rev().copied().collect());
            newest_first.truncate(k);
            newest_first.reverse();
            values(newest_first)
        }
        Function::FirstDistinctN(k) => {
            values(distinct(inside.to_vec()).into_iter().take(k).collect())
        }
        Function::ApproxCountDistinct(_) | Function::ApproxPercentile { .. } => {
            unreachable!("the sketches are checked against their error bounds instead")
        }
    })
}

fn close(a: &Option<Value>, b: &Option<Value>) -> bool {
    match (a, b) {
        (Some(Value::Float64(x)), Some(Value::Float64(y))) => {
            (x - y).abs() <= 1e-6 * (1.0 + x.abs().max(y.abs()))
        }
        _ => a == b,
    }
}

fn functions() -> impl Strategy<Value = Function> {
    prop_oneof![
        Just(Function::Count),
        Just(Function::Sum),
        Just(Function::Mean),
        Just(Function::Min),
        Just(Function::Max),
        Just(Function::Last),
        Just(Function::VarSamp),
        Just(Function::VarPop),
        Just(Function::StddevSamp),
        Just(Function::StddevPop),
        (1usize..4).prop_map(Function::LastN),
        (1usize..4).prop_map(Function::FirstN),
        (1usize..4).prop_map(Function::LastDistinctN),
        (1usize..4).prop_map(Function::FirstDistinctN),
    ]
}

proptest! {
    /// Every function, over random event streams (ties and nulls included), windows with
    /// offsets and request times, equals the brute-force computation over the raw events.
    #[test]
    fn tiles_agree_with_brute_force(
        function in functions(),
        raw in prop::collection::vec((0i64..200, prop::option::of(-5i64..5)), 0..40),
        size_tiles in 1i64..8,
        offset_tiles in 0i64..3,
        end_tile in 0i64..25,
    ) {
        let window = Window::Time { size: size_tiles * I, offset: offset_tiles * I };
        let spec = spec(function, window);
        let events: Vec<(Micros, u64, Value)> = raw.iter().enumerate()
            .map(|(seq, (t, v))| (*t, seq as u64, v.map_or(Value::Null, Value::Int64)))
            .collect();
        let mut tiles = TileSet::default();
        for event in &events {
            add_event(&mut tiles, &spec, event.0, event.1, std::slice::from_ref(&event.2));
        }
        let end = end_tile * I;
        // Windows that reach before the horizon of the latest event are not served from
        // dropped tiles: compare only windows the engine keeps tiles for.
        let keep_from = tile_start(tiles.latest_event, I) - spec.horizon();
        prop_assume!(end - (offset_tiles + size_tiles) * I >= keep_from);
        let expected = brute_force(function, &events, end - (offset_tiles + size_tiles) * I, end - offset_tiles * I);
        let got = tiles.values(&spec, end, AggregateMask::ALL).remove(0);
        prop_assert!(close(&got, &expected), "{function:?}: got {got:?}, expected {expected:?}");
    }

    /// The sketches, merged across tiles, stay within their error bounds of the exact answer.
    #[test]
    fn sketches_stay_within_their_error_bounds(raw in prop::collection::vec((0i64..100, -1000i64..1000), 1..400), q in 0.0f64..=1.0) {
        let window = Window::Time { size: 20 * I, offset: 0 };
        let mut spec = spec(Function::ApproxCountDistinct(10), window);
        spec.aggregates.push(AggregateFeature { input: 0, function: Function::ApproxPercentile { quantile_millionths: (q * 1e6).round() as u32, precision: 100 }, window });
        let mut tiles = TileSet::default();
        for (seq, (t, v)) in raw.iter().enumerate() {
            add_event(&mut tiles, &spec, *t, seq as u64, &[Value::Int64(*v)]);
        }
        let values = tiles.values(&spec, 10 * I + 100, AggregateMask::ALL);
        // A read of one aggregate computes that one alone, the same as in a whole read.
        let quantile_only = tiles.values(&spec, 10 * I + 100, AggregateMask::from_bits(0b10));
        prop_assert_eq!(&quantile_only, &vec![None, values[1].clone()]);
        let distinct = raw.iter().map(|(_, v)| v).collect::<std::collections::BTreeSet<_>>().len() as f64;
        let Some(Value::Int64(estimate)) = values[0] else { panic!("no estimate") };
        // 1.04 / sqrt(1024) is one standard error; allow four, plus one for tiny sets.
        prop_assert!((estimate as f64 - distinct).abs() <= 4.0 * 0.0325 * distinct + 1.0, "{estimate} vs {distinct}");
        let mut sorted: Vec<f64> = raw.iter().map(|(_, v)| *v as f64).collect();
        sorted.sort_by(f64::total_cmp);
        let exact = sorted[((f64::from((q * 1e6).round() as u32) / 1e6) * (sorted.len() - 1) as f64).floor() as usize];
        let Some(Value::Float64(got)) = values[1] else { panic!("no quantile") };
        prop_assert!((got - exact).abs() <= 0.0101 * exact.abs() + 1e-9, "{got} vs {exact} at q {q}");
    }

    /// With compaction, a window equals the brute-force answer over the window stretched back
    /// to the start of the coarse tile its start falls in (Tecton's sawtooth), and a key
    /// keeps at most two coarse widths of fine tiles.
    #[test]
    fn compacted_windows_are_sawtooth_windows(
        function in functions(),
        raw in prop::collection::vec((0i64..400, prop::option::of(-5i64..5)), 1..60),
        size_tiles in 1i64..20,
        end_tile in 38i64..46,
    ) {
        const COARSE: Micros = 4 * I;
        let mut spec = spec(function, Window::Time { size: size_tiles * I, offset: 0 });
        spec.compaction = Some(COARSE);
        let events: Vec<(Micros, u64, Value)> = raw.iter().enumerate().map(|(seq, (t, v))| (*t, seq as u64, v.map_or(Value::Null, Value::Int64))).collect();
        let mut tiles = TileSet::default();
        for event in &events {
            add_event(&mut tiles, &spec, event.0, event.1, std::slice::from_ref(&event.2));
        }
        let fine = tiles.tiles.range(tiles.coarse_until..).count() as i64;
        prop_assert!(fine <= 2 * COARSE / I + 1, "{fine} fine tiles");
        let end = end_tile * I;
        let from = end - size_tiles * I;
        prop_assume!(end >= tiles.coarse_until && from >= tile_start(tiles.latest_event, I) - spec.horizon());
        let from = if from < tiles.coarse_until { tile_start(from, COARSE) } else { from };
        let expected = brute_force(function, &events, from, end);
        let got = tiles.values(&spec, end, AggregateMask::ALL).remove(0);
        prop_assert!(close(&got, &expected), "{function:?}: got {got:?}, expected {expected:?}");
    }

    /// A time-window series is the list of the time windows it stands for, oldest first.
    #[test]
    fn series_are_lists_of_windows(raw in prop::collection::vec((0i64..200, -5i64..5), 1..40), end_tile in 5i64..25) {
        let series = Window::Series { size: 2 * I, start: 4 * I, end: 0, step: I };
        let mut spec = spec(Function::Sum, series);
        for offset in [3, 2, 1, 0] {
            spec.aggregates.push(AggregateFeature { input: 0, function: Function::Sum, window: Window::Time { size: 2 * I, offset: offset * I } });
        }
        let mut tiles = TileSet::default();
        for (seq, (t, v)) in raw.iter().enumerate() {
            add_event(&mut tiles, &spec, *t, seq as u64, &[Value::Int64(*v)]);
        }
        let values = tiles.values(&spec, end_tile * I, AggregateMask::ALL);
        let singles: Vec<Value> = values[1..].iter().cloned().map(Option::unwrap_or_default).collect();
        let expected = singles.iter().any(|v| !v.is_null()).then_some(Value::Array(singles));
        prop_assert_eq!(values[0].clone(), expected);
    }

    #[test]
    fn tile_sets_round_trip_through_their_stored_form(raw in prop::collection::vec((0i64..500, prop::option::of(-5i64..5)), 0..30)) {
        let mut spec = spec(Function::LastDistinctN(2), Window::Lifetime);
        let sketches = [Function::ApproxCountDistinct(4), Function::ApproxPercentile { quantile_millionths: 500_000, precision: 50 }];
        for function in [Function::Sum, Function::Mean, Function::Min, Function::Last, Function::Count].into_iter().chain(sketches) {
            spec.aggregates.push(AggregateFeature { input: 0, function, window: Window::Time { size: 3 * I, offset: 0 } });
        }
        let mut tiles = TileSet::default();
        for (seq, (t, v)) in raw.iter().enumerate() {
            add_event(&mut tiles, &spec, *t, seq as u64, &[v.map_or(Value::Null, Value::Int64)]);
        }
        let bytes = crate::persist::format::encode(&to_stored(3, b"key", &tiles));
        let stored = crate::persist::format::decode(&bytes).unwrap();
        prop_assert_eq!(from_stored(stored).unwrap(), (3, b"key".to_vec(), tiles));
    }

    #[test]
    fn lifetime_windows_survive_compaction(raw in prop::collection::vec((0i64..500, -5i64..5), 1..60), end_tile in 0i64..60) {
        let mut spec = spec(Function::Count, Window::Lifetime);
        spec.aggregates.push(AggregateFeature { input: 0, function: Function::Sum, window: Window::Time { size: 2 * I, offset: 0 } });
        let mut tiles = TileSet::default();
        for (seq, (t, v)) in raw.iter().enumerate() {
            add_event(&mut tiles, &spec, *t, seq as u64, &[Value::Int64(*v)]);
        }
        let end = end_tile * I;
        let expected = raw.iter().filter(|(t, _)| *t < end).count() as i64;
        prop_assume!(end >= tile_start(tiles.latest_event, I) - spec.horizon());
        prop_assert_eq!(tiles.values(&spec, end, AggregateMask::ALL)[0].clone(), (expected > 0).then_some(Value::Int64(expected)));
        prop_assert!(tiles.tiles.len() as i64 <= spec.horizon() / I + 1, "tiles stay bounded");
    }
}

/// A one-minute interval, so the roll-ups have 12- and 144-tile blocks.
const MINUTE: Micros = 60 * crate::time::MICROS_PER_SECOND;

/// While it lives, keys build their roll-ups from their first tile, as the tests of the
/// roll-ups' own invariants need (`rollup::FROM_FIRST_TILE`).
struct RollupsFromFirstTile;

impl RollupsFromFirstTile {
    fn new() -> RollupsFromFirstTile {
        super::rollup::FROM_FIRST_TILE.with(|on| on.set(true));
        RollupsFromFirstTile
    }
}

impl Drop for RollupsFromFirstTile {
    fn drop(&mut self) {
        super::rollup::FROM_FIRST_TILE.with(|on| on.set(false));
    }
}

/// Tiles built from `events`, and the same tiles without roll-ups (a stored form read back),
/// which read every fine tile.
fn with_and_without_rollups(
    spec: &AggregationSpec,
    events: &[(Micros, u64, Value)],
) -> (TileSet, TileSet) {
    let mut tiles = TileSet::default();
    for event in events {
        add_event(
            &mut tiles,
            spec,
            event.0,
            event.1,
            std::slice::from_ref(&event.2),
        );
    }
    let (_, _, fine_only) = from_stored(to_stored(0, b"k", &tiles)).unwrap();
    (tiles, fine_only)
}

fn minute_events(raw: &[(i64, i64, Option<i64>)]) -> Vec<(Micros, u64, Value)> {
    raw.iter()
        .enumerate()
        .map(|(seq, (tile, second, v))| {
            let time = tile * MINUTE + second * crate::time::MICROS_PER_SECOND;
            (time, seq as u64, v.map_or(Value::Null, Value::Int64))
        })
        .collect()
}

proptest! {
    /// Long windows read through the roll-ups agree with the raw events and with a read of
    /// every fine tile, for every function, window offset and end.
    #[test]
    fn rollups_answer_as_the_fine_tiles_do(
        function in functions(),
        raw in prop::collection::vec((0i64..3000, 0i64..60, prop::option::of(-5i64..5)), 0..120),
        size_tiles in 1i64..700,
        offset_tiles in 0i64..40,
        end_after_latest in -1i64..50,
    ) {
        let _from_first_tile = RollupsFromFirstTile::new();
        let mut spec = spec(function, Window::Time { size: size_tiles * MINUTE, offset: offset_tiles * MINUTE });
        spec.interval = MINUTE;
        // A lifetime window reads every tile left and what was compacted when tiles were
        // dropped: the roll-up straddling the drop must have lost those tiles too.
        spec.aggregates.push(AggregateFeature { input: 0, function: Function::Count, window: Window::Lifetime });
        let events = minute_events(&raw);
        let (tiles, fine_only) = with_and_without_rollups(&spec, &events);
        let end = tile_start(tiles.latest_event, MINUTE) + end_after_latest * MINUTE;
        let from = end - (offset_tiles + size_tiles) * MINUTE;
        prop_assume!(from >= tile_start(tiles.latest_event, MINUTE) - spec.horizon());
        let got = tiles.values(&spec, end, AggregateMask::ALL);
        let expected = brute_force(function, &events, from, end - offset_tiles * MINUTE);
        prop_assert!(close(&got[0], &expected), "{function:?}: got {got:?}, expected {expected:?}");
        let fine = fine_only.values(&spec, end, AggregateMask::ALL);
        prop_assert!(close(&got[0], &fine[0]));
        let lifetime = brute_force(Function::Count, &events, Micros::MIN, end);
        prop_assert_eq!((&got[1], &fine[1]), (&lifetime, &lifetime));
        // Blocks go with the tiles: no more than the horizon holds, plus a straddling one each.
        let blocks_per_level = |per_block: i64| spec.horizon() / (per_block * MINUTE) + 2;
        let starts = tiles.rollups.block_starts();
        prop_assert!(starts.iter().map(Vec::len).sum::<usize>() as i64 <= blocks_per_level(12) + blocks_per_level(144));
        // Events came in any order: each level's blocks are still in order, one per start, and
        // those a read can reach (from the first tile on) are the ones a rebuild makes.
        let mut rebuilt = fine_only.clone();
        rebuilt.rebuild_rollups(&spec);
        let first_tile = tiles.tiles.first_start().unwrap_or(Micros::MAX);
        for (level, rebuilt_level) in starts.iter().zip(rebuilt.rollups.block_starts()) {
            prop_assert!(level.windows(2).all(|pair| pair[0] < pair[1]));
            let (_, tail) = level.split_at(level.partition_point(|start| *start < first_tile));
            let (_, rebuilt_tail) = rebuilt_level.split_at(rebuilt_level.partition_point(|start| *start < first_tile));
            prop_assert_eq!(tail, rebuilt_tail);
        }
    }

    /// The sketches merge exactly in any order: through roll-ups they give the very same
    /// answer as the fine tiles, and a restored set rebuilds the same roll-ups.
    #[test]
    fn rollups_of_sketches_are_exact_and_rebuilt_after_a_restore(
        raw in prop::collection::vec((0i64..3000, 0i64..60, prop::option::of(-500i64..500)), 1..150),
        size_tiles in 1i64..700,
        end_tile in 0i64..3100,
    ) {
        let _from_first_tile = RollupsFromFirstTile::new();
        let mut spec = spec(Function::ApproxCountDistinct(8), Window::Time { size: size_tiles * MINUTE, offset: 0 });
        spec.aggregates.push(AggregateFeature { input: 0, function: Function::ApproxPercentile { quantile_millionths: 900_000, precision: 50 }, window: Window::Time { size: size_tiles * MINUTE, offset: 0 } });
        spec.interval = MINUTE;
        let (tiles, mut restored) = with_and_without_rollups(&spec, &minute_events(&raw));
        let end = end_tile * MINUTE;
        let got = tiles.values(&spec, end, AggregateMask::ALL);
        prop_assert_eq!(&got, &restored.values(&spec, end, AggregateMask::ALL));
        restored.rebuild_rollups(&spec);
        prop_assert_eq!(&got, &restored.values(&spec, end, AggregateMask::ALL));
    }
}

proptest! {
    /// As keys are built: a key reads its fine tiles until it has more than
    /// `BUILT_PAST_TILES` of them, then through roll-ups built from them and kept up event by
    /// event; either way every value is a read of the fine tiles' (bit for bit for the
    /// functions that merge exactly), and a key that never had that many tiles has no blocks.
    #[test]
    fn rollups_come_with_the_tiles_that_need_them(
        function in all_functions(),
        raw in prop::collection::vec((0i64..400, 0i64..60, prop::option::of(-5i64..5)), 0..120),
        size_tiles in 1i64..400,
        end_after_latest in -1i64..50,
    ) {
        let mut spec = spec(function, Window::Time { size: size_tiles * MINUTE, offset: 0 });
        spec.interval = MINUTE;
        let events = minute_events(&raw);
        let (tiles, fine_only) = with_and_without_rollups(&spec, &events);
        let end = tile_start(tiles.latest_event, MINUTE) + end_after_latest * MINUTE;
        prop_assume!(end - size_tiles * MINUTE >= tile_start(tiles.latest_event, MINUTE) - spec.horizon());
        let got = tiles.values(&spec, end, AggregateMask::ALL);
        let fine = fine_only.values(&spec, end, AggregateMask::ALL);
        if super::rollup::merges_exactly(function) {
            prop_assert_eq!(&got, &fine);
        } else {
            prop_assert!(close(&got[0], &fine[0]), "{function:?}: {got:?} against {fine:?}");
        }
        let tiles_ever: std::collections::BTreeSet<Micros> =
            events.iter().map(|event| tile_start(event.0, MINUTE)).collect();
        let has_blocks = tiles.rollups.block_starts().iter().any(|level| !level.is_empty());
        if tiles_ever.len() <= super::rollup::BUILT_PAST_TILES {
            prop_assert!(!has_blocks);
        }
        if tiles.tiles.len() > super::rollup::BUILT_PAST_TILES {
            prop_assert!(has_blocks);
        }
    }
}

fn all_functions() -> impl Strategy<Value = Function> {
    prop_oneof![
        functions(),
        Just(Function::ApproxCountDistinct(8)),
        Just(Function::ApproxPercentile {
            quantile_millionths: 500_000,
            precision: 50
        }),
    ]
}

proptest! {
    /// Merging borrows: a partial merged from the partials of any split of the events (left
    /// as they were) is the partial of all the events, for every function.
    #[test]
    fn a_merge_of_the_parts_is_the_whole(
        function in all_functions(),
        raw in prop::collection::vec((0i64..50, prop::option::of(-5i64..5), any::<bool>()), 0..40),
    ) {
        let mut whole = Partial::empty(function);
        let (mut left, mut right) = (Partial::empty(function), Partial::empty(function));
        for (seq, (time, value, goes_left)) in raw.iter().enumerate() {
            let value = value.map_or(Value::Null, Value::Int64);
            add_value(&mut whole, function, *time, seq as u64, &value);
            let part = if *goes_left { &mut left } else { &mut right };
            add_value(part, function, *time, seq as u64, &value);
        }
        let right_before = right.clone();
        left.merge(function, &right);
        prop_assert_eq!(&right, &right_before);
        prop_assert!(close(&left.finish(function), &whole.finish(function)), "{function:?}: {left:?} vs {whole:?}");
    }
}

proptest! {
    /// An ordered list takes an event in place exactly as merging a one-event list (push, sort,
    /// bound) would: ties in time and arrival, repeated values and nulls included.
    #[test]
    fn an_ordered_add_is_a_one_event_merge(
        function in prop_oneof![
            (0usize..5).prop_map(Function::LastN),
            (0usize..5).prop_map(Function::FirstN),
            (0usize..5).prop_map(Function::LastDistinctN),
            (0usize..5).prop_map(Function::FirstDistinctN),
        ],
        raw in prop::collection::vec((0i64..8, 0u64..4, prop::option::of(0i64..4)), 0..40),
    ) {
        let (mut added, mut merged) = (Partial::empty(function), Partial::empty(function));
        for (time, seq, value) in raw {
            let value = value.map_or(Value::Null, Value::Int64);
            add_value(&mut added, function, time, seq, &value);
            if !value.is_null() {
                merged.merge(function, &Partial::Ordered(vec![(time, seq, value)]));
            }
            prop_assert_eq!(&added, &merged);
        }
    }
}

/// The partial of one event, built from its decoded value without `add` (the arithmetic `add`
/// did on decoded values before it read their bytes): adding an event must merge as this.
fn one_event(function: Function, time: Micros, seq: u64, value: &Value) -> Partial {
    let mut single = Partial::empty(function);
    if value.is_null() {
        return single;
    }
    match (&mut single, function) {
        (Partial::Count(count), _) => *count = 1,
        (
            Partial::Sum {
                int,
                float,
                any,
                floats,
            },
            _,
        ) => {
            *any = true;
            match value {
                Value::Int64(i) => *int = *i,
                other => {
                    *float = as_f64(other).unwrap_or(0.0);
                    *floats = true;
                }
            }
        }
        (Partial::Moments { count, mean, .. }, _) => {
            *count = 1;
            *mean = as_f64(value).unwrap_or(0.0);
        }
        (Partial::Extreme(extreme), _) => *extreme = Some(value.clone()),
        (Partial::Last(last), _) => *last = Some((time, seq, value.clone())),
        (Partial::Ordered(events), _) => events.push((time, seq, value.clone())),
        (Partial::Hll(registers), Function::ApproxCountDistinct(precision)) => {
            // The registers stored before: the hash of the value's one-value row encoding.
            let mut row = Vec::new();
            encode_row(std::slice::from_ref(value), &mut row);
            let hash = xxhash_rust::xxh3::xxh3_64(&row);
            let index = (hash >> (64 - precision)) as usize;
            registers[index] =
                ((hash << precision) | (1 << (precision - 1))).leading_zeros() as u8 + 1;
        }
        (
            Partial::Quantiles {
                zeros,
                positive,
                negative,
            },
            Function::ApproxPercentile { precision, .. },
        ) => sketch::quantiles_add(zeros, positive, negative, precision, as_f64(value)),
        _ => unreachable!("an empty partial fits its function"),
    }
    single
}

fn event_values() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        (-5i64..5).prop_map(Value::Int64),
        (-1e3f64..1e3).prop_map(Value::Float64),
        (-1e3f32..1e3).prop_map(Value::Float32),
        any::<bool>().prop_map(Value::Bool),
        (0i64..4).prop_map(Value::Timestamp),
        "[a-c]{0,2}".prop_map(Value::String),
        // Past the 64 bytes HyperLogLog hashes from the stack.
        "[a-z]{60,70}".prop_map(Value::String),
        prop::collection::vec((0i64..3).prop_map(Value::Int64), 0..3).prop_map(Value::Array),
    ]
}

proptest! {
    /// Every function takes an event read from a stored row's bytes exactly as it merges the
    /// one-event partial of the decoded value: the same counts, sums, moments, kept values,
    /// HyperLogLog registers and quantile buckets, bit for bit.
    #[test]
    fn an_add_from_bytes_is_a_one_event_merge(
        function in all_functions(),
        raw in prop::collection::vec((0i64..8, 0u64..4, event_values()), 0..30),
    ) {
        let (mut added, mut merged) = (Partial::empty(function), Partial::empty(function));
        for (time, seq, value) in raw {
            add_value(&mut added, function, time, seq, &value);
            merged.merge(function, &one_event(function, time, seq, &value));
            prop_assert_eq!(&added, &merged, "{:?} after {:?}", function, value);
        }
    }
}

/// One step on a key's tiles: an event (minute tile, second, value), or a read of windows
/// ending at a minute tile for some of the four aggregates (mask bits).
#[derive(Debug, Clone)]
enum Step {
    Add(i64, i64, Option<i64>),
    Read(i64, u64),
}

/// `tiles.encoded_values`' row, as a read appends it.
fn encoded(
    tiles: &TileSet,
    spec: &AggregationSpec,
    end: Micros,
    end_repeats: bool,
    wanted: AggregateMask,
) -> Vec<u8> {
    let mut row = Vec::new();
    tiles.encoded_values(
        spec,
        end,
        end_repeats,
        wanted,
        &mut MemoReads::default(),
        &mut row,
    );
    row
}

/// The key's memo for `end` and `wanted`, copied out.
fn memoised(tiles: &TileSet, end: Micros, wanted: AggregateMask) -> Option<Vec<u8>> {
    let mut row = Vec::new();
    tiles
        .memo
        .copy_to(end, wanted, &mut MemoReads::default(), &mut row)
        .then_some(row)
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let add = (0i64..400, 0i64..60, prop::option::of(-5i64..5))
        .prop_map(|(tile, second, value)| Step::Add(tile, second, value));
    // Reads often repeat a few ends and masks, as a key's reads do between two boundaries.
    let read = (
        prop_oneof![0i64..420, 395i64..405],
        prop_oneof![0u64..16, Just(15u64)],
    )
        .prop_map(|(end, mask)| Step::Read(end, mask));
    prop::collection::vec(prop_oneof![add, read.clone(), read], 0..80)
}

proptest! {
    /// The memo never changes an answer: reads at random ends and aggregate masks, interleaved
    /// with events in and out of order, give the encoded values of a fresh walk for the same
    /// end and mask; a read leaves the memo for its end and mask, a write leaves none; with or
    /// without compaction (which coarsens and drops tiles), for every window kind.
    #[test]
    fn memoised_reads_are_fresh_walks(
        function in functions(),
        steps in steps(),
        size_tiles in 1i64..200,
        compaction in any::<bool>(),
    ) {
        let mut spec = spec(function, Window::Time { size: size_tiles * MINUTE, offset: 0 });
        spec.interval = MINUTE;
        spec.compaction = compaction.then_some(60 * MINUTE);
        let more = [
            (Function::Count, Window::Time { size: size_tiles * MINUTE, offset: 3 * MINUTE }),
            (Function::Sum, Window::Lifetime),
            (function, Window::Series { size: 2 * MINUTE, start: 4 * MINUTE, end: 0, step: MINUTE }),
        ];
        for (function, window) in more {
            spec.aggregates.push(AggregateFeature { input: 0, function, window });
        }
        let mut tiles = TileSet::default();
        for (seq, step) in steps.into_iter().enumerate() {
            match step {
                Step::Add(tile, second, value) => {
                    let time = tile * MINUTE + second * crate::time::MICROS_PER_SECOND;
                    add_event(&mut tiles, &spec, time, seq as u64, &[value.map_or(Value::Null, Value::Int64)]);
                    prop_assert!(tiles.memo.is_empty());
                }
                Step::Read(end, mask) => {
                    let (end, wanted) = (end * MINUTE, AggregateMask::from_bits(mask));
                    let (values, null) = (tiles.values(&spec, end, wanted), Value::Null);
                    let mut walked = Vec::new();
                    encode_row(values.iter().map(|v| v.as_ref().unwrap_or(&null)), &mut walked);
                    prop_assert_eq!(&encoded(&tiles, &spec, end, true, wanted), &walked);
                    prop_assert_eq!(memoised(&tiles, end, wanted), Some(walked));
                }
            }
        }
    }
}

/// A read whose end no later read can ask for (a continuous view's, by wall clock) answers as
/// a walk but publishes no memo, nor replaces the one a repeatable end left.
#[test]
fn a_read_at_an_end_that_cannot_repeat_publishes_no_memo() {
    let mut spec = spec(
        Function::Sum,
        Window::Time {
            size: 100,
            offset: 0,
        },
    );
    spec.interval = 1;
    let mut tiles = TileSet::default();
    for (seq, time) in [3, 17, 42].into_iter().enumerate() {
        add_event(&mut tiles, &spec, time, seq as u64, &[Value::Int64(time)]);
    }
    let walked = |end| {
        let mut row = Vec::new();
        let values = tiles.values(&spec, end, AggregateMask::ALL);
        encode_row(values.iter().map(|v| v.as_ref().unwrap_or(&NULL)), &mut row);
        row
    };
    let (at_request_time, repeatable) = (50_123, 43);
    assert_eq!(
        encoded(&tiles, &spec, at_request_time, false, AggregateMask::ALL),
        walked(at_request_time)
    );
    assert!(tiles.memo.is_empty());
    assert_eq!(
        encoded(&tiles, &spec, repeatable, true, AggregateMask::ALL),
        walked(repeatable)
    );
    assert_eq!(
        encoded(
            &tiles,
            &spec,
            at_request_time + 1,
            false,
            AggregateMask::ALL
        ),
        walked(at_request_time + 1)
    );
    assert_eq!(
        memoised(&tiles, repeatable, AggregateMask::ALL),
        Some(walked(repeatable))
    );
}

/// Two inputs: a float (sums and moments round differently in another order) and a small int.
fn two_input_spec(aggregates: &[(usize, Function, i64, i64)]) -> AggregationSpec {
    let mut spec = spec(Function::Count, Window::Lifetime);
    spec.interval = MINUTE;
    spec.inputs.push(Field {
        name: "y".into(),
        data_type: DataType::Float64,
    });
    spec.aggregates = aggregates
        .iter()
        .map(|(input, function, size, offset)| AggregateFeature {
            input: *input,
            function: *function,
            window: Window::Time {
                size: size * MINUTE,
                offset: offset * MINUTE,
            },
        })
        .collect();
    spec
}

/// Events mostly in time order, some late (some past the horizon): (time, seq, [int, float]).
fn mostly_ordered_events(
    raw: &[(i64, i64, i64, Option<i64>, f64)],
) -> Vec<(Micros, u64, [Value; 2])> {
    let mut minutes: Vec<i64> = raw.iter().map(|e| e.0).collect();
    minutes.sort_unstable();
    raw.iter()
        .zip(minutes)
        .enumerate()
        .map(|(seq, ((_, second, late_by, int, float), minute))| {
            let time = (minute - late_by) * MINUTE + second * crate::time::MICROS_PER_SECOND;
            let int = int.map_or(Value::Null, Value::Int64);
            (time, seq as u64, [int, Value::Float64(*float)])
        })
        .collect()
}

/// The roll-ups as every block took every event: each block of both levels the per-event merge
/// of the events in it (one key's, none dropped: a read reaches only blocks after the horizon).
fn per_event_blocks(
    spec: &AggregationSpec,
    events: &[(Micros, u64, [Value; 2])],
) -> [BTreeMap<Micros, Vec<Partial>>; 2] {
    let widths = super::rollup::widths(spec).expect("no compaction");
    let mut levels: [BTreeMap<Micros, Vec<Partial>>; 2] = Default::default();
    for (time, seq, values) in events {
        for (blocks, width) in levels.iter_mut().zip(widths) {
            let block = blocks.entry(tile_start(*time, width)).or_insert_with(|| {
                spec.aggregates
                    .iter()
                    .map(|a| Partial::empty(a.function))
                    .collect()
            });
            with_encoded(values, |inputs| {
                super::partial::add_event(block, spec, *time, *seq, inputs)
            });
        }
    }
    levels
}

/// Aggregate `i` over `range`, merged as the plain walk merges (an independent statement of
/// it): from the range's start on, at each step the largest block (or the tile) that starts
/// there and fits in the range.
fn plain_walk(
    tiles: &TileSet,
    levels: &[BTreeMap<Micros, Vec<Partial>>; 2],
    spec: &AggregationSpec,
    i: usize,
    range: std::ops::Range<Micros>,
) -> Option<Value> {
    let function = spec.aggregates[i].function;
    let widths = super::rollup::widths(spec).expect("no compaction");
    let mut total = Partial::empty(function);
    let first_tile = tiles.tiles.first_start()?;
    let mut at = range.start.max(first_tile);
    while at < range.end {
        let block = (0..2)
            .rev()
            .find(|level| at % widths[*level] == 0 && at + widths[*level] <= range.end);
        let (width, partials) = match block {
            Some(level) => (widths[level], levels[level].get(&at)),
            None => (
                spec.interval,
                tiles.tiles.range(at..=at).next().map(|(_, p)| p),
            ),
        };
        if let Some(partials) = partials {
            total.merge(function, &partials[i]);
        }
        at += width;
    }
    total.finish(function)
}

/// A function over the int column (0) or the float one (1).
fn mixed_functions() -> impl Strategy<Value = (usize, Function)> {
    prop_oneof![
        functions().prop_map(|f| (0, f)),
        all_functions().prop_map(|f| (1, f)),
    ]
}

proptest! {
    /// Open blocks leave the exactly merging aggregates to their close: every value, over
    /// events mostly in order with late ones, is bit for bit what the plain walk merges from
    /// blocks that took every event (float sums and moments: the same partials in the same
    /// order); and after a restore mid-stream, the exactly merging ones still equal a read of
    /// the fine tiles.
    #[test]
    fn open_blocks_answer_as_blocks_of_every_event(
        aggregates in prop::collection::vec((mixed_functions(), 1i64..700, 0i64..40), 1..5),
        raw in prop::collection::vec(
            (0i64..3000, 0i64..60, prop_oneof![4 => Just(0i64), 1 => 0i64..900], prop::option::of(-5i64..5), -1e3f64..1e3),
            0..150,
        ),
        end_after_latest in -1i64..50,
        restore_at in 0usize..150,
    ) {
        let _from_first_tile = RollupsFromFirstTile::new();
        let aggregates: Vec<_> = aggregates.iter().map(|((input, f), size, offset)| (*input, *f, *size, *offset)).collect();
        let spec = two_input_spec(&aggregates);
        let events = mostly_ordered_events(&raw);
        let mut tiles = TileSet::default();
        let mut restored = TileSet::default();
        for (n, (time, seq, values)) in events.iter().enumerate() {
            add_event(&mut tiles, &spec, *time, *seq, values);
            add_event(&mut restored, &spec, *time, *seq, values);
            if n == restore_at {
                (_, _, restored) = from_stored(to_stored(0, b"k", &restored)).unwrap();
                restored.rebuild_rollups(&spec);
            }
        }
        let levels = per_event_blocks(&spec, &events);
        let (_, _, fine_only) = from_stored(to_stored(0, b"k", &tiles)).unwrap();
        let end = tile_start(tiles.latest_event, MINUTE) + end_after_latest * MINUTE;
        let keep_from = tile_start(tiles.latest_event, MINUTE) - spec.horizon();
        let got = tiles.values(&spec, end, AggregateMask::ALL);
        let fine = fine_only.values(&spec, end, AggregateMask::ALL);
        let after_restore = restored.values(&spec, end, AggregateMask::ALL);
        for (i, (_, function, size, offset)) in aggregates.iter().enumerate() {
            let range = end - (offset + size) * MINUTE..end - offset * MINUTE;
            if range.start < keep_from {
                continue;
            }
            let expected = plain_walk(&tiles, &levels, &spec, i, range);
            prop_assert_eq!(format!("{:?}", got[i]), format!("{expected:?}"), "{:?}", function);
            if super::rollup::merges_exactly(*function) {
                prop_assert_eq!(&got[i], &fine[i], "{:?}", function);
                prop_assert_eq!(&after_restore[i], &fine[i], "{:?}", function);
            }
        }
    }
}

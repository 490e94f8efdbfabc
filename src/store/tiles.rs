//! Tiled aggregation state: per key, one partial aggregate per aggregate feature for each
//! epoch-aligned tile of `aggregation_interval`, merged at read time over the complete tiles of
//! each window. Every partial merges associatively, so a window's value is exact.
//!
//! Tiles older than the view's horizon (longest window + offset + one tile) before the key's
//! latest event are never read again: they are dropped, or, when the view has lifetime
//! windows, merged into one `compacted` partial per aggregate. Memory per key is therefore
//! bounded by horizon / interval tiles.

use std::collections::BTreeMap;

use crate::registry::aggregation::{AggregationSpec, Function, Window};
use crate::registry::time::Micros;
use crate::registry::value::Value;

/// An event value with its time and arrival order (later arrival wins ties).
type Stamped = (Micros, u64, Value);

/// The partial aggregate of one function over some events.
#[derive(Debug, Clone, PartialEq)]
pub enum Partial {
    Count(i64),
    /// Int64 inputs add to `int`; float inputs to `float` (and set `floats`).
    Sum {
        int: i64,
        float: f64,
        any: bool,
        floats: bool,
    },
    /// Count, mean and sum of squared deviations (Chan et al.'s parallel merge).
    Moments {
        count: i64,
        mean: f64,
        m2: f64,
    },
    Extreme(Option<Value>),
    Last(Option<Stamped>),
    /// Bounded, ordered by (time, arrival): last(n), first(n) and their distinct forms.
    Ordered(Vec<Stamped>),
}

fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Int64(i) => Some(*i as f64),
        Value::Float64(f) => Some(*f),
        Value::Float32(f) => Some(f64::from(*f)),
        _ => None,
    }
}

/// Orders values of one type (ints, floats, strings).
fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Int64(x), Value::Int64(y)) => x.cmp(y),
        _ => as_f64(a)
            .unwrap_or(f64::NAN)
            .total_cmp(&as_f64(b).unwrap_or(f64::NAN)),
    }
}

impl Partial {
    pub fn empty(function: Function) -> Partial {
        match function {
            Function::Count => Partial::Count(0),
            Function::Sum => Partial::Sum {
                int: 0,
                float: 0.0,
                any: false,
                floats: false,
            },
            Function::Mean
            | Function::VarSamp
            | Function::VarPop
            | Function::StddevSamp
            | Function::StddevPop => Partial::Moments {
                count: 0,
                mean: 0.0,
                m2: 0.0,
            },
            Function::Min | Function::Max => Partial::Extreme(None),
            Function::Last => Partial::Last(None),
            Function::LastN(_)
            | Function::FirstN(_)
            | Function::LastDistinctN(_)
            | Function::FirstDistinctN(_) => Partial::Ordered(Vec::new()),
        }
    }

    /// Adds one event (nulls do not count).
    pub fn add(&mut self, function: Function, event: Stamped) {
        if event.2.is_null() {
            return;
        }
        let single = match function {
            Function::Count => Partial::Count(1),
            Function::Sum => match &event.2 {
                Value::Int64(i) => Partial::Sum {
                    int: *i,
                    float: 0.0,
                    any: true,
                    floats: false,
                },
                other => Partial::Sum {
                    int: 0,
                    float: as_f64(other).unwrap_or(0.0),
                    any: true,
                    floats: true,
                },
            },
            Function::Mean
            | Function::VarSamp
            | Function::VarPop
            | Function::StddevSamp
            | Function::StddevPop => Partial::Moments {
                count: 1,
                mean: as_f64(&event.2).unwrap_or(0.0),
                m2: 0.0,
            },
            Function::Min | Function::Max => Partial::Extreme(Some(event.2)),
            Function::Last => Partial::Last(Some(event)),
            _ => Partial::Ordered(vec![event]),
        };
        self.merge(function, single);
    }

    /// Merges another partial of the same function into this one.
    pub fn merge(&mut self, function: Function, other: Partial) {
        match (self, other) {
            (Partial::Count(a), Partial::Count(b)) => *a += b,
            (
                Partial::Sum {
                    int,
                    float,
                    any,
                    floats,
                },
                Partial::Sum {
                    int: i2,
                    float: f2,
                    any: a2,
                    floats: fl2,
                },
            ) => {
                *int = int.saturating_add(i2);
                *float += f2;
                *any |= a2;
                *floats |= fl2;
            }
            (
                Partial::Moments { count, mean, m2 },
                Partial::Moments {
                    count: c2,
                    mean: mean2,
                    m2: m22,
                },
            ) => {
                if c2 == 0 {
                    return;
                }
                let total = *count + c2;
                let delta = mean2 - *mean;
                *m2 += m22 + delta * delta * (*count as f64) * (c2 as f64) / total as f64;
                *mean += delta * c2 as f64 / total as f64;
                *count = total;
            }
            (Partial::Extreme(a), Partial::Extreme(Some(b))) => {
                let keep_new = match a {
                    None => true,
                    Some(current) => match function {
                        Function::Min => compare(&b, current).is_lt(),
                        _ => compare(&b, current).is_gt(),
                    },
                };
                if keep_new {
                    *a = Some(b);
                }
            }
            (Partial::Last(a), Partial::Last(Some(b)))
                if a.as_ref()
                    .is_none_or(|current| (b.0, b.1) >= (current.0, current.1)) =>
            {
                *a = Some(b);
            }
            (Partial::Ordered(a), Partial::Ordered(b)) => {
                a.extend(b);
                bound(function, a);
            }
            _ => {}
        }
    }

    /// The feature value; `None` for a window without events.
    pub fn finish(&self, function: Function) -> Option<Value> {
        match self {
            Partial::Count(0)
            | Partial::Sum { any: false, .. }
            | Partial::Moments { count: 0, .. } => None,
            Partial::Count(n) => Some(Value::Int64(*n)),
            Partial::Sum {
                int, floats: false, ..
            } => Some(Value::Int64(*int)),
            Partial::Sum { int, float, .. } => Some(Value::Float64(*float + *int as f64)),
            Partial::Moments { count, mean, m2 } => {
                let (n, mean, m2) = (*count as f64, *mean, *m2);
                Some(Value::Float64(match function {
                    Function::Mean => mean,
                    Function::VarPop => m2 / n,
                    Function::StddevPop => (m2 / n).sqrt(),
                    Function::VarSamp if *count > 1 => m2 / (n - 1.0),
                    Function::StddevSamp if *count > 1 => (m2 / (n - 1.0)).sqrt(),
                    _ => return None,
                }))
            }
            Partial::Extreme(value) => value.clone(),
            Partial::Last(event) => event.as_ref().map(|e| e.2.clone()),
            Partial::Ordered(events) if events.is_empty() => None,
            Partial::Ordered(events) => {
                Some(Value::Array(events.iter().map(|e| e.2.clone()).collect()))
            }
        }
    }
}

/// Keeps what last(n)/first(n)/…_distinct(n) need, ascending by (time, arrival).
fn bound(function: Function, events: &mut Vec<Stamped>) {
    events.sort_by_key(|e| (e.0, e.1));
    match function {
        Function::LastN(n) => {
            let excess = events.len().saturating_sub(n);
            events.drain(..excess);
        }
        Function::FirstN(n) => events.truncate(n),
        Function::LastDistinctN(n) => keep_distinct(events, n, true),
        Function::FirstDistinctN(n) => keep_distinct(events, n, false),
        _ => {}
    }
}

/// Keeps each distinct value's latest (or earliest) occurrence, and of those the `n` newest (or
/// oldest), in time order.
fn keep_distinct(events: &mut Vec<Stamped>, n: usize, newest: bool) {
    let mut seen: Vec<&Value> = Vec::new();
    let mut keep = vec![false; events.len()];
    let order: Box<dyn Iterator<Item = usize>> = if newest {
        Box::new((0..events.len()).rev())
    } else {
        Box::new(0..events.len())
    };
    for i in order {
        if !seen.contains(&&events[i].2) {
            seen.push(&events[i].2);
            keep[i] = seen.len() <= n;
        }
    }
    let mut index = 0;
    events.retain(|_| {
        index += 1;
        keep[index - 1]
    });
}

/// The tiles of one key of one view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TileSet {
    /// Tile start -> one partial per aggregate.
    pub tiles: BTreeMap<Micros, Vec<Partial>>,
    /// Tiles merged once past the horizon (only for views with lifetime windows).
    pub compacted: Option<Vec<Partial>>,
    pub latest_event: Micros,
}

/// The start of the tile holding `time`.
pub fn tile_start(time: Micros, interval: Micros) -> Micros {
    time.div_euclid(interval) * interval
}

impl TileSet {
    /// Adds one event (`inputs` in the spec's input order).
    pub fn add(&mut self, spec: &AggregationSpec, event_time: Micros, seq: u64, inputs: &[Value]) {
        let start = tile_start(event_time, spec.interval);
        let tile = self.tiles.entry(start).or_insert_with(|| {
            spec.aggregates
                .iter()
                .map(|a| Partial::empty(a.function))
                .collect()
        });
        for (partial, aggregate) in tile.iter_mut().zip(&spec.aggregates) {
            let value = inputs.get(aggregate.input).cloned().unwrap_or(Value::Null);
            partial.add(aggregate.function, (event_time, seq, value));
        }
        self.latest_event = self.latest_event.max(event_time);
        self.drop_old(spec);
    }

    /// Drops (or compacts) tiles no window ending at or after the latest event can reach.
    fn drop_old(&mut self, spec: &AggregationSpec) {
        let keep_from = tile_start(self.latest_event, spec.interval) - spec.horizon();
        let old: Vec<Micros> = self
            .tiles
            .range(..keep_from)
            .map(|(start, _)| *start)
            .collect();
        for start in old {
            let tile = self.tiles.remove(&start).expect("listed above");
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
                    into.merge(aggregate.function, from);
                }
            }
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

    /// Each aggregate's value over its window ending at `end` (a tile boundary).
    pub fn values(&self, spec: &AggregationSpec, end: Micros) -> Vec<Option<Value>> {
        spec.aggregates
            .iter()
            .enumerate()
            .map(|(i, aggregate)| {
                let mut total = Partial::empty(aggregate.function);
                let range = match aggregate.window {
                    Window::Time { size, offset } => (end - offset - size)..(end - offset),
                    Window::Lifetime => {
                        if let Some(compacted) = &self.compacted {
                            total.merge(aggregate.function, compacted[i].clone());
                        }
                        Micros::MIN..end
                    }
                };
                for tile in self.tiles.range(range).map(|(_, tile)| tile) {
                    total.merge(aggregate.function, tile[i].clone());
                }
                total.finish(aggregate.function)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::aggregation::AggregateFeature;
    use crate::registry::types::DataType;
    use crate::registry::Field;
    use proptest::prelude::*;

    const I: Micros = 10;

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
                tiles.add(&spec, event.0, event.1, std::slice::from_ref(&event.2));
            }
            let end = end_tile * I;
            // Windows that reach before the horizon of the latest event are not served from
            // dropped tiles: compare only windows the engine keeps tiles for.
            let keep_from = tile_start(tiles.latest_event, I) - spec.horizon();
            prop_assume!(end - (offset_tiles + size_tiles) * I >= keep_from);
            let expected = brute_force(function, &events, end - (offset_tiles + size_tiles) * I, end - offset_tiles * I);
            let got = tiles.values(&spec, end).remove(0);
            prop_assert!(close(&got, &expected), "{function:?}: got {got:?}, expected {expected:?}");
        }

        #[test]
        fn tile_sets_round_trip_through_bytes(raw in prop::collection::vec((0i64..500, prop::option::of(-5i64..5)), 0..30)) {
            let mut spec = spec(Function::LastDistinctN(2), Window::Lifetime);
            for function in [Function::Sum, Function::Mean, Function::Min, Function::Last, Function::Count] {
                spec.aggregates.push(AggregateFeature { input: 0, function, window: Window::Time { size: 3 * I, offset: 0 } });
            }
            let mut tiles = TileSet::default();
            for (seq, (t, v)) in raw.iter().enumerate() {
                tiles.add(&spec, *t, seq as u64, &[v.map_or(Value::Null, Value::Int64)]);
            }
            prop_assert_eq!(encoding::decode(&encoding::encode(&tiles)).unwrap(), tiles);
        }

        #[test]
        fn lifetime_windows_survive_compaction(raw in prop::collection::vec((0i64..500, -5i64..5), 1..60), end_tile in 0i64..60) {
            let mut spec = spec(Function::Count, Window::Lifetime);
            spec.aggregates.push(AggregateFeature { input: 0, function: Function::Sum, window: Window::Time { size: 2 * I, offset: 0 } });
            let mut tiles = TileSet::default();
            for (seq, (t, v)) in raw.iter().enumerate() {
                tiles.add(&spec, *t, seq as u64, &[Value::Int64(*v)]);
            }
            let end = end_tile * I;
            let expected = raw.iter().filter(|(t, _)| *t < end).count() as i64;
            prop_assume!(end >= tile_start(tiles.latest_event, I) - spec.horizon());
            prop_assert_eq!(tiles.values(&spec, end)[0].clone(), (expected > 0).then_some(Value::Int64(expected)));
            prop_assert!(tiles.tiles.len() as i64 <= spec.horizon() / I + 1, "tiles stay bounded");
        }
    }
}

/// The byte form of a tile set in a snapshot: `latest_event`, the compacted partials (if any),
/// then each tile's start and partials. Partials are written as rows of values (see `row.rs`).
pub mod encoding {
    use super::{Partial, TileSet};
    use crate::registry::value::Value;
    use crate::store::row::{decode_row, encode_row, CorruptRow};

    fn partial_values(partial: &Partial) -> Vec<Value> {
        let stamped = |e: &(i64, u64, Value)| {
            Value::Struct(vec![
                Value::Int64(e.0),
                Value::Int64(e.1 as i64),
                e.2.clone(),
            ])
        };
        match partial {
            Partial::Count(n) => vec![Value::Int64(0), Value::Int64(*n)],
            Partial::Sum {
                int,
                float,
                any,
                floats,
            } => vec![
                Value::Int64(1),
                Value::Int64(*int),
                Value::Float64(*float),
                Value::Bool(*any),
                Value::Bool(*floats),
            ],
            Partial::Moments { count, mean, m2 } => vec![
                Value::Int64(2),
                Value::Int64(*count),
                Value::Float64(*mean),
                Value::Float64(*m2),
            ],
            Partial::Extreme(v) => vec![Value::Int64(3), v.clone().unwrap_or(Value::Null)],
            Partial::Last(e) => vec![Value::Int64(4), e.as_ref().map_or(Value::Null, stamped)],
            Partial::Ordered(events) => vec![
                Value::Int64(5),
                Value::Array(events.iter().map(stamped).collect()),
            ],
        }
    }

    fn partial_from(values: &[Value]) -> Option<Partial> {
        let int = |v: &Value| {
            if let Value::Int64(i) = v {
                Some(*i)
            } else {
                None
            }
        };
        let float = |v: &Value| {
            if let Value::Float64(f) = v {
                Some(*f)
            } else {
                None
            }
        };
        let boolean = |v: &Value| {
            if let Value::Bool(b) = v {
                Some(*b)
            } else {
                None
            }
        };
        let stamped = |v: &Value| match v {
            Value::Struct(parts) if parts.len() == 3 => {
                Some((int(&parts[0])?, int(&parts[1])? as u64, parts[2].clone()))
            }
            _ => None,
        };
        Some(match (int(values.first()?)?, &values[1..]) {
            (0, [n]) => Partial::Count(int(n)?),
            (1, [i, f, a, fl]) => Partial::Sum {
                int: int(i)?,
                float: float(f)?,
                any: boolean(a)?,
                floats: boolean(fl)?,
            },
            (2, [c, m, m2]) => Partial::Moments {
                count: int(c)?,
                mean: float(m)?,
                m2: float(m2)?,
            },
            (3, [v]) => Partial::Extreme(Some(v.clone()).filter(|v| !v.is_null())),
            (4, [Value::Null]) => Partial::Last(None),
            (4, [e]) => Partial::Last(Some(stamped(e)?)),
            (5, [Value::Array(events)]) => {
                Partial::Ordered(events.iter().map(stamped).collect::<Option<_>>()?)
            }
            _ => return None,
        })
    }

    fn partials_value(partials: &[Partial]) -> Value {
        Value::Array(
            partials
                .iter()
                .map(|p| Value::Array(partial_values(p)))
                .collect(),
        )
    }

    fn partials_from(value: &Value) -> Option<Vec<Partial>> {
        match value {
            Value::Array(items) => items
                .iter()
                .map(|p| {
                    if let Value::Array(v) = p {
                        partial_from(v)
                    } else {
                        None
                    }
                })
                .collect(),
            _ => None,
        }
    }

    pub fn encode(tiles: &TileSet) -> Vec<u8> {
        let mut values = vec![
            Value::Int64(tiles.latest_event),
            tiles
                .compacted
                .as_deref()
                .map_or(Value::Null, partials_value),
        ];
        for (start, partials) in &tiles.tiles {
            values.push(Value::Int64(*start));
            values.push(partials_value(partials));
        }
        let mut out = Vec::new();
        encode_row(&values, &mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<TileSet, CorruptRow> {
        let corrupt = || CorruptRow(0);
        let values = decode_row(bytes)?;
        let [Value::Int64(latest_event), compacted, rest @ ..] = values.as_slice() else {
            return Err(corrupt());
        };
        let compacted = match compacted {
            Value::Null => None,
            other => Some(partials_from(other).ok_or_else(corrupt)?),
        };
        let mut tiles = TileSet {
            tiles: Default::default(),
            compacted,
            latest_event: *latest_event,
        };
        for pair in rest.chunks(2) {
            match pair {
                [Value::Int64(start), partials] => {
                    tiles
                        .tiles
                        .insert(*start, partials_from(partials).ok_or_else(corrupt)?);
                }
                _ => return Err(corrupt()),
            }
        }
        Ok(tiles)
    }
}

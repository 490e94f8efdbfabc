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
    /// HyperLogLog registers.
    Hll(Vec<u8>),
    /// DDSketch buckets: counts by logarithmic bucket index, for positive and negative values,
    /// and the count of zeros.
    Quantiles {
        zeros: u64,
        positive: BTreeMap<i32, u64>,
        negative: BTreeMap<i32, u64>,
    },
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
            Function::ApproxCountDistinct(precision) => Partial::Hll(vec![0; 1 << precision]),
            Function::ApproxPercentile { .. } => Partial::Quantiles {
                zeros: 0,
                positive: BTreeMap::new(),
                negative: BTreeMap::new(),
            },
        }
    }

    /// Adds one event (nulls do not count).
    pub fn add(&mut self, function: Function, event: Stamped) {
        if event.2.is_null() {
            return;
        }
        // The sketches update in place.
        match (function, &mut *self) {
            (Function::ApproxCountDistinct(precision), Partial::Hll(registers)) => {
                return sketch::hll_add(registers, precision, &event.2)
            }
            (
                Function::ApproxPercentile { precision, .. },
                Partial::Quantiles {
                    zeros,
                    positive,
                    negative,
                },
            ) => return sketch::quantiles_add(zeros, positive, negative, precision, &event.2),
            _ => {}
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
            Function::LastN(_)
            | Function::FirstN(_)
            | Function::LastDistinctN(_)
            | Function::FirstDistinctN(_) => Partial::Ordered(vec![event]),
            // Handled in place above.
            Function::ApproxCountDistinct(_) | Function::ApproxPercentile { .. } => return,
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
            (Partial::Hll(a), Partial::Hll(b)) => {
                for (x, y) in a.iter_mut().zip(b) {
                    *x = (*x).max(y);
                }
            }
            (
                Partial::Quantiles {
                    zeros,
                    positive,
                    negative,
                },
                Partial::Quantiles {
                    zeros: z2,
                    positive: p2,
                    negative: n2,
                },
            ) => {
                *zeros += z2;
                for (index, count) in p2 {
                    *positive.entry(index).or_default() += count;
                }
                for (index, count) in n2 {
                    *negative.entry(index).or_default() += count;
                }
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
            Partial::Hll(registers) => sketch::hll_estimate(registers).map(Value::Int64),
            Partial::Quantiles {
                zeros,
                positive,
                negative,
            } => match function {
                Function::ApproxPercentile {
                    quantile_millionths,
                    precision,
                } => sketch::quantile(
                    *zeros,
                    positive,
                    negative,
                    precision,
                    f64::from(quantile_millionths) / 1e6,
                )
                .map(Value::Float64),
                _ => None,
            },
        }
    }
}

/// The two sketches: HyperLogLog for distinct counts, DDSketch for quantiles.
mod sketch {
    use std::collections::BTreeMap;

    use super::as_f64;
    use crate::registry::value::Value;
    use crate::store::row::encode_row;

    pub fn hll_add(registers: &mut [u8], precision: u8, value: &Value) {
        let mut bytes = Vec::new();
        encode_row(std::slice::from_ref(value), &mut bytes);
        let hash = xxhash_rust::xxh3::xxh3_64(&bytes);
        let index = (hash >> (64 - precision)) as usize;
        let rank = ((hash << precision) | (1 << (precision - 1))).leading_zeros() as u8 + 1;
        registers[index] = registers[index].max(rank);
    }

    /// The HyperLogLog estimate, with linear counting for small cardinalities.
    pub fn hll_estimate(registers: &[u8]) -> Option<i64> {
        if registers.iter().all(|r| *r == 0) {
            return None;
        }
        let m = registers.len() as f64;
        let alpha = match registers.len() {
            16 => 0.673,
            32 => 0.697,
            64 => 0.709,
            _ => 0.7213 / (1.0 + 1.079 / m),
        };
        let sum: f64 = registers.iter().map(|r| 2f64.powi(-i32::from(*r))).sum();
        let raw = alpha * m * m / sum;
        let zeros = registers.iter().filter(|r| **r == 0).count();
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        Some(estimate.round() as i64)
    }

    fn gamma(precision: u32) -> f64 {
        let alpha = 1.0 / f64::from(precision);
        (1.0 + alpha) / (1.0 - alpha)
    }

    /// Counts a value in its logarithmic bucket (NaN and infinities are left out).
    pub fn quantiles_add(
        zeros: &mut u64,
        positive: &mut BTreeMap<i32, u64>,
        negative: &mut BTreeMap<i32, u64>,
        precision: u32,
        value: &Value,
    ) {
        let Some(x) = as_f64(value).filter(|x| x.is_finite()) else {
            return;
        };
        if x == 0.0 {
            *zeros += 1;
            return;
        }
        let index = (x.abs().ln() / gamma(precision).ln()).ceil() as i32;
        *if x > 0.0 { positive } else { negative }
            .entry(index)
            .or_default() += 1;
    }

    /// The value at rank `q * (count - 1)`, within relative error 1/precision.
    pub fn quantile(
        zeros: u64,
        positive: &BTreeMap<i32, u64>,
        negative: &BTreeMap<i32, u64>,
        precision: u32,
        q: f64,
    ) -> Option<f64> {
        let count = zeros + positive.values().sum::<u64>() + negative.values().sum::<u64>();
        if count == 0 {
            return None;
        }
        let g = gamma(precision);
        let value_of = |index: i32| 2.0 * g.powi(index) / (g + 1.0);
        let rank = (q * (count - 1) as f64).floor() as u64;
        let mut seen = 0;
        for (index, n) in negative.iter().rev() {
            seen += n;
            if seen > rank {
                return Some(-value_of(*index));
            }
        }
        seen += zeros;
        if seen > rank {
            return Some(0.0);
        }
        for (index, n) in positive {
            seen += n;
            if seen > rank {
                return Some(value_of(*index));
            }
        }
        None
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
#[derive(Debug, Clone, PartialEq)]
pub struct TileSet {
    /// Tile start -> one partial per aggregate.
    pub tiles: BTreeMap<Micros, Vec<Partial>>,
    /// Tiles merged once past the horizon (only for views with lifetime windows).
    pub compacted: Option<Vec<Partial>>,
    pub latest_event: Micros,
    /// With compaction: tiles starting before this are coarse (one per compaction width).
    pub coarse_until: Micros,
}

impl Default for TileSet {
    fn default() -> TileSet {
        TileSet {
            tiles: BTreeMap::new(),
            compacted: None,
            latest_event: 0,
            coarse_until: Micros::MIN,
        }
    }
}

/// The start of the tile holding `time`.
pub fn tile_start(time: Micros, interval: Micros) -> Micros {
    time.div_euclid(interval) * interval
}

impl TileSet {
    /// Adds one event (`inputs` in the spec's input order).
    pub fn add(&mut self, spec: &AggregationSpec, event_time: Micros, seq: u64, inputs: &[Value]) {
        let start = self.tile_of(spec, event_time);
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
        self.coarsen(spec);
        self.drop_old(spec);
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
        let fine: Vec<Micros> = self
            .tiles
            .range(self.coarse_until..boundary)
            .map(|(start, _)| *start)
            .collect();
        let mut merged: BTreeMap<Micros, Vec<Partial>> = BTreeMap::new();
        for start in fine {
            let tile = self.tiles.remove(&start).expect("listed above");
            let into = merged.entry(tile_start(start, coarse)).or_insert_with(|| {
                spec.aggregates
                    .iter()
                    .map(|a| Partial::empty(a.function))
                    .collect()
            });
            for ((into, from), aggregate) in into.iter_mut().zip(tile).zip(&spec.aggregates) {
                into.merge(aggregate.function, from);
            }
        }
        self.tiles.extend(merged);
        self.coarse_until = boundary;
    }

    /// Drops (or compacts) tiles no window ending at or after the latest event can reach.
    fn drop_old(&mut self, spec: &AggregationSpec) {
        let keep_from = tile_start(self.latest_event, spec.interval) - spec.horizon();
        // A tile goes once it ends before `keep_from` (coarse tiles are wider).
        let width = |start: Micros| match spec.compaction {
            Some(coarse) if start < self.coarse_until => coarse,
            _ => spec.interval,
        };
        let old: Vec<Micros> = self
            .tiles
            .range(..keep_from)
            .map(|(start, _)| *start)
            .filter(|start| start + width(*start) <= keep_from)
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

    /// The tile starts a window `[from, to)` reads: when `from` falls among coarse tiles, the
    /// window starts at that coarse tile's start (Tecton's sawtooth windows).
    fn window(&self, spec: &AggregationSpec, from: Micros, to: Micros) -> std::ops::Range<Micros> {
        match spec.compaction {
            Some(coarse) if from < self.coarse_until => tile_start(from, coarse)..to,
            _ => from..to,
        }
    }

    /// The merged partial of aggregate `i` over tiles starting in `range`.
    fn merged(&self, i: usize, function: Function, range: std::ops::Range<Micros>) -> Partial {
        let mut total = Partial::empty(function);
        for tile in self.tiles.range(range).map(|(_, tile)| tile) {
            total.merge(function, tile[i].clone());
        }
        total
    }

    /// Each aggregate's value over its window ending at `end` (a tile boundary).
    pub fn values(&self, spec: &AggregationSpec, end: Micros) -> Vec<Option<Value>> {
        spec.aggregates
            .iter()
            .enumerate()
            .map(|(i, aggregate)| match aggregate.window {
                Window::Time { size, offset } => self
                    .merged(
                        i,
                        aggregate.function,
                        self.window(spec, end - offset - size, end - offset),
                    )
                    .finish(aggregate.function),
                Window::Lifetime => {
                    let mut total = self.merged(i, aggregate.function, Micros::MIN..end);
                    if let Some(compacted) = &self.compacted {
                        total.merge(aggregate.function, compacted[i].clone());
                    }
                    total.finish(aggregate.function)
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
                    let values: Vec<Option<Value>> = offsets
                        .map(|o| {
                            self.merged(
                                i,
                                aggregate.function,
                                self.window(spec, end - o - size, end - o),
                            )
                            .finish(aggregate.function)
                        })
                        .collect();
                    values.iter().any(Option::is_some).then(|| {
                        Value::Array(values.into_iter().map(Option::unwrap_or_default).collect())
                    })
                }
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

        /// The sketches, merged across tiles, stay within their error bounds of the exact answer.
        #[test]
        fn sketches_stay_within_their_error_bounds(raw in prop::collection::vec((0i64..100, -1000i64..1000), 1..400), q in 0.0f64..=1.0) {
            let window = Window::Time { size: 20 * I, offset: 0 };
            let mut spec = spec(Function::ApproxCountDistinct(10), window);
            spec.aggregates.push(AggregateFeature { input: 0, function: Function::ApproxPercentile { quantile_millionths: (q * 1e6).round() as u32, precision: 100 }, window });
            let mut tiles = TileSet::default();
            for (seq, (t, v)) in raw.iter().enumerate() {
                tiles.add(&spec, *t, seq as u64, &[Value::Int64(*v)]);
            }
            let values = tiles.values(&spec, 10 * I + 100);
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
                tiles.add(&spec, event.0, event.1, std::slice::from_ref(&event.2));
            }
            let fine = tiles.tiles.range(tiles.coarse_until..).count() as i64;
            prop_assert!(fine <= 2 * COARSE / I + 1, "{fine} fine tiles");
            let end = end_tile * I;
            let from = end - size_tiles * I;
            prop_assume!(end >= tiles.coarse_until && from >= tile_start(tiles.latest_event, I) - spec.horizon());
            let from = if from < tiles.coarse_until { tile_start(from, COARSE) } else { from };
            let expected = brute_force(function, &events, from, end);
            let got = tiles.values(&spec, end).remove(0);
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
                tiles.add(&spec, *t, seq as u64, &[Value::Int64(*v)]);
            }
            let values = tiles.values(&spec, end_tile * I);
            let singles: Vec<Value> = values[1..].iter().cloned().map(Option::unwrap_or_default).collect();
            let expected = singles.iter().any(|v| !v.is_null()).then_some(Value::Array(singles));
            prop_assert_eq!(values[0].clone(), expected);
        }

        #[test]
        fn tile_sets_round_trip_through_bytes(raw in prop::collection::vec((0i64..500, prop::option::of(-5i64..5)), 0..30)) {
            let mut spec = spec(Function::LastDistinctN(2), Window::Lifetime);
            let sketches = [Function::ApproxCountDistinct(4), Function::ApproxPercentile { quantile_millionths: 500_000, precision: 50 }];
            for function in [Function::Sum, Function::Mean, Function::Min, Function::Last, Function::Count].into_iter().chain(sketches) {
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
            Partial::Hll(registers) => vec![
                Value::Int64(6),
                Value::Array(
                    registers
                        .iter()
                        .map(|r| Value::Int64(i64::from(*r)))
                        .collect(),
                ),
            ],
            Partial::Quantiles {
                zeros,
                positive,
                negative,
            } => {
                let buckets = |map: &std::collections::BTreeMap<i32, u64>| {
                    Value::Array(
                        map.iter()
                            .map(|(i, n)| {
                                Value::Struct(vec![
                                    Value::Int64(i64::from(*i)),
                                    Value::Int64(*n as i64),
                                ])
                            })
                            .collect(),
                    )
                };
                vec![
                    Value::Int64(7),
                    Value::Int64(*zeros as i64),
                    buckets(positive),
                    buckets(negative),
                ]
            }
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
            (6, [Value::Array(registers)]) => Partial::Hll(
                registers
                    .iter()
                    .map(|r| int(r).and_then(|r| u8::try_from(r).ok()))
                    .collect::<Option<_>>()?,
            ),
            (7, [zeros, Value::Array(positive), Value::Array(negative)]) => {
                let buckets = |items: &Vec<Value>| -> Option<std::collections::BTreeMap<i32, u64>> {
                    items
                        .iter()
                        .map(|b| match b {
                            Value::Struct(parts) if parts.len() == 2 => Some((
                                i32::try_from(int(&parts[0])?).ok()?,
                                u64::try_from(int(&parts[1])?).ok()?,
                            )),
                            _ => None,
                        })
                        .collect()
                };
                Partial::Quantiles {
                    zeros: u64::try_from(int(zeros)?).ok()?,
                    positive: buckets(positive)?,
                    negative: buckets(negative)?,
                }
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
            Value::Int64(tiles.coarse_until),
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
        let [Value::Int64(latest_event), Value::Int64(coarse_until), compacted, rest @ ..] =
            values.as_slice()
        else {
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
            coarse_until: *coarse_until,
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

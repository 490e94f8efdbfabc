//! Partial aggregates: one per aggregate function, built from events, merged associatively
//! (counts, sums, Chan's parallel moments, extremes, last, bounded ordered lists, and the two
//! sketches) and finished into a feature value.

use std::collections::BTreeMap;

use super::sketch;
use crate::registry::aggregation::{AggregationSpec, Function};
use crate::registry::value::Value;
use crate::store::row::EncodedValue;
use crate::time::Micros;

/// An event value with its time and arrival order (later arrival wins ties).
pub type Stamped = (Micros, u64, Value);

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

/// Merges moments (count, mean, m2) into others, by Chan et al.'s parallel formula.
fn add_moments(
    (count, mean, m2): (&mut i64, &mut f64, &mut f64),
    (c2, mean2, m22): (i64, f64, f64),
) {
    if c2 == 0 {
        return;
    }
    let total = *count + c2;
    let delta = mean2 - *mean;
    *m2 += m22 + delta * delta * (*count as f64) * (c2 as f64) / total as f64;
    *mean += delta * c2 as f64 / total as f64;
    *count = total;
}

/// Adds sum `(i2, f2, a2, fl2)` (its int part, float part, whether it saw a value, whether a
/// float) into a sum's fields: a merge, and an event's add (the one-event sum).
fn add_sums(
    (int, float, any, floats): (&mut i64, &mut f64, &mut bool, &mut bool),
    (i2, f2, a2, fl2): (i64, f64, bool, bool),
) {
    *int = int.saturating_add(i2);
    *float += f2;
    *any |= a2;
    *floats |= fl2;
}

pub(super) fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Int64(i) => Some(*i as f64),
        Value::Float64(f) => Some(*f),
        Value::Float32(f) => Some(f64::from(*f)),
        _ => None,
    }
}

/// Orders values of one type (ints, floats, strings).
pub(super) fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
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

    /// Adds one event (nulls do not count), its value as the bytes of a stored row: counts,
    /// sums, moments and the sketches read it without decoding it (HyperLogLog hashes the bytes
    /// themselves); only the functions that keep values (min, max, last, the ordered ones)
    /// decode it, last and the ordered ones only when they keep it.
    pub fn add(&mut self, function: Function, event_time: Micros, seq: u64, value: EncodedValue) {
        if value.is_null() {
            return;
        }
        // In place: the same arithmetic as merging a one-event partial, without building one
        // (or, for a sum, building one that allocates nothing).
        match self {
            Partial::Count(count) => *count += 1,
            // The merge of a one-event sum, without building one and matching it again.
            Partial::Sum {
                int,
                float,
                any,
                floats,
            } => {
                let single = match value.int64() {
                    Some(i) => (i, 0.0, true, false),
                    None => (0, value.number().unwrap_or(0.0), true, true),
                };
                add_sums((int, float, any, floats), single);
            }
            Partial::Moments { count, mean, m2 } => {
                add_moments((count, mean, m2), (1, value.number().unwrap_or(0.0), 0.0))
            }
            Partial::Extreme(current) => {
                let value = value.decode();
                if extreme_replaces(function, &value, current.as_ref()) {
                    *current = Some(value);
                }
            }
            Partial::Last(current) => {
                if last_replaces((event_time, seq), current.as_ref()) {
                    *current = Some((event_time, seq, value.decode()));
                }
            }
            Partial::Ordered(events) => insert_ordered(function, events, (event_time, seq), value),
            Partial::Hll(registers) => {
                if let Function::ApproxCountDistinct(precision) = function {
                    sketch::hll_add(registers, precision, value);
                }
            }
            Partial::Quantiles {
                zeros,
                positive,
                negative,
            } => {
                if let Function::ApproxPercentile { precision, .. } = function {
                    let number = value.number();
                    sketch::quantiles_add(zeros, positive, negative, precision, number);
                }
            }
        }
    }

    /// Merges another partial of the same function into this one. It is borrowed (reads merge
    /// the tiles they keep): only what this partial keeps of it is copied.
    ///
    /// The match is exhaustive over `self`, so a new kind of partial does not compile without
    /// its merge. Partials of different kinds never meet: a tile holds one partial per
    /// aggregate, and restored tiles are checked with `TileSet::fits` first.
    pub fn merge(&mut self, function: Function, other: &Partial) {
        match self {
            Partial::Count(a) => {
                let Partial::Count(b) = other else {
                    return kinds_differ();
                };
                *a += b;
            }
            Partial::Sum {
                int,
                float,
                any,
                floats,
            } => {
                let Partial::Sum {
                    int: i2,
                    float: f2,
                    any: a2,
                    floats: fl2,
                } = other
                else {
                    return kinds_differ();
                };
                add_sums((int, float, any, floats), (*i2, *f2, *a2, *fl2));
            }
            Partial::Moments { count, mean, m2 } => {
                let Partial::Moments {
                    count: c2,
                    mean: mean2,
                    m2: m22,
                } = other
                else {
                    return kinds_differ();
                };
                add_moments((count, mean, m2), (*c2, *mean2, *m22));
            }
            Partial::Extreme(a) => {
                let Partial::Extreme(b) = other else {
                    return kinds_differ();
                };
                let Some(b) = b else { return };
                if extreme_replaces(function, b, a.as_ref()) {
                    *a = Some(b.clone());
                }
            }
            Partial::Last(a) => {
                let Partial::Last(b) = other else {
                    return kinds_differ();
                };
                let Some(b) = b else { return };
                if last_replaces((b.0, b.1), a.as_ref()) {
                    *a = Some(b.clone());
                }
            }
            Partial::Ordered(a) => {
                let Partial::Ordered(b) = other else {
                    return kinds_differ();
                };
                a.extend(b.iter().cloned());
                bound(function, a);
            }
            Partial::Hll(a) => {
                let Partial::Hll(b) = other else {
                    return kinds_differ();
                };
                for (x, y) in a.iter_mut().zip(b) {
                    *x = (*x).max(*y);
                }
            }
            Partial::Quantiles {
                zeros,
                positive,
                negative,
            } => {
                let Partial::Quantiles {
                    zeros: z2,
                    positive: p2,
                    negative: n2,
                } = other
                else {
                    return kinds_differ();
                };
                *zeros += z2;
                for (index, count) in p2 {
                    *positive.entry(*index).or_default() += count;
                }
                for (index, count) in n2 {
                    *negative.entry(*index).or_default() += count;
                }
            }
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

/// Adds one event to a tile's (or a roll-up block's) partials, one per aggregate of `spec`;
/// `inputs` are its values as a stored row's bytes (an input the row lacks is null).
pub(super) fn add_event(
    partials: &mut [Partial],
    spec: &AggregationSpec,
    event_time: Micros,
    seq: u64,
    inputs: &[EncodedValue],
) {
    add_event_where(partials, spec, event_time, seq, inputs, |_| true);
}

/// `add_event` for the aggregates whose function `takes` picks (an open roll-up block's).
pub(super) fn add_event_where(
    partials: &mut [Partial],
    spec: &AggregationSpec,
    event_time: Micros,
    seq: u64,
    inputs: &[EncodedValue],
    takes: impl Fn(Function) -> bool,
) {
    for (partial, aggregate) in partials.iter_mut().zip(&spec.aggregates) {
        if !takes(aggregate.function) {
            continue;
        }
        let value = inputs.get(aggregate.input).copied();
        partial.add(
            aggregate.function,
            event_time,
            seq,
            value.unwrap_or(EncodedValue::NULL),
        );
    }
}

/// Whether `value` replaces the current min (or max).
fn extreme_replaces(function: Function, value: &Value, current: Option<&Value>) -> bool {
    current.is_none_or(|current| match function {
        Function::Min => compare(value, current).is_lt(),
        _ => compare(value, current).is_gt(),
    })
}

/// Whether an event at (time, arrival) replaces the current last one (later arrival wins ties).
fn last_replaces(event: (Micros, u64), current: Option<&Stamped>) -> bool {
    current.is_none_or(|current| event >= (current.0, current.1))
}

/// A merge of partials of different kinds: a bug, caught in debug builds; a release build
/// leaves the partial as it was rather than take a shard down.
fn kinds_differ() {
    debug_assert!(false, "partials of different kinds never merge");
}

/// Adds one event to a bounded ordered list (what `bound` left): the same list as pushing it
/// and bounding again, without the sort, moving only the events between its place and the one
/// it displaces, and decoding the value only if the list compares it (distinct forms) or it
/// stays. An event goes after those of equal (time, arrival), as the stable sort put it.
fn insert_ordered(
    function: Function,
    events: &mut Vec<Stamped>,
    (event_time, seq): (Micros, u64),
    value: EncodedValue,
) {
    let at = events.partition_point(|e| (e.0, e.1) <= (event_time, seq));
    let (n, newest, distinct) = match function {
        Function::LastN(n) => (n, true, false),
        Function::FirstN(n) => (n, false, false),
        Function::LastDistinctN(n) => (n, true, true),
        Function::FirstDistinctN(n) => (n, false, true),
        _ => return,
    };
    // Decoded once: up front when the list compares values, else when the event stays.
    let decoded = distinct.then(|| value.decode());
    let event = |decoded: Option<Value>| {
        let value = decoded.unwrap_or_else(|| value.decode());
        (event_time, seq, value)
    };
    if events.len() > n {
        // Never left by `bound`; bound it the long way rather than assume.
        events.insert(at, event(decoded));
        return bound(function, events);
    }
    // A distinct list holds an equal value at most once: it is either replaced by the event or
    // outlives it (the later occurrence for last_distinct, the earlier for first_distinct).
    let same = decoded
        .as_ref()
        .and_then(|value| events.iter().position(|e| e.2 == *value));
    if let Some(same) = same {
        if newest != (at > same) {
            return;
        }
        if at > same {
            events[same..at].rotate_left(1);
            events[at - 1] = event(decoded);
        } else {
            events[at..=same].rotate_right(1);
            events[at] = event(decoded);
        }
        return;
    }
    if events.len() < n {
        return events.insert(at, event(decoded));
    }
    // Full: the oldest (or newest) of the n + 1 goes, which may be the event itself.
    if newest && at > 0 {
        events[0] = event(decoded);
        events[..at].rotate_left(1);
    } else if !newest && at < n {
        events[n - 1] = event(decoded);
        events[at..].rotate_right(1);
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

//! The two sketches: HyperLogLog for distinct counts, DDSketch for quantiles.

use std::collections::BTreeMap;

use crate::store::row::EncodedValue;

pub fn hll_add(registers: &mut [u8], precision: u8, value: EncodedValue) {
    // The hash of the value's one-value row encoding, as registers stored before were built.
    let hash = value.hash();
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

/// Counts a value (its number; `None`: not a number) in its logarithmic bucket (NaN and
/// infinities are left out).
pub fn quantiles_add(
    zeros: &mut u64,
    positive: &mut BTreeMap<i32, u64>,
    negative: &mut BTreeMap<i32, u64>,
    precision: u32,
    number: Option<f64>,
) {
    let Some(x) = number.filter(|x| x.is_finite()) else {
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

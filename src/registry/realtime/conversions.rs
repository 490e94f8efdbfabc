//! CEL's `int` and `uint` as the CEL spec defines them over a double: cel-interpreter 0.10's
//! convert NaN to 0 and 2^63 (2^64 for `uint`) to the largest integer, where the spec (and its
//! conformance tests) make a conversion whose value is NaN or out of the target's range an
//! error. These check a double themselves and leave every other argument to the crate's own.

use cel_interpreter::extractors::This;
use cel_interpreter::{functions, FunctionContext, ResolveResult, Value as Cel};

/// 2^63, the first double past `i64::MAX` (which no double equals: `i64::MAX as f64` is this).
const TWO_TO_63: f64 = 9_223_372_036_854_775_808.0;
/// 2^64, the first double past `u64::MAX`.
const TWO_TO_64: f64 = 18_446_744_073_709_551_616.0;

/// `int(x)`: a double is truncated if it lies in (-2^63, 2^63), as the spec's conformance tests
/// have it (-2^63 itself is refused there too); NaN and the infinities fail.
pub fn int(ftx: &FunctionContext, This(value): This<Cel>) -> ResolveResult {
    match value {
        // Written so that NaN, for which every comparison is false, fails too.
        Cel::Float(v) if !(v > -TWO_TO_63 && v < TWO_TO_63) => {
            Err(ftx.error(format!("{v} is out of int's range")))
        }
        value => functions::int(ftx, This(value)),
    }
}

/// `uint(x)`: a double is truncated if it lies in [0, 2^64); NaN, negative numbers and the
/// infinities fail.
pub fn uint(ftx: &FunctionContext, This(value): This<Cel>) -> ResolveResult {
    match value {
        // NaN is in no range.
        Cel::Float(v) if !(0.0..TWO_TO_64).contains(&v) => {
            Err(ftx.error(format!("{v} is out of uint's range")))
        }
        value => functions::uint(ftx, This(value)),
    }
}

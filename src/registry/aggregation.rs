//! Tiled aggregations as a stream feature view declares them: the functions (Tecton's table),
//! windows, leading-edge modes and Tecton's default feature names
//! (`{column}_{function}_{window}_{interval}`, e.g. `amt_mean_1d_10m`).

use super::types::DataType;
use crate::time::{Micros, MICROS_PER_SECOND};

/// An aggregation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    Last,
    VarSamp,
    VarPop,
    StddevSamp,
    StddevPop,
    LastN(usize),
    LastDistinctN(usize),
    FirstN(usize),
    FirstDistinctN(usize),
    /// HyperLogLog with 2^precision registers (precision 4..=16, Tecton's default 8).
    ApproxCountDistinct(u8),
    /// A relative-accuracy quantile sketch (DDSketch): the quantile in millionths, and the
    /// precision (accuracy 1/precision; Tecton's default 100).
    ApproxPercentile {
        quantile_millionths: u32,
        precision: u32,
    },
}

/// The supported functions, for error messages.
pub const FUNCTIONS: &str = "count, sum, mean, min, max, last, var_samp (variance), var_pop, stddev_samp (stddev), stddev_pop, last(n), last_distinct(n), first(n), first_distinct(n), approx_count_distinct[(precision)], approx_percentile(p[, precision])";

impl Function {
    /// Parses a function as written; answers it and the name it takes in feature names
    /// (`variance` and `stddev` keep their spelling, `last(3)` becomes `last_3`).
    pub fn parse(text: &str) -> Result<(Function, String), String> {
        let text = text.trim();
        let with_n = |prefix: &str| -> Option<Result<usize, String>> {
            let inner = text
                .strip_prefix(prefix)?
                .strip_prefix('(')?
                .strip_suffix(')')?;
            Some(match inner.trim().parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => Ok(n),
                _ => Err(format!("`{text}`: n must be an integer from 1 to 1000")),
            })
        };
        if let Some(sketch) = parse_sketch(text) {
            return sketch;
        }
        for (prefix, make) in [
            (
                "last_distinct",
                Function::LastDistinctN as fn(usize) -> Function,
            ),
            ("first_distinct", Function::FirstDistinctN),
            ("last", Function::LastN),
            ("first", Function::FirstN),
        ] {
            if let Some(n) = with_n(prefix) {
                let n = n?;
                return Ok((make(n), format!("{prefix}_{n}")));
            }
        }
        let function = match text {
            "count" => Function::Count,
            "sum" => Function::Sum,
            "mean" => Function::Mean,
            "min" => Function::Min,
            "max" => Function::Max,
            "last" => Function::Last,
            "var_samp" | "variance" => Function::VarSamp,
            "var_pop" => Function::VarPop,
            "stddev_samp" | "stddev" => Function::StddevSamp,
            "stddev_pop" => Function::StddevPop,
            "approx_count_distinct" => Function::ApproxCountDistinct(8),
            _ => {
                return Err(format!(
                    "unknown aggregation function `{text}`; supported: {FUNCTIONS}"
                ))
            }
        };
        Ok((function, text.to_string()))
    }

    /// The output type for an input column of type `input` (Tecton's table).
    pub fn output_type(self, input: &DataType) -> Result<DataType, String> {
        let numeric = matches!(
            input,
            DataType::Int64 | DataType::Float64 | DataType::Float32
        );
        let needs_numeric = |name: &str| -> Result<(), String> {
            if numeric {
                Ok(())
            } else {
                Err(format!(
                    "{name} needs an int64 or float column, not {input}"
                ))
            }
        };
        Ok(match self {
            Function::Count => DataType::Int64,
            Function::Sum => {
                needs_numeric("sum")?;
                if *input == DataType::Int64 {
                    DataType::Int64
                } else {
                    DataType::Float64
                }
            }
            Function::Mean
            | Function::VarSamp
            | Function::VarPop
            | Function::StddevSamp
            | Function::StddevPop => {
                needs_numeric("mean, variance and stddev")?;
                DataType::Float64
            }
            Function::Min | Function::Max => match input {
                DataType::Int64 | DataType::Float64 | DataType::String => input.clone(),
                DataType::Float32 => DataType::Float64,
                other => {
                    return Err(format!(
                        "min and max need an int64, float or string column, not {other}"
                    ))
                }
            },
            Function::Last => input.clone(),
            Function::LastN(_) | Function::FirstN(_) => DataType::Array(Box::new(input.clone())),
            Function::ApproxCountDistinct(_) => DataType::Int64,
            Function::ApproxPercentile { .. } => {
                needs_numeric("approx_percentile")?;
                DataType::Float64
            }
            Function::LastDistinctN(_) | Function::FirstDistinctN(_) => match input {
                DataType::String | DataType::Int64 => DataType::Array(Box::new(input.clone())),
                other => {
                    return Err(format!(
                        "distinct functions need a string or int64 column, not {other}"
                    ))
                }
            },
        })
    }
}

/// `approx_count_distinct(p)` and `approx_percentile(q[, precision])`, with their names in
/// feature names (`approx_count_distinct`, `approx_percentile_p0_5`).
fn parse_sketch(text: &str) -> Option<Result<(Function, String), String>> {
    let (name, args) = text.split_once('(')?;
    let args: Vec<&str> = args.strip_suffix(')')?.split(',').map(str::trim).collect();
    Some(match (name.trim(), args.as_slice()) {
        ("approx_count_distinct", [precision]) => match precision.parse::<u8>() {
            Ok(p) if (4..=16).contains(&p) => Ok((
                Function::ApproxCountDistinct(p),
                "approx_count_distinct".to_string(),
            )),
            _ => Err(format!(
                "`{text}`: the precision must be an integer from 4 to 16"
            )),
        },
        ("approx_percentile", [quantile, rest @ ..]) if rest.len() <= 1 => {
            let precision = match rest.first().map(|p| p.parse::<u32>()) {
                None => Ok(100),
                Some(Ok(p)) if (20..=10_000).contains(&p) => Ok(p),
                Some(_) => Err(format!(
                    "`{text}`: the precision must be an integer from 20 to 10000"
                )),
            };
            match (quantile.parse::<f64>(), precision) {
                (Ok(q), Ok(precision)) if (0.0..=1.0).contains(&q) => Ok((
                    Function::ApproxPercentile {
                        quantile_millionths: (q * 1e6).round() as u32,
                        precision,
                    },
                    format!("approx_percentile_p{}", quantile.replace('.', "_")),
                )),
                (_, Err(e)) => Err(e),
                _ => Err(format!(
                    "`{text}`: the percentile must be a number from 0 to 1"
                )),
            }
        }
        _ => return None,
    })
}

/// The time range an aggregate covers, relative to the window's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// `[end - offset - size, end - offset)`.
    Time { size: Micros, offset: Micros },
    /// Every event since the view started.
    Lifetime,
    /// Tecton's time-window series: windows of `size` ending `start - step`, `start - 2 step`,
    /// ... down to `end` before the window end, oldest first (an array result).
    Series {
        size: Micros,
        start: Micros,
        end: Micros,
        step: Micros,
    },
}

impl Window {
    /// How many windows a series has (those ending `start - k step >= end`, k = 1, 2, ...);
    /// 0 for other windows.
    pub fn series_len(&self) -> usize {
        match *self {
            Window::Series {
                start, end, step, ..
            } if step > 0 && start > end => usize::try_from((start - end) / step).unwrap_or(0),
            _ => 0,
        }
    }
}

/// Where the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadingEdge {
    /// At the last complete tile before the request time.
    WallClockTime,
    /// At the last complete tile before the latest event the view has seen.
    LatestEventTime,
}

impl LeadingEdge {
    /// Tecton's enum names, with or without the `AGGREGATION_MODE_` prefix.
    pub fn parse(text: &str) -> Option<LeadingEdge> {
        match text.trim_start_matches("AGGREGATION_MODE_") {
            "WALL_CLOCK_TIME" => Some(LeadingEdge::WallClockTime),
            "LATEST_EVENT_TIME" => Some(LeadingEdge::LatestEventTime),
            _ => None,
        }
    }
}

/// One aggregate feature of a view.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateFeature {
    /// Index into `AggregationSpec::inputs`.
    pub input: usize,
    pub function: Function,
    pub window: Window,
}

/// How a stream view aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregationSpec {
    /// The tile width.
    pub interval: Micros,
    pub leading_edge: LeadingEdge,
    /// The source columns the aggregates read, in first-use order; a row stores these.
    pub inputs: Vec<super::Field>,
    /// Parallel to the view's `features`.
    pub aggregates: Vec<AggregateFeature>,
    /// With Tecton's `compaction_enabled`: tiles older than a day are merged into daily
    /// tiles, and a window starting inside such a day takes the whole day (a sawtooth window).
    pub compaction: Option<Micros>,
}

impl AggregationSpec {
    /// How far back tiles are kept: the longest time window plus its offset, plus a tile.
    pub fn horizon(&self) -> Micros {
        let longest = self
            .aggregates
            .iter()
            .map(|a| match a.window {
                Window::Time { size, offset } => size + offset,
                Window::Series { size, start, .. } => size + start,
                Window::Lifetime => 0,
            })
            .max()
            .unwrap_or(0);
        longest + self.interval
    }

    pub fn has_lifetime(&self) -> bool {
        self.aggregates.iter().any(|a| a.window == Window::Lifetime)
    }
}

/// Tecton's duration text: non-zero `Nd`, `Nh`, `Nm`, `Ns` in that order, or `0s`; a
/// one-microsecond interval is a continuous view's, written `continuous`.
pub fn duration_text(micros: Micros) -> String {
    if micros == 1 {
        return "continuous".to_string();
    }
    let mut seconds = micros / MICROS_PER_SECOND;
    if seconds == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if seconds >= size {
            out.push_str(&format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    out
}

/// Tecton's default name: `{column}_{function}_{window}_{interval}` plus `_offset_{offset}`;
/// with compaction the `_{interval}` is left out (as Tecton does).
pub fn default_name(
    column: &str,
    function: &str,
    window: Window,
    interval: Micros,
    compaction: bool,
) -> String {
    let name = default_name_with_interval(column, function, window, interval);
    if compaction {
        let suffix = format!("_{}", duration_text(interval));
        match window {
            Window::Time { offset, .. } if offset > 0 => {
                name.replacen(&format!("{suffix}_offset"), "_offset", 1)
            }
            Window::Series { .. } => name,
            _ => name
                .strip_suffix(&suffix)
                .map_or(name.clone(), str::to_string),
        }
    } else {
        name
    }
}

fn default_name_with_interval(
    column: &str,
    function: &str,
    window: Window,
    interval: Micros,
) -> String {
    match window {
        Window::Lifetime => format!("{column}_{function}_lifetime_{}", duration_text(interval)),
        Window::Series {
            start, end, step, ..
        } => {
            format!(
                "{column}_{function}_series_{}_{}_{}",
                duration_text(start),
                duration_text(end),
                duration_text(step)
            )
        }
        Window::Time { size, offset } => {
            let mut name = format!(
                "{column}_{function}_{}_{}",
                duration_text(size),
                duration_text(interval)
            );
            if offset > 0 {
                name.push_str(&format!("_offset_{}", duration_text(offset)));
            }
            name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names without compaction (the common case).
    fn default_name(column: &str, function: &str, window: Window, interval: Micros) -> String {
        super::default_name(column, function, window, interval, false)
    }

    const MINUTE: Micros = 60 * MICROS_PER_SECOND;

    #[test]
    fn compaction_drops_the_interval_from_names() {
        let day = 24 * 60 * MINUTE;
        assert_eq!(
            super::default_name(
                "amt",
                "sum",
                Window::Time {
                    size: 90 * day,
                    offset: 0
                },
                10 * MINUTE,
                true
            ),
            "amt_sum_90d"
        );
        assert_eq!(
            super::default_name(
                "amt",
                "sum",
                Window::Time {
                    size: day,
                    offset: day
                },
                10 * MINUTE,
                true
            ),
            "amt_sum_1d_offset_1d"
        );
    }

    #[test]
    fn tecton_default_names() {
        let day = 24 * 60 * MINUTE;
        assert_eq!(
            default_name(
                "amt",
                "mean",
                Window::Time {
                    size: day,
                    offset: 0
                },
                10 * MINUTE
            ),
            "amt_mean_1d_10m"
        );
        assert_eq!(
            default_name(
                "transaction_id",
                "last_3",
                Window::Time {
                    size: day,
                    offset: 0
                },
                day
            ),
            "transaction_id_last_3_1d_1d"
        );
        assert_eq!(
            default_name(
                "amt",
                "sum",
                Window::Time {
                    size: 90 * MINUTE,
                    offset: 0
                },
                30 * MINUTE
            ),
            "amt_sum_1h30m_30m"
        );
        assert_eq!(
            default_name("x", "count", Window::Lifetime, day),
            "x_count_lifetime_1d"
        );
        assert_eq!(
            default_name(
                "x",
                "count",
                Window::Time {
                    size: day,
                    offset: day
                },
                day
            ),
            "x_count_1d_1d_offset_1d"
        );
    }

    #[test]
    fn functions_and_types() {
        assert_eq!(
            Function::parse("last(3)").unwrap(),
            (Function::LastN(3), "last_3".to_string())
        );
        assert_eq!(
            Function::parse("variance").unwrap(),
            (Function::VarSamp, "variance".to_string())
        );
        assert!(Function::parse("last(0)").is_err());
        assert!(Function::parse("median").unwrap_err().contains("supported"));
        assert_eq!(
            Function::parse("approx_percentile(0.5)").unwrap(),
            (
                Function::ApproxPercentile {
                    quantile_millionths: 500_000,
                    precision: 100
                },
                "approx_percentile_p0_5".to_string()
            )
        );
        assert_eq!(
            Function::parse("approx_count_distinct").unwrap().0,
            Function::ApproxCountDistinct(8)
        );
        assert!(Function::parse("approx_count_distinct(40)").is_err());
        assert!(Function::parse("approx_percentile(1.5)").is_err());
        assert_eq!(
            Function::Sum.output_type(&DataType::Int64).unwrap(),
            DataType::Int64
        );
        assert_eq!(
            Function::Mean.output_type(&DataType::Int64).unwrap(),
            DataType::Float64
        );
        assert!(Function::Mean.output_type(&DataType::String).is_err());
        assert_eq!(
            Function::LastN(2).output_type(&DataType::String).unwrap(),
            DataType::Array(Box::new(DataType::String))
        );
    }
}

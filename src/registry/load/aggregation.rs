//! A stream view's aggregations: functions, windows and default names, checked against its
//! push source's schema.

use super::*;

/// Validates a view's aggregations against its push source's schema; answers the aggregate
/// features (named as Tecton names them unless `name` is given) and the spec.
pub(super) fn build_aggregation(
    site: &Site,
    raw: &RawView,
    schema: &[Field],
    join_keys: &[Field],
) -> Result<(Vec<Feature>, AggregationSpec), RegistryError> {
    let continuous = match raw.stream_processing_mode.as_deref() {
        None | Some("time_interval") | Some("TIME_INTERVAL") => false,
        Some("continuous") | Some("CONTINUOUS") => true,
        Some(other) => {
            return Err(site.error(format!(
                "stream_processing_mode `{other}` must be time_interval or continuous"
            )))
        }
    };
    let interval_text = match (continuous, raw.aggregation_interval.as_deref()) {
        // Continuous: every event is its own one-microsecond tile, and windows end exactly at
        // the request time (or the latest event).
        (true, None) => "continuous",
        (true, Some(_)) => {
            return Err(site.error("a continuous view has no `aggregation_interval`"))
        }
        (false, Some(text)) => text,
        (false, None) => {
            return Err(site
                .error("aggregations need an `aggregation_interval` (the tile width, e.g. `10m`)"))
        }
    };
    let interval = if continuous {
        1
    } else {
        parse_duration(interval_text)
            .map_err(|e| site.error(format!("aggregation_interval: {e}")))?
    };
    if interval <= 0 {
        return Err(site.error("aggregation_interval must be longer than 0s"));
    }

    let day = 86_400 * crate::time::MICROS_PER_SECOND;
    let compaction = match raw.compaction_enabled {
        false => None,
        true if continuous || interval >= day || day % interval != 0 => {
            return Err(site.error(
                "compaction_enabled needs a tiled view whose aggregation_interval divides a day",
            ))
        }
        true => Some(day),
    };
    let leading_edge = match raw.aggregation_leading_edge.as_deref() {
        None => LeadingEdge::WallClockTime,
        Some(text) => LeadingEdge::parse(text).ok_or_else(|| {
            site.error(format!(
                "aggregation_leading_edge `{text}` must be WALL_CLOCK_TIME or LATEST_EVENT_TIME"
            ))
        })?,
    };
    if raw.aggregations.is_empty() {
        return Err(site.error("`aggregation_interval` is set but there are no `aggregations`"));
    }
    let mut inputs: Vec<Field> = Vec::new();
    let mut aggregates = Vec::with_capacity(raw.aggregations.len());
    let mut features: Vec<Feature> = Vec::with_capacity(raw.aggregations.len());
    for (i, aggregation) in raw.aggregations.iter().enumerate() {
        let what = |problem: String| {
            site.error(format!(
                "aggregations[{i}] ({} {}): {problem}",
                aggregation.function, aggregation.column
            ))
        };
        let column = schema
            .iter()
            .find(|f| f.name == aggregation.column)
            .ok_or_else(|| {
                what(format!(
                    "the push source has no column `{}`",
                    aggregation.column
                ))
            })?;
        if aggregation.column == raw.timestamp_field
            || join_keys.iter().any(|k| k.name == aggregation.column)
        {
            return Err(what(
                "a join key or the timestamp field cannot be aggregated".to_string(),
            ));
        }
        let (function, function_name) = Function::parse(&aggregation.function).map_err(what)?;
        let data_type = function.output_type(&column.data_type).map_err(what)?;
        let multiple_of_interval = |text: &str, field: &str| -> Result<Micros, RegistryError> {
            let micros = parse_duration(text).map_err(|e| what(format!("{field}: {e}")))?;
            if micros % interval != 0 {
                return Err(what(format!("{field} `{text}` must be a multiple of the aggregation_interval `{interval_text}`")));
            }
            Ok(micros)
        };
        let window = if aggregation.window == "lifetime" {
            Window::Lifetime
        } else {
            let size = multiple_of_interval(&aggregation.window, "window")?;
            if size == 0 {
                return Err(what("window must be longer than 0s".to_string()));
            }
            let offset = aggregation
                .offset
                .as_deref()
                .map(|o| multiple_of_interval(o, "offset"))
                .transpose()?
                .unwrap_or(0);
            match &aggregation.series {
                None => Window::Time { size, offset },
                Some(_) if offset > 0 => return Err(what("a series has no `offset`".to_string())),
                Some(series) => {
                    let start = multiple_of_interval(&series.start, "series.start")?;
                    let end = multiple_of_interval(&series.end, "series.end")?;
                    let step = multiple_of_interval(&series.step, "series.step")?;
                    if step == 0 || start <= end || (start - end) / step > 1000 {
                        return Err(what(
                            "a series needs start > end and a step that makes 1 to 1000 windows"
                                .to_string(),
                        ));
                    }
                    Window::Series {
                        size,
                        start,
                        end,
                        step,
                    }
                }
            }
        };
        let data_type = match window {
            Window::Series { .. } => DataType::Array(Box::new(data_type)),
            _ => data_type,
        };

        let name = aggregation.name.clone().unwrap_or_else(|| {
            default_name(
                &aggregation.column,
                &function_name,
                window,
                interval,
                compaction.is_some(),
            )
        });

        check_name(site, "feature name", &name)?;
        if features.iter().any(|f| f.name == name) {
            return Err(what(format!(
                "the feature name `{name}` is used twice; give one a `name`"
            )));
        }
        let input = match inputs.iter().position(|f| f.name == column.name) {
            Some(index) => index,
            None => {
                inputs.push(column.clone());
                inputs.len() - 1
            }
        };
        aggregates.push(AggregateFeature {
            input,
            function,
            window,
        });
        features.push(Feature {
            name,
            data_type,
            column: aggregation.column.clone(),
            description: aggregation.description.clone(),
            tags: BTreeMap::new(),
        });
    }
    Ok((
        features,
        AggregationSpec {
            interval,
            leading_edge,
            inputs,
            aggregates,
            compaction,
        },
    ))
}

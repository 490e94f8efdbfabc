//! A feature service's `[feature_service.logging]` table: Tecton's `LoggingConfig` (`sample_rate`,
//! `log_effective_times`) plus what Quiver's feature log adds (statuses, request context and its
//! excluded fields, file format and rolling).

use super::*;

/// 64 MiB: a file pandas opens in a blink, and few files per day at a moderate rate.
const DEFAULT_ROLL_SIZE_BYTES: u64 = 64 << 20;
const DEFAULT_ROLL_INTERVAL: &str = "1h";

pub(super) fn build_logging(site: &Site, raw: &RawLogging) -> Result<LoggingConfig, RegistryError> {
    let problem = |text: String| site.error(format!("logging: {text}"));
    let sample_rate = raw.sample_rate.unwrap_or(1.0);
    if !(sample_rate > 0.0 && sample_rate <= 1.0) {
        return Err(problem(format!(
            "sample_rate is {sample_rate}; it must be above 0 and at most 1 \
             (to stop logging, remove the logging table)"
        )));
    }
    let log_request_context = raw.log_request_context.unwrap_or(true);
    let mut excluded: Vec<String> = Vec::with_capacity(raw.exclude_request_context_fields.len());
    for name in &raw.exclude_request_context_fields {
        check_name(site, "logging: excluded request-context field", name)?;
        if excluded.contains(name) {
            return Err(problem(format!(
                "exclude_request_context_fields names `{name}` twice"
            )));
        }
        excluded.push(name.clone());
    }
    if !log_request_context && !excluded.is_empty() {
        return Err(problem(
            "exclude_request_context_fields has no effect with log_request_context = false"
                .to_string(),
        ));
    }
    let format = match raw.format.as_deref() {
        None => LogFormat::Parquet,
        Some(name) => LogFormat::from_name(name)
            .ok_or_else(|| problem(format!("format `{name}` is not one of `parquet`, `jsonl`")))?,
    };
    let roll_size_bytes = raw.roll_size_bytes.unwrap_or(DEFAULT_ROLL_SIZE_BYTES);
    if roll_size_bytes == 0 {
        return Err(problem("roll_size_bytes must be above 0".to_string()));
    }
    let roll_interval = parse_duration(
        raw.roll_interval
            .as_deref()
            .unwrap_or(DEFAULT_ROLL_INTERVAL),
    )
    .map_err(|e| problem(format!("roll_interval: {e}")))?;
    if roll_interval <= 0 {
        return Err(problem("roll_interval must be above 0s".to_string()));
    }
    Ok(LoggingConfig {
        sample_rate,
        log_request_context,
        exclude_request_context_fields: excluded,
        log_effective_times: raw.log_effective_times.unwrap_or(false),
        log_statuses: raw.log_statuses.unwrap_or(true),
        format,
        roll_size_bytes,
        roll_interval,
    })
}

//! The write path: validating pushed records and bulk-loaded rows into store writes.
//!
//! `plan_ingest` checks a whole Stream Ingest request before anything is written: one bad record
//! fails the request and nothing of it is stored. It knows the registry's rules, not HTTP.
//! `row.rs` turns one record into a view row, `file.rs` reads load files (`csv_records.rs`
//! splits the CSV ones, `parquet.rs` reads the Parquet ones) and the bulk-rows endpoint's bodies (`lines.rs` the well-formed ones, typed;
//! `binary_rows.rs` the binary ones `quiver load` sends),
//! `seed.rs` builds the demo seed's writes, `tokens.rs` the push sources' ingest tokens.

pub mod binary_rows;
pub mod csv_records;
pub mod file;
pub mod lines;
pub mod parquet;
pub mod row;
pub mod seed;
mod text_cells;
pub mod tokens;

use serde_json::Value as Json;

use crate::echo::echo;
use crate::registry::aggregation::duration_text;
use crate::registry::{FeatureView, PushSource, Registry, ViewId};
use crate::store::tiles::tile_start;
use crate::store::RowWrite;
use crate::time::Micros;
use row::parse_json_row;

/// Why a record was refused, in the shape of Tecton's `recordErrors` entries.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    pub push_source: String,
    pub feature_view: Option<String>,
    pub error_type: &'static str,
    pub message: String,
    pub reason: RejectReason,
}

/// Why a record, or its row for one view, was refused: the `reason` of the ingest metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Not an object, or a field not in the schema or not of its type: the request is refused.
    Invalid,
    /// Older than the view's ttl.
    PastTtl,
    /// Older than an aggregating view's longest window.
    OlderThanWindows,
    /// Further in the future than `server.max_future_event_skew`.
    TooFarInFuture,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Invalid => "invalid",
            RejectReason::PastTtl => "past_ttl",
            RejectReason::OlderThanWindows => "older_than_windows",
            RejectReason::TooFarInFuture => "too_far_in_future",
        }
    }
}

/// Counts a written request in the metrics: its rows, and the events its views refused.
pub fn count_written(rows: usize, rejected: &[RecordError]) {
    crate::metrics::ingest_accepted(rows);
    for record in rejected {
        crate::metrics::ingest_rejected(record.reason.as_str(), 1);
    }
}

/// Counts a refused request's invalid records in the metrics.
pub fn count_refused(error: &IngestError) {
    if let IngestError::Records(records) = error {
        crate::metrics::ingest_rejected(RejectReason::Invalid.as_str(), records.len());
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("Workspace `{}` not found", echo(.0))]
    UnknownWorkspace(String),
    #[error("Workspace `{0}` is a development workspace (does not have materialization enabled); ingest needs a live workspace")]
    NotLive(String),
    #[error(
        "Push source `{}` not found in workspace `{workspace}`",
        echo(source_name)
    )]
    UnknownSource {
        workspace: String,
        source_name: String,
    },
    #[error("Push source `{0}` has no feature view subscribed to it")]
    NoSubscribers(String),
    #[error("{} record(s) failed validation", .0.len())]
    Records(Vec<RecordError>),
    #[error("push source `{source_name}` of workspace `{workspace}`: ingest_token: {problem}")]
    TokenSetting {
        workspace: String,
        source_name: String,
        problem: String,
    },
    #[error("Push source `{0}` needs its ingest token (header X-Quiver-Ingest-Token); it is missing or wrong")]
    WrongToken(String),
}

/// What a valid request will write: the rows, and counts per view and per source.
#[derive(Debug, Default)]
pub struct IngestPlan {
    pub rows: Vec<RowWrite>,
    pub per_view: Vec<(ViewId, usize)>,
    pub per_source: Vec<(String, usize)>,
    /// Events a view refused (past its ttl or its windows, or too far in the future); the request
    /// still succeeds for everything else.
    pub rejected: Vec<RecordError>,
}

/// A push source's records as `plan_ingest` reads them: JSON trees, which word every refusal,
/// or `row::TypedRecords`, read straight into the schema's types (only well-formed records).
pub trait SourceRecords {
    fn count(&self) -> usize;
    /// Checks record `index` against the schema of push source `source_name`; the error is
    /// the refusal's message.
    fn check(&self, index: usize, source_name: &str, source: &PushSource) -> Result<(), String>;
    /// Record `index`'s row for `view`, encoded for the store.
    fn row(&self, index: usize, view: &FeatureView) -> Result<RowWrite, String>;
}

impl SourceRecords for Vec<Json> {
    fn count(&self) -> usize {
        self.len()
    }

    fn check(&self, index: usize, source_name: &str, source: &PushSource) -> Result<(), String> {
        let object = self[index]
            .as_object()
            .ok_or_else(|| "expected a JSON object".to_string())?;
        if let Some(unknown) = object
            .keys()
            .find(|k| !source.schema.iter().any(|f| &f.name == *k))
        {
            return Err(format!(
                "field `{}` is not in the schema of push source `{source_name}`",
                echo(unknown)
            ));
        }
        match source.schema.iter().find_map(|field| {
            let value = object.get(&field.name)?;
            crate::registry::value::Value::from_json(value, &field.data_type)
                .err()
                .map(|e| format!("field `{}`: {e}", field.name))
        }) {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    fn row(&self, index: usize, view: &FeatureView) -> Result<RowWrite, String> {
        // Source fields a view does not read are not its concern (checked: an object).
        let object = self[index].as_object().into_iter().flatten();
        let columns: serde_json::Map<String, Json> = object
            .filter(|(name, _)| row::is_view_column(view, name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        parse_json_row(view, &columns).map(|parsed| parsed.to_write(view))
    }
}

/// Validates every record of every push source against its schema and every subscribed view.
/// `now` decides which records are past a view's ttl.
pub fn plan_ingest<R: SourceRecords>(
    registry: &Registry,
    workspace_name: &str,
    records: &[(String, R)],
    now: Micros,
    max_future_skew: Micros,
) -> Result<IngestPlan, IngestError> {
    let workspace = registry
        .workspace(workspace_name)
        .ok_or_else(|| IngestError::UnknownWorkspace(workspace_name.to_string()))?;
    if !workspace.live {
        return Err(IngestError::NotLive(workspace_name.to_string()));
    }
    let mut plan = IngestPlan::default();
    let mut errors = Vec::new();
    for (source_name, source_records) in records {
        let source =
            workspace
                .push_sources
                .get(source_name)
                .ok_or_else(|| IngestError::UnknownSource {
                    workspace: workspace_name.to_string(),
                    source_name: source_name.clone(),
                })?;
        if source.subscribers.is_empty() {
            return Err(IngestError::NoSubscribers(source_name.clone()));
        }
        let record_error = |index: usize, view: Option<&str>, message: String| RecordError {
            push_source: source_name.clone(),
            feature_view: view.map(str::to_string),
            error_type: "TectonObjectValidationError",
            message: format!("record {index}: {message}"),
            reason: RejectReason::Invalid,
        };
        let rejection = |index, view: &str, reason, message| RecordError {
            reason,
            ..record_error(index, Some(view), message)
        };
        plan.rows
            .reserve(source_records.count() * source.subscribers.len());
        // Each view's bounds once for the request, not once a row.
        let views: Vec<(&FeatureView, TimeBounds)> = source
            .subscribers
            .iter()
            .map(|id| {
                let view = registry.view(*id);
                (view, TimeBounds::of(view, now, max_future_skew))
            })
            .collect();
        for index in 0..source_records.count() {
            if let Err(problem) = source_records.check(index, source_name, source) {
                errors.push(record_error(index, None, problem));
                continue;
            }
            for (view_id, (view, bounds)) in source.subscribers.iter().zip(&views) {
                match source_records.row(index, view) {
                    Err(message) => errors.push(record_error(index, Some(&view.name), message)),
                    // Late or future events are refused one by one (they are well formed, just
                    // too old or too new to matter); the rest of the batch is written.
                    Ok(row) => match bounds.refusal(view, row.event_time, max_future_skew) {
                        Some((reason, message)) => plan
                            .rejected
                            .push(rejection(index, &view.name, reason, message)),
                        None => {
                            plan.rows.push(row);
                            match plan.per_view.iter_mut().find(|(id, _)| id == view_id) {
                                Some((_, count)) => *count += 1,
                                None => plan.per_view.push((*view_id, 1)),
                            }
                        }
                    },
                }
            }
        }
        plan.per_source
            .push((source_name.clone(), source_records.count()));
    }
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(IngestError::Records(errors))
    }
}

/// The event times a view takes, from `now`: newer than its ttl, at most the future skew
/// ahead, and for an aggregating view in a tile its longest window still reads. The skew
/// bounds every view: a row view keeps its newest event, so one event from year 9999 would
/// have made every real one after it "older than stored", ignored.
struct TimeBounds {
    /// Events at or before this are past the ttl.
    past_ttl: Option<Micros>,
    /// The latest event time taken.
    latest: Micros,
    /// An aggregating view's tile interval and the first tile start it keeps.
    windows: Option<(Micros, Micros)>,
}

impl TimeBounds {
    fn of(view: &FeatureView, now: Micros, max_future_skew: Micros) -> TimeBounds {
        TimeBounds {
            past_ttl: view.ttl.map(|ttl| now - ttl),
            latest: now.saturating_add(max_future_skew),
            windows: view.aggregation.as_ref().map(|spec| {
                let oldest_tile = tile_start(now, spec.interval) - spec.horizon();
                (spec.interval, oldest_tile)
            }),
        }
    }

    /// Why a well-formed event is refused for `view`: past its ttl, older than its longest
    /// aggregation window, or too far in the future; `None` when it is written.
    fn refusal(
        &self,
        view: &FeatureView,
        event_time: Micros,
        max_future_skew: Micros,
    ) -> Option<(RejectReason, String)> {
        match (self.past_ttl, self.windows) {
            (Some(past_ttl), _) if event_time <= past_ttl => Some((
                RejectReason::PastTtl,
                format!(
                    "timestamp value is outside of the serving TTL defined for Feature View {}",
                    view.name
                ),
            )),
            (_, Some((interval, oldest_tile))) if tile_start(event_time, interval) < oldest_tile =>
            {
                Some((
                    RejectReason::OlderThanWindows,
                    format!(
                    "timestamp value is older than the longest aggregation window of Feature View {}",
                    view.name
                ),
                ))
            }
            _ if event_time > self.latest => Some((
                RejectReason::TooFarInFuture,
                format!(
                    "timestamp value is more than {} in the future",
                    duration_text(max_future_skew)
                ),
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::bench::dataset::demo_registry;
    use crate::time::MICROS_PER_SECOND;

    /// The refusal as it was decided a row at a time, from `now`: the model of `TimeBounds`.
    fn refusal_from_now(
        view: &FeatureView,
        event_time: Micros,
        now: Micros,
        max_future_skew: Micros,
    ) -> Option<RejectReason> {
        match (view.ttl, &view.aggregation) {
            (Some(ttl), _) if event_time <= now - ttl => Some(RejectReason::PastTtl),
            (_, Some(spec))
                if tile_start(event_time, spec.interval)
                    < tile_start(now, spec.interval) - spec.horizon() =>
            {
                Some(RejectReason::OlderThanWindows)
            }
            _ if event_time > now + max_future_skew => Some(RejectReason::TooFarInFuture),
            _ => None,
        }
    }

    proptest! {
        /// Bounds computed once for a request refuse the events a row-by-row check refused,
        /// for every view the demo's `transactions` feed (ttls, windows from an hour to a
        /// lifetime, a continuous view), at and around each edge.
        #[test]
        fn bounds_refuse_what_the_row_by_row_check_refused(
            now in 1_500_000_000i64 * MICROS_PER_SECOND..1_900_000_000 * MICROS_PER_SECOND,
            skew_seconds in 0i64..600,
            ages in prop::collection::vec(
                prop_oneof![
                    -700 * MICROS_PER_SECOND..100 * 86_400 * MICROS_PER_SECOND,
                    prop::sample::select(vec![0, 3_600, 86_400, 3 * 86_400, 7 * 86_400, 30 * 86_400])
                        .prop_flat_map(|seconds| (seconds * MICROS_PER_SECOND - 1)
                            ..=seconds * MICROS_PER_SECOND + 1),
                ],
                1..20,
            ),
        ) {
            let registry = demo_registry();
            let source = &registry.workspace("prod").unwrap().push_sources["transactions"];
            let skew = skew_seconds * MICROS_PER_SECOND;
            for id in &source.subscribers {
                let view = registry.view(*id);
                let bounds = TimeBounds::of(view, now, skew);
                for age in &ages {
                    let event_time = now - age;
                    let refused = bounds.refusal(view, event_time, skew).map(|(reason, _)| reason);
                    prop_assert_eq!(refused, refusal_from_now(view, event_time, now, skew));
                }
            }
        }
    }
}

//! The demo seed: rows of a feature view, or events of a push source, that `config.toml` names
//! for loading into an empty store at start-up, so the demo answers straight away. This builds
//! and validates the writes, as a load file or an ingest request would be; the caller sends
//! them to the store.

use std::path::PathBuf;

use super::file::open_load_file;
use super::plan_ingest;
use crate::config::{DemoSeed, SeedTarget};
use crate::registry::types::DataType;
use crate::registry::{Field, Registry};
use crate::store::RowWrite;
use crate::time::{format_timestamp, parse_timestamp, Micros, MICROS_PER_SECOND};

/// A seed that cannot be loaded, naming its file.
#[derive(Debug, thiserror::Error)]
#[error("demo seed {}: {problem}", file.display())]
pub struct SeedError {
    pub file: PathBuf,
    pub problem: String,
}

/// What one seed will write.
#[derive(Debug)]
pub struct SeedWrites {
    /// The feature view or push source the seed fills, for the log.
    pub target: String,
    pub rows: Vec<RowWrite>,
    /// Events a view refused as `/ingest` would (older than its longest aggregation window or
    /// its TTL, or too far in the future): one entry per view and reason, with a count. A seed
    /// spanning more days than a view keeps is expected to have some.
    pub refused: Vec<RefusedEvents>,
}

/// Events of a seed that one view refused for one reason.
#[derive(Debug, PartialEq)]
pub struct RefusedEvents {
    pub feature_view: String,
    pub reason: super::RejectReason,
    pub count: usize,
}

/// Reads and validates one seed file. With `rebase_to_now`, a push source's event times are
/// shifted together so that the newest is a minute before `now`.
pub fn seed_writes(
    registry: &Registry,
    seed: &DemoSeed,
    now: Micros,
    max_future_skew: Micros,
) -> Result<SeedWrites, SeedError> {
    let fail = |problem: String| SeedError {
        file: seed.file.clone(),
        problem,
    };
    match &seed.target {
        SeedTarget::FeatureView(name) => {
            let view = registry
                .view_by_name(&seed.workspace, name)
                .ok_or_else(|| {
                    fail(format!(
                        "no feature view `{name}` in workspace `{}`",
                        seed.workspace
                    ))
                })?;
            let load_file = open_load_file(&seed.file).map_err(|e| fail(e.to_string()))?;
            let rows = load_file
                .read_rows(view, |_| {})
                .map_err(|e| fail(e.to_string()))?;
            Ok(SeedWrites {
                target: view.name.clone(),
                rows: rows.iter().map(|row| row.to_write(view)).collect(),
                refused: Vec::new(),
            })
        }
        SeedTarget::PushSource(source) => {
            let schema = &registry
                .workspace(&seed.workspace)
                .and_then(|ws| ws.push_sources.get(source))
                .ok_or_else(|| {
                    fail(format!(
                        "no push source `{source}` in workspace `{}`",
                        seed.workspace
                    ))
                })?
                .schema;
            let text = std::fs::read_to_string(&seed.file).map_err(|e| fail(e.to_string()))?;
            let mut records = text
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<Vec<serde_json::Value>, _>>()
                .map_err(|e| fail(format!("not JSON Lines: {e}")))?;
            if seed.rebase_to_now {
                rebase_to(&mut records, schema, now - 60 * MICROS_PER_SECOND).map_err(fail)?;
            }
            let plan = plan_ingest(
                registry,
                &seed.workspace,
                &[(source.clone(), records)],
                now,
                max_future_skew,
            )
            .map_err(|e| fail(e.to_string()))?;
            Ok(SeedWrites {
                target: source.clone(),
                rows: plan.rows,
                refused: group_refused(plan.rejected),
            })
        }
    }
}

/// Counts refused events per view and reason, in the order first seen.
fn group_refused(rejected: Vec<super::RecordError>) -> Vec<RefusedEvents> {
    let mut groups: Vec<RefusedEvents> = Vec::new();
    for error in rejected {
        let (feature_view, reason) = (error.feature_view.unwrap_or_default(), error.reason);
        match groups
            .iter_mut()
            .find(|g| g.feature_view == feature_view && g.reason == reason)
        {
            Some(group) => group.count += 1,
            None => groups.push(RefusedEvents {
                feature_view,
                reason,
                count: 1,
            }),
        }
    }
    groups
}

/// Shifts every timestamp field of `records` by one amount, so that the newest is `anchor`.
fn rebase_to(
    records: &mut [serde_json::Value],
    schema: &[Field],
    anchor: Micros,
) -> Result<(), String> {
    let fields: Vec<&str> = schema
        .iter()
        .filter(|f| f.data_type == DataType::Timestamp)
        .map(|f| f.name.as_str())
        .collect();
    let time_of = |value: &serde_json::Value| value.as_str().map(parse_timestamp).transpose();
    let mut newest = Micros::MIN;
    for record in records.iter() {
        for field in &fields {
            if let Some(time) = time_of(&record[*field])? {
                newest = newest.max(time);
            }
        }
    }
    let shift = anchor - newest;
    for record in records.iter_mut() {
        for field in &fields {
            if let Some(time) = time_of(&record[*field])? {
                record[*field] = serde_json::Value::String(format_timestamp(time + shift));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, Settings};
    use crate::registry::load_registry;
    use serde_json::json;

    #[test]
    fn rebasing_shifts_every_timestamp_by_one_amount() {
        let schema = [
            Field {
                name: "at".into(),
                data_type: DataType::Timestamp,
            },
            Field {
                name: "label".into(),
                data_type: DataType::String,
            },
        ];
        let mut records = vec![
            json!({"at": "2020-01-01T00:00:00Z", "label": "2020-01-01T00:00:00Z"}),
            json!({"at": "2020-01-01T00:01:00Z", "label": "x"}),
            json!({"label": "no time"}),
        ];
        let anchor = parse_timestamp("2026-06-01T12:00:00Z").unwrap();
        rebase_to(&mut records, &schema, anchor).unwrap();
        assert_eq!(records[1]["at"], format_timestamp(anchor));
        assert_eq!(
            records[0]["at"],
            format_timestamp(anchor - 60 * MICROS_PER_SECOND)
        );
        assert_eq!(
            records[0]["label"], "2020-01-01T00:00:00Z",
            "only timestamp fields move"
        );
        let mut bad = vec![json!({"at": "yesterday"})];
        assert!(rebase_to(&mut bad, &schema, anchor).is_err());
    }

    #[test]
    fn the_demo_seeds_validate_and_a_wrong_name_is_refused_naming_file_and_view() {
        let settings =
            Settings::load(std::path::Path::new("config.toml"), &Overrides::default()).unwrap();
        let registry = load_registry(&settings.workspaces).unwrap();
        let now = crate::time::now_micros();
        let mut refused = Vec::new();
        for seed in &settings.demo_seeds {
            let writes = seed_writes(&registry, seed, now, settings.max_future_skew).unwrap();
            assert!(!writes.rows.is_empty(), "{}", writes.target);
            refused.extend(writes.refused);
        }
        // Five days of transactions into views that keep less: the old events are refused,
        // counted once per view and reason (the start-up log prints these lines).
        let views: Vec<&str> = refused.iter().map(|r| r.feature_view.as_str()).collect();
        assert_eq!(
            views,
            ["user_recent_activity", "user_transaction_amount_metrics"]
        );
        assert!(refused
            .iter()
            .all(|r| r.count > 0 && r.reason == crate::ingest::RejectReason::OlderThanWindows));
        let wrong = DemoSeed {
            target: SeedTarget::FeatureView("no_such_view".into()),
            ..settings.demo_seeds[0].clone()
        };
        let error = seed_writes(&registry, &wrong, now, settings.max_future_skew).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("demo seed {}", wrong.file.display()))
                && message.contains("no feature view `no_such_view` in workspace `prod`"),
            "{message}"
        );
    }
}

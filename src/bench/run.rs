//! One bench run: start (or reach) Quiver, load the data sets, start the peers, then measure
//! every workload against every target, alternating targets within each round so that machine
//! noise hits them alike, and collect the figures into a `Report`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::dataset::{DataSet, KeyDistribution, KeyPicker};
use super::feast::start_feast;
use super::load::{run_load, LoadPlan, Pacing};
use super::peers::{
    running_quiver, start_limit, start_quiver, start_redis_front, Protocol, Target,
};
use super::redis::{load_into_redis, start_redis, used_memory};
use super::report::{Measurement, MemoryFigure, Report};
use super::restore::{quiver_restore, redis_restore};
use super::workloads::{load_data_set, sample_answer, Workload};
use super::BenchError;
use crate::registry::Registry;

/// Everything a run needs, as the command line gave it.
pub struct BenchPlan {
    pub registry: Arc<Registry>,
    /// The configuration a self-started Quiver serves.
    pub config: PathBuf,
    /// A running Quiver instead of one the harness starts.
    pub url: Option<String>,
    pub admin_key: String,
    /// (workspace, feature service) pairs to read.
    pub services: Vec<(String, String)>,
    pub n_keys: u64,
    pub string_bytes: usize,
    pub distribution: KeyDistribution,
    pub batch_rows: usize,
    pub ingest_events: usize,
    pub load_rows: usize,
    pub connections: usize,
    pub client_threads: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Open-loop rates, requests per second; closed loop is always measured.
    pub rates: Vec<f64>,
    pub rounds: usize,
    pub compare: bool,
    /// Leave Feast out of the comparison (its install takes minutes).
    pub skip_feast: bool,
    /// Also time restarts from disk (Quiver from a snapshot, Redis from an RDB file).
    pub restore: bool,
}

pub fn run_bench(plan: &BenchPlan) -> Result<Report, BenchError> {
    let mut report = Report::default();
    let quiver = match &plan.url {
        Some(url) => running_quiver(url)?,
        None => start_quiver(&plan.config, &plan.admin_key, None)?,
    };
    let keys = KeyPicker::new(plan.n_keys, plan.distribution);
    let mut workloads = Vec::new();
    let mut data_sets = Vec::new();
    for (workspace, service) in &plan.services {
        let data = Arc::new(DataSet::new(
            plan.registry.clone(),
            workspace,
            service,
            plan.n_keys,
            plan.string_bytes,
        )?);
        // Writes are measured once, on the first service's sources and views.
        let writes = workloads
            .is_empty()
            .then_some((plan.ingest_events, plan.load_rows));
        workloads.extend(Workload::for_data_set(
            data.clone(),
            &keys,
            plan.batch_rows,
            writes,
        ));
        data_sets.push(data);
    }

    let before = quiver.stats();
    let mut loaded = BTreeSet::new();
    // A row per key of every stored view (an event feeds every view of its source).
    let mut stored_views = BTreeSet::new();
    for data in &data_sets {
        load_data_set(data, &quiver.base_url(), &plan.admin_key, &mut loaded)?;
        stored_views.extend(data.stored_views().iter().map(|v| v.id));
    }
    let stored_rows = plan.n_keys * stored_views.len() as u64;
    if let (Some(before), Some(after)) = (before, quiver.stats()) {
        report.memory.push(MemoryFigure {
            target: "quiver (RSS)".into(),
            bytes: after.rss_bytes.saturating_sub(before.rss_bytes),
            rows: stored_rows,
        });
    }

    let mut targets = vec![quiver];
    if plan.compare {
        let responses = responses_file(&workloads, &targets[0], &plan.admin_key)?;
        targets.push(start_limit(&responses)?);
        match start_redis()? {
            Some(redis) => {
                load_redis(&redis, &data_sets, &mut report)?;
                targets.push(start_redis_front(&plan.config, &redis, &responses)?);
                targets.push(redis);
            }
            None => report.notes.push(
                "Redis skipped: `redis-server` is not installed (apt-get install -y redis-server)"
                    .into(),
            ),
        }
        if !plan.skip_feast {
            match start_feast(&data_sets)? {
                Ok(feast) => {
                    targets.push(feast);
                    report.notes.push(
                        "Feast serves each service without its realtime features (on-demand views are Python code)".into(),
                    );
                }
                Err(why) => report.notes.push(format!("Feast skipped: {why}")),
            }
        }
    }

    let pacings: Vec<Pacing> = std::iter::once(Pacing::Closed)
        .chain(plan.rates.iter().map(|&rate| Pacing::Open { rate }))
        .collect();
    for round in 0..plan.rounds.max(1) {
        for workload in &workloads {
            // A fixed request rate means little for writes whose requests carry hundreds of
            // rows: they are measured at their maximum throughput only.
            let paced = if workload.reads() {
                &pacings[..]
            } else {
                &pacings[..1]
            };
            for &pacing in paced {
                for target in &targets {
                    if target.name != super::report::QUIVER && !workload.reads() {
                        continue;
                    }
                    let load = LoadPlan {
                        connections: plan.connections,
                        pacing,
                        warmup: plan.warmup,
                        duration: plan.duration,
                        client_threads: plan.client_threads,
                        seed: round as u64,
                    };
                    let before = target.stats();
                    let result = match target.protocol {
                        Protocol::Http => run_load(
                            Arc::new(workload.http_client(target.address, Some(&plan.admin_key))),
                            &load,
                        )?,
                        Protocol::Feast => {
                            run_load(Arc::new(workload.feast_client(target.address)), &load)?
                        }
                        Protocol::Resp => {
                            run_load(Arc::new(workload.redis_client(target.address)), &load)?
                        }
                    };
                    let cpu_seconds = before
                        .zip(target.stats())
                        .map(|(before, after)| after.cpu_seconds - before.cpu_seconds);
                    report.measurements.push(Measurement::new(
                        &workload.name,
                        pacing,
                        &target.name,
                        (workload.items_per_request(), workload.item_unit()),
                        &result,
                        cpu_seconds,
                    ));
                }
            }
        }
    }
    if plan.restore {
        // Comes last: a failure here is reported, and the measurements above are kept.
        let redis = targets.iter().find(|t| t.protocol == Protocol::Resp);
        let figures = std::iter::once(quiver_restore(&plan.config, &plan.admin_key, &data_sets))
            .chain(redis.map(redis_restore));
        for figure in figures {
            match figure {
                Ok(figure) => report.restore.push(figure),
                Err(error) => report.notes.push(format!("restart timing failed: {error}")),
            }
        }
    }
    report.settings = [
        ("keys", json!(plan.n_keys)),
        ("distribution", json!(format!("{:?}", plan.distribution))),
        ("connections", json!(plan.connections)),
        ("clientThreads", json!(plan.client_threads)),
        ("seconds", json!(plan.duration.as_secs_f64())),
        ("rounds", json!(plan.rounds)),
        (
            "cores",
            json!(std::thread::available_parallelism().map_or(0, |n| n.get())),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect();
    Ok(report)
}

/// Loads every data set into the Redis peer; records its `used_memory` growth per row.
fn load_redis(
    redis: &Target,
    data_sets: &[Arc<DataSet>],
    report: &mut Report,
) -> Result<(), BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    runtime.block_on(async {
        let before = used_memory(redis.address).await?;
        let mut loaded = BTreeSet::new();
        for data in data_sets {
            load_into_redis(data, redis.address, &mut loaded).await?;
        }
        let rows = loaded.len() as u64 * data_sets.first().map_or(0, |d| d.n_keys);
        let after = used_memory(redis.address).await?;
        report.memory.push(MemoryFigure {
            target: "redis (used_memory)".into(),
            bytes: after.saturating_sub(before),
            rows,
        });
        Ok(())
    })
}

/// Writes the limit's fixed answers, one per read workload (Quiver's answer to its first
/// request), to a file in the temporary directory.
fn responses_file(
    workloads: &[Workload],
    quiver: &Target,
    admin_key: &str,
) -> Result<PathBuf, BenchError> {
    let mut answers = Vec::new();
    for workload in workloads.iter().filter(|w| w.reads()) {
        let body = sample_answer(workload, &quiver.base_url(), admin_key)?;
        answers.push(json!({
            "path": workload.path(),
            "service": workload.service_name(),
            "body": body,
        }));
    }
    let path = std::env::temp_dir().join(format!(
        "quiver-bench-responses-{}.json",
        std::process::id()
    ));
    std::fs::write(
        &path,
        serde_json::to_vec(&answers).expect("JSON serialises"),
    )
    .map_err(|e| BenchError::Io(path.display().to_string(), e))?;
    Ok(path)
}

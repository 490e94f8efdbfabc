//! One bench run: start (or reach) Quiver, load the data sets, start the peers, then measure
//! every workload against every target, alternating targets within each round so that machine
//! noise hits them alike, and collect the figures into a `Report`; with several key counts,
//! then grow Quiver's data set to each and measure its reads again.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::bare::BodyParsing;
use super::dataset::{DataSet, KeyDistribution, KeyPicker};
use super::feast::start_feast;
use super::load::{run_load, LoadPlan, Pacing};
use super::peers::{
    running_quiver, start_limit, start_quiver, start_redis_front, Protocol, Target,
};
use super::process::{own_cpu_seconds, scratch_dir, ProcessStats, ScratchDir};
use super::redis::{load_into_redis, start_redis, used_memory};
use super::report::{Measurement, MemoryFigure, Pace, Report, LIMIT};
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
    /// Keys per join key: the run at the first count, then Quiver's reads again after
    /// growing its data set to each further count.
    pub key_counts: Vec<u64>,
    /// Connections the initial load sends over at once.
    pub load_connections: usize,
    pub string_bytes: usize,
    pub distribution: KeyDistribution,
    pub batch_rows: usize,
    pub ingest_events: usize,
    pub load_rows: usize,
    pub connections: usize,
    pub client_threads: usize,
    /// The load generator's threads under `SCHED_BATCH`, so they never preempt a server.
    pub batch_scheduling: bool,
    pub warmup: Duration,
    pub duration: Duration,
    /// Open-loop rates, requests per second; closed loop is always measured.
    pub rates: Vec<f64>,
    /// Open-loop rates as shares of the limit's closed-loop throughput (needs `compare`).
    pub shares_of_limit: Vec<f64>,
    pub rounds: usize,
    pub compare: bool,
    /// Leave Feast out of the comparison (its install takes minutes).
    pub skip_feast: bool,
    /// What the limit does with a request body (`--limit-skips-parsing`).
    pub limit_parsing: BodyParsing,
    /// Also time restarts from disk (Quiver from a snapshot, Redis from an RDB file).
    pub restore: bool,
}

pub fn run_bench(plan: &BenchPlan) -> Result<Report, BenchError> {
    let mut report = Report {
        settings: plan.settings(),
        ..Report::default()
    };
    let quiver = match &plan.url {
        Some(url) => running_quiver(url)?,
        None => start_quiver(&plan.config, &plan.admin_key, None)?,
    };
    let n_keys = plan.key_counts[0];
    let data_sets = plan.data_sets(n_keys)?;
    let keys = KeyPicker::new(n_keys, plan.distribution);
    let mut workloads = Vec::new();
    for data in &data_sets {
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
    }

    let before_load = quiver.stats();
    load_quiver(plan, &quiver, &data_sets, 0..n_keys, &mut report)?;
    record_quiver_memory(&quiver, before_load, &data_sets, n_keys, &mut report);

    let mut targets = vec![quiver];
    if plan.compare {
        let scratch = responses_file(&workloads, &targets[0], &plan.admin_key)?;
        let responses = scratch.0.join(RESPONSES);
        targets.push(start_limit(&responses, plan.limit_parsing)?);
        if plan.limit_parsing == BodyParsing::Skipped {
            report.notes.push(
                "the limit answers without parsing request bodies (--limit-skips-parsing): what HTTP alone costs".into(),
            );
        }
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

    measure_rounds(plan, &workloads, &targets, n_keys, &mut report)?;
    if plan.restore {
        // Comes after the measurements: a failure here is reported, and they are kept.
        let redis = targets.iter().find(|t| t.protocol == Protocol::Resp);
        let figures = std::iter::once(quiver_restore(
            &plan.config,
            &plan.admin_key,
            &data_sets,
            plan.load_connections,
        ))
        .chain(redis.map(redis_restore));
        for figure in figures {
            match figure {
                Ok(figure) => report.restore.push(figure),
                Err(error) => report.notes.push(format!("restart timing failed: {error}")),
            }
        }
    }
    // The peers are stopped: growing the data set is Quiver's alone, and needs the memory.
    targets.truncate(1);
    let mut loaded_keys = n_keys;
    for &more_keys in &plan.key_counts[1..] {
        if let Err(error) = measure_more_keys(
            plan,
            &targets[0],
            before_load,
            loaded_keys..more_keys,
            &mut report,
        ) {
            report
                .notes
                .push(format!("measuring {more_keys} keys failed: {error}"));
            break;
        }
        loaded_keys = more_keys;
    }
    Ok(report)
}

impl BenchPlan {
    /// One data set per service, of `n_keys` keys per join key.
    fn data_sets(&self, n_keys: u64) -> Result<Vec<Arc<DataSet>>, BenchError> {
        self.services
            .iter()
            .map(|(workspace, service)| {
                DataSet::new(
                    self.registry.clone(),
                    workspace,
                    service,
                    n_keys,
                    self.string_bytes,
                )
                .map(Arc::new)
            })
            .collect()
    }

    /// The run's settings and the machine it ran on, for the report.
    fn settings(&self) -> BTreeMap<String, Json> {
        [
            ("keys", json!(self.key_counts)),
            ("distribution", json!(format!("{:?}", self.distribution))),
            ("connections", json!(self.connections)),
            ("clientThreads", json!(self.client_threads)),
            (
                "clientScheduling",
                json!(if self.batch_scheduling {
                    "batch"
                } else {
                    "normal"
                }),
            ),
            ("seconds", json!(self.duration.as_secs_f64())),
            ("warmupSeconds", json!(self.warmup.as_secs_f64())),
            ("rounds", json!(self.rounds)),
            (
                "limitParsesJson",
                json!(self.limit_parsing == BodyParsing::Json),
            ),
            (
                "cores",
                json!(std::thread::available_parallelism().map_or(0, |n| n.get())),
            ),
            ("cpu", json!(machine_fact("/proc/cpuinfo", "model name"))),
            ("memory", json!(machine_fact("/proc/meminfo", "MemTotal"))),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
    }
}

/// Loads keys `keys` of every data set into Quiver; the time it took becomes a note.
fn load_quiver(
    plan: &BenchPlan,
    quiver: &Target,
    data_sets: &[Arc<DataSet>],
    keys: Range<u64>,
    report: &mut Report,
) -> Result<(), BenchError> {
    let mut loaded = BTreeSet::new();
    let mut items = 0;
    let started = Instant::now();
    for data in data_sets {
        items += load_data_set(
            data,
            keys.clone(),
            &quiver.base_url(),
            &plan.admin_key,
            plan.load_connections,
            &mut loaded,
        )?;
    }
    let seconds = started.elapsed().as_secs_f64();
    report.notes.push(format!(
        "loading keys {}..{} into quiver ({items} rows and events for {}) took {seconds:.1} s ({:.0}/s over {} connections)",
        keys.start,
        keys.end,
        loaded.into_iter().collect::<Vec<_>>().join(", "),
        items as f64 / seconds.max(1e-9),
        plan.load_connections,
    ));
    Ok(())
}

/// Quiver's resident memory growth since `before` (its RSS before any load), per stored row.
fn record_quiver_memory(
    quiver: &Target,
    before: Option<ProcessStats>,
    data_sets: &[Arc<DataSet>],
    n_keys: u64,
    report: &mut Report,
) {
    // A row per key of every stored view (an event feeds every view of its source).
    let stored_views: BTreeSet<_> = data_sets
        .iter()
        .flat_map(|data| data.stored_views().into_iter().map(|v| v.id))
        .collect();
    if let (Some(before), Some(after)) = (before, quiver.stats()) {
        report.memory.push(MemoryFigure {
            target: "quiver (RSS)".into(),
            bytes: after.rss_bytes.saturating_sub(before.rss_bytes),
            rows: n_keys * stored_views.len() as u64,
        });
    }
}

/// Every round of every workload against every target, targets alternating within a round,
/// each round starting from the next target ([`round_order`]).
fn measure_rounds(
    plan: &BenchPlan,
    workloads: &[Workload],
    targets: &[Target],
    n_keys: u64,
    report: &mut Report,
) -> Result<(), BenchError> {
    let pacings: Vec<Pace> = std::iter::once(Pace::Closed)
        .chain(plan.rates.iter().map(|&rate| Pace::Rate(rate)))
        .chain(
            plan.shares_of_limit
                .iter()
                .map(|&share| Pace::ShareOfLimit(share)),
        )
        .collect();
    let rounds = plan.rounds.max(1);
    for round in 0..rounds {
        for workload in workloads {
            // A fixed request rate means little for writes whose requests carry hundreds of
            // rows: they are measured at their maximum throughput only, on Quiver only.
            let (paced, measured_targets) = if workload.reads() {
                (&pacings[..], targets)
            } else {
                (&pacings[..1], &targets[..1])
            };
            for &pace in paced {
                let pacing = match pace {
                    Pace::Closed => Pacing::Closed,
                    Pace::Rate(rate) => Pacing::Open { rate },
                    Pace::ShareOfLimit(share) => Pacing::Open {
                        rate: share * limit_throughput(report, &workload.name)?,
                    },
                };
                for target in round_order(measured_targets, round) {
                    let measurement =
                        measure(plan, workload, target, (pace, pacing), round, n_keys)?;
                    eprintln!("round {}/{rounds}: {measurement}", round + 1);
                    report.measurements.push(measurement);
                    report.load_averages.extend(load_average());
                }
            }
        }
    }
    Ok(())
}

/// `targets` in the order round `round` measures them: rotated by one a round, so no target
/// always follows the same one. Measured first in every round, Quiver ran its open-loop
/// batches right after Redis's closed-loop ones each time; in one run its p99 there was
/// 3.7-7.1 ms against the limit's 1.0-1.5 ms, where Quiver alone made 1.3-1.6 ms, and
/// rotated 1.3-2.0 ms. Whether the run before was the cause is not proven; rotated, the
/// medians of three rounds no longer depend on it.
fn round_order(targets: &[Target], round: usize) -> impl Iterator<Item = &Target> {
    let start = round % targets.len().max(1);
    targets[start..].iter().chain(&targets[..start])
}

/// The limit's closed-loop requests a second on `workload` in its latest measurement: the
/// same round's when the limit is among the targets, else (Quiver alone at a larger key
/// count) the last round's.
fn limit_throughput(report: &Report, workload: &str) -> Result<f64, BenchError> {
    report
        .measurements
        .iter()
        .rev()
        .find(|m| m.target == LIMIT && m.workload == workload && m.pacing == Pace::Closed)
        .map(|m| m.requests_per_second)
        .ok_or_else(|| BenchError::NoLimit(workload.to_string()))
}

/// One workload against one target at one pacing (as planned, and as the load generator
/// paces it).
fn measure(
    plan: &BenchPlan,
    workload: &Workload,
    target: &Target,
    (pace, pacing): (Pace, Pacing),
    round: usize,
    n_keys: u64,
) -> Result<Measurement, BenchError> {
    let load = LoadPlan {
        connections: plan.connections,
        pacing,
        warmup: plan.warmup,
        duration: plan.duration,
        client_threads: plan.client_threads,
        batch_scheduling: plan.batch_scheduling,
        seed: round as u64,
    };
    let before = target.stats();
    let client_before = own_cpu_seconds();
    let result = match target.protocol {
        Protocol::Http => run_load(
            Arc::new(workload.http_client(target.address, Some(&plan.admin_key))),
            &load,
        )?,
        Protocol::Feast => run_load(Arc::new(workload.feast_client(target.address)), &load)?,
        Protocol::Resp => run_load(Arc::new(workload.redis_client(target.address)), &load)?,
    };
    let server_cpu = before
        .zip(target.stats())
        .map(|(before, after)| after.cpu_seconds - before.cpu_seconds);
    let client_cpu = client_before
        .zip(own_cpu_seconds())
        .map(|(before, after)| after - before);
    Ok(Measurement::new(
        (&workload.name, n_keys),
        pace,
        &target.name,
        (workload.items_per_request(), workload.item_unit()),
        &result,
        (server_cpu, client_cpu),
    ))
}

/// Grows Quiver's data set to `keys.end` keys per join key (loading `keys`), records its
/// memory, and measures its reads again over the larger key universe.
fn measure_more_keys(
    plan: &BenchPlan,
    quiver: &Target,
    before_load: Option<ProcessStats>,
    keys: Range<u64>,
    report: &mut Report,
) -> Result<(), BenchError> {
    let n_keys = keys.end;
    let data_sets = plan.data_sets(n_keys)?;
    load_quiver(plan, quiver, &data_sets, keys, report)?;
    record_quiver_memory(quiver, before_load, &data_sets, n_keys, report);
    let picker = KeyPicker::new(n_keys, plan.distribution);
    let reads: Vec<Workload> = data_sets
        .into_iter()
        .flat_map(|data| Workload::for_data_set(data, &picker, plan.batch_rows, None))
        .collect();
    measure_rounds(plan, &reads, std::slice::from_ref(quiver), n_keys, report)
}

/// The machine's 1-minute load average (other work on it skews every figure).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The value of the first `name: value` line of a `/proc` file.
fn machine_fact(path: &str, name: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
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

/// Writes the peers' fixed answers, one per read workload (Quiver's answer to its first
/// request), to `responses.json` in a scratch directory (the peers read it as they start).
fn responses_file(
    workloads: &[Workload],
    quiver: &Target,
    admin_key: &str,
) -> Result<ScratchDir, BenchError> {
    let mut answers = Vec::new();
    for workload in workloads.iter().filter(|w| w.reads()) {
        let body = sample_answer(workload, &quiver.base_url(), admin_key)?;
        answers.push(json!({
            "path": workload.path(),
            "service": workload.service_name(),
            "body": body,
        }));
    }
    let scratch = scratch_dir("responses")?;
    let path = scratch.0.join(RESPONSES);
    std::fs::write(
        &path,
        serde_json::to_vec(&answers).expect("JSON serialises"),
    )
    .map_err(|e| BenchError::Io(path.display().to_string(), e))?;
    Ok(scratch)
}

const RESPONSES: &str = "responses.json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_round_starts_from_the_next_target() {
        let targets: Vec<Target> = ["quiver", "limit", "redis"]
            .into_iter()
            .map(|name| Target {
                name: name.into(),
                address: "127.0.0.1:1".parse().unwrap(),
                protocol: Protocol::Http,
                process: None,
                backend_pid: None,
                workdir: None,
            })
            .collect();
        let order = |round| -> Vec<&str> {
            round_order(&targets, round)
                .map(|target| target.name.as_str())
                .collect()
        };
        assert_eq!(order(0), ["quiver", "limit", "redis"]);
        assert_eq!(order(1), ["limit", "redis", "quiver"]);
        assert_eq!(order(2), ["redis", "quiver", "limit"]);
        assert_eq!(order(3), order(0));
        assert_eq!(round_order(&[], 1).count(), 0);
    }
}

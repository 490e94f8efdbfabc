//! What a bench run found: one `Measurement` per (workload, pacing, target, round); medians
//! over rounds; the side-by-side table (each target's figure and its ratio to Quiver's), the
//! detailed table, and the same as JSON.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Value as Json};

use super::load::LoadResult;
use super::restore::RestoreFigure;

/// The target every other is compared with.
pub const QUIVER: &str = "quiver";
/// The bare actix-web handler: what Quiver's HTTP layer could do at best.
pub const LIMIT: &str = "limit";

/// How a measurement was paced, as the run planned it and the report labels it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Each connection sends as soon as its previous answer arrived.
    Closed,
    /// Open loop at a fixed rate, requests per second.
    Rate(f64),
    /// Open loop at this share of the limit's closed-loop throughput on the same workload,
    /// measured just before (issue 12 asks for latency at half the limit's maximum, which a
    /// fixed rate hits only if the machine runs as fast as in the run before).
    ShareOfLimit(f64),
}

impl Pace {
    /// The label of rows and of saved reports.
    pub fn label(self) -> String {
        match self {
            Pace::Closed => "closed loop".into(),
            Pace::Rate(rate) => format!("open loop {rate:.0}/s"),
            Pace::ShareOfLimit(share) => format!("open loop {share}× the limit's max"),
        }
    }

    /// The pace a label (of a saved report) was made from.
    fn from_label(label: &str) -> Option<Pace> {
        if label == "closed loop" {
            return Some(Pace::Closed);
        }
        let open = label.strip_prefix("open loop ")?;
        match open.strip_suffix("× the limit's max") {
            Some(share) => share.parse().ok().map(Pace::ShareOfLimit),
            None => open.strip_suffix("/s")?.parse().ok().map(Pace::Rate),
        }
    }
}

/// One run of one workload against one target.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub workload: String,
    /// Keys per join key in the data set the workload read or wrote.
    pub keys: u64,
    pub pacing: Pace,
    pub target: String,
    /// Rows or events per request (1 for a single GetFeatures), and what they are.
    pub items_per_request: u64,
    pub item_unit: &'static str,
    pub requests_per_second: f64,
    /// p50, p90, p99, p99.9 and max latency, in microseconds.
    pub latency_micros: [f64; 5],
    pub succeeded: u64,
    pub errors: BTreeMap<String, u64>,
    /// The server process's CPU time over the run divided by the requests it answered.
    pub cpu_micros_per_request: Option<f64>,
    /// The load generator's CPU time over the run divided by the requests: when it nears a
    /// core's worth of time per request at the throughput, the client is the bottleneck.
    pub client_cpu_micros_per_request: Option<f64>,
}

const PERCENTILES: [(&str, f64); 4] =
    [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)];

impl Measurement {
    pub fn new(
        (workload, keys): (&str, u64),
        pacing: Pace,
        target: &str,
        (items_per_request, item_unit): (u64, &'static str),
        result: &LoadResult,
        (server_cpu_seconds, client_cpu_seconds): (Option<f64>, Option<f64>),
    ) -> Measurement {
        let micros = |nanos: u64| nanos as f64 / 1000.0;
        let histogram = &result.latency_nanos;
        let mut latency_micros = [0.0; 5];
        for (slot, (_, percentile)) in latency_micros.iter_mut().zip(PERCENTILES) {
            *slot = micros(histogram.value_at_percentile(percentile));
        }
        latency_micros[4] = micros(histogram.max());
        if result.succeeded == 0 {
            // An empty histogram reads 0; nothing answered has no latency.
            latency_micros = [f64::NAN; 5];
        }
        let per_request = |seconds: Option<f64>| {
            seconds
                .filter(|_| result.completed_with_warmup > 0)
                .map(|s| s * 1e6 / result.completed_with_warmup as f64)
        };
        Measurement {
            workload: workload.to_string(),
            keys,
            pacing,
            target: target.to_string(),
            items_per_request,
            item_unit,
            requests_per_second: result.throughput(),
            latency_micros,
            succeeded: result.succeeded,
            errors: result.errors.clone(),
            cpu_micros_per_request: per_request(server_cpu_seconds),
            client_cpu_micros_per_request: per_request(client_cpu_seconds),
        }
    }
}

/// One line per measurement, as a long run's progress.
impl std::fmt::Display for Measurement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} keys), {}, {}: {} {}/s, p99 {}",
            self.workload,
            si(self.keys as f64),
            self.pacing.label(),
            self.target,
            si(self.requests_per_second * self.items_per_request as f64),
            self.item_unit,
            millis(self.latency_micros[2]),
        )?;
        let errors: u64 = self.errors.values().sum();
        if errors > 0 {
            write!(f, ", {errors} errors")?;
        }
        Ok(())
    }
}

/// Memory a target needs for the data set.
#[derive(Debug, Clone)]
pub struct MemoryFigure {
    pub target: String,
    /// Resident memory (Quiver) or `used_memory` (Redis) after loading, minus before.
    pub bytes: u64,
    pub rows: u64,
}

/// A whole run: its measurements, memory figures, and how it was made.
#[derive(Debug, Default)]
pub struct Report {
    pub measurements: Vec<Measurement>,
    pub memory: Vec<MemoryFigure>,
    pub restore: Vec<RestoreFigure>,
    /// Lines saying what was left out and why (a peer not installed, ...).
    pub notes: Vec<String>,
    pub settings: BTreeMap<String, Json>,
    /// The machine's 1-minute load average after each measurement: other work on the machine
    /// skews every figure, and this says how much there was.
    pub load_averages: Vec<f64>,
}

/// The median of each figure of one (workload, pacing, target) over its rounds.
#[derive(Debug)]
struct Summary {
    keys: u64,
    requests_per_second: f64,
    items_per_request: u64,
    item_unit: &'static str,
    latency_micros: [f64; 5],
    rounds: usize,
    succeeded: u64,
    errors: BTreeMap<String, u64>,
    cpu_micros_per_request: Option<f64>,
    client_cpu_micros_per_request: Option<f64>,
}

/// (workload, pacing label) -> target -> summary, in first-measured order of workloads.
type Summaries = Vec<((String, String), BTreeMap<String, Summary>)>;

impl Report {
    /// Figure `i`'s bytes per row added since the same target's figure before it (a run
    /// with several key counts): a process's fixed costs (the allocator's retained pages,
    /// first arenas, buffers) are in every figure's growth alike, so at a few thousand rows
    /// they swamp `bytes / rows`, while the difference of two counts is what a row costs.
    fn added_bytes_per_row(&self, i: usize) -> Option<f64> {
        let figure = &self.memory[i];
        let earlier = self.memory[..i]
            .iter()
            .rev()
            .find(|m| m.target == figure.target && m.rows < figure.rows)?;
        Some((figure.bytes as f64 - earlier.bytes as f64) / (figure.rows - earlier.rows) as f64)
    }

    /// A workload's row label: with the key count when the run measured several.
    fn workload_label(&self, measurement: &Measurement) -> String {
        let first_keys = self.measurements.first().map(|m| m.keys);
        if self.measurements.iter().all(|m| Some(m.keys) == first_keys) {
            measurement.workload.clone()
        } else {
            format!(
                "{}, {} keys",
                measurement.workload,
                si(measurement.keys as f64)
            )
        }
    }

    fn summaries(&self) -> Summaries {
        let mut groups: Summaries = Vec::new();
        let mut rounds: BTreeMap<(String, String, String), Vec<&Measurement>> = BTreeMap::new();
        for m in &self.measurements {
            let row = (self.workload_label(m), m.pacing.label());
            if !groups.iter().any(|(key, _)| *key == row) {
                groups.push((row.clone(), BTreeMap::new()));
            }
            rounds
                .entry((row.0, row.1, m.target.clone()))
                .or_default()
                .push(m);
        }
        for ((workload, pacing, target), runs) in rounds {
            let mut errors = BTreeMap::new();
            for run in &runs {
                for (kind, count) in &run.errors {
                    *errors.entry(kind.clone()).or_default() += count;
                }
            }
            // A round in which nothing was answered has no latencies (its histogram is empty,
            // not zero): the medians are over the rounds that have some.
            let answered: Vec<&&Measurement> = runs.iter().filter(|r| r.succeeded > 0).collect();
            let mut latency_micros = [0.0; 5];
            for (i, slot) in latency_micros.iter_mut().enumerate() {
                *slot = median(answered.iter().map(|r| r.latency_micros[i]).collect());
            }
            let median_of = |figure: fn(&Measurement) -> Option<f64>| {
                let values: Vec<f64> = runs.iter().filter_map(|r| figure(r)).collect();
                (!values.is_empty()).then(|| median(values))
            };
            let summary = Summary {
                keys: runs[0].keys,
                requests_per_second: median(runs.iter().map(|r| r.requests_per_second).collect()),
                items_per_request: runs[0].items_per_request,
                item_unit: runs[0].item_unit,
                latency_micros,
                rounds: runs.len(),
                succeeded: runs.iter().map(|r| r.succeeded).sum(),
                errors,
                cpu_micros_per_request: median_of(|m| m.cpu_micros_per_request),
                client_cpu_micros_per_request: median_of(|m| m.client_cpu_micros_per_request),
            };
            let group = groups
                .iter_mut()
                .find(|(key, _)| key.0 == workload && key.1 == pacing)
                .expect("every measurement's group was made above");
            group.1.insert(target, summary);
        }
        groups
    }

    /// The targets in the order of the table's columns: Quiver first.
    fn targets(&self) -> Vec<String> {
        let mut targets = vec![QUIVER.to_string()];
        for m in &self.measurements {
            if !targets.contains(&m.target) {
                targets.push(m.target.clone());
            }
        }
        targets
    }

    /// The side-by-side table (closed loop: throughput; open loop: p99, each with its ratio
    /// to Quiver's), then every figure per target.
    pub fn table(&self) -> String {
        let targets = self.targets();
        let summaries = self.summaries();
        let mut out = String::new();
        let setting = |name: &str| {
            self.settings.get(name).map_or("?".into(), |v| match v {
                Json::String(text) => text.clone(),
                other => other.to_string(),
            })
        };
        let _ = writeln!(
            out,
            "machine: {}, {} cores, {} memory; load average during the measurements {}\n",
            setting("cpu"),
            setting("cores"),
            setting("memory"),
            self.load_average_range()
        );
        let _ = write!(out, "| workload | pacing |");
        for target in &targets {
            let _ = write!(out, " {target} |");
        }
        out.push('\n');
        out.push_str(&"|---".repeat(targets.len() + 2));
        out.push_str("|\n");
        for ((workload, pacing), by_target) in &summaries {
            let _ = write!(out, "| {workload} | {pacing} |");
            let quiver = by_target.get(QUIVER);
            for target in &targets {
                let cell = match by_target.get(target) {
                    None => "–".to_string(),
                    Some(s) if pacing.starts_with("closed") => {
                        let items = s.requests_per_second * s.items_per_request as f64;
                        let ratio = quiver.map(|q| s.requests_per_second / q.requests_per_second);
                        format!(
                            "{} {}/s{}",
                            si(items),
                            s.item_unit,
                            ratio_text(ratio, target)
                        )
                    }
                    // Open loop, and not one request sent in the window was answered before it
                    // closed: the target cannot keep the rate, and has no latency to show.
                    Some(s) if s.succeeded == 0 => {
                        let unsent: u64 = s.errors.values().sum();
                        format!("none answered ({} unsent or failed)", si(unsent as f64))
                    }
                    Some(s) => {
                        let ratio = quiver.map(|q| s.latency_micros[2] / q.latency_micros[2]);
                        format!(
                            "p99 {}{}",
                            millis(s.latency_micros[2]),
                            ratio_text(ratio, target)
                        )
                    }
                };
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
        out.push_str(&batch_ratio_table(&summaries, &targets));
        out.push_str(
            "\n| workload | pacing | target | req/s | p50 | p90 | p99 | p99.9 | max | ok | errors | server CPU/req | client CPU/req | cores busy |\n",
        );
        out.push_str(&"|---".repeat(14));
        out.push_str("|\n");
        for ((workload, pacing), by_target) in &summaries {
            for target in &targets {
                let Some(s) = by_target.get(target) else {
                    continue;
                };
                let _ = write!(
                    out,
                    "| {workload} | {pacing} | {target} | {} |",
                    si(s.requests_per_second)
                );
                for latency in s.latency_micros {
                    let _ = write!(out, " {} |", millis(latency));
                }
                let errors = if s.errors.is_empty() {
                    "0".to_string()
                } else {
                    s.errors
                        .iter()
                        .map(|(kind, n)| format!("{kind}: {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let cpu =
                    |micros: Option<f64>| micros.map_or("–".into(), |c| format!("{c:.0} µs"));
                // Server and load generator together: on a closed loop, cores left idle while
                // requests are outstanding show the scheduler, not the server, holding them.
                let busy = s
                    .cpu_micros_per_request
                    .zip(s.client_cpu_micros_per_request)
                    .map_or("–".into(), |(server, client)| {
                        format!("{:.2}", s.requests_per_second * (server + client) / 1e6)
                    });
                let _ = writeln!(
                    out,
                    " {} | {errors} | {} | {} | {busy} |",
                    s.succeeded,
                    cpu(s.cpu_micros_per_request),
                    cpu(s.client_cpu_micros_per_request)
                );
            }
        }
        out.push_str(&self.key_scale_table());
        if !self.memory.is_empty() {
            out.push_str(
                "\n| memory | rows | bytes | bytes per row | bytes per row added since the fewer keys |\n|---|---|---|---|---|\n",
            );
            for (i, m) in self.memory.iter().enumerate() {
                let per_row = m.bytes as f64 / m.rows.max(1) as f64;
                let added = self
                    .added_bytes_per_row(i)
                    .map_or("–".into(), |added| format!("{added:.0}"));
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {per_row:.0} | {added} |",
                    m.target, m.rows, m.bytes
                );
            }
        }
        if !self.restore.is_empty() {
            out.push_str("\n| restart from disk | seconds | file bytes |\n|---|---|---|\n");
            for r in &self.restore {
                let _ = writeln!(
                    out,
                    "| {} | {:.2} | {} |",
                    r.target, r.seconds, r.file_bytes
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "\nnote: {note}");
        }
        let rounds = summaries
            .iter()
            .flat_map(|(_, t)| t.values().map(|s| s.rounds))
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "\nmedians of {rounds} round(s); ratios are to quiver (× > 1: the peer is faster in closed loop, slower in open loop)"
        );
        out
    }

    /// `min–max (median m)` of the load averages sampled during the run.
    fn load_average_range(&self) -> String {
        if self.load_averages.is_empty() {
            return "unknown".into();
        }
        let low = self.load_averages.iter().copied().fold(f64::MAX, f64::min);
        let high = self.load_averages.iter().copied().fold(0.0, f64::max);
        let middle = median(self.load_averages.clone());
        format!("{low:.1}–{high:.1} (median {middle:.1})")
    }

    /// Quiver's reads at each key count the run measured, each against the same workload at
    /// the fewest keys (empty when the run measured one key count).
    fn key_scale_table(&self) -> String {
        // (workload, pacing, keys) -> Quiver's rounds, ordered so the fewest keys come first.
        let mut rounds: BTreeMap<(String, String, u64), Vec<&Measurement>> = BTreeMap::new();
        for m in self.measurements.iter().filter(|m| m.target == QUIVER) {
            rounds
                .entry((m.workload.clone(), m.pacing.label(), m.keys))
                .or_default()
                .push(m);
        }
        let key_counts = |workload: &str, pacing: &str| {
            rounds
                .keys()
                .filter(|(w, p, _)| w == workload && p == pacing)
                .count()
        };
        let mut out = String::new();
        let mut baseline: Option<(&str, &str, f64)> = None;
        for ((workload, pacing, keys), runs) in &rounds {
            if key_counts(workload, pacing) < 2 {
                continue;
            }
            if out.is_empty() {
                out.push_str("\n| quiver by keys | pacing | keys | throughput | p50 | p99 | p99 vs the fewest keys |\n|---|---|---|---|---|---|---|\n");
            }
            let median_of =
                |figure: fn(&Measurement) -> f64| median(runs.iter().map(|m| figure(m)).collect());
            let p99 = median_of(|m| m.latency_micros[2]);
            let baseline_p99 = match baseline {
                Some((w, p, p99)) if w == workload && p == pacing => p99,
                _ => baseline.insert((workload, pacing, p99)).2,
            };
            let _ = writeln!(
                out,
                "| {workload} | {pacing} | {} | {} {}/s | {} | {} | {:.2}× |",
                si(*keys as f64),
                si(median_of(|m| m.requests_per_second) * runs[0].items_per_request as f64),
                runs[0].item_unit,
                millis(median_of(|m| m.latency_micros[0])),
                millis(p99),
                p99 / baseline_p99
            );
        }
        out
    }

    /// For every (single-row read workload, target): its median throughput and p99 latency
    /// (milliseconds) at each pacing, by throughput: the points of a latency-vs-throughput
    /// curve.
    pub fn latency_curves(&self) -> Vec<(String, Vec<(f64, f64)>)> {
        let mut curves: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for ((workload, _), by_target) in self.summaries() {
            for (target, summary) in by_target {
                // No latency (nothing answered: NaN, or 0 in reports saved before NaN was
                // used) is no point of a curve.
                let has_latency = summary.latency_micros[2] > 0.0;
                if summary.item_unit != "req" || !has_latency {
                    continue;
                }
                let label = format!("{target}: {workload}");
                let point = (
                    summary.requests_per_second,
                    summary.latency_micros[2] / 1000.0,
                );
                match curves.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, points)) => points.push(point),
                    None => curves.push((label, vec![point])),
                }
            }
        }
        for (_, points) in &mut curves {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        curves
    }

    /// The medians of a report saved as JSON (`json()`), each as a one-round measurement:
    /// enough to draw its chart again. `None` if `saved` is not such a report.
    pub fn from_saved_json(saved: &Json) -> Option<Report> {
        let measurements = saved["results"]
            .as_array()?
            .iter()
            .map(|result| {
                let pacing = Pace::from_label(result["pacing"].as_str()?)?;
                let latency = &result["latencyMicros"];
                let mut latency_micros = [f64::NAN; 5];
                for (slot, name) in latency_micros
                    .iter_mut()
                    .zip(PERCENTILES.iter().map(|(name, _)| *name).chain(["max"]))
                {
                    *slot = latency[name].as_f64().unwrap_or(f64::NAN);
                }
                Some(Measurement {
                    // The saved label already names the key count where there were several.
                    workload: result["workload"].as_str()?.to_string(),
                    keys: 0,
                    pacing,
                    target: result["target"].as_str()?.to_string(),
                    items_per_request: result["itemsPerRequest"].as_u64()?,
                    item_unit: match result["itemUnit"].as_str()? {
                        "req" => "req",
                        "rows" => "rows",
                        _ => "events",
                    },
                    requests_per_second: result["requestsPerSecond"].as_f64()?,
                    latency_micros,
                    succeeded: result["succeeded"].as_u64()?,
                    errors: BTreeMap::new(),
                    cpu_micros_per_request: None,
                    client_cpu_micros_per_request: None,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Report {
            measurements,
            ..Report::default()
        })
    }

    pub fn json(&self) -> Json {
        let results: Vec<Json> = self
            .summaries()
            .into_iter()
            .flat_map(|((workload, pacing), by_target)| {
                by_target.into_iter().map(move |(target, s)| {
                    let latency: serde_json::Map<String, Json> = PERCENTILES
                        .iter()
                        .map(|(name, _)| *name)
                        .chain(["max"])
                        .zip(s.latency_micros)
                        .map(|(name, micros)| (name.to_string(), json!(micros)))
                        .collect();
                    json!({
                        "workload": workload,
                        "pacing": pacing,
                        "target": target,
                        "rounds": s.rounds,
                        "requestsPerSecond": s.requests_per_second,
                        "itemsPerRequest": s.items_per_request,
                        "itemUnit": s.item_unit,
                        "latencyMicros": latency,
                        "succeeded": s.succeeded,
                        "errors": s.errors,
                        "serverCpuMicrosPerRequest": s.cpu_micros_per_request,
                        "clientCpuMicrosPerRequest": s.client_cpu_micros_per_request,
                        "keys": s.keys,
                    })
                })
            })
            .collect();
        let memory: Vec<Json> = self
            .memory
            .iter()
            .enumerate()
            .map(|(i, m)| json!({"target": m.target, "rows": m.rows, "bytes": m.bytes, "bytesPerRow": m.bytes as f64 / m.rows.max(1) as f64, "addedBytesPerRow": self.added_bytes_per_row(i)}))
            .collect();
        let restore: Vec<Json> = self
            .restore
            .iter()
            .map(|r| json!({"target": r.target, "seconds": r.seconds, "fileBytes": r.file_bytes}))
            .collect();
        let mut settings = self.settings.clone();
        settings.insert("loadAverage".into(), json!(self.load_average_range()));
        json!({
            "settings": settings,
            "results": results,
            "memory": memory,
            "restore": restore,
            "notes": self.notes,
        })
    }
}

/// Each target's GetFeaturesBatch rows a second over its single GetFeatures requests a
/// second, both closed loop (issue 12 asks for 6× on a batch of 10); empty when the run
/// measured no batch.
fn batch_ratio_table(summaries: &Summaries, targets: &[String]) -> String {
    let closed = |workload: &str| {
        summaries
            .iter()
            .find(|((w, pacing), _)| w == workload && pacing.starts_with("closed"))
            .map(|(_, by_target)| by_target)
    };
    let mut out = String::new();
    for ((workload, pacing), batch) in summaries {
        // "get_features_batch(ROWS) SERVICE[, KEYS keys]" pairs with "get_features SERVICE...".
        let service = workload
            .strip_prefix("get_features_batch(")
            .and_then(|rest| rest.split_once(") "))
            .map(|(_, service)| service);
        let Some(service) = service.filter(|_| pacing.starts_with("closed")) else {
            continue;
        };
        let Some(single) = closed(&format!("get_features {service}")) else {
            continue;
        };
        if out.is_empty() {
            out.push_str("\n| batch ÷ single, closed loop (rows/s ÷ req/s) |");
            for target in targets {
                let _ = write!(out, " {target} |");
            }
            out.push('\n');
            out.push_str(&"|---".repeat(targets.len() + 1));
            out.push_str("|\n");
        }
        let _ = write!(out, "| {workload} |");
        for target in targets {
            let cell = match (batch.get(target), single.get(target)) {
                (Some(b), Some(s)) => format!(
                    "{:.2}×",
                    (b.requests_per_second * b.items_per_request as f64)
                        / (s.requests_per_second * s.items_per_request as f64)
                ),
                _ => "–".into(),
            };
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn ratio_text(ratio: Option<f64>, target: &str) -> String {
    match ratio {
        Some(r) if target != QUIVER && r.is_finite() => format!(" ({r:.2}×)"),
        _ => String::new(),
    }
}

/// `35.5k`, `1.20M`, `870`.
fn si(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// `1.25 ms`, or `–` where there is no latency (nothing was answered).
fn millis(micros: f64) -> String {
    if micros.is_finite() {
        format!("{:.2} ms", micros / 1000.0)
    } else {
        "–".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(target: &str, rps: f64, round_errors: u64) -> Measurement {
        Measurement {
            workload: "get_features".into(),
            keys: 100,
            pacing: Pace::Closed,
            target: target.into(),
            items_per_request: 1,
            item_unit: "req",
            requests_per_second: rps,
            latency_micros: [100.0, 200.0, 300.0, 400.0, 500.0],
            succeeded: 10,
            errors: (round_errors > 0)
                .then(|| ("503".to_string(), round_errors))
                .into_iter()
                .collect(),
            cpu_micros_per_request: None,
            client_cpu_micros_per_request: None,
        }
    }

    #[test]
    fn medians_over_rounds_and_ratios_to_quiver() {
        let report = Report {
            measurements: vec![
                measurement(QUIVER, 1000.0, 0),
                measurement(LIMIT, 3000.0, 0),
                measurement(QUIVER, 3000.0, 0),
                measurement(LIMIT, 4000.0, 2),
                measurement(QUIVER, 2000.0, 0),
                measurement(LIMIT, 5000.0, 0),
            ],
            ..Report::default()
        };
        let table = report.table();
        assert!(
            table.contains("| get_features | closed loop | 2.0k req/s | 4.0k req/s (2.00×) |"),
            "{table}"
        );
        let json = report.json();
        let limit = &json["results"][0];
        assert_eq!(limit["target"], "limit");
        assert_eq!(limit["rounds"], 3);
        assert_eq!(limit["succeeded"], 30);
        assert_eq!(limit["errors"]["503"], 2);
        assert_eq!(limit["latencyMicros"]["p99"], 300.0);
    }

    #[test]
    fn a_target_that_answered_nothing_in_an_open_loop_window_shows_no_latency() {
        let open = |target: &str, succeeded: u64| Measurement {
            pacing: Pace::Rate(5000.0),
            succeeded,
            errors: [("backlog".to_string(), 20_000 - succeeded)].into(),
            ..measurement(target, 5000.0, 0)
        };
        let report = Report {
            measurements: vec![open(QUIVER, 19_990), open("feast", 0)],
            ..Report::default()
        };
        let table = report.table();
        assert!(
            table.contains("| p99 0.30 ms | none answered (20.0k unsent or failed) |"),
            "{table}"
        );
        assert_eq!(report.latency_curves().len(), 1);
    }

    #[test]
    fn memory_per_row_added_is_the_difference_of_two_key_counts() {
        let figure = |target: &str, rows, bytes| MemoryFigure {
            target: target.into(),
            bytes,
            rows,
        };
        let report = Report {
            memory: vec![
                figure("quiver (RSS)", 1_000, 50_000_000),
                figure("redis (used_memory)", 1_000, 300_000),
                figure("quiver (RSS)", 11_000, 52_000_000),
            ],
            ..Report::default()
        };
        let table = report.table();
        assert!(
            table.contains("| quiver (RSS) | 1000 | 50000000 | 50000 | – |"),
            "{table}"
        );
        assert!(
            table.contains("| redis (used_memory) | 1000 | 300000 | 300 | – |"),
            "{table}"
        );
        assert!(
            table.contains("| quiver (RSS) | 11000 | 52000000 | 4727 | 200 |"),
            "{table}"
        );
        let json = report.json();
        assert_eq!(json["memory"][0]["addedBytesPerRow"], Json::Null);
        assert_eq!(json["memory"][2]["addedBytesPerRow"], 200.0);
    }

    #[test]
    fn a_saved_report_gives_back_its_chart_curves() {
        let report = Report {
            measurements: vec![
                measurement(QUIVER, 2000.0, 0),
                Measurement {
                    pacing: Pace::Rate(500.0),
                    ..measurement(QUIVER, 500.0, 0)
                },
                Measurement {
                    pacing: Pace::ShareOfLimit(0.5),
                    ..measurement(QUIVER, 2000.0, 0)
                },
                measurement(LIMIT, 4000.0, 0),
            ],
            ..Report::default()
        };
        let saved: Json = serde_json::from_str(&report.json().to_string()).unwrap();
        let again = Report::from_saved_json(&saved).expect("a saved report reads back");
        assert_eq!(again.latency_curves(), report.latency_curves());
    }

    #[test]
    fn batch_over_single_is_rows_a_second_over_requests_a_second_per_target() {
        let batch = |target: &str, rps: f64| Measurement {
            workload: "get_features_batch(10) service".into(),
            items_per_request: 10,
            item_unit: "rows",
            ..measurement(target, rps, 0)
        };
        let single = |target: &str, rps: f64| Measurement {
            workload: "get_features service".into(),
            ..measurement(target, rps, 0)
        };
        let report = Report {
            measurements: vec![
                single(QUIVER, 50_000.0),
                single(LIMIT, 70_000.0),
                batch(QUIVER, 30_000.0),
                batch(LIMIT, 35_000.0),
            ],
            ..Report::default()
        };
        let table = report.table();
        // 300,000 rows/s ÷ 50,000 req/s; 350,000 ÷ 70,000.
        assert!(
            table.contains("| get_features_batch(10) service | 6.00× | 5.00× |"),
            "{table}"
        );
        // No batch measured: no such table.
        let singles = Report {
            measurements: vec![single(QUIVER, 50_000.0)],
            ..Report::default()
        };
        assert!(!singles.table().contains("batch ÷ single"));
    }

    #[test]
    fn cores_busy_are_the_rate_times_server_and_client_cpu_a_request() {
        let report = Report {
            measurements: vec![Measurement {
                cpu_micros_per_request: Some(12.0),
                client_cpu_micros_per_request: Some(8.0),
                ..measurement(QUIVER, 50_000.0, 0)
            }],
            ..Report::default()
        };
        let table = report.table();
        // 50,000 requests a second × 20 µs = one core's second per second.
        assert!(table.contains("| 12 µs | 8 µs | 1.00 |"), "{table}");
    }
}

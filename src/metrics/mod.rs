//! Quiver's metrics, exported at `GET /metrics` in the Prometheus text format (version 0.0.4).
//!
//! Counters and histograms are process-wide, like the logger: the HTTP middleware, the journals,
//! the snapshotter, the writer and the ingest route each add to them in one call, without a
//! handle threaded through every constructor. They are atomics (and each family's map of label
//! sets), never an actor's state. What belongs to an actor's state (a shard's rows and arena
//! bytes, a view's newest event) is not kept here: the scrape asks its owner and hands the answer
//! to [`render`] as a [`Scrape`].
//!
//! `history` keeps the last hour of request rate, latency percentiles and rows written per
//! view, for the console's charts (one sampler actor owns the ring).
//!
//! Label values are route patterns, fixed words (`&'static str`) and names the feature
//! repository defines: never a raw path, a join-key value, an API key or a secret.

mod history;

pub use history::{History, HistoryGone, RequestHistory, Sample, ViewWrites, SAMPLE_EVERY};

use std::cell::RefCell;
use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::time::{Micros, MICROS_PER_SECOND};

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Every metric name starts with this, followed by `_`.
const PREFIX: &str = "quiver";

/// A histogram family whose members share one set of buckets.
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// One HTTP request's labels. `route` is the pattern the request matched (`/scim/v2/{resource}`),
/// never the path it named.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    api: &'static str,
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabels {
    shard: usize,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngestLabels {
    outcome: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JournalLabels {
    journal: String,
}

/// From 100 µs to about 13 s: a feature read is well under a millisecond, a big ingest or a
/// SCIM listing takes longer.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.5, 14))
}

/// From 50 µs to about 6 s: an fsync on a fast disk up to one on a struggling disk.
fn fsync_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 3.0, 12))
}

/// Declares each exported metric once: its field, type and making, its name and help.
macro_rules! process_metrics {
    ($($field:ident: $type:ty = $make:expr => $name:literal, $help:literal;)*) => {
        /// The process-wide metrics, each registered in `registry`.
        struct Metrics {
            registry: Registry,
            /// When the newest snapshot this process wrote or started from was taken (seconds
            /// since the epoch; 0: none): not exported itself, a scrape exports its age.
            snapshot_taken_at: Gauge<f64, AtomicU64>,
            $($field: $type,)*
        }

        impl Metrics {
            fn new() -> Metrics {
                let mut registry = Registry::with_prefix(PREFIX);
                $(
                    let $field: $type = $make;
                    registry.register($name, $help, $field.clone());
                )*
                Metrics { registry, snapshot_taken_at: Gauge::default(), $($field,)* }
            }
        }
    };
}

process_metrics! {
    http_requests: Family<HttpLabels, Counter> = Family::default()
        => "http_requests", "HTTP requests answered, by API family, route pattern, method and status";
    http_duration: Histograms<HttpLabels> = Family::new_with_constructor(request_buckets)
        => "http_request_duration_seconds", "Time from a request's arrival to its answer, by API family, route pattern, method and status";
    shard_mailbox: Family<ShardLabels, Gauge> = Family::default()
        => "shard_mailbox_depth", "Write batches sent to a shard that it has not applied yet";
    ingest_records: Family<IngestLabels, Counter> = Family::default()
        => "ingest_records", "Stream Ingest rows by outcome: accepted (written to a view), or rejected and why";
    journal_bytes: Family<JournalLabels, Counter> = Family::default()
        => "journal_appended_bytes", "Bytes appended to a journal (rows, directory, vault), record headers included";
    journal_fsync: Histograms<JournalLabels> = Family::new_with_constructor(fsync_buckets)
        => "journal_fsync_duration_seconds", "How long a journal's fsync took";
    snapshot_duration: Histogram = Histogram::new(exponential_buckets(0.001, 3.0, 12))
        => "snapshot_duration_seconds", "How long a snapshot took, from its request to its file on disk";
    snapshot_size: Gauge = Gauge::default()
        => "snapshot_size_bytes", "Size of the newest snapshot file this process wrote";
    snapshot_failures: Counter = Counter::default()
        => "snapshot_failures", "Snapshots that could not be written";
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// How many label sets each thread keeps handles for: enough for the routes a server is
/// called on; past it a request hashes its labels into the families' maps, as every request
/// once did, so the scan stays short whatever requests arrive.
const HTTP_HANDLES_PER_THREAD: usize = 64;

thread_local! {
    /// This thread's handles on the members of `http_requests` and `http_duration` it has
    /// counted, found by comparing labels (status first) instead of SipHashing them into the
    /// families' shared maps twice a request. A handle is the member itself (an `Arc`), so
    /// what it counts is what `render` exports.
    static HTTP_HANDLES: RefCell<Vec<(HttpLabels, Counter, Histogram)>> =
        const { RefCell::new(Vec::new()) };
}

/// Whether two label words are the same: nearly always the same constant, found by its
/// address before its bytes are compared (a call to `memcmp` each, ~17 instructions).
fn same_word(held: &'static str, given: &'static str) -> bool {
    std::ptr::eq(held, given) || held == given
}

/// Counts one answered HTTP request and its duration.
pub fn http_request(
    api: &'static str,
    route: &str,
    method: &'static str,
    status: u16,
    duration: Duration,
) {
    let seconds = duration.as_secs_f64();
    HTTP_HANDLES.with_borrow_mut(|handles| {
        let held = handles.iter().find(|(labels, ..)| {
            labels.status == status
                && same_word(labels.method, method)
                && same_word(labels.api, api)
                && labels.route == route
        });
        if let Some((_, counter, histogram)) = held {
            counter.inc();
            histogram.observe(seconds);
            return;
        }
        let labels = HttpLabels {
            api,
            route: route.to_string(),
            method,
            status,
        };
        let counter = METRICS.http_requests.get_or_create_owned(&labels);
        let histogram = METRICS.http_duration.get_or_create_owned(&labels);
        counter.inc();
        histogram.observe(seconds);
        if handles.len() < HTTP_HANDLES_PER_THREAD {
            handles.push((labels, counter, histogram));
        }
    });
    history::record_latency(duration);
}

/// The gauge of write batches waiting in `shard`'s mailbox: the writer raises it as it sends a
/// batch, the shard lowers it as it takes one.
pub fn shard_mailbox_depth(shard: usize) -> Gauge {
    METRICS
        .shard_mailbox
        .get_or_create_owned(&ShardLabels { shard })
}

/// One item of a queue that `depth` counts: counted from its making until it is dropped.
#[derive(Debug)]
pub struct Queued(Gauge);

impl Queued {
    pub fn new(depth: &Gauge) -> Queued {
        depth.inc();
        Queued(depth.clone())
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts ingested rows written to their views.
pub fn ingest_accepted(rows: usize) {
    METRICS
        .ingest_records
        .get_or_create(&IngestLabels {
            outcome: "accepted",
            reason: "",
        })
        .inc_by(rows as u64);
}

/// Counts ingested records refused, and why (a fixed word).
pub fn ingest_rejected(reason: &'static str, records: usize) {
    METRICS
        .ingest_records
        .get_or_create(&IngestLabels {
            outcome: "rejected",
            reason,
        })
        .inc_by(records as u64);
}

/// One journal's counters, held by its writing end.
#[derive(Debug, Clone)]
pub struct JournalMetrics {
    appended_bytes: Counter,
    fsync: Histogram,
}

impl JournalMetrics {
    /// The metrics of the journal named `journal` (`rows`, `directory`, `vault`).
    pub fn named(journal: String) -> JournalMetrics {
        let labels = JournalLabels { journal };
        JournalMetrics {
            appended_bytes: METRICS.journal_bytes.get_or_create_owned(&labels),
            fsync: METRICS.journal_fsync.get_or_create_owned(&labels),
        }
    }

    pub fn appended(&self, bytes: usize) {
        self.appended_bytes.inc_by(bytes as u64);
    }

    /// Runs an fsync and records how long it took.
    pub fn fsync<T>(&self, sync: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = sync();
        self.fsync.observe(started.elapsed().as_secs_f64());
        result
    }
}

/// Records a snapshot written: how long it took, its size and when it was taken.
pub fn snapshot_written(duration: Duration, bytes: u64, taken_at: Micros) {
    METRICS.snapshot_duration.observe(duration.as_secs_f64());
    METRICS.snapshot_size.set(bytes as i64);
    snapshot_taken(taken_at);
}

/// Records when the snapshot the server started from was taken (for its age).
pub fn snapshot_taken(taken_at: Micros) {
    METRICS
        .snapshot_taken_at
        .set(taken_at as f64 / MICROS_PER_SECOND as f64);
}

pub fn snapshot_failed() {
    METRICS.snapshot_failures.inc();
}

/// One shard's usage, as its actor answered.
#[derive(Debug, Clone, Copy)]
pub struct ShardGauges {
    pub rows: usize,
    pub arena_mapped_bytes: usize,
    pub arena_live_bytes: usize,
    pub arena_dead_bytes: usize,
}

/// A view's newest event (any key, any shard).
#[derive(Debug, Clone)]
pub struct ViewFreshness {
    pub workspace: String,
    pub feature_view: String,
    pub newest_event: Micros,
}

/// What a scrape reads from the actors that own it, at `now`.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub now: Micros,
    /// Index = shard.
    pub shards: Vec<ShardGauges>,
    /// Views that hold any event.
    pub views: Vec<ViewFreshness>,
    /// The feature log's records since start: (logged, dropped because its queue was full,
    /// failed to write).
    pub feature_log: (u64, u64, u64),
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ArenaLabels {
    shard: usize,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViewLabels {
    workspace: String,
    feature_view: String,
}

/// Seconds from `then` to `now`.
fn age_seconds(now: Micros, then: Micros) -> f64 {
    (now - then) as f64 / MICROS_PER_SECOND as f64
}

/// The values of this scrape, in a registry of their own (built anew each time, so nothing of
/// one scrape stays for the next).
fn scrape_registry(scrape: &Scrape) -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    let rows: Family<ShardLabels, Gauge> = Family::default();
    let arena: Family<ArenaLabels, Gauge> = Family::default();
    for (shard, usage) in scrape.shards.iter().enumerate() {
        rows.get_or_create(&ShardLabels { shard })
            .set(usage.rows as i64);
        for (state, bytes) in [
            ("mapped", usage.arena_mapped_bytes),
            ("live", usage.arena_live_bytes),
            ("dead", usage.arena_dead_bytes),
        ] {
            arena
                .get_or_create(&ArenaLabels { shard, state })
                .set(bytes as i64);
        }
    }
    registry.register("shard_rows", "Rows a shard holds (plain views' keys)", rows);
    registry.register(
        "shard_arena_bytes",
        "A shard's arena: bytes mapped, and of the bytes used, live rows and overwritten (dead) ones awaiting compaction",
        arena,
    );
    let freshness: Family<ViewLabels, Gauge<f64, AtomicU64>> = Family::default();
    for view in &scrape.views {
        freshness
            .get_or_create(&ViewLabels {
                workspace: view.workspace.clone(),
                feature_view: view.feature_view.clone(),
            })
            .set(age_seconds(scrape.now, view.newest_event));
    }
    registry.register(
        "feature_freshness_seconds",
        "Age of a feature view's newest event (any key): how stale its freshest value is",
        freshness,
    );
    let feature_log: Family<OutcomeLabels, Counter> = Family::default();
    let (logged, dropped, failed) = scrape.feature_log;
    for (outcome, records) in [("logged", logged), ("dropped", dropped), ("failed", failed)] {
        feature_log
            .get_or_create(&OutcomeLabels { outcome })
            .inc_by(records);
    }
    registry.register(
        "feature_log_records",
        "Served rows the feature log wrote, dropped (its queue was full: reads never wait) or failed to write",
        feature_log,
    );
    let taken_at = METRICS.snapshot_taken_at.get();
    if taken_at > 0.0 {
        let age: Gauge<f64, AtomicU64> = Gauge::default();
        age.set(scrape.now as f64 / MICROS_PER_SECOND as f64 - taken_at);
        registry.register(
            "snapshot_age_seconds",
            "Age of the newest snapshot this process wrote or started from",
            age,
        );
    }
    registry
}

/// Every metric, in the Prometheus text format.
pub fn render(scrape: &Scrape) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    prometheus_text::encode(&mut text, &METRICS.registry).expect("encoding into a String");
    prometheus_text::encode(&mut text, &scrape_registry(scrape)).expect("encoding into a String");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_threads_handles_count_into_the_exported_family() {
        let count = || http_request("other", "/handles", "GET", 204, Duration::from_micros(1));
        count();
        count();
        std::thread::spawn(count).join().unwrap();
        let text = render(&Scrape {
            now: 0,
            shards: Vec::new(),
            views: Vec::new(),
            feature_log: (0, 0, 0),
        });
        assert!(
            text.contains(
                r#"quiver_http_requests_total{api="other",route="/handles",method="GET",status="204"} 3"#
            ),
            "{text}"
        );
    }

    #[test]
    fn renders_counters_and_the_scrape_values() {
        http_request(
            "feature_service",
            "/api/v1/feature-service/get-features",
            "POST",
            200,
            Duration::from_micros(300),
        );
        ingest_rejected("past_ttl", 2);
        let text = render(&Scrape {
            now: 10 * MICROS_PER_SECOND,
            shards: vec![ShardGauges {
                rows: 3,
                arena_mapped_bytes: 4096,
                arena_live_bytes: 100,
                arena_dead_bytes: 20,
            }],
            views: vec![ViewFreshness {
                workspace: "prod".into(),
                feature_view: "user_profile".into(),
                newest_event: 4 * MICROS_PER_SECOND,
            }],
            feature_log: (7, 2, 0),
        });
        assert!(text.contains(
            r#"quiver_http_requests_total{api="feature_service",route="/api/v1/feature-service/get-features",method="POST",status="200"} "#
        ), "{text}");
        assert!(
            text.contains(r#"quiver_ingest_records_total{outcome="rejected",reason="past_ttl"} "#)
        );
        assert!(text.contains(r#"quiver_shard_rows{shard="0"} 3"#));
        assert!(text.contains(r#"quiver_feature_log_records_total{outcome="dropped"} 2"#));
        assert!(text.contains(r#"quiver_shard_arena_bytes{shard="0",state="dead"} 20"#));
        assert!(text.contains(
            r#"quiver_feature_freshness_seconds{workspace="prod",feature_view="user_profile"} 6.0"#
        ), "{text}");
    }
}

//! `quiver bench`: the benchmark harness's command line (see `bench`): the workload's shape,
//! the load, the peers; prints the side-by-side table or its JSON. `quiver bench bare-server`
//! (hidden) is the limit the harness starts and compares with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rand::RngExt;

use super::ConfigArg;
use crate::bench::bare::{serve_bare, BodyParsing};
use crate::bench::chart::draw_latency_chart;
use crate::bench::dataset::KeyDistribution;
use crate::bench::redis_front::serve_redis_front;
use crate::bench::report::Report;
use crate::bench::repository::{RepositoryShape, SERVICE, WORKSPACE};
use crate::bench::{run_bench, BenchPlan};
use crate::config::{Overrides, Settings};
use crate::registry::load_registry;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    helper: Option<BenchHelper>,
    /// The repository a self-started Quiver serves and the data set is shaped after.
    #[command(flatten)]
    config: ConfigArg,
    /// Measure the Quiver running at this URL instead of starting one (needs --api-key).
    #[arg(long)]
    url: Option<String>,
    /// The admin key of the Quiver at --url.
    #[arg(long = "api-key", env = "QUIVER_ADMIN_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Feature services to read, as WORKSPACE.SERVICE (repeatable).
    #[arg(
        long = "service",
        default_values = ["prod.fraud_detection_feature_service", "prod.user_risk_service"]
    )]
    services: Vec<String>,
    /// Measure a synthetic repository of the shape below instead of --config's services.
    #[arg(long)]
    data: bool,
    /// --data: batch views in the service.
    #[arg(long, default_value_t = 3)]
    views: usize,
    /// --data: features per batch view.
    #[arg(long, default_value_t = 8)]
    features: usize,
    /// --data: feature types, cycled over each view's features.
    #[arg(
        long = "feature-types",
        value_delimiter = ',',
        default_value = "int64,float64,string,boolean,array<string>,timestamp"
    )]
    feature_types: Vec<String>,
    /// --data: stream views of aggregations in the service.
    #[arg(long = "aggregate-views", default_value_t = 1)]
    aggregate_views: usize,
    /// --data: aggregations per aggregate view.
    #[arg(long, default_value_t = 6)]
    aggregations: usize,
    /// --data: aggregation functions, cycled.
    #[arg(long, value_delimiter = ',', default_value = "sum,mean,count")]
    functions: Vec<String>,
    /// --data: aggregation windows, cycled.
    #[arg(long, value_delimiter = ',', default_value = "1h,1d,7d")]
    windows: Vec<String>,
    /// --data: aggregation interval.
    #[arg(long, default_value = "10m")]
    interval: String,
    /// Keys per join key in the data set [default: 10000; --quick: 200]. Several counts,
    /// comma-separated and ascending (`10000,10000000`): the run at the first, then Quiver
    /// alone grows its data set to each further count and its reads are measured again.
    #[arg(long, value_delimiter = ',')]
    keys: Option<Vec<u64>>,
    /// Connections the data set is loaded over at once.
    #[arg(long = "load-connections", default_value_t = 4)]
    load_connections: usize,
    /// Length of every generated string value.
    #[arg(long = "string-bytes", default_value_t = 16)]
    string_bytes: usize,
    /// How request keys are drawn.
    #[arg(long, value_enum, default_value = "uniform")]
    distribution: KeyDistribution,
    /// Rows per GetFeaturesBatch request.
    #[arg(long = "batch-rows", default_value_t = 10)]
    batch_rows: usize,
    /// Events per `/ingest` request.
    #[arg(long = "ingest-events", default_value_t = 100)]
    ingest_events: usize,
    /// Rows per bulk-loader request.
    #[arg(long = "load-rows", default_value_t = 1000)]
    load_rows: usize,
    /// Connections kept busy [default: 32; --quick: 4].
    #[arg(long)]
    connections: Option<usize>,
    /// Threads of the load generator.
    #[arg(long = "client-threads", default_value_t = 1)]
    client_threads: usize,
    /// Leave the load generator's threads under the normal scheduling policy, so that their
    /// wake-ups preempt the server's workers on the cores they share (every run before the
    /// seventeenth session); by default they run under `SCHED_BATCH`, which never preempts.
    #[arg(long = "client-preempts")]
    client_preempts: bool,
    /// Measured seconds per workload, target and pacing [default: 5; --quick: 0.5].
    #[arg(long)]
    seconds: Option<f64>,
    /// Seconds of unmeasured load before each measurement [default: 1; --quick: 0.2].
    #[arg(long = "warmup-seconds")]
    warmup_seconds: Option<f64>,
    /// Open-loop rates in requests per second, comma-separated (closed loop is always run)
    /// [default, unless --rate-of-limit is given: 1000; --quick: 200].
    #[arg(long = "rate", value_delimiter = ',')]
    rates: Option<Vec<f64>>,
    /// Open-loop rates as shares of the limit's closed-loop requests a second on the same
    /// workload, measured just before in the same round, comma-separated (`0.5`: half the
    /// limit's maximum on this machine now, whatever its speed). Needs --compare.
    #[arg(long = "rate-of-limit", value_delimiter = ',', requires = "compare", value_parser = share_of_limit)]
    shares_of_limit: Vec<f64>,
    /// Rounds (each alternates the targets); the table holds the medians [default: 3;
    /// --quick: 1].
    #[arg(long)]
    rounds: Option<usize>,
    /// Also measure the peers: the limit (a bare actix-web handler), Redis (if
    /// `redis-server` is installed) through a front end and raw, and Feast (installed with pip
    /// into a virtualenv in ~/.cache/quiver-bench on first use).
    #[arg(long)]
    compare: bool,
    /// Also time restarts with the data set on disk: Quiver from a snapshot (a second Quiver
    /// with a data directory is loaded for it) and, with --compare, Redis from an RDB file.
    #[arg(long)]
    restore: bool,
    /// With --compare, leave Feast out.
    #[arg(long = "skip-feast")]
    skip_feast: bool,
    /// With --compare, the limit answers without parsing the request body (it finds the
    /// service by its name in the bytes): what HTTP alone costs, the floor under any handler.
    #[arg(long = "limit-skips-parsing", requires = "compare")]
    limit_skips_parsing: bool,
    /// Seconds, not minutes: smaller defaults for the flags above that name one. For CI, so
    /// the harness cannot rot.
    #[arg(long)]
    quick: bool,
    /// Also draw the latency-vs-throughput chart into this SVG file.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Also write the report as JSON into this file (whatever is printed).
    #[arg(long = "save-json")]
    save_json: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum BenchHelper {
    /// Draws the latency-vs-throughput chart of a report saved with --save-json or --json.
    Chart {
        /// The saved JSON report.
        report: PathBuf,
        /// The SVG file to write.
        svg: PathBuf,
    },
    /// The limit: answers GetFeatures with fixed bytes (started by `quiver bench --compare`).
    #[command(hide = true)]
    BareServer {
        #[arg(long)]
        listen: String,
        /// JSON: a list of {"path", "service", "body"}.
        #[arg(long)]
        responses: PathBuf,
        /// Answer without parsing the body (`--limit-skips-parsing`).
        #[arg(long = "skip-parsing")]
        skip_parsing: bool,
    },
    /// The Redis peer's front end (started by `quiver bench --compare`).
    #[command(hide = true)]
    RedisFront {
        #[arg(long)]
        listen: String,
        /// The Redis server, HOST:PORT.
        #[arg(long)]
        redis: SocketAddr,
        /// Quiver's sample answers, whose metadata the front end repeats.
        #[arg(long)]
        responses: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.helper {
        Some(BenchHelper::Chart { report, svg }) => {
            let text =
                std::fs::read(&report).with_context(|| format!("reading {}", report.display()))?;
            let saved: serde_json::Value = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not JSON", report.display()))?;
            let report = Report::from_saved_json(&saved)
                .with_context(|| format!("{} is not a saved bench report", report.display()))?;
            return Ok(draw_latency_chart(&report, &svg)?);
        }
        Some(BenchHelper::BareServer {
            listen,
            responses,
            skip_parsing,
        }) => {
            let responses = read_responses(&responses)?
                .into_iter()
                .map(|(key, body)| (key, body.into()))
                .collect();
            let parsing = BodyParsing::skipped_when(skip_parsing);
            return serve_bare(&listen, responses, parsing).context("the bare handler failed");
        }
        Some(BenchHelper::RedisFront {
            listen,
            redis,
            responses,
            config,
        }) => {
            let metadata = read_responses(&responses)?
                .into_iter()
                .map(|(key, body)| {
                    let answer: serde_json::Value = serde_json::from_str(&body)?;
                    Ok((key, answer["metadata"].to_string()))
                })
                .collect::<anyhow::Result<_>>()?;
            let settings = Settings::load(&config.path, &Overrides::default())?;
            let registry = Arc::new(load_registry(&settings.workspaces)?);
            return serve_redis_front(&listen, redis, registry, metadata)
                .context("the Redis front end failed");
        }
        None => {}
    }
    let synthetic = if args.data {
        let shape = RepositoryShape {
            batch_views: args.views,
            features_per_view: args.features,
            feature_types: args.feature_types,
            aggregate_views: args.aggregate_views,
            aggregations_per_view: args.aggregations,
            functions: args.functions,
            windows: args.windows,
            interval: args.interval,
        };
        Some(shape.write()?)
    } else {
        None
    };
    let config = synthetic
        .as_ref()
        .map_or(args.config.path.clone(), |repo| repo.config.clone());
    let settings = Settings::load(&config, &Overrides::default())?;
    let registry = Arc::new(load_registry(&settings.workspaces)?);
    let admin_key = match (&args.url, args.api_key) {
        (Some(_), Some(key)) => {
            super::check_api_key(&key)?;
            key
        }
        (Some(_), None) => bail!("--url needs the server's admin key (--api-key)"),
        (None, _) => random_key(),
    };
    let services = match synthetic {
        Some(_) => vec![format!("{WORKSPACE}.{SERVICE}")],
        None => args.services,
    };
    let services = services
        .iter()
        .map(|name| {
            name.split_once('.')
                .map(|(ws, service)| (ws.to_string(), service.to_string()))
                .with_context(|| format!("--service `{name}` is not WORKSPACE.SERVICE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let key_counts = args
        .keys
        .unwrap_or(vec![if args.quick { 200 } else { 10_000 }]);
    if key_counts.is_empty() || key_counts.windows(2).any(|pair| pair[0] >= pair[1]) {
        bail!("--keys takes ascending counts, e.g. 10000,10000000");
    }
    // (default, quick default)
    let quick = |defaults: (f64, f64)| if args.quick { defaults.1 } else { defaults.0 };
    let plan = BenchPlan {
        registry,
        config,
        url: args.url,
        admin_key,
        services,
        key_counts,
        load_connections: args.load_connections,
        string_bytes: args.string_bytes,
        distribution: args.distribution,
        batch_rows: args.batch_rows,
        ingest_events: args.ingest_events,
        load_rows: args.load_rows,
        connections: args.connections.unwrap_or(quick((32.0, 4.0)) as usize),
        client_threads: args.client_threads,
        batch_scheduling: !args.client_preempts,
        warmup: Duration::from_secs_f64(args.warmup_seconds.unwrap_or(quick((1.0, 0.2)))),
        duration: Duration::from_secs_f64(args.seconds.unwrap_or(quick((5.0, 0.5)))),
        rates: args
            .rates
            .unwrap_or_else(|| match args.shares_of_limit.is_empty() {
                true => vec![quick((1000.0, 200.0))],
                false => Vec::new(),
            }),
        shares_of_limit: args.shares_of_limit,
        rounds: args.rounds.unwrap_or(quick((3.0, 1.0)) as usize),
        compare: args.compare,
        skip_feast: args.skip_feast,
        limit_parsing: BodyParsing::skipped_when(args.limit_skips_parsing),
        restore: args.restore,
    };
    let report = run_bench(&plan)?;
    if let Some(path) = &args.chart {
        draw_latency_chart(&report, path)?;
    }
    if let Some(path) = &args.save_json {
        std::fs::write(path, format!("{:#}\n", report.json()))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{:#}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// The sample answers file: ((path, service), body) pairs.
fn read_responses(path: &PathBuf) -> anyhow::Result<Vec<((String, String), String)>> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let answers: Vec<serde_json::Value> = serde_json::from_slice(&text)?;
    answers
        .iter()
        .map(|answer| {
            let text = |field: &str| {
                answer[field]
                    .as_str()
                    .map(str::to_string)
                    .with_context(|| format!("a response without `{field}`"))
            };
            Ok(((text("path")?, text("service")?), text("body")?))
        })
        .collect()
}

/// A `--rate-of-limit` share: a number above 0.
fn share_of_limit(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if share > 0.0 && share.is_finite() => Ok(share),
        _ => Err(format!(
            "expected a share of the limit's maximum above 0, such as 0.5; got `{text}`"
        )),
    }
}

/// A key for the Quiver the harness starts (it lives as long as the run).
fn random_key() -> String {
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect()
}

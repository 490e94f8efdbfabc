//! `quiver bench`, the benchmark harness: synthetic data sets shaped by the repository, a load
//! generator (closed and open loop, HDR latencies, errors by status) and the peers Quiver is
//! compared with. It is a client of the server like a user's harness: it reaches Quiver only
//! over HTTP, never the store.
//!
//! - `repository`: synthetic repositories of a chosen shape (`--data`).
//! - `dataset`: key universes and distributions, typed rows, events and request bodies.
//! - `load`: the load generator, generic over a `Client` protocol.
//! - `http_client`: the hyper HTTP/1.1 client.
//! - `workloads`: GetFeatures (single, batch), `/ingest`, the bulk loader; the initial load.
//! - `process`, `peers`: the servers under measurement and their `/proc` figures.
//! - `progress`: progress of long steps (a bar, or lines in a log).
//! - `bare`: the limit; `redis`, `redis_front`, `resp`: the Redis peer; `feast`: Feast.
//! - `restore`: restart time from a snapshot vs Redis from an RDB file of the same rows.
//! - `run`: one run, alternating targets; `report`: medians, tables and JSON; `chart`: SVG.

pub mod bare;
pub mod chart;
pub mod dataset;
pub mod feast;
pub mod http_client;
pub mod load;
pub mod peers;
pub mod process;
pub mod progress;
pub mod redis;
pub mod redis_front;
pub mod report;
pub mod repository;
pub mod resp;
pub mod restore;
pub mod run;
pub mod workloads;

pub use run::{run_bench, BenchPlan};

/// Why a bench run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("no feature service `{0}` in the repository")]
    UnknownService(String),
    #[error("could not start {0}: {1}")]
    Start(String, String),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("`{0}` is not an http://HOST:PORT address")]
    BadUrl(String),
    #[error("loading the data set failed at {0}: {1}")]
    Load(String, String),
    #[error("could not start the load generator's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("could not draw the chart {0}: {1}")]
    Chart(String, String),
    #[error("no closed-loop throughput of the limit on `{0}` to take a share of (--rate-of-limit needs --compare)")]
    NoLimit(String),
    #[error("a load generator task failed: {0}")]
    Task(String),
}

//! Quiver: an online feature server that speaks Tecton's HTTP APIs (Feature Service, Stream
//! Ingest, SCIM, Secrets, and the metadata proxy its SDK and CLI use), TrueFoundry's Secret
//! Groups API and Tinybird's Secrets API, over one set of actors.
//!
//! # Layout
//! - [`time`]: timestamps and durations (the ground floor: used by every other module, calls none).
//! - [`names`]: the rules for names that become path segments or role suffixes (workspaces,
//!   secret scopes), on the ground floor beside [`time`].
//! - [`echo`]: how an error message shows a value a client sent (bounded), beside [`names`].
//! - [`metrics`]: process-wide counters and histograms, the Prometheus text of a scrape, and the
//!   last hour of request rate and latency for the console (beside [`time`] on the ground floor:
//!   any module may count, it calls only [`time`]).
//! - [`registry`]: feature definitions (workspaces, entities, views, services) from TOML files.
//! - [`store`]: shard actors owning rows in memory-mapped arenas, reached through the `Router`.
//! - [`serving`]: the read path (service -> lookups -> feature vectors).
//! - [`feature_log`]: what the read path served, logged by its own writer actor to rolling
//!   Parquet / JSON Lines files (a bounded queue: never blocks a read).
//! - [`ingest`]: the write path (records, load files and the demo seed -> validated rows).
//! - [`iam`]: who is calling and what they may do: the directory actor (users, groups, service
//!   accounts), principals and permissions, API-key digests, protocol-independent SCIM logic.
//! - [`persist`]: on-disk formats, journals, snapshot files, the snapshot scheduler, the data
//!   directory's lock and start-up recovery's choice of snapshot; calls only [`time`] and
//!   [`metrics`].
//! - [`secrets`]: the vault actor (Tecton scopes, TrueFoundry groups, Tinybird secrets).
//! - [`http`]: routes, permission extractors, wire formats and the one error table (each API
//!   family renders it in its own shape), and the operator console (`/console`, its pages
//!   embedded from `console/`); the only module that knows actix-web.
//! - [`cluster`]: cluster mode on NATS JetStream (replicated: every node applies every write
//!   from one replicated stream; partitioned: each node holds the partitions it owns and
//!   forwards other reads); implements the store's `RowLog` and `RemoteRows`.
//! - [`config`]: `config.toml` + environment + flags -> `Settings`.
//! - [`bench`]: `quiver bench`, the benchmark harness (a client of the server over HTTP).
//! - [`reported`]: what is wrong now (journals refusing writes, replicas stalled), for `/health`.
//! - [`test_hooks`]: files named by `QUIVER_TEST_*` variables that hold or break a step of the
//!   server for the integration tests (unset in real deployments).
//! - [`cli`]: the `quiver` subcommands (`serve`, `load`, `snapshot`, `secrets`, `journal`, `bench`,
//!   `cluster`).
//!
//! ARCHITECTURE.md at the repository root has the map and the invariants.

pub mod bench;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod echo;
pub mod feature_log;
pub mod http;
pub mod iam;
pub mod ingest;
pub mod metrics;
pub mod names;
pub mod persist;
pub mod prehashed;
pub mod registry;
pub mod reported;
pub mod secrets;
pub mod serving;
pub mod store;
pub mod test_hooks;
pub mod time;

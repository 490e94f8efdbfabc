//! Configuration in two steps (ripgrep's habit): the raw file as written, then [`Settings`],
//! fully resolved. Each setting in [`SETTINGS`] may also be given by an environment variable and
//! a command-line flag: file < environment < flag (clap merges the last two into [`Overrides`],
//! which are laid over the file before it is read). Unknown keys and bad values are refused,
//! naming where the value came from (the file, the variable or the flag), the key and why.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::persist::format::SectionKind;
use crate::persist::{FsyncPolicy, StateJournal};
use crate::registry::WorkspaceSource;
use crate::time::parse_duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    storage: StorageSection,
    #[serde(default)]
    persistence: PersistenceSection,
    #[serde(default)]
    secrets: SecretsSection,
    #[serde(default)]
    workspace: Vec<WorkspaceEntry>,
    #[serde(default)]
    demo: DemoSection,
    #[serde(default)]
    log: LogSection,
    #[serde(default)]
    cluster: ClusterSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterSection {
    /// Comma-separated NATS server URLs; empty or absent: single-node (no cluster).
    nats_urls: Option<String>,
    /// The JetStream stream's name (and its subjects' prefix).
    stream: Option<String>,
    partitions: Option<usize>,
    /// The stream's replication factor (NATS servers holding each message).
    replicas: Option<usize>,
    /// This node's name: its durable consumer's name.
    node_id: Option<String>,
    /// Nodes holding each partition; absent or 0: every node holds every partition.
    owners: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
    /// `text` (default) or `json`.
    format: Option<String>,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What a log format must be.
const LOG_FORMATS: &str = "must be text or json";

impl LogFormat {
    fn parse(text: &str) -> Option<LogFormat> {
        match text {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }

    /// The format `QUIVER_LOG_FORMAT` names, for the commands that read no configuration.
    pub fn from_env() -> Result<LogFormat, ConfigError> {
        let Ok(text) = std::env::var("QUIVER_LOG_FORMAT") else {
            return Ok(LogFormat::default());
        };
        LogFormat::parse(&text).ok_or_else(|| ConfigError::Value {
            origin: "QUIVER_LOG_FORMAT".to_string(),
            key: "log.format",
            text,
            reason: LOG_FORMATS.to_string(),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<String>,
    /// Where `GET /metrics` is served without authentication; empty or absent: nowhere (it is
    /// on `listen`, for viewers, either way).
    metrics_address: Option<String>,
    /// 0 or absent: one per core.
    shards: Option<usize>,
    workers: Option<usize>,
    max_body_bytes: Option<usize>,
    /// The most bytes all request bodies being read may hold at once (default: the larger of
    /// 256 MiB and four bodies of `max_body_bytes` a worker).
    max_body_bytes_in_flight: Option<usize>,
    /// How long a whole request body may take to arrive (default `10s`).
    body_read_timeout: Option<String>,
    max_batch_size: Option<usize>,
    /// The most bytes the store may return for one GetFeatures request (default 16 MiB).
    max_store_response_bytes: Option<usize>,
    /// How far in the future an ingested event may be (default `5m`).
    max_future_event_skew: Option<String>,
    /// PEM certificate chain and private key: both (HTTPS) or neither (plain HTTP).
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageSection {
    /// Empty or absent: in memory only.
    data_dir: Option<String>,
    arena_initial_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersistenceSection {
    /// `always` (default), `every_second` or `never`.
    fsync: Option<String>,
    /// How often to snapshot (`10m`); `0s` or absent: only on demand and at shutdown.
    snapshot_interval: Option<String>,
    /// Snapshots to keep.
    snapshot_retention: Option<usize>,
    /// Default: `<data_dir>/snapshots`.
    snapshot_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsSection {
    /// Default: `<data_dir>/master.key` (created, mode 0600, on first start).
    master_key_file: Option<String>,
    /// TrueFoundry's tenant name (the first part of every fqn).
    tenant: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceEntry {
    name: String,
    #[serde(default = "default_live")]
    live: bool,
    repository: String,
}

fn default_live() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoSection {
    #[serde(default)]
    seed: Vec<DemoSeedEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoSeedEntry {
    workspace: String,
    /// Rows of one view...
    feature_view: Option<String>,
    /// ...or records of a push source, fed to every view it feeds.
    push_source: Option<String>,
    file: String,
    /// Shift every timestamp so the newest is just before start-up.
    #[serde(default)]
    rebase_to_now: bool,
}

/// Rows loaded at start-up into an empty store, so the demo answers straight away.
#[derive(Debug, Clone)]
pub struct DemoSeed {
    pub workspace: String,
    pub target: SeedTarget,
    pub file: PathBuf,
    pub rebase_to_now: bool,
}

/// What a demo seed file holds.
#[derive(Debug, Clone)]
pub enum SeedTarget {
    FeatureView(String),
    PushSource(String),
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub metrics_address: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub n_shards: usize,
    pub n_workers: usize,
    pub max_body_bytes: usize,
    /// Split evenly among the HTTP workers (each reads its own requests' bodies).
    pub max_body_bytes_in_flight: usize,
    pub body_read_timeout: std::time::Duration,
    pub max_batch_size: usize,
    pub max_store_response_bytes: usize,
    pub max_future_skew: crate::time::Micros,
    /// `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    pub data_dir: Option<PathBuf>,
    pub arena_initial_bytes: usize,
    pub persistence: PersistenceSettings,
    pub secrets: SecretsSettings,
    pub workspaces: Vec<WorkspaceSource>,
    pub demo_seeds: Vec<DemoSeed>,
    /// `None`: a single node (the default).
    pub cluster: Option<ClusterSettings>,
}

/// How a node joins a cluster: feature writes go through a JetStream stream that every node
/// applies (see `cluster`).
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Given comma-separated; any one of them is enough to join.
    pub nats_urls: Vec<String>,
    pub stream: String,
    pub partitions: usize,
    pub replicas: usize,
    pub node_id: String,
    /// Partitioned mode: how many nodes own each partition. `None`: replicated (every node
    /// owns every partition).
    pub owners: Option<usize>,
}

/// Cluster defaults: 16 partitions leave room to spread them over nodes later; one replica is
/// what a single NATS server can hold.
const DEFAULT_CLUSTER_STREAM: &str = "QUIVER";
const DEFAULT_CLUSTER_PARTITIONS: usize = 16;
const DEFAULT_CLUSTER_REPLICAS: usize = 1;
/// JetStream's limit on a stream's replicas.
const MAX_CLUSTER_REPLICAS: usize = 5;

/// The PEM files every listener serves HTTPS with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, the server's own certificate first.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Where the vault's master key lives and how TrueFoundry names things.
#[derive(Debug, Clone)]
pub struct SecretsSettings {
    /// `None` only without a data directory and without a configured file: the key is then
    /// random per run (`QUIVER_MASTER_KEY` always wins).
    pub master_key_file: Option<PathBuf>,
    pub tenant: String,
}

/// How state is kept when there is a data directory.
#[derive(Debug, Clone)]
pub struct PersistenceSettings {
    pub fsync: FsyncPolicy,
    pub snapshot_interval: Option<std::time::Duration>,
    pub snapshot_retention: usize,
    /// Where snapshots go; `None` only when there is no data directory.
    pub snapshot_dir: Option<PathBuf>,
}

impl PersistenceSettings {
    /// The feature-rows journal of a data directory.
    pub fn rows_journal_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("journal").join("rows")
    }

    /// The directory (SCIM) journal.
    pub fn directory_journal_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("journal").join("directory")
    }

    /// The vault's journal.
    pub fn vault_journal_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("journal").join("vault")
    }

    /// Every journal of a data directory (what a restore sets aside).
    pub fn journal_dirs(data_dir: &Path) -> Vec<PathBuf> {
        vec![
            Self::rows_journal_dir(data_dir),
            Self::directory_journal_dir(data_dir),
            Self::vault_journal_dir(data_dir),
        ]
    }

    /// Every journal of a data directory, with the snapshot sections that say where a snapshot
    /// ends in it (what start-up checks the journals cover).
    pub fn state_journals(data_dir: &Path) -> Vec<StateJournal> {
        let journal = |dir, sections| StateJournal { dir, sections };
        vec![
            journal(
                Self::rows_journal_dir(data_dir),
                &[SectionKind::FeatureRecords, SectionKind::FeatureRows][..],
            ),
            journal(
                Self::directory_journal_dir(data_dir),
                &[SectionKind::Directory][..],
            ),
            journal(Self::vault_journal_dir(data_dir), &[SectionKind::Vault][..]),
        ]
    }
}

/// How a setting's text from a flag or the environment becomes a value as the file writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string as it is (an address, a duration, a word).
    Text,
    /// A whole number.
    Count,
    /// A file or directory: relative to the working directory (the file's own paths are
    /// relative to the file).
    Path,
}

/// A setting that a flag and an environment variable may give, over the file.
#[derive(Debug)]
pub struct Setting {
    /// Where the file has it: `section.key`.
    pub key: &'static str,
    /// The flag, without its `--`.
    pub flag: &'static str,
    pub env: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

/// Every setting that is one value (the workspaces and demo seeds are lists: file only).
pub const SETTINGS: &[Setting] = &[
    Setting { key: "server.listen", flag: "listen", env: "QUIVER_LISTEN", kind: Kind::Text, help: "Address to listen on (HOST:PORT; port 0 picks a free one) [default: 127.0.0.1:8080]" },
    Setting { key: "server.metrics_address", flag: "metrics-address", env: "QUIVER_METRICS_ADDRESS", kind: Kind::Text, help: "Also serve GET /metrics here, without authentication (HOST:PORT; empty: nowhere)" },
    Setting { key: "server.shards", flag: "shards", env: "QUIVER_SHARDS", kind: Kind::Count, help: "Shard actors (0: one per core)" },
    Setting { key: "server.workers", flag: "workers", env: "QUIVER_WORKERS", kind: Kind::Count, help: "HTTP workers (0: one per core)" },
    Setting { key: "server.max_body_bytes", flag: "max-body-bytes", env: "QUIVER_MAX_BODY_BYTES", kind: Kind::Count, help: "Body limit of the Feature Service and Stream Ingest APIs [default: 4194304]" },
    Setting { key: "server.max_body_bytes_in_flight", flag: "max-body-bytes-in-flight", env: "QUIVER_MAX_BODY_BYTES_IN_FLIGHT", kind: Kind::Count, help: "Most bytes request bodies being read may have received at once, split among the workers; past it 503, but a body that started alone on its worker is read to its end [default: the larger of 268435456 and 4 x max-body-bytes a worker]" },
    Setting { key: "server.body_read_timeout", flag: "body-read-timeout", env: "QUIVER_BODY_READ_TIMEOUT", kind: Kind::Text, help: "How long a whole request body may take to arrive [default: 10s]" },
    Setting { key: "server.max_batch_size", flag: "max-batch-size", env: "QUIVER_MAX_BATCH_SIZE", kind: Kind::Count, help: "Most rows in one GetFeaturesBatch [default: 10]" },
    Setting { key: "server.max_store_response_bytes", flag: "max-store-response-bytes", env: "QUIVER_MAX_STORE_RESPONSE_BYTES", kind: Kind::Count, help: "Most bytes the store may return for one GetFeatures request [default: 16777216]" },
    Setting { key: "server.max_future_event_skew", flag: "max-future-event-skew", env: "QUIVER_MAX_FUTURE_EVENT_SKEW", kind: Kind::Text, help: "How far in the future an ingested event may be [default: 5m]" },
    Setting { key: "server.tls_cert_file", flag: "tls-cert-file", env: "QUIVER_TLS_CERT_FILE", kind: Kind::Path, help: "Serve HTTPS with this PEM certificate chain (with --tls-key-file); empty: plain HTTP" },
    Setting { key: "server.tls_key_file", flag: "tls-key-file", env: "QUIVER_TLS_KEY_FILE", kind: Kind::Path, help: "The PEM private key of --tls-cert-file" },
    Setting { key: "storage.data_dir", flag: "data-dir", env: "QUIVER_DATA_DIR", kind: Kind::Path, help: "Directory for persistent state; empty: in memory only" },
    Setting { key: "storage.arena_initial_bytes", flag: "arena-initial-bytes", env: "QUIVER_ARENA_INITIAL_BYTES", kind: Kind::Count, help: "Each shard's first arena size [default: 1048576]" },
    Setting { key: "persistence.fsync", flag: "fsync", env: "QUIVER_FSYNC", kind: Kind::Text, help: "When the rows journal reaches the disk: always, every_second or never [default: always]" },
    Setting { key: "persistence.snapshot_interval", flag: "snapshot-interval", env: "QUIVER_SNAPSHOT_INTERVAL", kind: Kind::Text, help: "How often to snapshot (e.g. 10m); 0s: only on demand and at shutdown" },
    Setting { key: "persistence.snapshot_retention", flag: "snapshot-retention", env: "QUIVER_SNAPSHOT_RETENTION", kind: Kind::Count, help: "Snapshots to keep (and the one the journal reaches back to) [default: 5]" },
    Setting { key: "persistence.snapshot_dir", flag: "snapshot-dir", env: "QUIVER_SNAPSHOT_DIR", kind: Kind::Path, help: "Where snapshots go [default: DATA_DIR/snapshots]" },
    Setting { key: "secrets.master_key_file", flag: "master-key-file", env: "QUIVER_MASTER_KEY_FILE", kind: Kind::Path, help: "The vault's master key file [default: DATA_DIR/master.key]" },
    Setting { key: "secrets.tenant", flag: "tenant", env: "QUIVER_TENANT", kind: Kind::Text, help: "TrueFoundry's tenant name [default: quiver]" },
    Setting { key: "cluster.nats_urls", flag: "nats-urls", env: "QUIVER_NATS_URLS", kind: Kind::Text, help: "Join a cluster through these NATS servers (comma-separated nats:// URLs); empty: single node" },
    Setting { key: "cluster.stream", flag: "cluster-stream", env: "QUIVER_CLUSTER_STREAM", kind: Kind::Text, help: "The JetStream stream of feature writes [default: QUIVER]" },
    Setting { key: "cluster.partitions", flag: "cluster-partitions", env: "QUIVER_CLUSTER_PARTITIONS", kind: Kind::Count, help: "Partitions (subjects) of the stream [default: 16]" },
    Setting { key: "cluster.replicas", flag: "cluster-replicas", env: "QUIVER_CLUSTER_REPLICAS", kind: Kind::Count, help: "NATS servers holding each message of the stream, 1 to 5 [default: 1]" },
    Setting { key: "cluster.owners", flag: "cluster-owners", env: "QUIVER_CLUSTER_OWNERS", kind: Kind::Count, help: "Partitioned mode: nodes owning each partition (0: every node owns all) [default: 0]" },
    Setting { key: "cluster.node_id", flag: "node-id", env: "QUIVER_NODE_ID", kind: Kind::Text, help: "This node's name in the cluster (letters, digits, - and _); required with --nats-urls" },
    Setting { key: "log.format", flag: "log-format", env: "QUIVER_LOG_FORMAT", kind: Kind::Text, help: "Log lines: text (human-readable) or json (one object per line) [default: text]" },
];

/// Where a value given over the file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Flag(&'static str),
    Environment(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "--{flag}"),
            Origin::Environment(variable) => write!(f, "{variable}"),
        }
    }
}

/// Values given on the command line or in the environment, by key; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides(BTreeMap<&'static str, (String, Origin)>);

impl Overrides {
    /// Gives the setting `key` (one of [`SETTINGS`]) the value `text`, from `origin`.
    pub fn set(&mut self, key: &'static str, text: String, origin: Origin) {
        assert!(
            SETTINGS.iter().any(|setting| setting.key == key),
            "{key} is not a setting"
        );
        self.0.insert(key, (text, origin));
    }

    /// Where the value of `key` came from, if not from the file.
    fn origin(&self, key: &str) -> Option<Origin> {
        self.0.get(key).map(|(_, origin)| *origin)
    }

    /// Lays every value over the file's table, as the file would write it.
    fn apply(&self, table: &mut toml::Table) -> Result<(), ConfigError> {
        for setting in SETTINGS {
            let Some((text, origin)) = self.0.get(setting.key) else {
                continue;
            };
            let value = match setting.kind {
                Kind::Text => toml::Value::String(text.clone()),
                Kind::Count => match text.parse::<i64>() {
                    Ok(n) if n >= 0 => toml::Value::Integer(n),
                    _ => {
                        return Err(ConfigError::Value {
                            origin: origin.to_string(),
                            key: setting.key,
                            text: text.clone(),
                            reason: "is not a whole number".to_string(),
                        })
                    }
                },
                Kind::Path if text.is_empty() => toml::Value::String(String::new()),
                Kind::Path => {
                    let path = std::path::absolute(text).unwrap_or_else(|_| PathBuf::from(text));
                    toml::Value::String(path.to_string_lossy().into_owned())
                }
            };
            let (section, key) = setting.key.split_once('.').expect("section.key");
            let section = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(section) = section {
                section.insert(key.to_string(), value);
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the configuration: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid configuration: {message}")]
    Invalid { path: PathBuf, message: String },
    /// One setting's value is refused; `origin` is the file, the flag or the variable it came
    /// from.
    #[error("{origin}: {key} `{text}` {reason}")]
    Value {
        origin: String,
        key: &'static str,
        text: String,
        reason: String,
    },
}

/// Tecton's documented request size limit.
const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// What request bodies being read may hold at once, at least: 64 bodies of the default limit.
const DEFAULT_MAX_BODY_BYTES_IN_FLIGHT: usize = 256 * 1024 * 1024;
/// Long enough for a 4 MiB body over a slow link (~3.4 Mbit/s), short enough that a client
/// that stalls mid-body holds its connection and buffer only briefly.
const DEFAULT_BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Tecton's documented GetFeaturesBatch limit.
const DEFAULT_MAX_BATCH_SIZE: usize = 10;
/// DynamoDB's BatchGetItem answers at most 16 MB, the likely origin of Tecton's online-store
/// size limit (Tecton documents the limit, not its value).
const DEFAULT_MAX_STORE_RESPONSE_BYTES: usize = 16 << 20;

impl Settings {
    /// Every one-value setting as resolved, by key (what `quiver config check` prints).
    pub fn resolved(&self) -> Vec<(&'static str, String)> {
        let path = |path: &Option<PathBuf>| {
            path.as_ref()
                .map_or_else(|| "none".to_string(), |p| p.display().to_string())
        };
        let cluster = |value: fn(&ClusterSettings) -> String| {
            self.cluster
                .as_ref()
                .map_or_else(|| "none".to_string(), value)
        };
        let persistence = &self.persistence;
        vec![
            ("server.listen", self.listen.to_string()),
            (
                "server.metrics_address",
                self.metrics_address
                    .map_or_else(|| "none".to_string(), |a| a.to_string()),
            ),
            ("server.shards", self.n_shards.to_string()),
            ("server.workers", self.n_workers.to_string()),
            ("server.max_body_bytes", self.max_body_bytes.to_string()),
            (
                "server.max_body_bytes_in_flight",
                self.max_body_bytes_in_flight.to_string(),
            ),
            (
                "server.body_read_timeout",
                format!("{:?}", self.body_read_timeout),
            ),
            ("server.max_batch_size", self.max_batch_size.to_string()),
            (
                "server.max_store_response_bytes",
                self.max_store_response_bytes.to_string(),
            ),
            (
                "server.max_future_event_skew",
                format!(
                    "{:?}",
                    std::time::Duration::from_micros(self.max_future_skew.max(0) as u64)
                ),
            ),
            (
                "server.tls_cert_file",
                path(&self.tls.as_ref().map(|tls| tls.cert_file.clone())),
            ),
            (
                "server.tls_key_file",
                path(&self.tls.as_ref().map(|tls| tls.key_file.clone())),
            ),
            ("storage.data_dir", path(&self.data_dir)),
            (
                "storage.arena_initial_bytes",
                self.arena_initial_bytes.to_string(),
            ),
            (
                "persistence.fsync",
                match persistence.fsync {
                    FsyncPolicy::Always => "always",
                    FsyncPolicy::EverySecond => "every_second",
                    FsyncPolicy::Never => "never",
                }
                .to_string(),
            ),
            (
                "persistence.snapshot_interval",
                persistence
                    .snapshot_interval
                    .map_or_else(|| "none".to_string(), |d| format!("{d:?}")),
            ),
            (
                "persistence.snapshot_retention",
                persistence.snapshot_retention.to_string(),
            ),
            ("persistence.snapshot_dir", path(&persistence.snapshot_dir)),
            (
                "secrets.master_key_file",
                path(&self.secrets.master_key_file),
            ),
            ("secrets.tenant", self.secrets.tenant.clone()),
            ("cluster.nats_urls", cluster(|c| c.nats_urls.join(","))),
            ("cluster.stream", cluster(|c| c.stream.clone())),
            ("cluster.partitions", cluster(|c| c.partitions.to_string())),
            ("cluster.replicas", cluster(|c| c.replicas.to_string())),
            ("cluster.node_id", cluster(|c| c.node_id.clone())),
            (
                "cluster.owners",
                cluster(|c| {
                    c.owners
                        .map_or_else(|| "every node".into(), |n| n.to_string())
                }),
            ),
            (
                "log.format",
                match self.log_format {
                    LogFormat::Text => "text",
                    LogFormat::Json => "json",
                }
                .to_string(),
            ),
        ]
    }

    /// Reads `path` and lays the overrides over it. Relative paths in the file are relative to
    /// the file's directory; those given by a flag or variable, to the working directory.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        overrides.apply(&mut table)?;
        let file: ConfigFile = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| match e.path().to_string().as_str() {
                "." => invalid(e.inner().message().to_string()),
                key => invalid(format!("{key}: {}", e.inner().message())),
            })?;
        // A refused value names where it came from: the flag or variable that gave it, or the file.
        let bad = |key: &'static str, text: &str, reason: String| ConfigError::Value {
            origin: overrides
                .origin(key)
                .map_or_else(|| path.display().to_string(), |origin| origin.to_string()),
            key,
            text: text.to_string(),
            reason,
        };
        let address = |key, text: &str| {
            text.parse::<SocketAddr>()
                .map_err(|_| bad(key, text, "is not HOST:PORT (e.g. 127.0.0.1:8080)".into()))
        };
        let duration = |key, text: &str| {
            parse_duration(text).map_err(|e| bad(key, text, format!("is not a duration: {e}")))
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let listen = address(
            "server.listen",
            file.server.listen.as_deref().unwrap_or("127.0.0.1:8080"),
        )?;
        let metrics_address = file
            .server
            .metrics_address
            .as_deref()
            .filter(|text| !text.is_empty())
            .map(|text| address("server.metrics_address", text))
            .transpose()?;
        let log_format = match file.log.format.as_deref() {
            None => LogFormat::default(),
            Some(text) => {
                LogFormat::parse(text).ok_or_else(|| bad("log.format", text, LOG_FORMATS.into()))?
            }
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let data_dir = file
            .storage
            .data_dir
            .filter(|d| !d.is_empty())
            .map(|d| base.join(d));
        let max_batch_size = file.server.max_batch_size.unwrap_or(DEFAULT_MAX_BATCH_SIZE);
        if max_batch_size == 0 {
            return Err(bad(
                "server.max_batch_size",
                "0",
                "must be at least 1".into(),
            ));
        }
        let max_store_response_bytes = file
            .server
            .max_store_response_bytes
            .unwrap_or(DEFAULT_MAX_STORE_RESPONSE_BYTES);
        if max_store_response_bytes == 0 {
            return Err(bad(
                "server.max_store_response_bytes",
                "0",
                "must be at least 1".into(),
            ));
        }
        if file.workspace.is_empty() {
            return Err(invalid("at least one [[workspace]] is needed".to_string()));
        }
        let tls = match (
            file.server
                .tls_cert_file
                .as_deref()
                .filter(|f| !f.is_empty()),
            file.server
                .tls_key_file
                .as_deref()
                .filter(|f| !f.is_empty()),
        ) {
            (None, None) => None,
            (Some(cert_file), Some(key_file)) => Some(TlsFiles {
                cert_file: base.join(cert_file),
                key_file: base.join(key_file),
            }),
            (Some(cert_file), None) => {
                return Err(bad(
                    "server.tls_cert_file",
                    cert_file,
                    "is given without server.tls_key_file: give both or neither".into(),
                ))
            }
            (None, Some(key_file)) => {
                return Err(bad(
                    "server.tls_key_file",
                    key_file,
                    "is given without server.tls_cert_file: give both or neither".into(),
                ))
            }
        };
        let persistence = &file.persistence;
        let fsync = match persistence.fsync.as_deref() {
            None => FsyncPolicy::Always,
            Some(text) => FsyncPolicy::parse(text).ok_or_else(|| {
                bad(
                    "persistence.fsync",
                    text,
                    "must be always, every_second or never".into(),
                )
            })?,
        };
        let snapshot_interval = match persistence.snapshot_interval.as_deref() {
            None => None,
            Some(text) => {
                let micros = duration("persistence.snapshot_interval", text)?;
                (micros > 0).then(|| std::time::Duration::from_micros(micros as u64))
            }
        };
        let snapshot_dir = match persistence
            .snapshot_dir
            .as_deref()
            .filter(|d| !d.is_empty())
        {
            Some(dir) => Some(base.join(dir)),
            None => data_dir.as_ref().map(|d| d.join("snapshots")),
        };
        let persistence = PersistenceSettings {
            fsync,
            snapshot_interval,
            snapshot_retention: persistence.snapshot_retention.unwrap_or(5).max(1),
            snapshot_dir,
        };
        let secrets = SecretsSettings {
            master_key_file: file
                .secrets
                .master_key_file
                .as_deref()
                .filter(|f| !f.is_empty())
                .map(|f| base.join(f))
                .or_else(|| data_dir.as_ref().map(|d| d.join("master.key"))),
            tenant: file
                .secrets
                .tenant
                .clone()
                .unwrap_or_else(|| "quiver".to_string()),
        };
        let max_future_skew = match file.server.max_future_event_skew.as_deref() {
            None => 5 * 60 * crate::time::MICROS_PER_SECOND,
            Some(text) => duration("server.max_future_event_skew", text)?,
        };
        let body_read_timeout = match file.server.body_read_timeout.as_deref() {
            None => DEFAULT_BODY_READ_TIMEOUT,
            Some(text) => {
                let micros = duration("server.body_read_timeout", text)?;
                if micros <= 0 {
                    return Err(bad(
                        "server.body_read_timeout",
                        text,
                        "must be longer than 0s".into(),
                    ));
                }
                std::time::Duration::from_micros(micros as u64)
            }
        };
        let n_workers = file.server.workers.filter(|n| *n > 0).unwrap_or(cores);
        let max_body_bytes = file.server.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        // The default grows with the workers, so that each worker's share takes a few bodies
        // of the largest size at once (a body that started alone on its worker is read whatever the share).
        let max_body_bytes_in_flight = file.server.max_body_bytes_in_flight.unwrap_or_else(|| {
            DEFAULT_MAX_BODY_BYTES_IN_FLIGHT.max(max_body_bytes.saturating_mul(n_workers * 4))
        });
        let cluster = cluster_settings(file.cluster, data_dir.is_some(), &bad)?;
        Ok(Settings {
            max_body_bytes_in_flight,
            cluster,
            max_future_skew,
            tls,
            body_read_timeout,
            persistence,
            secrets,
            listen,
            metrics_address,
            log_format,
            n_shards: file.server.shards.filter(|n| *n > 0).unwrap_or(cores),
            n_workers,
            max_body_bytes,
            max_batch_size,
            max_store_response_bytes,
            data_dir,
            arena_initial_bytes: file.storage.arena_initial_bytes.unwrap_or(1 << 20),
            workspaces: file
                .workspace
                .into_iter()
                .map(|w| WorkspaceSource {
                    name: w.name,
                    live: w.live,
                    repository: base.join(w.repository),
                })
                .collect(),
            demo_seeds: file
                .demo
                .seed
                .into_iter()
                .map(|s| {
                    let target = match (s.feature_view, s.push_source) {
                        (Some(view), None) => SeedTarget::FeatureView(view),
                        (None, Some(source)) => SeedTarget::PushSource(source),
                        _ => {
                            return Err(invalid(format!(
                                "demo seed {}: give exactly one of feature_view and push_source",
                                s.file
                            )))
                        }
                    };
                    Ok(DemoSeed {
                        workspace: s.workspace,
                        target,
                        file: base.join(s.file),
                        rebase_to_now: s.rebase_to_now,
                    })
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The cluster section resolved: `None` without NATS URLs. A stream name and a node id become
/// NATS subjects and consumer names, so they are kept to letters, digits, `-` and `_`.
fn cluster_settings(
    section: ClusterSection,
    has_data_dir: bool,
    bad: &impl Fn(&'static str, &str, String) -> ConfigError,
) -> Result<Option<ClusterSettings>, ConfigError> {
    let Some(nats_urls) = section.nats_urls.filter(|urls| !urls.is_empty()) else {
        return Ok(None);
    };
    let name = |key: &'static str, text: String| {
        let fits = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if fits {
            Ok(text)
        } else {
            Err(bad(
                key,
                &text,
                "must be letters, digits, - and _ only (it names NATS subjects and consumers)"
                    .into(),
            ))
        }
    };
    let stream = name(
        "cluster.stream",
        section
            .stream
            .unwrap_or_else(|| DEFAULT_CLUSTER_STREAM.to_string()),
    )?;
    let Some(node_id) = section.node_id.filter(|id| !id.is_empty()) else {
        return Err(bad(
            "cluster.node_id",
            "",
            "is required when cluster.nats_urls is set".into(),
        ));
    };
    let node_id = name("cluster.node_id", node_id)?;
    let partitions = section.partitions.unwrap_or(DEFAULT_CLUSTER_PARTITIONS);
    if partitions == 0 {
        return Err(bad("cluster.partitions", "0", "must be at least 1".into()));
    }
    let replicas = section.replicas.unwrap_or(DEFAULT_CLUSTER_REPLICAS);
    if !(1..=MAX_CLUSTER_REPLICAS).contains(&replicas) {
        return Err(bad(
            "cluster.replicas",
            &replicas.to_string(),
            format!("must be 1 to {MAX_CLUSTER_REPLICAS}"),
        ));
    }
    let owners = section.owners.filter(|owners| *owners > 0);
    // A partitioned node's snapshot would hold partitions it may no longer own, and resuming
    // needs a sequence per partition consumer: not built (it replays its partitions instead).
    if let (true, Some(owners)) = (has_data_dir, owners) {
        return Err(bad(
            "cluster.owners",
            &owners.to_string(),
            "cannot be used with storage.data_dir yet: a partitioned node keeps its rows in memory and replays its partitions at start (replicated mode snapshots them)".into(),
        ));
    }
    Ok(Some(ClusterSettings {
        nats_urls: nats_urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_string)
            .collect(),
        stream,
        partitions,
        replicas,
        node_id,
        owners,
    }))
}

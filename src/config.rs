//! Configuration in two steps (ripgrep's habit): the raw file as written, then [`Settings`],
//! fully resolved, with environment variables and command-line flags applied over the file
//! (file < environment < flags; clap merges the last two).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::persist::FsyncPolicy;
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

impl LogFormat {
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
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
    /// How long a whole request body may take to arrive (default `10s`).
    body_read_timeout: Option<String>,
    max_batch_size: Option<usize>,
    /// How far in the future an aggregated event may be (default `5m`).
    max_future_event_skew: Option<String>,
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
    pub body_read_timeout: std::time::Duration,
    pub max_batch_size: usize,
    pub max_future_skew: crate::time::Micros,
    pub data_dir: Option<PathBuf>,
    pub arena_initial_bytes: usize,
    pub persistence: PersistenceSettings,
    pub secrets: SecretsSettings,
    pub workspaces: Vec<WorkspaceSource>,
    pub demo_seeds: Vec<DemoSeed>,
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
}

/// Values given on the command line or in the environment; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub metrics_address: Option<String>,
    pub log_format: Option<String>,
    pub data_dir: Option<PathBuf>,
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
}

/// Tecton's documented request size limit.
const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Long enough for a 4 MiB body over a slow link (~3.4 Mbit/s), short enough that a client
/// that stalls mid-body holds its connection and buffer only briefly.
const DEFAULT_BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Tecton's documented GetFeaturesBatch limit.
const DEFAULT_MAX_BATCH_SIZE: usize = 10;

impl Settings {
    /// Reads `path` and applies the overrides. Relative paths in the file are relative to the
    /// file's directory.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let file: ConfigFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let listen_text = overrides
            .listen
            .clone()
            .or(file.server.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_string());
        let address = |key: &str, text: &str| {
            text.parse().map_err(|_| {
                invalid(format!(
                    "server.{key} `{text}` is not HOST:PORT (e.g. 127.0.0.1:8080)"
                ))
            })
        };
        let listen = address("listen", &listen_text)?;
        let metrics_address = match overrides
            .metrics_address
            .clone()
            .or(file.server.metrics_address)
            .filter(|text| !text.is_empty())
        {
            Some(text) => Some(address("metrics_address", &text)?),
            None => None,
        };
        let log_format = match overrides.log_format.clone().or(file.log.format) {
            None => LogFormat::default(),
            Some(text) => LogFormat::parse(&text)
                .ok_or_else(|| invalid(format!("log.format `{text}` must be text or json")))?,
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let data_dir = overrides
            .data_dir
            .clone()
            .or_else(|| {
                file.storage
                    .data_dir
                    .filter(|d| !d.is_empty())
                    .map(|d| base.join(d))
            })
            .filter(|d| !d.as_os_str().is_empty());
        let max_batch_size = file.server.max_batch_size.unwrap_or(DEFAULT_MAX_BATCH_SIZE);
        if max_batch_size == 0 {
            return Err(invalid(
                "server.max_batch_size must be at least 1".to_string(),
            ));
        }
        if file.workspace.is_empty() {
            return Err(invalid("at least one [[workspace]] is needed".to_string()));
        }
        let persistence = &file.persistence;
        let fsync = match persistence.fsync.as_deref() {
            None => FsyncPolicy::Always,
            Some(text) => FsyncPolicy::parse(text).ok_or_else(|| {
                invalid(format!(
                    "persistence.fsync `{text}` must be always, every_second or never"
                ))
            })?,
        };
        let snapshot_interval = match persistence.snapshot_interval.as_deref() {
            None => None,
            Some(text) => {
                let micros = parse_duration(text)
                    .map_err(|e| invalid(format!("persistence.snapshot_interval: {e}")))?;
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
            Some(text) => parse_duration(text)
                .map_err(|e| invalid(format!("server.max_future_event_skew: {e}")))?,
        };
        let body_read_timeout = match file.server.body_read_timeout.as_deref() {
            None => DEFAULT_BODY_READ_TIMEOUT,
            Some(text) => {
                let micros = parse_duration(text)
                    .map_err(|e| invalid(format!("server.body_read_timeout: {e}")))?;
                if micros <= 0 {
                    return Err(invalid(format!(
                        "server.body_read_timeout `{text}` must be longer than 0s"
                    )));
                }
                std::time::Duration::from_micros(micros as u64)
            }
        };
        Ok(Settings {
            max_future_skew,
            body_read_timeout,
            persistence,
            secrets,
            listen,
            metrics_address,
            log_format,
            n_shards: file.server.shards.filter(|n| *n > 0).unwrap_or(cores),
            n_workers: file.server.workers.filter(|n| *n > 0).unwrap_or(cores),
            max_body_bytes: file.server.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            max_batch_size,
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

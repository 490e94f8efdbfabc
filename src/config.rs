//! Configuration in two steps (ripgrep's habit): the raw file as written, then [`Settings`],
//! fully resolved, with environment variables and command-line flags applied over the file
//! (file < environment < flags; clap merges the last two).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::registry::WorkspaceSource;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    storage: StorageSection,
    #[serde(default)]
    workspace: Vec<WorkspaceEntry>,
    #[serde(default)]
    demo: DemoSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<String>,
    /// 0 or absent: one per core.
    shards: Option<usize>,
    workers: Option<usize>,
    max_body_bytes: Option<usize>,
    max_batch_size: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageSection {
    /// Empty or absent: in memory only.
    data_dir: Option<String>,
    arena_initial_bytes: Option<usize>,
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
    feature_view: String,
    file: String,
}

/// Rows loaded at start-up into an empty store, so the demo answers straight away.
#[derive(Debug, Clone)]
pub struct DemoSeed {
    pub workspace: String,
    pub feature_view: String,
    pub file: PathBuf,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub n_shards: usize,
    pub n_workers: usize,
    pub max_body_bytes: usize,
    pub max_batch_size: usize,
    pub data_dir: Option<PathBuf>,
    pub arena_initial_bytes: usize,
    pub workspaces: Vec<WorkspaceSource>,
    pub demo_seeds: Vec<DemoSeed>,
}

/// Values given on the command line or in the environment; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
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
        let listen = listen_text.parse().map_err(|_| {
            invalid(format!(
                "listen address `{listen_text}` is not HOST:PORT (e.g. 127.0.0.1:8080)"
            ))
        })?;
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
        Ok(Settings {
            listen,
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
                .map(|s| DemoSeed {
                    workspace: s.workspace,
                    feature_view: s.feature_view,
                    file: base.join(s.file),
                })
                .collect(),
        })
    }
}

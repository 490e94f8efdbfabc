//! Reading the repository files and validating them into a [`Registry`].
//!
//! Loading is all or nothing: the first problem stops it with an error naming the file, the
//! object and what is wrong, so a bad repository never starts a half-configured server.
//! This file reads the files and builds workspaces (entities, push sources); each other kind of
//! object has its own file: `view`, `aggregation`, `service` (and its `logging`), `realtime`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use serde::Deserialize;

use super::aggregation::{
    default_name, AggregateFeature, AggregationSpec, Function, LeadingEdge, Window,
};
use super::types::DataType;
use super::{
    object_id, Entity, Feature, FeatureService, FeatureView, Field, LogFormat, LoggingConfig,
    PushSource, Registry, ServiceItem, ServiceLookup, ViewId, ViewKind, Workspace,
};
use crate::secrets::template::Template;
use crate::time::{parse_duration, Micros};

mod aggregation;
mod logging;
mod realtime;
mod service;
mod view;

use aggregation::build_aggregation;
use realtime::build_realtime_view;
use service::build_service;
use view::build_view;

/// A workspace as `config.toml` declares it: where its repository files are.
#[derive(Debug, Clone)]
pub struct WorkspaceSource {
    pub name: String,
    pub live: bool,
    /// A `.toml` file, or a directory whose `.toml` files are read in name order.
    pub repository: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{path}: cannot read the feature repository: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid repository file: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {object}: {problem}")]
    Invalid {
        path: PathBuf,
        object: String,
        problem: String,
    },
    #[error("workspace `{0}` is declared twice in the configuration")]
    DuplicateWorkspace(String),
    /// A workspace's name is also a directory's (its feature logs).
    #[error("workspace name `{0}` must be non-empty and use only letters, digits, `_`, `-` and `.`, other than `.` and `..`")]
    InvalidWorkspaceName(String),
}

/// One repository file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepositoryFile {
    #[serde(default)]
    entity: Vec<RawEntity>,
    #[serde(default)]
    push_source: Vec<RawPushSource>,
    #[serde(default)]
    batch_feature_view: Vec<RawView>,
    #[serde(default)]
    stream_feature_view: Vec<RawView>,
    #[serde(default)]
    realtime_feature_view: Vec<RawRealtimeView>,
    #[serde(default)]
    feature_service: Vec<RawService>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntity {
    name: String,
    join_keys: Vec<RawField>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPushSource {
    name: String,
    schema: Vec<RawField>,
    #[serde(default)]
    description: Option<String>,
    /// A `tb_secret()` template, e.g. `"{{ tb_secret('INGEST_TOKEN') }}"`.
    #[serde(default)]
    ingest_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawView {
    name: String,
    entities: Vec<String>,
    #[serde(default)]
    source: Option<String>,
    timestamp_field: String,
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    features: Vec<RawFeature>,
    /// The tile width of a view that aggregates.
    #[serde(default)]
    aggregation_interval: Option<String>,
    /// `WALL_CLOCK_TIME` (default) or `LATEST_EVENT_TIME`.
    #[serde(default)]
    aggregation_leading_edge: Option<String>,
    /// `time_interval` (default: tiles of `aggregation_interval`) or `continuous`.
    #[serde(default)]
    stream_processing_mode: Option<String>,
    /// Tecton's `compaction_enabled`: merge tiles older than a day into daily tiles.
    #[serde(default)]
    compaction_enabled: bool,
    #[serde(default)]
    aggregations: Vec<RawAggregation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRealtimeView {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// The request-context fields the expressions read as `request.<name>`.
    #[serde(default)]
    request_schema: Vec<RawField>,
    /// Upstream feature views the expressions read as `<view>.<feature>`.
    #[serde(default)]
    sources: Vec<String>,
    features: Vec<RawExpressionFeature>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpressionFeature {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    /// A Common Expression Language expression.
    expression: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAggregation {
    column: String,
    function: String,
    /// A duration (`1d`) or `lifetime`.
    window: String,
    /// How far before the window's end the window stops (`1d`).
    #[serde(default)]
    offset: Option<String>,
    /// Overrides Tecton's default name.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    /// Makes this a time-window series of `window`-sized windows (an array result).
    #[serde(default)]
    series: Option<RawSeries>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    /// How far before the window end the oldest window ends, plus one step (e.g. `7d`).
    start: String,
    /// How far before the window end the newest window ends (e.g. `0s`).
    end: String,
    step: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeature {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    #[serde(default)]
    column: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    #[serde(default)]
    description: Option<String>,
    features: Vec<RawServiceItem>,
    /// Tecton's `logging=LoggingConfig(...)`: log what the service serves.
    #[serde(default)]
    logging: Option<RawLogging>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogging {
    #[serde(default)]
    sample_rate: Option<f64>,
    #[serde(default)]
    log_request_context: Option<bool>,
    #[serde(default)]
    exclude_request_context_fields: Vec<String>,
    #[serde(default)]
    log_effective_times: Option<bool>,
    #[serde(default)]
    log_statuses: Option<bool>,
    /// `parquet` (default) or `jsonl`.
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    roll_size_bytes: Option<u64>,
    /// A duration (`1h`).
    #[serde(default)]
    roll_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceItem {
    view: String,
    /// A subset of the view's features (all when absent).
    #[serde(default)]
    select: Option<Vec<String>>,
    /// Tecton's `with_name`: the namespace that prefixes the feature names.
    #[serde(default)]
    alias: Option<String>,
    /// Tecton's `with_join_key_map`: view join key -> request join key.
    #[serde(default)]
    join_key_map: BTreeMap<String, String>,
}

/// A workspace's repository files as read: each path (for error messages) and its text. What
/// `quiver apply` sends, and what a server rebuilds its registry from.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceFiles {
    pub name: String,
    pub live: bool,
    pub files: Vec<(PathBuf, String)>,
}

impl WorkspaceFiles {
    /// A workspace's files from `(path, content)` pairs, as `quiver apply` sends them and a
    /// snapshot keeps them.
    pub fn new(
        name: String,
        live: bool,
        files: impl IntoIterator<Item = (String, String)>,
    ) -> WorkspaceFiles {
        let files = files
            .into_iter()
            .map(|(path, content)| (PathBuf::from(path), content))
            .collect();
        WorkspaceFiles { name, live, files }
    }
}

impl WorkspaceSource {
    /// Reads the workspace's repository: the `.toml` file, or a directory's `.toml` files in
    /// name order.
    pub fn read(&self) -> Result<WorkspaceFiles, RegistryError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RegistryError::Io { path, source }
        };
        let repository = &self.repository;
        let mut paths = Vec::new();
        if repository.is_dir() {
            for entry in std::fs::read_dir(repository).map_err(io_error(repository))? {
                let path = entry.map_err(io_error(repository))?.path();
                if path.extension().is_some_and(|e| e == "toml") {
                    paths.push(path);
                }
            }
            paths.sort();
        } else {
            paths.push(repository.to_path_buf());
        }
        let files = paths
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
                Ok((path, text))
            })
            .collect::<Result<_, RegistryError>>()?;
        Ok(WorkspaceFiles {
            name: self.name.clone(),
            live: self.live,
            files,
        })
    }
}

/// Reads and validates every workspace's repository.
pub fn load_registry(sources: &[WorkspaceSource]) -> Result<Registry, RegistryError> {
    let workspaces = sources
        .iter()
        .map(WorkspaceSource::read)
        .collect::<Result<Vec<_>, _>>()?;
    build_registry(&workspaces, None)
}

/// Validates repository files into a registry. A view `previous` also has (same workspace and
/// name) keeps its id there, and new views take ids after all of `previous`'s, so the ids the
/// store keys rows by stay stable across applies.
pub fn build_registry(
    workspaces: &[WorkspaceFiles],
    previous: Option<&Registry>,
) -> Result<Registry, RegistryError> {
    let mut registry = Registry {
        views: previous.map_or_else(Vec::new, |p| p.views.iter().map(|_| None).collect()),
        ..Registry::default()
    };
    for source in workspaces {
        if !crate::names::is_workspace_name(&source.name) {
            return Err(RegistryError::InvalidWorkspaceName(source.name.clone()));
        }
        if registry.workspaces.contains_key(&source.name) {
            return Err(RegistryError::DuplicateWorkspace(source.name.clone()));
        }
        let files = parse_files(source)?;
        let workspace = build_workspace(source, &files, &mut registry, previous)?;
        registry.workspaces.insert(source.name.clone(), workspace);
    }
    if let Some(previous) = previous {
        for view in registry.views.iter_mut().flatten() {
            if let Some(before) = previous.find_view(view.id) {
                view.layout = if view.same_stored_form(before) {
                    before.layout
                } else {
                    before.layout + 1
                };
            }
        }
    }
    Ok(registry)
}

fn parse_files(source: &WorkspaceFiles) -> Result<Vec<(PathBuf, RepositoryFile)>, RegistryError> {
    source
        .files
        .iter()
        .map(|(path, text)| {
            let file = toml::from_str(text).map_err(|e| RegistryError::Syntax {
                path: path.clone(),
                message: e.to_string(),
            })?;
            Ok((path.clone(), file))
        })
        .collect()
}

/// The id of `workspace`'s view `name`: its id in `previous`, or the next free one.
fn allocate_view_id(
    registry: &mut Registry,
    previous: Option<&Registry>,
    workspace: &str,
    name: &str,
) -> ViewId {
    let kept = previous.and_then(|p| p.workspace(workspace)?.views.get(name).copied());
    kept.unwrap_or_else(|| {
        registry.views.push(None);
        (registry.views.len() - 1) as ViewId
    })
}

/// Validation context: the file and object an error is about.
struct Site<'a> {
    path: &'a Path,
    object: String,
}

impl Site<'_> {
    fn error(&self, problem: impl Into<String>) -> RegistryError {
        RegistryError::Invalid {
            path: self.path.to_path_buf(),
            object: self.object.clone(),
            problem: problem.into(),
        }
    }
}

fn check_name(site: &Site, what: &str, name: &str) -> Result<(), RegistryError> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(site.error(format!(
            "{what} `{name}` must be non-empty and use only letters, digits, `_` and `-`"
        )))
    }
}

fn parse_fields(site: &Site, what: &str, raw: &[RawField]) -> Result<Vec<Field>, RegistryError> {
    let mut fields: Vec<Field> = Vec::with_capacity(raw.len());
    for field in raw {
        check_name(site, what, &field.name)?;
        if fields.iter().any(|f| f.name == field.name) {
            return Err(site.error(format!("{what} `{}` is declared twice", field.name)));
        }
        let data_type = DataType::parse(&field.data_type)
            .map_err(|e| site.error(format!("{what} `{}`: {e}", field.name)))?;
        fields.push(Field {
            name: field.name.clone(),
            data_type,
        });
    }
    Ok(fields)
}

fn build_workspace(
    source: &WorkspaceFiles,
    files: &[(PathBuf, RepositoryFile)],
    registry: &mut Registry,
    previous: Option<&Registry>,
) -> Result<Workspace, RegistryError> {
    let mut workspace = Workspace {
        name: source.name.clone(),
        live: source.live,
        entities: BTreeMap::new(),
        push_sources: BTreeMap::new(),
        views: BTreeMap::new(),
        services: BTreeMap::new(),
    };
    // Where each name was first defined, for "declared twice" errors that name both files.
    let mut defined_in: HashMap<(&str, String), PathBuf> = HashMap::new();
    let mut claim =
        |kind: &'static str, name: &str, path: &Path, site: &Site| -> Result<(), RegistryError> {
            // Views of both kinds share one namespace.
            let namespace = if kind.ends_with("feature_view") {
                "feature_view"
            } else {
                kind
            };
            match defined_in.insert((namespace, name.to_string()), path.to_path_buf()) {
                Some(first) => Err(site.error(format!(
                    "the name `{name}` is already used in {}",
                    first.display()
                ))),
                None => Ok(()),
            }
        };

    for (path, file) in files {
        for raw in &file.entity {
            let site = Site {
                path,
                object: format!("entity `{}`", raw.name),
            };
            check_name(&site, "entity name", &raw.name)?;
            claim("entity", &raw.name, path, &site)?;
            let _ = &raw.description;
            let join_keys = parse_fields(&site, "join key", &raw.join_keys)?;
            if join_keys.is_empty() {
                return Err(site.error("an entity needs at least one join key"));
            }
            if let Some(bad) = join_keys.iter().find(|k| !k.data_type.is_join_key_type()) {
                return Err(site.error(format!(
                    "join key `{}` has type {}; join keys must be string or int64",
                    bad.name, bad.data_type
                )));
            }
            workspace.entities.insert(
                raw.name.clone(),
                Entity {
                    name: raw.name.clone(),
                    join_keys,
                },
            );
        }
        for raw in &file.push_source {
            let site = Site {
                path,
                object: format!("push_source `{}`", raw.name),
            };
            check_name(&site, "push source name", &raw.name)?;
            claim("push_source", &raw.name, path, &site)?;
            let _ = &raw.description;
            let schema = parse_fields(&site, "schema field", &raw.schema)?;
            if schema.is_empty() {
                return Err(site.error("a push source needs a schema"));
            }
            let ingest_token = raw
                .ingest_token
                .as_deref()
                .map(Template::parse)
                .transpose()
                .map_err(|error| site.error(format!("ingest_token: {error}")))?;
            workspace.push_sources.insert(
                raw.name.clone(),
                PushSource {
                    name: raw.name.clone(),
                    schema,
                    ingest_token,
                    subscribers: Vec::new(),
                },
            );
        }
    }

    for (path, file) in files {
        let views = file
            .batch_feature_view
            .iter()
            .map(|v| ("batch_feature_view", v));
        for (kind, raw) in views.chain(
            file.stream_feature_view
                .iter()
                .map(|v| ("stream_feature_view", v)),
        ) {
            let site = Site {
                path,
                object: format!("{kind} `{}`", raw.name),
            };
            check_name(&site, "feature view name", &raw.name)?;
            claim(kind, &raw.name, path, &site)?;
            let id = allocate_view_id(registry, previous, &workspace.name, &raw.name);
            let view = build_view(&site, kind, raw, id, &workspace)?;
            if let ViewKind::Stream { source } = &view.kind {
                if let Some(push_source) = workspace.push_sources.get_mut(source) {
                    push_source.subscribers.push(id);
                }
            }
            workspace.views.insert(view.name.clone(), id);
            registry.views[id as usize] = Some(view);
        }
    }

    for (path, file) in files {
        for raw in &file.realtime_feature_view {
            let site = Site {
                path,
                object: format!("realtime_feature_view `{}`", raw.name),
            };
            check_name(&site, "feature view name", &raw.name)?;
            claim("realtime_feature_view", &raw.name, path, &site)?;
            let id = allocate_view_id(registry, previous, &workspace.name, &raw.name);
            let view = build_realtime_view(&site, raw, id, &workspace, registry)?;
            workspace.views.insert(view.name.clone(), id);
            registry.views[id as usize] = Some(view);
        }
    }

    for (path, file) in files {
        for raw in &file.feature_service {
            let site = Site {
                path,
                object: format!("feature_service `{}`", raw.name),
            };
            check_name(&site, "feature service name", &raw.name)?;
            claim("feature_service", &raw.name, path, &site)?;
            let service = build_service(&site, raw, &workspace, registry)?;
            registry.service_ids.insert(
                service.id.clone(),
                (workspace.name.clone(), service.name.clone()),
            );
            workspace.services.insert(service.name.clone(), service);
        }
    }
    for push_source in workspace.push_sources.values_mut() {
        push_source
            .subscribers
            .sort_by(|a, b| registry.view(*a).name.cmp(&registry.view(*b).name));
    }
    Ok(workspace)
}

#[cfg(test)]
mod tests;

//! Reading the repository files and validating them into a [`Registry`].
//!
//! Loading is all or nothing: the first problem stops it with an error naming the file, the
//! object and what is wrong, so a bad repository never starts a half-configured server.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use std::sync::Arc;

use super::aggregation::{
    default_name, AggregateFeature, AggregationSpec, Function, LeadingEdge, Window,
};
use super::time::{parse_duration, Micros};
use super::types::DataType;
use super::{
    object_id, Entity, Feature, FeatureService, FeatureView, Field, PushSource, Registry,
    ServiceItem, ViewId, ViewKind, Workspace,
};

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

/// Reads and validates every workspace's repository.
pub fn load_registry(sources: &[WorkspaceSource]) -> Result<Registry, RegistryError> {
    let mut registry = Registry::default();
    for source in sources {
        if registry.workspaces.contains_key(&source.name) {
            return Err(RegistryError::DuplicateWorkspace(source.name.clone()));
        }
        let files = read_files(&source.repository)?;
        let workspace = build_workspace(source, &files, &mut registry)?;
        registry.workspaces.insert(source.name.clone(), workspace);
    }
    Ok(registry)
}

fn read_files(repository: &Path) -> Result<Vec<(PathBuf, RepositoryFile)>, RegistryError> {
    let io_error = |source| RegistryError::Io {
        path: repository.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    if repository.is_dir() {
        for entry in std::fs::read_dir(repository).map_err(io_error)? {
            let path = entry.map_err(io_error)?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                paths.push(path);
            }
        }
        paths.sort();
    } else {
        paths.push(repository.to_path_buf());
    }
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|source| RegistryError::Io {
                path: path.clone(),
                source,
            })?;
            let file = toml::from_str(&text).map_err(|e| RegistryError::Syntax {
                path: path.clone(),
                message: e.to_string(),
            })?;
            Ok((path, file))
        })
        .collect()
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
    source: &WorkspaceSource,
    files: &[(PathBuf, RepositoryFile)],
    registry: &mut Registry,
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
            workspace.push_sources.insert(
                raw.name.clone(),
                PushSource {
                    name: raw.name.clone(),
                    schema,
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
            let id = registry.views.len() as ViewId;
            let view = build_view(&site, kind, raw, id, &workspace)?;
            if let ViewKind::Stream { source } = &view.kind {
                if let Some(push_source) = workspace.push_sources.get_mut(source) {
                    push_source.subscribers.push(id);
                }
            }
            workspace.views.insert(view.name.clone(), id);
            registry.views.push(view);
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
            let id = registry.views.len() as ViewId;
            let view = build_realtime_view(&site, raw, id, &workspace, registry)?;
            workspace.views.insert(view.name.clone(), id);
            registry.views.push(view);
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
        push_source.subscribers.sort_by(|a, b| {
            registry.views[*a as usize]
                .name
                .cmp(&registry.views[*b as usize].name)
        });
    }
    Ok(workspace)
}

fn build_view(
    site: &Site,
    kind: &str,
    raw: &RawView,
    id: ViewId,
    workspace: &Workspace,
) -> Result<FeatureView, RegistryError> {
    let aggregating = raw.aggregation_interval.is_some()
        || !raw.aggregations.is_empty()
        || raw.stream_processing_mode.is_some();
    if aggregating && kind != "stream_feature_view" {
        return Err(site.error("only stream feature views aggregate"));
    }
    if aggregating && !raw.features.is_empty() {
        return Err(
            site.error("declares both `features` and `aggregations`; a view does one or the other")
        );
    }
    if raw.entities.is_empty() {
        return Err(site.error("a feature view needs at least one entity"));
    }
    let mut join_keys: Vec<Field> = Vec::new();
    for entity_name in &raw.entities {
        let entity = workspace
            .entities
            .get(entity_name)
            .ok_or_else(|| site.error(format!("unknown entity `{entity_name}`")))?;
        for key in &entity.join_keys {
            match join_keys.iter().find(|k| k.name == key.name) {
                Some(existing) if existing.data_type != key.data_type => {
                    return Err(site.error(format!(
                        "join key `{}` is {} in one entity and {} in another",
                        key.name, existing.data_type, key.data_type
                    )))
                }
                Some(_) => {}
                None => join_keys.push(key.clone()),
            }
        }
    }
    let ttl = raw
        .ttl
        .as_deref()
        .map(|text| parse_duration(text).map_err(|e| site.error(format!("ttl: {e}"))))
        .transpose()?;
    if ttl == Some(0) {
        return Err(site.error("ttl must be longer than 0s (leave it out to keep rows forever)"));
    }
    if raw.features.is_empty() && !aggregating {
        return Err(site.error("a feature view needs at least one feature"));
    }
    let mut features: Vec<Feature> = Vec::with_capacity(raw.features.len());
    for raw_feature in &raw.features {
        check_name(site, "feature name", &raw_feature.name)?;
        if features.iter().any(|f| f.name == raw_feature.name) {
            return Err(site.error(format!("feature `{}` is declared twice", raw_feature.name)));
        }
        let data_type = DataType::parse(&raw_feature.data_type)
            .map_err(|e| site.error(format!("feature `{}`: {e}", raw_feature.name)))?;
        let column = raw_feature
            .column
            .clone()
            .unwrap_or_else(|| raw_feature.name.clone());
        if column == raw.timestamp_field || join_keys.iter().any(|k| k.name == column) {
            return Err(site.error(format!(
                "feature `{}` reads column `{column}`, which is a join key or the timestamp field",
                raw_feature.name
            )));
        }
        features.push(Feature {
            name: raw_feature.name.clone(),
            data_type,
            column,
            description: raw_feature.description.clone(),
            tags: raw_feature.tags.clone(),
        });
    }
    let mut aggregation = None;
    let view_kind = match (kind, &raw.source) {
        ("batch_feature_view", None) => ViewKind::Batch,
        ("batch_feature_view", Some(_)) => {
            return Err(site.error(
                "a batch feature view has no `source`; use a stream_feature_view for push sources",
            ))
        }
        (_, None) => {
            return Err(site.error("a stream feature view needs a `source` (a push source name)"))
        }
        (_, Some(source_name)) => {
            let source = workspace
                .push_sources
                .get(source_name)
                .ok_or_else(|| site.error(format!("unknown push source `{source_name}`")))?;
            let column_type = |column: &str| {
                source
                    .schema
                    .iter()
                    .find(|f| f.name == column)
                    .map(|f| &f.data_type)
            };
            for key in &join_keys {
                match column_type(&key.name) {
                    Some(t) if *t == key.data_type => {}
                    Some(t) => {
                        return Err(site.error(format!(
                            "join key `{}` is {} but push source `{source_name}` has it as {t}",
                            key.name, key.data_type
                        )))
                    }
                    None => {
                        return Err(site.error(format!(
                            "push source `{source_name}` has no field for join key `{}`",
                            key.name
                        )))
                    }
                }
            }
            match column_type(&raw.timestamp_field) {
                Some(DataType::Timestamp) => {}
                Some(t) => return Err(site.error(format!("timestamp field `{}` is {t} in push source `{source_name}`; it must be timestamp", raw.timestamp_field))),
                None => return Err(site.error(format!("push source `{source_name}` has no timestamp field `{}`", raw.timestamp_field))),
            }
            if aggregating {
                let (aggregate_features, spec) =
                    build_aggregation(site, raw, &source.schema, &join_keys)?;
                features = aggregate_features;
                aggregation = Some(Arc::new(spec));
            }
            for feature in features.iter().filter(|_| !aggregating) {
                match column_type(&feature.column) {
                    Some(t) if *t == feature.data_type => {}
                    Some(t) => {
                        return Err(site.error(format!(
                        "feature `{}` is {} but push source `{source_name}` has column `{}` as {t}",
                        feature.name, feature.data_type, feature.column
                    )))
                    }
                    None => {
                        return Err(site.error(format!(
                            "push source `{source_name}` has no column `{}` for feature `{}`",
                            feature.column, feature.name
                        )))
                    }
                }
            }
            ViewKind::Stream {
                source: source_name.clone(),
            }
        }
    };
    Ok(FeatureView {
        id,
        workspace: workspace.name.clone(),
        name: raw.name.clone(),
        kind: view_kind,
        description: raw.description.clone(),
        tags: raw.tags.clone(),
        join_keys,
        timestamp_field: raw.timestamp_field.clone(),
        ttl: if aggregation.is_some() { None } else { ttl },
        row_columns: match &aggregation {
            Some(spec) => spec.inputs.clone(),
            None => features
                .iter()
                .map(|f| Field {
                    name: f.column.clone(),
                    data_type: f.data_type.clone(),
                })
                .collect(),
        },
        features,
        aggregation,
    })
}

/// Validates a view's aggregations against its push source's schema; answers the aggregate
/// features (named as Tecton names them unless `name` is given) and the spec.
fn build_aggregation(
    site: &Site,
    raw: &RawView,
    schema: &[Field],
    join_keys: &[Field],
) -> Result<(Vec<Feature>, AggregationSpec), RegistryError> {
    let continuous = match raw.stream_processing_mode.as_deref() {
        None | Some("time_interval") | Some("TIME_INTERVAL") => false,
        Some("continuous") | Some("CONTINUOUS") => true,
        Some(other) => {
            return Err(site.error(format!(
                "stream_processing_mode `{other}` must be time_interval or continuous"
            )))
        }
    };
    let interval_text = match (continuous, raw.aggregation_interval.as_deref()) {
        // Continuous: every event is its own one-microsecond tile, and windows end exactly at
        // the request time (or the latest event).
        (true, None) => "continuous",
        (true, Some(_)) => {
            return Err(site.error("a continuous view has no `aggregation_interval`"))
        }
        (false, Some(text)) => text,
        (false, None) => {
            return Err(site
                .error("aggregations need an `aggregation_interval` (the tile width, e.g. `10m`)"))
        }
    };
    let interval = if continuous {
        1
    } else {
        parse_duration(interval_text)
            .map_err(|e| site.error(format!("aggregation_interval: {e}")))?
    };
    if interval <= 0 {
        return Err(site.error("aggregation_interval must be longer than 0s"));
    }

    let day = 86_400 * crate::registry::time::MICROS_PER_SECOND;
    let compaction = match raw.compaction_enabled {
        false => None,
        true if continuous || interval >= day || day % interval != 0 => {
            return Err(site.error(
                "compaction_enabled needs a tiled view whose aggregation_interval divides a day",
            ))
        }
        true => Some(day),
    };
    let leading_edge = match raw.aggregation_leading_edge.as_deref() {
        None => LeadingEdge::WallClockTime,
        Some(text) => LeadingEdge::parse(text).ok_or_else(|| {
            site.error(format!(
                "aggregation_leading_edge `{text}` must be WALL_CLOCK_TIME or LATEST_EVENT_TIME"
            ))
        })?,
    };
    if raw.aggregations.is_empty() {
        return Err(site.error("`aggregation_interval` is set but there are no `aggregations`"));
    }
    let mut inputs: Vec<Field> = Vec::new();
    let mut aggregates = Vec::with_capacity(raw.aggregations.len());
    let mut features: Vec<Feature> = Vec::with_capacity(raw.aggregations.len());
    for (i, aggregation) in raw.aggregations.iter().enumerate() {
        let what = |problem: String| {
            site.error(format!(
                "aggregations[{i}] ({} {}): {problem}",
                aggregation.function, aggregation.column
            ))
        };
        let column = schema
            .iter()
            .find(|f| f.name == aggregation.column)
            .ok_or_else(|| {
                what(format!(
                    "the push source has no column `{}`",
                    aggregation.column
                ))
            })?;
        if aggregation.column == raw.timestamp_field
            || join_keys.iter().any(|k| k.name == aggregation.column)
        {
            return Err(what(
                "a join key or the timestamp field cannot be aggregated".to_string(),
            ));
        }
        let (function, function_name) = Function::parse(&aggregation.function).map_err(what)?;
        let data_type = function.output_type(&column.data_type).map_err(what)?;
        let multiple_of_interval = |text: &str, field: &str| -> Result<Micros, RegistryError> {
            let micros = parse_duration(text).map_err(|e| what(format!("{field}: {e}")))?;
            if micros % interval != 0 {
                return Err(what(format!("{field} `{text}` must be a multiple of the aggregation_interval `{interval_text}`")));
            }
            Ok(micros)
        };
        let window = if aggregation.window == "lifetime" {
            Window::Lifetime
        } else {
            let size = multiple_of_interval(&aggregation.window, "window")?;
            if size == 0 {
                return Err(what("window must be longer than 0s".to_string()));
            }
            let offset = aggregation
                .offset
                .as_deref()
                .map(|o| multiple_of_interval(o, "offset"))
                .transpose()?
                .unwrap_or(0);
            match &aggregation.series {
                None => Window::Time { size, offset },
                Some(_) if offset > 0 => return Err(what("a series has no `offset`".to_string())),
                Some(series) => {
                    let start = multiple_of_interval(&series.start, "series.start")?;
                    let end = multiple_of_interval(&series.end, "series.end")?;
                    let step = multiple_of_interval(&series.step, "series.step")?;
                    if step == 0 || start <= end || (start - end) / step > 1000 {
                        return Err(what(
                            "a series needs start > end and a step that makes 1 to 1000 windows"
                                .to_string(),
                        ));
                    }
                    Window::Series {
                        size,
                        start,
                        end,
                        step,
                    }
                }
            }
        };
        let data_type = match window {
            Window::Series { .. } => DataType::Array(Box::new(data_type)),
            _ => data_type,
        };

        let name = aggregation.name.clone().unwrap_or_else(|| {
            default_name(
                &aggregation.column,
                &function_name,
                window,
                interval,
                compaction.is_some(),
            )
        });

        check_name(site, "feature name", &name)?;
        if features.iter().any(|f| f.name == name) {
            return Err(what(format!(
                "the feature name `{name}` is used twice; give one a `name`"
            )));
        }
        let input = match inputs.iter().position(|f| f.name == column.name) {
            Some(index) => index,
            None => {
                inputs.push(column.clone());
                inputs.len() - 1
            }
        };
        aggregates.push(AggregateFeature {
            input,
            function,
            window,
        });
        features.push(Feature {
            name,
            data_type,
            column: aggregation.column.clone(),
            description: aggregation.description.clone(),
            tags: BTreeMap::new(),
        });
    }
    Ok((
        features,
        AggregationSpec {
            interval,
            leading_edge,
            inputs,
            aggregates,
            compaction,
        },
    ))
}

fn build_service(
    site: &Site,
    raw: &RawService,
    workspace: &Workspace,
    registry: &Registry,
) -> Result<FeatureService, RegistryError> {
    if raw.features.is_empty() {
        return Err(site.error("a feature service needs at least one feature view"));
    }
    let mut input_join_keys: Vec<Field> = Vec::new();
    let mut items: Vec<ServiceItem> = Vec::with_capacity(raw.features.len());
    for raw_item in &raw.features {
        let view_id = *workspace.views.get(&raw_item.view).ok_or_else(|| {
            site.error(format!(
                "references feature view `{}`, which does not exist",
                raw_item.view
            ))
        })?;
        let view = &registry.views[view_id as usize];
        let namespace = raw_item.alias.clone().unwrap_or_else(|| view.name.clone());
        check_name(site, "alias", &namespace)?;
        if items.iter().any(|item| item.namespace == namespace) {
            return Err(site.error(format!(
                "uses the namespace `{namespace}` twice; give one of the views an `alias`"
            )));
        }
        if let Some(unknown) = raw_item
            .join_key_map
            .keys()
            .find(|k| !view.join_keys.iter().any(|j| &j.name == *k))
        {
            return Err(site.error(format!(
                "join_key_map renames `{unknown}`, which is not a join key of `{}`",
                view.name
            )));
        }
        let mut key_inputs = Vec::with_capacity(view.join_keys.len());
        for key in &view.join_keys {
            let request_name = raw_item.join_key_map.get(&key.name).unwrap_or(&key.name);
            let index = match input_join_keys.iter().position(|k| &k.name == request_name) {
                Some(i) if input_join_keys[i].data_type != key.data_type => {
                    return Err(site.error(format!(
                        "request join key `{request_name}` would be both {} and {}",
                        input_join_keys[i].data_type, key.data_type
                    )))
                }
                Some(i) => i,
                None => {
                    input_join_keys.push(Field {
                        name: request_name.clone(),
                        data_type: key.data_type.clone(),
                    });
                    input_join_keys.len() - 1
                }
            };
            key_inputs.push(index);
        }
        let mut features: Vec<usize> = match &raw_item.select {
            None => (0..view.features.len()).collect(),
            Some(selected) => {
                if selected.is_empty() {
                    return Err(site.error(format!("selects no features of `{}`", view.name)));
                }
                let mut indices = Vec::with_capacity(selected.len());
                for name in selected {
                    let index = view
                        .features
                        .iter()
                        .position(|f| &f.name == name)
                        .ok_or_else(|| {
                            site.error(format!(
                                "selects feature `{name}`, which `{}` does not have",
                                view.name
                            ))
                        })?;
                    if indices.contains(&index) {
                        return Err(site.error(format!("selects feature `{name}` twice")));
                    }
                    indices.push(index);
                }
                indices
            }
        };
        // Tecton's order: features alphabetical within a view, views alphabetical by namespace.
        features.sort_by(|a, b| view.features[*a].name.cmp(&view.features[*b].name));
        items.push(ServiceItem {
            view: view_id,
            namespace,
            key_inputs,
            features,
        });
    }
    // Tecton's order: realtime views first, then the others, each group by namespace.
    let is_realtime = |item: &ServiceItem| {
        matches!(
            registry.views[item.view as usize].kind,
            ViewKind::Realtime(_)
        )
    };
    items.sort_by(|a, b| (!is_realtime(a), &a.namespace).cmp(&(!is_realtime(b), &b.namespace)));
    let mut request_context_keys: Vec<Field> = Vec::new();
    for item in &items {
        if let ViewKind::Realtime(spec) = &registry.views[item.view as usize].kind {
            for field in &spec.request_schema {
                match request_context_keys.iter().find(|f| f.name == field.name) {
                    Some(existing) if existing.data_type != field.data_type => {
                        return Err(site.error(format!(
                            "request context key `{}` would be both {} and {}",
                            field.name, existing.data_type, field.data_type
                        )))
                    }
                    Some(_) => {}
                    None => request_context_keys.push(field.clone()),
                }
            }
        }
    }
    let n_features = items.iter().map(|item| item.features.len()).sum();
    Ok(FeatureService {
        id: object_id("feature_service", &workspace.name, &raw.name),
        name: raw.name.clone(),
        workspace: workspace.name.clone(),
        description: raw.description.clone(),
        input_join_keys,
        items,
        n_features,
        request_context_keys,
    })
}

/// A realtime view: its request schema, upstream views and one compiled expression per feature.
fn build_realtime_view(
    site: &Site,
    raw: &RawRealtimeView,
    id: ViewId,
    workspace: &Workspace,
    registry: &Registry,
) -> Result<FeatureView, RegistryError> {
    let request_schema = parse_fields(site, "request field", &raw.request_schema)?;
    let mut sources = Vec::with_capacity(raw.sources.len());
    let mut join_keys: Vec<Field> = Vec::new();
    for name in &raw.sources {
        let source_id = *workspace.views.get(name).ok_or_else(|| {
            site.error(format!("reads feature view `{name}`, which does not exist"))
        })?;
        let source = &registry.views[source_id as usize];
        if matches!(source.kind, ViewKind::Realtime(_)) {
            return Err(site.error(format!(
                "reads realtime view `{name}`; realtime views read stored views only"
            )));
        }
        for key in &source.join_keys {
            if !join_keys.iter().any(|k| k.name == key.name) {
                join_keys.push(key.clone());
            }
        }
        sources.push((source_id, name.clone()));
    }
    if raw.features.is_empty() {
        return Err(site.error("a realtime feature view needs at least one feature"));
    }
    let source_names: Vec<String> = raw.sources.clone();
    let mut features = Vec::with_capacity(raw.features.len());
    let mut programs = Vec::with_capacity(raw.features.len());
    for raw_feature in &raw.features {
        check_name(site, "feature name", &raw_feature.name)?;
        if features
            .iter()
            .any(|f: &Feature| f.name == raw_feature.name)
        {
            return Err(site.error(format!("feature `{}` is declared twice", raw_feature.name)));
        }
        let data_type = DataType::parse(&raw_feature.data_type)
            .map_err(|e| site.error(format!("feature `{}`: {e}", raw_feature.name)))?;
        programs.push(
            super::realtime::compile(&raw_feature.expression, &source_names)
                .map_err(|e| site.error(format!("feature `{}`: {e}", raw_feature.name)))?,
        );
        features.push(Feature {
            name: raw_feature.name.clone(),
            data_type,
            column: String::new(),
            description: raw_feature.description.clone(),
            tags: BTreeMap::new(),
        });
    }
    Ok(FeatureView {
        id,
        workspace: workspace.name.clone(),
        name: raw.name.clone(),
        kind: ViewKind::Realtime(Arc::new(super::realtime::RealtimeSpec {
            request_schema,
            sources,
            programs,
        })),
        description: raw.description.clone(),
        tags: raw.tags.clone(),
        join_keys,
        timestamp_field: String::new(),
        ttl: None,
        features,
        row_columns: Vec::new(),
        aggregation: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Registry, RegistryError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo.toml");
        std::fs::write(&path, text).unwrap();
        load_registry(&[WorkspaceSource {
            name: "prod".into(),
            live: true,
            repository: path,
        }])
    }

    const BASE: &str = r#"
        [[entity]]
        name = "user"
        join_keys = [{ name = "user_id", type = "string" }]
        [[push_source]]
        name = "tx"
        schema = [{ name = "user_id", type = "string" }, { name = "ts", type = "timestamp" }, { name = "amt", type = "float64" }]
        [[stream_feature_view]]
        name = "last_tx"
        source = "tx"
        entities = ["user"]
        timestamp_field = "ts"
        features = [{ name = "zeta", type = "float64", column = "amt" }, { name = "alpha", type = "float64", column = "amt" }]
    "#;

    #[test]
    fn a_valid_repository_orders_features_alphabetically() {
        let text = format!("{BASE}\n[[feature_service]]\nname = \"svc\"\nfeatures = [{{ view = \"last_tx\", alias = \"t\", join_key_map = {{ user_id = \"uid\" }} }}]");
        let registry = load_text(&text).unwrap();
        let service = &registry.workspace("prod").unwrap().services["svc"];
        assert_eq!(service.input_join_keys[0].name, "uid");
        let view = registry.view(service.items[0].view);
        let names: Vec<_> = service.items[0]
            .features
            .iter()
            .map(|i| view.features[*i].name.as_str())
            .collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert_eq!(service.id.len(), 32);
        assert_eq!(registry.service_by_id(&service.id).unwrap().name, "svc");
        assert_eq!(
            registry.workspace("prod").unwrap().push_sources["tx"].subscribers,
            vec![0]
        );
    }

    #[test]
    fn errors_name_the_file_object_and_problem() {
        let cases = [
            (format!("{BASE}\n[[feature_service]]\nname = \"svc\"\nfeatures = [{{ view = \"nope\" }}]"), "feature_service `svc`: references feature view `nope`"),
            (BASE.replace("\"float64\", column", "\"float65\", column"), "unknown type `float65`"),
            (BASE.replace("entities = [\"user\"]", "entities = [\"usr\"]"), "unknown entity `usr`"),
            (format!("{BASE}\n[[entity]]\nname = \"user\"\njoin_keys = [{{ name = \"x\", type = \"string\" }}]"), "entity `user`: the name `user` is already used"),
            (BASE.replace("source = \"tx\"", "source = \"rx\""), "unknown push source `rx`"),
            (BASE.replace("column = \"amt\" }, { name = \"alpha\"", "column = \"amount\" }, { name = \"alpha\""), "no column `amount`"),
            (format!("{BASE}\nttl_typo = 1"), "not a valid repository file"),
        ];
        for (text, expected) in cases {
            let message = load_text(&text).unwrap_err().to_string();
            assert!(
                message.contains(expected),
                "{message} should contain {expected}"
            );
            assert!(message.contains("repo.toml"), "{message}");
        }
    }

    #[test]
    fn aggregations_and_realtime_views_are_validated() {
        let aggregate = |aggregations: &str, interval: &str| {
            format!("{BASE}\n[[stream_feature_view]]\nname = \"agg\"\nsource = \"tx\"\nentities = [\"user\"]\ntimestamp_field = \"ts\"\naggregation_interval = \"{interval}\"\naggregations = [{aggregations}]")
        };
        let registry = load_text(&aggregate("{ column = \"amt\", function = \"mean\", window = \"1h\" }, { column = \"amt\", function = \"last(2)\", window = \"lifetime\" }", "10m")).unwrap();
        let view = registry.view_by_name("prod", "agg").unwrap();
        let names: Vec<&str> = view.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["amt_mean_1h_10m", "amt_last_2_lifetime_10m"]);
        assert_eq!(view.features[1].data_type.to_string(), "array<float64>");
        let cases = [
            (aggregate("{ column = \"amt\", function = \"median\", window = \"1h\" }", "10m"), "unknown aggregation function `median`"),
            (aggregate("{ column = \"amt\", function = \"mean\", window = \"25m\" }", "10m"), "must be a multiple of the aggregation_interval"),
            (aggregate("{ column = \"nope\", function = \"count\", window = \"1h\" }", "10m"), "the push source has no column `nope`"),
            (aggregate("{ column = \"user_id\", function = \"count\", window = \"1h\" }", "10m"), "a join key or the timestamp field cannot be aggregated"),
            (aggregate("{ column = \"amt\", function = \"mean\", window = \"1h\" }, { column = \"amt\", function = \"mean\", window = \"1h\" }", "10m"), "used twice"),
            (aggregate("{ column = \"amt\", function = \"approx_percentile(2)\", window = \"1h\" }", "10m"), "from 0 to 1"),
        ];
        for (text, expected) in cases {
            let message = load_text(&text).unwrap_err().to_string();
            assert!(
                message.contains(expected),
                "{message} should contain {expected}"
            );
        }
        let realtime = |expression: &str| {
            format!("{BASE}\n[[realtime_feature_view]]\nname = \"rt\"\nrequest_schema = [{{ name = \"amount\", type = \"float64\" }}]\nsources = [\"last_tx\"]\n[[realtime_feature_view.features]]\nname = \"f\"\ntype = \"boolean\"\nexpression = \"{expression}\"")
        };
        assert!(load_text(&realtime("request.amount > last_tx.alpha")).is_ok());
        let message = load_text(&realtime("request.amount > elsewhere.x"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("realtime_feature_view `rt`: feature `f`")
                && message.contains("reads `elsewhere`"),
            "{message}"
        );
        let message = load_text(&realtime("request.amount >"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("does not parse"), "{message}");
    }
}

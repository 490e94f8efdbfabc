//! A registry described as plain data, for comparing two repositories: every object of every
//! workspace as a flat, sorted map of properties (`ttl`, `features.credit_score`, ...) whose
//! values are canonical text. `quiver plan` diffs the description of the files on disk against
//! the running server's; `quiver apply` will send and persist it.
//!
//! The description carries no secrets (an ingest token is described by the names of the vault
//! secrets it reads) and no process-local ids, so two processes loading the same files describe
//! them identically and [`Repository::content_hash`] says whether two repositories are the same.
//! Its JSON form is versioned ([`REPOSITORY_FORMAT`]); a reader refuses a version it does not know.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

use super::aggregation::{duration_text, AggregationSpec, Function, Window};
use super::{FeatureView, Field, LoggingConfig, Registry, ViewKind};

/// The version of [`Repository::to_json`]'s form; bump it when the form changes meaning.
pub const REPOSITORY_FORMAT: u64 = 2;

/// The kinds of object a workspace holds, in the order a plan lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectKind {
    Entity,
    PushSource,
    FeatureView,
    FeatureService,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 4] = [
        ObjectKind::Entity,
        ObjectKind::PushSource,
        ObjectKind::FeatureView,
        ObjectKind::FeatureService,
    ];

    /// The name used in repository files, plans and the JSON form.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Entity => "entity",
            ObjectKind::PushSource => "push_source",
            ObjectKind::FeatureView => "feature_view",
            ObjectKind::FeatureService => "feature_service",
        }
    }

    /// The key of this kind's objects in a workspace's JSON form.
    fn plural(self) -> &'static str {
        match self {
            ObjectKind::Entity => "entities",
            ObjectKind::PushSource => "push_sources",
            ObjectKind::FeatureView => "feature_views",
            ObjectKind::FeatureService => "feature_services",
        }
    }
}

/// One object: property name -> canonical value. A property that does not apply is absent.
pub type Properties = BTreeMap<String, String>;

/// Every workspace of a repository, described.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Repository {
    pub workspaces: BTreeMap<String, WorkspaceDescription>,
}

/// One workspace: whether it serves, and its objects by kind and name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkspaceDescription {
    pub live: bool,
    pub objects: BTreeMap<ObjectKind, BTreeMap<String, Properties>>,
}

impl WorkspaceDescription {
    pub fn objects_of(&self, kind: ObjectKind) -> impl Iterator<Item = (&String, &Properties)> {
        self.objects.get(&kind).into_iter().flatten()
    }

    pub fn object(&self, kind: ObjectKind, name: &str) -> Option<&Properties> {
        self.objects.get(&kind)?.get(name)
    }
}

/// Why a JSON form could not be read as a repository.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryFormatError {
    #[error("repository format {found} is not understood (this quiver reads format {REPOSITORY_FORMAT})")]
    Version { found: String },
    #[error("the repository's hash {stated} is not that of its content ({computed})")]
    Hash { stated: String, computed: String },
    #[error("the repository's `{at}` is not {expected}")]
    Shape { at: String, expected: &'static str },
}

impl Repository {
    /// Describes a loaded registry.
    pub fn describe(registry: &Registry) -> Repository {
        let workspaces = registry
            .workspaces()
            .map(|workspace| {
                let mut objects: BTreeMap<ObjectKind, BTreeMap<String, Properties>> =
                    BTreeMap::new();
                for entity in workspace.entities.values() {
                    let props = Properties::from([("join_keys".into(), fields(&entity.join_keys))]);
                    insert(&mut objects, ObjectKind::Entity, &entity.name, props);
                }
                for source in workspace.push_sources.values() {
                    let mut props = Properties::from([("schema".into(), fields(&source.schema))]);
                    if let Some(token) = &source.ingest_token {
                        let names: Vec<&str> = token.secret_names().collect();
                        props.insert(
                            "ingest_token".into(),
                            format!("secrets {}", names.join(",")),
                        );
                    }
                    insert(&mut objects, ObjectKind::PushSource, &source.name, props);
                }
                for id in workspace.views.values() {
                    let view = registry.view(*id);
                    insert(
                        &mut objects,
                        ObjectKind::FeatureView,
                        &view.name,
                        describe_view(view),
                    );
                }
                for service in workspace.services.values() {
                    let mut props = Properties::new();
                    optional(&mut props, "description", service.description.as_deref());
                    for item in &service.items {
                        let view = registry.view(item.view);
                        // One property per returned feature, so a plan lists exactly the
                        // features a service gains or loses.
                        for index in &item.features {
                            let feature = &view.features[*index].name;
                            props.insert(
                                format!("features.{}.{feature}", item.namespace),
                                format!("{}.{feature}", view.name),
                            );
                        }
                        let renames: Vec<String> = view
                            .join_keys
                            .iter()
                            .zip(&item.key_inputs)
                            .map(|(key, input)| (&key.name, &service.input_join_keys[*input].name))
                            .filter(|(from, to)| from != to)
                            .map(|(from, to)| format!("{from}={to}"))
                            .collect();
                        if !renames.is_empty() {
                            props.insert(
                                format!("join_key_map.{}", item.namespace),
                                renames.join(","),
                            );
                        }
                    }
                    if let Some(logging) = &service.logging {
                        describe_logging(&mut props, logging);
                    }
                    insert(
                        &mut objects,
                        ObjectKind::FeatureService,
                        &service.name,
                        props,
                    );
                }
                let description = WorkspaceDescription {
                    live: workspace.live,
                    objects,
                };
                (workspace.name.clone(), description)
            })
            .collect();
        Repository { workspaces }
    }

    /// The xxh3-64 of the canonical encoding (every workspace, kind, object and property in
    /// sorted order, each part NUL-terminated), as 16 hex digits.
    pub fn content_hash(&self) -> String {
        let mut bytes = Vec::new();
        let mut part = |text: &str| {
            bytes.extend_from_slice(text.as_bytes());
            bytes.push(0);
        };
        part(&REPOSITORY_FORMAT.to_string());
        for (name, workspace) in &self.workspaces {
            part("workspace");
            part(name);
            part(if workspace.live {
                "live"
            } else {
                "development"
            });
            for (kind, objects) in &workspace.objects {
                for (name, props) in objects {
                    part(kind.name());
                    part(name);
                    for (key, value) in props {
                        part(key);
                        part(value);
                    }
                    part("end");
                }
            }
        }
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes))
    }

    /// The versioned JSON form: `{"format", "hash", "workspaces": {ws: {"live", "entities",
    /// "push_sources", "feature_views", "feature_services"}}}`, each object a map of properties.
    pub fn to_json(&self) -> Json {
        let workspaces: Map<String, Json> = self
            .workspaces
            .iter()
            .map(|(name, workspace)| {
                let mut body = Map::new();
                body.insert("live".into(), json!(workspace.live));
                for kind in ObjectKind::ALL {
                    let objects: Map<String, Json> = workspace
                        .objects_of(kind)
                        .map(|(name, props)| (name.clone(), json!(props)))
                        .collect();
                    body.insert(kind.plural().into(), Json::Object(objects));
                }
                (name.clone(), Json::Object(body))
            })
            .collect();
        json!({
            "format": REPOSITORY_FORMAT,
            "hash": self.content_hash(),
            "workspaces": workspaces,
        })
    }

    /// Reads [`Repository::to_json`]'s form back.
    pub fn from_json(json: &Json) -> Result<Repository, RepositoryFormatError> {
        if json["format"].as_u64() != Some(REPOSITORY_FORMAT) {
            return Err(RepositoryFormatError::Version {
                found: json["format"].to_string(),
            });
        }
        let mut repository = Repository::default();
        for (name, body) in object_at(&json["workspaces"], "workspaces")? {
            let live = body["live"]
                .as_bool()
                .ok_or_else(|| shape(format!("workspaces.{name}.live"), "true or false"))?;
            let mut workspace = WorkspaceDescription {
                live,
                objects: BTreeMap::new(),
            };
            for kind in ObjectKind::ALL {
                let at = format!("workspaces.{name}.{}", kind.plural());
                for (object, props) in object_at(&body[kind.plural()], &at)? {
                    let at = format!("{at}.{object}");
                    let props = object_at(props, &at)?
                        .iter()
                        .map(|(key, value)| match value.as_str() {
                            Some(text) => Ok((key.clone(), text.to_string())),
                            None => Err(shape(format!("{at}.{key}"), "a string")),
                        })
                        .collect::<Result<Properties, _>>()?;
                    insert(&mut workspace.objects, kind, object, props);
                }
            }
            repository.workspaces.insert(name.clone(), workspace);
        }
        let hash = repository.content_hash();
        if json["hash"].as_str() != Some(hash.as_str()) {
            return Err(RepositoryFormatError::Hash {
                stated: json["hash"].to_string(),
                computed: hash,
            });
        }
        Ok(repository)
    }
}

fn shape(at: String, expected: &'static str) -> RepositoryFormatError {
    RepositoryFormatError::Shape { at, expected }
}

fn object_at<'a>(json: &'a Json, at: &str) -> Result<&'a Map<String, Json>, RepositoryFormatError> {
    json.as_object()
        .ok_or_else(|| shape(at.to_string(), "an object"))
}

fn insert(
    objects: &mut BTreeMap<ObjectKind, BTreeMap<String, Properties>>,
    kind: ObjectKind,
    name: &str,
    props: Properties,
) {
    objects
        .entry(kind)
        .or_default()
        .insert(name.to_string(), props);
}

fn optional(props: &mut Properties, key: &str, value: Option<&str>) {
    if let Some(value) = value {
        props.insert(key.to_string(), value.to_string());
    }
}

/// A service's feature logging (`[feature_service.logging]`), one property per setting.
fn describe_logging(props: &mut Properties, logging: &LoggingConfig) {
    for (setting, value) in [
        ("sample_rate", logging.sample_rate.to_string()),
        (
            "log_request_context",
            logging.log_request_context.to_string(),
        ),
        (
            "exclude_request_context_fields",
            logging.exclude_request_context_fields.join(","),
        ),
        (
            "log_effective_times",
            logging.log_effective_times.to_string(),
        ),
        ("log_statuses", logging.log_statuses.to_string()),
        ("format", logging.format.name().to_string()),
        ("roll_size_bytes", logging.roll_size_bytes.to_string()),
        ("roll_interval", duration_text(logging.roll_interval)),
    ] {
        props.insert(format!("logging.{setting}"), value);
    }
}

/// `user_id:string,ts:timestamp`.
fn fields(fields: &[Field]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("{}:{}", f.name, f.data_type))
        .collect();
    parts.join(",")
}

fn describe_view(view: &FeatureView) -> Properties {
    let mut props = Properties::new();
    let kind = match &view.kind {
        ViewKind::Batch => "batch",
        ViewKind::Stream { source } => {
            props.insert("source".into(), source.clone());
            "stream"
        }
        ViewKind::Realtime(spec) => {
            props.insert("request_schema".into(), fields(&spec.request_schema));
            let sources: Vec<&str> = spec.sources.iter().map(|(_, name)| name.as_str()).collect();
            props.insert("sources".into(), sources.join(","));
            for (feature, expression) in view.features.iter().zip(&spec.expressions) {
                props.insert(
                    format!("features.{}", feature.name),
                    format!("{} = {expression}", feature.data_type),
                );
            }
            "realtime"
        }
    };
    props.insert("kind".into(), kind.into());
    optional(&mut props, "description", view.description.as_deref());
    for (tag, value) in &view.tags {
        props.insert(format!("tags.{tag}"), value.clone());
    }
    for feature in &view.features {
        optional(
            &mut props,
            &format!("descriptions.{}", feature.name),
            feature.description.as_deref(),
        );
        for (tag, value) in &feature.tags {
            props.insert(
                format!("feature_tags.{}.{tag}", feature.name),
                value.clone(),
            );
        }
    }
    if matches!(view.kind, ViewKind::Realtime(_)) {
        return props;
    }
    props.insert("join_keys".into(), fields(&view.join_keys));
    props.insert("timestamp_field".into(), view.timestamp_field.clone());
    if let Some(ttl) = view.ttl {
        props.insert("ttl".into(), duration_text(ttl));
    }
    match &view.aggregation {
        None => {
            for feature in &view.features {
                let mut value = feature.data_type.to_string();
                if feature.column != feature.name {
                    value.push_str(&format!(" from {}", feature.column));
                }
                props.insert(format!("features.{}", feature.name), value);
            }
        }
        Some(spec) => {
            props.insert("aggregation_interval".into(), duration_text(spec.interval));
            props.insert(
                "aggregation_leading_edge".into(),
                format!("{:?}", spec.leading_edge),
            );
            if let Some(width) = spec.compaction {
                props.insert("compaction".into(), duration_text(width));
            }
            // The tiles keep partials of these values: their types are part of the stored form.
            for input in &spec.inputs {
                props.insert(
                    format!("inputs.{}", input.name),
                    input.data_type.to_string(),
                );
            }
            for (feature, aggregate) in view.features.iter().zip(&spec.aggregates) {
                let input = &spec.inputs[aggregate.input].name;
                props.insert(
                    format!("aggregates.{}", feature.name),
                    format!(
                        "{}({input}) {AGGREGATE_WINDOW_SEPARATOR}{}",
                        function_text(aggregate.function),
                        window_text(aggregate.window)
                    ),
                );
            }
        }
    }
    props
}

/// Each aggregate's partial (`mean(amt)`: what a tile keeps for it) and window, in the files'
/// words and the view's order: what a snapshot and the journal record of the form an
/// aggregating view's tiles were written in.
pub fn aggregate_texts(spec: &AggregationSpec) -> Vec<(String, String)> {
    spec.aggregates
        .iter()
        .map(|aggregate| {
            (
                format!(
                    "{}({})",
                    function_text(aggregate.function),
                    spec.inputs[aggregate.input].name
                ),
                window_text(aggregate.window),
            )
        })
        .collect()
}

/// Separates an aggregate's partial (`mean(amt)`) from its window (`1h`) in its value.
pub const AGGREGATE_WINDOW_SEPARATOR: &str = "over ";

/// The aggregate's partial, `mean(amt)`, from its value `mean(amt) over 1h`: two aggregates
/// with the same partial keep the same state per tile.
pub fn aggregate_partial(value: &str) -> &str {
    value
        .split_once(AGGREGATE_WINDOW_SEPARATOR)
        .map_or(value, |(partial, _)| partial.trim_end())
}

/// A function as repository files write it, with every parameter spelled out.
fn function_text(function: Function) -> String {
    match function {
        Function::Count => "count".into(),
        Function::Sum => "sum".into(),
        Function::Mean => "mean".into(),
        Function::Min => "min".into(),
        Function::Max => "max".into(),
        Function::Last => "last".into(),
        Function::VarSamp => "var_samp".into(),
        Function::VarPop => "var_pop".into(),
        Function::StddevSamp => "stddev_samp".into(),
        Function::StddevPop => "stddev_pop".into(),
        Function::LastN(n) => format!("last_{n}"),
        Function::LastDistinctN(n) => format!("last_distinct_{n}"),
        Function::FirstN(n) => format!("first_{n}"),
        Function::FirstDistinctN(n) => format!("first_distinct_{n}"),
        Function::ApproxCountDistinct(precision) => format!("approx_count_distinct_p{precision}"),
        Function::ApproxPercentile {
            quantile_millionths,
            precision,
        } => format!("approx_percentile_q{quantile_millionths}e-6_p{precision}"),
    }
}

fn window_text(window: Window) -> String {
    match window {
        Window::Lifetime => "lifetime".into(),
        Window::Time { size, offset: 0 } => duration_text(size),
        Window::Time { size, offset } => {
            format!("{} offset {}", duration_text(size), duration_text(offset))
        }
        Window::Series {
            size,
            start,
            end,
            step,
        } => format!(
            "{} series {}..{} step {}",
            duration_text(size),
            duration_text(start),
            duration_text(end),
            duration_text(step)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{load_registry, WorkspaceSource};

    fn demo(repository: &std::path::Path) -> Repository {
        let registry = load_registry(&[WorkspaceSource {
            name: "prod".into(),
            live: true,
            repository: repository.to_path_buf(),
        }])
        .unwrap();
        Repository::describe(&registry)
    }

    #[test]
    fn the_demo_repository_is_described_canonically() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("features/prod");
        let described = demo(&root);
        assert_eq!(described.content_hash(), demo(&root).content_hash());
        assert_eq!(
            Repository::from_json(&described.to_json()).unwrap(),
            described
        );
        let prod = &described.workspaces["prod"];
        let view = |name| prod.object(ObjectKind::FeatureView, name).unwrap();
        assert_eq!(
            view("user_last_transaction")["features.last_amount"],
            "float64 from amt"
        );
        assert_eq!(
            view("user_profile")["descriptions.credit_score"],
            "Bureau score"
        );
        assert_eq!(
            view("user_profile")["feature_tags.credit_score.source"],
            "bureau"
        );
        assert_eq!(
            view("user_transaction_counts")["aggregates.transaction_id_count_series_7d_0s_1d"],
            "count(transaction_id) over 1d series 7d..0s step 1d"
        );
        // Its tiles keep partials of its inputs' values: their types are described too.
        assert_eq!(
            view("user_transaction_counts")["inputs.transaction_id"],
            "string"
        );
        assert_eq!(
            view("transaction_amount_is_higher_than_average")
                ["features.transaction_amount_is_higher_than_average"],
            "boolean = request.amount > user_transaction_amount_metrics.amt_mean_1d_10m"
        );
        let service = prod
            .object(ObjectKind::FeatureService, "payment_risk_service")
            .unwrap();
        assert_eq!(
            service["features.payee.category"],
            "merchant_profile.category"
        );
        assert_eq!(service["join_key_map.payee"], "merchant=payee_merchant");

        // A changed expression is a different repository.
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&root).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.replace("request.amount >", "request.amount >=");
            std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
        }
        assert_ne!(demo(dir.path()).content_hash(), described.content_hash());
    }

    #[test]
    fn a_services_logging_is_part_of_its_description() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("features/prod");
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&root).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
        // The file's last service is `transaction_aggregates_service`.
        let services = dir.path().join("services.toml");
        let text = std::fs::read_to_string(&services).unwrap();
        let logging = "\n[feature_service.logging]\nsample_rate = 0.5\nformat = \"jsonl\"\n";
        std::fs::write(&services, text + logging).unwrap();
        let logged = demo(dir.path());
        let service = logged.workspaces["prod"]
            .object(ObjectKind::FeatureService, "transaction_aggregates_service")
            .unwrap();
        assert_eq!(
            (
                service["logging.sample_rate"].as_str(),
                service["logging.format"].as_str()
            ),
            ("0.5", "jsonl")
        );
        assert_ne!(logged.content_hash(), demo(&root).content_hash());
    }
}

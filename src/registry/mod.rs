//! The feature repository: workspaces, entities, push sources, feature views and feature
//! services, loaded once at start-up from the TOML files that `config.toml` names and validated as
//! a whole. A registry is immutable once built and shared as `Arc<Registry>`; `quiver apply`
//! builds a new one (keeping view ids, see [`build_registry`]) and the server swaps it in whole.
//!
//! The registry knows nothing of HTTP or of how rows are stored; it answers "what is this name",
//! "what are its keys and types" and "in which order does a service return its features".

pub mod aggregation;
mod load;
pub mod plan;
pub mod realtime;
pub mod repository;
pub mod types;
pub mod value;

use std::collections::{BTreeMap, HashMap};

use crate::secrets::template::Template;
use crate::time::Micros;
pub use load::{build_registry, load_registry, RegistryError, WorkspaceFiles, WorkspaceSource};
use types::DataType;

/// A feature view's id: the store keys its rows by it. Stable for the life of the process (an
/// applied registry keeps the ids of the views it shares with the one before), and only there.
pub type ViewId = u32;

/// The generation of a view's stored form (its join keys, row columns and aggregation): an apply
/// that changes the form gives the view the next layout, and the store answers a read or refuses
/// a write made for another layout, so no request mixes two forms.
pub type Layout = u32;

/// Every workspace and object of the repository.
#[derive(Debug, Default)]
pub struct Registry {
    workspaces: BTreeMap<String, Workspace>,
    /// Index = view id; `None` for the id of a view an apply removed (ids are never reused).
    views: Vec<Option<FeatureView>>,
    /// 32-hex service id -> (workspace, service name).
    service_ids: HashMap<String, (String, String)>,
}

/// A namespace of objects; only live workspaces serve features and accept ingestion.
#[derive(Debug)]
pub struct Workspace {
    pub name: String,
    pub live: bool,
    pub entities: BTreeMap<String, Entity>,
    pub push_sources: BTreeMap<String, PushSource>,
    /// View name -> id.
    pub views: BTreeMap<String, ViewId>,
    pub services: BTreeMap<String, FeatureService>,
}

/// A named, ordered set of join keys.
#[derive(Debug)]
pub struct Entity {
    pub name: String,
    pub join_keys: Vec<Field>,
}

/// A name and a type: a join key, a source column or a request-context field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub data_type: DataType,
}

/// A push source: the schema of the records `/ingest` accepts under its name.
#[derive(Debug)]
pub struct PushSource {
    pub name: String,
    pub schema: Vec<Field>,
    /// The token `/ingest` must be given for this source (header `X-Quiver-Ingest-Token`),
    /// rendered from the vault at start-up.
    pub ingest_token: Option<Template>,
    /// Views fed by this source, in name order.
    pub subscribers: Vec<ViewId>,
}

/// Where a view's rows come from.
#[derive(Debug, Clone)]
pub enum ViewKind {
    /// Rows loaded by an operator (`quiver load`) or seeded at start-up.
    Batch,
    /// Rows pushed through `/ingest` to the named push source (and loadable like batch rows).
    Stream { source: String },
    /// Computed at request time from the request context and upstream views; stores nothing.
    Realtime(std::sync::Arc<realtime::RealtimeSpec>),
}

/// A feature view: keyed, timestamped rows of typed features.
#[derive(Debug)]
pub struct FeatureView {
    pub id: ViewId,
    pub layout: Layout,
    pub workspace: String,
    pub name: String,
    pub kind: ViewKind,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// The union of its entities' join keys, in declaration order.
    pub join_keys: Vec<Field>,
    pub timestamp_field: String,
    /// A row older than this is served as missing; `None` keeps rows forever.
    pub ttl: Option<Micros>,
    /// In declaration order (for an aggregating view, one per aggregate).
    pub features: Vec<Feature>,
    /// The input columns a stored row holds, in order: the features' columns, or an
    /// aggregating view's inputs.
    pub row_columns: Vec<Field>,
    /// How the view aggregates, if it does.
    pub aggregation: Option<std::sync::Arc<aggregation::AggregationSpec>>,
}

impl FeatureView {
    /// True when rows and tiles stored for `other` are in this view's stored form.
    pub fn same_stored_form(&self, other: &FeatureView) -> bool {
        self.join_keys == other.join_keys
            && self.row_columns == other.row_columns
            && self.aggregation == other.aggregation
            && matches!(self.kind, ViewKind::Realtime(_))
                == matches!(other.kind, ViewKind::Realtime(_))
    }
}

/// One feature of a view.
#[derive(Debug)]
pub struct Feature {
    pub name: String,
    pub data_type: DataType,
    /// The input column (source field or load-file column) the value is read from (for an
    /// aggregate, the column it aggregates).
    pub column: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// A feature service: what `get-features` returns for one set of join keys.
#[derive(Debug)]
pub struct FeatureService {
    /// Stable 32-hex id, derived from the workspace and service names.
    pub id: String,
    pub name: String,
    pub workspace: String,
    pub description: Option<String>,
    /// The join keys a request must carry, in first-use order (after `join_key_map` renames).
    pub input_join_keys: Vec<Field>,
    /// Views in response order (alphabetical by namespace).
    pub items: Vec<ServiceItem>,
    /// Total number of features the service returns.
    pub n_features: usize,
    /// The keys a request row's lookups are made of, each once: for each of a stored view's
    /// join keys, the index in `input_join_keys` of the request key that supplies it (`None`:
    /// the item's view has no join key of that name, so the lookup reads as a null key).
    /// Views that share a key (the seed service's three `user_id` views) share its encoding,
    /// made once a row (it was made once a view).
    pub lookup_keys: Vec<Vec<Option<usize>>>,
    /// The stored views a request row reads, each with its key once, in the items' order
    /// (the store's lookups of a row are made in this order).
    pub lookups: Vec<ServiceLookup>,
    /// The request-context fields its realtime views read, with their types.
    pub request_context_keys: Vec<Field>,
    /// What it logs of what it serves, when it declares `[feature_service.logging]`.
    pub logging: Option<LoggingConfig>,
}

/// A feature service's logging, named as Tecton's `LoggingConfig` (`sample_rate`,
/// `log_effective_times`); `feature_log` writes what it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggingConfig {
    /// The share of requests logged, in (0, 1]; decided once per request (a batch is logged whole).
    pub sample_rate: f64,
    pub log_request_context: bool,
    /// Request-context fields never logged (e.g. ones that carry personal data).
    pub exclude_request_context_fields: Vec<String>,
    pub log_effective_times: bool,
    pub log_statuses: bool,
    pub format: LogFormat,
    /// A file is rolled (closed, renamed complete) once it holds this many bytes...
    pub roll_size_bytes: u64,
    /// ...or has been open this long.
    pub roll_interval: Micros,
}

/// The file format of a feature log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Parquet,
    JsonLines,
}

impl LogFormat {
    /// Its name in the repository (`format = "..."`), which is also its files' extension.
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Parquet => "parquet",
            LogFormat::JsonLines => "jsonl",
        }
    }

    /// The format of that name.
    pub fn from_name(name: &str) -> Option<LogFormat> {
        [LogFormat::Parquet, LogFormat::JsonLines]
            .into_iter()
            .find(|format| format.name() == name)
    }
}

/// One view as a service uses it.
#[derive(Debug)]
pub struct ServiceItem {
    pub view: ViewId,
    /// The view name or its `alias`; prefixes the feature names.
    pub namespace: String,
    /// For each of the view's join keys, its index in the service's `input_join_keys`.
    pub key_inputs: Vec<usize>,
    /// The stored views a request row reads for this item, as indices into the service's
    /// `lookups`: the view itself, or a realtime view's sources in `sources`' order. Resolved
    /// here so that serving compares no names per request row.
    pub lookups: Vec<usize>,
    /// Indices into the view's `features`, in response order (alphabetical).
    pub features: Vec<usize>,
}

/// A stored view's lookup as a service's request row makes it, however many items read it.
#[derive(Debug, PartialEq)]
pub struct ServiceLookup {
    pub view: ViewId,
    /// Its key: an index into the service's `lookup_keys`.
    pub key: usize,
    /// The aggregates it computes, as bits (bit i: aggregate i, the view's feature i;
    /// `store::tiles::AggregateMask::from_bits` reads them): those of every item that reads
    /// it, every one for a realtime view's source (its expressions may read any feature), the
    /// selected features otherwise. Resolved here: worked out per request row, it cost serving
    /// ~45 instructions an item.
    pub aggregate_bits: u64,
}

impl Registry {
    pub fn workspace(&self, name: &str) -> Option<&Workspace> {
        self.workspaces.get(name)
    }

    pub fn workspaces(&self) -> impl Iterator<Item = &Workspace> {
        self.workspaces.values()
    }

    /// The view of `id`, unless it is not one of this registry's (an id a previous registry
    /// gave out to a view since removed).
    pub fn find_view(&self, id: ViewId) -> Option<&FeatureView> {
        self.views.get(id as usize)?.as_ref()
    }

    /// The view of an id this registry gave out.
    pub fn view(&self, id: ViewId) -> &FeatureView {
        self.views[id as usize]
            .as_ref()
            .expect("a registry's ids name its own views")
    }

    /// Every view, by id.
    pub fn views(&self) -> impl Iterator<Item = &FeatureView> {
        self.views.iter().flatten()
    }

    /// One more than the highest view id given out (removed views' ids included).
    pub fn view_id_bound(&self) -> usize {
        self.views.len()
    }

    /// Looks a view up by workspace and name.
    pub fn view_by_name(&self, workspace: &str, name: &str) -> Option<&FeatureView> {
        let id = *self.workspace(workspace)?.views.get(name)?;
        Some(self.view(id))
    }

    /// Looks a service up by its 32-hex id.
    pub fn service_by_id(&self, id: &str) -> Option<&FeatureService> {
        let (workspace, name) = self.service_ids.get(id)?;
        self.workspace(workspace)?.services.get(name)
    }
}

/// The stable 32-hex id of an object (Tecton's id format): the xxh3-128 of its kind, workspace
/// and name.
pub fn object_id(kind: &str, workspace: &str, name: &str) -> String {
    let digest = xxhash_rust::xxh3::xxh3_128(format!("{kind}\0{workspace}\0{name}").as_bytes());
    format!("{digest:032x}")
}

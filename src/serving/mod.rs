//! The read path: resolve a feature service, turn request join keys into store lookups, fan out
//! once over the shards for a whole batch, and assemble typed feature vectors with their serving
//! status and effective times. Protocol-free: `http` turns the result into Tecton's JSON.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::ops::Range;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::echo::echo;
use crate::prehashed::Prehashed;
use crate::registry::aggregation::{Function, LeadingEdge, Window};
use crate::registry::types::DataType;
use crate::registry::value::{JsonRules, Value};
use crate::registry::{realtime, FeatureService, FeatureView, Registry, ViewKind};
use crate::store::key::{encode_key_part, HashedKey, KeyPart};
use crate::store::row::{split_row, EncodedValue, Scalar};
use crate::store::tiles::AggregateMask;
use crate::store::{Lookup, ReadContext, ReadResult, Router, StoreError};
use crate::time::Micros;

/// Why a read was refused. The messages are for logs; `http::wire` words them for clients.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    #[error("the locator names a service both by name and by id")]
    BothLocators,
    #[error("the locator names no service")]
    NoLocator,
    #[error("the locator names a service without its workspace")]
    MissingWorkspace,
    #[error(
        "no live service `{}` in workspace `{}`",
        echo(service),
        echo(workspace)
    )]
    UnknownService { service: String, workspace: String },
    #[error("no service with id `{}`", echo(.0))]
    UnknownServiceId(String),
    #[error("join key `{0}` is missing")]
    MissingJoinKey(String),
    #[error("join key `{name}` is invalid: {problem}")]
    InvalidJoinKey { name: String, problem: String },
    #[error("request context key `{0}` is missing")]
    MissingRequestContext(String),
    #[error("request context key `{name}` is invalid: {problem}")]
    InvalidRequestContext { name: String, problem: String },
    #[error("request context key `{}` is not expected", echo(.0))]
    UnexpectedRequestContext(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("stored row of feature view `{0}` could not be decoded")]
    CorruptRow(String),
    #[error("the store did not answer within the request's latency budget")]
    LatencyBudgetExceeded,
    #[error("the store's response is {bytes} bytes, over the {limit}-byte limit")]
    ResponseSizeLimitExceeded { bytes: usize, limit: usize },
}

/// How a request names its feature service (borrowed from the request).
#[derive(Debug, Default, Clone, Copy)]
pub struct Locator<'a> {
    pub workspace: Option<&'a str>,
    pub service_name: Option<&'a str>,
    pub service_id: Option<&'a str>,
}

/// Whether a value was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingStatus {
    Present,
    /// No row for the key, a null join key, or the row is older than the view's ttl.
    MissingData,
    /// The store did not answer within the request's latency budget (partial results only).
    TimeOut,
    /// Not read: the store's response for the request passed its size limit first (partial
    /// results only). Tecton's `UNKNOWN_STATUS`, as its enum has no word for it.
    Unknown,
}

impl ServingStatus {
    /// Tecton's name for the status, as its answers and Quiver's feature logs write it.
    pub fn tecton_name(self) -> &'static str {
        match self {
            ServingStatus::Present => "PRESENT",
            ServingStatus::MissingData => "MISSING_DATA",
            ServingStatus::TimeOut => "TIME_OUT",
            ServingStatus::Unknown => "UNKNOWN_STATUS",
        }
    }
}

/// Why an answer is partial (`allowPartialResults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partial {
    /// The latency budget ran out before the store was asked (or, in a partitioned cluster,
    /// before the rows held by other nodes arrived): every stored feature `TIME_OUT`.
    LatencyBudget,
    /// The store's response passed `max_store_response_bytes`: the lookups past it `Unknown`.
    ResponseSize,
}

/// A feature's value as a read gives it (`RowRead::feature`): computed here, or served as
/// stored, from the bytes of the row the store returned (most values are: the answer is
/// written from those bytes, never decoded into [`Value`]s). An answer keeps it as a
/// [`ServedValue`].
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureValue {
    Value(Value),
    /// Bytes `span` of the answer's [`StoredRows`] (its read's one buffer), in the row read by
    /// lookup `lookup`.
    Stored {
        lookup: usize,
        span: Range<usize>,
    },
}

/// A served feature's value as the answer keeps it: with nothing to drop. A `Value` in every
/// served feature gave each answer's feature lists drop glue: dropping an answer walked every
/// feature and called `Value`'s drop for each null and computed one (~3k instructions a seed
/// batch), where most values are stored spans or scalars.
#[derive(Debug, Clone, PartialEq)]
pub enum ServedValue {
    /// A null, bool, number or timestamp: every missing value, and most computed ones.
    Scalar(Scalar),
    /// A computed string or container: value `i` of the answer's `computed`.
    Computed(usize),
    /// Bytes `span` of the row read by lookup `lookup` of the answer's [`StoredRows`].
    Stored { lookup: usize, span: Range<usize> },
}

impl ServedValue {
    /// A missing value.
    pub const NULL: ServedValue = ServedValue::Scalar(Scalar::Null);

    /// `value` as served, a computed string or container moved to `computed`.
    fn of(value: FeatureValue, computed: &mut Vec<Value>) -> ServedValue {
        match value {
            FeatureValue::Stored { lookup, span } => ServedValue::Stored { lookup, span },
            FeatureValue::Value(value) => ServedValue::computed(value, computed),
        }
    }

    /// A computed `value` as served: a scalar in place, anything else moved to `computed`.
    fn computed(value: Value, computed: &mut Vec<Value>) -> ServedValue {
        match Scalar::of(&value) {
            Some(scalar) => {
                // A scalar owns nothing: forgotten, it skips `Value`'s drop glue (a call of
                // ~20 instructions for each realtime value).
                std::mem::forget(value);
                ServedValue::Scalar(scalar)
            }
            None => {
                computed.push(value);
                ServedValue::Computed(computed.len() - 1)
            }
        }
    }

    /// The lookup whose stored row holds the value, if it is stored.
    pub fn stored_lookup(&self) -> Option<usize> {
        match self {
            ServedValue::Stored { lookup, .. } => Some(*lookup),
            ServedValue::Scalar(_) | ServedValue::Computed(_) => None,
        }
    }

    /// The value as a read gives it, a computed string or container taken out of `computed`
    /// (the answer's, which serves each once).
    pub fn take(self, computed: &mut [Value]) -> FeatureValue {
        match self {
            ServedValue::Scalar(scalar) => FeatureValue::Value(scalar.into()),
            ServedValue::Computed(i) => FeatureValue::Value(std::mem::take(&mut computed[i])),
            ServedValue::Stored { lookup, span } => FeatureValue::Stored { lookup, span },
        }
    }
}

/// The rows the store returned for a request (in lookup order), which [`FeatureValue::Stored`]
/// values point into: the read's own result, its rows' bytes in one buffer.
#[derive(Debug, Default)]
pub struct StoredRows(ReadResult);

/// Rows given one by one, as a test builds an answer by hand.
#[cfg(test)]
impl From<Vec<Option<crate::store::StoredRow>>> for StoredRows {
    fn from(rows: Vec<Option<crate::store::StoredRow>>) -> StoredRows {
        let rows = rows.iter().map(|row| row.as_ref().map(|row| row.parts()));
        StoredRows(ReadResult::of_rows(rows))
    }
}

impl StoredRows {
    /// How many lookups the read answered (each with its row or none).
    pub fn lookups(&self) -> usize {
        self.0.rows().len()
    }

    /// The stored bytes the rows hold.
    pub fn bytes(&self) -> usize {
        self.0.bytes_read()
    }

    /// `value` as a [`Value`], decoding a stored one.
    #[inline]
    pub fn decode(&self, value: FeatureValue) -> Value {
        match value {
            FeatureValue::Value(value) => value,
            FeatureValue::Stored { span, .. } => self.encoded(&span).decode(),
        }
    }

    fn is_null(&self, value: &FeatureValue) -> bool {
        match value {
            FeatureValue::Value(value) => value.is_null(),
            FeatureValue::Stored { span, .. } => self.encoded(span).is_null(),
        }
    }

    /// A stored value read in place: one slice of the read's buffer (a row looked up first,
    /// then sliced, cost ~20 instructions more a feature written).
    #[inline]
    pub fn encoded(&self, span: &Range<usize>) -> EncodedValue<'_> {
        EncodedValue::in_row(self.0.payloads(), span.clone())
    }
}

/// One answered request row: its features in the service's order, and what this row's own
/// lookups cost.
#[derive(Debug)]
pub struct FeatureVector {
    /// One list, not three parallel ones: two allocations fewer a row.
    pub features: Vec<ServedFeature>,
    /// The slowest part of the read this row's lookups went to (this node's shards, or a node
    /// they were forwarded to).
    pub store_latency: Duration,
    /// The stored bytes this row's lookups read.
    pub store_bytes: usize,
}

/// One feature of an answered row.
#[derive(Debug)]
pub struct ServedFeature {
    pub value: ServedValue,
    pub status: ServingStatus,
    pub effective_time: Option<Micros>,
}

/// A whole answer, with the store's share of the time.
#[derive(Debug)]
pub struct Answer {
    pub vectors: Vec<FeatureVector>,
    /// What the vectors' stored values point into.
    pub rows: StoredRows,
    /// The computed strings and containers the vectors' values name.
    pub computed: Vec<Value>,
    /// How long the request waited on the store (up to the latency budget).
    pub store_latency: Duration,
    pub store_bytes: usize,
    /// Some stored features were not read (`allowPartialResults`), and why.
    pub partial: Option<Partial>,
}

/// How a read is made: when, where aggregation windows end, how long the store may take, and
/// Tecton's `coerceNullCountsToZero` and `ignoreExtraRequestContextFields`.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    pub now: Micros,
    /// From `latencyBudgetMs`: the store's rows must arrive by then.
    pub deadline: Option<Instant>,
    /// Past the deadline or the response-size limit, answer with what was read (the rest
    /// `TIME_OUT` or `Unknown`) instead of an error.
    pub allow_partial_results: bool,
    /// The most bytes the store may return for one request (`[server]
    /// max_store_response_bytes`; Tecton's "Online Feature Store size limit").
    pub max_store_response_bytes: usize,
    pub leading_edge: Option<LeadingEdge>,
    pub coerce_null_counts_to_zero: bool,
    /// Request-context fields no realtime view reads (top-level or inside a struct) are
    /// dropped instead of refused.
    pub ignore_extra_request_context_fields: bool,
    /// Time the store's read (for Tecton's `sloInfo`); untimed, its latency is zero.
    pub timed: bool,
}

impl ReadOptions {
    pub fn at(now: Micros) -> ReadOptions {
        ReadOptions {
            now,
            deadline: None,
            allow_partial_results: false,
            max_store_response_bytes: usize::MAX,
            leading_edge: None,
            coerce_null_counts_to_zero: false,
            ignore_extra_request_context_fields: false,
            timed: false,
        }
    }
}

/// Finds the service a locator names; only live workspaces serve.
pub fn resolve_service<'r>(
    registry: &'r Registry,
    locator: &Locator,
) -> Result<&'r FeatureService, ServingError> {
    let unknown = |service: &str| ServingError::UnknownService {
        service: service.to_string(),
        workspace: locator.workspace.unwrap_or_default().to_string(),
    };
    let service = match (locator.service_name, locator.service_id) {
        (Some(_), Some(_)) => return Err(ServingError::BothLocators),
        (None, None) => return Err(ServingError::NoLocator),
        (Some(name), None) => {
            let workspace = locator.workspace.ok_or(ServingError::MissingWorkspace)?;
            registry
                .workspace(workspace)
                .and_then(|ws| ws.services.get(name))
                .ok_or_else(|| unknown(name))?
        }
        (None, Some(id)) => {
            let service = registry
                .service_by_id(id)
                .ok_or_else(|| ServingError::UnknownServiceId(id.to_string()))?;
            if locator.workspace.is_some_and(|ws| ws != service.workspace) {
                return Err(unknown(id));
            }
            service
        }
    };
    match registry.workspace(&service.workspace) {
        Some(workspace) if workspace.live => Ok(service),
        _ => Err(unknown(&service.name)),
    }
}

/// One request row: its join keys and request context, as the client sent them.
#[derive(Debug, Clone, Copy)]
pub struct RequestRow<'a> {
    pub join_keys: &'a RequestFields<'a>,
    pub request_context: &'a RequestFields<'a>,
}

/// A request's JSON object (`joinKeyMap`, `requestContextMap`) as its fields in request order,
/// names and strings borrowed from the request where they have no escapes.
pub type RequestFields<'a> = [(Cow<'a, str>, RequestValue<'a>)];

/// A field's value as the client sent it: a string (most join keys) borrowed from the request
/// where it can be, anything else as JSON. Copying every string out of the request cost an
/// allocation per field and row.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestValue<'a> {
    String(Cow<'a, str>),
    Json(Json),
}

impl RequestValue<'_> {
    pub fn is_null(&self) -> bool {
        matches!(self, RequestValue::Json(Json::Null))
    }

    /// The value as JSON (a string copied), for the readers of typed values.
    pub fn to_json(&self) -> Cow<'_, Json> {
        match self {
            RequestValue::String(s) => Cow::Owned(Json::String(s.to_string())),
            RequestValue::Json(json) => Cow::Borrowed(json),
        }
    }
}

/// What a stored view's features' statuses say of a realtime view's inputs for one request
/// row (a list of them cost an allocation a row, only to be searched); [`ViewAnswer::of`]
/// also writes the values the realtime view takes.
struct ViewAnswer {
    /// Some feature is missing data.
    missing: bool,
    /// The status of the first feature the store did not answer for (`TIME_OUT`, `Unknown`).
    not_read: Option<ServingStatus>,
}

impl ViewAnswer {
    /// Sets `values` to the view's features as the realtime view takes them: those of
    /// `reads` decoded (the indices its expressions read: `RealtimeSpec::reads`), the others
    /// null (decoding every feature of a wide upstream view cost more than the expressions'
    /// reads). `values` is the caller's list for this view and these `reads` alone, kept from
    /// row to row (empty at first): only the indices read are ever set, so the others are
    /// null already (a new list a row cost an allocation; refilled whole, ~5 `Value` drops
    /// and writes a row). The statuses of the features not read are summarised without
    /// reading their values: calling [`RowRead::feature`] for each feature of the upstream
    /// view cost ~60 instructions a feature a row, most of them for values never read.
    fn of(
        view: &FeatureView,
        read: RowRead,
        rows: &StoredRows,
        options: ReadOptions,
        reads: impl IntoIterator<Item = usize>,
        values: &mut Vec<Value>,
    ) -> ViewAnswer {
        let n_features = view.features.len();
        if values.len() != n_features {
            // Made at its size: grown from empty, through `Vec`'s reserve path (~75
            // instructions more).
            *values = (0..n_features).map(|_| Value::Null).collect();
        }
        for index in reads {
            values[index] = rows.decode(read.feature(view, index, rows, options).0);
        }
        // As `RowRead::feature` says: a coerced count is present whatever its value; a key
        // without a row misses every other feature; a row misses the aggregates that are null
        // or past its end (a plain view's null is a present value).
        let aggregates = view.aggregation.as_ref().map(|spec| &spec.aggregates[..]);
        let coerced = |index: usize| {
            options.coerce_null_counts_to_zero
                && aggregates
                    .and_then(|aggregates| aggregates.get(index))
                    .is_some_and(|aggregate| aggregate.function == Function::Count)
        };
        let (missing, not_read) = match read {
            RowRead::NotRead(status) => (false, (n_features > 0).then_some(status)),
            RowRead::Missing => ((0..n_features).any(|index| !coerced(index)), None),
            RowRead::Present { spans, .. } => {
                let null = |index: usize| {
                    spans
                        .get(index)
                        .is_none_or(|span| rows.encoded(span).is_null())
                };
                let n_aggregates = aggregates.map_or(0, <[_]>::len).min(n_features);
                let missing = (0..n_aggregates).any(|index| !coerced(index) && null(index));
                (missing, None)
            }
        };
        ViewAnswer { missing, not_read }
    }
}

/// A stored view's row as a request row reads it.
#[derive(Debug, Clone, Copy)]
enum RowRead<'a> {
    /// The store did not answer for it: `TIME_OUT` or `Unknown`.
    NotRead(ServingStatus),
    /// No row for the key, a null join key, or the row is older than the view's ttl.
    Missing,
    /// The row read by lookup `lookup`; `spans` are its values' bytes in the read's buffer.
    Present {
        lookup: usize,
        event_time: Micros,
        spans: &'a [Range<usize>],
    },
}

impl RowRead<'_> {
    fn effective_time(self) -> Option<Micros> {
        match self {
            RowRead::Present { event_time, .. } => Some(event_time),
            RowRead::NotRead(_) | RowRead::Missing => None,
        }
    }

    /// Feature `index` of `view` and its status: a stored value as stored (a row shorter than
    /// the view's features reads null past its end); empty aggregation windows are missing
    /// data, or 0 for counts with `coerceNullCountsToZero`, also when the key has no row.
    fn feature(
        self,
        view: &FeatureView,
        index: usize,
        rows: &StoredRows,
        options: ReadOptions,
    ) -> (FeatureValue, ServingStatus) {
        let null = || FeatureValue::Value(Value::Null);
        let (value, status) = match self {
            RowRead::NotRead(status) => return (null(), status),
            RowRead::Missing => (null(), ServingStatus::MissingData),
            RowRead::Present { lookup, spans, .. } => (
                spans
                    .get(index)
                    .map_or_else(null, |span| FeatureValue::Stored {
                        lookup,
                        span: span.clone(),
                    }),
                ServingStatus::Present,
            ),
        };
        let aggregate = view
            .aggregation
            .as_ref()
            .and_then(|spec| spec.aggregates.get(index));
        match aggregate {
            Some(aggregate)
                if aggregate.function == Function::Count && options.coerce_null_counts_to_zero =>
            {
                let mut value = rows.decode(value);
                coerce_null_count(&mut value, aggregate.window);
                (FeatureValue::Value(value), ServingStatus::Present)
            }
            Some(_) if rows.is_null(&value) => (value, ServingStatus::MissingData),
            _ => (value, status),
        }
    }

    /// Pushes features `indices` of `view` to `out`, each as [`RowRead::feature`] reads it.
    /// With no count to coerce (most reads), a present row is read in one loop over its spans
    /// and a missing one is all missing data: through `feature`, a feature cost ~90
    /// instructions (the call, its result moved twice, the aggregate looked up and the null
    /// checked through `StoredRows`), 110 times a seed batch. Inlined into its one caller: as a
    /// call, its prologue and epilogue cost ~20 instructions a stored item and row.
    #[inline(always)]
    fn push_features(
        self,
        view: &FeatureView,
        indices: &[usize],
        rows: &StoredRows,
        options: ReadOptions,
        out: &mut Vec<ServedFeature>,
        computed: &mut Vec<Value>,
    ) {
        let effective_time = self.effective_time();
        // Feature i is aggregate i, for the view's first `n_aggregates` features.
        let n_aggregates = view
            .aggregation
            .as_ref()
            .map_or(0, |spec| spec.aggregates.len());
        let coerces_counts = n_aggregates > 0 && options.coerce_null_counts_to_zero;
        match self {
            RowRead::Missing if !coerces_counts => {
                out.extend(indices.iter().map(|_| ServedFeature {
                    value: ServedValue::NULL,
                    status: ServingStatus::MissingData,
                    effective_time,
                }));
            }
            RowRead::Present { lookup, spans, .. } if !coerces_counts => {
                let payload = rows.0.payloads();
                out.extend(indices.iter().map(|&index| {
                    let (value, null) = match spans.get(index) {
                        Some(span) => (
                            ServedValue::Stored {
                                lookup,
                                span: span.clone(),
                            },
                            EncodedValue::in_row(payload, span.clone()).is_null(),
                        ),
                        None => (ServedValue::NULL, true),
                    };
                    // An empty window is missing data; a plain view's null is a value.
                    let status = if null && index < n_aggregates {
                        ServingStatus::MissingData
                    } else {
                        ServingStatus::Present
                    };
                    ServedFeature {
                        value,
                        status,
                        effective_time,
                    }
                }));
            }
            _ => out.extend(indices.iter().map(|&index| {
                let (value, status) = self.feature(view, index, rows, options);
                ServedFeature {
                    value: ServedValue::of(value, computed),
                    status,
                    effective_time,
                }
            })),
        }
    }
}

/// A count that saw nothing reads 0: a null scalar, a null series (one 0 per window) and the
/// null windows inside a series.
fn coerce_null_count(value: &mut Value, window: Window) {
    match (value, window) {
        (value @ Value::Null, Window::Series { .. }) => {
            *value = Value::Array(vec![Value::Int64(0); window.series_len()]);
        }
        (value @ Value::Null, _) => *value = Value::Int64(0),
        (Value::Array(items), Window::Series { .. }) => {
            for item in items.iter_mut().filter(|item| item.is_null()) {
                *item = Value::Int64(0);
            }
        }
        _ => {}
    }
}

/// The lists `get_features` plans a read and splits its rows with, none of which outlives the
/// call: kept by the thread from one request to the next, they are neither allocated nor freed
/// a request. Fresh, each came from a part of the allocator's pages not touched lately
/// (mimalloc hands out a page's free blocks before the ones just freed): callgrind counted
/// ~3.4 of a plain request's ~39 L2 misses in those allocations.
#[derive(Default)]
struct Scratch {
    needed: Vec<Option<usize>>,
    lookups: Vec<Lookup>,
    dedup: HashMap<u64, usize, BuildHasherDefault<Prehashed>>,
    keys: Vec<u8>,
    key_spans: Vec<Option<Range<usize>>>,
    spans: Vec<Range<usize>>,
    split: Vec<Option<(Micros, Range<usize>)>>,
}

thread_local! {
    /// The thread's scratch lists, taken by a `get_features` (one interleaved with it, across a
    /// forwarded read's wait, takes empty ones) and given back cleared when it succeeds.
    // Boxed: taking and giving back moves a pointer, not the lists (~200 bytes each way).
    static SCRATCH: Cell<Option<Box<Scratch>>> = const { Cell::new(None) };
}

/// Lookups a request plans at most for its lists to be kept: a batch of thousands of rows
/// (or a request of very long keys) would otherwise leave its lists' size on the thread for
/// good.
const MAX_KEPT_LOOKUPS: usize = 1024;

impl Scratch {
    /// Clears the lists and gives them back to the thread, unless a large request grew them.
    fn keep(mut self: Box<Self>) {
        if self.lookups.capacity() > MAX_KEPT_LOOKUPS
            || self.spans.capacity() > 8 * MAX_KEPT_LOOKUPS
            || self.keys.capacity() > 64 * MAX_KEPT_LOOKUPS
        {
            return;
        }
        self.needed.clear();
        self.lookups.clear();
        self.dedup.clear();
        self.keys.clear();
        self.key_spans.clear();
        self.spans.clear();
        self.split.clear();
        SCRATCH.set(Some(self));
    }
}

/// Reads the features of `service` for every request row. All rows go to the store in one
/// fan-out; realtime views are computed from the request context and their upstream views.
pub async fn get_features(
    registry: &Registry,
    router: &Router,
    service: &FeatureService,
    rows: &[RequestRow<'_>],
    options: ReadOptions,
) -> Result<Answer, ServingError> {
    // Per request row, each of the service's lookups (`FeatureService::lookups`) with its
    // index in `lookups` (None: a null join key), in the service's order: row r's are
    // `needed[r * n_lookups..(r + 1) * n_lookups]`, and an item finds its row by position,
    // not by searching the row's views.
    // Plain vectors and xxh3, not SipHash maps: the fan-out plan is built on every request.
    let n_lookups = service.lookups.len();
    let mut scratch = SCRATCH.take().unwrap_or_default();
    let Scratch {
        needed,
        lookups,
        dedup,
        keys,
        key_spans,
        spans,
        split,
    } = &mut *scratch;
    needed.reserve(rows.len() * n_lookups);
    // Every row's request context in one list, a row's fields in the service's order (each
    // row has them all): a list a row, and each field's name copied, cost ~100 instructions a
    // field and row. The names are the service's.
    let n_context_fields = service.request_context_keys.len();
    let mut contexts: Vec<(&str, Value)> = Vec::with_capacity(rows.len() * n_context_fields);
    // Sized up front, as `dedup` is: growing from empty cost a reallocation each (~100
    // instructions, several for a batch's lookups).
    lookups.reserve(rows.len() * n_lookups);
    // The lookup's hash (xxh3 of the encoded key seeded with the view) -> lookup index,
    // confirmed on the view and key (on a hash collision the second key just gets a lookup of
    // its own). Only a batch's rows can share a lookup (a row makes each of the service's
    // lookups once): a one-row request uses no map.
    let mut dedup = (rows.len() > 1).then(|| {
        dedup.reserve(rows.len() * n_lookups);
        dedup
    });
    // Each row's join keys are read into `inputs` and each of the service's keys encoded once
    // into `keys` (its bytes `key_spans[k]`, None for a null part): only a lookup not planned
    // already gets a copy.
    let mut inputs = Vec::with_capacity(service.input_join_keys.len());
    for row in rows {
        parse_join_keys(service, row.join_keys, &mut inputs)?;
        parse_request_context(
            service,
            row.request_context,
            options.ignore_extra_request_context_fields,
            &mut contexts,
        )?;
        keys.clear();
        key_spans.clear();
        for key_inputs in &service.lookup_keys {
            let start = keys.len();
            let whole = key_inputs.iter().all(|input| {
                let value = input.and_then(|i| inputs[i]);
                value
                    .inspect(|value| encode_key_part(*value, keys))
                    .is_some()
            });
            key_spans.push(whole.then_some(start..keys.len()));
        }
        for planned in &service.lookups {
            let Some(span) = key_spans[planned.key].clone() else {
                needed.push(None);
                continue;
            };
            let (stored, key) = (planned.view, &keys[span]);
            // Only the aggregates the items read are computed.
            let aggregates = AggregateMask::from_bits(planned.aggregate_bits);
            // The lookup's hash, which places it on a shard, is the dedup map's key too.
            // One probe: a new hash takes the lookup about to be pushed.
            let hashed = HashedKey::new(stored, key);
            let seen = dedup
                .as_mut()
                .and_then(|dedup| match dedup.entry(hashed.hash()) {
                    Entry::Occupied(earlier) => Some(*earlier.get())
                        .filter(|&i| lookups[i].view() == stored && lookups[i].key() == key),
                    Entry::Vacant(new) => {
                        new.insert(lookups.len());
                        None
                    }
                });
            let index = match seen {
                Some(i) => {
                    lookups[i].add_aggregates(aggregates);
                    i
                }
                None => {
                    lookups.push(Lookup::of_hashed(
                        hashed,
                        registry.view(stored).layout,
                        aggregates,
                    ));
                    lookups.len() - 1
                }
            };
            needed.push(Some(index));
        }
    }
    let read = if lookups.is_empty() {
        Some(ReadResult::default())
    } else {
        // The read runs on this thread, every shard at once, and cannot be cut short: a budget
        // already spent (on a large body, say) does not ask the store at all; otherwise the rows
        // are used. In a partitioned cluster, the lookups of partitions held elsewhere are
        // forwarded (with the deadline: past it, as a budget already spent).
        match options.deadline {
            Some(deadline) if Instant::now() >= deadline => {
                if options.allow_partial_results {
                    None
                } else {
                    return Err(ServingError::LatencyBudgetExceeded);
                }
            }
            _ => {
                let context = ReadContext {
                    now: options.now,
                    leading_edge: options.leading_edge,
                    timed: options.timed,
                };
                match router
                    .read_anywhere(lookups, context, options.deadline)
                    .await
                {
                    Ok(read) => Some(read),
                    Err(StoreError::RemoteDeadline) if options.allow_partial_results => None,
                    Err(StoreError::RemoteDeadline) => {
                        return Err(ServingError::LatencyBudgetExceeded)
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
    };

    let mut partial = read.is_none().then_some(Partial::LatencyBudget);
    // Past the response-size limit, the lookups from the first that does not fit on (in
    // request order) go unanswered, as from a truncated store response: one index, not a flag
    // per lookup (a list cost an allocation a request). Sizes still count every byte read.
    let mut first_unread = lookups.len();
    if let Some(read) = &read {
        let limit = options.max_store_response_bytes;
        if read.bytes_read() > limit {
            if !options.allow_partial_results {
                return Err(ServingError::ResponseSizeLimitExceeded {
                    bytes: read.bytes_read(),
                    limit,
                });
            }
            partial = Some(Partial::ResponseSize);
            let mut returned = 0;
            first_unread = read
                .rows()
                .position(|row| {
                    returned += row.map_or(0, |row| row.payload.len());
                    returned > limit
                })
                .unwrap_or(lookups.len());
        }
    }
    // The store not asked, nothing waited on it.
    let store_latency = read
        .as_ref()
        .map_or(Duration::ZERO, |read| read.read_latency);
    let store_bytes = read.as_ref().map_or(0, ReadResult::bytes_read);
    let was_read = read.is_some();
    let stored_rows = StoredRows(read.unwrap_or_default());
    // Each row to serve (in its view's ttl), checked and split into its values once, however
    // many request rows share it: `spans` of all rows, `split` each lookup's part of them.
    // Rows hold one value per feature of their view (as read now): room for all up front.
    spans.reserve(
        lookups
            .iter()
            .map(|lookup| registry.view(lookup.view()).features.len())
            .sum(),
    );
    // Sized up front: collected through `Result`, the list grew from empty (3 reallocations
    // for a seed batch's 18 lookups).
    split.reserve(lookups.len());
    for (index, (row, lookup)) in stored_rows.0.rows().zip(lookups.iter()).enumerate() {
        let view = registry.view(lookup.view());
        let Some(row) = row.filter(|row| {
            index < first_unread
                && view
                    .ttl
                    .is_none_or(|ttl| options.now - row.event_time < ttl)
        }) else {
            split.push(None);
            continue;
        };
        let start = spans.len();
        // Spans of the read's whole buffer: a value is then read with one slice.
        split_row(row.payload, row.at, spans)
            .map_err(|_| ServingError::CorruptRow(view.name.clone()))?;
        split.push(Some((row.event_time, start..spans.len())));
    }

    let mut vectors = Vec::with_capacity(rows.len());
    let mut computed = Vec::new();
    // The realtime views' upstream values, one list per source of each realtime view (in the
    // service's order), kept from row to row: `ViewAnswer::of` writes only the values read.
    let mut upstream: Vec<Vec<Value>> = Vec::new();
    for row in 0..rows.len() {
        let context = &contexts[row * n_context_fields..(row + 1) * n_context_fields];
        let row_lookups = &needed[row * n_lookups..(row + 1) * n_lookups];
        // How this row reads the service's lookup `planned`.
        let row_read = |planned: usize| {
            if !was_read {
                return RowRead::NotRead(ServingStatus::TimeOut);
            }
            let Some(lookup) = row_lookups[planned] else {
                return RowRead::Missing;
            };
            if lookup >= first_unread {
                return RowRead::NotRead(ServingStatus::Unknown);
            }
            match &split[lookup] {
                Some((event_time, row_spans)) => RowRead::Present {
                    lookup,
                    event_time: *event_time,
                    spans: &spans[row_spans.clone()],
                },
                None => RowRead::Missing,
            }
        };
        // The slowest part of the read this row's lookups went to, and their bytes, in one
        // pass. A store not asked (a spent latency budget) answered no lookup, nor took any time.
        let (store_latency, store_bytes) = match was_read {
            true => row_lookups
                .iter()
                .filter_map(|lookup| *lookup)
                .map(|i| stored_rows.0.cost(i))
                .fold(
                    (Duration::ZERO, 0),
                    |(slowest, bytes), (latency, row_bytes)| {
                        (slowest.max(latency), bytes + row_bytes)
                    },
                ),
            false => (Duration::ZERO, 0),
        };
        let mut vector = FeatureVector {
            features: Vec::with_capacity(service.n_features),
            store_latency,
            store_bytes,
        };
        // Where the next realtime view's lists start in `upstream`.
        let mut upstream_at = 0;
        for item in &service.items {
            let view = registry.view(item.view);
            match &view.kind {
                ViewKind::Realtime(spec) => {
                    let lists = upstream_at..upstream_at + spec.sources.len();
                    upstream_at = lists.end;
                    if upstream.len() < lists.end {
                        upstream.resize_with(lists.end, Vec::new);
                    }
                    let upstream = &mut upstream[lists];
                    let mut inputs_missing = false;
                    // An input the store did not answer for: the feature is not computed.
                    let mut inputs_not_read = None;
                    for ((((source, _), reads), values), planned) in spec
                        .sources
                        .iter()
                        .zip(&spec.reads)
                        .zip(upstream.iter_mut())
                        .zip(&item.lookups)
                    {
                        let reads = reads.iter().map(|(index, _)| *index);
                        let view = registry.view(*source);
                        let read = row_read(*planned);
                        let answer =
                            ViewAnswer::of(view, read, &stored_rows, options, reads, values);
                        inputs_missing |= answer.missing;
                        inputs_not_read = inputs_not_read.or(answer.not_read);
                    }
                    if let Some(status) = inputs_not_read {
                        vector
                            .features
                            .extend(item.features.iter().map(|_| ServedFeature {
                                value: ServedValue::NULL,
                                status,
                                effective_time: None,
                            }));
                        continue;
                    }
                    realtime::with_row(spec, context, upstream, |row| {
                        for index in &item.features {
                            let value = row.evaluate(*index, &view.features[*index].data_type);
                            // A null computed from missing inputs is missing data, not a value.
                            let status = if value.is_null() && inputs_missing {
                                ServingStatus::MissingData
                            } else {
                                ServingStatus::Present
                            };
                            vector.features.push(ServedFeature {
                                value: ServedValue::computed(value, &mut computed),
                                status,
                                effective_time: None,
                            });
                        }
                    });
                }
                _ => row_read(item.lookups[0]).push_features(
                    view,
                    &item.features,
                    &stored_rows,
                    options,
                    &mut vector.features,
                    &mut computed,
                ),
            }
        }
        vectors.push(vector);
    }
    scratch.keep();
    Ok(Answer {
        vectors,
        rows: stored_rows,
        computed,
        store_latency,
        store_bytes,
        partial,
    })
}

/// The value of field `name` of a request's JSON object; the last one when a name repeats (as
/// a JSON object parsed into a map keeps it).
pub fn field_of<'f, 'a>(fields: &'f RequestFields<'a>, name: &str) -> Option<&'f RequestValue<'a>> {
    fields.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Checks a row's request context against the service's realtime views' schemas: every field
/// present and of its type (floats as numbers or `"NaN"`/`"Infinity"`/`"-Infinity"`, as
/// Tecton's clients send them), no other field unless `ignore_extra` says to drop them. Pushes
/// each field of the service's `request_context_keys`, in their order, to `out` (named by the
/// service). Services without realtime views ignore it.
fn parse_request_context<'s>(
    service: &'s FeatureService,
    map: &RequestFields<'_>,
    ignore_extra: bool,
    out: &mut Vec<(&'s str, Value)>,
) -> Result<(), ServingError> {
    if service.request_context_keys.is_empty() {
        return Ok(());
    }
    let rules = JsonRules {
        numeric_float_strings: false,
        extra_struct_fields: ignore_extra,
    };
    if let Some((extra, _)) = map
        .iter()
        .find(|(k, _)| !ignore_extra && !service.request_context_keys.iter().any(|f| f.name == *k))
    {
        return Err(ServingError::UnexpectedRequestContext(extra.to_string()));
    }
    for field in &service.request_context_keys {
        let json = field_of(map, &field.name)
            .filter(|v| !v.is_null())
            .ok_or_else(|| ServingError::MissingRequestContext(field.name.clone()))?;
        let value =
            Value::from_json_with(&json.to_json(), &field.data_type, rules).map_err(|problem| {
                ServingError::InvalidRequestContext {
                    name: field.name.clone(),
                    problem,
                }
            })?;
        out.push((&field.name, value));
    }
    Ok(())
}

/// Reads the service's input join keys from a request's map into `inputs` (cleared first;
/// one list serves every row of a batch); `None` for a null value. Extra keys are ignored
/// (Tecton's own samples send keys a service does not use).
fn parse_join_keys<'a>(
    service: &FeatureService,
    map: &'a RequestFields<'a>,
    inputs: &mut Vec<Option<KeyPart<'a>>>,
) -> Result<(), ServingError> {
    inputs.clear();
    for key in &service.input_join_keys {
        let json = field_of(map, &key.name)
            .ok_or_else(|| ServingError::MissingJoinKey(key.name.clone()))?;
        inputs.push(match (json, &key.data_type) {
            // Read in place: what `Value::from_json` would copy into a `Value::String`.
            (RequestValue::String(s), DataType::String) => Some(KeyPart::String(s)),
            _ => match Value::from_json(&json.to_json(), &key.data_type) {
                Ok(Value::Null) => None,
                Ok(Value::Int64(i)) => Some(KeyPart::Int64(i)),
                // Join keys are validated to be string or int64 when the registry is built.
                Ok(other) => unreachable!("join key of unsupported kind {other:?}"),
                Err(problem) => {
                    return Err(ServingError::InvalidJoinKey {
                        name: key.name.clone(),
                        problem,
                    })
                }
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::row::encode_row;
    use crate::store::StoredRow;
    use proptest::prelude::*;

    /// How a generated upstream row reads: not answered (either status), missing, or present
    /// with each feature's value null or not.
    #[derive(Debug, Clone)]
    enum Upstream {
        NotRead(ServingStatus),
        Missing,
        Present(Vec<bool>),
    }

    fn upstream_reads() -> impl Strategy<Value = Upstream> {
        prop_oneof![
            Just(Upstream::NotRead(ServingStatus::TimeOut)),
            Just(Upstream::NotRead(ServingStatus::Unknown)),
            Just(Upstream::Missing),
            prop::collection::vec(any::<bool>(), 0..8).prop_map(Upstream::Present),
        ]
    }

    /// A view made only of counts, which no demo view is: coerced, a key without a row misses
    /// none of its features.
    const COUNT_ONLY_VIEW: &str = r#"
[[stream_feature_view]]
name = "user_transaction_tallies"
source = "transactions"
entities = ["user"]
timestamp_field = "timestamp"
aggregation_interval = "1d"
aggregations = [
  { column = "transaction_id", function = "count", window = "1d" },
  { column = "transaction_id", function = "count", window = "7d" },
]
"#;

    /// The demo repository with [`COUNT_ONLY_VIEW`] added, loaded once.
    fn registry_with_a_count_only_view() -> &'static Registry {
        static REGISTRY: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(|| {
            let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("features/prod");
            let dir = tempfile::tempdir().unwrap();
            for entry in std::fs::read_dir(&demo).unwrap() {
                let path = entry.unwrap().path();
                std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
            }
            std::fs::write(dir.path().join("tallies.toml"), COUNT_ONLY_VIEW).unwrap();
            crate::registry::load_registry(&[crate::registry::WorkspaceSource {
                name: "prod".into(),
                live: true,
                repository: dir.path().to_path_buf(),
            }])
            .expect("the demo repository with a count-only view loads")
        });
        &REGISTRY
    }

    proptest! {
        /// Each feature's status follows the rules written out below (the model), and a view's
        /// answer for a realtime view says what the list of those statuses says: missing data
        /// if any is, the first status not answered if any; its values are those read,
        /// decoded, the others null. Over a view of counts alone, an aggregating view with
        /// counts among other aggregates (coerced or not), one of means and sums, and a plain
        /// view; rows shorter than the view read null past their end.
        #[test]
        fn a_view_answer_summarises_its_features_statuses(
            view in prop_oneof![
                Just("user_transaction_tallies"),
                Just("user_transaction_counts"),
                Just("user_transaction_amount_metrics"),
                Just("user_profile"),
            ],
            read in upstream_reads(),
            coerce in any::<bool>(),
            wanted in any::<u8>(),
        ) {
            let registry = registry_with_a_count_only_view();
            let view = registry.view_by_name("prod", view).unwrap();
            let mut options = ReadOptions::at(0);
            options.coerce_null_counts_to_zero = coerce;
            let (mut rows, mut spans) = (StoredRows::default(), Vec::new());
            let read_model = read;
            let read = match &read_model {
                Upstream::NotRead(status) => RowRead::NotRead(*status),
                Upstream::Missing => RowRead::Missing,
                Upstream::Present(present) => {
                    let values: Vec<Value> = present
                        .iter()
                        .map(|&p| if p { Value::Int64(7) } else { Value::Null })
                        .collect();
                    let mut payload = Vec::new();
                    encode_row(&values, &mut payload);
                    split_row(&payload, 0, &mut spans).unwrap();
                    rows = StoredRows::from(vec![Some(StoredRow { event_time: 0, payload })]);
                    RowRead::Present { lookup: 0, event_time: 0, spans: &spans }
                }
            };
            let read_indices: Vec<usize> =
                (0..view.features.len()).filter(|i| wanted & (1 << i) != 0).collect();
            // The rules, written out: a view not read keeps its status; a coerced count is
            // present; no row misses everything else; a row misses the aggregates that are null
            // or past its end, and a plain view's null is present.
            let aggregates = view.aggregation.as_ref().map_or(&[][..], |spec| &spec.aggregates[..]);
            let statuses: Vec<ServingStatus> = (0..view.features.len())
                .map(|index| {
                    let aggregate = aggregates.get(index);
                    let coerced = aggregate.is_some_and(|a| a.function == Function::Count && coerce);
                    match &read_model {
                        Upstream::NotRead(status) => *status,
                        _ if coerced => ServingStatus::Present,
                        Upstream::Missing => ServingStatus::MissingData,
                        Upstream::Present(present) => {
                            match aggregate.is_some() && !present.get(index).copied().unwrap_or(false) {
                                true => ServingStatus::MissingData,
                                false => ServingStatus::Present,
                            }
                        }
                    }
                })
                .collect();
            // `RowRead::feature` answers by these rules, and `ViewAnswer::of` (which restates
            // them for speed, without decoding) summarises them.
            for (index, status) in statuses.iter().enumerate() {
                prop_assert_eq!(read.feature(view, index, &rows, options).1, *status, "feature {}", index);
            }
            let values: Vec<Value> = (0..view.features.len())
                .map(|index| match read_indices.contains(&index) {
                    true => rows.decode(read.feature(view, index, &rows, options).0),
                    false => Value::Null,
                })
                .collect();
            // The caller's list for these reads, as a previous row (every value present) left it.
            let mut got = Vec::new();
            let present: Vec<Value> = (0..view.features.len()).map(|_| Value::Int64(1)).collect();
            let (mut payload, mut present_spans) = (Vec::new(), Vec::new());
            encode_row(&present, &mut payload);
            split_row(&payload, 0, &mut present_spans).unwrap();
            let present_rows = StoredRows::from(vec![Some(StoredRow { event_time: 0, payload })]);
            let present = RowRead::Present { lookup: 0, event_time: 0, spans: &present_spans };
            let reads = read_indices.iter().copied();
            ViewAnswer::of(view, present, &present_rows, options, reads, &mut got);
            let answer =
                ViewAnswer::of(view, read, &rows, options, read_indices.iter().copied(), &mut got);
            prop_assert_eq!(answer.missing, statuses.contains(&ServingStatus::MissingData));
            prop_assert_eq!(
                answer.not_read,
                statuses
                    .iter()
                    .copied()
                    .find(|s| matches!(s, ServingStatus::TimeOut | ServingStatus::Unknown))
            );
            prop_assert_eq!(got, values);
        }
    }

    #[test]
    fn scratch_lists_come_back_cleared_and_large_ones_are_let_go() {
        let _ = SCRATCH.take();
        let mut used = Box::<Scratch>::default();
        used.keys.extend_from_slice(b"user_1");
        used.needed.push(Some(0));
        used.spans.push(0..6);
        used.dedup.insert(7, 0);
        used.key_spans.push(Some(0..6));
        used.split.push(None);
        used.lookups
            .push(Lookup::new(0, 0, b"user_1".to_vec(), AggregateMask::ALL));
        used.keep();
        let kept = SCRATCH.take().expect("a request's lists are kept");
        assert!(kept.keys.is_empty() && kept.needed.is_empty() && kept.spans.is_empty());
        assert!(kept.lookups.is_empty() && kept.key_spans.is_empty() && kept.split.is_empty());
        assert!(kept.dedup.is_empty() && kept.keys.capacity() >= 6);

        let mut large = Box::<Scratch>::default();
        large.lookups.reserve(MAX_KEPT_LOOKUPS + 1);
        large.keep();
        assert!(SCRATCH.take().is_none(), "a large batch's lists are freed");
        let mut long_keys = Box::<Scratch>::default();
        long_keys.keys.reserve(64 * MAX_KEPT_LOOKUPS + 1);
        long_keys.keep();
        assert!(SCRATCH.take().is_none(), "a long key's buffer is freed");
    }

    #[test]
    fn a_repeated_request_field_reads_as_its_last_value() {
        let text = |s: &'static str| RequestValue::String(s.into());
        let fields = [
            ("user_id".into(), text("first")),
            ("merchant".into(), text("m")),
            ("user_id".into(), text("last")),
        ];
        assert_eq!(field_of(&fields, "user_id"), Some(&text("last")));
        assert_eq!(field_of(&fields, "amount"), None);
    }

    #[test]
    fn coerced_counts_fill_scalars_whole_series_and_the_gaps_inside_a_series() {
        let series = Window::Series {
            size: 10,
            start: 40,
            end: 0,
            step: 10,
        };
        let mut empty_series = Value::Null;
        coerce_null_count(&mut empty_series, series);
        assert_eq!(empty_series, Value::Array(vec![Value::Int64(0); 4]));

        let mut gappy = Value::Array(vec![
            Value::Null,
            Value::Int64(2),
            Value::Null,
            Value::Int64(1),
        ]);
        coerce_null_count(&mut gappy, series);
        let zero = Value::Int64(0);
        assert_eq!(
            gappy,
            Value::Array(vec![zero.clone(), Value::Int64(2), zero, Value::Int64(1)])
        );

        let mut scalar = Value::Null;
        coerce_null_count(&mut scalar, Window::Lifetime);
        assert_eq!(scalar, Value::Int64(0));
    }
}

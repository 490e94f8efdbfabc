//! Tecton Feature Service JSON: requests accept camelCase and snake_case at every level and
//! `null` anywhere; responses are camelCase, omit unset fields, and encode values per Tecton.

use std::borrow::Cow;
use std::ops::Range;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::ser::{CompactFormatter, Formatter};
use serde_json::{json, Map, Value as Json};

use super::super::error::{ApiError, ErrorKind};
use super::common_request::json_stops;
use crate::echo::echo;
use crate::registry::aggregation::LeadingEdge;
use crate::registry::types::DataType;
use crate::registry::value::{TectonJson, Value};
use crate::registry::{FeatureService, Registry};
use crate::serving::{
    Answer, FeatureVector, Locator, Partial, ReadOptions, RequestFields, RequestValue,
    ServedFeature, ServedValue, ServingError,
};
use crate::store::row::{self, EncodedValue, Scalar};
use crate::time::{push_timestamp, Micros};

/// Tecton's message for a refused read (what its clients show; the locator ones name the
/// request's fields).
pub fn serving_error_message(error: &ServingError) -> String {
    match error {
        ServingError::BothLocators => {
            "Exactly one of featureServiceName and featureServiceId must be set; got both".into()
        }
        ServingError::NoLocator => {
            "Exactly one of featureServiceName and featureServiceId must be set; got neither".into()
        }
        ServingError::MissingWorkspace => {
            "workspaceName is required with featureServiceName".into()
        }
        ServingError::UnknownService { service, workspace } => format!(
            "Unable to query FeatureService `{}` for workspace `{}`. Newly created feature \
             services may take up to 60 seconds to query. Also, ensure that the workspace is a \
             \"live\" workspace.",
            echo(service),
            echo(workspace)
        ),
        ServingError::UnknownServiceId(id) => {
            format!(
                "FeatureService id `{}` does not match any feature service",
                echo(id)
            )
        }
        ServingError::MissingJoinKey(name) => format!("Missing required join key: {name}"),
        ServingError::InvalidJoinKey { name, problem } => {
            format!("Invalid value for join key {name}: {problem}")
        }
        ServingError::MissingRequestContext(name) => {
            format!("Missing required request context key: {name}")
        }
        ServingError::InvalidRequestContext { name, problem } => {
            format!("Invalid value for request context key {name}: {problem}")
        }
        ServingError::UnexpectedRequestContext(name) => {
            format!("Unexpected request context key: {}", echo(name))
        }
        ServingError::LatencyBudgetExceeded => "The store did not answer within \
            requestOptions.latencyBudgetMs; set allowPartialResults to get the features that \
            were ready, with status TIME_OUT for the others"
            .into(),
        ServingError::ResponseSizeLimitExceeded { bytes, limit } => format!(
            "The online store's response for this request is {bytes} bytes, over the \
             {limit}-byte limit (server.max_store_response_bytes); request fewer features or \
             rows, or set allowPartialResults to get the features that fit, with status \
             UNKNOWN_STATUS for the others"
        ),
        ServingError::Store(_) | ServingError::CorruptRow(_) => error.to_string(),
    }
}

/// `{"params": {...}}`, the envelope of every Feature Service request.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub params: T,
}

/// The request's strings (names, join keys) are borrowed from its body where they have no
/// escapes (see [`Text`] and [`RequestValue`]). Its JSON objects of fields (`joinKeyMap`,
/// `requestContextMap`, the request's and each batch row's) are ranges of one list, `fields`:
/// a list of its own for each cost two allocations and their frees a batch row (~400
/// instructions).
#[derive(Debug, Default)]
pub struct GetFeaturesParams<'a> {
    pub feature_service_id: Option<Text<'a>>,
    pub feature_service_name: Option<Text<'a>>,
    pub workspace_name: Option<Text<'a>>,
    pub join_key_map: Option<Range<usize>>,
    pub request_context_map: Option<Range<usize>>,
    pub metadata_options: Option<MetadataOptions>,
    pub request_options: Option<Map<String, Json>>,
    pub allow_partial_results: Option<bool>,
    /// Batch requests only.
    pub request_data: Option<Vec<Option<BatchRow>>>,
    /// Every object's fields, in request order within each object.
    pub fields: Vec<(Cow<'a, str>, RequestValue<'a>)>,
}

/// A batch row's objects: ranges of its params' `fields`.
#[derive(Debug, Default, Clone)]
pub struct BatchRow {
    pub join_key_map: Option<Range<usize>>,
    pub request_context_map: Option<Range<usize>>,
}

/// The params as serde reads them, each object a list of its own; made into
/// [`GetFeaturesParams`] by moving the lists into one. Only bodies the hand reader
/// (`common_request`) declines take this way. Named in refusals as the params themselves.
#[derive(Deserialize)]
#[serde(expecting = "struct GetFeaturesParams", rename_all = "camelCase")]
struct ParamsAsSent<'a> {
    #[serde(borrow, alias = "feature_service_id")]
    feature_service_id: Option<Text<'a>>,
    #[serde(borrow, alias = "feature_service_name")]
    feature_service_name: Option<Text<'a>>,
    #[serde(borrow, alias = "workspace_name")]
    workspace_name: Option<Text<'a>>,
    #[serde(borrow, alias = "join_key_map")]
    join_key_map: Option<JsonFields<'a>>,
    #[serde(borrow, alias = "request_context_map")]
    request_context_map: Option<JsonFields<'a>>,
    #[serde(alias = "metadata_options")]
    metadata_options: Option<MetadataOptions>,
    #[serde(alias = "request_options")]
    request_options: Option<Map<String, Json>>,
    #[serde(alias = "allow_partial_results")]
    allow_partial_results: Option<bool>,
    #[serde(borrow, alias = "request_data")]
    request_data: Option<Vec<Option<BatchRowAsSent<'a>>>>,
}

#[derive(Deserialize)]
#[serde(expecting = "struct BatchRow", rename_all = "camelCase")]
struct BatchRowAsSent<'a> {
    #[serde(borrow, alias = "join_key_map")]
    join_key_map: Option<JsonFields<'a>>,
    #[serde(borrow, alias = "request_context_map")]
    request_context_map: Option<JsonFields<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for GetFeaturesParams<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<GetFeaturesParams<'a>, D::Error> {
        let sent = ParamsAsSent::deserialize(deserializer)?;
        let mut fields = Vec::new();
        let mut place = |map: Option<JsonFields<'a>>| {
            map.map(|JsonFields(map)| {
                let start = fields.len();
                fields.extend(map);
                start..fields.len()
            })
        };
        let join_key_map = place(sent.join_key_map);
        let request_context_map = place(sent.request_context_map);
        let request_data = sent.request_data.map(|rows| {
            rows.into_iter()
                .map(|row| {
                    row.map(|row| BatchRow {
                        join_key_map: place(row.join_key_map),
                        request_context_map: place(row.request_context_map),
                    })
                })
                .collect()
        });
        Ok(GetFeaturesParams {
            feature_service_id: sent.feature_service_id,
            feature_service_name: sent.feature_service_name,
            workspace_name: sent.workspace_name,
            join_key_map,
            request_context_map,
            metadata_options: sent.metadata_options,
            request_options: sent.request_options,
            allow_partial_results: sent.allow_partial_results,
            request_data,
            fields,
        })
    }
}

/// A JSON string, borrowed from the request body when it has no escapes (serde's own
/// `Cow<str>` is only borrowed as a bare field, not inside an `Option`).
#[derive(Debug, Default)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Text<'a>, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            // As `String` words it, so that refusals read as they did.
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(text.to_string())))
            }
            fn visit_string<E>(self, text: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_string(TextVisitor(std::marker::PhantomData))
    }
}

/// A JSON object's fields in request order (`joinKeyMap`, `requestContextMap`): a list, not a
/// map, as each holds a few fields that are looked up once (see `serving::field_of`: the last
/// of a repeated name wins, as in a map). Building a hashed map for every request row cost more
/// than the lookups it served. Serde's reading; [`GetFeaturesParams`] moves them into one list.
#[derive(Debug)]
struct JsonFields<'a>(Vec<(Cow<'a, str>, RequestValue<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for JsonFields<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<JsonFields<'a>, D::Error> {
        struct FieldsVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for FieldsVisitor<'a> {
            type Value = JsonFields<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonFields<'a>, A::Error> {
                // No room up front: serde_json gives no size hint, and an empty map (a plain
                // service's `requestContextMap: {}`) needs none.
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(0).min(16));
                while let Some((Text(name), value)) = map.next_entry()? {
                    fields.push((name, value));
                }
                Ok(JsonFields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor(std::marker::PhantomData))
    }
}

/// Strings borrowed where they can be; everything else as `serde_json::Value` reads it (the
/// same visits, so the same values and the same refusals).
impl<'de: 'a, 'a> Deserialize<'de> for RequestValue<'a> {
    // Inlined into `JsonFields`' loop: left to codegen-unit partitioning, a build of an
    // unrelated change made it a call per request field (~870 instructions a batch).
    #[inline]
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<RequestValue<'a>, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        struct ValueVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for ValueVisitor<'a> {
            type Value = RequestValue<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any valid JSON value")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<RequestValue<'a>, E> {
                Ok(RequestValue::String(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<RequestValue<'a>, E> {
                Ok(RequestValue::String(Cow::Owned(text.to_string())))
            }
            fn visit_string<E>(self, text: String) -> Result<RequestValue<'a>, E> {
                Ok(RequestValue::String(Cow::Owned(text)))
            }
            fn visit_bool<E>(self, b: bool) -> Result<RequestValue<'a>, E> {
                Ok(RequestValue::Json(Json::Bool(b)))
            }
            fn visit_i64<E>(self, i: i64) -> Result<RequestValue<'a>, E> {
                Ok(RequestValue::Json(Json::from(i)))
            }
            fn visit_u64<E>(self, u: u64) -> Result<RequestValue<'a>, E> {
                Ok(RequestValue::Json(Json::from(u)))
            }
            fn visit_f64<E>(self, f: f64) -> Result<RequestValue<'a>, E> {
                let number = serde_json::Number::from_f64(f);
                Ok(RequestValue::Json(number.map_or(Json::Null, Json::Number)))
            }
            fn visit_unit<E>(self) -> Result<RequestValue<'a>, E> {
                Ok(RequestValue::Json(Json::Null))
            }
            fn visit_none<E>(self) -> Result<RequestValue<'a>, E> {
                Ok(RequestValue::Json(Json::Null))
            }
            fn visit_some<D: serde::Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<RequestValue<'a>, D::Error> {
                RequestValue::deserialize(deserializer)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<RequestValue<'a>, A::Error> {
                Json::deserialize(SeqAccessDeserializer::new(seq)).map(RequestValue::Json)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RequestValue<'a>, A::Error> {
                Json::deserialize(MapAccessDeserializer::new(map)).map(RequestValue::Json)
            }
        }
        deserializer.deserialize_any(ValueVisitor(std::marker::PhantomData))
    }
}

/// Which metadata to return. `None` is "unset": names and data types then default to true
/// (tecton-client's `get_features_dict()` needs them), everything else to false.
#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub struct MetadataOptions {
    #[serde(alias = "include_names")]
    pub include_names: Option<bool>,
    #[serde(alias = "include_effective_times")]
    pub include_effective_times: Option<bool>,
    #[serde(alias = "include_data_types")]
    pub include_data_types: Option<bool>,
    #[serde(alias = "include_slo_info")]
    pub include_slo_info: Option<bool>,
    #[serde(alias = "include_serving_status")]
    pub include_serving_status: Option<bool>,
    #[serde(alias = "include_feature_descriptions")]
    pub include_feature_descriptions: Option<bool>,
    #[serde(alias = "include_feature_tags")]
    pub include_feature_tags: Option<bool>,
}

/// The metadata options with defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Includes {
    names: bool,
    effective_times: bool,
    data_types: bool,
    slo_info: bool,
    serving_status: bool,
    descriptions: bool,
    tags: bool,
}

impl From<Option<MetadataOptions>> for Includes {
    fn from(options: Option<MetadataOptions>) -> Includes {
        let o = options.unwrap_or_default();
        Includes {
            names: o.include_names.unwrap_or(true),
            effective_times: o.include_effective_times.unwrap_or(false),
            data_types: o.include_data_types.unwrap_or(true),
            slo_info: o.include_slo_info.unwrap_or(false),
            serving_status: o.include_serving_status.unwrap_or(false),
            descriptions: o.include_feature_descriptions.unwrap_or(false),
            tags: o.include_feature_tags.unwrap_or(false),
        }
    }
}

impl Includes {
    /// The options that shape each feature's metadata (all but `slo_info`).
    fn per_feature(&self) -> Includes {
        Includes {
            slo_info: false,
            ..*self
        }
    }

    fn any_per_feature(&self) -> bool {
        self.names
            || self.effective_times
            || self.data_types
            || self.serving_status
            || self.descriptions
            || self.tags
    }
}

impl<'a> GetFeaturesParams<'a> {
    /// The fields of an object of the request (`joinKeyMap`, `requestContextMap`); an absent
    /// one has none.
    pub fn fields_of(&self, object: Option<Range<usize>>) -> &RequestFields<'a> {
        object.map_or(&[][..], |range| &self.fields[range])
    }

    /// The read options from `allowPartialResults` and `requestOptions`:
    /// `aggregationLeadingEdge` (enum name or number), `latencyBudgetMs` (counted from
    /// `started`; 0 is none), `coerceNullCountsToZero` and `ignoreExtraRequestContextFields`,
    /// in camelCase or snake_case. `readFromCache`/`writeToCache` must be booleans and change
    /// nothing: there is no cache, every answer is read from the store.
    pub fn read_options(&self, now: Micros, started: Instant) -> Result<ReadOptions, ApiError> {
        let mut options = ReadOptions::at(now);
        options.allow_partial_results = self.allow_partial_results.unwrap_or(false);
        options.timed = Includes::from(self.metadata_options).slo_info;
        let Some(request_options) = &self.request_options else {
            return Ok(options);
        };
        let get = |camel: &str, snake: &str| {
            request_options
                .get(camel)
                .or_else(|| request_options.get(snake))
                .filter(|v| !v.is_null())
        };
        if let Some(edge) = get("aggregationLeadingEdge", "aggregation_leading_edge") {
            options.leading_edge = match edge {
                Json::String(name) if name == "AGGREGATION_MODE_UNSPECIFIED" => None,
                Json::String(name) => {
                    Some(LeadingEdge::parse(name).ok_or_else(|| bad_option(name))?)
                }
                Json::Number(n) => match n.as_u64() {
                    Some(0) => None,
                    Some(1) => Some(LeadingEdge::WallClockTime),
                    Some(2) => Some(LeadingEdge::LatestEventTime),
                    _ => return Err(bad_option(&n.to_string())),
                },
                other => return Err(bad_option(&other.to_string())),
            };
        }
        let flag = |camel: &str, snake: &str| match get(camel, snake) {
            None => Ok(false),
            Some(value) => value.as_bool().ok_or_else(|| {
                ApiError::new(
                    ErrorKind::InvalidArgument,
                    format!("requestOptions.{camel} must be a boolean"),
                )
            }),
        };
        options.coerce_null_counts_to_zero =
            flag("coerceNullCountsToZero", "coerce_null_counts_to_zero")?;
        options.ignore_extra_request_context_fields = flag(
            "ignoreExtraRequestContextFields",
            "ignore_extra_request_context_fields",
        )?;
        flag("readFromCache", "read_from_cache")?;
        flag("writeToCache", "write_to_cache")?;
        if let Some(budget) = get("latencyBudgetMs", "latency_budget_ms") {
            let millis = budget.as_u64().ok_or_else(|| {
                ApiError::new(
                    ErrorKind::InvalidArgument,
                    format!("requestOptions.latencyBudgetMs must be a non-negative integer (milliseconds), got {budget}"),
                )
            })?;
            options.deadline = (millis > 0).then(|| started + Duration::from_millis(millis));
        }
        Ok(options)
    }

    /// The locator, with empty strings read as unset (some clients send `""`).
    pub fn locator<'s>(&'s self, path: Option<(&'s str, &'s str)>) -> Locator<'s> {
        let non_empty = |s: &'s Option<Text<'_>>| {
            s.as_ref()
                .map(|text| text.0.as_ref())
                .filter(|s| !s.is_empty())
        };
        match path {
            Some((workspace, service)) => Locator {
                workspace: Some(workspace),
                service_name: Some(service),
                service_id: None,
            },
            None => Locator {
                workspace: non_empty(&self.workspace_name),
                service_name: non_empty(&self.feature_service_name),
                service_id: non_empty(&self.feature_service_id),
            },
        }
    }
}

fn bad_option(got: &str) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidArgument,
        format!("requestOptions.aggregationLeadingEdge must be AGGREGATION_MODE_WALL_CLOCK_TIME or AGGREGATION_MODE_LATEST_EVENT_TIME, got {got}"),
    )
}

/// Tecton's JSON for a data type. A top-level float32 is reported as float64, as Tecton's
/// clients only know float64 scalars; inside arrays it stays float32.
pub fn data_type_json(data_type: &DataType, top_level: bool) -> Json {
    match data_type {
        DataType::Bool => json!({"type": "boolean"}),
        DataType::Int64 => json!({"type": "int64"}),
        DataType::Float32 if top_level => json!({"type": "float64"}),
        DataType::Float32 => json!({"type": "float32"}),
        DataType::Float64 => json!({"type": "float64"}),
        DataType::String => json!({"type": "string"}),
        DataType::Timestamp => json!({"type": "timestamp"}),
        DataType::Array(element) => {
            json!({"type": "array", "elementType": data_type_json(element, false)})
        }
        DataType::Map(value) => {
            json!({"type": "map", "keyType": {"type": "string"}, "valueType": data_type_json(value, false)})
        }
        DataType::Struct(fields) => json!({
            "type": "struct",
            "fields": fields.iter().map(|f| json!({"name": f.name, "dataType": data_type_json(&f.data_type, false)})).collect::<Vec<_>>(),
        }),
    }
}

/// The parts of a response that depend only on the service: each feature's name, type,
/// description and tags, JSON-encoded once at start-up so that answering a request is mostly
/// copying bytes.
pub struct WireCatalog {
    /// By service id, sorted: a binary search over a few ids costs less than SipHashing the
    /// one looked up (~320 instructions a request).
    by_service: Vec<(String, ServiceWire)>,
}

/// One service's pre-encoded JSON.
struct ServiceWire {
    features: Vec<FeatureWire>,
    /// The metadata's `"features":[...]` under the default options (names and data types),
    /// what nearly every answer carries: one copy, where writing it feature by feature cost
    /// ~100 instructions a feature a request.
    default_metadata: Vec<u8>,
}

/// One feature's pre-encoded JSON fragments.
struct FeatureWire {
    /// `"namespace.feature"`, quoted and escaped.
    name: String,
    data_type: String,
    description: Option<String>,
    tags: Option<String>,
}

impl WireCatalog {
    pub fn build(registry: &Registry) -> WireCatalog {
        let mut by_service = Vec::new();
        for workspace in registry.workspaces() {
            for service in workspace.services.values() {
                let mut features = Vec::with_capacity(service.n_features);
                for item in &service.items {
                    let view = registry.view(item.view);
                    for index in &item.features {
                        let feature = &view.features[*index];
                        features.push(FeatureWire {
                            name: Json::String(format!("{}.{}", item.namespace, feature.name))
                                .to_string(),
                            data_type: data_type_json(&feature.data_type, true).to_string(),
                            description: feature
                                .description
                                .as_ref()
                                .map(|d| Json::String(d.clone()).to_string()),
                            tags: (!feature.tags.is_empty())
                                .then(|| json!(feature.tags).to_string()),
                        });
                    }
                }
                let mut default_metadata = Vec::new();
                // The default options write neither effective times nor statuses.
                push_feature_metadata(
                    &mut default_metadata,
                    &features,
                    Includes::from(None),
                    |_| None,
                    |_, _| {},
                );
                let wire = ServiceWire {
                    features,
                    default_metadata,
                };
                by_service.push((service.id.clone(), wire));
            }
        }
        by_service.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        WireCatalog { by_service }
    }

    fn service(&self, service: &FeatureService) -> &ServiceWire {
        let found = self
            .by_service
            .binary_search_by(|(id, _)| id.as_str().cmp(&service.id))
            .expect("the catalog covers every service of the registry");
        &self.by_service[found].1
    }

    fn features(&self, service: &FeatureService) -> &[FeatureWire] {
        &self.service(service).features
    }
}

impl ServiceWire {
    /// Appends the metadata's `"features":[...]` (see [`push_feature_metadata`]), copied
    /// whole under the default options.
    fn push_metadata(
        &self,
        out: &mut Vec<u8>,
        includes: Includes,
        effective_time: impl Fn(usize) -> Option<Micros>,
        push_status: impl FnMut(&mut Vec<u8>, usize),
    ) {
        if includes.per_feature() == Includes::from(None).per_feature() {
            out.extend_from_slice(&self.default_metadata);
        } else {
            push_feature_metadata(out, &self.features, includes, effective_time, push_status);
        }
    }
}

/// Timing of one request (or one row of a batch), for `sloInfo`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub server: Duration,
    /// The wait on the store.
    pub store: Duration,
    pub store_bytes: usize,
    /// Some stored features were not read (a partial answer), and why.
    pub partial: Option<Partial>,
}

impl Timing {
    /// A batch row's own timing: the request's time off the store, plus the wait on the
    /// shards its own lookups went to, and the bytes they read.
    fn of_row(self, vector: &FeatureVector) -> Timing {
        Timing {
            server: self.server.saturating_sub(self.store) + vector.store_latency,
            store: vector.store_latency,
            store_bytes: vector.store_bytes,
            partial: self.partial,
        }
    }
}

/// Tecton's SLO covers requests that process at most 2 MiB of items from the online store...
const SLO_MAX_STORE_BYTES: usize = 2 << 20;
/// ...and whose reads of an in-memory online store (Redis, for Tecton) take under 25 ms.
const SLO_MAX_STORE_LATENCY: Duration = Duration::from_millis(25);

/// Tecton's `sloInfo`. The server time that counts toward the SLO is the time not spent
/// waiting on the store. A request is not eligible, with Tecton's reason names, when it read
/// more than 2 MiB from the store or passed the store's response-size limit
/// (`DYNAMODB_RESPONSE_SIZE_LIMIT_EXCEEDED`: Quiver reports its store's bytes as
/// `dynamodbResponseSizeBytes`), or when the store took 25 ms or more or the latency budget
/// ran out before it answered (`REDIS_LATENCY_LIMIT_EXCEEDED`, the enum's only latency
/// reason; Java's client refuses names it does not know). `dynamodbResponseSizeBytes` and
/// `storeResponseSizeBytes` carry the same count (the seed's samples show both equal).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SloInfo {
    slo_eligible: bool,
    slo_server_time_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dynamodb_response_size_bytes: Option<usize>,
    server_time_seconds: f64,
    store_max_latency: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    store_response_size_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    slo_ineligibility_reasons: Vec<&'static str>,
}

impl SloInfo {
    fn of(timing: Timing, with_size: bool) -> SloInfo {
        let mut reasons = Vec::new();
        if timing.store_bytes > SLO_MAX_STORE_BYTES || timing.partial == Some(Partial::ResponseSize)
        {
            reasons.push("DYNAMODB_RESPONSE_SIZE_LIMIT_EXCEEDED");
        }
        if timing.store >= SLO_MAX_STORE_LATENCY || timing.partial == Some(Partial::LatencyBudget) {
            reasons.push("REDIS_LATENCY_LIMIT_EXCEEDED");
        }
        SloInfo {
            slo_eligible: reasons.is_empty(),
            slo_server_time_seconds: timing.server.saturating_sub(timing.store).as_secs_f64(),
            dynamodb_response_size_bytes: with_size.then_some(timing.store_bytes),
            server_time_seconds: timing.server.as_secs_f64(),
            store_max_latency: timing.store.as_secs_f64(),
            store_response_size_bytes: with_size.then_some(timing.store_bytes),
            slo_ineligibility_reasons: reasons,
        }
    }
}

/// Appends `value` as JSON (serialising into a `Vec` cannot fail for these types).
fn push_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(&mut *out, value).expect("serialising into memory cannot fail");
}

/// Appends `{"features":[v1,v2,...]}`, one result row. With `written` (a batch's), each run of
/// features read from one stored row is written once and copied for every later result row
/// that read the same stored row (see [`WrittenRuns`]).
fn push_values(
    out: &mut Vec<u8>,
    features: &[ServedFeature],
    answer: &Answer,
    written: Option<&mut WrittenRuns>,
) {
    out.extend_from_slice(b"{\"features\":[");
    match written {
        // One feature at a time: looking for runs cost a single row ~30 instructions a feature.
        None => push_features(out, features, answer),
        Some(written) => push_runs(out, features, answer, written),
    }
    out.extend_from_slice(b"]}");
}

/// Appends `v1,v2,...`, each run of features read from one stored row through `written`.
fn push_runs(
    out: &mut Vec<u8>,
    features: &[ServedFeature],
    answer: &Answer,
    written: &mut WrittenRuns,
) {
    let mut start = 0;
    while start < features.len() {
        if start > 0 {
            out.push(b',');
        }
        let Some(lookup) = features[start].value.stored_lookup() else {
            push_served(out, &features[start].value, answer);
            start += 1;
            continue;
        };
        let run = features[start + 1..]
            .iter()
            .take_while(|feature| feature.value.stored_lookup() == Some(lookup))
            .count();
        let end = start + 1 + run;
        written.push(out, lookup, start..end, |out| {
            push_features(out, &features[start..end], answer)
        });
        start = end;
    }
}

/// Appends `v1,v2,...`.
fn push_features(out: &mut Vec<u8>, features: &[ServedFeature], answer: &Answer) {
    for (i, feature) in features.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_served(out, &feature.value, answer);
    }
}

/// Appends one served value of `answer`. Inlined: most are a scalar or a stored span, and a
/// call a value cost a batch ~50 instructions a computed feature.
#[inline]
fn push_served(out: &mut Vec<u8>, value: &ServedValue, answer: &Answer) {
    match value {
        ServedValue::Scalar(scalar) => push_scalar(out, *scalar),
        ServedValue::Computed(i) => push_value(out, &answer.computed[*i]),
        ServedValue::Stored { span, .. } => push_encoded(out, answer.rows.encoded(span)),
    }
}

/// Per lookup of a batch's answer, where the answer first wrote features read from its stored
/// row: result rows that share a key (a user scored against several merchants) write the same
/// bytes for its features, and a float costs ~180 instructions to format where a copy costs a
/// few. Exact: feature positions are the service's in every result row, and a stored value at
/// a position is the same span of the same stored row (computed values, realtime or coerced,
/// are not runs and are always written).
struct WrittenRuns(Vec<Option<WrittenRun>>);

/// Feature positions `features` of a result row, written as bytes `text` of the answer.
#[derive(Clone)]
struct WrittenRun {
    features: Range<usize>,
    text: Range<usize>,
}

impl WrittenRuns {
    /// Room for every lookup of `answer` from the start: grown lookup by lookup, the list
    /// cost a seed batch ~3.6 reallocations (~960 instructions).
    fn of(answer: &Answer) -> WrittenRuns {
        WrittenRuns(vec![None; answer.rows.lookups()])
    }

    /// Appends features `features` (positions in the result row) read from `lookup`'s stored
    /// row: a copy of their text when written already, else as `write` writes them.
    fn push(
        &mut self,
        out: &mut Vec<u8>,
        lookup: usize,
        features: Range<usize>,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        if let Some(run) = &self.0[lookup] {
            if run.features == features {
                out.extend_from_within(run.text.clone());
                return;
            }
        }
        let start = out.len();
        write(out);
        self.0[lookup].get_or_insert(WrittenRun {
            features,
            text: start..out.len(),
        });
    }
}

/// Appends a value as [`TectonJson`] writes it, the same bytes. The scalars are written here
/// directly: through serde_json's serializer (and, for an int64 or a timestamp, its scan of
/// the digits for characters to escape) a value cost ~100 instructions more, and a batch
/// writes hundreds. Strings and containers go through `TectonJson`.
fn push_value(out: &mut Vec<u8>, value: &Value) {
    match Scalar::of(value) {
        Some(scalar) => push_scalar(out, scalar),
        None => push_json(out, &TectonJson(value)),
    }
}

/// Appends a null, bool, int64, float or timestamp as [`TectonJson`] writes it.
fn push_scalar(out: &mut Vec<u8>, scalar: Scalar) {
    match scalar {
        Scalar::Null => out.extend_from_slice(b"null"),
        Scalar::Bool(true) => out.extend_from_slice(b"true"),
        Scalar::Bool(false) => out.extend_from_slice(b"false"),
        Scalar::Int64(i) => push_quoted(out, |out| {
            out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes())
        }),
        Scalar::Float32(f) => push_float(out, f64::from(f)),
        Scalar::Float64(f) => push_float(out, f),
        Scalar::Timestamp(micros) => push_quoted(out, |out| push_timestamp(out, micros)),
    }
}

/// Appends `"`, what `write` writes, `"`: for an int64's digits or a timestamp's (digits,
/// signs, `-:.TZ`), where a JSON string has nothing to escape.
fn push_quoted(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    out.push(b'"');
    write(out);
    out.push(b'"');
}

/// A float as [`TectonJson`] writes it: non-finite ones as strings, finite ones by serde_json's
/// own formatter (the digits serde_json writes).
fn push_float(out: &mut Vec<u8>, f: f64) {
    if f.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if f.is_infinite() {
        out.extend_from_slice(if f > 0.0 {
            b"\"Infinity\""
        } else {
            b"\"-Infinity\""
        });
    } else {
        CompactFormatter
            .write_f64(out, f)
            .expect("writing into memory cannot fail");
    }
}

/// Appends a stored value's JSON from its encoded bytes, as [`push_value`] writes the value
/// decoded. A scalar (most stored values) is read in place, not through `read`.
fn push_encoded(out: &mut Vec<u8>, encoded: EncodedValue) {
    if let Some(scalar) = encoded.scalar() {
        return push_scalar(out, scalar);
    }
    if let Some(text) = encoded.string_bytes() {
        return push_string(out, text);
    }
    match encoded.read() {
        row::ValueRef::Scalar(scalar) => push_scalar(out, scalar),
        row::ValueRef::String(s) => push_json(out, s),
        row::ValueRef::Array(items) | row::ValueRef::Struct(items) => {
            out.push(b'[');
            for (i, item) in items.enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_encoded(out, item);
            }
            out.push(b']');
        }
        row::ValueRef::Map(entries) => {
            out.push(b'{');
            for (i, (key, value)) in entries.enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json(out, key);
                out.push(b':');
                push_encoded(out, value);
            }
            out.push(b'}');
        }
    }
}

/// Appends UTF-8 `text` as a JSON string, escaped as serde_json escapes a `str` (`"`, `\`
/// and the control characters; the same bytes [`push_json`] writes): a stored string's bytes
/// are written without being checked as UTF-8 again.
fn push_string(out: &mut Vec<u8>, text: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    // Most stored strings have nothing to escape: tested a word at a time and copied whole
    // (the loop below took ~5 instructions a byte, ~7k a plain batch of ten random keys).
    if !needs_escape(text) {
        out.extend_from_slice(text);
        out.push(b'"');
        return;
    }
    let mut plain = 0;
    for (i, &byte) in text.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&text[plain..i]);
        out.extend_from_slice(escape);
        plain = i + 1;
    }
    out.extend_from_slice(&text[plain..]);
    out.push(b'"');
}

/// Whether `text` holds a byte JSON escapes (`"`, `\`, a control character), tested in words
/// of its own bytes: two overlapping ones from four bytes on, one of its (repeated) bytes
/// below, so that no padding byte is ever tested.
fn needs_escape(text: &[u8]) -> bool {
    let word = |at: usize| u64::from_le_bytes(text[at..at + 8].try_into().expect("eight"));
    let half = |at: usize| u32::from_le_bytes(text[at..at + 4].try_into().expect("four"));
    let stops = |word: u64| json_stops(word) != 0;
    match text.len() {
        0 => false,
        n @ 1..4 => {
            let packed = u32::from_le_bytes([text[0], text[n / 2], text[n - 1], text[0]]);
            stops(u64::from(packed) | u64::from(packed) << 32)
        }
        n @ 4..8 => stops(u64::from(half(0)) | u64::from(half(n - 4)) << 32),
        n => {
            let mut chunks = text.chunks_exact(8);
            chunks.any(|chunk| stops(u64::from_le_bytes(chunk.try_into().expect("eight"))))
                || (!chunks.remainder().is_empty() && stops(word(n - 8)))
        }
    }
}

/// Appends the `metadata.features` array; `push_status(out, i)` writes feature i's status
/// (a string, or an array for a batch) and `effective_time(i)` gives its effective time.
fn push_feature_metadata(
    out: &mut Vec<u8>,
    features: &[FeatureWire],
    includes: Includes,
    effective_time: impl Fn(usize) -> Option<Micros>,
    mut push_status: impl FnMut(&mut Vec<u8>, usize),
) {
    out.extend_from_slice(b"\"features\":[");
    for (i, feature) in features.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut separator = b'{';
        let mut field = |out: &mut Vec<u8>, key: &[u8]| {
            out.push(separator);
            separator = b',';
            out.extend_from_slice(key);
        };
        if includes.names {
            field(out, b"\"name\":");
            out.extend_from_slice(feature.name.as_bytes());
        }
        if includes.effective_times {
            if let Some(time) = effective_time(i) {
                field(out, b"\"effectiveTime\":");
                push_quoted(out, |out| push_timestamp(out, time));
            }
        }
        if includes.data_types {
            field(out, b"\"dataType\":");
            out.extend_from_slice(feature.data_type.as_bytes());
        }
        if includes.serving_status {
            field(out, b"\"status\":");
            push_status(out, i);
        }
        if includes.descriptions {
            if let Some(description) = &feature.description {
                field(out, b"\"description\":");
                out.extend_from_slice(description.as_bytes());
            }
        }
        if includes.tags {
            if let Some(tags) = &feature.tags {
                field(out, b"\"tags\":");
                out.extend_from_slice(tags.as_bytes());
            }
        }
        if separator == b'{' {
            out.push(b'{');
        }
        out.push(b'}');
    }
    out.push(b']');
}

/// Appends `"partialResults":true` to the metadata object when some stored features were not
/// read (the latency budget or the store's response-size limit).
fn push_partial_results(out: &mut Vec<u8>, answer: &Answer, includes: Includes) {
    if answer.partial.is_some() {
        if includes.any_per_feature() || includes.slo_info {
            out.push(b',');
        }
        out.extend_from_slice(b"\"partialResults\":true");
    }
}

/// Encodes a single-row answer.
pub fn get_features_response(
    catalog: &WireCatalog,
    service: &FeatureService,
    answer: &Answer,
    options: Option<MetadataOptions>,
    timing: Timing,
) -> Vec<u8> {
    let includes = Includes::from(options);
    let vector = &answer.vectors[0];
    let wire = catalog.service(service);
    // Room for the default metadata and short values: growing the answer cost a copy of it.
    let mut out =
        Vec::with_capacity(128 + wire.default_metadata.len() + vector.features.len() * 32);
    out.extend_from_slice(b"{\"result\":");
    push_values(&mut out, &vector.features, answer, None);
    if includes.any_per_feature() || includes.slo_info || answer.partial.is_some() {
        out.extend_from_slice(b",\"metadata\":{");
        if includes.any_per_feature() {
            wire.push_metadata(
                &mut out,
                includes,
                |i| vector.features[i].effective_time,
                |out, i| push_json(out, &vector.features[i].status.tecton_name()),
            );
        }
        if includes.slo_info {
            if includes.any_per_feature() {
                out.push(b',');
            }
            out.extend_from_slice(b"\"sloInfo\":");
            push_json(&mut out, &SloInfo::of(timing, true));
        }
        push_partial_results(&mut out, answer, includes);
        out.push(b'}');
    }
    out.push(b'}');
    out
}

/// Encodes a batch answer: statuses per row, one effective time per feature (the latest).
pub fn get_features_batch_response(
    catalog: &WireCatalog,
    service: &FeatureService,
    answer: &Answer,
    options: Option<MetadataOptions>,
    timing: Timing,
) -> Vec<u8> {
    let includes = Includes::from(options);
    let wire = catalog.service(service);
    let mut out = Vec::with_capacity(128 + wire.features.len() * (96 + 16 * answer.vectors.len()));
    push_batch_results(&mut out, answer);
    if includes.any_per_feature() || includes.slo_info || answer.partial.is_some() {
        out.extend_from_slice(b",\"metadata\":{");
        if includes.any_per_feature() {
            let latest = |i: usize| {
                answer
                    .vectors
                    .iter()
                    .filter_map(|v| v.features[i].effective_time)
                    .max()
            };
            wire.push_metadata(&mut out, includes, latest, |out, i| {
                let statuses: Vec<&str> = answer
                    .vectors
                    .iter()
                    .map(|v| v.features[i].status.tecton_name())
                    .collect();
                push_json(out, &statuses);
            });
        }
        if includes.slo_info {
            if includes.any_per_feature() {
                out.push(b',');
            }
            let per_row: Vec<SloInfo> = answer
                .vectors
                .iter()
                .map(|vector| SloInfo::of(timing.of_row(vector), true))
                .collect();
            out.extend_from_slice(b"\"sloInfo\":");
            push_json(&mut out, &per_row);
            out.extend_from_slice(b",\"batchSloInfo\":");
            push_json(&mut out, &SloInfo::of(timing, false));
        }
        push_partial_results(&mut out, answer, includes);
        out.push(b'}');
    }
    out.push(b'}');
    out
}

/// Opens a batch answer with `{"result":[...]`, its rows in request order.
fn push_batch_results(out: &mut Vec<u8>, answer: &Answer) {
    out.extend_from_slice(b"{\"result\":[");
    let mut written = WrittenRuns::of(answer);
    for (row, vector) in answer.vectors.iter().enumerate() {
        if row > 0 {
            out.push(b',');
        }
        push_values(out, &vector.features, answer, Some(&mut written));
    }
    out.push(b']');
}

/// An input key as Metadata lists it, with the legacy `type` beside `dataType`.
fn key_json(key: &crate::registry::Field) -> Json {
    let data_type = data_type_json(&key.data_type, true);
    json!({"name": key.name, "dataType": data_type, "type": data_type["type"]})
}

/// The Metadata endpoint's answer: input join keys and the output schema in response order.
pub fn metadata_response(catalog: &WireCatalog, service: &FeatureService) -> Json {
    let input_join_keys: Vec<Json> = service.input_join_keys.iter().map(key_json).collect();
    let feature_values: Vec<Json> = catalog
        .features(service)
        .iter()
        .map(|feature| {
            let name: Json =
                serde_json::from_str(&feature.name).expect("catalog names are JSON strings");
            let data_type: Json =
                serde_json::from_str(&feature.data_type).expect("catalog types are JSON");
            json!({"name": name, "dataType": data_type})
        })
        .collect();
    let mut metadata = json!({
        "featureServiceType": "DEFAULT",
        "inputJoinKeys": input_join_keys,
        "featureValues": feature_values,
    });
    if !service.request_context_keys.is_empty() {
        metadata["inputRequestContextKeys"] =
            service.request_context_keys.iter().map(key_json).collect();
    }
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(
        store: Duration,
        store_bytes: usize,
        partial: Option<Partial>,
    ) -> (bool, Vec<&'static str>) {
        let timing = Timing {
            server: store + Duration::from_millis(1),
            store,
            store_bytes,
            partial,
        };
        let info = SloInfo::of(timing, true);
        (info.slo_eligible, info.slo_ineligibility_reasons)
    }

    #[test]
    fn values_are_written_as_tecton_json_writes_them_stored_or_not() {
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int64(-712),
            Value::Int64(i64::MIN),
            Value::Float32(0.1),
            Value::Float32(f32::INFINITY),
            Value::Float64(f64::NAN),
            Value::Float64(f64::NEG_INFINITY),
            Value::Float64(1.5e300),
            Value::Float64(-0.0),
            Value::Float64(3.0),
            Value::String("quote \" and \u{e9}\n".into()),
            Value::Timestamp(1_642_239_000_123_456),
            Value::Timestamp(-62_135_596_800_000_000),
            Value::Timestamp(300_000_000_000_000_000),
            Value::Array(vec![]),
            Value::Array(vec![Value::Float32(2.5), Value::Null]),
            Value::Struct(vec![Value::Float64(48.8), Value::Int64(2)]),
            Value::Map(vec![]),
            Value::Map(vec![
                ("b\"".into(), Value::Array(vec![Value::Int64(1)])),
                ("a".into(), Value::Float64(f64::INFINITY)),
            ]),
        ];
        let mut row = Vec::new();
        row::encode_row(&values, &mut row);
        let mut spans = Vec::new();
        row::split_row(&row, 0, &mut spans).unwrap();
        for (value, span) in values.iter().zip(spans) {
            let (mut stored, mut decoded, mut serde) = (Vec::new(), Vec::new(), Vec::new());
            push_encoded(&mut stored, EncodedValue::in_row(&row, span));
            push_value(&mut decoded, value);
            push_json(&mut serde, &TectonJson(value));
            let serde = String::from_utf8(serde).unwrap();
            assert_eq!(String::from_utf8(stored).unwrap(), serde);
            assert_eq!(String::from_utf8(decoded).unwrap(), serde);
        }
    }

    /// `text` as `push_string` writes it from its bytes.
    fn written_string(text: &str) -> String {
        let mut out = Vec::new();
        push_string(&mut out, text.as_bytes());
        String::from_utf8(out).unwrap()
    }

    /// A stored string is written from its bytes as serde_json writes the `str`: every ASCII
    /// character (the controls among them), and text past ASCII.
    #[test]
    fn stored_strings_are_escaped_as_serde_json_escapes_them() {
        let every_ascii: String = (0..=0x7f_u8).map(char::from).collect();
        for text in [
            every_ascii.as_str(),
            "",
            "\u{e9}\u{2028}\u{1f600} \\\"\u{0}\u{7f}",
        ] {
            assert_eq!(written_string(text), serde_json::to_string(text).unwrap());
        }
    }

    proptest::proptest! {
        /// The word tests find a byte to escape wherever it is, as a byte at a time would.
        #[test]
        fn strings_needing_an_escape_are_found_as_byte_tests_find_them(
            text in proptest::collection::vec(
                proptest::prop_oneof![
                    12 => 0x20u8..=0xff,
                    1 => proptest::strategy::Just(b'"'),
                    1 => proptest::strategy::Just(b'\\'),
                    1 => 0u8..0x20,
                ],
                0..40,
            )
        ) {
            let byte_test = text.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20);
            proptest::prop_assert_eq!(needs_escape(&text), byte_test);
        }

        #[test]
        fn any_stored_string_is_written_as_serde_json_writes_it(text in ".*") {
            proptest::prop_assert_eq!(written_string(&text), serde_json::to_string(&text).unwrap());
        }
    }

    /// Result rows that read the same stored row copy its features' text: the batch's
    /// `result` is each row written on its own, whatever the runs and repeats.
    #[test]
    fn a_batch_writes_repeated_stored_rows_as_each_row_alone() {
        use crate::serving::{ServingStatus, StoredRows};
        use crate::store::StoredRow;
        let stored = [
            vec![Value::Float64(0.1), Value::Float64(229.047), Value::Null],
            vec![
                Value::Float64(-3.5),
                Value::String("x".into()),
                Value::Int64(7),
            ],
        ];
        let mut rows = Vec::new();
        let mut spans = Vec::new();
        // Spans of the answer's one buffer of stored rows, which holds them back to back.
        let mut at = 0;
        for values in &stored {
            let mut payload = Vec::new();
            row::encode_row(values, &mut payload);
            let mut row_spans = Vec::new();
            row::split_row(&payload, 0, &mut row_spans).unwrap();
            let shifted = row_spans
                .into_iter()
                .map(|span| span.start + at..span.end + at);
            spans.push(shifted.collect::<Vec<_>>());
            at += payload.len();
            rows.push(Some(StoredRow {
                event_time: 0,
                payload,
            }));
        }
        let feature = |value| ServedFeature {
            value,
            status: ServingStatus::Present,
            effective_time: None,
        };
        let at = |lookup: usize, index: usize| {
            feature(ServedValue::Stored {
                lookup,
                span: spans[lookup][index].clone(),
            })
        };
        let scalar = |value| feature(ServedValue::Scalar(value));
        // Lookup 0 read at positions 1..3 and 4; lookup 1 at 0 and 3 (two runs of one row);
        // computed values at 3 and 6.
        let vector = |first: usize, second: usize| FeatureVector {
            features: vec![
                at(second, 2),
                at(first, 0),
                at(first, 1),
                scalar(Scalar::Float64(
                    f64::from(u32::try_from(first).unwrap()) + 0.25,
                )),
                at(first, 2),
                at(second, 0),
                feature(ServedValue::Computed(first)),
            ],
            store_latency: Duration::ZERO,
            store_bytes: 0,
        };
        let answer = Answer {
            vectors: vec![
                vector(0, 1),
                vector(1, 0),
                vector(0, 1),
                vector(0, 0),
                vector(1, 0),
            ],
            rows: StoredRows::from(rows),
            computed: vec![
                Value::String("x\"y".into()),
                Value::Array(vec![Value::Int64(1)]),
            ],
            store_latency: Duration::ZERO,
            store_bytes: 0,
            partial: None,
        };
        let mut batch = Vec::new();
        push_batch_results(&mut batch, &answer);
        let mut alone = b"{\"result\":[".to_vec();
        for (i, vector) in answer.vectors.iter().enumerate() {
            if i > 0 {
                alone.push(b',');
            }
            push_values(&mut alone, &vector.features, &answer, None);
        }
        alone.push(b']');
        assert_eq!(
            String::from_utf8(batch).unwrap(),
            String::from_utf8(alone).unwrap()
        );
    }

    #[test]
    fn request_fields_read_as_json_reads_them_and_borrow_plain_strings() {
        let text = r#"{"plain": "user_1", "escaped": "a\"b\u00e9", "int": -3, "big": 18446744073709551615,
            "float": 1.5e3, "null": null, "bool": true, "array": [1, "x", {"k": [null]}],
            "object": {"z": 1, "a": "b"}, "plain": "again"}"#;
        let fields: JsonFields = serde_json::from_str(text).unwrap();
        let expected: Map<String, Json> = serde_json::from_str(text).unwrap();
        let names: Vec<&str> = fields.0.iter().map(|(name, _)| name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "plain", "escaped", "int", "big", "float", "null", "bool", "array", "object",
                "plain"
            ]
        );
        for (name, value) in &fields.0[1..] {
            assert_eq!(*value.to_json(), expected[name.as_ref()], "{name}");
        }
        assert_eq!(fields.0[0].1, RequestValue::String("user_1".into()));
        assert!(matches!(
            &fields.0[0].1,
            RequestValue::String(Cow::Borrowed("user_1"))
        ));
        assert!(matches!(&fields.0[1].1, RequestValue::String(Cow::Owned(s)) if s == "a\"b\u{e9}"));
        assert!(fields.0[5].1.is_null());
        // Refusals word the types as `String` and `serde_json::Value` did.
        let error = serde_json::from_str::<GetFeaturesParams>(r#"{"workspaceName": 5}"#);
        assert!(error
            .unwrap_err()
            .to_string()
            .starts_with("invalid type: integer `5`, expected a string"),);
        // The params and a batch row are named as they were before serde read them through
        // `ParamsAsSent`.
        let not_params = serde_json::from_str::<GetFeaturesParams>("5").unwrap_err();
        assert!(not_params
            .to_string()
            .contains("expected struct GetFeaturesParams"));
        let not_a_row = serde_json::from_str::<GetFeaturesParams>(r#"{"requestData": [1]}"#);
        assert!(not_a_row
            .unwrap_err()
            .to_string()
            .starts_with("invalid type: integer `1`, expected struct BatchRow at"));
        let out_of_range = serde_json::from_str::<JsonFields>(r#"{"x": 1e999}"#).unwrap_err();
        let as_before = serde_json::from_str::<Json>(r#"{"x": 1e999}"#).unwrap_err();
        assert_eq!(out_of_range.to_string(), as_before.to_string());
    }

    #[test]
    fn slo_eligibility_follows_tectons_size_and_store_latency_rules() {
        let fast = Duration::from_millis(1);
        let slow = Duration::from_millis(25);
        assert_eq!(
            reasons(fast, 2 << 20, None),
            (true, vec![]),
            "2 MiB is within"
        );
        let size = "DYNAMODB_RESPONSE_SIZE_LIMIT_EXCEEDED";
        let latency = "REDIS_LATENCY_LIMIT_EXCEEDED";
        assert_eq!(reasons(fast, (2 << 20) + 1, None), (false, vec![size]));
        assert_eq!(
            reasons(fast, 10, Some(Partial::ResponseSize)),
            (false, vec![size])
        );
        assert_eq!(reasons(slow, 10, None), (false, vec![latency]));
        assert_eq!(
            reasons(Duration::ZERO, 0, Some(Partial::LatencyBudget)),
            (false, vec![latency])
        );
        assert_eq!(reasons(slow, 3 << 20, None), (false, vec![size, latency]));
    }
}

//! Tecton Feature Service JSON: requests accept camelCase and snake_case at every level and
//! `null` anywhere; responses are camelCase, omit unset fields, and encode values per Tecton.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use crate::registry::time::{format_timestamp, Micros};
use crate::registry::types::DataType;
use crate::registry::value::TectonJson;
use crate::registry::{FeatureService, Registry};
use crate::serving::{Answer, Locator};

/// `{"params": {...}}`, the envelope of every Feature Service request.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub params: T,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetFeaturesParams {
    #[serde(alias = "feature_service_id")]
    pub feature_service_id: Option<String>,
    #[serde(alias = "feature_service_name")]
    pub feature_service_name: Option<String>,
    #[serde(alias = "workspace_name")]
    pub workspace_name: Option<String>,
    #[serde(alias = "join_key_map")]
    pub join_key_map: Option<Map<String, Json>>,
    #[serde(alias = "request_context_map")]
    pub request_context_map: Option<Map<String, Json>>,
    #[serde(alias = "metadata_options")]
    pub metadata_options: Option<MetadataOptions>,
    #[serde(alias = "request_options")]
    pub request_options: Option<Map<String, Json>>,
    #[serde(alias = "allow_partial_results")]
    pub allow_partial_results: Option<bool>,
    /// Batch requests only.
    #[serde(alias = "request_data")]
    pub request_data: Option<Vec<Option<BatchRow>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRow {
    #[serde(alias = "join_key_map")]
    pub join_key_map: Option<Map<String, Json>>,
    #[serde(alias = "request_context_map")]
    pub request_context_map: Option<Map<String, Json>>,
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
#[derive(Debug, Clone, Copy)]
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
    fn any_per_feature(&self) -> bool {
        self.names
            || self.effective_times
            || self.data_types
            || self.serving_status
            || self.descriptions
            || self.tags
    }
}

impl GetFeaturesParams {
    /// The locator, with empty strings read as unset (some clients send `""`).
    pub fn locator(&self, path: Option<(&str, &str)>) -> Locator {
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        match path {
            Some((workspace, service)) => Locator {
                workspace: Some(workspace.to_string()),
                service_name: Some(service.to_string()),
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

/// The static facts of each feature a service returns, in response order.
struct FeatureFacts<'r> {
    name: String,
    data_type: &'r DataType,
    description: Option<&'r str>,
    tags: &'r std::collections::BTreeMap<String, String>,
}

fn feature_facts<'r>(registry: &'r Registry, service: &'r FeatureService) -> Vec<FeatureFacts<'r>> {
    let mut facts = Vec::with_capacity(service.n_features);
    for item in &service.items {
        let view = registry.view(item.view);
        for index in &item.features {
            let feature = &view.features[*index];
            facts.push(FeatureFacts {
                name: format!("{}.{}", item.namespace, feature.name),
                data_type: &feature.data_type,
                description: feature.description.as_deref(),
                tags: &feature.tags,
            });
        }
    }
    facts
}

/// Timing of one request, for `sloInfo`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub server: Duration,
    pub store: Duration,
    pub store_bytes: usize,
}

fn slo_info(timing: Timing) -> Json {
    json!({
        "sloEligible": true,
        "sloServerTimeSeconds": timing.server.as_secs_f64(),
        "serverTimeSeconds": timing.server.as_secs_f64(),
        "storeMaxLatency": timing.store.as_secs_f64(),
        "storeResponseSizeBytes": timing.store_bytes,
    })
}

#[derive(Serialize)]
struct FeaturesResult<'a> {
    features: Vec<TectonJson<'a>>,
}

#[derive(Serialize)]
struct GetFeaturesResponse<'a> {
    result: FeaturesResult<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Json>,
}

#[derive(Serialize)]
struct GetFeaturesBatchResponse<'a> {
    result: Vec<FeaturesResult<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Json>,
}

/// The metadata entry of one feature; `statuses` is one status, or one per batch row.
fn feature_metadata(
    facts: &FeatureFacts,
    includes: Includes,
    effective_time: Option<Micros>,
    statuses: Json,
) -> Json {
    let mut entry = Map::new();
    if includes.names {
        entry.insert("name".into(), Json::String(facts.name.clone()));
    }
    if includes.effective_times {
        if let Some(time) = effective_time {
            entry.insert("effectiveTime".into(), Json::String(format_timestamp(time)));
        }
    }
    if includes.data_types {
        entry.insert("dataType".into(), data_type_json(facts.data_type, true));
    }
    if includes.serving_status {
        entry.insert("status".into(), statuses);
    }
    if includes.descriptions {
        if let Some(description) = facts.description {
            entry.insert("description".into(), Json::String(description.to_string()));
        }
    }
    if includes.tags && !facts.tags.is_empty() {
        entry.insert("tags".into(), json!(facts.tags));
    }
    Json::Object(entry)
}

/// Encodes a single-row answer.
pub fn get_features_response(
    registry: &Registry,
    service: &FeatureService,
    answer: &Answer,
    options: Option<MetadataOptions>,
    timing: Timing,
) -> Vec<u8> {
    let includes = Includes::from(options);
    let vector = &answer.vectors[0];
    let mut metadata = Map::new();
    if includes.any_per_feature() {
        let features: Vec<Json> = feature_facts(registry, service)
            .iter()
            .enumerate()
            .map(|(i, facts)| {
                feature_metadata(
                    facts,
                    includes,
                    vector.effective_times[i],
                    Json::String(vector.statuses[i].as_str().into()),
                )
            })
            .collect();
        metadata.insert("features".into(), Json::Array(features));
    }
    if includes.slo_info {
        metadata.insert("sloInfo".into(), slo_info(timing));
    }
    let response = GetFeaturesResponse {
        result: FeaturesResult {
            features: vector.values.iter().map(TectonJson).collect(),
        },
        metadata: (!metadata.is_empty()).then_some(Json::Object(metadata)),
    };
    serde_json::to_vec(&response).expect("feature responses always serialise")
}

/// Encodes a batch answer: statuses per row, one effective time per feature (the latest).
pub fn get_features_batch_response(
    registry: &Registry,
    service: &FeatureService,
    answer: &Answer,
    options: Option<MetadataOptions>,
    timing: Timing,
) -> Vec<u8> {
    let includes = Includes::from(options);
    let mut metadata = Map::new();
    if includes.any_per_feature() {
        let features: Vec<Json> = feature_facts(registry, service)
            .iter()
            .enumerate()
            .map(|(i, facts)| {
                let latest = answer
                    .vectors
                    .iter()
                    .filter_map(|v| v.effective_times[i])
                    .max();
                let statuses = answer
                    .vectors
                    .iter()
                    .map(|v| Json::String(v.statuses[i].as_str().into()))
                    .collect();
                feature_metadata(facts, includes, latest, Json::Array(statuses))
            })
            .collect();
        metadata.insert("features".into(), Json::Array(features));
    }
    if includes.slo_info {
        metadata.insert(
            "sloInfo".into(),
            Json::Array(answer.vectors.iter().map(|_| slo_info(timing)).collect()),
        );
        let mut batch = slo_info(timing);
        if let Some(object) = batch.as_object_mut() {
            object.remove("storeResponseSizeBytes");
        }
        metadata.insert("batchSloInfo".into(), batch);
    }
    let response = GetFeaturesBatchResponse {
        result: answer
            .vectors
            .iter()
            .map(|vector| FeaturesResult {
                features: vector.values.iter().map(TectonJson).collect(),
            })
            .collect(),
        metadata: (!metadata.is_empty()).then_some(Json::Object(metadata)),
    };
    serde_json::to_vec(&response).expect("feature responses always serialise")
}

/// The Metadata endpoint's answer: input join keys and the output schema in response order.
pub fn metadata_response(registry: &Registry, service: &FeatureService) -> Json {
    let input_join_keys: Vec<Json> = service
        .input_join_keys
        .iter()
        .map(|key| {
            let data_type = data_type_json(&key.data_type, true);
            json!({"name": key.name, "dataType": data_type, "type": data_type["type"]})
        })
        .collect();
    let feature_values: Vec<Json> = feature_facts(registry, service)
        .iter()
        .map(|facts| json!({"name": facts.name, "dataType": data_type_json(facts.data_type, true)}))
        .collect();
    json!({
        "featureServiceType": "DEFAULT",
        "inputJoinKeys": input_join_keys,
        "featureValues": feature_values,
    })
}

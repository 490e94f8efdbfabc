//! The read path: resolve a feature service, turn request join keys into store lookups, fan out
//! once over the shards for a whole batch, and assemble typed feature vectors with their serving
//! status and effective times. Protocol-free: `http` turns the result into Tecton's JSON.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value as Json;

use crate::registry::aggregation::{Function, LeadingEdge};
use crate::registry::time::Micros;
use crate::registry::value::Value;
use crate::registry::{FeatureService, Registry};
use crate::store::key::encode_key;
use crate::store::row::decode_row;
use crate::store::{Lookup, ReadContext, Router, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    #[error("Exactly one of featureServiceName and featureServiceId must be set; got both")]
    BothLocators,
    #[error("Exactly one of featureServiceName and featureServiceId must be set; got neither")]
    NoLocator,
    #[error("workspaceName is required with featureServiceName")]
    MissingWorkspace,
    #[error("Unable to query FeatureService `{service}` for workspace `{workspace}`. Newly created feature services may take up to 60 seconds to query. Also, ensure that the workspace is a \"live\" workspace.")]
    UnknownService { service: String, workspace: String },
    #[error("FeatureService id `{0}` does not match any feature service")]
    UnknownServiceId(String),
    #[error("Missing required join key: {0}")]
    MissingJoinKey(String),
    #[error("Invalid value for join key {name}: {problem}")]
    InvalidJoinKey { name: String, problem: String },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("stored row of feature view `{0}` could not be decoded")]
    CorruptRow(String),
}

/// How a request names its feature service.
#[derive(Debug, Default, Clone)]
pub struct Locator {
    pub workspace: Option<String>,
    pub service_name: Option<String>,
    pub service_id: Option<String>,
}

/// Whether a value was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingStatus {
    Present,
    /// No row for the key, a null join key, or the row is older than the view's ttl.
    MissingData,
}

impl ServingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServingStatus::Present => "PRESENT",
            ServingStatus::MissingData => "MISSING_DATA",
        }
    }
}

/// One answered request row: values, statuses and effective times parallel to the service's
/// features.
#[derive(Debug)]
pub struct FeatureVector {
    pub values: Vec<Value>,
    pub statuses: Vec<ServingStatus>,
    pub effective_times: Vec<Option<Micros>>,
}

/// A whole answer, with the store's share of the time.
#[derive(Debug)]
pub struct Answer {
    pub vectors: Vec<FeatureVector>,
    pub store_latency: Duration,
    pub store_bytes: usize,
}

/// How a read is made: when, where aggregation windows end, and Tecton's
/// `coerceNullCountsToZero`.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    pub now: Micros,
    pub leading_edge: Option<LeadingEdge>,
    pub coerce_null_counts_to_zero: bool,
}

impl ReadOptions {
    pub fn at(now: Micros) -> ReadOptions {
        ReadOptions {
            now,
            leading_edge: None,
            coerce_null_counts_to_zero: false,
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
        workspace: locator.workspace.clone().unwrap_or_default(),
    };
    let service = match (&locator.service_name, &locator.service_id) {
        (Some(_), Some(_)) => return Err(ServingError::BothLocators),
        (None, None) => return Err(ServingError::NoLocator),
        (Some(name), None) => {
            let workspace = locator
                .workspace
                .as_deref()
                .ok_or(ServingError::MissingWorkspace)?;
            registry
                .workspace(workspace)
                .and_then(|ws| ws.services.get(name))
                .ok_or_else(|| unknown(name))?
        }
        (None, Some(id)) => {
            let service = registry
                .service_by_id(id)
                .ok_or_else(|| ServingError::UnknownServiceId(id.clone()))?;
            if locator
                .workspace
                .as_deref()
                .is_some_and(|ws| ws != service.workspace)
            {
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

/// Reads the features of `service` for every request row (a map of join-key name to JSON value,
/// as the client sent it). All rows go to the store in one fan-out.
pub async fn get_features(
    registry: &Registry,
    router: &Router,
    service: &FeatureService,
    requests: &[&serde_json::Map<String, Json>],
    options: ReadOptions,
) -> Result<Answer, ServingError> {
    let now = options.now;
    // Per request row, per service item: the lookup index, or None when a join key is null.
    let mut lookup_of: Vec<Vec<Option<usize>>> = Vec::with_capacity(requests.len());
    let mut lookups: Vec<Lookup> = Vec::new();
    let mut dedup: HashMap<(u32, Vec<u8>), usize> = HashMap::new();
    for join_key_map in requests {
        let inputs = parse_join_keys(service, join_key_map)?;
        let mut row_lookups = Vec::with_capacity(service.items.len());
        for item in &service.items {
            let key_values: Option<Vec<Value>> =
                item.key_inputs.iter().map(|i| inputs[*i].clone()).collect();
            row_lookups.push(key_values.map(|values| {
                let mut key = Vec::new();
                encode_key(&values, &mut key);
                *dedup.entry((item.view, key.clone())).or_insert_with(|| {
                    lookups.push(Lookup {
                        view: item.view,
                        key,
                    });
                    lookups.len() - 1
                })
            }));
        }
        lookup_of.push(row_lookups);
    }
    let read = if lookups.is_empty() {
        crate::store::ReadResult {
            rows: Vec::new(),
            max_shard_latency: Duration::ZERO,
            bytes_read: 0,
        }
    } else {
        router
            .read(
                lookups,
                ReadContext {
                    now,
                    leading_edge: options.leading_edge,
                },
            )
            .await?
    };

    let mut vectors = Vec::with_capacity(requests.len());
    for row_lookups in &lookup_of {
        let mut vector = FeatureVector {
            values: Vec::with_capacity(service.n_features),
            statuses: Vec::with_capacity(service.n_features),
            effective_times: Vec::with_capacity(service.n_features),
        };
        for (item, lookup) in service.items.iter().zip(row_lookups) {
            let view = registry.view(item.view);
            let stored = lookup.and_then(|i| read.rows[i].as_ref());
            let fresh = stored.filter(|row| view.ttl.is_none_or(|ttl| now - row.event_time < ttl));
            match fresh {
                Some(row) => {
                    let mut values = decode_row(&row.payload)
                        .map_err(|_| ServingError::CorruptRow(view.name.clone()))?;
                    for feature_index in &item.features {
                        let mut value = values
                            .get_mut(*feature_index)
                            .map(std::mem::take)
                            .unwrap_or(Value::Null);
                        let mut status = ServingStatus::Present;
                        if let Some(spec) = &view.aggregation {
                            // An empty window is missing data; counts may be asked to read 0.
                            let is_count =
                                spec.aggregates[*feature_index].function == Function::Count;
                            if value.is_null() && is_count && options.coerce_null_counts_to_zero {
                                value = Value::Int64(0);
                            } else if value.is_null() {
                                status = ServingStatus::MissingData;
                            }
                        }
                        vector.values.push(value);
                        vector.statuses.push(status);
                        vector.effective_times.push(Some(row.event_time));
                    }
                }
                None => {
                    for _ in &item.features {
                        vector.values.push(Value::Null);
                        vector.statuses.push(ServingStatus::MissingData);
                        vector.effective_times.push(None);
                    }
                }
            }
        }
        vectors.push(vector);
    }
    Ok(Answer {
        vectors,
        store_latency: read.max_shard_latency,
        store_bytes: read.bytes_read,
    })
}

/// Reads the service's input join keys from a request's map; `None` for a null value.
/// Extra keys are ignored (Tecton's own samples send keys a service does not use).
fn parse_join_keys(
    service: &FeatureService,
    map: &serde_json::Map<String, Json>,
) -> Result<Vec<Option<Value>>, ServingError> {
    service
        .input_join_keys
        .iter()
        .map(|key| {
            let json = map
                .get(&key.name)
                .ok_or_else(|| ServingError::MissingJoinKey(key.name.clone()))?;
            match Value::from_json(json, &key.data_type) {
                Ok(Value::Null) => Ok(None),
                Ok(value) => Ok(Some(value)),
                Err(problem) => Err(ServingError::InvalidJoinKey {
                    name: key.name.clone(),
                    problem,
                }),
            }
        })
        .collect()
}

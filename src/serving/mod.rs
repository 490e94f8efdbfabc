//! The read path: resolve a feature service, turn request join keys into store lookups, fan out
//! once over the shards for a whole batch, and assemble typed feature vectors with their serving
//! status and effective times. Protocol-free: `http` turns the result into Tecton's JSON.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value as Json;

use crate::registry::aggregation::{Function, LeadingEdge};
use crate::registry::value::Value;
use crate::registry::{realtime, FeatureService, FeatureView, Registry, ViewId, ViewKind};
use crate::store::key::encode_key;
use crate::store::row::decode_row;
use crate::store::{Lookup, ReadContext, Router, StoreError, StoredRow};
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
    #[error("no live service `{service}` in workspace `{workspace}`")]
    UnknownService { service: String, workspace: String },
    #[error("no service with id `{0}`")]
    UnknownServiceId(String),
    #[error("join key `{0}` is missing")]
    MissingJoinKey(String),
    #[error("join key `{name}` is invalid: {problem}")]
    InvalidJoinKey { name: String, problem: String },
    #[error("request context key `{0}` is missing")]
    MissingRequestContext(String),
    #[error("request context key `{name}` is invalid: {problem}")]
    InvalidRequestContext { name: String, problem: String },
    #[error("request context key `{0}` is not expected")]
    UnexpectedRequestContext(String),
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

/// One request row: its join keys and request context, as the client sent them.
#[derive(Debug, Clone, Copy)]
pub struct RequestRow<'a> {
    pub join_keys: &'a serde_json::Map<String, Json>,
    pub request_context: &'a serde_json::Map<String, Json>,
}

/// A stored view's values for one request row: values, statuses and effective times of all
/// its features.
struct ViewAnswer {
    values: Vec<Value>,
    statuses: Vec<ServingStatus>,
    effective_time: Option<Micros>,
}

impl ViewAnswer {
    fn missing(view: &FeatureView) -> ViewAnswer {
        ViewAnswer {
            values: vec![Value::Null; view.features.len()],
            statuses: vec![ServingStatus::MissingData; view.features.len()],
            effective_time: None,
        }
    }

    /// Decodes a stored row (ttl applied; empty aggregation windows are missing data).
    fn of(
        view: &FeatureView,
        stored: Option<&StoredRow>,
        options: ReadOptions,
    ) -> Result<ViewAnswer, ServingError> {
        let Some(row) = stored.filter(|row| {
            view.ttl
                .is_none_or(|ttl| options.now - row.event_time < ttl)
        }) else {
            return Ok(ViewAnswer::missing(view));
        };
        let mut values =
            decode_row(&row.payload).map_err(|_| ServingError::CorruptRow(view.name.clone()))?;
        values.resize(view.features.len(), Value::Null);
        let mut statuses = vec![ServingStatus::Present; values.len()];
        if let Some(spec) = &view.aggregation {
            for ((value, status), aggregate) in values
                .iter_mut()
                .zip(statuses.iter_mut())
                .zip(&spec.aggregates)
            {
                // An empty window is missing data; counts may be asked to read 0.
                if value.is_null()
                    && aggregate.function == Function::Count
                    && options.coerce_null_counts_to_zero
                {
                    *value = Value::Int64(0);
                } else if value.is_null() {
                    *status = ServingStatus::MissingData;
                }
            }
        }
        Ok(ViewAnswer {
            values,
            statuses,
            effective_time: Some(row.event_time),
        })
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
    // Per request row: for each stored view needed, the lookup index (None: a null join key).
    let mut needed: Vec<HashMap<ViewId, Option<usize>>> = Vec::with_capacity(rows.len());
    let mut contexts: Vec<Vec<(String, Value)>> = Vec::with_capacity(rows.len());
    let mut lookups: Vec<Lookup> = Vec::new();
    let mut dedup: HashMap<(ViewId, Vec<u8>), usize> = HashMap::new();
    for row in rows {
        let inputs = parse_join_keys(service, row.join_keys)?;
        contexts.push(parse_request_context(service, row.request_context)?);
        let mut row_lookups = HashMap::new();
        for item in &service.items {
            let view = registry.view(item.view);
            let by_name: HashMap<&str, Option<&Value>> = view
                .join_keys
                .iter()
                .zip(&item.key_inputs)
                .map(|(key, input)| (key.name.as_str(), inputs[*input].as_ref()))
                .collect();
            let stored_views: Vec<ViewId> = match &view.kind {
                ViewKind::Realtime(spec) => spec.sources.iter().map(|(id, _)| *id).collect(),
                _ => vec![item.view],
            };
            for stored in stored_views {
                let key_values: Option<Vec<Value>> = registry
                    .view(stored)
                    .join_keys
                    .iter()
                    .map(|k| by_name.get(k.name.as_str()).copied().flatten().cloned())
                    .collect();
                let lookup = key_values.map(|values| {
                    let mut key = Vec::new();
                    encode_key(&values, &mut key);
                    *dedup.entry((stored, key.clone())).or_insert_with(|| {
                        lookups.push(Lookup { view: stored, key });
                        lookups.len() - 1
                    })
                });
                row_lookups.insert(stored, lookup);
            }
        }
        needed.push(row_lookups);
    }
    let read = if lookups.is_empty() {
        crate::store::ReadResult {
            rows: Vec::new(),
            max_shard_latency: Duration::ZERO,
            bytes_read: 0,
        }
    } else {
        router.read(
            &lookups,
            ReadContext {
                now: options.now,
                leading_edge: options.leading_edge,
            },
        )
    };

    let mut vectors = Vec::with_capacity(rows.len());
    for (row_lookups, context) in needed.iter().zip(&contexts) {
        let answer_of = |view: ViewId| {
            let stored = row_lookups
                .get(&view)
                .copied()
                .flatten()
                .and_then(|i| read.rows[i].as_ref());
            ViewAnswer::of(registry.view(view), stored, options)
        };
        let mut vector = FeatureVector {
            values: Vec::with_capacity(service.n_features),
            statuses: Vec::with_capacity(service.n_features),
            effective_times: Vec::with_capacity(service.n_features),
        };
        for item in &service.items {
            let view = registry.view(item.view);
            match &view.kind {
                ViewKind::Realtime(spec) => {
                    let request = realtime::map(
                        context
                            .iter()
                            .map(|(name, value)| (name.clone(), realtime::to_cel(value))),
                    );
                    let mut variables = vec![("request", request)];
                    for (source_id, source_name) in &spec.sources {
                        let source = registry.view(*source_id);
                        let answer = answer_of(*source_id)?;
                        let features = source
                            .features
                            .iter()
                            .zip(&answer.values)
                            .map(|(f, v)| (f.name.clone(), realtime::to_cel(v)));
                        variables.push((source_name.as_str(), realtime::map(features)));
                    }
                    for index in &item.features {
                        vector.values.push(realtime::evaluate(
                            &spec.programs[*index],
                            &variables,
                            &view.features[*index].data_type,
                        ));
                        vector.statuses.push(ServingStatus::Present);
                        vector.effective_times.push(None);
                    }
                }
                _ => {
                    let mut answer = answer_of(item.view)?;
                    for index in &item.features {
                        vector
                            .values
                            .push(std::mem::take(&mut answer.values[*index]));
                        vector.statuses.push(answer.statuses[*index]);
                        vector.effective_times.push(answer.effective_time);
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

/// Checks a row's request context against the service's realtime views' schemas: every field
/// present and of its type, no other top-level field. Services without realtime views ignore it.
fn parse_request_context(
    service: &FeatureService,
    map: &serde_json::Map<String, Json>,
) -> Result<Vec<(String, Value)>, ServingError> {
    if service.request_context_keys.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(extra) = map
        .keys()
        .find(|k| !service.request_context_keys.iter().any(|f| &f.name == *k))
    {
        return Err(ServingError::UnexpectedRequestContext(extra.clone()));
    }
    service
        .request_context_keys
        .iter()
        .map(|field| {
            let json = map
                .get(&field.name)
                .filter(|v| !v.is_null())
                .ok_or_else(|| ServingError::MissingRequestContext(field.name.clone()))?;
            let value = Value::from_json(json, &field.data_type).map_err(|problem| {
                ServingError::InvalidRequestContext {
                    name: field.name.clone(),
                    problem,
                }
            })?;
            Ok((field.name.clone(), value))
        })
        .collect()
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

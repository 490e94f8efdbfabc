//! What one logged row holds: the log's columns for a service (fixed columns, join keys, the
//! request context, then each feature's value, status and effective time), what the request
//! path captures of a sampled request (`LoggedRequest::capture`), and the rows the writer makes
//! of it (`LoggedRequest::into_rows`).

use serde_json::{Map, Value as Json};

use super::FeatureLogError;
use crate::registry::types::DataType;
use crate::registry::value::{TectonJson, Value};
use crate::registry::{FeatureService, Field, LoggingConfig, Registry};
use crate::serving::{field_of, Answer, FeatureVector, RequestRow, StoredRows};
use crate::time::Micros;

/// A log column. Its type is a scalar one: arrays, structs and maps are logged as strings
/// holding Tecton's JSON for them, and every cell is a scalar `Value` (or null).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
}

/// When the answer was logged.
pub const TIMESTAMP_COLUMN: &str = "timestamp";
/// The columns every log starts with, in order.
const FIXED_COLUMNS: [(&str, DataType); 5] = [
    (TIMESTAMP_COLUMN, DataType::Timestamp),
    ("request_id", DataType::String),
    ("workspace", DataType::String),
    ("service", DataType::String),
    ("principal", DataType::String),
];
const REQUEST_CONTEXT_COLUMN: &str = "request_context";

/// Whether a column holds timestamps by its name (JSON Lines files carry them as text).
pub fn is_timestamp_column(name: &str) -> bool {
    name == TIMESTAMP_COLUMN || name.ends_with("__effective_time")
}

/// A logging service's columns and settings.
#[derive(Debug)]
pub struct LogSchema {
    pub workspace: String,
    pub service: String,
    pub config: LoggingConfig,
    pub columns: Vec<Column>,
    /// The service's join keys and feature count when the schema was built.
    input_join_keys: Vec<Field>,
    n_features: usize,
}

impl LogSchema {
    /// Fixed columns, the input join keys, `request_context` (a JSON object, when logged), then
    /// per feature (Tecton's order) `<namespace>__<feature>`, `...__status`,
    /// `...__effective_time` (the last two when logged). Names that would clash are refused.
    pub fn of(
        registry: &Registry,
        service: &FeatureService,
        config: &LoggingConfig,
    ) -> Result<LogSchema, FeatureLogError> {
        let mut columns: Vec<Column> = FIXED_COLUMNS
            .iter()
            .map(|(name, kind)| Column {
                name: name.to_string(),
                data_type: kind.clone(),
            })
            .collect();
        for key in &service.input_join_keys {
            columns.push(Column {
                name: key.name.clone(),
                data_type: column_type(&key.data_type),
            });
        }
        if config.log_request_context {
            columns.push(Column {
                name: REQUEST_CONTEXT_COLUMN.to_string(),
                data_type: DataType::String,
            });
        }
        for item in &service.items {
            let view = registry.view(item.view);
            for index in &item.features {
                let feature = &view.features[*index];
                let name = format!("{}__{}", item.namespace, feature.name);
                columns.push(Column {
                    name: name.clone(),
                    data_type: column_type(&feature.data_type),
                });
                if config.log_statuses {
                    columns.push(Column {
                        name: format!("{name}__status"),
                        data_type: DataType::String,
                    });
                }
                if config.log_effective_times {
                    columns.push(Column {
                        name: format!("{name}__effective_time"),
                        data_type: DataType::Timestamp,
                    });
                }
            }
        }
        for (i, column) in columns.iter().enumerate() {
            if columns[..i].iter().any(|c| c.name == column.name) {
                return Err(FeatureLogError::ColumnClash {
                    workspace: service.workspace.clone(),
                    service: service.name.clone(),
                    column: column.name.clone(),
                });
            }
        }
        Ok(LogSchema {
            workspace: service.workspace.clone(),
            service: service.name.clone(),
            config: config.clone(),
            columns,
            input_join_keys: service.input_join_keys.clone(),
            n_features: service.n_features,
        })
    }

    /// True when `service` (as an apply may have changed it) still logs into these columns.
    pub fn fits(&self, service: &FeatureService) -> bool {
        service.logging.as_ref() == Some(&self.config)
            && service.input_join_keys == self.input_join_keys
            && service.n_features == self.n_features
    }
}

/// The column type of a feature or join key: itself if scalar, else a string.
fn column_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Array(_) | DataType::Struct(_) | DataType::Map(_) => DataType::String,
        scalar => scalar.clone(),
    }
}

/// Who asked, when, and under which request id.
pub struct Stamp<'a> {
    pub timestamp: Micros,
    pub request_id: &'a str,
    pub principal: &'a str,
}

/// What the request path hands the writer: only what it must copy (the keys, the kept request
/// context, who and when) and the answer's vectors and stored rows, moved. The writer makes the
/// rows ([`LoggedRequest::into_rows`], decoding stored values), so their allocations stay on its
/// thread.
pub struct LoggedRequest {
    timestamp: Micros,
    request_id: String,
    principal: String,
    rows: Vec<LoggedRow>,
    /// What the vectors' stored values point into.
    stored: StoredRows,
    /// The computed strings and containers the vectors' values name.
    computed: Vec<Value>,
}

struct LoggedRow {
    join_keys: Vec<Value>,
    request_context: Option<String>,
    vector: FeatureVector,
}

impl LoggedRequest {
    /// On the request path, once sampled.
    pub fn capture(
        schema: &LogSchema,
        service: &FeatureService,
        requests: &[RequestRow<'_>],
        answer: Answer,
        stamp: &Stamp<'_>,
    ) -> LoggedRequest {
        let config = &schema.config;
        let rows = requests
            .iter()
            .zip(answer.vectors)
            .map(|(request, vector)| LoggedRow {
                join_keys: service
                    .input_join_keys
                    .iter()
                    .map(|key| {
                        // Already read once by serving, so it parses; anything else is null.
                        let json = field_of(request.join_keys, &key.name);
                        json.and_then(|json| Value::from_json(&json.to_json(), &key.data_type).ok())
                            .map_or(Value::Null, flat)
                    })
                    .collect(),
                request_context: config.log_request_context.then(|| {
                    let kept: Map<String, Json> = request
                        .request_context
                        .iter()
                        .filter(|(name, _)| {
                            !config
                                .exclude_request_context_fields
                                .iter()
                                .any(|x| x == name)
                        })
                        .map(|(name, value)| (name.to_string(), value.to_json().into_owned()))
                        .collect();
                    Json::Object(kept).to_string()
                }),
                vector,
            })
            .collect();
        LoggedRequest {
            timestamp: stamp.timestamp,
            request_id: stamp.request_id.to_string(),
            principal: stamp.principal.to_string(),
            rows,
            stored: answer.rows,
            computed: answer.computed,
        }
    }

    pub fn n_rows(&self) -> usize {
        self.rows.len()
    }

    /// About the memory it holds until written: the stored rows read, the request contexts
    /// kept, and a little per row (its keys, its vector).
    pub fn held_bytes(&self) -> usize {
        const PER_ROW: usize = 256;
        let contexts: usize = self
            .rows
            .iter()
            .map(|row| row.request_context.as_ref().map_or(0, String::len) + PER_ROW)
            .sum();
        self.stored.bytes() + contexts
    }

    /// On the writer: one row per request row, in the schema's column order.
    pub fn into_rows(self, schema: &LogSchema) -> impl Iterator<Item = Vec<Value>> + '_ {
        let config = &schema.config;
        let (timestamp, request_id, principal) = (self.timestamp, self.request_id, self.principal);
        let stored = self.stored;
        let mut computed = self.computed;
        self.rows.into_iter().map(move |logged| {
            let mut row = Vec::with_capacity(schema.columns.len());
            row.extend([
                Value::Timestamp(timestamp),
                Value::String(request_id.clone()),
                Value::String(schema.workspace.clone()),
                Value::String(schema.service.clone()),
                Value::String(principal.clone()),
            ]);
            row.extend(logged.join_keys);
            row.extend(logged.request_context.map(Value::String));
            for feature in logged.vector.features {
                row.push(flat(stored.decode(feature.value.take(&mut computed))));
                if config.log_statuses {
                    row.push(Value::String(feature.status.tecton_name().to_string()));
                }
                if config.log_effective_times {
                    row.push(feature.effective_time.map_or(Value::Null, Value::Timestamp));
                }
            }
            row
        })
    }
}

/// A value as a cell: itself if scalar, else Tecton's JSON for it.
pub fn flat(value: Value) -> Value {
    match value {
        complex @ (Value::Array(_) | Value::Struct(_) | Value::Map(_)) => {
            Value::String(serde_json::to_string(&TectonJson(&complex)).unwrap_or_default())
        }
        scalar => scalar,
    }
}

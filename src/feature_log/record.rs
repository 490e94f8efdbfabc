//! What one logged row holds: the log's columns for a service (fixed columns, join keys, the
//! request context, then each feature's value, status and effective time) and the row built from
//! one answered request row. Built on the request path, after the sampling decision.

use serde_json::{Map, Value as Json};

use super::FeatureLogError;
use crate::registry::types::DataType;
use crate::registry::value::{TectonJson, Value};
use crate::registry::{FeatureService, LoggingConfig, Registry};
use crate::serving::{Answer, RequestRow, ServingStatus};
use crate::time::Micros;

/// A column's type, as both formats write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    Bool,
    Int64,
    Float32,
    Float64,
    String,
    /// Microseconds since the epoch, UTC.
    Timestamp,
}

/// One value of a row. Complex feature values (arrays, structs, maps) are strings holding
/// Tecton's JSON for them.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    Timestamp(Micros),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: CellKind,
}

/// When the answer was logged.
pub const TIMESTAMP_COLUMN: &str = "timestamp";
/// The columns every log starts with, in order.
const FIXED_COLUMNS: [(&str, CellKind); 5] = [
    (TIMESTAMP_COLUMN, CellKind::Timestamp),
    ("request_id", CellKind::String),
    ("workspace", CellKind::String),
    ("service", CellKind::String),
    ("principal", CellKind::String),
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
                kind: *kind,
            })
            .collect();
        for key in &service.input_join_keys {
            columns.push(Column {
                name: key.name.clone(),
                kind: kind_of(&key.data_type),
            });
        }
        if config.log_request_context {
            columns.push(Column {
                name: REQUEST_CONTEXT_COLUMN.to_string(),
                kind: CellKind::String,
            });
        }
        for item in &service.items {
            let view = registry.view(item.view);
            for index in &item.features {
                let feature = &view.features[*index];
                let name = format!("{}__{}", item.namespace, feature.name);
                columns.push(Column {
                    name: name.clone(),
                    kind: kind_of(&feature.data_type),
                });
                if config.log_statuses {
                    columns.push(Column {
                        name: format!("{name}__status"),
                        kind: CellKind::String,
                    });
                }
                if config.log_effective_times {
                    columns.push(Column {
                        name: format!("{name}__effective_time"),
                        kind: CellKind::Timestamp,
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
        })
    }
}

fn kind_of(data_type: &DataType) -> CellKind {
    match data_type {
        DataType::Bool => CellKind::Bool,
        DataType::Int64 => CellKind::Int64,
        DataType::Float32 => CellKind::Float32,
        DataType::Float64 => CellKind::Float64,
        DataType::Timestamp => CellKind::Timestamp,
        DataType::String | DataType::Array(_) | DataType::Struct(_) | DataType::Map(_) => {
            CellKind::String
        }
    }
}

/// Who asked, when, and under which request id.
pub struct Stamp<'a> {
    pub timestamp: Micros,
    pub request_id: &'a str,
    pub principal: &'a str,
}

/// One row per answered request row, in the schema's column order; the answer's values are
/// moved, not copied.
pub fn rows(
    schema: &LogSchema,
    service: &FeatureService,
    requests: &[RequestRow<'_>],
    answer: Answer,
    stamp: &Stamp<'_>,
) -> Vec<Vec<Cell>> {
    let config = &schema.config;
    requests
        .iter()
        .zip(answer.vectors)
        .map(|(request, vector)| {
            let mut row = Vec::with_capacity(schema.columns.len());
            row.extend([
                Cell::Timestamp(stamp.timestamp),
                Cell::String(stamp.request_id.to_string()),
                Cell::String(schema.workspace.clone()),
                Cell::String(schema.service.clone()),
                Cell::String(stamp.principal.to_string()),
            ]);
            for key in &service.input_join_keys {
                // Already read once by serving, so it parses; anything else logs as null.
                let value = request
                    .join_keys
                    .get(&key.name)
                    .and_then(|json| Value::from_json(json, &key.data_type).ok());
                row.push(value.map_or(Cell::Null, cell_of));
            }
            if config.log_request_context {
                let kept: Map<String, Json> = request
                    .request_context
                    .iter()
                    .filter(|(name, _)| !config.exclude_request_context_fields.contains(name))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
                row.push(Cell::String(Json::Object(kept).to_string()));
            }
            let features = vector
                .values
                .into_iter()
                .zip(vector.statuses)
                .zip(vector.effective_times);
            for ((value, status), effective_time) in features {
                row.push(cell_of(value));
                if config.log_statuses {
                    row.push(Cell::String(status_name(status).to_string()));
                }
                if config.log_effective_times {
                    row.push(effective_time.map_or(Cell::Null, Cell::Timestamp));
                }
            }
            row
        })
        .collect()
}

/// Tecton's words for a serving status.
fn status_name(status: ServingStatus) -> &'static str {
    match status {
        ServingStatus::Present => "PRESENT",
        ServingStatus::MissingData => "MISSING_DATA",
        ServingStatus::TimeOut => "TIME_OUT",
    }
}

fn cell_of(value: Value) -> Cell {
    match value {
        Value::Null => Cell::Null,
        Value::Bool(b) => Cell::Bool(b),
        Value::Int64(i) => Cell::Int64(i),
        Value::Float32(f) => Cell::Float32(f),
        Value::Float64(f) => Cell::Float64(f),
        Value::String(s) => Cell::String(s),
        Value::Timestamp(t) => Cell::Timestamp(t),
        complex @ (Value::Array(_) | Value::Struct(_) | Value::Map(_)) => {
            Cell::String(serde_json::to_string(&TectonJson(&complex)).unwrap_or_default())
        }
    }
}

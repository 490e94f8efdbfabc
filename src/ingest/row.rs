//! Turning one input record (an ingest record, a CSV line, a JSON line) into a view's row.
//!
//! Shared by the Stream Ingest API, the bulk loader and the demo seed, so all three apply the
//! same rules: join keys and the timestamp are required, a missing feature column is null.

use serde_json::{Map, Value as Json};

use crate::registry::types::DataType;
use crate::registry::value::{TectonJson, Value};
use crate::registry::FeatureView;
use crate::store::key::encode_key;
use crate::store::row::encode_row;
use crate::store::RowWrite;
use crate::time::Micros;

/// A validated row of one view, before encoding: for an aggregating view, one event.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRow {
    pub key: Vec<Value>,
    pub event_time: Micros,
    /// Values of the view's `row_columns`.
    pub features: Vec<Value>,
}

/// Builds a row of `view`; `read(column, type)` yields a column's value, `None` when absent.
/// The error names the column and what was expected.
pub fn parse_row(
    view: &FeatureView,
    mut read: impl FnMut(&str, &DataType) -> Result<Option<Value>, String>,
) -> Result<ParsedRow, String> {
    let mut key = Vec::with_capacity(view.join_keys.len());
    for join_key in &view.join_keys {
        match read(&join_key.name, &join_key.data_type)
            .map_err(|e| format!("join key `{}`: {e}", join_key.name))?
        {
            Some(Value::Null) | None => {
                return Err(format!("join key `{}` is missing", join_key.name))
            }
            Some(value) => key.push(value),
        }
    }
    let event_time = match read(&view.timestamp_field, &DataType::Timestamp)
        .map_err(|e| format!("timestamp field `{}`: {e}", view.timestamp_field))?
    {
        Some(Value::Timestamp(micros)) => micros,
        _ => {
            return Err(format!(
                "timestamp field `{}` is missing",
                view.timestamp_field
            ))
        }
    };
    let mut features = Vec::with_capacity(view.row_columns.len());
    for column in &view.row_columns {
        let value = read(&column.name, &column.data_type)
            .map_err(|e| format!("column `{}`: {e}", column.name))?;
        features.push(value.unwrap_or(Value::Null));
    }
    Ok(ParsedRow {
        key,
        event_time,
        features,
    })
}

/// Reads a row of `view` from a JSON object keyed by column name. Fields that are neither a join
/// key, the timestamp field nor a feature column are refused, so a misspelt column is caught.
pub fn parse_json_row(view: &FeatureView, object: &Map<String, Json>) -> Result<ParsedRow, String> {
    if let Some(unknown) = object.keys().find(|name| !is_view_column(view, name)) {
        return Err(format!(
            "`{unknown}` is not a column of feature view `{}`",
            view.name
        ));
    }
    parse_row(view, |column, data_type| {
        object
            .get(column)
            .map(|json| Value::from_json(json, data_type))
            .transpose()
    })
}

/// Whether `name` is one of the columns a row of `view` is read from.
pub fn is_view_column(view: &FeatureView, name: &str) -> bool {
    name == view.timestamp_field
        || view.join_keys.iter().any(|k| k.name == name)
        || view.row_columns.iter().any(|c| c.name == name)
}

impl ParsedRow {
    /// Encodes the row for the store.
    pub fn to_write(&self, view: &FeatureView) -> RowWrite {
        let mut key = Vec::new();
        encode_key(&self.key, &mut key);
        let mut payload = Vec::new();
        encode_row(&self.features, &mut payload);
        RowWrite {
            view: view.id,
            layout: view.layout,
            key,
            event_time: self.event_time,
            payload,
        }
    }

    /// The row as a JSON object keyed by column, the form the bulk-load endpoint reads back.
    pub fn to_json(&self, view: &FeatureView) -> Json {
        let mut object = Map::new();
        for (join_key, value) in view.join_keys.iter().zip(&self.key) {
            object.insert(
                join_key.name.clone(),
                serde_json::to_value(TectonJson(value)).unwrap_or(Json::Null),
            );
        }
        let time = Value::Timestamp(self.event_time);
        object.insert(
            view.timestamp_field.clone(),
            serde_json::to_value(TectonJson(&time)).unwrap_or(Json::Null),
        );
        for (column, value) in view.row_columns.iter().zip(&self.features) {
            object.insert(
                column.name.clone(),
                serde_json::to_value(TectonJson(value)).unwrap_or(Json::Null),
            );
        }

        Json::Object(object)
    }
}

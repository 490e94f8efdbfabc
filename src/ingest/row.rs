//! Turning one input record (an ingest record, a CSV line, a JSON line) into a view's row.
//!
//! Shared by the Stream Ingest API, the bulk loader and the demo seed, so all three apply the
//! same rules: join keys and the timestamp are required, a missing feature column is null.

use std::iter::{Chain, Once};
use std::slice;

use serde_json::{Map, Value as Json};

use super::SourceRecords;
use crate::echo::echo;
use crate::registry::types::DataType;
use crate::registry::value::{TectonJson, TextValue, Value};
use crate::registry::{FeatureView, PushSource, Registry, ViewId};
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

/// The type the timestamp field is read as.
static TIMESTAMP: DataType = DataType::Timestamp;

/// The columns a row of `view` is read from, in the order rows are built and written: the join
/// keys, the timestamp field, then the row columns; with the type each is read as.
pub fn view_columns(view: &FeatureView) -> impl Iterator<Item = (&str, &DataType)> {
    view.join_keys
        .iter()
        .map(|key| (key.name.as_str(), &key.data_type))
        .chain(std::iter::once((view.timestamp_field.as_str(), &TIMESTAMP)))
        .chain(
            view.row_columns
                .iter()
                .map(|column| (column.name.as_str(), &column.data_type)),
        )
}

/// Where each of `view_columns(view)` is among a file's `columns` (by name), found once per
/// file so that rows are read by position.
pub fn column_places<'a>(
    view: &FeatureView,
    columns: impl Iterator<Item = &'a str> + Clone,
) -> Vec<Option<usize>> {
    view_columns(view)
        .map(|(name, _)| columns.clone().position(|column| column == name))
        .collect()
}

/// Builds a row of `view`; `read(place, column, type)` yields a column's value, `None` when
/// absent, `place` being the column's place in `view_columns(view)`. The error names the
/// column and what was expected.
pub fn parse_row(
    view: &FeatureView,
    read: impl FnMut(usize, &str, &DataType) -> Result<Option<Value>, String>,
) -> Result<ParsedRow, String> {
    let time_place = view.join_keys.len();
    let mut key = Vec::with_capacity(time_place);
    let mut event_time = None;
    let mut features = Vec::with_capacity(view.row_columns.len());
    read_columns(view, read, |place, value| {
        if place > time_place {
            features.push(value.unwrap_or(Value::Null));
        } else if place == time_place {
            // A timestamp column reads as a timestamp or null: anything else is refused below.
            if let Some(Value::Timestamp(micros)) = value {
                event_time = Some(micros);
            }
        } else {
            key.extend(value);
        }
    })?;
    Ok(ParsedRow {
        key,
        event_time: event_time.ok_or_else(|| missing_timestamp(view))?,
        features,
    })
}

/// A value `read_columns` reads, which may be null.
pub trait ColumnValue {
    fn is_null(&self) -> bool;
}

impl ColumnValue for Value {
    fn is_null(&self) -> bool {
        Value::is_null(self)
    }
}

impl ColumnValue for TextValue<'_> {
    fn is_null(&self) -> bool {
        TextValue::is_null(self)
    }
}

/// The rules of a row of `view`, over values of any form: reads each of `view_columns(view)`
/// in order (`read(place, column, type)`, `None` when absent) and hands it to `keep(place,
/// value)`, having refused an absent or null join key or timestamp (so only a row column's
/// value is handed on as `None`, which is null). The error names the column and what was
/// expected; columns after a refused one are not read.
pub fn read_columns<V: ColumnValue>(
    view: &FeatureView,
    mut read: impl FnMut(usize, &str, &DataType) -> Result<Option<V>, String>,
    mut keep: impl FnMut(usize, Option<V>),
) -> Result<(), String> {
    for (place, join_key) in view.join_keys.iter().enumerate() {
        match read(place, &join_key.name, &join_key.data_type)
            .map_err(|e| format!("join key `{}`: {e}", join_key.name))?
        {
            Some(value) if !value.is_null() => keep(place, Some(value)),
            _ => return Err(missing_join_key(&join_key.name)),
        }
    }
    let time_place = view.join_keys.len();
    match read(time_place, &view.timestamp_field, &TIMESTAMP)
        .map_err(|e| format!("timestamp field `{}`: {e}", view.timestamp_field))?
    {
        Some(value) if !value.is_null() => keep(time_place, Some(value)),
        _ => return Err(missing_timestamp(view)),
    }
    for (index, column) in view.row_columns.iter().enumerate() {
        let place = time_place + 1 + index;
        let value = read(place, &column.name, &column.data_type)
            .map_err(|e| format!("column `{}`: {e}", column.name))?;
        keep(place, value);
    }
    Ok(())
}

fn missing_join_key(name: &str) -> String {
    format!("join key `{name}` is missing")
}

fn missing_timestamp(view: &FeatureView) -> String {
    format!("timestamp field `{}` is missing", view.timestamp_field)
}

/// Reads a row of `view` from a JSON object keyed by column name. Fields that are neither a join
/// key, the timestamp field nor a feature column are refused, so a misspelt column is caught.
pub fn parse_json_row(view: &FeatureView, object: &Map<String, Json>) -> Result<ParsedRow, String> {
    if let Some(unknown) = object.keys().find(|name| !is_view_column(view, name)) {
        return Err(format!(
            "`{}` is not a column of feature view `{}`",
            echo(unknown),
            view.name
        ));
    }
    parse_row(view, |_, column, data_type| {
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
    /// The row's values in `view_columns`' order: join keys, the event time (`time`, its
    /// `Value`, which the caller holds), then the row columns.
    pub fn values<'a>(&'a self, time: &'a Value) -> RowValues<'a> {
        RowValues {
            values: self
                .key
                .iter()
                .chain(std::iter::once(time))
                .chain(&self.features),
            left: self.key.len() + 1 + self.features.len(),
        }
    }

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
}

/// A row's values (`ParsedRow::values`), knowing how many are left, which a `Chain` of its
/// parts does not say: the store's encoding writes the count first.
pub struct RowValues<'a> {
    values: Chain<Chain<slice::Iter<'a, Value>, Once<&'a Value>>, slice::Iter<'a, Value>>,
    left: usize,
}

impl<'a> Iterator for RowValues<'a> {
    type Item = &'a Value;

    fn next(&mut self) -> Option<&'a Value> {
        let value = self.values.next()?;
        self.left -= 1;
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for RowValues<'_> {}

/// Writes rows of one view as JSON objects keyed by column, the form the bulk-rows endpoint
/// reads back (one JSON Lines line each, without its newline). Each column's `"name":` is
/// escaped once here, not once per row.
pub struct RowJsonWriter {
    /// Join keys, the timestamp field, then the row columns: each `"name":`, and a comma
    /// before every one but the first.
    prefixes: Vec<Vec<u8>>,
}

impl RowJsonWriter {
    pub fn new(view: &FeatureView) -> RowJsonWriter {
        let prefixes = view_columns(view)
            .enumerate()
            .map(|(index, (name, _))| {
                let mut prefix = if index == 0 { Vec::new() } else { vec![b','] };
                // Writing into a Vec cannot fail, and a name is a JSON string.
                serde_json::to_writer(&mut prefix, name).expect("a column name is JSON");
                prefix.push(b':');
                prefix
            })
            .collect();
        RowJsonWriter { prefixes }
    }

    /// Appends `row` (a row of the writer's view) to `out`.
    pub fn write(&self, row: &ParsedRow, out: &mut Vec<u8>) {
        let time = Value::Timestamp(row.event_time);
        let values = row.values(&time);
        out.push(b'{');
        for (prefix, value) in self.prefixes.iter().zip(values) {
            out.extend_from_slice(prefix);
            serde_json::to_writer(&mut *out, &TectonJson(value)).expect("a value is JSON");
        }
        out.push(b'}');
    }
}

/// Records of one push source read straight into typed values by the source's schema (the
/// `/ingest` fast path, `http::wire::ingest`): one slot per schema field and record, `None`
/// where the record left the field out. The reader refuses anything but well-formed records,
/// so the schema checks are made by the time a record is here.
#[derive(Debug)]
pub struct TypedRecords {
    records: usize,
    width: usize,
    slots: Vec<Option<Value>>,
    views: Vec<ViewSlots>,
}

/// Where a subscribed view's columns are among the source's schema fields.
#[derive(Debug)]
struct ViewSlots {
    view: ViewId,
    key: Vec<usize>,
    time: usize,
    /// `None`: the source has no such field, so the column is always null.
    columns: Vec<Option<usize>>,
}

/// The most slots `TypedRecords::new` reserves (2 MB), whatever it is told to expect.
const MAX_RESERVED_SLOTS: usize = 1 << 16;

/// The value of a column a record left out.
static NULL: Value = Value::Null;

impl TypedRecords {
    /// No records yet, for `source` and its subscribers, with room for `expected` of them (at
    /// most `MAX_RESERVED_SLOTS` slots); `None` if a view reads a column as another type than
    /// the source's schema gives it (then its values could not be read once for all views).
    pub fn new(registry: &Registry, source: &PushSource, expected: usize) -> Option<TypedRecords> {
        let slot = |name: &str, data_type: &DataType| match source
            .schema
            .iter()
            .position(|field| field.name == name)
        {
            Some(index) if source.schema[index].data_type == *data_type => Some(Some(index)),
            Some(_) => None,
            None => Some(None),
        };
        let views = source
            .subscribers
            .iter()
            .map(|id| {
                let view = registry.view(*id);
                Some(ViewSlots {
                    view: *id,
                    key: view
                        .join_keys
                        .iter()
                        .map(|key| slot(&key.name, &key.data_type).flatten())
                        .collect::<Option<_>>()?,
                    time: slot(&view.timestamp_field, &DataType::Timestamp).flatten()?,
                    columns: view
                        .row_columns
                        .iter()
                        .map(|column| slot(&column.name, &column.data_type))
                        .collect::<Option<_>>()?,
                })
            })
            .collect::<Option<_>>()?;
        let width = source.schema.len();
        Some(TypedRecords {
            records: 0,
            width,
            slots: Vec::with_capacity(expected.saturating_mul(width).min(MAX_RESERVED_SLOTS)),
            views,
        })
    }

    /// Slots allocated, for the test that they are allocated once.
    #[cfg(test)]
    pub fn slot_capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// Starts the next record, every field left out.
    pub fn push_record(&mut self) {
        self.records += 1;
        // Not `resize(.., None)`: that clones its `Option<Value>` into each slot through
        // `Value::clone`, where this writes `None` (0.56k -> 0.41k instructions a record).
        self.slots
            .resize_with(self.slots.len() + self.width, || None);
    }

    /// Sets schema field `field` of the last record; `false` if the record gave it already.
    pub fn set(&mut self, field: usize, value: Value) -> bool {
        let start = self.slots.len() - self.width;
        let slot = &mut self.slots[start + field];
        slot.replace(value).is_none()
    }
}

impl SourceRecords for TypedRecords {
    fn count(&self) -> usize {
        self.records
    }

    /// Checked while they were read.
    fn check(&self, _: usize, _: &str, _: &PushSource) -> Result<(), String> {
        Ok(())
    }

    fn row(&self, index: usize, view: &FeatureView) -> Result<RowWrite, String> {
        let slots = self
            .views
            .iter()
            .find(|slots| slots.view == view.id)
            .expect("every subscriber's columns are mapped in `new`");
        let record = &self.slots[index * self.width..][..self.width];
        encode_write(
            view,
            slots.key.iter().map(|slot| record[*slot].as_ref()),
            record[slots.time].as_ref(),
            slots
                .columns
                .iter()
                .map(|slot| slot.and_then(|index| record[index].as_ref())),
        )
    }
}

/// Encodes a row of `view` from typed values: its join keys, its event time and its row
/// columns' values, `None` where the input left one out (a feature left out is null). The
/// error words a missing join key or timestamp as `parse_row` does.
pub fn encode_write<'a>(
    view: &FeatureView,
    key: impl IntoIterator<Item = Option<&'a Value>>,
    time: Option<&Value>,
    columns: impl ExactSizeIterator<Item = Option<&'a Value>>,
) -> Result<RowWrite, String> {
    // Sized up front, not grown from empty (the growth path cost ~70 instructions more an
    // allocation, two a row): a string key part takes 5 bytes and its text.
    let mut encoded_key = Vec::with_capacity(24 * view.join_keys.len());
    for (join_key, value) in view.join_keys.iter().zip(key) {
        match value {
            None | Some(Value::Null) => return Err(missing_join_key(&join_key.name)),
            Some(value) => encode_key([value], &mut encoded_key),
        }
    }
    let Some(Value::Timestamp(event_time)) = time else {
        return Err(missing_timestamp(view));
    };
    // What `encode_row` reserves: a tag and 8 bytes a value.
    let mut payload = Vec::with_capacity(1 + 9 * columns.len());
    encode_row(columns.map(|value| value.unwrap_or(&NULL)), &mut payload);
    Ok(RowWrite {
        view: view.id,
        layout: view.layout,
        key: encoded_key,
        event_time: *event_time,
        payload,
    })
}

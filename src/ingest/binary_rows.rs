//! The bulk-rows endpoint's binary body (`application/vnd.quiver.rows.v1`), what `quiver load`
//! sends: the rows it has validated, already in the store's value encoding, so that the server
//! need not tokenise JSON text again. The server trusts none of it: every value is read as its
//! column's type says and checked (tag, length, UTF-8, range), and must be in the one form the
//! store writes it (shortest lengths, the canonical NaN), so that its bytes are copied into the
//! stored row as they are: a row stores the same bytes whichever body carried it. The first
//! bad row refuses the whole body, naming the row (from 1) and the column.
//!
//! Layout: the four bytes `QRW\x01`; then records, each a little-endian `u32` byte length and
//! that many bytes of `store::row::encode_row`'s encoding. The first record is the column
//! names (strings); every later one is a row, one value per named column; an empty record
//! ends the body (so a body cut short between two rows is refused, not half loaded). Columns
//! are named as in JSON Lines rows (join keys, the timestamp field, feature columns, in any
//! order); a column not named is null. The value encoding is `store::row`'s as of version 1: a
//! change to it needs a new version here.

use std::ops::Range;

use chrono::{DateTime, Utc};

use super::file::{BadRow, Place};
use super::row::{read_columns, view_columns, ColumnValue, ParsedRow};
use super::text_cells::TextCell;
use crate::echo::echo;
use crate::registry::types::DataType;
use crate::registry::value::Value;
use crate::registry::FeatureView;
use crate::store::key::{encode_key_part, encode_string_key_part, KeyPart};
use crate::store::row::{
    encode_row, encode_value, write_len, ReadError, Reader, ARRAY, FALSE, FLOAT32, FLOAT64, INT64,
    MAP, NULL, STRING, STRUCT, TIMESTAMP, TRUE,
};
use crate::store::RowWrite;

/// The content type of a binary rows body.
pub const CONTENT_TYPE: &str = "application/vnd.quiver.rows.v1";

/// What every binary rows body begins with: `QRW` and the layout's version.
const MAGIC: &[u8; 4] = b"QRW\x01";

/// Writes rows of one view as binary rows bodies.
pub struct BinaryRowsWriter {
    /// The magic and the column names record, which open every body.
    head: Vec<u8>,
    /// How many columns a row has: every one of `view_columns`.
    columns: usize,
}

impl BinaryRowsWriter {
    pub fn new(view: &FeatureView) -> BinaryRowsWriter {
        let names: Vec<Value> = view_columns(view)
            .map(|(name, _)| Value::String(name.to_string()))
            .collect();
        let mut head = MAGIC.to_vec();
        write_record(&mut head, |out| encode_row(&names, out));
        BinaryRowsWriter {
            head,
            columns: names.len(),
        }
    }

    /// Opens a body: `out` must be empty, or hold a body this writer ended.
    pub fn start(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
    }

    /// Ends a body: no row may follow.
    pub fn finish(&self, out: &mut Vec<u8>) {
        write_record(out, |_| {});
    }

    /// Appends `row` (a row of the writer's view) to a body `start` opened.
    pub fn write(&self, row: &ParsedRow, out: &mut Vec<u8>) {
        let time = Value::Timestamp(row.event_time);
        write_record(out, |out| encode_row(row.values(&time), out));
    }

    /// Appends the row of a CSV record of the writer's view to a body `start` opened, each cell
    /// encoded as it is read (no `ParsedRow`, no string copied): `cell(place)` is the text of
    /// the column at `place` in `view_columns`, `None` if the file has no such column. Appends
    /// what `write` appends for the row `parse_row` builds of the cells read by
    /// `Value::from_text`, or nothing, refusing the row as `parse_row` does.
    pub fn write_text_row<'a>(
        &self,
        view: &FeatureView,
        mut cell: impl FnMut(usize) -> Option<&'a str>,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        self.write_cells(
            view,
            |place, data_type| {
                cell(place)
                    .map(|text| TextCell::read(text, data_type))
                    .transpose()
            },
            out,
        )
    }

    /// Appends a row of the writer's view to a body `start` opened, its cells encoded as they
    /// are read (`read(place, type)`: the cell of the column at `place` in `view_columns`, read
    /// and checked as `type`, `None` if the file has no such column). Appends what `write`
    /// appends for the row `parse_row` builds of the cells' values, or nothing, refusing the
    /// row as `parse_row` does.
    pub fn write_cells<C: EncodeCell>(
        &self,
        view: &FeatureView,
        mut read: impl FnMut(usize, &DataType) -> Result<Option<C>, String>,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let start = out.len();
        let mut written = Ok(());
        write_record(out, |out| {
            write_len(self.columns, out);
            written = read_columns(
                view,
                |place, _, data_type| read(place, data_type),
                |_, value| match value {
                    None => out.push(NULL),
                    Some(value) => value.encode(out),
                },
            );
        });
        if written.is_err() {
            out.truncate(start);
        }
        written
    }
}

/// A cell `BinaryRowsWriter::write_cells` reads and checks, then encodes: what
/// `encode_value` appends for the value it stands for.
pub trait EncodeCell: ColumnValue {
    fn encode(self, out: &mut Vec<u8>);
}

impl EncodeCell for Value {
    fn encode(self, out: &mut Vec<u8>) {
        encode_value(&self, out);
    }
}

/// Appends a record: its length, then what `write` appends.
fn write_record(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    write(out);
    let len = u32::try_from(out.len() - start - 4).expect("a row is under 4 GiB");
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Reads a binary rows body of `view` into store writes, or refuses it whole at its first bad
/// record.
pub fn read_binary_rows(view: &FeatureView, body: &[u8]) -> Result<Vec<RowWrite>, BadRow> {
    let header = |message: String| BadRow {
        place: Place::Header,
        message,
    };
    let Some(mut rest) = body.strip_prefix(MAGIC) else {
        return Err(header(format!(
            "not a binary rows body: `{CONTENT_TYPE}` begins with the bytes `QRW` and 1"
        )));
    };
    let columns: Vec<(&str, &DataType)> = view_columns(view).collect();
    // Each body column's place among the view's columns, and its type, in the body's order.
    let mut body_columns: Vec<(usize, &DataType)> = Vec::new();
    let names_record = next_record(&mut rest).map_err(header)?;
    let mut names = Reader::new(names_record);
    let count = names.len().map_err(refusal).map_err(header)?;
    for index in 0..count {
        let name = match names.take(1).map_err(refusal).map_err(header)?[0] {
            STRING => names.str().map_err(refusal).map_err(header)?,
            tag => {
                return Err(header(format!(
                    "column name {index}: expected a string, got {}",
                    kind(tag)
                )))
            }
        };
        let slot = columns
            .iter()
            .position(|(column, _)| *column == name)
            .ok_or_else(|| {
                header(format!(
                    "`{}` is not a column of feature view `{}`",
                    echo(name),
                    view.name
                ))
            })?;
        if body_columns.iter().any(|(named, _)| *named == slot) {
            return Err(header(format!("column `{}` is named twice", echo(name))));
        }
        body_columns.push((slot, columns[slot].1));
    }
    if names.pos() != names_record.len() {
        return Err(header("bytes after the column names".into()));
    }
    let keys = view.join_keys.len();
    // Each of the view's columns' place among the body's columns, `None` if the body does not
    // name it: the same for every row, so each row's key, event time and payload are cut from
    // its record by where its values start, with no per-row record of which column is where.
    let mut in_body: Vec<Option<usize>> = vec![None; columns.len()];
    for (index, (slot, _)) in body_columns.iter().enumerate() {
        in_body[*slot] = Some(index);
    }
    let payload_plan = payload_plan(&in_body[keys + 1..]);
    let features = columns.len() - keys - 1;
    // Where each body column's value starts in the row being read, then where the last ends.
    let mut starts: Vec<usize> = vec![0; body_columns.len() + 1];
    // Reserved once for the records the body holds (grown from empty, the list's reallocations
    // and copies cost ~200 instructions a row).
    let mut writes = Vec::with_capacity(row_records(rest).min(MAX_RESERVED_ROWS));
    loop {
        let row_number = writes.len() + 1;
        let bad = |message: String| BadRow {
            place: Place::Row(row_number),
            message,
        };
        let record = next_record(&mut rest).map_err(bad)?;
        if record.is_empty() {
            return match rest.is_empty() {
                true => Ok(writes),
                false => Err(bad(format!("{} bytes after the end mark", rest.len()))),
            };
        }
        let mut values = Reader::new(record);
        let count = values.len().map_err(refusal).map_err(bad)?;
        if count != body_columns.len() {
            return Err(bad(format!(
                "{count} values for {} columns",
                body_columns.len()
            )));
        }
        for ((slot, data_type), start) in body_columns.iter().zip(&mut starts) {
            *start = values.pos();
            check(&mut values, data_type).map_err(|e| {
                let role = match slot.cmp(&keys) {
                    std::cmp::Ordering::Less => "join key",
                    std::cmp::Ordering::Equal => "timestamp field",
                    std::cmp::Ordering::Greater => "column",
                };
                bad(format!("{role} `{}`: {e}", columns[*slot].0))
            })?;
        }
        if values.pos() != record.len() {
            return Err(bad(format!(
                "{} bytes after its last value",
                record.len() - values.pos()
            )));
        }
        starts[body_columns.len()] = record.len();
        // A present value's bytes, null's (a lone NULL tag) when absent or null.
        let value = |slot: usize| match in_body[slot] {
            Some(index) => &record[starts[index]..starts[index + 1]],
            None => &[NULL][..],
        };
        let mut key = Vec::with_capacity(24 * keys);
        for (slot, join_key) in view.join_keys.iter().enumerate() {
            match value(slot) {
                [STRING, rest @ ..] => {
                    // `check` read it as UTF-8 already: its length is read again, not its text.
                    let text = Reader::new(rest).bytes().expect("checked");
                    encode_string_key_part(text, &mut key);
                }
                [INT64, rest @ ..] => encode_key_part(
                    KeyPart::Int64(i64::from_le_bytes(rest.try_into().expect("checked"))),
                    &mut key,
                ),
                _ => return Err(bad(format!("join key `{}` is missing", join_key.name))),
            }
        }
        let event_time = match value(keys) {
            [TIMESTAMP, rest @ ..] => i64::from_le_bytes(rest.try_into().expect("checked")),
            _ => {
                return Err(bad(format!(
                    "timestamp field `{}` is missing",
                    view.timestamp_field
                )))
            }
        };
        // At most the length, the record's bytes and a null for each column not in the body: no
        // reallocation.
        let mut payload = Vec::with_capacity(5 + record.len() + features);
        write_len(features, &mut payload);
        for piece in &payload_plan {
            match piece {
                Piece::Values(columns) => {
                    payload.extend_from_slice(&record[starts[columns.start]..starts[columns.end]])
                }
                Piece::Nulls(n) => payload.resize(payload.len() + n, NULL),
            }
        }
        writes.push(RowWrite {
            view: view.id,
            layout: view.layout,
            key,
            event_time,
            payload,
        });
    }
}

/// A run of a payload's values, the same for every row of a body.
#[derive(Debug, PartialEq)]
enum Piece {
    /// The values of these body columns, next to each other in every record: one copy.
    Values(Range<usize>),
    /// This many features the body does not name: nulls.
    Nulls(usize),
}

/// How a row's payload is made of its record, given each feature's place among the body's
/// columns (in the view's order): features next to each other in the body are copied as one
/// run, so a body in the view's column order, as `quiver load` writes it, is one copy a row.
fn payload_plan(features: &[Option<usize>]) -> Vec<Piece> {
    let mut plan = Vec::new();
    for feature in features {
        match (plan.last_mut(), feature) {
            (Some(Piece::Values(run)), Some(index)) if run.end == *index => run.end += 1,
            (Some(Piece::Nulls(n)), None) => *n += 1,
            (_, Some(index)) => plan.push(Piece::Values(*index..index + 1)),
            (_, None) => plan.push(Piece::Nulls(1)),
        }
    }
    plan
}

/// The most rows a body's list of writes is reserved for before they are read.
const MAX_RESERVED_ROWS: usize = 1 << 16;

/// The timestamps chrono can hold (what `DateTime::from_timestamp_micros` accepts), compared
/// as two bounds: the range is whole, and the call cost ~60 instructions a timestamp.
const TIMESTAMP_MICROS: std::ops::RangeInclusive<i64> =
    DateTime::<Utc>::MIN_UTC.timestamp_micros()..=DateTime::<Utc>::MAX_UTC.timestamp_micros();

/// How many row records `rest` holds before its end mark (or before it stops making sense).
fn row_records(mut rest: &[u8]) -> usize {
    let mut rows = 0;
    while next_record(&mut rest).is_ok_and(|record| !record.is_empty()) {
        rows += 1;
    }
    rows
}

/// The next record of `rest`, moving past it; empty for the end mark. Inlined, read once a
/// row; the refusal is worded out of line.
#[inline]
fn next_record<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let record = rest.split_first_chunk::<4>().and_then(|(len, after)| {
        let len = u32::from_le_bytes(*len) as usize;
        Some((after.get(..len)?, &after[len..]))
    });
    match record {
        Some((record, after)) => {
            *rest = after;
            Ok(record)
        }
        None => Err(unfinished_record(rest)),
    }
}

/// Why `rest` holds no whole record.
#[cold]
fn unfinished_record(rest: &[u8]) -> String {
    match rest.split_first_chunk::<4>() {
        None => format!(
            "the body ends without its end mark ({} bytes of a record's 4-byte length)",
            rest.len()
        ),
        Some((len, after)) => format!(
            "the body ends inside a record of {} bytes, {} bytes into it",
            u32::from_le_bytes(*len),
            after.len()
        ),
    }
}

/// Reads a value of `data_type` (or null) of a row record, checking it as its column's type
/// says: its parts are read by the store's own reader, so that a value in any form other than
/// the one the store writes (lengths in their shortest LEB128) is refused, and NaN must be the
/// one NaN a JSON `"NaN"` reads as; its bytes can then be copied into the stored row as they are.
///
/// Inlined into the row loop for the scalars, eight calls a row otherwise: built in one
/// codegen unit, `#[inline]` left it a call (2.4M calls a profile, ~69 instructions each);
/// nested values and refusals go to `check_nested`, never inlined, so that `check` stays small.
#[inline(always)]
fn check(values: &mut Reader, data_type: &DataType) -> Result<(), String> {
    let tag = values.take(1).map_err(refusal)?[0];
    match (data_type, tag) {
        (_, NULL) | (DataType::Bool, FALSE | TRUE) => Ok(()),
        (DataType::Int64, INT64) => values.take(8).map(drop).map_err(refusal),
        (DataType::Float32, FLOAT32) => {
            let f = f32::from_le_bytes(values.fixed().map_err(refusal)?);
            canonical_nan(f.is_nan() && f.to_bits() != (f64::NAN as f32).to_bits())
        }
        (DataType::Float64, FLOAT64) => {
            let f = f64::from_le_bytes(values.fixed().map_err(refusal)?);
            canonical_nan(f.is_nan() && f.to_bits() != f64::NAN.to_bits())
        }
        (DataType::String, STRING) => values.utf8().map(drop).map_err(refusal),
        (DataType::Timestamp, TIMESTAMP) => {
            let micros = i64::from_le_bytes(values.fixed().map_err(refusal)?);
            match TIMESTAMP_MICROS.contains(&micros) {
                true => Ok(()),
                false => Err(out_of_range(micros)),
            }
        }
        (data_type, tag) => check_nested(values, data_type, tag),
    }
}

/// `check` of an array, struct or map whose `tag` has been read, or the refusal of a tag
/// `data_type` does not take.
#[inline(never)]
fn check_nested(values: &mut Reader, data_type: &DataType, tag: u8) -> Result<(), String> {
    match (data_type, tag) {
        (DataType::Array(element), ARRAY) => {
            for index in 0..values.len().map_err(refusal)? {
                check(values, element).map_err(|e| format!("[{index}]: {e}"))?;
            }
            Ok(())
        }
        (DataType::Struct(fields), STRUCT) => {
            let count = values.len().map_err(refusal)?;
            if count != fields.len() {
                return Err(format!(
                    "expected {data_type}, got a struct of {count} fields"
                ));
            }
            for field in fields {
                check(values, &field.data_type).map_err(|e| format!(".{}: {e}", field.name))?;
            }
            Ok(())
        }
        (DataType::Map(value_type), MAP) => {
            let count = values.len().map_err(refusal)?;
            // A set, not a scan of the earlier keys: a map may hold a million keys.
            let mut keys = std::collections::HashSet::new();
            for _ in 0..count {
                let key = values.str().map_err(refusal)?;
                if !keys.insert(key) {
                    return Err(format!("key \"{}\" given twice", echo(key)));
                }
                check(values, value_type).map_err(|e| format!("[\"{}\"]: {e}", echo(key)))?;
            }
            Ok(())
        }
        (data_type, tag) => Err(format!("expected {data_type}, got {}", kind(tag))),
    }
}

#[cold]
fn out_of_range(micros: i64) -> String {
    format!("timestamp {micros} µs is out of range")
}

/// A reader's refusal, as the body's refusal words it.
#[cold]
fn refusal(error: ReadError) -> String {
    error.to_string()
}

/// Refuses a NaN other than the one NaN a JSON `"NaN"` reads as, whose bytes would differ.
#[inline]
fn canonical_nan(other: bool) -> Result<(), String> {
    match other {
        true => Err("a NaN other than the canonical quiet NaN".into()),
        false => Ok(()),
    }
}

/// What kind of value a refused one's tag says it is, for the refusal.
fn kind(tag: u8) -> String {
    match tag {
        FALSE | TRUE => "a boolean".into(),
        INT64 => "an int64".into(),
        FLOAT32 => "a float32".into(),
        FLOAT64 => "a float64".into(),
        STRING => "a string".into(),
        TIMESTAMP => "a timestamp".into(),
        ARRAY => "an array".into(),
        STRUCT => "a struct".into(),
        MAP => "a map".into(),
        other => format!("the unknown tag {other}"),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::bench::dataset::demo_registry as demo;
    use crate::ingest::file::{open_load_file, read_rows_body};
    use crate::ingest::row::{parse_row, RowJsonWriter};
    use crate::registry::value::TectonJson;
    use crate::registry::Registry;
    use crate::store::row::decode_row;

    /// `rows` as a binary body and as a JSON Lines body, as `quiver load` writes each.
    fn bodies(view: &FeatureView, rows: &[ParsedRow]) -> (Vec<u8>, Vec<u8>) {
        let (binary, json) = (BinaryRowsWriter::new(view), RowJsonWriter::new(view));
        let (mut binary_body, mut json_body) = (Vec::new(), Vec::new());
        binary.start(&mut binary_body);
        for row in rows {
            binary.write(row, &mut binary_body);
            json.write(row, &mut json_body);
            json_body.push(b'\n');
        }
        binary.finish(&mut binary_body);
        (binary_body, json_body)
    }

    /// Both bodies of `rows` read to the same store writes.
    fn assert_read_alike(view: &FeatureView, rows: &[ParsedRow]) {
        let (binary, json) = bodies(view, rows);
        let from_binary = read_binary_rows(view, &binary).expect("the writer's body reads");
        let from_json = read_rows_body(view, &json).expect("the writer's lines read");
        assert_eq!(from_binary.len(), rows.len());
        assert_eq!(format!("{from_binary:?}"), format!("{from_json:?}"));
    }

    fn view<'a>(registry: &'a Registry, name: &str) -> &'a FeatureView {
        registry.view_by_name("prod", name).unwrap()
    }

    /// Batch views of every value type, keyed by a string or by an int64.
    const VIEWS: [&str; 3] = [
        "user_profile",
        "merchant_profile",
        "terminal_last_transaction",
    ];

    #[test]
    fn the_demo_files_store_the_same_rows_either_way() {
        let registry = demo();
        for (name, file) in [
            ("user_profile", "features/demo/user_profile.jsonl"),
            ("merchant_profile", "features/demo/merchant_profile.csv"),
        ] {
            let view = view(&registry, name);
            let rows = open_load_file(file.as_ref())
                .unwrap()
                .read_rows(view, |_| {})
                .unwrap();
            assert!(!rows.is_empty());
            assert_read_alike(view, &rows);
        }
    }

    /// A value of `data_type`, never null at the top.
    fn some_value_of(data_type: &DataType) -> BoxedStrategy<Value> {
        match data_type {
            DataType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
            DataType::Int64 => any::<i64>().prop_map(Value::Int64).boxed(),
            DataType::Float32 => any::<f32>().prop_map(Value::Float32).boxed(),
            DataType::Float64 => any::<f64>().prop_map(Value::Float64).boxed(),
            DataType::String => ".{0,6}".prop_map(Value::String).boxed(),
            DataType::Timestamp => timestamp().prop_map(Value::Timestamp).boxed(),
            DataType::Array(element) => prop::collection::vec(value_of(element), 0..4)
                .prop_map(Value::Array)
                .boxed(),
            DataType::Struct(fields) => fields
                .iter()
                .map(|field| value_of(&field.data_type))
                .collect::<Vec<_>>()
                .prop_map(Value::Struct)
                .boxed(),
            DataType::Map(value_type) => {
                prop::collection::vec((".{0,3}", value_of(value_type)), 0..4)
                    .prop_map(|mut entries| {
                        // A JSON object's keys are distinct.
                        let mut seen = std::collections::HashSet::new();
                        entries.retain(|(key, _)| seen.insert(key.clone()));
                        Value::Map(entries)
                    })
                    .boxed()
            }
        }
    }

    fn value_of(data_type: &DataType) -> BoxedStrategy<Value> {
        prop_oneof![1 => Just(Value::Null), 4 => some_value_of(data_type)].boxed()
    }

    /// Years 1 to 9999, what a timestamp's text says.
    fn timestamp() -> impl Strategy<Value = i64> {
        -62_135_596_800_000_000i64..253_402_300_800_000_000
    }

    fn rows_of(view: &FeatureView) -> impl Strategy<Value = Vec<ParsedRow>> {
        let key: Vec<_> = view
            .join_keys
            .iter()
            .map(|key| some_value_of(&key.data_type))
            .collect();
        let features: Vec<_> = view
            .row_columns
            .iter()
            .map(|column| value_of(&column.data_type))
            .collect();
        let row = (key, timestamp(), features).prop_map(|(key, event_time, features)| ParsedRow {
            key,
            event_time,
            features,
        });
        prop::collection::vec(row, 0..5)
    }

    /// The demo registry, for strategies that outlive a test's own.
    static DEMO: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(demo);

    fn view_and_rows() -> impl Strategy<Value = (&'static str, Vec<ParsedRow>)> {
        prop::sample::select(VIEWS.to_vec())
            .prop_flat_map(|name| (Just(name), rows_of(view(&DEMO, name))))
    }

    /// Changes a body: overwrites, inserts or removes a byte, or cuts it short.
    #[derive(Debug, Clone)]
    enum Damage {
        Overwrite(prop::sample::Index, u8),
        Insert(prop::sample::Index, u8),
        Remove(prop::sample::Index),
        Cut(prop::sample::Index),
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Overwrite(i, b)),
            (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Insert(i, b)),
            any::<prop::sample::Index>().prop_map(Damage::Remove),
            any::<prop::sample::Index>().prop_map(Damage::Cut),
        ]
    }

    /// A CSV cell's text for `value`, as a file would hold it: empty for null, scalars as text,
    /// arrays, structs and maps as JSON.
    fn cell_text(value: &Value) -> String {
        match value {
            Value::Null => String::new(),
            Value::Bool(flag) => flag.to_string(),
            Value::Int64(i) => i.to_string(),
            Value::Float32(f) => f.to_string(),
            Value::Float64(f) => f.to_string(),
            Value::String(text) => text.clone(),
            Value::Timestamp(micros) => crate::time::format_timestamp(*micros),
            nested => serde_json::to_string(&TectonJson(nested)).unwrap(),
        }
    }

    /// The cells of a CSV record of `view`, one per column of `view_columns` (`None`: the file
    /// has no such column): mostly a value of the column's type, some text near the forms each
    /// type takes, some anything.
    fn cells_of(view: &FeatureView) -> impl Strategy<Value = Vec<Option<String>>> {
        let near = prop::sample::select(vec![
            "",
            " ",
            "1",
            "0",
            "TRUE",
            "False",
            "yes",
            " 42 ",
            "4.5e3",
            "NaN",
            "-nan",
            "Infinity",
            "[]",
            "[1,\"2\"]",
            "[\"a\",null]",
            "{}",
            "null",
            "2026-01-15T00:00:00Z",
            "2026-01-15 00:00:00+01:00",
            "2026-13-01T00:00:00Z",
        ]);
        view_columns(view)
            .map(|(_, data_type)| {
                prop_oneof![
                    6 => value_of(data_type).prop_map(|value| Some(cell_text(&value))),
                    2 => near.clone().prop_map(|text| Some(text.to_string())),
                    1 => ".{0,8}".prop_map(Some),
                    1 => Just(None),
                ]
            })
            .collect::<Vec<_>>()
    }

    fn view_and_cells() -> impl Strategy<Value = (&'static str, Vec<Option<String>>)> {
        prop::sample::select(VIEWS.to_vec())
            .prop_flat_map(|name| (Just(name), cells_of(view(&DEMO, name))))
    }

    proptest! {
        /// A CSV record's cells encoded as they are read give the bytes of the row `parse_row`
        /// builds of them, written; or the same refusal, appending nothing.
        #[test]
        fn text_cells_encode_as_their_parsed_row((name, cells) in view_and_cells()) {
            let view = view(&DEMO, name);
            let writer = BinaryRowsWriter::new(view);
            let parsed = parse_row(view, |place, _, data_type| {
                cells[place]
                    .as_deref()
                    .map(|text| Value::from_text(text, data_type))
                    .transpose()
            })
            .map(|row| {
                let mut record = Vec::new();
                writer.write(&row, &mut record);
                record
            });
            let mut body = b"before".to_vec();
            let encoded = writer
                .write_text_row(view, |place| cells[place].as_deref(), &mut body)
                .map(|()| body[b"before".len()..].to_vec());
            prop_assert_eq!(&encoded, &parsed);
            if encoded.is_err() {
                prop_assert_eq!(&body[..], &b"before"[..]);
            }
        }

        #[test]
        fn rows_store_what_their_json_lines_store((name, rows) in view_and_rows()) {
            assert_read_alike(view(&DEMO, name), &rows);
        }

        /// A body naming the view's columns in any order, any features left out, stores what
        /// the view's order stores with those features null: the payload's runs, planned once
        /// a body, cut every row alike.
        #[test]
        fn any_order_and_subset_of_columns_stores_as_the_views_order(
            ((name, rows), order, kept) in view_and_rows().prop_flat_map(|(name, rows)| {
                let n = view_columns(view(&DEMO, name)).count();
                (
                    Just((name, rows)),
                    Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
                    prop::collection::vec(any::<bool>(), n),
                )
            })
        ) {
            let view = view(&DEMO, name);
            let keys = view.join_keys.len();
            // The join keys and the timestamp field always named, a feature when `kept` says.
            let places: Vec<usize> = order.into_iter().filter(|&i| i <= keys || kept[i]).collect();
            let mut nulled = rows.clone();
            for row in &mut nulled {
                for (i, feature) in row.features.iter_mut().enumerate() {
                    if !places.contains(&(keys + 1 + i)) {
                        *feature = Value::Null;
                    }
                }
            }
            let body = body_in(view, &rows, &places);
            let (expected, _) = bodies(view, &nulled);
            prop_assert_eq!(
                format!("{:?}", read_binary_rows(view, &body).unwrap()),
                format!("{:?}", read_binary_rows(view, &expected).unwrap())
            );
        }

        /// Whatever a damaged body holds, reading it never panics, and what it takes is what a
        /// JSON Lines body could have written: values of their columns' types, NaNs the one NaN.
        #[test]
        fn a_damaged_body_is_refused_or_holds_rows_of_the_view(
            (name, rows) in view_and_rows(),
            damages in prop::collection::vec(damage(), 1..4),
        ) {
            let view = view(&DEMO, name);
            let (mut body, _) = bodies(view, &rows);
            for damage in damages {
                match damage {
                    Damage::Overwrite(at, byte) => {
                        let at = at.index(body.len());
                        body[at] = byte;
                    }
                    Damage::Insert(at, byte) => body.insert(at.index(body.len() + 1), byte),
                    Damage::Remove(at) => {
                        body.remove(at.index(body.len()));
                    }
                    Damage::Cut(at) => body.truncate(at.index(body.len())),
                }
                if body.is_empty() {
                    break;
                }
            }
            let Ok(writes) = read_binary_rows(view, &body) else {
                return Ok(());
            };
            let types: Vec<&DataType> =
                view.row_columns.iter().map(|column| &column.data_type).collect();
            for write in writes {
                let values = decode_row(&write.payload).expect("a stored row decodes");
                prop_assert_eq!(values.len(), types.len());
                let mut again = Vec::new();
                encode_row(&values, &mut again);
                prop_assert_eq!(&again, &write.payload, "stored in the store's one form");
                for (value, data_type) in values.iter().zip(&types) {
                    let json = serde_json::to_value(TectonJson(value)).unwrap();
                    prop_assert!(Value::from_json(&json, data_type).is_ok(), "{value:?}");
                }
            }
        }
    }

    /// The demo's `user_profile` rows, as `quiver load` reads them.
    fn demo_user_profiles(view: &FeatureView) -> Vec<ParsedRow> {
        open_load_file("features/demo/user_profile.jsonl".as_ref())
            .unwrap()
            .read_rows(view, |_| {})
            .unwrap()
    }

    #[test]
    fn a_body_cut_short_anywhere_is_refused() {
        let registry = demo();
        let view = view(&registry, "user_profile");
        let rows = demo_user_profiles(view);
        let (body, _) = bodies(view, &rows[..3]);
        assert!(read_binary_rows(view, &body).is_ok());
        for len in 0..body.len() {
            assert!(read_binary_rows(view, &body[..len]).is_err(), "{len}");
        }
        // Where the cut falls, in the refusal's words: inside a record's length, inside a row.
        let refusal = |len: usize| {
            read_binary_rows(view, &body[..len])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refusal(body.len() - 2),
            "row 4: the body ends without its end mark (2 bytes of a record's 4-byte length)"
        );
        // The third row's record: what the body of two rows lacks, less its 4-byte length.
        let third = body.len() - bodies(view, &rows[..2]).0.len() - 4;
        assert_eq!(
            refusal(body.len() - 5),
            format!(
                "row 3: the body ends inside a record of {third} bytes, {} bytes into it",
                third - 1
            )
        );
    }

    /// A body with `names` as its header and `rows` as its rows.
    fn body_of(names: &[&str], rows: &[Vec<Value>]) -> Vec<u8> {
        let names: Vec<Value> = names.iter().map(|n| Value::String(n.to_string())).collect();
        let mut body = MAGIC.to_vec();
        write_record(&mut body, |out| encode_row(&names, out));
        for row in rows {
            write_record(&mut body, |out| encode_row(row, out));
        }
        write_record(&mut body, |_| {});
        body
    }

    /// A body of `rows` naming the view's columns at `places` (among `view_columns`), in that
    /// order.
    fn body_in(view: &FeatureView, rows: &[ParsedRow], places: &[usize]) -> Vec<u8> {
        let names: Vec<&str> = view_columns(view).map(|(name, _)| name).collect();
        let rows: Vec<Vec<Value>> = rows
            .iter()
            .map(|row| {
                let time = Value::Timestamp(row.event_time);
                let values: Vec<&Value> = row.values(&time).collect();
                places.iter().map(|&i| values[i].clone()).collect()
            })
            .collect();
        body_of(&places.iter().map(|&i| names[i]).collect::<Vec<_>>(), &rows)
    }

    #[test]
    fn refusals_name_the_row_and_the_column() {
        let registry = demo();
        let user_profile = view(&registry, "user_profile");
        let merchant_profile = view(&registry, "merchant_profile");
        let user = |id: &str| Value::String(id.into());
        let time = Value::Timestamp(1_700_000_000_000_000);
        let good = vec![user("u1"), time.clone(), Value::Int64(700)];
        let columns = ["user_id", "timestamp", "credit_score"];
        let refused =
            |view: &FeatureView, body: &[u8]| read_binary_rows(view, body).unwrap_err().to_string();
        let cases: Vec<(&[&str], Vec<Value>, &str)> = vec![
            (
                &columns,
                vec![user("u2"), time.clone(), user("high")],
                "row 2: column `credit_score`: expected int64, got a string",
            ),
            (
                &columns,
                vec![Value::Int64(5), time.clone(), Value::Null],
                "row 2: join key `user_id`: expected string, got an int64",
            ),
            (
                &columns,
                vec![Value::Null, time.clone(), Value::Null],
                "row 2: join key `user_id` is missing",
            ),
            (
                &columns,
                vec![user("u2"), Value::Null, Value::Null],
                "row 2: timestamp field `timestamp` is missing",
            ),
            (
                &columns,
                vec![user("u2"), Value::Timestamp(i64::MAX), Value::Null],
                "row 2: timestamp field `timestamp`: timestamp 9223372036854775807 µs is out of range",
            ),
            (
                &columns,
                vec![user("u2"), time.clone()],
                "row 2: 2 values for 3 columns",
            ),
            (
                &["user_id", "timestamp", "nope"],
                vec![],
                "header: `nope` is not a column of feature view `user_profile`",
            ),
            (
                &["user_id", "timestamp", "user_id"],
                vec![],
                "header: column `user_id` is named twice",
            ),
        ];
        for (names, second, message) in cases {
            let body = body_of(names, &[good.clone(), second]);
            assert_eq!(refused(user_profile, &body), message);
        }
        // Only the right columns, in another order, some left out (null): read as JSON's are.
        let body = body_of(
            &["credit_score", "user_id", "timestamp"],
            &[vec![Value::Int64(1), user("u1"), time.clone()]],
        );
        let json =
            "{\"credit_score\":\"1\",\"user_id\":\"u1\",\"timestamp\":\"2023-11-14T22:13:20Z\"}";
        assert_eq!(
            format!("{:?}", read_binary_rows(user_profile, &body).unwrap()),
            format!(
                "{:?}",
                read_rows_body(user_profile, json.as_bytes()).unwrap()
            )
        );

        let merchant = ["merchant", "timestamp", "risk_scores", "location"];
        let map = |keys: &[&str]| {
            Value::Map(
                keys.iter()
                    .map(|k| (k.to_string(), Value::Float64(0.5)))
                    .collect(),
            )
        };
        for (risk_scores, location, message) in [
            (
                map(&["a", "b", "a"]),
                Value::Null,
                "row 1: column `risk_scores`: key \"a\" given twice",
            ),
            (
                Value::Map(vec![("a".into(), Value::Float32(0.5))]),
                Value::Null,
                "row 1: column `risk_scores`: [\"a\"]: expected float64, got a float32",
            ),
            (
                map(&[]),
                Value::Struct(vec![Value::Float64(1.0)]),
                "row 1: column `location`: expected struct<lat:float64,lon:float64>, got a struct of 1 fields",
            ),
            (
                map(&[]),
                Value::Struct(vec![Value::Float64(1.0), user("x")]),
                "row 1: column `location`: .lon: expected float64, got a string",
            ),
        ] {
            let body = body_of(&merchant, &[vec![user("m"), time.clone(), risk_scores, location]]);
            assert_eq!(refused(merchant_profile, &body), message);
        }

        let body = body_of(&columns, std::slice::from_ref(&good));
        assert!(refused(user_profile, b"{\"user_id\": \"u1\"}")
            .starts_with("header: not a binary rows body"));
        let mut trailing = body.clone();
        trailing.push(0);
        assert_eq!(
            refused(user_profile, &trailing),
            "row 2: 1 bytes after the end mark"
        );
        let mut bad_utf8 = body_of(&columns, &[vec![user("ab"), time.clone(), Value::Null]]);
        let at = bad_utf8.windows(2).position(|w| w == b"ab").unwrap();
        bad_utf8[at] = 0xff;
        assert_eq!(
            refused(user_profile, &bad_utf8),
            "row 1: join key `user_id`: a string that is not UTF-8"
        );
        // "u1" with its length in two bytes: the store would write one.
        let mut long_length = body_of(&columns, &[]);
        long_length.truncate(long_length.len() - 4);
        let row = [&[3, STRING, 0x82, 0, b'u', b'1', NULL, NULL][..]].concat();
        long_length.extend_from_slice(&(row.len() as u32).to_le_bytes());
        long_length.extend_from_slice(&row);
        long_length.extend_from_slice(&[0; 4]);
        assert_eq!(
            refused(user_profile, &long_length),
            "row 1: join key `user_id`: a length not in its shortest form"
        );
    }

    /// Strings past ASCII (the check tries ASCII first) store what JSON Lines stores; bytes
    /// that are not UTF-8 are refused wherever they sit in a string.
    #[test]
    fn strings_past_ascii_are_checked_as_utf8() {
        let registry = demo();
        let user_profile = view(&registry, "user_profile");
        let columns = ["user_id", "timestamp", "home_country"];
        let time = Value::Timestamp(1_700_000_000_000_000);
        let text = |s: &str| Value::String(s.into());
        let body = body_of(
            &columns,
            &[vec![text("usér_ü€😀"), time.clone(), text("Česko")]],
        );
        let json = "{\"user_id\":\"usér_ü€😀\",\"timestamp\":\"2023-11-14T22:13:20Z\",\
                    \"home_country\":\"Česko\"}";
        assert_eq!(
            format!("{:?}", read_binary_rows(user_profile, &body).unwrap()),
            format!(
                "{:?}",
                read_rows_body(user_profile, json.as_bytes()).unwrap()
            )
        );
        // "é" is 0xc3 0xa9: its second byte replaced, after ASCII long enough for word tests.
        for (country, byte) in [("xxxxxxxxxé", 0x28), ("xxxxxxxxxxxé", b'x')] {
            let mut bad = body_of(&columns, &[vec![text("u1"), time.clone(), text(country)]]);
            let at = bad.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
            bad[at + 1] = byte;
            assert_eq!(
                read_binary_rows(user_profile, &bad)
                    .unwrap_err()
                    .to_string(),
                "row 1: column `home_country`: a string that is not UTF-8"
            );
        }
    }

    /// Floats serde_json's default parser read one unit in the last place off (the loader once
    /// sent every float through its JSON text for that), and extremes: stored as they are,
    /// whichever body carried them.
    #[test]
    fn extreme_floats_are_stored_bit_exact_either_way() {
        let registry = demo();
        let merchant_profile = view(&registry, "merchant_profile");
        let floats = [
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            0.1 + 0.2,
            6.934698245112694e276,
            8.383658838626809e-78,
            -6.801672438380202e47,
        ];
        let rows: Vec<ParsedRow> = floats
            .iter()
            .map(|f| ParsedRow {
                key: vec![Value::String("m".into())],
                event_time: 1_700_000_000_000_000,
                features: vec![Value::Float64(*f), Value::Null, Value::Null, Value::Null],
            })
            .collect();
        assert_read_alike(merchant_profile, &rows);
        let (binary, _) = bodies(merchant_profile, &rows);
        let writes = read_binary_rows(merchant_profile, &binary).unwrap();
        for (write, f) in writes.iter().zip(floats) {
            match decode_row(&write.payload).unwrap()[0] {
                Value::Float64(stored) => assert_eq!(stored.to_bits(), f.to_bits(), "{f:e}"),
                ref other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_nan_is_stored_as_the_nan_a_json_row_stores() {
        let registry = demo();
        let merchant_profile = view(&registry, "merchant_profile");
        let nan = |f: f64| ParsedRow {
            key: vec![Value::String("m".into())],
            event_time: 1_700_000_000_000_000,
            features: vec![Value::Float64(f), Value::Null, Value::Null, Value::Null],
        };
        // A NaN of another sign or payload, as a CSV's `-nan` reads: stored as JSON's.
        assert_read_alike(merchant_profile, &[nan(-f64::NAN), nan(f64::NAN)]);
        let columns = ["merchant", "timestamp", "fraud_rate_30d"];
        let time = Value::Timestamp(1_700_000_000_000_000);
        let mut body = body_of(
            &columns,
            &[vec![
                Value::String("m".into()),
                time,
                Value::Float64(f64::NAN),
            ]],
        );
        // The store writes no other NaN: its sign set by hand.
        let nan = f64::NAN.to_le_bytes();
        let at = body.windows(8).position(|w| w == nan).unwrap();
        body[at + 7] |= 0x80;
        assert_eq!(
            read_binary_rows(merchant_profile, &body)
                .unwrap_err()
                .to_string(),
            "row 1: column `fraud_rate_30d`: a NaN other than the canonical quiet NaN"
        );
    }

    /// Features next to each other in the body are one run; features left out next to each
    /// other, one run of nulls.
    #[test]
    fn a_payload_is_planned_as_runs() {
        assert_eq!(payload_plan(&[]), []);
        assert_eq!(
            payload_plan(&[Some(2), Some(3), Some(4)]),
            [Piece::Values(2..5)]
        );
        assert_eq!(
            payload_plan(&[Some(4), Some(3), None, None, Some(5), Some(6), None]),
            [
                Piece::Values(4..5),
                Piece::Values(3..4),
                Piece::Nulls(2),
                Piece::Values(5..7),
                Piece::Nulls(1),
            ]
        );
    }

    /// Columns in any order, some left out, store what the view's order stores (the payload is
    /// copied in runs of adjacent values).
    #[test]
    fn columns_in_another_order_store_the_same_rows() {
        let registry = demo();
        let view = view(&registry, "user_profile");
        let rows = demo_user_profiles(view);
        let (in_order, _) = bodies(view, &rows);
        let expected = format!("{:?}", read_binary_rows(view, &in_order).unwrap());
        let names: Vec<&str> = view_columns(view).map(|(name, _)| name).collect();
        let body_in = |places: &[usize]| body_in(view, &rows, places);
        // Reversed; and rotated so that the timestamp comes first and a feature column sits
        // between the join key and the rest.
        let reversed: Vec<usize> = (0..names.len()).rev().collect();
        let rotated: Vec<usize> = (1..names.len()).chain([0]).collect();
        for order in [reversed, rotated] {
            let read = read_binary_rows(view, &body_in(&order)).unwrap();
            assert_eq!(format!("{read:?}"), expected, "{order:?}");
        }
        // A feature column left out in the middle is null between two runs.
        let without: Vec<usize> = (0..names.len()).filter(|&i| i != 3).collect();
        let body = body_in(&without);
        let mut nulled = rows.clone();
        for row in &mut nulled {
            row.features[3 - view.join_keys.len() - 1] = Value::Null;
        }
        let (expected, _) = bodies(view, &nulled);
        assert_eq!(
            format!("{:?}", read_binary_rows(view, &body).unwrap()),
            format!("{:?}", read_binary_rows(view, &expected).unwrap())
        );
    }

    /// The two bounds are exactly the timestamps chrono accepts.
    #[test]
    fn the_timestamp_bounds_are_chronos() {
        let (min, max) = (*TIMESTAMP_MICROS.start(), *TIMESTAMP_MICROS.end());
        for (micros, holds) in [(min - 1, false), (min, true), (max, true), (max + 1, false)] {
            assert_eq!(
                DateTime::<Utc>::from_timestamp_micros(micros).is_some(),
                holds,
                "{micros}"
            );
            assert_eq!(TIMESTAMP_MICROS.contains(&micros), holds, "{micros}");
        }
    }
}

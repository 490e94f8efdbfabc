//! JSON Lines files: one object per row, keys the log's column names, timestamps as RFC 3339
//! text and non-finite floats as Tecton spells them (`"NaN"`, `"Infinity"`), so that
//! `pandas.read_json(path, lines=True)` gives the same frame as the Parquet form. Lines are
//! buffered and flushed by the writer actor, so a crash loses at most the unflushed tail.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde_json::{Map, Number, Value as Json};

use super::record::{flat, is_timestamp_column, Column};
use crate::registry::types::DataType;
use crate::registry::value::Value;
use crate::time::{format_timestamp, parse_timestamp};

pub struct JsonlWriter {
    out: BufWriter<File>,
    columns: Vec<String>,
    bytes: u64,
}

impl JsonlWriter {
    pub fn create(file: File, columns: &[Column]) -> JsonlWriter {
        JsonlWriter {
            out: BufWriter::new(file),
            columns: columns.iter().map(|c| c.name.clone()).collect(),
            bytes: 0,
        }
    }

    pub fn append(&mut self, row: Vec<Value>) -> io::Result<()> {
        let object: Map<String, Json> = self
            .columns
            .iter()
            .cloned()
            .zip(row.into_iter().map(json_of))
            .collect();
        let mut line = Json::Object(object).to_string();
        line.push('\n');
        self.out.write_all(line.as_bytes())?;
        self.bytes += line.len() as u64;
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes; answers the file, not yet synced.
    pub fn finish(self) -> io::Result<File> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

fn json_of(cell: Value) -> Json {
    let float = |f: f64| match Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::from("NaN"),
        None if f > 0.0 => Json::from("Infinity"),
        None => Json::from("-Infinity"),
    };
    match cell {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(b),
        Value::Int64(i) => Json::from(i),
        Value::Float32(f) => float(f64::from(f)),
        Value::Float64(f) => float(f),
        Value::String(s) => Json::String(s),
        Value::Timestamp(t) => Json::String(format_timestamp(t)),
        complex @ (Value::Array(_) | Value::Struct(_) | Value::Map(_)) => json_of(flat(complex)),
    }
}

/// Why a JSON Lines log file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonlReadError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("line {line}: {problem}")]
    BadLine { line: usize, problem: String },
}

/// Reads a whole file: its columns (in first-seen order, typed by their first non-null value;
/// `timestamp` and `*__effective_time` as timestamps) and its rows.
pub fn read(path: &Path) -> Result<(Vec<Column>, Vec<Vec<Value>>), JsonlReadError> {
    let mut columns: Vec<Column> = Vec::new();
    let mut kinds_known: Vec<bool> = Vec::new();
    let mut objects = Vec::new();
    for (index, line) in BufReader::new(File::open(path)?).lines().enumerate() {
        let line = line?;
        let bad = |problem: String| JsonlReadError::BadLine {
            line: index + 1,
            problem,
        };
        let Json::Object(object) = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?
        else {
            return Err(bad("not a JSON object".to_string()));
        };
        for (name, value) in &object {
            let position = match columns.iter().position(|c| &c.name == name) {
                Some(position) => position,
                None => {
                    columns.push(Column {
                        name: name.clone(),
                        data_type: DataType::String,
                    });
                    kinds_known.push(false);
                    columns.len() - 1
                }
            };
            if !kinds_known[position] && !value.is_null() {
                columns[position].data_type = match value {
                    _ if is_timestamp_column(name) => DataType::Timestamp,
                    Json::Bool(_) => DataType::Bool,
                    Json::Number(n) if n.is_i64() => DataType::Int64,
                    Json::Number(_) => DataType::Float64,
                    _ => DataType::String,
                };
                kinds_known[position] = true;
            }
        }
        objects.push(object);
    }
    let rows = objects
        .into_iter()
        .map(|mut object| {
            columns
                .iter()
                .map(|column| cell_of(column, object.remove(&column.name).unwrap_or_default()))
                .collect()
        })
        .collect();
    Ok((columns, rows))
}

fn cell_of(column: &Column, json: Json) -> Value {
    match (&column.data_type, json) {
        (_, Json::Null) => Value::Null,
        (DataType::Timestamp, Json::String(text)) => {
            parse_timestamp(&text).map_or(Value::Null, Value::Timestamp)
        }
        (DataType::Float64, Json::String(text)) => match text.as_str() {
            "NaN" => Value::Float64(f64::NAN),
            "Infinity" => Value::Float64(f64::INFINITY),
            "-Infinity" => Value::Float64(f64::NEG_INFINITY),
            _ => Value::Null,
        },
        (_, Json::Bool(b)) => Value::Bool(b),
        (DataType::Float64, Json::Number(n)) => n.as_f64().map_or(Value::Null, Value::Float64),
        (_, Json::Number(n)) => n.as_i64().map_or(Value::Null, Value::Int64),
        (_, Json::String(s)) => Value::String(s),
        (_, other) => Value::String(other.to_string()),
    }
}

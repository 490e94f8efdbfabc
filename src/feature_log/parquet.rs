//! Parquet files through the `parquet` crate's own column writer (no Arrow): rows are buffered
//! per column and written as a row group once they reach the row-group size; the footer is
//! written when the file is finished, so a file is readable only once it is rolled.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::Field;
use parquet::schema::types::{ColumnPath, Type, TypePtr};

use super::record::{Column, TIMESTAMP_COLUMN};
use crate::registry::types::DataType;
use crate::registry::value::Value;

/// Rows buffered before a row group is written, whatever their size.
const MAX_ROW_GROUP_ROWS: usize = 64 * 1024;

pub struct ParquetWriter {
    writer: SerializedFileWriter<BufWriter<File>>,
    columns: Vec<ColumnBuffer>,
    buffered_rows: usize,
    /// An estimate of the buffered rows' encoded size.
    buffered_bytes: u64,
    row_group_bytes: u64,
}

/// One column's buffered values and definition levels (0: null, 1: a value).
struct ColumnBuffer {
    levels: Vec<i16>,
    values: Values,
}

enum Values {
    Bool(Vec<bool>),
    Int64(Vec<i64>),
    Float32(Vec<f32>),
    Float64(Vec<f64>),
    Bytes(Vec<ByteArray>),
}

fn io_error(error: ParquetError) -> io::Error {
    io::Error::other(error)
}

impl ParquetWriter {
    /// Starts a file (its magic bytes) in `file`; row groups are written once they reach
    /// `row_group_bytes`.
    pub fn create(file: File, columns: &[Column], row_group_bytes: u64) -> io::Result<Self> {
        // Statistics cost a comparison per value, dictionaries a hash: both showed in profiles
        // of the writer. Only `timestamp`'s statistics (cheap, and what a reader filters a time
        // range on) are kept, per row group; Snappy still shrinks repeated strings.
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_column_statistics_enabled(
                ColumnPath::from(TIMESTAMP_COLUMN),
                EnabledStatistics::Chunk,
            )
            .build();
        let writer = SerializedFileWriter::new(
            BufWriter::new(file),
            schema(columns).map_err(io_error)?,
            Arc::new(properties),
        )
        .map_err(io_error)?;
        let columns = columns
            .iter()
            .map(|column| ColumnBuffer {
                levels: Vec::new(),
                values: match column.data_type {
                    DataType::Bool => Values::Bool(Vec::new()),
                    DataType::Int64 | DataType::Timestamp => Values::Int64(Vec::new()),
                    DataType::Float32 => Values::Float32(Vec::new()),
                    DataType::Float64 => Values::Float64(Vec::new()),
                    // Log columns are scalar (`record::Column`); anything else is text.
                    _ => Values::Bytes(Vec::new()),
                },
            })
            .collect();
        Ok(ParquetWriter {
            writer,
            columns,
            buffered_rows: 0,
            buffered_bytes: 0,
            row_group_bytes,
        })
    }

    /// Buffers a row whose cells match the columns (a cell of another kind is written as null).
    pub fn append(&mut self, row: Vec<Value>) -> io::Result<()> {
        for (buffer, cell) in self.columns.iter_mut().zip(row) {
            let bytes = match (&mut buffer.values, cell) {
                (Values::Bool(values), Value::Bool(b)) => {
                    values.push(b);
                    1
                }
                (Values::Int64(values), Value::Int64(i) | Value::Timestamp(i)) => {
                    values.push(i);
                    8
                }
                (Values::Float32(values), Value::Float32(f)) => {
                    values.push(f);
                    4
                }
                (Values::Float64(values), Value::Float64(f)) => {
                    values.push(f);
                    8
                }
                (Values::Bytes(values), Value::String(s)) => {
                    let len = s.len() as u64 + 4;
                    values.push(ByteArray::from(s.into_bytes()));
                    len
                }
                _ => {
                    buffer.levels.push(0);
                    continue;
                }
            };
            buffer.levels.push(1);
            self.buffered_bytes += bytes;
        }
        self.buffered_rows += 1;
        if self.buffered_bytes >= self.row_group_bytes || self.buffered_rows >= MAX_ROW_GROUP_ROWS {
            self.write_row_group()?;
        }
        Ok(())
    }

    /// Bytes written to the file plus an estimate of those still buffered.
    pub fn bytes(&self) -> u64 {
        self.writer.bytes_written() as u64 + self.buffered_bytes
    }

    /// Writes what is buffered and the footer; answers the file, not yet synced.
    pub fn finish(mut self) -> io::Result<File> {
        self.write_row_group()?;
        let buffered = self.writer.into_inner().map_err(io_error)?;
        buffered.into_inner().map_err(|e| e.into_error())
    }

    fn write_row_group(&mut self) -> io::Result<()> {
        if self.buffered_rows == 0 {
            return Ok(());
        }
        let mut row_group = self.writer.next_row_group().map_err(io_error)?;
        for buffer in &mut self.columns {
            let mut column = row_group
                .next_column()
                .map_err(io_error)?
                .ok_or_else(|| io::Error::other("the schema has fewer columns than the rows"))?;
            let levels = Some(buffer.levels.as_slice());
            let written = match &mut buffer.values {
                Values::Bool(v) => column.typed::<BoolType>().write_batch(v, levels, None),
                Values::Int64(v) => column.typed::<Int64Type>().write_batch(v, levels, None),
                Values::Float32(v) => column.typed::<FloatType>().write_batch(v, levels, None),
                Values::Float64(v) => column.typed::<DoubleType>().write_batch(v, levels, None),
                Values::Bytes(v) => column.typed::<ByteArrayType>().write_batch(v, levels, None),
            };
            written.map_err(io_error)?;
            column.close().map_err(io_error)?;
            buffer.levels.clear();
            match &mut buffer.values {
                Values::Bool(v) => v.clear(),
                Values::Int64(v) => v.clear(),
                Values::Float32(v) => v.clear(),
                Values::Float64(v) => v.clear(),
                Values::Bytes(v) => v.clear(),
            }
        }
        row_group.close().map_err(io_error)?;
        self.buffered_rows = 0;
        self.buffered_bytes = 0;
        Ok(())
    }
}

/// Every column optional; strings annotated UTF-8, timestamps as UTC microseconds, so that
/// pyarrow and pandas read them as `string` and `datetime64[us, UTC]`.
fn schema(columns: &[Column]) -> Result<TypePtr, ParquetError> {
    let fields = columns
        .iter()
        .map(|column| {
            let (physical, logical) = match column.data_type {
                DataType::Bool => (PhysicalType::BOOLEAN, None),
                DataType::Int64 => (PhysicalType::INT64, None),
                DataType::Float32 => (PhysicalType::FLOAT, None),
                DataType::Float64 => (PhysicalType::DOUBLE, None),
                DataType::Timestamp => (
                    PhysicalType::INT64,
                    Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
                ),
                _ => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
            };
            Type::primitive_type_builder(&column.name, physical)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(logical)
                .build()
                .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Type::group_type_builder("feature_log")
        .with_fields(fields)
        .build()
        .map(Arc::new)
}

/// Reads a whole file: its columns (from the schema) and its rows.
pub fn read(path: &Path) -> Result<(Vec<Column>, Vec<Vec<Value>>), ParquetError> {
    let reader = SerializedFileReader::try_from(path)?;
    let columns = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|column| {
            let data_type = match (column.physical_type(), column.logical_type_ref()) {
                (PhysicalType::BOOLEAN, _) => DataType::Bool,
                (PhysicalType::INT64, Some(LogicalType::Timestamp(_))) => DataType::Timestamp,
                (PhysicalType::INT64, _) => DataType::Int64,
                (PhysicalType::FLOAT, _) => DataType::Float32,
                (PhysicalType::DOUBLE, _) => DataType::Float64,
                _ => DataType::String,
            };
            Column {
                name: column.name().to_string(),
                data_type,
            }
        })
        .collect();
    let mut rows = Vec::new();
    for row in reader.get_row_iter(None)? {
        let cells = row?
            .into_columns()
            .into_iter()
            .map(|(_, field)| match field {
                Field::Bool(b) => Value::Bool(b),
                Field::Long(i) => Value::Int64(i),
                Field::TimestampMicros(t) => Value::Timestamp(t),
                Field::Float(f) => Value::Float32(f),
                Field::Double(f) => Value::Float64(f),
                Field::Str(s) => Value::String(s),
                _ => Value::Null,
            })
            .collect();
        rows.push(cells);
    }
    Ok((columns, rows))
}

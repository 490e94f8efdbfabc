//! Reading a Parquet load file (what offline stores and pyarrow write) into validated rows of one
//! view, with the `parquet` crate (no Arrow): by columns when every column is a plain value or a
//! three-level list of them (what pyarrow writes), each row group's columns read whole and walked
//! row by row; otherwise, and for a row group the column readers cannot read whole, through
//! the record API. Both hand `value_of` the same `Field`s, so rows and errors are the same.
//!
//! The schema is checked first: a column the view does not have, or of a Parquet type with no
//! feature type to map to, is refused by name before any row is read (the record reader would
//! panic on some of those), and so is a column chunk compressed with a codec not built in. Values are then checked against the view's types row by row, so a
//! mismatch names the column, the row group and the row, both counted from 0 as pyarrow does.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

use parquet::basic::{
    Compression, ConvertedType, LogicalType, Repetition, TimeUnit, Type as PhysicalType,
};
use parquet::column::reader::ColumnReader;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::reader::{
    ChunkReader, FileReader, Length, RowGroupReader, SerializedFileReader,
};
use parquet::record::Field;
use parquet::schema::types::{ColumnDescPtr, Type};

use super::file::{BadRow, Place};
use super::row::{column_places, is_view_column, parse_row, ParsedRow};
use crate::registry::types::DataType;
use crate::registry::value::Value;
use crate::registry::FeatureView;

/// What a Parquet leaf column holds, as far as a feature type cares.
#[derive(Debug, Clone, Copy)]
enum Leaf {
    Bool,
    /// Any signed or unsigned integer of 8 to 64 bits.
    Integer,
    Float,
    Double,
    Utf8,
    /// An int64 timestamp; the record API hands nanoseconds (and some unannotated units) over
    /// as a plain integer, so the unit comes from the schema.
    Timestamp(TimeUnit),
}

/// One top-level column: its name, its leaf's kind (a list's element for a list column), and
/// how the column readers read it (`None`: only the record API does).
struct ParquetColumn {
    name: String,
    leaf: Leaf,
    shape: Option<Shape>,
}

/// A column the column readers read: a plain value, or a three-level list of plain values whose
/// definition level reaches `elements_from` where the list has an element.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Plain,
    List { elements_from: i16 },
}

/// A cell as `value_of` reads it: one value (or null), or a list's elements.
#[derive(Clone, Copy)]
enum Cell<'a> {
    One(&'a Field),
    List(&'a [Field]),
}

impl<'a> Cell<'a> {
    /// The record API's field as a cell.
    fn of(field: &'a Field) -> Cell<'a> {
        match field {
            Field::ListInternal(list) => Cell::List(list.elements()),
            other => Cell::One(other),
        }
    }
}

/// A cell read by a column reader, for `Cell` to borrow.
enum ColumnCell {
    One(Field),
    List(Vec<Field>),
}

impl ColumnCell {
    fn cell(&self) -> Cell<'_> {
        match self {
            ColumnCell::One(field) => Cell::One(field),
            ColumnCell::List(elements) => Cell::List(elements),
        }
    }
}

/// Rows a row group's thread hands over at a time.
const ROW_BATCH: usize = 1024;

/// Batches a row group's thread may read ahead of the rows handed on.
const BATCHES_AHEAD: usize = 4;

/// Row groups read at once, at most: each reading thread may hold its group's decoded columns
/// whole, so a many-core machine must not hold one group a core.
const MAX_GROUPS_READ_AT_ONCE: usize = 8;

/// Hands every row to `on_row(row, bytes)`, `bytes` being the row's share of its row group's
/// compressed size, so a progress bar over the file's size moves steadily.
///
/// Row groups are read on threads, as many at once as there are cores, each sending its rows
/// in batches over a channel of its own; this thread hands them on in the file's order, so
/// the first bad row in the file is the one refused, and a group's thread reads at most a few
/// batches ahead (but a group's columns are decoded whole: as many groups at once in memory).
pub fn for_each_row(
    view: &FeatureView,
    file: File,
    mut on_row: impl FnMut(ParsedRow, usize),
) -> Result<(), BadRow> {
    let in_footer = |message: String| BadRow {
        place: Place::Footer,
        message,
    };
    let reader = PositionalFile::new(file)
        .and_then(SerializedFileReader::new)
        .map_err(|e| in_footer(format!("not a readable Parquet file: {e}")))?;
    let columns = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|field| {
            if !is_view_column(view, field.name()) {
                return Err(format!(
                    "`{}` is not a column of feature view `{}`",
                    field.name(),
                    view.name
                ));
            }
            let leaf = leaf_of(field).ok_or_else(|| {
                format!(
                    "column `{}`: its Parquet type has no feature type (expected a boolean, an \
                     integer, a float or double, a UTF-8 string, an int64 timestamp, or a list \
                     of those)",
                    field.name()
                )
            })?;
            Ok(ParquetColumn {
                name: field.name().to_string(),
                leaf,
                shape: shape_of(field),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(in_footer)?;
    check_codecs(&reader).map_err(in_footer)?;
    let places = column_places(view, columns.iter().map(|column| column.name.as_str()));
    // A plain or list column has one leaf, so top-level column `i` is leaf column `i`.
    let shapes: Option<Vec<Shape>> = columns.iter().map(|column| column.shape).collect();
    let by_columns = shapes.filter(|shapes| {
        reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .num_columns()
            == shapes.len()
    });

    let groups = RowGroups {
        view,
        reader: &reader,
        columns: &columns,
        places: &places,
        by_columns: by_columns.as_deref(),
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_GROUPS_READ_AT_ONCE);
    std::thread::scope(|scope| {
        let mut reading = std::collections::VecDeque::new();
        let mut unread = 0..reader.num_row_groups();
        loop {
            while reading.len() < threads {
                let Some(group) = unread.next() else { break };
                let (to_hand_on, batches) = std::sync::mpsc::sync_channel(BATCHES_AHEAD);
                let groups = &groups;
                let thread = scope.spawn(move || groups.read(group, to_hand_on));
                reading.push_back((batches, thread));
            }
            let Some((batches, thread)) = reading.pop_front() else {
                return Ok(());
            };
            for batch in batches {
                for (row, bytes) in batch? {
                    on_row(row, bytes);
                }
            }
            // A group's channel also ends when its thread panics: its rows must not be
            // taken for all of them.
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
    })
}

/// A batch of a row group's rows, each with its share of the group's bytes; or the group's
/// first bad row, after the rows before it.
type RowBatch = Result<Vec<(ParsedRow, usize)>, BadRow>;

/// What reading a row group needs, shared by the groups' threads.
struct RowGroups<'a> {
    view: &'a FeatureView,
    reader: &'a SerializedFileReader<PositionalFile>,
    columns: &'a [ParquetColumn],
    /// Where each of the view's columns is among the file's (`column_places`).
    places: &'a [Option<usize>],
    /// Each column's shape when the column readers read every column.
    by_columns: Option<&'a [Shape]>,
}

impl RowGroups<'_> {
    /// Reads row group `group`, sending its rows in batches to `to_hand_on`, then its bad row if
    /// it has one; stops when the rows are no longer taken.
    fn read(&self, group: usize, to_hand_on: std::sync::mpsc::SyncSender<RowBatch>) {
        let mut batch = Vec::with_capacity(ROW_BATCH);
        let read = self.for_each_row_of(group, |row, bytes| {
            batch.push((row, bytes));
            batch.len() < ROW_BATCH
                || to_hand_on
                    .send(Ok(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(ROW_BATCH),
                    )))
                    .is_ok()
        });
        // A send fails only once the rows are no longer taken: nothing is left to tell.
        let _ = to_hand_on.send(Ok(batch));
        if let Err(bad) = read {
            let _ = to_hand_on.send(Err(bad));
        }
    }

    /// Hands each row of row group `group` to `on_row(row, bytes)` while it answers true.
    fn for_each_row_of(
        &self,
        group: usize,
        mut on_row: impl FnMut(ParsedRow, usize) -> bool,
    ) -> Result<(), BadRow> {
        let RowGroups {
            view,
            reader,
            columns,
            places,
            by_columns,
        } = *self;
        let at = |row: usize, message: String| BadRow {
            place: Place::RowGroup { group, row },
            message,
        };
        let group_reader = reader
            .get_row_group(group)
            .map_err(|e| at(0, format!("cannot read: {e}")))?;
        let group_rows = group_reader.metadata().num_rows().max(1) as usize;
        let group_bytes = group_reader.metadata().compressed_size().max(0) as usize;
        let mut hand_over = |row: usize, parsed: ParsedRow| {
            on_row(
                parsed,
                group_bytes * (row + 1) / group_rows - group_bytes * row / group_rows,
            )
        };
        let read_whole = by_columns.and_then(|shapes| {
            let rows = group_reader.metadata().num_rows().try_into().ok()?;
            let columns = shapes
                .iter()
                .enumerate()
                .map(|(i, shape)| read_column(&*group_reader, i, *shape, rows))
                .collect::<Option<Vec<_>>>()?;
            Some((rows, columns))
        });
        if let Some((rows, mut group_columns)) = read_whole {
            let mut cells = Vec::with_capacity(group_columns.len());
            for row in 0..rows {
                cells.clear();
                for column in &mut group_columns {
                    cells.push(
                        column
                            .next_cell()
                            .map_err(|e| at(row, format!("cannot read: {e}")))?,
                    );
                }
                let parsed = parse_row(view, |place, _, data_type| {
                    places[place]
                        .map(|i| value_of(cells[i].cell(), columns[i].leaf, data_type))
                        .transpose()
                })
                .map_err(|message| at(row, message))?;
                if !hand_over(row, parsed) {
                    return Ok(());
                }
            }
            return Ok(());
        }
        let records = group_reader
            .get_row_iter(None)
            .map_err(|e| at(0, format!("cannot read: {e}")))?;
        for (row, record) in records.enumerate() {
            let cells: Vec<Field> = record
                .map_err(|e| at(row, format!("cannot read: {e}")))?
                .into_columns()
                .into_iter()
                .map(|(_, field)| field)
                .collect();
            let parsed = parse_row(view, |place, _, data_type| {
                places[place]
                    .map(|i| value_of(Cell::of(&cells[i]), columns[i].leaf, data_type))
                    .transpose()
            })
            .map_err(|message| at(row, message))?;
            if !hand_over(row, parsed) {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// The load file read at offsets (`pread`), never through the file's one offset as the parquet
/// crate's `File` reader does (seek, then read), so that row groups are read on several threads
/// at once.
struct PositionalFile {
    file: Arc<File>,
    len: u64,
}

impl PositionalFile {
    fn new(file: File) -> Result<PositionalFile, ParquetError> {
        let len = file.metadata()?.len();
        Ok(PositionalFile {
            file: Arc::new(file),
            len,
        })
    }
}

impl Length for PositionalFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for PositionalFile {
    type T = BufReader<ReadAt>;

    fn get_read(&self, start: u64) -> Result<BufReader<ReadAt>, ParquetError> {
        Ok(BufReader::new(ReadAt {
            file: Arc::clone(&self.file),
            pos: start,
        }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        let mut bytes = vec![0; length];
        self.file.read_exact_at(&mut bytes, start)?;
        Ok(bytes.into())
    }
}

/// Reads a file from an offset of its own.
struct ReadAt {
    file: Arc<File>,
    pos: u64,
}

impl Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// How the column readers read a top-level column: a plain (not repeated) value, or a
/// LIST-annotated group of pyarrow's three levels around a plain element. `None` for the
/// shapes the record API reads its own ways (legacy two-level lists, the `array` and `_tuple`
/// groups it takes for elements, nested lists), which the record API then reads.
fn shape_of(field: &Type) -> Option<Shape> {
    let info = field.get_basic_info();
    let present = match info.repetition() {
        Repetition::REQUIRED => 0,
        Repetition::OPTIONAL => 1,
        Repetition::REPEATED => return None,
    };
    if field.is_primitive() {
        return Some(Shape::Plain);
    }
    let [repeated] = field.get_fields() else {
        return None;
    };
    let Type::GroupType {
        basic_info: repeated_info,
        fields: elements,
    } = repeated.as_ref()
    else {
        return None;
    };
    let three_levels = info.converted_type() == ConvertedType::LIST
        && repeated_info.repetition() == Repetition::REPEATED
        && repeated_info.converted_type() != ConvertedType::LIST
        && repeated.name() != "array"
        && !repeated.name().ends_with("_tuple");
    match elements.as_slice() {
        [element]
            if three_levels
                && element.is_primitive()
                && element.get_basic_info().repetition() != Repetition::REPEATED =>
        {
            Some(Shape::List {
                elements_from: present + 1,
            })
        }
        _ => None,
    }
}

/// The non-null values of a column chunk, as its column reader decodes them.
enum Values {
    Bool(Vec<bool>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Float(Vec<f32>),
    Double(Vec<f64>),
    Bytes(Vec<ByteArray>),
}

/// A column chunk read whole, walked one row's cell at a time.
struct ColumnChunk {
    descr: ColumnDescPtr,
    shape: Shape,
    /// Definition and repetition levels, one of each per value or null (empty when the column
    /// cannot have them: a required plain column has no definition levels).
    def: Vec<i16>,
    rep: Vec<i16>,
    values: Values,
    level: usize,
    value: usize,
}

/// Reads leaf column `i` of a row group whole; `None` if the column reader fails or the levels
/// do not add up to `rows` rows of `shape` with a value for each defined level (the record API
/// then reads the row group, and words any error at its row).
fn read_column(
    group: &dyn RowGroupReader,
    i: usize,
    shape: Shape,
    rows: usize,
) -> Option<ColumnChunk> {
    let descr = group.metadata().column(i).column_descr_ptr();
    let (mut def, mut rep) = (Vec::new(), Vec::new());
    macro_rules! read {
        ($reader:expr, $kind:ident) => {{
            let mut values = Vec::new();
            let (records, _, _) = $reader
                .read_records(rows, Some(&mut def), Some(&mut rep), &mut values)
                .ok()?;
            (records == rows).then_some(Values::$kind(values))?
        }};
    }
    let values = match group.get_column_reader(i).ok()? {
        ColumnReader::BoolColumnReader(mut reader) => read!(reader, Bool),
        ColumnReader::Int32ColumnReader(mut reader) => read!(reader, Int32),
        ColumnReader::Int64ColumnReader(mut reader) => read!(reader, Int64),
        ColumnReader::FloatColumnReader(mut reader) => read!(reader, Float),
        ColumnReader::DoubleColumnReader(mut reader) => read!(reader, Double),
        ColumnReader::ByteArrayColumnReader(mut reader) => read!(reader, Bytes),
        _ => return None,
    };
    let count = match &values {
        Values::Bool(v) => v.len(),
        Values::Int32(v) => v.len(),
        Values::Int64(v) => v.len(),
        Values::Float(v) => v.len(),
        Values::Double(v) => v.len(),
        Values::Bytes(v) => v.len(),
    };
    let (max_def, max_rep) = (descr.max_def_level(), descr.max_rep_level());
    let levels_add_up = match shape {
        Shape::Plain => {
            max_rep == 0
                && if max_def == 0 {
                    count == rows
                } else {
                    def.len() == rows && def.iter().filter(|d| **d == max_def).count() == count
                }
        }
        Shape::List { elements_from } => {
            max_rep == 1
                && max_def >= elements_from
                && def.len() == rep.len()
                && rep.iter().filter(|r| **r == 0).count() == rows
                && rep.first().is_none_or(|r| *r == 0)
                && def.iter().filter(|d| **d == max_def).count() == count
        }
    };
    levels_add_up.then_some(ColumnChunk {
        descr,
        shape,
        def,
        rep,
        values,
        level: 0,
        value: 0,
    })
}

impl ColumnChunk {
    /// The next row's cell, as the record API would read it: null where the definition level
    /// stops short, a list's elements up to the next row's repetition level 0.
    fn next_cell(&mut self) -> Result<ColumnCell, ParquetError> {
        let max_def = self.descr.max_def_level();
        let Shape::List { elements_from } = self.shape else {
            let defined = self.def.get(self.level).is_none_or(|d| *d == max_def);
            self.level += 1;
            return Ok(ColumnCell::One(if defined {
                self.take()?
            } else {
                Field::Null
            }));
        };
        let first = self.def[self.level];
        if first < elements_from {
            self.level += 1;
            // Below the list's own level the list is null; at it, empty.
            return Ok(if first + 1 < elements_from {
                ColumnCell::One(Field::Null)
            } else {
                ColumnCell::List(Vec::new())
            });
        }
        let mut elements = Vec::new();
        loop {
            elements.push(if self.def[self.level] == max_def {
                self.take()?
            } else {
                Field::Null
            });
            self.level += 1;
            if self.rep.get(self.level).is_none_or(|r| *r == 0) {
                return Ok(ColumnCell::List(elements));
            }
        }
    }

    /// The next non-null value, converted as the record API converts it.
    fn take(&mut self) -> Result<Field, ParquetError> {
        let (descr, i) = (&self.descr, self.value);
        self.value += 1;
        Ok(match &self.values {
            Values::Bool(v) => Field::convert_bool(descr, v[i]),
            Values::Int32(v) => Field::convert_int32(descr, v[i]),
            Values::Int64(v) => Field::convert_int64(descr, v[i]),
            Values::Float(v) => Field::convert_float(descr, v[i]),
            Values::Double(v) => Field::convert_double(descr, v[i]),
            Values::Bytes(v) => Field::convert_byte_array(descr, v[i].clone())?,
        })
    }
}

/// Refuses a column chunk compressed with a codec this build cannot read (only Snappy, the
/// default of pyarrow, pandas, Spark and DuckDB, is built in), naming it, before any row is read.
fn check_codecs(reader: &SerializedFileReader<PositionalFile>) -> Result<(), String> {
    for (group, row_group) in reader.metadata().row_groups().iter().enumerate() {
        for chunk in row_group.columns() {
            match chunk.compression() {
                Compression::UNCOMPRESSED | Compression::SNAPPY => {}
                other => {
                    let codec = format!("{other:?}");
                    let codec = codec.split('(').next().unwrap_or_default();
                    return Err(format!(
                        "column `{}` in row group {group} is compressed with {codec}; Quiver \
                         reads uncompressed or Snappy Parquet (pyarrow: compression=\"snappy\")",
                        chunk.column_path().string()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The kind of a column's values: a supported primitive, or a list (LIST-annotated group,
/// pyarrow's three levels or the legacy two) of them. `None` for anything else.
fn leaf_of(field: &Type) -> Option<Leaf> {
    if !field.is_primitive() {
        let info = field.get_basic_info();
        let is_list = matches!(info.logical_type_ref(), Some(LogicalType::List))
            || info.converted_type() == ConvertedType::LIST;
        return match field.get_fields() {
            [child] if is_list => element_leaf(child),
            _ => None,
        };
    }
    let info = field.get_basic_info();
    match (field.get_physical_type(), info.logical_type_ref()) {
        (PhysicalType::BOOLEAN, None) => Some(Leaf::Bool),
        (PhysicalType::INT64, Some(LogicalType::Timestamp(timestamp))) => {
            Some(Leaf::Timestamp(timestamp.unit))
        }
        (PhysicalType::INT32 | PhysicalType::INT64, None | Some(LogicalType::Integer { .. }))
            if matches!(
                info.converted_type(),
                ConvertedType::NONE
                    | ConvertedType::INT_8
                    | ConvertedType::INT_16
                    | ConvertedType::INT_32
                    | ConvertedType::INT_64
                    | ConvertedType::UINT_8
                    | ConvertedType::UINT_16
                    | ConvertedType::UINT_32
                    | ConvertedType::UINT_64
            ) =>
        {
            Some(Leaf::Integer)
        }
        (PhysicalType::FLOAT, None) => Some(Leaf::Float),
        (PhysicalType::DOUBLE, None) => Some(Leaf::Double),
        (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)) => Some(Leaf::Utf8),
        (PhysicalType::BYTE_ARRAY, None) if info.converted_type() == ConvertedType::UTF8 => {
            Some(Leaf::Utf8)
        }
        _ => None,
    }
}

/// A list's repeated child: the element itself (legacy two levels), or a group whose only
/// field is the element (three levels).
fn element_leaf(repeated: &Type) -> Option<Leaf> {
    match repeated {
        Type::GroupType { fields, .. } if fields.len() == 1 => leaf_of(&fields[0]),
        _ => leaf_of(repeated),
    }
}

/// Reads one cell as `data_type`; nulls are nulls. The error says what was expected and what
/// the column holds, for `parse_row` to prefix with the column's name.
fn value_of(cell: Cell, leaf: Leaf, data_type: &DataType) -> Result<Value, String> {
    let field = match cell {
        Cell::One(field) => field,
        Cell::List(elements) => {
            let DataType::Array(element) = data_type else {
                return Err(format!("expected {data_type}, got a list"));
            };
            let values = elements
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    value_of(Cell::of(item), leaf, element).map_err(|e| format!("[{i}]: {e}"))
                })
                .collect::<Result<_, _>>()?;
            return Ok(Value::Array(values));
        }
    };
    let value = match (field, data_type) {
        (Field::Null, _) => Some(Value::Null),
        (Field::Bool(b), DataType::Bool) => Some(Value::Bool(*b)),
        (Field::Str(s), DataType::String) => Some(Value::String(s.clone())),
        (Field::Float(f), DataType::Float32) => Some(Value::Float32(*f)),
        (Field::Float(f), DataType::Float64) => Some(Value::Float64(f64::from(*f))),
        // A double into a float32 feature is narrowed, as a CSV cell's text would be.
        (Field::Double(f), DataType::Float32) => Some(Value::Float32(*f as f32)),
        (Field::Double(f), DataType::Float64) => Some(Value::Float64(*f)),
        (_, DataType::Int64) => integer(field, leaf).map(Value::Int64),
        // Integers are exact in a float feature up to 2^53; JSON and CSV accept them too.
        (_, DataType::Float32) => integer(field, leaf).map(|i| Value::Float32(i as f32)),
        (_, DataType::Float64) => integer(field, leaf).map(|i| Value::Float64(i as f64)),
        (_, DataType::Timestamp) => return timestamp(field, leaf),
        _ => None,
    };
    value.ok_or_else(|| format!("expected {data_type}, got {}", kind_of(field, leaf)))
}

/// An integer cell (not a timestamp) as i64; `None` for anything else or a u64 beyond i64.
fn integer(field: &Field, leaf: Leaf) -> Option<i64> {
    match field {
        Field::Byte(i) => Some(i64::from(*i)),
        Field::Short(i) => Some(i64::from(*i)),
        Field::Int(i) => Some(i64::from(*i)),
        Field::Long(i) if matches!(leaf, Leaf::Integer) => Some(*i),
        Field::UByte(i) => Some(i64::from(*i)),
        Field::UShort(i) => Some(i64::from(*i)),
        Field::UInt(i) => Some(i64::from(*i)),
        Field::ULong(i) => i64::try_from(*i).ok(),
        _ => None,
    }
}

/// A timestamp cell, in microseconds since the epoch (nanoseconds truncated towards the past).
fn timestamp(field: &Field, leaf: Leaf) -> Result<Value, String> {
    let out_of_range = || "the timestamp is out of range".to_string();
    let micros = match (field, leaf) {
        (Field::Null, _) => return Ok(Value::Null),
        (Field::TimestampMicros(us), _) => *us,
        (Field::TimestampMillis(ms), _) => ms.checked_mul(1000).ok_or_else(out_of_range)?,
        (Field::Long(v), Leaf::Timestamp(TimeUnit::MILLIS)) => {
            v.checked_mul(1000).ok_or_else(out_of_range)?
        }
        (Field::Long(v), Leaf::Timestamp(TimeUnit::MICROS)) => *v,
        (Field::Long(v), Leaf::Timestamp(TimeUnit::NANOS)) => v.div_euclid(1000),
        _ => {
            return Err(format!(
                "expected {}, got {}",
                DataType::Timestamp,
                kind_of(field, leaf)
            ))
        }
    };
    Ok(Value::Timestamp(micros))
}

/// How an error message names what a cell holds.
fn kind_of(field: &Field, leaf: Leaf) -> &'static str {
    match (field, leaf) {
        (Field::ListInternal(_), _) => "a list",
        (_, Leaf::Bool) => "a boolean",
        (_, Leaf::Integer) => "an integer",
        (_, Leaf::Float) => "a float",
        (_, Leaf::Double) => "a double",
        (_, Leaf::Utf8) => "a string",
        (_, Leaf::Timestamp(_)) => "a timestamp",
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use parquet::basic::Compression;
    use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    use super::ROW_BATCH;
    use crate::config::{Overrides, Settings};
    use crate::ingest::file::{open_load_file, BadRow, Place};
    use crate::ingest::row::ParsedRow;
    use crate::registry::value::Value;
    use crate::registry::{load_registry, Registry};
    use crate::time::parse_timestamp;

    /// One column chunk: its values and definition levels, and repetition levels for a list.
    struct Chunk {
        values: Values,
        def: Vec<i16>,
        rep: Option<Vec<i16>>,
    }

    enum Values {
        Bool(Vec<bool>),
        Int32(Vec<i32>),
        Int64(Vec<i64>),
        Text(Vec<&'static str>),
    }

    fn chunk(values: Values, def: &[i16]) -> Chunk {
        Chunk {
            values,
            def: def.to_vec(),
            rep: None,
        }
    }

    /// Writes `groups` (each a row group, a chunk per column) as pyarrow would: Snappy.
    fn write_parquet(path: &Path, schema: &str, groups: Vec<Vec<Chunk>>) {
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer = SerializedFileWriter::new(
            std::fs::File::create(path).unwrap(),
            Arc::new(parse_message_type(schema).unwrap()),
            Arc::new(properties),
        )
        .unwrap();
        for group in groups {
            let mut row_group = writer.next_row_group().unwrap();
            for chunk in group {
                let mut column = row_group.next_column().unwrap().unwrap();
                let (def, rep) = (Some(chunk.def.as_slice()), chunk.rep.as_deref());
                match chunk.values {
                    Values::Bool(v) => column.typed::<BoolType>().write_batch(&v, def, rep),
                    Values::Int32(v) => column.typed::<Int32Type>().write_batch(&v, def, rep),
                    Values::Int64(v) => column.typed::<Int64Type>().write_batch(&v, def, rep),
                    Values::Text(v) => {
                        let bytes: Vec<ByteArray> = v.into_iter().map(ByteArray::from).collect();
                        column
                            .typed::<ByteArrayType>()
                            .write_batch(&bytes, def, rep)
                    }
                }
                .unwrap();
                column.close().unwrap();
            }
            row_group.close().unwrap();
        }
        writer.close().unwrap();
    }

    fn demo_registry() -> Registry {
        let settings = Settings::load(Path::new("config.toml"), &Overrides::default()).unwrap();
        load_registry(&settings.workspaces).unwrap()
    }

    fn load(registry: &Registry, path: &Path) -> Result<Vec<ParsedRow>, BadRow> {
        let view = registry.view_by_name("prod", "user_profile").unwrap();
        open_load_file(path).unwrap().read_rows(view, |_| {})
    }

    fn micros(text: &str) -> i64 {
        parse_timestamp(text).unwrap()
    }

    #[test]
    fn a_parquet_file_loads_the_same_rows_as_the_csv_of_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("users.csv");
        std::fs::write(
            &csv,
            "user_id,timestamp,credit_score,account_age_days,is_verified,home_country,\
             preferred_categories,signup_time\n\
             user_1,2026-01-15T00:00:00.000001Z,712,1460,true,US,\"[\"\"grocery\"\",\"\"travel\"\"]\",2022-01-15T09:30:00.123Z\n\
             user_2,2026-01-15T00:00:00Z,655,92,false,,[],2025-10-15T18:05:12Z\n\
             user_3,2026-01-16T00:00:00Z,,,,,,\n",
        )
        .unwrap();
        // Integers of both widths, event times in nanoseconds (pyarrow's pandas default), a
        // millisecond timestamp feature, a three-level list, and nulls in every feature.
        let parquet = dir.path().join("users.parquet");
        write_parquet(
            &parquet,
            "message schema {
                required binary user_id (UTF8);
                required int64 timestamp (TIMESTAMP(NANOS,true));
                optional int32 credit_score;
                optional int64 account_age_days;
                optional boolean is_verified;
                optional binary home_country (STRING);
                optional group preferred_categories (LIST) {
                    repeated group list { optional binary element (STRING); }
                }
                optional int64 signup_time (TIMESTAMP(MILLIS,false));
            }",
            vec![
                vec![
                    chunk(Values::Text(vec!["user_1", "user_2"]), &[0, 0]),
                    chunk(
                        Values::Int64(vec![
                            micros("2026-01-15T00:00:00.000001Z") * 1000 + 999,
                            micros("2026-01-15T00:00:00Z") * 1000,
                        ]),
                        &[0, 0],
                    ),
                    chunk(Values::Int32(vec![712, 655]), &[1, 1]),
                    chunk(Values::Int64(vec![1460, 92]), &[1, 1]),
                    chunk(Values::Bool(vec![true, false]), &[1, 1]),
                    chunk(Values::Text(vec!["US"]), &[1, 0]),
                    Chunk {
                        values: Values::Text(vec!["grocery", "travel"]),
                        def: vec![3, 3, 1],
                        rep: Some(vec![0, 1, 0]),
                    },
                    chunk(
                        Values::Int64(vec![
                            micros("2022-01-15T09:30:00.123Z") / 1000,
                            micros("2025-10-15T18:05:12Z") / 1000,
                        ]),
                        &[1, 1],
                    ),
                ],
                vec![
                    chunk(Values::Text(vec!["user_3"]), &[0]),
                    chunk(
                        Values::Int64(vec![micros("2026-01-16T00:00:00Z") * 1000]),
                        &[0],
                    ),
                    chunk(Values::Int32(vec![]), &[0]),
                    chunk(Values::Int64(vec![]), &[0]),
                    chunk(Values::Bool(vec![]), &[0]),
                    chunk(Values::Text(vec![]), &[0]),
                    Chunk {
                        values: Values::Text(vec![]),
                        def: vec![0],
                        rep: Some(vec![0]),
                    },
                    chunk(Values::Int64(vec![]), &[0]),
                ],
            ],
        );
        let registry = demo_registry();
        let from_csv = load(&registry, &csv).unwrap();
        assert_eq!(from_csv.len(), 3);
        assert_eq!(load(&registry, &parquet).unwrap(), from_csv);
    }

    /// Each cell read by columns is the field the record API reads: nulls, null and empty
    /// lists, null elements, converted integers, over row groups.
    #[test]
    fn the_column_readers_read_the_record_apis_fields() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::record::Field;

        use super::{read_column, shape_of, ColumnCell, Shape};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cells.parquet");
        let list = |def: &[i16], rep: &[i16], values: Vec<&'static str>| Chunk {
            values: Values::Text(values),
            def: def.to_vec(),
            rep: Some(rep.to_vec()),
        };
        write_parquet(
            &path,
            "message schema {
                required binary user_id (UTF8);
                optional int32 small (INT_8);
                optional int64 big (UINT_64);
                optional boolean flag;
                optional group tags (LIST) {
                    repeated group list { optional binary element (STRING); }
                }
                required group codes (LIST) {
                    repeated group list { required binary element (STRING); }
                }
            }",
            vec![
                vec![
                    chunk(Values::Text(vec!["a", "b", "c", "d"]), &[0, 0, 0, 0]),
                    chunk(Values::Int32(vec![300, -1]), &[1, 0, 1, 0]),
                    chunk(Values::Int64(vec![-5]), &[0, 1, 0, 0]),
                    chunk(Values::Bool(vec![true, false, true]), &[1, 1, 0, 1]),
                    // null list; empty list; [x, null, y]; [z]
                    list(
                        &[0, 1, 3, 2, 3, 3],
                        &[0, 0, 0, 1, 1, 0],
                        vec!["x", "y", "z"],
                    ),
                    list(&[0, 1, 1, 1, 1], &[0, 0, 1, 0, 0], vec!["p", "q", "r", "s"]),
                ],
                vec![
                    chunk(Values::Text(vec!["e"]), &[0]),
                    chunk(Values::Int32(vec![]), &[0]),
                    chunk(Values::Int64(vec![7]), &[1]),
                    chunk(Values::Bool(vec![]), &[0]),
                    list(&[3, 3], &[0, 1], vec!["u", "v"]),
                    list(&[0], &[0], vec![]),
                ],
            ],
        );
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let fields = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .root_schema()
            .get_fields()
            .to_vec();
        let shapes: Vec<Shape> = fields.iter().map(|f| shape_of(f).unwrap()).collect();
        assert_eq!(shapes[4], Shape::List { elements_from: 2 });
        assert_eq!(shapes[5], Shape::List { elements_from: 1 });
        for group in 0..reader.num_row_groups() {
            let group_reader = reader.get_row_group(group).unwrap();
            let rows = group_reader.metadata().num_rows() as usize;
            let mut columns: Vec<_> = shapes
                .iter()
                .enumerate()
                .map(|(i, shape)| read_column(&*group_reader, i, *shape, rows).unwrap())
                .collect();
            let records: Vec<_> = group_reader.get_row_iter(None).unwrap().collect();
            assert_eq!(records.len(), rows);
            for record in records {
                for ((_, field), column) in
                    record.unwrap().into_columns().into_iter().zip(&mut columns)
                {
                    match (field, column.next_cell().unwrap()) {
                        (Field::ListInternal(list), ColumnCell::List(elements)) => {
                            assert_eq!(list.elements(), elements.as_slice())
                        }
                        (field, ColumnCell::One(one)) => assert_eq!(field, one),
                        (field, ColumnCell::List(elements)) => {
                            panic!("{field:?} read by columns as {elements:?}")
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_record_api_reads_the_list_shapes_it_reads_its_own_ways() {
        let shape = |schema: &str| {
            let schema = parse_message_type(schema).unwrap();
            super::shape_of(&schema.get_fields()[0])
        };
        assert_eq!(
            shape("message m { optional group a (LIST) { repeated int32 element; } }"),
            None
        );
        assert_eq!(
            shape("message m { optional group a (LIST) { repeated group array { optional int32 x; } } }"),
            None
        );
        assert_eq!(
            shape("message m { optional group a (LIST) { repeated group a_tuple { optional int32 x; } } }"),
            None
        );
        assert_eq!(shape("message m { repeated int32 a; }"), None);
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_column_row_group_and_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.parquet");
        let schema = "message schema {
            required binary user_id (UTF8);
            required int64 timestamp (TIMESTAMP(MICROS,true));
            optional binary credit_score (UTF8);
        }";
        let group = |ids: Vec<&'static str>, scores: Vec<&'static str>, def: &[i16]| {
            let times = vec![micros("2026-01-15T00:00:00Z"); ids.len()];
            vec![
                chunk(Values::Text(ids), &vec![0; def.len()]),
                chunk(Values::Int64(times), &vec![0; def.len()]),
                chunk(Values::Text(scores), def),
            ]
        };
        // The first row group's scores are all null, so the mismatch shows in the second.
        write_parquet(
            &path,
            schema,
            vec![
                group(vec!["user_1"], vec![], &[0]),
                group(vec!["user_2", "user_3"], vec!["712"], &[0, 1]),
            ],
        );
        let error = load(&demo_registry(), &path).unwrap_err();
        assert_eq!(error.place, Place::RowGroup { group: 1, row: 1 });
        assert_eq!(
            error.to_string(),
            "row group 1, row 1: column `credit_score`: expected int64, got a string"
        );
    }

    /// Row groups, read on several threads at once, are handed on in the file's order (each of
    /// more than one batch of rows); the first bad row in the file is the one refused, whichever
    /// group's thread comes upon one first.
    #[test]
    fn row_groups_are_handed_on_in_order_and_the_first_bad_row_refused() {
        let dir = tempfile::tempdir().unwrap();
        let schema = "message schema {
            required binary user_id (UTF8);
            required int64 timestamp (TIMESTAMP(MICROS,true));
            optional binary credit_score (UTF8);
        }";
        let (groups, rows) = (7, ROW_BATCH + 500);
        // Group `group`'s rows, credit scores null but at `bad` (a string: not an int64).
        let group = |group: usize, bad: Option<usize>| {
            let ids = (0..rows)
                .map(|row| &*format!("user_{}", group * rows + row).leak())
                .collect();
            let scores: Vec<i16> = (0..rows).map(|row| i16::from(bad == Some(row))).collect();
            vec![
                chunk(Values::Text(ids), &vec![0; rows]),
                chunk(
                    Values::Int64(vec![micros("2026-01-15T00:00:00Z"); rows]),
                    &vec![0; rows],
                ),
                chunk(Values::Text(vec!["712"; bad.iter().count()]), &scores),
            ]
        };
        let registry = demo_registry();
        let good = dir.path().join("good.parquet");
        write_parquet(&good, schema, (0..groups).map(|g| group(g, None)).collect());
        let ids: Vec<Value> = load(&registry, &good)
            .unwrap()
            .into_iter()
            .map(|row| row.key[0].clone())
            .collect();
        let expected: Vec<Value> = (0..groups * rows)
            .map(|i| Value::String(format!("user_{i}")))
            .collect();
        assert_eq!(ids, expected);

        let bad = dir.path().join("bad.parquet");
        let bad_rows = |g: usize| match g {
            2 => Some(rows - 1),
            5 => Some(0),
            _ => None,
        };
        write_parquet(
            &bad,
            schema,
            (0..groups).map(|g| group(g, bad_rows(g))).collect(),
        );
        let error = load(&registry, &bad).unwrap_err();
        assert_eq!(
            error.place,
            Place::RowGroup {
                group: 2,
                row: rows - 1
            }
        );
    }

    #[test]
    fn a_column_the_view_lacks_or_of_an_unmapped_type_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.parquet");
        let refusal = |schema: &str| {
            write_parquet(&path, schema, vec![]);
            load(&demo_registry(), &path).unwrap_err().to_string()
        };
        assert_eq!(
            refusal("message schema { optional int64 credit_scor; }"),
            "Parquet schema: `credit_scor` is not a column of feature view `user_profile`"
        );
        assert!(
            refusal("message schema { optional int32 credit_score (DECIMAL(9,2)); }").starts_with(
                "Parquet schema: column `credit_score`: its Parquet type has no feature type"
            )
        );
    }
}

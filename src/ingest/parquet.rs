//! Reading a Parquet load file (what offline stores and pyarrow write) into validated rows of one
//! view, with the `parquet` crate (no Arrow): by columns when every column is a plain value or a
//! three-level list of them (what pyarrow writes), each row group's columns read a batch of rows
//! at a time into buffers kept from batch to batch, the common values (text, int64 integers and
//! microsecond timestamps, booleans) turned into the row's values straight from the typed
//! buffers; otherwise, and from the first batch the column readers cannot read, through the
//! record API. Every other value goes through the record API's `Field` and `value_of` on both
//! paths, so rows and errors are the same.
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
use parquet::column::reader::ColumnReaderImpl;
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int32Type, Int64Type,
};
use parquet::errors::ParquetError;
use parquet::file::reader::{
    ChunkReader, FileReader, Length, RowGroupReader, SerializedFileReader,
};
use parquet::record::Field;
use parquet::schema::types::{ColumnDescPtr, Type};

use super::binary_rows::{BinaryRowsWriter, EncodeCell};
use super::file::{BadRow, EncodedRows, Place};
use super::row::{column_places, is_view_column, parse_row, ColumnValue, ParsedRow};
use crate::registry::types::DataType;
use crate::registry::value::Value;
use crate::registry::FeatureView;
use crate::store::row::{encode_string, encode_value, write_len, ARRAY, NULL};

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

/// Rows a row group's thread hands over at a time.
const ROW_BATCH: usize = 1024;

/// Bytes of binary records after which a row group's thread hands its batch over before
/// `ROW_BATCH` rows (`Encoded`), so that the batches waiting are bounded in bytes.
const ENCODED_BATCH_BYTES: usize = 64 * 1024;

/// Row groups read at once, at most: each reading thread holds its group's column readers (a
/// page of each column decompressed), so a many-core machine must not hold one group a core.
const MAX_GROUPS_READ_AT_ONCE: usize = 8;

/// Hands every row to `on_row(row, bytes)`, `bytes` being the row's share of its row group's
/// compressed size, so a progress bar over the file's size moves steadily.
///
/// Row groups are read on threads, as many at once as there are cores, each sending its rows
/// in batches over a channel of its own; this thread hands them on in the file's order, so
/// the first bad row in the file is the one refused, and a group's thread reads at most
/// `MakeRows::BATCHES_AHEAD` batches ahead.
pub fn for_each_row(
    view: &FeatureView,
    file: File,
    mut on_row: impl FnMut(ParsedRow, usize),
) -> Result<(), BadRow> {
    read_file(view, file, Readers::Columns, &Parsed, |batch| {
        for (row, bytes) in batch {
            on_row(row, bytes);
        }
    })
}

/// Hands every row to `on_record(record, bytes)` as `writer` encodes it (a binary rows record,
/// `BinaryRowsWriter::write`'s bytes for the row `for_each_row` reads), as `for_each_row` hands
/// on rows. The rows are encoded on the threads that read them, each value read by columns
/// straight from its column's batch into the record (`write_cells`), without a `ParsedRow`.
pub fn for_each_binary_row(
    view: &FeatureView,
    file: File,
    writer: &BinaryRowsWriter,
    mut on_record: impl FnMut(&[u8], usize),
) -> Result<(), BadRow> {
    read_file(
        view,
        file,
        Readers::Columns,
        &Encoded(writer),
        |mut rows| rows.hand_on(&mut on_record),
    )
}

/// Which readers read the row groups: the column readers where they can, or (for the tests
/// that hold the column path to the record API's rows and errors) the record API only.
#[derive(Clone, Copy, PartialEq)]
enum Readers {
    Columns,
    #[cfg(test)]
    Records,
}

/// Hands on every row group's rows, made by `make`, to `on_batch` a batch at a time in the
/// file's order; the row groups read by `readers`.
fn read_file<M: MakeRows>(
    view: &FeatureView,
    file: File,
    readers: Readers,
    make: &M,
    mut on_batch: impl FnMut(M::Batch),
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
        readers == Readers::Columns
            && reader
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
                let (to_hand_on, batches) = std::sync::mpsc::sync_channel(M::BATCHES_AHEAD);
                let groups = &groups;
                let thread = scope.spawn(move || groups.read(group, make, to_hand_on));
                reading.push_back((batches, thread));
            }
            let Some((batches, thread)) = reading.pop_front() else {
                return Ok(());
            };
            for batch in batches {
                on_batch(batch?);
            }
            // A group's channel also ends when its thread panics: its rows must not be
            // taken for all of them.
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
    })
}

/// What a row group's thread makes of its rows, handed to the file's thread in batches.
trait MakeRows: Sync {
    type Batch: Send + Default;

    /// Batches a row group's thread may read ahead of the rows handed on. The file's thread
    /// hands on one group at a time, in order, so while it takes a group's batches the next
    /// group's thread stops once this many wait: the reading runs in parallel only as far.
    const BATCHES_AHEAD: usize;

    /// Whether `batch`, holding `rows` rows, is handed on now.
    fn is_full(_batch: &Self::Batch, rows: usize) -> bool {
        rows >= ROW_BATCH
    }

    /// Adds to `batch` the row of the cells read by columns; or refuses it as `parse_row` does.
    fn by_columns(&self, row: &RowCells, batch: &mut Self::Batch) -> Result<(), String>;

    /// Adds to `batch` a row the record API read, `bytes` its share of the file.
    fn parsed(&self, row: ParsedRow, bytes: usize, batch: &mut Self::Batch);
}

/// A row of `view` read by columns, and its share of the file: the view's column at place `p`
/// (in `view_columns`) is the cell `spans[i]` of `batches[i]`, `i` being `places[p]`.
struct RowCells<'a> {
    view: &'a FeatureView,
    places: &'a [Option<usize>],
    batches: &'a [ColumnBatch],
    spans: &'a [Span],
    bytes: usize,
}

/// Rows made into `ParsedRow`s.
struct Parsed;

impl MakeRows for Parsed {
    type Batch = Vec<(ParsedRow, usize)>;
    /// A parsed row holds a `Value` a cell (hundreds of bytes a row), and a many-core machine
    /// reads up to `MAX_GROUPS_READ_AT_ONCE` groups: a few batches each.
    const BATCHES_AHEAD: usize = 4;

    fn by_columns(&self, row: &RowCells, batch: &mut Self::Batch) -> Result<(), String> {
        let parsed = parse_row(row.view, |place, _, data_type| {
            row.places[place]
                .map(|i| row.batches[i].value(row.spans[i], data_type))
                .transpose()
        })?;
        batch.push((parsed, row.bytes));
        Ok(())
    }

    fn parsed(&self, row: ParsedRow, bytes: usize, batch: &mut Self::Batch) {
        batch.push((row, bytes));
    }
}

/// Rows encoded as binary rows records by a writer.
struct Encoded<'a>(&'a BinaryRowsWriter);

impl MakeRows for Encoded<'_> {
    type Batch = EncodedRows;
    /// A batch is at most `ENCODED_BATCH_BYTES` (and a row), so a reading thread holds at most
    /// ~8 MiB ahead however wide the rows, on top of the bodies `quiver load` keeps until the
    /// file has validated (`--body-memory-mib`): ~128k rows of a small view (~70 bytes a row), a
    /// row group as pyarrow's writers often cut them. With 4 batches the next group's thread
    /// stopped after 4k rows, and a 1M-row file was read on about one core of two.
    const BATCHES_AHEAD: usize = 128;

    fn is_full(batch: &EncodedRows, rows: usize) -> bool {
        rows >= ROW_BATCH || batch.records.len() >= ENCODED_BATCH_BYTES
    }

    fn by_columns(&self, row: &RowCells, batch: &mut Self::Batch) -> Result<(), String> {
        self.0.write_cells(
            row.view,
            |place, data_type| {
                row.places[place]
                    .map(|i| row.batches[i].cell(row.spans[i], data_type))
                    .transpose()
            },
            &mut batch.records,
        )?;
        batch.end_record(row.bytes);
        Ok(())
    }

    fn parsed(&self, row: ParsedRow, bytes: usize, batch: &mut Self::Batch) {
        self.0.write(&row, &mut batch.records);
        batch.end_record(bytes);
    }
}

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
    /// Reads row group `group`, sending its rows, made by `make`, in batches to `to_hand_on`,
    /// then its bad row if it has one (after the rows before it); stops when the rows are no
    /// longer taken.
    fn read<M: MakeRows>(
        &self,
        group: usize,
        make: &M,
        to_hand_on: std::sync::mpsc::SyncSender<Result<M::Batch, BadRow>>,
    ) {
        let mut batch = M::Batch::default();
        let mut rows = 0;
        let read = self.for_each_row_of(group, make, &mut batch, |batch| {
            rows += 1;
            if !M::is_full(batch, rows) {
                return true;
            }
            rows = 0;
            to_hand_on.send(Ok(std::mem::take(batch))).is_ok()
        });
        // A send fails only once the rows are no longer taken: nothing is left to tell.
        let _ = to_hand_on.send(Ok(batch));
        if let Err(bad) = read {
            let _ = to_hand_on.send(Err(bad));
        }
    }

    /// Adds each row of row group `group`, made by `make`, to `batch`, calling `added(batch)`
    /// after each while it answers true.
    fn for_each_row_of<M: MakeRows>(
        &self,
        group: usize,
        make: &M,
        batch: &mut M::Batch,
        mut added: impl FnMut(&mut M::Batch) -> bool,
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
        let bytes_of =
            |row: usize| group_bytes * (row + 1) / group_rows - group_bytes * row / group_rows;
        // By columns, a batch of rows at a time; from the first batch the column readers cannot
        // read (or whose levels do not add up), the record API reads the rest of the group.
        let mut by_record_from = 0;
        let rows = usize::try_from(group_reader.metadata().num_rows()).ok();
        let opened = by_columns.zip(rows).and_then(|(shapes, rows)| {
            let batches = shapes
                .iter()
                .zip(columns)
                .enumerate()
                .map(|(i, (shape, column))| {
                    ColumnBatch::open(&*group_reader, i, *shape, column.leaf)
                })
                .collect::<Option<Vec<_>>>()?;
            Some((batches, rows))
        });
        if let Some((mut batches, rows)) = opened {
            let mut spans = Vec::with_capacity(batches.len());
            while by_record_from < rows {
                let batch_rows = ROW_BATCH.min(rows - by_record_from);
                if !batches.iter_mut().all(|batch| batch.read(batch_rows)) {
                    break;
                }
                for row in by_record_from..by_record_from + batch_rows {
                    spans.clear();
                    for batch in &mut batches {
                        spans.push(
                            batch
                                .next_span()
                                .map_err(|e| at(row, format!("cannot read: {e}")))?,
                        );
                    }
                    let cells = RowCells {
                        view,
                        places,
                        batches: &batches,
                        spans: &spans,
                        bytes: bytes_of(row),
                    };
                    make.by_columns(&cells, batch)
                        .map_err(|message| at(row, message))?;
                    if !added(batch) {
                        return Ok(());
                    }
                }
                by_record_from += batch_rows;
            }
            if by_record_from == rows {
                return Ok(());
            }
        }
        let records = group_reader
            .get_row_iter(None)
            .map_err(|e| at(0, format!("cannot read: {e}")))?;
        for (row, record) in records.enumerate() {
            let record = record.map_err(|e| at(row, format!("cannot read: {e}")))?;
            if row < by_record_from {
                continue;
            }
            let cells: Vec<Field> = record
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
            make.parsed(parsed, bytes_of(row), batch);
            if !added(batch) {
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

/// A column reader and the typed values of its current batch, the buffer kept from batch to
/// batch (so that no fresh memory is faulted in per row group).
enum Typed {
    Bool(ColumnReaderImpl<BoolType>, Vec<bool>),
    Int32(ColumnReaderImpl<Int32Type>, Vec<i32>),
    Int64(ColumnReaderImpl<Int64Type>, Vec<i64>),
    Float(ColumnReaderImpl<FloatType>, Vec<f32>),
    Double(ColumnReaderImpl<DoubleType>, Vec<f64>),
    Bytes(ColumnReaderImpl<ByteArrayType>, Vec<ByteArray>),
}

/// The values a column's cells are read as without a record API `Field` (anything else goes
/// through one, and `value_of`, so both paths word every value and refusal alike).
#[derive(Clone, Copy, PartialEq)]
enum Direct {
    /// UTF-8 text the record API reads as a `Field::Str`.
    Text,
    /// An int64 integer the record API reads as a `Field::Long`.
    Long,
    /// An int64 timestamp in microseconds.
    Micros,
    Other,
}

/// One column of a row group read a batch of rows at a time, walked one row's cell at a time.
struct ColumnBatch {
    descr: ColumnDescPtr,
    shape: Shape,
    leaf: Leaf,
    direct: Direct,
    typed: Typed,
    /// The batch's definition and repetition levels, one of each per value or null (empty when
    /// the column cannot have them: a required plain column has no definition levels).
    def: Vec<i16>,
    rep: Vec<i16>,
    /// The next row's first level and first value.
    level: usize,
    value: usize,
    /// The batch's first value that is not UTF-8 in a column the record API reads as text,
    /// which it fails to read: the row holding it is refused before its values are checked.
    bad_text: Option<usize>,
    /// A text column's values in the batch up to `bad_text`, each checked as UTF-8 once (not
    /// again each time it is read), back to back; value `i` ends at `text_ends[i]`.
    text: String,
    text_ends: Vec<usize>,
}

/// Where a row's cell is in its column's batch.
#[derive(Clone, Copy)]
enum Span {
    Null,
    /// The value at this index.
    One(usize),
    /// A list: its elements' levels `from..to` (none for an empty list), its first value.
    List {
        from: usize,
        to: usize,
        value: usize,
    },
}

impl ColumnBatch {
    /// Opens leaf column `i` of a row group; `None` if it has no column reader to read by batch.
    fn open(group: &dyn RowGroupReader, i: usize, shape: Shape, leaf: Leaf) -> Option<ColumnBatch> {
        let descr = group.metadata().column(i).column_descr_ptr();
        let typed = match group.get_column_reader(i).ok()? {
            ColumnReader::BoolColumnReader(reader) => Typed::Bool(reader, Vec::new()),
            ColumnReader::Int32ColumnReader(reader) => Typed::Int32(reader, Vec::new()),
            ColumnReader::Int64ColumnReader(reader) => Typed::Int64(reader, Vec::new()),
            ColumnReader::FloatColumnReader(reader) => Typed::Float(reader, Vec::new()),
            ColumnReader::DoubleColumnReader(reader) => Typed::Double(reader, Vec::new()),
            ColumnReader::ByteArrayColumnReader(reader) => Typed::Bytes(reader, Vec::new()),
            _ => return None,
        };
        let direct = match (&typed, descr.converted_type(), leaf) {
            (
                Typed::Bytes(..),
                ConvertedType::UTF8 | ConvertedType::ENUM | ConvertedType::JSON,
                _,
            ) => Direct::Text,
            (Typed::Int64(..), ConvertedType::NONE | ConvertedType::INT_64, Leaf::Integer) => {
                Direct::Long
            }
            (
                Typed::Int64(..),
                ConvertedType::NONE | ConvertedType::TIMESTAMP_MICROS,
                Leaf::Timestamp(TimeUnit::MICROS),
            ) => Direct::Micros,
            _ => Direct::Other,
        };
        Some(ColumnBatch {
            descr,
            shape,
            leaf,
            direct,
            typed,
            def: Vec::new(),
            rep: Vec::new(),
            level: 0,
            value: 0,
            bad_text: None,
            text: String::new(),
            text_ends: Vec::new(),
        })
    }

    /// Reads the next `rows` rows in place of the last batch; false if the column reader fails
    /// or the levels do not add up to `rows` rows of the column's shape with a value for each
    /// defined level (the record API then reads them, and words any error at its row).
    fn read(&mut self, rows: usize) -> bool {
        let (def, rep) = (&mut self.def, &mut self.rep);
        def.clear();
        rep.clear();
        macro_rules! read {
            ($reader:expr, $values:expr) => {{
                $values.clear();
                match $reader.read_records(rows, Some(&mut *def), Some(&mut *rep), $values) {
                    Ok((records, _, _)) if records == rows => $values.len(),
                    _ => return false,
                }
            }};
        }
        let count = match &mut self.typed {
            Typed::Bool(reader, values) => read!(reader, values),
            Typed::Int32(reader, values) => read!(reader, values),
            Typed::Int64(reader, values) => read!(reader, values),
            Typed::Float(reader, values) => read!(reader, values),
            Typed::Double(reader, values) => read!(reader, values),
            Typed::Bytes(reader, values) => read!(reader, values),
        };
        let (max_def, max_rep) = (self.descr.max_def_level(), self.descr.max_rep_level());
        let levels_add_up = match self.shape {
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
        self.bad_text = None;
        self.text.clear();
        self.text_ends.clear();
        if let (Typed::Bytes(_, values), Direct::Text) = (&self.typed, self.direct) {
            for (i, value) in values.iter().enumerate() {
                let Ok(text) = std::str::from_utf8(value.data()) else {
                    self.bad_text = Some(i);
                    break;
                };
                self.text.push_str(text);
                self.text_ends.push(self.text.len());
            }
        }
        (self.level, self.value) = (0, 0);
        levels_add_up
    }

    /// The next row's cell: null where the definition level stops short, a list's elements up
    /// to the next row's repetition level 0. Fails, as the record API does, on a value it
    /// cannot read.
    fn next_span(&mut self) -> Result<Span, ParquetError> {
        let max_def = self.descr.max_def_level();
        let first_value = self.value;
        let span = match self.shape {
            Shape::Plain => {
                let defined = self.def.get(self.level).is_none_or(|d| *d == max_def);
                self.level += 1;
                if defined {
                    self.value += 1;
                    Span::One(first_value)
                } else {
                    Span::Null
                }
            }
            Shape::List { elements_from } => {
                let from = self.level;
                let first = self.def[from];
                self.level += 1;
                if first + 1 < elements_from {
                    // Below the list's own level the list is null; at it, empty.
                    Span::Null
                } else if first < elements_from {
                    Span::List {
                        from,
                        to: from,
                        value: first_value,
                    }
                } else {
                    self.value += usize::from(first == max_def);
                    while self.rep.get(self.level).is_some_and(|r| *r != 0) {
                        self.value += usize::from(self.def[self.level] == max_def);
                        self.level += 1;
                    }
                    Span::List {
                        from,
                        to: self.level,
                        value: first_value,
                    }
                }
            }
        };
        if let Some(bad) = self
            .bad_text
            .filter(|bad| (first_value..self.value).contains(bad))
        {
            self.field(bad)?;
        }
        Ok(span)
    }

    /// A cell (`next_span`'s) as `data_type`, as `value_of` reads the record API's field.
    fn value(&self, span: Span, data_type: &DataType) -> Result<Value, String> {
        match span {
            Span::Null => Ok(Value::Null),
            Span::One(i) => self.one(i, data_type),
            Span::List { from, to, value } => {
                let DataType::Array(element) = data_type else {
                    return Err(format!("expected {data_type}, got a list"));
                };
                let values = self
                    .elements(from, to, value)
                    .enumerate()
                    .map(|(at, element_value)| match element_value {
                        None => Ok(Value::Null),
                        Some(i) => self.one(i, element).map_err(|e| format!("[{at}]: {e}")),
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Value::Array(values))
            }
        }
    }

    /// A list's elements (`Span::List`'s levels `from..to`, its first value `value`) in order:
    /// the index of each one's value, `None` for a null element.
    fn elements(
        &self,
        from: usize,
        to: usize,
        value: usize,
    ) -> impl Iterator<Item = Option<usize>> + '_ {
        let max_def = self.descr.max_def_level();
        let mut next = value;
        self.def[from..to].iter().map(move |def| {
            (*def == max_def).then(|| {
                next += 1;
                next - 1
            })
        })
    }

    /// Value `i` of the batch as `data_type`: the common cases straight from the typed values,
    /// the rest through the record API's field.
    fn one(&self, i: usize, data_type: &DataType) -> Result<Value, String> {
        if let Some(plain) = self.plain(i, data_type) {
            return Ok(plain.into_value());
        }
        // `next_span` has refused a row with a value the record API cannot read.
        let field = self.field(i).map_err(|e| format!("cannot read: {e}"))?;
        value_of(Cell::One(&field), self.leaf, data_type)
    }

    /// Value `i` of the batch as `data_type` straight from the typed values, in the common
    /// cases (`Direct`); `None` for the rest.
    fn plain(&self, i: usize, data_type: &DataType) -> Option<Plain<'_>> {
        match (&self.typed, self.direct, data_type) {
            (_, Direct::Text, DataType::String) => self.text(i).map(Plain::Text),
            (Typed::Int64(_, values), Direct::Long, DataType::Int64) => {
                Some(Plain::Int64(values[i]))
            }
            (Typed::Int64(_, values), Direct::Micros, DataType::Timestamp) => {
                Some(Plain::Timestamp(values[i]))
            }
            (Typed::Bool(_, values), _, DataType::Bool) => Some(Plain::Bool(values[i])),
            _ => None,
        }
    }

    /// A cell (`next_span`'s) as `data_type` for a binary rows record: the value `value` reads,
    /// nulls, plain values and lists of text left in the batch to be encoded from there.
    fn cell(&self, span: Span, data_type: &DataType) -> Result<ParquetCell<'_>, String> {
        match (span, data_type) {
            (Span::Null, _) => return Ok(ParquetCell::Null),
            (Span::One(i), _) => {
                if let Some(plain) = self.plain(i, data_type) {
                    return Ok(ParquetCell::Plain(plain));
                }
            }
            (Span::List { from, to, value }, DataType::Array(element))
                if self.direct == Direct::Text && **element == DataType::String =>
            {
                return Ok(ParquetCell::Texts {
                    batch: self,
                    from,
                    to,
                    value,
                });
            }
            _ => {}
        }
        self.value(span, data_type).map(ParquetCell::Value)
    }

    /// Value `i` of the batch as text: `None` but in a text column before `bad_text`.
    fn text(&self, i: usize) -> Option<&str> {
        let end = *self.text_ends.get(i)?;
        let start = i.checked_sub(1).map_or(0, |before| self.text_ends[before]);
        Some(&self.text[start..end])
    }

    /// Value `i` of the batch as the record API converts it.
    fn field(&self, i: usize) -> Result<Field, ParquetError> {
        let descr = &self.descr;
        Ok(match &self.typed {
            Typed::Bool(_, v) => Field::convert_bool(descr, v[i]),
            Typed::Int32(_, v) => Field::convert_int32(descr, v[i]),
            Typed::Int64(_, v) => Field::convert_int64(descr, v[i]),
            Typed::Float(_, v) => Field::convert_float(descr, v[i]),
            Typed::Double(_, v) => Field::convert_double(descr, v[i]),
            Typed::Bytes(_, v) => Field::convert_byte_array(descr, v[i].clone())?,
        })
    }
}

/// A value read straight from a column's typed values (`ColumnBatch::plain`).
#[derive(Clone, Copy)]
enum Plain<'a> {
    Text(&'a str),
    Int64(i64),
    Timestamp(i64),
    Bool(bool),
}

impl Plain<'_> {
    fn into_value(self) -> Value {
        match self {
            Plain::Text(text) => Value::String(text.to_owned()),
            Plain::Int64(i) => Value::Int64(i),
            Plain::Timestamp(micros) => Value::Timestamp(micros),
            Plain::Bool(b) => Value::Bool(b),
        }
    }
}

/// A cell for a binary rows record (`Encoded`): nulls, plain values and lists of text encoded
/// straight from the column's batch; anything else through its `Value`.
enum ParquetCell<'a> {
    Null,
    Plain(Plain<'a>),
    /// A list read as `array<string>`: `batch`'s levels `from..to`, its first value `value`.
    Texts {
        batch: &'a ColumnBatch,
        from: usize,
        to: usize,
        value: usize,
    },
    Value(Value),
}

impl ColumnValue for ParquetCell<'_> {
    fn is_null(&self) -> bool {
        match self {
            ParquetCell::Null => true,
            ParquetCell::Value(value) => value.is_null(),
            ParquetCell::Plain(_) | ParquetCell::Texts { .. } => false,
        }
    }
}

impl EncodeCell for ParquetCell<'_> {
    /// Appends `encode_value`'s encoding of the value `ColumnBatch::value` reads.
    fn encode(self, out: &mut Vec<u8>) {
        match self {
            ParquetCell::Null => out.push(NULL),
            ParquetCell::Plain(Plain::Text(text)) => encode_string(text, out),
            // No allocation: the value is a scalar.
            ParquetCell::Plain(scalar) => encode_value(&scalar.into_value(), out),
            ParquetCell::Texts {
                batch,
                from,
                to,
                value,
            } => {
                out.push(ARRAY);
                write_len(to - from, out);
                for element in batch.elements(from, to, value) {
                    match element {
                        None => out.push(NULL),
                        Some(i) => encode_string(
                            batch
                                .text(i)
                                .expect("next_span refuses a row with text that is not UTF-8"),
                            out,
                        ),
                    }
                }
            }
            ParquetCell::Value(value) => encode_value(&value, out),
        }
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
    use parquet::data_type::{
        BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type,
    };
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
        Double(Vec<f64>),
        /// Text, which need not be UTF-8.
        Bytes(Vec<Vec<u8>>),
    }

    fn text(values: Vec<&str>) -> Values {
        Values::Bytes(values.into_iter().map(|s| s.as_bytes().to_vec()).collect())
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
                    Values::Double(v) => column.typed::<DoubleType>().write_batch(&v, def, rep),
                    Values::Bytes(v) => {
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
                    chunk(text(vec!["user_1", "user_2"]), &[0, 0]),
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
                    chunk(text(vec!["US"]), &[1, 0]),
                    Chunk {
                        values: text(vec!["grocery", "travel"]),
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
                    chunk(text(vec!["user_3"]), &[0]),
                    chunk(
                        Values::Int64(vec![micros("2026-01-16T00:00:00Z") * 1000]),
                        &[0],
                    ),
                    chunk(Values::Int32(vec![]), &[0]),
                    chunk(Values::Int64(vec![]), &[0]),
                    chunk(Values::Bool(vec![]), &[0]),
                    chunk(text(vec![]), &[0]),
                    Chunk {
                        values: text(vec![]),
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

    /// Each cell read by column batches, of any batch size, is the value (or the refusal)
    /// `value_of` makes of the field the record API reads, as any of several types: nulls, null
    /// and empty lists, null elements, converted integers, timestamps, over row groups.
    #[test]
    fn column_batches_read_each_cell_as_value_of_reads_the_record_apis_field() {
        use parquet::file::reader::{FileReader, SerializedFileReader};

        use super::{leaf_of, shape_of, value_of, Cell, ColumnBatch, EncodeCell, Shape};
        use crate::registry::types::DataType;
        use crate::store::row::encode_value;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cells.parquet");
        let list = |def: &[i16], rep: &[i16], values: Vec<&'static str>| Chunk {
            values: text(values),
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
                optional int64 at (TIMESTAMP(MICROS,true));
                optional int64 count;
            }",
            vec![
                vec![
                    chunk(text(vec!["a", "b", "c", "d"]), &[0, 0, 0, 0]),
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
                    chunk(Values::Int64(vec![1, -2, 3]), &[1, 0, 1, 1]),
                    chunk(Values::Int64(vec![i64::MIN, 0]), &[1, 1, 0, 0]),
                ],
                vec![
                    chunk(text(vec!["e"]), &[0]),
                    chunk(Values::Int32(vec![]), &[0]),
                    chunk(Values::Int64(vec![7]), &[1]),
                    chunk(Values::Bool(vec![]), &[0]),
                    list(&[3, 3], &[0, 1], vec!["u", "v"]),
                    list(&[0], &[0], vec![]),
                    chunk(Values::Int64(vec![]), &[0]),
                    chunk(Values::Int64(vec![i64::MAX]), &[1]),
                ],
            ],
        );
        let types = [
            DataType::String,
            DataType::Int64,
            DataType::Float64,
            DataType::Bool,
            DataType::Timestamp,
            DataType::Array(Box::new(DataType::String)),
            DataType::Array(Box::new(DataType::Int64)),
        ];
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
        for batch_rows in 1..=4 {
            for group in 0..reader.num_row_groups() {
                let group_reader = reader.get_row_group(group).unwrap();
                let rows = group_reader.metadata().num_rows() as usize;
                let mut batches: Vec<_> = (0..fields.len())
                    .map(|i| {
                        let leaf = leaf_of(&fields[i]).unwrap();
                        ColumnBatch::open(&*group_reader, i, shapes[i], leaf).unwrap()
                    })
                    .collect();
                let records: Vec<_> = group_reader.get_row_iter(None).unwrap().collect();
                assert_eq!(records.len(), rows);
                for (row, record) in records.into_iter().enumerate() {
                    let fields_read = record.unwrap().into_columns();
                    for (i, (_, field)) in fields_read.iter().enumerate() {
                        let batch = &mut batches[i];
                        if row % batch_rows == 0 {
                            assert!(batch.read(batch_rows.min(rows - row)));
                        }
                        let span = batch.next_span().unwrap();
                        for data_type in &types {
                            let value = batch.value(span, data_type);
                            let at = format!("group {group}, row {row}, column {i}, {data_type}");
                            assert_eq!(
                                value,
                                value_of(Cell::of(field), batch.leaf, data_type),
                                "{at}"
                            );
                            // And a binary rows record's cell encodes as the value would.
                            let encoded = batch.cell(span, data_type).map(|cell| {
                                let mut out = Vec::new();
                                cell.encode(&mut out);
                                out
                            });
                            let expected = value.map(|value| {
                                let mut out = Vec::new();
                                encode_value(&value, &mut out);
                                out
                            });
                            assert_eq!(encoded, expected, "{at}");
                        }
                    }
                }
            }
        }
    }

    /// Random files (of plain and list columns of the types pyarrow writes, sometimes of the
    /// wrong type, with nulls, values out of range and text that is not UTF-8, over row groups
    /// longer than a batch) load the same rows, or the same refusal, by columns as by records;
    /// and encoded by columns, the records of those rows.
    mod by_columns_as_by_records {
        use std::path::Path;

        use proptest::prelude::*;

        use super::super::{read_file, Encoded, Parsed, Readers};
        use super::{demo_registry, write_parquet, Chunk, Values};
        use crate::ingest::binary_rows::BinaryRowsWriter;
        use crate::ingest::row::ParsedRow;

        /// A column's Parquet type: what its values are written as.
        #[derive(Debug, Clone, Copy)]
        enum Kind {
            Text,
            Long,
            Byte,
            ULong,
            Bool,
            Double,
            Micros,
            Millis,
            Nanos,
            LocalMicros,
        }

        impl Kind {
            fn schema(self, name: &str, repetition: &str) -> String {
                let (physical, annotation) = match self {
                    Kind::Text => ("binary", " (UTF8)"),
                    Kind::Long => ("int64", ""),
                    Kind::Byte => ("int32", " (INT_8)"),
                    Kind::ULong => ("int64", " (UINT_64)"),
                    Kind::Bool => ("boolean", ""),
                    Kind::Double => ("double", ""),
                    Kind::Micros => ("int64", " (TIMESTAMP(MICROS,true))"),
                    Kind::Millis => ("int64", " (TIMESTAMP(MILLIS,true))"),
                    Kind::Nanos => ("int64", " (TIMESTAMP(NANOS,true))"),
                    Kind::LocalMicros => ("int64", " (TIMESTAMP(MICROS,false))"),
                };
                format!("{repetition} {physical} {name}{annotation};")
            }

            /// The values `numbers` stand for; a text `0` is not UTF-8.
            fn values(self, numbers: &[i64]) -> Values {
                match self {
                    Kind::Text => Values::Bytes(
                        numbers
                            .iter()
                            .map(|n| match n {
                                0 => vec![b'x', 0xff],
                                n => format!("s{n}").into_bytes(),
                            })
                            .collect(),
                    ),
                    Kind::Byte => Values::Int32(numbers.iter().map(|n| *n as i32).collect()),
                    Kind::Bool => Values::Bool(numbers.iter().map(|n| n % 2 == 0).collect()),
                    Kind::Double => Values::Double(numbers.iter().map(|n| *n as f64).collect()),
                    _ => Values::Int64(numbers.to_vec()),
                }
            }
        }

        /// A generated column: its kind, whether a plain one is required (then it has no
        /// nulls), whether it is a list (of required elements or not), its cells.
        #[derive(Debug, Clone)]
        struct Column {
            name: &'static str,
            kind: Kind,
            required: bool,
            list: Option<bool>,
            cells: Vec<Option<Vec<Option<i64>>>>,
        }

        impl Column {
            fn schema(&self) -> String {
                match self.list {
                    None => self.kind.schema(
                        self.name,
                        if self.required {
                            "required"
                        } else {
                            "optional"
                        },
                    ),
                    Some(required_elements) => format!(
                        "optional group {} (LIST) {{ repeated group list {{ {} }} }}",
                        self.name,
                        self.kind.schema(
                            "element",
                            if required_elements {
                                "required"
                            } else {
                                "optional"
                            }
                        )
                    ),
                }
            }

            /// The column chunk of rows `rows`.
            fn chunk(&self, rows: std::ops::Range<usize>) -> Chunk {
                let (mut numbers, mut def, mut rep) = (Vec::new(), Vec::new(), Vec::new());
                for cell in &self.cells[rows] {
                    let Some(required_elements) = self.list else {
                        // A plain cell is its list's first element.
                        let value = cell
                            .as_ref()
                            .and_then(|items| items.first().copied().flatten());
                        match value {
                            Some(n) => numbers.push(n),
                            None if self.required => numbers.push(1),
                            None => {}
                        }
                        def.push(i16::from(value.is_some() || self.required));
                        continue;
                    };
                    match cell {
                        None => {
                            def.push(0);
                            rep.push(0);
                        }
                        Some(items) if items.is_empty() => {
                            def.push(1);
                            rep.push(0);
                        }
                        Some(items) => {
                            for (i, item) in items.iter().enumerate() {
                                rep.push(i16::from(i > 0));
                                match item {
                                    Some(n) => {
                                        numbers.push(*n);
                                        def.push(if required_elements { 2 } else { 3 });
                                    }
                                    None if required_elements => {
                                        numbers.push(1);
                                        def.push(2);
                                    }
                                    None => def.push(2),
                                }
                            }
                        }
                    };
                }
                Chunk {
                    values: self.kind.values(&numbers),
                    def,
                    rep: self.list.map(|_| rep),
                }
            }
        }

        /// A number: mostly an ordinary one (text `0`, not UTF-8, in one of 5,000), rarely
        /// anything (a millisecond timestamp out of range, an unsigned integer past i64).
        fn number() -> impl Strategy<Value = i64> {
            prop_oneof![
                1_500 => 0..5_000i64,
                1_500 => 1_000_000_000_000i64..2_000_000_000_000_000,
                1 => any::<i64>(),
            ]
        }

        /// A column named `name`, mostly of a `usual` kind and a list or not as `list` says;
        /// `nulls` in 50,000 of its cells null, as many empty lists, and as many null elements.
        fn column(
            name: &'static str,
            usual: Vec<Kind>,
            list: bool,
            nulls: u32,
            rows: usize,
        ) -> impl Strategy<Value = Column> {
            let any_kind = prop::sample::select(vec![
                Kind::Text,
                Kind::Long,
                Kind::Byte,
                Kind::ULong,
                Kind::Bool,
                Kind::Double,
                Kind::Micros,
                Kind::Millis,
                Kind::Nanos,
                Kind::LocalMicros,
            ]);
            let kind = prop_oneof![40 => prop::sample::select(usual), 1 => any_kind];
            let items = prop::collection::vec(
                prop_oneof![50_000 => number().prop_map(Some), nulls => Just(None)],
                1..4,
            );
            let cell = prop_oneof![
                50_000 => items.prop_map(Some),
                nulls => Just(Some(Vec::new())),
                nulls => Just(None),
            ];
            let list = prop_oneof![
                40 => Just(list),
                1 => Just(!list),
            ]
            .prop_flat_map(|list| {
                if list {
                    any::<bool>().prop_map(Some).boxed()
                } else {
                    Just(None).boxed()
                }
            });
            (
                kind,
                prop_oneof![1 => Just(true), 3 => Just(false)],
                list,
                prop::collection::vec(cell, rows),
            )
                .prop_map(move |(kind, required, list, cells)| Column {
                    name,
                    kind,
                    required,
                    list,
                    cells,
                })
        }

        /// `user_profile`'s columns and where the file's row groups end.
        fn file() -> impl Strategy<Value = (Vec<Column>, Vec<usize>)> {
            (0..2_500usize).prop_flat_map(|rows| {
                (
                    vec![
                        column("user_id", vec![Kind::Text], false, 1, rows),
                        column(
                            "timestamp",
                            vec![Kind::Micros, Kind::Millis, Kind::Nanos],
                            false,
                            1,
                            rows,
                        ),
                        column(
                            "credit_score",
                            vec![Kind::Long, Kind::Byte, Kind::ULong],
                            false,
                            5_000,
                            rows,
                        ),
                        column("account_age_days", vec![Kind::Long], false, 5_000, rows),
                        column("is_verified", vec![Kind::Bool], false, 5_000, rows),
                        column("home_country", vec![Kind::Text], false, 5_000, rows),
                        column("preferred_categories", vec![Kind::Text], true, 5_000, rows),
                        column(
                            "signup_time",
                            vec![Kind::Micros, Kind::LocalMicros, Kind::Millis],
                            false,
                            5_000,
                            rows,
                        ),
                    ],
                    prop::collection::vec(0..=rows, 0..3),
                )
            })
        }

        /// The file's rows read by `readers`, or its refusal.
        fn load(path: &Path, readers: Readers) -> Result<Vec<ParsedRow>, String> {
            let registry = demo_registry();
            let view = registry.view_by_name("prod", "user_profile").unwrap();
            let file = std::fs::File::open(path).unwrap();
            let mut rows = Vec::new();
            read_file(view, file, readers, &Parsed, |batch| {
                rows.extend(batch.into_iter().map(|(row, _)| row))
            })
            .map(|()| rows)
            .map_err(|bad| bad.to_string())
        }

        /// The file's rows as binary rows records, encoded as they are read by columns; or the
        /// file's refusal.
        fn encode(path: &Path) -> Result<Vec<Vec<u8>>, String> {
            let registry = demo_registry();
            let view = registry.view_by_name("prod", "user_profile").unwrap();
            let file = std::fs::File::open(path).unwrap();
            let mut records = Vec::new();
            let writer = BinaryRowsWriter::new(view);
            read_file(
                view,
                file,
                Readers::Columns,
                &Encoded(&writer),
                |mut rows| rows.hand_on(&mut |record: &[u8], _| records.push(record.to_vec())),
            )
            .map(|()| records)
            .map_err(|bad| bad.to_string())
        }

        /// `rows` as `BinaryRowsWriter::write` encodes them.
        fn written(rows: &[ParsedRow]) -> Vec<Vec<u8>> {
            let registry = demo_registry();
            let writer =
                BinaryRowsWriter::new(registry.view_by_name("prod", "user_profile").unwrap());
            rows.iter()
                .map(|row| {
                    let mut record = Vec::new();
                    writer.write(row, &mut record);
                    record
                })
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn by_columns_as_by_records((columns, mut cuts) in file()) {
                let rows = columns[0].cells.len();
                cuts.push(0);
                cuts.push(rows);
                cuts.sort_unstable();
                cuts.dedup();
                let schema = format!(
                    "message schema {{ {} }}",
                    columns.iter().map(Column::schema).collect::<Vec<_>>().join(" ")
                );
                let groups = cuts
                    .windows(2)
                    .map(|cut| columns.iter().map(|c| c.chunk(cut[0]..cut[1])).collect())
                    .collect();
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("random.parquet");
                write_parquet(&path, &schema, groups);
                let by_records = load(&path, Readers::Records);
                prop_assert_eq!(load(&path, Readers::Columns), by_records.clone());
                prop_assert_eq!(encode(&path), by_records.as_deref().map(written).map_err(Clone::clone));
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
                chunk(text(ids), &vec![0; def.len()]),
                chunk(Values::Int64(times), &vec![0; def.len()]),
                chunk(text(scores), def),
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
                chunk(text(ids), &vec![0; rows]),
                chunk(
                    Values::Int64(vec![micros("2026-01-15T00:00:00Z"); rows]),
                    &vec![0; rows],
                ),
                chunk(text(vec!["712"; bad.iter().count()]), &scores),
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

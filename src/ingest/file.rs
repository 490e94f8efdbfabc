//! Reading a bulk-load file (CSV with a header line, JSON Lines, or Parquet) into validated rows
//! of one view. The first bad row stops the read, and the error names where it is: its line, or
//! its row group and row (`parquet.rs`).

use std::io::{BufRead, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use super::binary_rows::BinaryRowsWriter;
use super::csv_records::{csv_refusal, CsvSplitter, Record, RecordBatch, Unreadable};
use super::lines::read_typed_rows;
use super::row::{column_places, is_view_column, parse_json_row, parse_row, ParsedRow};
use crate::echo::echo;
use crate::registry::value::Value;
use crate::registry::FeatureView;
use crate::store::RowWrite;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    JsonLines,
    Parquet,
}

impl FileFormat {
    /// `.csv` is CSV; `.jsonl`, `.ndjson` and `.json` are JSON Lines; `.parquet` is Parquet.
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(FileFormat::Csv),
            "jsonl" | "ndjson" | "json" => Some(FileFormat::JsonLines),
            "parquet" => Some(FileFormat::Parquet),
            _ => None,
        }
    }
}

/// A load file opened for reading, with what a progress bar needs.
pub struct LoadFile {
    pub format: FileFormat,
    pub file: std::fs::File,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}: a load file must end in .csv, .jsonl, .ndjson, .json or .parquet")]
    UnknownFormat(PathBuf),
    #[error("{path}: cannot open: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Opens a load file and tells its format from its extension.
pub fn open_load_file(path: &Path) -> Result<LoadFile, OpenError> {
    let format =
        FileFormat::from_path(path).ok_or_else(|| OpenError::UnknownFormat(path.to_path_buf()))?;
    let io_error = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let size = file.metadata().map_err(io_error)?.len();
    Ok(LoadFile { format, file, size })
}

/// Where a bad row is: a text file's line (from 1), or a Parquet file's row group and the row
/// within it (both from 0, as pyarrow counts), or the Parquet footer (the schema); in a binary
/// rows body (`binary_rows.rs`), its row (from 1) or its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Line(usize),
    RowGroup { group: usize, row: usize },
    Footer,
    Row(usize),
    Header,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Line(line) => write!(f, "line {line}"),
            Place::RowGroup { group, row } => write!(f, "row group {group}, row {row}"),
            Place::Footer => write!(f, "Parquet schema"),
            Place::Row(row) => write!(f, "row {row}"),
            Place::Header => write!(f, "header"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{place}: {message}")]
pub struct BadRow {
    pub place: Place,
    pub message: String,
}

impl LoadFile {
    /// Reads every row; `on_progress(bytes)` is called as the file is read (for progress bars).
    pub fn read_rows(
        self,
        view: &FeatureView,
        mut on_progress: impl FnMut(usize),
    ) -> Result<Vec<ParsedRow>, BadRow> {
        let mut rows = Vec::new();
        self.for_each_row(view, |row, bytes| {
            rows.push(row);
            on_progress(bytes);
        })?;
        Ok(rows)
    }

    /// Hands every row to `on_row(row, bytes)` as it is read, `bytes` being its share of the
    /// file (for progress bars), so a caller that encodes rows need not keep them all.
    pub fn for_each_row(
        self,
        view: &FeatureView,
        on_row: impl FnMut(ParsedRow, usize),
    ) -> Result<(), BadRow> {
        match self.format {
            FileFormat::Csv => each_csv_row(view, self.file, on_row),
            FileFormat::JsonLines => each_json_line(view, self.file, on_row),
            FileFormat::Parquet => super::parquet::for_each_row(view, self.file, on_row),
        }
    }

    /// Hands every row to `on_record(record, bytes)` as `writer` encodes it, a binary rows
    /// record (`BinaryRowsWriter::write`'s bytes), `bytes` being its share of the file. A CSV
    /// file's cells are encoded as they are read, without a `ParsedRow` (`write_text_row`), and
    /// so are a Parquet file's on the threads that read its row groups (`write_cells`).
    pub fn for_each_binary_row(
        self,
        view: &FeatureView,
        writer: &BinaryRowsWriter,
        mut on_record: impl FnMut(&[u8], usize),
    ) -> Result<(), BadRow> {
        match self.format {
            FileFormat::Csv => return each_csv_record(view, self.file, writer, on_record),
            FileFormat::Parquet => {
                return super::parquet::for_each_binary_row(view, self.file, writer, on_record)
            }
            FileFormat::JsonLines => {}
        }
        let mut record = Vec::new();
        self.for_each_row(view, |row, bytes| {
            record.clear();
            writer.write(&row, &mut record);
            on_record(&record, bytes);
        })
    }
}

/// Reads CSV with a header line, handing each row to `on_record(record, bytes)` in the file's
/// order as `writer` encodes it, its cells encoded as they are read.
fn each_csv_record(
    view: &FeatureView,
    input: impl Read + Seek,
    writer: &BinaryRowsWriter,
    mut on_record: impl FnMut(&[u8], usize),
) -> Result<(), BadRow> {
    read_csv(
        view,
        input,
        |places, record, bytes, rows: &mut EncodedRows| {
            writer.write_text_row(
                view,
                |place| places[place].map(|i| record.cell(i)),
                &mut rows.records,
            )?;
            rows.end_record(bytes);
            Ok(())
        },
        |rows| rows.hand_on(&mut on_record),
    )
}

/// A batch of rows encoded as binary rows records (`for_each_binary_row`): the records back
/// to back, and where each ends with its share of the file.
#[derive(Default)]
pub(super) struct EncodedRows {
    pub(super) records: Vec<u8>,
    ends: Vec<(usize, usize)>,
}

impl EncodedRows {
    /// Ends the record last appended to `records`, `bytes` being its share of the file.
    pub(super) fn end_record(&mut self, bytes: usize) {
        self.ends.push((self.records.len(), bytes));
    }

    /// Hands each record to `on_record(record, bytes)` in order, and empties the batch.
    pub(super) fn hand_on(&mut self, on_record: &mut impl FnMut(&[u8], usize)) {
        let mut start = 0;
        for &(end, bytes) in &self.ends {
            on_record(&self.records[start..end], bytes);
            start = end;
        }
        self.records.clear();
        self.ends.clear();
    }
}

/// The bulk-rows endpoint's body, JSON Lines rows of `view`, as store writes: read typed
/// (`lines.rs`) when every row is well-formed, else row by row as a load file is, which words
/// the first refusal; so both readers answer every body alike.
pub fn read_rows_body(view: &FeatureView, body: &[u8]) -> Result<Vec<RowWrite>, BadRow> {
    if let Some(writes) = read_typed_rows(view, body) {
        return Ok(writes);
    }
    let mut writes = Vec::new();
    each_json_line(view, body, |row, _| writes.push(row.to_write(view)))?;
    Ok(writes)
}

/// Hands each JSON line's row to `on_row(row, bytes)`.
fn each_json_line(
    view: &FeatureView,
    input: impl Read,
    mut on_row: impl FnMut(ParsedRow, usize),
) -> Result<(), BadRow> {
    for (index, line) in BufReader::new(input).lines().enumerate() {
        let bad = |message: String| BadRow {
            place: Place::Line(index + 1),
            message,
        };
        let text = line.map_err(|e| bad(format!("cannot read: {e}")))?;
        if text.trim().is_empty() {
            continue;
        }
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let object = json
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".to_string()))?;
        on_row(parse_json_row(view, object).map_err(bad)?, text.len() + 1);
    }
    Ok(())
}

/// CSV records converted into rows at a time, on a converting thread (`read_csv`).
const CSV_BATCH: usize = 1024;

/// Threads converting CSV records into rows beside the one splitting them (`read_csv`): two,
/// since converting a record (each cell checked, and encoded when the rows go into a binary
/// body) takes longer than splitting it, ~3.7k instructions a demo row against ~2.4k.
const CSV_CONVERTERS: usize = 2;

/// Reads CSV with a header line, handing each row to `on_row(row, bytes)` in the file's order.
fn each_csv_row(
    view: &FeatureView,
    input: impl Read + Seek,
    mut on_row: impl FnMut(ParsedRow, usize),
) -> Result<(), BadRow> {
    read_csv(
        view,
        input,
        |places, record, bytes, rows: &mut Vec<(ParsedRow, usize)>| {
            let row = parse_row(view, |place, _, data_type| {
                places[place]
                    .map(|i| Value::from_text(record.cell(i), data_type))
                    .transpose()
            })?;
            rows.push((row, bytes));
            Ok(())
        },
        |rows| {
            for (row, bytes) in rows.drain(..) {
                on_row(row, bytes);
            }
        },
    )
}

/// Reads CSV with a header line, converting the records on other threads, a batch at a time,
/// so that a load validates on two cores or more: this thread splits the records
/// (`CsvSplitter`), the others check every cell, `convert(places, record, bytes, rows)` adding
/// the record's row to its batch's `rows` (`places`: where each of `view_columns` is among the
/// file's columns; `bytes`: the record's share of the file), or refusing it, which stops the read
/// at its line. Back on this thread, `hand_on(rows)` hands each batch's rows on in the file's
/// order, leaving `rows` empty to be filled again. A record the `csv` crate refuses stops the
/// read too, worded by the `csv` crate reading the file again (`csv_refusal`).
fn read_csv<Rows: Default + Send>(
    view: &FeatureView,
    input: impl Read + Seek,
    convert: impl Fn(&[Option<usize>], &Record<'_>, usize, &mut Rows) -> Result<(), String> + Sync,
    mut hand_on: impl FnMut(&mut Rows),
) -> Result<(), BadRow> {
    let at_line = |line: usize, message: String| BadRow {
        place: Place::Line(line),
        message,
    };
    // Why the read stopped: a bad row, or a record the `csv` crate refuses.
    enum Stop {
        Bad(BadRow),
        Unreadable(Unreadable),
    }
    let mut splitter = CsvSplitter::new(input);
    let header = match splitter.read_header() {
        Ok(header) => header,
        Err(Unreadable::Io(e)) => {
            return Err(at_line(1, format!("cannot read the header: {e}")));
        }
        Err(Unreadable::Record) => return Err(csv_refused(splitter)),
    };
    if let Some(unknown) = header.iter().find(|name| !is_view_column(view, name)) {
        return Err(at_line(
            1,
            format!(
                "`{}` is not a column of feature view `{}`",
                echo(unknown),
                view.name
            ),
        ));
    }
    let places = column_places(view, header.iter().map(String::as_str));
    let convert_batch = |batch: &RecordBatch, rows: &mut Rows| -> Result<(), Stop> {
        for record in batch.records() {
            let record = record.map_err(Stop::Unreadable)?;
            convert(&places, &record, record.bytes(), rows)
                .map_err(|message| Stop::Bad(at_line(record.line, message)))?;
        }
        Ok(())
    };
    let read = std::thread::scope(|scope| {
        let convert_batch = &convert_batch;
        // Each converting thread's channels: batches to it, and back from it with their rows.
        let converters: Vec<_> = (0..CSV_CONVERTERS)
            .map(|_| {
                let (to_convert, batches) = std::sync::mpsc::sync_channel::<(RecordBatch, Rows)>(1);
                let (converted, rows) = std::sync::mpsc::sync_channel(1);
                scope.spawn(move || {
                    for (batch, mut batch_rows) in batches {
                        // The batch goes back with its rows, to be read into again.
                        let result = convert_batch(&batch, &mut batch_rows);
                        if converted.send((result, batch, batch_rows)).is_err() {
                            return;
                        }
                    }
                });
                (to_convert, rows)
            })
            .collect();
        // Batches the converting threads have handed back, with their emptied rows: read into
        // again, keeping their buffers.
        let mut spare: Vec<(RecordBatch, Rows)> = Vec::new();
        // Batch `n` goes to converting thread `n % CSV_CONVERTERS` and is taken back in the
        // same order; while this thread reads a batch, each converting thread has one.
        let (mut sent, mut taken) = (0, 0);
        loop {
            let (mut batch, batch_rows) = spare.pop().unwrap_or_default();
            let unreadable = splitter.read_batch(&mut batch, CSV_BATCH).err();
            let last = batch.len() < CSV_BATCH || unreadable.is_some();
            if !batch.is_empty() {
                converters[sent % CSV_CONVERTERS]
                    .0
                    .send((batch, batch_rows))
                    .expect("a converting thread takes batches until told to stop");
                sent += 1;
            }
            // The rows before an unreadable record may hold the first bad row: they are
            // handed on (or refused) first.
            while sent - taken > CSV_CONVERTERS || (last && sent > taken) {
                let (result, batch, mut batch_rows) = converters[taken % CSV_CONVERTERS]
                    .1
                    .recv()
                    .expect("a converting thread answers every batch");
                taken += 1;
                result?;
                hand_on(&mut batch_rows);
                spare.push((batch, batch_rows));
            }
            if let Some(unreadable) = unreadable {
                return Err(Stop::Unreadable(unreadable));
            }
            if last {
                return Ok(());
            }
        }
    });
    match read {
        Ok(()) => Ok(()),
        Err(Stop::Bad(bad)) => Err(bad),
        // As the `csv` crate words it: no place.
        Err(Stop::Unreadable(Unreadable::Io(e))) => Err(at_line(0, e.to_string())),
        Err(Stop::Unreadable(Unreadable::Record)) => Err(csv_refused(splitter)),
    }
}

/// What the `csv` crate refuses in the file `splitter` read, read again from its start.
fn csv_refused(splitter: CsvSplitter<impl Read + Seek>) -> BadRow {
    let (line, message) = csv_refusal(splitter.into_input()).unwrap_or_else(|| {
        // `CsvSplitter` refused a record the `csv` crate reads: a bug, said as such.
        (
            0,
            "the CSV splitter refused a record the csv crate reads".to_string(),
        )
    });
    BadRow {
        place: Place::Line(line),
        message,
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;

    use super::*;
    use crate::bench::dataset::demo_registry;

    /// `rows` `user_profile` rows as CSV and as JSON Lines, their fields of varying lengths (so
    /// that a record read into a reused one is longer or shorter than its last content).
    fn profile_files(rows: usize) -> (String, String) {
        let mut csv = String::from(
            "user_id,timestamp,credit_score,is_verified,home_country,preferred_categories\n",
        );
        let mut jsonl = String::new();
        for i in 0..rows {
            let user = format!("user_{i}{}", "x".repeat(i % 37));
            let items: Vec<String> = (0..i % 5)
                .map(|n| format!("\"c{}\"", "y".repeat(n * i % 11)))
                .collect();
            let list = format!("[{}]", items.join(","));
            let country = ["US", "", "Deutschland"][i % 3];
            writeln!(
                csv,
                "{user},2026-01-15T00:00:{:02}Z,{},{},{country},\"{}\"",
                i % 60,
                300 + i,
                i % 2 == 0,
                list.replace('"', "\"\"")
            )
            .unwrap();
            let country = match country {
                "" => "null".to_string(),
                country => format!("\"{country}\""),
            };
            writeln!(
                jsonl,
                "{{\"user_id\":\"{user}\",\"timestamp\":\"2026-01-15T00:00:{:02}Z\",\
                 \"credit_score\":{},\"is_verified\":{},\"home_country\":{country},\
                 \"preferred_categories\":{list}}}",
                i % 60,
                300 + i,
                i % 2 == 0
            )
            .unwrap();
        }
        (csv, jsonl)
    }

    fn read(view: &FeatureView, text: &str, format: FileFormat) -> Result<Vec<ParsedRow>, BadRow> {
        let mut rows = Vec::new();
        match format {
            FileFormat::Csv => {
                each_csv_row(view, std::io::Cursor::new(text), |row, _| rows.push(row))
            }
            _ => each_json_line(view, text.as_bytes(), |row, _| rows.push(row)),
        }
        .map(|()| rows)
    }

    /// Past the first batches the CSV reader reads into records it has read before: the rows are
    /// the same as the JSON Lines reader's of the same values, in the file's order.
    #[test]
    fn csv_rows_past_the_first_batches_are_read_whole_and_in_order() {
        let registry = demo_registry();
        let view = registry.view_by_name("prod", "user_profile").unwrap();
        let rows = 3 * CSV_BATCH + 17;
        let (csv, jsonl) = profile_files(rows);
        let from_csv = read(view, &csv, FileFormat::Csv).unwrap();
        assert_eq!(from_csv.len(), rows);
        assert_eq!(from_csv, read(view, &jsonl, FileFormat::JsonLines).unwrap());
    }

    /// `rows` read from CSV as the bulk loader reads them, straight into binary rows records,
    /// back to back; or the first refusal.
    fn records(view: &FeatureView, csv: &str) -> Result<Vec<u8>, BadRow> {
        let mut records = Vec::new();
        each_csv_record(
            view,
            std::io::Cursor::new(csv),
            &BinaryRowsWriter::new(view),
            |record, _| records.extend_from_slice(record),
        )
        .map(|()| records)
    }

    /// Past the first batches, CSV rows encoded as they are read are the records written of
    /// the rows read: the same bytes, in the file's order; and a bad row is refused alike.
    #[test]
    fn csv_rows_encoded_as_read_are_the_rows_read_then_written() {
        let registry = demo_registry();
        let view = registry.view_by_name("prod", "user_profile").unwrap();
        let (csv, _) = profile_files(3 * CSV_BATCH + 17);
        let writer = BinaryRowsWriter::new(view);
        let mut written = Vec::new();
        for row in read(view, &csv, FileFormat::Csv).unwrap() {
            writer.write(&row, &mut written);
        }
        assert_eq!(records(view, &csv).unwrap(), written);
        let mut lines: Vec<&str> = csv.lines().collect();
        lines[CSV_BATCH + 500 - 1] = "user_bad,2026-01-15T00:00:00Z,high,true,US,[]";
        let bad = lines.join("\n") + "\n";
        let (read_error, encoded_error) = (
            read(view, &bad, FileFormat::Csv).unwrap_err(),
            records(view, &bad).unwrap_err(),
        );
        assert_eq!(encoded_error.place, Place::Line(CSV_BATCH + 500));
        assert_eq!(encoded_error.to_string(), read_error.to_string());
    }

    /// An unreadable record in a later batch stops the read at its line, unless a bad row comes
    /// before it, which is the one named.
    #[test]
    fn the_first_bad_line_is_named_past_the_first_batches() {
        let registry = demo_registry();
        let view = registry.view_by_name("prod", "user_profile").unwrap();
        let (csv, _) = profile_files(3 * CSV_BATCH);
        let mut lines: Vec<&str> = csv.lines().collect();
        // The error reading `lines` names line `line` and says `said`.
        let assert_refused_at = |lines: &[&str], line: usize, said: &str| {
            let error = read(view, &(lines.join("\n") + "\n"), FileFormat::Csv).unwrap_err();
            assert_eq!(error.place, Place::Line(line));
            assert!(error.message.contains(said), "{}", error.message);
        };
        let unreadable_line = 2 * CSV_BATCH + 100;
        lines[unreadable_line - 1] = "user_short,2026-01-15T00:00:00Z";
        assert_refused_at(&lines, unreadable_line, "found record with 2 fields");
        let bad_line = CSV_BATCH + 500;
        lines[bad_line - 1] = "user_bad,2026-01-15T00:00:00Z,high,true,US,[]";
        assert_refused_at(&lines, bad_line, "column `credit_score`: expected int64");
    }
}

//! Reading a bulk-load file (CSV with a header line, JSON Lines, or Parquet) into validated rows
//! of one view. The first bad row stops the read, and the error names where it is: its line, or
//! its row group and row (`parquet.rs`).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::lines::read_typed_rows;
use super::row::{column_places, is_view_column, parse_json_row, parse_row, ParsedRow};
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
            FileFormat::Csv => read_csv(view, self.file, on_row),
            FileFormat::JsonLines => each_json_line(view, self.file, on_row),
            FileFormat::Parquet => super::parquet::for_each_row(view, self.file, on_row),
        }
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

/// CSV records converted into rows at a time, on the other thread (`read_csv`).
const CSV_BATCH: usize = 1024;

/// Reads CSV with a header line, handing each row to `on_row(row, bytes)` in the file's order.
/// This thread splits the records, another converts them into rows (checking every cell), a
/// batch at a time, so that a load validates on two cores; `on_row` runs on this thread.
fn read_csv(
    view: &FeatureView,
    input: impl Read,
    mut on_row: impl FnMut(ParsedRow, usize),
) -> Result<(), BadRow> {
    let at_line = |line: usize, message: String| BadRow {
        place: Place::Line(line),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| at_line(1, format!("cannot read the header: {e}")))?
        .clone();
    if let Some(unknown) = header.iter().find(|name| !is_view_column(view, name)) {
        return Err(at_line(
            1,
            format!(
                "`{unknown}` is not a column of feature view `{}`",
                view.name
            ),
        ));
    }
    let places = column_places(view, header.iter());
    let convert = |batch: &[csv::StringRecord]| -> Result<Vec<(ParsedRow, usize)>, BadRow> {
        batch
            .iter()
            .map(|record| {
                let line = record.position().map_or(0, |p| p.line() as usize);
                let row = parse_row(view, |place, _, data_type| {
                    places[place]
                        .map(|i| Value::from_text(&record[i], data_type))
                        .transpose()
                })
                .map_err(|message| at_line(line, message))?;
                Ok((row, record.as_byte_record().as_slice().len() + record.len()))
            })
            .collect()
    };
    std::thread::scope(|scope| {
        let (to_convert, batches) = std::sync::mpsc::sync_channel::<Vec<csv::StringRecord>>(1);
        let (converted, rows) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            for batch in batches {
                // The batch goes back with its rows, to be read into again.
                if converted.send((convert(&batch), batch)).is_err() {
                    return;
                }
            }
        });
        // Batches the converting thread has handed back: their records are read into again,
        // keeping their buffers (the records iterator copies each record into three fresh
        // allocations: ~240 instructions a row on this thread, ~150 freeing them on the other).
        let mut spare: Vec<Vec<csv::StringRecord>> = Vec::new();
        // Batches sent and not yet taken back: at most two, so both threads have work.
        let mut in_flight = 0;
        loop {
            let mut batch = spare.pop().unwrap_or_default();
            let unreadable = read_records(&mut reader, &mut batch)
                .err()
                .map(|e| at_line(e.position().map_or(0, |p| p.line() as usize), e.to_string()));
            let last = batch.len() < CSV_BATCH || unreadable.is_some();
            if !batch.is_empty() {
                to_convert
                    .send(batch)
                    .expect("the converting thread takes batches until told to stop");
                in_flight += 1;
            }
            // The rows before an unreadable record may hold the first bad row: they are
            // handed on (or refused) first.
            while in_flight > 1 || (last && in_flight > 0) {
                let (converted, batch) = rows
                    .recv()
                    .expect("the converting thread answers every batch");
                for (row, bytes) in converted? {
                    on_row(row, bytes);
                }
                spare.push(batch);
                in_flight -= 1;
            }
            if let Some(unreadable) = unreadable {
                return Err(unreadable);
            }
            if last {
                return Ok(());
            }
        }
    })
}

/// Reads up to `CSV_BATCH` records into `batch`, into the records it holds first; `batch` is
/// left holding the records read (those before an unreadable one, on an error).
fn read_records<R: Read>(
    reader: &mut csv::Reader<R>,
    batch: &mut Vec<csv::StringRecord>,
) -> Result<(), csv::Error> {
    for index in 0..CSV_BATCH {
        if index == batch.len() {
            batch.push(csv::StringRecord::new());
        }
        match reader.read_record(&mut batch[index]) {
            Ok(true) => {}
            Ok(false) => {
                batch.truncate(index);
                return Ok(());
            }
            Err(e) => {
                batch.truncate(index);
                return Err(e);
            }
        }
    }
    Ok(())
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
            FileFormat::Csv => read_csv(view, text.as_bytes(), |row, _| rows.push(row)),
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

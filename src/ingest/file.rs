//! Reading a bulk-load file (CSV with a header line, or JSON Lines) into validated rows of one
//! view. The first bad line stops the read, and the error names its line number.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::row::{is_view_column, parse_json_row, parse_row, ParsedRow};
use crate::registry::value::Value;
use crate::registry::FeatureView;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    JsonLines,
}

impl FileFormat {
    /// `.csv` is CSV; `.jsonl`, `.ndjson` and `.json` are JSON Lines.
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(FileFormat::Csv),
            "jsonl" | "ndjson" | "json" => Some(FileFormat::JsonLines),
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
    #[error("{0}: a load file must end in .csv, .jsonl, .ndjson or .json")]
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

#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct BadLine {
    pub line: usize,
    pub message: String,
}

/// Reads every row; `on_row` is called after each (for progress bars).
pub fn read_rows(
    view: &FeatureView,
    format: FileFormat,
    input: impl Read,
    mut on_row: impl FnMut(usize),
) -> Result<Vec<ParsedRow>, BadLine> {
    let mut rows = Vec::new();
    match format {
        FileFormat::JsonLines => {
            for (index, line) in BufReader::new(input).lines().enumerate() {
                let line_no = index + 1;
                let bad = |message: String| BadLine {
                    line: line_no,
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
                rows.push(parse_json_row(view, object).map_err(bad)?);
                on_row(text.len() + 1);
            }
        }
        FileFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_reader(input);
            let header = reader
                .headers()
                .map_err(|e| BadLine {
                    line: 1,
                    message: format!("cannot read the header: {e}"),
                })?
                .clone();
            if let Some(unknown) = header.iter().find(|name| !is_view_column(view, name)) {
                return Err(BadLine {
                    line: 1,
                    message: format!(
                        "`{unknown}` is not a column of feature view `{}`",
                        view.name
                    ),
                });
            }
            for record in reader.records() {
                let record = record.map_err(|e| BadLine {
                    line: e.position().map_or(0, |p| p.line() as usize),
                    message: e.to_string(),
                })?;
                let line = record.position().map_or(0, |p| p.line() as usize);
                let row = parse_row(view, |column, data_type| {
                    header
                        .iter()
                        .position(|name| name == column)
                        .map(|i| Value::from_text(&record[i], data_type))
                        .transpose()
                })
                .map_err(|message| BadLine { line, message })?;
                rows.push(row);
                on_row(record.as_byte_record().as_slice().len() + record.len());
            }
        }
    }
    Ok(rows)
}

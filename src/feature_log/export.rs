//! `quiver logs export`: one service's complete log files (either format, oldest first), the
//! rows whose `timestamp` is in `[from, to)`, written as one Parquet or JSON Lines file. Columns
//! are the union of the files' columns in first-seen order (a service's repository may have
//! changed between files); a column that changed type is refused. `.part` files are skipped.
//! Reads the selected files whole into memory: an offline tool over files of a bounded size.

use std::path::{Path, PathBuf};

use super::files::{self, LogFile};
use super::record::{Column, TIMESTAMP_COLUMN};
use super::sink::Sink;
use super::{jsonl, parquet};
use crate::registry::types::DataType;
use crate::registry::value::Value;
use crate::registry::LogFormat;
use crate::time::{format_timestamp, Micros};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable Parquet log file: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Jsonl {
        path: PathBuf,
        source: jsonl::JsonlReadError,
    },
    #[error("no complete log files of service `{0}`")]
    NoFiles(String),
    #[error("service `{service}` has logs in several workspaces ({workspaces}): give --workspace")]
    AmbiguousService { service: String, workspaces: String },
    #[error("column `{column}` is {first:?} in one file and {other:?} in {path}")]
    TypeChanged {
        column: String,
        first: DataType,
        other: DataType,
        path: PathBuf,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What to export, and where.
#[derive(Debug)]
pub struct ExportRequest<'a> {
    /// `files::root` of the data directory.
    pub root: &'a Path,
    pub workspace: Option<&'a str>,
    pub service: &'a str,
    pub from: Option<Micros>,
    pub to: Option<Micros>,
    pub format: LogFormat,
    pub output: &'a Path,
}

#[derive(Debug)]
pub struct Exported {
    pub files: usize,
    pub rows: usize,
}

pub fn export(request: &ExportRequest<'_>) -> Result<Exported, ExportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io { path, source }
    };
    let selected: Vec<LogFile> = files::list(request.root)
        .map_err(io(request.root))?
        .into_iter()
        .filter(|f| f.complete && f.service == request.service)
        .filter(|f| request.workspace.is_none_or(|w| w == f.workspace))
        .collect();
    let mut workspaces: Vec<&str> = selected.iter().map(|f| f.workspace.as_str()).collect();
    workspaces.dedup();
    if workspaces.is_empty() {
        return Err(ExportError::NoFiles(request.service.to_string()));
    }
    if workspaces.len() > 1 {
        return Err(ExportError::AmbiguousService {
            service: request.service.to_string(),
            workspaces: workspaces.join(", "),
        });
    }
    let mut columns: Vec<Column> = Vec::new();
    let mut rows: Vec<Vec<Value>> = Vec::new();
    for file in &selected {
        let (file_columns, file_rows) = read(file)?;
        // Where each of this file's columns goes in the union.
        let mut positions = Vec::with_capacity(file_columns.len());
        for column in file_columns {
            match columns.iter().position(|c| c.name == column.name) {
                Some(i) if columns[i].data_type != column.data_type => {
                    return Err(ExportError::TypeChanged {
                        column: column.name,
                        first: columns[i].data_type.clone(),
                        other: column.data_type,
                        path: file.path.clone(),
                    })
                }
                Some(i) => positions.push(i),
                None => {
                    columns.push(column);
                    positions.push(columns.len() - 1);
                }
            }
        }
        let timestamp = columns.iter().position(|c| c.name == TIMESTAMP_COLUMN);
        for file_row in file_rows {
            let mut row = vec![Value::Null; columns.len()];
            for (cell, position) in file_row.into_iter().zip(&positions) {
                row[*position] = cell;
            }
            let time = timestamp.and_then(|i| match row[i] {
                Value::Timestamp(t) => Some(t),
                _ => None,
            });
            let in_range = time.is_some_and(|t| {
                request.from.is_none_or(|from| t >= from) && request.to.is_none_or(|to| t < to)
            });
            if in_range {
                rows.push(row);
            }
        }
    }
    let n_rows = rows.len();
    write(request, &columns, rows).map_err(|source| ExportError::Write {
        path: request.output.to_path_buf(),
        source,
    })?;
    Ok(Exported {
        files: selected.len(),
        rows: n_rows,
    })
}

fn read(file: &LogFile) -> Result<(Vec<Column>, Vec<Vec<Value>>), ExportError> {
    match file.format {
        LogFormat::Parquet => parquet::read(&file.path).map_err(|e| ExportError::Parquet {
            path: file.path.clone(),
            message: e.to_string(),
        }),
        LogFormat::JsonLines => jsonl::read(&file.path).map_err(|source| ExportError::Jsonl {
            path: file.path.clone(),
            source,
        }),
    }
}

/// Rows stay in the order they were logged (files oldest first, each in write order).
fn write(
    request: &ExportRequest<'_>,
    columns: &[Column],
    rows: Vec<Vec<Value>>,
) -> std::io::Result<()> {
    let mut sink = Sink::create(
        request.output.to_path_buf(),
        columns,
        request.format,
        u64::MAX,
    )?;
    for row in rows {
        sink.append(row)?;
    }
    sink.complete()?;
    Ok(())
}

/// `[from, to)` in words, for the CLI's summary.
pub fn describe_range(from: Option<Micros>, to: Option<Micros>) -> String {
    let end = |t: Option<Micros>, open: &str| t.map_or(open.to_string(), format_timestamp);
    format!(
        "[{}, {})",
        end(from, "the first record"),
        end(to, "the last record")
    )
}

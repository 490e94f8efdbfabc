//! Where feature logs live: `<data dir>/feature_log/<workspace>/<service>/<opened>.<ext>`, with
//! `<opened>` the UTC time the file was opened (`20261201T164512.123456Z`, so names sort by
//! time). A file being written carries a `.part` suffix and is renamed once complete (rolled or
//! closed at shutdown); a `.part` file left by a crash is never taken for a complete one.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::registry::LogFormat;
use crate::time::Micros;

const DIR: &str = "feature_log";
pub const PART_SUFFIX: &str = ".part";

/// The feature logs' directory inside a data directory.
pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR)
}

pub fn service_dir(root: &Path, workspace: &str, service: &str) -> PathBuf {
    root.join(workspace).join(service)
}

/// A new file's complete name, opened at `now` (with `-<n>` if that name is taken).
pub fn new_file_name(dir: &Path, now: Micros, format: LogFormat) -> String {
    let time = DateTime::<Utc>::from_timestamp_micros(now)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%S%.6fZ");
    let ext = format.name();
    let taken =
        |name: &str| dir.join(name).exists() || dir.join(format!("{name}{PART_SUFFIX}")).exists();
    let mut name = format!("{time}.{ext}");
    let mut n = 1;
    while taken(&name) {
        name = format!("{time}-{n}.{ext}");
        n += 1;
    }
    name
}

/// One log file found on disk.
#[derive(Debug, Clone)]
pub struct LogFile {
    pub workspace: String,
    pub service: String,
    pub path: PathBuf,
    pub format: LogFormat,
    /// False for a `.part` file: being written, or left by a crash.
    pub complete: bool,
    pub bytes: u64,
}

/// Every log file under `root`, by workspace, service and name (time order).
pub fn list(root: &Path) -> io::Result<Vec<LogFile>> {
    let mut files = Vec::new();
    if !root.exists() {
        return Ok(files);
    }
    for workspace in sorted_entries(root)? {
        for service in sorted_entries(&workspace)? {
            for path in sorted_entries(&service)? {
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                let complete = !name.ends_with(PART_SUFFIX);
                let extension = name.trim_end_matches(PART_SUFFIX).rsplit('.').next();
                let Some(format) = extension.and_then(LogFormat::from_name) else {
                    continue;
                };
                files.push(LogFile {
                    workspace: file_name(&workspace),
                    service: file_name(&service),
                    bytes: path.metadata()?.len(),
                    path,
                    format,
                    complete,
                });
            }
        }
    }
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sorted_entries(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut entries = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<io::Result<Vec<_>>>()?;
    entries.sort();
    Ok(entries)
}

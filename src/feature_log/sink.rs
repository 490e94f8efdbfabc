//! A log file being written, in either format, under its `.part` name until it is complete.

use std::io;
use std::path::{Path, PathBuf};

use super::files::PART_SUFFIX;
use super::jsonl::JsonlWriter;
use super::parquet::ParquetWriter;
use super::record::Column;
use crate::persist::files::{private_file_options, sync_dir};
use crate::registry::value::Value;
use crate::registry::LogFormat;

/// Row groups are written at this size at most (less when files roll sooner).
const ROW_GROUP_BYTES: u64 = 8 << 20;

pub struct Sink {
    writer: Writer,
    /// The complete name; the file is written at this name plus `.part`.
    path: PathBuf,
}

enum Writer {
    /// Boxed: its column buffers make it several times the JSON writer's size.
    Parquet(Box<ParquetWriter>),
    Jsonl(JsonlWriter),
}

impl Sink {
    /// Creates `<path>.part` (0600). A file that rolls at `roll_size_bytes` writes row groups no
    /// bigger, so that size is checked at row-group granularity.
    pub fn create(
        path: PathBuf,
        columns: &[Column],
        format: LogFormat,
        roll_size_bytes: u64,
    ) -> io::Result<Sink> {
        let file = private_file_options()
            .write(true)
            .create_new(true)
            .open(part_path(&path))?;
        let writer = match format {
            LogFormat::Parquet => Writer::Parquet(Box::new(ParquetWriter::create(
                file,
                columns,
                roll_size_bytes.min(ROW_GROUP_BYTES),
            )?)),
            LogFormat::JsonLines => Writer::Jsonl(JsonlWriter::create(file, columns)),
        };
        Ok(Sink { writer, path })
    }

    pub fn append(&mut self, row: Vec<Value>) -> io::Result<()> {
        match &mut self.writer {
            Writer::Parquet(w) => w.append(row),
            Writer::Jsonl(w) => w.append(row),
        }
    }

    pub fn bytes(&self) -> u64 {
        match &self.writer {
            Writer::Parquet(w) => w.bytes(),
            Writer::Jsonl(w) => w.bytes(),
        }
    }

    /// Hands buffered JSON lines to the OS (a Parquet file is readable only once finished).
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.writer {
            Writer::Parquet(_) => Ok(()),
            Writer::Jsonl(w) => w.flush(),
        }
    }

    /// Writes the rest (Parquet's footer), syncs, and renames the file to its complete name.
    pub fn complete(self) -> io::Result<PathBuf> {
        let file = match self.writer {
            Writer::Parquet(w) => (*w).finish()?,
            Writer::Jsonl(w) => w.finish()?,
        };
        file.sync_all()?;
        std::fs::rename(part_path(&self.path), &self.path)?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok(self.path)
    }
}

pub fn part_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(PART_SUFFIX);
    PathBuf::from(name)
}

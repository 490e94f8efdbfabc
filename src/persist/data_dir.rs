//! The data directory as a whole: its exclusive lock (one process writes it at a time), what in
//! it counts as state, and what to do about a missing key file. Which files hold what is described in ARCHITECTURE.md.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "quiver.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the data directory {dir} is in use: {lock} is locked by process {pid} (a running `quiver serve`?); stop that process first, or use another data directory")]
    Held {
        dir: String,
        lock: String,
        pid: String,
    },
    #[error("could not lock {lock}: {source}")]
    Io {
        lock: String,
        source: std::io::Error,
    },
}

/// An exclusive `flock(2)` on `<data dir>/quiver.lock`, which holds the owner's pid. The kernel
/// releases it when the process exits however it exits (SIGKILL included), so a stale lock
/// file never blocks a restart; the file itself is left in place (removing it would let a
/// second process lock a new file while a third still holds the old one).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock, or says which process holds it. Creates the directory if needed.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io_error = |source| LockError::Io {
            lock: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io_error)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(LockError::Held {
                    dir: data_dir.display().to_string(),
                    lock: path.display().to_string(),
                    pid: if pid.is_empty() { "unknown" } else { pid }.to_string(),
                });
            }
            Err(TryLockError::Error(error)) => return Err(io_error(error)),
        }
        file.set_len(0).map_err(io_error)?;
        file.rewind().map_err(io_error)?;
        writeln!(file, "{}", std::process::id()).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        Ok(DataDirLock { _file: file })
    }
}

/// What to do when a key file (`iam.key`, `master.key`) is missing at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissingKeyFile {
    /// Create it: the data directory holds no state yet, or the operator asked for new keys
    /// (`--replace-lost-keys`).
    Create,
    /// Refuse to start: the data directory holds `state`, which the lost key protected.
    Refuse { state: String },
}

impl MissingKeyFile {
    /// The rule for a start of `quiver serve`: create a missing key on a data directory's first
    /// start (no state yet) or when the operator asks for new keys (`replace_lost_keys`); never
    /// silently where state exists that the key protected (`restoring` names a snapshot about to
    /// be installed, which counts as state).
    pub fn at_start(
        snapshot_dir: &Path,
        journal_dirs: &[PathBuf],
        restoring: Option<&str>,
        replace_lost_keys: bool,
    ) -> std::io::Result<MissingKeyFile> {
        if replace_lost_keys {
            return Ok(MissingKeyFile::Create);
        }
        let state = match restoring {
            Some(id) => Some(format!("snapshot `{id}`, to be restored")),
            None => existing_state(snapshot_dir, journal_dirs)?,
        };
        Ok(
            state.map_or(MissingKeyFile::Create, |state| MissingKeyFile::Refuse {
                state,
            }),
        )
    }
}

/// What in a data directory counts as state: snapshots, and journal segments with records.
/// `None` when there is none (a new or empty directory).
pub fn existing_state(
    snapshot_dir: &Path,
    journal_dirs: &[PathBuf],
) -> std::io::Result<Option<String>> {
    let snapshots = super::snapshot::snapshot_files(snapshot_dir)?.len();
    let mut journal_bytes = 0;
    for dir in journal_dirs.iter().filter(|d| d.exists()) {
        // Segments only: the journal's record of its newest segment is not state.
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.path().extension().is_some_and(|e| e == "journal") {
                journal_bytes += entry.metadata()?.len();
            }
        }
    }
    Ok((snapshots > 0 || journal_bytes > 0)
        .then(|| format!("{snapshots} snapshot(s), {journal_bytes} journal bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_a_released_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let held = DataDirLock::acquire(dir.path()).unwrap();
        let pid = std::process::id().to_string();
        match DataDirLock::acquire(dir.path()) {
            Err(LockError::Held { pid: holder, .. }) => assert_eq!(holder, pid),
            other => panic!("expected the lock to be held, got {other:?}"),
        }
        drop(held);
        DataDirLock::acquire(dir.path()).expect("free once released");
    }
}

//! Installing a snapshot as the state a data directory starts from (the operator's restore):
//! verify it, set the current journals aside, and copy it in as the newest snapshot.

use std::path::{Path, PathBuf};

use super::data_dir::existing_state;
use super::files::create_private_dir;
use super::snapshot::{read_snapshot, snapshot_id, snapshot_path, SnapshotError};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Invalid(#[from] SnapshotError),
    #[error("no snapshot `{0}` (give an id from `quiver snapshot list` or a file path)")]
    NotFound(String),
    #[error("the data directory already holds state ({0}); pass --force to set it aside and restore anyway")]
    NotEmpty(String),
    #[error("restore failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// The snapshot restored from.
    pub source: PathBuf,
    /// Its copy, now the newest snapshot of `snapshot_dir`.
    pub installed: PathBuf,
}

/// The operator's restore (`quiver snapshot restore`, `quiver serve --restore`): finds the
/// snapshot `id_or_path` and installs it (see `install_snapshot`).
pub fn restore(
    snapshot_dir: &Path,
    journal_dirs: &[PathBuf],
    id_or_path: &str,
    force: bool,
) -> Result<Restored, RestoreError> {
    let source = find_snapshot(snapshot_dir, id_or_path)?;
    let installed = install_snapshot(&source, snapshot_dir, journal_dirs, force)?;
    Ok(Restored { source, installed })
}

/// Finds a snapshot by id (in `snapshot_dir`) or as a file path.
fn find_snapshot(snapshot_dir: &Path, id_or_path: &str) -> Result<PathBuf, RestoreError> {
    let by_id = snapshot_path(snapshot_dir, id_or_path);
    if by_id.is_file() {
        return Ok(by_id);
    }
    let as_path = PathBuf::from(id_or_path);
    if as_path.is_file() {
        return Ok(as_path);
    }
    Err(RestoreError::NotFound(id_or_path.to_string()))
}

/// Makes `source` the snapshot the next start loads, with no journal after it. Refuses when the
/// directory holds state, unless `force`; then the journals are renamed aside, not deleted.
fn install_snapshot(
    source: &Path,
    snapshot_dir: &Path,
    journal_dirs: &[PathBuf],
    force: bool,
) -> Result<PathBuf, RestoreError> {
    read_snapshot(source)?;
    if let Some(state) = existing_state(snapshot_dir, journal_dirs)? {
        if !force {
            return Err(RestoreError::NotEmpty(state));
        }
    }
    let stamp = snapshot_id(crate::time::now_micros());
    for dir in journal_dirs.iter().filter(|d| d.exists()) {
        let aside = dir.with_file_name(format!(
            "{}.before-restore-{stamp}",
            dir.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("journal")
        ));
        std::fs::rename(dir, &aside)?;
        tracing::warn!(from = %dir.display(), to = %aside.display(), "journal set aside by restore");
    }
    create_private_dir(snapshot_dir)?;
    let target = snapshot_path(snapshot_dir, &stamp);
    let temp = snapshot_dir.join(format!(".restore-{stamp}.tmp"));
    std::fs::copy(source, &temp)?;
    // `copy` keeps the source's mode; snapshots hold digests and sealed secrets.
    std::fs::set_permissions(&temp, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    std::fs::File::open(&temp)?.sync_all()?;
    std::fs::rename(&temp, &target)?;
    std::fs::File::open(snapshot_dir)?.sync_all()?;
    Ok(target)
}

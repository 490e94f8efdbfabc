//! Persistence: journals, snapshots, the snapshot scheduler and the start-up choice of state.
//!
//! Each stateful actor journals its own changes (`journal/`) before acknowledging them, and
//! contributes one section to each snapshot (`SnapshotSource`). `startup_snapshot` picks the
//! snapshot each actor recovers from (after verifying every journal). `Snapshotter` takes a
//! snapshot (periodically through `schedule`, on demand, and at shutdown): it asks every source
//! for its section, writes the file off the actors' threads (`snapshot.rs`), keeps the newest
//! N, and then lets each source drop the journal segments the snapshot covers. `format.rs` holds the only serialisable types;
//! `data_dir.rs` the data directory's exclusive lock and what in it counts as state.
//! `files.rs` creates the private (0600/0700) files and directories both write. `journaled.rs`
//! is the recovery, export and journal clean-up every journaled actor shares; `logged.rs` is
//! their cluster mode (changes through a replicated log instead of the journal).
//! This module knows files and bytes; it knows nothing of HTTP or of what the sections mean.
//! It counts what it writes (journal bytes, fsync and snapshot times) in `metrics`.

pub mod data_dir;
pub mod files;
pub mod format;
pub mod journal;
pub mod journaled;
pub mod logged;
pub mod restore;
pub mod snapshot;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

pub use journal::{FsyncPolicy, Journal, JournalError, Replay};
use snapshot::{
    apply_retention, newest_valid, snapshot_id, write_snapshot, SectionData, Snapshot,
    SnapshotError,
};

/// An actor whose state goes into snapshots.
pub trait SnapshotSource: Send + Sync {
    /// A consistent copy of the actor's state, taken as its journal moves to a new segment;
    /// `journal_seq` in the section is that segment.
    fn take_section(&self) -> BoxFuture<'static, io::Result<SectionData>>;
    /// Snapshots covering segments before `journal_seq` are on disk: those segments may go.
    fn snapshot_saved(&self, journal_seq: u64) -> BoxFuture<'static, io::Result<()>>;
}

/// A writer outside the sources (a cluster node's replica, which applies the stream to the
/// store): held still while every source's section is taken, so that its own section (the
/// stream sequences it applied) says exactly what the others hold.
pub trait SnapshotCut: Send + Sync {
    /// Waits until the writer is between two changes and holds it there; answers its section
    /// and a guard that lets it go on when dropped.
    fn hold(&self) -> BoxFuture<'static, io::Result<(SectionData, CutGuard)>>;
}

/// Releases a [`SnapshotCut`]'s writer when dropped.
pub type CutGuard = Box<dyn Send>;

/// What a finished snapshot holds.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub id: String,
    pub path: PathBuf,
    pub items: u64,
    pub bytes: u64,
}

/// Why a snapshot could not be taken, or why the persisted state cannot be loaded at start-up
/// (the server then refuses to start, having changed nothing).
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("a snapshot is already being written")]
    Busy,
    #[error("snapshot failed: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Not damaged, only unreadable by this build (written by an older or newer one): falling
    /// back to an older snapshot would silently lose what it holds.
    #[error("{}: snapshot format version {version} is not supported (this build reads versions {} to {}); refusing to start rather than lose the state it holds. Start the Quiver build that wrote it, or move the file out of the snapshot directory to start from the previous snapshot", path.display(), format::OLDEST_READ_VERSION, format::FORMAT_VERSION)]
    UnsupportedSnapshot { path: PathBuf, version: u32 },
}

/// The snapshot to start from: the newest that verifies, if any (a damaged one is logged and
/// the previous one used; one of an unsupported format version refuses the start). Every
/// journal is verified first, so that a refused start changes no byte of any of them.
pub fn startup_snapshot(
    snapshot_dir: &Path,
    journal_dirs: &[PathBuf],
) -> Result<Option<Snapshot>, PersistError> {
    for journal_dir in journal_dirs {
        journal::verify(journal_dir)?;
    }
    let newest = newest_valid(snapshot_dir).map_err(|error| match error {
        SnapshotError::Version { path, version } => {
            PersistError::UnsupportedSnapshot { path, version }
        }
        other => PersistError::Snapshot(other),
    })?;
    Ok(newest.map(|(path, snapshot)| {
        tracing::info!(snapshot = %path.display(), "loading snapshot");
        crate::metrics::snapshot_taken(snapshot.created_micros);
        snapshot
    }))
}

/// Takes snapshots of every source into one directory. Cheap to clone.
#[derive(Clone)]
pub struct Snapshotter {
    dir: PathBuf,
    retention: usize,
    n_shards: u32,
    sources: Arc<Vec<Box<dyn SnapshotSource>>>,
    cut: Option<Arc<dyn SnapshotCut>>,
    /// Per source, the journal segment of the previous snapshot this process wrote: segments
    /// are kept back to it, so that if the newest snapshot turns out corrupt, the previous one
    /// plus the journal still hold everything.
    previous_seqs: Arc<Vec<AtomicU64>>,
    in_progress: Arc<AtomicBool>,
    /// The last snapshot that failed, for `GET /admin/snapshots` (an on-demand snapshot is
    /// answered 202 before it is written, so its caller learns of a failure there).
    last_failure: Arc<Mutex<Option<SnapshotFailure>>>,
}

/// A snapshot that could not be written, and why (e.g. the disk is full).
#[derive(Debug, Clone)]
pub struct SnapshotFailure {
    pub id: String,
    pub error: String,
}

/// Clears the in-progress flag however the snapshot ends.
struct InProgress(Arc<AtomicBool>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Snapshotter {
    pub fn new(
        dir: PathBuf,
        retention: usize,
        n_shards: usize,
        sources: Vec<Box<dyn SnapshotSource>>,
    ) -> Snapshotter {
        let previous_seqs = Arc::new(sources.iter().map(|_| AtomicU64::new(0)).collect());
        Snapshotter {
            dir,
            retention,
            n_shards: n_shards as u32,
            sources: Arc::new(sources),
            cut: None,
            previous_seqs,
            in_progress: Arc::default(),
            last_failure: Arc::default(),
        }
    }

    /// This snapshotter with `cut` held while the sections are taken (its section added).
    pub fn with_cut(mut self, cut: Arc<dyn SnapshotCut>) -> Snapshotter {
        self.cut = Some(cut);
        self
    }

    pub fn dir(&self) -> &PathBuf {
        &self.dir
    }

    /// Claims the right to take a snapshot now and names it; `Busy` if one is being written.
    pub fn begin(&self) -> Result<PendingSnapshot, PersistError> {
        if self.in_progress.swap(true, Ordering::AcqRel) {
            return Err(PersistError::Busy);
        }
        let created_micros = crate::time::now_micros();
        Ok(PendingSnapshot {
            snapshotter: self.clone(),
            created_micros,
            _guard: InProgress(self.in_progress.clone()),
        })
    }

    /// [`Snapshotter::begin`], waiting while another snapshot is being written: what changed
    /// before the call is then in the snapshot claimed (one begun earlier may have taken its
    /// sections before).
    pub async fn begin_when_free(&self) -> Result<PendingSnapshot, PersistError> {
        loop {
            match self.begin() {
                Err(PersistError::Busy) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                taken => return taken,
            }
        }
    }

    pub fn last_failure(&self) -> Option<SnapshotFailure> {
        self.last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes a snapshot and waits until it is on disk.
    pub async fn take(&self) -> Result<SnapshotInfo, PersistError> {
        self.begin()?.finish().await
    }

    /// Takes a snapshot every `interval` from now on, for the life of the runtime. A failure is
    /// logged (and kept as the last failure); the next tick tries again.
    pub fn schedule(&self, interval: std::time::Duration) {
        let snapshotter = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            // The first tick is immediate: the first snapshot is one interval after start-up.
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(error) = snapshotter.take().await {
                    tracing::error!(%error, "periodic snapshot failed");
                }
            }
        });
    }
}

/// A snapshot that has an id but is not written yet.
pub struct PendingSnapshot {
    snapshotter: Snapshotter,
    created_micros: i64,
    _guard: InProgress,
}

impl PendingSnapshot {
    pub fn id(&self) -> String {
        snapshot_id(self.created_micros)
    }

    /// Gathers every section, writes the file on a low-priority thread, applies retention and lets
    /// the sources drop covered journal segments. A failure leaves no file behind and every
    /// journal usable (its segments are kept), and is kept as the last failure.
    pub async fn finish(self) -> Result<SnapshotInfo, PersistError> {
        let started = std::time::Instant::now();
        let result = self.write().await;
        match &result {
            Ok(info) => {
                crate::metrics::snapshot_written(started.elapsed(), info.bytes, self.created_micros)
            }
            Err(_) => crate::metrics::snapshot_failed(),
        }
        if let Err(error) = &result {
            *self
                .snapshotter
                .last_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(SnapshotFailure {
                id: self.id(),
                error: error.to_string(),
            });
        }
        result
    }

    async fn write(&self) -> Result<SnapshotInfo, PersistError> {
        let s = &self.snapshotter;
        let held = match &s.cut {
            Some(cut) => Some(cut.hold().await?),
            None => None,
        };
        let mut sections = Vec::with_capacity(s.sources.len() + 1);
        for source in s.sources.iter() {
            sections.push(source.take_section().await?);
        }
        let seqs: Vec<u64> = sections.iter().map(|section| section.journal_seq).collect();
        if let Some((section, guard)) = held {
            drop(guard);
            sections.push(section);
        }
        let items = sections.iter().map(|section| section.items).sum();
        let (dir, retention, n_shards, created) =
            (s.dir.clone(), s.retention, s.n_shards, self.created_micros);
        let path = files::in_background(move || {
            let path = write_snapshot(&dir, created, n_shards, &sections)?;
            apply_retention(&dir, retention)?;
            Ok::<_, io::Error>(path)
        })
        .await??;
        for ((source, previous), seq) in s.sources.iter().zip(s.previous_seqs.iter()).zip(seqs) {
            let keep_from = previous.swap(seq, Ordering::AcqRel);
            if keep_from > 0 {
                source.snapshot_saved(keep_from).await?;
            }
        }
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        tracing::info!(id = %self.id(), items, bytes, "snapshot written");
        Ok(SnapshotInfo {
            id: self.id(),
            path,
            items,
            bytes,
        })
    }
}

//! Persistence: journals, snapshots, the snapshot scheduler and the start-up choice of state.
//!
//! Each stateful actor journals its own changes (`journal/`) before acknowledging them, and
//! contributes one section to each snapshot (`SnapshotSource`). `startup_snapshot`
//! (`startup.rs`) picks the snapshot each actor recovers from (after verifying every journal),
//! and refuses a start that would lose acknowledged writes (a damaged snapshot the journals do
//! not reach back past, a missing journal segment). `Snapshotter` takes a
//! snapshot (periodically through `schedule`, on demand, and at shutdown): it asks every source
//! for its section, writes the file off the actors' threads (`snapshot.rs`), keeps the newest
//! N and the previous one, and then lets each source drop the journal segments before the
//! previous one. `format.rs` holds the only serialisable types;
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
pub mod startup;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use format::SectionKind;
pub use journal::{FsyncPolicy, Journal, JournalError, Replay};
use snapshot::{
    apply_retention, snapshot_id, snapshot_path, write_snapshot, SectionData, Snapshot,
    SnapshotError,
};
pub use startup::{startup_snapshot, LostWrites, StateJournal};

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
    /// and a guard that lets it go on when dropped. Asked while the writer is held, it shares
    /// that hold: answered at once, the writer goes on once both guards are dropped.
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
    /// Starting would silently lose acknowledged writes (see `startup`).
    #[error("refusing to start: acknowledged writes would be lost, and nothing was changed. {0}. From a backup, put a good copy of the damaged snapshot (same file name) or the missing journal segments back, and start again; or, to go on without them, start once with --accept-lost-writes (what only they held stays lost)")]
    LostWrites(startup::LostWritesReport),
}

/// Takes snapshots of every source into one directory. Cheap to clone.
#[derive(Clone)]
pub struct Snapshotter {
    dir: PathBuf,
    retention: usize,
    n_shards: u32,
    sources: Arc<Vec<Box<dyn SnapshotSource>>>,
    cut: Option<Arc<dyn SnapshotCut>>,
    /// The previous snapshot (the last one this process wrote, or the one it started from):
    /// journal segments are kept back to it and retention never deletes it, so that if the
    /// newest snapshot turns out damaged, the previous one plus the journals still hold
    /// everything.
    previous: Arc<Mutex<Option<Previous>>>,
    in_progress: Arc<AtomicBool>,
    /// The last snapshot that failed, for `GET /admin/snapshots` (an on-demand snapshot is
    /// answered 202 before it is written, so its caller learns of a failure there).
    last_failure: Arc<Mutex<Option<SnapshotFailure>>>,
}

/// A snapshot the journals are kept back to: its file, and where it ends in each journal.
#[derive(Debug, Clone)]
struct Previous {
    path: PathBuf,
    seqs: Vec<(SectionKind, u64)>,
}

impl Previous {
    fn of(path: PathBuf, sections: &[SectionData]) -> Previous {
        Previous {
            path,
            seqs: sections.iter().map(|s| (s.kind, s.journal_seq)).collect(),
        }
    }

    /// Where this snapshot ends in the journal of a section of `kind` (0: not in a journal).
    fn seq_of(&self, kind: SectionKind) -> u64 {
        // Feature rows went from one section kind to another; they share the rows journal.
        let same = |a: SectionKind| {
            a == kind
                || [a, kind]
                    .iter()
                    .all(|k| matches!(k, SectionKind::FeatureRows | SectionKind::FeatureRecords))
        };
        self.seqs
            .iter()
            .find(|(k, _)| same(*k))
            .map_or(0, |(_, seq)| *seq)
    }
}

/// A snapshot that could not be written, and why (e.g. the disk is full).
#[derive(Debug, Clone)]
pub struct SnapshotFailure {
    pub id: String,
    pub error: String,
}

/// Clears the in-progress flag however the snapshot ends.
struct InProgress(Arc<AtomicBool>);

/// The snapshot slot of a finished snapshot, still taken (see
/// [`PendingSnapshot::finish_keeping_slot`]): another begins once this is dropped.
#[must_use = "the slot is given back when this is dropped"]
pub struct SnapshotSlot {
    _taken: InProgress,
}

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
        Snapshotter {
            dir,
            retention,
            n_shards: n_shards as u32,
            sources: Arc::new(sources),
            cut: None,
            previous: Arc::default(),
            in_progress: Arc::default(),
            last_failure: Arc::default(),
        }
    }

    /// This snapshotter with `cut` held while the sections are taken (its section added).
    pub fn with_cut(mut self, cut: Arc<dyn SnapshotCut>) -> Snapshotter {
        self.cut = Some(cut);
        self
    }

    /// Start-up loaded `snapshot` (from this snapshotter's directory): it is the previous
    /// snapshot of the first one this process writes, so that journal and file are kept.
    pub fn started_from(&self, snapshot: &Snapshot) {
        let previous = Previous::of(snapshot_path(&self.dir, &snapshot.id), &snapshot.sections);
        *self.previous.lock().unwrap_or_else(|e| e.into_inner()) = Some(previous);
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
    /// journal usable (its segments are kept), and is kept as the last failure; once the file
    /// is written, a failure to remove older snapshots or covered segments is only logged.
    pub async fn finish(self) -> Result<SnapshotInfo, PersistError> {
        self.finish_keeping_slot().await.0
    }

    /// Holds still the writer the snapshots' cut holds (a cluster replica) until the guard is
    /// dropped, so that the store changes meanwhile only as the caller changes it: an apply,
    /// whose reshape an undo may take back, with whatever was written after it. This
    /// snapshot's cut, asked meanwhile, shares the hold. `None` without a cut.
    pub async fn hold_writer(&self) -> Result<Option<CutGuard>, PersistError> {
        match &self.snapshotter.cut {
            Some(cut) => Ok(Some(cut.hold().await?.1)),
            None => Ok(None),
        }
    }

    /// [`PendingSnapshot::finish`], answering with the snapshot slot still taken: no other
    /// snapshot begins until the [`SnapshotSlot`] is dropped. An apply whose snapshot failed
    /// keeps it while it takes its reshape back, so that no snapshot is cut between the two.
    pub async fn finish_keeping_slot(self) -> (Result<SnapshotInfo, PersistError>, SnapshotSlot) {
        let result = self.finish_in_slot().await;
        (
            result,
            SnapshotSlot {
                _taken: self._guard,
            },
        )
    }

    async fn finish_in_slot(&self) -> Result<SnapshotInfo, PersistError> {
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
        let ours = Previous::of(PathBuf::new(), &sections);
        let previous = s.previous.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // Per source, the segment its journal is kept back to: the previous snapshot's.
        let keep_from: Vec<u64> = ours
            .seqs
            .iter()
            .map(|(kind, _)| previous.as_ref().map_or(0, |p| p.seq_of(*kind)))
            .collect();
        let also_keep = previous
            .filter(|_| keep_from.iter().any(|seq| *seq > 0))
            .map(|p| p.path);
        if let Some((section, guard)) = held {
            drop(guard);
            sections.push(section);
        }
        let items = sections.iter().map(|section| section.items).sum();
        let (dir, retention, n_shards, created) =
            (s.dir.clone(), s.retention, s.n_shards, self.created_micros);
        // Once `write_snapshot` returns the snapshot is on disk and will be loaded: what follows
        // only frees space, and its failure must not report the snapshot as not taken (an
        // apply would be undone while its snapshot stands). It is logged; the next snapshot
        // tries again.
        let path = files::in_background(move || {
            let path = write_snapshot(&dir, created, n_shards, &sections)?;
            if let Err(error) = apply_retention(&dir, retention, also_keep.as_deref()) {
                tracing::warn!(%error, "snapshot written; removing older snapshots failed");
            }
            Ok::<_, io::Error>(path)
        })
        .await??;
        for (source, keep_from) in s.sources.iter().zip(keep_from) {
            if keep_from > 0 {
                if let Err(error) = source.snapshot_saved(keep_from).await {
                    tracing::warn!(%error, "snapshot written; dropping the journal it covers failed");
                }
            }
        }
        *s.previous.lock().unwrap_or_else(|e| e.into_inner()) = Some(Previous {
            path: path.clone(),
            ..ours
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::FutureExt;
    use snapshot::snapshot_files;
    use std::sync::atomic::AtomicU64;

    /// A source whose journal moves on one segment per section, recording what it may drop.
    #[derive(Default)]
    struct Counting {
        seq: Arc<AtomicU64>,
        dropped_before: Arc<Mutex<Vec<u64>>>,
    }

    impl SnapshotSource for Counting {
        fn take_section(&self) -> BoxFuture<'static, io::Result<SectionData>> {
            let journal_seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
            async move {
                Ok(SectionData {
                    kind: SectionKind::Directory,
                    journal_seq,
                    items: 0,
                    payload: bytes::Bytes::from_static(b"state"),
                    payload_tail: Vec::new(),
                })
            }
            .boxed()
        }

        fn snapshot_saved(&self, journal_seq: u64) -> BoxFuture<'static, io::Result<()>> {
            self.dropped_before.lock().unwrap().push(journal_seq);
            async { Ok(()) }.boxed()
        }
    }

    /// With a retention of 1, the snapshot start-up loaded, and then each previous one, stays
    /// beside the newest, and the journal is kept back to it: falling back to it loses no
    /// journaled change.
    #[test]
    fn the_previous_snapshot_and_the_journal_back_to_it_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let source = Counting::default();
        source.seq.store(2, Ordering::Release);
        let (seq, dropped_before) = (source.seq.clone(), source.dropped_before.clone());
        let snapshotter = Snapshotter::new(dir.path().to_path_buf(), 1, 1, vec![Box::new(source)]);
        let loaded_section = SectionData {
            kind: SectionKind::Directory,
            journal_seq: 2,
            items: 0,
            payload: bytes::Bytes::from_static(b"state"),
            payload_tail: Vec::new(),
        };
        let loaded = write_snapshot(dir.path(), 1_000_000, 1, &[loaded_section]).unwrap();
        snapshotter.started_from(&snapshot::read_snapshot(&loaded).unwrap());
        actix::System::new().block_on(async {
            let first = snapshotter.take().await.unwrap();
            assert_eq!(
                snapshot_files(dir.path()).unwrap(),
                [loaded, first.path.clone()]
            );
            assert_eq!(*dropped_before.lock().unwrap(), [2]);
            let second = snapshotter.take().await.unwrap();
            assert_eq!(
                snapshot_files(dir.path()).unwrap(),
                [first.path, second.path]
            );
            assert_eq!(*dropped_before.lock().unwrap(), [2, 3]);
        });
        assert_eq!(seq.load(Ordering::Acquire), 4);
    }

    /// A snapshot finished keeping its slot (an apply's whose snapshot failed, while it takes
    /// its reshape back) keeps every other one from beginning until the slot is dropped.
    #[test]
    fn a_kept_slot_holds_off_the_next_snapshot_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let snapshotter = Snapshotter::new(
            dir.path().to_path_buf(),
            1,
            1,
            vec![Box::new(Counting::default())],
        );
        actix::System::new().block_on(async {
            let (written, slot) = snapshotter.begin().unwrap().finish_keeping_slot().await;
            written.unwrap();
            assert!(matches!(snapshotter.begin(), Err(PersistError::Busy)));
            assert!(matches!(snapshotter.take().await, Err(PersistError::Busy)));
            drop(slot);
            snapshotter.take().await.unwrap();
        });
    }

    /// Once the file is written the snapshot is taken, whatever removing older ones does: an
    /// apply told otherwise would be undone while its snapshot stands, and be loaded at the
    /// next start.
    #[test]
    fn a_snapshot_written_is_taken_even_when_retention_fails() {
        let dir = tempfile::tempdir().unwrap();
        // An "older snapshot" that cannot be removed as a file.
        let stuck = dir.path().join("snapshot-00000101T000000000000Z.qvs");
        std::fs::create_dir(&stuck).unwrap();
        std::fs::write(stuck.join("inside"), b"x").unwrap();
        let snapshotter = Snapshotter::new(
            dir.path().to_path_buf(),
            1,
            1,
            vec![Box::new(Counting::default())],
        );
        actix::System::new().block_on(async {
            let taken = snapshotter.take().await.unwrap();
            assert!(taken.path.exists());
        });
        assert!(snapshotter.last_failure().is_none());
    }
}

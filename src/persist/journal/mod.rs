//! An append-only journal of framed, checksummed records (`len: u32, xxh3: u64, payload`), kept
//! as numbered segment files (`00000000000000000001.journal`, ...) in one directory per actor
//! (`rows`, `directory`, `vault`). A record is appended before the change it describes is
//! acknowledged.
//!
//! **Never acknowledge past a hole.** An append that fails (a full disk, a failed fsync) may
//! leave part of a frame behind. Before anything else is acknowledged the segment is cut back to
//! its last whole record (and fsynced), so a later record never sits after a partial one. If that
//! cut fails too, the journal is *unwritable*: every append is refused (`Unwritable`, which the
//! HTTP layer answers with 503) and retries the cut first, and `/health` lists the journal
//! (through the cell its owner gave it, `report_to`) until a retry succeeds. A failed `every_second` fsync is a failed
//! write too: the frames since the last fsync may be lost without a later fsync saying so, so
//! they are written again (cut back to the last fsynced byte, rewritten, fsynced) before
//! anything else is acknowledged, and the journal is unwritable until that succeeds.
//!
//! **Torn tail or corruption.** Opening reads and verifies every segment before changing any
//! byte. The only damage a crash can cause is an incomplete last frame of the segment written
//! last (the *tail segment*: the newest one holding any bytes; empty segments after it were
//! created but never written). So a bad frame is a **torn tail**, cut and logged with the bytes
//! dropped, only when it is in the tail segment and
//! - fewer bytes than a record header remain, or every remaining byte is zero (the file system
//!   grew the file but never wrote the data), or
//! - its header claims more bytes than the segment holds, **and** no valid frame starts anywhere
//!   after it, **and** the bytes present are not a whole payload under a damaged length.
//!
//! Everything else is **corruption**: a complete-length frame whose checksum does not match, any
//! bad frame in an older segment, or a length that runs past the end while valid frames follow
//! (a flipped length bit, not a tail). Then `open` refuses with the journal, segment file, byte
//! offset and record index, and touches nothing: the operator decides, with `quiver journal
//! check` and `quiver journal repair --skip-record SEGMENT:OFFSET` (`skip_record`), which removes
//! that one frame, keeps every valid record after it, and keeps the original file beside it.
//! To find where valid records resume after a bad frame, the reader tries the end its length
//! claims, then scans forward for the next offset where a whole frame verifies.
//!
//! A record that verifies but does not decode (an incompatible version) is refused the same way
//! by its owner (`Replay::undecodable` names it): skipping it would lose the records after it.
//!
//! **Missing segments.** The segments' names say which are missing in the middle or at the start
//! (`persist::startup` checks that), but not which are missing at the end: a deleted newest
//! segment looks like no writes after the one before. So each new segment's number is also
//! written to `newest-segment` in the journal's directory, after the segment exists (a crash
//! between the two leaves the file naming an older segment, never a segment that was not made),
//! and start-up refuses a journal whose newest segment is older than that file names. Writing
//! it is best effort (a full disk only logs): a stale record narrows the check, never trips it.
//!
//! `scan.rs` reads segments back (frames, torn tails, corruption, `inspect`/`verify`/
//! `skip_record`); this file writes them; `tests.rs` covers both, with `faults.rs`'s segment file
//! that fails on demand (test builds only).

#[cfg(test)]
pub(crate) mod faults;
mod scan;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::files::{create_private_dir, private_file_options, sync_dir};
use super::format::{checksum, RECORD_HEADER_LEN};
use crate::metrics::JournalMetrics;
use crate::reported::Condition;

pub use scan::{
    inspect, parse_records, skip_record, verify, BadRecord, SegmentReport, SkippedRecord,
};
use scan::{scan, tail_segment};

/// When appended records reach the disk (Redis's `appendfsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync before every acknowledgement: nothing acknowledged is lost.
    Always,
    /// fsync once a second (group commit): at most the last second is lost on a power cut.
    EverySecond,
    /// Leave it to the operating system: survives a process crash, not a power cut.
    Never,
}

impl FsyncPolicy {
    pub fn parse(text: &str) -> Option<FsyncPolicy> {
        match text {
            "always" => Some(FsyncPolicy::Always),
            "every_second" => Some(FsyncPolicy::EverySecond),
            "never" => Some(FsyncPolicy::Never),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The append failed and was undone: nothing of the record is on disk; the journal is usable.
    #[error(
        "journal {journal}: the record could not be written ({source}); nothing of it was kept"
    )]
    NotWritten { journal: String, source: io::Error },
    /// A failed append could not be undone: appends are refused until it can be.
    #[error("journal {journal} is unwritable: a failed write could not be undone ({cause}); writes are refused until the disk accepts the repair")]
    Unwritable { journal: String, cause: String },
    #[error("journal {journal}: segment {} has a bad record at byte {offset} (record index {index}: {problem}); refusing to start, nothing was changed. Inspect with `quiver journal check`; `quiver journal repair --skip-record {}:{offset}` removes that record, keeps every other one and keeps the original file", segment.display(), segment.display())]
    Corrupt {
        journal: String,
        segment: PathBuf,
        offset: u64,
        index: usize,
        problem: String,
    },
    /// A record that verifies but does not decode: written by an incompatible version or a bug.
    /// Replay refuses rather than skip it and lose the records after it.
    #[error("journal {journal}: record index {index} at byte {offset} of segment {} passes its checksum but does not decode (written by an incompatible version?); refusing to start rather than skip it and the records after it", segment.display())]
    Undecodable {
        journal: String,
        segment: PathBuf,
        offset: u64,
        index: usize,
    },
    #[error("{}: no bad record starts at byte {offset}{}", segment.display(), describe_bad(bad))]
    NoBadRecordAt {
        segment: PathBuf,
        offset: u64,
        bad: Vec<u64>,
    },
    #[error("journal {journal}: {source}")]
    Io { journal: String, source: io::Error },
}

fn describe_bad(bad: &[u64]) -> String {
    if bad.is_empty() {
        " (the segment has no bad record)".to_string()
    } else {
        let offsets: Vec<String> = bad.iter().map(u64::to_string).collect();
        format!(" (bad records start at byte {})", offsets.join(", "))
    }
}

impl JournalError {
    /// True when the journal refuses writes until a repair succeeds (HTTP 503).
    pub fn is_unwritable(&self) -> bool {
        matches!(self, JournalError::Unwritable { .. })
    }
}

impl From<JournalError> for io::Error {
    fn from(error: JournalError) -> io::Error {
        io::Error::other(error)
    }
}

/// Records read back when a journal is opened.
#[derive(Debug, Default)]
pub struct Replay {
    pub records: Vec<Vec<u8>>,
    /// Bytes cut from a torn tail.
    pub dropped_bytes: u64,
    journal: String,
    /// Each record's byte offset in its segment.
    offsets: Vec<u64>,
    /// Per segment holding records: the index of its first record in `records`, its number
    /// and its path.
    segments: Vec<(usize, u64, PathBuf)>,
}

impl Replay {
    /// The segment record `i` is in: (its first record's index, its number, its path).
    fn segment_of(&self, i: usize) -> Option<&(usize, u64, PathBuf)> {
        self.segments.iter().rev().find(|(first, ..)| *first <= i)
    }

    /// The number of the segment record `i` is in.
    pub fn segment_number(&self, i: usize) -> Option<u64> {
        self.segment_of(i).map(|(_, seq, _)| *seq)
    }

    /// The refusal for record `i`, which verified but does not decode, naming where it is.
    pub fn undecodable(&self, i: usize) -> JournalError {
        let (first, _, segment) = self.segment_of(i).cloned().unwrap_or_default();
        JournalError::Undecodable {
            journal: self.journal.clone(),
            segment,
            offset: self.offsets[i],
            index: i - first,
        }
    }
}

/// What the journal needs of a segment file: a trait so that tests can inject a full disk.
pub trait SegmentFile: Send + std::fmt::Debug {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes and makes the new length durable.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

impl SegmentFile for File {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        Write::write_all(self, bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)?;
        self.sync_all()
    }
}

/// The journal's writing end.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    seq: u64,
    file: Box<dyn SegmentFile>,
    /// Bytes of whole records in the current segment: where a failed append is cut back to.
    whole_len: u64,
    policy: FsyncPolicy,
    /// Under `every_second`, the frames written since the last fsync: if the fsync fails, they
    /// are written again (see `sync`).
    unsynced: Vec<u8>,
    /// The failure the repair has not yet undone.
    broken: Option<String>,
    /// Whether the repair must also write `unsynced` again (a failed fsync).
    rewrite_unsynced: bool,
    /// Says while the journal refuses writes, and why, for `/health` (see `report_to`).
    unwritable: Condition,
    metrics: JournalMetrics,
}

const SUFFIX: &str = "journal";

/// The file naming the newest segment a journal created (see the module comment).
const NEWEST_SEGMENT: &str = "newest-segment";

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.{SUFFIX}"))
}

/// How logs and errors name the journal in `dir` (`rows`, `directory`, `vault`).
pub fn journal_name(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The segment numbers in `dir`, ascending; none if `dir` does not exist.
pub fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = name
            .strip_suffix(&format!(".{SUFFIX}"))
            .and_then(|stem| stem.parse().ok())
        {
            found.push(seq);
        }
    }
    found.sort_unstable();
    Ok(found)
}

fn open_segment(path: &Path) -> io::Result<File> {
    private_file_options().create(true).append(true).open(path)
}

/// Records `seq` as the newest segment of the journal in `dir`, durably: written aside, then
/// renamed over the old record. Called once segment `seq` exists and its directory entry is
/// durable. A failure (a full disk) is logged, not returned: the record left names an older
/// segment, which only narrows what start-up can tell is missing, and the journal is as
/// writable as before.
fn record_newest_segment(dir: &Path, seq: u64) {
    let temp = dir.join(format!(".{NEWEST_SEGMENT}.tmp"));
    let written = (|| {
        let mut file = private_file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        Write::write_all(&mut file, format!("{seq}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, dir.join(NEWEST_SEGMENT))?;
        sync_dir(dir)
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temp);
        tracing::warn!(journal = %journal_name(dir), segment = seq, %error, "journal: could not record the newest segment; a start cannot tell if it is deleted later");
    }
}

/// The newest segment the journal in `dir` recorded creating: `None` for a journal written
/// before the record existed (or none at all). A record that is not a number is refused.
pub fn newest_segment_created(dir: &Path) -> io::Result<Option<u64>> {
    let path = dir.join(NEWEST_SEGMENT);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    text.trim().parse().map(Some).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} should hold the number of the newest segment the journal created, and holds {:?}; if the segments are known to be whole, delete the file",
                path.display(),
                text.chars().take(40).collect::<String>()
            ),
        )
    })
}

impl Journal {
    /// Opens the journal in `dir` (creating it, mode 0700), verifies every segment, cuts a torn
    /// tail, answers the records of the segments numbered `from_seq` or later, and starts a new
    /// segment for appends. A bad record anywhere else refuses (`Corrupt`) before any change.
    /// Whether the segments from `from_seq` on are all there (no gap, none missing at the start)
    /// is not checked here but by `persist::startup_snapshot`, for every journal before any is
    /// opened, so that a refused start changes nothing.
    pub fn open(
        dir: &Path,
        from_seq: u64,
        policy: FsyncPolicy,
    ) -> Result<(Journal, Replay), JournalError> {
        let journal = journal_name(dir);
        let io_error = |source| JournalError::Io {
            journal: journal.clone(),
            source,
        };
        create_private_dir(dir).map_err(io_error)?;
        let all = segments(dir).map_err(io_error)?;
        let tail = tail_segment(dir, &all).map_err(io_error)?;
        let mut replay = Replay {
            journal: journal.clone(),
            ..Replay::default()
        };
        let mut torn_tail = None;
        for seq in &all {
            let path = segment_path(dir, *seq);
            let bytes = std::fs::read(&path).map_err(io_error)?;
            let found = scan(&bytes, Some(*seq) == tail);
            if let Some(bad) = found.bad.into_iter().next() {
                return Err(JournalError::Corrupt {
                    journal,
                    segment: path,
                    offset: bad.offset,
                    index: bad.index,
                    problem: bad.problem,
                });
            }
            if *seq >= from_seq && !found.payloads.is_empty() {
                replay
                    .segments
                    .push((replay.records.len(), *seq, path.clone()));
                for payload in found.payloads {
                    replay
                        .offsets
                        .push((payload.start - RECORD_HEADER_LEN) as u64);
                    replay.records.push(bytes[payload].to_vec());
                }
            }
            if let Some(at) = found.torn_tail {
                torn_tail = Some((path, at as u64, (bytes.len() - at) as u64));
            }
        }
        if let Some((path, at, dropped)) = torn_tail {
            // Durable before a new segment exists, so the cut frame is never followed by records.
            SegmentFile::truncate(&mut open_segment(&path).map_err(io_error)?, at)
                .map_err(io_error)?;
            replay.dropped_bytes = dropped;
            tracing::warn!(journal = %journal, segment = %path.display(), dropped_bytes = dropped, "journal: cut a torn tail");
        }
        let seq = all
            .last()
            .map_or(from_seq.max(1), |last| (last + 1).max(from_seq));
        let file = open_segment(&segment_path(dir, seq)).map_err(io_error)?;
        sync_dir(dir).map_err(io_error)?;
        record_newest_segment(dir, seq);
        Ok((
            Journal {
                dir: dir.to_path_buf(),
                seq,
                file: Box::new(file),
                whole_len: 0,
                policy,
                unsynced: Vec::new(),
                broken: None,
                rewrite_unsynced: false,
                unwritable: Condition::default(),
                metrics: JournalMetrics::named(journal),
            },
            replay,
        ))
    }

    /// Reports whether the journal refuses writes in `unwritable`, a cell its owner's handle
    /// shares with `/health` (which must not ask an owner that may be stuck on the disk).
    pub fn report_to(&mut self, unwritable: Condition) {
        unwritable.set(self.unwritable.reason());
        self.unwritable = unwritable;
    }

    fn name(&self) -> String {
        journal_name(&self.dir)
    }

    /// Appends one record; with `Always`, it is on disk when this returns. On failure nothing
    /// of the record stays: the segment is cut back first (see the module comment).
    pub fn append(&mut self, payload: &[u8]) -> Result<(), JournalError> {
        if self.broken.is_some() {
            self.repair()?;
        }
        let len = u32::try_from(payload.len()).map_err(|_| JournalError::NotWritten {
            journal: self.name(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "journal record over 4 GiB"),
        })?;
        let mut frame = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&checksum(payload).to_le_bytes());
        frame.extend_from_slice(payload);
        let always = self.policy == FsyncPolicy::Always;
        let written = self.file.write_all(&frame).and_then(|()| {
            if always {
                self.metrics.fsync(|| self.file.sync_data())
            } else {
                Ok(())
            }
        });
        match written {
            Ok(()) => {
                self.whole_len += frame.len() as u64;
                self.metrics.appended(frame.len());
                if self.policy == FsyncPolicy::EverySecond {
                    self.unsynced.extend_from_slice(&frame);
                }
                Ok(())
            }
            Err(source) => {
                self.broken = Some(source.to_string());
                // Repaired before anything is logged: logging may fail too on a full disk, and
                // whatever it does, the journal must not be left holding a partial frame.
                let repaired = self.repair();
                match &repaired {
                    Ok(()) => {
                        tracing::error!(journal = %self.name(), error = %source, "journal append failed; cut the segment back to its last whole record")
                    }
                    Err(_) => {
                        tracing::error!(journal = %self.name(), error = %source, "journal append failed, and cutting the segment back failed too")
                    }
                }
                repaired?;
                Err(JournalError::NotWritten {
                    journal: self.name(),
                    source,
                })
            }
        }
    }

    /// Undoes a failure: cuts the segment back to its last whole record after a failed append,
    /// or, after a failed fsync, back to the last fsynced byte and writes the unsynced frames
    /// again, fsynced.
    fn repair(&mut self) -> Result<(), JournalError> {
        let failure = self.broken.clone().unwrap_or_default();
        let repaired = if self.rewrite_unsynced {
            self.rewrite_unsynced()
        } else {
            self.file.truncate(self.whole_len)
        };
        match repaired {
            Ok(()) => {
                if self.unwritable.set(None) {
                    tracing::warn!(journal = %self.name(), "journal repaired: accepting writes again");
                }
                self.broken = None;
                self.rewrite_unsynced = false;
                Ok(())
            }
            Err(error) => {
                let cause = format!("{failure}; the repair failed: {error}");
                tracing::error!(journal = %self.name(), %cause, "journal UNWRITABLE: refusing writes until the repair succeeds");
                self.unwritable.set(Some(cause.clone()));
                Err(JournalError::Unwritable {
                    journal: self.name(),
                    cause,
                })
            }
        }
    }

    fn rewrite_unsynced(&mut self) -> io::Result<()> {
        let synced_len = self.whole_len - self.unsynced.len() as u64;
        self.file.truncate(synced_len)?;
        self.file.write_all(&self.unsynced)?;
        self.file.sync_data()?;
        self.unsynced.clear();
        Ok(())
    }

    /// The `every_second` group commit: fsyncs the frames written since the last fsync.
    ///
    /// A failed fsync is handled like a failed append. Linux may drop the dirty pages it could
    /// not write and mark them clean, so a later fsync succeeds without them: appending on
    /// would acknowledge records after a possible hole. So the segment is cut back to the last
    /// fsynced byte and the unsynced frames are written again and fsynced (nothing
    /// acknowledged is lost); until that succeeds the journal is unwritable (`Unwritable`, 503)
    /// and every append retries it first.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        if self.broken.is_some() || self.unsynced.is_empty() {
            return Ok(());
        }
        match self.metrics.fsync(|| self.file.sync_data()) {
            Ok(()) => {
                self.unsynced.clear();
                Ok(())
            }
            Err(source) => {
                self.broken = Some(format!("fsync failed: {source}"));
                self.rewrite_unsynced = true;
                // As in `append`: the repair first, then the log line.
                let repaired = self.repair();
                match &repaired {
                    Ok(()) => {
                        tracing::error!(journal = %self.name(), error = %source, "journal fsync failed; wrote the records since the last fsync again")
                    }
                    Err(_) => {
                        tracing::error!(journal = %self.name(), error = %source, "journal fsync failed, and writing the records since the last fsync again failed too")
                    }
                }
                repaired
            }
        }
    }

    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// Closes the current segment and starts the next; returns the new segment's number. A
    /// snapshot taken now covers every record before it. On failure the journal stays on its
    /// current segment and usable.
    pub fn rotate(&mut self) -> io::Result<u64> {
        if self.broken.is_some() {
            self.repair()?;
        }
        // Under `every_second`, a failed fsync here is handled as the tick's is.
        self.sync()?;
        self.metrics.fsync(|| self.file.sync_data())?;
        let seq = self.seq + 1;
        let file = open_segment(&segment_path(&self.dir, seq))?;
        sync_dir(&self.dir)?;
        record_newest_segment(&self.dir, seq);
        self.file = Box::new(file);
        self.seq = seq;
        self.whole_len = 0;
        Ok(seq)
    }

    /// Deletes the segments before `seq` (a snapshot holds their effects).
    pub fn remove_before(&self, seq: u64) -> io::Result<()> {
        for old in segments(&self.dir)?.into_iter().filter(|s| *s < seq) {
            std::fs::remove_file(segment_path(&self.dir, old))?;
        }
        sync_dir(&self.dir)
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if self.broken.is_some() {
            self.unwritable.set(None);
        }
    }
}

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
//! (`unwritable_journals`) until a retry succeeds. A failed `every_second` fsync is a failed
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

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::files::{create_private_dir, private_file_options, sync_dir};
use super::format::{checksum, RECORD_HEADER_LEN};

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
    /// Per segment holding records: the index of its first record in `records`, and its path.
    segments: Vec<(usize, PathBuf)>,
}

impl Replay {
    /// The refusal for record `i`, which verified but does not decode, naming where it is.
    pub fn undecodable(&self, i: usize) -> JournalError {
        let (first, segment) = self
            .segments
            .iter()
            .rev()
            .find(|(first, _)| *first <= i)
            .cloned()
            .unwrap_or_default();
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

/// Journals that refuse writes, by directory, with the cause. Process-wide, because whether a
/// journal can be written is a fact about the disk that `/health` reports without asking the
/// actors that own the journals.
static UNWRITABLE: Mutex<BTreeMap<PathBuf, String>> = Mutex::new(BTreeMap::new());

fn set_unwritable(dir: &Path, cause: Option<String>) {
    let mut unwritable = UNWRITABLE.lock().unwrap_or_else(|e| e.into_inner());
    match cause {
        Some(cause) => unwritable.insert(dir.to_path_buf(), cause),
        None => unwritable.remove(dir),
    };
}

/// The journals that currently refuse writes: (name, cause).
pub fn unwritable_journals() -> Vec<(String, String)> {
    let unwritable = UNWRITABLE.lock().unwrap_or_else(|e| e.into_inner());
    unwritable
        .iter()
        .map(|(dir, cause)| (journal_name(dir), cause.clone()))
        .collect()
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
}

const SUFFIX: &str = "journal";

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
fn segments(dir: &Path) -> io::Result<Vec<u64>> {
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

/// The newest segment holding any bytes: the only one a crash can leave a torn tail in.
fn tail_segment(dir: &Path, all: &[u64]) -> io::Result<Option<u64>> {
    for seq in all.iter().rev() {
        if std::fs::metadata(segment_path(dir, *seq))?.len() > 0 {
            return Ok(Some(*seq));
        }
    }
    Ok(None)
}

/// The verdict on the frame that starts at `offset`.
enum Frame {
    Valid { payload: Range<usize>, next: usize },
    Bad(String),
}

fn frame_at(bytes: &[u8], offset: usize) -> Frame {
    let rest = bytes.len() - offset;
    if rest < RECORD_HEADER_LEN {
        return Frame::Bad(format!("{rest} bytes, less than a record header"));
    }
    let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"));
    let sum = u64::from_le_bytes(bytes[offset + 4..offset + 12].try_into().expect("8 bytes"));
    let start = offset + RECORD_HEADER_LEN;
    match start
        .checked_add(len as usize)
        .filter(|end| *end <= bytes.len())
    {
        None => Frame::Bad(format!(
            "the header claims {len} bytes but only {} follow",
            bytes.len() - start
        )),
        Some(end) if checksum(&bytes[start..end]) == sum => Frame::Valid {
            payload: start..end,
            next: end,
        },
        Some(_) => Frame::Bad("checksum mismatch".to_string()),
    }
}

/// The whole, valid records at the start of `bytes`, and the offset where they stop.
pub fn parse_records(bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut records = Vec::new();
    let mut offset = 0;
    while let Frame::Valid { payload, next } = frame_at(bytes, offset) {
        records.push(bytes[payload].to_vec());
        offset = next;
    }
    (records, offset)
}

/// The first offset at or after `from` where a whole frame verifies.
fn next_valid_frame(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len()).find(|at| matches!(frame_at(bytes, *at), Frame::Valid { .. }))
}

/// Where valid records resume after the bad frame at `offset`: the end its length claims if a
/// valid frame (or the end of the segment) is there, else the next offset where one verifies.
fn resume_after(bytes: &[u8], offset: usize) -> Option<usize> {
    if bytes.len() - offset >= RECORD_HEADER_LEN {
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"));
        let claimed_end = offset + RECORD_HEADER_LEN + len as usize;
        if claimed_end == bytes.len() {
            return None;
        }
        if claimed_end < bytes.len() && matches!(frame_at(bytes, claimed_end), Frame::Valid { .. })
        {
            return Some(claimed_end);
        }
    }
    next_valid_frame(bytes, offset + 1)
}

/// Whether the bad frame at `offset` of the tail segment is a torn tail (see the module comment).
fn is_torn_tail(bytes: &[u8], offset: usize) -> bool {
    let rest = &bytes[offset..];
    if rest.len() < RECORD_HEADER_LEN || rest.iter().all(|b| *b == 0) {
        return true;
    }
    let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let sum = u64::from_le_bytes(rest[4..12].try_into().expect("8 bytes"));
    let present = &rest[RECORD_HEADER_LEN..];
    len > present.len() && checksum(present) != sum && next_valid_frame(bytes, offset + 1).is_none()
}

/// A frame that fails verification, where valid records resume after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// Byte offset of the frame in its segment.
    pub offset: u64,
    /// Frames before it in the segment.
    pub index: usize,
    /// Bytes up to where valid records resume (or the end of the segment).
    pub len: u64,
    pub problem: String,
}

/// A segment's bytes, verified.
#[derive(Debug, Default)]
struct Scan {
    payloads: Vec<Range<usize>>,
    bad: Vec<BadRecord>,
    /// Offset of a torn tail.
    torn_tail: Option<usize>,
}

fn scan(bytes: &[u8], is_tail_segment: bool) -> Scan {
    let mut found = Scan::default();
    let mut offset = 0;
    while offset < bytes.len() {
        match frame_at(bytes, offset) {
            Frame::Valid { payload, next } => {
                found.payloads.push(payload);
                offset = next;
            }
            Frame::Bad(problem) => {
                if is_tail_segment && is_torn_tail(bytes, offset) {
                    found.torn_tail = Some(offset);
                    break;
                }
                let next = resume_after(bytes, offset).unwrap_or(bytes.len());
                found.bad.push(BadRecord {
                    offset: offset as u64,
                    index: found.payloads.len() + found.bad.len(),
                    len: (next - offset) as u64,
                    problem,
                });
                offset = next;
            }
        }
    }
    found
}

/// One segment, as `quiver journal check` lists it.
#[derive(Debug)]
pub struct SegmentReport {
    pub path: PathBuf,
    pub bytes: u64,
    /// Records that verify.
    pub records: usize,
    pub bad: Vec<BadRecord>,
    /// (offset, bytes) of a torn tail, which the next start cuts.
    pub torn_tail: Option<(u64, u64)>,
}

/// Verifies every segment of the journal in `dir` without changing anything.
pub fn inspect(dir: &Path) -> io::Result<Vec<SegmentReport>> {
    let all = segments(dir)?;
    let tail = tail_segment(dir, &all)?;
    let mut reports = Vec::with_capacity(all.len());
    for seq in all {
        let path = segment_path(dir, seq);
        let bytes = std::fs::read(&path)?;
        let found = scan(&bytes, Some(seq) == tail);
        reports.push(SegmentReport {
            bytes: bytes.len() as u64,
            records: found.payloads.len(),
            bad: found.bad,
            torn_tail: found
                .torn_tail
                .map(|at| (at as u64, (bytes.len() - at) as u64)),
            path,
        });
    }
    Ok(reports)
}

/// Refuses (`Corrupt`, naming the first bad record) if any segment of `dir` holds a bad record.
pub fn verify(dir: &Path) -> Result<(), JournalError> {
    let journal = journal_name(dir);
    let reports = inspect(dir).map_err(|source| JournalError::Io {
        journal: journal.clone(),
        source,
    })?;
    for report in reports {
        if let Some(bad) = report.bad.into_iter().next() {
            return Err(JournalError::Corrupt {
                journal,
                segment: report.path,
                offset: bad.offset,
                index: bad.index,
                problem: bad.problem,
            });
        }
    }
    Ok(())
}

/// What `skip_record` did.
#[derive(Debug)]
pub struct SkippedRecord {
    pub removed: BadRecord,
    /// The untouched original segment.
    pub original_kept_as: PathBuf,
}

/// Rewrites `segment` without the bad record at `offset` (every other record kept), keeping
/// the original beside it as `<name>.orig-<time>`. Refuses an offset where no bad record starts:
/// a valid record is never removed.
pub fn skip_record(segment: &Path, offset: u64) -> Result<SkippedRecord, JournalError> {
    let dir = segment.parent().unwrap_or(Path::new("."));
    let journal = journal_name(dir);
    let io_error = |source| JournalError::Io {
        journal: journal.clone(),
        source,
    };
    let bytes = std::fs::read(segment).map_err(io_error)?;
    let all = segments(dir).map_err(io_error)?;
    let tail = tail_segment(dir, &all).map_err(io_error)?;
    let is_tail = tail.is_some_and(|seq| segment_path(dir, seq) == segment);
    let found = scan(&bytes, is_tail);
    let Some(removed) = found.bad.iter().find(|bad| bad.offset == offset).cloned() else {
        return Err(JournalError::NoBadRecordAt {
            segment: segment.to_path_buf(),
            offset,
            bad: found.bad.iter().map(|bad| bad.offset).collect(),
        });
    };
    let (start, end) = (
        removed.offset as usize,
        (removed.offset + removed.len) as usize,
    );
    let name = segment
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = super::snapshot::snapshot_id(crate::time::now_micros());
    let original_kept_as = dir.join(format!("{name}.orig-{stamp}"));
    let temp = dir.join(format!(".{name}.repair-{stamp}.tmp"));
    let written = replace_segment(
        segment,
        &original_kept_as,
        &temp,
        [&bytes[..start], &bytes[end..]],
    );
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io_error(source));
    }
    Ok(SkippedRecord {
        removed,
        original_kept_as,
    })
}

/// Writes `parts` to `temp`, then puts it in place of `segment`, keeping the original as
/// `kept_as`; on failure the original stays (or is put back) where it was.
fn replace_segment(
    segment: &Path,
    kept_as: &Path,
    temp: &Path,
    parts: [&[u8]; 2],
) -> io::Result<()> {
    let mut file = private_file_options()
        .write(true)
        .create_new(true)
        .open(temp)?;
    for part in parts {
        Write::write_all(&mut file, part)?;
    }
    file.sync_all()?;
    std::fs::rename(segment, kept_as)?;
    if let Err(error) = std::fs::rename(temp, segment) {
        std::fs::rename(kept_as, segment)?;
        return Err(error);
    }
    sync_dir(segment.parent().unwrap_or(Path::new(".")))
}

fn open_segment(path: &Path) -> io::Result<File> {
    private_file_options().create(true).append(true).open(path)
}

impl Journal {
    /// Opens the journal in `dir` (creating it, mode 0700), verifies every segment, cuts a torn
    /// tail, answers the records of the segments numbered `from_seq` or later, and starts a new
    /// segment for appends. A bad record anywhere else refuses (`Corrupt`) before any change.
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
                replay.segments.push((replay.records.len(), path.clone()));
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
            },
            replay,
        ))
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
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        match written {
            Ok(()) => {
                self.whole_len += frame.len() as u64;
                if self.policy == FsyncPolicy::EverySecond {
                    self.unsynced.extend_from_slice(&frame);
                }
                Ok(())
            }
            Err(source) => {
                tracing::error!(journal = %self.name(), error = %source, "journal append failed; cutting the segment back to its last whole record");
                self.broken = Some(source.to_string());
                self.repair()?;
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
                if UNWRITABLE
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains_key(&self.dir)
                {
                    tracing::warn!(journal = %self.name(), "journal repaired: accepting writes again");
                }
                set_unwritable(&self.dir, None);
                self.broken = None;
                self.rewrite_unsynced = false;
                Ok(())
            }
            Err(error) => {
                let cause = format!("{failure}; the repair failed: {error}");
                tracing::error!(journal = %self.name(), %cause, "journal UNWRITABLE: refusing writes until the repair succeeds");
                set_unwritable(&self.dir, Some(cause.clone()));
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
        match self.file.sync_data() {
            Ok(()) => {
                self.unsynced.clear();
                Ok(())
            }
            Err(source) => {
                tracing::error!(journal = %self.name(), error = %source, "journal fsync failed; writing the records since the last fsync again");
                self.broken = Some(format!("fsync failed: {source}"));
                self.rewrite_unsynced = true;
                self.repair()
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
        self.file.sync_data()?;
        let seq = self.seq + 1;
        let file = open_segment(&segment_path(&self.dir, seq))?;
        sync_dir(&self.dir)?;
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
            set_unwritable(&self.dir, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::{Arc, Mutex as TestMutex};

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&checksum(payload).to_le_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    /// Writes `records` as the segments `1..`, one list per segment.
    fn write_segments(dir: &Path, segments: &[Vec<Vec<u8>>]) -> Vec<PathBuf> {
        segments
            .iter()
            .enumerate()
            .map(|(i, records)| {
                let path = segment_path(dir, i as u64 + 1);
                std::fs::write(
                    &path,
                    records.iter().flat_map(|r| frame(r)).collect::<Vec<_>>(),
                )
                .unwrap();
                path
            })
            .collect()
    }

    fn corrupt(result: Result<(Journal, Replay), JournalError>) -> (PathBuf, u64, usize) {
        match result {
            Err(JournalError::Corrupt {
                segment,
                offset,
                index,
                ..
            }) => (segment, offset, index),
            Err(other) => panic!("expected Corrupt, got {other}"),
            Ok((_, replay)) => panic!("expected Corrupt, got {} records", replay.records.len()),
        }
    }

    fn records(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|r| r.as_bytes().to_vec()).collect()
    }

    #[test]
    fn records_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, replay) = Journal::open(dir.path(), 0, FsyncPolicy::Always).unwrap();
        assert!(replay.records.is_empty());
        journal.append(b"one").unwrap();
        journal.append(b"two").unwrap();
        let path = segment_path(dir.path(), journal.seq);
        drop(journal);
        let mut file = private_file_options().append(true).open(&path).unwrap();
        Write::write_all(&mut file, &[9, 0, 0, 0, 1, 2]).unwrap();
        let (_, replay) = Journal::open(dir.path(), 0, FsyncPolicy::Always).unwrap();
        assert_eq!(replay.records, records(&["one", "two"]));
        assert_eq!(replay.dropped_bytes, 6);
    }

    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("journal").join("rows");
        let (journal, _) = Journal::open(&dir, 0, FsyncPolicy::Never).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("journal")), 0o700);
        assert_eq!(mode(&segment_path(&dir, journal.seq)), 0o600);
    }

    #[test]
    fn a_bad_record_in_an_older_segment_refuses_and_changes_nothing_until_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_segments(
            dir.path(),
            &[records(&["a", "bb", "ccc"]), records(&["dddd"])],
        );
        let mut bytes = std::fs::read(&paths[0]).unwrap();
        let second = frame(b"a").len();
        bytes[second + RECORD_HEADER_LEN] ^= 0x04;
        std::fs::write(&paths[0], &bytes).unwrap();
        let listing = |dir: &Path| {
            let mut names: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        let before = listing(dir.path());
        let (segment, offset, index) = corrupt(Journal::open(dir.path(), 0, FsyncPolicy::Never));
        assert_eq!(
            (segment, offset, index),
            (paths[0].clone(), second as u64, 1)
        );
        assert_eq!(
            listing(dir.path()),
            before,
            "no segment was added or renamed"
        );
        assert_eq!(std::fs::read(&paths[0]).unwrap(), bytes, "no byte changed");

        assert!(matches!(
            skip_record(&paths[0], 0),
            Err(JournalError::NoBadRecordAt { .. })
        ));
        let skipped = skip_record(&paths[0], second as u64).unwrap();
        assert_eq!(std::fs::read(&skipped.original_kept_as).unwrap(), bytes);
        let (_, replay) = Journal::open(dir.path(), 0, FsyncPolicy::Never).unwrap();
        assert_eq!(replay.records, records(&["a", "ccc", "dddd"]));
    }

    #[test]
    fn a_flipped_length_in_the_tail_segment_is_corruption_not_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_segments(dir.path(), &[records(&["first", "second", "third"])]);
        let mut bytes = std::fs::read(&paths[0]).unwrap();
        let second = frame(b"first").len();
        bytes[second + 2] ^= 0x01; // length + 65536: runs past the end of the segment
        std::fs::write(&paths[0], &bytes).unwrap();
        let (_, offset, index) = corrupt(Journal::open(dir.path(), 0, FsyncPolicy::Never));
        assert_eq!((offset, index), (second as u64, 1));
        skip_record(&paths[0], offset).unwrap();
        let (_, replay) = Journal::open(dir.path(), 0, FsyncPolicy::Never).unwrap();
        assert_eq!(replay.records, records(&["first", "third"]));
    }

    #[test]
    fn a_zero_filled_tail_is_torn_and_empty_later_segments_do_not_hide_it() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_segments(dir.path(), &[records(&["kept"]), vec![]]);
        let mut file = private_file_options().append(true).open(&paths[0]).unwrap();
        Write::write_all(&mut file, &[0; 40]).unwrap();
        let (_, replay) = Journal::open(dir.path(), 0, FsyncPolicy::Never).unwrap();
        assert_eq!(replay.records, records(&["kept"]));
        assert_eq!(replay.dropped_bytes, 40);
    }

    #[test]
    fn a_record_that_does_not_decode_is_named_by_segment_offset_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_segments(
            dir.path(),
            &[
                records(&["skipped"]),
                records(&["a", "bb"]),
                vec![],
                records(&["c", "dd"]),
            ],
        );
        let (_, replay) = Journal::open(dir.path(), 2, FsyncPolicy::Never).unwrap();
        assert_eq!(replay.records, records(&["a", "bb", "c", "dd"]));
        let located = |i| match replay.undecodable(i) {
            JournalError::Undecodable {
                segment,
                offset,
                index,
                ..
            } => (segment, offset, index),
            other => panic!("{other}"),
        };
        assert_eq!(located(1), (paths[1].clone(), frame(b"a").len() as u64, 1));
        assert_eq!(located(2), (paths[3].clone(), 0, 0));
        assert_eq!(located(3), (paths[3].clone(), frame(b"c").len() as u64, 1));
    }

    #[test]
    fn segments_before_a_snapshot_are_skipped_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), 0, FsyncPolicy::Never).unwrap();
        journal.append(b"old").unwrap();
        let seq = journal.rotate().unwrap();
        journal.append(b"new").unwrap();
        journal.remove_before(seq).unwrap();
        drop(journal);
        let (_, replay) = Journal::open(dir.path(), seq, FsyncPolicy::Never).unwrap();
        assert_eq!(replay.records, records(&["new"]));
    }

    /// A full disk that accepts half of each write; truncation can fail too; an fsync that
    /// fails loses what it could not write, as Linux may (the file is cut back to the last
    /// fsynced length).
    #[derive(Debug, Default)]
    struct Faults {
        disk_full: bool,
        truncate_fails: bool,
        /// How many of the next fsyncs fail.
        sync_failures: u32,
    }

    #[derive(Debug)]
    struct FaultyFile {
        inner: File,
        faults: Arc<TestMutex<Faults>>,
        synced_len: u64,
    }

    impl SegmentFile for FaultyFile {
        fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
            if self.faults.lock().unwrap().disk_full {
                Write::write_all(&mut self.inner, &bytes[..bytes.len() / 2])?;
                return Err(io::Error::from_raw_os_error(28));
            }
            Write::write_all(&mut self.inner, bytes)
        }

        fn sync_data(&mut self) -> io::Result<()> {
            let mut faults = self.faults.lock().unwrap();
            if faults.sync_failures > 0 {
                faults.sync_failures -= 1;
                self.inner.set_len(self.synced_len)?;
                return Err(io::Error::from_raw_os_error(5));
            }
            self.inner.sync_data()?;
            self.synced_len = self.inner.metadata()?.len();
            Ok(())
        }

        fn truncate(&mut self, len: u64) -> io::Result<()> {
            if self.faults.lock().unwrap().truncate_fails {
                return Err(io::Error::from_raw_os_error(5));
            }
            SegmentFile::truncate(&mut self.inner, len)?;
            self.synced_len = len;
            Ok(())
        }
    }

    fn faulty(journal: &mut Journal) -> Arc<TestMutex<Faults>> {
        let faults = Arc::new(TestMutex::new(Faults::default()));
        let inner = open_segment(&segment_path(&journal.dir, journal.seq)).unwrap();
        journal.file = Box::new(FaultyFile {
            synced_len: inner.metadata().unwrap().len(),
            inner,
            faults: faults.clone(),
        });
        faults
    }

    #[test]
    fn a_failed_append_leaves_no_hole_before_later_acknowledged_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), 0, FsyncPolicy::Always).unwrap();
        let faults = faulty(&mut journal);
        journal.append(b"before").unwrap();
        faults.lock().unwrap().disk_full = true;
        let failed = journal.append(b"while the disk is full").unwrap_err();
        assert!(
            matches!(failed, JournalError::NotWritten { .. }),
            "{failed}"
        );
        faults.lock().unwrap().disk_full = false;
        journal.append(b"after").unwrap();
        drop(journal);
        let (_, replay) = Journal::open(dir.path(), 0, FsyncPolicy::Always).unwrap();
        assert_eq!(replay.records, records(&["before", "after"]));
        assert_eq!(replay.dropped_bytes, 0);
    }

    #[test]
    fn a_journal_that_cannot_be_repaired_refuses_writes_until_it_can() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), 0, FsyncPolicy::Always).unwrap();
        let faults = faulty(&mut journal);
        journal.append(b"before").unwrap();
        *faults.lock().unwrap() = Faults {
            disk_full: true,
            truncate_fails: true,
            sync_failures: 0,
        };
        assert!(journal.append(b"lost").unwrap_err().is_unwritable());
        faults.lock().unwrap().disk_full = false;
        let refused = journal.append(b"refused").unwrap_err();
        assert!(refused.is_unwritable(), "{refused}");
        let listed = unwritable_journals();
        let name = journal_name(dir.path());
        assert!(listed.iter().any(|(n, _)| *n == name), "{listed:?}");
        faults.lock().unwrap().truncate_fails = false;
        journal.append(b"after").unwrap();
        assert!(!unwritable_journals().iter().any(|(n, _)| *n == name));
        drop(journal);
        let (_, replay) = Journal::open(dir.path(), 0, FsyncPolicy::Always).unwrap();
        assert_eq!(replay.records, records(&["before", "after"]));
    }

    #[test]
    fn a_failed_group_fsync_writes_the_unsynced_records_again() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), 0, FsyncPolicy::EverySecond).unwrap();
        let faults = faulty(&mut journal);
        journal.append(b"synced").unwrap();
        journal.sync().unwrap();
        journal.append(b"acknowledged 1").unwrap();
        journal.append(b"acknowledged 2").unwrap();
        // One failed fsync, which loses the unsynced bytes: the repair writes them again.
        faults.lock().unwrap().sync_failures = 1;
        journal.sync().unwrap();
        journal.append(b"acknowledged 3").unwrap();
        faults.lock().unwrap().sync_failures = u32::MAX;
        let name = journal_name(dir.path());
        // The tick's fsync fails and loses the unsynced bytes; the repair's fsync fails too: the
        // journal refuses appends (and says so on /health) rather than acknowledge past a hole.
        let failed = journal.sync().unwrap_err();
        assert!(failed.is_unwritable(), "{failed}");
        assert!(unwritable_journals().iter().any(|(n, _)| *n == name));
        let refused = journal.append(b"refused").unwrap_err();
        assert!(refused.is_unwritable(), "{refused}");
        // The disk recovers: the next append first writes the lost records again.
        faults.lock().unwrap().sync_failures = 0;
        journal.append(b"after").unwrap();
        assert!(!unwritable_journals().iter().any(|(n, _)| *n == name));
        journal.sync().unwrap();
        drop(journal);
        let (_, replay) = Journal::open(dir.path(), 0, FsyncPolicy::EverySecond).unwrap();
        assert_eq!(
            replay.records,
            records(&[
                "synced",
                "acknowledged 1",
                "acknowledged 2",
                "acknowledged 3",
                "after"
            ])
        );
        assert_eq!(replay.dropped_bytes, 0);
    }

    proptest! {
        #[test]
        fn a_cut_is_a_torn_tail_and_a_flipped_bit_is_located_and_skippable(
            written in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let bytes: Vec<u8> = written.iter().flat_map(|r| frame(r)).collect();
            let starts: Vec<usize> = written
                .iter()
                .scan(0, |at, r| { let start = *at; *at += RECORD_HEADER_LEN + r.len(); Some(start) })
                .collect();

            let dir = tempfile::tempdir().unwrap();
            let path = segment_path(dir.path(), 1);
            let cut_at = cut.index(bytes.len() + 1);
            std::fs::write(&path, &bytes[..cut_at]).unwrap();
            let (_, replay) = Journal::open(dir.path(), 0, FsyncPolicy::Never).unwrap();
            let whole = starts.iter().zip(&written).filter(|(s, r)| *s + RECORD_HEADER_LEN + r.len() <= cut_at).count();
            prop_assert_eq!(&replay.records[..], &written[..whole]);

            let dir = tempfile::tempdir().unwrap();
            let path = segment_path(dir.path(), 1);
            let mut flipped = bytes.clone();
            let at = flip.index(bytes.len());
            flipped[at] ^= 1 << bit;
            std::fs::write(&path, &flipped).unwrap();
            let hit = starts.iter().rposition(|s| *s <= at).unwrap();
            let (_, offset, index) = corrupt(Journal::open(dir.path(), 0, FsyncPolicy::Never));
            prop_assert_eq!((offset, index), (starts[hit] as u64, hit));
            prop_assert_eq!(std::fs::read(&path).unwrap(), flipped);
            skip_record(&path, offset).unwrap();
            let (_, replay) = Journal::open(dir.path(), 0, FsyncPolicy::Never).unwrap();
            let mut expected = written.clone();
            expected.remove(hit);
            prop_assert_eq!(replay.records, expected);
        }
    }
}

//! Reading segments back: each frame's verdict, a torn tail against corruption (the rules are
//! in the module comment of `journal`), where valid records resume after a bad frame, and the
//! operator's tools built on that (`inspect`, `verify`, `skip_record`).

use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{journal_name, segment_path, segments, JournalError};
use crate::persist::files::{private_file_options, sync_dir};
use crate::persist::format::{checksum, RECORD_HEADER_LEN};

/// The newest segment holding any bytes: the only one a crash can leave a torn tail in.
pub(super) fn tail_segment(dir: &Path, all: &[u64]) -> io::Result<Option<u64>> {
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

/// Where valid records resume after the bad frame at `offset`: the first later offset where a
/// whole frame verifies. Not the end its length field claims: a flipped bit in that field can
/// land it exactly on a later frame boundary, and trusting it would drop the valid records in
/// between. (A spurious frame inside the bad payload would need a matching 64-bit checksum.)
fn resume_after(bytes: &[u8], offset: usize) -> Option<usize> {
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
pub(super) struct Scan {
    pub(super) payloads: Vec<Range<usize>>,
    pub(super) bad: Vec<BadRecord>,
    /// Offset of a torn tail.
    pub(super) torn_tail: Option<usize>,
}

pub(super) fn scan(bytes: &[u8], is_tail_segment: bool) -> Scan {
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
    /// Its number.
    pub seq: u64,
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
            seq,
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
    let stamp = crate::persist::snapshot::snapshot_id(crate::time::now_micros());
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

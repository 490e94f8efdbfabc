//! An append-only journal of framed, checksummed records, kept as numbered segment files
//! (`00000000000000000001.journal`, ...) in one directory per actor.
//!
//! A record is appended before the change it describes is acknowledged. Opening a journal reads
//! every record of the segments from a given sequence number on: a torn tail (a crash in the
//! middle of a write) is cut off and logged with the number of bytes dropped; a record that fails
//! its checksum ends the replay there, and any later segments are set aside (renamed
//! `.discarded`), so garbage is never applied. Appends then go to a fresh segment.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

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

/// Records read back when a journal is opened.
#[derive(Debug, Default)]
pub struct Replay {
    pub records: Vec<Vec<u8>>,
    /// Bytes cut from a torn or corrupt tail.
    pub dropped_bytes: u64,
    /// Why the replay stopped early, if it did.
    pub stopped: Option<String>,
}

/// The journal's writing end.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    seq: u64,
    file: File,
    policy: FsyncPolicy,
    /// Bytes written since the last fsync.
    dirty: bool,
}

const SUFFIX: &str = "journal";

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.{SUFFIX}"))
}

/// The segment numbers in `dir`, ascending.
fn segments(dir: &Path) -> io::Result<Vec<u64>> {
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

/// Splits `bytes` into records; returns them and the offset of the first byte that is not a
/// whole, valid record.
pub fn parse_records(bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut records = Vec::new();
    let mut offset = 0;
    while bytes.len() - offset >= RECORD_HEADER_LEN {
        let len =
            u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize;
        let sum = u64::from_le_bytes(bytes[offset + 4..offset + 12].try_into().expect("8 bytes"));
        let start = offset + RECORD_HEADER_LEN;
        let Some(payload) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else {
            break;
        };
        if checksum(payload) != sum {
            break;
        }
        records.push(payload.to_vec());
        offset = start + len;
    }
    (records, offset)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Journal {
    /// Opens the journal in `dir` (creating it), reads every record of the segments numbered
    /// `from_seq` or later, and starts a new segment for appends.
    pub fn open(dir: &Path, from_seq: u64, policy: FsyncPolicy) -> io::Result<(Journal, Replay)> {
        std::fs::create_dir_all(dir)?;
        let all = segments(dir)?;
        let mut replay = Replay::default();
        let to_read: Vec<u64> = all.iter().copied().filter(|seq| *seq >= from_seq).collect();
        for (i, seq) in to_read.iter().enumerate() {
            let path = segment_path(dir, *seq);
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
            let (records, good) = parse_records(&bytes);
            replay.records.extend(records);
            if good < bytes.len() {
                let dropped = (bytes.len() - good) as u64;
                replay.dropped_bytes += dropped;
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(good as u64)?;
                let later = &to_read[i + 1..];
                if later.is_empty() {
                    tracing::warn!(segment = %path.display(), dropped_bytes = dropped, "journal: cut a torn tail");
                } else {
                    for seq in later {
                        let from = segment_path(dir, *seq);
                        std::fs::rename(&from, from.with_extension("discarded"))?;
                    }
                    let reason = format!(
                        "journal segment {} has a bad record at byte {good}; {dropped} bytes dropped and {} later segment(s) set aside as .discarded",
                        path.display(),
                        later.len()
                    );
                    tracing::error!("{reason}");
                    replay.stopped = Some(reason);
                }
                break;
            }
        }
        let seq = all
            .last()
            .map_or(from_seq.max(1), |last| (last + 1).max(from_seq));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, seq))?;
        sync_dir(dir)?;
        Ok((
            Journal {
                dir: dir.to_path_buf(),
                seq,
                file,
                policy,
                dirty: false,
            },
            replay,
        ))
    }

    /// Appends one record; with `Always`, it is on disk when this returns.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        let len = u32::try_from(payload.len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "journal record over 4 GiB")
        })?;
        let mut frame = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&checksum(payload).to_le_bytes());
        frame.extend_from_slice(payload);
        self.file.write_all(&frame)?;
        self.dirty = true;
        if self.policy == FsyncPolicy::Always {
            self.sync()?;
        }
        Ok(())
    }

    /// fsyncs if anything was written since the last fsync (the `every_second` tick).
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// Closes the current segment and starts the next; returns the new segment's number. A
    /// snapshot taken now covers every record before it.
    pub fn rotate(&mut self) -> io::Result<u64> {
        self.file.sync_data()?;
        self.seq += 1;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&self.dir, self.seq))?;
        self.dirty = false;
        sync_dir(&self.dir)?;
        Ok(self.seq)
    }

    /// Deletes the segments before `seq` (a snapshot holds their effects).
    pub fn remove_before(&self, seq: u64) -> io::Result<()> {
        for old in segments(&self.dir)?.into_iter().filter(|s| *s < seq) {
            std::fs::remove_file(segment_path(&self.dir, old))?;
        }
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, replay) = Journal::open(dir.path(), 0, FsyncPolicy::Always).unwrap();
        assert!(replay.records.is_empty());
        journal.append(b"one").unwrap();
        journal.append(b"two").unwrap();
        let path = segment_path(dir.path(), journal.seq);
        drop(journal);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        let (_, replay) = Journal::open(dir.path(), 0, FsyncPolicy::Always).unwrap();
        assert_eq!(replay.records, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(replay.dropped_bytes, 6);
        assert!(replay.stopped.is_none());
    }

    #[test]
    fn a_bad_record_ends_replay_and_sets_later_segments_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), 0, FsyncPolicy::Never).unwrap();
        journal.append(b"first").unwrap();
        journal.append(b"second").unwrap();
        let first_segment = segment_path(dir.path(), journal.seq);
        journal.rotate().unwrap();
        journal.append(b"third").unwrap();
        drop(journal);
        let mut bytes = std::fs::read(&first_segment).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&first_segment, bytes).unwrap();
        let (_, replay) = Journal::open(dir.path(), 0, FsyncPolicy::Never).unwrap();
        assert_eq!(replay.records, vec![b"first".to_vec()]);
        assert!(replay.stopped.unwrap().contains("set aside"));
        let (_, again) = Journal::open(dir.path(), 0, FsyncPolicy::Never).unwrap();
        assert_eq!(
            again.records,
            vec![b"first".to_vec()],
            "the discarded segment is not read again"
        );
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
        assert_eq!(replay.records, vec![b"new".to_vec()]);
    }

    proptest! {
        #[test]
        fn truncated_or_flipped_journals_never_yield_garbage(
            records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
        ) {
            let mut bytes = Vec::new();
            for record in &records {
                bytes.extend_from_slice(&(record.len() as u32).to_le_bytes());
                bytes.extend_from_slice(&checksum(record).to_le_bytes());
                bytes.extend_from_slice(record);
            }
            let truncated = &bytes[..cut.index(bytes.len() + 1)];
            let (parsed, _) = parse_records(truncated);
            prop_assert!(parsed.len() <= records.len());
            prop_assert_eq!(&parsed[..], &records[..parsed.len()]);
            let mut flipped = bytes.clone();
            let at = flip.index(flipped.len());
            flipped[at] ^= 0x01;
            let (parsed, _) = parse_records(&flipped);
            // Every record that survives a flipped bit is one that was written.
            prop_assert_eq!(&parsed[..], &records[..parsed.len()]);
        }
    }
}

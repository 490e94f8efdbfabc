//! Snapshot files: writing one atomically (temporary file, fsync, rename, directory fsync) and
//! in write-back steps, reading and verifying one (magic, version, header and per-section xxh3
//! checksums), listing the snapshots of a directory, and keeping only the newest N.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::files::{create_private_dir, private_file_options, sync_dir};
use super::format::{
    checksum, SectionKind, FORMAT_VERSION, HEADER_LEN, OLDEST_READ_VERSION, SECTION_HEADER_LEN,
    SNAPSHOT_MAGIC,
};

/// A part of a section's payload that is written piece by piece, never joined: the shards'
/// records, hundreds of MB at millions of rows, which joining would copy (and fault in afresh)
/// while reads go on. Read once: each piece is hashed and written in the same pass.
pub trait PayloadPart: Send + Sync + std::fmt::Debug {
    /// Bytes of all the pieces.
    fn byte_len(&self) -> usize;

    /// The pieces, in file order.
    fn pieces(&self) -> Box<dyn Iterator<Item = &[u8]> + '_>;
}

impl PayloadPart for Vec<u8> {
    fn byte_len(&self) -> usize {
        self.len()
    }

    fn pieces(&self) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        Box::new(std::iter::once(self.as_slice()))
    }
}

/// One actor's part of a snapshot.
#[derive(Debug, Clone)]
pub struct SectionData {
    pub kind: SectionKind,
    /// The first journal segment of this actor that the snapshot does not cover.
    pub journal_seq: u64,
    /// Rows or objects in the section, for listings.
    pub items: u64,
    /// Read back, a slice of the file's bytes (shared by every section, not copied).
    pub payload: Bytes,
    /// The rest of the payload, written after `payload` part by part (the shards' exported
    /// records). Empty in a section read back.
    pub payload_tail: Vec<Arc<dyn PayloadPart>>,
}

impl SectionData {
    /// The payload's pieces in file order.
    fn payload_pieces(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self.payload[..]).chain(self.payload_tail.iter().flat_map(|p| p.pieces()))
    }

    fn payload_len(&self) -> usize {
        self.payload.len()
            + self
                .payload_tail
                .iter()
                .map(|p| p.byte_len())
                .sum::<usize>()
    }
}

/// A snapshot read back and verified.
#[derive(Debug)]
pub struct Snapshot {
    pub id: String,
    pub created_micros: i64,
    pub n_shards: u32,
    pub sections: Vec<SectionData>,
}

impl Snapshot {
    /// The section of `kind`, if the snapshot has one.
    pub fn section(&self, kind: SectionKind) -> Option<&SectionData> {
        self.sections.iter().find(|section| section.kind == kind)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}: not a Quiver snapshot (bad magic bytes)")]
    BadMagic(PathBuf),
    #[error("{path}: snapshot format version {version} is not supported (this build reads {OLDEST_READ_VERSION} to {FORMAT_VERSION})")]
    Version { path: PathBuf, version: u32 },
    #[error("{0}: header checksum mismatch")]
    HeaderChecksum(PathBuf),
    #[error("{path}: truncated in section {index}")]
    Truncated { path: PathBuf, index: usize },
    #[error("{path}: checksum mismatch in section {index} ({kind})")]
    SectionChecksum {
        path: PathBuf,
        index: usize,
        kind: &'static str,
    },
    #[error("{path}: unknown section kind {code}")]
    UnknownSection { path: PathBuf, code: u32 },
    #[error("{0}: trailing bytes after the last section")]
    Trailing(PathBuf),
}

const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".qvs";

/// A snapshot's id: its creation time, readable and sortable (`20261124T071512123456Z`).
pub fn snapshot_id(created_micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(created_micros).map_or_else(
        || created_micros.to_string(),
        |t| t.format("%Y%m%dT%H%M%S%6fZ").to_string(),
    )
}

pub fn snapshot_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{PREFIX}{id}{SUFFIX}"))
}

/// A section's checksum covers its header fields as well as its payload, so a flipped
/// `journal_seq` or length is caught too: this hasher has taken the fields, the payload follows.
fn section_hasher(fields: &[u8]) -> xxhash_rust::xxh3::Xxh3 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(fields);
    hasher
}

/// Bytes of a payload piece hashed and then written while they are still in the CPU's cache.
const HASHED_CHUNK: usize = 128 << 10;

/// Writes a snapshot atomically (mode 0600, in a 0700 directory); returns its path. A crash
/// leaves either no file or the whole file, never a partial one under the final name; a failure
/// (a full disk) leaves no file behind and names it in the error.
pub fn write_snapshot(
    dir: &Path,
    created_micros: i64,
    n_shards: u32,
    sections: &[SectionData],
) -> io::Result<PathBuf> {
    create_private_dir(dir)?;
    let id = snapshot_id(created_micros);
    let final_path = snapshot_path(dir, &id);
    let temp_path = dir.join(format!(".{PREFIX}{id}.tmp"));
    let written = write_snapshot_file(&temp_path, created_micros, n_shards, sections)
        .and_then(|()| std::fs::rename(&temp_path, &final_path));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temp_path);
        return Err(io::Error::new(
            error.kind(),
            format!("writing {}: {error}", temp_path.display()),
        ));
    }
    if let Err(error) = sync_dir(dir) {
        // Renamed in but not durable. A failed snapshot must leave no file behind: its caller
        // undoes what it was for (an apply), which a file found at the next start would bring
        // back. Should the removal not last either (a crash after it), the start refuses the
        // file, the journal after it holding the apply's `Undone` (`UndoneApplySnapshot`).
        let removed = std::fs::remove_file(&final_path).and_then(|()| sync_dir(dir));
        if let Err(removal) = removed {
            tracing::error!(snapshot = %final_path.display(), error = %removal, "a snapshot that failed could not be removed for sure");
        }
        return Err(io::Error::new(
            error.kind(),
            format!(
                "making {} durable (directory fsync): {error}",
                final_path.display()
            ),
        ));
    }
    Ok(final_path)
}

fn write_snapshot_file(
    path: &Path,
    created_micros: i64,
    n_shards: u32,
    sections: &[SectionData],
) -> io::Result<()> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(SNAPSHOT_MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&created_micros.to_le_bytes());
    header.extend_from_slice(&n_shards.to_le_bytes());
    header.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    let header_sum = checksum(&header);
    header.extend_from_slice(&header_sum.to_le_bytes());
    let file = private_file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let mut file = io::BufWriter::new(SteppedWriter {
        file,
        written: 0,
        stepped: 0,
    });
    file.write_all(&header)?;
    // A section's checksum comes before its payload, but is taken as the payload is written
    // (one pass over the shards' records, not one to hash and one to write): written as zeros,
    // then put in place before the fsync. The file is renamed into place only after that.
    let mut sums = Vec::with_capacity(sections.len());
    let mut section_at = header.len();
    for section in sections {
        let len = section.payload_len();
        let mut fields = Vec::with_capacity(SECTION_HEADER_LEN);
        fields.extend_from_slice(&section.kind.code().to_le_bytes());
        fields.extend_from_slice(&section.journal_seq.to_le_bytes());
        fields.extend_from_slice(&section.items.to_le_bytes());
        fields.extend_from_slice(&(len as u64).to_le_bytes());
        let mut hasher = section_hasher(&fields);
        file.write_all(&fields)?;
        file.write_all(&[0; 8])?;
        let mut written = 0;
        for piece in section.payload_pieces() {
            for chunk in piece.chunks(HASHED_CHUNK) {
                hasher.update(chunk);
                file.write_all(chunk)?;
            }
            written += piece.len();
        }
        // The length went out first, as a part said it would be: a part that wrote another
        // would leave a file that does not read back.
        if written != len {
            return Err(io::Error::other(format!(
                "section {}: {len} payload bytes declared, {written} written",
                section.kind.name()
            )));
        }
        sums.push((section_at + SECTION_HEADER_LEN - 8, hasher.digest()));
        section_at += SECTION_HEADER_LEN + len;
    }
    let stepped = file.into_inner().map_err(|e| e.into_error())?;
    for (at, sum) in sums {
        std::os::unix::fs::FileExt::write_all_at(&stepped.file, &sum.to_le_bytes(), at as u64)?;
    }
    stepped.finish()
}

/// Bytes a snapshot file is written between two write-back steps.
const WRITE_BACK_STEP: u64 = if cfg!(test) { 16 } else { 8 << 20 };

/// Writes a file in steps of [`WRITE_BACK_STEP`] bytes, starting each step's write-back once
/// it is written and waiting for the step before it to be on disk: the final fsync finds little
/// left to flush, and the device's queue never holds hundreds of MB of snapshot (a journal's
/// fsync would wait behind them) nor the page cache as many dirty pages. A step on disk is
/// dropped from the page cache: nothing reads it back soon, and on a host whose memory is full
/// of cache each new page of the file would otherwise be taken by reclaim, which the serving
/// threads' own allocations can be made to do (direct reclaim and compaction stalls).
struct SteppedWriter {
    file: std::fs::File,
    written: u64,
    /// Where the current step starts.
    stepped: u64,
}

impl SteppedWriter {
    fn step(&mut self) {
        use std::os::fd::AsRawFd;
        let fd = self.file.as_raw_fd();
        let len = self.written - self.stepped;
        // SAFETY: plain system calls on a file this writer owns. Advisory only: a failed
        // write-back also fails the fsync that ends the file, which is what reports it.
        unsafe {
            libc::sync_file_range(
                fd,
                self.stepped as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
            if let Some(before) = self.stepped.checked_sub(WRITE_BACK_STEP) {
                libc::sync_file_range(
                    fd,
                    before as libc::off64_t,
                    WRITE_BACK_STEP as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                );
                drop_cached(fd, before, WRITE_BACK_STEP);
            }
        }
        self.stepped = self.written;
    }

    /// Makes the whole file durable, then drops what is left of it from the page cache.
    fn finish(self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        self.file.sync_all()?;
        drop_cached(self.file.as_raw_fd(), 0, 0);
        Ok(())
    }
}

/// Asks the kernel to drop a written range of a file from the page cache (`len` 0: to the end).
/// Only clean pages go, so the range must be on disk first. Advisory: a failure leaves them.
fn drop_cached(fd: std::os::fd::RawFd, offset: u64, len: u64) {
    // SAFETY: a plain system call on a file descriptor the caller owns.
    unsafe {
        libc::posix_fadvise(
            fd,
            offset as libc::off_t,
            len as libc::off_t,
            libc::POSIX_FADV_DONTNEED,
        );
    }
}

impl Write for SteppedWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = (self.stepped + WRITE_BACK_STEP - self.written) as usize;
        let written = self.file.write(&bytes[..bytes.len().min(room)])?;
        self.written += written as u64;
        if self.written - self.stepped >= WRITE_BACK_STEP {
            self.step();
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Reads and verifies a whole snapshot file: one read into a buffer of the file's size, which
/// the sections' payloads then share (no copy per section: at millions of rows the feature
/// records' copy was a sixth of a restore).
pub fn read_snapshot(path: &Path) -> Result<Snapshot, SnapshotError> {
    let bytes = read_into_mapping(path).map_err(|source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_snapshot(path, bytes)
}

/// A file's bytes in an anonymous mapping of their own, in huge pages where the system has
/// them, unmapped when the last share of them is dropped. Read into a `Vec`, a restore's
/// buffer stayed in the allocator's hands once freed, in the process's RSS (10 M rows:
/// 1.61 GB after start-up where the store held 0.97).
fn read_into_mapping(path: &Path) -> io::Result<Bytes> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let len = usize::try_from(file.metadata()?.len()).map_err(io::Error::other)?;
    // A mapping is never empty; an empty file reads as no bytes.
    let mut map = memmap2::MmapMut::map_anon(len.max(1))?;
    // Advice only: in 4 KiB pages the read works the same.
    let _ = map.advise(memmap2::Advice::HugePage);
    file.read_exact(&mut map[..len])?;
    Ok(Bytes::from_owner(map.make_read_only()?).slice(..len))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Verifies and splits snapshot bytes; `path` only names the file in errors.
pub fn parse_snapshot(path: &Path, file: Bytes) -> Result<Snapshot, SnapshotError> {
    let bytes: &[u8] = &file;
    let path_buf = || path.to_path_buf();
    if bytes.len() < HEADER_LEN || &bytes[..8] != SNAPSHOT_MAGIC {
        return Err(SnapshotError::BadMagic(path_buf()));
    }
    if checksum(&bytes[..HEADER_LEN - 8]) != u64_at(bytes, HEADER_LEN - 8) {
        return Err(SnapshotError::HeaderChecksum(path_buf()));
    }
    let version = u32_at(bytes, 8);
    if !(OLDEST_READ_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(SnapshotError::Version {
            path: path_buf(),
            version,
        });
    }
    let created_micros = u64_at(bytes, 12) as i64;
    let n_shards = u32_at(bytes, 20);
    let n_sections = u32_at(bytes, 24) as usize;
    let mut offset = HEADER_LEN;
    let mut sections = Vec::with_capacity(n_sections.min(16));
    for index in 0..n_sections {
        let truncated = || SnapshotError::Truncated {
            path: path_buf(),
            index,
        };
        if bytes.len() - offset < SECTION_HEADER_LEN {
            return Err(truncated());
        }
        let code = u32_at(bytes, offset);
        let kind = SectionKind::from_code(code).ok_or(SnapshotError::UnknownSection {
            path: path_buf(),
            code,
        })?;
        let journal_seq = u64_at(bytes, offset + 4);
        let items = u64_at(bytes, offset + 12);
        let len = usize::try_from(u64_at(bytes, offset + 20)).map_err(|_| truncated())?;
        let sum = u64_at(bytes, offset + 28);
        let start = offset + SECTION_HEADER_LEN;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(truncated)?;
        let payload = &bytes[start..end];
        let mut hasher = section_hasher(&bytes[offset..offset + SECTION_HEADER_LEN - 8]);
        hasher.update(payload);
        if hasher.digest() != sum {
            return Err(SnapshotError::SectionChecksum {
                path: path_buf(),
                index,
                kind: kind.name(),
            });
        }
        sections.push(SectionData {
            kind,
            journal_seq,
            items,
            payload: file.slice(start..end),
            payload_tail: Vec::new(),
        });
        offset = start + len;
    }
    if offset != bytes.len() {
        return Err(SnapshotError::Trailing(path_buf()));
    }
    let id = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(PREFIX))
        .and_then(|n| n.strip_suffix(SUFFIX))
        .map_or_else(|| snapshot_id(created_micros), str::to_string);
    Ok(Snapshot {
        id,
        created_micros,
        n_shards,
        sections,
    })
}

/// The snapshot files of `dir`, oldest first (by name, which sorts by time).
pub fn snapshot_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// What [`newest_valid`] found: the newest snapshot that verifies, if any, and the newer ones
/// that do not (newest first). Whether starting from it loses anything is the caller's to judge
/// (`persist::startup`): skipping a damaged snapshot is safe only if the journals reach back.
#[derive(Debug, Default)]
pub struct NewestValid {
    pub found: Option<(PathBuf, Snapshot)>,
    pub damaged: Vec<SnapshotError>,
}

/// The newest snapshot that verifies, and each newer one that does not (logged by name). A
/// snapshot in a format version this build does not read is not damaged, and skipping it would
/// silently lose the state it holds: that stops the search with `Version`.
pub fn newest_valid(dir: &Path) -> Result<NewestValid, SnapshotError> {
    let files = snapshot_files(dir).map_err(|source| SnapshotError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut newest = NewestValid::default();
    for path in files.into_iter().rev() {
        match read_snapshot(&path) {
            Ok(snapshot) => {
                newest.found = Some((path, snapshot));
                break;
            }
            Err(error @ SnapshotError::Version { .. }) => return Err(error),
            Err(error) => {
                tracing::error!(%error, "a snapshot does not verify; looking at the one before it");
                newest.damaged.push(error);
            }
        }
    }
    Ok(newest)
}

/// One line of a snapshot listing.
#[derive(Debug)]
pub struct SnapshotListing {
    pub id: String,
    pub path: String,
    pub created_at: String,
    pub bytes: u64,
    pub n_shards: Option<u32>,
    /// Items per section (`"feature rows": 1200`).
    pub items: std::collections::BTreeMap<String, u64>,
    /// `ok`, or what is wrong.
    pub checksum: String,
}

/// Verifies and describes every snapshot of `dir`, newest first.
pub fn describe_snapshots(dir: &Path) -> io::Result<Vec<SnapshotListing>> {
    let mut listing = Vec::new();
    for path in snapshot_files(dir)?.into_iter().rev() {
        let bytes = std::fs::metadata(&path)?.len();
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .trim_start_matches(PREFIX)
            .trim_end_matches(SUFFIX)
            .to_string();
        let entry = match read_snapshot(&path) {
            Ok(snapshot) => SnapshotListing {
                id: snapshot.id,
                path: path.display().to_string(),
                created_at: crate::time::format_timestamp(snapshot.created_micros),
                bytes,
                n_shards: Some(snapshot.n_shards),
                items: snapshot
                    .sections
                    .iter()
                    .map(|s| (s.kind.name().to_string(), s.items))
                    .collect(),
                checksum: "ok".to_string(),
            },
            Err(error) => SnapshotListing {
                id,
                path: path.display().to_string(),
                created_at: String::new(),
                bytes,
                n_shards: None,
                items: Default::default(),
                checksum: error.to_string(),
            },
        };
        listing.push(entry);
    }
    Ok(listing)
}

/// Deletes all but the newest `keep` snapshots, and never `also_keep`: the snapshot the journals
/// are kept back to, without which falling back from a damaged newest one would be impossible.
pub fn apply_retention(dir: &Path, keep: usize, also_keep: Option<&Path>) -> io::Result<()> {
    let files = snapshot_files(dir)?;
    let excess = files.len().saturating_sub(keep.max(1));
    for old in files[..excess]
        .iter()
        .filter(|old| Some(old.as_path()) != also_keep)
    {
        std::fs::remove_file(old)?;
    }
    Ok(())
}

/// `sections` as a restore sees them: written to a snapshot file (of 2 shards) and read back.
#[cfg(test)]
pub(crate) fn through_a_file(sections: &[SectionData]) -> Snapshot {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = write_snapshot(dir.path(), 0, 2, sections).expect("a written snapshot");
    read_snapshot(&path).expect("a snapshot read back")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<SectionData> {
        vec![SectionData {
            kind: SectionKind::FeatureRows,
            journal_seq: 4,
            items: 2,
            // Written in parts, as the feature records are; read back whole.
            payload: Bytes::from_static(b"rows-"),
            payload_tail: vec![Arc::new(b"pay".to_vec()), Arc::new(b"load".to_vec())],
        }]
    }

    #[test]
    fn round_trip_retention_and_skipping_a_corrupt_newest() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_snapshot(dir.path(), 1_000_000, 2, &sample()).unwrap();
        let second = write_snapshot(dir.path(), 2_000_000, 2, &sample()).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&second).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "snapshots are private");
        let snapshot = read_snapshot(&second).unwrap();
        assert_eq!(
            (snapshot.n_shards, snapshot.sections[0].journal_seq),
            (2, 4)
        );
        assert_eq!(snapshot.sections[0].payload, &b"rows-payload"[..]);
        let mut bytes = std::fs::read(&second).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&second, bytes).unwrap();
        assert!(matches!(
            read_snapshot(&second),
            Err(SnapshotError::SectionChecksum { .. })
        ));
        let newest = newest_valid(dir.path()).unwrap();
        assert_eq!(
            newest.found.unwrap().0,
            first,
            "the corrupt newest is skipped for the previous one"
        );
        assert!(matches!(
            &newest.damaged[..],
            [SnapshotError::SectionChecksum { path, .. }] if *path == second
        ));
        let third = write_snapshot(dir.path(), 3_000_000, 2, &sample()).unwrap();
        apply_retention(dir.path(), 2, None).unwrap();
        assert_eq!(snapshot_files(dir.path()).unwrap().len(), 2);
        assert!(!first.exists());
        // The snapshot the journals reach back to outlives a retention of 1.
        apply_retention(dir.path(), 1, Some(&second)).unwrap();
        assert_eq!(snapshot_files(dir.path()).unwrap(), [second.clone(), third]);
    }

    #[test]
    fn a_snapshot_of_the_oldest_format_read_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_snapshot(dir.path(), 1_000_000, 2, &sample()).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&OLDEST_READ_VERSION.to_le_bytes());
        let sum = checksum(&bytes[..HEADER_LEN - 8]);
        bytes[HEADER_LEN - 8..HEADER_LEN].copy_from_slice(&sum.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
        let (found, snapshot) = newest_valid(dir.path()).unwrap().found.unwrap();
        assert_eq!(found, path);
        assert_eq!(snapshot.sections.len(), sample().len());
    }

    #[test]
    fn a_snapshot_of_another_format_version_stops_the_search() {
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), 1_000_000, 2, &sample()).unwrap();
        let newest = write_snapshot(dir.path(), 2_000_000, 2, &sample()).unwrap();
        let mut bytes = std::fs::read(&newest).unwrap();
        bytes[8..12].copy_from_slice(&(OLDEST_READ_VERSION - 1).to_le_bytes());
        let sum = checksum(&bytes[..HEADER_LEN - 8]);
        bytes[HEADER_LEN - 8..HEADER_LEN].copy_from_slice(&sum.to_le_bytes());
        std::fs::write(&newest, bytes).unwrap();
        match newest_valid(dir.path()) {
            Err(SnapshotError::Version { path, version }) => {
                assert_eq!((path, version), (newest, OLDEST_READ_VERSION - 1))
            }
            other => panic!("expected a version refusal, got {other:?}"),
        }
    }

    #[test]
    fn sections_hashed_as_they_are_written_read_back_whole() {
        // Pieces longer than a hashed chunk, an empty one, and more than one section: each
        // checksum is put in place after its payload went out.
        let long: Vec<u8> = (0..3 * HASHED_CHUNK + 5).map(|i| (i % 251) as u8).collect();
        let section = |kind, tail: Vec<Arc<dyn PayloadPart>>| SectionData {
            kind,
            journal_seq: 7,
            items: 3,
            payload: Bytes::from_static(b"head"),
            payload_tail: tail,
        };
        let sections = vec![
            section(
                SectionKind::FeatureRecords,
                vec![
                    Arc::new(long.clone()),
                    Arc::new(Vec::new()),
                    Arc::new(long.clone()),
                ],
            ),
            section(SectionKind::Directory, Vec::new()),
            section(SectionKind::Vault, vec![Arc::new(b"tail".to_vec())]),
        ];
        let snapshot = through_a_file(&sections);
        let payloads: Vec<&[u8]> = snapshot.sections.iter().map(|s| &s.payload[..]).collect();
        assert_eq!(
            payloads,
            [
                &[&b"head"[..], &long, &long].concat()[..],
                b"head",
                b"headtail"
            ]
        );
    }

    /// A part whose pieces are not as long as it says.
    #[derive(Debug)]
    struct Misdeclared(Vec<u8>);

    impl PayloadPart for Misdeclared {
        fn byte_len(&self) -> usize {
            self.0.len() + 1
        }

        fn pieces(&self) -> Box<dyn Iterator<Item = &[u8]> + '_> {
            Box::new(std::iter::once(self.0.as_slice()))
        }
    }

    #[test]
    fn a_part_that_writes_another_length_than_it_declared_fails_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut sections = sample();
        sections[0]
            .payload_tail
            .push(Arc::new(Misdeclared(b"short".to_vec())));
        let error = write_snapshot(dir.path(), 1_000_000, 2, &sections).unwrap_err();
        assert!(error.to_string().contains("declared"), "{error}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no file left"
        );
    }

    /// A file read from the disk (into a mapping of its size) is verified as bytes are: an
    /// empty file or one cut short is refused, a whole one reads back.
    #[test]
    fn snapshot_files_cut_short_are_refused_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_snapshot(dir.path(), 5, 3, &sample()).unwrap();
        let whole = std::fs::read(&path).unwrap();
        assert_eq!(read_snapshot(&path).unwrap().sections.len(), 1);
        for cut in [0, 7, HEADER_LEN, whole.len() - 1] {
            std::fs::write(&path, &whole[..cut]).unwrap();
            assert!(read_snapshot(&path).is_err(), "cut at {cut}");
        }
    }

    proptest! {
        #[test]
        fn truncated_or_flipped_snapshots_are_refused(cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
            let dir = tempfile::tempdir().unwrap();
            let path = write_snapshot(dir.path(), 5, 3, &sample()).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let cut_at = cut.index(bytes.len());
            prop_assert!(parse_snapshot(&path, Bytes::copy_from_slice(&bytes[..cut_at])).is_err());
            let mut flipped = bytes.clone();
            flipped[flip.index(bytes.len())] ^= 0x10;
            prop_assert!(parse_snapshot(&path, flipped.into()).is_err());
        }
    }
}

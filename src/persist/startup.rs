//! The start-up choice of state: every journal verified, then the newest snapshot that
//! verifies, then a check that the journals hold every change after it. Starting past a damaged
//! snapshot (from an older one, or from none) is safe only when each journal still reaches back
//! to where that older start point ends, and a journal with a segment missing in the middle would
//! replay around a hole; either would silently lose acknowledged writes. So the start is refused,
//! naming the damaged snapshots and what the journals do and do not hold, unless the operator
//! accepts the loss (`quiver serve --accept-lost-writes`). Nothing is changed before the choice.

use std::fmt;
use std::path::{Path, PathBuf};

use super::format::SectionKind;
use super::journal::{self, journal_name, JournalError};
use super::snapshot::{newest_valid, Snapshot, SnapshotError};
use super::PersistError;

/// A journal, and the snapshot sections whose `journal_seq` is a segment of it (the first one
/// the section does not cover).
#[derive(Debug, Clone)]
pub struct StateJournal {
    pub dir: PathBuf,
    pub sections: &'static [SectionKind],
}

/// What to do when starting would lose acknowledged writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostWrites {
    /// Refuse to start, having changed nothing.
    Refuse,
    /// Start from what is left and log what is lost: the operator asked
    /// (`--accept-lost-writes`), e.g. having no backup.
    Accept,
}

/// Why starting would lose acknowledged writes.
#[derive(Debug)]
pub struct LostWritesReport {
    /// The newer snapshots that do not verify, each naming its file and what is wrong.
    pub damaged: Vec<String>,
    /// The snapshot start-up would load (none: only the journals).
    pub start: Option<PathBuf>,
    /// Per journal, which segments are missing.
    pub journals: Vec<String>,
}

impl fmt::Display for LostWritesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.damaged.is_empty() {
            write!(
                f,
                "snapshots that do not verify: {}; ",
                self.damaged.join("; ")
            )?;
        }
        match &self.start {
            Some(path) => write!(
                f,
                "starting from {} (the newest snapshot that verifies), the journals must hold every segment after it, and do not: ",
                path.display()
            )?,
            None => write!(
                f,
                "with no snapshot to start from, the journals must hold every segment from the first, and do not: "
            )?,
        }
        write!(f, "{}", self.journals.join("; "))
    }
}

/// The snapshot to start from: the newest that verifies, if any (one of an unsupported format
/// version refuses the start), provided the journals hold every change after it: if a newer
/// snapshot is damaged and the journals do not reach back to the one before it, or a journal
/// segment is missing, the start is refused (`LostWrites`) unless `lost_writes` accepts it.
/// Every journal is verified first, so that a refused start changes no byte of any of them.
pub fn startup_snapshot(
    snapshot_dir: &Path,
    journals: &[StateJournal],
    lost_writes: LostWrites,
) -> Result<Option<Snapshot>, PersistError> {
    for journal in journals {
        journal::verify(&journal.dir)?;
    }
    let newest = newest_valid(snapshot_dir).map_err(|error| match error {
        SnapshotError::Version { path, version } => {
            PersistError::UnsupportedSnapshot { path, version }
        }
        other => PersistError::Snapshot(other),
    })?;
    let snapshot = newest.found.as_ref().map(|(_, snapshot)| snapshot);
    let fell_back = !newest.damaged.is_empty();
    let mut missing = Vec::new();
    for journal in journals {
        let segments = journal::segments(&journal.dir).map_err(|source| JournalError::Io {
            journal: journal_name(&journal.dir),
            source,
        })?;
        let newest_created =
            journal::newest_segment_created(&journal.dir).map_err(|source| JournalError::Io {
                journal: journal_name(&journal.dir),
                source,
            })?;
        let from_seq = snapshot.map_or(0, |s| journal_seq(s, journal.sections));
        if let Some(problem) = missing_segments(&segments, newest_created, from_seq, fell_back) {
            missing.push(format!("journal {}: {problem}", journal_name(&journal.dir)));
        }
    }
    if !missing.is_empty() {
        let report = LostWritesReport {
            damaged: newest.damaged.iter().map(ToString::to_string).collect(),
            start: newest.found.as_ref().map(|(path, _)| path.clone()),
            journals: missing,
        };
        match lost_writes {
            LostWrites::Refuse => return Err(PersistError::LostWrites(report)),
            LostWrites::Accept => tracing::error!(
                lost = %report,
                "starting anyway (--accept-lost-writes): what only the damaged snapshots or the missing journal segments held is lost"
            ),
        }
    }
    Ok(newest.found.map(|(path, snapshot)| {
        tracing::info!(snapshot = %path.display(), "loading snapshot");
        crate::metrics::snapshot_taken(snapshot.created_micros);
        snapshot
    }))
}

/// The segment of a journal where `snapshot` ends: its section's `journal_seq`, as recovery
/// replays from it (0, from the first segment, if it has no such section).
fn journal_seq(snapshot: &Snapshot, sections: &[SectionKind]) -> u64 {
    snapshot
        .sections
        .iter()
        .find(|section| sections.contains(&section.kind))
        .map_or(0, |section| section.journal_seq)
}

/// Why a journal holding `segments` (ascending), which recorded creating segments up to
/// `newest_created`, does not hold every change after a start point that ends at segment
/// `from_seq` (0: no snapshot, so from the first segment, 1), if it does not. Recovery replays
/// the segments from `from_seq` on, which must then start at `from_seq`, have no gap, and reach
/// the newest segment created. A journal with no segment from there on holds nothing after the
/// start point: right after a restore, or when it is the newest snapshot; but when start-up
/// `fell_back` past a damaged newer snapshot, the changes between the two were only in that one.
pub(crate) fn missing_segments(
    segments: &[u64],
    newest_created: Option<u64>,
    from_seq: u64,
    fell_back: bool,
) -> Option<String> {
    let start = from_seq.max(1);
    let replayed: Vec<u64> = segments.iter().copied().filter(|s| *s >= start).collect();
    // Segments created after the newest present (deleted since): from the start point on only.
    let newest_missing = newest_created
        .filter(|newest| *newest >= start && Some(newest) > segments.last())
        .map(|newest| {
            let after = segments.last().map_or(start, |last| (last + 1).max(start));
            (after, newest)
        });
    let mut gaps = Vec::new();
    match replayed.first() {
        None if newest_missing.is_none() => {
            return fell_back.then(|| {
                format!(
                    "it holds no segment from {start} on, where the changes after the start point were (it holds {})",
                    describe_segments(segments)
                )
            })
        }
        Some(&first) if first > start => gaps.push((start, first - 1)),
        _ => {}
    }
    for pair in replayed.windows(2) {
        if pair[1] > pair[0] + 1 {
            gaps.push((pair[0] + 1, pair[1] - 1));
        }
    }
    gaps.extend(newest_missing);
    if gaps.is_empty() {
        return None;
    }
    let gaps: Vec<String> = gaps.into_iter().map(describe_range).collect();
    let up_to = newest_missing.map_or(String::new(), |(_, newest)| {
        format!(" to {newest}, the newest it created")
    });
    Some(format!(
        "missing {} (it holds {}; recovery needs every segment from {start} on{up_to})",
        gaps.join(", "),
        describe_segments(segments)
    ))
}

/// `segment 3` or `segments 3 to 5`.
fn describe_range((first, last): (u64, u64)) -> String {
    if first == last {
        format!("segment {first}")
    } else {
        format!("segments {first} to {last}")
    }
}

/// Ascending segment numbers as runs: `segments 1 to 3, segment 5`, or `no segment`.
fn describe_segments(segments: &[u64]) -> String {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &seq in segments {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == seq => *last = seq,
            _ => runs.push((seq, seq)),
        }
    }
    if runs.is_empty() {
        return "no segment".to_string();
    }
    runs.into_iter()
        .map(describe_range)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::snapshot::{write_snapshot, SectionData};

    const ROWS: &[SectionKind] = &[SectionKind::FeatureRecords, SectionKind::FeatureRows];
    const DIRECTORY: &[SectionKind] = &[SectionKind::Directory];

    /// A data directory's snapshot directory and two journals, `rows` and `directory`.
    struct Dirs {
        _root: tempfile::TempDir,
        snapshots: PathBuf,
        journals: Vec<StateJournal>,
    }

    fn dirs() -> Dirs {
        let root = tempfile::tempdir().unwrap();
        let snapshots = root.path().join("snapshots");
        let journals = [("rows", ROWS), ("directory", DIRECTORY)]
            .into_iter()
            .map(|(name, sections)| {
                let dir = root.path().join("journal").join(name);
                std::fs::create_dir_all(&dir).unwrap();
                StateJournal { dir, sections }
            })
            .collect();
        Dirs {
            _root: root,
            snapshots,
            journals,
        }
    }

    impl Dirs {
        /// A snapshot whose sections end at segment `seq` of each journal.
        fn snapshot(&self, created_micros: i64, seq: u64) -> PathBuf {
            let section = |kind| SectionData {
                kind,
                journal_seq: seq,
                items: 0,
                payload: bytes::Bytes::from_static(b"state"),
                payload_tail: Vec::new(),
            };
            let sections = [
                section(SectionKind::FeatureRecords),
                section(SectionKind::Directory),
            ];
            write_snapshot(&self.snapshots, created_micros, 1, &sections).unwrap()
        }

        /// Empty segment files numbered `seqs` in every journal.
        fn segments(&self, seqs: impl IntoIterator<Item = u64> + Clone) {
            for journal in &self.journals {
                for seq in seqs.clone() {
                    std::fs::write(journal.dir.join(format!("{seq:020}.journal")), b"").unwrap();
                }
            }
        }

        fn start(&self, lost_writes: LostWrites) -> Result<Option<Snapshot>, PersistError> {
            startup_snapshot(&self.snapshots, &self.journals, lost_writes)
        }
    }

    fn damage(path: &Path) {
        let mut bytes = std::fs::read(path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(path, bytes).unwrap();
    }

    fn refusal(result: Result<Option<Snapshot>, PersistError>) -> String {
        match result {
            Err(error @ PersistError::LostWrites(_)) => error.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_fallback_the_journals_reach_back_to_starts() {
        let dirs = dirs();
        let older = dirs.snapshot(1_000_000, 3);
        let newer = dirs.snapshot(2_000_000, 5);
        // Kept back to the older snapshot, as the snapshotter keeps them.
        dirs.segments(3..=6);
        damage(&newer);
        let started = dirs.start(LostWrites::Refuse).unwrap().unwrap();
        assert_eq!(
            crate::persist::snapshot::snapshot_path(&dirs.snapshots, &started.id),
            older
        );
    }

    #[test]
    fn a_fallback_the_journals_do_not_reach_back_to_is_refused() {
        let dirs = dirs();
        let older = dirs.snapshot(1_000_000, 3);
        let newer = dirs.snapshot(2_000_000, 5);
        dirs.segments(5..=6);
        damage(&newer);
        let refused = refusal(dirs.start(LostWrites::Refuse));
        for needed in [
            newer.display().to_string(),
            "checksum mismatch".to_string(),
            older.display().to_string(),
            "journal rows: missing segments 3 to 4 (it holds segments 5 to 6".to_string(),
            "journal directory: missing segments 3 to 4".to_string(),
            "--accept-lost-writes".to_string(),
            "nothing was changed".to_string(),
        ] {
            assert!(refused.contains(&needed), "{needed:?} in {refused}");
        }
        // Asked to, it starts from what is left.
        let started = dirs.start(LostWrites::Accept).unwrap().unwrap();
        assert_eq!(started.sections[0].journal_seq, 3);
    }

    #[test]
    fn a_damaged_only_snapshot_with_no_journal_after_it_is_refused() {
        let dirs = dirs();
        let only = dirs.snapshot(1_000_000, 5);
        // Right after a restore: no segment yet. Undamaged, that starts.
        assert!(dirs.start(LostWrites::Refuse).unwrap().is_some());
        damage(&only);
        let refused = refusal(dirs.start(LostWrites::Refuse));
        assert!(
            refused.contains("with no snapshot to start from")
                && refused.contains("holds no segment from 1 on"),
            "{refused}"
        );
    }

    #[test]
    fn a_gap_in_a_journal_is_refused_even_after_the_newest_snapshot() {
        let dirs = dirs();
        dirs.snapshot(1_000_000, 3);
        dirs.segments([3, 4, 6, 7]);
        let refused = refusal(dirs.start(LostWrites::Refuse));
        assert!(
            refused.contains(
                "journal rows: missing segment 5 (it holds segments 3 to 4, segments 6 to 7"
            ),
            "{refused}"
        );
        assert!(!refused.contains("do not verify"), "{refused}");
    }

    #[test]
    fn no_snapshot_needs_the_journals_from_their_first_segment() {
        let dirs = dirs();
        dirs.segments(1..=3);
        assert!(dirs.start(LostWrites::Refuse).unwrap().is_none());
        let later = self::dirs();
        later.segments(4..=6);
        let refused = refusal(later.start(LostWrites::Refuse));
        assert!(
            refused.contains("missing segments 1 to 3 (it holds segments 4 to 6"),
            "{refused}"
        );
        assert!(later.start(LostWrites::Accept).unwrap().is_none());
    }

    #[test]
    fn missing_segments_judges_each_start_point() {
        // Covered: from the start point on, no gap; older segments before it do not matter.
        assert_eq!(missing_segments(&[2, 3, 4], None, 3, true), None);
        assert_eq!(missing_segments(&[1, 2], None, 0, false), None);
        assert_eq!(missing_segments(&[], None, 0, false), None);
        // Nothing after the newest snapshot (a restore) is fine; after a fallback it is not.
        assert_eq!(missing_segments(&[1, 2], None, 7, false), None);
        assert!(missing_segments(&[1, 2], None, 7, true).is_some());
        assert!(missing_segments(&[], None, 0, true).is_some());
        assert_eq!(
            missing_segments(&[3, 5, 9], None, 3, false).unwrap(),
            "missing segment 4, segments 6 to 8 (it holds segment 3, segment 5, segment 9; recovery needs every segment from 3 on)"
        );
    }

    #[test]
    fn newest_segments_deleted_after_the_start_point_are_missing() {
        // The journal created segment 6; 5 and 6 are gone.
        assert_eq!(
            missing_segments(&[3, 4], Some(6), 3, false).unwrap(),
            "missing segments 5 to 6 (it holds segments 3 to 4; recovery needs every segment from 3 on to 6, the newest it created)"
        );
        // With a gap too, both are named.
        assert_eq!(
            missing_segments(&[3, 5], Some(6), 3, false).unwrap(),
            "missing segment 4, segment 6 (it holds segment 3, segment 5; recovery needs every segment from 3 on to 6, the newest it created)"
        );
        // Every segment from the start point deleted, with no fallback.
        assert_eq!(
            missing_segments(&[], Some(4), 3, false).unwrap(),
            "missing segments 3 to 4 (it holds no segment; recovery needs every segment from 3 on to 4, the newest it created)"
        );
        // The newest created is there; or it is older than the start point (set aside by a
        // restore); or the journal predates the record.
        assert_eq!(missing_segments(&[3, 4], Some(4), 3, false), None);
        assert_eq!(missing_segments(&[1, 2], Some(2), 7, false), None);
        assert_eq!(missing_segments(&[3, 4], None, 3, false), None);
    }
}

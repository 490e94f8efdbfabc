//! Tests of the journal: reopening, torn tails against corruption, repair of a bad record,
//! and the failure paths (a full disk, a failed cut, a failed group fsync) on an injected file.

use super::faults::Faults;
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

#[test]
fn the_newest_segment_created_is_recorded_once_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(newest_segment_created(dir.path()).unwrap(), None);
    let (mut journal, _) = Journal::open(dir.path(), 0, FsyncPolicy::Never).unwrap();
    assert_eq!(newest_segment_created(dir.path()).unwrap(), Some(1));
    let seq = journal.rotate().unwrap();
    assert_eq!(newest_segment_created(dir.path()).unwrap(), Some(seq));
    assert!(segment_path(dir.path(), seq).exists());
    drop(journal);
    let (journal, _) = Journal::open(dir.path(), 0, FsyncPolicy::Never).unwrap();
    assert_eq!(
        newest_segment_created(dir.path()).unwrap(),
        Some(journal.seq)
    );
    // Segments are the only files the journal lists.
    assert_eq!(segments(dir.path()).unwrap(), vec![1, 2, 3]);

    std::fs::write(dir.path().join(NEWEST_SEGMENT), "garbage").unwrap();
    let refused = newest_segment_created(dir.path()).unwrap_err().to_string();
    assert!(
        refused.contains("newest-segment should hold the number"),
        "{refused}"
    );
}

/// `journal`'s current segment, failing as the answer says (nothing yet).
fn faulty(journal: &mut Journal) -> Arc<TestMutex<Faults>> {
    let faults = Arc::new(TestMutex::new(Faults::default()));
    journal.inject_faults(Arc::clone(&faults));
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
    // The cell the journal's owner shares with /health.
    let unwritable = Condition::default();
    journal.report_to(unwritable.clone());
    journal.append(b"before").unwrap();
    *faults.lock().unwrap() = Faults {
        disk_full: true,
        truncate_fails: true,
        ..Faults::default()
    };
    assert!(journal.append(b"lost").unwrap_err().is_unwritable());
    faults.lock().unwrap().disk_full = false;
    let refused = journal.append(b"refused").unwrap_err();
    assert!(refused.is_unwritable(), "{refused}");
    let reported = unwritable.reason().expect("reported unwritable");
    assert!(reported.contains("the repair failed"), "{reported}");
    faults.lock().unwrap().truncate_fails = false;
    journal.append(b"after").unwrap();
    assert_eq!(unwritable.reason(), None);
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
    let unwritable = Condition::default();
    journal.report_to(unwritable.clone());
    // The tick's fsync fails and loses the unsynced bytes; the repair's fsync fails too: the
    // journal refuses appends (and says so on /health) rather than acknowledge past a hole.
    let failed = journal.sync().unwrap_err();
    assert!(failed.is_unwritable(), "{failed}");
    assert!(unwritable.reason().is_some());
    let refused = journal.append(b"refused").unwrap_err();
    assert!(refused.is_unwritable(), "{refused}");
    // The disk recovers: the next append first writes the lost records again.
    faults.lock().unwrap().sync_failures = 0;
    journal.append(b"after").unwrap();
    assert_eq!(unwritable.reason(), None);
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

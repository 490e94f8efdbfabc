//! The store's side of persistence: its snapshot section (every shard's live row records, as
//! the shards' arenas hold them, with views named by workspace and name and described by the
//! stored form their rows have), and recovery at start-up (snapshot rows, then the journal
//! after it, re-routed by the current shard count, then journaling from here on). Rows written
//! in another form of their view than the one served now (the files changed between runs) are
//! reshaped or refuse the start (`layouts.rs`), never taken as they are. An apply the journal
//! holds (after a snapshot older than the apply's own) is made again where it was made, by the
//! served repository's owner (`Reapply`).

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::Arc;

use futures_util::future::{join_all, BoxFuture, FutureExt};

use super::arena::{Arena, LentRecords};
use super::key::shard_of;
use super::layouts::{remap_row, LayoutMismatch, Remap, WrittenLayouts};
use super::router::{Router, StoreError};
use super::shard::RestoreRecords;
use super::shard::RowWrite;
use super::tiles::{from_stored, TileSet};
use super::views::StoreViews;
use super::writer::{AttachJournal, DropJournalBefore, StartSnapshot};
use crate::persist::files::in_background;
use crate::persist::format::{
    decode, decode_rows_record, decode_rows_v2, encode_apply_record, encode_rows_v2_head,
    row_records, ApplyRecordV1, RepositoryV1, RowV1, RowsRecord, RowsV1, RowsV3Head, SectionKind,
    TilesV2, ViewRefV1, APPLY_RECORD_MARKER,
};
use crate::persist::snapshot::{PayloadPart, SectionData, Snapshot};
use crate::persist::{FsyncPolicy, Journal, Replay, SnapshotSource};

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovery {
    pub snapshot_rows: usize,
    pub journal_records: usize,
    pub journal_rows: usize,
    /// Applies the journal held, made again.
    pub journal_applies: usize,
    /// Rows of views the repository no longer has.
    pub skipped_rows: usize,
    pub dropped_bytes: u64,
}

/// Rows per write when restoring, so that shards keep answering reads meanwhile.
const RESTORE_CHUNK: usize = 50_000;

/// The owner of the served repository (`http::served`), as recovery needs it: an apply the rows
/// journal holds is made again at its place among the rows, `applied` served and the store
/// reshaped for it as the apply reshaped it (with `router`, before the rows after it).
pub trait Reapply {
    fn reapply<'a>(
        &'a self,
        router: &'a Router,
        applied: RepositoryV1,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

impl Router {
    /// Loads the snapshot's rows (if any), replays the journal segments after it (its applies
    /// made again through `reapply`), and attaches the journal so later writes are journaled.
    /// `on_rows` reports progress.
    pub async fn recover(
        &self,
        snapshot: Option<&Snapshot>,
        journal_dir: &Path,
        policy: FsyncPolicy,
        reapply: &impl Reapply,
        mut on_rows: impl FnMut(usize),
    ) -> Result<Recovery, StoreError> {
        let (mut recovery, journal_seq, mut written) = self
            .restore_snapshot_written(snapshot, &mut on_rows)
            .await?;
        let (mut journal, replay) = Journal::open(journal_dir, journal_seq, policy)?;
        journal.report_to(self.journal_unwritable.clone());
        recovery.dropped_bytes = replay.dropped_bytes;
        if snapshot.is_some() && undoes_the_snapshot(&replay, journal_seq) {
            return Err(StoreError::UndoneApplySnapshot);
        }
        let undone = undone_applies(&replay.records);
        for (i, record) in replay.records.iter().enumerate() {
            match decode_rows_record(record) {
                // The rows of the records after it were written in these forms.
                Ok(RowsRecord::Layouts(layouts)) => written.follow(&layouts),
                Ok(RowsRecord::Apply(ApplyRecordV1::Applied(applied))) if !undone.contains(&i) => {
                    recovery.journal_applies += 1;
                    reapply.reapply(self, applied).await?;
                }
                // An apply and its undo: the store went back to what it was before the apply,
                // and took no rows between the two that the apply changed the form of (the
                // served repository was still the one before, and the writer refused rows made
                // for a layout the apply replaced), so skipping both leaves every row as it was.
                Ok(RowsRecord::Apply(_)) => {}
                Ok(RowsRecord::Rows(rows)) => {
                    recovery.journal_records += 1;
                    let (stored, skipped) = self
                        .restore_rows_v1(rows, &mut written, &mut on_rows)
                        .await?;
                    recovery.journal_rows += stored;
                    recovery.skipped_rows += skipped;
                }
                Err(_) => return Err(replay.undecodable(i).into()),
            }
        }
        self.writer
            .send(AttachJournal(journal))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        Ok(recovery)
    }

    /// Loads the snapshot's rows (if any), unjournaled (a cluster node's store holds no journal:
    /// the stream is its log); answers what it loaded and the journal segment it covers.
    pub async fn restore_snapshot(
        &self,
        snapshot: Option<&Snapshot>,
        mut on_rows: impl FnMut(usize),
    ) -> Result<(Recovery, u64), StoreError> {
        let (recovery, journal_seq, _) = self
            .restore_snapshot_written(snapshot, &mut on_rows)
            .await?;
        Ok((recovery, journal_seq))
    }

    /// `restore_snapshot`, also answering the forms the snapshot's rows were written in (the
    /// journal's rows after it are in those until its first layouts record).
    async fn restore_snapshot_written(
        &self,
        snapshot: Option<&Snapshot>,
        on_rows: &mut impl FnMut(usize),
    ) -> Result<(Recovery, u64, WrittenLayouts), StoreError> {
        let mut recovery = Recovery::default();
        let mut written = WrittenLayouts::default();
        let records = snapshot.and_then(|s| s.section(SectionKind::FeatureRecords));
        let rows = snapshot.and_then(|s| s.section(SectionKind::FeatureRows));
        if let Some(section) = records {
            let (stored, skipped, layouts) =
                self.restore_records(&section.payload, on_rows).await?;
            recovery.snapshot_rows = stored;
            recovery.skipped_rows += skipped;
            written = layouts;
        } else if let Some(section) = rows {
            let rows: RowsV1 = decode(&section.payload).map_err(invalid_data)?;
            let (stored, skipped) = self.restore_rows_v1(rows, &mut written, on_rows).await?;
            recovery.snapshot_rows = stored;
            recovery.skipped_rows += skipped;
        }
        let journal_seq = records.or(rows).map_or(0, |s| s.journal_seq);
        Ok((recovery, journal_seq, written))
    }

    /// Restores a `RowsV1`: a format 2 snapshot's section, or a journal record, its rows
    /// written in the forms `written` gives.
    async fn restore_rows_v1(
        &self,
        rows: RowsV1,
        written: &mut WrittenLayouts,
        on_rows: &mut impl FnMut(usize),
    ) -> Result<(usize, usize), StoreError> {
        let current = self.views.load_full();
        let ids = view_ids_of(&current, &rows.views);
        let holding = || {
            let stored_views = rows.rows.iter().map(|row| Ok(row.view));
            views_holding(rows.views.len(), stored_views, &rows.tiles)
        };
        let remaps = remaps_of(&current, &rows.views, &ids, written, holding)?;
        self.restore_rows(
            (&rows.views, &ids, &remaps),
            written,
            rows.tiles,
            rows.rows.into_iter().map(Ok),
            on_rows,
        )
        .await
    }

    /// Restores a `RowsV2` section; answers the forms its rows were written in. When it was
    /// written over the same number of shards, its views have the same ids here (so every row
    /// routes to the same shard) and its rows are in the forms served now, each shard takes its
    /// records as they are and rebuilds its own index, all shards at once; otherwise the rows
    /// are re-routed (and reshaped) one by one.
    async fn restore_records(
        &self,
        payload: &[u8],
        on_rows: &mut impl FnMut(usize),
    ) -> Result<(usize, usize, WrittenLayouts), StoreError> {
        let (head, shard_records) = decode_rows_v2(payload).map_err(invalid_data)?;
        let views = self.views.load_full();
        let mut written = WrittenLayouts::of(&head.views, &head.layouts);
        // Without `view_ids_of`'s warnings: the re-routing path gives them.
        let ids: Vec<Option<u32>> = head.views.iter().map(|view| views.id(view)).collect();
        let holding = || {
            let stored_views = shard_records
                .iter()
                .flat_map(|records| row_records(records))
                .map(|record| record.map(|record| record.view));
            views_holding(head.views.len(), stored_views, &head.tiles)
        };
        let remaps = remaps_of(&views, &head.views, &ids, &written, holding)?;
        // Tiles are remapped as they are restored, whichever path; records only one by one.
        let as_stored = remaps.iter().all(|remap| remap.columns.is_none());
        // A removed id is listed under an empty name (no records are stored under it).
        let same_ids = head.views.iter().enumerate().all(|(stored, view)| {
            views.id(view).map(|id| id as usize) == Some(stored)
                || (view.view.is_empty() && views.name(stored as u32).is_none())
        });
        if !same_ids || !as_stored || shard_records.len() != self.n_shards() {
            let rows = shard_records
                .into_iter()
                .flat_map(row_records)
                .map(|record| {
                    record.map(|record| RowV1 {
                        view: record.view,
                        key: record.key.to_vec(),
                        event_time: record.event_time,
                        payload: record.payload.to_vec(),
                    })
                });
            // The same ids, now with a warning for each view the repository no longer has.
            let ids = view_ids_of(&views, &head.views);
            let (stored, skipped) = self
                .restore_rows(
                    (&head.views, &ids, &remaps),
                    &mut written,
                    head.tiles,
                    rows,
                    on_rows,
                )
                .await?;
            return Ok((stored, skipped, written));
        }
        note_reshapes(&head.views, &remaps, &mut written);
        let ids: Vec<Option<u32>> = (0..head.views.len() as u32).map(Some).collect();
        self.restore_stored_tiles(&ids, &remaps, head.tiles, on_rows)
            .await?;
        let mut restores = Vec::with_capacity(shard_records.len());
        for (i, (shard, records)) in self.shards.iter().zip(shard_records).enumerate() {
            let rows = head.shard_rows.get(i).map_or(0, |&rows| rows as usize);
            restores.push(shard.send(RestoreRecords {
                arena: Arena::from_records(records)?,
                rows,
            }));
        }
        let (mut stored, mut skipped) = (0, 0);
        for (shard, restored) in join_all(restores).await.into_iter().enumerate() {
            let (shard_stored, shard_skipped) =
                restored.map_err(|_| StoreError::ShardGone(shard))??;
            stored += shard_stored;
            skipped += shard_skipped;
        }
        on_rows(stored + skipped);
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "stored rows of views that now aggregate are skipped"
            );
        }
        Ok((stored, skipped, written))
    }

    /// Puts stored aggregation tiles back, each in its shard; `ids` maps the stored view
    /// indexes to this repository's view ids, `remaps` (same indexes) says which stored
    /// aggregate each of the view's aggregates keeps, where the form changed.
    async fn restore_stored_tiles(
        &self,
        ids: &[Option<u32>],
        remaps: &[Remap],
        tiles: Vec<TilesV2>,
        on_rows: &mut impl FnMut(usize),
    ) -> Result<(), StoreError> {
        let views = self.views.load_full();
        let mut restored_tiles = 0;
        let mut per_shard: Vec<Vec<(u32, Vec<u8>, TileSet)>> =
            (0..self.n_shards()).map(|_| Vec::new()).collect();
        for stored_tiles in tiles {
            let (view_index, key, mut tiles) = from_stored(stored_tiles).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("stored aggregation tiles: {e}"),
                )
            })?;
            let Some(view) = ids.get(view_index as usize).copied().flatten() else {
                continue;
            };
            let Some(spec) = views.spec(view) else {
                continue;
            };
            if let Some(Some(sources)) = remaps.get(view_index as usize).map(|r| &r.aggregates) {
                // As an apply's reshape: the same partials, new ones empty.
                tiles.remap(sources, spec);
            }
            // Tiles written for other aggregates, with no form to map them (an older
            // snapshot), would be misread.
            if tiles.fits(spec) {
                tiles.rebuild_rollups(spec);
                per_shard[shard_of(view, &key, self.n_shards())].push((view, key, tiles));
                restored_tiles += 1;
            } else {
                tracing::warn!(
                    view,
                    "stored tiles do not match the view's aggregations; skipped"
                );
            }
        }
        self.restore_tiles(per_shard).await?;
        on_rows(restored_tiles);
        Ok(())
    }

    /// Writes stored rows back without journaling them, each in its view's serving form: the
    /// stored views `names` (index = a row's view index) have the ids `ids` here (`None`: its
    /// rows are skipped) and are reshaped as `remaps` say (`remaps_of`, which refuses a form
    /// that cannot be reshaped before anything is written).
    async fn restore_rows(
        &self,
        (names, ids, remaps): (&[ViewRefV1], &[Option<u32>], &[Remap]),
        written: &mut WrittenLayouts,
        tiles: Vec<TilesV2>,
        rows: impl Iterator<Item = Result<RowV1, String>>,
        on_rows: &mut impl FnMut(usize),
    ) -> Result<(usize, usize), StoreError> {
        let current = self.views.load_full();
        note_reshapes(names, remaps, written);
        self.restore_stored_tiles(ids, remaps, tiles, on_rows)
            .await?;

        let mut writes = Vec::with_capacity(RESTORE_CHUNK);
        let (mut total, mut skipped) = (0, 0);
        for row in rows {
            let row = row.map_err(invalid_data)?;
            total += 1;
            match serving_write(&current, ids, remaps, row)? {
                Some(write) => writes.push(write),
                None => skipped += 1,
            }
            if writes.len() == RESTORE_CHUNK {
                let chunk = std::mem::replace(&mut writes, Vec::with_capacity(RESTORE_CHUNK));
                on_rows(chunk.len());
                self.write_with(chunk, false).await?;
            }
        }
        on_rows(writes.len());
        self.write_with(writes, false).await?;
        Ok((total - skipped, skipped))
    }
}

/// For the store's own tests, whose journals hold no apply: a `Reapply` never asked.
#[cfg(test)]
pub(super) struct NoApplies;

#[cfg(test)]
impl Reapply for NoApplies {
    fn reapply<'a>(
        &'a self,
        _: &'a Router,
        _: RepositoryV1,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        unreachable!("the test journals no apply")
    }
}

/// The indexes of the journal's `Applied` records that an `Undone` takes back (the next apply
/// record after them): applies whose snapshot failed.
fn undone_applies(records: &[Vec<u8>]) -> HashSet<usize> {
    let undo = encode_apply_record(&ApplyRecordV1::Undone);
    let mut undone = HashSet::new();
    let mut last_applied = None;
    for (i, record) in records.iter().enumerate() {
        if *record == undo {
            undone.extend(last_applied.take());
        } else if record.starts_with(&APPLY_RECORD_MARKER) {
            last_applied = Some(i);
        }
    }
    undone
}

/// Whether the journal after a snapshot that ends at segment `journal_seq` takes back the apply
/// that snapshot holds: an `Undone` before any `Applied`, in the segment the snapshot's own
/// rotation opened. An apply's snapshot rotates the journal and, failing, journals the apply's
/// `Undone` into that new segment (a pending undo goes in before any other rotation), so only
/// the failed snapshot of that apply is followed so. An unpaired `Undone` in a later segment is
/// an apply whose `Applied` was lost (a lost segment started past, a repaired record): skipped.
fn undoes_the_snapshot(replay: &Replay, journal_seq: u64) -> bool {
    let undo = encode_apply_record(&ApplyRecordV1::Undone);
    replay
        .records
        .iter()
        .position(|record| record.starts_with(&APPLY_RECORD_MARKER))
        .is_some_and(|i| replay.records[i] == undo && replay.segment_number(i) == Some(journal_seq))
}

/// The id of each view stored rows name (index = the record's view index); `None` (and a
/// warning) for a view the repository no longer has. An empty name stands for an id an apply
/// removed: nothing is stored under it, so it is not worth a warning.
pub(super) fn view_ids_of(views: &StoreViews, names: &[ViewRefV1]) -> Vec<Option<u32>> {
    let ids: Vec<Option<u32>> = names.iter().map(|view| views.id(view)).collect();
    for (view, id) in names.iter().zip(&ids) {
        if id.is_none() && !view.view.is_empty() {
            tracing::warn!(workspace = %view.workspace, view = %view.view, "stored rows of a view the repository no longer has are skipped");
        }
    }
    ids
}

/// `row` as a write in its view's serving form (`ids` and `remaps`, index = the row's view
/// index, from `view_ids_of` and `remaps_of`); `None` for a view the repository no longer has,
/// or whose rows in this form an accepted apply cleared.
pub(super) fn serving_write(
    current: &StoreViews,
    ids: &[Option<u32>],
    remaps: &[Remap],
    row: RowV1,
) -> Result<Option<RowWrite>, StoreError> {
    let Some(view) = ids.get(row.view as usize).copied().flatten() else {
        return Ok(None);
    };
    let remap = &remaps[row.view as usize];
    if remap.dropped {
        return Ok(None);
    }
    Ok(Some(RowWrite {
        view,
        layout: current.layout(view).expect("an id the views table gave"),
        key: row.key,
        event_time: row.event_time,
        payload: match &remap.columns {
            Some(map) => remap_row(&row.payload, map).map_err(invalid_data)?,
            None => row.payload,
        },
    }))
}

/// How the rows of each view `names` lists (index = the record's view index) are read in
/// their serving form, given the forms they were written in; a view the repository no longer
/// has, or whose written form is not known (older data), takes its rows as they are. Only a
/// view that holds rows or tiles is reshaped, or refuses the start: an empty one has nothing
/// to misread and simply takes the form served now. Which views hold data is asked of
/// `holding` (index = view index) only when some form changed: it walks the records.
pub(super) fn remaps_of(
    views: &StoreViews,
    names: &[ViewRefV1],
    ids: &[Option<u32>],
    written: &WrittenLayouts,
    holding: impl FnOnce() -> Vec<bool>,
) -> Result<Vec<Remap>, StoreError> {
    let remaps: Vec<Result<Remap, LayoutMismatch>> = names
        .iter()
        .zip(ids)
        .map(|(name, id)| match (id, written.get(name)) {
            (Some(id), Some(stored)) => written.remap(name, stored, views.form(*id)),
            _ => Ok(Remap::default()),
        })
        .collect();
    let unchanged =
        |remap: &Result<Remap, LayoutMismatch>| matches!(remap, Ok(r) if r.is_identity());
    if remaps.iter().all(unchanged) {
        return Ok(vec![Remap::default(); remaps.len()]);
    }
    remaps
        .into_iter()
        .zip(holding())
        .map(|(remap, holds)| match holds {
            true => Ok(remap?),
            false => Ok(Remap::default()),
        })
        .collect()
}

/// Which of `n_views` stored views (by index) hold a row (`rows`: each row's view index) or a
/// key's tiles; all of them if a row does not read (the restore then refuses it).
pub(super) fn views_holding(
    n_views: usize,
    rows: impl Iterator<Item = Result<u32, String>>,
    tiles: &[TilesV2],
) -> Vec<bool> {
    let mut holding = vec![false; n_views];
    for view in rows.chain(tiles.iter().map(|tiles| Ok(tiles.view))) {
        match view {
            Ok(view) => {
                if let Some(holds) = holding.get_mut(view as usize) {
                    *holds = true;
                }
            }
            Err(_) => return vec![true; n_views],
        }
    }
    holding
}

/// Says once a recovery which views' stored data is reshaped: the files changed between runs.
pub(super) fn note_reshapes(names: &[ViewRefV1], remaps: &[Remap], written: &mut WrittenLayouts) {
    for (name, _) in names.iter().zip(remaps).filter(|(_, r)| !r.is_identity()) {
        if written.first_reshape(name) {
            tracing::warn!(workspace = %name.workspace, view = %name.view, "stored rows were written when the view had other features; reshaped to its features now (kept by name, removed ones dropped, new ones null)");
        }
    }
}

fn invalid_data(error: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// A shard's records lent at the cut, as the snapshot writes them: its live runs.
#[derive(Debug)]
struct LiveRecords(LentRecords);

impl PayloadPart for LiveRecords {
    fn byte_len(&self) -> usize {
        self.0.live_bytes()
    }

    fn pieces(&self) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        Box::new(self.0.live_runs())
    }
}

impl SnapshotSource for Router {
    fn take_section(&self) -> BoxFuture<'static, io::Result<SectionData>> {
        let writer = self.writer.clone();
        // Shards on different tables are not kept: the snapshot and journal a restart
        // recovers from hold one table.
        let inconsistent = self.shards_inconsistent();
        async move {
            if let Some(reason) = inconsistent {
                return Err(io::Error::other(reason));
            }
            let (journal_seq, views, receivers) = writer
                .send(StartSnapshot)
                .await
                .map_err(io::Error::other)??;
            let mut exports = Vec::with_capacity(receivers.len());
            for receiver in receivers {
                exports.push(receiver.await.map_err(io::Error::other)?);
            }
            // The head holds the tiles, which can take a while to encode: off the async
            // workers, at low priority. The loans know their live sizes (no walk), and the
            // records are not copied: the file is written from the loans.
            let (payload, records, items) = in_background(move || {
                let mut head = RowsV3Head {
                    views: views.names_by_id(),
                    layouts: views.forms_by_id(),
                    ..RowsV3Head::default()
                };
                let mut items = 0;
                let mut records: Vec<Arc<dyn PayloadPart>> = Vec::with_capacity(exports.len());
                for export in exports {
                    let live = export.records;
                    items += (live.live_rows() + export.tiles.len()) as u64;
                    head.tiles.extend(export.tiles);
                    head.shard_bytes.push(live.live_bytes() as u64);
                    head.shard_rows.push(live.live_rows() as u64);
                    records.push(Arc::new(LiveRecords(live)));
                }
                (encode_rows_v2_head(&head), records, items)
            })
            .await?;

            Ok(SectionData {
                kind: SectionKind::FeatureRecords,
                journal_seq,
                items,
                payload: payload.into(),
                payload_tail: records,
            })
        }
        .boxed()
    }

    fn snapshot_saved(&self, journal_seq: u64) -> BoxFuture<'static, io::Result<()>> {
        let writer = self.writer.clone();
        async move {
            writer
                .send(DropJournalBefore(journal_seq))
                .await
                .map_err(io::Error::other)?
        }
        .boxed()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use actix::System;

    use super::*;
    use crate::persist::format::{encode, encode_rows_v2};
    use crate::persist::snapshot::through_a_file;
    use crate::store::tiles::AggregateMask;
    use crate::store::{Lookup, ReadContext};

    const KEYS: u64 = 500;

    fn views() -> Vec<ViewRefV1> {
        vec![ViewRefV1 {
            workspace: "test".into(),
            view: "plain".into(),
        }]
    }

    fn row(key: u64, version: u64) -> RowV1 {
        RowV1 {
            view: 0,
            key: key.to_le_bytes().to_vec(),
            event_time: version as i64,
            payload: vec![version as u8; 1 + (key % 50) as usize],
        }
    }

    /// `recover` as these tests call it: a journal with no apply, no fsync, no progress shown.
    async fn recover_plainly(
        router: &Router,
        snapshot: Option<&Snapshot>,
        journal: &Path,
    ) -> Result<Recovery, StoreError> {
        router
            .recover(snapshot, journal, FsyncPolicy::Never, &NoApplies, |_| {})
            .await
    }

    /// What a store of `shards` shards recovers from `snapshot`: the recovery, every key's row
    /// and the view's usage (rows, payload bytes) as the console reads it.
    async fn restored(
        snapshot: &Snapshot,
        shards: usize,
    ) -> (Recovery, Vec<Option<Vec<u8>>>, (usize, usize)) {
        let router = Router::start(shards, 4096, views(), vec![None]).unwrap();
        let journal = tempfile::tempdir().unwrap();
        let recovery = recover_plainly(&router, Some(snapshot), journal.path())
            .await
            .unwrap();
        let lookups: Vec<Lookup> = (0..KEYS)
            .map(|key| Lookup::new(0, 0, key.to_le_bytes().to_vec(), AggregateMask::ALL))
            .collect();
        let context = ReadContext {
            now: 0,
            leading_edge: None,
            timed: false,
        };
        let read = router.read(&lookups, context);
        let usage = router.view_usage().await.unwrap()[0];
        (
            recovery,
            read.rows().map(|r| r.map(|r| r.payload.to_vec())).collect(),
            (usage.rows, usage.payload_bytes),
        )
    }

    #[test]
    fn records_and_version_2_rows_restore_the_same_rows_over_any_shard_count() {
        System::new().block_on(async {
            let source = Router::start(2, 4096, views(), vec![None]).unwrap();
            // Every key, then a newer version of every third: the export skips what they replaced.
            for version in 1..=2 {
                let writes = (0..KEYS)
                    .filter(|key| version == 1 || key % 3 == 0)
                    .map(|key| {
                        let row = row(key, version);
                        RowWrite {
                            view: row.view,
                            layout: 0,
                            key: row.key,
                            event_time: row.event_time,
                            payload: row.payload,
                        }
                    })
                    .collect();
                source.write(writes).await.unwrap();
            }
            let records = source.take_section().await.unwrap();
            assert_eq!(
                (records.kind, records.items),
                (SectionKind::FeatureRecords, KEYS)
            );
            let expected: Vec<Option<Vec<u8>>> = (0..KEYS)
                .map(|key| Some(row(key, if key % 3 == 0 { 2 } else { 1 }).payload))
                .collect();
            let version_2 = SectionData {
                kind: SectionKind::FeatureRows,
                journal_seq: 0,
                items: KEYS,
                payload: encode(&RowsV1 {
                    views: views(),
                    rows: (0..KEYS)
                        .map(|key| row(key, if key % 3 == 0 { 2 } else { 1 }))
                        .collect(),
                    tiles: Vec::new(),
                })
                .into(),
                payload_tail: Vec::new(),
            };
            let payload_bytes = expected.iter().flatten().map(Vec::len).sum();
            for (section, shards) in [(&records, 2), (&records, 3), (&version_2, 2)] {
                let snapshot = through_a_file(std::slice::from_ref(section));
                let (recovery, rows, usage) = restored(&snapshot, shards).await;
                assert_eq!(recovery.snapshot_rows, KEYS as usize);
                assert_eq!(rows, expected, "{:?} into {shards} shards", section.kind);
                assert_eq!(usage, (KEYS as usize, payload_bytes), "{:?}", section.kind);
            }
        });
    }

    /// Row records of `rows`, as a shard's arena holds them.
    fn records_of(rows: impl IntoIterator<Item = RowV1>) -> Vec<u8> {
        let mut records = Vec::new();
        for row in rows {
            crate::persist::format::RowRecordV2 {
                view: row.view,
                flags: 0,
                event_time: row.event_time,
                payload: &row.payload,
                key: &row.key,
            }
            .write_to(&mut records);
        }
        records
    }

    /// A snapshot of one `FeatureRecords` section whose shards hold `shard_records` as they are.
    fn records_snapshot(shard_records: &[&[u8]]) -> Snapshot {
        let shard_rows: Vec<u64> = shard_records
            .iter()
            .map(|records| row_records(records).count() as u64)
            .collect();
        let items = shard_rows.iter().sum();
        let head = RowsV3Head {
            views: views(),
            tiles: Vec::new(),
            shard_bytes: shard_records.iter().map(|r| r.len() as u64).collect(),
            shard_rows,
            layouts: Vec::new(),
        };
        Snapshot {
            id: "test".into(),
            created_micros: 0,
            n_shards: shard_records.len() as u32,
            sections: vec![SectionData {
                kind: SectionKind::FeatureRecords,
                journal_seq: 0,
                items,
                payload: encode_rows_v2(&head, shard_records).into(),
                payload_tail: Vec::new(),
            }],
        }
    }

    /// A snapshot should hold one record per key; where one holds several, the newest is
    /// restored (whichever comes first) and counted once, at its own size.
    #[test]
    fn a_key_with_several_records_restores_its_newest_once() {
        System::new().block_on(async {
            // Each version of a row a byte longer than the one before.
            let versioned = |key: u64, version: u64| {
                let mut row = row(key, version);
                row.payload
                    .resize(row.payload.len() + version as usize, version as u8);
                row
            };
            // Every key at version 1; every third again at version 2 (after it), every fifth
            // at version 0 (after it too, but older).
            let rows = (0..KEYS)
                .map(|key| versioned(key, 1))
                .chain(
                    (0..KEYS)
                        .filter(|key| key % 3 == 0)
                        .map(|key| versioned(key, 2)),
                )
                .chain(
                    (0..KEYS)
                        .filter(|key| key % 5 == 0)
                        .map(|key| versioned(key, 0)),
                );
            let records = records_of(rows);
            let (recovery, rows, usage) = restored(&records_snapshot(&[&records]), 1).await;
            let expected: Vec<Option<Vec<u8>>> = (0..KEYS)
                .map(|key| Some(versioned(key, if key % 3 == 0 { 2 } else { 1 }).payload))
                .collect();
            let payload_bytes = expected.iter().flatten().map(Vec::len).sum();
            assert_eq!(recovery.snapshot_rows, KEYS as usize);
            assert_eq!(rows, expected);
            assert_eq!(usage, (KEYS as usize, payload_bytes));
        });
    }

    /// An apply undone (its snapshot failed) is skipped with its undo; one applied again after
    /// it, or an undo journaled late (before the rows after it), pairs with the apply before.
    #[test]
    fn an_undone_apply_is_skipped_with_its_undo() {
        let applied = encode_apply_record(&ApplyRecordV1::Applied(RepositoryV1 {
            hash: "h".into(),
            workspaces: Vec::new(),
        }));
        let undo = encode_apply_record(&ApplyRecordV1::Undone);
        let rows = encode(&RowsV1 {
            views: views(),
            rows: vec![row(1, 1)],
            tiles: Vec::new(),
        });
        let records = [
            applied.clone(),
            rows.clone(),
            undo.clone(),
            rows.clone(),
            applied.clone(),
            rows,
            applied,
            undo.clone(),
            undo,
        ];
        assert_eq!(undone_applies(&records), HashSet::from([0, 6]));
    }

    /// The journal after a snapshot ending at segment 2: `segments` (from 2 on, each a list of
    /// records), recovered from that snapshot, or why not.
    async fn recovered_after(segments: &[Vec<Vec<u8>>]) -> Result<Recovery, StoreError> {
        let records = records_of((0..KEYS).map(|key| row(key, 1)));
        let mut snapshot = records_snapshot(&[&records]);
        snapshot.sections[0].journal_seq = 2;
        let journal = tempfile::tempdir().unwrap();
        let (mut writing, _) = Journal::open(journal.path(), 2, FsyncPolicy::Never).unwrap();
        for (i, segment) in segments.iter().enumerate() {
            if i > 0 {
                writing.rotate().unwrap();
            }
            for record in segment {
                writing.append(record).unwrap();
            }
        }
        drop(writing);
        let router = Router::start(1, 4096, views(), vec![None]).unwrap();
        recover_plainly(&router, Some(&snapshot), journal.path()).await
    }

    /// An `Undone` before any `Applied`, in the segment the snapshot's rotation opened, takes
    /// back the apply that snapshot holds (its snapshot failed, the file survived): refused.
    /// In a later segment it is an apply whose `Applied` was lost (a segment lost and started
    /// past, a record repaired away): skipped, as is any `Undone` after an `Applied`.
    #[test]
    fn only_the_failed_snapshot_of_an_undone_apply_refuses_the_restore() {
        System::new().block_on(async {
            let undo = encode_apply_record(&ApplyRecordV1::Undone);
            let rows = encode(&RowsV1 {
                views: views(),
                rows: vec![row(1, 2)],
                tiles: Vec::new(),
            });
            let refused = recovered_after(&[vec![rows.clone(), undo.clone()]])
                .await
                .unwrap_err();
            assert!(
                matches!(refused, StoreError::UndoneApplySnapshot),
                "{refused}"
            );
            let started = recovered_after(&[vec![rows.clone()], vec![undo.clone(), rows]])
                .await
                .unwrap();
            assert_eq!(started.journal_records, 2);
            assert!(recovered_after(&[vec![], vec![undo]]).await.is_ok());
        });
    }

    #[test]
    fn a_damaged_record_refuses_the_restore() {
        System::new().block_on(async {
            let mut records = records_of((0..KEYS).map(|key| row(key, 1)));
            // The last record (a 50-byte payload, an 8-byte key) claims a longer key than is left.
            let last = records.len() - (24 + 50 + 8);
            records[last + 4..last + 8].copy_from_slice(&100u32.to_le_bytes());
            let snapshot = records_snapshot(&[&records, &[]]);
            let router = Router::start(2, 4096, views(), vec![None]).unwrap();
            let journal = tempfile::tempdir().unwrap();
            let error = recover_plainly(&router, Some(&snapshot), journal.path())
                .await
                .unwrap_err();
            assert!(error.to_string().contains("runs past the end"), "{error}");
        });
    }

    /// A repository whose `profile` view has `features` (TOML text of its list).
    pub(in crate::store) fn profile_registry(features: &str) -> crate::registry::Registry {
        let text = format!(
            r#"
[[entity]]
name = "user"
join_keys = [{{ name = "user_id", type = "string" }}]

[[batch_feature_view]]
name = "profile"
entities = ["user"]
timestamp_field = "ts"
features = [{features}]
"#
        );
        let files =
            crate::registry::WorkspaceFiles::new("ws".into(), true, [("repo.toml".into(), text)]);
        crate::registry::build_registry(&[files], None).unwrap()
    }

    pub(in crate::store) const AGE_CITY_ZIP: &str = r#"{ name = "age", type = "int64" }, { name = "city", type = "string" }, { name = "zip", type = "string" }"#;

    /// A store of `registry` with `key`'s row of [`profile_write`] written.
    async fn write_profile(router: &Router, registry: &crate::registry::Registry, key: &str) {
        router
            .write(vec![profile_write(registry, key)])
            .await
            .unwrap();
    }

    /// `key`'s `profile` row under `registry` when it has `AGE_CITY_ZIP`: 30, Oslo, the key.
    pub(in crate::store) fn profile_write(
        registry: &crate::registry::Registry,
        key: &str,
    ) -> RowWrite {
        use crate::registry::value::Value;
        let view = registry.view_by_name("ws", "profile").unwrap();
        let mut payload = Vec::new();
        crate::store::row::encode_row(
            &[
                Value::Int64(30),
                Value::String("Oslo".into()),
                Value::String(key.into()),
            ],
            &mut payload,
        );
        RowWrite {
            view: view.id,
            layout: view.layout,
            key: key.as_bytes().to_vec(),
            event_time: 1,
            payload,
        }
    }

    /// The row of `key` as `registry`'s store holds it.
    pub(crate) fn profile_row(
        router: &Router,
        registry: &crate::registry::Registry,
        key: &str,
    ) -> Option<Vec<crate::registry::value::Value>> {
        let view = registry.view_by_name("ws", "profile").unwrap();
        let lookup = Lookup::new(
            view.id,
            view.layout,
            key.as_bytes().to_vec(),
            AggregateMask::ALL,
        );
        let context = ReadContext {
            now: 10,
            leading_edge: None,
            timed: false,
        };
        let read = router.read(&[lookup], context);
        read.row(0)
            .map(|row| crate::store::row::decode_row(row.payload).unwrap())
    }

    /// Rows in a snapshot and rows in the journal after it, written while `profile` had
    /// `age, city, zip`, recovered by a store whose files dropped `age`: both read `city, zip`
    /// (not shifted); recovered where `age` turned float64, the start is refused naming it.
    #[test]
    fn rows_written_in_another_form_are_reshaped_or_refused_at_recovery() {
        use crate::registry::value::Value;
        System::new().block_on(async {
            let journal = tempfile::tempdir().unwrap();
            let before = profile_registry(AGE_CITY_ZIP);
            let source = Router::start_with(2, 4096, &before).unwrap();
            recover_plainly(&source, None, journal.path()).await
                .unwrap();
            write_profile(&source, &before, "in_snapshot").await;
            let section = source.take_section().await.unwrap();
            write_profile(&source, &before, "in_journal").await;
            let snapshot = through_a_file(std::slice::from_ref(&section));

            let after = profile_registry(
                r#"{ name = "city", type = "string" }, { name = "zip", type = "string" }"#,
            );
            let target = Router::start_with(3, 4096, &after).unwrap();
            let copy = tempfile::tempdir().unwrap();
            for entry in std::fs::read_dir(journal.path()).unwrap() {
                let path = entry.unwrap().path();
                std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
            }
            let recovery = recover_plainly(&target, Some(&snapshot), copy.path()).await
                .unwrap();
            assert_eq!((recovery.snapshot_rows, recovery.journal_rows), (1, 1));
            for key in ["in_snapshot", "in_journal"] {
                assert_eq!(
                    profile_row(&target, &after, key),
                    Some(vec![Value::String("Oslo".into()), Value::String(key.into())]),
                    "{key}"
                );
            }

            let retyped = profile_registry(&AGE_CITY_ZIP.replace(
                r#""age", type = "int64""#,
                r#""age", type = "float64""#,
            ));
            let refusing = Router::start_with(2, 4096, &retyped).unwrap();
            let error = recover_plainly(&refusing, Some(&snapshot), journal.path()).await
                .unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("ws/profile were written when it had another form (`age` was int64 and is float64 now)"),
                "{error}"
            );
            // Where the journal alone holds the old form, its layouts record says so.
            let journal_only = tempfile::tempdir().unwrap();
            let writer = Router::start_with(1, 4096, &before).unwrap();
            recover_plainly(&writer, None, journal_only.path()).await
                .unwrap();
            write_profile(&writer, &before, "only").await;
            let refusing = Router::start_with(1, 4096, &retyped).unwrap();
            let error = recover_plainly(&refusing, None, journal_only.path()).await
                .unwrap_err();
            assert!(matches!(error, StoreError::LayoutChanged(_)), "{error}");
        });
    }
}

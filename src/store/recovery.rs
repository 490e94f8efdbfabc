//! The store's side of persistence: its snapshot section (every shard's rows, named by
//! workspace and view), and recovery at start-up (snapshot rows, then the journal after it,
//! re-routed by the current shard count, then journaling from here on).

use std::io;
use std::path::Path;

use futures_util::future::{BoxFuture, FutureExt};

use super::key::shard_of;
use super::router::{Router, StoreError};
use super::shard::RowWrite;
use super::tiles::{from_stored, TileSet};
use super::views::StoreViews;
use super::writer::{AttachJournal, DropJournalBefore, StartSnapshot};
use crate::persist::format::{
    decode, encode, RowRefV1, RowsRefV1, RowsV1, SectionKind, TilesV2, ViewRefV1,
};
use crate::persist::snapshot::{SectionData, Snapshot};
use crate::persist::{FsyncPolicy, Journal, SnapshotSource};

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovery {
    pub snapshot_rows: usize,
    pub journal_records: usize,
    pub journal_rows: usize,
    /// Rows of views the repository no longer has.
    pub skipped_rows: usize,
    pub dropped_bytes: u64,
}

/// Rows per write when restoring, so that shards keep answering reads meanwhile.
const RESTORE_CHUNK: usize = 50_000;

impl Router {
    /// Loads the snapshot's rows (if any), replays the journal segments after it, and attaches
    /// the journal so later writes are journaled. `on_rows` reports progress.
    pub async fn recover(
        &self,
        snapshot: Option<&Snapshot>,
        journal_dir: &Path,
        policy: FsyncPolicy,
        mut on_rows: impl FnMut(usize),
    ) -> Result<Recovery, StoreError> {
        let mut recovery = Recovery::default();
        let section = snapshot.and_then(|s| s.section(SectionKind::FeatureRows));
        if let Some(section) = section {
            let rows: RowsV1 = decode(&section.payload)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let (stored, skipped) = self.restore_rows(rows, &mut on_rows).await?;
            recovery.snapshot_rows = stored;
            recovery.skipped_rows += skipped;
        }
        let (journal, replay) =
            Journal::open(journal_dir, section.map_or(0, |s| s.journal_seq), policy)?;
        recovery.dropped_bytes = replay.dropped_bytes;
        recovery.journal_records = replay.records.len();
        for (i, record) in replay.records.iter().enumerate() {
            let Ok(rows) = decode::<RowsV1>(record) else {
                return Err(replay.undecodable(i).into());
            };
            let (stored, skipped) = self.restore_rows(rows, &mut on_rows).await?;
            recovery.journal_rows += stored;
            recovery.skipped_rows += skipped;
        }
        self.writer
            .send(AttachJournal(journal))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        Ok(recovery)
    }

    /// Writes stored rows back without journaling them; rows of unknown views are skipped.
    async fn restore_rows(
        &self,
        stored: RowsV1,
        on_rows: &mut impl FnMut(usize),
    ) -> Result<(usize, usize), StoreError> {
        let views = self.views.load_full();
        let ids = view_ids_of(&views, &stored.views);
        let mut restored_tiles = 0;
        let mut per_shard: Vec<Vec<(u32, Vec<u8>, TileSet)>> =
            (0..self.n_shards()).map(|_| Vec::new()).collect();
        for stored_tiles in stored.tiles {
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
            // Tiles written for other aggregates (the repository changed) would be misread.
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
        let total = stored.rows.len();

        let mut writes = Vec::with_capacity(total.min(RESTORE_CHUNK));
        let mut skipped = 0;
        for row in stored.rows {
            match ids.get(row.view as usize).copied().flatten() {
                Some(view) => writes.push(RowWrite {
                    view,
                    layout: views.layout(view).expect("an id the views table gave"),
                    key: row.key,
                    event_time: row.event_time,
                    payload: row.payload,
                }),
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

impl SnapshotSource for Router {
    fn take_section(&self) -> BoxFuture<'static, io::Result<SectionData>> {
        let writer = self.writer.clone();
        async move {
            let (journal_seq, views, receivers) = writer
                .send(StartSnapshot)
                .await
                .map_err(io::Error::other)??;
            let mut exports = Vec::with_capacity(receivers.len());
            for receiver in receivers {
                exports.push(receiver.await.map_err(io::Error::other)?);
            }
            let items = exports
                .iter()
                .map(|e| (e.entries.len() + e.tiles.len()) as u64)
                .sum();
            // Building and encoding the rows takes a while: keep it off the async workers.
            let payload = tokio::task::spawn_blocking(move || {
                let rows = exports
                    .iter()
                    .flat_map(|export| {
                        export.entries.iter().map(|e| RowRefV1 {
                            view: e.view,
                            key: &export.keys[e.key_start..e.key_start + e.key_len],
                            event_time: e.event_time,
                            payload: &export.arena
                                [e.payload_start..e.payload_start + e.payload_len],
                        })
                    })
                    .collect();
                let tiles: Vec<TilesV2> = exports
                    .iter()
                    .flat_map(|export| export.tiles.iter().cloned())
                    .collect();
                encode(&RowsRefV1 {
                    views: &views.names_by_id(),
                    rows,
                    tiles: &tiles,
                })
            })
            .await
            .map_err(io::Error::other)?;

            Ok(SectionData {
                kind: SectionKind::FeatureRows,
                journal_seq,
                items,
                payload,
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

//! The router (the store's supervisor handle): starts the shard actors, each on its own thread,
//! and the writer actor; reads the shards' partitions directly on the caller's thread (under each
//! partition's read lock, no message), and sends every write through the writer (journal first,
//! then the shards: one message per shard involved, never one per row).

use std::time::{Duration, Instant};

use actix::{Actor, Addr, Arbiter};
use futures_util::future::join_all;

use std::collections::HashMap;
use std::sync::Arc;

use super::key::shard_of;
use super::shard::RestoreTiles;
use super::shard::{
    Lookup, RowWrite, ShardActor, ShardStats, ShardUsage, SharedPartition, StoredRow, WriteOutcome,
};
use super::shard::{ReadContext, Specs};
use super::tiles::TileSet;
use super::watermark::Watermarks;
use super::writer::{Write, WriterActor};
use crate::persist::format::ViewRefV1;
use crate::registry::ViewId;
use crate::time::Micros;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("shard {0} is not running")]
    ShardGone(usize),
    #[error("the writer is not running")]
    WriterGone,
    #[error("could not store rows: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Journal(#[from] crate::persist::JournalError),
}

impl StoreError {
    /// True when writes are refused until the journal can be repaired (HTTP 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Journal(error) if error.is_unwritable())
    }
}

/// A cheap, cloneable handle on every shard.
#[derive(Clone)]
pub struct Router {
    pub(super) shards: Vec<Addr<ShardActor>>,
    /// Index = shard: what reads read, without a message to the shard.
    partitions: Vec<SharedPartition>,
    watermarks: Arc<Watermarks>,
    pub(super) writer: Addr<WriterActor>,
    /// How stored rows name views (index = view id), and the way back.
    pub(super) views: Arc<Vec<ViewRefV1>>,
    pub(super) view_ids: Arc<HashMap<ViewRefV1, ViewId>>,
    pub(super) specs: Specs,
}

/// Rows in lookup order, plus how long the slowest shard's part of the read took.
#[derive(Debug)]
pub struct ReadResult {
    pub rows: Vec<Option<StoredRow>>,
    /// Parallel to `rows`: how long the shard that answered each lookup took.
    pub latencies: Vec<Duration>,
    pub max_shard_latency: Duration,
    pub bytes_read: usize,
}

impl Router {
    /// Starts `n_shards` shard actors, each in its own arbiter (thread), and the writer. `views`
    /// names every view id (index = id) and `specs` says which of them aggregate. Must be
    /// called inside an actix system.
    pub fn start(
        n_shards: usize,
        arena_bytes: usize,
        views: Vec<ViewRefV1>,
        specs: Specs,
    ) -> std::io::Result<Router> {
        let mut shards = Vec::with_capacity(n_shards);
        let mut partitions = Vec::with_capacity(n_shards);
        let watermarks = Arc::new(Watermarks::new(specs.len()));
        for _ in 0..n_shards.max(1) {
            let (actor, partition) =
                ShardActor::new(arena_bytes, specs.clone(), Arc::clone(&watermarks))?;
            partitions.push(partition);
            let arbiter = Arbiter::new();
            shards.push(ShardActor::start_in_arbiter(&arbiter.handle(), move |_| {
                actor
            }));
        }
        let views = Arc::new(views);
        let view_ids = Arc::new(
            views
                .iter()
                .enumerate()
                .map(|(id, view)| (view.clone(), id as ViewId))
                .collect(),
        );
        let writer_shards = shards.clone();
        let writer_views = Arc::clone(&views);
        let writer = WriterActor::start_in_arbiter(&Arbiter::new().handle(), move |_| {
            WriterActor::new(writer_shards, writer_views)
        });
        Ok(Router {
            shards,
            partitions,
            watermarks,
            writer,
            views,
            view_ids,
            specs,
        })
    }

    pub fn n_shards(&self) -> usize {
        self.shards.len()
    }

    /// Stores rows (journaled first when persistence is on); each row goes to the shard that
    /// owns its key. Returns once every shard involved has applied its rows.
    pub async fn write(&self, rows: Vec<RowWrite>) -> Result<WriteOutcome, StoreError> {
        self.write_with(rows, true).await
    }

    pub(super) async fn write_with(
        &self,
        rows: Vec<RowWrite>,
        journaled: bool,
    ) -> Result<WriteOutcome, StoreError> {
        let applied = self
            .writer
            .send(Write { rows, journaled })
            .await
            .map_err(|_| StoreError::WriterGone)??;
        let mut total = WriteOutcome::default();
        for (shard, done) in applied.into_iter().enumerate() {
            let outcome = done.await.map_err(|_| StoreError::ShardGone(shard))??;
            total.stored += outcome.stored;
            total.older_than_stored += outcome.older_than_stored;
        }
        Ok(total)
    }

    /// Reads the current row of each lookup; the answer is in lookup order. Runs on the
    /// caller's thread: each shard involved is read once, under its read lock, so the rows read
    /// from one shard come from one state of it.
    pub fn read(&self, lookups: &[Lookup], context: ReadContext) -> ReadResult {
        let n = self.partitions.len();
        let shard_of_lookup: Vec<usize> = lookups
            .iter()
            .map(|lookup| shard_of(lookup.view, &lookup.key, n))
            .collect();
        let mut rows: Vec<Option<StoredRow>> = vec![None; lookups.len()];
        let mut latencies = vec![Duration::ZERO; lookups.len()];
        let mut max_shard_latency = Duration::ZERO;
        let mut bytes_read = 0;
        let mut key = Vec::new();
        for (shard, partition) in self.partitions.iter().enumerate() {
            if !shard_of_lookup.contains(&shard) {
                continue;
            }
            let started = Instant::now();
            let partition = partition.read();
            for (position, lookup) in lookups.iter().enumerate() {
                if shard_of_lookup[position] != shard {
                    continue;
                }
                let row = partition.read(lookup, context, &self.specs, &self.watermarks, &mut key);
                bytes_read += row.as_ref().map_or(0, |r| r.payload.len());
                rows[position] = row;
            }
            drop(partition);
            let latency = started.elapsed();
            max_shard_latency = max_shard_latency.max(latency);
            for (position, of) in shard_of_lookup.iter().enumerate() {
                if *of == shard {
                    latencies[position] = latency;
                }
            }
        }
        ReadResult {
            rows,
            latencies,
            max_shard_latency,
            bytes_read,
        }
    }

    /// Puts tiles read from a snapshot back into their shards (one list per shard).
    pub(super) async fn restore_tiles(
        &self,
        per_shard: Vec<Vec<(u32, Vec<u8>, TileSet)>>,
    ) -> Result<(), StoreError> {
        for (shard, tiles) in per_shard
            .into_iter()
            .enumerate()
            .filter(|(_, t)| !t.is_empty())
        {
            self.shards[shard]
                .send(RestoreTiles(tiles))
                .await
                .map_err(|_| StoreError::ShardGone(shard))?;
        }
        Ok(())
    }

    /// Each view's newest event time in any shard (views that hold none are left out), for the
    /// freshness metric.
    pub fn newest_events(&self) -> Vec<(&ViewRefV1, Micros)> {
        self.views
            .iter()
            .enumerate()
            .filter_map(|(id, view)| Some((view, self.watermarks.get(id as ViewId)?)))
            .collect()
    }

    /// Row counts and arena usage of every shard, as each shard actor answers (the metrics).
    pub async fn usage(&self) -> Result<Vec<ShardUsage>, StoreError> {
        let answers = join_all(self.shards.iter().map(|addr| addr.send(ShardStats))).await;
        answers
            .into_iter()
            .enumerate()
            .map(|(shard, answer)| answer.map_err(|_| StoreError::ShardGone(shard)))
            .collect()
    }
}

//! The router (the store's supervisor handle): starts the shard actors, each on its own thread,
//! and sends every read and write to the shards that own the keys, one message per shard
//! involved, never one per row.

use std::time::{Duration, Instant};

use actix::{Actor, Addr, Arbiter};
use futures_util::future::join_all;

use super::key::shard_of;
use super::shard::{
    Lookup, ReadRows, RowWrite, ShardActor, ShardStats, ShardUsage, StoredRow, WriteOutcome,
    WriteRows,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("shard {0} is not running")]
    ShardGone(usize),
    #[error("shard {shard} could not store rows: {source}")]
    Io {
        shard: usize,
        source: std::io::Error,
    },
}

/// A cheap, cloneable handle on every shard.
#[derive(Clone)]
pub struct Router {
    shards: Vec<Addr<ShardActor>>,
}

/// Rows in lookup order, plus how long the slowest shard took to answer.
#[derive(Debug)]
pub struct ReadResult {
    pub rows: Vec<Option<StoredRow>>,
    pub max_shard_latency: Duration,
    pub bytes_read: usize,
}

impl Router {
    /// Starts `n_shards` shard actors, each in its own arbiter (thread). Must be called inside an
    /// actix system.
    pub fn start(n_shards: usize, arena_bytes: usize) -> std::io::Result<Router> {
        let mut shards = Vec::with_capacity(n_shards);
        for _ in 0..n_shards.max(1) {
            let actor = ShardActor::new(arena_bytes)?;
            let arbiter = Arbiter::new();
            shards.push(ShardActor::start_in_arbiter(&arbiter.handle(), move |_| {
                actor
            }));
        }
        Ok(Router { shards })
    }

    pub fn n_shards(&self) -> usize {
        self.shards.len()
    }

    /// Stores rows; each row goes to the shard that owns its key.
    pub async fn write(&self, rows: Vec<RowWrite>) -> Result<WriteOutcome, StoreError> {
        let n = self.shards.len();
        let mut per_shard: Vec<Vec<RowWrite>> = (0..n).map(|_| Vec::new()).collect();
        for row in rows {
            per_shard[shard_of(row.view, &row.key, n)].push(row);
        }
        let sends = per_shard
            .into_iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(shard, rows)| {
                let addr = &self.shards[shard];
                async move { (shard, addr.send(WriteRows(rows)).await) }
            });
        let mut total = WriteOutcome::default();
        for (shard, answer) in join_all(sends).await {
            let outcome = answer
                .map_err(|_| StoreError::ShardGone(shard))?
                .map_err(|source| StoreError::Io { shard, source })?;
            total.stored += outcome.stored;
            total.older_than_stored += outcome.older_than_stored;
        }
        Ok(total)
    }

    /// Reads the current row of each lookup; the answer is in lookup order.
    pub async fn read(&self, lookups: Vec<Lookup>) -> Result<ReadResult, StoreError> {
        let n = self.shards.len();
        let total = lookups.len();
        let mut per_shard: Vec<(Vec<usize>, Vec<Lookup>)> =
            (0..n).map(|_| (Vec::new(), Vec::new())).collect();
        for (position, lookup) in lookups.into_iter().enumerate() {
            let shard = shard_of(lookup.view, &lookup.key, n);
            per_shard[shard].0.push(position);
            per_shard[shard].1.push(lookup);
        }
        let sends = per_shard
            .into_iter()
            .enumerate()
            .filter(|(_, (p, _))| !p.is_empty())
            .map(|(shard, (positions, lookups))| {
                let addr = &self.shards[shard];
                async move {
                    let started = Instant::now();
                    let answer = addr.send(ReadRows(lookups)).await;
                    (shard, positions, answer, started.elapsed())
                }
            });
        let mut rows: Vec<Option<StoredRow>> = vec![None; total];
        let mut max_shard_latency = Duration::ZERO;
        let mut bytes_read = 0;
        for (shard, positions, answer, latency) in join_all(sends).await {
            let found = answer.map_err(|_| StoreError::ShardGone(shard))?;
            max_shard_latency = max_shard_latency.max(latency);
            for (position, row) in positions.into_iter().zip(found) {
                bytes_read += row.as_ref().map_or(0, |r| r.payload.len());
                rows[position] = row;
            }
        }
        Ok(ReadResult {
            rows,
            max_shard_latency,
            bytes_read,
        })
    }

    /// Row counts and arena usage of every shard.
    pub async fn usage(&self) -> Result<Vec<ShardUsage>, StoreError> {
        let answers = join_all(self.shards.iter().map(|addr| addr.send(ShardStats))).await;
        answers
            .into_iter()
            .enumerate()
            .map(|(shard, answer)| answer.map_err(|_| StoreError::ShardGone(shard)))
            .collect()
    }
}

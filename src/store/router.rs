//! The router (the store's supervisor handle): starts the shard actors, each on its own thread,
//! and the writer actor; reads the shards' partitions directly on the caller's thread (under each
//! partition's read lock, no message), and sends every write through the writer (journal first,
//! then the shards: one message per shard involved, never one per row), or in cluster mode to
//! the cluster's log (see `replicated`).

use std::time::Instant;

use actix::{Actor, Addr, Arbiter};
use arc_swap::ArcSwap;
use futures_util::future::join_all;

use std::sync::Arc;

use super::key::shard_of_hash;
use super::read_result::ReadResult;
use super::remote::RemoteRows;
use super::replicated::RowLog;
use super::shard::{
    Lookup, RowWrite, ShardActor, ShardStats, ShardUsage, SharedPartition, ViewStats, ViewUsage,
    WriteOutcome,
};
use super::shard::{ReadContext, RestoreTiles, RetireLayouts, ViewReshape};
use super::tiles::{MemoReads, TileSet};
use super::views::StoreViews;
use super::writer::{Reshape, Reshaped, Revert, Write, WriterActor};
use crate::persist::format::{encode_apply_record, ApplyRecordV1, RepositoryV1, ViewRefV1};
use crate::persist::JournalError;
use crate::registry::aggregation::AggregationSpec;
use crate::registry::{Registry, ViewId};
use crate::reported::Condition;
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
    #[error("the feature repository changed while the request ran (view id {0}); send it again")]
    RepositoryChanged(ViewId),
    /// Recovery: the rows journal holds an apply that cannot be made again.
    #[error("the rows journal holds an apply of repository {hash}, made after the snapshot loaded, that cannot be made again: {reason}")]
    Reapply { hash: String, reason: String },
    /// The snapshot loaded was an apply's, and the journal after it says the apply was taken
    /// back: its snapshot was reported failed, yet the file survived (a crash after a failed
    /// directory fsync). Serving it would make the apply its client was told failed.
    #[error("the snapshot loaded holds an apply that the rows journal says was taken back (its snapshot was reported failed; the file survived a crash); refusing to serve it. Move that snapshot out of the snapshot directory: the start then loads the one before it, which the journal reaches back to, and the apply stays undone")]
    UndoneApplySnapshot,
    /// An apply's reshape failed in shard `shard` (its arena could not grow for the copies, or a
    /// stored row did not fit its new form) and [`Router::reshape`] took it back in the writer
    /// and every shard. `unjournaled`: the journal's refusal of the record of that undo, if it
    /// refused it (it is made all the same, and journaled before anything else is); boxed, as
    /// every `Result` of the store carries this enum's size.
    #[error("shard {shard} could not reshape its data ({error}); the reshape was taken back")]
    ReshapeTakenBack {
        shard: usize,
        error: std::io::Error,
        unjournaled: Option<Box<JournalError>>,
    },
    /// The same failure, but taking the reshape back failed too (`undo`, a
    /// [`StoreError::UndoFailed`]).
    #[error("shard {shard} could not reshape its data ({error}); taking the reshape back failed: {undo}")]
    ReshapeNotTakenBack {
        shard: usize,
        error: std::io::Error,
        undo: Box<StoreError>,
    },
    /// Shard `shard` could not take an apply's reshape back ([`Router::undo_reshape`]) while
    /// the writer and the other shards went back: it holds the apply's table, they the one
    /// before. The reshape holds its undo's arena room apart, so this is no shortage of memory
    /// but a shard stopped (or a bug). A restart recovers one table for every shard (the rows
    /// journal holds the undo, or, if it refused that record, `unjournaled`, the apply);
    /// meanwhile `/health` reports it and snapshots are refused (one would keep the shards so).
    #[error("shard {shard} could not take the apply's reshape back ({error}): the store is left inconsistent, that shard on the apply's table and the others on the one before (what the apply changed may be read or written wrongly there, and no snapshot is taken); restart the server: it recovers every shard on one repository from the data directory{}", unjournaled_note(.unjournaled))]
    UndoFailed {
        shard: usize,
        error: std::io::Error,
        unjournaled: Option<Box<JournalError>>,
    },
    /// Recovery, or a cluster's stream: stored rows were written in a form of their view that
    /// the serving one cannot take.
    #[error(transparent)]
    LayoutChanged(#[from] super::layouts::LayoutMismatch),
    /// Cluster mode: the forms a record of the log says its rows were written in cannot be read.
    #[error("the rows cannot be read: {0}")]
    UnreadableForms(String),
    /// The cluster's log (JetStream) did not take or apply the rows.
    #[error("the cluster log could not take the rows: {0}")]
    Log(String),
    /// Partitioned cluster: no node holding some lookups' rows answered.
    #[error("no node holding the rows answered: {0}")]
    Remote(String),
    /// Partitioned cluster: the nodes holding some lookups' rows did not answer within the
    /// request's latency budget.
    #[error("the rows held by other nodes did not arrive within the request's latency budget")]
    RemoteDeadline,
}

impl StoreError {
    /// True when writes are refused for now: until the journal can be repaired, because an
    /// apply changed the repository under the request, or until the cluster's log (NATS) takes
    /// them again (HTTP 503: retry).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Journal(error) => error.is_unwritable(),
            StoreError::RepositoryChanged(_) | StoreError::Log(_) | StoreError::Remote(_) => true,
            _ => false,
        }
    }
}

/// What [`Router::undo_reshape`] takes a reshape back to: the views table it replaced.
pub struct ReshapeUndo(Arc<StoreViews>);

/// A cheap, cloneable handle on every shard.
#[derive(Clone)]
pub struct Router {
    pub(super) shards: Vec<Addr<ShardActor>>,
    /// Index = shard: what reads read, without a message to the shard.
    partitions: Vec<SharedPartition>,
    pub(super) writer: Addr<WriterActor>,
    /// The views table of the repository served (each shard holds the one its data is for):
    /// how stored rows name views, and their specs, layouts and watermarks.
    pub(super) views: Arc<ArcSwap<StoreViews>>,
    /// Cluster mode: where writes go instead of the writer (see `replicated`).
    pub(super) log: Option<Arc<dyn RowLog>>,
    /// Partitioned cluster mode: where the rows of partitions this node does not hold are read
    /// (see `remote`).
    pub(super) remote: Option<Arc<dyn RemoteRows>>,
    /// Whether the rows journal refuses writes: the journal sets it, `/health` reads it.
    pub(super) journal_unwritable: Condition,
    /// Whether an apply's undo failed in a shard, leaving the shards on different tables
    /// ([`StoreError::UndoFailed`]) until a restart: the router sets it, `/health` reads it.
    shards_inconsistent: Condition,
}

/// What [`StoreError::UndoFailed`] adds when the journal refused the undo's record too: the
/// repository a restart recovers is then the apply's.
fn unjournaled_note(unjournaled: &Option<Box<JournalError>>) -> String {
    unjournaled.as_ref().map_or_else(String::new, |journal| {
        format!("; the journal refused the record of the undo too ({journal}): it is journaled before the next write or apply, and a restart before then makes the apply again")
    })
}

/// Waits for every shard's answer to a reshape or its undo; answers the first failure.
async fn first_failure(answers: Reshaped) -> Option<(usize, std::io::Error)> {
    let mut failed = None;
    for (shard, done) in answers.into_iter().enumerate() {
        let answer = done
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the shard stopped")));
        if let (Err(error), None) = (answer, &failed) {
            failed = Some((shard, error));
        }
    }
    failed
}

/// Room for a row's payload a lookup, up front: the demo's rows and aggregates take 10-100
/// bytes, and growing the read's buffer from empty cost a reallocation each doubling.
const PAYLOAD_BYTES_HINT: usize = 64;

/// `Router::read` locks the shard of every lookup before it reads any.
const LOCKED: &str = "every lookup's shard is locked";

impl Router {
    /// Starts `n_shards` shard actors, each in its own arbiter (thread), and the writer. `views`
    /// names every view id (index = id) and `specs` says which of them aggregate. Must be
    /// called inside an actix system.
    pub fn start(
        n_shards: usize,
        arena_bytes: usize,
        views: Vec<ViewRefV1>,
        specs: Vec<Option<Arc<AggregationSpec>>>,
    ) -> std::io::Result<Router> {
        Router::start_for(n_shards, arena_bytes, StoreViews::new(views, specs))
    }

    /// Starts the store for the views of `registry` (see [`Router::start`]).
    pub fn start_with(
        n_shards: usize,
        arena_bytes: usize,
        registry: &Registry,
    ) -> std::io::Result<Router> {
        Router::start_for(n_shards, arena_bytes, StoreViews::of(registry))
    }

    fn start_for(
        n_shards: usize,
        arena_bytes: usize,
        views: StoreViews,
    ) -> std::io::Result<Router> {
        let views = Arc::new(views);
        let mut shards = Vec::with_capacity(n_shards);
        let mut partitions = Vec::with_capacity(n_shards);
        for _ in 0..n_shards.max(1) {
            let (actor, partition) = ShardActor::new(arena_bytes, Arc::clone(&views))?;
            partitions.push(partition);
            let arbiter = Arbiter::new();
            shards.push(ShardActor::start_in_arbiter(&arbiter.handle(), move |_| {
                actor
            }));
        }
        let writer_shards = shards.clone();
        let writer_views = Arc::clone(&views);
        let writer = WriterActor::start_in_arbiter(&Arbiter::new().handle(), move |_| {
            WriterActor::new(writer_shards, writer_views)
        });
        Ok(Router {
            shards,
            partitions,
            writer,
            views: Arc::new(ArcSwap::new(views)),
            log: None,
            remote: None,
            journal_unwritable: Condition::default(),
            shards_inconsistent: Condition::default(),
        })
    }

    /// Moves the store to the views of `after` (an apply's registry): every shard copies the
    /// data of each view whose layout changed to its new layout as `reshapes` says, behind the
    /// writes already sent, and from then on writes made for the old layouts are refused; reads
    /// of the old layouts go on until [`Router::retire_layouts`]. Returns once every shard has
    /// done so. With a journal attached, `applied` (the repository `after` was built from) is
    /// journaled there first (a failure refuses the reshape, nothing changed), so that a replay
    /// makes the apply again at that point of the rows. A shard that fails its part changes
    /// nothing; the others' are then taken back as [`Router::undo_reshape`] does (journaled
    /// too), and the answer is [`StoreError::ReshapeTakenBack`]: the store is as it was (or
    /// [`StoreError::ReshapeNotTakenBack`] if a shard could not go back).
    ///
    /// Answers what [`Router::undo_reshape`] needs to take it back, until `retire_layouts`.
    pub async fn reshape(
        &self,
        after: &Registry,
        reshapes: Vec<(ViewId, ViewReshape)>,
        applied: &RepositoryV1,
    ) -> Result<ReshapeUndo, StoreError> {
        let before = self.views.load_full();
        let cleared = |view| {
            reshapes
                .iter()
                .any(|(id, reshape)| *id == view && *reshape == ViewReshape::Clear)
        };
        let views = Arc::new(self.views.load().reshaped(after, cleared));
        let reshaped = self
            .writer
            .send(Reshape {
                views: Arc::clone(&views),
                reshapes: Arc::new(reshapes),
                record: encode_apply_record(&ApplyRecordV1::Applied(applied.clone())),
            })
            .await
            .map_err(|_| StoreError::WriterGone)??;
        // The undo then goes to every shard (those that reshaped take it back; a failed one
        // changed nothing).
        let Some((shard, error)) = first_failure(reshaped).await else {
            self.views.store(views);
            return Ok(ReshapeUndo(before));
        };
        match self.undo_reshape(ReshapeUndo(before)).await {
            Ok(unjournaled) => Err(StoreError::ReshapeTakenBack {
                shard,
                error,
                unjournaled: unjournaled.map(Box::new),
            }),
            Err(undo) => Err(StoreError::ReshapeNotTakenBack {
                shard,
                error,
                undo: Box::new(undo),
            }),
        }
    }

    /// Takes back the last reshape (not yet retired): the views table it replaced is the
    /// store's again, behind the writes already sent, with the data it had; what the reshape
    /// made is dropped. An apply that cannot keep its result undoes itself this way (journaled,
    /// as the reshape was). Answers the journal's refusal of the undo's record, if it refused
    /// it: the undo is made all the same, and journaled before anything else is. A shard that
    /// could not go back is [`StoreError::UndoFailed`] (with the journal's refusal, if any):
    /// logged and reported to `/health`, as the shards are then on different tables until a
    /// restart.
    pub async fn undo_reshape(
        &self,
        undo: ReshapeUndo,
    ) -> Result<Option<JournalError>, StoreError> {
        let (reverted, unjournaled) = self
            .writer
            .send(Revert {
                views: Arc::clone(&undo.0),
            })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        let failed = first_failure(reverted).await;
        // The writer went back whatever the shards answer: writes are made for its table.
        self.views.store(undo.0);
        let Some((shard, error)) = failed else {
            return Ok(unjournaled);
        };
        let failure = StoreError::UndoFailed {
            shard,
            error,
            unjournaled: unjournaled.map(Box::new),
        };
        tracing::error!(%failure, "an apply's undo failed in a shard");
        self.shards_inconsistent.set(Some(failure.to_string()));
        Err(failure)
    }

    /// Drops the data of the layouts the last reshape replaced (and of removed views), now that
    /// no request reads them, giving their memory back.
    pub async fn retire_layouts(&self) -> Result<(), StoreError> {
        let answers = join_all(self.shards.iter().map(|shard| shard.send(RetireLayouts))).await;
        for (shard, answer) in answers.into_iter().enumerate() {
            answer.map_err(|_| StoreError::ShardGone(shard))?;
        }
        Ok(())
    }

    /// Why the rows journal refuses writes, while it does.
    pub fn journal_unwritable(&self) -> Option<String> {
        self.journal_unwritable.reason()
    }

    /// Why the shards hold different tables (an apply's undo failed in one), until a restart.
    pub fn shards_inconsistent(&self) -> Option<String> {
        self.shards_inconsistent.reason()
    }

    pub fn n_shards(&self) -> usize {
        self.shards.len()
    }

    /// Stores rows (journaled first when persistence is on; through the cluster's log in
    /// cluster mode); each row goes to the shard that owns its key. Returns once every shard
    /// involved has applied its rows.
    pub async fn write(&self, rows: Vec<RowWrite>) -> Result<WriteOutcome, StoreError> {
        let views = self.views.load();
        for row in &rows {
            views.writes.add(row.view as usize, 1);
        }
        match &self.log {
            Some(log) => log.append(rows).await,
            None => self.write_with(rows, true).await,
        }
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
    /// caller's thread, under the read lock of every shard involved, all held at once: the rows
    /// read come from one state of each shard, and every lookup is located before any is read,
    /// whichever shard it is on, so that their cache misses overlap (see `store::prefetch`).
    pub fn read(&self, lookups: &[Lookup], context: ReadContext) -> ReadResult {
        let n = self.partitions.len();
        let mut read = ReadResult::nothing_for(lookups.len(), PAYLOAD_BYTES_HINT * lookups.len());
        read.set_shards(|i| shard_of_hash(lookups[i].hash(), n));
        // Tile keys are the view id and layout (8 bytes), then the join key: room for the
        // longest up front, not a reallocation per longer key.
        let longest = lookups.iter().map(|lookup| lookup.key().len()).max();
        let mut key = Vec::with_capacity(8 + longest.unwrap_or(0));
        let mut memos = MemoReads::default();
        let started = context.timed.then(Instant::now);
        // Locked in shard order, as every reader locks them: a reader waiting for a lock while
        // holding another never waits on one waiting for a lock it holds (a writer only ever
        // takes its own shard's).
        let partitions: Vec<_> = self
            .partitions
            .iter()
            .enumerate()
            .map(|(shard, partition)| read.reads_shard(shard).then(|| partition.read()))
            .collect();
        let partition = |shard: usize| partitions[shard].as_ref().expect(LOCKED);
        read.read_staged(
            &mut memos,
            |memos, i, shard| partition(shard).locate(&lookups[i], &mut key, memos),
            |memos, i, shard, located, payloads| {
                partition(shard).read_located(&lookups[i], located, context, memos, payloads)
            },
        );
        drop(partitions);
        if let Some(started) = started {
            read.answered_in(started.elapsed());
        }
        read
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

    /// Rows written per view id since start (not counting recovery), for the console's ingest
    /// rate (`metrics::RequestHistory` samples them).
    pub fn rows_written(&self) -> Vec<u64> {
        self.views.load().writes.read()
    }

    /// Every view the store serves: its id and how stored rows name it.
    pub fn named_views(&self) -> Vec<(ViewId, ViewRefV1)> {
        let views = self.views.load();
        views.names().map(|(id, name)| (id, name.clone())).collect()
    }

    /// Rows, payload bytes and aggregated keys of every view (index = view id), summed over
    /// the shards (each answers the counts it keeps as it writes).
    pub async fn view_usage(&self) -> Result<Vec<ViewUsage>, StoreError> {
        let answers = join_all(self.shards.iter().map(|addr| addr.send(ViewStats))).await;
        let mut total = vec![ViewUsage::default(); self.views.load().id_bound()];
        for (shard, answer) in answers.into_iter().enumerate() {
            let usage = answer.map_err(|_| StoreError::ShardGone(shard))?;
            for (sum, part) in total.iter_mut().zip(usage) {
                sum.rows += part.rows;
                sum.payload_bytes += part.payload_bytes;
                sum.aggregated_keys += part.aggregated_keys;
            }
        }
        Ok(total)
    }

    /// Each view's newest event time in any shard (views that hold none are left out), for the
    /// freshness metric.
    pub fn newest_events(&self) -> Vec<(ViewRefV1, Micros)> {
        let views = self.views.load();
        views
            .names()
            .filter_map(|(id, view)| Some((view.clone(), views.watermarks.get(id)?)))
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

//! Cluster mode on a NATS JetStream stream. Feature writes go through the stream: an accepted
//! batch is published, one message per partition (subject `<stream>.rows.<partition>`, the
//! partition being `store::key::shard_of` over the partition count), and answered once
//! JetStream has acknowledged it and this node's replica of the partition, if it holds one, has
//! applied it (waiting at most [`OWN_APPLY_WITHIN`]). The stream is the log: no local journal.
//!
//! - Replicated mode (the default): every node applies the whole stream, in stream order,
//!   through a durable consumer named by its node id (`replica`).
//! - Partitioned mode (`owners` set): a node holds only the partitions it owns (`ownership`:
//!   heartbeats in a key-value bucket, owners by rendezvous hashing), one durable consumer per
//!   partition (`partitioned`), and forwards reads of the others to a node that holds them
//!   (`forward`).
//!
//! `status` answers `quiver cluster status` from JetStream alone.
//!
//! Each rows message names the stored forms it was written in, kept in a key-value bucket, and
//! is read back in them (`forms`): nodes may serve different repository files.
//!
//! The SCIM directory and the vault have streams of their own (`change_stream`).
//!
//! In replicated mode a node with a data directory snapshots its rows with the stream
//! sequence they cover (`snapshot`) and at start resumes the stream after it; without one, and
//! in partitioned mode, a node replays its partitions from the stream's start.

mod change_stream;
mod forms;
mod forward;
mod ownership;
mod partitioned;
mod replica;
mod snapshot;
mod status;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv, stream};
use futures_util::future::{BoxFuture, FutureExt};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::ClusterSettings;
use crate::persist::snapshot::Snapshot;
use crate::persist::SnapshotCut;
use crate::reported::Conditions;
use crate::store::key::shard_of;
use crate::store::{
    AcceptedLoss, LogForms, RemoteRows, Router, RowLog, RowWrite, StoreError, WriteOutcome,
};

pub use change_stream::ChangeStream;
pub use ownership::{owners, Member};
pub use status::{status, ClusterStatus};

/// How long a node waits at start for the stream to be created: a NATS cluster starting at
/// the same time elects its JetStream leader first.
const STREAM_READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a write waits for this node's replica to apply it once JetStream acknowledged it;
/// past that it is answered as stored (it is durable in the stream and will be applied).
const OWN_APPLY_WITHIN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot connect to NATS at {urls}: {reason}")]
    Connect { urls: String, reason: String },
    #[error("JetStream stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error("the durable consumer {consumer} of stream {stream}: {reason}")]
    Consumer {
        stream: String,
        consumer: String,
        reason: String,
    },
    /// A node's start: the stream holds rows it cannot read (written in a form its views cannot
    /// take, or naming forms that cannot be read).
    #[error("stream {stream} holds rows this node cannot read, so it does not start: {error}")]
    Unreadable { stream: String, error: StoreError },
}

/// A node's connection to the cluster: publishes this node's writes ([`RowLog`]) and starts
/// the replica that applies everyone's.
pub struct Cluster {
    settings: ClusterSettings,
    jetstream: jetstream::Context,
    stream: stream::Stream,
    log: Arc<StreamLog>,
    /// The forms the stream's rows were written in.
    forms: forms::Forms,
    /// The plain router (no log, no remote reads): what answers forwarded reads.
    router: Router,
    placement: watch::Sender<Arc<Placement>>,
    /// Where snapshots ask the replicated-mode replica to hold still, and (until it starts)
    /// where it takes those asks.
    holds: mpsc::Sender<replica::Hold>,
    held: Option<mpsc::Receiver<replica::Hold>>,
    /// This node's replicas, each with the cell it reports a stall in.
    replica_stalls: Conditions,
}

/// Where this node holds partitions, as its replicas and (partitioned mode) the heartbeats
/// tell; index = partition.
pub(super) struct Placement {
    /// This node's replica of each partition it holds (caught up or catching up): where its
    /// own writes wait.
    replicas: Vec<Option<mpsc::Sender<Waiter>>>,
    /// Caught up here: reads are local.
    ready: Vec<bool>,
    /// The other live nodes holding the partition caught up, its owners first.
    holders: Vec<Vec<String>>,
}

impl Placement {
    /// Nothing held yet (before the replicas start).
    fn empty(partitions: usize) -> Placement {
        Placement {
            replicas: vec![None; partitions],
            ready: vec![false; partitions],
            holders: vec![Vec::new(); partitions],
        }
    }
}

/// A write published by this node, waiting for the replica to apply it (matched by the
/// message's `Nats-Msg-Id`).
struct Waiter {
    message_id: String,
    applied: oneshot::Sender<Result<WriteOutcome, StoreError>>,
}

impl Cluster {
    /// Connects to NATS and creates the stream if no node has yet (with `replicas` copies
    /// of each message; an existing stream is taken as it is).
    pub async fn connect(
        settings: &ClusterSettings,
        router: &Router,
    ) -> Result<Cluster, ClusterError> {
        let jetstream = connect(&settings.nats_urls).await?;
        let stream = create_stream(
            &jetstream,
            settings,
            settings.stream.clone(),
            format!("{}.rows.*", settings.stream),
        )
        .await?;
        let forms = forms::Forms::open(&jetstream, settings).await?;
        let (placement, placed) = watch::channel(Arc::new(Placement::empty(settings.partitions)));
        let log = Arc::new(StreamLog {
            router: router.clone(),
            jetstream: jetstream.clone(),
            forms: forms.clone(),
            subject_prefix: format!("{}.rows", settings.stream),
            partitions: settings.partitions,
            message_prefix: format!("{}-{:x}", settings.node_id, rand::random::<u64>()),
            next_message: AtomicU64::new(0),
            placement: placed,
        });
        let (holds, held) = mpsc::channel(1);
        Ok(Cluster {
            settings: settings.clone(),
            jetstream,
            stream,
            log,
            forms,
            router: router.clone(),
            placement,
            holds,
            held: Some(held),
            replica_stalls: Conditions::default(),
        })
    }

    /// This node's replicas' stalls, for `/health` and `/readyz`.
    pub fn replica_stalls(&self) -> Conditions {
        self.replica_stalls.clone()
    }

    /// Replicated mode: what `Snapshotter::with_cut` takes, so that a snapshot records the
    /// stream sequence its rows cover; `None` in partitioned mode.
    pub fn snapshot_cut(&self) -> Option<Arc<dyn SnapshotCut>> {
        if self.settings.owners.is_some() {
            return None;
        }
        Some(Arc::new(snapshot::ReplicaCut {
            stream: self.settings.stream.clone(),
            partitions: self.settings.partitions,
            holds: self.holds.clone(),
            hold_within: snapshot::HOLD_WITHIN,
        }))
    }

    /// What `Router::with_log` takes: this node's writes go to the stream.
    pub fn log(&self) -> Arc<dyn RowLog> {
        self.log.clone()
    }

    /// Partitioned mode: what `Router::with_remote` takes (reads of partitions held
    /// elsewhere are forwarded); `None` in replicated mode.
    pub fn remote_reads(&self) -> Option<Arc<dyn RemoteRows>> {
        self.settings.owners?;
        Some(Arc::new(forward::Forwarder::new(
            &self.settings,
            self.jetstream.client(),
            self.router.clone(),
            self.placement.subscribe(),
        )))
    }

    /// Starts applying the stream: in replicated mode all of it, after what `snapshot` (whose
    /// rows the store holds; replicated mode only) covers, else from its first message; in
    /// partitioned mode the partitions this node owns, from the first message. Beats in the
    /// ownership map as serving HTTP at `url`. Resolves once the node has caught up with what
    /// the stream held of them at the call; answers the sequence it resumed after and the last
    /// one it caught up to.
    pub async fn start_replica(
        &mut self,
        url: &str,
        snapshot: Option<&Snapshot>,
    ) -> Result<(u64, u64), ClusterError> {
        let stream_error = |e: &dyn std::fmt::Display| ClusterError::Stream {
            stream: self.settings.stream.clone(),
            reason: e.to_string(),
        };
        let info = self.stream.info().await.map_err(|e| stream_error(&e))?;
        let last = info.state.last_sequence;
        let after = snapshot::resume_after(snapshot, &self.settings.stream, (&info.state).into())?;
        let bucket = ownership::bucket(
            &self.jetstream,
            &self.settings.stream,
            self.settings.replicas,
        )
        .await?;
        let Some(owners) = self.settings.owners else {
            let (waiters_in, waiters) = mpsc::channel(1024);
            let feed = replica::Feed {
                consumer: &self.settings.node_id,
                subjects: format!("{}.rows.*", self.settings.stream),
                caught_up_at: last,
                applied: after,
                holds: self.held.take(),
                forms: forms::ReadForms::new(self.forms.clone()),
                refuse_start: true,
                stalls: self.replica_stalls.clone(),
            };
            // Detached: it applies for as long as the process runs.
            let _replica = replica::start(&self.stream, feed, self.router.clone(), waiters).await?;
            let partitions = self.settings.partitions;
            self.placement.send_replace(Arc::new(Placement {
                replicas: vec![Some(waiters_in); partitions],
                ready: vec![true; partitions],
                holders: vec![Vec::new(); partitions],
            }));
            ownership::beat_replicated(
                bucket,
                self.settings.node_id.clone(),
                url.to_string(),
                partitions,
            );
            return Ok((after, last));
        };
        forward::answer_forwarded_reads(
            &self.settings,
            self.jetstream.client(),
            self.router.clone(),
            self.placement.subscribe(),
        )
        .await?;
        partitioned::start(partitioned::Node {
            settings: self.settings.clone(),
            owners,
            url: url.to_string(),
            stream: self.stream.clone(),
            bucket,
            forms: self.forms.clone(),
            router: self.router.clone(),
            placement: self.placement.clone(),
            stalls: self.replica_stalls.clone(),
        })
        .await?;
        Ok((after, last))
    }
}

/// The stream `name` (holding `subject`), created if no node has yet with `replicas` copies
/// of each message (an existing stream is taken as it is); a NATS cluster starting at the same
/// time elects its JetStream leader first, so this retries for a while.
async fn create_stream(
    jetstream: &jetstream::Context,
    settings: &ClusterSettings,
    name: String,
    subject: String,
) -> Result<stream::Stream, ClusterError> {
    let config = stream::Config {
        name,
        subjects: vec![subject],
        num_replicas: settings.replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    let started = Instant::now();
    loop {
        match jetstream.get_or_create_stream(config.clone()).await {
            Ok(stream) => return Ok(stream),
            Err(error) if started.elapsed() < STREAM_READY_WITHIN => {
                tracing::info!(%error, "JetStream not ready yet; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => {
                return Err(ClusterError::Stream {
                    stream: config.name,
                    reason: error.to_string(),
                })
            }
        }
    }
}

/// The key-value bucket `name`, created if no node has yet with `replicas` copies, its entries
/// kept for `max_age` (zero: for ever). Its stream is created here as a key-value bucket's
/// (`KV_<bucket>`, what async-nats' `create_key_value` makes): that call first asks the
/// account's JetStream API level, which nats-server 2.9 answers in a shape async-nats 0.51
/// does not read.
async fn key_value_bucket(
    jetstream: &jetstream::Context,
    name: String,
    replicas: usize,
    max_age: Duration,
) -> Result<kv::Store, ClusterError> {
    let error = |reason: String| ClusterError::Stream {
        stream: format!("KV_{name}"),
        reason,
    };
    jetstream
        .get_or_create_stream(jetstream::stream::Config {
            name: format!("KV_{name}"),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_age,
            num_replicas: replicas,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: jetstream::stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await
        .map_err(|e| error(e.to_string()))?;
    jetstream
        .get_key_value(&name)
        .await
        .map_err(|e| error(e.to_string()))
}

/// A JetStream context over the NATS servers at `nats_urls` (any one reachable is enough).
async fn connect(nats_urls: &[String]) -> Result<jetstream::Context, ClusterError> {
    let client =
        async_nats::connect(nats_urls.to_vec())
            .await
            .map_err(|e| ClusterError::Connect {
                urls: nats_urls.join(","),
                reason: e.to_string(),
            })?;
    Ok(jetstream::new(client))
}

/// The [`RowLog`] of a cluster node: rows to the stream, answers from the replica.
struct StreamLog {
    /// Only to encode records (views by name).
    router: Router,
    jetstream: jetstream::Context,
    /// Where the forms a message names are put before it is published.
    forms: forms::Forms,
    subject_prefix: String,
    partitions: usize,
    /// Node id and a per-run nonce: with the counter, a message id no other write has.
    message_prefix: String,
    next_message: AtomicU64,
    /// Where this node's replicas are (their waiters).
    placement: watch::Receiver<Arc<Placement>>,
}

impl RowLog for StreamLog {
    fn accept_losses(
        &self,
        moves: Vec<AcceptedLoss>,
        lossy_allowed: bool,
    ) -> BoxFuture<'static, Result<Vec<AcceptedLoss>, StoreError>> {
        let forms = self.forms.clone();
        Box::pin(async move { forms.accept_losses(&moves, lossy_allowed).await })
    }

    fn withdraw_losses(
        &self,
        losses: Vec<AcceptedLoss>,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let forms = self.forms.clone();
        Box::pin(async move { forms.withdraw_losses(&losses).await })
    }

    fn append(&self, rows: Vec<RowWrite>) -> BoxFuture<'static, Result<WriteOutcome, StoreError>> {
        let mut per_partition: BTreeMap<usize, Vec<RowWrite>> = BTreeMap::new();
        for row in rows {
            let partition = shard_of(row.view, &row.key, self.partitions);
            per_partition.entry(partition).or_default().push(row);
        }
        let placement = Arc::clone(&self.placement.borrow());
        let messages: Result<Vec<Message>, StoreError> = per_partition
            .into_iter()
            .map(|(partition, rows)| {
                let (record, forms) = self.router.encode_record(&rows)?;
                let n = self.next_message.fetch_add(1, Ordering::Relaxed);
                Ok(Message {
                    subject: format!("{}.{partition}", self.subject_prefix),
                    id: format!("{}-{n}", self.message_prefix),
                    record,
                    forms,
                    rows: rows.len(),
                    replica: placement.replicas[partition].clone(),
                })
            })
            .collect();
        drop(placement);
        // Refused whole before anything is published: a refused write changes nothing.
        let messages = match messages {
            Ok(messages) => messages,
            Err(refused) => return Box::pin(std::future::ready(Err(refused))),
        };
        let jetstream = self.jetstream.clone();
        let forms = self.forms.clone();
        async move {
            let unavailable =
                |what: &str, e: &dyn std::fmt::Display| StoreError::Log(format!("{what}: {e}"));
            // Before any message names them (once a table: after a start or an apply).
            for message in &messages {
                forms.publish(&message.forms).await?;
            }
            let mut pending = Vec::with_capacity(messages.len());
            for message in messages {
                // Registered before the message exists, so the replica knows it on arrival. A
                // replica gone meanwhile (the partition moved) just leaves the write unwaited.
                let mut answer = None;
                if let Some(replica) = message.replica {
                    let (applied, applied_answer) = oneshot::channel();
                    let waiter = Waiter {
                        message_id: message.id.clone(),
                        applied,
                    };
                    if replica.send(waiter).await.is_ok() {
                        answer = Some(applied_answer);
                    }
                }
                let mut headers = replica::message_id_headers(&message.id);
                forms::name(&mut headers, &message.forms);
                let ack = jetstream
                    .publish_with_headers(message.subject, headers, message.record.into())
                    .await
                    .map_err(|e| unavailable("publish", &e))?;
                pending.push((ack, answer, message.rows));
            }
            let mut total = WriteOutcome::default();
            for (ack, answer, rows) in pending {
                ack.await.map_err(|e| unavailable("acknowledgement", &e))?;
                let applied = match answer {
                    Some(answer) => tokio::time::timeout(OWN_APPLY_WITHIN, answer).await.ok(),
                    None => None,
                };
                let outcome = match applied {
                    Some(Ok(outcome)) => outcome?,
                    // Durable in the stream, not (yet) applied here: every row counts as stored.
                    _ => WriteOutcome {
                        stored: rows,
                        ..WriteOutcome::default()
                    },
                };
                total.stored += outcome.stored;
                total.older_than_stored += outcome.older_than_stored;
            }
            Ok(total)
        }
        .boxed()
    }
}

/// One partition's part of a write, as published.
struct Message {
    subject: String,
    id: String,
    record: Vec<u8>,
    /// The forms `record`'s rows are encoded in.
    forms: Arc<LogForms>,
    rows: usize,
    /// This node's replica of the partition, if it holds one.
    replica: Option<mpsc::Sender<Waiter>>,
}

//! Cluster mode, first slice (replicated: every node holds every row). Feature writes go
//! through a NATS JetStream stream: an accepted batch is published, one message per partition
//! (subject `<stream>.rows.<partition>`, the partition being `store::key::shard_of` over the
//! partition count), and answered once JetStream has acknowledged it and this node has applied
//! it. Every node applies the whole stream, in stream order, to its own shards through a
//! durable consumer named by its node id. The stream is the log: no local journal.
//!
//! `status` answers `quiver cluster status` from JetStream alone.
//!
//! The SCIM directory and the vault have streams of their own (`change_stream`).
//!
//! Not here yet: partitioned ownership, rebalancing, forwarded reads, snapshots that record a
//! stream sequence (a node replays the stream from its start).

mod change_stream;
mod replica;
mod status;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use futures_util::future::{BoxFuture, FutureExt};
use tokio::sync::{mpsc, oneshot};

use crate::config::ClusterSettings;
use crate::store::key::shard_of;
use crate::store::{Router, RowLog, RowWrite, StoreError, WriteOutcome};

pub use change_stream::ChangeStream;
pub use status::{status, ClusterStatus};

/// How long a node waits at start for the stream to be created: a NATS cluster starting at
/// the same time elects its JetStream leader first.
const STREAM_READY_WITHIN: Duration = Duration::from_secs(30);

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
}

/// A node's connection to the cluster: publishes this node's writes ([`RowLog`]) and starts
/// the replica that applies everyone's.
pub struct Cluster {
    settings: ClusterSettings,
    stream: stream::Stream,
    log: Arc<StreamLog>,
    /// Taken by the replica when it starts.
    waiters: Option<mpsc::Receiver<Waiter>>,
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
        let (waiters_in, waiters) = mpsc::channel(1024);
        let log = Arc::new(StreamLog {
            router: router.clone(),
            jetstream: jetstream.clone(),
            subject_prefix: format!("{}.rows", settings.stream),
            partitions: settings.partitions,
            message_prefix: format!("{}-{:x}", settings.node_id, rand::random::<u64>()),
            next_message: AtomicU64::new(0),
            waiters: waiters_in,
        });
        Ok(Cluster {
            settings: settings.clone(),
            stream,
            log,
            waiters: Some(waiters),
        })
    }

    /// What `Router::with_log` takes: this node's writes go to the stream.
    pub fn log(&self) -> Arc<dyn RowLog> {
        self.log.clone()
    }

    /// Starts applying the stream to `router` from its first message and resolves once every
    /// message that was in the stream at the call is applied (the node is then caught up);
    /// answers the last stream sequence applied by then.
    pub async fn start_replica(&mut self, router: Router) -> Result<u64, ClusterError> {
        let waiters = self.waiters.take().expect("the replica is started once");
        replica::start(&self.settings, &mut self.stream, router, waiters).await
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
    subject_prefix: String,
    partitions: usize,
    /// Node id and a per-run nonce: with the counter, a message id no other write has.
    message_prefix: String,
    next_message: AtomicU64,
    waiters: mpsc::Sender<Waiter>,
}

impl RowLog for StreamLog {
    fn append(&self, rows: Vec<RowWrite>) -> BoxFuture<'static, Result<WriteOutcome, StoreError>> {
        let mut per_partition: BTreeMap<usize, Vec<RowWrite>> = BTreeMap::new();
        for row in rows {
            let partition = shard_of(row.view, &row.key, self.partitions);
            per_partition.entry(partition).or_default().push(row);
        }
        let messages: Vec<(String, String, Vec<u8>)> = per_partition
            .into_iter()
            .map(|(partition, rows)| {
                let n = self.next_message.fetch_add(1, Ordering::Relaxed);
                (
                    format!("{}.{partition}", self.subject_prefix),
                    format!("{}-{n}", self.message_prefix),
                    self.router.encode_record(&rows),
                )
            })
            .collect();
        let jetstream = self.jetstream.clone();
        let waiters = self.waiters.clone();
        async move {
            let unavailable =
                |what: &str, e: &dyn std::fmt::Display| StoreError::Log(format!("{what}: {e}"));
            let mut pending = Vec::with_capacity(messages.len());
            for (subject, message_id, record) in messages {
                // Registered before the message exists, so the replica knows it on arrival.
                let (applied, answer) = oneshot::channel();
                waiters
                    .send(Waiter {
                        message_id: message_id.clone(),
                        applied,
                    })
                    .await
                    .map_err(|e| unavailable("the replica is not running", &e))?;
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", message_id.as_str());
                let ack = jetstream
                    .publish_with_headers(subject, headers, record.into())
                    .await
                    .map_err(|e| unavailable("publish", &e))?;
                pending.push((ack, answer));
            }
            let mut total = WriteOutcome::default();
            for (ack, answer) in pending {
                ack.await.map_err(|e| unavailable("acknowledgement", &e))?;
                let outcome = answer
                    .await
                    .map_err(|e| unavailable("the replica stopped", &e))??;
                total.stored += outcome.stored;
                total.older_than_stored += outcome.older_than_stored;
            }
            Ok(total)
        }
        .boxed()
    }
}

//! Partitioned mode: the task that keeps this node's part of the ownership map. Every
//! [`HEARTBEAT`] it beats (its URL and the partitions it holds caught up), reads the live
//! nodes, computes the owners of every partition, and
//! - starts a replica of each partition it now owns: a durable consumer `<node>-p<partition>`
//!   replays the partition from the stream's start; only once it has caught up is the
//!   partition ready here (reads of it are local, the next beat says so). A catch-up that
//!   fails drops what it applied before the partition is replayed again from the start;
//! - gives up a partition it no longer owns once every one of its owners holds it caught up
//!   (so some node always serves it): stops the replica, deletes its consumer, drops its rows;
//! - publishes the [`Placement`] that writes (own waiters) and reads (where to forward) use.
//!
//! The task owns all of it: no other code starts or stops replicas.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{kv, stream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::forms::{Forms, ReadForms};
use super::ownership::{self, owners, Member, HEARTBEAT};
use super::replica::{self, Feed};
use super::{ClusterError, Placement, Waiter};
use crate::config::ClusterSettings;
use crate::persist::format::NodeRecordV1;
use crate::reported::Conditions;
use crate::store::key::shard_of;
use crate::store::Router;
use crate::time::now_micros;

/// How long a replica given up may take to stop (its in-flight writes' waiters) before it is
/// aborted.
const STOP_WITHIN: Duration = Duration::from_secs(5);

/// What the task needs.
pub(super) struct Node {
    pub settings: ClusterSettings,
    /// Owners per partition.
    pub owners: usize,
    pub url: String,
    pub stream: stream::Stream,
    pub bucket: kv::Store,
    pub forms: Forms,
    pub router: Router,
    pub placement: watch::Sender<Arc<Placement>>,
    /// Where its replicas list their stalls.
    pub stalls: Conditions,
}

/// This node's replica of one partition.
struct Held {
    waiters: mpsc::Sender<Waiter>,
    /// Set once it has caught up.
    replica: Option<JoinHandle<()>>,
}

type CaughtUp = (usize, Result<JoinHandle<()>, ClusterError>);

/// Starts the task; resolves once the partitions this node owns when it joins are caught up,
/// or fails with the first one holding rows this node cannot read.
pub(super) async fn start(node: Node) -> Result<(), ClusterError> {
    let (started_in, started) = oneshot::channel();
    actix_web::rt::spawn(run(node, started_in));
    started.await.unwrap_or_else(|_| {
        Err(ClusterError::Stream {
            stream: "ownership".into(),
            reason: "the ownership task stopped before this node caught up".into(),
        })
    })
}

async fn run(node: Node, started: oneshot::Sender<Result<(), ClusterError>>) {
    let mut started = Some(started);
    let mut held: BTreeMap<usize, Held> = BTreeMap::new();
    let (caught_up_in, mut caught_up) = mpsc::unbounded_channel::<CaughtUp>();
    let mut ticker = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            Some((partition, result)) = caught_up.recv() => match (result, held.get_mut(&partition)) {
                (Ok(replica), Some(held)) => {
                    tracing::info!(partition, "cluster: caught up with a partition; it is ready here");
                    held.replica = Some(replica);
                }
                (Ok(_), None) => {}
                (Err(error @ ClusterError::Unreadable { .. }), _) if started.is_some() => {
                    let _ = started.take().expect("not started").send(Err(error));
                    return;
                }
                (Err(error), _) => {
                    // The replica may have applied part of the partition before it failed, and
                    // the next catch-up replays it from the stream's start: its rows go first,
                    // or aggregations would count those messages twice. (A failed catch-up is
                    // rare, and a partition gained replays from the start anyway.)
                    tracing::warn!(%error, partition, "cluster: catching up a partition failed; dropping what it applied and starting over");
                    // Rows that could not be dropped keep it held, never ready: not replayed
                    // over them.
                    if drop_rows(&node, partition).await {
                        held.remove(&partition);
                    }
                }
            },
        }
        let ready: Vec<u32> = held
            .iter()
            .filter(|(_, held)| held.replica.is_some())
            .map(|(partition, _)| *partition as u32)
            .collect();
        let record = NodeRecordV1 {
            url: node.url.clone(),
            beat_micros: now_micros(),
            partitions: node.settings.partitions as u32,
            owners: node.owners as u32,
            ready,
        };
        if let Err(error) = ownership::beat(&node.bucket, &node.settings.node_id, &record).await {
            tracing::warn!(%error, "cluster: this node's heartbeat failed");
        }
        let members = match ownership::members(&node.bucket).await {
            Ok(members) => members,
            Err(error) => {
                tracing::warn!(%error, "cluster: cannot read the ownership map");
                continue;
            }
        };
        let now = now_micros();
        let mut live: Vec<Member> = members.into_iter().filter(|m| m.is_live(now)).collect();
        if !live.iter().any(|m| m.node_id == node.settings.node_id) {
            live.push(Member {
                node_id: node.settings.node_id.clone(),
                record,
            });
        }
        let live_ids: Vec<String> = live.iter().map(|m| m.node_id.clone()).collect();
        let mut placement = Placement::empty(node.settings.partitions);
        let mut given_up = Vec::new();
        for partition in 0..node.settings.partitions {
            let owned = owners(partition, &live_ids, node.owners);
            let mine = owned.contains(&node.settings.node_id.as_str());
            if mine && !held.contains_key(&partition) {
                tracing::info!(
                    partition,
                    "cluster: this node owns a partition; catching up"
                );
                let at_start = started.is_some();
                held.insert(
                    partition,
                    catch_up(&node, partition, at_start, caught_up_in.clone()),
                );
            }
            let handed_over = owned.iter().all(|owner| {
                live.iter()
                    .any(|m| m.node_id == *owner && m.is_ready(partition))
            });
            let is_ready = held.get(&partition).is_some_and(|h| h.replica.is_some());
            if !mine && is_ready && handed_over {
                given_up.extend(held.remove(&partition).map(|h| (partition, h)));
            }
            if let Some(held) = held.get(&partition) {
                placement.replicas[partition] = Some(held.waiters.clone());
                placement.ready[partition] = held.replica.is_some();
            }
            let mut holders: Vec<&Member> = live
                .iter()
                .filter(|m| m.node_id != node.settings.node_id && m.is_ready(partition))
                .collect();
            holders.sort_by_key(|m| !owned.contains(&m.node_id.as_str()));
            placement.holders[partition] = holders.iter().map(|m| m.node_id.clone()).collect();
        }
        let all_ready = held.values().all(|h| h.replica.is_some());
        node.placement.send_replace(Arc::new(placement));
        for (partition, held) in given_up {
            give_up(&node, partition, held).await;
        }
        if all_ready {
            if let Some(started) = started.take() {
                let _ = started.send(Ok(()));
            }
        }
    }
}

/// Starts this node's replica of `partition`; `caught_up` hears when it has caught up (or, at
/// the node's start, of rows it cannot read).
fn catch_up(
    node: &Node,
    partition: usize,
    at_start: bool,
    caught_up: mpsc::UnboundedSender<CaughtUp>,
) -> Held {
    let (waiters, waiting) = mpsc::channel(1024);
    let forms = ReadForms::new(node.forms.clone());
    let settings = node.settings.clone();
    let stream = node.stream.clone();
    let router = node.router.clone();
    let stalls = node.stalls.clone();
    actix_web::rt::spawn(async move {
        let subject = format!("{}.rows.{partition}", settings.stream);
        let caught_up_at = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => Ok(message.sequence),
            Err(error) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(error) => Err(ClusterError::Stream {
                stream: settings.stream.clone(),
                reason: error.to_string(),
            }),
        };
        let result = match caught_up_at {
            Ok(caught_up_at) => {
                let feed = Feed {
                    consumer: &partition_consumer(&settings.node_id, partition),
                    subjects: subject,
                    caught_up_at,
                    applied: 0,
                    holds: None,
                    forms,
                    refuse_start: at_start,
                    stalls,
                };
                replica::start(&stream, feed, router, waiting).await
            }
            Err(error) => Err(error),
        };
        let _ = caught_up.send((partition, result));
    });
    Held {
        waiters,
        replica: None,
    }
}

/// Stops this node's replica of `partition`, deletes its consumer and drops its rows.
async fn give_up(node: &Node, partition: usize, held: Held) {
    drop(held.waiters);
    if let Some(mut replica) = held.replica {
        // It stops once the writes in flight let go of their senders.
        if tokio::time::timeout(STOP_WITHIN, &mut replica)
            .await
            .is_err()
        {
            replica.abort();
        }
    }
    let consumer = partition_consumer(&node.settings.node_id, partition);
    if let Err(error) = node.stream.delete_consumer(&consumer).await {
        tracing::warn!(%error, consumer, "cluster: deleting a given-up partition's consumer failed");
    }
    if drop_rows(node, partition).await {
        tracing::info!(
            partition,
            "cluster: gave a partition up and dropped its rows"
        );
    }
}

/// Drops this node's rows (and tiles) of `partition`; false, logged, if the shards could not
/// (a shard gone).
async fn drop_rows(node: &Node, partition: usize) -> bool {
    let partitions = node.settings.partitions;
    let dropped = Arc::new(move |view, key: &[u8]| shard_of(view, key, partitions) == partition);
    match node.router.drop_keys(dropped).await {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(%error, partition, "cluster: dropping a partition's rows failed");
            false
        }
    }
}

/// The durable consumer of node `node_id`'s replica of `partition`.
pub(super) fn partition_consumer(node_id: &str, partition: usize) -> String {
    format!("{node_id}-p{partition}")
}

//! What `quiver cluster status` shows, asked of JetStream alone (no node is contacted): the
//! stream and the NATS servers holding it, the messages of each partition, each durable
//! consumer (a node's, or in partitioned mode a node's replica of a partition): the last
//! sequence it applied and how far behind the stream it is; and the nodes' heartbeats and each
//! partition's owners, as every node computes them.

use async_nats::jetstream;
use futures_util::{StreamExt, TryStreamExt};

use super::ownership::{members, owners, Member};
use super::partitioned::partition_consumer;
use super::{connect, ClusterError};
use crate::time::{now_micros, Micros};

/// The cluster as JetStream sees it.
#[derive(Debug)]
pub struct ClusterStatus {
    pub stream: String,
    pub messages: u64,
    pub last_sequence: u64,
    pub leader: Option<String>,
    /// The stream's other servers (its replicas besides the leader).
    pub followers: Vec<Follower>,
    /// Each partition's subject and its messages, by subject.
    pub partitions: Vec<(String, usize)>,
    pub nodes: Vec<NodeStatus>,
    /// Every node's last heartbeat, and when they were read.
    pub members: Vec<Member>,
    pub read_at: Micros,
}

impl ClusterStatus {
    /// Per partition (as many as the live nodes are configured with), its owners among the
    /// live nodes (all of them in replicated mode): whether each holds it caught up and, in
    /// partitioned mode, how many of its messages the owner's replica has yet to apply.
    pub fn owners(&self) -> Vec<Vec<Owner>> {
        let live: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| m.is_live(self.read_at))
            .collect();
        let Some(count) = live.iter().map(|m| m.record.owners as usize).max() else {
            return Vec::new();
        };
        // Replicated mode (owners 0): every node owns every partition.
        let count = if count == 0 { live.len() } else { count };
        let partitions = live.iter().map(|m| m.record.partitions).max().unwrap_or(0);
        let ids: Vec<String> = live.iter().map(|m| m.node_id.clone()).collect();
        (0..partitions as usize)
            .map(|partition| {
                owners(partition, &ids, count)
                    .into_iter()
                    .map(|owner| {
                        let consumer = partition_consumer(owner, partition);
                        Owner {
                            node_id: owner.to_string(),
                            ready: live
                                .iter()
                                .any(|m| m.node_id == owner && m.is_ready(partition)),
                            behind: self
                                .nodes
                                .iter()
                                .find(|node| node.node_id == consumer)
                                .map(|node| node.behind),
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

/// A partition's owner, as `quiver cluster status` shows it.
#[derive(Debug)]
pub struct Owner {
    pub node_id: String,
    pub ready: bool,
    /// Partitioned mode: the messages of the partition its replica has yet to apply.
    pub behind: Option<u64>,
}

#[derive(Debug)]
pub struct Follower {
    pub name: String,
    pub current: bool,
    pub offline: bool,
    /// Messages it is behind the leader, when the leader knows.
    pub lag: Option<u64>,
}

/// A node, as its durable consumer tells.
#[derive(Debug)]
pub struct NodeStatus {
    pub node_id: String,
    /// The stream sequence up to which the node acknowledged (applied) every message.
    pub applied: u64,
    /// Messages of the stream it has not acknowledged yet.
    pub behind: u64,
}

/// Asks the NATS servers at `nats_urls` about the stream `stream`.
pub async fn status(nats_urls: &[String], stream: &str) -> Result<ClusterStatus, ClusterError> {
    let jetstream = connect(nats_urls).await?;
    let stream_error = |reason: String| ClusterError::Stream {
        stream: stream.to_string(),
        reason,
    };
    let mut handle = jetstream
        .get_stream(stream)
        .await
        .map_err(|e| stream_error(e.to_string()))?;
    let info = handle
        .info()
        .await
        .map_err(|e| stream_error(e.to_string()))?
        .clone();
    let mut partitions: Vec<(String, usize)> = handle
        .info_with_subjects(format!("{stream}.rows.*"))
        .await
        .map_err(|e| stream_error(e.to_string()))?
        .try_collect()
        .await
        .map_err(|e| stream_error(e.to_string()))?;
    partitions.sort_by_key(|(subject, _)| partition_number(subject));
    let mut nodes: Vec<NodeStatus> = handle
        .consumers()
        .map(|consumer| {
            consumer.map(|consumer: jetstream::consumer::Info| NodeStatus {
                node_id: consumer.name,
                applied: consumer.ack_floor.stream_sequence,
                behind: consumer.num_pending + consumer.num_ack_pending as u64,
            })
        })
        .try_collect()
        .await
        .map_err(|e| stream_error(e.to_string()))?;
    nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    // No node has started yet: no ownership bucket.
    let members = match jetstream.get_key_value(format!("{stream}_nodes")).await {
        Ok(bucket) => members(&bucket).await.map_err(stream_error)?,
        Err(_) => Vec::new(),
    };
    let cluster = info.cluster.unwrap_or_default();
    Ok(ClusterStatus {
        stream: stream.to_string(),
        messages: info.state.messages,
        last_sequence: info.state.last_sequence,
        leader: cluster.leader,
        followers: cluster
            .replicas
            .into_iter()
            .map(|peer| Follower {
                name: peer.name,
                current: peer.current,
                offline: peer.offline,
                lag: peer.lag,
            })
            .collect(),
        partitions,
        nodes,
        members,
        read_at: now_micros(),
    })
}

/// `QUIVER.rows.12` -> 12, so that partitions list in number order.
fn partition_number(subject: &str) -> u64 {
    subject
        .rsplit('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

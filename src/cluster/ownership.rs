//! The ownership map, in a JetStream key-value bucket (`<stream>_nodes`): each node puts its
//! heartbeat under its node id (its HTTP URL, the partitions it holds caught up) every
//! [`HEARTBEAT`], in both modes; a node whose last beat is older than [`NODE_TIMEOUT`] is
//! gone. In replicated mode every node owns every partition; in partitioned mode, who owns a
//! partition is not stored: every node computes it from the live node list by
//! rendezvous hashing ([`owners`]), so no leader is elected and any two nodes that see the same
//! live nodes agree.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::TryStreamExt;

use super::{key_value_bucket, ClusterError};
use crate::persist::format::{decode, encode, NodeRecordV1};
use crate::time::{now_micros, Micros};

/// How often a node beats, and how old a beat may be before the node counts as gone.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(1);
pub(super) const NODE_TIMEOUT: Duration = Duration::from_secs(5);
/// Beats older than this are deleted by JetStream (status still shows a gone node until then).
const BEAT_KEPT_FOR: Duration = Duration::from_secs(300);

/// A node as its last heartbeat tells.
#[derive(Debug, Clone)]
pub struct Member {
    pub node_id: String,
    pub record: NodeRecordV1,
}

impl Member {
    /// How long ago the node beat last, at `now`.
    pub fn beat_age(&self, now: Micros) -> Duration {
        Duration::from_micros((now - self.record.beat_micros).max(0) as u64)
    }

    pub fn is_live(&self, now: Micros) -> bool {
        self.beat_age(now) <= NODE_TIMEOUT
    }

    pub fn is_ready(&self, partition: usize) -> bool {
        self.record.ready.contains(&(partition as u32))
    }
}

/// The bucket of the cluster whose stream is `stream`, created if no node has yet.
pub(super) async fn bucket(
    jetstream: &jetstream::Context,
    stream: &str,
    replicas: usize,
) -> Result<kv::Store, ClusterError> {
    key_value_bucket(
        jetstream,
        format!("{stream}_nodes"),
        replicas,
        BEAT_KEPT_FOR,
    )
    .await
}

/// Puts this node's heartbeat (failing after [`HEARTBEAT`]: a late beat is worth less than the
/// next one).
pub(super) async fn beat(
    bucket: &kv::Store,
    node_id: &str,
    record: &NodeRecordV1,
) -> Result<(), String> {
    let put = bucket.put(node_id, encode(record).into());
    match tokio::time::timeout(HEARTBEAT, put).await {
        Ok(put) => put.map(|_| ()).map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {HEARTBEAT:?}")),
    }
}

/// Replicated mode: beats every [`HEARTBEAT`] for as long as the process runs (every
/// partition ready, `owners` 0: every node owns every partition), so that `quiver cluster
/// status` lists the nodes in both modes.
pub(super) fn beat_replicated(bucket: kv::Store, node_id: String, url: String, partitions: usize) {
    actix_web::rt::spawn(async move {
        let mut ticker = tokio::time::interval(HEARTBEAT);
        loop {
            ticker.tick().await;
            let record = NodeRecordV1 {
                url: url.clone(),
                beat_micros: now_micros(),
                partitions: partitions as u32,
                owners: 0,
                ready: (0..partitions as u32).collect(),
            };
            if let Err(error) = beat(&bucket, &node_id, &record).await {
                tracing::warn!(%error, "cluster: this node's heartbeat failed");
            }
        }
    });
}

/// Every node's last heartbeat (live or not), by node id; failing after [`NODE_TIMEOUT`] (the
/// bucket's listing is a consumer JetStream creates per call, slow on a loaded cluster).
pub async fn members(bucket: &kv::Store) -> Result<Vec<Member>, String> {
    match tokio::time::timeout(NODE_TIMEOUT, read_members(bucket)).await {
        Ok(members) => members,
        Err(_) => Err(format!("no answer within {NODE_TIMEOUT:?}")),
    }
}

async fn read_members(bucket: &kv::Store) -> Result<Vec<Member>, String> {
    let keys: Vec<String> = match bucket.keys().await {
        Ok(keys) => keys.try_collect().await.map_err(|e| e.to_string())?,
        Err(error) => return Err(error.to_string()),
    };
    let mut members = Vec::with_capacity(keys.len());
    for node_id in keys {
        let Some(value) = bucket.get(&node_id).await.map_err(|e| e.to_string())? else {
            continue;
        };
        match decode::<NodeRecordV1>(&value) {
            Ok(record) => members.push(Member { node_id, record }),
            Err(error) => tracing::warn!(node_id, %error, "an unreadable heartbeat is skipped"),
        }
    }
    members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    Ok(members)
}

/// The `count` owners of `partition` among `nodes` (node ids), best first: rendezvous hashing,
/// each node scored by xxh3 of its id seeded with the partition. A node joining or leaving
/// moves only the partitions it wins or held.
pub fn owners(partition: usize, nodes: &[String], count: usize) -> Vec<&str> {
    let mut scored: Vec<(u64, &str)> = nodes
        .iter()
        .map(|node| {
            let score = xxhash_rust::xxh3::xxh3_64_with_seed(node.as_bytes(), partition as u64);
            (score, node.as_str())
        })
        .collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    scored
        .into_iter()
        .take(count)
        .map(|(_, node)| node)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn every_partition_gets_distinct_owners_whatever_the_node_order() {
        let forward = nodes(&["n1", "n2", "n3"]);
        let backward = nodes(&["n3", "n2", "n1"]);
        for partition in 0..16 {
            let owners_forward = owners(partition, &forward, 2);
            assert_eq!(owners_forward, owners(partition, &backward, 2));
            assert_eq!(owners_forward.len(), 2);
            assert_ne!(owners_forward[0], owners_forward[1]);
        }
        assert_eq!(
            owners(0, &forward, 5).len(),
            3,
            "never more owners than nodes"
        );
    }

    #[test]
    fn a_leaving_node_moves_only_its_own_partitions() {
        let before = nodes(&["n1", "n2", "n3", "n4"]);
        let after = nodes(&["n1", "n2", "n4"]);
        for partition in 0..64 {
            let kept: Vec<&str> = owners(partition, &before, 2)
                .into_iter()
                .filter(|node| *node != "n3")
                .collect();
            let now = owners(partition, &after, 2);
            assert!(kept.iter().all(|node| now.contains(node)), "{partition}");
        }
    }

    #[test]
    fn partitions_spread_over_the_nodes() {
        let all = nodes(&["n1", "n2", "n3"]);
        let mut held = [0; 3];
        for partition in 0..300 {
            for owner in owners(partition, &all, 1) {
                held[all.iter().position(|n| n == owner).unwrap()] += 1;
            }
        }
        assert!(held.iter().all(|n| *n > 60), "{held:?}");
    }
}

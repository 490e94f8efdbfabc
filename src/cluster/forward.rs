//! Forwarded reads (partitioned mode) over NATS request-reply: every node answers lookups on
//! `<stream>.read.<node id>` from the partitions it holds caught up, and [`Forwarder`] (the
//! store's [`RemoteRows`]) sends the lookups of partitions held elsewhere, one request per node
//! in parallel, each to the first holder of its partition (owners first); a node that does
//! not answer (down: NATS says there are no responders) or no longer holds a partition is
//! skipped for the next holder, all within the request's deadline. NATS carries the requests,
//! so they are as open as the cluster's NATS servers (no route on Quiver's HTTP listener).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{join_all, BoxFuture, FutureExt};
use futures_util::StreamExt;
use tokio::sync::watch;

use super::{ClusterError, Placement};
use crate::config::ClusterSettings;
use crate::registry::ViewId;
use crate::store::key::{shard_of, shard_of_hash};
use crate::store::{
    decode_forwarded_rows, Lookup, ReadContext, RemoteRows, Router, StoreError, StoredRow,
};

/// A forwarded read's deadline when its request has none.
const FORWARD_WITHIN: Duration = Duration::from_secs(5);

/// The subject node `node_id` answers forwarded reads on.
fn read_subject(stream: &str, node_id: &str) -> String {
    format!("{stream}.read.{node_id}")
}

/// Starts answering the reads other nodes forward to this one.
pub(super) async fn answer_forwarded_reads(
    settings: &ClusterSettings,
    client: async_nats::Client,
    router: Router,
    placement: watch::Receiver<Arc<Placement>>,
) -> Result<(), ClusterError> {
    let subject = read_subject(&settings.stream, &settings.node_id);
    let mut requests =
        client
            .subscribe(subject.clone())
            .await
            .map_err(|e| ClusterError::Connect {
                urls: settings.nats_urls.join(","),
                reason: format!("subscribing to {subject}: {e}"),
            })?;
    let partitions = settings.partitions;
    actix_web::rt::spawn(async move {
        while let Some(request) = requests.next().await {
            let Some(reply) = request.reply else { continue };
            // A partition is given up by publishing a placement without it, then dropping its
            // rows: a read that began under the earlier placement is answered again under the
            // new one, so it never reports a key of a partition dropped meanwhile as missing.
            let answered = loop {
                let held = Arc::clone(&placement.borrow());
                let holds = |view: ViewId, key: &[u8]| held.ready[shard_of(view, key, partitions)];
                let answered = router.answer_forwarded(&request.payload, holds);
                if Arc::ptr_eq(&held, &placement.borrow()) {
                    break answered;
                }
            };
            match answered {
                Ok(answer) => {
                    if let Err(error) = client.publish(reply, answer.into()).await {
                        tracing::warn!(%error, "cluster: answering a forwarded read failed");
                    }
                }
                Err(error) => tracing::warn!(%error, "cluster: a forwarded read is refused"),
            }
        }
    });
    Ok(())
}

/// Reads the rows of partitions this node does not hold from nodes that do.
pub(super) struct Forwarder {
    client: async_nats::Client,
    stream: String,
    partitions: usize,
    /// Only to encode lookups (views by name).
    router: Router,
    placement: watch::Receiver<Arc<Placement>>,
}

impl Forwarder {
    pub(super) fn new(
        settings: &ClusterSettings,
        client: async_nats::Client,
        router: Router,
        placement: watch::Receiver<Arc<Placement>>,
    ) -> Forwarder {
        Forwarder {
            client,
            stream: settings.stream.clone(),
            partitions: settings.partitions,
            router,
            placement,
        }
    }
}

impl RemoteRows for Forwarder {
    fn holds(&self, view: ViewId, key: &[u8]) -> bool {
        self.placement.borrow().ready[shard_of(view, key, self.partitions)]
    }

    fn read(
        &self,
        lookups: Vec<Lookup>,
        context: ReadContext,
        deadline: Option<Instant>,
    ) -> BoxFuture<'static, Result<Vec<Option<StoredRow>>, StoreError>> {
        let placement = Arc::clone(&self.placement.borrow());
        let client = self.client.clone();
        let router = self.router.clone();
        let stream = self.stream.clone();
        let partition_of: Vec<usize> = lookups
            .iter()
            .map(|lookup| shard_of_hash(lookup.hash(), self.partitions))
            .collect();
        // The request's own budget running out is its latency budget exceeded; this node's
        // default one, that no holder answered (503).
        let late = match deadline {
            Some(_) => StoreError::RemoteDeadline,
            None => StoreError::Remote("no answer within the forwarding deadline".into()),
        };
        let deadline = tokio::time::Instant::from_std(
            deadline.unwrap_or_else(|| Instant::now() + FORWARD_WITHIN),
        );
        async move {
            let mut rows: Vec<Option<StoredRow>> = vec![None; lookups.len()];
            let mut pending: Vec<usize> = (0..lookups.len()).collect();
            let mut skipped: HashSet<String> = HashSet::new();
            while !pending.is_empty() {
                let mut per_node: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
                for i in pending {
                    let partition = partition_of[i];
                    let holder = placement.holders[partition]
                        .iter()
                        .find(|node| !skipped.contains(*node))
                        .ok_or_else(|| {
                            StoreError::Remote(format!("no live node holds partition {partition}"))
                        })?;
                    per_node.entry(holder).or_default().push(i);
                }
                let asked = join_all(per_node.into_iter().map(|(node, positions)| {
                    let asked: Vec<Lookup> =
                        positions.iter().map(|&i| lookups[i].clone()).collect();
                    let request = router.encode_forwarded(&asked, context);
                    let subject = read_subject(&stream, node);
                    let client = client.clone();
                    async move {
                        let answer = tokio::time::timeout_at(
                            deadline,
                            client.request(subject, request.into()),
                        )
                        .await;
                        (node, positions, answer)
                    }
                }))
                .await;
                pending = Vec::new();
                for (node, positions, answer) in asked {
                    let answered = match answer {
                        Err(_) => return Err(late),
                        Ok(Err(error)) => Err(error.to_string()),
                        Ok(Ok(message)) => decode_forwarded_rows(&message.payload)
                            .map_err(|e| e.to_string())
                            .and_then(|rows| rows.ok_or_else(|| "not held there".to_string())),
                    };
                    match answered {
                        Ok(answered) => {
                            for (row, i) in answered.into_iter().zip(positions) {
                                rows[i] = row;
                            }
                        }
                        Err(reason) => {
                            tracing::debug!(node, reason, "cluster: a holder skipped");
                            skipped.insert(node.to_string());
                            pending.extend(positions);
                        }
                    }
                }
            }
            Ok(rows)
        }
        .boxed()
    }
}

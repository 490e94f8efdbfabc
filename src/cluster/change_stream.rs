//! The streams of the journaled actors: `<stream>_DIRECTORY` (subject `<stream>.directory`,
//! the SCIM directory's changes) and `<stream>_VAULT` (subject `<stream>.vault`, the vault's).
//! A message is one request's journal record, in its versioned `persist::format` type (vault
//! values inside stay sealed with the master key), published with a `Nats-Msg-Id` by the node
//! that took the request. Every node, the writer too, applies every record in stream order
//! through the actor's `persist::logged::LogApplier`, which answers the writer's waiting
//! request; like the rows' replica, a (re)started node replays its streams from the start,
//! and a consumer that ends once caught up is reported and opened again after the last record
//! applied (`replica::Messages`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_nats::jetstream::{self, stream};
use futures_util::future::{BoxFuture, FutureExt};
use tokio::sync::watch;

use super::replica::{
    consumer_error, message_id, message_id_headers, replay_after, Messages, Next,
};
use super::{create_stream, Cluster, ClusterError};
use crate::config::ClusterSettings;
use crate::persist::logged::{ChangeLog, LogApplier};
use crate::reported::Conditions;

/// One actor's stream, before its records are applied.
pub struct ChangeStream {
    settings: ClusterSettings,
    stream: stream::Stream,
    log: Arc<StreamChangeLog>,
    /// Where the node lists its consumers' stalls (the replicas' list).
    stalls: Conditions,
}

/// Publishes an actor's records to its stream.
struct StreamChangeLog {
    jetstream: jetstream::Context,
    subject: String,
    /// Node id and a per-run nonce: with the counter, a message id no other record has.
    message_prefix: String,
    next_message: AtomicU64,
}

impl Cluster {
    /// The stream of `topic` (`directory`, `vault`), created if no node has yet.
    pub async fn change_stream(&self, topic: &str) -> Result<ChangeStream, ClusterError> {
        let settings = &self.settings;
        let subject = format!("{}.{topic}", settings.stream);
        let stream = create_stream(
            &self.log.jetstream,
            settings,
            format!("{}_{}", settings.stream, topic.to_uppercase()),
            subject.clone(),
        )
        .await?;
        Ok(ChangeStream {
            settings: settings.clone(),
            stream,
            stalls: self.replica_stalls(),
            log: Arc::new(StreamChangeLog {
                jetstream: self.log.jetstream.clone(),
                subject,
                message_prefix: format!("{}-{topic}-{:x}", settings.node_id, rand::random::<u64>()),
                next_message: AtomicU64::new(0),
            }),
        })
    }
}

impl ChangeStream {
    /// Where the actor's requests publish their records.
    pub fn log(&self) -> Arc<dyn ChangeLog> {
        self.log.clone()
    }

    /// Applies the stream through `applier` from its first record, and resolves once what the
    /// stream held at the call is applied, with the last sequence applied by then.
    pub async fn start(mut self, applier: Arc<dyn LogApplier>) -> Result<u64, ClusterError> {
        let consumer = self.settings.node_id.clone();
        let messages = replay_after(&self.stream, &consumer, self.log.subject.clone(), 0).await?;
        let last = match self.stream.info().await {
            Ok(info) => info.state.last_sequence,
            Err(e) => return Err(consumer_error(&self.stream, &consumer, e.to_string())),
        };
        let messages = Messages::new(
            &self.stream,
            &consumer,
            self.log.subject.clone(),
            messages,
            last,
            &self.stalls,
        );
        let (applied_in, mut applied) = watch::channel(0);
        actix_web::rt::spawn(apply(messages, applier, applied_in));
        applied
            .wait_for(|applied| *applied >= last)
            .await
            .map_err(|_| consumer_error(&self.stream, &consumer, "it stopped while catching up"))?;
        Ok(last)
    }
}

impl ChangeLog for StreamChangeLog {
    fn next_id(&self) -> String {
        let n = self.next_message.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.message_prefix)
    }

    fn publish(&self, id: String, record: Vec<u8>) -> BoxFuture<'static, Result<(), String>> {
        let jetstream = self.jetstream.clone();
        let subject = self.subject.clone();
        async move {
            let headers = message_id_headers(&id);
            let ack = jetstream
                .publish_with_headers(subject, headers, record.into())
                .await
                .map_err(|e| format!("publish: {e}"))?;
            ack.await.map_err(|e| format!("acknowledgement: {e}"))?;
            Ok(())
        }
        .boxed()
    }
}

/// Applies each record once, in stream order (JetStream redelivers a message whose ack it did
/// not get in time: applying it twice would refuse it the second time, on this node only).
async fn apply(mut messages: Messages, applier: Arc<dyn LogApplier>, applied: watch::Sender<u64>) {
    loop {
        let after = *applied.borrow();
        let message = match messages.next(after).await {
            Next::Message(message) => *message,
            Next::Reopen => {
                messages.reopen(after).await;
                continue;
            }
            Next::Ended => {
                tracing::error!("cluster change stream: the consumer ended while catching up");
                return;
            }
        };
        let Ok(sequence) = message.info().map(|info| info.stream_sequence) else {
            tracing::warn!("cluster change stream: a record without JetStream metadata is skipped");
            continue;
        };
        if sequence > after {
            applier
                .apply(message_id(&message), message.payload.to_vec())
                .await;
            applied.send_replace(sequence);
        }
        if let Err(error) = message.ack().await {
            tracing::warn!(%error, sequence, "cluster change stream: acknowledging a record failed");
        }
    }
}

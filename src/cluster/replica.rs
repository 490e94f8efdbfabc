//! The replica: one task per node that owns the node's durable consumer and the waiters of
//! this node's own writes, and applies every message of the stream to the shards, one at a
//! time in stream order (so every node applies the same rows in the same order).

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use super::{ClusterError, Waiter};
use crate::config::ClusterSettings;
use crate::store::{Router, StoreError, WriteOutcome};

/// How often the server says a pull is still alive, and how long a pull lasts.
const PULL_HEARTBEAT: Duration = Duration::from_secs(1);
const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// Recreates the node's durable consumer from the stream's first message (this slice keeps
/// no rows across restarts, so a node replays everything), starts applying, and resolves
/// once it has applied what the stream held at the call, with the last sequence applied.
pub(super) async fn start(
    settings: &ClusterSettings,
    stream: &mut stream::Stream,
    router: Router,
    waiters: mpsc::Receiver<Waiter>,
) -> Result<u64, ClusterError> {
    let (messages, last) =
        replay_from_start(settings, stream, format!("{}.rows.*", settings.stream)).await?;
    let (applied_in, mut applied) = watch::channel(0);
    actix_web::rt::spawn(apply(messages, router, waiters, applied_in));
    applied
        .wait_for(|applied| *applied >= last)
        .await
        .map_err(|_| {
            consumer_error(
                settings,
                &settings.stream,
                "the replica stopped while catching up",
            )
        })?;
    Ok(last)
}

fn consumer_error(
    settings: &ClusterSettings,
    stream: &str,
    reason: impl Into<String>,
) -> ClusterError {
    ClusterError::Consumer {
        stream: stream.to_string(),
        consumer: settings.node_id.clone(),
        reason: reason.into(),
    }
}

/// The node's durable consumer of `stream` (the messages on `filter_subject`), recreated to
/// deliver from the stream's first message, and the stream's last sequence at the call.
pub(super) async fn replay_from_start(
    settings: &ClusterSettings,
    stream: &mut stream::Stream,
    filter_subject: String,
) -> Result<(consumer::pull::Stream, u64), ClusterError> {
    let name = stream.cached_info().config.name.clone();
    // A consumer left by this node's previous run resumes after what that run applied:
    // its state is gone with the process, so start over.
    if stream.consumer_info(&settings.node_id).await.is_ok() {
        stream
            .delete_consumer(&settings.node_id)
            .await
            .map_err(|e| consumer_error(settings, &name, e.to_string()))?;
    }
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(settings.node_id.clone()),
            filter_subject,
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .map_err(|e| consumer_error(settings, &name, e.to_string()))?;
    let last = stream
        .info()
        .await
        .map_err(|e| ClusterError::Stream {
            stream: name.clone(),
            reason: e.to_string(),
        })?
        .state
        .last_sequence;
    // A pull outstanding at a NATS server that dies is noticed only by missed heartbeats or
    // its expiry; the defaults (15 s, 30 s) would hold this node's own writes that long.
    let messages = consumer
        .stream()
        .heartbeat(PULL_HEARTBEAT)
        .expires(PULL_EXPIRES)
        .messages()
        .await
        .map_err(|e| consumer_error(settings, &name, e.to_string()))?;
    Ok((messages, last))
}

/// The replica's loop: this node's waiters are taken in before any message (a write registers
/// its waiter before publishing), then each message is applied and its waiter, if any, answered.
async fn apply(
    mut messages: consumer::pull::Stream,
    router: Router,
    mut waiters: mpsc::Receiver<Waiter>,
    applied: watch::Sender<u64>,
) {
    let mut waiting: HashMap<String, oneshot::Sender<Result<WriteOutcome, StoreError>>> =
        HashMap::new();
    loop {
        tokio::select! {
            biased;
            Some(waiter) = waiters.recv() => {
                // A write whose publish failed leaves its waiter behind; drop those now and then.
                if waiting.len() >= 1024 {
                    waiting.retain(|_, answer| !answer.is_closed());
                }
                waiting.insert(waiter.message_id, waiter.applied);
            }
            message = messages.next() => {
                let message = match message {
                    Some(Ok(message)) => message,
                    Some(Err(error)) => {
                        tracing::warn!(%error, "cluster stream: cannot read the next message");
                        continue;
                    }
                    None => {
                        tracing::error!("cluster stream: the consumer ended; this node no longer applies writes");
                        return;
                    }
                };
                let Ok(sequence) = message.info().map(|info| info.stream_sequence) else {
                    tracing::warn!("cluster stream: a message without JetStream metadata is skipped");
                    continue;
                };
                // JetStream redelivers a message whose ack it did not get in time; applying it
                // again would count its aggregations twice.
                if sequence <= *applied.borrow() {
                    let _ = message.ack().await;
                    continue;
                }
                let outcome = router.apply_record(&message.payload).await;
                if let Err(error) = &outcome {
                    tracing::error!(%error, sequence, "cluster stream: a record could not be applied");
                }
                let message_id = message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get("Nats-Msg-Id"))
                    .map(|id| id.as_str().to_string());
                if let Some(answer) = message_id.and_then(|id| waiting.remove(&id)) {
                    let _ = answer.send(outcome);
                }
                if let Err(error) = message.ack().await {
                    tracing::warn!(%error, sequence, "cluster stream: acknowledging a message failed");
                }
                applied.send_replace(sequence);
            }
        }
    }
}

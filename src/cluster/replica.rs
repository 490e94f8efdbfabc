//! A replica: a task that owns a durable consumer (the whole stream in replicated mode, one
//! partition's subject in partitioned mode) and the waiters of this node's own writes to it,
//! and applies its messages to the shards, one at a time in stream order (so every node
//! holding a partition applies the same rows in the same order), each read in the forms it
//! names (`forms`). A replicated-mode replica can be held still between two messages for a
//! snapshot's cut ([`Hold`]). A message it cannot apply for now stalls it there, reported
//! ([`stalled_replicas`]), never skipped.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use actix_web::rt::task::JoinHandle;
use async_nats::jetstream::{consumer, stream};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::forms::ReadForms;
use super::{ClusterError, Waiter};
use crate::store::{Router, StoreError, WriteOutcome};
use crate::test_hooks::HookFile;

/// How often the server says a pull is still alive, and how long a pull lasts.
const PULL_HEARTBEAT: Duration = Duration::from_secs(1);
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// How long a replica stalled at a message it cannot read waits before it reads it again.
const STALLED_RETRY: Duration = Duration::from_secs(2);

/// What a replica applies: the durable consumer's name and the subjects it reads.
pub(super) struct Feed<'a> {
    pub consumer: &'a str,
    pub subjects: String,
    /// The stream sequence the replica is caught up at (the last message of its subjects when
    /// it starts).
    pub caught_up_at: u64,
    /// The last stream sequence whose rows the store already holds (from a snapshot; 0: none):
    /// the replica starts after it.
    pub applied: u64,
    /// Where a snapshot asks to hold the replica still (replicated mode with a data directory).
    pub holds: Option<mpsc::Receiver<Hold>>,
    /// The forms its messages' rows were written in.
    pub forms: ReadForms,
    /// A node's start: a message it cannot read (`unreadable`) met while catching up stops the
    /// replica and fails the start, naming the view, rather than serve without its rows. Else
    /// (a partition gained while running) it stalls the replica, as once caught up.
    pub refuse_start: bool,
}

/// A snapshot's request to hold the replica between two messages: it answers the last
/// sequence it applied on `at`, then applies nothing until `release` resolves (sent or
/// dropped). The replica applies a message whole (`Router::apply_record` resolves once the
/// writer has applied its rows) before it looks at a hold, so the store then holds exactly the
/// rows of the messages up to that sequence.
pub(super) struct Hold {
    pub at: oneshot::Sender<u64>,
    pub release: oneshot::Receiver<()>,
}

/// Recreates the durable consumer of `feed` to deliver from after `feed.applied` (from the
/// stream's first message when 0: a node keeps no rows across partition moves, nor across
/// restarts without a snapshot), starts applying, and resolves once it has applied up to
/// `feed.caught_up_at` (or fails with the first message it cannot read, when
/// `feed.refuse_start`). The replica stops once every sender of `waiters` is gone; the handle
/// resolves then.
pub(super) async fn start(
    stream: &stream::Stream,
    feed: Feed<'_>,
    router: Router,
    waiters: mpsc::Receiver<Waiter>,
) -> Result<JoinHandle<()>, ClusterError> {
    let messages = replay_after(stream, feed.consumer, feed.subjects.clone(), feed.applied).await?;
    let (applied_in, mut applied) = watch::channel(feed.applied);
    let (refused_in, refused) = oneshot::channel();
    let replica = actix_web::rt::spawn(apply(
        Replica {
            messages: Some(messages),
            source: Source {
                stream: stream.clone(),
                consumer: feed.consumer.to_string(),
                subjects: feed.subjects,
            },
            router,
            waiters,
            holds: feed.holds,
            forms: feed.forms,
            caught_up_at: feed.caught_up_at,
            refused: feed.refuse_start.then_some(refused_in),
            end_catch_up: HookFile::from_env("QUIVER_TEST_END_CATCH_UP"),
        },
        applied_in,
    ));
    if applied
        .wait_for(|applied| *applied >= feed.caught_up_at)
        .await
        .is_err()
    {
        // It sent its refusal, if any, before it stopped.
        return Err(match refused.await {
            Ok(error) => ClusterError::Unreadable {
                stream: stream.cached_info().config.name.clone(),
                error,
            },
            Err(_) => consumer_error(
                stream,
                feed.consumer,
                "the replica stopped while catching up",
            ),
        });
    }
    Ok(replica)
}

pub(super) fn consumer_error(
    stream: &stream::Stream,
    consumer: &str,
    reason: impl Into<String>,
) -> ClusterError {
    ClusterError::Consumer {
        stream: stream.cached_info().config.name.clone(),
        consumer: consumer.to_string(),
        reason: reason.into(),
    }
}

/// The durable consumer `consumer` of `stream` (the messages on `filter_subject`), recreated
/// to deliver from the message after sequence `after` (the stream's first message when 0).
pub(super) async fn replay_after(
    stream: &stream::Stream,
    consumer: &str,
    filter_subject: String,
    after: u64,
) -> Result<consumer::pull::Stream, ClusterError> {
    // A consumer left by a previous run resumes after what that run applied, which is not
    // what this one holds (its memory is gone with the process, or the partition's move;
    // a snapshot covers up to `after`): start over from there.
    if stream.consumer_info(consumer).await.is_ok() {
        stream
            .delete_consumer(consumer)
            .await
            .map_err(|e| consumer_error(stream, consumer, e.to_string()))?;
    }
    let pull: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(consumer.to_string()),
            filter_subject,
            deliver_policy: match after {
                0 => consumer::DeliverPolicy::All,
                after => consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
            },
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .map_err(|e| consumer_error(stream, consumer, e.to_string()))?;
    // A pull outstanding at a NATS server that dies is noticed only by missed heartbeats or
    // its expiry; the defaults (15 s, 30 s) would hold this node's own writes that long.
    pull.stream()
        .heartbeat(PULL_HEARTBEAT)
        .expires(PULL_EXPIRES)
        .messages()
        .await
        .map_err(|e| consumer_error(stream, consumer, e.to_string()))
}

/// Where a replica's messages come from: its durable consumer, opened again (after the last
/// message applied) when the replica has stalled.
struct Source {
    stream: stream::Stream,
    consumer: String,
    subjects: String,
}

/// What a replica's loop owns.
struct Replica {
    /// `None` while stalled at a message it cannot read: it consumes nothing then.
    messages: Option<consumer::pull::Stream>,
    source: Source,
    router: Router,
    waiters: mpsc::Receiver<Waiter>,
    holds: Option<mpsc::Receiver<Hold>>,
    forms: ReadForms,
    /// The sequence it has caught up at, once it applied it.
    caught_up_at: u64,
    /// Where a message it cannot read while catching up at a node's start stops it and says why
    /// (elsewhere such a message stalls it).
    refused: Option<oneshot::Sender<StoreError>>,
    /// The integration tests' fault: while its file exists, the replica stops after each message
    /// it applies while catching up, as when its consumer ends (deleted under it).
    end_catch_up: HookFile,
}

/// A message whose rows cannot be read here, whatever is tried again: not a passing failure.
fn unreadable(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::LayoutChanged(_) | StoreError::UnreadableForms(_)
    )
}

/// A message not applied for now, which the replica stalls at (never skips): one it cannot read
/// until this node's files change, or one an apply on this node raced (its rows were made for
/// the layouts the apply replaced).
fn stalls_at(error: &StoreError) -> bool {
    unreadable(error) || matches!(error, StoreError::RepositoryChanged(_))
}

/// The replica's loop: this node's waiters are taken in before any message (a write registers
/// its waiter before publishing), then each message is applied and its waiter, if any, answered.
///
/// A message it cannot apply for now (`stalls_at`: mostly, this node's files cannot take the
/// form it was written in) is not skipped: applying the later ones without it would lose its
/// rows here for good. The replica stalls instead (reported by [`stalled_replicas`]): it drops its consumer,
/// and every [`STALLED_RETRY`] reads the stream again from that message, so once the node's
/// files are brought in line (`quiver apply`) it applies it and goes on.
async fn apply(replica: Replica, applied: watch::Sender<u64>) {
    let Replica {
        mut messages,
        source,
        router,
        mut waiters,
        mut holds,
        mut forms,
        caught_up_at,
        mut refused,
        end_catch_up,
    } = replica;
    let mut waiting: HashMap<String, oneshot::Sender<Result<WriteOutcome, StoreError>>> =
        HashMap::new();
    let mut stalled = false;
    let _unstall = Unstall(&source.consumer);
    let mut retry_at = Instant::now();
    loop {
        tokio::select! {
            biased;
            waiter = waiters.recv() => {
                // Every sender gone: this node gave the partition up.
                let Some(waiter) = waiter else { return };
                // A write whose publish failed or stopped waiting leaves its waiter behind;
                // drop those now and then.
                if waiting.len() >= 1024 {
                    waiting.retain(|_, answer| !answer.is_closed());
                }
                waiting.insert(waiter.message_id, waiter.applied);
            }
            Some(hold) = next_hold(&mut holds) => {
                if hold.at.send(*applied.borrow()).is_ok() {
                    let _ = hold.release.await;
                }
            }
            _ = tokio::time::sleep_until(retry_at), if messages.is_none() => {
                let after = *applied.borrow();
                match replay_after(&source.stream, &source.consumer, source.subjects.clone(), after).await {
                    Ok(resumed) => messages = Some(resumed),
                    Err(error) => {
                        tracing::warn!(%error, "cluster stream: a stalled replica cannot open its consumer again; retrying");
                        retry_at = Instant::now() + STALLED_RETRY;
                    }
                }
            }
            message = next_message(&mut messages) => {
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
                let outcome = match forms.of(&message).await {
                    Ok(written) => router.apply_record(&message.payload, written).await,
                    Err(error) => Err(error),
                };
                let stalls = outcome.as_ref().is_err_and(stalls_at);
                if let Err(error) = &outcome {
                    if sequence <= caught_up_at && unreadable(error) {
                        if let Some(refused) = refused.take() {
                            let _ = refused.send(outcome.unwrap_err());
                            return;
                        }
                    }
                    if !stalls {
                        tracing::error!(%error, sequence, "cluster stream: a record could not be applied");
                    } else if !stalled {
                        tracing::error!(%error, sequence, consumer = source.consumer, "cluster stream: a record cannot be applied here (yet); this replica applies nothing after it until it can (if this node's files cannot read its rows, bring them in line with the writer's: quiver apply)");
                        set_stalled(&source.consumer, Some(error.to_string()));
                    }
                }
                if let Some(answer) = message_id(&message).and_then(|id| waiting.remove(&id)) {
                    let _ = answer.send(outcome);
                }
                if stalls {
                    // Not acknowledged: the consumer goes, and is opened again at this message.
                    stalled = true;
                    messages = None;
                    retry_at = Instant::now() + STALLED_RETRY;
                    continue;
                }
                if stalled {
                    stalled = false;
                    set_stalled(&source.consumer, None);
                    tracing::info!(sequence, consumer = source.consumer, "cluster stream: the record that stalled this replica is applied; it applies the stream again");
                }
                if let Err(error) = message.ack().await {
                    tracing::warn!(%error, sequence, "cluster stream: acknowledging a message failed");
                }
                applied.send_replace(sequence);
                // Short of its last message: the catch-up fails.
                if sequence < caught_up_at && end_catch_up.is_on() {
                    tracing::warn!(sequence, "cluster stream: the consumer ends while catching up (test hook)");
                    return;
                }
            }
        }
    }
}

/// The header naming a published message: JetStream drops a duplicate id (a retried
/// publish), and a writer's waiter finds its message by it.
const MESSAGE_ID: &str = "Nats-Msg-Id";

/// The headers to publish a message with `id`.
pub(super) fn message_id_headers(id: &str) -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(MESSAGE_ID, id);
    headers
}

/// The id a message was published with (`message_id_headers`).
pub(super) fn message_id(message: &async_nats::jetstream::Message) -> Option<String> {
    message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(MESSAGE_ID))
        .map(|id| id.as_str().to_string())
}

/// The next message of a replica's consumer (`None`: the consumer ended); never, for a stalled
/// replica, which has none.
async fn next_message(
    messages: &mut Option<consumer::pull::Stream>,
) -> Option<Result<async_nats::jetstream::Message, consumer::pull::MessagesError>> {
    match messages {
        Some(messages) => messages.next().await,
        None => std::future::pending().await,
    }
}

/// Replicas stalled at a message they cannot read, by consumer, with the reason. Process-wide,
/// as the journals that refuse writes are: `/health` and `/readyz` report them without asking
/// the replicas.
static STALLED: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

fn set_stalled(consumer: &str, reason: Option<String>) {
    let mut stalled = STALLED.lock().unwrap_or_else(|e| e.into_inner());
    match reason {
        Some(reason) => stalled.insert(consumer.to_string(), reason),
        None => stalled.remove(consumer),
    };
}

/// A replica's loop ends (its partition given up, or the task aborted): it is stalled no more.
struct Unstall<'a>(&'a str);

impl Drop for Unstall<'_> {
    fn drop(&mut self) {
        set_stalled(self.0, None);
    }
}

/// The replicas of this process stalled at a message they cannot read: (consumer, reason).
pub fn stalled_replicas() -> Vec<(String, String)> {
    let stalled = STALLED.lock().unwrap_or_else(|e| e.into_inner());
    stalled
        .iter()
        .map(|(consumer, reason)| (consumer.clone(), reason.clone()))
        .collect()
}

/// The next hold asked of a replica that takes them; never, for one that does not.
async fn next_hold(holds: &mut Option<mpsc::Receiver<Hold>>) -> Option<Hold> {
    match holds {
        Some(holds) => holds.recv().await,
        None => std::future::pending().await,
    }
}

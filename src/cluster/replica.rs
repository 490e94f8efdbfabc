//! A replica: a task that owns a durable consumer (the whole stream in replicated mode, one
//! partition's subject in partitioned mode) and the waiters of this node's own writes to it,
//! and applies its messages to the shards, one at a time in stream order (so every node
//! holding a partition applies the same rows in the same order), each read in the forms it
//! names (`forms`). A replicated-mode replica can be held still between two messages for a
//! snapshot's cut and for an apply ([`Hold`]). A message it cannot apply for now stalls it
//! there, reported for `/health` (in its own cell, listed in the node's replica stalls), never
//! skipped; so does its consumer ending once caught up ([`Messages`]: the directory's and
//! vault's streams read theirs the same way).

use std::collections::HashMap;
use std::time::Duration;

use actix_web::rt::task::JoinHandle;
use async_nats::jetstream::{consumer, stream};
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::forms::ReadForms;
use super::{ClusterError, Waiter};
use crate::persist::format::ViewRefV1;
use crate::reported::{Condition, Conditions};
use crate::store::{Router, StoreError, WriteOutcome};
use crate::test_hooks::HookFile;

/// How often the server says a pull is still alive, and how long a pull lasts.
const PULL_HEARTBEAT: Duration = Duration::from_secs(1);
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// How long a stalled replica waits before it opens its consumer again.
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
    /// Where the node lists its replicas' stalls for `/health` (see `Messages::stalled`).
    pub stalls: Conditions,
}

/// A request to hold the replica between two messages (a snapshot's cut; an apply, from its
/// reshape until it is made or taken back): it answers the last sequence it applied on `at`,
/// then applies nothing until `release` resolves (sent or dropped) and every hold asked
/// meanwhile is released too. The replica applies a message whole (`Router::apply_record`
/// resolves once the writer has applied its rows) before it looks at a hold, so the store then
/// holds exactly the rows of the messages up to that sequence.
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
            messages: Messages::new(
                stream,
                feed.consumer,
                feed.subjects,
                messages,
                feed.caught_up_at,
                &feed.stalls,
            ),
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

/// Why a replica applies nothing for now (reported in its `Messages::stalled`).
enum Stall {
    /// At a message it cannot apply: until that message is applied.
    AtMessage,
    /// Its consumer ended or failed once caught up: until it is opened again.
    Ended,
}

/// What a replica gives next ([`Messages::next`]).
pub(super) enum Next {
    /// Boxed: a message is large, and the other variants carry nothing.
    Message(Box<async_nats::jetstream::Message>),
    /// Time to open the consumer again ([`Messages::reopen`]).
    Reopen,
    /// The consumer ended while catching up: the replica stops, and its start fails.
    Ended,
}

/// A replica's messages: its durable consumer, dropped when the replica stalls at a message it
/// cannot apply or ends under it once caught up (NATS restarted, the consumer deleted, a
/// network error), and every [`STALLED_RETRY`] opened again after the last message applied, so
/// none is applied twice (aggregations would count it twice). Reported stalled meanwhile (`stalled`).
pub(super) struct Messages {
    stream: stream::Stream,
    consumer: String,
    subjects: String,
    /// `<stream>/<consumer>`: a node's consumers of different streams share its id.
    name: String,
    /// Why it applies nothing, while it does not: its own cell, listed under `name` in the
    /// node's stalls, which `/health` and `/readyz` read without asking the replica.
    stalled: Condition,
    /// `None` while stalled: it consumes nothing then.
    open: Option<consumer::pull::Stream>,
    stall: Option<Stall>,
    retry_at: Instant,
    /// The last sequence of its catch-up: a consumer that ends before it stops the replica.
    caught_up_at: u64,
    /// The integration tests' fault: while its file exists, the consumer of a caught-up replica
    /// ends before each message it would give, as when NATS restarts.
    end_stream: HookFile,
}

impl Messages {
    pub(super) fn new(
        stream: &stream::Stream,
        consumer: &str,
        subjects: String,
        open: consumer::pull::Stream,
        caught_up_at: u64,
        stalls: &Conditions,
    ) -> Messages {
        let name = format!("{}/{consumer}", stream.cached_info().config.name);
        Messages {
            stream: stream.clone(),
            consumer: consumer.to_string(),
            subjects,
            stalled: stalls.add(&name),
            name,
            open: Some(open),
            stall: None,
            retry_at: Instant::now(),
            caught_up_at,
            end_stream: HookFile::from_env("QUIVER_TEST_END_STREAM"),
        }
    }

    /// The next message after `applied`, the last sequence applied. Cancel safe: a stalled
    /// replica waits here for its retry, and opens its consumer again on [`Next::Reopen`].
    pub(super) async fn next(&mut self, applied: u64) -> Next {
        let catching_up = applied < self.caught_up_at;
        loop {
            let Some(open) = &mut self.open else {
                tokio::time::sleep_until(self.retry_at).await;
                return Next::Reopen;
            };
            let reason = if !catching_up && self.end_stream.is_on() {
                "its consumer ended (test hook)".to_string()
            } else {
                match open.next().await {
                    Some(Ok(message)) => return Next::Message(Box::new(message)),
                    Some(Err(error)) if catching_up => {
                        tracing::warn!(%error, consumer = self.name, "cluster stream: cannot read the next message");
                        continue;
                    }
                    Some(Err(error)) => format!("reading its consumer failed: {error}"),
                    None if catching_up => return Next::Ended,
                    None => "its consumer ended".to_string(),
                }
            };
            tracing::error!(reason, applied, consumer = self.name, "cluster stream: this replica applies nothing until its consumer is opened again after the last message it applied");
            self.stalled.set(Some(reason));
            self.stall = Some(Stall::Ended);
            self.stop_until_retry();
        }
    }

    /// Opens the consumer again after `applied`, the last sequence applied.
    pub(super) async fn reopen(&mut self, applied: u64) {
        match replay_after(&self.stream, &self.consumer, self.subjects.clone(), applied).await {
            Ok(resumed) => {
                self.open = Some(resumed);
                if matches!(self.stall, Some(Stall::Ended)) {
                    self.stall = None;
                    self.stalled.set(None);
                    tracing::info!(applied, consumer = self.name, "cluster stream: the replica's consumer is open again; it applies the stream again");
                }
            }
            Err(error) => {
                tracing::warn!(%error, consumer = self.name, "cluster stream: a stalled replica cannot open its consumer again; retrying");
                self.retry_at = Instant::now() + STALLED_RETRY;
            }
        }
    }

    /// Stalls at message `sequence`, which failed with `error`: not acknowledged, it is given
    /// again once the consumer is opened again.
    fn stall_at(&mut self, sequence: u64, error: &StoreError) {
        if !matches!(self.stall, Some(Stall::AtMessage)) {
            tracing::error!(%error, sequence, consumer = self.name, "cluster stream: a record cannot be applied here (yet); this replica applies nothing after it until it can (if this node's files cannot read its rows, bring them in line with the writer's: quiver apply)");
            self.stalled.set(Some(error.to_string()));
            self.stall = Some(Stall::AtMessage);
        }
        self.stop_until_retry();
    }

    /// Message `sequence` is applied: a stall at it is over.
    fn applied(&mut self, sequence: u64) {
        if matches!(self.stall, Some(Stall::AtMessage)) {
            self.stall = None;
            self.stalled.set(None);
            tracing::info!(sequence, consumer = self.name, "cluster stream: the record that stalled this replica is applied; it applies the stream again");
        }
    }

    fn stop_until_retry(&mut self) {
        self.open = None;
        self.retry_at = Instant::now() + STALLED_RETRY;
    }
}

/// A replica's loop ends (its partition given up, or the task aborted): it is stalled no more.
impl Drop for Messages {
    fn drop(&mut self) {
        self.stalled.set(None);
    }
}

/// What a replica's loop owns.
struct Replica {
    messages: Messages,
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
/// rows here for good. The replica stalls instead ([`Messages`]): it reads the stream again
/// from that message until it applies, so once the node's files are brought in line
/// (`quiver apply`) it goes on.
async fn apply(replica: Replica, applied: watch::Sender<u64>) {
    let Replica {
        mut messages,
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
    loop {
        let after = *applied.borrow();
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
            Some(hold) = next_hold(&mut holds) => hold_still(hold, after, &mut holds).await,
            next = messages.next(after) => {
                let message = match next {
                    Next::Message(message) => *message,
                    // Here, not in `next`: a waiter coming in would cancel it half-way.
                    Next::Reopen => {
                        messages.reopen(after).await;
                        continue;
                    }
                    Next::Ended => {
                        tracing::error!("cluster stream: the consumer ended while catching up");
                        return;
                    }
                };
                let Ok(sequence) = message.info().map(|info| info.stream_sequence) else {
                    tracing::warn!("cluster stream: a message without JetStream metadata is skipped");
                    continue;
                };
                // JetStream redelivers a message whose ack it did not get in time; applying it
                // again would count its aggregations twice.
                if sequence <= after {
                    let _ = message.ack().await;
                    continue;
                }
                let outcome = apply_message(&router, &mut forms, &message).await;
                if let Err(error) = &outcome {
                    if sequence <= caught_up_at && unreadable(error) {
                        if let Some(refused) = refused.take() {
                            let _ = refused.send(outcome.unwrap_err());
                            return;
                        }
                    }
                    if stalls_at(error) {
                        messages.stall_at(sequence, error);
                    } else {
                        tracing::error!(%error, sequence, "cluster stream: a record could not be applied");
                    }
                }
                let stalls = outcome.as_ref().is_err_and(stalls_at);
                if let Some(answer) = message_id(&message).and_then(|id| waiting.remove(&id)) {
                    let _ = answer.send(outcome);
                }
                // Not acknowledged: the consumer is opened again at this message.
                if stalls {
                    continue;
                }
                messages.applied(sequence);
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

/// Applies `message`'s rows, read in the forms it names. A view whose rows those forms cannot
/// give the serving form without loss is refused, unless an apply moved the view's data out
/// of them accepting the loss: then they are read as that apply converted it (see `forms`),
/// as they are when applies moved it losing data it could read without (a removed feature).
async fn apply_message(
    router: &Router,
    forms: &mut ReadForms,
    message: &async_nats::jetstream::Message,
) -> Result<WriteOutcome, StoreError> {
    forms.accept_recorded_losses(message, router).await?;
    loop {
        let written = forms.of(message).await?;
        match router.apply_record(&message.payload, written).await {
            Err(StoreError::LayoutChanged(mismatch)) => {
                let view = ViewRefV1 {
                    workspace: mismatch.workspace.clone(),
                    view: mismatch.view.clone(),
                };
                let serving = router.form(&view);
                if !forms
                    .accept_recorded_loss(message, &view, serving.as_ref())
                    .await?
                {
                    return Err(StoreError::LayoutChanged(mismatch));
                }
            }
            outcome => return outcome,
        }
    }
}

/// Holds the replica still at `after` (answered to `first`) until every hold asked meanwhile
/// is released too: they share it. An apply holds the replica from its reshape until it is
/// made or taken back, and its snapshot's cut, asked in between, must not wait for it.
async fn hold_still(first: Hold, after: u64, holds: &mut Option<mpsc::Receiver<Hold>>) {
    let mut releases = FuturesUnordered::new();
    let mut asked = Some(first);
    loop {
        if let Some(hold) = asked.take() {
            if hold.at.send(after).is_ok() {
                releases.push(hold.release);
            }
        }
        if releases.is_empty() {
            return;
        }
        tokio::select! {
            biased;
            Some(hold) = next_hold(holds) => asked = Some(hold),
            _ = releases.next() => {}
        }
    }
}

/// The next hold asked of a replica that takes them; never, for one that does not.
async fn next_hold(holds: &mut Option<mpsc::Receiver<Hold>>) -> Option<Hold> {
    match holds {
        Some(holds) => holds.recv().await,
        None => std::future::pending().await,
    }
}

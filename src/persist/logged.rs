//! Cluster mode for the journaled actors (the directory, the vault): a request's changes go to
//! a replicated log (the cluster's stream) as the record the journal would hold, instead of
//! the journal and the state, and every node (this one too) applies the log's records in log
//! order through `ApplyLogged`. The request is answered once the log took its record and this
//! node applied it, with what applying it answered: a record that no longer holds when its
//! turn comes (a concurrent change on another node won) is refused by the same rules on every
//! node, and its writer learns it here.
//!
//! The actor's handlers are the ones of single-node mode: `commit` stages the record
//! (`LogState::stage`) instead of journaling it, and `Logged<M>`'s handler (from
//! `logged_handler!`), which runs the request's own handler in the same turn of the actor,
//! publishes what was staged and waits. This module knows no NATS: `cluster` implements
//! [`ChangeLog`] and drives [`LogApplier`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Handler, Message};
use futures_util::future::{BoxFuture, FutureExt};
use tokio::sync::oneshot;

use super::journaled::{JournaledActor, JournaledAddr};

/// How long a request waits for this node to apply its record once the log has it. Past it
/// the request is answered as unavailable, but the record stays in the log: it is applied
/// (or refused) later, on every node.
pub const APPLIED_WITHIN: Duration = Duration::from_secs(30);

/// A replicated log of one actor's records.
pub trait ChangeLog: Send + Sync {
    /// A message id no other record has: the record's applier answers under it.
    fn next_id(&self) -> String;
    /// Resolves once the log durably holds `record` (or with why not).
    fn publish(&self, id: String, record: Vec<u8>) -> BoxFuture<'static, Result<(), String>>;
}

/// An actor that applies records from a replicated log.
pub trait LoggedActor: JournaledActor {
    /// Why a record was refused, in the actor's own error type.
    type Refusal: Send + 'static;
    /// The log, in cluster mode.
    fn log_state(&mut self) -> &mut Option<LogState<Self::Refusal>>;
    /// Applies one record's changes if they still hold, all or none, by rules that depend
    /// only on the state (every node decides alike); then refreshes what derives from the
    /// state.
    fn apply_checked(&mut self, changes: Vec<Self::Change>) -> Result<(), Self::Refusal>;
    /// The log could not take a record, or this node did not apply it in time.
    fn unavailable(reason: String) -> Self::Refusal;
}

/// What a [`LoggedActor`] keeps in cluster mode.
pub struct LogState<E> {
    log: Arc<dyn ChangeLog>,
    /// The record of the request being handled; `Logged<M>`'s handler takes it in the same
    /// turn of the actor.
    staged: Option<Vec<u8>>,
    /// This node's requests whose records are not applied yet, by message id.
    waiting: HashMap<String, oneshot::Sender<Result<(), E>>>,
}

impl<E: Send + 'static> LogState<E> {
    pub fn new(log: Arc<dyn ChangeLog>) -> LogState<E> {
        LogState {
            log,
            staged: None,
            waiting: HashMap::new(),
        }
    }

    /// Holds the request's record, to publish once its handler has answered.
    pub fn stage(&mut self, record: Vec<u8>) {
        debug_assert!(self.staged.is_none(), "a request commits once");
        self.staged = Some(record);
    }

    /// Publishes the staged record, if any (the request changed something and succeeded),
    /// and answers `answer` once it is applied here; otherwise answers `answer` at once.
    fn publish_staged<T: Send + 'static>(
        &mut self,
        answer: Result<T, E>,
        unavailable: fn(String) -> E,
    ) -> BoxFuture<'static, Result<T, E>> {
        let record = match self.staged.take() {
            Some(record) if answer.is_ok() => record,
            _ => return futures_util::future::ready(answer).boxed(),
        };
        let id = self.log.next_id();
        // A request whose publish failed leaves its waiter behind; drop those now and then.
        if self.waiting.len() >= 1024 {
            self.waiting.retain(|_, waiter| !waiter.is_closed());
        }
        // Registered before the record exists, so its applier finds it.
        let (waiter, applied) = oneshot::channel();
        self.waiting.insert(id.clone(), waiter);
        let published = self.log.publish(id, record);
        async move {
            published
                .await
                .map_err(|e| unavailable(format!("the cluster log could not take the change: {e}")))?;
            match tokio::time::timeout(APPLIED_WITHIN, applied).await {
                Ok(Ok(outcome)) => outcome.and(answer),
                Ok(Err(_)) => Err(unavailable("this node stopped applying the cluster log".into())),
                Err(_) => Err(unavailable(format!(
                    "the change is in the cluster log but this node has not applied it within {}s; it will be",
                    APPLIED_WITHIN.as_secs()
                ))),
            }
        }
        .boxed()
    }
}

/// A request to a [`LoggedActor`] in cluster mode: its handler runs `M`'s and publishes what
/// that staged.
pub struct Logged<M>(pub M);

impl<M: Message> Message for Logged<M> {
    type Result = M::Result;
}

impl<M> Logged<M> {
    /// Runs `M`'s handler, then publishes what it staged and waits for this node to apply it.
    pub fn run<A, T>(
        self,
        actor: &mut A,
        ctx: &mut A::Context,
    ) -> BoxFuture<'static, Result<T, A::Refusal>>
    where
        A: LoggedActor + Handler<M, Result = Result<T, A::Refusal>>,
        M: Message<Result = Result<T, A::Refusal>>,
        T: Send + 'static,
    {
        let answer = <A as Handler<M>>::handle(actor, self.0, ctx);
        match actor.log_state() {
            Some(log) => log.publish_staged(answer, A::unavailable),
            None => futures_util::future::ready(answer).boxed(),
        }
    }
}

/// A record read from the log, to apply (`message_id`: the id it was published under).
pub struct ApplyLogged {
    pub message_id: Option<String>,
    pub record: Vec<u8>,
}

impl Message for ApplyLogged {
    type Result = ();
}

impl ApplyLogged {
    pub fn run<A: LoggedActor>(self, actor: &mut A) {
        let outcome = match A::decode_record(&self.record) {
            Ok(changes) => actor.apply_checked(changes),
            Err(why) => {
                // A record from a newer build, say: every node skips it alike.
                tracing::error!(actor = A::SECTION.name(), %why, "a record of the cluster log does not decode; skipped");
                Err(A::unavailable(format!("the change does not decode: {why}")))
            }
        };
        let waiter = match (actor.log_state(), self.message_id) {
            (Some(log), Some(id)) => log.waiting.remove(&id),
            _ => None,
        };
        if let Some(waiter) = waiter {
            let _ = waiter.send(outcome);
        }
    }
}

/// What the cluster's consumer applies each record of an actor's stream through.
pub trait LogApplier: Send + Sync {
    /// Resolves once the actor has applied (or refused) the record.
    fn apply(&self, message_id: Option<String>, record: Vec<u8>) -> BoxFuture<'static, ()>;
}

impl<A> LogApplier for JournaledAddr<A>
where
    A: LoggedActor + Handler<ApplyLogged>,
    A::Context: ToEnvelope<A, ApplyLogged>,
{
    fn apply(&self, message_id: Option<String>, record: Vec<u8>) -> BoxFuture<'static, ()> {
        let sent = self.0.send(ApplyLogged { message_id, record });
        async move {
            if sent.await.is_err() {
                tracing::error!("an actor stopped: it no longer applies the cluster log");
            }
        }
        .boxed()
    }
}

/// Implements the handler of `ApplyLogged` for a `LoggedActor`.
macro_rules! apply_logged_handler {
    ($actor:ty) => {
        impl ::actix::Handler<$crate::persist::logged::ApplyLogged> for $actor {
            type Result = ();

            fn handle(
                &mut self,
                msg: $crate::persist::logged::ApplyLogged,
                _: &mut Self::Context,
            ) -> Self::Result {
                msg.run(self)
            }
        }
    };
}
pub(crate) use apply_logged_handler;

/// Implements the handler of `Logged<$message>` for a `LoggedActor` whose handler of
/// `$message` answers `Result<$answer, Refusal>` (one per request: a handler generic over
/// the request is more than the trait solver takes).
macro_rules! logged_handler {
    ($actor:ty, $message:ty, $answer:ty) => {
        impl ::actix::Handler<$crate::persist::logged::Logged<$message>> for $actor {
            type Result = ::actix::ResponseFuture<
                Result<$answer, <$actor as $crate::persist::logged::LoggedActor>::Refusal>,
            >;

            fn handle(
                &mut self,
                msg: $crate::persist::logged::Logged<$message>,
                ctx: &mut Self::Context,
            ) -> Self::Result {
                msg.run(self, ctx)
            }
        }
    };
}
pub(crate) use logged_handler;

/// A cluster log in one process, for the actors' tests: records are kept in publish order
/// until `deliver` applies them on every node, so requests taken on two nodes meet in the log
/// as they would when taken at once.
#[cfg(test)]
pub mod loopback {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    use futures_util::future::{BoxFuture, FutureExt};

    use super::{ChangeLog, LogApplier};

    #[derive(Default)]
    pub struct LoopbackLog {
        records: Mutex<Vec<(String, Vec<u8>)>>,
        next_id: AtomicU64,
    }

    impl ChangeLog for LoopbackLog {
        fn next_id(&self) -> String {
            self.next_id.fetch_add(1, Ordering::Relaxed).to_string()
        }

        fn publish(&self, id: String, record: Vec<u8>) -> BoxFuture<'static, Result<(), String>> {
            self.records.lock().unwrap().push((id, record));
            futures_util::future::ready(Ok(())).boxed()
        }
    }

    impl LoopbackLog {
        /// Waits for `n` records (panicking after 10 s, so that a request refused before it
        /// published fails its test instead of hanging it), then applies them in order on
        /// every node.
        pub async fn deliver(&self, n: usize, nodes: &[&dyn LogApplier]) {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let published = self.records.lock().unwrap().len();
                if published >= n {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{published} of {n} records were published"
                );
                tokio::task::yield_now().await;
            }
            let records = std::mem::take(&mut *self.records.lock().unwrap());
            for (id, record) in records {
                for node in nodes {
                    node.apply(Some(id.clone()), record.clone()).await;
                }
            }
        }
    }
}

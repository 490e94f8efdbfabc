//! The forms the rows in the stream were written in. Each rows message names, in its
//! [`FORMS_HEADER`], the stored forms of the views table it was encoded under
//! (`store::LogForms`: a content id, the same for the same forms on every node), and the
//! forms themselves are in the key-value bucket `<stream>_forms` under that id, put before
//! the first message naming them (once a views table). A replica reads each message's rows in
//! the forms it names (fetched once a replica), reshaped to its own views or refused as
//! recovery does: rows are never read in a form other than the one they were written in.
//!
//! Why a name per message and a bucket, not a forms message in the stream whose latest one a
//! replay follows: nodes may write under different forms at once (an apply is per node, so a
//! cluster being applied to serves two), and a replay following the latest forms in stream
//! order would misread every other node's rows; and a replica that starts after a snapshot's
//! sequence, or reads one partition's subject, would not see forms published before. Why not
//! the forms themselves in every message: every view's names and type texts on every batch, a
//! one-row write's message several times its size. The header is 32 hex digits.
//!
//! An apply allowed to lose data (`--allow-data-loss`) puts a `loss-accepted-` entry for each
//! view whose data it moves from one form to another losing some (a feature's type changed,
//! new join keys: [`store::AcceptedLoss`](crate::store::AcceptedLoss), [`loss_key`]), and
//! takes it back if the apply is not made: a node replaying the stream from its start under
//! exactly that new form reads the view's rows in the old one as the apply converted them (a
//! retyped column null, a cleared view's rows left out) instead of refusing to start. Without
//! one (files changed without an apply, or to another form) such rows are refused as before.
//! An apply that removes a feature records that too (it needs no leave, and rows read without
//! a record), and a later apply carries every record into its old form on with the forms
//! between (`AcceptedLoss::through`): a replica looks up, once per forms, the record of every
//! view a message's forms hold in another form than its own, so that a feature added back
//! reads null for rows written before its removal, as on the node that applied. (A view back
//! in exactly a form it had cannot be told apart: its rows are read as they are.)
//! Rows a node not yet applied still writes in the old form are read so too: the loss was
//! accepted for that move, whoever writes in the old form; apply every node.
//!
//! Mixed versions: a message of an older build names no forms; its rows are taken in the
//! serving form, as that build did. An older build reads only `Nats-Msg-Id` of a message's
//! headers, so it reads this build's messages as it always did: no new message kind enters
//! the stream (a replica refuses a record that is not rows, logged and skipped, in any build).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_nats::HeaderMap;
use futures_util::StreamExt;

use super::{key_value_bucket, ClusterError};
use crate::config::ClusterSettings;
use crate::persist::format::{encode, ViewLayoutV1, ViewRefV1};
use crate::store::{AcceptedLoss, LogForms, Router, StoreError, WrittenLayouts};

/// The header a rows message names its forms in (the id, as hex).
const FORMS_HEADER: &str = "Quiver-Forms";
/// How long a replica waits before asking the bucket again when NATS did not answer.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How often, and how far apart, forms a message names but the bucket does not show are asked
/// for again before its rows are refused: 5 s in all, far past a bucket replica's lag.
const MISSING_RETRIES: u32 = 50;
const MISSING_RETRY_AFTER: Duration = Duration::from_millis(100);

/// The cluster's bucket of forms; cheap to clone.
#[derive(Clone)]
pub(super) struct Forms {
    bucket: kv::Store,
}

impl Forms {
    /// The bucket of the cluster of `settings`, created if no node has yet; its entries are
    /// kept for ever (one per distinct set of forms ever written, and a rows message may name
    /// one as long as the stream holds it).
    pub(super) async fn open(
        jetstream: &jetstream::Context,
        settings: &ClusterSettings,
    ) -> Result<Forms, ClusterError> {
        let name = format!("{}_forms", settings.stream);
        let bucket = key_value_bucket(jetstream, name, settings.replicas, Duration::ZERO).await?;
        Ok(Forms { bucket })
    }

    /// Puts `forms` in the bucket unless this process already has (once a views table: after
    /// a start or an apply): before the first message that names them, so every replica that
    /// reads the message finds them. Writes racing to put them each put the same bytes.
    pub(super) async fn publish(&self, forms: &LogForms) -> Result<(), StoreError> {
        if forms.published.load(Ordering::Acquire) {
            return Ok(());
        }
        self.bucket
            .put(&forms.name, forms.record.clone().into())
            .await
            .map_err(|e| StoreError::Log(format!("publishing the rows' forms: {e}")))?;
        forms.published.store(true, Ordering::Release);
        Ok(())
    }

    /// Records the data an apply's `moves` lose, and carries on those recorded before (see
    /// the module doc, `AcceptedLoss::to_record`); answers the records this call made, the
    /// ones to withdraw should the apply not be made: a record another node's apply of the
    /// same change made already is kept, and left to it. A record that cannot be made
    /// withdraws the ones made before it (best effort) and fails.
    pub(super) async fn accept_losses(
        &self,
        moves: &[AcceptedLoss],
        lossy_allowed: bool,
    ) -> Result<Vec<AcceptedLoss>, StoreError> {
        let recorded = self.recorded_losses().await?;
        let mut made = Vec::new();
        for loss in AcceptedLoss::to_record(moves, &recorded, lossy_allowed) {
            match self
                .bucket
                .create(loss_key(&loss), encode(&loss).into())
                .await
            {
                Ok(_) => made.push(loss),
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(error) => {
                    if let Err(undo) = self.withdraw_losses(&made).await {
                        tracing::warn!(%undo, "could not take back the data loss a failed apply recorded in the cluster");
                    }
                    return Err(StoreError::Log(format!(
                        "recording an apply's accepted loss: {error}"
                    )));
                }
            }
        }
        Ok(made)
    }

    /// Every loss recorded so far.
    async fn recorded_losses(&self) -> Result<Vec<AcceptedLoss>, StoreError> {
        let unreadable = |e: &dyn std::fmt::Display| {
            StoreError::Log(format!("reading the accepted losses: {e}"))
        };
        let mut keys = self.bucket.keys().await.map_err(|e| unreadable(&e))?;
        let mut recorded = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| unreadable(&e))?;
            if !key.starts_with(LOSS_KEY_PREFIX) {
                continue;
            }
            let value = self.bucket.get(key.as_str()).await;
            if let Some(value) = value.map_err(|e| unreadable(&e))? {
                recorded.push(AcceptedLoss::decode(&value).map_err(|e| unreadable(&e))?);
            }
        }
        Ok(recorded)
    }

    /// Takes back `losses`, recorded by an apply that was not made.
    pub(super) async fn withdraw_losses(&self, losses: &[AcceptedLoss]) -> Result<(), StoreError> {
        for loss in losses {
            self.bucket.delete(loss_key(loss)).await.map_err(|e| {
                StoreError::Log(format!("taking back an apply's accepted loss: {e}"))
            })?;
        }
        Ok(())
    }
}

/// What the keys of recorded losses start with (the forms' keys are bare hex digits).
const LOSS_KEY_PREFIX: &str = "loss-accepted-";

/// The bucket's key saying that an apply lost `loss` (named by its view and forms, so that a
/// replica finds it by them: `AcceptedLoss::name`).
fn loss_key(loss: &AcceptedLoss) -> String {
    format!(
        "{LOSS_KEY_PREFIX}{:032x}",
        xxhash_rust::xxh3::xxh3_128(&loss.name())
    )
}

/// The id of the forms `message` names, if it names any.
fn forms_id(message: &jetstream::Message) -> Option<String> {
    let headers = message.headers.as_ref()?;
    Some(headers.get(FORMS_HEADER)?.as_str().to_string())
}

/// Names `forms` in a rows message's `headers`.
pub(super) fn name(headers: &mut HeaderMap, forms: &LogForms) {
    headers.insert(FORMS_HEADER, forms.name.as_str());
}

/// What a replica has read of the bucket, by the header's text.
pub(super) struct ReadForms {
    forms: Forms,
    read: HashMap<String, WrittenLayouts>,
    /// The forms (by id) whose views' recorded losses were looked up for the forms this node
    /// serves (by id), whether found or not.
    looked_up: HashSet<(String, String)>,
    /// For messages that name no forms (an older build's): none known.
    unnamed: WrittenLayouts,
}

impl ReadForms {
    pub(super) fn new(forms: Forms) -> ReadForms {
        ReadForms {
            forms,
            read: HashMap::new(),
            looked_up: HashSet::new(),
            unnamed: WrittenLayouts::default(),
        }
    }

    /// The forms `message`'s rows were written in. An error when the bucket does not hold
    /// the forms it names, or they cannot be read: its rows cannot be read either. While NATS
    /// does not answer it asks again (no message can be read then either).
    pub(super) async fn of(
        &mut self,
        message: &jetstream::Message,
    ) -> Result<&mut WrittenLayouts, StoreError> {
        let Some(id) = forms_id(message) else {
            return Ok(&mut self.unnamed);
        };
        if !self.read.contains_key(&id) {
            let unreadable = |reason: String| {
                StoreError::UnreadableForms(format!(
                    "forms {id} in the cluster's forms bucket {reason}"
                ))
            };
            let mut misses = 0;
            let record = loop {
                match self.forms.bucket.get(id.as_str()).await {
                    Ok(Some(record)) => break record,
                    // A direct get may be answered by a replica of the bucket that has not
                    // applied the put yet (it precedes the message): asked again for a while.
                    Ok(None) if misses < MISSING_RETRIES => {
                        misses += 1;
                        tokio::time::sleep(MISSING_RETRY_AFTER).await;
                    }
                    Ok(None) => return Err(unreadable("are not there".into())),
                    Err(error) => {
                        tracing::warn!(%error, forms = %id, "cluster: cannot read the forms of the stream's rows; asking again");
                        tokio::time::sleep(RETRY_AFTER).await;
                    }
                }
            };
            let written = LogForms::read(&record)
                .map_err(|e| unreadable(format!("cannot be decoded: {e}")))?;
            self.read.insert(id.clone(), written);
        }
        Ok(self.read.get_mut(&id).expect("inserted above"))
    }

    /// Before `message`'s rows are read in the forms `router` serves: each view its forms hold
    /// in another form is read as the applies recorded for that move converted it, if any did
    /// (once per forms and serving forms). Its rows may read without one (a feature removed,
    /// then added back), but not as the node that made those applies reads them.
    pub(super) async fn accept_recorded_losses(
        &mut self,
        message: &jetstream::Message,
        router: &Router,
    ) -> Result<(), StoreError> {
        let Some(id) = forms_id(message) else {
            return Ok(());
        };
        let looked_up = (id, router.forms_name());
        if looked_up.0 == looked_up.1 || self.looked_up.contains(&looked_up) {
            return Ok(());
        }
        let moved: Vec<(ViewRefV1, Option<ViewLayoutV1>)> = (self.of(message).await?.views())
            .map(|(view, form)| (view, form, router.form(view)))
            .filter(|(_, form, serving)| serving.as_ref() != Some(*form))
            .map(|(view, _, serving)| (view.clone(), serving))
            .collect();
        for (view, serving) in moved {
            self.accept_recorded_loss(message, &view, serving.as_ref())
                .await?;
        }
        self.looked_up.insert(looked_up);
        Ok(())
    }

    /// Reads `view`'s rows in the forms `message` names (in it and every later message
    /// naming them), in the form `to` this node serves, as an apply that moved the view's data
    /// from that form to `to` accepting loss converted it, if one did; answers whether that is
    /// new: false when no apply did, when the message names no forms or its forms do not hold
    /// the view, or when they were read so already.
    pub(super) async fn accept_recorded_loss(
        &mut self,
        message: &jetstream::Message,
        view: &ViewRefV1,
        to: Option<&ViewLayoutV1>,
    ) -> Result<bool, StoreError> {
        let written = self.of(message).await?;
        let Some(from) = written
            .get(view)
            .filter(|_| !written.loss_accepted(view, to))
        else {
            return Ok(false);
        };
        let loss = AcceptedLoss {
            view: view.clone(),
            from: from.clone(),
            to: to.cloned(),
            through: Vec::new(),
        };
        // Asked until NATS answers, as `of` asks for the forms: an error here would have the
        // replica skip the message (it acknowledges one whose error is no stall), losing its
        // rows on this node.
        let key = loss_key(&loss);
        let bucket = &self.forms.bucket;
        let found =
            asked_until_answered("an apply's accepted loss", || bucket.get(key.as_str())).await;
        let Some(found) = found else {
            return Ok(false);
        };
        let recorded = recorded_loss(&key, &found)?;
        self.of(message).await?.accept_loss(recorded);
        Ok(true)
    }
}

/// The loss recorded under `key` in the bucket, as `found` there. One this build cannot decode
/// (a newer build's, or damaged) leaves the message's rows unreadable here, as forms it cannot
/// decode do: the replica stalls at the message (a start catching up refuses it), never
/// acknowledges it unapplied, as a `StoreError::Log` had it.
fn recorded_loss(key: &str, found: &[u8]) -> Result<AcceptedLoss, StoreError> {
    AcceptedLoss::decode(found).map_err(|e| {
        StoreError::UnreadableForms(format!(
            "the accepted loss {key} in the cluster's forms bucket cannot be decoded: {e}"
        ))
    })
}

/// What `ask` answers once NATS answers it: each failure is logged (`what` was asked for) and
/// asked again after [`RETRY_AFTER`], as [`ReadForms::of`] asks for a message's forms. A
/// replica cannot read the message in hand without the answer, and cannot answer an error
/// instead: it skips a message whose error is no stall.
async fn asked_until_answered<T, E, F, Fut>(what: &str, mut ask: F) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    loop {
        match ask().await {
            Ok(answer) => return answer,
            Err(error) => {
                tracing::warn!(%error, "cluster: cannot read {what}; asking again");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// A lookup NATS fails to answer for a while (a timeout, a server restarting) is asked
    /// again until it answers: the replica's loss lookups go through it, and an error answered
    /// instead had the replica acknowledge the message without applying its rows.
    #[test]
    fn a_lookup_nats_fails_to_answer_is_asked_again() {
        let asked = Cell::new(0);
        let answer = actix::System::new().block_on(asked_until_answered("a test key", || {
            asked.set(asked.get() + 1);
            let answer = match asked.get() {
                1 | 2 => Err("timed out"),
                _ => Ok(Some(7)),
            };
            std::future::ready(answer)
        }));
        assert_eq!(answer, Some(7));
        assert_eq!(asked.get(), 3);
    }

    /// A recorded loss this build cannot decode (a newer build's, or damaged) makes the
    /// message's rows unreadable here, as forms it cannot decode do: the replica stalls at the
    /// message (and a start catching up refuses it) rather than acknowledge it unapplied.
    #[test]
    fn a_recorded_loss_that_cannot_be_decoded_makes_the_rows_unreadable() {
        let refused = recorded_loss("loss-accepted-00", b"\xff\xff\xff").unwrap_err();
        assert!(
            matches!(refused, StoreError::UnreadableForms(_)),
            "{refused:?}"
        );
    }
}

//! The writer actor: the single sequencer of feature writes. Each batch is appended to the
//! feature-rows journal (when persistence is on) and then handed to the owning shards with
//! `do_send`, which keeps each shard's mailbox in journal order. Reads never pass through here.
//!
//! Because every write passes through this one actor, a snapshot request handled here (rotate
//! the journal, then ask every shard to export) sees each shard at exactly the same point of the
//! journal: a point-in-time cut across shards, without stopping reads.

#[cfg(test)]
mod faults;
mod reshape;
mod snapshot;
mod write;

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message};
use tokio::sync::oneshot;

pub use reshape::{Reshape, Reshaped, Revert};
pub use snapshot::{AttachJournal, DropJournalBefore, StartSnapshot};
pub use write::{journal_record, Write};

use super::shard::ShardActor;
use super::views::StoreViews;
use crate::metrics::{shard_mailbox_depth, Gauge};
use crate::persist::format::{encode_apply_record, ApplyRecordV1};
use crate::persist::{FsyncPolicy, Journal, JournalError};

pub struct WriterActor {
    shards: Vec<Addr<ShardActor>>,
    /// How journal records name views, and the layouts a write must be made for.
    views: Arc<StoreViews>,
    journal: Option<Journal>,
    /// Whether the journal holds `views`' layouts record (`ViewLayoutsV1`) since it was
    /// attached or the table last changed: the writer journals it before the first rows it
    /// journals under a table, so a replay knows the form of every record's rows.
    layouts_journaled: bool,
    /// False when an apply was undone (`Revert`) and the journal could not take its record
    /// (`ApplyRecordV1::Undone`): it goes in before anything else is journaled or the journal
    /// is rotated for a snapshot (see [`WriterActor::journal_pending_undo`]).
    undo_journaled: bool,
    /// Index = shard: the batches sent to it and not yet applied.
    mailbox_depths: Vec<Gauge>,
}

impl WriterActor {
    pub fn new(shards: Vec<Addr<ShardActor>>, views: Arc<StoreViews>) -> WriterActor {
        WriterActor {
            mailbox_depths: (0..shards.len()).map(shard_mailbox_depth).collect(),
            shards,
            views,
            journal: None,
            layouts_journaled: false,
            undo_journaled: true,
        }
    }

    /// Sends every shard the message `message` makes of an answer channel (behind the writes
    /// already sent to it), and answers one receiver per shard.
    fn to_every_shard<T, M>(
        &self,
        message: impl Fn(oneshot::Sender<T>) -> M,
    ) -> Vec<oneshot::Receiver<T>>
    where
        M: Message<Result = ()> + Send + 'static,
        ShardActor: Handler<M>,
    {
        self.shards
            .iter()
            .map(|shard| {
                let (done, receiver) = oneshot::channel();
                shard.do_send(message(done));
                receiver
            })
            .collect()
    }

    /// Journals the undo `Revert` could not, before whatever comes next: next rows (in the
    /// forms the undo went back to), another apply, or a rotation for a snapshot (a fallback
    /// past that snapshot replays this segment). Else a replay would make the undone apply
    /// again, or take the next apply's undo for it.
    fn journal_pending_undo(&mut self) -> Result<(), JournalError> {
        if let (false, Some(journal)) = (self.undo_journaled, self.journal.as_mut()) {
            journal.append(&encode_apply_record(&ApplyRecordV1::Undone))?;
        }
        self.undo_journaled = true;
        Ok(())
    }
}

impl Actor for WriterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        // The `every_second` group commit; a no-op under the other policies or with nothing new.
        ctx.run_interval(Duration::from_secs(1), |writer, _| {
            if let Some(journal) = writer
                .journal
                .as_mut()
                .filter(|j| j.policy() == FsyncPolicy::EverySecond)
            {
                if let Err(error) = journal.sync() {
                    tracing::error!(%error, "journal fsync failed");
                }
            }
        });
    }
}

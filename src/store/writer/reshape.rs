//! `Reshape`: an apply's new views table and what it does to stored data, sent to every shard
//! behind the writes journaled before it, so each shard reshapes exactly the rows written under
//! the old repository; writes made for the old layouts are refused from here on. `Revert`
//! undoes it the same way: behind every write sent before it, in each shard that took it (one
//! whose reshape failed changed nothing). Both are journaled where they
//! happen (`ApplyRecordV1`), so that a replay from a snapshot older than the apply's makes the
//! apply (or skips an undone one) at the same point of the rows.

use std::sync::Arc;

use actix::{Handler, Message, MessageResult};
use tokio::sync::oneshot;

use super::WriterActor;
use crate::persist::JournalError;
use crate::registry::ViewId;
use crate::store::shard::{ReshapePartition, RevertReshape, ViewReshape};
use crate::store::views::StoreViews;
use crate::store::StoreError;

pub struct Reshape {
    pub views: Arc<StoreViews>,
    pub reshapes: Arc<Vec<(ViewId, ViewReshape)>>,
    /// The apply's journal record (`ApplyRecordV1::Applied`, encoded).
    pub record: Vec<u8>,
}

/// One receiver per shard; each resolves when that shard has reshaped its partition.
pub type Reshaped = Vec<oneshot::Receiver<std::io::Result<()>>>;

impl Message for Reshape {
    type Result = Result<Reshaped, StoreError>;
}

impl Handler<Reshape> for WriterActor {
    /// A journal failure answers before anything changes: the apply is refused whole.
    type Result = Result<Reshaped, StoreError>;

    fn handle(&mut self, msg: Reshape, _: &mut Self::Context) -> Self::Result {
        self.journal_pending_undo()?;
        if let Some(journal) = self.journal.as_mut() {
            journal.append(&msg.record)?;
        }
        self.views = Arc::clone(&msg.views);
        self.layouts_journaled = false;
        Ok(self.to_every_shard(|done| ReshapePartition {
            views: Arc::clone(&msg.views),
            reshapes: Arc::clone(&msg.reshapes),
            done,
        }))
    }
}

/// Back to `views`, the table the last reshape replaced (see `RevertReshape`).
pub struct Revert {
    pub views: Arc<StoreViews>,
}

/// The shards' receivers, and the journal's refusal of the undo's record if it refused it.
pub type Reverted = (Reshaped, Option<JournalError>);

impl Message for Revert {
    type Result = Reverted;
}

impl Handler<Revert> for WriterActor {
    type Result = MessageResult<Revert>;

    fn handle(&mut self, msg: Revert, _: &mut Self::Context) -> Self::Result {
        let reshaped = std::mem::replace(&mut self.views, msg.views);
        self.layouts_journaled = false;
        // Going back cannot be refused; unjournaled, the undo is journaled before anything
        // else is (or that is refused), and the apply's answer says so.
        self.undo_journaled = false;
        let unjournaled = self.journal_pending_undo().err();
        if let Some(error) = &unjournaled {
            tracing::error!(%error, "could not journal an apply's undo; it is journaled before anything else");
        }
        let reverted = self.to_every_shard(|done| RevertReshape {
            reshaped: Arc::clone(&reshaped),
            done,
        });
        MessageResult((reverted, unjournaled))
    }
}

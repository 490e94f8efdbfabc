//! `Reshape`: an apply's new views table and what it does to stored data, sent to every shard
//! behind the writes journaled before it, so each shard reshapes exactly the rows written under
//! the old repository; writes made for the old layouts are refused from here on. `Revert`
//! undoes it the same way: behind every write sent before it. Both are journaled where they
//! happen (`ApplyRecordV1`), so that a replay from a snapshot older than the apply's makes the
//! apply (or skips an undone one) at the same point of the rows.

use std::sync::Arc;

use actix::{Handler, Message};
use tokio::sync::oneshot;

use super::WriterActor;
use crate::persist::format::{encode_apply_record, ApplyRecordV1};
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
        if let Some(journal) = self.journal.as_mut() {
            journal.append(&msg.record)?;
        }
        self.views = Arc::clone(&msg.views);
        self.layouts_journaled = false;
        Ok(self
            .shards
            .iter()
            .map(|shard| {
                let (done, receiver) = oneshot::channel();
                shard.do_send(ReshapePartition {
                    views: Arc::clone(&msg.views),
                    reshapes: Arc::clone(&msg.reshapes),
                    done,
                });
                receiver
            })
            .collect())
    }
}

/// Back to `views`, the table the last reshape replaced (see `RevertReshape`).
pub struct Revert {
    pub views: Arc<StoreViews>,
}

impl Message for Revert {
    type Result = Reshaped;
}

impl Handler<Revert> for WriterActor {
    type Result = Reshaped;

    fn handle(&mut self, msg: Revert, _: &mut Self::Context) -> Self::Result {
        self.views = msg.views;
        self.layouts_journaled = false;
        // Going back cannot be refused; unjournaled, it is journaled before the next rows
        // (which are in the old forms), or the write is refused.
        self.undo_journaled = self.journal.as_mut().is_none_or(|journal| {
            let journaled = journal.append(&encode_apply_record(&ApplyRecordV1::Undone));
            if let Err(error) = &journaled {
                tracing::error!(%error, "could not journal an apply's undo; it is journaled before the next rows");
            }
            journaled.is_ok()
        });
        self.shards
            .iter()
            .map(|shard| {
                let (done, receiver) = oneshot::channel();
                shard.do_send(RevertReshape { done });
                receiver
            })
            .collect()
    }
}

//! The writer's part in persistence: taking over the journal after recovery, starting a
//! snapshot (rotate the journal, ask every shard to export), and dropping covered segments.

use std::sync::Arc;

use actix::{Handler, Message};
use tokio::sync::oneshot;

use super::WriterActor;
use crate::persist::Journal;
use crate::store::shard::{ExportRows, ShardExport};
use crate::store::views::StoreViews;

/// From now on, writes are journaled here.
pub struct AttachJournal(pub Journal);

impl Message for AttachJournal {
    type Result = ();
}

impl Handler<AttachJournal> for WriterActor {
    type Result = ();

    fn handle(&mut self, msg: AttachJournal, _: &mut Self::Context) {
        self.journal = Some(msg.0);
        // Rows replayed may have been written in other forms: the rows journaled from here
        // on are in this table's.
        self.layouts_journaled = false;
    }
}

/// Rotates the journal and asks each shard for its rows; answers the new segment number, the
/// views table the rows are stored for, and one receiver per shard.
pub struct StartSnapshot;

/// The new segment number, the views the exports name, one export receiver per shard.
pub type SnapshotStarted = (u64, Arc<StoreViews>, Vec<oneshot::Receiver<ShardExport>>);

impl Message for StartSnapshot {
    type Result = std::io::Result<SnapshotStarted>;
}

impl Handler<StartSnapshot> for WriterActor {
    type Result = std::io::Result<SnapshotStarted>;

    fn handle(&mut self, _: StartSnapshot, _: &mut Self::Context) -> Self::Result {
        self.journal_pending_undo().map_err(std::io::Error::other)?;
        let seq = match self.journal.as_mut() {
            Some(journal) => journal.rotate()?,
            None => 0,
        };
        let exports = self.to_every_shard(|done| ExportRows { done });
        Ok((seq, Arc::clone(&self.views), exports))
    }
}

/// A snapshot covering segments before `0` is on disk.
pub struct DropJournalBefore(pub u64);

impl Message for DropJournalBefore {
    type Result = std::io::Result<()>;
}

impl Handler<DropJournalBefore> for WriterActor {
    type Result = std::io::Result<()>;

    fn handle(&mut self, msg: DropJournalBefore, _: &mut Self::Context) -> Self::Result {
        match &self.journal {
            Some(journal) => journal.remove_before(msg.0),
            None => Ok(()),
        }
    }
}

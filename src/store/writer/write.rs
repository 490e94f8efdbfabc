//! `Write`: journal a batch of rows, then send each shard its part, in order.

use actix::{Handler, Message};
use tokio::sync::oneshot;

use super::WriterActor;
use crate::metrics::Queued;
use crate::persist::format::{encode, encode_layouts_record, RowRefV1, RowsRefV1};
use crate::store::key::shard_of;
use crate::store::shard::{ApplyRows, RowWrite, WriteOutcome};
use crate::store::views::StoreViews;
use crate::store::StoreError;

/// Rows to store. `journaled: false` is for rows being restored from a snapshot or replayed
/// from the journal, which must not be journaled again.
pub struct Write {
    pub rows: Vec<RowWrite>,
    pub journaled: bool,
}

/// One receiver per shard involved; each resolves when that shard has applied its rows.
pub type Applied = Vec<oneshot::Receiver<std::io::Result<WriteOutcome>>>;

impl Message for Write {
    type Result = Result<Applied, StoreError>;
}

impl Handler<Write> for WriterActor {
    /// A journal failure, or rows encoded for a layout an apply has replaced since, answer before
    /// any shard sees the rows: a refused write changes nothing.
    type Result = Result<Applied, StoreError>;

    fn handle(&mut self, msg: Write, _: &mut Self::Context) -> Self::Result {
        if let Some(row) = msg
            .rows
            .iter()
            .find(|row| self.views.layout(row.view) != Some(row.layout))
        {
            return Err(StoreError::RepositoryChanged(row.view));
        }
        if msg.journaled {
            self.journal_pending_undo()?;
            if let Some(journal) = self.journal.as_mut() {
                if !self.layouts_journaled {
                    // Refused with the write if it fails: no rows follow a form not journaled.
                    journal.append(&encode_layouts_record(&self.views.layouts_record()))?;
                    self.layouts_journaled = true;
                }
                journal.append(&journal_record(&self.views, &msg.rows))?;
            }
        }
        let n = self.shards.len();
        // Each shard's rows counted first, so that its list is allocated once at its size
        // (grown from empty, the lists cost ~40k instructions of reallocation an /ingest
        // request of 600 rows).
        let shards: Vec<usize> = msg
            .rows
            .iter()
            .map(|row| shard_of(row.view, &row.key, n))
            .collect();
        let mut counts = vec![0; n];
        for shard in &shards {
            counts[*shard] += 1;
        }
        let mut per_shard: Vec<Vec<RowWrite>> =
            counts.into_iter().map(Vec::with_capacity).collect();
        for (row, shard) in msg.rows.into_iter().zip(shards) {
            per_shard[shard].push(row);
        }
        let mut applied = Vec::new();
        for (shard, rows) in per_shard
            .into_iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty())
        {
            let (done, receiver) = oneshot::channel();
            let queued = Queued::new(&self.mailbox_depths[shard]);
            self.shards[shard].do_send(ApplyRows { rows, done, queued });
            applied.push(receiver);
        }
        Ok(applied)
    }
}

/// Encodes rows as a journal record (also a cluster log record), naming only the views they use.
pub fn journal_record(views: &StoreViews, rows: &[RowWrite]) -> Vec<u8> {
    // The view ids named so far, in `record_views`' order: a record names a few views, so a
    // scan, not a SipHashed map (~90 instructions a row).
    let mut used: Vec<u32> = Vec::new();
    let mut record_views = Vec::new();
    let mut record_rows = Vec::with_capacity(rows.len());
    for row in rows {
        let index = match used.iter().position(|view| *view == row.view) {
            Some(index) => index as u32,
            None => {
                let name = views
                    .name(row.view)
                    .expect("the layout check found the view");
                record_views.push(name.clone());
                used.push(row.view);
                (used.len() - 1) as u32
            }
        };
        record_rows.push(RowRefV1 {
            view: index,
            key: &row.key,
            event_time: row.event_time,
            payload: &row.payload,
        });
    }
    encode(&RowsRefV1 {
        views: &record_views,
        rows: record_rows,
        tiles: &[],
    })
}

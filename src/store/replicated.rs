//! The store's side of a replicated log (cluster mode): the [`RowLog`] that [`Router::write`]
//! hands accepted rows to instead of the writer, and the way back: records read from the log are
//! applied to the shards unjournaled, as recovery applies journal records.
//!
//! The store knows nothing of NATS: `cluster` implements [`RowLog`].

use std::io;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::recovery::view_ids_of;
use super::router::{Router, StoreError};
use super::shard::{RowWrite, WriteOutcome};
use super::writer::journal_record;
use crate::persist::format::{decode, RowsV1};

/// Where accepted rows go in cluster mode; the log applies them (on every node) itself.
pub trait RowLog: Send + Sync {
    /// Resolves once the rows are durably in the log and applied on this node, with what
    /// applying them did.
    fn append(&self, rows: Vec<RowWrite>) -> BoxFuture<'static, Result<WriteOutcome, StoreError>>;
}

impl Router {
    /// This router with its writes sent to `log`; call before the router is cloned.
    pub fn with_log(mut self, log: Arc<dyn RowLog>) -> Router {
        self.log = Some(log);
        self
    }

    /// Rows as one record of the log (the journal's versioned format: views named, not
    /// numbered, so that every node reads them alike).
    pub fn encode_record(&self, rows: &[RowWrite]) -> Vec<u8> {
        journal_record(&self.views.load(), rows)
    }

    /// Applies a record read from the log, without journaling it; rows of views this node's
    /// repository does not have are skipped (and logged).
    pub async fn apply_record(&self, record: &[u8]) -> Result<WriteOutcome, StoreError> {
        let stored: RowsV1 =
            decode(record).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let views = self.views.load_full();
        let ids = view_ids_of(&views, &stored.views);
        let writes = stored
            .rows
            .into_iter()
            .filter_map(|row| {
                let view = ids.get(row.view as usize).copied().flatten()?;
                Some(RowWrite {
                    view,
                    layout: views.layout(view)?,
                    key: row.key,
                    event_time: row.event_time,
                    payload: row.payload,
                })
            })
            .collect();
        self.write_with(writes, false).await
    }
}

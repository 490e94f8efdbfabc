//! The feature store: shard actors that own partitions of feature rows, and the [`Router`] that
//! is the only way to reach them.
//!
//! The store knows views by id and keys as bytes; it knows nothing of feature services, JSON or
//! HTTP.

mod arena;
pub mod key;
mod layouts;
mod prefetch;
mod read_result;
mod recovery;
mod remote;
mod replicated;
mod reshape;
mod router;
pub mod row;
mod shard;
pub mod tiles;
mod views;
mod watermark;
mod writer;

#[cfg(test)]
mod concurrency_tests;

pub use layouts::{AcceptedLoss, WrittenLayouts};
pub use read_result::{ReadResult, ReadRow};
#[cfg(test)]
pub(crate) use recovery::tests::profile_row;
pub use recovery::{Reapply, Recovery};
pub use remote::{decode_forwarded_rows, RemoteRows};
pub use replicated::{LogForms, RowLog};
pub use reshape::plan_reshapes;
pub use router::{ReshapeUndo, Router, StoreError};
pub use shard::{
    Lookup, ReadContext, RowWrite, ShardUsage, StoredRow, ViewReshape, ViewUsage, WriteOutcome,
};

//! The feature store: shard actors that own partitions of feature rows, and the [`Router`] that
//! is the only way to reach them.
//!
//! The store knows views by id and keys as bytes; it knows nothing of feature services, JSON or
//! HTTP.

mod arena;
pub mod key;
mod recovery;
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

pub use recovery::Recovery;
pub use reshape::plan_reshapes;
pub use router::{ReadResult, Router, StoreError};
pub use shard::{
    Lookup, ReadContext, RowWrite, ShardUsage, StoredRow, ViewReshape, ViewUsage, WriteOutcome,
};

//! The shard actor: sole writer of one partition of feature rows and aggregation tiles.
//!
//! A partition is an index from (view, join key) to the newest row's place in the shard's arena,
//! plus its event timestamp, and, for aggregating views, each key's tiles. Ownership:
//! - the shard actor is the only writer: every write, compaction, arena growth and restore
//!   arrives as a message (one file per message family in this folder) and is applied under the
//!   partition's write lock, one batch at a time;
//! - request threads read the partition directly under its read lock ([`Partition::read`]),
//!   without a message round trip: a reader sees a batch entirely or not at all, never a torn
//!   row, and never an arena mapping that growth or compaction has dropped;
//! - a snapshot export runs on the actor under the read lock, so reads go on while one is taken,
//!   in bounded chunks between write batches, so writes go on too (see `export.rs`).

mod export;
mod read;
mod stats;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Context};
use parking_lot::RwLock;
use xxhash_rust::xxh3::Xxh3Builder;

pub use export::{ExportRows, RestoreRecords, RestoreTiles, ShardExport};
pub use read::{Lookup, ReadContext, StoredRow};
pub use stats::{ShardStats, ShardUsage};
pub use write::{ApplyRows, RowWrite, WriteOutcome};

use super::arena::{Arena, RowRef};
use super::tiles::TileSet;
use super::watermark::Watermarks;
use crate::registry::aggregation::AggregationSpec;
use crate::registry::ViewId;
use crate::time::Micros;

/// Where a key's current row is and when its event happened.
#[derive(Debug, Clone, Copy)]
struct Slot {
    row: RowRef,
    event_time: Micros,
}

/// One shard's rows and tiles: written by its shard actor only, read by anyone holding the
/// read lock.
pub struct Partition {
    /// Key: the view id (4 bytes, little-endian) followed by the encoded join key.
    index: HashMap<Box<[u8]>, Slot, Xxh3Builder>,
    arena: Arena,
    /// Aggregating views' tiles, keyed like `index`.
    tiles: HashMap<Box<[u8]>, TileSet, Xxh3Builder>,
    /// Arrival order of events, so that ties in event time go to the later write.
    arrivals: u64,
}

/// A partition as shared between its shard actor (the writer) and request threads (readers).
pub type SharedPartition = Arc<RwLock<Partition>>;

pub struct ShardActor {
    partition: SharedPartition,
    /// Per view id, how it aggregates (`None` for plain views).
    specs: Specs,
    /// Shared by every shard: the leading edge of `LATEST_EVENT_TIME` windows.
    watermarks: Arc<Watermarks>,
    /// The snapshot export under way, if any.
    export: Option<export::RunningExport>,
}

/// Per view id, the view's aggregation spec, if it aggregates.
pub type Specs = Arc<Vec<Option<Arc<AggregationSpec>>>>;

impl ShardActor {
    /// A shard with an empty partition, and the handle readers use to read it.
    pub fn new(
        arena_bytes: usize,
        specs: Specs,
        watermarks: Arc<Watermarks>,
    ) -> std::io::Result<(ShardActor, SharedPartition)> {
        let partition = Arc::new(RwLock::new(Partition {
            index: HashMap::with_hasher(Xxh3Builder::new()),
            arena: Arena::with_capacity(arena_bytes)?,
            tiles: HashMap::with_hasher(Xxh3Builder::new()),
            arrivals: 0,
        }));
        let actor = ShardActor {
            partition: Arc::clone(&partition),
            specs,
            watermarks,
            export: None,
        };
        Ok((actor, partition))
    }
}

/// The aggregation spec of `view`, if it aggregates.
fn spec_of(specs: &Specs, view: ViewId) -> Option<&Arc<AggregationSpec>> {
    specs.get(view as usize).and_then(Option::as_ref)
}

impl Actor for ShardActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The writer sends every batch without waiting; a deeper mailbox keeps it from parking.
        ctx.set_mailbox_capacity(4096);
    }
}

/// Writes `view`'s id and the encoded join key into `bytes` as an index key.
fn write_index_key(view: ViewId, key: &[u8], bytes: &mut Vec<u8>) {
    bytes.clear();
    bytes.extend_from_slice(&view.to_le_bytes());
    bytes.extend_from_slice(key);
}

/// The index key of (view, encoded join key).
fn index_key(view: ViewId, key: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 + key.len());
    write_index_key(view, key, &mut bytes);
    bytes
}

//! The shard actor: sole owner of one partition of feature rows and aggregation tiles.
//!
//! A partition is an index from (view, join key) to the newest row's place in the shard's arena,
//! plus its event timestamp, and, for aggregating views, each key's tiles. Nothing outside this actor touches the index or the arena; every
//! read and write arrives as a message (one file per message family in this folder).

mod export;
mod read;
mod stats;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Context};
use xxhash_rust::xxh3::Xxh3Builder;

pub use export::{ExportRows, RestoreTiles, ShardExport};
pub use read::{Lookup, ReadContext, ReadRows, StoredRow};
pub use stats::{ShardStats, ShardUsage};
pub use write::{ApplyRows, RowWrite, WriteOutcome};

use super::arena::{Arena, RowRef};
use super::tiles::TileSet;
use crate::registry::aggregation::AggregationSpec;
use crate::registry::ViewId;
use crate::time::Micros;

/// Where a key's current row is and when its event happened.
#[derive(Debug, Clone, Copy)]
struct Slot {
    row: RowRef,
    event_time: Micros,
}

pub struct ShardActor {
    /// Key: the view id (4 bytes, little-endian) followed by the encoded join key.
    index: HashMap<Box<[u8]>, Slot, Xxh3Builder>,
    arena: Arena,
    /// Aggregating views' tiles, keyed like `index`.
    tiles: HashMap<Box<[u8]>, TileSet, Xxh3Builder>,
    /// Per view id, how it aggregates (`None` for plain views).
    specs: Specs,
    /// The latest event time each aggregating view has seen in this shard (the leading edge
    /// of `LATEST_EVENT_TIME` windows).
    watermarks: HashMap<ViewId, Micros>,
    /// Arrival order of events, so that ties in event time go to the later write.
    arrivals: u64,
}

/// Per view id, the view's aggregation spec, if it aggregates.
pub type Specs = Arc<Vec<Option<Arc<AggregationSpec>>>>;

impl ShardActor {
    pub fn new(arena_bytes: usize, specs: Specs) -> std::io::Result<ShardActor> {
        Ok(ShardActor {
            index: HashMap::with_hasher(Xxh3Builder::new()),
            arena: Arena::with_capacity(arena_bytes)?,
            tiles: HashMap::with_hasher(Xxh3Builder::new()),
            specs,
            watermarks: HashMap::new(),
            arrivals: 0,
        })
    }

    fn spec(&self, view: ViewId) -> Option<&Arc<AggregationSpec>> {
        self.specs.get(view as usize).and_then(Option::as_ref)
    }
}

impl Actor for ShardActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Requests fan out to every shard at once; a deeper mailbox keeps senders from parking.
        ctx.set_mailbox_capacity(4096);
    }
}

/// The index key of (view, encoded join key).
fn index_key(view: ViewId, key: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 + key.len());
    bytes.extend_from_slice(&view.to_le_bytes());
    bytes.extend_from_slice(key);
    bytes
}

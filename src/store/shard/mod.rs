//! The shard actor: sole owner of one partition of feature rows.
//!
//! A partition is an index from (view, join key) to the newest row's place in the shard's arena,
//! plus its event timestamp. Nothing outside this actor touches the index or the arena; every
//! read and write arrives as a message (one file per message family in this folder).

mod export;
mod read;
mod stats;
mod write;

use std::collections::HashMap;

use actix::{Actor, Context};
use xxhash_rust::xxh3::Xxh3Builder;

pub use export::{ExportRows, ShardExport};
pub use read::{Lookup, ReadRows, StoredRow};
pub use stats::{ShardStats, ShardUsage};
pub use write::{ApplyRows, RowWrite, WriteOutcome};

use super::arena::{Arena, RowRef};
use crate::registry::time::Micros;
use crate::registry::ViewId;

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
}

impl ShardActor {
    pub fn new(arena_bytes: usize) -> std::io::Result<ShardActor> {
        Ok(ShardActor {
            index: HashMap::with_hasher(Xxh3Builder::new()),
            arena: Arena::with_capacity(arena_bytes)?,
        })
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

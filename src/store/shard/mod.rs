//! The shard actor: sole writer of one partition of feature rows and aggregation tiles.
//!
//! A partition is an index from (view, layout, join key) to the newest row's record in the
//! shard's arena (which holds its event time, payload and key: `index.rs`), and, for
//! aggregating views, each key's tiles. Ownership:
//! - the shard actor is the only writer: every write, compaction, arena growth and restore
//!   arrives as a message (one file per message family in this folder) and is applied under the
//!   partition's write lock, one batch at a time;
//! - request threads read the partition directly under its read lock ([`Partition::locate`],
//!   then [`Partition::read_located`]),
//!   without a message round trip: a reader sees a batch entirely or not at all, never a torn
//!   row, and never an arena mapping that growth or compaction has dropped;
//! - a snapshot export borrows the arena's records as they are at its cut and reads them on
//!   the snapshot writer's thread, so reads and writes go on while one is taken (see
//!   `export.rs`, and `arena.rs` for the loan);
//! - keys carry the view's layout, and the partition holds the [`StoreViews`] its data is
//!   stored for (specs, layouts, watermarks): an apply writes each reshaped view under its new
//!   layout beside the old one (`reshape.rs`), so requests begun before it still read the old
//!   data, which is dropped once they are done. The old layouts' arena records are flagged
//!   superseded at the reshape (no export after it copies them), while the index keeps
//!   pointing at them for those requests.

mod drop;
mod export;
#[cfg(test)]
mod faults;
mod index;
mod one_shot_xxh3;
mod read;
mod reshape;
mod stats;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Context};
use parking_lot::RwLock;

pub use drop::{DropKeys, DroppedKeys};
pub use export::{ExportRows, RestoreRecords, RestoreTiles, ShardExport};
use one_shot_xxh3::OneShotXxh3;
pub use read::{Lookup, ReadContext, StoredRow};
pub use reshape::{ReshapePartition, RetireLayouts, RevertReshape, ViewReshape};
use stats::ViewUsages;
pub use stats::{ShardStats, ShardUsage, ViewStats, ViewUsage};
pub use write::{ApplyRows, RowWrite, WriteOutcome};

use super::arena::Arena;
use super::key::OwnedKey;
use super::tiles::TileSet;
use super::views::StoreViews;
use crate::registry::{Layout, ViewId};
use index::RowIndex;

/// One shard's rows and tiles: written by its shard actor only, read by anyone holding the
/// read lock.
pub struct Partition {
    /// Plain views' rows: where each key's current record is in `arena`.
    index: RowIndex,
    arena: Arena,
    /// Aggregating views' tiles. Key: the view id and its layout (4 bytes each, little-endian),
    /// then the encoded join key, held in the map's slot when short (most keys): a boxed key
    /// cost a read one more dependent cache miss, to compare it.
    tiles: HashMap<OwnedKey, TileSet, OneShotXxh3>,
    /// Arrival order of events, so that ties in event time go to the later write.
    arrivals: u64,
    /// The views this data is stored for.
    views: Arc<StoreViews>,
    /// Between an apply and the end of the requests begun before it: the views the old layouts'
    /// data is stored for.
    retiring: Option<Arc<StoreViews>>,
    /// What the partition holds of each view in its current layout, kept up to date by every
    /// write and counted again after an apply.
    view_usage: ViewUsages,
}

/// A partition as shared between its shard actor (the writer) and request threads (readers).
pub type SharedPartition = Arc<RwLock<Partition>>;

pub struct ShardActor {
    partition: SharedPartition,
}

impl ShardActor {
    /// A shard with an empty partition for `views`, and the handle readers use to read it.
    pub fn new(
        arena_bytes: usize,
        views: Arc<StoreViews>,
    ) -> std::io::Result<(ShardActor, SharedPartition)> {
        let partition = Arc::new(RwLock::new(Partition {
            index: RowIndex::default(),
            arena: Arena::with_capacity(arena_bytes)?,
            tiles: HashMap::with_hasher(OneShotXxh3::random()),
            arrivals: 0,
            view_usage: ViewUsages::new(views.id_bound()),
            views,
            retiring: None,
        }));
        let actor = ShardActor {
            partition: Arc::clone(&partition),
        };
        Ok((actor, partition))
    }
}

impl Actor for ShardActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The writer sends every batch without waiting; a deeper mailbox keeps it from parking.
        ctx.set_mailbox_capacity(4096);
    }
}

/// The bytes before the join key in a tile key: view id and layout.
const KEY_PREFIX: usize = 8;

/// A tile key's first bytes: `view`'s id and `layout`, little-endian.
fn key_prefix(view: ViewId, layout: Layout) -> [u8; KEY_PREFIX] {
    let mut prefix = [0; KEY_PREFIX];
    prefix[..4].copy_from_slice(&view.to_le_bytes());
    prefix[4..].copy_from_slice(&layout.to_le_bytes());
    prefix
}

/// Writes `view`'s id and layout and the encoded join key into `bytes` as a tile key.
fn write_tile_key(view: ViewId, layout: Layout, key: &[u8], bytes: &mut Vec<u8>) {
    bytes.clear();
    bytes.extend_from_slice(&key_prefix(view, layout));
    bytes.extend_from_slice(key);
}

/// The view id and layout a tile key starts with.
fn view_of_key(key: &[u8]) -> (ViewId, Layout) {
    let word = |at: usize| u32::from_le_bytes(key[at..at + 4].try_into().expect("a key prefix"));
    (word(0), word(4))
}

/// The tile key of (view, layout, encoded join key), as the tiles map holds it.
fn tile_key(view: ViewId, layout: Layout, key: &[u8]) -> OwnedKey {
    OwnedKey::concat(&key_prefix(view, layout), key)
}

impl Partition {
    /// Compacts the arena when enough of it is dead, before a write of `incoming` record bytes
    /// (which might otherwise grow it), after a write or a drop. While layouts retire, the
    /// index still points at their released records: it waits for `RetireLayouts`, which
    /// compacts.
    fn compact_if_due(&mut self, incoming: usize) -> std::io::Result<()> {
        if self.retiring.is_none() && self.arena.wants_compaction(incoming) {
            self.arena.compact(self.index.records_mut())?;
        }
        Ok(())
    }

    /// True when `layout` is `view`'s current layout (not one an apply retired).
    fn is_current(&self, view: ViewId, layout: Layout) -> bool {
        self.views.layout(view) == Some(layout)
    }
}

//! `ExportRows`: a copy of every row of the shard, for a snapshot. Sent by the writer actor
//! right after it rotates the journal, so each shard exports exactly the writes journaled before
//! the rotation: together the shards' exports are a point-in-time cut.

use actix::{Handler, Message};
use tokio::sync::oneshot;

use super::ShardActor;
use crate::persist::format::RowV1;

pub struct ExportRows {
    pub done: oneshot::Sender<Vec<RowV1>>,
}

impl Message for ExportRows {
    type Result = ();
}

impl Handler<ExportRows> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: ExportRows, _: &mut Self::Context) {
        // Copying is the only work done in the shard's loop; encoding and writing happen elsewhere.
        let rows = self
            .index
            .iter()
            .map(|(key, slot)| RowV1 {
                view: u32::from_le_bytes(
                    key[..4]
                        .try_into()
                        .expect("index keys start with the view id"),
                ),
                key: key[4..].to_vec(),
                event_time: slot.event_time,
                payload: self.arena.get(slot.row).to_vec(),
            })
            .collect();
        let _ = msg.done.send(rows);
    }
}

//! `ReadRows`: fetch the current rows of many keys in one message.

use actix::{Handler, Message};

use super::ShardActor;
use crate::registry::time::Micros;
use crate::registry::ViewId;

#[derive(Debug, Clone)]
pub struct Lookup {
    pub view: ViewId,
    pub key: Vec<u8>,
}

/// A row as read: its event time and encoded values (copied out of the arena).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub event_time: Micros,
    pub payload: Vec<u8>,
}

pub struct ReadRows(pub Vec<Lookup>);

impl Message for ReadRows {
    type Result = Vec<Option<StoredRow>>;
}

impl Handler<ReadRows> for ShardActor {
    type Result = Vec<Option<StoredRow>>;

    fn handle(&mut self, msg: ReadRows, _: &mut Self::Context) -> Self::Result {
        let mut key = Vec::new();
        msg.0
            .iter()
            .map(|lookup| {
                key.clear();
                key.extend_from_slice(&lookup.view.to_le_bytes());
                key.extend_from_slice(&lookup.key);
                self.index.get(key.as_slice()).map(|slot| StoredRow {
                    event_time: slot.event_time,
                    payload: self.arena.get(slot.row).to_vec(),
                })
            })
            .collect()
    }
}

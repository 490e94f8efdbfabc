//! `Reshape`: an apply's new views table and what it does to stored data, sent to every shard
//! behind the writes journaled before it, so each shard reshapes exactly the rows written under
//! the old repository; writes made for the old layouts are refused from here on. `Revert`
//! undoes it the same way: behind every write sent before it.

use std::sync::Arc;

use actix::{Handler, Message};
use tokio::sync::oneshot;

use super::WriterActor;
use crate::registry::ViewId;
use crate::store::shard::{ReshapePartition, RevertReshape, ViewReshape};
use crate::store::views::StoreViews;

pub struct Reshape {
    pub views: Arc<StoreViews>,
    pub reshapes: Arc<Vec<(ViewId, ViewReshape)>>,
}

/// One receiver per shard; each resolves when that shard has reshaped its partition.
pub type Reshaped = Vec<oneshot::Receiver<std::io::Result<()>>>;

impl Message for Reshape {
    type Result = Reshaped;
}

impl Handler<Reshape> for WriterActor {
    type Result = Reshaped;

    fn handle(&mut self, msg: Reshape, _: &mut Self::Context) -> Self::Result {
        self.views = Arc::clone(&msg.views);
        self.layouts_journaled = false;
        self.shards
            .iter()
            .map(|shard| {
                let (done, receiver) = oneshot::channel();
                shard.do_send(ReshapePartition {
                    views: Arc::clone(&msg.views),
                    reshapes: Arc::clone(&msg.reshapes),
                    done,
                });
                receiver
            })
            .collect()
    }
}

/// Back to `views`, the table the last reshape replaced (see `RevertReshape`).
pub struct Revert {
    pub views: Arc<StoreViews>,
}

impl Message for Revert {
    type Result = Reshaped;
}

impl Handler<Revert> for WriterActor {
    type Result = Reshaped;

    fn handle(&mut self, msg: Revert, _: &mut Self::Context) -> Self::Result {
        self.views = msg.views;
        self.layouts_journaled = false;
        self.shards
            .iter()
            .map(|shard| {
                let (done, receiver) = oneshot::channel();
                shard.do_send(RevertReshape { done });
                receiver
            })
            .collect()
    }
}

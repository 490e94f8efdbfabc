//! Test builds only: a shard whose arena cannot grow (the memory an apply's copies need is not
//! there), so that tests reach a reshape that fails in one shard and not in the others; a shard
//! that stops, so that they reach an undo that fails in one.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix::{ActorContext, Handler, Message};

use super::ShardActor;
use crate::store::Router;

/// The shard's arena fails to grow from now on while `0` is set.
struct InjectGrowthFaults(Arc<AtomicBool>);

impl Message for InjectGrowthFaults {
    type Result = ();
}

impl Handler<InjectGrowthFaults> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: InjectGrowthFaults, _: &mut Self::Context) {
        self.partition.write().arena.inject_growth_faults(msg.0);
    }
}

/// The shard stops: the messages sent to it after this are not answered.
struct Stop;

impl Message for Stop {
    type Result = ();
}

impl Handler<Stop> for ShardActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Router {
    /// Shard `shard`'s arena fails to grow while `fails` is set (behind the messages already
    /// sent to it; a restore's arena, which replaces it, grows again).
    pub(crate) async fn inject_arena_growth_faults(&self, shard: usize, fails: Arc<AtomicBool>) {
        self.shards[shard]
            .send(InjectGrowthFaults(fails))
            .await
            .expect("the shard runs");
    }

    /// Shard `shard` stops (behind the messages already sent to it).
    pub(crate) async fn stop_shard(&self, shard: usize) {
        self.shards[shard].send(Stop).await.expect("the shard runs");
    }
}

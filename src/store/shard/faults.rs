//! Test builds only: a shard whose arena cannot grow (the memory an apply's copies need is not
//! there), so that tests reach a reshape that fails in one shard and not in the others.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix::{Handler, Message};

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

impl Router {
    /// Shard `shard`'s arena fails to grow while `fails` is set (behind the messages already
    /// sent to it; a restore's arena, which replaces it, grows again).
    pub(crate) async fn inject_arena_growth_faults(&self, shard: usize, fails: Arc<AtomicBool>) {
        self.shards[shard]
            .send(InjectGrowthFaults(fails))
            .await
            .expect("the shard runs");
    }
}

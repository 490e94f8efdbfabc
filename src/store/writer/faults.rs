//! Test builds only: a failing disk under the writer's journal (`persist::journal::faults`), so
//! that tests reach the writer's answers to a journal that refuses a record (an apply's undo).

use std::sync::{Arc, Mutex};

use actix::{Handler, Message};

use super::WriterActor;
use crate::persist::journal::faults::Faults;
use crate::store::Router;

/// The journal's current segment fails from now on as `0` says.
struct InjectFaults(Arc<Mutex<Faults>>);

impl Message for InjectFaults {
    type Result = ();
}

impl Handler<InjectFaults> for WriterActor {
    type Result = ();

    fn handle(&mut self, msg: InjectFaults, _: &mut Self::Context) {
        self.journal
            .as_mut()
            .expect("faults are injected into an attached journal")
            .inject_faults(msg.0);
    }
}

impl Router {
    /// The rows journal's current segment fails from now on as `faults` says (behind the
    /// messages already sent to the writer; a rotation's next segment is a plain file again).
    pub(crate) async fn inject_journal_faults(&self, faults: Arc<Mutex<Faults>>) {
        self.writer
            .send(InjectFaults(faults))
            .await
            .expect("the writer runs");
    }
}

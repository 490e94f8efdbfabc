//! `Delete`: remove a resource; a deleted user or service account leaves every group.

use actix::{Handler, Message};

use super::state::{Change, ResourceKind};
use super::DirectoryActor;
use crate::iam::scim::{ScimError, ScimErrorKind};
use crate::time::now_micros;

pub struct Delete {
    pub kind: ResourceKind,
    pub id: String,
}

impl Message for Delete {
    type Result = Result<(), ScimError>;
}

impl Handler<Delete> for DirectoryActor {
    type Result = Result<(), ScimError>;

    fn handle(&mut self, msg: Delete, _: &mut Self::Context) -> Self::Result {
        if self.state.get(msg.kind, &msg.id).is_none() {
            return Err(ScimError::new(
                ScimErrorKind::NotFound,
                format!("{} `{}` not found", msg.kind.schema().resource_type, msg.id),
            ));
        }
        let mut changes = match msg.kind {
            ResourceKind::Group => Vec::new(),
            _ => self.state.leave_groups(&msg.id, now_micros()),
        };
        changes.push(Change::Delete(msg.kind, msg.id));
        self.commit(changes)
    }
}

//! `Delete`: remove a resource; a deleted user or service account leaves every group.

use actix::{Handler, Message};

use super::state::{version_tag, Change, ResourceKind};
use super::DirectoryActor;
use crate::echo::echo;
use crate::iam::scim::etag::Preconditions;
use crate::iam::scim::{ScimError, ScimErrorKind};
use crate::time::now_micros;

pub struct Delete {
    pub kind: ResourceKind,
    pub id: String,
    pub preconditions: Preconditions,
}

impl Message for Delete {
    type Result = Result<(), ScimError>;
}

impl Handler<Delete> for DirectoryActor {
    type Result = Result<(), ScimError>;

    fn handle(&mut self, msg: Delete, _: &mut Self::Context) -> Self::Result {
        let existing = self.state.get(msg.kind, &msg.id).ok_or_else(|| {
            ScimError::new(
                ScimErrorKind::NotFound,
                format!(
                    "{} `{}` not found",
                    msg.kind.schema().resource_type,
                    echo(&msg.id)
                ),
            )
        })?;
        msg.preconditions.check(&version_tag(existing.version))?;
        let mut changes = match msg.kind {
            ResourceKind::Group => self.state.touch_members(Some(existing), None, now_micros()),
            _ => self.state.leave_groups(&msg.id, now_micros()),
        };
        changes.push(Change::Delete(msg.kind, msg.id, existing.version));
        self.commit(changes)
    }
}

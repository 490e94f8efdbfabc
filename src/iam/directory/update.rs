//! `Update`: PUT (replace every attribute) or PATCH (apply operations, then validate the whole
//! result). Tecton's rule: a user replaced with `active: false` is deleted, with its group
//! memberships and roles; PATCH deactivates softly, as identity providers expect.

use actix::{Handler, Message};
use serde_json::{Map, Value as Json};

use super::state::{version_tag, Change, ResourceKind};
use super::DirectoryActor;
use crate::echo::echo;
use crate::iam::scim::etag::Preconditions;
use crate::iam::scim::patch::apply_patch;
use crate::iam::scim::resource::validate_resource;
use crate::iam::scim::{ScimError, ScimErrorKind};
use crate::time::now_micros;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Replace,
    Patch,
}

pub struct Update {
    pub kind: ResourceKind,
    pub id: String,
    pub body: Json,
    pub mode: Mode,
    pub preconditions: Preconditions,
}

impl Message for Update {
    type Result = Result<Json, ScimError>;
}

impl Handler<Update> for DirectoryActor {
    type Result = Result<Json, ScimError>;

    fn handle(&mut self, msg: Update, _: &mut Self::Context) -> Self::Result {
        let schema = msg.kind.schema();
        let existing = self.state.get(msg.kind, &msg.id).ok_or_else(|| {
            ScimError::new(
                ScimErrorKind::NotFound,
                format!("{} `{}` not found", schema.resource_type, echo(&msg.id)),
            )
        })?;
        msg.preconditions.check(&version_tag(existing.version))?;
        let attributes: Map<String, Json> = match msg.mode {
            Mode::Replace => validate_resource(schema, &msg.body)?,
            Mode::Patch => {
                let mut patched = existing.attributes.clone();
                let current = self.state.render(msg.kind, existing);
                apply_patch(schema, &mut patched, &current, &msg.body)?;
                validate_resource(schema, &Json::Object(patched))?
            }
        };
        self.state.check(msg.kind, Some(&msg.id), &attributes)?;
        let now = now_micros();
        let mut entry = existing.clone();
        entry.attributes = attributes;
        entry.modified = now;
        entry.version += 1;
        let rendered = self.state.render(msg.kind, &entry);
        let deactivated = entry.attributes.get("active") == Some(&Json::Bool(false));
        let changes = if msg.kind == ResourceKind::User && msg.mode == Mode::Replace && deactivated
        {
            let mut changes = self.state.leave_groups(&msg.id, now);
            changes.push(Change::Delete(msg.kind, msg.id.clone(), existing.version));
            changes
        } else {
            let mut changes = self.state.touch_members(Some(existing), Some(&entry), now);
            changes.push(Change::Put(msg.kind, entry));
            changes
        };
        self.commit(changes)?;
        Ok(rendered)
    }
}

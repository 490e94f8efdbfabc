//! `Create`: validate and store a new user, group or service account. A service account gets
//! a new API key, returned in this answer only.

use actix::{Handler, Message};
use serde_json::Value as Json;

use super::state::{new_id, render, Change, Entry, ResourceKind};
use super::DirectoryActor;
use crate::iam::scim::resource::validate_resource;
use crate::iam::scim::ScimError;
use crate::iam::{generate_api_key, PrincipalRef};
use crate::time::now_micros;

pub struct Create {
    pub kind: ResourceKind,
    pub body: Json,
    /// Kept with a service account (Tecton shows it as the account's `creator`).
    pub caller: PrincipalRef,
}

impl Message for Create {
    type Result = Result<Json, ScimError>;
}

impl Handler<Create> for DirectoryActor {
    type Result = Result<Json, ScimError>;

    fn handle(&mut self, msg: Create, _: &mut Self::Context) -> Self::Result {
        let attributes = validate_resource(msg.kind.schema(), &msg.body)?;
        self.state.check(msg.kind, None, &attributes)?;
        let now = now_micros();
        let api_key = (msg.kind == ResourceKind::ServiceAccount).then(generate_api_key);
        let entry = Entry {
            id: new_id(),
            attributes,
            created: now,
            modified: now,
            version: 1,
            key_digest: api_key.as_deref().map(|key| self.hasher.digest(key)),
            creator: (msg.kind == ResourceKind::ServiceAccount).then_some(msg.caller),
        };
        // A new resource is in no group yet.
        let mut rendered = render(msg.kind, &entry, &[]);
        let mut changes = self.state.touch_members(None, Some(&entry), now);
        changes.push(Change::Put(msg.kind, entry));
        self.commit(changes)?;
        if let Some(key) = api_key {
            rendered["apiKey"] = Json::String(key);
        }
        Ok(rendered)
    }
}

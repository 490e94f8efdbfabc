//! `Get`, `CreatorOf` and `ListQuery`: read one resource or a service account's creator, or
//! filter, sort and page a resource type.

use actix::{Handler, Message};
use serde_json::Value as Json;

use super::state::{render, ResourceKind};
use super::DirectoryActor;
use crate::echo::echo;
use crate::iam::scim::filter::{get_ci, Filter};
use crate::iam::scim::resource::split_path;
use crate::iam::scim::{ScimError, ScimErrorKind};
use crate::iam::PrincipalRef;

pub struct Get {
    pub kind: ResourceKind,
    pub id: String,
}

impl Message for Get {
    type Result = Result<Json, ScimError>;
}

impl Handler<Get> for DirectoryActor {
    type Result = Result<Json, ScimError>;

    fn handle(&mut self, msg: Get, _: &mut Self::Context) -> Self::Result {
        self.state
            .get(msg.kind, &msg.id)
            .map(|entry| self.state.render(msg.kind, entry))
            .ok_or_else(|| {
                ScimError::new(
                    ScimErrorKind::NotFound,
                    format!(
                        "{} `{}` not found",
                        msg.kind.schema().resource_type,
                        echo(&msg.id)
                    ),
                )
            })
    }
}

/// The recorded creator of a service account.
pub struct CreatorOf {
    pub id: String,
}

impl Message for CreatorOf {
    type Result = Option<PrincipalRef>;
}

impl Handler<CreatorOf> for DirectoryActor {
    type Result = Option<PrincipalRef>;

    fn handle(&mut self, msg: CreatorOf, _: &mut Self::Context) -> Self::Result {
        self.state
            .get(ResourceKind::ServiceAccount, &msg.id)?
            .creator
            .clone()
    }
}

/// A list request: filter and sort (`sortBy` as an attribute path); paging is the caller's.
pub struct ListQuery {
    pub kind: ResourceKind,
    pub filter: Option<Filter>,
    pub sort_by: Option<String>,
    pub descending: bool,
}

impl Message for ListQuery {
    type Result = Result<Vec<Json>, ScimError>;
}

/// The sort key of a resource for an attribute path (`name.givenName`, an extension's
/// `urn:...:enterprise:2.0:User:department`); a multi-valued attribute sorts by its first value.
fn sort_key(resource: &Json, path: &str) -> String {
    let (top, sub) = split_path(path);
    let first = |value: &Json| match value {
        Json::Array(items) => items.first().cloned().unwrap_or(Json::Null),
        other => other.clone(),
    };
    let mut value = get_ci(resource, top).map(first).unwrap_or(Json::Null);
    if let Some(sub) = sub {
        value = get_ci(&value, sub).map(first).unwrap_or(Json::Null);
    }
    match value {
        Json::String(s) => s.to_lowercase(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

impl Handler<ListQuery> for DirectoryActor {
    type Result = Result<Vec<Json>, ScimError>;

    fn handle(&mut self, msg: ListQuery, _: &mut Self::Context) -> Self::Result {
        let memberships = self.state.memberships();
        // Entries iterate in id order, so pages are stable between requests.
        let mut matching: Vec<Json> = self
            .state
            .entries(msg.kind)
            .map(|entry| {
                let groups = match msg.kind {
                    ResourceKind::Group => None,
                    _ => memberships.get(entry.id.as_str()),
                };
                render(msg.kind, entry, groups.map_or(&[], Vec::as_slice))
            })
            .filter(|resource| msg.filter.as_ref().is_none_or(|f| f.matches(resource)))
            .collect();
        if let Some(path) = &msg.sort_by {
            matching.sort_by_cached_key(|resource| sort_key(resource, path));
        }
        if msg.descending {
            matching.reverse();
        }
        Ok(matching)
    }
}

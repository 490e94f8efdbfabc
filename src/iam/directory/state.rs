//! The directory's state and the rules every change obeys: uniqueness (caseless, after Unicode
//! normalisation), `userName` is an email, group members exist, roles are Tecton roles. Pure
//! data and functions; the actor around it journals and publishes. A user's or service
//! account's `groups` is not stored: it is computed from the groups' members when rendered, so
//! it is true after every membership change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{json, Map, Value as Json};

use super::KeyIndex;
use crate::echo::echo;
use crate::iam::roles::{read_roles, Grants};
use crate::iam::scim::names::fold;
use crate::iam::scim::schema::{ResourceSchema, GROUP, SERVICE_ACCOUNT, USER};
use crate::iam::scim::{ScimError, ScimErrorKind};
use crate::iam::{ApiKeyDigest, Principal, PrincipalKind, PrincipalRef};
use crate::time::{format_timestamp, Micros};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    User,
    Group,
    ServiceAccount,
}

impl ResourceKind {
    pub fn schema(self) -> &'static ResourceSchema {
        match self {
            ResourceKind::User => &USER,
            ResourceKind::Group => &GROUP,
            ResourceKind::ServiceAccount => &SERVICE_ACCOUNT,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            ResourceKind::User => 0,
            ResourceKind::Group => 1,
            ResourceKind::ServiceAccount => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<ResourceKind> {
        [
            ResourceKind::User,
            ResourceKind::Group,
            ResourceKind::ServiceAccount,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }

    /// The attribute that must be unique, case-insensitively.
    fn unique_attribute(self) -> &'static str {
        match self {
            ResourceKind::User => "userName",
            ResourceKind::Group => "displayName",
            ResourceKind::ServiceAccount => "name",
        }
    }
}

/// One stored resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub attributes: Map<String, Json>,
    pub created: Micros,
    pub modified: Micros,
    pub version: u64,
    /// Service accounts only.
    pub key_digest: Option<ApiKeyDigest>,
    /// Who created it (service accounts; `None` when created before creators were kept).
    /// Not a SCIM attribute: never rendered, filtered or patched.
    pub creator: Option<PrincipalRef>,
}

/// One change; a request yields a list of them, journaled together.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Put(ResourceKind, Entry),
    /// The resource and the version deleted (0: not recorded, in records before version 3).
    Delete(ResourceKind, String, u64),
}

#[derive(Debug, Default)]
pub struct DirectoryState {
    resources: BTreeMap<ResourceKind, BTreeMap<String, Entry>>,
}

fn error(kind: ScimErrorKind, detail: impl Into<String>) -> ScimError {
    ScimError::new(kind, detail)
}

/// A plausible email: one `@`, text on both sides, a dot in the domain, no spaces.
fn is_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !text.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

impl DirectoryState {
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Put(kind, entry) => {
                self.resources
                    .entry(kind)
                    .or_default()
                    .insert(entry.id.clone(), entry);
            }
            Change::Delete(kind, id, _) => {
                if let Some(entries) = self.resources.get_mut(&kind) {
                    entries.remove(&id);
                }
            }
        }
    }

    /// Applies one request's changes, all or none, if they still hold: each put follows the
    /// version it was made from (or creates a resource that is absent) and obeys `check`,
    /// each delete finds its resource. Used in cluster mode, where a change is checked on its
    /// node and then applied from the stream, after whatever other nodes changed meanwhile:
    /// the rules read only the state, so every node refuses the same changes.
    pub fn apply_checked(&mut self, changes: Vec<Change>) -> Result<(), ScimError> {
        let mut undo: Vec<(ResourceKind, String, Option<Entry>)> = Vec::new();
        for change in changes {
            let (kind, id) = match &change {
                Change::Put(kind, entry) => (*kind, entry.id.clone()),
                Change::Delete(kind, id, _) => (*kind, id.clone()),
            };
            let before = self.get(kind, &id).cloned();
            if let Err(refusal) = self.still_holds(&change, before.as_ref()) {
                for (kind, id, entry) in undo.into_iter().rev() {
                    self.apply(match entry {
                        Some(entry) => Change::Put(kind, entry),
                        None => Change::Delete(kind, id, 0),
                    });
                }
                return Err(refusal);
            }
            self.apply(change);
            undo.push((kind, id, before));
        }
        Ok(())
    }

    /// Whether `change` may apply to the resource as it is now (`current`): a put or a
    /// delete made from the version it still has.
    fn still_holds(&self, change: &Change, current: Option<&Entry>) -> Result<(), ScimError> {
        let not_found = |kind: ResourceKind, id: &str| {
            error(
                ScimErrorKind::NotFound,
                format!("{} `{}` not found", kind.schema().resource_type, echo(id)),
            )
        };
        let (kind, id, made_from) = match change {
            Change::Put(kind, entry) => (*kind, &entry.id, entry.version.saturating_sub(1)),
            Change::Delete(kind, id, version) => (*kind, id, *version),
        };
        match (current.map(|e| e.version), change) {
            (None, Change::Delete(..)) => Err(not_found(kind, id)),
            (None, Change::Put(..)) if made_from != 0 => Err(not_found(kind, id)),
            // Not recorded: a delete from a build before version 3 records.
            (Some(_), Change::Delete(_, _, 0)) => Ok(()),
            (Some(now), _) if now != made_from => Err(error(
                ScimErrorKind::PreconditionFailed,
                format!(
                    "{} `{}` was changed meanwhile (its version is now {}): read it again and retry",
                    kind.schema().resource_type,
                    echo(id),
                    version_tag(now)
                ),
            )),
            (_, Change::Put(kind, entry)) => self.check(*kind, Some(id), &entry.attributes),
            (_, Change::Delete(..)) => Ok(()),
        }
    }

    pub fn get(&self, kind: ResourceKind, id: &str) -> Option<&Entry> {
        self.resources.get(&kind)?.get(id)
    }

    pub fn entries(&self, kind: ResourceKind) -> impl Iterator<Item = &Entry> {
        self.resources
            .get(&kind)
            .into_iter()
            .flat_map(|entries| entries.values())
    }

    pub fn all(&self) -> impl Iterator<Item = (ResourceKind, &Entry)> {
        self.resources
            .iter()
            .flat_map(|(kind, entries)| entries.values().map(move |e| (*kind, e)))
    }

    /// Checks the rules for storing `attributes` as `kind` (excluding resource `id` itself
    /// from uniqueness).
    pub fn check(
        &self,
        kind: ResourceKind,
        id: Option<&str>,
        attributes: &Map<String, Json>,
    ) -> Result<(), ScimError> {
        let unique = kind.unique_attribute();
        let value = attributes
            .get(unique)
            .and_then(Json::as_str)
            .unwrap_or_default();
        if kind == ResourceKind::User && !is_email(value) {
            return Err(error(
                ScimErrorKind::InvalidValue,
                format!("userName `{}` must be an email address", echo(value)),
            ));
        }
        let folded = fold(value);
        if self.entries(kind).any(|e| {
            Some(e.id.as_str()) != id
                && e.attributes
                    .get(unique)
                    .and_then(Json::as_str)
                    .is_some_and(|v| fold(v) == folded)
        }) {
            return Err(error(
                ScimErrorKind::Uniqueness,
                format!(
                    "a {} with {unique} `{}` already exists",
                    kind.schema().resource_type,
                    echo(value)
                ),
            ));
        }
        read_roles(attributes.get("roles"), &mut Grants::default())
            .map_err(|e| error(ScimErrorKind::InvalidValue, e))?;
        if let Some(Json::Array(members)) = attributes.get("members") {
            for (i, member) in members.iter().enumerate() {
                let member_id = member
                    .get("value")
                    .and_then(Json::as_str)
                    .unwrap_or_default();
                let known = self.get(ResourceKind::User, member_id).is_some()
                    || self.get(ResourceKind::ServiceAccount, member_id).is_some();
                if !known {
                    return Err(error(
                        ScimErrorKind::InvalidValue,
                        format!(
                            "members[{i}].value `{}` is not a user or service account",
                            echo(member_id)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The resource as SCIM returns it, with its current groups.
    pub fn render(&self, kind: ResourceKind, entry: &Entry) -> Json {
        let groups = match kind {
            ResourceKind::Group => Vec::new(),
            _ => self.groups_of(&entry.id),
        };
        render(kind, entry, &groups)
    }

    /// Every member's groups, to render many resources with one pass over the groups.
    pub fn memberships(&self) -> HashMap<&str, Vec<&Entry>> {
        let mut memberships: HashMap<&str, Vec<&Entry>> = HashMap::new();
        for group in self.entries(ResourceKind::Group) {
            if let Some(Json::Array(members)) = group.attributes.get("members") {
                for member in members.iter().filter_map(|m| m.get("value")?.as_str()) {
                    memberships.entry(member).or_default().push(group);
                }
            }
        }
        memberships
    }

    /// The groups `member_id` belongs to.
    fn groups_of(&self, member_id: &str) -> Vec<&Entry> {
        self.entries(ResourceKind::Group)
            .filter(|g| match g.attributes.get("members") {
                Some(Json::Array(members)) => members
                    .iter()
                    .any(|m| m.get("value").and_then(Json::as_str) == Some(member_id)),
                _ => false,
            })
            .collect()
    }

    /// Changes that drop `member_id` from every group (when it is deleted).
    pub fn leave_groups(&self, member_id: &str, now: Micros) -> Vec<Change> {
        self.groups_of(member_id)
            .into_iter()
            .map(|group| {
                let mut group = group.clone();
                if let Some(Json::Array(members)) = group.attributes.get_mut("members") {
                    members.retain(|m| m.get("value").and_then(Json::as_str) != Some(member_id));
                }
                group.modified = now;
                group.version += 1;
                Change::Put(ResourceKind::Group, group)
            })
            .collect()
    }

    /// Changes that bump the version of every member whose `groups` a group change alters
    /// (it joined, left, or its group was renamed), so that a member's ETag changes whenever
    /// its representation does. `before`/`after`: the group before and after (`None`: created
    /// or deleted).
    pub fn touch_members(
        &self,
        before: Option<&Entry>,
        after: Option<&Entry>,
        now: Micros,
    ) -> Vec<Change> {
        let members = |group: Option<&Entry>| -> BTreeSet<String> {
            match group.and_then(|g| g.attributes.get("members")) {
                Some(Json::Array(members)) => members
                    .iter()
                    .filter_map(|m| Some(m.get("value")?.as_str()?.to_string()))
                    .collect(),
                _ => BTreeSet::new(),
            }
        };
        let (old, new) = (members(before), members(after));
        let renamed = match (before, after) {
            (Some(b), Some(a)) => {
                b.attributes.get("displayName") != a.attributes.get("displayName")
            }
            _ => false,
        };
        let affected: BTreeSet<&String> = if renamed {
            old.union(&new).collect()
        } else {
            old.symmetric_difference(&new).collect()
        };
        affected
            .into_iter()
            .filter_map(|id| {
                [ResourceKind::User, ResourceKind::ServiceAccount]
                    .into_iter()
                    .find_map(|kind| self.get(kind, id).map(|member| (kind, member)))
            })
            .map(|(kind, member)| {
                let mut member = member.clone();
                member.version += 1;
                member.modified = now;
                Change::Put(kind, member)
            })
            .collect()
    }

    /// What a principal may do: its own roles and its groups'.
    pub fn principal(&self, kind: ResourceKind, entry: &Entry) -> Principal {
        let mut grants = Grants::default();
        // Stored roles were checked when written.
        let _ = read_roles(entry.attributes.get("roles"), &mut grants);
        let groups = self.groups_of(&entry.id);
        for group in &groups {
            let _ = read_roles(group.attributes.get("roles"), &mut grants);
        }
        let name_attribute = kind.unique_attribute();
        Principal {
            kind: if kind == ResourceKind::User {
                PrincipalKind::User
            } else {
                PrincipalKind::ServiceAccount
            },
            id: entry.id.clone(),
            name: entry
                .attributes
                .get(name_attribute)
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string(),
            is_admin: grants.is_admin,
            groups: groups.iter().map(|g| g.id.clone()).collect(),
            workspace_roles: grants.workspace_roles,
            secret_scope_roles: grants.secret_scope_roles,
        }
    }

    /// Every active service account's key digest and principal.
    pub fn key_index(&self) -> KeyIndex {
        let mut index = KeyIndex::default();
        for entry in self.entries(ResourceKind::ServiceAccount) {
            let active = entry
                .attributes
                .get("active")
                .and_then(Json::as_bool)
                .unwrap_or(true);
            if let (true, Some(digest)) = (active, entry.key_digest) {
                index.insert(
                    digest,
                    Arc::new(self.principal(ResourceKind::ServiceAccount, entry)),
                );
            }
        }
        index
    }
}

/// The resource as SCIM returns it; `groups` are the groups it is a member of. References
/// (`meta.location`, a group's `$ref`) are relative to the SCIM base URL, which only `http`
/// knows; filters and PATCH paths see the resource as rendered here.
pub fn render(kind: ResourceKind, entry: &Entry, groups: &[&Entry]) -> Json {
    let schema = kind.schema();
    let mut object = Map::new();
    object.insert(
        "schemas".into(),
        json!(schema.schemas_of(&entry.attributes)),
    );
    object.insert("id".into(), Json::String(entry.id.clone()));
    for (key, value) in &entry.attributes {
        object.insert(key.clone(), value.clone());
    }
    if !groups.is_empty() {
        let groups: Vec<Json> = groups
            .iter()
            .map(|group| {
                json!({
                    "value": group.id,
                    "$ref": format!("{}/{}", GROUP.endpoint, group.id),
                    "display": group.attributes.get("displayName"),
                    "type": "direct",
                })
            })
            .collect();
        object.insert("groups".into(), Json::Array(groups));
    }
    object.insert(
        "meta".into(),
        json!({
            "resourceType": schema.resource_type,
            "created": format_timestamp(entry.created),
            "lastModified": format_timestamp(entry.modified),
            "location": format!("{}/{}", schema.endpoint, entry.id),
            "version": version_tag(entry.version),
        }),
    );
    Json::Object(object)
}

/// The weak ETag of a version.
pub fn version_tag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// A new opaque id.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    orion::util::secure_rand_bytes(&mut bytes)
        .expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, attributes: Json) -> Entry {
        Entry {
            id: id.into(),
            attributes: attributes.as_object().unwrap().clone(),
            created: 0,
            modified: 0,
            version: 1,
            key_digest: Some(ApiKeyDigest([id.len() as u8; 32])),
            creator: None,
        }
    }

    #[test]
    fn uniqueness_is_case_insensitive_and_user_names_are_emails() {
        let mut state = DirectoryState::default();
        state.apply(Change::Put(
            ResourceKind::User,
            entry("u1", json!({"userName": "Ann@x.io"})),
        ));
        let clash = json!({"userName": "ann@X.IO"});
        assert_eq!(
            state
                .check(ResourceKind::User, None, clash.as_object().unwrap())
                .unwrap_err()
                .kind,
            ScimErrorKind::Uniqueness
        );
        assert!(
            state
                .check(ResourceKind::User, Some("u1"), clash.as_object().unwrap())
                .is_ok(),
            "a resource does not clash with itself"
        );
        let not_email = json!({"userName": "ann"});
        assert!(state
            .check(ResourceKind::User, None, not_email.as_object().unwrap())
            .unwrap_err()
            .detail
            .contains("email"));
        let ghost = json!({"displayName": "g", "members": [{"value": "nobody"}]});
        assert!(state
            .check(ResourceKind::Group, None, ghost.as_object().unwrap())
            .unwrap_err()
            .detail
            .contains("members[0]"));
    }

    #[test]
    fn changes_that_no_longer_hold_are_refused_whole_when_applied() {
        let mut state = DirectoryState::default();
        let ann = entry("u1", json!({"userName": "ann@x.io"}));
        state
            .apply_checked(vec![Change::Put(ResourceKind::User, ann.clone())])
            .unwrap();
        // Another node created the same userName under another id first.
        let twin = entry("u2", json!({"userName": "ANN@x.io"}));
        let refused = state.apply_checked(vec![Change::Put(ResourceKind::User, twin)]);
        assert_eq!(refused.unwrap_err().kind, ScimErrorKind::Uniqueness);
        // Two updates made from version 1: the first wins, the second is refused, and a
        // group put earlier in the refused record is undone.
        let mut first = ann.clone();
        first.version = 2;
        first.attributes.insert("title".into(), json!("first"));
        state
            .apply_checked(vec![Change::Put(ResourceKind::User, first.clone())])
            .unwrap();
        let group = entry("g1", json!({"displayName": "g"}));
        let mut second = ann.clone();
        second.version = 2;
        let refused = state.apply_checked(vec![
            Change::Put(ResourceKind::Group, group),
            Change::Put(ResourceKind::User, second),
        ]);
        assert_eq!(refused.unwrap_err().kind, ScimErrorKind::PreconditionFailed);
        assert_eq!(state.get(ResourceKind::User, "u1"), Some(&first));
        assert!(state.get(ResourceKind::Group, "g1").is_none());
        // A delete made from version 1 loses to the update too; one made from 2 applies.
        let delete = |version| Change::Delete(ResourceKind::User, "u1".into(), version);
        let refused = state.apply_checked(vec![delete(1)]);
        assert_eq!(refused.unwrap_err().kind, ScimErrorKind::PreconditionFailed);
        state.apply_checked(vec![delete(2)]).unwrap();
        // Deleted meanwhile: an update or a second delete finds nothing.
        let mut late = first.clone();
        late.version = 3;
        for change in [Change::Put(ResourceKind::User, late), delete(2)] {
            let refused = state.apply_checked(vec![change]);
            assert_eq!(refused.unwrap_err().kind, ScimErrorKind::NotFound);
        }
    }

    #[test]
    fn every_unique_name_taken_meanwhile_is_refused_when_applied_as_when_requested() {
        let names = [
            (
                ResourceKind::User,
                json!({"userName": "Ann@x.io"}),
                json!({"userName": "ann@X.IO"}),
            ),
            (
                ResourceKind::Group,
                json!({"displayName": "Caf\u{e9} Team"}),
                json!({"displayName": "CAFE\u{301} team"}),
            ),
            (
                ResourceKind::ServiceAccount,
                json!({"name": "CI"}),
                json!({"name": "ci"}),
            ),
        ];
        let everything = |state: &DirectoryState| -> Vec<(ResourceKind, Entry)> {
            state.all().map(|(kind, e)| (kind, e.clone())).collect()
        };
        for (kind, taken, twin) in names {
            let mut state = DirectoryState::default();
            state
                .apply_checked(vec![Change::Put(kind, entry("first", taken))])
                .unwrap();
            let before = everything(&state);
            // What a request for the twin is answered on a node that has the first already...
            let requested = state
                .check(kind, None, twin.as_object().unwrap())
                .unwrap_err();
            assert_eq!(requested.kind, ScimErrorKind::Uniqueness);
            // ...is what its record is answered where the first came before it in the stream;
            // a resource put earlier in the same record is undone.
            let other = entry("other", json!({"userName": "other@x.io"}));
            let applied = state.apply_checked(vec![
                Change::Put(ResourceKind::User, other),
                Change::Put(kind, entry("second", twin)),
            ]);
            assert_eq!(applied, Err(requested), "{kind:?}");
            assert_eq!(everything(&state), before, "{kind:?}");
        }
    }

    #[test]
    fn members_whose_groups_change_get_a_new_version() {
        let mut state = DirectoryState::default();
        for id in ["a", "b", "c"] {
            state.apply(Change::Put(
                ResourceKind::User,
                entry(id, json!({"userName": format!("{id}@x.io")})),
            ));
        }
        let group = |name: &str, members: &[&str]| {
            let members: Vec<Json> = members.iter().map(|m| json!({"value": m})).collect();
            entry("g", json!({"displayName": name, "members": members}))
        };
        let touched = |changes: Vec<Change>| -> Vec<(String, u64)> {
            changes
                .into_iter()
                .map(|change| match change {
                    Change::Put(_, e) => (e.id, e.version),
                    Change::Delete(_, id, _) => (id, 0),
                })
                .collect()
        };
        let (ab, bc) = (group("g", &["a", "b"]), group("g", &["b", "c"]));
        assert_eq!(
            touched(state.touch_members(Some(&ab), Some(&bc), 9)),
            vec![("a".to_string(), 2), ("c".to_string(), 2)],
            "b stays, a leaves, c joins"
        );
        assert_eq!(
            touched(state.touch_members(Some(&ab), Some(&group("h", &["a", "b"])), 9)).len(),
            2,
            "a rename changes every member's groups"
        );
        assert_eq!(touched(state.touch_members(Some(&ab), None, 9)).len(), 2);
    }

    #[test]
    fn group_roles_reach_members_and_inactive_accounts_have_no_key() {
        let mut state = DirectoryState::default();
        state.apply(Change::Put(
            ResourceKind::ServiceAccount,
            entry("sa", json!({"name": "bot", "active": true})),
        ));
        state.apply(Change::Put(
            ResourceKind::ServiceAccount,
            entry("off", json!({"name": "old", "active": false})),
        ));
        state.apply(Change::Put(ResourceKind::Group, entry("g", json!({"displayName": "g", "members": [{"value": "sa"}], "roles": [{"type": "workspace_prod", "value": "editor"}]}))));
        let index = state.key_index();
        assert_eq!(index.len(), 1);
        let principal = index.values().next().unwrap();
        assert_eq!(principal.groups, vec!["g".to_string()]);
        assert!(principal.has_role("prod", crate::iam::Role::Consumer));
        for change in state.leave_groups("sa", 5) {
            state.apply(change);
        }
        assert!(!state
            .key_index()
            .values()
            .next()
            .unwrap()
            .has_role("prod", crate::iam::Role::Viewer));
    }
}

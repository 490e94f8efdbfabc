//! The vault's state: Tecton secret scopes, TrueFoundry secret groups and Tinybird secrets,
//! each value held only as ciphertext; the changes a request makes; and the role rules of
//! Tecton scopes. Pure data and functions; the actor around it journals and answers.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use super::tecton::MAX_SECRETS_PER_SCOPE;
use super::tinybird::MAX_SECRETS as TINYBIRD_MAX_SECRETS;
use super::truefoundry::MAX_SECRETS_PER_GROUP;
use super::SecretsError;
use crate::iam::{Principal, PrincipalKind, PrincipalRef};
use crate::time::Micros;

/// A ciphertext and its version (part of its associated data).
#[derive(Debug, Clone, PartialEq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub version: u64,
    pub created: Micros,
    pub updated: Micros,
}

impl Sealed {
    /// The version a secret is created with.
    pub const FIRST_VERSION: u64 = 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScopeRole {
    Reader,
    Writer,
    Manager,
}

impl ScopeRole {
    /// The seed's names and Tecton's SDK names.
    pub fn parse(text: &str) -> Option<ScopeRole> {
        match text {
            "read_scope_role" | "secret_scope_reader" => Some(ScopeRole::Reader),
            "write_scope_role" | "secret_scope_writer" => Some(ScopeRole::Writer),
            "manage_scope_role" | "secret_scope_manager" => Some(ScopeRole::Manager),
            _ => None,
        }
    }

    /// The seed's name.
    pub fn name(self) -> &'static str {
        match self {
            ScopeRole::Reader => "read_scope_role",
            ScopeRole::Writer => "write_scope_role",
            ScopeRole::Manager => "manage_scope_role",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalType {
    User,
    ServiceAccount,
    Group,
    Workspace,
}

/// A role on a scope given to a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub principal_type: PrincipalType,
    pub principal_id: String,
    pub role: ScopeRole,
}

/// A Tecton secret scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    pub name: String,
    pub created: Micros,
    pub secrets: BTreeMap<String, Sealed>,
    pub assignments: Vec<Assignment>,
}

impl Scope {
    /// The strongest role `principal` holds here: admins manage everything; assignments to
    /// the principal, to its groups and to workspaces it has a role on count, and so do SCIM
    /// `secret_scope_<scope>` roles.
    pub fn role_of(&self, principal: &Principal) -> Option<ScopeRole> {
        if principal.is_admin {
            return Some(ScopeRole::Manager);
        }
        let from_assignments = self
            .assignments
            .iter()
            .filter(|a| assignment_applies(a, principal))
            .map(|a| a.role);
        let from_scim = principal
            .secret_scope_roles
            .iter()
            .filter(|(scope, _)| scope == &self.name)
            .filter_map(|(_, role)| ScopeRole::parse(role));
        from_assignments.chain(from_scim).max()
    }
}

fn assignment_applies(assignment: &Assignment, principal: &Principal) -> bool {
    let id = assignment.principal_id.as_str();
    match assignment.principal_type {
        PrincipalType::User => principal.kind == PrincipalKind::User && principal.id == id,
        PrincipalType::ServiceAccount => {
            principal.kind == PrincipalKind::ServiceAccount && principal.id == id
        }
        PrincipalType::Group => principal.groups.iter().any(|g| g == id),
        // A workspace grant reaches every key with a role on that workspace.
        PrincipalType::Workspace => principal
            .workspace_roles
            .iter()
            .any(|r| r.workspace.as_deref().is_none_or(|w| w == id)),
    }
}

/// One version of a TrueFoundry secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TfVersion {
    pub id: String,
    pub sealed: Sealed,
}

/// A key of a TrueFoundry secret group, with its newest versions (at most `MAX_VERSIONS_KEPT`).
#[derive(Debug, Clone, PartialEq)]
pub struct TfSecret {
    pub id: String,
    pub key: String,
    pub created: Micros,
    pub updated: Micros,
    pub versions: Vec<TfVersion>,
}

impl TfSecret {
    pub fn latest(&self) -> &TfVersion {
        self.versions.last().expect("a secret always has a version")
    }
}

/// A TrueFoundry secret group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub integration_id: Option<String>,
    pub manifest: Option<Json>,
    /// Who created it; the creator administers it.
    pub created_by: PrincipalRef,
    pub created: Micros,
    pub updated: Micros,
    pub secrets: BTreeMap<String, TfSecret>,
}

/// What a principal may do with a TrueFoundry group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupAccess {
    Viewer,
    Editor,
    Admin,
}

impl Group {
    /// Marks the group changed at `now`. `updated` is kept after `created` (whatever the clock
    /// of the node making the change says), so that a put of the group's fields tells a change
    /// from a creation (`is_created`) when another node deleted the group meanwhile.
    pub fn touch(&mut self, now: Micros) {
        self.updated = now.max(self.created + 1);
    }

    /// Whether these fields are a creation's: a change moves `updated` past `created`.
    pub fn is_created(&self) -> bool {
        self.updated == self.created
    }

    /// The group's own fields, with no secrets (what `Change::PutGroup` carries).
    pub fn without_secrets(&self) -> Group {
        Group {
            id: self.id.clone(),
            name: self.name.clone(),
            integration_id: self.integration_id.clone(),
            manifest: self.manifest.clone(),
            created_by: self.created_by.clone(),
            created: self.created,
            updated: self.updated,
            secrets: BTreeMap::new(),
        }
    }

    /// Admins administer every group; everyone else has the group's own grant to them
    /// ([`Group::granted_to`]).
    pub fn access_of(&self, principal: &Principal) -> Option<GroupAccess> {
        if principal.is_admin {
            return Some(GroupAccess::Admin);
        }
        self.granted_to(principal)
    }

    /// What the group itself grants `principal`, its account's admin rights aside: the creator
    /// administers it; manifest collaborators (`user:<email>` / `serviceaccount:<name>` with
    /// `secret-group-admin|editor|viewer`) get their role. A `serviceaccount:` collaborator
    /// written since Quiver binds them holds the account's id ([`COLLABORATOR_ID`]) and reaches
    /// that account only, not a later one that took the name of a deleted one.
    pub fn granted_to(&self, principal: &Principal) -> Option<GroupAccess> {
        if self.created_by.id == principal.id {
            return Some(GroupAccess::Admin);
        }
        let collaborators = self
            .manifest
            .as_ref()
            .and_then(|m| m.get("collaborators"))
            .and_then(Json::as_array)?;
        collaborators
            .iter()
            .filter(|c| {
                let subject = c.get("subject").and_then(Json::as_str).unwrap_or_default();
                match subject.split_once(':') {
                    Some(("user", email)) => {
                        principal.kind == PrincipalKind::User
                            && principal.name.eq_ignore_ascii_case(email)
                    }
                    // Service account names are unique regardless of case, as emails are.
                    Some(("serviceaccount", name)) => {
                        principal.kind == PrincipalKind::ServiceAccount
                            && match c.get(COLLABORATOR_ID).and_then(Json::as_str) {
                                Some(id) => principal.id == id,
                                None => principal.name.eq_ignore_ascii_case(name),
                            }
                    }
                    _ => false,
                }
            })
            .filter_map(|c| match c.get("role_id").and_then(Json::as_str)? {
                "secret-group-admin" => Some(GroupAccess::Admin),
                "secret-group-editor" => Some(GroupAccess::Editor),
                "secret-group-viewer" => Some(GroupAccess::Viewer),
                _ => None,
            })
            .max()
    }
}

/// The field of a stored manifest's `serviceaccount:` collaborator that holds the id of the
/// account it named when the manifest was written (the HTTP layer adds it, and leaves it out of
/// every answer; a client cannot send it, as a manifest's collaborators take only `subject`
/// and `role_id`).
pub const COLLABORATOR_ID: &str = "quiver_principal_id";

/// `manifest` with each `serviceaccount:` collaborator that `stored` (the group's manifest
/// until now) already names keeping the account `stored` bound it to: a client edits the
/// manifest it was answered, which shows no ids, so a subject sent again is bound anew, and
/// would pass to a new account that took a deleted one's name.
pub fn keep_collaborator_ids(stored: Option<&Json>, mut manifest: Json) -> Json {
    let bound: Vec<(&str, &Json)> = stored
        .and_then(|m| m.get("collaborators"))
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c.get("subject")?.as_str()?, c.get(COLLABORATOR_ID)?)))
        .collect();
    let entries = manifest
        .get_mut("collaborators")
        .and_then(Json::as_array_mut);
    for entry in entries.into_iter().flatten() {
        let subject = entry.get("subject").and_then(Json::as_str);
        let kept = subject.and_then(|subject| {
            bound
                .iter()
                .find(|(stored, _)| stored.eq_ignore_ascii_case(subject))
                .map(|(_, id)| (*id).clone())
        });
        if let (Some(id), Some(entry)) = (kept, entry.as_object_mut()) {
            entry.insert(COLLABORATOR_ID.to_string(), id);
        }
    }
    manifest
}

/// Versions of a TrueFoundry secret kept (the newest): every version is listed in each answer
/// about its group, so an unbounded history made a group's answer grow with every update of
/// it. Only the newest version's value is ever read.
pub const MAX_VERSIONS_KEPT: usize = 100;

/// A Tinybird secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TbSecret {
    pub name: String,
    pub sealed: Sealed,
    pub edited_by: String,
}

impl TbSecret {
    /// Whether this put creates the secret: a creation seals the first version, an update the
    /// one after the stored.
    pub fn is_created(&self) -> bool {
        self.sealed.version == Sealed::FIRST_VERSION
    }
}

/// The keys one record adds to and takes from one scope, group or the Tinybird list (keys
/// held before it, put again, are neither).
#[derive(Default)]
struct Growth<'a> {
    added: BTreeSet<&'a str>,
    removed: BTreeSet<&'a str>,
}

impl<'a> Growth<'a> {
    fn put(&mut self, key: &'a str, held: bool) {
        self.removed.remove(key);
        if !held {
            self.added.insert(key);
        }
    }

    fn delete(&mut self, key: &'a str, held: bool) {
        self.added.remove(key);
        if held {
            self.removed.insert(key);
        }
    }

    /// Whether the record leaves `held` keys past `max`, and more than it found.
    fn passes(&self, held: usize, max: usize) -> bool {
        let after = held + self.added.len() - self.removed.len().min(held);
        after > max && after > held
    }
}

/// One change of the vault; a request's changes are journaled together (one record) and
/// applied together. Each names the one thing it changes, so what is journaled stays small
/// however big the scope or group it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    CreateScope {
        name: String,
        created: Micros,
        assignments: Vec<Assignment>,
    },
    DeleteScope(String),
    PutScopeSecret {
        scope: String,
        key: String,
        sealed: Sealed,
    },
    DeleteScopeSecret {
        scope: String,
        key: String,
    },
    Assign {
        scope: String,
        assignment: Assignment,
    },
    Unassign {
        scope: String,
        assignment: Assignment,
    },
    /// A group created or its own fields changed. Its `secrets` are not part of the change:
    /// they change only through the group-secret changes below.
    PutGroup(Group),
    DeleteGroup(String),
    /// A TrueFoundry secret created, or put back whole (a snapshot, a key rotation).
    PutGroupSecret {
        group_id: String,
        secret: TfSecret,
    },
    /// A new version of an existing TrueFoundry secret; it becomes the latest.
    AddGroupSecretVersion {
        group_id: String,
        key: String,
        version: TfVersion,
    },
    DeleteGroupSecret {
        group_id: String,
        key: String,
    },
    PutTinybird(TbSecret),
    DeleteTinybird(String),
}

#[derive(Debug, Default)]
pub struct VaultState {
    pub scopes: BTreeMap<String, Scope>,
    pub groups: BTreeMap<String, Group>,
    /// Tinybird secrets in insertion order (the API lists them so).
    pub tinybird: Vec<TbSecret>,
}

impl VaultState {
    /// Applies one request's changes if they still hold, all or none. In cluster mode a change
    /// is checked on its node and applied from the stream after whatever other nodes changed
    /// meanwhile, so the names a request checked are checked again here, with the request's
    /// refusal: a scope, a TrueFoundry group or a Tinybird secret created meanwhile under the
    /// same name refuses a second creation, a change into a scope, group or Tinybird secret
    /// deleted meanwhile is refused, and so is the deletion of a scope a secret was put into
    /// meanwhile. Otherwise the stream's order decides (the later put wins). The rules read
    /// only the state, so every node refuses alike.
    pub fn apply_checked(&mut self, changes: Vec<Change>) -> Result<(), SecretsError> {
        let mut scopes_made: BTreeSet<&str> = BTreeSet::new();
        // Groups made by this record, by id, with their names.
        let mut groups_made: BTreeMap<&str, &str> = BTreeMap::new();
        // Tinybird secrets put by this record (created or updated).
        let mut tinybird_put: BTreeSet<&str> = BTreeSet::new();
        // Group keys put by this record: (group id, key).
        let mut group_keys_put: BTreeSet<(&str, &str)> = BTreeSet::new();
        for change in &changes {
            let scope_exists =
                |scope: &str| self.scopes.contains_key(scope) || scopes_made.contains(scope);
            let group_exists =
                |group: &str| self.groups.contains_key(group) || groups_made.contains_key(group);
            let group_named = |name: &str| {
                self.groups.values().any(|g| g.name == name)
                    || groups_made.values().any(|made| *made == name)
            };
            let secrets_in = |scope: &str| self.scopes.get(scope).map_or(0, |s| s.secrets.len());
            let group_held = |group: &str, key: &str| {
                self.groups
                    .get(group)
                    .is_some_and(|g| g.secrets.contains_key(key))
            };
            let key_changed =
                |group: &str, key: &str, what| SecretsError::GroupKeyChangedMeanwhile {
                    group: self
                        .groups
                        .get(group)
                        .map_or_else(|| group.to_string(), |g| g.name.clone()),
                    key: key.to_string(),
                    what,
                };
            let tinybird_exists = |name: &str| {
                self.tinybird.iter().any(|s| s.name == name) || tinybird_put.contains(name)
            };
            match change {
                Change::CreateScope { name, .. } if scope_exists(name) => {
                    return Err(SecretsError::ScopeExists(name.clone()))
                }
                Change::CreateScope { name, .. } => {
                    scopes_made.insert(name);
                }
                Change::DeleteScope(scope)
                | Change::PutScopeSecret { scope, .. }
                | Change::DeleteScopeSecret { scope, .. }
                | Change::Assign { scope, .. }
                | Change::Unassign { scope, .. }
                    if !scope_exists(scope) =>
                {
                    return Err(SecretsError::ScopeNotFound(scope.clone()))
                }
                // Deleting it would delete a secret another node put meanwhile.
                Change::DeleteScope(scope) if secrets_in(scope) > 0 => {
                    return Err(SecretsError::ScopeNotEmpty {
                        scope: scope.clone(),
                        secrets: secrets_in(scope),
                    })
                }
                // A group's name never changes, so a put of an id absent here creates a group,
                // and its name must be free (`CreateGroup`'s rule; an upsert by name that
                // created one meets the group made meanwhile as a creation does).
                Change::PutGroup(group) if !group_exists(&group.id) && group_named(&group.name) => {
                    return Err(SecretsError::GroupExists(group.name.clone()))
                }
                // A change of a group another node deleted meanwhile would make it again.
                Change::PutGroup(group) if !group_exists(&group.id) && !group.is_created() => {
                    return Err(SecretsError::GroupNotFound(group.id.clone()))
                }
                Change::PutGroup(group) => {
                    groups_made.insert(&group.id, &group.name);
                }
                Change::DeleteGroup(group_id)
                | Change::PutGroupSecret { group_id, .. }
                | Change::AddGroupSecretVersion { group_id, .. }
                | Change::DeleteGroupSecret { group_id, .. }
                    if !group_exists(group_id) =>
                {
                    return Err(SecretsError::GroupNotFound(group_id.clone()))
                }
                // A new key another node added meanwhile: putting this one would replace that
                // secret whole (its id, which its writer was given, would answer 404).
                Change::PutGroupSecret { group_id, secret }
                    if group_held(group_id, &secret.key) =>
                {
                    return Err(key_changed(group_id, &secret.key, "added"))
                }
                Change::PutGroupSecret { group_id, secret } => {
                    group_keys_put.insert((group_id, &secret.key));
                }
                // A version of a key another node deleted meanwhile would be dropped unseen.
                Change::AddGroupSecretVersion { group_id, key, .. }
                    if !group_held(group_id, key) && !group_keys_put.contains(&(group_id, key)) =>
                {
                    return Err(key_changed(group_id, key, "deleted"))
                }
                Change::PutTinybird(secret)
                    if secret.is_created() && tinybird_exists(&secret.name) =>
                {
                    return Err(SecretsError::TinybirdExists(secret.name.clone()))
                }
                Change::PutTinybird(secret)
                    if !secret.is_created() && !tinybird_exists(&secret.name) =>
                {
                    return Err(SecretsError::TinybirdNotFound(secret.name.clone()))
                }
                Change::PutTinybird(secret) => {
                    tinybird_put.insert(&secret.name);
                }
                Change::DeleteTinybird(name) if !tinybird_exists(name) => {
                    return Err(SecretsError::TinybirdNotFound(name.clone()))
                }
                _ => {}
            }
        }
        self.check_sizes(&changes)?;
        for change in changes {
            self.apply(change);
        }
        Ok(())
    }

    /// The size caps a request checked, checked again: records of several nodes, each within
    /// a cap on its own node, may together pass it. A scope, group or the Tinybird list this
    /// record leaves past its cap and larger than it was is refused with the request's own
    /// answer; one already past it (an older build's race) may still shrink or change.
    fn check_sizes(&self, changes: &[Change]) -> Result<(), SecretsError> {
        let mut scopes: BTreeMap<&str, Growth> = BTreeMap::new();
        let mut groups: BTreeMap<&str, Growth> = BTreeMap::new();
        let mut tinybird = Growth::default();
        let in_scope = |scope: &str, key: &str| {
            self.scopes
                .get(scope)
                .is_some_and(|s| s.secrets.contains_key(key))
        };
        let in_group = |group: &str, key: &str| {
            self.groups
                .get(group)
                .is_some_and(|g| g.secrets.contains_key(key))
        };
        let in_tinybird = |name: &str| self.tinybird.iter().any(|s| s.name == name);
        for change in changes {
            match change {
                Change::PutScopeSecret { scope, key, .. } => {
                    let held = in_scope(scope, key);
                    scopes.entry(scope).or_default().put(key, held);
                }
                Change::DeleteScopeSecret { scope, key } => {
                    let held = in_scope(scope, key);
                    scopes.entry(scope).or_default().delete(key, held);
                }
                Change::PutGroupSecret { group_id, secret } => {
                    let held = in_group(group_id, &secret.key);
                    groups.entry(group_id).or_default().put(&secret.key, held);
                }
                Change::DeleteGroupSecret { group_id, key } => {
                    let held = in_group(group_id, key);
                    groups.entry(group_id).or_default().delete(key, held);
                }
                Change::PutTinybird(secret) => {
                    tinybird.put(&secret.name, in_tinybird(&secret.name))
                }
                Change::DeleteTinybird(name) => tinybird.delete(name, in_tinybird(name)),
                _ => {}
            }
        }
        for (scope, growth) in scopes {
            let held = self.scopes.get(scope).map_or(0, |s| s.secrets.len());
            if growth.passes(held, MAX_SECRETS_PER_SCOPE) {
                return Err(SecretsError::ScopeFull {
                    scope: scope.to_string(),
                    max_secrets: MAX_SECRETS_PER_SCOPE,
                });
            }
        }
        for (group_id, growth) in groups {
            let group = self.groups.get(group_id);
            if growth.passes(group.map_or(0, |g| g.secrets.len()), MAX_SECRETS_PER_GROUP) {
                // Named as the request's check names it (a group made by this record has
                // no name here yet: its id stands in).
                let made = changes.iter().find_map(|change| match change {
                    Change::PutGroup(made) if made.id == group_id => Some(made.name.clone()),
                    _ => None,
                });
                return Err(SecretsError::GroupFull {
                    group: group
                        .map(|g| g.name.clone())
                        .or(made)
                        .unwrap_or_else(|| group_id.to_string()),
                    max_secrets: MAX_SECRETS_PER_GROUP,
                });
            }
        }
        if tinybird.passes(self.tinybird.len(), TINYBIRD_MAX_SECRETS) {
            return Err(SecretsError::TinybirdFull {
                max_secrets: TINYBIRD_MAX_SECRETS,
            });
        }
        Ok(())
    }

    /// Applies one change. The actor checks every change before journaling it, so a change
    /// to something absent happens only when replaying a damaged journal: it is skipped.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::CreateScope {
                name,
                created,
                assignments,
            } => {
                let scope = Scope {
                    name: name.clone(),
                    created,
                    secrets: BTreeMap::new(),
                    assignments,
                };
                self.scopes.insert(name, scope);
            }
            Change::DeleteScope(name) => {
                self.scopes.remove(&name);
            }
            Change::PutScopeSecret { scope, key, sealed } => {
                if let Some(scope) = self.scopes.get_mut(&scope) {
                    scope.secrets.insert(key, sealed);
                }
            }
            Change::DeleteScopeSecret { scope, key } => {
                if let Some(scope) = self.scopes.get_mut(&scope) {
                    scope.secrets.remove(&key);
                }
            }
            Change::Assign { scope, assignment } => {
                if let Some(scope) = self.scopes.get_mut(&scope) {
                    if !scope.assignments.contains(&assignment) {
                        scope.assignments.push(assignment);
                    }
                }
            }
            Change::Unassign { scope, assignment } => {
                if let Some(scope) = self.scopes.get_mut(&scope) {
                    scope.assignments.retain(|a| *a != assignment);
                }
            }
            Change::PutGroup(mut group) => {
                group.secrets = self
                    .groups
                    .remove(&group.id)
                    .map(|existing| existing.secrets)
                    .unwrap_or_default();
                self.groups.insert(group.id.clone(), group);
            }
            Change::DeleteGroup(id) => {
                self.groups.remove(&id);
            }
            Change::PutGroupSecret { group_id, secret } => {
                if let Some(group) = self.groups.get_mut(&group_id) {
                    group.secrets.insert(secret.key.clone(), secret);
                }
            }
            Change::AddGroupSecretVersion {
                group_id,
                key,
                version,
            } => {
                let secret = self
                    .groups
                    .get_mut(&group_id)
                    .and_then(|group| group.secrets.get_mut(&key));
                if let Some(secret) = secret {
                    secret.updated = version.sealed.updated;
                    secret.versions.push(version);
                    // Applied alike when the journal is replayed, so the history kept is the
                    // same whichever build wrote the records.
                    let excess = secret.versions.len().saturating_sub(MAX_VERSIONS_KEPT);
                    secret.versions.drain(..excess);
                }
            }
            Change::DeleteGroupSecret { group_id, key } => {
                if let Some(group) = self.groups.get_mut(&group_id) {
                    group.secrets.remove(&key);
                }
            }
            Change::PutTinybird(secret) => {
                match self.tinybird.iter_mut().find(|s| s.name == secret.name) {
                    Some(existing) => *existing = secret,
                    None => self.tinybird.push(secret),
                }
            }
            Change::DeleteTinybird(name) => self.tinybird.retain(|s| s.name != name),
        }
    }

    /// The changes that recreate this state from nothing (a snapshot's content).
    pub fn as_changes(&self) -> Vec<Change> {
        let mut changes = Vec::new();
        for scope in self.scopes.values() {
            changes.push(Change::CreateScope {
                name: scope.name.clone(),
                created: scope.created,
                assignments: scope.assignments.clone(),
            });
            changes.extend(
                scope
                    .secrets
                    .iter()
                    .map(|(key, sealed)| Change::PutScopeSecret {
                        scope: scope.name.clone(),
                        key: key.clone(),
                        sealed: sealed.clone(),
                    }),
            );
        }
        for group in self.groups.values() {
            changes.push(Change::PutGroup(group.without_secrets()));
            changes.extend(group.secrets.values().map(|secret| Change::PutGroupSecret {
                group_id: group.id.clone(),
                secret: secret.clone(),
            }));
        }
        changes.extend(self.tinybird.iter().cloned().map(Change::PutTinybird));
        changes
    }
}

/// A new opaque id.
pub fn new_id() -> String {
    crate::iam::generate_api_key()[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::{Role, WorkspaceRole};

    fn principal(kind: PrincipalKind, id: &str) -> Principal {
        Principal {
            kind,
            id: id.into(),
            name: id.into(),
            is_admin: false,
            groups: vec![],
            workspace_roles: vec![],
            secret_scope_roles: vec![],
        }
    }

    #[test]
    fn changes_into_what_is_gone_or_taken_meanwhile_are_refused_whole() {
        let create = |name: &str| Change::CreateScope {
            name: name.into(),
            created: 0,
            assignments: Vec::new(),
        };
        let mut state = VaultState::default();
        state.apply_checked(vec![create("ops")]).unwrap();
        // Another node created `ops` first: refused, and `new` in the same record is not made.
        assert_eq!(
            state.apply_checked(vec![create("new"), create("ops")]),
            Err(SecretsError::ScopeExists("ops".into()))
        );
        assert!(!state.scopes.contains_key("new"));
        // A change into a scope or group deleted meanwhile finds nothing.
        state
            .apply_checked(vec![Change::DeleteScope("ops".into())])
            .unwrap();
        let into_gone_scope = Change::DeleteScopeSecret {
            scope: "ops".into(),
            key: "k".into(),
        };
        assert_eq!(
            state.apply_checked(vec![into_gone_scope]),
            Err(SecretsError::ScopeNotFound("ops".into()))
        );
        assert_eq!(
            state.apply_checked(vec![Change::DeleteGroup("g1".into())]),
            Err(SecretsError::GroupNotFound("g1".into()))
        );
    }

    /// A group as `CreateGroup` makes it, by `creator`.
    fn group(id: &str, name: &str, creator: &str) -> Group {
        Group {
            id: id.into(),
            name: name.into(),
            integration_id: None,
            manifest: None,
            created_by: PrincipalRef {
                kind: PrincipalKind::User,
                id: creator.into(),
                name: None,
            },
            created: 0,
            updated: 0,
            secrets: BTreeMap::new(),
        }
    }

    fn secret(key: &str) -> TfSecret {
        TfSecret {
            id: format!("id-{key}"),
            key: key.into(),
            created: 0,
            updated: 0,
            versions: vec![TfVersion {
                id: format!("v1-{key}"),
                sealed: sealed(Sealed::FIRST_VERSION),
            }],
        }
    }

    fn sealed(version: u64) -> Sealed {
        Sealed {
            ciphertext: vec![version as u8],
            version,
            created: 0,
            updated: 0,
        }
    }

    #[test]
    fn a_group_name_taken_meanwhile_refuses_the_second_creation_whole() {
        let mut state = VaultState::default();
        state
            .apply_checked(vec![
                Change::PutGroup(group("g1", "grp", "ana")),
                Change::PutGroupSecret {
                    group_id: "g1".into(),
                    secret: secret("A"),
                },
            ])
            .unwrap();
        let before = state.as_changes();
        // Another node created `grp` as g2, checking a state without g1: refused with
        // `CreateGroup`'s answer, and none of its secrets is put.
        assert_eq!(
            state.apply_checked(vec![
                Change::PutGroup(group("g2", "grp", "bo")),
                Change::PutGroupSecret {
                    group_id: "g2".into(),
                    secret: secret("B"),
                },
            ]),
            Err(SecretsError::GroupExists("grp".into()))
        );
        assert_eq!(state.as_changes(), before);
        // Two creations of one name in one record: the second is refused.
        assert_eq!(
            state.apply_checked(vec![
                Change::PutGroup(group("g3", "other", "bo")),
                Change::PutGroup(group("g4", "other", "bo")),
            ]),
            Err(SecretsError::GroupExists("other".into()))
        );
        assert_eq!(state.as_changes(), before);
        // The group's own puts (an update, an upsert by its admin) keep its name.
        let mut updated = group("g1", "grp", "ana");
        updated.updated = 5;
        state
            .apply_checked(vec![Change::PutGroup(updated)])
            .unwrap();
        assert_eq!(state.groups["g1"].updated, 5);
        assert_eq!(state.groups["g1"].secrets.len(), 1);
        // Once the group is deleted its name is free again.
        state
            .apply_checked(vec![Change::DeleteGroup("g1".into())])
            .unwrap();
        state
            .apply_checked(vec![Change::PutGroup(group("g2", "grp", "bo"))])
            .unwrap();
        assert_eq!(state.groups["g2"].name, "grp");
    }

    #[test]
    fn a_change_of_a_group_deleted_meanwhile_does_not_make_it_again() {
        let mut state = VaultState::default();
        let created = group("g1", "grp", "ana");
        state
            .apply_checked(vec![Change::PutGroup(created.clone())])
            .unwrap();
        // Another node changes the group (an update, an upsert by its admin, a secret's
        // deletion: each puts its fields first), while this one deletes it.
        let mut changed = created.without_secrets();
        changed.touch(7);
        assert!(!changed.is_created());
        state
            .apply_checked(vec![Change::DeleteGroup("g1".into())])
            .unwrap();
        assert_eq!(
            state.apply_checked(vec![
                Change::PutGroup(changed),
                Change::PutGroupSecret {
                    group_id: "g1".into(),
                    secret: secret("A"),
                },
            ]),
            Err(SecretsError::GroupNotFound("g1".into()))
        );
        assert!(state.groups.is_empty());
        // A change stamped by a clock behind the creator's is still a change.
        let mut skewed = created.without_secrets();
        skewed.touch(created.created - 5);
        assert!(skewed.updated > skewed.created && !skewed.is_created());
    }

    #[test]
    fn a_group_key_added_or_deleted_meanwhile_refuses_the_change_whole() {
        let mut state = VaultState::default();
        state
            .apply_checked(vec![Change::PutGroup(group("g1", "grp", "ana"))])
            .unwrap();
        // Two nodes add the new key `A` at once: the second would replace the first whole.
        let mut first = secret("A");
        first.id = "first".into();
        state
            .apply_checked(vec![Change::PutGroupSecret {
                group_id: "g1".into(),
                secret: first,
            }])
            .unwrap();
        let before = state.as_changes();
        let refused = state.apply_checked(vec![
            Change::PutGroupSecret {
                group_id: "g1".into(),
                secret: secret("B"),
            },
            Change::PutGroupSecret {
                group_id: "g1".into(),
                secret: secret("A"),
            },
        ]);
        assert_eq!(
            refused,
            Err(SecretsError::GroupKeyChangedMeanwhile {
                group: "grp".into(),
                key: "A".into(),
                what: "added"
            })
        );
        assert_eq!(
            state.as_changes(),
            before,
            "nothing of the record, `B` neither"
        );
        assert_eq!(state.groups["g1"].secrets["A"].id, "first");
        // A new version of a key another node deleted meanwhile is refused, not dropped.
        state
            .apply_checked(vec![Change::DeleteGroupSecret {
                group_id: "g1".into(),
                key: "A".into(),
            }])
            .unwrap();
        assert_eq!(
            state.apply_checked(vec![Change::AddGroupSecretVersion {
                group_id: "g1".into(),
                key: "A".into(),
                version: TfVersion {
                    id: "v2".into(),
                    sealed: sealed(2),
                },
            }]),
            Err(SecretsError::GroupKeyChangedMeanwhile {
                group: "grp".into(),
                key: "A".into(),
                what: "deleted"
            })
        );
    }

    /// Records of two nodes, each within a cap where it was checked, may together pass it:
    /// applied, the one that would is refused whole; a record that swaps keys, or shrinks a
    /// container already past its cap, is not.
    #[test]
    fn a_record_that_would_pass_a_size_cap_is_refused_whole() {
        let mut state = VaultState::default();
        let scope_put = |key: String| Change::PutScopeSecret {
            scope: "ops".into(),
            key,
            sealed: sealed(Sealed::FIRST_VERSION),
        };
        let mut fill = vec![Change::CreateScope {
            name: "ops".into(),
            created: 0,
            assignments: Vec::new(),
        }];
        fill.extend((0..MAX_SECRETS_PER_SCOPE).map(|i| scope_put(format!("k{i}"))));
        state.apply_checked(fill).unwrap();
        assert_eq!(
            state.apply_checked(vec![scope_put("k0".into()), scope_put("extra".into())]),
            Err(SecretsError::ScopeFull {
                scope: "ops".into(),
                max_secrets: MAX_SECRETS_PER_SCOPE
            })
        );
        assert!(!state.scopes["ops"].secrets.contains_key("extra"));
        // A new version of a held key, or a new key in place of a deleted one, stays within.
        let delete = Change::DeleteScopeSecret {
            scope: "ops".into(),
            key: "k1".into(),
        };
        state
            .apply_checked(vec![
                scope_put("k0".into()),
                delete,
                scope_put("extra".into()),
            ])
            .unwrap();
        assert_eq!(state.scopes["ops"].secrets.len(), MAX_SECRETS_PER_SCOPE);

        // A group made by the record is named as the request names it.
        let mut made = vec![Change::PutGroup(group("g1", "grp", "ana"))];
        made.extend((0..=MAX_SECRETS_PER_GROUP).map(|i| Change::PutGroupSecret {
            group_id: "g1".into(),
            secret: secret(&format!("K{i}")),
        }));
        assert_eq!(
            state.apply_checked(made),
            Err(SecretsError::GroupFull {
                group: "grp".into(),
                max_secrets: MAX_SECRETS_PER_GROUP
            })
        );
        assert!(state.groups.is_empty());

        let tinybird_put = |name: String| {
            Change::PutTinybird(TbSecret {
                name,
                sealed: sealed(Sealed::FIRST_VERSION),
                edited_by: "token: 'admin'".into(),
            })
        };
        // Past the cap already (an older build's race): it may shrink, not grow.
        for i in 0..=TINYBIRD_MAX_SECRETS {
            state.apply(tinybird_put(format!("tb{i}")));
        }
        assert_eq!(
            state.apply_checked(vec![tinybird_put("one_more".into())]),
            Err(SecretsError::TinybirdFull {
                max_secrets: TINYBIRD_MAX_SECRETS
            })
        );
        state
            .apply_checked(vec![Change::DeleteTinybird("tb0".into())])
            .unwrap();
        assert_eq!(state.tinybird.len(), TINYBIRD_MAX_SECRETS);
    }

    #[test]
    fn a_tinybird_name_taken_meanwhile_refuses_the_second_creation() {
        let put = |name: &str, version: u64| {
            Change::PutTinybird(TbSecret {
                name: name.into(),
                sealed: sealed(version),
                edited_by: "token: 'admin'".into(),
            })
        };
        let mut state = VaultState::default();
        state
            .apply_checked(vec![put("tb", Sealed::FIRST_VERSION)])
            .unwrap();
        let before = state.as_changes();
        // Another node created `tb` too, checking a state without it.
        assert_eq!(
            state.apply_checked(vec![put("tb", Sealed::FIRST_VERSION)]),
            Err(SecretsError::TinybirdExists("tb".into()))
        );
        assert_eq!(state.as_changes(), before);
        // An update puts the next version: the later put wins, as before.
        state.apply_checked(vec![put("tb", 2)]).unwrap();
        assert_eq!(state.tinybird.len(), 1);
        assert_eq!(state.tinybird[0].sealed.version, 2);
        // Deleted meanwhile: an update or a second delete finds nothing, and brings nothing
        // back.
        state
            .apply_checked(vec![Change::DeleteTinybird("tb".into())])
            .unwrap();
        for change in [put("tb", 3), Change::DeleteTinybird("tb".into())] {
            assert_eq!(
                state.apply_checked(vec![change]),
                Err(SecretsError::TinybirdNotFound("tb".into()))
            );
        }
        assert!(state.tinybird.is_empty());
    }

    #[test]
    fn a_scope_a_secret_was_put_into_meanwhile_is_not_deleted() {
        let mut state = VaultState::default();
        let create = Change::CreateScope {
            name: "ops".into(),
            created: 0,
            assignments: Vec::new(),
        };
        state.apply_checked(vec![create]).unwrap();
        // Another node put a secret after this node checked the scope was empty.
        state
            .apply_checked(vec![Change::PutScopeSecret {
                scope: "ops".into(),
                key: "db".into(),
                sealed: sealed(Sealed::FIRST_VERSION),
            }])
            .unwrap();
        assert_eq!(
            state.apply_checked(vec![Change::DeleteScope("ops".into())]),
            Err(SecretsError::ScopeNotEmpty {
                scope: "ops".into(),
                secrets: 1
            })
        );
        assert!(state.scopes["ops"].secrets.contains_key("db"));
    }

    #[test]
    fn group_access_comes_from_the_creator_admins_and_manifest_collaborators() {
        let mut group = Group {
            id: "g".into(),
            name: "grp".into(),
            integration_id: None,
            manifest: Some(serde_json::json!({"collaborators": [
                {"subject": "user:Ana@Example.com", "role_id": "secret-group-editor"},
                {"subject": "serviceaccount:ci", "role_id": "secret-group-viewer"},
                {"subject": "serviceaccount:ci", "role_id": "secret-group-admin"},
                {"subject": "team:ops", "role_id": "secret-group-admin"},
            ]})),
            created_by: PrincipalRef {
                kind: PrincipalKind::User,
                id: "creator".into(),
                name: Some("creator@example.com".into()),
            },
            created: 0,
            updated: 0,
            secrets: BTreeMap::new(),
        };
        let mut ana = principal(PrincipalKind::User, "u1");
        ana.name = "ana@example.com".into();
        assert_eq!(
            group.access_of(&ana),
            Some(GroupAccess::Editor),
            "a user collaborator, by email in any case"
        );
        let mut ana_key = principal(PrincipalKind::ServiceAccount, "sa-ana");
        ana_key.name = "ana@example.com".into();
        assert_eq!(
            group.access_of(&ana_key),
            None,
            "`user:` names users, not service accounts"
        );
        let mut ci = principal(PrincipalKind::ServiceAccount, "sa-ci");
        ci.name = "CI".into();
        assert_eq!(
            group.access_of(&ci),
            Some(GroupAccess::Admin),
            "the strongest role listed, by name in any case"
        );
        let mut bound = group.clone();
        bound.manifest = Some(serde_json::json!({"collaborators": [
            {"subject": "serviceaccount:ci", "role_id": "secret-group-viewer", COLLABORATOR_ID: "sa-ci"},
        ]}));
        assert_eq!(bound.access_of(&ci), Some(GroupAccess::Viewer));
        let mut namesake = principal(PrincipalKind::ServiceAccount, "sa-ci-2");
        namesake.name = "ci".into();
        assert_eq!(
            bound.access_of(&namesake),
            None,
            "a bound collaborator is the account it named, not a later one of its name"
        );
        assert_eq!(
            group.access_of(&principal(PrincipalKind::User, "creator")),
            Some(GroupAccess::Admin)
        );
        let mut admin = principal(PrincipalKind::User, "someone");
        admin.is_admin = true;
        assert_eq!(group.access_of(&admin), Some(GroupAccess::Admin));
        assert_eq!(
            group.granted_to(&admin),
            None,
            "an admin's rights are its account's, not a grant of the group"
        );
        group.manifest = None;
        assert_eq!(group.access_of(&ana), None);
    }

    #[test]
    fn a_secret_keeps_its_newest_versions_only() {
        let version = |n: u64| TfVersion {
            id: format!("v{n}"),
            sealed: sealed(n),
        };
        let mut state = VaultState::default();
        let mut changes = vec![
            Change::PutGroup(group("g", "grp", "creator")),
            Change::PutGroupSecret {
                group_id: "g".into(),
                secret: secret("K"),
            },
        ];
        let last = MAX_VERSIONS_KEPT as u64 + 20;
        changes.extend((2..=last).map(|n| Change::AddGroupSecretVersion {
            group_id: "g".into(),
            key: "K".into(),
            version: version(n),
        }));
        state.apply_checked(changes).unwrap();
        let versions = &state.groups["g"].secrets["K"].versions;
        assert_eq!(versions.len(), MAX_VERSIONS_KEPT);
        assert_eq!(versions.last().unwrap().sealed.version, last);
        assert_eq!(
            versions[0].sealed.version,
            last - MAX_VERSIONS_KEPT as u64 + 1
        );
    }

    #[test]
    fn scope_roles_come_from_assignments_groups_workspaces_and_scim() {
        let mut scope = Scope {
            name: "db".into(),
            created: 0,
            secrets: BTreeMap::new(),
            assignments: vec![],
        };
        let mut sa = principal(PrincipalKind::ServiceAccount, "sa1");
        assert_eq!(scope.role_of(&sa), None);
        scope.assignments.push(Assignment {
            principal_type: PrincipalType::ServiceAccount,
            principal_id: "sa1".into(),
            role: ScopeRole::Reader,
        });
        assert_eq!(scope.role_of(&sa), Some(ScopeRole::Reader));
        assert_eq!(
            scope.role_of(&principal(PrincipalKind::User, "sa1")),
            None,
            "a user with the same id is someone else"
        );
        scope.assignments.push(Assignment {
            principal_type: PrincipalType::Group,
            principal_id: "g".into(),
            role: ScopeRole::Writer,
        });
        sa.groups.push("g".into());
        assert_eq!(scope.role_of(&sa), Some(ScopeRole::Writer));
        scope.assignments.push(Assignment {
            principal_type: PrincipalType::Workspace,
            principal_id: "prod".into(),
            role: ScopeRole::Manager,
        });
        let mut consumer = principal(PrincipalKind::ServiceAccount, "other");
        consumer.workspace_roles.push(WorkspaceRole {
            workspace: Some("prod".into()),
            role: Role::Consumer,
        });
        assert_eq!(scope.role_of(&consumer), Some(ScopeRole::Manager));
        let mut scim = principal(PrincipalKind::User, "u");
        scim.secret_scope_roles
            .push(("db".into(), "secret_scope_writer".into()));
        assert_eq!(scope.role_of(&scim), Some(ScopeRole::Writer));
    }
}

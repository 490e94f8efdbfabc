//! TrueFoundry's Secret Groups: groups of versioned secrets. An update carries the full key
//! set: a changed value makes a new version, a key without a value keeps its value, an omitted
//! key is deleted. Groups never carry values; a secret's value is returned by `GetSecret` and,
//! on request, by `ListSecrets`.

use actix::{Handler, Message};
use serde_json::Value as Json;

use super::crypto::Plaintext;
use super::state::{
    keep_collaborator_ids, new_id, Change, Group, GroupAccess, Sealed, TfSecret, TfVersion,
    VaultState,
};
use super::{AskedBy, Caller, NameKind, SecretRef, SecretsError, Vault, VaultActor};
use crate::time::now_micros;

/// A secret as answered, with its group and (only when asked and allowed) its value.
#[derive(Debug, Clone)]
pub struct SecretView {
    pub group: Group,
    pub secret: TfSecret,
    pub value: Option<Plaintext>,
}

/// One page of a list and how many items the whole list holds.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: usize,
}

/// What a list asks for: at most `limit` items from `offset` on.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: usize,
    pub offset: usize,
}

/// Most items one page holds.
const MAX_PAGE: usize = 1000;
/// Most secrets one group holds: any principal may create a group, and every answer about a
/// group lists all its secrets (a reviewer's group of 30,000 one-byte secrets took 9 s and
/// 25 MB to answer, holding an HTTP worker). The same bound as a Tecton scope's.
pub(super) const MAX_SECRETS_PER_GROUP: usize = 1000;

/// Refuses a key set larger than a group may hold.
fn check_group_size(group: &str, keys: usize) -> Result<(), SecretsError> {
    if keys > MAX_SECRETS_PER_GROUP {
        return Err(SecretsError::GroupFull {
            group: group.to_string(),
            max_secrets: MAX_SECRETS_PER_GROUP,
        });
    }
    Ok(())
}

message!(
    /// The groups the caller may see, optionally only the one with this fqn, or those whose
    /// name or a key contains `search`.
    ListGroups { caller: Caller, page: PageRequest, fqn: Option<String>, search: Option<String> } -> Page<Group>
);
message!(
    CreateGroup { caller: Caller,
        name: String,
        integration_id: Option<String>,
        secrets: Vec<(String, Plaintext)>
    } -> Group
);
message!(
    /// Creates or updates a group's own fields from a manifest (its document is kept whole:
    /// its collaborators give roles on the group); secrets are not set this way. An existing
    /// group is updated only by its own admins (its creator, its admin collaborators), never
    /// adopted by an account admin it does not name.
    UpsertGroup { caller: Caller,
        name: String,
        integration_id: Option<String>,
        manifest: Json,
        dry_run: bool
    } -> Group
);
message!(GetGroup { caller: Caller, id: String } -> Group);
message!(
    /// The full key set: a key without a value keeps its value, an omitted key is deleted.
    UpdateGroup { caller: Caller, id: String, secrets: Vec<(String, Option<Plaintext>)> } -> Group
);
message!(DeleteGroup { caller: Caller, id: String } -> ());
message!(
    ListSecrets { caller: Caller,
        page: PageRequest,
        fqns: Vec<String>,
        group_id: Option<String>,
        with_value: bool
    } -> Page<SecretView>
);
message!(GetSecret { caller: Caller, id: String } -> SecretView);
message!(DeleteSecret { caller: Caller, id: String } -> ());

impl Vault {
    pub async fn list_groups(
        &self,
        caller: Caller,
        page: PageRequest,
        fqn: Option<String>,
        search: Option<String>,
    ) -> Result<Page<Group>, SecretsError> {
        self.ask(ListGroups {
            caller,
            page,
            fqn,
            search,
        })
        .await
    }

    pub async fn create_group(
        &self,
        caller: Caller,
        name: String,
        integration_id: Option<String>,
        secrets: Vec<(String, Plaintext)>,
    ) -> Result<Group, SecretsError> {
        self.ask(CreateGroup {
            caller,
            name,
            integration_id,
            secrets,
        })
        .await
    }

    pub async fn upsert_group(
        &self,
        caller: Caller,
        name: String,
        integration_id: Option<String>,
        manifest: Json,
        dry_run: bool,
    ) -> Result<Group, SecretsError> {
        self.ask(UpsertGroup {
            caller,
            name,
            integration_id,
            manifest,
            dry_run,
        })
        .await
    }

    pub async fn get_group(&self, caller: Caller, id: String) -> Result<Group, SecretsError> {
        self.ask(GetGroup { caller, id }).await
    }

    pub async fn update_group(
        &self,
        caller: Caller,
        id: String,
        secrets: Vec<(String, Option<Plaintext>)>,
    ) -> Result<Group, SecretsError> {
        self.ask(UpdateGroup {
            caller,
            id,
            secrets,
        })
        .await
    }

    pub async fn delete_group(&self, caller: Caller, id: String) -> Result<(), SecretsError> {
        self.ask(DeleteGroup { caller, id }).await
    }

    pub async fn list_secrets(
        &self,
        caller: Caller,
        page: PageRequest,
        fqns: Vec<String>,
        group_id: Option<String>,
        with_value: bool,
    ) -> Result<Page<SecretView>, SecretsError> {
        self.ask(ListSecrets {
            caller,
            page,
            fqns,
            group_id,
            with_value,
        })
        .await
    }

    pub async fn get_secret(&self, caller: Caller, id: String) -> Result<SecretView, SecretsError> {
        self.ask(GetSecret { caller, id }).await
    }

    pub async fn delete_secret(&self, caller: Caller, id: String) -> Result<(), SecretsError> {
        self.ask(DeleteSecret { caller, id }).await
    }
}

/// Names and keys: 1-128 of letters, digits, `.`, `_`, `-` (no `:`, which separates fqn parts),
/// at least one a letter or digit. TrueFoundry documents no rule; punctuation alone (`.`, `..`,
/// `-`) names nothing a person would choose, and `.` and `..` are path segments a client or
/// proxy resolves away before the request arrives.
pub fn check_name(kind: NameKind, name: &str) -> Result<(), SecretsError> {
    let valid = name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && name.chars().any(|c| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(SecretsError::InvalidName {
            kind,
            name: name.to_string(),
        })
    }
}

pub(super) fn identity(group_id: &str, key: &str, version: u64) -> String {
    format!("truefoundry\0{group_id}\0{key}\0{version}")
}

fn page<T>(items: Vec<T>, request: PageRequest) -> Result<Page<T>, SecretsError> {
    if !(1..=MAX_PAGE).contains(&request.limit) {
        return Err(SecretsError::InvalidPage {
            limit: request.limit,
            max: MAX_PAGE,
        });
    }
    let total = items.len();
    Ok(Page {
        items: items
            .into_iter()
            .skip(request.offset)
            .take(request.limit)
            .collect(),
        total,
    })
}

impl VaultActor {
    fn group_for(
        &self,
        caller: &Caller,
        id: &str,
        needed: GroupAccess,
    ) -> Result<&Group, SecretsError> {
        let group = self
            .state
            .groups
            .get(id)
            .ok_or_else(|| SecretsError::GroupNotFound(id.to_string()))?;
        match group.access_of(caller) {
            Some(access) if access >= needed => Ok(group),
            Some(_) => Err(SecretsError::GroupAccessNeeded {
                principal: caller.name.clone(),
                group: group.name.clone(),
            }),
            None => Err(SecretsError::NoGroupAccess {
                principal: caller.name.clone(),
                asked: AskedBy::GroupId,
                id: id.to_string(),
            }),
        }
    }

    fn fqn(&self, group: &Group) -> String {
        format!("{}:{}", self.tenant, group.name)
    }

    /// The record a group secret's error names.
    fn group_secret_ref(&self, group: &Group, key: &str) -> SecretRef {
        SecretRef::Group {
            tenant: self.tenant.clone(),
            group: group.name.clone(),
            key: key.to_string(),
        }
    }

    fn new_secret(&self, group_id: &str, key: &str, value: &Plaintext, now: i64) -> TfSecret {
        let sealed = Sealed {
            ciphertext: self.seal(value, &identity(group_id, key, 1)),
            version: 1,
            created: now,
            updated: now,
        };
        TfSecret {
            id: new_id(),
            key: key.to_string(),
            created: now,
            updated: now,
            versions: vec![TfVersion {
                id: new_id(),
                sealed,
            }],
        }
    }

    fn secret_view(
        &self,
        group: &Group,
        secret: &TfSecret,
        with_value: bool,
    ) -> Result<SecretView, SecretsError> {
        let value = if with_value {
            let latest = &secret.latest().sealed;
            Some(self.open(
                &latest.ciphertext,
                &identity(&group.id, &secret.key, latest.version),
                || self.group_secret_ref(group, &secret.key),
            )?)
        } else {
            None
        };
        Ok(SecretView {
            group: group.clone(),
            secret: secret.clone(),
            value,
        })
    }

    /// The group holding secret `id`.
    fn secret_by_id(
        &self,
        caller: &Caller,
        id: &str,
        needed: GroupAccess,
    ) -> Result<(&Group, &TfSecret), SecretsError> {
        let (group, secret) = self
            .state
            .groups
            .values()
            .find_map(|g| g.secrets.values().find(|s| s.id == id).map(|s| (g, s)))
            .ok_or_else(|| SecretsError::GroupSecretNotFound(id.to_string()))?;
        self.group_for(caller, &group.id, needed)
            .map_err(|error| match error {
                SecretsError::NoGroupAccess { principal, .. } => SecretsError::NoGroupAccess {
                    principal,
                    asked: AskedBy::SecretId,
                    id: id.to_string(),
                },
                other => other,
            })?;
        Ok((group, secret))
    }
}

impl Handler<ListGroups> for VaultActor {
    type Result = Result<Page<Group>, SecretsError>;

    fn handle(&mut self, msg: ListGroups, _: &mut Self::Context) -> Self::Result {
        let ListGroups {
            caller,
            page: request,
            fqn,
            search,
        } = msg;
        let visible: Vec<Group> = self
            .state
            .groups
            .values()
            .filter(|g| g.access_of(&caller).is_some())
            .filter(|g| fqn.as_ref().is_none_or(|f| *f == self.fqn(g)))
            .filter(|g| {
                search.as_ref().is_none_or(|s| {
                    g.name.contains(s.as_str()) || g.secrets.keys().any(|k| k.contains(s.as_str()))
                })
            })
            .cloned()
            .collect();
        page(visible, request)
    }
}

impl Handler<CreateGroup> for VaultActor {
    type Result = Result<Group, SecretsError>;

    fn handle(&mut self, msg: CreateGroup, _: &mut Self::Context) -> Self::Result {
        let CreateGroup {
            caller,
            name,
            integration_id,
            secrets,
        } = msg;
        check_name(NameKind::Group, &name)?;
        check_group_size(&name, secrets.len())?;
        if self.state.groups.values().any(|g| g.name == name) {
            return Err(SecretsError::GroupExists(name));
        }
        let now = now_micros();
        let id = new_id();
        let mut group = Group {
            id: id.clone(),
            name,
            integration_id,
            manifest: None,
            created_by: caller.to_ref(),
            created: now,
            updated: now,
            secrets: Default::default(),
        };
        let mut changes = vec![Change::PutGroup(group.clone())];
        for (key, value) in secrets {
            check_name(NameKind::GroupKey, &key)?;
            if group.secrets.contains_key(&key) {
                return Err(SecretsError::DuplicateKey(key));
            }
            let secret = self.new_secret(&id, &key, &value, now);
            changes.push(Change::PutGroupSecret {
                group_id: id.clone(),
                secret: secret.clone(),
            });
            group.secrets.insert(key, secret);
        }
        self.commit(changes)?;
        Ok(group)
    }
}

impl Handler<UpsertGroup> for VaultActor {
    type Result = Result<Group, SecretsError>;

    fn handle(&mut self, msg: UpsertGroup, _: &mut Self::Context) -> Self::Result {
        let UpsertGroup {
            caller,
            name,
            integration_id,
            manifest,
            dry_run,
        } = msg;
        let now = now_micros();
        // A name is checked when it makes a group: one an older build made under looser
        // rules (`-`, say) is still upserted by it.
        let group = match self.state.groups.values().find(|g| g.name == name) {
            Some(existing) => {
                // Names are first come, first served: an upsert by name must not adopt a group
                // another key made (its creator would read what is then written there). A
                // caller with no part in the group learns only that it exists; its viewers
                // and editors are refused as by id (403); its admins upsert it.
                if existing.granted_to(&caller).is_none() {
                    return Err(SecretsError::GroupOwnedByAnother(name));
                }
                let mut group = self
                    .group_for(&caller, &existing.id.clone(), GroupAccess::Admin)?
                    .clone();
                group.manifest = Some(keep_collaborator_ids(group.manifest.as_ref(), manifest));
                group.integration_id = integration_id.or(group.integration_id);
                group.touch(now);
                group
            }
            None => {
                check_name(NameKind::Group, &name)?;
                Group {
                    id: new_id(),
                    name,
                    integration_id,
                    manifest: Some(manifest),
                    created_by: caller.to_ref(),
                    created: now,
                    updated: now,
                    secrets: Default::default(),
                }
            }
        };
        if !dry_run {
            self.commit(vec![Change::PutGroup(group.without_secrets())])?;
        }
        Ok(group)
    }
}

impl Handler<GetGroup> for VaultActor {
    type Result = Result<Group, SecretsError>;

    fn handle(&mut self, msg: GetGroup, _: &mut Self::Context) -> Self::Result {
        Ok(self
            .group_for(&msg.caller, &msg.id, GroupAccess::Viewer)?
            .clone())
    }
}

impl Handler<UpdateGroup> for VaultActor {
    type Result = Result<Group, SecretsError>;

    fn handle(&mut self, msg: UpdateGroup, _: &mut Self::Context) -> Self::Result {
        let UpdateGroup {
            caller,
            id,
            secrets,
        } = msg;
        let now = now_micros();
        let group = self.group_for(&caller, &id, GroupAccess::Editor)?;
        // An update is the full key set: its length is the group's size after it.
        check_group_size(&group.name, secrets.len())?;
        let mut fields = group.without_secrets();
        fields.touch(now);
        let mut changes = vec![Change::PutGroup(fields)];
        let mut kept = std::collections::BTreeSet::new();
        for (key, value) in secrets {
            // A key the group holds passes: an older build may have made it under looser rules.
            if !group.secrets.contains_key(&key) {
                check_name(NameKind::GroupKey, &key)?;
            }
            if !kept.insert(key.clone()) {
                return Err(SecretsError::DuplicateKey(key));
            }
            match (group.secrets.get(&key), value) {
                (Some(_), None) => {}
                (Some(existing), Some(value)) => {
                    let latest = &existing.latest().sealed;
                    let current = self.open(
                        &latest.ciphertext,
                        &identity(&id, &key, latest.version),
                        || self.group_secret_ref(group, &key),
                    )?;
                    if current != value {
                        let version = latest.version + 1;
                        let sealed = Sealed {
                            ciphertext: self.seal(&value, &identity(&id, &key, version)),
                            version,
                            created: now,
                            updated: now,
                        };
                        changes.push(Change::AddGroupSecretVersion {
                            group_id: id.clone(),
                            key,
                            version: TfVersion {
                                id: new_id(),
                                sealed,
                            },
                        });
                    }
                }
                (None, Some(value)) => changes.push(Change::PutGroupSecret {
                    group_id: id.clone(),
                    secret: self.new_secret(&id, &key, &value, now),
                }),
                (None, None) => return Err(SecretsError::NewKeyWithoutValue(key)),
            }
        }
        // Keys the update omits are deleted.
        changes.extend(
            group
                .secrets
                .keys()
                .filter(|key| !kept.contains(*key))
                .map(|key| Change::DeleteGroupSecret {
                    group_id: id.clone(),
                    key: key.clone(),
                }),
        );
        // The answer is the group as the changes leave it, made here: in cluster mode they
        // reach the state only once the log delivers them, after this handler.
        let mut answered = VaultState::default();
        answered.groups.insert(id.clone(), group.clone());
        for change in &changes {
            answered.apply(change.clone());
        }
        self.commit(changes)?;
        Ok(answered.groups.remove(&id).expect("the group was put"))
    }
}

impl Handler<DeleteGroup> for VaultActor {
    type Result = Result<(), SecretsError>;

    fn handle(&mut self, msg: DeleteGroup, _: &mut Self::Context) -> Self::Result {
        self.group_for(&msg.caller, &msg.id, GroupAccess::Admin)?;
        self.commit(vec![Change::DeleteGroup(msg.id)])
    }
}

impl Handler<ListSecrets> for VaultActor {
    type Result = Result<Page<SecretView>, SecretsError>;

    fn handle(&mut self, msg: ListSecrets, _: &mut Self::Context) -> Self::Result {
        let ListSecrets {
            caller,
            page: request,
            fqns,
            group_id,
            with_value,
        } = msg;
        if let Some(id) = &group_id {
            self.group_for(&caller, id, GroupAccess::Viewer)?;
        }
        let mut found = Vec::new();
        for group in self.state.groups.values().filter(|g| {
            g.access_of(&caller).is_some() && group_id.as_ref().is_none_or(|id| *id == g.id)
        }) {
            for secret in group.secrets.values() {
                let fqn = format!("{}:{}", self.fqn(group), secret.key);
                if fqns.is_empty() || fqns.contains(&fqn) {
                    found.push((group, secret));
                }
            }
        }
        let chosen = page(found, request)?;
        Ok(Page {
            items: chosen
                .items
                .into_iter()
                .map(|(g, s)| self.secret_view(g, s, with_value))
                .collect::<Result<_, _>>()?,
            total: chosen.total,
        })
    }
}

impl Handler<GetSecret> for VaultActor {
    type Result = Result<SecretView, SecretsError>;

    fn handle(&mut self, msg: GetSecret, _: &mut Self::Context) -> Self::Result {
        let (group, secret) = self.secret_by_id(&msg.caller, &msg.id, GroupAccess::Viewer)?;
        self.secret_view(group, secret, true)
    }
}

impl Handler<DeleteSecret> for VaultActor {
    type Result = Result<(), SecretsError>;

    fn handle(&mut self, msg: DeleteSecret, _: &mut Self::Context) -> Self::Result {
        let (group, secret) = self.secret_by_id(&msg.caller, &msg.id, GroupAccess::Editor)?;
        let mut fields = group.without_secrets();
        fields.touch(now_micros());
        let deleted = Change::DeleteGroupSecret {
            group_id: group.id.clone(),
            key: secret.key.clone(),
        };
        self.commit(vec![Change::PutGroup(fields), deleted])
    }
}

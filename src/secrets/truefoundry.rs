//! TrueFoundry's Secret Groups: groups of versioned secrets. An update carries the full key
//! set: a changed value makes a new version, a key without a value keeps its value, an omitted
//! key is deleted. Groups never carry values; a secret's value is returned by `GetSecret` and,
//! on request, by `ListSecrets`.

use actix::{Handler, Message};
use serde_json::Value as Json;

use super::crypto::Plaintext;
use super::state::{new_id, Change, Group, GroupAccess, Sealed, TfSecret, TfVersion};
use super::{gone, Caller, SecretsError, Vault, VaultActor};
use crate::iam::PrincipalKind;
use crate::time::now_micros;

#[derive(Debug, Clone)]
pub enum TfRequest {
    ListGroups {
        limit: usize,
        offset: usize,
        fqn: Option<String>,
        search: Option<String>,
    },
    CreateGroup {
        name: String,
        integration_id: Option<String>,
        secrets: Vec<(String, Plaintext)>,
    },
    /// Create or update a group's metadata from a manifest (`name`, `integration_fqn`, `collaborators`).
    Upsert {
        manifest: Json,
        dry_run: bool,
    },
    GetGroup(String),
    UpdateGroup {
        id: String,
        secrets: Vec<(String, Option<Plaintext>)>,
    },
    DeleteGroup(String),
    ListSecrets {
        limit: usize,
        offset: usize,
        fqns: Vec<String>,
        group_id: Option<String>,
        with_value: bool,
    },
    GetSecret(String),
    DeleteSecret(String),
}

/// A secret as answered, with its group and (only when asked and allowed) its value.
#[derive(Debug, Clone)]
pub struct SecretView {
    pub group: Group,
    pub secret: TfSecret,
    pub value: Option<Plaintext>,
}

#[derive(Debug, Clone)]
pub enum TfAnswer {
    Groups {
        groups: Vec<Group>,
        total: usize,
    },
    Group(Group),
    Secrets {
        secrets: Vec<SecretView>,
        total: usize,
    },
    Secret(SecretView),
    Deleted,
}

struct TfCall {
    caller: Caller,
    request: TfRequest,
}

impl Message for TfCall {
    type Result = Result<TfAnswer, SecretsError>;
}

impl Vault {
    pub async fn truefoundry(
        &self,
        caller: Caller,
        request: TfRequest,
    ) -> Result<TfAnswer, SecretsError> {
        self.addr
            .send(TfCall { caller, request })
            .await
            .unwrap_or_else(|e| Err(gone(e)))
    }

    /// TrueFoundry's tenant name (the first part of every fqn).
    pub async fn tenant(&self) -> String {
        self.addr.send(Tenant).await.unwrap_or_default()
    }
}

struct Tenant;

impl Message for Tenant {
    type Result = String;
}

impl Handler<Tenant> for VaultActor {
    type Result = String;

    fn handle(&mut self, _: Tenant, _: &mut Self::Context) -> String {
        self.tenant.clone()
    }
}

/// Names and keys: 1-128 of letters, digits, `.`, `_`, `-` (no `:`, which separates fqn parts).
fn check_name(what: &str, name: &str) -> Result<(), SecretsError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(SecretsError::Invalid(format!(
            "{what} `{name}` must be 1-128 letters, digits, `.`, `_` or `-`"
        )))
    }
}

pub(super) fn identity(group_id: &str, key: &str, version: u64) -> String {
    format!("truefoundry\0{group_id}\0{key}\0{version}")
}

fn page<T>(items: Vec<T>, limit: usize, offset: usize) -> Result<(Vec<T>, usize), SecretsError> {
    if !(1..=1000).contains(&limit) {
        return Err(SecretsError::Invalid(format!(
            "limit must be between 1 and 1000, got {limit}"
        )));
    }
    let total = items.len();
    Ok((items.into_iter().skip(offset).take(limit).collect(), total))
}

impl VaultActor {
    fn group_for(
        &self,
        caller: &Caller,
        id: &str,
        needed: GroupAccess,
    ) -> Result<&Group, SecretsError> {
        let group = self.state.groups.get(id).ok_or_else(|| {
            SecretsError::NotFound(format!("Secret group with id '{id}' not found"))
        })?;
        match group.access_of(caller) {
            Some(access) if access >= needed => Ok(group),
            Some(_) => Err(SecretsError::Forbidden(format!(
                "`{}` may not change secret group '{}'",
                caller.name, group.name
            ))),
            None => Err(SecretsError::Forbidden(format!(
                "`{}` has no access to secret group '{}'",
                caller.name, group.name
            ))),
        }
    }

    fn fqn(&self, group: &Group) -> String {
        format!("{}:{}", self.tenant, group.name)
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
            let what = format!("secret '{}:{}'", self.fqn(group), secret.key);
            Some(self.open(
                &latest.ciphertext,
                &identity(&group.id, &secret.key, latest.version),
                &what,
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
            .ok_or_else(|| SecretsError::NotFound(format!("Secret with id '{id}' not found")))?;
        self.group_for(caller, &group.id, needed)?;
        Ok((group, secret))
    }

    fn truefoundry(
        &mut self,
        caller: &Caller,
        request: TfRequest,
    ) -> Result<TfAnswer, SecretsError> {
        let now = now_micros();
        match request {
            TfRequest::ListGroups {
                limit,
                offset,
                fqn,
                search,
            } => {
                let visible: Vec<Group> = self
                    .state
                    .groups
                    .values()
                    .filter(|g| g.access_of(caller).is_some())
                    .filter(|g| fqn.as_ref().is_none_or(|f| *f == self.fqn(g)))
                    .filter(|g| {
                        search.as_ref().is_none_or(|s| {
                            g.name.contains(s.as_str())
                                || g.secrets.keys().any(|k| k.contains(s.as_str()))
                        })
                    })
                    .cloned()
                    .collect();
                let (groups, total) = page(visible, limit, offset)?;
                Ok(TfAnswer::Groups { groups, total })
            }
            TfRequest::CreateGroup {
                name,
                integration_id,
                secrets,
            } => {
                check_name("group name", &name)?;
                if self.state.groups.values().any(|g| g.name == name) {
                    return Err(SecretsError::AlreadyExists(format!(
                        "Secret group '{name}' already exists"
                    )));
                }
                let id = new_id();
                let mut group = Group {
                    id: id.clone(),
                    name,
                    integration_id,
                    manifest: None,
                    created_by: (caller.id.clone(), subject_type(caller).to_string()),
                    created: now,
                    updated: now,
                    secrets: Default::default(),
                };
                let mut changes = vec![Change::PutGroup(group.clone())];
                for (key, value) in secrets {
                    check_name("secret key", &key)?;
                    if group.secrets.contains_key(&key) {
                        return Err(SecretsError::Invalid(format!(
                            "secret key `{key}` appears twice"
                        )));
                    }
                    let secret = self.new_secret(&id, &key, &value, now);
                    changes.push(Change::PutGroupSecret {
                        group_id: id.clone(),
                        secret: secret.clone(),
                    });
                    group.secrets.insert(key, secret);
                }
                self.commit(changes)?;
                Ok(TfAnswer::Group(group))
            }
            TfRequest::Upsert { manifest, dry_run } => {
                let name = manifest
                    .get("name")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string();
                check_name("manifest.name", &name)?;
                if manifest
                    .get("type")
                    .and_then(Json::as_str)
                    .is_some_and(|t| t != "secret-group")
                {
                    return Err(SecretsError::Invalid(
                        "manifest.type must be `secret-group`".to_string(),
                    ));
                }
                let integration_id = manifest
                    .get("integration_fqn")
                    .and_then(Json::as_str)
                    .map(str::to_string);
                let group = match self.state.groups.values().find(|g| g.name == name) {
                    Some(existing) => {
                        let mut group = self
                            .group_for(caller, &existing.id.clone(), GroupAccess::Admin)?
                            .clone();
                        group.manifest = Some(manifest);
                        group.integration_id = integration_id.or(group.integration_id);
                        group.updated = now;
                        group
                    }
                    None => Group {
                        id: new_id(),
                        name,
                        integration_id,
                        manifest: Some(manifest),
                        created_by: (caller.id.clone(), subject_type(caller).to_string()),
                        created: now,
                        updated: now,
                        secrets: Default::default(),
                    },
                };
                if !dry_run {
                    self.commit(vec![Change::PutGroup(group.without_secrets())])?;
                }
                Ok(TfAnswer::Group(group))
            }
            TfRequest::GetGroup(id) => Ok(TfAnswer::Group(
                self.group_for(caller, &id, GroupAccess::Viewer)?.clone(),
            )),
            TfRequest::UpdateGroup { id, secrets } => {
                let group = self.group_for(caller, &id, GroupAccess::Editor)?;
                let mut fields = group.without_secrets();
                fields.updated = now;
                let mut changes = vec![Change::PutGroup(fields)];
                let mut kept = std::collections::BTreeSet::new();
                for (key, value) in secrets {
                    check_name("secret key", &key)?;
                    if !kept.insert(key.clone()) {
                        return Err(SecretsError::Invalid(format!(
                            "secret key `{key}` appears twice"
                        )));
                    }
                    match (group.secrets.get(&key), value) {
                        (Some(_), None) => {}
                        (Some(existing), Some(value)) => {
                            let latest = &existing.latest().sealed;
                            let what = format!("secret '{}:{}'", self.fqn(group), key);
                            let current = self.open(
                                &latest.ciphertext,
                                &identity(&id, &key, latest.version),
                                &what,
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
                        (None, None) => {
                            return Err(SecretsError::Invalid(format!(
                                "new secret key `{key}` needs a value"
                            )))
                        }
                    }
                }
                // Keys the update omits are deleted.
                changes.extend(group.secrets.keys().filter(|key| !kept.contains(*key)).map(
                    |key| Change::DeleteGroupSecret {
                        group_id: id.clone(),
                        key: key.clone(),
                    },
                ));
                self.commit(changes)?;
                Ok(TfAnswer::Group(self.state.groups[&id].clone()))
            }
            TfRequest::DeleteGroup(id) => {
                self.group_for(caller, &id, GroupAccess::Admin)?;
                self.commit(vec![Change::DeleteGroup(id)])?;
                Ok(TfAnswer::Deleted)
            }
            TfRequest::ListSecrets {
                limit,
                offset,
                fqns,
                group_id,
                with_value,
            } => {
                if let Some(id) = &group_id {
                    self.group_for(caller, id, GroupAccess::Viewer)?;
                }
                let mut views = Vec::new();
                for group in self.state.groups.values().filter(|g| {
                    g.access_of(caller).is_some() && group_id.as_ref().is_none_or(|id| *id == g.id)
                }) {
                    for secret in group.secrets.values() {
                        let fqn = format!("{}:{}", self.fqn(group), secret.key);
                        if fqns.is_empty() || fqns.contains(&fqn) {
                            views.push((group, secret));
                        }
                    }
                }
                let (chosen, total) = page(views, limit, offset)?;
                let secrets = chosen
                    .into_iter()
                    .map(|(g, s)| self.secret_view(g, s, with_value))
                    .collect::<Result<_, _>>()?;
                Ok(TfAnswer::Secrets { secrets, total })
            }
            TfRequest::GetSecret(id) => {
                let (group, secret) = self.secret_by_id(caller, &id, GroupAccess::Viewer)?;
                Ok(TfAnswer::Secret(self.secret_view(group, secret, true)?))
            }
            TfRequest::DeleteSecret(id) => {
                let (group, secret) = self.secret_by_id(caller, &id, GroupAccess::Editor)?;
                let mut fields = group.without_secrets();
                fields.updated = now;
                let deleted = Change::DeleteGroupSecret {
                    group_id: group.id.clone(),
                    key: secret.key.clone(),
                };
                self.commit(vec![Change::PutGroup(fields), deleted])?;
                Ok(TfAnswer::Deleted)
            }
        }
    }
}

/// TrueFoundry's subject type of a principal.
fn subject_type(caller: &Caller) -> &'static str {
    match caller.kind {
        PrincipalKind::User => "user",
        PrincipalKind::ServiceAccount | PrincipalKind::BootstrapAdmin => "serviceaccount",
    }
}

impl Handler<TfCall> for VaultActor {
    type Result = Result<TfAnswer, SecretsError>;

    fn handle(&mut self, msg: TfCall, _: &mut Self::Context) -> Self::Result {
        self.truefoundry(&msg.caller, msg.request)
    }
}

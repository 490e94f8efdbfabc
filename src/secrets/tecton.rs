//! Tecton's Secrets Service: scopes, secrets and role assignments on scopes. The creator of a
//! scope becomes its manager; readers read, writers also write and list keys, managers also
//! delete the scope and manage its assignments. Admins may do everything.

use actix::{Handler, Message};

use super::crypto::Plaintext;
use super::state::{Assignment, Change, PrincipalType, Scope, ScopeRole, Sealed};
use super::{Caller, NameKind, SecretRef, SecretsError, Vault, VaultActor};
use crate::iam::PrincipalKind;
use crate::time::now_micros;

/// Largest value accepted through the Tecton API.
const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most secrets one scope holds: what a scope may cost is bounded (any principal may create
/// one), and every secret is one small journal record, so a full scope is at most
/// `MAX_SECRETS_PER_SCOPE x MAX_VALUE_BYTES` (64 MiB) of ciphertext.
pub(super) const MAX_SECRETS_PER_SCOPE: usize = 1000;

/// Who holds which roles on a scope: (type, id, roles) per principal.
pub type ScopePrincipals = Vec<(PrincipalType, String, Vec<ScopeRole>)>;

/// A principal's roles: (scope, roles) per scope.
pub type PrincipalRoles = Vec<(String, Vec<ScopeRole>)>;

message!(
    /// Every scope in the cluster: names are not secret (Tecton lists them to any key).
    ListScopes {} -> Vec<String>
);
message!(CreateScope { caller: Caller, name: String } -> ());
message!(DeleteScope { caller: Caller, name: String } -> ());
message!(ListKeys { caller: Caller, scope: String } -> Vec<String>);
message!(GetValue { caller: Caller, scope: String, key: String } -> Plaintext);
message!(PutValue { caller: Caller, scope: String, key: String, value: Plaintext } -> ());
message!(DeleteKey { caller: Caller, scope: String, key: String } -> ());
message!(
    /// Answers when the caller manages every one of these scopes: checked before the assigned
    /// principals are looked up, so that a caller without the role learns nothing about which
    /// principals exist.
    CheckManages { caller: Caller, scopes: Vec<String> } -> ()
);
message!(Assign { caller: Caller, assignments: Vec<(String, Assignment)> } -> ());
message!(Unassign { caller: Caller, assignments: Vec<(String, Assignment)> } -> ());
message!(
    /// Who holds which roles on a scope, optionally filtered.
    AssignedPrincipals { caller: Caller, scope: String, roles: Vec<ScopeRole>, types: Vec<PrincipalType> } -> ScopePrincipals
);
message!(
    /// A principal's roles on scopes, optionally filtered.
    AssignedRoles { caller: Caller,
        principal_type: PrincipalType,
        principal_id: String,
        scopes: Vec<String>,
        roles: Vec<ScopeRole>
    } -> PrincipalRoles
);

impl Vault {
    pub async fn list_scopes(&self) -> Result<Vec<String>, SecretsError> {
        self.ask(ListScopes {}).await
    }

    pub async fn create_scope(&self, caller: Caller, name: String) -> Result<(), SecretsError> {
        self.ask(CreateScope { caller, name }).await
    }

    pub async fn delete_scope(&self, caller: Caller, name: String) -> Result<(), SecretsError> {
        self.ask(DeleteScope { caller, name }).await
    }

    pub async fn list_keys(
        &self,
        caller: Caller,
        scope: String,
    ) -> Result<Vec<String>, SecretsError> {
        self.ask(ListKeys { caller, scope }).await
    }

    pub async fn get_value(
        &self,
        caller: Caller,
        scope: String,
        key: String,
    ) -> Result<Plaintext, SecretsError> {
        self.ask(GetValue { caller, scope, key }).await
    }

    pub async fn put_value(
        &self,
        caller: Caller,
        scope: String,
        key: String,
        value: Plaintext,
    ) -> Result<(), SecretsError> {
        self.ask(PutValue {
            caller,
            scope,
            key,
            value,
        })
        .await
    }

    pub async fn delete_key(
        &self,
        caller: Caller,
        scope: String,
        key: String,
    ) -> Result<(), SecretsError> {
        self.ask(DeleteKey { caller, scope, key }).await
    }

    pub async fn check_manages(
        &self,
        caller: Caller,
        scopes: Vec<String>,
    ) -> Result<(), SecretsError> {
        self.ask(CheckManages { caller, scopes }).await
    }

    /// Adds role assignments, (scope, assignment) each; all or nothing.
    pub async fn assign(
        &self,
        caller: Caller,
        assignments: Vec<(String, Assignment)>,
    ) -> Result<(), SecretsError> {
        self.ask(Assign {
            caller,
            assignments,
        })
        .await
    }

    /// Removes role assignments, (scope, assignment) each; all or nothing.
    pub async fn unassign(
        &self,
        caller: Caller,
        assignments: Vec<(String, Assignment)>,
    ) -> Result<(), SecretsError> {
        self.ask(Unassign {
            caller,
            assignments,
        })
        .await
    }

    pub async fn assigned_principals(
        &self,
        caller: Caller,
        scope: String,
        roles: Vec<ScopeRole>,
        types: Vec<PrincipalType>,
    ) -> Result<ScopePrincipals, SecretsError> {
        self.ask(AssignedPrincipals {
            caller,
            scope,
            roles,
            types,
        })
        .await
    }

    pub async fn assigned_roles(
        &self,
        caller: Caller,
        principal_type: PrincipalType,
        principal_id: String,
        scopes: Vec<String>,
        roles: Vec<ScopeRole>,
    ) -> Result<PrincipalRoles, SecretsError> {
        self.ask(AssignedRoles {
            caller,
            principal_type,
            principal_id,
            scopes,
            roles,
        })
        .await
    }
}

fn check_name(kind: NameKind, name: &str) -> Result<(), SecretsError> {
    if crate::names::is_scope_name(name) {
        Ok(())
    } else {
        Err(SecretsError::InvalidName {
            kind,
            name: name.to_string(),
        })
    }
}

/// The identity a Tecton secret's ciphertext is bound to.
pub(super) fn identity(scope: &str, key: &str, version: u64) -> String {
    format!("tecton\0{scope}\0{key}\0{version}")
}

impl VaultActor {
    /// The scope, if `caller` holds at least `needed` on it.
    fn scope_for(
        &self,
        caller: &Caller,
        name: &str,
        needed: ScopeRole,
    ) -> Result<&Scope, SecretsError> {
        let scope = self
            .state
            .scopes
            .get(name)
            .ok_or_else(|| SecretsError::ScopeNotFound(name.to_string()))?;
        match scope.role_of(caller) {
            Some(role) if role >= needed => Ok(scope),
            _ => Err(SecretsError::ScopeRoleNeeded {
                principal: caller.name.clone(),
                scope: name.to_string(),
                needed,
            }),
        }
    }

    /// Adds or removes assignments; every scope is checked before anything changes, and only
    /// what changes is journaled (assigning twice or removing what is absent is a no-op).
    fn change_assignments(
        &mut self,
        caller: &Caller,
        assignments: Vec<(String, Assignment)>,
        assign: bool,
    ) -> Result<(), SecretsError> {
        let mut changes: Vec<Change> = Vec::new();
        for (scope_name, assignment) in assignments {
            let scope = self.scope_for(caller, &scope_name, ScopeRole::Manager)?;
            let present = scope.assignments.contains(&assignment);
            let change = if assign {
                Change::Assign {
                    scope: scope_name,
                    assignment,
                }
            } else {
                Change::Unassign {
                    scope: scope_name,
                    assignment,
                }
            };
            if present != assign && !changes.contains(&change) {
                changes.push(change);
            }
        }
        self.commit(changes)
    }
}

impl Handler<ListScopes> for VaultActor {
    type Result = Result<Vec<String>, SecretsError>;

    fn handle(&mut self, _: ListScopes, _: &mut Self::Context) -> Self::Result {
        Ok(self.state.scopes.keys().cloned().collect())
    }
}

impl Handler<CreateScope> for VaultActor {
    type Result = Result<(), SecretsError>;

    fn handle(&mut self, msg: CreateScope, _: &mut Self::Context) -> Self::Result {
        let CreateScope { caller, name } = msg;
        check_name(NameKind::Scope, &name)?;
        if self.state.scopes.contains_key(&name) {
            return Err(SecretsError::ScopeExists(name));
        }
        let creator = match caller.kind {
            PrincipalKind::User => Some(PrincipalType::User),
            PrincipalKind::ServiceAccount => Some(PrincipalType::ServiceAccount),
            // The bootstrap admin manages every scope anyway.
            PrincipalKind::BootstrapAdmin => None,
        };
        let assignments = creator
            .map(|principal_type| Assignment {
                principal_type,
                principal_id: caller.id.clone(),
                role: ScopeRole::Manager,
            })
            .into_iter()
            .collect();
        self.commit(vec![Change::CreateScope {
            name,
            created: now_micros(),
            assignments,
        }])
    }
}

impl Handler<DeleteScope> for VaultActor {
    type Result = Result<(), SecretsError>;

    fn handle(&mut self, msg: DeleteScope, _: &mut Self::Context) -> Self::Result {
        let scope = self.scope_for(&msg.caller, &msg.name, ScopeRole::Manager)?;
        if !scope.secrets.is_empty() {
            return Err(SecretsError::ScopeNotEmpty {
                scope: msg.name,
                secrets: scope.secrets.len(),
            });
        }
        self.commit(vec![Change::DeleteScope(msg.name)])
    }
}

impl Handler<ListKeys> for VaultActor {
    type Result = Result<Vec<String>, SecretsError>;

    fn handle(&mut self, msg: ListKeys, _: &mut Self::Context) -> Self::Result {
        let scope = self.scope_for(&msg.caller, &msg.scope, ScopeRole::Writer)?;
        Ok(scope.secrets.keys().cloned().collect())
    }
}

impl Handler<GetValue> for VaultActor {
    type Result = Result<Plaintext, SecretsError>;

    fn handle(&mut self, msg: GetValue, _: &mut Self::Context) -> Self::Result {
        let GetValue { caller, scope, key } = msg;
        let found = self.scope_for(&caller, &scope, ScopeRole::Reader)?;
        let Some(sealed) = found.secrets.get(&key) else {
            return Err(SecretsError::ScopeSecretNotFound { scope, key });
        };
        self.open(
            &sealed.ciphertext,
            &identity(&scope, &key, sealed.version),
            || SecretRef::Scope {
                scope: scope.clone(),
                key: key.clone(),
            },
        )
    }
}

impl Handler<PutValue> for VaultActor {
    type Result = Result<(), SecretsError>;

    fn handle(&mut self, msg: PutValue, _: &mut Self::Context) -> Self::Result {
        let PutValue {
            caller,
            scope,
            key,
            value,
        } = msg;
        check_name(NameKind::ScopeKey, &key)?;
        if value.0.len() > MAX_VALUE_BYTES {
            return Err(SecretsError::ValueTooLarge {
                max_bytes: MAX_VALUE_BYTES,
            });
        }
        let found = self.scope_for(&caller, &scope, ScopeRole::Writer)?;
        let existing = found.secrets.get(&key);
        if existing.is_none() && found.secrets.len() >= MAX_SECRETS_PER_SCOPE {
            return Err(SecretsError::ScopeFull {
                scope,
                max_secrets: MAX_SECRETS_PER_SCOPE,
            });
        }
        let now = now_micros();
        let (version, created) = existing.map_or((1, now), |s| (s.version + 1, s.created));
        let ciphertext = self.seal(&value, &identity(&scope, &key, version));
        let sealed = Sealed {
            ciphertext,
            version,
            created,
            updated: now,
        };
        self.commit(vec![Change::PutScopeSecret { scope, key, sealed }])
    }
}

impl Handler<DeleteKey> for VaultActor {
    type Result = Result<(), SecretsError>;

    fn handle(&mut self, msg: DeleteKey, _: &mut Self::Context) -> Self::Result {
        let DeleteKey { caller, scope, key } = msg;
        let found = self.scope_for(&caller, &scope, ScopeRole::Writer)?;
        if !found.secrets.contains_key(&key) {
            return Err(SecretsError::ScopeSecretNotFound { scope, key });
        }
        self.commit(vec![Change::DeleteScopeSecret { scope, key }])
    }
}

impl Handler<CheckManages> for VaultActor {
    type Result = Result<(), SecretsError>;

    fn handle(&mut self, msg: CheckManages, _: &mut Self::Context) -> Self::Result {
        for scope in &msg.scopes {
            self.scope_for(&msg.caller, scope, ScopeRole::Manager)?;
        }
        Ok(())
    }
}

impl Handler<Assign> for VaultActor {
    type Result = Result<(), SecretsError>;

    fn handle(&mut self, msg: Assign, _: &mut Self::Context) -> Self::Result {
        self.change_assignments(&msg.caller, msg.assignments, true)
    }
}

impl Handler<Unassign> for VaultActor {
    type Result = Result<(), SecretsError>;

    fn handle(&mut self, msg: Unassign, _: &mut Self::Context) -> Self::Result {
        self.change_assignments(&msg.caller, msg.assignments, false)
    }
}

impl Handler<AssignedPrincipals> for VaultActor {
    type Result = Result<ScopePrincipals, SecretsError>;

    fn handle(&mut self, msg: AssignedPrincipals, _: &mut Self::Context) -> Self::Result {
        let AssignedPrincipals {
            caller,
            scope,
            roles,
            types,
        } = msg;
        let found = self.scope_for(&caller, &scope, ScopeRole::Manager)?;
        let mut principals: ScopePrincipals = Vec::new();
        for a in found.assignments.iter().filter(|a| {
            (roles.is_empty() || roles.contains(&a.role))
                && (types.is_empty() || types.contains(&a.principal_type))
        }) {
            match principals
                .iter_mut()
                .find(|(t, id, _)| *t == a.principal_type && *id == a.principal_id)
            {
                Some((_, _, held)) => held.push(a.role),
                None => principals.push((a.principal_type, a.principal_id.clone(), vec![a.role])),
            }
        }
        Ok(principals)
    }
}

impl Handler<AssignedRoles> for VaultActor {
    type Result = Result<PrincipalRoles, SecretsError>;

    fn handle(&mut self, msg: AssignedRoles, _: &mut Self::Context) -> Self::Result {
        let AssignedRoles {
            caller,
            principal_type,
            principal_id,
            scopes,
            roles,
        } = msg;
        let is_self = caller.id == principal_id;
        let mut found = Vec::new();
        for scope in self
            .state
            .scopes
            .values()
            .filter(|s| scopes.is_empty() || scopes.contains(&s.name))
        {
            // Others' roles are visible to the scope's managers only.
            if !is_self && scope.role_of(&caller) != Some(ScopeRole::Manager) {
                continue;
            }
            let held: Vec<ScopeRole> = scope
                .assignments
                .iter()
                .filter(|a| {
                    a.principal_type == principal_type
                        && a.principal_id == principal_id
                        && (roles.is_empty() || roles.contains(&a.role))
                })
                .map(|a| a.role)
                .collect();
            if !held.is_empty() {
                found.push((scope.name.clone(), held));
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scope or key named `.` or `..` could be created (through the metadata proxy, whose
    /// names travel in the body) but never read back through a URL: refused.
    #[test]
    fn names_take_dots_but_are_not_dot_segments() {
        for name in ["a.b", ".hidden", "v1..2", "x".repeat(128).as_str()] {
            assert!(check_name(NameKind::Scope, name).is_ok(), "{name}");
        }
        for name in ["", ".", "..", "a/b", "a b", "x".repeat(129).as_str()] {
            assert!(check_name(NameKind::ScopeKey, name).is_err(), "{name}");
        }
    }
}

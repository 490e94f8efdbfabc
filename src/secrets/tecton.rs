//! Tecton's Secrets Service: scopes, secrets and role assignments on scopes. The creator of a
//! scope becomes its manager; readers read, writers also write and list keys, managers also
//! delete the scope and manage its assignments. Admins may do everything.

use actix::{Handler, Message};

use super::crypto::Plaintext;
use super::state::{Assignment, Change, PrincipalType, Scope, ScopeRole, Sealed};
use super::{gone, Caller, SecretsError, Vault, VaultActor};
use crate::iam::PrincipalKind;
use crate::time::now_micros;

/// Largest value accepted through the Tecton API.
const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most secrets one scope holds: what a scope may cost is bounded (any principal may create
/// one), and every secret is one small journal record, so a full scope is at most
/// `MAX_SECRETS_PER_SCOPE x MAX_VALUE_BYTES` (64 MiB) of ciphertext.
const MAX_SECRETS_PER_SCOPE: usize = 1000;

#[derive(Debug, Clone)]
pub enum TectonRequest {
    ListScopes,
    CreateScope(String),
    DeleteScope(String),
    ListKeys(String),
    GetValue {
        scope: String,
        key: String,
    },
    PutValue {
        scope: String,
        key: String,
        value: Plaintext,
    },
    DeleteKey {
        scope: String,
        key: String,
    },
    /// Answers `Done` when the caller manages every one of these scopes: checked before the
    /// assigned principals are looked up, so that a caller without the role learns nothing
    /// about which principals exist.
    CheckManages(Vec<String>),
    Assign(Vec<(String, Assignment)>),
    Unassign(Vec<(String, Assignment)>),
    /// Who holds which roles on a scope, optionally filtered.
    Principals {
        scope: String,
        roles: Vec<ScopeRole>,
        types: Vec<PrincipalType>,
    },
    /// A principal's roles on scopes, optionally filtered.
    RolesOf {
        principal_type: PrincipalType,
        principal_id: String,
        scopes: Vec<String>,
        roles: Vec<ScopeRole>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum TectonAnswer {
    Done,
    Scopes(Vec<String>),
    Keys(Vec<String>),
    Value(Plaintext),
    /// (type, id, roles) per principal.
    Principals(Vec<(PrincipalType, String, Vec<ScopeRole>)>),
    /// (scope, roles) per scope.
    Roles(Vec<(String, Vec<ScopeRole>)>),
}

struct TectonCall {
    caller: Caller,
    request: TectonRequest,
}

impl Message for TectonCall {
    type Result = Result<TectonAnswer, SecretsError>;
}

impl Vault {
    pub async fn tecton(
        &self,
        caller: Caller,
        request: TectonRequest,
    ) -> Result<TectonAnswer, SecretsError> {
        self.addr
            .send(TectonCall { caller, request })
            .await
            .unwrap_or_else(|e| Err(gone(e)))
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
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
        let scope =
            self.state.scopes.get(name).ok_or_else(|| {
                SecretsError::NotFound(format!("Secret scope `{name}` not found"))
            })?;
        match scope.role_of(caller) {
            Some(role) if role >= needed => Ok(scope),
            _ => Err(SecretsError::Forbidden(format!(
                "`{}` needs {} on secret scope `{name}`",
                caller.name,
                needed.name()
            ))),
        }
    }

    fn tecton(
        &mut self,
        caller: &Caller,
        request: TectonRequest,
    ) -> Result<TectonAnswer, SecretsError> {
        match request {
            TectonRequest::ListScopes => Ok(TectonAnswer::Scopes(
                self.state
                    .scopes
                    .values()
                    .filter(|s| s.role_of(caller).is_some())
                    .map(|s| s.name.clone())
                    .collect(),
            )),
            TectonRequest::CreateScope(name) => {
                if !valid_name(&name) {
                    return Err(SecretsError::Invalid(format!(
                        "scope name `{name}` must be 1-128 letters, digits, `_`, `-` or `.`"
                    )));
                }
                if self.state.scopes.contains_key(&name) {
                    return Err(SecretsError::AlreadyExists(format!(
                        "Secret scope `{name}` already exists"
                    )));
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
                }])?;
                Ok(TectonAnswer::Done)
            }
            TectonRequest::DeleteScope(name) => {
                let scope = self.scope_for(caller, &name, ScopeRole::Manager)?;
                if !scope.secrets.is_empty() {
                    return Err(SecretsError::NotEmpty(format!(
                        "Secret scope `{name}` still holds {} secret(s); delete them before deleting the scope",
                        scope.secrets.len()
                    )));
                }
                self.commit(vec![Change::DeleteScope(name)])?;
                Ok(TectonAnswer::Done)
            }
            TectonRequest::ListKeys(name) => {
                let scope = self.scope_for(caller, &name, ScopeRole::Writer)?;
                Ok(TectonAnswer::Keys(scope.secrets.keys().cloned().collect()))
            }
            TectonRequest::GetValue { scope, key } => {
                let found = self.scope_for(caller, &scope, ScopeRole::Reader)?;
                let sealed = found.secrets.get(&key).ok_or_else(|| {
                    SecretsError::NotFound(format!("Secret `{key}` not found in scope `{scope}`"))
                })?;
                let value = self.open(
                    &sealed.ciphertext,
                    &identity(&scope, &key, sealed.version),
                    &format!("secret `{scope}/{key}`"),
                )?;
                Ok(TectonAnswer::Value(value))
            }
            TectonRequest::PutValue { scope, key, value } => {
                if !valid_name(&key) {
                    return Err(SecretsError::Invalid(format!(
                        "secret key `{key}` must be 1-128 letters, digits, `_`, `-` or `.`"
                    )));
                }
                if value.0.len() > MAX_VALUE_BYTES {
                    return Err(SecretsError::Invalid(format!(
                        "a secret value is at most {MAX_VALUE_BYTES} bytes"
                    )));
                }
                let found = self.scope_for(caller, &scope, ScopeRole::Writer)?;
                let existing = found.secrets.get(&key);
                if existing.is_none() && found.secrets.len() >= MAX_SECRETS_PER_SCOPE {
                    return Err(SecretsError::Invalid(format!(
                        "secret scope `{scope}` already holds {MAX_SECRETS_PER_SCOPE} secrets, the most a scope may hold; delete one or use another scope"
                    )));
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
                self.commit(vec![Change::PutScopeSecret { scope, key, sealed }])?;
                Ok(TectonAnswer::Done)
            }
            TectonRequest::DeleteKey { scope, key } => {
                let found = self.scope_for(caller, &scope, ScopeRole::Writer)?;
                if !found.secrets.contains_key(&key) {
                    return Err(SecretsError::NotFound(format!(
                        "Secret `{key}` not found in scope `{scope}`"
                    )));
                }
                self.commit(vec![Change::DeleteScopeSecret { scope, key }])?;
                Ok(TectonAnswer::Done)
            }
            TectonRequest::CheckManages(scopes) => {
                for scope in &scopes {
                    self.scope_for(caller, scope, ScopeRole::Manager)?;
                }
                Ok(TectonAnswer::Done)
            }
            TectonRequest::Assign(assignments) | TectonRequest::Unassign(assignments)
                if assignments.is_empty() =>
            {
                Err(SecretsError::Invalid("`assignments` is empty".to_string()))
            }
            TectonRequest::Assign(assignments) => {
                self.change_assignments(caller, assignments, true)
            }
            TectonRequest::Unassign(assignments) => {
                self.change_assignments(caller, assignments, false)
            }
            TectonRequest::Principals {
                scope,
                roles,
                types,
            } => {
                let found = self.scope_for(caller, &scope, ScopeRole::Manager)?;
                let mut principals: Vec<(PrincipalType, String, Vec<ScopeRole>)> = Vec::new();
                for a in found.assignments.iter().filter(|a| {
                    (roles.is_empty() || roles.contains(&a.role))
                        && (types.is_empty() || types.contains(&a.principal_type))
                }) {
                    match principals
                        .iter_mut()
                        .find(|(t, id, _)| *t == a.principal_type && *id == a.principal_id)
                    {
                        Some((_, _, held)) => held.push(a.role),
                        None => principals.push((
                            a.principal_type,
                            a.principal_id.clone(),
                            vec![a.role],
                        )),
                    }
                }
                Ok(TectonAnswer::Principals(principals))
            }
            TectonRequest::RolesOf {
                principal_type,
                principal_id,
                scopes,
                roles,
            } => {
                let is_self = caller.id == principal_id;
                let mut found = Vec::new();
                for scope in self
                    .state
                    .scopes
                    .values()
                    .filter(|s| scopes.is_empty() || scopes.contains(&s.name))
                {
                    // Others' roles are visible to the scope's managers only.
                    if !is_self && scope.role_of(caller) != Some(ScopeRole::Manager) {
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
                Ok(TectonAnswer::Roles(found))
            }
        }
    }

    /// Adds or removes assignments; every scope is checked before anything changes, and only
    /// what changes is journaled (assigning twice or removing what is absent is a no-op).
    fn change_assignments(
        &mut self,
        caller: &Caller,
        assignments: Vec<(String, Assignment)>,
        assign: bool,
    ) -> Result<TectonAnswer, SecretsError> {
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
        self.commit(changes)?;
        Ok(TectonAnswer::Done)
    }
}

impl Handler<TectonCall> for VaultActor {
    type Result = Result<TectonAnswer, SecretsError>;

    fn handle(&mut self, msg: TectonCall, _: &mut Self::Context) -> Self::Result {
        self.tecton(&msg.caller, msg.request)
    }
}

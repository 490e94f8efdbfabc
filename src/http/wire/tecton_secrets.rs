//! Tecton Secrets Service JSON: the request bodies of the role-assignment calls, the seed's
//! snake_case answers; a vault error reads in Tecton's `{"error","code","message"}` through the
//! error table (`http/error.rs`).

use serde::Deserialize;
use serde_json::{json, Value as Json};

use crate::echo::echo;
use crate::http::error::{ApiError, ErrorKind};
use crate::iam::{PrincipalKind, PrincipalRef};
use crate::secrets::state::{Assignment, PrincipalType, ScopeRole};
use crate::secrets::tecton::PrincipalRoles;

fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorKind::InvalidArgument, message)
}

/// Only secret scopes carry roles here.
pub fn check_resource_type(resource_type: Option<&str>) -> Result<(), ApiError> {
    match resource_type {
        None | Some("RESOURCE_TYPE_SECRET_SCOPE") => Ok(()),
        Some(other) => Err(invalid(format!(
            "resource_type `{}` is not RESOURCE_TYPE_SECRET_SCOPE",
            echo(other)
        ))),
    }
}

/// Tecton's name of a principal type.
pub fn principal_type_name(principal_type: PrincipalType) -> &'static str {
    match principal_type {
        PrincipalType::User => "PRINCIPAL_TYPE_USER",
        PrincipalType::ServiceAccount => "PRINCIPAL_TYPE_SERVICE_ACCOUNT",
        PrincipalType::Group => "PRINCIPAL_TYPE_GROUP",
        PrincipalType::Workspace => "PRINCIPAL_TYPE_WORKSPACE",
    }
}

fn principal_type(text: &str) -> Result<PrincipalType, ApiError> {
    [
        PrincipalType::User,
        PrincipalType::ServiceAccount,
        PrincipalType::Group,
        PrincipalType::Workspace,
    ]
    .into_iter()
    .find(|t| principal_type_name(*t) == text)
    .ok_or_else(|| invalid(format!("principal_type `{}` must be PRINCIPAL_TYPE_USER, _SERVICE_ACCOUNT, _GROUP or _WORKSPACE", echo(text))))
}

fn scope_role(text: &str) -> Result<ScopeRole, ApiError> {
    ScopeRole::parse(text).ok_or_else(|| {
        invalid(format!(
            "role `{}` must be read_scope_role, write_scope_role or manage_scope_role",
            echo(text)
        ))
    })
}

fn scope_roles(texts: &[String]) -> Result<Vec<ScopeRole>, ApiError> {
    texts.iter().map(|r| scope_role(r)).collect()
}

/// The body of `POST /scopes`.
#[derive(Deserialize)]
pub struct CreateScopeBody {
    pub scope: String,
}

/// The body of a put.
#[derive(Deserialize)]
pub struct PutValueBody {
    pub value: String,
}

/// One assignment as sent (camelCase or snake_case).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignmentBody {
    #[serde(alias = "resource_type")]
    resource_type: Option<String>,
    #[serde(alias = "resource_id")]
    resource_id: Option<String>,
    role: String,
    #[serde(alias = "principal_type")]
    principal_type: String,
    #[serde(alias = "principal_id")]
    principal_id: String,
}

/// The body of `assign-roles` and `unassign-roles`.
#[derive(Debug, Deserialize)]
pub struct AssignmentsBody {
    assignments: Vec<AssignmentBody>,
}

impl AssignmentsBody {
    /// The (scope, assignment) pairs; a scope missing from an item is the path's.
    pub fn into_assignments(
        self,
        path_scope: Option<String>,
    ) -> Result<Vec<(String, Assignment)>, ApiError> {
        if self.assignments.is_empty() {
            return Err(invalid("`assignments` is empty".to_string()));
        }
        let mut assignments = Vec::with_capacity(self.assignments.len());
        for (i, a) in self.assignments.into_iter().enumerate() {
            check_resource_type(a.resource_type.as_deref())?;
            let scope = a
                .resource_id
                .or_else(|| path_scope.clone())
                .ok_or_else(|| invalid(format!("assignments[{i}].resource_id is required")))?;
            let assignment = Assignment {
                principal_type: principal_type(&a.principal_type)?,
                principal_id: a.principal_id,
                role: scope_role(&a.role)?,
            };
            assignments.push((scope, assignment));
        }
        Ok(assignments)
    }
}

/// The body of `get-assigned-principals`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedPrincipalsBody {
    #[serde(alias = "resource_type")]
    resource_type: Option<String>,
    #[serde(alias = "resource_id")]
    resource_id: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default, alias = "principal_types")]
    principal_types: Vec<String>,
}

impl AssignedPrincipalsBody {
    /// (scope, roles, principal types) to look up.
    pub fn into_query(self) -> Result<(String, Vec<ScopeRole>, Vec<PrincipalType>), ApiError> {
        check_resource_type(self.resource_type.as_deref())?;
        let types = self
            .principal_types
            .iter()
            .map(|t| principal_type(t))
            .collect::<Result<_, _>>()?;
        Ok((self.resource_id, scope_roles(&self.roles)?, types))
    }
}

/// The body of `get-assigned-roles`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedRolesBody {
    #[serde(alias = "principal_type")]
    principal_type: String,
    #[serde(alias = "principal_id")]
    principal_id: String,
    #[serde(alias = "resource_type")]
    resource_type: Option<String>,
    #[serde(default, alias = "resource_ids")]
    resource_ids: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// What `get-assigned-roles` asks for.
pub struct RolesQuery {
    pub principal_type: PrincipalType,
    pub principal_id: String,
    pub scopes: Vec<String>,
    pub roles: Vec<ScopeRole>,
}

impl AssignedRolesBody {
    pub fn into_query(self) -> Result<RolesQuery, ApiError> {
        check_resource_type(self.resource_type.as_deref())?;
        Ok(RolesQuery {
            principal_type: principal_type(&self.principal_type)?,
            principal_id: self.principal_id,
            scopes: self.resource_ids,
            roles: scope_roles(&self.roles)?,
        })
    }
}

/// `{"<field>": [{"name": ...}, ...]}`: the scopes or the keys of a scope.
pub fn names(field: &str, names: Vec<String>) -> Json {
    let items: Vec<Json> = names
        .into_iter()
        .map(|name| json!({"name": name}))
        .collect();
    json!({ field: items })
}

pub fn value(value: &str) -> Json {
    json!({"value": value})
}

/// The answer of a call that answers nothing.
pub fn done() -> Json {
    json!({})
}

fn roles_granted(roles: &[ScopeRole]) -> Vec<Json> {
    roles.iter().map(|r| json!({"role": r.name(), "role_assignment_sources": [{"assignment_type": "ROLE_ASSIGNMENT_TYPE_DIRECT"}]})).collect()
}

fn scope_roles_json(scope: &str, roles: &[ScopeRole]) -> Json {
    json!({"resource_type": "RESOURCE_TYPE_SECRET_SCOPE", "resource_id": scope, "roles_granted": roles_granted(roles)})
}

/// A service account's `creator`: `{"principal_type", "id"}`. The bootstrap admin is a key,
/// not a person: it reads as a service account with id `bootstrap-admin`.
fn creator_json(creator: &PrincipalRef) -> Json {
    let principal_type = match creator.kind {
        PrincipalKind::User => PrincipalType::User,
        PrincipalKind::ServiceAccount | PrincipalKind::BootstrapAdmin => {
            PrincipalType::ServiceAccount
        }
    };
    json!({"principal_type": principal_type_name(principal_type), "id": creator.id})
}

/// The seed's `principal` object from the principal's SCIM record (a workspace has none) and,
/// for a service account, its creator (omitted when Quiver did not record it: the account
/// was created by a build that kept no creators).
pub fn principal(
    principal_type: PrincipalType,
    id: &str,
    record: Option<Json>,
    creator: Option<&PrincipalRef>,
) -> Json {
    let record = record.unwrap_or_default();
    match principal_type {
        PrincipalType::Workspace => json!({"workspace": {"name": id}}),
        PrincipalType::ServiceAccount => {
            let mut account = json!({"id": id, "name": record["name"], "description": record["description"], "is_active": record["active"].as_bool().unwrap_or(true)});
            if let Some(creator) = creator {
                account["creator"] = creator_json(creator);
            }
            json!({ "service_account": account })
        }
        PrincipalType::User => {
            json!({"user": {"id": id, "login_email": record["userName"], "first_name": record["name"]["givenName"], "last_name": record["name"]["familyName"]}})
        }
        PrincipalType::Group => json!({"group": {"id": id, "name": record["displayName"]}}),
    }
}

/// `get-assigned-principals`: each principal (already encoded) with its roles on `scope`.
pub fn assigned_principals(scope: &str, found: Vec<(Json, Vec<ScopeRole>)>) -> Json {
    let assignments: Vec<Json> = found
        .into_iter()
        .map(|(principal, roles)| {
            json!({"principal": principal, "role_assignments": [scope_roles_json(scope, &roles)]})
        })
        .collect();
    json!({ "assignments": assignments })
}

/// `get-assigned-roles`: the principal's roles per scope.
pub fn assigned_roles(found: &PrincipalRoles) -> Json {
    let assignments: Vec<Json> = found
        .iter()
        .map(|(scope, roles)| scope_roles_json(scope, roles))
        .collect();
    json!({ "assignments": assignments })
}

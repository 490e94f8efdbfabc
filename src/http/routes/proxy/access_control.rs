//! `AuthorizationService` through the proxy (`tecton access-control ...`). Secret-scope roles
//! are the Vault's, assigned and listed under the same rules as the JSON
//! `/api/v1/secrets-service` routes. Workspace and organisation roles are the SCIM `roles` of
//! the directory's records: listed here (to an admin, or to the principal itself), assigned by
//! admins and their holders listed to admins (`directory_roles`). Also `GetUser`, which the
//! CLI calls to turn `-u EMAIL` into an id.

use std::sync::Arc;

use prost::Message;
use serde_json::Value as Json;

use super::{decode, directory_roles, unimplemented};
use crate::echo::echo;
use crate::http::error::{ApiError, ErrorKind};
use crate::http::routes::tecton_secrets::{check_assignments, record};
use crate::http::wire::tecton_proto::auth as wire;
use crate::http::wire::tecton_proto::metadataservice as mds;
use crate::http::AppState;
use crate::iam::directory::{ListQuery, ResourceKind};
use crate::iam::roles::{read_roles, Grants};
use crate::iam::scim::filter::{AttrPath, Filter, Op};
use crate::iam::{Permission, Principal, Role};
use crate::secrets::state::{Assignment, PrincipalType, ScopeRole};

/// Tecton's workspace roles, assignable per workspace or on all of them (the organisation).
const WORKSPACE_ROLES: [Role; 5] = [
    Role::Owner,
    Role::Editor,
    Role::Consumer,
    Role::Operator,
    Role::Viewer,
];

fn workspace_role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Editor => "editor",
        Role::Consumer => "consumer",
        Role::Operator => "operator",
        Role::Viewer => "viewer",
    }
}

pub async fn call(
    state: &AppState,
    caller: Arc<Principal>,
    name: &str,
    message: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let response = match name {
        "GetRoles" => wire::GetRolesResponse { roles: catalogue() }.encode_to_vec(),
        "AssignRoles" | "UnassignRoles" => {
            let request: wire::AssignmentsRequest = decode(message)?;
            let unassign = name == "UnassignRoles";
            let (scope, directory): (Vec<_>, Vec<_>) =
                request.assignments.into_iter().partition(|assignment| {
                    assignment.resource_type == wire::RESOURCE_TYPE_SECRET_SCOPE
                });
            match (scope.is_empty(), directory.is_empty()) {
                (_, true) => {
                    let assignments = scope_assignments(scope)?;
                    check_assignments(state, &caller, &assignments).await?;
                    if unassign {
                        state.vault.unassign(caller, assignments).await?;
                    } else {
                        state.vault.assign(caller, assignments).await?;
                    }
                }
                (true, false) => {
                    directory_roles::change(state, &caller, directory, unassign).await?
                }
                (false, false) => {
                    // The vault and the directory are two owners: one request, one owner, so
                    // that it is applied whole or not at all.
                    return Err(ApiError::new(
                        ErrorKind::InvalidArgument,
                        "assign secret scope roles and workspace or organization roles in \
                         separate requests",
                    ));
                }
            }
            ().encode_to_vec()
        }
        "ListAssignedRoles" => {
            let request: wire::ListAssignedRolesRequest = decode(message)?;
            let assignments = assigned_roles(state, caller, request).await?;
            wire::ListAssignedRolesResponse { assignments }.encode_to_vec()
        }
        "ListAssignedPrincipals" => {
            let request: wire::ListAssignedPrincipalsRequest = decode(message)?;
            let assignments = assigned_principals(state, caller, request).await?;
            wire::ListAssignedPrincipalsResponse { assignments }.encode_to_vec()
        }
        _ => return Err(unimplemented(&format!("AuthorizationService/{name}"))),
    };
    Ok(response)
}

/// `MetadataService/GetUser` by id or email (how `-u EMAIL` finds a user's id): a directory
/// read, so for admins only, as SCIM reads are.
pub async fn user(
    state: &AppState,
    caller: Arc<Principal>,
    message: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let request: mds::GetUserRequest = decode(message)?;
    caller.require(Permission::Admin)?;
    let found = if request.id.is_empty() {
        let by_email = Filter::Compare(
            AttrPath {
                attr: "userName".to_string(),
                sub: None,
            },
            Op::Eq,
            Json::String(request.email.clone()),
        );
        let query = ListQuery {
            kind: ResourceKind::User,
            filter: Some(by_email),
            sort_by: None,
            descending: false,
        };
        let users =
            state.directory.list(query).await.map_err(|error| {
                ApiError::new(ErrorKind::Internal, format!("directory: {error}"))
            })?;
        users.into_iter().next()
    } else {
        record(state, PrincipalType::User, &request.id).await
    };
    let user = found.ok_or_else(|| {
        let who = if request.id.is_empty() {
            &request.email
        } else {
            &request.id
        };
        ApiError::new(ErrorKind::NotFound, format!("user `{who}` does not exist"))
    })?;
    let id = user["id"].as_str().unwrap_or_default().to_string();
    let basic = wire::principal_basic(PrincipalType::User, &id, Some(user));
    Ok(mds::GetUserResponse { user: basic.user }.encode_to_vec())
}

/// Every role Quiver knows, with the resource and principal types it applies to.
fn catalogue() -> Vec<wire::RoleDefinition> {
    use wire::*;
    let members = vec![
        PRINCIPAL_TYPE_USER,
        PRINCIPAL_TYPE_SERVICE_ACCOUNT,
        PRINCIPAL_TYPE_GROUP,
    ];
    let role =
        |id: &str, legacy_id: &str, on: Vec<i32>, to: Vec<i32>, description: &str| RoleDefinition {
            id: id.to_string(),
            name: id.to_string(),
            description: description.to_string(),
            assignable_on_resource_types: on,
            assignable_to_principal_types: to,
            legacy_id: legacy_id.to_string(),
        };
    let mut roles = vec![role(
        "admin",
        "admin",
        vec![RESOURCE_TYPE_ORGANIZATION],
        members.clone(),
        "account_type=admin: every permission",
    )];
    for workspace_role in WORKSPACE_ROLES {
        let id = workspace_role_name(workspace_role);
        roles.push(role(
            id,
            id,
            vec![RESOURCE_TYPE_WORKSPACE, RESOURCE_TYPE_ORGANIZATION],
            members.clone(),
            "a workspace role (SCIM `workspace_<name>` or `all_workspaces`)",
        ));
    }
    let mut scope_members = members;
    scope_members.push(PRINCIPAL_TYPE_WORKSPACE);
    for scope_role in [ScopeRole::Reader, ScopeRole::Writer, ScopeRole::Manager] {
        roles.push(role(
            scope_role_id(scope_role),
            scope_role.name(),
            vec![RESOURCE_TYPE_SECRET_SCOPE],
            scope_members.clone(),
            "a secret scope role",
        ));
    }
    roles
}

/// Secret-scope assignments as the vault takes them.
fn scope_assignments(
    assignments: Vec<wire::Assignment>,
) -> Result<Vec<(String, Assignment)>, ApiError> {
    assignments
        .into_iter()
        .map(|assignment| {
            let scope_assignment = Assignment {
                principal_type: wire::principal_type(assignment.principal_type)?,
                principal_id: assignment.principal_id,
                role: wire::scope_role(&assignment.role)?,
            };
            Ok((assignment.resource_id, scope_assignment))
        })
        .collect()
}

async fn assigned_roles(
    state: &AppState,
    caller: Arc<Principal>,
    request: wire::ListAssignedRolesRequest,
) -> Result<Vec<wire::ResourceAndRoleAssignmentsV2>, ApiError> {
    let principal_type = wire::principal_type(request.principal_type)?;
    match request.resource_type {
        wire::RESOURCE_TYPE_SECRET_SCOPE => {
            let roles = request
                .roles
                .iter()
                .map(|role| wire::scope_role(role))
                .collect::<Result<_, _>>()?;
            let found = state
                .vault
                .assigned_roles(
                    caller,
                    principal_type,
                    request.principal_id,
                    request.resource_ids,
                    roles,
                )
                .await?;
            Ok(found
                .iter()
                .map(|(scope, roles)| {
                    let ids = roles.iter().map(|role| wire::scope_role_id(*role));
                    wire::direct_roles(wire::RESOURCE_TYPE_SECRET_SCOPE, scope, ids)
                })
                .collect())
        }
        wire::RESOURCE_TYPE_WORKSPACE | wire::RESOURCE_TYPE_ORGANIZATION => {
            // A directory record, like a SCIM read: an admin's, or one's own.
            if caller.id != request.principal_id {
                caller.require(Permission::Admin)?;
            }
            let grants = directory_grants(state, principal_type, &request.principal_id).await?;
            Ok(workspace_assignments(&grants, &request))
        }
        other => Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!("resource_type {other} carries no roles in Quiver"),
        )),
    }
}

/// Who holds roles on a secret scope (the vault's), or on a workspace or the organization (the
/// directory's).
async fn assigned_principals(
    state: &AppState,
    caller: Arc<Principal>,
    request: wire::ListAssignedPrincipalsRequest,
) -> Result<Vec<wire::AssignmentBasicV2>, ApiError> {
    match request.resource_type {
        wire::RESOURCE_TYPE_SECRET_SCOPE => {}
        wire::RESOURCE_TYPE_WORKSPACE | wire::RESOURCE_TYPE_ORGANIZATION => {
            return directory_roles::principals(state, &caller, request).await
        }
        other => {
            return Err(ApiError::new(
                ErrorKind::InvalidArgument,
                format!("resource_type {other} carries no roles in Quiver"),
            ))
        }
    }
    let roles = request
        .roles
        .iter()
        .map(|role| wire::scope_role(role))
        .collect::<Result<_, _>>()?;
    let types = request
        .principal_types
        .iter()
        .map(|number| wire::principal_type(*number))
        .collect::<Result<_, _>>()?;
    let scope = request.resource_id;
    let found = state
        .vault
        .assigned_principals(caller, scope.clone(), roles, types)
        .await?;
    let mut assignments = Vec::with_capacity(found.len());
    for (principal_type, id, roles) in found {
        let record = record(state, principal_type, &id).await;
        let ids = roles.iter().map(|role| wire::scope_role_id(*role));
        assignments.push(wire::AssignmentBasicV2 {
            principal: Some(wire::principal_basic(principal_type, &id, record)),
            role_assignments: vec![wire::direct_roles(
                wire::RESOURCE_TYPE_SECRET_SCOPE,
                &scope,
                ids,
            )],
        });
    }
    Ok(assignments)
}

/// The roles of a principal's own directory record (a workspace principal holds none).
async fn directory_grants(
    state: &AppState,
    principal_type: PrincipalType,
    id: &str,
) -> Result<Grants, ApiError> {
    let mut grants = Grants::default();
    if principal_type == PrincipalType::Workspace {
        return Ok(grants);
    }
    let record = record(state, principal_type, id).await.ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            format!("principal `{}` does not exist", echo(id)),
        )
    })?;
    read_roles(record.get("roles"), &mut grants)
        .map_err(|error| ApiError::new(ErrorKind::Internal, error))?;
    Ok(grants)
}

/// A principal's workspace roles (on the request's workspaces) or organization roles (`admin`,
/// and roles on every workspace), as the request asks.
pub(super) fn workspace_assignments(
    grants: &Grants,
    request: &wire::ListAssignedRolesRequest,
) -> Vec<wire::ResourceAndRoleAssignmentsV2> {
    let wanted = |role: &str| request.roles.is_empty() || request.roles.iter().any(|r| r == role);
    if request.resource_type == wire::RESOURCE_TYPE_ORGANIZATION {
        let admin = grants.is_admin.then_some("admin");
        let all = grants
            .workspace_roles
            .iter()
            .filter(|granted| granted.workspace.is_none())
            .map(|granted| workspace_role_name(granted.role));
        let roles: Vec<&str> = admin.into_iter().chain(all).filter(|r| wanted(r)).collect();
        return if roles.is_empty() {
            Vec::new()
        } else {
            vec![wire::direct_roles(
                wire::RESOURCE_TYPE_ORGANIZATION,
                "",
                roles,
            )]
        };
    }
    grants
        .workspace_roles
        .iter()
        .filter_map(|granted| {
            Some((
                granted.workspace.as_deref()?,
                workspace_role_name(granted.role),
            ))
        })
        .filter(|(workspace, role)| {
            wanted(role)
                && (request.resource_ids.is_empty()
                    || request.resource_ids.iter().any(|id| id == workspace))
        })
        .map(|(workspace, role)| {
            wire::direct_roles(wire::RESOURCE_TYPE_WORKSPACE, workspace, [role])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::WorkspaceRole;

    fn granted(assignments: &[wire::ResourceAndRoleAssignmentsV2]) -> Vec<(String, String)> {
        assignments
            .iter()
            .flat_map(|a| {
                a.roles_granted
                    .iter()
                    .map(|r| (a.resource_id.clone(), r.role.clone()))
            })
            .collect()
    }

    #[test]
    fn workspace_and_organization_roles_come_from_grants() {
        let grants = Grants {
            is_admin: true,
            workspace_roles: vec![
                WorkspaceRole {
                    workspace: Some("prod".into()),
                    role: Role::Editor,
                },
                WorkspaceRole {
                    workspace: Some("staging".into()),
                    role: Role::Viewer,
                },
                WorkspaceRole {
                    workspace: None,
                    role: Role::Consumer,
                },
            ],
            secret_scope_roles: Vec::new(),
        };
        let mut request = wire::ListAssignedRolesRequest {
            resource_type: wire::RESOURCE_TYPE_WORKSPACE,
            ..Default::default()
        };
        let pairs = |list: &[(&str, &str)]| {
            list.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        let all = workspace_assignments(&grants, &request);
        assert_eq!(
            granted(&all),
            pairs(&[("prod", "editor"), ("staging", "viewer")])
        );
        request.resource_ids = vec!["staging".into()];
        let one = workspace_assignments(&grants, &request);
        assert_eq!(granted(&one), pairs(&[("staging", "viewer")]));

        request.resource_type = wire::RESOURCE_TYPE_ORGANIZATION;
        request.resource_ids.clear();
        let organization = workspace_assignments(&grants, &request);
        assert_eq!(
            granted(&organization),
            pairs(&[("", "admin"), ("", "consumer")])
        );
        request.roles = vec!["consumer".into()];
        let filtered = workspace_assignments(&grants, &request);
        assert_eq!(granted(&filtered), pairs(&[("", "consumer")]));
    }
}

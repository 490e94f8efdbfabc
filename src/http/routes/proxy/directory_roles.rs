//! Workspace and organisation roles through `AssignRoles` / `UnassignRoles` (`tecton
//! access-control assign-role -w WS`, `--all-workspaces`, `-r admin`) and
//! `ListAssignedPrincipals` (`get-principals [-w WS]`). Each role is an entry of the principal's
//! SCIM `roles` (`workspace_<ws>`, `all_workspaces`, `account_type: admin`), changed by a SCIM
//! PATCH as `/api/scim/v2` would change it and read as SCIM lists it, under its rule: admins
//! only. Every assignment is checked, and every principal found, before anything is written;
//! each principal's roles change in one PATCH.

use serde_json::{json, Value as Json};

use super::access_control::workspace_assignments;
use crate::echo::echo;
use crate::http::error::{ApiError, ErrorKind};
use crate::http::wire::tecton_proto::auth as wire;
use crate::http::AppState;
use crate::iam::directory::{ListQuery, ResourceKind, UpdateMode};
use crate::iam::roles::{read_roles, Grants};
use crate::iam::scim::etag::Preconditions;
use crate::iam::scim::ScimErrorKind;
use crate::iam::{Permission, Principal, Role};
use crate::registry::Registry;
use crate::secrets::state::PrincipalType;

/// A SCIM role entry: its `type` and `value`.
type RoleEntry = (String, String);

pub(super) async fn change(
    state: &AppState,
    caller: &Principal,
    assignments: Vec<wire::Assignment>,
    unassign: bool,
) -> Result<(), ApiError> {
    caller.require(Permission::Admin)?;
    let served = state.served.current();
    let mut by_principal: Vec<(ResourceKind, String, Vec<RoleEntry>)> = Vec::new();
    for assignment in assignments {
        let kind =
            directory_kind(wire::principal_type(assignment.principal_type)?).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::InvalidArgument,
                    "a workspace holds secret scope roles only",
                )
            })?;
        let entry = role_entry(&served.registry, &assignment)?;
        match by_principal
            .iter_mut()
            .find(|(k, id, _)| *k == kind && *id == assignment.principal_id)
        {
            Some((_, _, entries)) => entries.push(entry),
            None => by_principal.push((kind, assignment.principal_id, vec![entry])),
        }
    }
    for (kind, id, _) in &by_principal {
        state.directory.get(*kind, id.clone()).await?;
    }
    for (kind, id, entries) in by_principal {
        let operations: Vec<Json> = if unassign {
            // Names are checked (`role_entry`), so they need no quoting inside the filter.
            entries
                .iter()
                .map(|(kind, value)| {
                    json!({
                        "op": "remove",
                        "path": format!("roles[type eq \"{kind}\" and value eq \"{value}\"]"),
                    })
                })
                .collect()
        } else {
            let values: Vec<Json> = entries
                .iter()
                .map(|(kind, value)| json!({"type": kind, "value": value}))
                .collect();
            vec![json!({"op": "add", "path": "roles", "value": values})]
        };
        let patch = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": operations,
        });
        let changed = state
            .directory
            .update(
                kind,
                id.clone(),
                patch,
                UpdateMode::Patch,
                Preconditions::default(),
            )
            .await;
        changed.map_err(|error| match error.kind {
            ScimErrorKind::NoTarget => ApiError::new(
                ErrorKind::NotFound,
                format!(
                    "`{}` does not hold every role to unassign ({})",
                    echo(&id),
                    error.detail
                ),
            ),
            _ => error.into(),
        })?;
    }
    Ok(())
}

/// The SCIM role entry an assignment stands for; the workspace must exist.
fn role_entry(registry: &Registry, assignment: &wire::Assignment) -> Result<RoleEntry, ApiError> {
    let name = assignment.role.to_ascii_lowercase();
    let workspace_role = || {
        Role::parse(&name).ok_or_else(|| {
            ApiError::new(
                ErrorKind::InvalidArgument,
                format!(
                    "role `{}` is not a workspace role (owner, editor, consumer, operator, viewer)",
                    assignment.role
                ),
            )
        })
    };
    match assignment.resource_type {
        wire::RESOURCE_TYPE_ORGANIZATION if name == "admin" => {
            Ok(("account_type".into(), "admin".into()))
        }
        wire::RESOURCE_TYPE_ORGANIZATION => {
            workspace_role()?;
            Ok(("all_workspaces".into(), name))
        }
        wire::RESOURCE_TYPE_WORKSPACE => {
            let workspace = registry.workspace(&assignment.resource_id).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::NotFound,
                    format!("workspace `{}` does not exist", assignment.resource_id),
                )
            })?;
            workspace_role()?;
            Ok((format!("workspace_{}", workspace.name), name))
        }
        other => Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!("resource_type {other} carries no roles in Quiver"),
        )),
    }
}

/// Every directory record whose own `roles` grant a role on the workspace (with the roles on
/// every workspace) or on the organization. A group is listed with its roles; its members are
/// not expanded.
pub(super) async fn principals(
    state: &AppState,
    caller: &Principal,
    request: wire::ListAssignedPrincipalsRequest,
) -> Result<Vec<wire::AssignmentBasicV2>, ApiError> {
    caller.require(Permission::Admin)?;
    let on_workspace = request.resource_type == wire::RESOURCE_TYPE_WORKSPACE;
    if on_workspace
        && state
            .served
            .current()
            .registry
            .workspace(&request.resource_id)
            .is_none()
    {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("workspace `{}` does not exist", request.resource_id),
        ));
    }
    let asked = |resource_type: i32, resource_ids: Vec<String>| wire::ListAssignedRolesRequest {
        resource_type,
        resource_ids,
        roles: request.roles.clone(),
        ..Default::default()
    };
    let organization = asked(wire::RESOURCE_TYPE_ORGANIZATION, Vec::new());
    let workspace = asked(
        wire::RESOURCE_TYPE_WORKSPACE,
        vec![request.resource_id.clone()],
    );
    let types = request
        .principal_types
        .iter()
        .map(|number| wire::principal_type(*number))
        .collect::<Result<Vec<_>, _>>()?;
    let mut assignments = Vec::new();
    for (principal_type, kind) in [
        (PrincipalType::User, ResourceKind::User),
        (PrincipalType::ServiceAccount, ResourceKind::ServiceAccount),
        (PrincipalType::Group, ResourceKind::Group),
    ] {
        if !types.is_empty() && !types.contains(&principal_type) {
            continue;
        }
        let query = ListQuery {
            kind,
            filter: None,
            sort_by: None,
            descending: false,
        };
        for record in state.directory.list(query).await? {
            let mut grants = Grants::default();
            read_roles(record.get("roles"), &mut grants)
                .map_err(|error| ApiError::new(ErrorKind::Internal, error))?;
            let mut held = Vec::new();
            if on_workspace {
                held.extend(workspace_assignments(&grants, &workspace));
            }
            held.extend(workspace_assignments(&grants, &organization));
            if !held.is_empty() {
                let id = record["id"].as_str().unwrap_or_default().to_string();
                assignments.push(wire::AssignmentBasicV2 {
                    principal: Some(wire::principal_basic(principal_type, &id, Some(record))),
                    role_assignments: held,
                });
            }
        }
    }
    Ok(assignments)
}

/// The directory resource a principal type is; a workspace is not one.
fn directory_kind(principal_type: PrincipalType) -> Option<ResourceKind> {
    match principal_type {
        PrincipalType::User => Some(ResourceKind::User),
        PrincipalType::ServiceAccount => Some(ResourceKind::ServiceAccount),
        PrincipalType::Group => Some(ResourceKind::Group),
        PrincipalType::Workspace => None,
    }
}

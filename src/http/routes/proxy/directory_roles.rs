//! Workspace and organisation roles through `AssignRoles` / `UnassignRoles` (`tecton
//! access-control assign-role -w WS`, `--all-workspaces`, `-r admin`). Each is an entry of the
//! principal's SCIM `roles` (`workspace_<ws>`, `all_workspaces`, `account_type: admin`),
//! changed by a SCIM PATCH as `/api/scim/v2` would change it, and under its rule: admins only.
//! Every assignment is checked, and every principal found, before anything is written; each
//! principal's roles change in one PATCH.

use serde_json::{json, Value as Json};

use crate::http::error::{ApiError, ErrorKind};
use crate::http::wire::tecton_proto::auth as wire;
use crate::http::AppState;
use crate::iam::directory::{ResourceKind, UpdateMode};
use crate::iam::scim::etag::Preconditions;
use crate::iam::scim::ScimErrorKind;
use crate::iam::{Permission, Principal, Role};
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
    let mut by_principal: Vec<(ResourceKind, String, Vec<RoleEntry>)> = Vec::new();
    for assignment in assignments {
        let kind = match wire::principal_type(assignment.principal_type)? {
            PrincipalType::User => ResourceKind::User,
            PrincipalType::ServiceAccount => ResourceKind::ServiceAccount,
            PrincipalType::Group => ResourceKind::Group,
            PrincipalType::Workspace => {
                return Err(ApiError::new(
                    ErrorKind::InvalidArgument,
                    "a workspace holds secret scope roles only",
                ))
            }
        };
        let entry = role_entry(state, &assignment)?;
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
                    "`{id}` does not hold every role to unassign ({})",
                    error.detail
                ),
            ),
            _ => error.into(),
        })?;
    }
    Ok(())
}

/// The SCIM role entry an assignment stands for; the workspace must exist.
fn role_entry(state: &AppState, assignment: &wire::Assignment) -> Result<RoleEntry, ApiError> {
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
            let workspace = state
                .registry
                .workspace(&assignment.resource_id)
                .ok_or_else(|| {
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

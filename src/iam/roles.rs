//! Tecton's role encoding on SCIM resources (`roles: [{"type", "value"}]`) and what each role
//! permits. `account_type=admin` may do everything; workspace roles are per workspace
//! (`workspace_<name>`) or for all (`all_workspaces`); owner ⊇ editor ⊇ {consumer, operator} ⊇
//! viewer.

use crate::names::{is_scope_name, is_workspace_name};
use serde_json::Value as Json;

/// Tecton's workspace roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Editor,
    Consumer,
    Operator,
    Viewer,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text.to_ascii_lowercase().as_str() {
            "owner" => Some(Role::Owner),
            "editor" => Some(Role::Editor),
            "consumer" => Some(Role::Consumer),
            "operator" => Some(Role::Operator),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// Whether holding `self` includes `needed`.
    pub fn includes(self, needed: Role) -> bool {
        use Role::*;
        match self {
            Owner => true,
            Editor => needed != Owner,
            Consumer => matches!(needed, Consumer | Viewer),
            Operator => matches!(needed, Operator | Viewer),
            Viewer => needed == Viewer,
        }
    }
}

/// A role on one workspace, or on all of them (`workspace: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceRole {
    pub workspace: Option<String>,
    pub role: Role,
}

/// What a principal's roles say, merged from its own and its groups'.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub is_admin: bool,
    pub workspace_roles: Vec<WorkspaceRole>,
    /// `(scope, role)` from `secret_scope_<scope>` entries.
    pub secret_scope_roles: Vec<(String, String)>,
}

const SCOPE_ROLES: [&str; 6] = [
    "secret_scope_manager",
    "secret_scope_writer",
    "secret_scope_reader",
    "manage_scope_role",
    "write_scope_role",
    "read_scope_role",
];

/// Reads a resource's `roles` into `grants`; an entry that is not a Tecton role is an error
/// naming it.
pub fn read_roles(roles: Option<&Json>, grants: &mut Grants) -> Result<(), String> {
    let Some(Json::Array(entries)) = roles else {
        return Ok(());
    };
    for (i, entry) in entries.iter().enumerate() {
        let kind = entry.get("type").and_then(Json::as_str).unwrap_or_default();
        let value = entry
            .get("value")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let bad =
            |expected: &str| format!("roles[{i}]: `{kind}`=`{value}` is not a role; {expected}");
        if kind == "account_type" {
            match value {
                "admin" => grants.is_admin = true,
                "regular" => {}
                _ => return Err(bad("account_type takes `admin` or `regular`")),
            }
        } else if kind == "all_workspaces" || kind.starts_with("workspace_") {
            let role = Role::parse(value).ok_or_else(|| {
                bad("workspace roles are owner, editor, consumer, operator and viewer")
            })?;
            let workspace = match kind.strip_prefix("workspace_") {
                Some(name) if is_workspace_name(name) => Some(name.to_string()),
                Some(_) => return Err(bad("workspace_<name> needs a workspace name")),
                None => None,
            };
            grants
                .workspace_roles
                .push(WorkspaceRole { workspace, role });
        } else if let Some(scope) = kind
            .strip_prefix("secret_scope_")
            .filter(|s| is_scope_name(s))
        {
            if !SCOPE_ROLES.contains(&value) {
                return Err(bad("scope roles are secret_scope_manager, secret_scope_writer and secret_scope_reader"));
            }
            grants
                .secret_scope_roles
                .push((scope.to_string(), value.to_string()));
        } else {
            return Err(bad("role types are account_type, all_workspaces, workspace_<name> and secret_scope_<scope>"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tecton_role_entries() {
        let mut grants = Grants::default();
        read_roles(Some(&json!([{"type": "workspace_prod", "value": "consumer"}, {"type": "all_workspaces", "value": "viewer"},
                                 {"type": "secret_scope_db", "value": "secret_scope_reader"},
                                 {"type": "secret_scope_team.payments", "value": "secret_scope_writer"}])), &mut grants).unwrap();
        assert!(!grants.is_admin);
        assert_eq!(
            grants.workspace_roles[0],
            WorkspaceRole {
                workspace: Some("prod".into()),
                role: Role::Consumer
            }
        );
        assert_eq!(
            grants.secret_scope_roles,
            vec![
                ("db".to_string(), "secret_scope_reader".to_string()),
                (
                    "team.payments".to_string(),
                    "secret_scope_writer".to_string()
                )
            ],
            "scope names take `.` as the vault does"
        );
        for bad in [
            json!([{"type": "account_type", "value": "god"}]),
            json!([{"type": "workspace_", "value": "owner"}]),
            json!([{"type": "x", "value": "y"}]),
            json!([{"type": "secret_scope_..", "value": "secret_scope_reader"}]),
        ] {
            assert!(
                read_roles(Some(&bad), &mut Grants::default()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn role_inclusion() {
        assert!(Role::Editor.includes(Role::Consumer));
        assert!(!Role::Consumer.includes(Role::Editor));
        assert!(Role::Operator.includes(Role::Viewer));
        assert!(!Role::Viewer.includes(Role::Consumer));
    }
}

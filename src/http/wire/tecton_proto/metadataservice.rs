//! `tecton_proto.metadataservice`: the client configuration every SDK process asks for first,
//! and workspaces (with `tecton_proto.data.Workspace`).

use std::collections::HashMap;

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetConfigsResponse {
    #[prost(map = "string, string", tag = "1")]
    pub key_values: HashMap<String, String>,
}

/// `tecton_proto.data.WorkspaceCapabilities`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkspaceCapabilities {
    /// A live workspace (Quiver's `live = true`) materializes.
    #[prost(bool, tag = "1")]
    pub materializable: bool,
}

/// `tecton_proto.data.Workspace`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Workspace {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub capabilities: Option<WorkspaceCapabilities>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListWorkspacesResponse {
    #[prost(message, repeated, tag = "1")]
    pub workspaces: Vec<Workspace>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetWorkspaceRequest {
    #[prost(string, tag = "1")]
    pub workspace_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetWorkspaceResponse {
    #[prost(message, optional, tag = "1")]
    pub workspace: Option<Workspace>,
}

impl From<&crate::registry::Workspace> for Workspace {
    fn from(workspace: &crate::registry::Workspace) -> Workspace {
        Workspace {
            name: workspace.name.clone(),
            capabilities: Some(WorkspaceCapabilities {
                materializable: workspace.live,
            }),
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct IntrospectApiKeyRequest {
    #[prost(string, tag = "1")]
    pub api_key: String,
}

/// `tecton_proto.common.Id`: a 128-bit id as two halves.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Id {
    #[prost(fixed64, tag = "1")]
    pub most_significant_bits: u64,
    #[prost(fixed64, tag = "2")]
    pub least_significant_bits: u64,
}

impl Id {
    /// Quiver's directory ids are 32 hex digits, Tecton's id written out; other ids (the
    /// bootstrap admin's) have no `Id` form.
    pub fn from_hex(id: &str) -> Option<Id> {
        let bits = u128::from_str_radix(id, 16)
            .ok()
            .filter(|_| id.len() == 32)?;
        Some(Id {
            most_significant_bits: (bits >> 64) as u64,
            least_significant_bits: bits as u64,
        })
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct IntrospectApiKeyResponse {
    #[prost(message, optional, tag = "1")]
    pub id: Option<Id>,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(string, tag = "3")]
    pub created_by: String,
    #[prost(bool, tag = "4")]
    pub active: bool,
    #[prost(bool, tag = "5")]
    pub is_admin: bool,
    #[prost(string, tag = "6")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetUserRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub email: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetUserResponse {
    #[prost(message, optional, tag = "1")]
    pub user: Option<super::auth::UserBasic>,
}

#[cfg(test)]
mod tests {
    use super::Id;

    #[test]
    fn directory_ids_are_tecton_ids() {
        let id = Id::from_hex("0000000000000001000000000000000f").unwrap();
        assert_eq!(
            (id.most_significant_bits, id.least_significant_bits),
            (1, 15)
        );
        assert_eq!(Id::from_hex("bootstrap-admin"), None);
        assert_eq!(Id::from_hex("f"), None, "a short hex id is not a Tecton id");
    }
}

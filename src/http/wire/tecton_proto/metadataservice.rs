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

//! `tecton_proto.metadataservice`: the client configuration every SDK process asks for first,
//! workspaces, callers, and feature service definitions.

use std::collections::HashMap;

use super::common::Id;
use super::data::{FcoContainer, Workspace};

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetConfigsResponse {
    #[prost(map = "string, string", tag = "1")]
    pub key_values: HashMap<String, String>,
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

#[derive(Clone, PartialEq, prost::Message)]
pub struct IntrospectApiKeyRequest {
    #[prost(string, tag = "1")]
    pub api_key: String,
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

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetFeatureServiceRequest {
    #[prost(string, tag = "2")]
    pub service_reference: String,
    #[prost(string, tag = "3")]
    pub workspace: String,
    #[prost(message, optional, tag = "4")]
    pub id: Option<Id>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetFeatureServiceResponse {
    #[prost(message, optional, tag = "2")]
    pub fco_container: Option<FcoContainer>,
}

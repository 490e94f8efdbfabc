//! `tecton_proto.auth`: the Authorization Service calls of `tecton access-control ...`. Enums
//! are carried as their `i32` numbers (prost's encoding of proto enums).

use crate::echo::echo;
use crate::http::error::{ApiError, ErrorKind};
use serde_json::Value as Json;

use crate::secrets::state::{PrincipalType, ScopeRole};

/// `ResourceType` numbers Quiver answers for.
pub const RESOURCE_TYPE_ORGANIZATION: i32 = 2;
pub const RESOURCE_TYPE_WORKSPACE: i32 = 3;
pub const RESOURCE_TYPE_SECRET_SCOPE: i32 = 18;

/// `PrincipalType` numbers.
pub const PRINCIPAL_TYPE_USER: i32 = 1;
pub const PRINCIPAL_TYPE_SERVICE_ACCOUNT: i32 = 2;
pub const PRINCIPAL_TYPE_GROUP: i32 = 3;
pub const PRINCIPAL_TYPE_WORKSPACE: i32 = 4;

/// `RoleAssignmentType.ROLE_ASSIGNMENT_TYPE_DIRECT`.
pub const ROLE_ASSIGNMENT_TYPE_DIRECT: i32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
pub struct RoleDefinition {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(int32, repeated, packed = "false", tag = "4")]
    pub assignable_on_resource_types: Vec<i32>,
    #[prost(int32, repeated, packed = "false", tag = "5")]
    pub assignable_to_principal_types: Vec<i32>,
    #[prost(string, tag = "7")]
    pub legacy_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRolesResponse {
    #[prost(message, repeated, tag = "1")]
    pub roles: Vec<RoleDefinition>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Assignment {
    #[prost(int32, tag = "1")]
    pub resource_type: i32,
    #[prost(string, tag = "2")]
    pub resource_id: String,
    #[prost(string, tag = "3")]
    pub role: String,
    #[prost(int32, tag = "4")]
    pub principal_type: i32,
    #[prost(string, tag = "5")]
    pub principal_id: String,
}

/// `AssignRolesRequest` and `UnassignRolesRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AssignmentsRequest {
    #[prost(message, repeated, tag = "1")]
    pub assignments: Vec<Assignment>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListAssignedRolesRequest {
    #[prost(int32, tag = "1")]
    pub principal_type: i32,
    #[prost(string, tag = "2")]
    pub principal_id: String,
    #[prost(int32, tag = "3")]
    pub resource_type: i32,
    #[prost(string, repeated, tag = "4")]
    pub resource_ids: Vec<String>,
    #[prost(string, repeated, tag = "5")]
    pub roles: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RoleAssignmentSource {
    #[prost(int32, tag = "1")]
    pub assignment_type: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RoleAssignmentSummary {
    #[prost(string, tag = "1")]
    pub role: String,
    #[prost(message, repeated, tag = "2")]
    pub role_assignment_sources: Vec<RoleAssignmentSource>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceAndRoleAssignmentsV2 {
    #[prost(int32, tag = "1")]
    pub resource_type: i32,
    #[prost(string, tag = "2")]
    pub resource_id: String,
    #[prost(message, repeated, tag = "3")]
    pub roles_granted: Vec<RoleAssignmentSummary>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListAssignedRolesResponse {
    #[prost(message, repeated, tag = "1")]
    pub assignments: Vec<ResourceAndRoleAssignmentsV2>,
}

/// The SDK's id of a secret-scope role (`GetRoles` answers it, with the seed's name as
/// `legacy_id`, which is what the CLI then sends back in assignments).
pub fn scope_role_id(role: ScopeRole) -> &'static str {
    match role {
        ScopeRole::Reader => "secret_scope_reader",
        ScopeRole::Writer => "secret_scope_writer",
        ScopeRole::Manager => "secret_scope_manager",
    }
}

/// The principal type of a `PrincipalType` number.
pub fn principal_type(number: i32) -> Result<PrincipalType, ApiError> {
    match number {
        PRINCIPAL_TYPE_USER => Ok(PrincipalType::User),
        PRINCIPAL_TYPE_SERVICE_ACCOUNT => Ok(PrincipalType::ServiceAccount),
        PRINCIPAL_TYPE_GROUP => Ok(PrincipalType::Group),
        PRINCIPAL_TYPE_WORKSPACE => Ok(PrincipalType::Workspace),
        other => Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!("principal_type {other} is not a principal type"),
        )),
    }
}

/// A secret-scope role by either of its names.
pub fn scope_role(name: &str) -> Result<ScopeRole, ApiError> {
    ScopeRole::parse(name).ok_or_else(|| {
        ApiError::new(
            ErrorKind::InvalidArgument,
            format!("`{}` is not a secret scope role", echo(name)),
        )
    })
}

/// One resource's roles, each assigned directly.
pub fn direct_roles<'a>(
    resource_type: i32,
    resource_id: &str,
    roles: impl IntoIterator<Item = &'a str>,
) -> ResourceAndRoleAssignmentsV2 {
    ResourceAndRoleAssignmentsV2 {
        resource_type,
        resource_id: resource_id.to_string(),
        roles_granted: roles
            .into_iter()
            .map(|role| RoleAssignmentSummary {
                role: role.to_string(),
                role_assignment_sources: vec![RoleAssignmentSource {
                    assignment_type: ROLE_ASSIGNMENT_TYPE_DIRECT,
                }],
            })
            .collect(),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListAssignedPrincipalsRequest {
    #[prost(int32, tag = "1")]
    pub resource_type: i32,
    #[prost(string, tag = "2")]
    pub resource_id: String,
    #[prost(string, repeated, tag = "3")]
    pub roles: Vec<String>,
    #[prost(int32, repeated, packed = "false", tag = "4")]
    pub principal_types: Vec<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UserBasic {
    #[prost(string, tag = "1")]
    pub okta_id: String,
    #[prost(string, tag = "2")]
    pub first_name: String,
    #[prost(string, tag = "3")]
    pub last_name: String,
    #[prost(string, tag = "4")]
    pub login_email: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceAccountBasic {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(bool, tag = "4")]
    pub is_active: bool,
}

/// `GroupBasic` (`id`, `name`) and `WorkspaceBasic` (`name = 1` alone, so `id` carries it).
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedBasic {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
}

/// `PrincipalBasic`: the `basic_info` oneof, one field set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PrincipalBasic {
    #[prost(message, optional, tag = "3")]
    pub user: Option<UserBasic>,
    #[prost(message, optional, tag = "4")]
    pub service_account: Option<ServiceAccountBasic>,
    #[prost(message, optional, tag = "5")]
    pub group: Option<NamedBasic>,
    #[prost(message, optional, tag = "6")]
    pub workspace: Option<NamedBasic>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AssignmentBasicV2 {
    #[prost(message, optional, tag = "1")]
    pub principal: Option<PrincipalBasic>,
    #[prost(message, repeated, tag = "2")]
    pub role_assignments: Vec<ResourceAndRoleAssignmentsV2>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListAssignedPrincipalsResponse {
    #[prost(message, repeated, tag = "1")]
    pub assignments: Vec<AssignmentBasicV2>,
}

/// A principal as `ListAssignedPrincipals` shows it, from its directory record (SCIM JSON) when
/// it has one.
pub fn principal_basic(
    principal_type: PrincipalType,
    id: &str,
    record: Option<Json>,
) -> PrincipalBasic {
    let record = record.unwrap_or_default();
    let text = |value: &Json| value.as_str().unwrap_or_default().to_string();
    let mut basic = PrincipalBasic::default();
    match principal_type {
        PrincipalType::User => {
            basic.user = Some(UserBasic {
                okta_id: id.to_string(),
                first_name: text(&record["name"]["givenName"]),
                last_name: text(&record["name"]["familyName"]),
                login_email: text(&record["userName"]),
            })
        }
        PrincipalType::ServiceAccount => {
            basic.service_account = Some(ServiceAccountBasic {
                id: id.to_string(),
                name: text(&record["name"]),
                description: text(&record["description"]),
                is_active: record["active"].as_bool().unwrap_or(true),
            })
        }
        PrincipalType::Group => {
            basic.group = Some(NamedBasic {
                id: id.to_string(),
                name: text(&record["displayName"]),
            })
        }
        PrincipalType::Workspace => {
            basic.workspace = Some(NamedBasic {
                id: id.to_string(),
                name: String::new(),
            })
        }
    }
    basic
}

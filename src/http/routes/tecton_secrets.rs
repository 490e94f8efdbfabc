//! Tecton's Secrets Service: scopes and secrets at `/api/v1/secrets-service` (also
//! `/v1/secrets-service`, the URL Tecton's materialization jobs are handed), and role
//! assignments on scopes, also under `/api/v1/authorization-service`. Errors use Tecton's
//! `{"error","code","message"}`; responses use the seed's snake_case field names.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::super::auth::Caller;
use super::super::body::{parse_json, UnreadBody};
use super::super::error::{ApiError, ErrorKind};
use super::super::AppState;
use crate::iam::directory::ResourceKind;
use crate::secrets::crypto::Plaintext;
use crate::secrets::state::{Assignment, PrincipalType, ScopeRole};
use crate::secrets::tecton::{TectonAnswer, TectonRequest};

pub fn configure(cfg: &mut web::ServiceConfig) {
    for base in ["/api/v1/secrets-service", "/v1/secrets-service"] {
        cfg.service(
            web::scope(base)
                .route("/scopes", web::get().to(list_scopes))
                .route("/scopes", web::post().to(create_scope_from_body))
                .route("/scopes/{scope}", web::post().to(create_scope))
                .route("/scopes/{scope}", web::delete().to(delete_scope))
                .route("/scopes/{scope}/keys", web::get().to(list_keys))
                .route("/scopes/{scope}/keys/{key}", web::get().to(get_value))
                .route("/scopes/{scope}/keys/{key}", web::put().to(put_value))
                .route("/scopes/{scope}/keys/{key}", web::post().to(put_value))
                .route("/scopes/{scope}/keys/{key}", web::delete().to(delete_key))
                .route("/scopes/{scope}/assign-roles", web::post().to(assign))
                .route("/scopes/{scope}/unassign-roles", web::post().to(unassign))
                .route("/assign-roles", web::post().to(assign))
                .route("/unassign-roles", web::post().to(unassign))
                .route(
                    "/get-assigned-principals",
                    web::post().to(assigned_principals),
                )
                .route("/get-assigned-roles", web::post().to(assigned_roles)),
        );
    }
    cfg.service(
        web::scope("/api/v1/authorization-service")
            .route("/assign-roles", web::post().to(assign))
            .route("/unassign-roles", web::post().to(unassign))
            .route(
                "/get-assigned-principals",
                web::post().to(assigned_principals),
            )
            .route("/get-assigned-roles", web::post().to(assigned_roles)),
    );
}

impl From<crate::secrets::SecretsError> for ApiError {
    fn from(error: crate::secrets::SecretsError) -> ApiError {
        use crate::secrets::SecretsError::*;
        let kind = match &error {
            NotFound(_) => ErrorKind::NotFound,
            AlreadyExists(_) => ErrorKind::AlreadyExists,
            Invalid(_) => ErrorKind::InvalidArgument,
            Forbidden(_) | LimitReached(_) => ErrorKind::PermissionDenied,
            NotEmpty(_) => ErrorKind::FailedPrecondition,
            RateLimited { .. } => ErrorKind::ResourceExhausted,
            Tampered(_) | Internal(_) => ErrorKind::Internal,
            Unavailable(_) => ErrorKind::Unavailable,
        };
        ApiError::new(kind, error.to_string())
    }
}

/// A Tecton secret value is at most 64 KiB (the vault refuses more with a 400 that says so);
/// JSON escaping can make one up to six times longer, and assignment lists are short.
const MAX_SECRETS_BODY_BYTES: usize = 512 * 1024;

/// Reads a JSON body; every handler has authenticated its caller (the `Caller` extractor) first.
async fn read_json<T: serde::de::DeserializeOwned>(body: UnreadBody) -> Result<T, ApiError> {
    parse_json(&body.read(MAX_SECRETS_BODY_BYTES).await?)
}

async fn call(
    state: &AppState,
    caller: &Caller,
    request: TectonRequest,
) -> Result<TectonAnswer, ApiError> {
    Ok(state.vault.tecton(Arc::clone(&caller.0), request).await?)
}

fn done() -> HttpResponse {
    HttpResponse::Ok().json(json!({}))
}

async fn list_scopes(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let TectonAnswer::Scopes(scopes) = call(&state, &caller, TectonRequest::ListScopes).await?
    else {
        unreachable!("ListScopes answers Scopes")
    };
    let scopes: Vec<Json> = scopes
        .into_iter()
        .map(|name| json!({"name": name}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"scopes": scopes})))
}

async fn create_scope(
    caller: Caller,
    state: web::Data<AppState>,
    scope: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    call(
        &state,
        &caller,
        TectonRequest::CreateScope(scope.into_inner()),
    )
    .await?;
    Ok(done())
}

async fn create_scope_from_body(
    caller: Caller,
    state: web::Data<AppState>,
    body: UnreadBody,
) -> Result<HttpResponse, ApiError> {
    #[derive(Deserialize)]
    struct Body {
        scope: String,
    }
    let body: Body = read_json(body).await?;
    call(&state, &caller, TectonRequest::CreateScope(body.scope)).await?;
    Ok(done())
}

async fn delete_scope(
    caller: Caller,
    state: web::Data<AppState>,
    scope: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    call(
        &state,
        &caller,
        TectonRequest::DeleteScope(scope.into_inner()),
    )
    .await?;
    Ok(done())
}

async fn list_keys(
    caller: Caller,
    state: web::Data<AppState>,
    scope: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let TectonAnswer::Keys(keys) =
        call(&state, &caller, TectonRequest::ListKeys(scope.into_inner())).await?
    else {
        unreachable!("ListKeys answers Keys")
    };
    let keys: Vec<Json> = keys.into_iter().map(|name| json!({"name": name})).collect();
    Ok(HttpResponse::Ok().json(json!({"keys": keys})))
}

async fn get_value(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (scope, key) = path.into_inner();
    let TectonAnswer::Value(value) =
        call(&state, &caller, TectonRequest::GetValue { scope, key }).await?
    else {
        unreachable!("GetValue answers Value")
    };
    Ok(HttpResponse::Ok().json(json!({"value": value.0})))
}

async fn put_value(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: UnreadBody,
) -> Result<HttpResponse, ApiError> {
    #[derive(Deserialize)]
    struct Body {
        value: String,
    }
    let (scope, key) = path.into_inner();
    let body: Body = read_json(body).await?;
    call(
        &state,
        &caller,
        TectonRequest::PutValue {
            scope,
            key,
            value: Plaintext(body.value),
        },
    )
    .await?;
    Ok(done())
}

async fn delete_key(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (scope, key) = path.into_inner();
    call(&state, &caller, TectonRequest::DeleteKey { scope, key }).await?;
    Ok(done())
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

#[derive(Debug, Deserialize)]
struct AssignmentsBody {
    assignments: Vec<AssignmentBody>,
}

fn check_resource_type(resource_type: Option<&str>) -> Result<(), ApiError> {
    match resource_type {
        None | Some("RESOURCE_TYPE_SECRET_SCOPE") => Ok(()),
        Some(other) => Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!("resource_type `{other}` is not RESOURCE_TYPE_SECRET_SCOPE"),
        )),
    }
}

fn principal_type(text: &str) -> Result<PrincipalType, ApiError> {
    PrincipalType::parse(text).ok_or_else(|| {
        ApiError::new(ErrorKind::InvalidArgument, format!("principal_type `{text}` must be PRINCIPAL_TYPE_USER, _SERVICE_ACCOUNT, _GROUP or _WORKSPACE"))
    })
}

fn scope_role(text: &str) -> Result<ScopeRole, ApiError> {
    ScopeRole::parse(text).ok_or_else(|| {
        ApiError::new(
            ErrorKind::InvalidArgument,
            format!("role `{text}` must be read_scope_role, write_scope_role or manage_scope_role"),
        )
    })
}

/// Checks that an assigned principal exists (a workspace in the repository, the others in the
/// directory).
async fn check_principal_exists(
    state: &AppState,
    principal_type: PrincipalType,
    id: &str,
) -> Result<(), ApiError> {
    let missing = || {
        ApiError::new(
            ErrorKind::InvalidArgument,
            format!("{} `{id}` does not exist", principal_type.name()),
        )
    };
    let kind = match principal_type {
        PrincipalType::Workspace => {
            return state.registry.workspace(id).map(|_| ()).ok_or_else(missing)
        }
        PrincipalType::User => ResourceKind::User,
        PrincipalType::ServiceAccount => ResourceKind::ServiceAccount,
        PrincipalType::Group => ResourceKind::Group,
    };
    state
        .directory
        .get(kind, id.to_string())
        .await
        .map(|_| ())
        .map_err(|_| missing())
}

/// Reads the assignments of an assign or unassign request. The caller must manage every scope
/// named before the principals are looked up: a caller without the role gets the same 403 for
/// an unknown principal as for a known one.
async fn read_assignments(
    state: &AppState,
    caller: &Caller,
    path_scope: Option<String>,
    body: UnreadBody,
) -> Result<Vec<(String, Assignment)>, ApiError> {
    let body: AssignmentsBody = read_json(body).await?;
    let mut assignments = Vec::with_capacity(body.assignments.len());
    for (i, a) in body.assignments.into_iter().enumerate() {
        check_resource_type(a.resource_type.as_deref())?;
        let scope = a
            .resource_id
            .or_else(|| path_scope.clone())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorKind::InvalidArgument,
                    format!("assignments[{i}].resource_id is required"),
                )
            })?;
        let assignment = Assignment {
            principal_type: principal_type(&a.principal_type)?,
            principal_id: a.principal_id,
            role: scope_role(&a.role)?,
        };
        assignments.push((scope, assignment));
    }
    let scopes = assignments.iter().map(|(scope, _)| scope.clone()).collect();
    call(state, caller, TectonRequest::CheckManages(scopes)).await?;
    for (_, assignment) in &assignments {
        check_principal_exists(state, assignment.principal_type, &assignment.principal_id).await?;
    }
    Ok(assignments)
}

async fn assign(
    caller: Caller,
    state: web::Data<AppState>,
    scope: Option<web::Path<String>>,
    body: UnreadBody,
) -> Result<HttpResponse, ApiError> {
    let assignments =
        read_assignments(&state, &caller, scope.map(|s| s.into_inner()), body).await?;
    call(&state, &caller, TectonRequest::Assign(assignments)).await?;
    Ok(done())
}

async fn unassign(
    caller: Caller,
    state: web::Data<AppState>,
    scope: Option<web::Path<String>>,
    body: UnreadBody,
) -> Result<HttpResponse, ApiError> {
    let assignments =
        read_assignments(&state, &caller, scope.map(|s| s.into_inner()), body).await?;
    call(&state, &caller, TectonRequest::Unassign(assignments)).await?;
    Ok(done())
}

fn roles_granted(roles: &[ScopeRole]) -> Vec<Json> {
    roles.iter().map(|r| json!({"role": r.name(), "role_assignment_sources": [{"assignment_type": "ROLE_ASSIGNMENT_TYPE_DIRECT"}]})).collect()
}

/// The seed's `principal` object: the principal's directory record, or the workspace's name.
async fn principal_json(state: &AppState, principal_type: PrincipalType, id: &str) -> Json {
    let record = |kind| async move { state.directory.get(kind, id.to_string()).await.ok() };
    match principal_type {
        PrincipalType::Workspace => json!({"workspace": {"name": id}}),
        PrincipalType::ServiceAccount => {
            let sa = record(ResourceKind::ServiceAccount)
                .await
                .unwrap_or_default();
            json!({"service_account": {"id": id, "name": sa["name"], "description": sa["description"], "is_active": sa["active"].as_bool().unwrap_or(true)}})
        }
        PrincipalType::User => {
            let user = record(ResourceKind::User).await.unwrap_or_default();
            json!({"user": {"id": id, "login_email": user["userName"], "first_name": user["name"]["givenName"], "last_name": user["name"]["familyName"]}})
        }
        PrincipalType::Group => {
            let group = record(ResourceKind::Group).await.unwrap_or_default();
            json!({"group": {"id": id, "name": group["displayName"]}})
        }
    }
}

async fn assigned_principals(
    caller: Caller,
    state: web::Data<AppState>,
    body: UnreadBody,
) -> Result<HttpResponse, ApiError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        #[serde(alias = "resource_type")]
        resource_type: Option<String>,
        #[serde(alias = "resource_id")]
        resource_id: String,
        #[serde(default)]
        roles: Vec<String>,
        #[serde(default, alias = "principal_types")]
        principal_types: Vec<String>,
    }
    let body: Body = read_json(body).await?;
    check_resource_type(body.resource_type.as_deref())?;
    let roles = body
        .roles
        .iter()
        .map(|r| scope_role(r))
        .collect::<Result<_, _>>()?;
    let types = body
        .principal_types
        .iter()
        .map(|t| principal_type(t))
        .collect::<Result<_, _>>()?;
    let scope = body.resource_id;
    let TectonAnswer::Principals(found) = call(
        &state,
        &caller,
        TectonRequest::Principals {
            scope: scope.clone(),
            roles,
            types,
        },
    )
    .await?
    else {
        unreachable!("Principals answers Principals")
    };
    let mut assignments = Vec::with_capacity(found.len());
    for (principal_type, id, roles) in found {
        assignments.push(json!({
            "principal": principal_json(&state, principal_type, &id).await,
            "role_assignments": [{"resource_type": "RESOURCE_TYPE_SECRET_SCOPE", "resource_id": scope, "roles_granted": roles_granted(&roles)}],
        }));
    }
    Ok(HttpResponse::Ok().json(json!({"assignments": assignments})))
}

async fn assigned_roles(
    caller: Caller,
    state: web::Data<AppState>,
    body: UnreadBody,
) -> Result<HttpResponse, ApiError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
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
    let body: Body = read_json(body).await?;
    check_resource_type(body.resource_type.as_deref())?;
    let request = TectonRequest::RolesOf {
        principal_type: principal_type(&body.principal_type)?,
        principal_id: body.principal_id,
        scopes: body.resource_ids,
        roles: body
            .roles
            .iter()
            .map(|r| scope_role(r))
            .collect::<Result<_, _>>()?,
    };
    let TectonAnswer::Roles(found) = call(&state, &caller, request).await? else {
        unreachable!("RolesOf answers Roles")
    };
    let assignments: Vec<Json> = found
        .iter()
        .map(|(scope, roles)| json!({"resource_type": "RESOURCE_TYPE_SECRET_SCOPE", "resource_id": scope, "roles_granted": roles_granted(roles)}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"assignments": assignments})))
}

//! Tecton's Secrets Service: scopes and secrets at `/api/v1/secrets-service` (also
//! `/v1/secrets-service`, the URL Tecton's materialization jobs are handed), and role
//! assignments on scopes, also under `/api/v1/authorization-service`. Errors use Tecton's
//! `{"error","code","message"}`; responses use the seed's snake_case field names
//! (`http/wire/tecton_secrets.rs`).

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value as Json;

use super::super::auth::Caller;
use super::super::body::JsonBody;
use super::super::error::{ApiError, ErrorKind};
use super::super::wire::tecton_secrets as wire;
use super::super::AppState;
use crate::echo::echo;
use crate::iam::directory::ResourceKind;
use crate::iam::{Permission, Principal};
use crate::registry::Registry;
use crate::secrets::crypto::Plaintext;
use crate::secrets::state::{Assignment, PrincipalType};

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

/// A Tecton secret value is at most 64 KiB (the vault refuses more with a 400 that says so);
/// JSON escaping can make one up to six times longer, and assignment lists are short.
const MAX_SECRETS_BODY_BYTES: usize = 512 * 1024;

/// Reads a JSON body; every handler has authenticated its caller (the `Caller` extractor) first.
async fn read_json<T: serde::de::DeserializeOwned>(body: JsonBody) -> Result<T, ApiError> {
    body.read(MAX_SECRETS_BODY_BYTES).await
}

fn ok(body: Json) -> HttpResponse {
    HttpResponse::Ok().json(body)
}

/// Any authenticated key lists every scope (the seed: "all secret scopes available in the
/// cluster"); what a scope holds is still behind its roles.
async fn list_scopes(_: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let scopes = state.vault.list_scopes().await?;
    Ok(ok(wire::names("scopes", scopes)))
}

async fn create_scope(
    caller: Caller,
    state: web::Data<AppState>,
    scope: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = Arc::clone(&caller.0);
    state.vault.create_scope(caller, scope.into_inner()).await?;
    Ok(ok(wire::done()))
}

async fn create_scope_from_body(
    caller: Caller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let body: wire::CreateScopeBody = read_json(body).await?;
    let caller = Arc::clone(&caller.0);
    state.vault.create_scope(caller, body.scope).await?;
    Ok(ok(wire::done()))
}

async fn delete_scope(
    caller: Caller,
    state: web::Data<AppState>,
    scope: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = Arc::clone(&caller.0);
    state.vault.delete_scope(caller, scope.into_inner()).await?;
    Ok(ok(wire::done()))
}

async fn list_keys(
    caller: Caller,
    state: web::Data<AppState>,
    scope: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = Arc::clone(&caller.0);
    let keys = state.vault.list_keys(caller, scope.into_inner()).await?;
    Ok(ok(wire::names("keys", keys)))
}

async fn get_value(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (scope, key) = path.into_inner();
    let value = state
        .vault
        .get_value(Arc::clone(&caller.0), scope, key)
        .await?;
    Ok(ok(wire::value(&value.0)))
}

async fn put_value(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let (scope, key) = path.into_inner();
    let body: wire::PutValueBody = read_json(body).await?;
    let value = Plaintext(body.value);
    let caller = Arc::clone(&caller.0);
    state.vault.put_value(caller, scope, key, value).await?;
    Ok(ok(wire::done()))
}

async fn delete_key(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (scope, key) = path.into_inner();
    let caller = Arc::clone(&caller.0);
    state.vault.delete_key(caller, scope, key).await?;
    Ok(ok(wire::done()))
}

/// Checks that an assigned principal exists (a workspace in the repository, the others in the
/// directory). Whether a workspace exists is told only to a caller that may view it, as
/// `ListWorkspaces` and `GetWorkspace` tell it: for any other, any name is taken (a grant to a
/// name that is no workspace reaches only keys given a role on that name).
async fn check_principal_exists(
    state: &AppState,
    registry: &Registry,
    caller: &Principal,
    principal_type: PrincipalType,
    id: &str,
) -> Result<(), ApiError> {
    let exists = match principal_type {
        PrincipalType::Workspace => {
            registry.workspace(id).is_some()
                || caller.require(Permission::ReadMetadata(id)).is_err()
        }
        _ => record(state, principal_type, id).await.is_some(),
    };
    if exists {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!(
                "{} `{}` does not exist",
                wire::principal_type_name(principal_type),
                echo(id)
            ),
        ))
    }
}

/// Reads the assignments of an assign or unassign request and checks them.
async fn read_assignments(
    state: &AppState,
    caller: &Caller,
    path_scope: Option<String>,
    body: JsonBody,
) -> Result<Vec<(String, Assignment)>, ApiError> {
    let body: wire::AssignmentsBody = read_json(body).await?;
    let assignments = body.into_assignments(path_scope)?;
    check_assignments(state, &caller.0, &assignments).await?;
    Ok(assignments)
}

/// The caller must manage every scope named before the principals are looked up: a caller
/// without the role gets the same 403 for an unknown principal as for a known one. Also used
/// by the metadata proxy's `AssignRoles` and `UnassignRoles`.
pub(super) async fn check_assignments(
    state: &AppState,
    caller: &Arc<Principal>,
    assignments: &[(String, Assignment)],
) -> Result<(), ApiError> {
    let scopes = assignments.iter().map(|(scope, _)| scope.clone()).collect();
    state
        .vault
        .check_manages(Arc::clone(caller), scopes)
        .await?;
    let served = state.served.current();
    for (_, assignment) in assignments {
        let (principal_type, id) = (assignment.principal_type, &assignment.principal_id);
        check_principal_exists(state, &served.registry, caller, principal_type, id).await?;
    }
    Ok(())
}

async fn assign(
    caller: Caller,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let assignments = read_assignments(&state, &caller, path_scope(&request), body).await?;
    state
        .vault
        .assign(Arc::clone(&caller.0), assignments)
        .await?;
    Ok(ok(wire::done()))
}

async fn unassign(
    caller: Caller,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let assignments = read_assignments(&state, &caller, path_scope(&request), body).await?;
    state
        .vault
        .unassign(Arc::clone(&caller.0), assignments)
        .await?;
    Ok(ok(wire::done()))
}

/// The `{scope}` of the scoped paths; `None` on the unscoped ones. (Not an
/// `Option<web::Path<_>>`: on the unscoped paths its failed extraction logs the request path
/// at debug level, and a log line never holds a path.)
fn path_scope(request: &HttpRequest) -> Option<String> {
    request.match_info().get("scope").map(str::to_owned)
}

/// A principal's directory record (SCIM JSON), if it has one.
pub(super) async fn record(
    state: &AppState,
    principal_type: PrincipalType,
    id: &str,
) -> Option<Json> {
    let kind = match principal_type {
        PrincipalType::Workspace => return None,
        PrincipalType::User => ResourceKind::User,
        PrincipalType::ServiceAccount => ResourceKind::ServiceAccount,
        PrincipalType::Group => ResourceKind::Group,
    };
    state.directory.get(kind, id.to_string()).await.ok()
}

async fn assigned_principals(
    caller: Caller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let body: wire::AssignedPrincipalsBody = read_json(body).await?;
    let (scope, roles, types) = body.into_query()?;
    let found = state
        .vault
        .assigned_principals(Arc::clone(&caller.0), scope.clone(), roles, types)
        .await?;
    let mut principals = Vec::with_capacity(found.len());
    for (principal_type, id, roles) in found {
        let record = record(&state, principal_type, &id).await;
        let creator = match principal_type {
            PrincipalType::ServiceAccount => {
                state.directory.service_account_creator(id.clone()).await
            }
            _ => None,
        };
        principals.push((
            wire::principal(principal_type, &id, record, creator.as_ref()),
            roles,
        ));
    }
    Ok(ok(wire::assigned_principals(&scope, principals)))
}

async fn assigned_roles(
    caller: Caller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let body: wire::AssignedRolesBody = read_json(body).await?;
    let query = body.into_query()?;
    let found = state
        .vault
        .assigned_roles(
            Arc::clone(&caller.0),
            query.principal_type,
            query.principal_id,
            query.scopes,
            query.roles,
        )
        .await?;
    Ok(ok(wire::assigned_roles(&found)))
}

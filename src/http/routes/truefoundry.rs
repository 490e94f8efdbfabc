//! TrueFoundry's Secret Groups API at `/api/svc/v1`: secret groups (list, create, upsert by
//! manifest, get, update, delete) and secrets (list as `POST /secrets`, get, delete). Envelopes
//! `{"data": ...}` and `{"data": [...], "pagination": {...}}`; errors `{"statusCode","message"}`
//! (`http/wire/truefoundry.rs`). Each request is one vault call: the tenant is the handle's.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::super::auth::authenticate;
use super::super::body::read_limited;
use super::super::wire::truefoundry::{self as wire, TfError};
use super::super::AppState;
use crate::iam::Principal;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/svc/v1")
            .route("/secret-groups", web::get().to(list_groups))
            .route("/secret-groups", web::post().to(create_group))
            .route("/secret-groups", web::put().to(upsert_group))
            .route("/secret-groups/{id}", web::get().to(get_group))
            .route("/secret-groups/{id}", web::put().to(update_group))
            .route("/secret-groups/{id}", web::delete().to(delete_group))
            .route("/secrets", web::post().to(list_secrets))
            .route("/secrets/{id}", web::get().to(get_secret))
            .route("/secrets/{id}", web::delete().to(delete_secret)),
    );
}

fn caller(request: &HttpRequest) -> Result<Arc<Principal>, TfError> {
    authenticate(request).map_err(|_| TfError::new(StatusCode::UNAUTHORIZED, "Unauthorized"))
}

async fn json_body<T: for<'de> Deserialize<'de>>(
    state: &AppState,
    payload: web::Payload,
) -> Result<T, TfError> {
    let body = read_limited(payload, state.limits.max_body_bytes).await?;
    Ok(super::super::body::parse_json(&body)?)
}

fn ok(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

async fn list_groups(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<wire::ListGroupsQuery>,
) -> Result<HttpResponse, TfError> {
    let principal = caller(&request)?;
    let query = query.into_inner();
    let page = query.page();
    let groups = state
        .vault
        .list_groups(principal, page, query.fqn, query.search)
        .await?;
    let tenant = state.vault.tenant();
    Ok(ok(
        StatusCode::OK,
        wire::page(&groups, page, |g| wire::group(tenant, g)),
    ))
}

async fn create_group(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, TfError> {
    let principal = caller(&request)?;
    let mut body: wire::CreateGroupBody = json_body(&state, payload).await?;
    let secrets = body.take_secrets()?;
    let group = state
        .vault
        .create_group(principal, body.name, body.integration_id, secrets)
        .await?;
    let tenant = state.vault.tenant();
    Ok(ok(
        StatusCode::CREATED,
        wire::data(wire::group(tenant, &group)),
    ))
}

async fn upsert_group(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, TfError> {
    let principal = caller(&request)?;
    let body: wire::UpsertGroupBody = json_body(&state, payload).await?;
    let fields = body.fields()?;
    let group = state
        .vault
        .upsert_group(
            principal,
            fields.name,
            fields.integration_id,
            body.manifest,
            body.dry_run,
        )
        .await?;
    let tenant = state.vault.tenant();
    Ok(ok(StatusCode::OK, wire::data(wire::group(tenant, &group))))
}

async fn get_group(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, TfError> {
    let principal = caller(&request)?;
    let group = state.vault.get_group(principal, id.into_inner()).await?;
    let tenant = state.vault.tenant();
    Ok(ok(StatusCode::OK, wire::data(wire::group(tenant, &group))))
}

async fn update_group(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, TfError> {
    let principal = caller(&request)?;
    let body: wire::UpdateGroupBody = json_body(&state, payload).await?;
    let group = state
        .vault
        .update_group(principal, id.into_inner(), body.into_secrets())
        .await?;
    let tenant = state.vault.tenant();
    Ok(ok(StatusCode::OK, wire::data(wire::group(tenant, &group))))
}

/// Answers `{}` (the SDK needs an object).
async fn delete_group(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, TfError> {
    let principal = caller(&request)?;
    state.vault.delete_group(principal, id.into_inner()).await?;
    Ok(ok(StatusCode::OK, serde_json::json!({})))
}

async fn list_secrets(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, TfError> {
    let principal = caller(&request)?;
    let body: wire::ListSecretsBody = json_body(&state, payload).await?;
    let page = body.page();
    let secrets = state
        .vault
        .list_secrets(
            principal,
            page,
            body.secret_fqns,
            body.secret_group_id,
            body.with_value,
        )
        .await?;
    let tenant = state.vault.tenant();
    Ok(ok(
        StatusCode::OK,
        wire::page(&secrets, page, |s| wire::secret(tenant, s)),
    ))
}

async fn get_secret(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, TfError> {
    let principal = caller(&request)?;
    let secret = state.vault.get_secret(principal, id.into_inner()).await?;
    let tenant = state.vault.tenant();
    Ok(ok(
        StatusCode::OK,
        wire::data(wire::secret(tenant, &secret)),
    ))
}

/// Answers the number of secrets deleted, as a bare JSON number (what the SDK parses).
async fn delete_secret(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, TfError> {
    let principal = caller(&request)?;
    state
        .vault
        .delete_secret(principal, id.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(1))
}

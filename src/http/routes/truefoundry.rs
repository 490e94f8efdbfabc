//! TrueFoundry's Secret Groups API at `/api/svc/v1`: secret groups (list, create, upsert by
//! manifest, get, update, delete) and secrets (list as `POST /secrets`, get, delete). Envelopes
//! `{"data": ...}` and `{"data": [...], "pagination": {...}}`; errors `{"statusCode","message"}`
//! (`http/wire/truefoundry.rs`). Each request is one vault call: the tenant is the handle's.
//! Every handler takes `TfCaller` first: a bad key is refused before any body is read.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use super::super::auth::Caller;
use super::super::body::JsonBody;
use super::super::error::ApiError;
use super::super::extract::Query;
use super::super::wire::truefoundry::{self as wire, TfError};
use super::super::{unknown_route, AppState};
use crate::iam::directory::{ListQuery, ResourceKind};
use crate::secrets::state::Group;

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
            .route("/secrets/{id}", web::delete().to(delete_secret))
            .default_service(web::to(unknown_route::<TfError>)),
    );
}

/// The authenticated caller, refused in TrueFoundry's error shape.
type TfCaller = Caller<TfError>;

/// Secret groups hold a handful of secrets, each a credential or a certificate: 1 MiB is
/// generous for one request, and only an authenticated caller gets this far.
const MAX_TF_BODY_BYTES: usize = 1024 * 1024;

async fn json_body<T: DeserializeOwned>(body: JsonBody) -> Result<T, TfError> {
    Ok(body.read(MAX_TF_BODY_BYTES).await?)
}

fn ok(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

async fn list_groups(
    caller: TfCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
    query: Query<wire::ListGroupsQuery, TfError>,
) -> Result<HttpResponse, TfError> {
    let principal = Arc::clone(&caller.0);
    let fields = wire::attributes(request.query_string())?;
    let query = query.into_inner();
    let page = query.page();
    let groups = state
        .vault
        .list_groups(principal, page, query.fqn, query.search)
        .await?;
    let tenant = state.vault.tenant();
    Ok(ok(
        StatusCode::OK,
        wire::page(&groups, page, |g| {
            wire::group_with(tenant, g, fields.as_deref())
        }),
    ))
}

async fn create_group(
    caller: TfCaller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, TfError> {
    let principal = Arc::clone(&caller.0);
    let mut body: wire::CreateGroupBody = json_body(body).await?;
    let secrets = body.take_secrets()?;
    let group = state
        .vault
        .create_group(principal, body.name, body.integration_id, secrets)
        .await?;
    Ok(group_answer(&state, &group))
}

async fn upsert_group(
    caller: TfCaller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, TfError> {
    let principal = Arc::clone(&caller.0);
    let mut body: wire::UpsertGroupBody = json_body(body).await?;
    let fields = body.fields()?;
    if wire::names_service_accounts(&body.manifest) {
        let accounts = service_accounts(&state).await?;
        wire::bind_service_accounts(&mut body.manifest, |name| {
            accounts
                .iter()
                .find(|(account, _)| account.eq_ignore_ascii_case(name))
                .map(|(_, id)| id.clone())
        })?;
    }
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
    Ok(group_answer(&state, &group))
}

/// Every service account's name and id, from the directory.
async fn service_accounts(state: &AppState) -> Result<Vec<(String, String)>, TfError> {
    let query = ListQuery {
        kind: ResourceKind::ServiceAccount,
        filter: None,
        sort_by: None,
        descending: false,
    };
    let accounts = state.directory.list(query).await.map_err(ApiError::from)?;
    Ok(accounts
        .iter()
        .filter_map(|account| {
            let name = account.get("name").and_then(Json::as_str)?;
            let id = account.get("id").and_then(Json::as_str)?;
            Some((name.to_string(), id.to_string()))
        })
        .collect())
}

async fn get_group(
    caller: TfCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, TfError> {
    let principal = Arc::clone(&caller.0);
    let group = state.vault.get_group(principal, id.into_inner()).await?;
    Ok(group_answer(&state, &group))
}

async fn update_group(
    caller: TfCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, TfError> {
    let principal = Arc::clone(&caller.0);
    let body: wire::UpdateGroupBody = json_body(body).await?;
    let group = state
        .vault
        .update_group(principal, id.into_inner(), body.into_secrets())
        .await?;
    Ok(group_answer(&state, &group))
}

/// Answers `{}` (the SDK needs an object).
async fn delete_group(
    caller: TfCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, TfError> {
    let principal = Arc::clone(&caller.0);
    wire::check_force_delete(request.query_string())?;
    state.vault.delete_group(principal, id.into_inner()).await?;
    Ok(ok(StatusCode::OK, serde_json::json!({})))
}

async fn list_secrets(
    caller: TfCaller,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, TfError> {
    let principal = Arc::clone(&caller.0);
    let body: wire::ListSecretsBody = json_body(body).await?;
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
    caller: TfCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, TfError> {
    let principal = Arc::clone(&caller.0);
    let secret = state.vault.get_secret(principal, id.into_inner()).await?;
    let tenant = state.vault.tenant();
    Ok(ok(
        StatusCode::OK,
        wire::data(wire::secret(tenant, &secret)),
    ))
}

/// Answers the number of secrets deleted, as a bare JSON number (what the SDK parses).
async fn delete_secret(
    caller: TfCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, TfError> {
    let principal = Arc::clone(&caller.0);
    wire::check_force_delete(request.query_string())?;
    state
        .vault
        .delete_secret(principal, id.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(1))
}

/// A group in TrueFoundry's `{"data": ...}` envelope.
fn group_answer(state: &AppState, group: &Group) -> HttpResponse {
    ok(
        StatusCode::OK,
        wire::data(wire::group(state.vault.tenant(), group)),
    )
}

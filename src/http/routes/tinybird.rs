//! Tinybird's secrets at `/v0/secrets` (the page's path) and `/v0/variables` (the path the `tb`
//! CLI calls), with the same handlers. Parameters come from the query string and a form body
//! (JSON accepted too); the token from `?token=` or `Authorization: Bearer`; only an admin may
//! call it. Errors are `{"error", "documentation"}`; Tinybird answers 403 where others say 401.
//! Tinybird's words and shapes are in `http/wire/tinybird.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value as Json;

use super::super::body::read_limited;
use super::super::wire::tinybird::{self as wire, TbError};
use super::super::AppState;
use crate::iam::{Permission, Principal};
use crate::secrets::tinybird::RateState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    for base in ["/v0/secrets", "/v0/variables"] {
        let list_key = if base.ends_with("secrets") {
            "secrets"
        } else {
            "variables"
        };
        cfg.service(
            web::scope(base)
                .app_data(web::Data::new(ListKey(list_key)))
                .route("", web::get().to(list))
                .route("/", web::get().to(list))
                .route("", web::post().to(create))
                .route("/", web::post().to(create))
                .route("/{name:.+}", web::get().to(get))
                .route("/{name:.+}", web::put().to(update))
                .route("/{name:.+}", web::delete().to(delete)),
        );
    }
}

/// The key a list answer uses: `secrets` on the documented path, `variables` on the CLI's.
struct ListKey(&'static str);

/// The token from `?token=` (what the CLIs send) or `Authorization: Bearer`; admin only.
fn admin(
    state: &AppState,
    request: &HttpRequest,
    params: &HashMap<String, String>,
) -> Result<Arc<Principal>, TbError> {
    let header = match params.get("token") {
        Some(token) => Some(format!("Bearer {token}")),
        None => request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let principal = state
        .directory
        .authenticate(header.as_deref())
        .map_err(|_| TbError::new(StatusCode::FORBIDDEN, "invalid authentication token"))?;
    principal
        .require(Permission::Admin)
        .map_err(|_| TbError::new(StatusCode::FORBIDDEN, "token needs scope admin"))?;
    Ok(principal)
}

/// Query parameters merged with a form or JSON body (the body wins).
async fn parameters(
    state: &AppState,
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<HashMap<String, String>, TbError> {
    let mut params: HashMap<String, String> =
        serde_urlencoded::from_str(request.query_string()).unwrap_or_default();
    let body = read_limited(payload, state.limits.max_body_bytes)
        .await
        .map_err(|e| TbError::new(e.kind.status(), e.message))?;
    if body.is_empty() {
        return Ok(params);
    }
    let is_json = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if is_json {
        let json: Json = serde_json::from_slice(&body).map_err(|e| {
            TbError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}"))
        })?;
        let object = json.as_object().ok_or_else(|| {
            TbError::new(StatusCode::BAD_REQUEST, "the JSON body must be an object")
        })?;
        for (key, value) in object {
            let text = match value {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            params.insert(key.clone(), text);
        }
    } else {
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).map_err(|e| {
            TbError::new(StatusCode::BAD_REQUEST, format!("invalid form body: {e}"))
        })?;
        params.extend(form);
    }
    Ok(params)
}

/// A 200 with the write budget's headers.
fn ok(rate: RateState, body: Json) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    wire::rate_headers(&mut response, rate);
    response.json(body)
}

/// The request's parameters and its admin caller.
async fn admin_parameters(
    state: &AppState,
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<(Arc<Principal>, HashMap<String, String>), TbError> {
    let params = parameters(state, request, payload).await?;
    let principal = admin(state, request, &params)?;
    Ok((principal, params))
}

fn name_of(path: &web::Path<String>) -> String {
    // The CLIs do not URL-encode the name; actix has already decoded what was encoded.
    path.as_str().to_string()
}

async fn list(
    state: web::Data<AppState>,
    key: web::Data<ListKey>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, TbError> {
    admin_parameters(&state, &request, payload).await?;
    let (secrets, rate) = state.vault.list_tinybird().await?;
    Ok(ok(rate, wire::list(key.0, &secrets)))
}

async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, TbError> {
    let (principal, params) = admin_parameters(&state, &request, payload).await?;
    let (name, value) = wire::create_parameters(params)?;
    let (secret, rate) = state.vault.create_tinybird(principal, name, value).await?;
    Ok(ok(rate, wire::secret(&secret)))
}

async fn get(
    state: web::Data<AppState>,
    request: HttpRequest,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, TbError> {
    admin_parameters(&state, &request, payload).await?;
    let (found, rate) = state.vault.get_tinybird(name_of(&name)).await?;
    let secret = found.ok_or_else(TbError::not_found)?;
    Ok(ok(rate, wire::secret(&secret)))
}

async fn update(
    state: web::Data<AppState>,
    request: HttpRequest,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, TbError> {
    let (principal, params) = admin_parameters(&state, &request, payload).await?;
    let value = wire::update_parameters(params)?;
    let (secret, rate) = state
        .vault
        .update_tinybird(principal, name_of(&name), value)
        .await?;
    Ok(ok(rate, wire::secret(&secret)))
}

async fn delete(
    state: web::Data<AppState>,
    request: HttpRequest,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, TbError> {
    admin_parameters(&state, &request, payload).await?;
    let ((), rate) = state.vault.delete_tinybird(name_of(&name)).await?;
    Ok(ok(rate, wire::deleted()))
}

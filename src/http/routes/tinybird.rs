//! Tinybird's secrets at `/v0/secrets` (the page's path) and `/v0/variables` (the path the `tb`
//! CLI calls), with the same handlers. Parameters come from the query string and a form body
//! (JSON accepted too); the token from `?token=` or `Authorization: Bearer`; only an admin may
//! call it, checked (`TbAdmin`, every handler's first argument) before any body is read. Errors
//! are `{"error", "documentation"}`; Tinybird answers 403 where others say 401.

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::http::header::AUTHORIZATION;
use actix_web::http::StatusCode;
use actix_web::{
    dev, web, FromRequest, HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError,
};
use serde_json::{json, Value as Json};

use super::super::auth::authenticate_header;
use super::super::body::UnreadBody;
use super::super::AppState;
use crate::iam::{Permission, Principal};
use crate::secrets::crypto::Plaintext;
use crate::secrets::state::TbSecret;
use crate::secrets::tinybird::{RateState, TbAnswer, TbRequest};
use crate::secrets::SecretsError;
use crate::time::Micros;

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

const DOCS: &str = "https://docs.tinybird.co/api-reference/environment-variables-api";

#[derive(Debug)]
struct TbError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl std::fmt::Display for TbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for TbError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header(("Retry-After", seconds.to_string()));
            rate_headers(
                &mut response,
                RateState {
                    limit: crate::secrets::tinybird::WRITES_PER_SECOND,
                    remaining: 0,
                    reset_secs: seconds,
                },
            );
        }
        response.json(json!({"error": self.message, "documentation": DOCS}))
    }
}

impl TbError {
    fn new(status: StatusCode, message: impl Into<String>) -> TbError {
        TbError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<SecretsError> for TbError {
    fn from(error: SecretsError) -> TbError {
        match error {
            SecretsError::RateLimited { retry_after_secs } => TbError {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: format!("Too many requests: retry after {retry_after_secs} seconds"),
                retry_after: Some(retry_after_secs),
            },
            SecretsError::NotFound(m) => TbError::new(StatusCode::NOT_FOUND, m),
            SecretsError::Forbidden(m) | SecretsError::LimitReached(m) => {
                TbError::new(StatusCode::FORBIDDEN, m)
            }
            SecretsError::Tampered(m) | SecretsError::Internal(m) => {
                TbError::new(StatusCode::INTERNAL_SERVER_ERROR, m)
            }
            SecretsError::Unavailable(m) => TbError::new(StatusCode::SERVICE_UNAVAILABLE, m),
            SecretsError::Invalid(m)
            | SecretsError::AlreadyExists(m)
            | SecretsError::NotEmpty(m) => TbError::new(StatusCode::BAD_REQUEST, m),
        }
    }
}

fn rate_headers(response: &mut HttpResponseBuilder, rate: RateState) {
    response
        .insert_header(("X-RateLimit-Limit", rate.limit.to_string()))
        .insert_header(("X-RateLimit-Remaining", rate.remaining.to_string()))
        .insert_header(("X-RateLimit-Reset", rate.reset_secs.to_string()));
}

/// An admin token: from `?token=` (what the CLIs send) when it is not empty, else from
/// `Authorization: Bearer`. An empty `?token=` does not shadow the header.
struct TbAdmin(Arc<Principal>);

impl FromRequest for TbAdmin {
    type Error = TbError;
    type Future = Ready<Result<TbAdmin, TbError>>;

    fn from_request(request: &HttpRequest, _: &mut dev::Payload) -> Self::Future {
        let query: HashMap<String, String> =
            serde_urlencoded::from_str(request.query_string()).unwrap_or_default();
        let header = match query.get("token").filter(|token| !token.is_empty()) {
            Some(token) => Some(format!("Bearer {token}")),
            None => request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        };
        let admitted = authenticate_header(request, header.as_deref())
            .map_err(|_| TbError::new(StatusCode::FORBIDDEN, "invalid authentication token"))
            .and_then(|principal| {
                principal
                    .require(Permission::Admin)
                    .map(|()| TbAdmin(principal))
                    .map_err(|_| TbError::new(StatusCode::FORBIDDEN, "token needs scope admin"))
            });
        ready(admitted)
    }
}

/// A Tinybird value is at most 8 KB (the vault refuses more with a 400 that says so); form
/// encoding can triple it, and the other parameters are names: 64 KiB is plenty.
const MAX_TB_BODY_BYTES: usize = 64 * 1024;

/// Query parameters merged with a form or JSON body (the body wins).
async fn parameters(
    request: &HttpRequest,
    body: UnreadBody,
) -> Result<HashMap<String, String>, TbError> {
    let mut params: HashMap<String, String> =
        serde_urlencoded::from_str(request.query_string()).unwrap_or_default();
    let body = body
        .read(MAX_TB_BODY_BYTES)
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

/// Naive ISO 8601, microseconds only when there are any (as Tinybird writes them).
fn time(micros: Micros) -> String {
    let Some(t) = chrono::DateTime::<chrono::Utc>::from_timestamp_micros(micros) else {
        return String::new();
    };
    if micros % 1_000_000 == 0 {
        t.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    }
}

fn secret_json(secret: &TbSecret) -> Json {
    json!({"name": secret.name, "type": "secret", "created_at": time(secret.sealed.created),
           "updated_at": time(secret.sealed.updated), "edited_by": secret.edited_by})
}

fn answer(result: (TbAnswer, RateState), list_key: &str) -> HttpResponse {
    let (answer, rate) = result;
    let mut response = HttpResponse::Ok();
    rate_headers(&mut response, rate);
    match answer {
        TbAnswer::List(secrets) => {
            response.json(json!({ list_key: secrets.iter().map(secret_json).collect::<Vec<_>>() }))
        }
        TbAnswer::One(secret) => response.json(secret_json(&secret)),
        TbAnswer::Deleted => response.json(json!({"ok": true})),
    }
}

async fn call(
    admin: TbAdmin,
    state: &AppState,
    request: &HttpRequest,
    body: UnreadBody,
    make: impl FnOnce(&mut HashMap<String, String>) -> TbRequest,
) -> Result<(TbAnswer, RateState), TbError> {
    let mut params = parameters(request, body).await?;
    Ok(state.vault.tinybird(admin.0, make(&mut params)).await?)
}

fn name_of(path: &web::Path<String>) -> String {
    // The CLIs do not URL-encode the name; actix has already decoded what was encoded.
    path.as_str().to_string()
}

async fn list(
    admin: TbAdmin,
    state: web::Data<AppState>,
    key: web::Data<ListKey>,
    request: HttpRequest,
    body: UnreadBody,
) -> Result<HttpResponse, TbError> {
    Ok(answer(
        call(admin, &state, &request, body, |_| TbRequest::List).await?,
        key.0,
    ))
}

async fn create(
    admin: TbAdmin,
    state: web::Data<AppState>,
    key: web::Data<ListKey>,
    request: HttpRequest,
    body: UnreadBody,
) -> Result<HttpResponse, TbError> {
    let result = call(admin, &state, &request, body, |p| TbRequest::Create {
        name: p.remove("name"),
        value: p.remove("value").map(Plaintext),
        kind: p.remove("type"),
    })
    .await?;
    Ok(answer(result, key.0))
}

async fn get(
    admin: TbAdmin,
    state: web::Data<AppState>,
    key: web::Data<ListKey>,
    request: HttpRequest,
    name: web::Path<String>,
    body: UnreadBody,
) -> Result<HttpResponse, TbError> {
    let name = name_of(&name);
    Ok(answer(
        call(admin, &state, &request, body, |_| TbRequest::Get(name)).await?,
        key.0,
    ))
}

async fn update(
    admin: TbAdmin,
    state: web::Data<AppState>,
    key: web::Data<ListKey>,
    request: HttpRequest,
    name: web::Path<String>,
    body: UnreadBody,
) -> Result<HttpResponse, TbError> {
    let name = name_of(&name);
    let result = call(admin, &state, &request, body, |p| TbRequest::Update {
        name,
        value: p.remove("value").map(Plaintext),
        kind: p.remove("type"),
    })
    .await?;
    Ok(answer(result, key.0))
}

async fn delete(
    admin: TbAdmin,
    state: web::Data<AppState>,
    key: web::Data<ListKey>,
    request: HttpRequest,
    name: web::Path<String>,
    body: UnreadBody,
) -> Result<HttpResponse, TbError> {
    let name = name_of(&name);
    Ok(answer(
        call(admin, &state, &request, body, |_| TbRequest::Delete(name)).await?,
        key.0,
    ))
}

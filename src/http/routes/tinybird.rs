//! Tinybird's secrets at `/v0/secrets` (the page's path) and `/v0/variables` (the path the `tb`
//! CLI calls), with the same handlers. Parameters come from the query string and a form body
//! (JSON accepted too); the token from `?token=` or `Authorization: Bearer`; only an admin may
//! call it, checked (`TbAdmin`, every handler's first argument) before any body is read. Errors
//! are `{"error", "documentation"}`; Tinybird answers 403 where others say 401. Tinybird's
//! words and shapes are in `http/wire/tinybird.rs`.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use percent_encoding::percent_decode;
use serde_json::Value as Json;

use super::super::auth::{Admin, TokenParameter};
use super::super::body::{encoded_body, UnreadBody};
use super::super::error::{ApiError, ErrorKind};
use super::super::wire::tinybird::{self as wire, TbError};
use super::super::{unknown_route, AppState};
use crate::echo::echo;
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
                .route("/{name:.+}", web::delete().to(delete))
                .default_service(web::to(unknown_route::<TbError>)),
        );
    }
}

/// The key a list answer uses: `secrets` on the documented path, `variables` on the CLI's.
struct ListKey(&'static str);

/// An admin, by the token of `?token=` (what the CLIs send) or `Authorization: Bearer`.
type TbAdmin = Admin<TbError, TokenParameter>;

/// A Tinybird value is at most 8 KB (the vault refuses more with a 400 that says so); form
/// encoding can triple it, and the other parameters are names: 64 KiB is plenty.
const MAX_TB_BODY_BYTES: usize = 64 * 1024;

fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorKind::InvalidArgument, message)
}

/// Refuses a query string or form whose names or values are not UTF-8 once percent-decoded:
/// form parsers decode them lossily, so a secret's bytes would be stored as U+FFFD unsaid.
fn check_utf8(form: &[u8], what: &str) -> Result<(), ApiError> {
    for pair in form.split(|&b| b == b'&') {
        let mut halves = pair.splitn(2, |&b| b == b'=');
        let name = percent_decode(halves.next().unwrap_or_default())
            .decode_utf8()
            .map_err(|_| invalid(format!("{what}: a parameter's name is not UTF-8")))?;
        let value = halves.next().unwrap_or_default();
        if percent_decode(value).decode_utf8().is_err() {
            return Err(invalid(format!(
                "{what}: the value of `{}` is not UTF-8 once percent-decoded",
                echo(&name)
            )));
        }
    }
    Ok(())
}

/// Query parameters merged with a form or JSON body (the body wins).
async fn parameters(
    request: &HttpRequest,
    body: UnreadBody,
) -> Result<HashMap<String, String>, TbError> {
    check_utf8(request.query_string().as_bytes(), "query string")?;
    let mut params: HashMap<String, String> =
        serde_urlencoded::from_str(request.query_string()).unwrap_or_default();
    let body = body.read(MAX_TB_BODY_BYTES).await?;
    if body.is_empty() {
        return Ok(params);
    }
    // Nothing decompresses a body, and a compressed form would read as garbage names.
    if let Some(encoded) = encoded_body(request) {
        return Err(encoded.into());
    }
    let is_json = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if is_json {
        let json: Json = serde_json::from_slice(&body)
            .map_err(|e| invalid(format!("invalid JSON body: {e}")))?;
        let object = json
            .as_object()
            .ok_or_else(|| invalid("the JSON body must be an object".to_string()))?;
        for (key, value) in object {
            let text = match value {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            params.insert(key.clone(), text);
        }
    } else {
        check_utf8(&body, "form body")?;
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|e| invalid(format!("invalid form body: {e}")))?;
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

fn name_of(path: &web::Path<String>) -> String {
    // The CLIs do not URL-encode the name; actix has already decoded what was encoded.
    path.as_str().to_string()
}

async fn list(
    _: TbAdmin,
    state: web::Data<AppState>,
    key: web::Data<ListKey>,
    request: HttpRequest,
    body: UnreadBody,
) -> Result<HttpResponse, TbError> {
    parameters(&request, body).await?;
    let (secrets, rate) = state.vault.list_tinybird().await?;
    Ok(ok(rate, wire::list(key.0, &secrets)))
}

async fn create(
    admin: TbAdmin,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: UnreadBody,
) -> Result<HttpResponse, TbError> {
    let (name, value) = wire::create_parameters(parameters(&request, body).await?)?;
    let (secret, rate) = state.vault.create_tinybird(admin.0, name, value).await?;
    Ok(ok(rate, wire::secret(&secret)))
}

async fn get(
    _: TbAdmin,
    state: web::Data<AppState>,
    request: HttpRequest,
    name: web::Path<String>,
    body: UnreadBody,
) -> Result<HttpResponse, TbError> {
    parameters(&request, body).await?;
    let (found, rate) = state.vault.get_tinybird(name_of(&name)).await?;
    let secret = found.ok_or_else(TbError::not_found)?;
    Ok(ok(rate, wire::secret(&secret)))
}

async fn update(
    admin: TbAdmin,
    state: web::Data<AppState>,
    request: HttpRequest,
    name: web::Path<String>,
    body: UnreadBody,
) -> Result<HttpResponse, TbError> {
    let value = wire::update_parameters(parameters(&request, body).await?)?;
    let (secret, rate) = state
        .vault
        .update_tinybird(admin.0, name_of(&name), value)
        .await?;
    Ok(ok(rate, wire::secret(&secret)))
}

async fn delete(
    _: TbAdmin,
    state: web::Data<AppState>,
    request: HttpRequest,
    name: web::Path<String>,
    body: UnreadBody,
) -> Result<HttpResponse, TbError> {
    parameters(&request, body).await?;
    let ((), rate) = state.vault.delete_tinybird(name_of(&name)).await?;
    Ok(ok(rate, wire::deleted()))
}

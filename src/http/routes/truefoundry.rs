//! TrueFoundry's Secret Groups API at `/api/svc/v1`: secret groups (list, create, upsert by
//! manifest, get, update, delete) and secrets (list as `POST /secrets`, get, delete). Envelopes
//! `{"data": ...}` and `{"data": [...], "pagination": {...}}`; errors `{"statusCode","message"}`.
//! Every handler takes `TfCaller` first: a bad key is refused before any body is read.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::super::auth::Caller;
use super::super::body::{parse_json, UnreadBody};
use super::super::error::{ApiError, ErrorKind};
use super::super::AppState;
use crate::iam::AuthError;
use crate::secrets::crypto::Plaintext;
use crate::secrets::state::Group;
use crate::secrets::truefoundry::{SecretView, TfAnswer, TfRequest};
use crate::secrets::SecretsError;
use crate::time::Micros;

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

/// TrueFoundry's error body.
#[derive(Debug)]
struct TfError {
    status: StatusCode,
    message: String,
}

impl std::fmt::Display for TfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for TfError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .json(json!({"statusCode": self.status.as_u16(), "message": self.message}))
    }
}

impl TfError {
    fn new(status: StatusCode, message: impl Into<String>) -> TfError {
        TfError {
            status,
            message: message.into(),
        }
    }
}

impl From<SecretsError> for TfError {
    fn from(error: SecretsError) -> TfError {
        let status = match &error {
            SecretsError::NotFound(_) => StatusCode::NOT_FOUND,
            SecretsError::AlreadyExists(_) => StatusCode::CONFLICT,
            SecretsError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            SecretsError::Forbidden(_) | SecretsError::LimitReached(_) => StatusCode::FORBIDDEN,
            SecretsError::NotEmpty(_) => StatusCode::CONFLICT,
            SecretsError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            SecretsError::Tampered(_) | SecretsError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            SecretsError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        TfError::new(status, error.to_string())
    }
}

impl From<ApiError> for TfError {
    fn from(error: ApiError) -> TfError {
        TfError::new(error.kind.status(), error.message)
    }
}

/// A bad or missing key is TrueFoundry's bare `401 Unauthorized`, answered before any body is
/// read; permissions are the vault's to check, against the group's collaborators.
impl From<AuthError> for TfError {
    fn from(error: AuthError) -> TfError {
        let error = ApiError::from(error);
        match error.kind {
            ErrorKind::Unauthenticated => TfError::new(StatusCode::UNAUTHORIZED, "Unauthorized"),
            _ => error.into(),
        }
    }
}

/// The authenticated caller, refused in TrueFoundry's error shape.
type TfCaller = Caller<TfError>;

/// Secret groups hold a handful of secrets, each a credential or a certificate: 1 MiB is
/// generous for one request, and only an authenticated caller gets this far.
const MAX_TF_BODY_BYTES: usize = 1024 * 1024;

async fn json_body<T: for<'de> Deserialize<'de>>(body: UnreadBody) -> Result<T, TfError> {
    Ok(parse_json(&body.read(MAX_TF_BODY_BYTES).await?)?)
}

/// ISO 8601 with milliseconds and `Z`, as TrueFoundry writes times.
fn time(micros: Micros) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_micros(micros).map_or_else(String::new, |t| {
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    })
}

fn subject(group: &Group) -> Json {
    json!({"subjectId": group.created_by.0, "subjectType": group.created_by.1})
}

fn secret_json(tenant: &str, view: &SecretView) -> Json {
    let group_fqn = format!("{tenant}:{}", view.group.name);
    let fqn = format!("{group_fqn}:{}", view.secret.key);
    let versions: Vec<Json> = view
        .secret
        .versions
        .iter()
        .map(|v| json!({"id": v.id, "fqn": format!("{fqn}:{}", v.sealed.version), "version": v.sealed.version, "secretId": view.secret.id,
                        "createdAt": time(v.sealed.created), "updatedAt": time(v.sealed.updated)}))
        .collect();
    let mut secret = json!({
        "id": view.secret.id, "fqn": fqn, "name": view.secret.key, "secretGroupId": view.group.id,
        "createdBySubject": subject(&view.group), "createdAt": time(view.secret.created), "updatedAt": time(view.secret.updated),
        "secretVersions": versions, "activeDeploymentsCount": 0,
    });
    if let Some(value) = &view.value {
        secret["value"] = Json::String(value.0.clone());
    }
    secret
}

fn group_json(tenant: &str, group: &Group) -> Json {
    let secrets: Vec<Json> = group
        .secrets
        .values()
        .map(|s| {
            secret_json(
                tenant,
                &SecretView {
                    group: group.clone(),
                    secret: s.clone(),
                    value: None,
                },
            )
        })
        .collect();
    let mut out = json!({
        "id": group.id, "fqn": format!("{tenant}:{}", group.name), "name": group.name, "tenantName": tenant, "accountId": tenant,
        "createdBySubject": subject(group), "associatedSecrets": secrets, "createdAt": time(group.created), "updatedAt": time(group.updated),
    });
    if let Some(id) = &group.integration_id {
        out["integrationId"] = json!(id);
    }
    if let Some(manifest) = &group.manifest {
        out["manifest"] = manifest.clone();
    }
    out
}

async fn run(
    state: &AppState,
    caller: &TfCaller,
    call: TfRequest,
) -> Result<(String, TfAnswer), TfError> {
    let tenant = state.vault.tenant().await;
    let answer = state.vault.truefoundry(Arc::clone(&caller.0), call).await?;
    Ok((tenant, answer))
}

fn one(tenant: &str, answer: TfAnswer, status: StatusCode) -> HttpResponse {
    match answer {
        TfAnswer::Group(group) => {
            HttpResponse::build(status).json(json!({"data": group_json(tenant, &group)}))
        }
        TfAnswer::Secret(view) => {
            HttpResponse::build(status).json(json!({"data": secret_json(tenant, &view)}))
        }
        TfAnswer::Groups { .. } | TfAnswer::Secrets { .. } => {
            unreachable!("lists are answered by their own handlers")
        }
        TfAnswer::Deleted => HttpResponse::build(status).json(json!({})),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    limit: Option<usize>,
    offset: Option<usize>,
    fqn: Option<String>,
    search: Option<String>,
}

async fn list_groups(
    caller: TfCaller,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, TfError> {
    let query = query.into_inner();
    let (limit, offset) = (query.limit.unwrap_or(100), query.offset.unwrap_or(0));
    let (tenant, answer) = run(
        &state,
        &caller,
        TfRequest::ListGroups {
            limit,
            offset,
            fqn: query.fqn,
            search: query.search,
        },
    )
    .await?;
    let TfAnswer::Groups { groups, total } = answer else {
        unreachable!("ListGroups answers Groups")
    };
    let data: Vec<Json> = groups.iter().map(|g| group_json(&tenant, g)).collect();
    Ok(HttpResponse::Ok().json(
        json!({"data": data, "pagination": {"total": total, "offset": offset, "limit": limit}}),
    ))
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    value: Option<String>,
}

async fn create_group(
    caller: TfCaller,
    state: web::Data<AppState>,
    body: UnreadBody,
) -> Result<HttpResponse, TfError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        name: String,
        integration_id: Option<String>,
        #[serde(default)]
        secrets: Vec<KeyValue>,
    }
    let body: Body = json_body(body).await?;
    let mut secrets = Vec::with_capacity(body.secrets.len());
    for kv in body.secrets {
        let value = kv.value.ok_or_else(|| {
            TfError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("secret `{}` needs a value", kv.key),
            )
        })?;
        secrets.push((kv.key, Plaintext(value)));
    }
    let (tenant, answer) = run(
        &state,
        &caller,
        TfRequest::CreateGroup {
            name: body.name,
            integration_id: body.integration_id,
            secrets,
        },
    )
    .await?;
    Ok(one(&tenant, answer, StatusCode::CREATED))
}

async fn upsert_group(
    caller: TfCaller,
    state: web::Data<AppState>,
    body: UnreadBody,
) -> Result<HttpResponse, TfError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        manifest: Json,
        #[serde(default)]
        dry_run: bool,
    }
    let body: Body = json_body(body).await?;
    let (tenant, answer) = run(
        &state,
        &caller,
        TfRequest::Upsert {
            manifest: body.manifest,
            dry_run: body.dry_run,
        },
    )
    .await?;
    Ok(one(&tenant, answer, StatusCode::OK))
}

async fn get_group(
    caller: TfCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, TfError> {
    let (tenant, answer) = run(&state, &caller, TfRequest::GetGroup(id.into_inner())).await?;
    Ok(one(&tenant, answer, StatusCode::OK))
}

async fn update_group(
    caller: TfCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: UnreadBody,
) -> Result<HttpResponse, TfError> {
    #[derive(Deserialize)]
    struct Body {
        secrets: Vec<KeyValue>,
    }
    let body: Body = json_body(body).await?;
    let secrets = body
        .secrets
        .into_iter()
        .map(|kv| (kv.key, kv.value.map(Plaintext)))
        .collect();
    let (tenant, answer) = run(
        &state,
        &caller,
        TfRequest::UpdateGroup {
            id: id.into_inner(),
            secrets,
        },
    )
    .await?;
    Ok(one(&tenant, answer, StatusCode::OK))
}

async fn delete_group(
    caller: TfCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, TfError> {
    let (tenant, answer) = run(&state, &caller, TfRequest::DeleteGroup(id.into_inner())).await?;
    Ok(one(&tenant, answer, StatusCode::OK))
}

async fn list_secrets(
    caller: TfCaller,
    state: web::Data<AppState>,
    body: UnreadBody,
) -> Result<HttpResponse, TfError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        limit: Option<usize>,
        offset: Option<usize>,
        #[serde(default)]
        secret_fqns: Vec<String>,
        secret_group_id: Option<String>,
        #[serde(default)]
        with_value: bool,
    }
    let body: Body = json_body(body).await?;
    let (limit, offset) = (body.limit.unwrap_or(100), body.offset.unwrap_or(0));
    let call = TfRequest::ListSecrets {
        limit,
        offset,
        fqns: body.secret_fqns,
        group_id: body.secret_group_id,
        with_value: body.with_value,
    };
    let (tenant, answer) = run(&state, &caller, call).await?;
    let TfAnswer::Secrets { secrets, total } = answer else {
        unreachable!("ListSecrets answers Secrets")
    };
    let data: Vec<Json> = secrets.iter().map(|s| secret_json(&tenant, s)).collect();
    Ok(HttpResponse::Ok().json(
        json!({"data": data, "pagination": {"total": total, "offset": offset, "limit": limit}}),
    ))
}

async fn get_secret(
    caller: TfCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, TfError> {
    let (tenant, answer) = run(&state, &caller, TfRequest::GetSecret(id.into_inner())).await?;
    Ok(one(&tenant, answer, StatusCode::OK))
}

/// Answers the number of secrets deleted, as a bare JSON number (what the SDK parses).
async fn delete_secret(
    caller: TfCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, TfError> {
    run(&state, &caller, TfRequest::DeleteSecret(id.into_inner())).await?;
    Ok(HttpResponse::Ok().json(1))
}

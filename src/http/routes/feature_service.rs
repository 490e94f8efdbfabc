//! Tecton's Feature Service: GetFeatures, GetFeaturesBatch and Metadata, on the v1 paths (service
//! named in the body) and the v2 paths (service named in the path). The caller is checked before
//! the body is read: on v2 against the path's workspace; on v1, whose body names the workspace,
//! the caller must hold the permission on some workspace first and on the named one after.

use std::time::Instant;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map};

use super::super::auth::Caller;
use super::super::body::{parse_json, UnreadBody};
use super::super::error::{ApiError, ErrorKind};
use super::super::wire::feature_service::{
    get_features_batch_response, get_features_response, metadata_response, Envelope,
    GetFeaturesParams, Timing,
};
use super::super::{method_not_allowed, AppState};
use crate::iam::Permission;
use crate::serving::{self, resolve_service, Locator, RequestRow};
use crate::time::now_micros;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let post_only = |path: &str, handler| {
        web::resource(path.to_string())
            .route(handler)
            .default_service(web::to(method_not_allowed))
    };
    cfg.service(post_only(
        "/api/v1/feature-service/get-features",
        web::post().to(get_features),
    ))
    .service(post_only(
        "/api/v1/feature-service/get-features-batch",
        web::post().to(get_features_batch),
    ))
    .service(post_only(
        "/api/v1/feature-service/metadata",
        web::post().to(metadata_v1),
    ))
    .service(post_only(
        "/api/v1/feature-service/get-feature-service-state",
        web::post().to(service_state_v1),
    ))
    .service(post_only(
        "/api/v2/workspaces/{workspace}/feature-services/{service}/get-features",
        web::post().to(get_features),
    ))
    .service(post_only(
        "/api/v2/workspaces/{workspace}/feature-services/{service}/get-features-batch",
        web::post().to(get_features_batch),
    ))
    .service(
        web::resource("/api/v2/workspaces/{workspace}/feature-services/{service}/metadata")
            .route(web::get().to(metadata_v2))
            .default_service(web::to(method_not_allowed)),
    );
}

/// `{workspace}` and `{service}` of a v2 path.
#[derive(Deserialize)]
struct ServicePath {
    workspace: String,
    service: String,
}

impl ServicePath {
    fn names(&self) -> (&str, &str) {
        (&self.workspace, &self.service)
    }
}

/// What can be checked before the body is read: `permission` on the path's workspace (v2), or
/// on some workspace (v1).
fn check_before_body(
    state: &AppState,
    caller: &Caller,
    path: Option<&ServicePath>,
    permission: fn(&str) -> Permission,
) -> Result<(), ApiError> {
    match path {
        Some(path) => caller.require(permission(&path.workspace)),
        None => caller.require_on_some_workspace(&state.registry, permission),
    }
}

async fn read_params(state: &AppState, body: UnreadBody) -> Result<GetFeaturesParams, ApiError> {
    let body = body.read(state.limits.max_body_bytes).await?;
    let envelope: Envelope<Option<GetFeaturesParams>> = parse_json(&body)?;
    envelope
        .params
        .ok_or_else(|| ApiError::new(ErrorKind::InvalidArgument, "`params` must be an object"))
}

/// GetFeatures on the v1 path (service named in the body) and the v2 path (named in the path).
async fn get_features(
    caller: Caller,
    state: web::Data<AppState>,
    path: Option<web::Path<ServicePath>>,
    body: UnreadBody,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    check_before_body(&state, &caller, path.as_deref(), |workspace| {
        Permission::ReadFeatures(workspace)
    })?;
    let params = read_params(&state, body).await?;
    let locator = params.locator(path.as_deref().map(ServicePath::names));
    answer_single(&state, &caller, locator, params, started).await
}

/// GetFeaturesBatch on the v1 and v2 paths.
async fn get_features_batch(
    caller: Caller,
    state: web::Data<AppState>,
    path: Option<web::Path<ServicePath>>,
    body: UnreadBody,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    check_before_body(&state, &caller, path.as_deref(), |workspace| {
        Permission::ReadFeatures(workspace)
    })?;
    let params = read_params(&state, body).await?;
    let locator = params.locator(path.as_deref().map(ServicePath::names));
    answer_batch(&state, &caller, locator, params, started).await
}

async fn answer_single(
    state: &AppState,
    caller: &Caller,
    locator: Locator,
    params: GetFeaturesParams,
    started: Instant,
) -> Result<HttpResponse, ApiError> {
    let service = resolve_service(&state.registry, &locator)?;
    caller.require(Permission::ReadFeatures(&service.workspace))?;
    let options = params.read_options(now_micros(), started)?;
    let join_keys = params.join_key_map.unwrap_or_default();
    let request_context = params.request_context_map.unwrap_or_default();
    let row = RequestRow {
        join_keys: &join_keys,
        request_context: &request_context,
    };
    let answer =
        serving::get_features(&state.registry, &state.router, service, &[row], options).await?;
    let timing = Timing {
        server: started.elapsed(),
        store: answer.store_latency,
        store_bytes: answer.store_bytes,
        budget_exceeded: answer.partial,
    };
    let body = get_features_response(
        &state.catalog,
        service,
        &answer,
        params.metadata_options,
        timing,
    );
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

async fn answer_batch(
    state: &AppState,
    caller: &Caller,
    locator: Locator,
    params: GetFeaturesParams,
    started: Instant,
) -> Result<HttpResponse, ApiError> {
    let service = resolve_service(&state.registry, &locator)?;
    caller.require(Permission::ReadFeatures(&service.workspace))?;
    let options = params.read_options(now_micros(), started)?;
    let rows = params.request_data.unwrap_or_default();
    if rows.is_empty() {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            "`requestData` must list at least one request",
        ));
    }
    let max = state.limits.max_batch_size;
    if rows.len() > max {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!(
                "`requestData` has {} requests; the maximum batch size is {max}",
                rows.len()
            ),
        ));
    }
    let empty = Map::new();
    let requests: Vec<RequestRow> = rows
        .iter()
        .map(|row| RequestRow {
            join_keys: row
                .as_ref()
                .and_then(|r| r.join_key_map.as_ref())
                .unwrap_or(&empty),
            request_context: row
                .as_ref()
                .and_then(|r| r.request_context_map.as_ref())
                .unwrap_or(&empty),
        })
        .collect();
    let answer =
        serving::get_features(&state.registry, &state.router, service, &requests, options).await?;

    let timing = Timing {
        server: started.elapsed(),
        store: answer.store_latency,
        store_bytes: answer.store_bytes,
        budget_exceeded: answer.partial,
    };
    let body = get_features_batch_response(
        &state.catalog,
        service,
        &answer,
        params.metadata_options,
        timing,
    );
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

async fn metadata_v1(
    caller: Caller,
    state: web::Data<AppState>,
    body: UnreadBody,
) -> Result<HttpResponse, ApiError> {
    check_before_body(&state, &caller, None, |workspace| {
        Permission::ReadMetadata(workspace)
    })?;
    let params = read_params(&state, body).await?;
    let service = resolve_service(&state.registry, &params.locator(None))?;
    caller.require(Permission::ReadMetadata(&service.workspace))?;
    Ok(HttpResponse::Ok().json(metadata_response(&state.catalog, service)))
}

async fn metadata_v2(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<ServicePath>,
) -> Result<HttpResponse, ApiError> {
    let locator = Locator {
        workspace: Some(path.workspace.clone()),
        service_name: Some(path.service.clone()),
        service_id: None,
    };
    let service = resolve_service(&state.registry, &locator)?;
    caller.require(Permission::ReadMetadata(&service.workspace))?;
    Ok(HttpResponse::Ok().json(metadata_response(&state.catalog, service)))
}

/// `{"featureServiceLocator": {...}}` (what the Tecton SDK's `wait_until_ready` sends) or
/// `{"params": {...}}` (the shape of every other v1 call) -> `{}` when the service can be
/// queried, 404 otherwise.
async fn service_state_v1(
    caller: Caller,
    state: web::Data<AppState>,
    body: UnreadBody,
) -> Result<HttpResponse, ApiError> {
    check_before_body(&state, &caller, None, |workspace| {
        Permission::ReadMetadata(workspace)
    })?;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct StateRequest {
        #[serde(alias = "feature_service_locator")]
        feature_service_locator: Option<GetFeaturesParams>,
        params: Option<GetFeaturesParams>,
    }
    let body = body.read(state.limits.max_body_bytes).await?;
    let request: StateRequest = parse_json(&body)?;
    let locator = match (request.feature_service_locator, request.params) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorKind::InvalidArgument,
                "give the service in `featureServiceLocator` or in `params`, not both",
            ))
        }
        (locator, params) => locator.or(params).unwrap_or_default().locator(None),
    };
    let service = resolve_service(&state.registry, &locator)?;
    caller.require(Permission::ReadMetadata(&service.workspace))?;
    Ok(HttpResponse::Ok().json(json!({})))
}

//! Tecton's Feature Service: GetFeatures, GetFeaturesBatch and Metadata, on the v1 paths (service
//! named in the body) and the v2 paths (service named in the path). The caller is checked before
//! the body is read: on v2 against the path's workspace; on v1, whose body names the workspace,
//! the caller must hold the permission on some workspace first and on the named one after.

use std::future::{ready, Ready};
use std::ops::Range;
use std::time::Instant;

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::http::{Method, StatusCode};
use actix_web::{dev::Payload, guard, web, FromRequest, HttpRequest, HttpResponse, Route};
use serde::Deserialize;
use serde_json::json;

use super::super::auth::{Allowed, ReadFeatures, ReadMetadata};
use super::super::body::{parse_json, UnreadBody};
use super::super::error::{ApiError, ErrorKind};
use super::super::served::Repo;
use super::super::wire::common_request::common_params;
use super::super::wire::feature_service::{
    get_features_batch_response, get_features_response, metadata_response, BatchRow, Envelope,
    GetFeaturesParams, Timing,
};
use super::super::{method_not_allowed, AppState};
use crate::http::observe::RequestId;
use crate::iam::Permission;
use crate::serving::{self, resolve_service, Locator, RequestRow};
use crate::time::now_micros;

/// Each resource is named by its pattern: `observe_requests` labels a request with its
/// route's name where it has one, read in place, where actix builds the pattern anew as a
/// `String` on every request (~450 instructions).
pub fn configure(cfg: &mut web::ServiceConfig) {
    let post_only = |path: &str, handler| {
        web::resource(path.to_string())
            .name(path)
            .route(handler)
            .default_service(web::to(method_not_allowed))
    };
    cfg.service(post_only(
        "/api/v1/feature-service/get-features",
        post().to(get_features::<false>),
    ))
    .service(post_only(
        "/api/v1/feature-service/get-features-batch",
        post().to(get_features::<true>),
    ))
    .service(post_only(
        "/api/v1/feature-service/metadata",
        post().to(metadata_v1),
    ))
    .service(post_only(
        "/api/v1/feature-service/get-feature-service-state",
        post().to(service_state_v1),
    ))
    .service(post_only(
        "/api/v1/feature-service/query-features",
        post().to(query_features),
    ))
    .service(post_only(
        "/api/v2/workspaces/{workspace}/feature-services/{service}/get-features",
        post().to(get_features::<false>),
    ))
    .service(post_only(
        "/api/v2/workspaces/{workspace}/feature-services/{service}/get-features-batch",
        post().to(get_features::<true>),
    ))
    .service({
        let path = "/api/v2/workspaces/{workspace}/feature-services/{service}/metadata";
        web::resource(path)
            .name(path)
            .route(web::get().to(metadata_v2))
            .default_service(web::to(method_not_allowed))
    });
}

/// A route for `POST`, its method compared in place. actix's method guards (`web::post()`) also
/// record each method they try in the request's extensions, for the `Allow` header of actix's
/// own 405 answer: a vector and a map insert on every request, and the map cleared when the
/// request is pooled (~900 instructions). These resources answer 405 themselves
/// (`method_not_allowed`), so nothing reads that record.
fn post() -> Route {
    web::route().guard(guard::fn_guard(|context| {
        context.head().method == Method::POST
    }))
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

/// What GetFeatures takes of a request, its caller checked first, extracted in one go. As
/// separate arguments (caller, state, repository, path, request id, body), actix built and
/// polled a future for each, and the state and the repository were looked up again for each
/// (~650 instructions a request).
struct FeatureCall {
    /// Checked before anything else is taken of the request.
    caller: Allowed<ReadFeatures>,
    state: web::Data<AppState>,
    repo: Repo,
    /// The v2 paths' `{workspace}` and `{service}`; `None` on the v1 paths. (As an
    /// `Option<web::Path<_>>`, every v1 request paid for a failed deserialisation and its
    /// boxed error, ~850 instructions.)
    path: Option<ServicePath>,
    request_id: Option<RequestId>,
    body: UnreadBody,
}

impl FromRequest for FeatureCall {
    type Error = ApiError;
    type Future = Ready<Result<FeatureCall, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = request
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered by http::app");
        let repo = Repo::current(state);
        let caller = match Allowed::check(request, state, &repo.registry) {
            Ok(caller) => caller,
            Err(refused) => return ready(Err(refused)),
        };
        let path = request.match_info();
        ready(Ok(FeatureCall {
            caller,
            repo,
            path: path.get("service").and_then(|_| path.load().ok()),
            request_id: RequestId::current(),
            body: UnreadBody::take(request, payload, state.limits.body_read_timeout),
            state: web::Data::clone(state),
        }))
    }
}

/// The `params` of a Feature Service body, borrowing its strings from `body`: read by hand
/// where the body has the common shape, else by serde (every refusal is serde's).
fn params_of(body: &[u8]) -> Result<GetFeaturesParams<'_>, ApiError> {
    if let Some(params) = common_params(body) {
        return Ok(params);
    }
    let envelope: Envelope<Option<GetFeaturesParams>> = parse_json(body)?;
    envelope
        .params
        .ok_or_else(|| ApiError::new(ErrorKind::InvalidArgument, "`params` must be an object"))
}

/// GetFeatures (`BATCH` false: one request row) and GetFeaturesBatch (`requestData`: many), on
/// the v1 paths (service named in the body) and the v2 paths (named in the path).
async fn get_features<const BATCH: bool>(call: FeatureCall) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let FeatureCall {
        caller,
        state,
        repo,
        path,
        request_id,
        body,
    } = call;
    let body = body
        .read_since(state.limits.max_body_bytes, started)
        .await?;
    let params = params_of(&body)?;
    let locator = params.locator(path.as_ref().map(ServicePath::names));
    let service = resolve_service(&repo.registry, &locator)?;
    caller.require(Permission::ReadFeatures(&service.workspace))?;
    let mut options = params.read_options(now_micros(), started)?;
    options.max_store_response_bytes = state.limits.max_store_response_bytes;
    // A single request's one row is not put in a list of its own (an allocation and a free).
    let batch: Vec<RequestRow>;
    let single: RequestRow;
    let requests: &[RequestRow] = if BATCH {
        batch = batch_rows(&params, state.limits.max_batch_size)?
            .iter()
            .map(|r| {
                let r = r.clone().unwrap_or_default();
                request_row(&params, r.join_key_map, r.request_context_map)
            })
            .collect();
        &batch
    } else {
        single = request_row(
            &params,
            params.join_key_map.clone(),
            params.request_context_map.clone(),
        );
        std::slice::from_ref(&single)
    };
    let answer =
        serving::get_features(&repo.registry, &state.router, service, requests, options).await?;
    let timing = Timing {
        server: started.elapsed(),
        store: answer.store_latency,
        store_bytes: answer.store_bytes,
        partial: answer.partial,
    };
    let encode = if BATCH {
        get_features_batch_response
    } else {
        get_features_response
    };
    let body = encode(
        &repo.catalog,
        service,
        &answer,
        params.metadata_options,
        timing,
    );
    let (principal, request_id) = (&caller.0 .0, request_id.as_ref().map(|id| &*id.0));
    state
        .feature_log
        .offer(service, requests, answer, principal, request_id);
    // Made whole rather than through `HttpResponse::Ok()`'s builder, which makes an empty body
    // first and swaps it; a ready header value: from a `&str`, actix parses and copies it.
    let mut response = HttpResponse::with_body(StatusCode::OK, body).map_into_boxed_body();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// One request row, its maps ranges of `params`' fields; an absent map is an empty one.
fn request_row<'a>(
    params: &'a GetFeaturesParams<'a>,
    join_keys: Option<Range<usize>>,
    request_context: Option<Range<usize>>,
) -> RequestRow<'a> {
    RequestRow {
        join_keys: params.fields_of(join_keys),
        request_context: params.fields_of(request_context),
    }
}

/// A batch's `requestData`: at least one row, at most `max_batch_size`.
fn batch_rows<'p>(
    params: &'p GetFeaturesParams<'_>,
    max_batch_size: usize,
) -> Result<&'p [Option<BatchRow>], ApiError> {
    let rows = params.request_data.as_deref().unwrap_or_default();
    if rows.is_empty() {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            "`requestData` must list at least one request",
        ));
    }
    if rows.len() > max_batch_size {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!(
                "`requestData` has {} requests; the maximum batch size is {max_batch_size}",
                rows.len()
            ),
        ));
    }
    Ok(rows)
}

async fn metadata_v1(
    caller: Allowed<ReadMetadata>,
    state: web::Data<AppState>,
    repo: Repo,
    body: UnreadBody,
) -> Result<HttpResponse, ApiError> {
    let body = body.read(state.limits.max_body_bytes).await?;
    let params = params_of(&body)?;
    let service = resolve_service(&repo.registry, &params.locator(None))?;
    caller.require(Permission::ReadMetadata(&service.workspace))?;
    Ok(HttpResponse::Ok().json(metadata_response(&repo.catalog, service)))
}

async fn metadata_v2(
    caller: Allowed<ReadMetadata>,
    repo: Repo,
    path: web::Path<ServicePath>,
) -> Result<HttpResponse, ApiError> {
    let locator = Locator {
        workspace: Some(&path.workspace),
        service_name: Some(&path.service),
        service_id: None,
    };
    let service = resolve_service(&repo.registry, &locator)?;
    caller.require(Permission::ReadMetadata(&service.workspace))?;
    Ok(HttpResponse::Ok().json(metadata_response(&repo.catalog, service)))
}

/// `{"featureServiceLocator": {...}}` (what the Tecton SDK's `wait_until_ready` sends) or
/// `{"params": {...}}` (the shape of every other v1 call) -> `{}` when the service can be
/// queried, 404 otherwise.
/// Tecton's `query-features` (partial join keys matched against a view's serving index) is
/// refused in words: Quiver's index is a hash of whole join keys, so it has no prefix to scan.
/// The caller is still checked first, as on every route.
async fn query_features(_: Allowed<ReadFeatures>) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorKind::NotImplemented,
        "query-features (partial join keys) is not supported: Quiver indexes whole join keys; \
         send every join key to get-features",
    ))
}

async fn service_state_v1(
    caller: Allowed<ReadMetadata>,
    state: web::Data<AppState>,
    repo: Repo,
    body: UnreadBody,
) -> Result<HttpResponse, ApiError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct StateRequest<'a> {
        #[serde(borrow, alias = "feature_service_locator")]
        feature_service_locator: Option<GetFeaturesParams<'a>>,
        #[serde(borrow)]
        params: Option<GetFeaturesParams<'a>>,
    }
    let body = body.read(state.limits.max_body_bytes).await?;
    let request: StateRequest = parse_json(&body)?;
    let params = match (request.feature_service_locator, request.params) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorKind::InvalidArgument,
                "give the service in `featureServiceLocator` or in `params`, not both",
            ))
        }
        (locator, params) => locator.or(params).unwrap_or_default(),
    };
    let service = resolve_service(&repo.registry, &params.locator(None))?;
    caller.require(Permission::ReadMetadata(&service.workspace))?;
    Ok(HttpResponse::Ok().json(json!({})))
}

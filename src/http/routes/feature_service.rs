//! Tecton's Feature Service: GetFeatures, GetFeaturesBatch and Metadata, on the v1 paths (service
//! named in the body) and the v2 paths (service named in the path). The caller is checked before
//! the body is read: on v2 against the path's workspace; on v1, whose body names the workspace,
//! the caller must hold the permission on some workspace first and on the named one after.
//!
//! GetFeatures and GetFeaturesBatch are the hot path: the middleware serves their `POST`s
//! itself ([`feature_route`], [`serve_features`]) rather than through actix's router, which
//! matched each resource's pattern in turn and boxed two futures a request on the way to the
//! handler. Their actix resources stay for everything else (another method, a path that needs
//! decoding, the metrics address).

use std::future::{ready, Future, Ready};
use std::ops::Range;
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::http::{Method, StatusCode};
use actix_web::web::Bytes;
use actix_web::{dev::Payload, guard, web, FromRequest, HttpRequest, HttpResponse, Route};
use serde::Deserialize;
use serde_json::json;

use super::super::auth::{Allowed, ReadFeatures, ReadMetadata, WorkspacePermission};
use super::super::body::{parse_json, BodyRead, UnreadBody};
use super::super::error::{ApiError, ErrorKind};
use super::super::served::Repo;
use super::super::wire::common_request::common_params;
use super::super::wire::feature_service::{
    get_features_batch_response, get_features_response, metadata_response, BatchRow, Envelope,
    GetFeaturesParams, Timing,
};
use super::super::{method_not_allowed, AppState};
use crate::http::observe::RequestId;
use crate::registry::{FeatureService, Registry};
use crate::serving::{self, resolve_service, Locator, RequestRow};
use crate::time::now_micros;

const GET_FEATURES_V1: &str = "/api/v1/feature-service/get-features";
const GET_FEATURES_BATCH_V1: &str = "/api/v1/feature-service/get-features-batch";
const GET_FEATURES_V2: &str =
    "/api/v2/workspaces/{workspace}/feature-services/{service}/get-features";
const GET_FEATURES_BATCH_V2: &str =
    "/api/v2/workspaces/{workspace}/feature-services/{service}/get-features-batch";

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
    cfg.service(post_only(GET_FEATURES_V1, post().to(get_features::<false>)))
        .service(post_only(
            GET_FEATURES_BATCH_V1,
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
        .service(post_only(GET_FEATURES_V2, post().to(get_features::<false>)))
        .service(post_only(
            GET_FEATURES_BATCH_V2,
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

/// What GetFeatures takes of a request besides its body, its caller checked first. Taken in
/// one go: as separate arguments (caller, state, repository, path, request id, body), actix
/// built and polled a future for each, and the state and the repository were looked up again
/// for each (~650 instructions a request).
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
}

/// A GetFeatures call, its request (for the words of a refusal) and its body, for the routes
/// actix's router answers.
struct FeatureRequest {
    call: FeatureCall,
    request: HttpRequest,
    body: UnreadBody,
}

impl FromRequest for FeatureRequest {
    type Error = ApiError;
    type Future = Ready<Result<FeatureRequest, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = request
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered by http::app");
        let names = request.match_info();
        let taken = FeatureCall::take(
            request,
            payload,
            state,
            (
                names.get("workspace"),
                names.get("service").and_then(|_| names.load().ok()),
            ),
            RequestId::current(),
        );
        ready(taken.map(|(call, body)| FeatureRequest {
            call,
            request: request.clone(),
            body,
        }))
    }
}

impl FeatureCall {
    /// The caller checked on the path's `{workspace}` as the router matched it (on some
    /// workspace without one), then the rest taken; `path` is the v2 path's names decoded.
    fn take(
        request: &HttpRequest,
        payload: &mut Payload,
        state: &web::Data<AppState>,
        (workspace, path): (Option<&str>, Option<ServicePath>),
        request_id: Option<RequestId>,
    ) -> Result<(FeatureCall, UnreadBody), ApiError> {
        let repo = Repo::current(state);
        let caller = Allowed::check_on(request, state, &repo.registry, workspace)?;
        let body = UnreadBody::take(request, payload, state.limits);
        let call = FeatureCall {
            caller,
            repo,
            path,
            request_id,
            state: web::Data::clone(state),
        };
        Ok((call, body))
    }
}

/// A GetFeatures `POST` the middleware serves itself: its pattern (the metrics' and the log's
/// route), whether it is a batch, and a v2 path's names.
pub struct FeatureRoute {
    pub pattern: &'static str,
    batch: bool,
    path: Option<ServicePath>,
}

/// The GetFeatures route `request` is a `POST` to, if it is one and its path is plain (no
/// `%`: actix's router matches the decoded path, and a name of a v2 path is decoded; such a
/// path, as any other method, is left to the router, which answers it the same way).
pub fn feature_route(request: &ServiceRequest) -> Option<FeatureRoute> {
    if request.method() != Method::POST {
        return None;
    }
    let route = |pattern, batch, path| {
        Some(FeatureRoute {
            pattern,
            batch,
            path,
        })
    };
    let path = request.path();
    match path {
        GET_FEATURES_V1 => return route(GET_FEATURES_V1, false, None),
        GET_FEATURES_BATCH_V1 => return route(GET_FEATURES_BATCH_V1, true, None),
        _ => {}
    }
    // `/api/v2/workspaces/{workspace}/feature-services/{service}/get-features[-batch]`, each
    // name a segment of one byte or more, as actix's `{name}` matches.
    let names = path.strip_prefix("/api/v2/workspaces/")?;
    let (workspace, rest) = names.split_once('/')?;
    let (service, operation) = rest.strip_prefix("feature-services/")?.split_once('/')?;
    let plain = |name: &str| !name.is_empty() && !name.contains('%');
    if !plain(workspace) || !plain(service) {
        return None;
    }
    let path = Some(ServicePath {
        workspace: workspace.to_string(),
        service: service.to_string(),
    });
    match operation {
        "get-features" => route(GET_FEATURES_V2, false, path),
        "get-features-batch" => route(GET_FEATURES_BATCH_V2, true, path),
        _ => None,
    }
}

/// GetFeatures answering a request the middleware took ([`feature_route`]), as the route's
/// handler would (a refusal answered in the error's shape), in a future of its own: not boxed
/// (actix's router boxed the handler's future, 1,872 bytes, on every call: an allocation past
/// mimalloc's 1 KiB class and a copy). Its state is the call and the body being read;
/// serving's future is polled where it is made and ends there ([`answer_at_once`]): it waits
/// only for a read forwarded to another node, and where reads are forwarded (a partitioned
/// cluster) the answer is made in a boxed future of its own from the start.
pub struct FeatureServing {
    /// Taken for the answer.
    request: Option<HttpRequest>,
    batch: bool,
    started: Instant,
    step: Step,
}

enum Step {
    /// The caller was checked; the body is arriving.
    Reading(FeatureCall, BodyRead),
    /// Serving waits for a read forwarded to another node (a partitioned cluster).
    Forwarded(Pin<Box<dyn Future<Output = Result<HttpResponse, ApiError>>>>),
    Answered(Result<HttpResponse, ApiError>),
    Given,
}

/// The answer to `request`, on `route` (see [`FeatureServing`]), `started` when the
/// middleware took it (its clock reading shared, not taken again).
pub fn serve_features(
    route: FeatureRoute,
    request: ServiceRequest,
    state: &web::Data<AppState>,
    request_id: RequestId,
    started: Instant,
) -> FeatureServing {
    let (request, mut payload) = request.into_parts();
    // A plain path's names are as the router would match and decode them.
    let workspace = route.path.as_ref().map(|path| path.workspace.clone());
    let taken = FeatureCall::take(
        &request,
        &mut payload,
        state,
        (workspace.as_deref(), route.path),
        Some(request_id),
    );
    let step = match taken {
        Ok((call, body)) => {
            Step::Reading(call, body.read_since(state.limits.max_body_bytes, started))
        }
        Err(refused) => Step::Answered(Err(refused)),
    };
    FeatureServing {
        request: Some(request),
        batch: route.batch,
        started,
        step,
    }
}

impl Future for FeatureServing {
    type Output = ServiceResponse;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ServiceResponse> {
        let this = self.get_mut();
        if let Step::Reading(call, read) = &mut this.step {
            let request = this
                .request
                .as_ref()
                .expect("the request is kept until the answer");
            this.step = match ready!(Pin::new(read).poll(cx)) {
                Err(refused) => Step::Answered(Err(refused)),
                Ok(body) if call.state.router.reads_locally() => Step::Answered(if this.batch {
                    answer_at_once(call.answer::<true>(request, &body, this.started), cx)
                } else {
                    answer_at_once(call.answer::<false>(request, &body, this.started), cx)
                }),
                Ok(body) => this.forwarded(body),
            };
        }
        if let Step::Forwarded(answer) = &mut this.step {
            this.step = Step::Answered(ready!(answer.as_mut().poll(cx)));
        }
        let Step::Answered(answered) = std::mem::replace(&mut this.step, Step::Given) else {
            panic!("a GetFeatures answer polled after it was given");
        };
        let request = this
            .request
            .take()
            .expect("the request is kept until the answer");
        Poll::Ready(ServiceResponse::new(
            request,
            answered.unwrap_or_else(HttpResponse::from_error),
        ))
    }
}

impl FeatureServing {
    /// The answer of the call being read, from `body`, in a boxed future (which the next
    /// lines of `poll` poll first).
    fn forwarded(&mut self, body: Bytes) -> Step {
        let Step::Reading(call, _) = std::mem::replace(&mut self.step, Step::Given) else {
            panic!("only a call whose body was read is forwarded");
        };
        let (batch, started) = (self.batch, self.started);
        let request = self
            .request
            .clone()
            .expect("the request is kept until the answer");
        Step::Forwarded(Box::pin(async move {
            if batch {
                call.answer::<true>(&request, &body, started).await
            } else {
                call.answer::<false>(&request, &body, started).await
            }
        }))
    }
}

/// GetFeatures and GetFeaturesBatch on the routes actix's router answers.
async fn get_features<const BATCH: bool>(
    FeatureRequest {
        call,
        request,
        body,
    }: FeatureRequest,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let body = body
        .read_since(call.state.limits.max_body_bytes, started)
        .await?;
    call.answer::<BATCH>(&request, &body, started).await
}

/// The `params` of `request`'s Feature Service body, borrowing its strings from `body`: read
/// by hand where the body has the common shape, else by serde (every refusal is serde's, or
/// [`parse_json`]'s for a compressed body).
fn params_of<'b>(request: &HttpRequest, body: &'b [u8]) -> Result<GetFeaturesParams<'b>, ApiError> {
    if let Some(params) = common_params(body) {
        return Ok(params);
    }
    let envelope: Envelope<Option<GetFeaturesParams>> = parse_json(request, body)?;
    envelope.params.ok_or_else(|| {
        ApiError::new(
            ErrorKind::InvalidArgument,
            "`params` is missing (or null); expected an object",
        )
    })
}

/// The answer of `serving` (a [`FeatureCall::answer`] on a node that reads every partition
/// itself), which it gives in its first poll: it waits only for a read forwarded to another
/// node. Should it ever wait, it is refused as an internal error, not begun again: its work
/// would be done twice (and any side effect it had, such as the feature log's record).
fn answer_at_once(
    serving: impl Future<Output = Result<HttpResponse, ApiError>>,
    cx: &mut Context<'_>,
) -> Result<HttpResponse, ApiError> {
    match pin!(serving).poll(cx) {
        Poll::Ready(answered) => answered,
        Poll::Pending => {
            tracing::error!("GetFeatures waited on a node that forwards no read");
            Err(ApiError::new(
                ErrorKind::Internal,
                "the answer could not be made at once",
            ))
        }
    }
}

impl FeatureCall {
    /// GetFeatures (`BATCH` false: one request row) and GetFeaturesBatch (`requestData`:
    /// many) of `body`, on the v1 paths (service named in the body) and the v2 paths (named
    /// in the path).
    async fn answer<const BATCH: bool>(
        &self,
        request: &HttpRequest,
        body: &[u8],
        started: Instant,
    ) -> Result<HttpResponse, ApiError> {
        let FeatureCall {
            caller,
            state,
            repo,
            path,
            request_id,
        } = self;
        let params = params_of(request, body)?;
        let locator = params.locator(path.as_ref().map(ServicePath::names));
        let service = allowed_service(caller, &repo.registry, &locator)?;
        let mut options = params.read_options(now_micros(), started)?;
        options.max_store_response_bytes = state.limits.max_store_response_bytes;
        let timed = options.timed;
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
            serving::get_features(&repo.registry, &state.router, service, requests, options)
                .await?;
        // Times are read only for `sloInfo`, the one place they are shown.
        let timing = Timing {
            server: if timed {
                started.elapsed()
            } else {
                Duration::ZERO
            },
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
        let request_id = || request_id.as_ref().map(RequestId::as_str);
        state
            .feature_log
            .offer(service, requests, answer, &caller.0 .0, request_id);
        // Made whole rather than through `HttpResponse::Ok()`'s builder, which makes an empty body
        // first and swaps it; a ready header value: from a `&str`, actix parses and copies it.
        let mut response = HttpResponse::with_body(StatusCode::OK, body).map_into_boxed_body();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(response)
    }
}

/// The service `locator` names, if the caller holds `P` on its workspace. A workspace the
/// request names is checked before the lookup, so a caller without the role there gets the
/// same 403 whether or not the service (or the workspace) exists, as on the v2 paths, whose
/// workspace is checked before the body is read; a service named by id alone is checked on
/// its own workspace once found.
fn allowed_service<'r, P: WorkspacePermission>(
    caller: &Allowed<P>,
    registry: &'r Registry,
    locator: &Locator,
) -> Result<&'r FeatureService, ApiError> {
    if let Some(workspace) = locator.workspace {
        caller.require(P::on(workspace))?;
    }
    let service = resolve_service(registry, locator)?;
    if locator.workspace.is_none() {
        caller.require(P::on(&service.workspace))?;
    }
    Ok(service)
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
    request: HttpRequest,
    body: UnreadBody,
) -> Result<HttpResponse, ApiError> {
    let body = body.read(state.limits.max_body_bytes).await?;
    let params = params_of(&request, &body)?;
    let service = allowed_service(&caller, &repo.registry, &params.locator(None))?;
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
    let service = allowed_service(&caller, &repo.registry, &locator)?;
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
    request: HttpRequest,
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
    let asked: StateRequest = parse_json(&request, &body)?;
    let params = match (asked.feature_service_locator, asked.params) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorKind::InvalidArgument,
                "give the service in `featureServiceLocator` or in `params`, not both",
            ))
        }
        (locator, params) => locator.or(params).unwrap_or_default(),
    };
    allowed_service(&caller, &repo.registry, &params.locator(None))?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    /// A route taken: its pattern, whether it is a batch, a v2 path's names.
    type Taken = (&'static str, bool, Option<(String, String)>);

    /// The route the middleware takes `method uri` on.
    fn taken(method: Method, uri: &str) -> Option<Taken> {
        let request = TestRequest::default()
            .method(method)
            .uri(uri)
            .to_srv_request();
        feature_route(&request).map(|route| {
            let names = route.path.map(|path| (path.workspace, path.service));
            (route.pattern, route.batch, names)
        })
    }

    #[test]
    fn the_middleware_takes_the_plain_posts_of_get_features() {
        let names = || Some(("prod".to_string(), "risk".to_string()));
        let cases = [
            (GET_FEATURES_V1, Some((GET_FEATURES_V1, false, None))),
            (
                "/api/v1/feature-service/get-features?x=1",
                Some((GET_FEATURES_V1, false, None)),
            ),
            (
                GET_FEATURES_BATCH_V1,
                Some((GET_FEATURES_BATCH_V1, true, None)),
            ),
            (
                "/api/v2/workspaces/prod/feature-services/risk/get-features",
                Some((GET_FEATURES_V2, false, names())),
            ),
            (
                "/api/v2/workspaces/prod/feature-services/risk/get-features-batch",
                Some((GET_FEATURES_BATCH_V2, true, names())),
            ),
        ];
        for (uri, route) in cases {
            assert_eq!(taken(Method::POST, uri), route, "{uri}");
        }
    }

    #[test]
    fn serving_that_waits_without_forwarding_is_refused_not_begun_again() {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let answered = answer_at_once(ready(Ok(HttpResponse::Ok().finish())), &mut cx);
        assert_eq!(answered.unwrap().status(), StatusCode::OK);
        let mut polls = 0;
        let waits = std::future::poll_fn(|_| {
            polls += 1;
            Poll::<Result<HttpResponse, ApiError>>::Pending
        });
        let refused = answer_at_once(waits, &mut cx).unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Internal);
        assert_eq!(polls, 1);
    }

    #[test]
    fn the_router_answers_every_other_request_on_these_paths() {
        for method in [Method::GET, Method::PUT, Method::HEAD] {
            assert_eq!(taken(method, GET_FEATURES_V1), None);
        }
        for uri in [
            "/api/v1/feature-service/get-features/",
            "/api/v1/feature-service/metadata",
            "/api/v1/feature-service/get%2Dfeatures",
            "/api/v2/workspaces/pr%6Fd/feature-services/risk/get-features",
            "/api/v2/workspaces/prod/feature-services/r%69sk/get-features",
            "/api/v2/workspaces//feature-services/risk/get-features",
            "/api/v2/workspaces/prod/feature-services//get-features",
            "/api/v2/workspaces/prod/feature-services/risk/get-features/",
            "/api/v2/workspaces/prod/feature-services/risk/metadata",
            "/api/v2/workspaces/prod/x/feature-services/risk/get-features",
        ] {
            assert_eq!(taken(Method::POST, uri), None, "{uri}");
        }
    }
}

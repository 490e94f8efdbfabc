//! The HTTP layer: the only part of Quiver that knows actix-web, routes and status codes.
//! Handlers are thin: check the caller (an extractor, before anything else), read the body,
//! call a domain module, encode the answer.

mod auth;
mod body;
pub mod error;
mod extract;
mod middleware;
mod objects_only;
mod observe;
pub mod openapi;
pub mod readiness;
mod routes;
pub mod served;
pub mod tls;
pub mod wire;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App, HttpRequest, HttpResponse};

use crate::echo::echo;
use crate::feature_log::FeatureLog;
use crate::iam::Directory;
use crate::metrics::RequestHistory;
use crate::persist::Snapshotter;
use crate::reported::Conditions;
use crate::secrets::Vault;
use crate::store::Router;
use error::{ApiError, ErrorKind};
use served::ServedRepository;

/// What every handler can reach: handles on the actors and on the served repository.
#[derive(Clone)]
pub struct AppState {
    /// The registry and what derives from it; a request reads one snapshot (`served::Repo`).
    pub served: ServedRepository,
    pub router: Router,
    pub directory: Directory,
    pub vault: Vault,
    /// Set once start-up is done.
    pub start_up: readiness::StartUp,
    /// `None` when state is in memory only.
    pub snapshotter: Option<Snapshotter>,
    pub limits: Limits,
    /// Where GetFeatures answers go when their service logs.
    pub feature_log: FeatureLog,
    /// The last hour of request rate and latency, for the console's charts.
    pub history: RequestHistory,
    /// Cluster mode: the stalls of this node's replicas (empty otherwise).
    pub replica_stalls: Conditions,
}

/// Request limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The body limit of Tecton's Feature Service and Stream Ingest APIs.
    pub max_body_bytes: usize,
    /// How long a whole request body may take to arrive (then 408).
    pub body_read_timeout: std::time::Duration,
    /// The most bytes the bodies being read on one worker may hold at once (then 503): its
    /// share of `server.max_body_bytes_in_flight`.
    pub body_bytes_in_flight_per_worker: usize,
    pub max_batch_size: usize,
    /// The most bytes the store may return for one GetFeatures request (Tecton's online-store
    /// size limit: past it, an error or, with `allowPartialResults`, a partial answer).
    pub max_store_response_bytes: usize,
    /// How far in the future an event may be.
    pub max_future_skew: crate::time::Micros,
}

/// What an HTTP server serves.
#[derive(Debug, Clone, Copy)]
pub enum Surface {
    /// Every API (the `listen` address).
    Api,
    /// Only `GET /metrics`, without authentication (`server.metrics_address`).
    Metrics,
}

/// The whole HTTP application: the surface's routes behind the one middleware
/// (`middleware::Middleware`) that logs and counts every request (`observe`), answers 503 until
/// start-up is done (`readiness`) and ends the connection of a chunked body left unread
/// (`body::ChunkedPayload`).
pub fn app(
    state: AppState,
    surface: Surface,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let middleware = middleware::Middleware::new(&state, matches!(surface, Surface::Api));
    let routes: Box<dyn FnOnce(&mut web::ServiceConfig)> = match surface {
        Surface::Api => Box::new(configure(state)),
        Surface::Metrics => Box::new(configure_metrics(state)),
    };
    App::new().wrap(middleware).configure(routes)
}

/// Registers `GET /metrics`, open to whoever reaches the address.
fn configure_metrics(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state))
            .configure(routes::metrics::configure_open)
            .default_service(web::to(unknown_route::<ApiError>));
    }
}

/// Registers every route, with the state they share.
fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state)).configure(api_routes);
    }
}

/// Every route of the API address (apart from the state, so that the OpenAPI test can walk
/// them); `openapi::operations` lists the same. actix tries resources in the order they are
/// registered (to route, and again for the metrics' route pattern), each try ~240 instructions:
/// the Feature Service's, the hot path, come first. None of their patterns matches a path of
/// the routes registered before them until now (`/health`, `/openapi.json`, `/metrics`...), so
/// the order changes no route.
fn api_routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(routes::feature_service::configure)
        .configure(routes::health::configure)
        .configure(openapi::configure)
        .configure(routes::metrics::configure)
        .configure(routes::ingest::configure)
        .configure(routes::admin::configure)
        .configure(routes::scim::configure)
        .configure(routes::tecton_secrets::configure)
        .configure(routes::proxy::configure)
        .configure(routes::truefoundry::configure)
        .configure(routes::tinybird::configure)
        .configure(routes::console::configure)
        .default_service(web::to(unknown_route::<ApiError>));
}

/// The answer for a path no route takes (or a method none takes there), in the shape `E` of
/// the API family whose prefix it is under.
async fn unknown_route<E: From<ApiError>>(request: HttpRequest) -> Result<HttpResponse, E> {
    Err(ApiError::new(
        ErrorKind::NotFound,
        format!("no route for {} {}", request.method(), echo(request.path())),
    )
    .into())
}

/// The answer for a known path called with the wrong method.
async fn method_not_allowed(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!(
            "{} is not allowed on {}",
            request.method(),
            echo(request.path())
        ),
    ))
}

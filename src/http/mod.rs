//! The HTTP layer: the only part of Quiver that knows actix-web, routes and status codes.
//! Handlers are thin: read the body, check the caller, call a domain module, encode the answer.

mod auth;
mod body;
pub mod error;
mod routes;
mod scim_error;
pub mod wire;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::iam::Directory;
use crate::persist::Snapshotter;
use crate::registry::Registry;
use crate::secrets::Vault;
use crate::store::Router;
use error::{ApiError, ErrorKind};
use wire::feature_service::WireCatalog;

/// What every handler can reach: immutable definitions and handles on the actors.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub router: Router,
    pub directory: Directory,
    pub vault: Vault,
    /// Pre-encoded per-service JSON, built from `registry` at start-up.
    pub catalog: Arc<WireCatalog>,
    /// `None` when state is in memory only.
    pub snapshotter: Option<Snapshotter>,
    pub limits: Limits,
}

/// Request limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_batch_size: usize,
    /// How far in the future an aggregated event may be.
    pub max_future_skew: crate::time::Micros,
}

/// Registers every route; `main` and the tests build the app the same way.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state))
            .configure(routes::health::configure)
            .configure(routes::feature_service::configure)
            .configure(routes::ingest::configure)
            .configure(routes::admin::configure)
            .configure(routes::scim::configure)
            .configure(routes::tecton_secrets::configure)
            .configure(routes::truefoundry::configure)
            .configure(routes::tinybird::configure)
            .default_service(web::to(unknown_route));
    }
}

async fn unknown_route(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorKind::NotFound,
        format!("no route for {} {}", request.method(), request.path()),
    ))
}

/// The answer for a known path called with the wrong method.
async fn method_not_allowed(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!("{} is not allowed on {}", request.method(), request.path()),
    ))
}

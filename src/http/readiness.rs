//! Start-up readiness. The server listens before it has recovered its state, so that probes
//! can watch the start: until start-up is done (recovery or the demo seed, then the push
//! sources' ingest tokens), every request but the operations routes (`/healthz`, `/readyz`,
//! `/health`, `/metrics`) is answered 503 (`http::middleware`, by [`refuses`]), and `/readyz` says why.

use std::sync::{Arc, OnceLock};

use actix_web::dev::{ServiceRequest, ServiceResponse};

use super::error::{ApiError, ErrorKind};
use super::AppState;

/// Start-up is done (the served repository has its ingest tokens); set once, by `quiver serve`.
#[derive(Debug)]
pub struct Started;

/// Empty until start-up is done.
pub type StartUp = Arc<OnceLock<Started>>;

/// Why the server is not ready yet.
pub const STARTING: &str = "starting: recovering state (snapshot and journals) or seeding the demo";

/// Routes that answer during start-up: they read nothing start-up builds.
const OPEN_DURING_START_UP: &[&str] = &["/healthz", "/readyz", "/health", "/metrics"];

impl AppState {
    /// What start-up built, or 503 while it runs (the gate keeps requests from getting here
    /// then; this keeps a route from reading a half-built state if it ever did).
    pub fn started(&self) -> Result<&Started, ApiError> {
        self.start_up
            .get()
            .ok_or_else(|| ApiError::new(ErrorKind::Unavailable, STARTING))
    }
}

/// Whether a request for `path` is answered 503: start-up is not done and it is not an
/// operations route.
pub fn refuses(start_up: &StartUp, path: &str) -> bool {
    start_up.get().is_none() && !OPEN_DURING_START_UP.contains(&path)
}

/// The 503 answer to a request [`refuses`] turns away.
pub fn refusal(request: ServiceRequest) -> ServiceResponse {
    request.error_response(ApiError::new(ErrorKind::Unavailable, STARTING))
}

//! The `Caller` extractor: a handler that takes one cannot run for an unauthenticated request.

use std::future::{ready, Ready};

use actix_web::http::header::AUTHORIZATION;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use super::error::ApiError;
use super::AppState;
use std::sync::Arc;

use crate::iam::{AuthError, Permission, Principal};

/// The authenticated principal of a request.
#[derive(Debug)]
pub struct Caller(pub Arc<Principal>);

impl Caller {
    /// Checks a permission, as a Tecton-style API error (403).
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        self.0.require(permission).map_err(ApiError::from)
    }
}

/// Authenticates the request's `Authorization` header against the keyring.
pub fn authenticate(request: &HttpRequest) -> Result<Arc<Principal>, AuthError> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered by http::configure");
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .map(|value| value.to_str().map_err(|_| AuthError::Malformed));
    let header = header.transpose()?;
    state.directory.authenticate(header)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(request).map(Caller).map_err(ApiError::from))
    }
}

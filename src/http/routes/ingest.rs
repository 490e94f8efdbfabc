//! Tecton's Stream Ingest API, `POST /ingest` (also `/api/v1/ingest`): validates every record,
//! then writes all of them or none. Errors use the ingest API's own shapes.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value as Json;

use super::super::auth::authenticate;
use super::super::body::read_limited;
use super::super::wire::ingest::{
    ingest_metrics, parse_ingest_request, record_errors, request_error,
};
use super::super::{method_not_allowed, AppState};
use crate::iam::Permission;
use crate::ingest::{plan_ingest, IngestError};
use crate::time::now_micros;

pub fn configure(cfg: &mut web::ServiceConfig) {
    for path in ["/ingest", "/api/v1/ingest"] {
        cfg.service(
            web::resource(path)
                .route(web::post().to(ingest))
                .default_service(web::to(method_not_allowed)),
        );
    }
}

fn reply(status: StatusCode, body: Json) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

async fn ingest(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let principal = match authenticate(&request) {
        Ok(principal) => principal,
        Err(error) => {
            return reply(
                StatusCode::UNAUTHORIZED,
                request_error(&error.to_string(), "AuthenticationError"),
            )
        }
    };
    let body = match read_limited(payload, state.limits.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => {
            return reply(
                error.kind.status(),
                request_error(&error.message, "RequestValidationError"),
            )
        }
    };
    let json: Json = match serde_json::from_slice(&body) {
        Ok(json) => json,
        Err(error) => {
            let message = format!("The request body is not valid JSON: {error}");
            return reply(
                StatusCode::BAD_REQUEST,
                request_error(&message, "RequestValidationError"),
            );
        }
    };
    let parsed = match parse_ingest_request(&json) {
        Ok(parsed) => parsed,
        Err(message) => {
            return reply(
                StatusCode::BAD_REQUEST,
                request_error(&message, "RequestValidationError"),
            )
        }
    };
    // Writing needs the editor role; a dry run only reads definitions.
    let permission = if parsed.dry_run {
        Permission::ReadMetadata(&parsed.workspace)
    } else {
        Permission::WriteFeatures(&parsed.workspace)
    };
    if let Err(error) = principal.require(permission) {
        return reply(
            StatusCode::FORBIDDEN,
            request_error(&error.to_string(), "PermissionDeniedError"),
        );
    }
    let plan = match plan_ingest(
        &state.registry,
        &parsed.workspace,
        &parsed.records,
        now_micros(),
        state.limits.max_future_skew,
    ) {
        Ok(plan) => plan,
        Err(IngestError::Records(errors)) => {
            return reply(
                StatusCode::BAD_REQUEST,
                record_errors(&parsed.workspace, &errors),
            )
        }
        Err(error @ (IngestError::NotLive(_) | IngestError::NoSubscribers(_))) => {
            return reply(
                StatusCode::BAD_REQUEST,
                request_error(&error.to_string(), "RequestValidationError"),
            )
        }
        Err(error) => {
            return reply(
                StatusCode::NOT_FOUND,
                request_error(&error.to_string(), "NotFoundError"),
            )
        }
    };
    let metrics = ingest_metrics(&state.registry, &parsed.workspace, &plan);
    if !parsed.dry_run {
        if let Err(error) = state.router.write(plan.rows).await {
            tracing::error!(%error, "ingest write failed");
            if error.is_unavailable() {
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    request_error(&error.to_string(), "UnavailableError"),
                );
            }
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                request_error("the store could not write the records", "InternalError"),
            );
        }
    }
    reply(StatusCode::OK, metrics)
}

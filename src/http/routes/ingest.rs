//! Tecton's Stream Ingest API, `POST /ingest` (also `/api/v1/ingest`): validates every record,
//! then writes all of them or none. Errors use the ingest API's own shapes, the authentication
//! ones included (the `Caller` extractor answers them before the body is read).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::Value as Json;

use super::super::auth::Caller;
use super::super::body::UnreadBody;
use super::super::error::{ApiError, ErrorKind};
use super::super::wire::ingest::{
    ingest_metrics, parse_ingest_request, record_errors, request_error,
};
use super::super::{method_not_allowed, AppState};
use crate::iam::{AuthError, Permission};
use crate::ingest::{plan_ingest, IngestError};
use crate::time::now_micros;

/// Where a request gives a push source's ingest token.
const INGEST_TOKEN_HEADER: &str = "X-Quiver-Ingest-Token";

pub fn configure(cfg: &mut web::ServiceConfig) {
    for path in ["/ingest", "/api/v1/ingest"] {
        cfg.service(
            web::resource(path)
                .route(web::post().to(ingest))
                .default_service(web::to(method_not_allowed)),
        );
    }
}

/// An ingest answer other than 200: the ingest API's own body shapes.
#[derive(Debug)]
struct IngestRefusal {
    status: StatusCode,
    body: Json,
}

impl IngestRefusal {
    /// A request-level error (`{"requestError": {"errorMessage", "errorType"}}`).
    fn request(status: StatusCode, message: &str, error_type: &str) -> IngestRefusal {
        IngestRefusal {
            status,
            body: request_error(message, error_type),
        }
    }
}

impl std::fmt::Display for IngestRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ingest refused with {}", self.status)
    }
}

impl ResponseError for IngestRefusal {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(&self.body)
    }
}

impl From<AuthError> for IngestRefusal {
    fn from(error: AuthError) -> IngestRefusal {
        let error = ApiError::from(error);
        let error_type = match error.kind {
            ErrorKind::Unauthenticated => "AuthenticationError",
            _ => "PermissionDeniedError",
        };
        IngestRefusal::request(error.kind.status(), &error.message, error_type)
    }
}

impl From<ApiError> for IngestRefusal {
    fn from(error: ApiError) -> IngestRefusal {
        IngestRefusal::request(
            error.kind.status(),
            &error.message,
            "RequestValidationError",
        )
    }
}

/// The workspace is named in the body: before reading it the caller must be a viewer (what a
/// dry run needs) somewhere; after, the named workspace's role is checked.
async fn ingest(
    caller: Caller<IngestRefusal>,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: UnreadBody,
) -> Result<HttpResponse, IngestRefusal> {
    caller.require_on_some_workspace(&state.registry, |workspace| {
        Permission::ReadMetadata(workspace)
    })?;
    let body = body.read(state.limits.max_body_bytes).await?;
    let json: Json = serde_json::from_slice(&body).map_err(|error| {
        IngestRefusal::request(
            StatusCode::BAD_REQUEST,
            &format!("The request body is not valid JSON: {error}"),
            "RequestValidationError",
        )
    })?;
    let parsed = parse_ingest_request(&json).map_err(|message| {
        IngestRefusal::request(StatusCode::BAD_REQUEST, &message, "RequestValidationError")
    })?;
    // Writing needs the editor role; a dry run only reads definitions.
    let permission = if parsed.dry_run {
        Permission::ReadMetadata(&parsed.workspace)
    } else {
        Permission::WriteFeatures(&parsed.workspace)
    };
    caller.require(permission)?;
    // A source with an `ingest_token` setting also needs its token (beside the caller's key).
    let given = request
        .headers()
        .get(INGEST_TOKEN_HEADER)
        .and_then(|value| value.to_str().ok());
    for (source, _) in &parsed.records {
        state
            .ingest_tokens
            .check(&parsed.workspace, source, given)
            .map_err(|error| {
                IngestRefusal::request(
                    StatusCode::UNAUTHORIZED,
                    &error.to_string(),
                    "AuthenticationError",
                )
            })?;
    }
    let plan = plan_ingest(
        &state.registry,
        &parsed.workspace,
        &parsed.records,
        now_micros(),
        state.limits.max_future_skew,
    )
    .map_err(|error| match error {
        IngestError::Records(errors) => IngestRefusal {
            status: StatusCode::BAD_REQUEST,
            body: record_errors(&parsed.workspace, &errors),
        },
        error @ (IngestError::NotLive(_) | IngestError::NoSubscribers(_)) => {
            IngestRefusal::request(
                StatusCode::BAD_REQUEST,
                &error.to_string(),
                "RequestValidationError",
            )
        }
        error => IngestRefusal::request(StatusCode::NOT_FOUND, &error.to_string(), "NotFoundError"),
    })?;
    let metrics = ingest_metrics(&state.registry, &parsed.workspace, &plan);
    if !parsed.dry_run {
        state.router.write(plan.rows).await.map_err(|error| {
            tracing::error!(%error, "ingest write failed");
            if error.is_unavailable() {
                return IngestRefusal::request(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &error.to_string(),
                    "UnavailableError",
                );
            }
            IngestRefusal::request(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the store could not write the records",
                "InternalError",
            )
        })?;
    }
    Ok(HttpResponse::Ok().json(metrics))
}

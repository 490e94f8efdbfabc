//! Tecton's Stream Ingest API, `POST /ingest` (also `/api/v1/ingest`): validates every record,
//! then writes all of them or none. Errors use the ingest API's own shapes, the authentication
//! ones included (the `Allowed` extractor answers them before the body is read).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use serde_json::Value as Json;

use super::super::auth::{Allowed, ReadMetadata};
use super::super::body::UnreadBody;
use super::super::error::{ApiError, ErrorKind};
use super::super::wire::ingest::{
    ingest_metrics, parse_ingest_request, record_errors, request_error,
};
use super::super::{method_not_allowed, AppState};
use crate::iam::{AuthError, Permission};
use crate::ingest::{plan_ingest, IngestError};
use crate::store::StoreError;
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

/// An ingest answer other than 200, in the ingest API's own body shapes: the error table's
/// status, and `{"requestError": {"errorMessage", "errorType"}}` or, for records that failed
/// validation, one entry per record.
#[derive(Debug)]
struct IngestRefusal {
    status: StatusCode,
    body: Json,
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

impl From<ApiError> for IngestRefusal {
    fn from(error: ApiError) -> IngestRefusal {
        let error_type = match error.kind {
            ErrorKind::Unauthenticated => "AuthenticationError",
            ErrorKind::PermissionDenied => "PermissionDeniedError",
            ErrorKind::NotFound => "NotFoundError",
            ErrorKind::Unavailable => "UnavailableError",
            ErrorKind::Internal => "InternalError",
            _ => "RequestValidationError",
        };
        IngestRefusal {
            status: error.kind.status(),
            body: request_error(&error.message, error_type),
        }
    }
}

impl From<AuthError> for IngestRefusal {
    fn from(error: AuthError) -> IngestRefusal {
        ApiError::from(error).into()
    }
}

impl From<StoreError> for IngestRefusal {
    fn from(error: StoreError) -> IngestRefusal {
        ApiError::from(error).into()
    }
}

/// The plan's errors: records that failed validation get one entry each, with the workspace.
fn refuse_plan(workspace: &str, error: IngestError) -> IngestRefusal {
    let records = match &error {
        IngestError::Records(errors) => Some(record_errors(workspace, errors)),
        _ => None,
    };
    let refusal = IngestRefusal::from(ApiError::from(error));
    match records {
        Some(body) => IngestRefusal { body, ..refusal },
        None => refusal,
    }
}

/// The workspace is named in the body: before reading it the caller must be a viewer (what a
/// dry run needs) somewhere; after, the named workspace's role is checked.
async fn ingest(
    caller: Allowed<ReadMetadata, IngestRefusal>,
    state: web::Data<AppState>,
    body: UnreadBody,
) -> Result<HttpResponse, IngestRefusal> {
    let body = body.read(state.limits.max_body_bytes).await?;
    let invalid = |message: String| ApiError::new(ErrorKind::InvalidArgument, message);
    let json: Json = serde_json::from_slice(&body)
        .map_err(|error| invalid(format!("The request body is not valid JSON: {error}")))?;
    let parsed = parse_ingest_request(&json).map_err(invalid)?;
    // Writing needs the editor role; a dry run only reads definitions.
    let permission = if parsed.dry_run {
        Permission::ReadMetadata(&parsed.workspace)
    } else {
        Permission::WriteFeatures(&parsed.workspace)
    };
    caller.require(permission)?;
    let plan = plan_ingest(
        &state.registry,
        &parsed.workspace,
        &parsed.records,
        now_micros(),
        state.limits.max_future_skew,
    )
    .map_err(|error| refuse_plan(&parsed.workspace, error))?;
    let metrics = ingest_metrics(&state.registry, &parsed.workspace, &plan);
    if !parsed.dry_run {
        state.router.write(plan.rows).await?;
    }
    Ok(HttpResponse::Ok().json(metrics))
}

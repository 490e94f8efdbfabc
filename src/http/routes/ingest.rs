//! Tecton's Stream Ingest API, `POST /ingest` (also `/api/v1/ingest`): validates every record,
//! then writes all of them or none. Errors use the ingest API's own shapes, the authentication
//! ones included (the `Allowed` extractor answers them before the body is read).

use actix_web::{web, HttpResponse};
use serde_json::Value as Json;

use super::super::auth::{Allowed, ReadMetadata};
use super::super::body::UnreadBody;
use super::super::error::{ApiError, ErrorKind};
use super::super::wire::ingest::{
    ingest_metrics, parse_ingest_request, refuse_plan, IngestRefusal,
};
use super::super::{method_not_allowed, AppState};
use crate::iam::Permission;
use crate::ingest::plan_ingest;
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

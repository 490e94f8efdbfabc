//! Tecton's Stream Ingest API, `POST /ingest` (also `/api/v1/ingest`): validates every record,
//! then writes all of them or none. Errors use the ingest API's own shapes, the authentication
//! ones included (the `Allowed` extractor answers them before the body is read).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value as Json;

use super::super::auth::{Allowed, ReadMetadata};
use super::super::body::{encoded_body, UnreadBody};
use super::super::error::{ApiError, ErrorKind};
use super::super::served::Repo;
use super::super::wire::ingest::{
    ingest_metrics, parse_ingest_request, read_typed_request, refuse_plan, twin_key, IngestRefusal,
    IngestRequest,
};
use super::super::{method_not_allowed, AppState};
use crate::iam::Permission;
use crate::ingest::{count_refused, count_written, plan_ingest, SourceRecords};
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

/// The workspace is named in the body: before reading it the caller must be a viewer (what a
/// dry run needs) somewhere; after, the named workspace's role is checked. A well-formed body
/// is read straight into typed records; any other is read as a JSON tree, which words the
/// refusal.
async fn ingest(
    caller: Allowed<ReadMetadata, IngestRefusal>,
    state: web::Data<AppState>,
    repo: Repo,
    request: HttpRequest,
    body: UnreadBody,
) -> Result<HttpResponse, IngestRefusal> {
    let body = body.read(state.limits.max_body_bytes).await?;
    if let Some(parsed) = read_typed_request(&body, &repo.registry) {
        return write(caller, &state, &repo, &request, parsed).await;
    }
    let invalid = |message: String| ApiError::new(ErrorKind::InvalidArgument, message);
    let json: Json = serde_json::from_slice(&body).map_err(|error| {
        encoded_body(&request)
            .unwrap_or_else(|| invalid(format!("The request body is not valid JSON: {error}")))
    })?;
    if let Some(path) = twin_key(&body) {
        return Err(invalid(format!(
            "The request body gives `{path}` twice; give each field once"
        ))
        .into());
    }
    let parsed = parse_ingest_request(&json).map_err(invalid)?;
    write(caller, &state, &repo, &request, parsed).await
}

async fn write<R: SourceRecords>(
    caller: Allowed<ReadMetadata, IngestRefusal>,
    state: &AppState,
    repo: &Repo,
    request: &HttpRequest,
    parsed: IngestRequest<R>,
) -> Result<HttpResponse, IngestRefusal> {
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
        repo.ingest_tokens
            .check(&parsed.workspace, source, given)
            .map_err(ApiError::from)?;
    }
    let mut plan = plan_ingest(
        &repo.registry,
        &parsed.workspace,
        &parsed.records,
        now_micros(),
        state.limits.max_future_skew,
    )
    .inspect_err(|error| {
        if !parsed.dry_run {
            count_refused(error)
        }
    })
    .map_err(|error| refuse_plan(&parsed.workspace, error))?;
    // The rows go to the store; the answer borrows the rest of the plan.
    let rows = std::mem::take(&mut plan.rows);
    let metrics = ingest_metrics(&repo.registry, &parsed.workspace, &plan);
    if !parsed.dry_run {
        let written = rows.len();
        state.router.write(rows).await?;
        count_written(written, &plan.rejected);
    }
    Ok(HttpResponse::Ok().json(metrics))
}

//! Operator endpoints. `POST /admin/workspaces/{ws}/feature-views/{view}/rows` takes JSON Lines
//! rows of one view (what `quiver load` sends) and writes all of them or none.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::super::auth::Caller;
use super::super::body::read_limited;
use super::super::error::{ApiError, ErrorKind};
use super::super::{method_not_allowed, AppState};
use crate::ingest::file::{read_rows, FileFormat};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/workspaces/{workspace}/feature-views/{view}/rows")
            .route(web::post().to(load_rows))
            .default_service(web::to(method_not_allowed)),
    );
}

#[derive(Deserialize)]
struct ViewPath {
    workspace: String,
    view: String,
}

async fn load_rows(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<ViewPath>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if !caller.0.is_admin {
        return Err(ApiError::new(
            ErrorKind::PermissionDenied,
            "loading rows needs an admin key",
        ));
    }
    let view = state
        .registry
        .view_by_name(&path.workspace, &path.view)
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                format!(
                    "feature view `{}` not found in workspace `{}`",
                    path.view, path.workspace
                ),
            )
        })?;
    let body = read_limited(payload, state.limits.max_body_bytes).await?;
    let rows = read_rows(view, FileFormat::JsonLines, body.as_ref(), |_| {})
        .map_err(|bad| ApiError::new(ErrorKind::InvalidArgument, bad.to_string()))?;
    let writes = rows.iter().map(|row| row.to_write(view)).collect();
    let outcome = state.router.write(writes).await.map_err(|error| {
        tracing::error!(%error, "bulk load write failed");
        ApiError::new(ErrorKind::Internal, "the store could not write the rows")
    })?;
    Ok(HttpResponse::Ok().json(json!({
        "rowsReceived": rows.len(),
        "rowsStored": outcome.stored,
        "rowsOlderThanStored": outcome.older_than_stored,
    })))
}

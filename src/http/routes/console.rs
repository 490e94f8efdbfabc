//! The operator console at `/console`: its static files (plain HTML, CSS and ES modules from
//! `console/`, embedded in the binary with `include_str!`, so it needs no build step and works
//! offline), and the read-only JSON its pages need that no other API gives.
//!
//! The files are public (they hold no data); every page fetches its data with the key the
//! login form keeps in the browser's session storage, from the APIs that already exist (GetFeatures,
//! SCIM, the secrets APIs, `/admin/snapshots`) and from these, which need the viewer role on some
//! workspace (like `GET /metrics`) and answer only for the workspaces the caller may view:
//! `GET /console/api/repository` (the repository description, as `GET /admin/repository`),
//! `GET /console/api/store` (per view rows, bytes, freshness and ingest rate; per shard rows
//! and arena bytes), `GET /console/api/requests` (the last hour's request rate and p50/p99).

use std::time::Duration;

use actix_web::http::header::{self, CacheDirective};
use actix_web::{web, HttpResponse};

use super::super::auth::{Allowed, ReadMetadata};
use super::super::error::{ApiError, ErrorKind};
use super::super::served::Repo;
use super::super::wire::console as wire;
use super::super::{method_not_allowed, AppState};
use crate::echo::echo;
use crate::iam::Permission;
use crate::metrics::SAMPLE_EVERY;
use crate::registry::repository::Repository;
use crate::time::now_micros;

/// Ingest rates are over the last minute of samples.
const INGEST_RATE_PERIOD: Duration = Duration::from_secs(60);

/// Only what the console's own files need: no inline script or style, nothing from elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The console's files: path under `/console/`, content type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../../console/index.html"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../../console/console.css"),
    ),
    ("app.js", JS, include_str!("../../../console/app.js")),
    ("api.js", JS, include_str!("../../../console/api.js")),
    ("dom.js", JS, include_str!("../../../console/dom.js")),
    ("chart.js", JS, include_str!("../../../console/chart.js")),
    (
        "repository.js",
        JS,
        include_str!("../../../console/repository.js"),
    ),
    ("store.js", JS, include_str!("../../../console/store.js")),
    ("lookup.js", JS, include_str!("../../../console/lookup.js")),
    (
        "snapshots.js",
        JS,
        include_str!("../../../console/snapshots.js"),
    ),
    ("access.js", JS, include_str!("../../../console/access.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/console")
            .route(web::get().to(to_index))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/console/api/repository")
            .route(web::get().to(repository))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/console/api/store")
            .route(web::get().to(store))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/console/api/requests")
            .route(web::get().to(requests))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/console/{file:[^/]*}")
            .route(web::get().to(asset))
            .default_service(web::to(method_not_allowed)),
    );
}

/// `/console` to `/console/`, so that the page's relative module paths resolve.
async fn to_index() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

async fn asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let name = match file.as_str() {
        "" => "index.html",
        name => name,
    };
    let (_, content_type, content) = ASSETS
        .iter()
        .find(|(path, _, _)| *path == name)
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                format!("the console has no file `{}`", echo(name)),
            )
        })?;
    Ok(HttpResponse::Ok()
        .content_type(*content_type)
        .insert_header(header::CacheControl(vec![CacheDirective::NoCache]))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(*content))
}

/// Whether the caller may view `workspace`'s metadata.
fn may_view(viewer: &Allowed<ReadMetadata>, workspace: &str) -> bool {
    viewer.require(Permission::ReadMetadata(workspace)).is_ok()
}

/// The repository description, of the workspaces the caller may view.
async fn repository(viewer: Allowed<ReadMetadata>, repo: Repo) -> HttpResponse {
    let mut repository = Repository::describe(&repo.registry);
    repository
        .workspaces
        .retain(|workspace, _| may_view(&viewer, workspace));
    HttpResponse::Ok().json(repository.to_json())
}

async fn store(
    viewer: Allowed<ReadMetadata>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let router = &state.router;
    let shards = router.usage().await?;
    let usage = router.view_usage().await?;
    let history = state.history.samples().await?;
    let rates = history.rows_per_second(usage.len(), INGEST_RATE_PERIOD);
    let newest = router.newest_events();
    let views = router.named_views();
    let lines: Vec<wire::ViewLine> = views
        .iter()
        .filter(|(_, view)| may_view(&viewer, &view.workspace))
        .map(|(id, view)| wire::ViewLine {
            view,
            usage: usage.get(*id as usize).copied().unwrap_or_default(),
            newest_event: newest.iter().find(|(v, _)| v == view).map(|(_, t)| *t),
            rows_per_second: rates.get(*id as usize).copied().unwrap_or_default(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(wire::store(now_micros(), &lines, &shards)))
}

async fn requests(
    _viewer: Allowed<ReadMetadata>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let history = state.history.samples().await?;
    Ok(HttpResponse::Ok().json(wire::requests(&history, SAMPLE_EVERY.as_secs())))
}

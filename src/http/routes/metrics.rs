//! `GET /metrics`: every metric in the Prometheus text format. On the API's address it needs the
//! viewer role (on some workspace), and shows the views of the caller's workspaces only; on `server.metrics_address`, when one is configured, it is
//! open to whoever reaches that address (`http::Surface::Metrics`), as scrapers expect.

use actix_web::{web, HttpResponse};

use super::super::auth::{Allowed, ReadMetadata};
use super::super::error::ApiError;
use super::super::AppState;
use crate::iam::Role;
use crate::metrics::{render, Scrape, ShardGauges, ViewFreshness, CONTENT_TYPE};
use crate::time::now_micros;

/// On the API's address.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(for_viewer));
}

/// On the metrics address.
pub fn configure_open(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(open));
}

/// The per-view series only of the workspaces the caller views: a key with a role on staging
/// alone does not learn prod's view names. Store-wide gauges name no view.
async fn for_viewer(
    viewer: Allowed<ReadMetadata>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let principal = &viewer.0 .0;
    scrape(&state, |workspace| {
        principal.has_role(workspace, Role::Viewer)
    })
    .await
}

async fn open(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    scrape(&state, |_| true).await
}

/// Asks each shard for its usage and reads the watermarks of the views of the workspaces
/// `shown`, then renders everything.
async fn scrape(state: &AppState, shown: impl Fn(&str) -> bool) -> Result<HttpResponse, ApiError> {
    let shards = state
        .router
        .usage()
        .await?
        .into_iter()
        .map(|usage| ShardGauges {
            rows: usage.rows,
            arena_mapped_bytes: usage.arena_mapped_bytes,
            arena_live_bytes: usage.arena_used_bytes - usage.arena_dead_bytes,
            arena_dead_bytes: usage.arena_dead_bytes,
        })
        .collect();
    let views = state
        .router
        .newest_events()
        .into_iter()
        .filter(|(view, _)| shown(&view.workspace))
        .map(|(view, newest_event)| ViewFreshness {
            workspace: view.workspace.clone(),
            feature_view: view.view.clone(),
            newest_event,
        })
        .collect();
    let log = state.feature_log.counts();
    let text = render(&Scrape {
        now: now_micros(),
        shards,
        views,
        feature_log: (log.logged, log.dropped, log.failed),
    });
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(text))
}

//! Health for load balancers, orchestrators and monitors; no authentication.
//! - `GET /healthz`: alive, 200 whenever the process answers at all.
//! - `GET /readyz`: 200 when the server serves every API; 503 with the reason while start-up
//!   recovers its state, or while a journal refuses writes.
//! - `GET /health`: 200 while the server can read, saying `degraded` with the journals that
//!   refuse writes (a failed write could not be undone, e.g. the disk is full or failing), so
//!   that operators see that writes get 503 while reads still work.

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value as Json};

use super::super::readiness::STARTING;
use super::super::AppState;
use crate::persist::journal::unwritable_journals;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/healthz", web::get().to(alive))
        .route("/readyz", web::get().to(ready));
}

async fn alive() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "alive"}))
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.started().is_err() {
        return HttpResponse::ServiceUnavailable()
            .json(json!({"status": "starting", "reason": STARTING}));
    }
    match unwritable_journals_json() {
        None => HttpResponse::Ok().json(json!({"status": "ready"})),
        Some(journals) => HttpResponse::ServiceUnavailable().json(json!({
            "status": "degraded",
            "reason": "a journal refuses writes (a failed write could not be undone)",
            "journals": journals,
        })),
    }
}

async fn health() -> HttpResponse {
    match unwritable_journals_json() {
        None => HttpResponse::Ok().json(json!({"status": "ok"})),
        Some(journals) => {
            HttpResponse::Ok().json(json!({"status": "degraded", "journals": journals}))
        }
    }
}

/// The journals that refuse writes, by name, with the cause; `None` when all accept them.
fn unwritable_journals_json() -> Option<Map<String, Json>> {
    let unwritable = unwritable_journals();
    (!unwritable.is_empty()).then(|| {
        unwritable
            .into_iter()
            .map(|(name, cause)| (name, json!({"writable": false, "error": cause})))
            .collect()
    })
}

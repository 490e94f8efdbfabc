//! `GET /health`: liveness for load balancers and test harnesses; no authentication. It answers
//! 200 while the server can read, and says `degraded` with the journals that refuse writes (a
//! failed write could not be undone, e.g. the disk is full or failing), so that operators and
//! monitors see that writes get 503 while reads still work.

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value as Json};

use crate::persist::journal::unwritable_journals;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health));
}

async fn health() -> HttpResponse {
    let unwritable = unwritable_journals();
    if unwritable.is_empty() {
        return HttpResponse::Ok().json(json!({"status": "ok"}));
    }
    let journals: Map<String, Json> = unwritable
        .into_iter()
        .map(|(name, cause)| (name, json!({"writable": false, "error": cause})))
        .collect();
    HttpResponse::Ok().json(json!({"status": "degraded", "journals": journals}))
}

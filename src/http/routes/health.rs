//! Health for load balancers, orchestrators and monitors; no authentication.
//! - `GET /healthz`: alive, 200 whenever the process answers at all.
//! - `GET /readyz`: 200 when the server serves every API; 503 with the reason while start-up
//!   recovers its state, while a journal refuses writes, or (cluster mode) while a replica is
//!   stalled at a stream message this node cannot read, or with its consumer ended until it is
//!   opened again (its reads miss that message's rows and every later one's).
//! - `GET /health`: 200 while the server can read, saying `degraded` with the journals that
//!   refuse writes (a failed write could not be undone, e.g. the disk is full or failing), so
//!   that operators see that writes get 503 while reads still work, and with the stalled
//!   replicas (`<stream>/<consumer>` and reason).

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value as Json};

use super::super::readiness::STARTING;
use super::super::AppState;

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
    let mut answer = match degraded(&state) {
        None => return HttpResponse::Ok().json(json!({"status": "ready"})),
        Some(degraded) => degraded,
    };
    let reason = match (
        answer.contains_key("journals"),
        answer.contains_key("replicas"),
    ) {
        (true, false) => "a journal refuses writes (a failed write could not be undone)",
        (false, _) => "a cluster replica is stalled (at a stream message this node cannot read, or its consumer ended)",
        (true, true) => "a journal refuses writes, and a cluster replica is stalled",
    };
    answer.insert("reason".into(), reason.into());
    HttpResponse::ServiceUnavailable().json(answer)
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    match degraded(&state) {
        None => HttpResponse::Ok().json(json!({"status": "ok"})),
        Some(degraded) => HttpResponse::Ok().json(degraded),
    }
}

/// `status: degraded` with the journals that refuse writes, by name, with the cause, and the
/// stalled replicas, by consumer, with the reason; `None` when there are neither. Read from the
/// cells the journals and replicas report in, not by asking their owners (one stuck on a
/// failing disk would not answer).
fn degraded(state: &AppState) -> Option<Map<String, Json>> {
    let journals: Vec<(&str, String)> = [
        ("rows", state.router.journal_unwritable()),
        ("directory", state.directory.journal_unwritable()),
        ("vault", state.vault.journal_unwritable()),
    ]
    .into_iter()
    .filter_map(|(name, cause)| Some((name, cause?)))
    .collect();
    let replicas = state.replica_stalls.reported();
    if journals.is_empty() && replicas.is_empty() {
        return None;
    }
    let mut answer = Map::new();
    answer.insert("status".into(), "degraded".into());
    if !journals.is_empty() {
        let journals = journals
            .into_iter()
            .map(|(name, cause)| (name.to_string(), json!({"writable": false, "error": cause})));
        answer.insert("journals".into(), journals.collect::<Map<_, _>>().into());
    }
    if !replicas.is_empty() {
        let replicas = replicas
            .into_iter()
            .map(|(consumer, reason)| (consumer, json!({"stalled": true, "error": reason})));
        answer.insert("replicas".into(), replicas.collect::<Map<_, _>>().into());
    }
    Some(answer)
}

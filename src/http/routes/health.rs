//! Health for load balancers, orchestrators and monitors; no authentication.
//! - `GET /healthz`: alive, 200 whenever the process answers at all.
//! - `GET /readyz`: 200 when the server serves every API; 503 with the reason while start-up
//!   recovers its state, while a journal refuses writes, or (cluster mode) while a replica is
//!   stalled at a stream message this node cannot read, or with its consumer ended until it is
//!   opened again (its reads miss that message's rows and every later one's), or while the
//!   store's shards hold different tables (an apply's undo failed in one) until a restart.
//! - `GET /health`: 200 while the server can read, saying `degraded` with the journals that
//!   refuse writes (a failed write could not be undone, e.g. the disk is full or failing), so
//!   that operators see that writes get 503 while reads still work, with the stalled
//!   replicas (`<stream>/<consumer>` and reason), and with the store when its shards hold
//!   different tables (`store`: the reason, which says to restart).

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
    let reasons: Vec<&str> = [
        ("journals", "a journal refuses writes (a failed write could not be undone)"),
        ("replicas", "a cluster replica is stalled (at a stream message this node cannot read, or its consumer ended)"),
        ("store", "the store's shards hold different tables (an apply's undo failed in one): restart the server"),
    ]
    .into_iter()
    .filter(|(part, _)| answer.contains_key(*part))
    .map(|(_, reason)| reason)
    .collect();
    answer.insert("reason".into(), reasons.join("; ").into());
    HttpResponse::ServiceUnavailable().json(answer)
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    match degraded(&state) {
        None => HttpResponse::Ok().json(json!({"status": "ok"})),
        Some(degraded) => HttpResponse::Ok().json(degraded),
    }
}

/// `status: degraded` with the journals that refuse writes, by name, with the cause, the
/// stalled replicas, by consumer, with the reason, and the store whose shards hold different
/// tables; `None` when there are none. Read from the cells the journals, replicas and store
/// report in, not by asking their owners (one stuck on a failing disk would not answer).
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
    let store = state.router.shards_inconsistent();
    if journals.is_empty() && replicas.is_empty() && store.is_none() {
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
    if let Some(reason) = store {
        answer.insert(
            "store".into(),
            json!({"consistent": false, "error": reason}),
        );
    }
    Some(answer)
}

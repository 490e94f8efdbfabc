//! The front end of the Redis peer (`quiver bench redis-front`, hidden): a small actix-web
//! server answering GetFeatures with the same JSON as Quiver, from one pipelined HGETALL per
//! stored view of the service (per row, for a batch), computing realtime features over the
//! request context as a feature server over Redis does (what Feast and Tecton do over their
//! online stores). A peer for `quiver bench`, sharing nothing with Quiver's HTTP layer.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Map, Value as Json};

use super::bare::serve_peer;
use super::redis::{view_key_names, ServiceReads};
use super::resp::RespConnection;
use crate::registry::Registry;

/// The announcement the harness waits for, followed by `http://ADDRESS`.
pub const LISTENING: &str = "redis front end listening on ";

/// The fixed `metadata` part of each answer, per (request path, feature service name).
pub type Metadata = HashMap<(String, String), String>;

struct FrontState {
    registry: Arc<Registry>,
    redis: SocketAddr,
    metadata: Metadata,
    /// The reads of each service, by (workspace, service) name.
    reads: HashMap<(String, String), ServiceReads>,
}

thread_local! {
    /// Idle Redis connections of this worker thread: each request takes one (or opens one),
    /// so concurrent requests never wait for each other's round trips.
    static IDLE: RefCell<Vec<RespConnection>> = const { RefCell::new(Vec::new()) };
}

/// Serves until the process is killed.
pub fn serve_redis_front(
    listen: &str,
    redis: SocketAddr,
    registry: Arc<Registry>,
    metadata: Metadata,
) -> std::io::Result<()> {
    let mut reads = HashMap::new();
    for workspace in registry.workspaces() {
        for service in workspace.services.values() {
            reads.insert(
                (workspace.name.clone(), service.name.clone()),
                ServiceReads::new(&registry, service),
            );
        }
    }
    let state = Arc::new(FrontState {
        registry,
        redis,
        metadata,
        reads,
    });
    serve_peer(listen, LISTENING, move |config| {
        config
            .app_data(web::Data::from(state.clone()))
            .default_service(web::post().to(answer));
    })
}

async fn answer(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<FrontState>,
) -> HttpResponse {
    match features(request.path(), &body, &state).await {
        Ok(answer) => HttpResponse::Ok()
            .content_type("application/json")
            .body(answer),
        Err(message) => HttpResponse::BadRequest().body(message),
    }
}

async fn features(path: &str, body: &[u8], state: &FrontState) -> Result<String, String> {
    let parsed: Json = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let params = &parsed["params"];
    let text = |name: &str| params[name].as_str().unwrap_or_default().to_string();
    let name = (text("workspaceName"), text("featureServiceName"));
    let registry = &state.registry;
    let service = registry
        .workspace(&name.0)
        .and_then(|ws| ws.services.get(&name.1))
        .ok_or("no such feature service")?;
    let reads = &state.reads[&name];
    let batch = params.get("requestData").and_then(Json::as_array);
    let rows: Vec<&Json> = match batch {
        Some(rows) => rows.iter().collect(),
        None => vec![params],
    };
    let empty = Map::new();
    let mut commands = Vec::new();
    let mut counts = Vec::with_capacity(rows.len());
    for row in &rows {
        let join_keys = row["joinKeyMap"].as_object().unwrap_or(&empty);
        let join_keys = view_key_names(registry, service, join_keys);
        counts.push(reads.encode_reads(registry, &join_keys, &mut commands));
    }
    let idle = IDLE.with(|idle| idle.borrow_mut().pop());
    let mut connection = match idle {
        Some(connection) => connection,
        None => RespConnection::connect(state.redis)
            .await
            .map_err(|e| e.to_string())?,
    };
    let replies = connection
        .pipeline(&commands, counts.iter().sum())
        .await
        .map_err(|e| e.to_string())?;
    IDLE.with(|idle| idle.borrow_mut().push(connection));

    let mut vectors = Vec::with_capacity(rows.len());
    let mut replies = replies.as_slice();
    for (row, count) in rows.iter().zip(counts) {
        let (own, rest) = replies.split_at(count);
        replies = rest;
        let context = row["requestContextMap"].as_object().unwrap_or(&empty);
        vectors.push(reads.vector(registry, service, context, own)?);
    }
    let metadata = state
        .metadata
        .get(&(path.to_string(), name.1.clone()))
        .map_or("{}", String::as_str);
    Ok(match batch {
        Some(_) => {
            let rows: Vec<String> = vectors
                .iter()
                .map(|v| format!("{{\"features\":{v}}}"))
                .collect();
            format!(
                "{{\"result\":[{}],\"metadata\":{metadata}}}",
                rows.join(",")
            )
        }
        None => format!(
            "{{\"result\":{{\"features\":{}}},\"metadata\":{metadata}}}",
            vectors[0]
        ),
    })
}

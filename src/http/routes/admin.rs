//! Operator endpoints, admin only. `POST /admin/workspaces/{ws}/feature-views/{view}/rows` takes
//! rows of one view, JSON Lines or (`application/vnd.quiver.rows.v1`) the binary rows `quiver
//! load` sends, and writes all of them or none (rows past `max_future_event_skew` aside, not
//! stored and counted, as `/ingest` refuses such an event);
//! `POST /admin/snapshots` starts a snapshot (202 with its id), `GET /admin/snapshots` lists them
//! and the last snapshot that failed (`lastFailure`: id and error, e.g. a full disk);
//! `GET /admin/repository` describes the repository being served (what `quiver plan` diffs),
//! `POST /admin/repository` applies a new one (what `quiver apply` sends: validated, planned,
//! refused when stale or losing data without `allowDataLoss`, then swapped in whole).
//! Every handler takes `Admin` first, so a non-admin is refused before any body is read.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::super::auth::Admin;
use super::super::body::{encoded_body, JsonBody, UnreadBody};
use super::super::error::{ApiError, ErrorKind};
use super::super::served::Repo;
use super::super::wire::repository::ApplyBody;
use super::super::{method_not_allowed, AppState};
use crate::echo::echo;
use crate::ingest::binary_rows::{self, read_binary_rows};
use crate::ingest::file::read_rows_body;
use crate::persist::snapshot::describe_snapshots;
use crate::persist::Snapshotter;
use crate::registry::repository::Repository;
use crate::registry::ViewKind;
use crate::store::RowWrite;
use crate::time::{now_micros, Micros};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/workspaces/{workspace}/feature-views/{view}/rows")
            .route(web::post().to(load_rows))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/admin/secrets/rotate-key")
            .route(web::post().to(rotate_master_key))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/admin/repository")
            .route(web::get().to(describe_repository))
            .route(web::post().to(apply_repository))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/admin/snapshots")
            .route(web::post().to(create_snapshot))
            .route(web::get().to(list_snapshots))
            .default_service(web::to(method_not_allowed)),
    );
}

fn snapshotter(state: &AppState) -> Result<&Snapshotter, ApiError> {
    state.snapshotter.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorKind::FailedPrecondition,
            "snapshots need a data directory; this server keeps state in memory only",
        )
    })
}

/// The served repository in its versioned JSON form, with its content hash.
async fn describe_repository(_: Admin, repo: Repo) -> HttpResponse {
    HttpResponse::Ok().json(Repository::describe(&repo.registry).to_json())
}

/// A repository's files are text: a few MB is already a very large one.
const MAX_REPOSITORY_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Applies the repository sent (see `http::served`); answers the plan carried out. A stale
/// `expectedHash` or a data loss not allowed is 409: the same body is right against another
/// served repository, or once the caller opts in, so the request is not malformed (400 is for
/// files that do not validate).
async fn apply_repository(
    _: Admin,
    state: web::Data<AppState>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let request: ApplyBody = body.read(MAX_REPOSITORY_BODY_BYTES).await?;
    let plan = state
        .served
        .apply(
            request.into(),
            &state.router,
            &state.vault,
            state.snapshotter.as_ref(),
        )
        .await?;
    Ok(HttpResponse::Ok()
        .json(json!({"applied": true, "hash": plan.to_hash, "plan": plan.to_json()})))
}

/// Starts a snapshot and answers at once with its id; the file appears when it is written.
async fn create_snapshot(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let pending = snapshotter(&state)?.begin()?;
    let id = pending.id();
    actix_web::rt::spawn(async move {
        if let Err(error) = pending.finish().await {
            tracing::error!(%error, "on-demand snapshot failed");
        }
    });
    Ok(HttpResponse::Accepted().json(json!({"id": id, "status": "started"})))
}

async fn list_snapshots(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let last_failure = snapshotter(&state)?
        .last_failure()
        .map(|failure| json!({"id": failure.id, "error": failure.error}));
    let dir = snapshotter(&state)?.dir().clone();
    let listing = web::block(move || describe_snapshots(&dir))
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("cannot list snapshots: {e}")))?;
    let snapshots: Vec<_> = listing
        .iter()
        .map(|s| {
            json!({"id": s.id, "path": s.path, "createdAt": s.created_at, "bytes": s.bytes,
                   "shards": s.n_shards, "items": s.items, "checksum": s.checksum})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"snapshots": snapshots, "lastFailure": last_failure})))
}

#[derive(Deserialize)]
struct ViewPath {
    workspace: String,
    view: String,
}

/// A load chunk: `quiver load` sends 5,000 rows a request by default, and wide rows reach a few
/// KB each; only an admin may send one, checked before a byte of it is read.
const MAX_LOAD_BODY_BYTES: usize = 64 * 1024 * 1024;

async fn load_rows(
    _: Admin,
    state: web::Data<AppState>,
    repo: Repo,
    path: web::Path<ViewPath>,
    request: HttpRequest,
    body: UnreadBody,
) -> Result<HttpResponse, ApiError> {
    let view = repo
        .registry
        .view_by_name(&path.workspace, &path.view)
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                format!(
                    "feature view `{}` not found in workspace `{}`",
                    echo(&path.view),
                    echo(&path.workspace)
                ),
            )
        })?;
    if matches!(view.kind, ViewKind::Realtime(_)) {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!(
                "feature view `{}` is a realtime view: its features are computed at request time \
                 from the request and its upstream views, so it takes no rows",
                path.view
            ),
        ));
    }
    let body = body.read(MAX_LOAD_BODY_BYTES).await?;
    let binary = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        // The media type, whatever parameters follow it (`; charset=binary`, say): with one
        // the body was read as JSON Lines and refused as "not valid JSON".
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(binary_rows::CONTENT_TYPE));
    let read = if binary {
        read_binary_rows(view, &body)
    } else {
        read_rows_body(view, &body)
    };
    // Nothing decompresses a body: a compressed one is refused for its encoding, as
    // `parse_json` refuses one, not as rows that do not read.
    let writes =
        read.map_err(|refused| encoded_body(&request).unwrap_or_else(|| refused.into()))?;
    let received = writes.len();
    let writes = without_future_rows(writes, now_micros(), state.limits.max_future_skew);
    let too_far_in_future = received - writes.len();
    let outcome = state.router.write(writes).await?;
    Ok(HttpResponse::Ok().json(json!({
        "rowsReceived": received,
        "rowsStored": outcome.stored,
        "rowsOlderThanStored": outcome.older_than_stored,
        "rowsTooFarInFuture": too_far_in_future,
    })))
}

/// `writes` without the rows whose event time is further ahead of `now` than the server's
/// `max_future_event_skew`: not stored, as `/ingest` refuses such an event and writes the rest.
/// A row view keeps its newest event, so one from year 9999 (a timestamp in the wrong unit,
/// say) would shadow every real one written after it. Counted in the answer
/// (`rowsTooFarInFuture`), not refused: `quiver load` validated the file before sending any
/// chunk, and a refusal of a later chunk would leave the earlier ones loaded.
fn without_future_rows(
    mut writes: Vec<RowWrite>,
    now: Micros,
    max_future_skew: Micros,
) -> Vec<RowWrite> {
    let latest = now.saturating_add(max_future_skew);
    writes.retain(|write| write.event_time <= latest);
    writes
}

/// Re-encrypts every secret under a new master key while serving. When the key lives in a file
/// the file is replaced; when it came from `QUIVER_MASTER_KEY`, the new key is in the answer,
/// once, for the operator to put in the environment before the next start. With a data
/// directory, a snapshot is taken before answering: the snapshots before it hold the values
/// sealed under the old key, which is gone, so a backup of the newest snapshot and the key
/// file would not open them. A snapshot that fails is reported in the answer (still 200: the
/// rotation happened, and a 500 would have lost the new key).
async fn rotate_master_key(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let new_key = state.vault.rotate_key().await?;
    let mut body = json!({"rotated": true});
    if let Some(key) = new_key {
        body["newMasterKey"] = json!(key);
    }
    // The rotation is done whatever the snapshot does: the answer says so (and carries a key
    // from the environment, the only copy), with the snapshot's failure beside it.
    if let Some(snapshotter) = &state.snapshotter {
        let snapshot = async { snapshotter.begin_when_free().await?.finish().await };
        match snapshot.await {
            Ok(info) => body["snapshot"] = json!(info.id),
            Err(error) => {
                tracing::error!(%error, "the snapshot after a key rotation failed");
                body["snapshot"] = json!(null);
                body["snapshotError"] = json!(format!(
                    "{error}: the snapshots on disk open only with the previous key; take one \
                     (`quiver snapshot create`) before backing up"
                ));
            }
        }
    }
    Ok(HttpResponse::Ok().json(body))
}

//! The repository being served, and its one owner. [`ServedRepository`] is a handle on an
//! `ArcSwap` of [`Served`]: the registry and what derives from it (the pre-encoded wire catalog,
//! the push sources' ingest tokens). A handler takes one snapshot ([`Repo`], an extractor) and
//! uses it to the end: it sees one repository whole, never a mix. (The auth extractor's check
//! on a route whose body names the workspace, that the caller holds the permission on some
//! workspace, loads the repository served at that moment on its own; the handler checks the
//! named workspace again on its snapshot.)
//!
//! `quiver apply` (`POST /admin/repository`) goes through [`ServedRepository::apply`], one apply
//! at a time: validate the files into a registry that keeps the view ids, plan against the
//! served one (refusing a stale `expectedHash` or a data loss not allowed), render the new
//! ingest tokens, have the store copy reshaped views to their new layouts (behind the writes
//! already sent), write the snapshot that keeps the result (with a data directory), swap, wait
//! until the requests begun before are done, then have the store drop the old layouts. If that
//! snapshot fails, the apply undoes itself before the swap (the store's reshape taken back, the
//! applied repository the previous one), and so does a reshape that fails in a shard (the store
//! takes it back itself): what is served is always what a restart recovers.
//! Requests in flight finish on the old repository (they read its layouts); only a write to a
//! view whose stored form changed, made for the old form, is refused with 503 (to retry) once
//! the store has moved on.
//!
//! Persistence (the applied repository in every snapshot, and served again at start-up, with the
//! applies the rows journal holds after that snapshot) is in `persistence.rs`.
//!
//! Why `ArcSwap` and not an actor: every request reads the snapshot and an apply is rare, so a
//! read must cost an atomic load, not a message round trip; the swap is the only write, and
//! applies are serialised by `applying` (a lock held for an apply, never by a request).

mod persistence;
#[cfg(test)]
mod tests;

use std::future::{ready, Ready};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use arc_swap::{ArcSwap, ArcSwapOption};

use super::error::ApiError;
use super::wire::feature_service::WireCatalog;
use super::AppState;
use crate::ingest::tokens::IngestTokens;
use crate::ingest::IngestError;
use crate::persist::{JournalError, PersistError, Snapshotter};
use crate::registry::plan::{Effect, Plan};
use crate::registry::repository::Repository;
use crate::registry::{build_registry, Registry, RegistryError, WorkspaceFiles};
use crate::secrets::Vault;
use crate::store::{plan_reshapes, Router, StoreError};
use crate::test_hooks::HookFile;
pub use persistence::RecoverError;

/// One repository as served: the registry and everything built from it.
pub struct Served {
    pub registry: Arc<Registry>,
    /// Pre-encoded per-service JSON.
    pub catalog: WireCatalog,
    /// Empty until start-up renders them from the recovered vault.
    pub ingest_tokens: IngestTokens,
}

impl Served {
    pub fn new(registry: Arc<Registry>, ingest_tokens: IngestTokens) -> Served {
        Served {
            catalog: WireCatalog::build(&registry),
            registry,
            ingest_tokens,
        }
    }
}

/// The owner of the served repository (cheap to clone: a handle).
#[derive(Clone)]
pub struct ServedRepository {
    current: Arc<ArcSwap<Served>>,
    applying: Arc<tokio::sync::Mutex<()>>,
    /// What the last apply applied (the repository the store's data is shaped for), for
    /// snapshots; `None` while the files on disk are served.
    applied: Arc<ArcSwapOption<Applied>>,
}

/// An applied repository: the files as sent, and their content hash.
#[derive(Debug)]
struct Applied {
    hash: String,
    workspaces: Vec<WorkspaceFiles>,
}

/// What `POST /admin/repository` asks for.
#[derive(Debug)]
pub struct ApplyRequest {
    pub workspaces: Vec<WorkspaceFiles>,
    /// The hash of the served repository the caller planned against (`fromHash`).
    pub expected_hash: Option<String>,
    pub allow_data_loss: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Invalid(#[from] RegistryError),
    #[error("the server serves repository {served}, not {expected}: plan again")]
    StalePlan { served: String, expected: String },
    #[error("the plan drops stored data ({0}); apply it with allowDataLoss")]
    DataLoss(String),
    #[error("{0}")]
    IngestToken(#[from] IngestError),
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The apply failed part-way and took itself back (or failed before it changed anything).
    #[error("the repository was not applied: {0}; the previous repository is still served, with its data as it was: fix the cause and apply again")]
    NotApplied(ApplyFailure),
    /// The same, but the rows journal refused the record of the undo (the store is as it was).
    #[error("the repository was not applied: {failed}; the previous repository is served again, but the journal refused the record of that undo ({journal}): it is journaled before the next write, apply or snapshot, and a restart before then (a crash, or a shutdown while the disk still refuses it) would make this apply again. Fix the cause (and the journal's disk), then apply again or restart")]
    UndoNotJournaled {
        failed: ApplyFailure,
        journal: JournalError,
    },
    /// The same, but a shard could not take the apply's reshape back (`undo`, a
    /// `StoreError::UndoFailed`): the store is left inconsistent until a restart.
    #[error("the repository was not applied: {failed}; the previous repository is served again, but taking the apply back failed: {undo}")]
    NotTakenBack {
        failed: ApplyFailure,
        undo: StoreError,
    },
}

/// The step that failed a valid apply: nothing of it is left (see [`ApplyError::NotApplied`]).
#[derive(Debug, thiserror::Error)]
pub enum ApplyFailure {
    /// A shard could not reshape its data (see `StoreError::ReshapeTakenBack`).
    #[error("shard {shard} could not reshape its data ({error})")]
    Reshape { shard: usize, error: std::io::Error },
    #[error("the snapshot that would keep it failed ({0})")]
    Snapshot(PersistError),
}

impl ApplyFailure {
    /// The apply's answer, now that the store was taken back: `undone` is the journal's
    /// refusal of the undo's record, if it refused it, or the undo's failure.
    fn answer(self, undone: Result<Option<JournalError>, StoreError>) -> ApplyError {
        match undone {
            Ok(None) => ApplyError::NotApplied(self),
            Ok(Some(journal)) => ApplyError::UndoNotJournaled {
                failed: self,
                journal,
            },
            Err(undo) => ApplyError::NotTakenBack { failed: self, undo },
        }
    }
}

impl ServedRepository {
    pub fn new(served: Served) -> ServedRepository {
        ServedRepository {
            current: Arc::new(ArcSwap::from_pointee(served)),
            applying: Arc::default(),
            applied: Arc::default(),
        }
    }

    /// The repository served now.
    pub fn current(&self) -> Arc<Served> {
        self.current.load_full()
    }

    /// Start-up is done: the ingest tokens rendered from the recovered vault join the registry.
    pub fn set_ingest_tokens(&self, ingest_tokens: IngestTokens) {
        let registry = Arc::clone(&self.current().registry);
        self.current
            .store(Arc::new(Served::new(registry, ingest_tokens)));
    }

    /// Validates, plans and applies `request` (see the module doc); answers the plan applied.
    pub async fn apply(
        &self,
        request: ApplyRequest,
        router: &Router,
        vault: &Vault,
        snapshotter: Option<&Snapshotter>,
    ) -> Result<Plan, ApplyError> {
        let _applying = self.applying.lock().await;
        let served = self.current();
        let registry = build_registry(&request.workspaces, Some(&served.registry))?;
        let plan = Plan::between(
            &Repository::describe(&served.registry),
            &Repository::describe(&registry),
        );
        if let Some(expected) = request.expected_hash {
            if expected != plan.from_hash {
                return Err(ApplyError::StalePlan {
                    served: plan.from_hash,
                    expected,
                });
            }
        }
        if plan.drops_data() && !request.allow_data_loss {
            let dropping: Vec<String> = plan
                .workspaces
                .iter()
                .flat_map(|w| w.objects.iter().map(move |o| (w, o)))
                .filter(|(_, o)| o.effect == Effect::Dropped)
                .map(|(w, o)| format!("{} {}/{}", o.kind.name(), w.name, o.name))
                .collect();
            return Err(ApplyError::DataLoss(dropping.join(", ")));
        }
        let ingest_tokens = IngestTokens::render(&registry, vault).await?;
        let snapshot = match snapshotter {
            Some(snapshotter) => Some(
                snapshotter
                    .begin_when_free()
                    .await
                    .map_err(|error| ApplyError::NotApplied(ApplyFailure::Snapshot(error)))?,
            ),
            None => None,
        };
        // Cluster mode (replicated, with a data directory): the replica applies nothing from
        // here until the apply is made or taken back. Rows it applied in between would be
        // written in the apply's forms, which an undo drops: on this node only, and for good
        // once a later snapshot covers their messages.
        let writer_held = match &snapshot {
            Some(pending) => pending
                .hold_writer()
                .await
                .map_err(|error| ApplyError::NotApplied(ApplyFailure::Snapshot(error)))?,
            None => None,
        };
        let allow_data_loss = request.allow_data_loss;
        let applied = Applied {
            hash: plan.to_hash.clone(),
            workspaces: request.workspaces,
        };
        let reshapes = plan_reshapes(&served.registry, &registry);
        // Cluster mode: what the apply loses (and the losses before it, carried on to the new
        // forms), for the nodes that replay older rows.
        let losses = router
            .accept_losses(&registry, &reshapes, allow_data_loss)
            .await?;
        let undo = match router
            .reshape(&registry, reshapes, &applied.to_stored())
            .await
        {
            Ok(undo) => undo,
            Err(refused) => {
                router.withdraw_losses(losses).await;
                // A shard failed its part: the store took the others' back already (or says
                // which could not go back).
                return Err(match refused {
                    StoreError::ReshapeTakenBack {
                        shard,
                        error,
                        unjournaled,
                    } => ApplyFailure::Reshape { shard, error }
                        .answer(Ok(unjournaled.map(|journal| *journal))),
                    StoreError::ReshapeNotTakenBack { shard, error, undo } => {
                        ApplyFailure::Reshape { shard, error }.answer(Err(*undo))
                    }
                    refused => refused.into(),
                });
            }
        };
        let applied_before = self.applied.swap(Some(Arc::new(applied)));
        // The integration tests hold an apply here to write to another cluster node meanwhile.
        HookFile::from_env("QUIVER_TEST_HOLD_APPLY")
            .hold_here()
            .await;
        if let Some(pending) = snapshot {
            let (written, slot) = pending.finish_keeping_slot().await;
            if let Err(error) = written {
                // Served, the new repository would take writes a restart loses or misreads:
                // nothing of the apply stays. No snapshot begins until the undo is made: one
                // cut between would hold the apply's rows before its `Undone`, which a start
                // refuses.
                self.applied.store(applied_before);
                router.withdraw_losses(losses).await;
                let undone = router.undo_reshape(undo).await;
                drop((slot, writer_held));
                return Err(ApplyFailure::Snapshot(error).answer(undone));
            }
        }
        drop(writer_held);
        self.current
            .store(Arc::new(Served::new(Arc::new(registry), ingest_tokens)));
        released(served).await;
        router.retire_layouts().await?;
        Ok(plan)
    }
}

/// How long an apply waits for the requests begun before it; they are bounded by the latency
/// budget and the body read timeout, so this is only a backstop.
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(60);

/// Waits until no request holds `served` any more (or the grace period is over).
async fn released(served: Arc<Served>) {
    let deadline = Instant::now() + IN_FLIGHT_GRACE;
    while Arc::strong_count(&served) > 1 {
        if Instant::now() > deadline {
            tracing::warn!("requests begun before an apply still run; their old data is dropped");
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A snapshot of the served repository, taken when extracted. Not kept in the request's
/// extensions for later extractors: inserting it there and clearing the map when actix pools
/// the request cost more than loading the `ArcSwap` again (the only other reader is the auth
/// extractor's check on some workspace, see the module doc).
pub struct Repo(pub Arc<Served>);

impl Repo {
    pub fn of(request: &HttpRequest) -> Repo {
        let state = request
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered by http::app");
        Repo::current(state)
    }

    /// The repository `state` serves now.
    pub fn current(state: &AppState) -> Repo {
        Repo(state.served.current())
    }
}

impl std::ops::Deref for Repo {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.0
    }
}

impl FromRequest for Repo {
    type Error = ApiError;
    type Future = Ready<Result<Repo, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Repo::of(request)))
    }
}

//! The served repository's persistence. What an apply applied is kept (`applied`) and written
//! into every snapshot as the repository section. An apply holds the snapshot slot from before
//! the store reshapes until its own snapshot (reshaped rows and the new repository, one cut) is
//! on disk, and answers only then: no other snapshot can cut between the two. At start-up
//! [`ServedRepository::recover`] serves the newest snapshot's applied repository, not the files
//! on disk (a snapshot without one, or of an older build, leaves the files served). An apply
//! made after that snapshot (the newest was damaged, and start-up fell back past it) is in the
//! rows journal, where the store reshaped for it: the store's replay hands it back here
//! ([`Reapply`]) and it is served again, the store reshaped as the apply did.

use std::io;
use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt};

use super::{Applied, Served, ServedRepository};
use crate::ingest::tokens::IngestTokens;
use crate::persist::format::{
    decode, encode, AppliedRepositoryV1, RepositoryV1, SectionKind, WorkspaceFilesV1,
};
use crate::persist::snapshot::{SectionData, Snapshot};
use crate::persist::SnapshotSource;
use crate::registry::{build_registry, RegistryError, WorkspaceFiles};
use crate::store::{plan_reshapes, Reapply, Router, StoreError};

/// Why the repository a snapshot holds cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error("the applied repository in the snapshot does not decode: {0}")]
    Decode(String),
    #[error("the applied repository in the snapshot no longer validates: {0}")]
    Invalid(#[from] RegistryError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl ServedRepository {
    /// At start-up, before any row is restored: serves the repository `snapshot` says was last
    /// applied, if any. Answers its hash.
    pub async fn recover(
        &self,
        snapshot: Option<&Snapshot>,
        router: &Router,
    ) -> Result<Option<String>, RecoverError> {
        let Some(section) = snapshot.and_then(|s| s.section(SectionKind::Repository)) else {
            return Ok(None);
        };
        let stored: AppliedRepositoryV1 = decode(&section.payload).map_err(RecoverError::Decode)?;
        let Some(stored) = stored.applied else {
            return Ok(None);
        };
        self.serve_applied(stored, router).await.map(Some)
    }

    /// Serves `stored` as applied, the store's data reshaped for it from the repository served
    /// now as an apply reshapes it (before any row is restored, only its views table changes).
    /// Answers its hash.
    async fn serve_applied(
        &self,
        stored: RepositoryV1,
        router: &Router,
    ) -> Result<String, RecoverError> {
        let served = self.current();
        let applied = Applied::from_stored(stored.clone());
        let registry = build_registry(&applied.workspaces, Some(&served.registry))?;
        let reshapes = plan_reshapes(&served.registry, &registry);
        router.reshape(&registry, reshapes, &stored).await?;
        router.retire_layouts().await?;
        self.current.store(Arc::new(Served::new(
            Arc::new(registry),
            IngestTokens::default(),
        )));
        let hash = applied.hash.clone();
        self.applied.store(Some(Arc::new(applied)));
        Ok(hash)
    }
}

/// An apply the rows journal holds, made after the snapshot start-up loaded.
impl Reapply for ServedRepository {
    fn reapply<'a>(
        &'a self,
        router: &'a Router,
        applied: RepositoryV1,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let hash = applied.hash.clone();
            match self.serve_applied(applied, router).await {
                Ok(_) => {
                    tracing::info!(%hash, "serving the repository an apply after the snapshot applied (from the rows journal)");
                    Ok(())
                }
                // A shard's failure says nothing of the apply: named, the start's error says
                // which one could not be made again.
                Err(RecoverError::Store(
                    error @ (StoreError::ReshapeTakenBack { .. }
                    | StoreError::ReshapeNotTakenBack { .. }),
                )) => {
                    Err(StoreError::Reapply {
                        hash,
                        reason: error.to_string(),
                    })
                }
                Err(RecoverError::Store(error)) => Err(error),
                Err(error) => Err(StoreError::Reapply {
                    hash,
                    reason: error.to_string(),
                }),
            }
        }
        .boxed()
    }
}

impl Applied {
    pub(super) fn to_stored(&self) -> RepositoryV1 {
        RepositoryV1 {
            hash: self.hash.clone(),
            workspaces: self
                .workspaces
                .iter()
                .map(|workspace| WorkspaceFilesV1 {
                    name: workspace.name.clone(),
                    live: workspace.live,
                    files: workspace
                        .files
                        .iter()
                        .map(|(path, text)| (path.display().to_string(), text.clone()))
                        .collect(),
                })
                .collect(),
        }
    }

    fn from_stored(stored: RepositoryV1) -> Applied {
        Applied {
            hash: stored.hash,
            workspaces: stored
                .workspaces
                .into_iter()
                .map(|w| WorkspaceFiles::new(w.name, w.live, w.files))
                .collect(),
        }
    }
}

/// The repository section: the applied repository, as the store's data is shaped for it.
impl SnapshotSource for ServedRepository {
    fn take_section(&self) -> BoxFuture<'static, io::Result<SectionData>> {
        let applied = self.applied.load_full();
        async move {
            let applied = applied.map(|applied| applied.to_stored());
            Ok(SectionData {
                kind: SectionKind::Repository,
                // No journal: an apply is kept by the snapshot it takes before answering.
                journal_seq: 0,
                items: u64::from(applied.is_some()),
                payload: encode(&AppliedRepositoryV1 { applied }).into(),
                payload_tail: Vec::new(),
            })
        }
        .boxed()
    }

    fn snapshot_saved(&self, _: u64) -> BoxFuture<'static, io::Result<()>> {
        async { Ok(()) }.boxed()
    }
}

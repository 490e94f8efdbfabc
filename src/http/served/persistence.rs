//! The served repository's persistence. What an apply applied is kept (`applied`) and written
//! into every snapshot as the repository section. An apply holds the snapshot slot from before
//! the store reshapes until its own snapshot (reshaped rows and the new repository, one cut) is
//! on disk, and answers only then: no other snapshot can cut between the two. At start-up
//! [`ServedRepository::recover`] serves the newest snapshot's applied repository, not the files
//! on disk (a snapshot without one, or of an older build, leaves the files served).

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
use crate::store::{Router, StoreError};

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
        let applied = Applied::from_stored(stored);
        let registry = build_registry(&applied.workspaces, Some(&self.current().registry))?;
        // The store is still empty: only its views table changes.
        router.reshape(&registry, Vec::new()).await?;
        router.retire_layouts().await?;
        self.current.store(Arc::new(Served::new(
            Arc::new(registry),
            IngestTokens::default(),
        )));
        let hash = applied.hash.clone();
        self.applied.store(Some(Arc::new(applied)));
        Ok(Some(hash))
    }
}

impl Applied {
    fn to_stored(&self) -> RepositoryV1 {
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

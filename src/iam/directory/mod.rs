//! The directory actor: sole owner of users, groups, service accounts, memberships and role
//! assignments. Every change is validated, journaled (fsync before the reply, when persistence
//! is on), applied, and then the key index is rebuilt and published. In cluster mode a change
//! is validated, then published to the cluster's directory stream and applied from it, on
//! every node alike (`persist::logged`; the rules a change must still meet then:
//! `DirectoryState::apply_checked`).
//!
//! The key index (API-key digest -> `Principal`) is an immutable map that the actor replaces
//! after each change (`ArcSwap`); request handlers read it without messaging the actor, so
//! authenticating costs one keyed BLAKE2b (or a recall from the thread's memo of keys that
//! verified, `iam::key_memo`) and one hash lookup. The actor stays the only writer.

mod create;
mod delete;
mod persistence;
mod query;
mod state;
mod update;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use actix::{Actor, Addr, Arbiter, Context};
use arc_swap::ArcSwap;
use serde_json::Value as Json;

pub use query::ListQuery;
pub use state::ResourceKind;
pub use update::Mode as UpdateMode;

use super::scim::etag::Preconditions;
use super::scim::{ScimError, ScimErrorKind};
use super::{parse_authorization, ApiKeyDigest, AuthError, KeyHasher, Principal, PrincipalRef};
use crate::persist::logged::{ChangeLog, LogState, Logged};
use crate::persist::Journal;
use crate::prehashed::Prehashed;
use crate::reported::Condition;
use state::DirectoryState;

/// Digest -> principal, for every key that may call Quiver now; hashed by the digests' own
/// bits (`Prehashed`).
pub type KeyIndex = HashMap<ApiKeyDigest, Arc<Principal>, BuildHasherDefault<Prehashed>>;

pub struct DirectoryActor {
    state: DirectoryState,
    bootstrap_admin: ApiKeyDigest,
    hasher: KeyHasher,
    index: Arc<ArcSwap<KeyIndex>>,
    journal: Option<Journal>,
    /// Cluster mode: changes go to the cluster's stream, not to the journal.
    log: Option<LogState<ScimError>>,
}

impl Actor for DirectoryActor {
    type Context = Context<Self>;
}

impl DirectoryActor {
    /// Rebuilds and publishes the key index after a change.
    fn publish(&self) {
        let mut index: KeyIndex = self.state.key_index();
        index.insert(self.bootstrap_admin, Arc::new(Principal::bootstrap_admin()));
        self.index.store(Arc::new(index));
    }

    /// Journals and applies the changes of one request, then publishes the key index; in
    /// cluster mode, stages them for the stream instead.
    fn commit(&mut self, changes: Vec<state::Change>) -> Result<(), ScimError> {
        if let Some(log) = self.log.as_mut() {
            log.stage(persistence::encode_changes(&changes));
            return Ok(());
        }
        if let Some(journal) = self.journal.as_mut() {
            let record = persistence::encode_changes(&changes);
            journal.append(&record).map_err(|e| {
                let kind = if e.is_unwritable() {
                    ScimErrorKind::Unavailable
                } else {
                    ScimErrorKind::Internal
                };
                ScimError::new(kind, format!("the change could not be journaled: {e}"))
            })?;
        }
        for change in changes {
            self.state.apply(change);
        }
        self.publish();
        Ok(())
    }
}

/// A cheap, cloneable handle on the directory.
#[derive(Clone)]
pub struct Directory {
    addr: Addr<DirectoryActor>,
    index: Arc<ArcSwap<KeyIndex>>,
    hasher: KeyHasher,
    /// Whether the directory's journal refuses writes (its journal sets it).
    journal_unwritable: Condition,
}

impl Directory {
    /// Starts the directory actor on its own thread, its changes going to `log` in cluster
    /// mode. Must be called inside an actix system.
    pub fn start(
        hasher: KeyHasher,
        bootstrap_admin: ApiKeyDigest,
        log: Option<Arc<dyn ChangeLog>>,
    ) -> Directory {
        let index = Arc::new(ArcSwap::from_pointee(KeyIndex::default()));
        let actor = DirectoryActor {
            state: DirectoryState::default(),
            bootstrap_admin,
            hasher: hasher.clone(),
            index: index.clone(),
            journal: None,
            log: log.map(LogState::new),
        };
        actor.publish();
        let addr = DirectoryActor::start_in_arbiter(&Arbiter::new().handle(), move |_| actor);
        Directory {
            addr,
            index,
            hasher,
            journal_unwritable: Condition::default(),
        }
    }

    /// Why the directory's journal refuses writes, while it does.
    pub fn journal_unwritable(&self) -> Option<String> {
        self.journal_unwritable.reason()
    }

    /// The principal behind an `Authorization` header.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Arc<Principal>, AuthError> {
        let key = parse_authorization(header)?;
        let index = self.index.load();
        self.hasher
            .verify(key, |digest| index.get(digest).cloned())
            .ok_or(AuthError::UnknownKey)
    }

    /// Creates a resource; a service account's answer carries its new API key, once, and the
    /// account keeps `caller` as its creator.
    pub async fn create(
        &self,
        kind: ResourceKind,
        body: Json,
        caller: PrincipalRef,
    ) -> Result<Json, ScimError> {
        self.addr
            .send(Logged(create::Create { kind, body, caller }))
            .await
            .unwrap_or_else(|_| Err(gone()))
    }

    /// Replaces (PUT) or patches (PATCH) a resource, if `preconditions` hold for its version.
    pub async fn update(
        &self,
        kind: ResourceKind,
        id: String,
        body: Json,
        mode: UpdateMode,
        preconditions: Preconditions,
    ) -> Result<Json, ScimError> {
        self.addr
            .send(Logged(update::Update {
                kind,
                id,
                body,
                mode,
                preconditions,
            }))
            .await
            .unwrap_or_else(|_| Err(gone()))
    }

    pub async fn delete(
        &self,
        kind: ResourceKind,
        id: String,
        preconditions: Preconditions,
    ) -> Result<(), ScimError> {
        self.addr
            .send(Logged(delete::Delete {
                kind,
                id,
                preconditions,
            }))
            .await
            .unwrap_or_else(|_| Err(gone()))
    }

    pub async fn get(&self, kind: ResourceKind, id: String) -> Result<Json, ScimError> {
        self.addr
            .send(query::Get { kind, id })
            .await
            .unwrap_or_else(|_| Err(gone()))
    }

    /// Who created the service account `id`; `None` when it does not exist or its creator was
    /// not recorded (created before Quiver kept creators).
    pub async fn service_account_creator(&self, id: String) -> Option<PrincipalRef> {
        self.addr.send(query::CreatorOf { id }).await.ok().flatten()
    }

    /// Every matching resource, rendered, in order.
    pub async fn list(&self, query: ListQuery) -> Result<Vec<Json>, ScimError> {
        self.addr.send(query).await.unwrap_or_else(|_| Err(gone()))
    }
}

fn gone() -> ScimError {
    ScimError::new(ScimErrorKind::Internal, "the directory is not running")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::iam::PrincipalKind;
    use crate::persist::logged::loopback::LoopbackLog;

    /// A create on `node`, as the admin, running on its own.
    fn create(
        node: &Directory,
        kind: ResourceKind,
        body: Json,
    ) -> tokio::task::JoinHandle<Result<Json, ScimError>> {
        let caller = PrincipalRef {
            kind: PrincipalKind::User,
            id: "admin".into(),
            name: None,
        };
        let node = node.clone();
        actix::spawn(async move { node.create(kind, body, caller).await })
    }

    #[test]
    fn nodes_apply_the_log_alike_and_the_writer_of_a_losing_change_is_told() {
        actix::System::new().block_on(async {
            let log = Arc::new(LoopbackLog::default());
            let hasher = KeyHasher::random();
            let admin = hasher.digest("admin key");
            let start = || Directory::start(hasher.clone(), admin, Some(log.clone()));
            let (a, b) = (start(), start());
            // Both nodes check `bo` against a state without it, and publish.
            let on_a = create(
                &a,
                ResourceKind::User,
                json!({"userName": "bo@example.com"}),
            );
            let on_b = create(
                &b,
                ResourceKind::User,
                json!({"userName": "BO@example.com"}),
            );
            log.deliver(2, &[&a.persistence(), &b.persistence()]).await;
            let (on_a, on_b) = (on_a.await.unwrap(), on_b.await.unwrap());
            // The log's order decides: the first record won, the second is refused on both.
            let (won, lost) = if on_a.is_ok() {
                (on_a, on_b)
            } else {
                (on_b, on_a)
            };
            assert!(won.is_ok(), "{won:?}");
            assert_eq!(lost.unwrap_err().kind, ScimErrorKind::Uniqueness);
            for node in [&a, &b] {
                let users = node
                    .list(ListQuery {
                        kind: ResourceKind::User,
                        filter: None,
                        sort_by: None,
                        descending: false,
                    })
                    .await
                    .unwrap();
                assert_eq!(users.len(), 1);
                assert_eq!(users[0]["id"], won.as_ref().unwrap()["id"]);
            }
            // A key made on one node authenticates on the other once it applied the log.
            let account = create(&a, ResourceKind::ServiceAccount, json!({"name": "ci"}));
            log.deliver(1, &[&a.persistence(), &b.persistence()]).await;
            let account = account.await.unwrap().unwrap();
            let header = format!("Tecton-key {}", account["apiKey"].as_str().unwrap());
            assert_eq!(b.authenticate(Some(&header)).unwrap().id, account["id"]);
        });
    }
}

//! The secrets vault: one actor owning every Tecton secret scope, TrueFoundry secret group and
//! Tinybird secret, their versions and the role assignments on scopes. Values are sealed with
//! the master key (`crypto.rs`) before they reach the state, the journal or a snapshot, and are
//! opened only to answer a caller allowed to read them. One file per API family (`tecton.rs`,
//! `truefoundry.rs`, `tinybird.rs`), each holding that family's messages (one per operation,
//! each with its own typed answer), plus persistence and key rotation, and the `tb_secret`
//! template renderer. The vault speaks its own types and `SecretsError`; the vendors' JSON and
//! error words are `http::wire`'s. In cluster mode a request's changes go to the cluster's
//! vault stream (sealed as journaled) and are applied from it on every node (`persist::logged`;
//! the rules a change must still meet then: `VaultState::apply_checked`).

/// Declares a vault message: its fields and its typed answer (and its cluster-mode wrapper's
/// handler, `persist::logged`).
macro_rules! message {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $type:ty),* } -> $answer:ty) => {
        $(#[$doc])*
        struct $name {
            $($field: $type),*
        }

        impl Message for $name {
            type Result = Result<$answer, SecretsError>;
        }

        $crate::persist::logged::logged_handler!(VaultActor, $name, $answer);
    };
}

pub mod crypto;
pub mod persistence;
pub mod state;
pub mod tecton;
pub mod template;
pub mod tinybird;
pub mod truefoundry;

use std::path::PathBuf;
use std::sync::Arc;

use actix::{Actor, Addr, Arbiter, Context, Handler, Message};

use crate::echo::echo;
use crate::iam::Principal;
use crate::persist::logged::{ChangeLog, LogState, Logged};
use crate::persist::Journal;
use crate::reported::Condition;
use crypto::{MasterKey, Plaintext};
use state::{Change, ScopeRole, VaultState};

/// What went wrong in the vault, in its own terms: each API family's wire module
/// (`http/wire/*`) turns it into that vendor's status and words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("{} `{}` must be {}", kind.what(), echo(name), kind.rule())]
    InvalidName { kind: NameKind, name: String },
    #[error("a secret value is at most {max_bytes} bytes")]
    ValueTooLarge { max_bytes: usize },
    #[error("a page holds 1 to {max} items, not {limit}")]
    InvalidPage { limit: usize, max: usize },

    #[error("Secret scope `{}` not found", echo(.0))]
    ScopeNotFound(String),
    #[error("Secret scope `{}` already exists", echo(.0))]
    ScopeExists(String),
    #[error("Secret `{}` not found in scope `{}`", echo(key), echo(scope))]
    ScopeSecretNotFound { scope: String, key: String },
    #[error("`{principal}` needs {} on secret scope `{}`", needed.name(), echo(scope))]
    ScopeRoleNeeded {
        principal: String,
        scope: String,
        needed: ScopeRole,
    },
    /// A scope that still holds secrets cannot be deleted.
    #[error(
        "Secret scope `{}` still holds {secrets} secret(s); delete them before deleting the scope",
        echo(scope)
    )]
    ScopeNotEmpty { scope: String, secrets: usize },
    #[error("secret scope `{}` already holds {max_secrets} secrets, the most a scope may hold; delete one or use another scope", echo(scope))]
    ScopeFull { scope: String, max_secrets: usize },

    #[error(
        "secret group '{}' may hold at most {max_secrets} secrets",
        echo(group)
    )]
    GroupFull { group: String, max_secrets: usize },
    #[error("Secret group with id '{}' not found", echo(.0))]
    GroupNotFound(String),
    #[error("Secret with id '{}' not found", echo(.0))]
    GroupSecretNotFound(String),
    #[error("Secret group '{}' already exists", echo(.0))]
    GroupExists(String),
    /// An upsert by name met a group its caller neither created nor administers as a
    /// collaborator: adopting it would leave its creator reading what the caller writes.
    #[error("Secret group '{}' already exists and is owned by another principal; it was not changed: use another name, or ask one of its admins to add you as a `secret-group-admin` collaborator", echo(.0))]
    GroupOwnedByAnother(String),
    /// Named by what the caller asked for (`asked`: the group's or the secret's id), never by
    /// the group's name, which a caller with no part in the group has no business learning.
    #[error("`{principal}` has no access to {} '{}'", asked.noun(), echo(id))]
    NoGroupAccess {
        principal: String,
        asked: AskedBy,
        id: String,
    },
    /// The caller sees the group but needs a stronger role for this.
    #[error("`{principal}` may not change secret group '{}'", echo(group))]
    GroupAccessNeeded { principal: String, group: String },
    /// In cluster mode: a group's key that another node added or deleted after this request
    /// read the group (its record is refused whole when applied).
    #[error("secret key `{}` of secret group '{}' was {what} by another request meanwhile; nothing of this change was made: read the group and send it again", echo(key), echo(group))]
    GroupKeyChangedMeanwhile {
        group: String,
        key: String,
        what: &'static str,
    },
    #[error("secret key `{}` appears twice", echo(.0))]
    DuplicateKey(String),
    #[error("new secret key `{}` needs a value", echo(.0))]
    NewKeyWithoutValue(String),

    #[error("Tinybird secret `{}` not found", echo(.0))]
    TinybirdNotFound(String),
    #[error("Tinybird secret `{}` already exists", echo(.0))]
    TinybirdExists(String),
    #[error("a workspace holds at most {max_secrets} Tinybird secrets")]
    TinybirdFull { max_secrets: usize },
    #[error("too many requests: retry after {retry_after_secs} seconds")]
    RateLimited { retry_after_secs: u64 },

    /// A stored value failed authentication: altered, moved, or sealed under another key.
    #[error("{record} could not be decrypted: its stored ciphertext was altered or sealed under another key")]
    Tampered { record: SecretRef },
    #[error("{0}")]
    Internal(String),
    /// Writes are refused until the journal can be repaired.
    #[error("{0}")]
    Unavailable(String),
}

/// How a request named the TrueFoundry group it was refused: by the group's id or by the id of
/// a secret in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskedBy {
    GroupId,
    SecretId,
}

impl AskedBy {
    fn noun(self) -> &'static str {
        match self {
            AskedBy::GroupId => "secret group with id",
            AskedBy::SecretId => "the secret group of secret with id",
        }
    }
}

/// Which naming rule a name broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Scope,
    ScopeKey,
    Group,
    GroupKey,
    Tinybird,
}

impl NameKind {
    pub fn what(self) -> &'static str {
        match self {
            NameKind::Scope => "scope name",
            NameKind::ScopeKey | NameKind::GroupKey => "secret key",
            NameKind::Group => "group name",
            NameKind::Tinybird => "secret name",
        }
    }

    pub fn rule(self) -> &'static str {
        match self {
            NameKind::Scope | NameKind::ScopeKey => {
                "1-128 letters, digits, `_`, `-` or `.`, other than `.` and `..`"
            }
            NameKind::Group | NameKind::GroupKey => {
                "1-128 letters, digits, `.`, `_` or `-`, at least one a letter or digit"
            }
            NameKind::Tinybird => {
                "a letter or `_`, then letters, digits and `_`, at most 255 characters"
            }
        }
    }
}

/// The stored secret an error is about (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Scope {
        scope: String,
        key: String,
    },
    /// A TrueFoundry secret, in its tenant.
    Group {
        tenant: String,
        group: String,
        key: String,
    },
    Tinybird {
        name: String,
    },
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Scope { scope, key } => write!(f, "secret `{scope}/{key}`"),
            SecretRef::Group { group, key, .. } => write!(f, "secret `{group}:{key}`"),
            SecretRef::Tinybird { name } => write!(f, "secret `{name}`"),
        }
    }
}

pub struct VaultActor {
    state: VaultState,
    /// The current key, then (after an interrupted rotation) the one being rotated to.
    keys: Vec<MasterKey>,
    key_file: Option<PathBuf>,
    journal: Option<Journal>,
    /// Cluster mode: changes go to the cluster's stream, not to the journal.
    log: Option<LogState<SecretsError>>,
    tinybird_requests: tinybird::RequestLimiter,
    /// TrueFoundry's tenant (fqn prefix) and account.
    tenant: String,
}

impl Actor for VaultActor {
    type Context = Context<Self>;
}

impl VaultActor {
    fn seal(&self, value: &Plaintext, identity: &str) -> Vec<u8> {
        self.keys[0].seal(value, identity)
    }

    /// Opens a stored value; the error names the record, never the value.
    fn open(
        &self,
        ciphertext: &[u8],
        identity: &str,
        record: impl FnOnce() -> SecretRef,
    ) -> Result<Plaintext, SecretsError> {
        self.keys
            .iter()
            .find_map(|key| key.open(ciphertext, identity))
            .ok_or_else(|| {
                let record = record();
                tracing::error!(%record, "a stored secret failed authentication");
                SecretsError::Tampered { record }
            })
    }

    /// Journals (fsync, one record) and applies a request's changes; in cluster mode, stages
    /// them for the stream instead.
    fn commit(&mut self, changes: Vec<Change>) -> Result<(), SecretsError> {
        if changes.is_empty() {
            return Ok(());
        }
        if let Some(log) = self.log.as_mut() {
            log.stage(persistence::encode_changes(&changes));
            return Ok(());
        }
        if let Some(journal) = self.journal.as_mut() {
            journal
                .append(&persistence::encode_changes(&changes))
                .map_err(|e| {
                    let message = format!("the change could not be journaled: {e}");
                    if e.is_unwritable() {
                        SecretsError::Unavailable(message)
                    } else {
                        SecretsError::Internal(message)
                    }
                })?;
        }
        for change in changes {
            self.state.apply(change);
        }
        Ok(())
    }
}

/// A cheap, cloneable handle on the vault: one method per operation, each one message to the
/// actor (the messages live with their API family: `tecton.rs`, `truefoundry.rs`,
/// `tinybird.rs`, `persistence.rs`).
#[derive(Clone)]
pub struct Vault {
    addr: Addr<VaultActor>,
    /// TrueFoundry's tenant, a constant known without asking the actor.
    tenant: Arc<str>,
    /// Whether the vault's journal refuses writes (its journal sets it).
    journal_unwritable: Condition,
}

impl Vault {
    /// Starts the vault on its own thread with its master key(s), its changes going to `log`
    /// in cluster mode. Must be called inside an actix system.
    pub fn start(
        keys: Vec<MasterKey>,
        key_file: Option<PathBuf>,
        tenant: String,
        log: Option<Arc<dyn ChangeLog>>,
    ) -> Vault {
        let actor = VaultActor {
            state: VaultState::default(),
            keys,
            key_file,
            journal: None,
            log: log.map(LogState::new),
            tinybird_requests: tinybird::RequestLimiter::default(),
            tenant: tenant.clone(),
        };
        Vault {
            addr: VaultActor::start_in_arbiter(&Arbiter::new().handle(), move |_| actor),
            tenant: tenant.into(),
            journal_unwritable: Condition::default(),
        }
    }

    /// Why the vault's journal refuses writes, while it does.
    pub fn journal_unwritable(&self) -> Option<String> {
        self.journal_unwritable.reason()
    }

    /// TrueFoundry's tenant name (the first part of every fqn).
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Sends one message and waits for its answer (in cluster mode, for its changes to be
    /// applied from the stream).
    async fn ask<M, T>(&self, message: M) -> Result<T, SecretsError>
    where
        M: Message<Result = Result<T, SecretsError>> + Send + 'static,
        T: Send + 'static,
        VaultActor: Handler<Logged<M>>,
    {
        self.addr
            .send(Logged(message))
            .await
            .unwrap_or_else(|e| Err(gone(e)))
    }
}

fn gone<T>(_: T) -> SecretsError {
    SecretsError::Internal("the vault is not running".to_string())
}

/// The caller of a vault request.
pub type Caller = Arc<Principal>;

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::truefoundry::PageRequest;
    use super::*;
    use crate::persist::logged::loopback::LoopbackLog;

    /// A vault node on `log`. Each node seals with a key of its own: no value is opened here.
    fn node(log: &Arc<LoopbackLog>) -> Vault {
        let log: Arc<dyn ChangeLog> = log.clone();
        Vault::start(vec![MasterKey::random()], None, "t".into(), Some(log))
    }

    /// Runs `request` on both nodes, each checking it against a state without the other's
    /// record, then delivers both records to both nodes; answers the two outcomes.
    async fn at_once<T: 'static, F: Future<Output = Result<T, SecretsError>> + 'static>(
        log: &LoopbackLog,
        nodes: [&Vault; 2],
        request: impl Fn(Vault) -> F,
    ) -> Vec<Result<T, SecretsError>> {
        let asked: Vec<_> = nodes
            .iter()
            .map(|node| actix::spawn(request((*node).clone())))
            .collect();
        log.deliver(2, &[&nodes[0].persistence(), &nodes[1].persistence()])
            .await;
        let mut outcomes = Vec::new();
        for outcome in asked {
            outcomes.push(outcome.await.unwrap());
        }
        outcomes
    }

    /// The one outcome that won; the other must be `refusal`.
    fn winner<T: std::fmt::Debug>(
        outcomes: Vec<Result<T, SecretsError>>,
        refusal: SecretsError,
    ) -> T {
        let (won, lost): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(Result::is_ok);
        assert_eq!(lost.len(), 1, "one of two creations is refused: {won:?}");
        assert_eq!(lost.into_iter().next().unwrap().unwrap_err(), refusal);
        won.into_iter().next().unwrap().unwrap()
    }

    #[test]
    fn a_name_created_on_two_nodes_at_once_is_created_once_on_both() {
        actix::System::new().block_on(async {
            let log = Arc::new(LoopbackLog::default());
            let (a, b) = (node(&log), node(&log));
            let admin: Caller = Arc::new(Principal::bootstrap_admin());
            let value = || Plaintext("v".into());

            let scopes = at_once(&log, [&a, &b], |node| {
                let admin = admin.clone();
                async move { node.create_scope(admin, "ops".into()).await }
            })
            .await;
            winner(scopes, SecretsError::ScopeExists("ops".into()));
            for node in [&a, &b] {
                assert_eq!(node.list_scopes().await.unwrap(), ["ops"]);
            }

            let groups = at_once(&log, [&a, &b], |node| {
                let admin = admin.clone();
                async move {
                    node.create_group(admin, "grp".into(), None, vec![("K".into(), value())])
                        .await
                }
            })
            .await;
            let group = winner(groups, SecretsError::GroupExists("grp".into()));
            // An upsert by name that creates the group meets the other's creation alike.
            let upserts = at_once(&log, [&a, &b], |node| {
                let admin = admin.clone();
                let manifest = serde_json::json!({"name": "up"});
                async move {
                    node.upsert_group(admin, "up".into(), None, manifest, false)
                        .await
                }
            })
            .await;
            let upserted = winner(upserts, SecretsError::GroupExists("up".into()));
            let page = PageRequest {
                limit: 10,
                offset: 0,
            };
            for node in [&a, &b] {
                let listed = node
                    .list_groups(admin.clone(), page, None, None)
                    .await
                    .unwrap();
                let ids: Vec<&str> = listed.items.iter().map(|g| g.id.as_str()).collect();
                let mut expected = [group.id.as_str(), upserted.id.as_str()];
                expected.sort();
                assert_eq!(ids, expected);
                let keys: Vec<&String> =
                    listed.items.iter().flat_map(|g| g.secrets.keys()).collect();
                assert_eq!(keys, ["K"], "the refused creation put none of its secrets");
            }

            let tinybird = at_once(&log, [&a, &b], |node| {
                let admin = admin.clone();
                async move { node.create_tinybird(admin, "tb".into(), value()).await }
            })
            .await;
            winner(tinybird, SecretsError::TinybirdExists("tb".into()));
            for node in [&a, &b] {
                let (listed, _) = node.list_tinybird().await.unwrap();
                assert_eq!(listed.len(), 1);
            }
        });
    }

    /// A group or key an older build made under looser name rules (`-` alone) is still
    /// upserted by its name and kept by an update; only new names and keys meet the rule.
    #[test]
    fn an_older_builds_group_and_key_of_punctuation_keep_working() {
        use state::{Group, Sealed, TfSecret, TfVersion};
        actix::System::new().block_on(async {
            let log = Arc::new(LoopbackLog::default());
            let vault = node(&log);
            let admin: Caller = Arc::new(Principal::bootstrap_admin());
            let older = Group {
                id: "g-old".into(),
                name: "-".into(),
                integration_id: None,
                manifest: None,
                created_by: admin.to_ref(),
                created: 1,
                updated: 1,
                secrets: Default::default(),
            };
            let sealed = Sealed {
                ciphertext: vec![0],
                version: Sealed::FIRST_VERSION,
                created: 1,
                updated: 1,
            };
            let key = TfSecret {
                id: "s-old".into(),
                key: "-".into(),
                created: 1,
                updated: 1,
                versions: vec![TfVersion {
                    id: "v-old".into(),
                    sealed,
                }],
            };
            let record = persistence::encode_changes(&[
                Change::PutGroup(older),
                Change::PutGroupSecret {
                    group_id: "g-old".into(),
                    secret: key,
                },
            ]);
            log.publish("older".into(), record).await.unwrap();
            log.deliver(1, &[&vault.persistence()]).await;

            let value = || Some(Plaintext("v".into()));
            let refused = vault
                .update_group(
                    admin.clone(),
                    "g-old".into(),
                    vec![("-".into(), None), (".".into(), value())],
                )
                .await;
            assert!(
                matches!(refused, Err(SecretsError::InvalidName { ref name, .. }) if name == "."),
                "{refused:?}"
            );
            // One request at a time: its record is delivered, then it is answered.
            async fn made<T: 'static>(
                log: &LoopbackLog,
                vault: &Vault,
                asked: impl Future<Output = T> + 'static,
            ) -> T {
                let answer = actix::spawn(asked);
                log.deliver(1, &[&vault.persistence()]).await;
                answer.await.unwrap()
            }
            let (asking, caller) = (vault.clone(), admin.clone());
            let update = async move {
                let keys = vec![("-".into(), None), ("new".into(), value())];
                asking.update_group(caller, "g-old".into(), keys).await
            };
            // The update's answer is the group as it left it (in cluster mode too), as a read.
            let answered = made(&log, &vault, update).await.unwrap();
            let read = vault
                .get_group(admin.clone(), "g-old".into())
                .await
                .unwrap();
            let keys: Vec<_> = read.secrets.keys().collect();
            assert_eq!(keys, ["-", "new"]);
            assert_eq!(answered, read);
            let asking = vault.clone();
            let upsert = async move {
                let manifest = serde_json::json!({"name": "-"});
                asking
                    .upsert_group(admin, "-".into(), None, manifest, false)
                    .await
            };
            let upserted = made(&log, &vault, upsert).await.unwrap();
            assert_eq!(upserted.id, "g-old");
        });
    }
}

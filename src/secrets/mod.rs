//! The secrets vault: one actor owning every Tecton secret scope, TrueFoundry secret group and
//! Tinybird secret, their versions and the role assignments on scopes. Values are sealed with
//! the master key (`crypto.rs`) before they reach the state, the journal or a snapshot, and are
//! opened only to answer a caller allowed to read them. One file per API family (`tecton.rs`,
//! `truefoundry.rs`, `tinybird.rs`), plus persistence and key rotation, and the `tb_secret`
//! template renderer.

pub mod crypto;
pub mod persistence;
pub mod state;
pub mod tecton;
pub mod template;
pub mod tinybird;
pub mod truefoundry;

use std::path::PathBuf;
use std::sync::Arc;

use actix::{Actor, Addr, Arbiter, Context};

use crate::iam::Principal;
use crate::persist::Journal;
use crypto::{MasterKey, Plaintext};
use state::{Change, VaultState};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    /// A scope that still holds secrets cannot be deleted.
    #[error("{0}")]
    NotEmpty(String),
    /// A stored value failed authentication: altered, moved, or sealed under another key.
    #[error("{0}")]
    Tampered(String),
    #[error("{0}")]
    LimitReached(String),
    #[error("too many requests: retry after {retry_after_secs} seconds")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    Internal(String),
    /// Writes are refused until the journal can be repaired.
    #[error("{0}")]
    Unavailable(String),
}

pub struct VaultActor {
    state: VaultState,
    /// The current key, then (after an interrupted rotation) the one being rotated to.
    keys: Vec<MasterKey>,
    key_file: Option<PathBuf>,
    journal: Option<Journal>,
    tinybird_writes: tinybird::WriteLimiter,
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
        what: &str,
    ) -> Result<Plaintext, SecretsError> {
        self.keys.iter().find_map(|key| key.open(ciphertext, identity)).ok_or_else(|| {
            tracing::error!(record = what, "a stored secret failed authentication");
            SecretsError::Tampered(format!("{what} could not be decrypted: its stored ciphertext was altered or sealed under another key"))
        })
    }

    /// Journals (fsync, one record) and applies a request's changes.
    fn commit(&mut self, changes: Vec<Change>) -> Result<(), SecretsError> {
        if changes.is_empty() {
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

/// A cheap, cloneable handle on the vault.
#[derive(Clone)]
pub struct Vault {
    addr: Addr<VaultActor>,
}

impl Vault {
    /// Starts the vault on its own thread with its master key(s). Must be called inside an
    /// actix system.
    pub fn start(keys: Vec<MasterKey>, key_file: Option<PathBuf>, tenant: String) -> Vault {
        let actor = VaultActor {
            state: VaultState::default(),
            keys,
            key_file,
            journal: None,
            tinybird_writes: tinybird::WriteLimiter::default(),
            tenant,
        };
        Vault {
            addr: VaultActor::start_in_arbiter(&Arbiter::new().handle(), move |_| actor),
        }
    }
}

fn gone<T>(_: T) -> SecretsError {
    SecretsError::Internal("the vault is not running".to_string())
}

/// The caller of a vault request.
pub type Caller = Arc<Principal>;

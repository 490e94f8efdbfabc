//! Identity: who is calling. API keys are random 32-byte secrets shown once; only their BLAKE2b
//! digest (orion) is kept, so neither memory nor the data directory reveals a key.
//!
//! This version knows one principal, the bootstrap admin, whose key comes from
//! `QUIVER_ADMIN_KEY` or is generated at first start and printed once.

mod api_key;

pub use api_key::{generate_api_key, ApiKeyDigest};

use std::path::Path;

/// An authenticated caller, with everything an authorisation decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// Stable id (the directory's id for users and service accounts).
    pub id: String,
    pub name: String,
    /// Tecton's `account_type=admin`: may do everything.
    pub is_admin: bool,
    /// Ids of the groups the principal belongs to.
    pub groups: Vec<String>,
    /// Workspace roles, direct and inherited from groups.
    pub workspace_roles: Vec<WorkspaceRole>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The key from `QUIVER_ADMIN_KEY` or generated at first start.
    BootstrapAdmin,
    User,
    ServiceAccount,
}

/// A role on one workspace, or on all of them (`workspace: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceRole {
    pub workspace: Option<String>,
    pub role: Role,
}

/// Tecton's workspace roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Editor,
    Consumer,
    Operator,
    Viewer,
}

impl Principal {
    /// The bootstrap admin.
    pub fn bootstrap_admin() -> Principal {
        Principal {
            kind: PrincipalKind::BootstrapAdmin,
            id: "bootstrap-admin".to_string(),
            name: "bootstrap admin".to_string(),
            is_admin: true,
            groups: Vec::new(),
            workspace_roles: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing Authorization header (expected `Authorization: Tecton-key <key>`)")]
    MissingHeader,
    #[error("invalid 'Tecton-key' authorization header")]
    Malformed,
    #[error("invalid 'Tecton-key' authorization header")]
    UnknownKey,
}

/// The keys the server accepts.
#[derive(Debug, Clone)]
pub struct Keyring {
    admin: ApiKeyDigest,
}

/// Where the bootstrap admin key came from, for the start-up log.
#[derive(Debug)]
pub enum AdminKeySource {
    /// `QUIVER_ADMIN_KEY`.
    Environment,
    /// A digest saved by an earlier start in the data directory.
    DataDir,
    /// Generated now: the key, to print once.
    Generated(String),
}

const ADMIN_DIGEST_FILE: &str = "admin_key.digest";

impl Keyring {
    /// The admin key from the environment value, else the digest stored in `data_dir`, else a new
    /// key (whose digest is stored in `data_dir` when there is one).
    pub fn bootstrap(
        env_key: Option<&str>,
        data_dir: Option<&Path>,
    ) -> std::io::Result<(Keyring, AdminKeySource)> {
        if let Some(key) = env_key.filter(|k| !k.is_empty()) {
            return Ok((
                Keyring {
                    admin: ApiKeyDigest::of(key),
                },
                AdminKeySource::Environment,
            ));
        }
        if let Some(dir) = data_dir {
            let path = dir.join(ADMIN_DIGEST_FILE);
            if let Ok(bytes) = std::fs::read(&path) {
                if let Some(digest) = ApiKeyDigest::from_bytes(&bytes) {
                    return Ok((Keyring { admin: digest }, AdminKeySource::DataDir));
                }
            }
        }
        let key = generate_api_key();
        let digest = ApiKeyDigest::of(&key);
        if let Some(dir) = data_dir {
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join(ADMIN_DIGEST_FILE), digest.as_bytes())?;
        }
        Ok((Keyring { admin: digest }, AdminKeySource::Generated(key)))
    }

    /// Checks an `Authorization` header value: `Tecton-key <key>` (scheme case-insensitive) or
    /// `Bearer <key>`.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::MissingHeader)?.trim();
        let (scheme, key) = header.split_once(' ').ok_or(AuthError::Malformed)?;
        if !(scheme.eq_ignore_ascii_case("tecton-key") || scheme.eq_ignore_ascii_case("bearer")) {
            return Err(AuthError::Malformed);
        }
        let key = key.trim();
        if key.is_empty() {
            return Err(AuthError::Malformed);
        }
        if self.admin.matches(key) {
            Ok(Principal::bootstrap_admin())
        } else {
            Err(AuthError::UnknownKey)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_keys() {
        let (keyring, _) = Keyring::bootstrap(Some("secret-key"), None).unwrap();
        assert_eq!(
            keyring.authenticate(Some("Tecton-key secret-key")),
            Ok(Principal::bootstrap_admin())
        );
        assert_eq!(
            keyring.authenticate(Some("tecton-KEY secret-key")),
            Ok(Principal::bootstrap_admin())
        );
        assert_eq!(
            keyring.authenticate(Some("Bearer secret-key")),
            Ok(Principal::bootstrap_admin())
        );
        assert_eq!(
            keyring.authenticate(Some("Basic secret-key")),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            keyring.authenticate(Some("Tecton-key other")),
            Err(AuthError::UnknownKey)
        );
        assert_eq!(keyring.authenticate(None), Err(AuthError::MissingHeader));
    }

    #[test]
    fn a_generated_key_is_remembered_by_digest_only() {
        let dir = tempfile::tempdir().unwrap();
        let (_, source) = Keyring::bootstrap(None, Some(dir.path())).unwrap();
        let AdminKeySource::Generated(key) = source else {
            panic!("expected a new key")
        };
        let stored = std::fs::read(dir.path().join(ADMIN_DIGEST_FILE)).unwrap();
        assert!(!stored.windows(key.len()).any(|w| w == key.as_bytes()));
        let (again, source) = Keyring::bootstrap(None, Some(dir.path())).unwrap();
        assert!(matches!(source, AdminKeySource::DataDir));
        assert_eq!(
            again.authenticate(Some(&format!("Tecton-key {key}"))),
            Ok(Principal::bootstrap_admin())
        );
    }
}

//! Identity: who is calling, and what they may do.
//!
//! The directory actor (`directory/`) owns users, groups and service accounts; SCIM logic that
//! does not need HTTP is in `scim/`. API keys are random 32-byte secrets shown once; only a
//! keyed digest (`api_key.rs`) is kept. `roles.rs` reads Tecton's role encoding. The bootstrap
//! admin key comes from `QUIVER_ADMIN_KEY` or is generated at first start and printed once.

mod api_key;
pub mod directory;
mod key_memo;
pub mod roles;
pub mod scim;

use std::path::Path;

use crate::persist::format::{PrincipalKindV1, PrincipalRefV1};

pub use api_key::{generate_api_key, ApiKeyDigest, KeyHasher};
pub use directory::Directory;
pub use roles::{Grants, Role, WorkspaceRole};

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
    /// Secret-scope roles given through SCIM `secret_scope_<scope>` entries.
    pub secret_scope_roles: Vec<(String, String)>,
}

/// Who did something, kept with what they did (the creator of a service account or of a
/// TrueFoundry secret group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRef {
    pub kind: PrincipalKind,
    pub id: String,
    /// The principal's name when it acted; `None` when recorded before names were kept.
    pub name: Option<String>,
}

impl PrincipalRef {
    /// As the directory and the vault store it.
    pub fn to_disk(&self) -> PrincipalRefV1 {
        PrincipalRefV1 {
            kind: match self.kind {
                PrincipalKind::BootstrapAdmin => PrincipalKindV1::BootstrapAdmin,
                PrincipalKind::User => PrincipalKindV1::User,
                PrincipalKind::ServiceAccount => PrincipalKindV1::ServiceAccount,
            },
            id: self.id.clone(),
            name: self.name.clone(),
        }
    }

    pub fn from_disk(stored: PrincipalRefV1) -> PrincipalRef {
        PrincipalRef {
            kind: match stored.kind {
                PrincipalKindV1::BootstrapAdmin => PrincipalKind::BootstrapAdmin,
                PrincipalKindV1::User => PrincipalKind::User,
                PrincipalKindV1::ServiceAccount => PrincipalKind::ServiceAccount,
            },
            id: stored.id,
            name: stored.name,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The key from `QUIVER_ADMIN_KEY` or generated at first start.
    BootstrapAdmin,
    User,
    ServiceAccount,
}

/// What an endpoint needs; each route states its permission explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission<'a> {
    /// GetFeatures: consumer on the workspace.
    ReadFeatures(&'a str),
    /// Metadata, dry-run ingest: viewer.
    ReadMetadata(&'a str),
    /// Ingest: editor.
    WriteFeatures(&'a str),
    /// SCIM, operator endpoints: `account_type=admin`.
    Admin,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing Authorization header (expected `Authorization: Tecton-key <key>`)")]
    MissingHeader,
    #[error("invalid 'Tecton-key' authorization header")]
    Malformed,
    #[error("invalid 'Tecton-key' authorization header")]
    UnknownKey,
    #[error("{principal} lacks {needed} on workspace `{workspace}`")]
    MissingRole {
        principal: String,
        needed: &'static str,
        workspace: String,
    },
    #[error("{0} is not an admin")]
    NotAdmin(String),
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
            secret_scope_roles: Vec::new(),
        }
    }

    /// The principal as its actions record it.
    pub fn to_ref(&self) -> PrincipalRef {
        PrincipalRef {
            kind: self.kind,
            id: self.id.clone(),
            name: Some(self.name.clone()),
        }
    }

    /// Whether any of the principal's roles on `workspace` includes `needed`.
    pub fn has_role(&self, workspace: &str, needed: Role) -> bool {
        self.is_admin
            || self.workspace_roles.iter().any(|r| {
                r.workspace.as_deref().is_none_or(|w| w == workspace) && r.role.includes(needed)
            })
    }

    /// Checks a permission; the error says who lacks what.
    pub fn require(&self, permission: Permission) -> Result<(), AuthError> {
        let (workspace, needed, label) = match permission {
            Permission::Admin => {
                return if self.is_admin {
                    Ok(())
                } else {
                    Err(AuthError::NotAdmin(self.describe()))
                };
            }
            Permission::ReadFeatures(ws) => (ws, Role::Consumer, "the consumer role"),
            Permission::ReadMetadata(ws) => (ws, Role::Viewer, "the viewer role"),
            Permission::WriteFeatures(ws) => (ws, Role::Editor, "the editor role"),
        };
        if self.has_role(workspace, needed) {
            Ok(())
        } else {
            Err(AuthError::MissingRole {
                principal: self.describe(),
                needed: label,
                workspace: workspace.to_string(),
            })
        }
    }

    fn describe(&self) -> String {
        match self.kind {
            PrincipalKind::BootstrapAdmin => "the bootstrap admin".to_string(),
            PrincipalKind::User => format!("user `{}`", self.name),
            PrincipalKind::ServiceAccount => format!("service account `{}`", self.name),
        }
    }
}

/// The schemes an `Authorization` value may name, in lower case.
const AUTHORIZATION_SCHEMES: [&[u8]; 2] = [b"tecton-key", b"bearer"];

/// Reads `Tecton-key <key>` (scheme case-insensitive) or `Bearer <key>` from an
/// `Authorization` header value, surrounding whitespace aside.
pub fn parse_authorization(header: Option<&str>) -> Result<&str, AuthError> {
    // The scheme is matched in place as the bytes before the first space: splitting at the
    // space with a `char` searcher and trimming the value's end as well made it ~400
    // instructions, ~225 now; the key's own trim takes the value's trailing whitespace.
    let header = header.ok_or(AuthError::MissingHeader)?.trim_start();
    let bytes = header.as_bytes();
    let after_scheme = AUTHORIZATION_SCHEMES
        .iter()
        .find(|scheme| {
            bytes.get(scheme.len()) == Some(&b' ')
                && bytes[..scheme.len()].eq_ignore_ascii_case(scheme)
        })
        .ok_or(AuthError::Malformed)?
        .len()
        + 1;
    // After an ASCII space: a character boundary.
    let key = header[after_scheme..].trim();
    if key.is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(key)
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

/// The bootstrap admin key's digest: from the environment value, else the digest stored in
/// `data_dir`, else a new key (whose digest is stored in `data_dir` when there is one).
pub fn bootstrap_admin(
    env_key: Option<&str>,
    data_dir: Option<&Path>,
    hasher: &KeyHasher,
) -> std::io::Result<(ApiKeyDigest, AdminKeySource)> {
    if let Some(key) = env_key.filter(|k| !k.is_empty()) {
        return Ok((hasher.digest(key), AdminKeySource::Environment));
    }
    if let Some(dir) = data_dir {
        if let Some(digest) = std::fs::read(dir.join(ADMIN_DIGEST_FILE))
            .ok()
            .and_then(|b| ApiKeyDigest::from_bytes(&b))
        {
            return Ok((digest, AdminKeySource::DataDir));
        }
    }
    let key = generate_api_key();
    let digest = hasher.digest(&key);
    if let Some(dir) = data_dir {
        std::fs::create_dir_all(dir)?;
        api_key::write_private(&dir.join(ADMIN_DIGEST_FILE), &digest.0)?;
    }
    Ok((digest, AdminKeySource::Generated(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_schemes() {
        assert_eq!(parse_authorization(Some("Tecton-key abc")), Ok("abc"));
        assert_eq!(parse_authorization(Some("tecton-KEY abc")), Ok("abc"));
        assert_eq!(parse_authorization(Some("Bearer abc")), Ok("abc"));
        assert_eq!(
            parse_authorization(Some("Basic abc")),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            parse_authorization(Some("Bearer ")),
            Err(AuthError::Malformed)
        );
        assert_eq!(parse_authorization(None), Err(AuthError::MissingHeader));
    }

    /// The reading `parse_authorization` replaced: trim, split at the first space, compare the
    /// scheme, trim the key.
    fn split_authorization(header: Option<&str>) -> Result<&str, AuthError> {
        let header = header.ok_or(AuthError::MissingHeader)?.trim();
        let (scheme, key) = header.split_once(' ').ok_or(AuthError::Malformed)?;
        if !(scheme.eq_ignore_ascii_case("tecton-key") || scheme.eq_ignore_ascii_case("bearer")) {
            return Err(AuthError::Malformed);
        }
        Some(key.trim())
            .filter(|key| !key.is_empty())
            .ok_or(AuthError::Malformed)
    }

    proptest::proptest! {
        /// Any value, spaces, tabs, Unicode whitespace and scheme look-alikes included, reads
        /// as the split reading read it.
        #[test]
        fn authorization_reads_as_the_split_reading(
            value in "[ \t\u{a0}\u{2003}]{0,2}(([Tt]ecton-[Kk]ey|[Bb]earer|BEARER|bear|Basic|tecton-keys|\u{212a}ey)[ \t\u{3000}]{0,3})?[a-z \u{a0}\t.=-]{0,8}[ \t\u{2003}]{0,2}",
        ) {
            proptest::prop_assert_eq!(
                parse_authorization(Some(&value)),
                split_authorization(Some(&value))
            );
        }
    }

    #[test]
    fn a_generated_key_is_remembered_by_digest_only() {
        let dir = tempfile::tempdir().unwrap();
        let hasher = KeyHasher::open(
            Some(dir.path()),
            &crate::persist::data_dir::MissingKeyFile::Create,
        )
        .unwrap();
        let (digest, source) = bootstrap_admin(None, Some(dir.path()), &hasher).unwrap();
        let AdminKeySource::Generated(key) = source else {
            panic!("expected a new key")
        };
        let stored = std::fs::read(dir.path().join(ADMIN_DIGEST_FILE)).unwrap();
        assert!(!stored.windows(key.len()).any(|w| w == key.as_bytes()));
        let hasher_again = KeyHasher::open(
            Some(dir.path()),
            &crate::persist::data_dir::MissingKeyFile::Create,
        )
        .unwrap();
        let (again, source) = bootstrap_admin(None, Some(dir.path()), &hasher_again).unwrap();
        assert!(matches!(source, AdminKeySource::DataDir));
        assert_eq!(again, digest);
        assert_eq!(hasher_again.digest(&key), digest);
    }

    #[test]
    fn permissions_follow_roles() {
        let mut principal = Principal::bootstrap_admin();
        principal.is_admin = false;
        principal.workspace_roles = vec![WorkspaceRole {
            workspace: Some("prod".into()),
            role: Role::Consumer,
        }];
        assert!(principal.require(Permission::ReadFeatures("prod")).is_ok());
        assert!(principal.require(Permission::ReadMetadata("prod")).is_ok());
        assert!(principal
            .require(Permission::WriteFeatures("prod"))
            .is_err());
        assert!(principal
            .require(Permission::ReadFeatures("staging"))
            .is_err());
        assert!(principal.require(Permission::Admin).is_err());
    }
}

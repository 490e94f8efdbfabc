//! The vault's persistence and key rotation. Every change goes to the journal as one typed
//! record (`persist::format::VaultChangeV3`) naming the one secret, scope, role or group it
//! changes, values as ciphertext only; the journal is fsynced before every reply. A snapshot
//! holds the changes that recreate the whole vault; recovery, export and journal clean-up are
//! `persist::journaled`'s. Rotation writes the new key beside the old one (`<key file>.next`),
//! journals every record re-sealed under it, then renames it into place; a start that finds a
//! `.next` key opens values with either key.

use std::io;

use actix::{Handler, Message};
use serde_json::Value as Json;

use super::crypto::{next_key_path, MasterKey};
use super::state::{
    Assignment, Change, Group, PrincipalType, ScopeRole, Sealed, TbSecret, TfSecret, TfVersion,
};
use super::{SecretRef, SecretsError, Vault, VaultActor};
use crate::iam::{PrincipalKind, PrincipalRef};
use crate::persist::format::{
    decode, encode, GroupSecretV2, GroupSecretVersionV2, PrincipalTypeV2, ScopeAssignmentV2,
    ScopeRoleV2, SealedV2, SecretGroupV2, SecretGroupV3, SectionKind, TinybirdSecretV2,
    VaultChangeV3, VaultV3,
};
use crate::persist::journaled::{journaled_handlers, JournaledActor, JournaledAddr};
use crate::persist::logged::{apply_logged_handler, logged_handler, LogState, LoggedActor};
use crate::persist::Journal;

fn sealed_to_disk(sealed: &Sealed) -> SealedV2 {
    SealedV2 {
        ciphertext: sealed.ciphertext.clone(),
        version: sealed.version,
        created_micros: sealed.created,
        updated_micros: sealed.updated,
    }
}

fn sealed_from_disk(sealed: SealedV2) -> Sealed {
    Sealed {
        ciphertext: sealed.ciphertext,
        version: sealed.version,
        created: sealed.created_micros,
        updated: sealed.updated_micros,
    }
}

fn assignment_to_disk(assignment: &Assignment) -> ScopeAssignmentV2 {
    ScopeAssignmentV2 {
        principal_type: match assignment.principal_type {
            PrincipalType::User => PrincipalTypeV2::User,
            PrincipalType::ServiceAccount => PrincipalTypeV2::ServiceAccount,
            PrincipalType::Group => PrincipalTypeV2::Group,
            PrincipalType::Workspace => PrincipalTypeV2::Workspace,
        },
        principal_id: assignment.principal_id.clone(),
        role: match assignment.role {
            ScopeRole::Reader => ScopeRoleV2::Reader,
            ScopeRole::Writer => ScopeRoleV2::Writer,
            ScopeRole::Manager => ScopeRoleV2::Manager,
        },
    }
}

fn assignment_from_disk(assignment: ScopeAssignmentV2) -> Assignment {
    Assignment {
        principal_type: match assignment.principal_type {
            PrincipalTypeV2::User => PrincipalType::User,
            PrincipalTypeV2::ServiceAccount => PrincipalType::ServiceAccount,
            PrincipalTypeV2::Group => PrincipalType::Group,
            PrincipalTypeV2::Workspace => PrincipalType::Workspace,
        },
        principal_id: assignment.principal_id,
        role: match assignment.role {
            ScopeRoleV2::Reader => ScopeRole::Reader,
            ScopeRoleV2::Writer => ScopeRole::Writer,
            ScopeRoleV2::Manager => ScopeRole::Manager,
        },
    }
}

fn version_to_disk(version: &TfVersion) -> GroupSecretVersionV2 {
    GroupSecretVersionV2 {
        id: version.id.clone(),
        sealed: sealed_to_disk(&version.sealed),
    }
}

fn version_from_disk(version: GroupSecretVersionV2) -> TfVersion {
    TfVersion {
        id: version.id,
        sealed: sealed_from_disk(version.sealed),
    }
}

fn group_to_disk(group: &Group) -> SecretGroupV3 {
    SecretGroupV3 {
        id: group.id.clone(),
        name: group.name.clone(),
        integration_id: group.integration_id.clone(),
        manifest: group.manifest.as_ref().map(|m| m.to_string()),
        created_by: group.created_by.to_disk(),
        created_micros: group.created,
        updated_micros: group.updated,
    }
}

fn manifest_from_disk(group_id: &str, manifest: Option<String>) -> Result<Option<Json>, String> {
    manifest
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| format!("the manifest of secret group `{group_id}` is not JSON: {e}"))
}

fn group_from_disk(group: SecretGroupV3) -> Result<Group, String> {
    Ok(Group {
        manifest: manifest_from_disk(&group.id, group.manifest)?,
        id: group.id,
        name: group.name,
        integration_id: group.integration_id,
        created_by: PrincipalRef::from_disk(group.created_by),
        created: group.created_micros,
        updated: group.updated_micros,
        secrets: Default::default(),
    })
}

/// A group as version 2 stored it: its creator's id and kind, not its name.
fn group_v2_from_disk(group: SecretGroupV2) -> Result<Group, String> {
    let kind = match group.created_by_type.as_str() {
        "user" => PrincipalKind::User,
        "serviceaccount" => PrincipalKind::ServiceAccount,
        other => {
            return Err(format!(
                "secret group `{}` names an unknown kind of creator `{other}`",
                group.id
            ))
        }
    };
    Ok(Group {
        manifest: manifest_from_disk(&group.id, group.manifest)?,
        id: group.id,
        name: group.name,
        integration_id: group.integration_id,
        created_by: PrincipalRef {
            kind,
            id: group.created_by_id,
            name: None,
        },
        created: group.created_micros,
        updated: group.updated_micros,
        secrets: Default::default(),
    })
}

fn group_secret_to_disk(secret: &TfSecret) -> GroupSecretV2 {
    GroupSecretV2 {
        id: secret.id.clone(),
        key: secret.key.clone(),
        created_micros: secret.created,
        updated_micros: secret.updated,
        versions: secret.versions.iter().map(version_to_disk).collect(),
    }
}

fn group_secret_from_disk(secret: GroupSecretV2) -> TfSecret {
    TfSecret {
        id: secret.id,
        key: secret.key,
        created: secret.created_micros,
        updated: secret.updated_micros,
        versions: secret.versions.into_iter().map(version_from_disk).collect(),
    }
}

fn to_disk(change: &Change) -> VaultChangeV3 {
    match change {
        Change::CreateScope {
            name,
            created,
            assignments,
        } => VaultChangeV3::CreateScope {
            name: name.clone(),
            created_micros: *created,
            assignments: assignments.iter().map(assignment_to_disk).collect(),
        },
        Change::DeleteScope(name) => VaultChangeV3::DeleteScope { name: name.clone() },
        Change::PutScopeSecret { scope, key, sealed } => VaultChangeV3::PutScopeSecret {
            scope: scope.clone(),
            key: key.clone(),
            sealed: sealed_to_disk(sealed),
        },
        Change::DeleteScopeSecret { scope, key } => VaultChangeV3::DeleteScopeSecret {
            scope: scope.clone(),
            key: key.clone(),
        },
        Change::Assign { scope, assignment } => VaultChangeV3::AssignScopeRole {
            scope: scope.clone(),
            assignment: assignment_to_disk(assignment),
        },
        Change::Unassign { scope, assignment } => VaultChangeV3::UnassignScopeRole {
            scope: scope.clone(),
            assignment: assignment_to_disk(assignment),
        },
        Change::PutGroup(group) => VaultChangeV3::PutGroupV3(group_to_disk(group)),
        Change::DeleteGroup(id) => VaultChangeV3::DeleteGroup { id: id.clone() },
        Change::PutGroupSecret { group_id, secret } => VaultChangeV3::PutGroupSecret {
            group_id: group_id.clone(),
            secret: group_secret_to_disk(secret),
        },
        Change::AddGroupSecretVersion {
            group_id,
            key,
            version,
        } => VaultChangeV3::AddGroupSecretVersion {
            group_id: group_id.clone(),
            key: key.clone(),
            version: version_to_disk(version),
        },
        Change::DeleteGroupSecret { group_id, key } => VaultChangeV3::DeleteGroupSecret {
            group_id: group_id.clone(),
            key: key.clone(),
        },
        Change::PutTinybird(secret) => VaultChangeV3::PutTinybirdSecret(TinybirdSecretV2 {
            name: secret.name.clone(),
            sealed: sealed_to_disk(&secret.sealed),
            edited_by: secret.edited_by.clone(),
        }),
        Change::DeleteTinybird(name) => VaultChangeV3::DeleteTinybirdSecret { name: name.clone() },
    }
}

fn from_disk(change: VaultChangeV3) -> Result<Change, String> {
    Ok(match change {
        VaultChangeV3::CreateScope {
            name,
            created_micros,
            assignments,
        } => Change::CreateScope {
            name,
            created: created_micros,
            assignments: assignments.into_iter().map(assignment_from_disk).collect(),
        },
        VaultChangeV3::DeleteScope { name } => Change::DeleteScope(name),
        VaultChangeV3::PutScopeSecret { scope, key, sealed } => Change::PutScopeSecret {
            scope,
            key,
            sealed: sealed_from_disk(sealed),
        },
        VaultChangeV3::DeleteScopeSecret { scope, key } => Change::DeleteScopeSecret { scope, key },
        VaultChangeV3::AssignScopeRole { scope, assignment } => Change::Assign {
            scope,
            assignment: assignment_from_disk(assignment),
        },
        VaultChangeV3::UnassignScopeRole { scope, assignment } => Change::Unassign {
            scope,
            assignment: assignment_from_disk(assignment),
        },
        VaultChangeV3::PutGroup(group) => Change::PutGroup(group_v2_from_disk(group)?),
        VaultChangeV3::PutGroupV3(group) => Change::PutGroup(group_from_disk(group)?),
        VaultChangeV3::DeleteGroup { id } => Change::DeleteGroup(id),
        VaultChangeV3::PutGroupSecret { group_id, secret } => Change::PutGroupSecret {
            group_id,
            secret: group_secret_from_disk(secret),
        },
        VaultChangeV3::AddGroupSecretVersion {
            group_id,
            key,
            version,
        } => Change::AddGroupSecretVersion {
            group_id,
            key,
            version: version_from_disk(version),
        },
        VaultChangeV3::DeleteGroupSecret { group_id, key } => {
            Change::DeleteGroupSecret { group_id, key }
        }
        VaultChangeV3::PutTinybirdSecret(secret) => Change::PutTinybird(TbSecret {
            name: secret.name,
            sealed: sealed_from_disk(secret.sealed),
            edited_by: secret.edited_by,
        }),
        VaultChangeV3::DeleteTinybirdSecret { name } => Change::DeleteTinybird(name),
    })
}

/// A journal record: the changes of one request.
pub fn encode_changes(changes: &[Change]) -> Vec<u8> {
    encode(&changes.iter().map(to_disk).collect::<Vec<_>>())
}

/// The changes of one journal record, or why it does not decode.
fn decode_changes(record: &[u8]) -> Result<Vec<Change>, String> {
    decode::<Vec<VaultChangeV3>>(record)?
        .into_iter()
        .map(from_disk)
        .collect()
}

impl JournaledActor for VaultActor {
    type Change = Change;
    const SECTION: SectionKind = SectionKind::Vault;

    fn journal(&mut self) -> &mut Option<Journal> {
        &mut self.journal
    }

    fn decode_section(payload: &[u8]) -> Result<Vec<Change>, String> {
        decode::<VaultV3>(payload)?
            .changes
            .into_iter()
            .map(from_disk)
            .collect()
    }

    fn decode_record(record: &[u8]) -> Result<Vec<Change>, String> {
        decode_changes(record)
    }

    fn apply(&mut self, change: Change) {
        self.state.apply(change);
    }

    fn encode_section(&self) -> (Vec<u8>, u64) {
        let changes: Vec<VaultChangeV3> = self.state.as_changes().iter().map(to_disk).collect();
        let items = changes.len() as u64;
        (encode(&VaultV3 { changes }), items)
    }
}

journaled_handlers!(VaultActor);

impl LoggedActor for VaultActor {
    type Refusal = SecretsError;

    fn log_state(&mut self) -> &mut Option<LogState<SecretsError>> {
        &mut self.log
    }

    fn apply_checked(&mut self, changes: Vec<Change>) -> Result<(), SecretsError> {
        self.state.apply_checked(changes)
    }

    fn unavailable(reason: String) -> SecretsError {
        SecretsError::Unavailable(reason)
    }
}

apply_logged_handler!(VaultActor);

/// Re-seals every value under a new key. Answers the new key when it has no file to live in
/// (it came from `QUIVER_MASTER_KEY`, or the server is in memory), for the operator to keep.
struct RotateKey;

impl Message for RotateKey {
    type Result = Result<Option<String>, SecretsError>;
}

logged_handler!(VaultActor, RotateKey, Option<String>);

impl Handler<RotateKey> for VaultActor {
    type Result = Result<Option<String>, SecretsError>;

    fn handle(&mut self, _: RotateKey, _: &mut Self::Context) -> Self::Result {
        if self.log.is_some() {
            // Every node seals and opens with the one key it was given at start.
            return Err(SecretsError::Unavailable(
                "the master key cannot be rotated in cluster mode: every node holds the same key, given at start".into(),
            ));
        }
        let io_error = |e: io::Error| SecretsError::Internal(format!("key rotation failed: {e}"));
        let new_key = MasterKey::random();
        if let Some(file) = &self.key_file {
            new_key.write_file(&next_key_path(file)).map_err(io_error)?;
        }
        let mut resealed = Vec::new();
        for change in self.state.as_changes() {
            resealed.extend(self.reseal(change, &new_key)?);
        }
        // From here on, values open with either key until the rename below.
        self.keys.push(new_key);
        self.commit(resealed)?;
        let new_key = self.keys.pop().expect("pushed above");
        self.keys = vec![new_key];
        match &self.key_file {
            Some(file) => {
                std::fs::rename(next_key_path(file), file).map_err(io_error)?;
                tracing::warn!(key_file = %file.display(), "master key rotated");
                Ok(None)
            }
            None => Ok(Some(self.keys[0].hex())),
        }
    }
}

impl VaultActor {
    /// A change that puts a value back, with the value opened under the current key and
    /// sealed under `key`; `None` for a change that holds no value.
    fn reseal(&self, change: Change, key: &MasterKey) -> Result<Option<Change>, SecretsError> {
        let reseal_one = |sealed: &mut Sealed,
                          identity: String,
                          record: SecretRef|
         -> Result<(), SecretsError> {
            let value = self.open(&sealed.ciphertext, &identity, || record)?;
            sealed.ciphertext = key.seal(&value, &identity);
            Ok(())
        };
        Ok(Some(match change {
            Change::PutScopeSecret {
                scope,
                key: name,
                mut sealed,
            } => {
                let identity = super::tecton::identity(&scope, &name, sealed.version);
                let record = SecretRef::Scope {
                    scope: scope.clone(),
                    key: name.clone(),
                };
                reseal_one(&mut sealed, identity, record)?;
                Change::PutScopeSecret {
                    scope,
                    key: name,
                    sealed,
                }
            }
            Change::PutGroupSecret {
                group_id,
                mut secret,
            } => {
                let group_name = self
                    .state
                    .groups
                    .get(&group_id)
                    .map_or(group_id.as_str(), |g| g.name.as_str());
                for version in secret.versions.iter_mut() {
                    let identity = super::truefoundry::identity(
                        &group_id,
                        &secret.key,
                        version.sealed.version,
                    );
                    let record = SecretRef::Group {
                        tenant: self.tenant.clone(),
                        group: group_name.to_string(),
                        key: secret.key.clone(),
                    };
                    reseal_one(&mut version.sealed, identity, record)?;
                }
                Change::PutGroupSecret { group_id, secret }
            }
            Change::PutTinybird(mut secret) => {
                let identity = super::tinybird::identity(&secret.name, secret.sealed.version);
                let record = SecretRef::Tinybird {
                    name: secret.name.clone(),
                };
                reseal_one(&mut secret.sealed, identity, record)?;
                Change::PutTinybird(secret)
            }
            _ => return Ok(None),
        }))
    }
}

impl Vault {
    /// The vault's persistence: its recovery, and its snapshot source.
    pub fn persistence(&self) -> JournaledAddr<VaultActor> {
        JournaledAddr(self.addr.clone(), self.journal_unwritable.clone())
    }

    /// Re-encrypts every value under a new master key without stopping.
    pub async fn rotate_key(&self) -> Result<Option<String>, SecretsError> {
        self.ask(RotateKey).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::state::{Scope, VaultState};

    fn sealed(byte: u8, version: u64) -> Sealed {
        Sealed {
            ciphertext: vec![byte; 40],
            version,
            created: 1,
            updated: 2 + version as i64,
        }
    }

    fn state_of(changes: &[Change]) -> VaultState {
        let mut state = VaultState::default();
        for change in changes.iter().cloned() {
            state.apply(change);
        }
        state
    }

    fn assert_same(a: &VaultState, b: &VaultState) {
        assert_eq!(a.scopes, b.scopes);
        assert_eq!(a.groups, b.groups);
        assert_eq!(a.tinybird, b.tinybird);
    }

    /// A history touching every kind of change, as requests would make it.
    fn history() -> Vec<Change> {
        let reader = Assignment {
            principal_type: PrincipalType::Group,
            principal_id: "g1".into(),
            role: ScopeRole::Reader,
        };
        let group = Group {
            id: "gid".into(),
            name: "group".into(),
            integration_id: None,
            manifest: Some(serde_json::json!({"name": "group", "collaborators": []})),
            created_by: PrincipalRef {
                kind: PrincipalKind::ServiceAccount,
                id: "u".into(),
                name: Some("ci".into()),
            },
            created: 1,
            updated: 1,
            secrets: Default::default(),
        };
        let secret = |key: &str| TfSecret {
            id: format!("id-{key}"),
            key: key.into(),
            created: 1,
            updated: 1,
            versions: vec![TfVersion {
                id: format!("v1-{key}"),
                sealed: sealed(7, 1),
            }],
        };
        vec![
            Change::CreateScope {
                name: "db".into(),
                created: 1,
                assignments: vec![],
            },
            Change::PutScopeSecret {
                scope: "db".into(),
                key: "password".into(),
                sealed: sealed(1, 1),
            },
            Change::PutScopeSecret {
                scope: "db".into(),
                key: "password".into(),
                sealed: sealed(2, 2),
            },
            Change::PutScopeSecret {
                scope: "db".into(),
                key: "gone".into(),
                sealed: sealed(3, 1),
            },
            Change::DeleteScopeSecret {
                scope: "db".into(),
                key: "gone".into(),
            },
            Change::Assign {
                scope: "db".into(),
                assignment: reader.clone(),
            },
            Change::CreateScope {
                name: "old".into(),
                created: 1,
                assignments: vec![reader.clone()],
            },
            Change::Unassign {
                scope: "old".into(),
                assignment: reader,
            },
            Change::PutGroup(group.clone()),
            Change::PutGroupSecret {
                group_id: "gid".into(),
                secret: secret("A"),
            },
            Change::PutGroupSecret {
                group_id: "gid".into(),
                secret: secret("B"),
            },
            Change::AddGroupSecretVersion {
                group_id: "gid".into(),
                key: "A".into(),
                version: TfVersion {
                    id: "v2-A".into(),
                    sealed: sealed(8, 2),
                },
            },
            Change::DeleteGroupSecret {
                group_id: "gid".into(),
                key: "B".into(),
            },
            Change::PutGroup(Group {
                updated: 9,
                ..group
            }),
            Change::PutTinybird(TbSecret {
                name: "tb".into(),
                sealed: sealed(4, 1),
                edited_by: "token: 'admin'".into(),
            }),
            Change::PutTinybird(TbSecret {
                name: "tb2".into(),
                sealed: sealed(5, 1),
                edited_by: "token: 'admin'".into(),
            }),
            Change::DeleteTinybird("tb2".into()),
        ]
    }

    /// A record as the build before version 3 wrote it (bytes captured from it): a group put
    /// with its creator's id and kind only, then a Tinybird secret deleted. A version 2
    /// snapshot section is the same list of changes, framed the same way.
    const V2_RECORD: &str = "02000000000000000600000002000000000000006731030000000000000067727001020000000000000069310003000000000000007361310e00000000000000736572766963656163636f756e74050000000000000006000000000000000c00000002000000000000007462";

    #[test]
    fn version_2_records_and_sections_load_with_the_creator_unnamed() {
        let bytes: Vec<u8> = (0..V2_RECORD.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&V2_RECORD[i..i + 2], 16).unwrap())
            .collect();
        let group = Group {
            id: "g1".into(),
            name: "grp".into(),
            integration_id: Some("i1".into()),
            manifest: None,
            created_by: PrincipalRef {
                kind: PrincipalKind::ServiceAccount,
                id: "sa1".into(),
                name: None,
            },
            created: 5,
            updated: 6,
            secrets: Default::default(),
        };
        let expected = vec![Change::PutGroup(group), Change::DeleteTinybird("tb".into())];
        assert_eq!(decode_changes(&bytes).unwrap(), expected);
        assert_eq!(VaultActor::decode_section(&bytes).unwrap(), expected);
    }

    #[test]
    fn replaying_the_journal_or_a_snapshot_reaches_the_same_state() {
        let history = history();
        let live = state_of(&history);
        // The journal: one record per request (here, two changes per record).
        let replayed: Vec<Change> = history
            .chunks(2)
            .flat_map(|request| decode_changes(&encode_changes(request)).unwrap())
            .collect();
        assert_same(&state_of(&replayed), &live);
        // The snapshot: the changes that recreate the state.
        let section = encode(&VaultV3 {
            changes: live.as_changes().iter().map(to_disk).collect(),
        });
        let stored: VaultV3 = decode(&section).unwrap();
        let restored: Vec<Change> = stored
            .changes
            .into_iter()
            .map(|c| from_disk(c).unwrap())
            .collect();
        assert_same(&state_of(&restored), &live);
        // What the history should have made, spelled out.
        let db: &Scope = &live.scopes["db"];
        assert_eq!(db.secrets.keys().collect::<Vec<_>>(), ["password"]);
        assert_eq!(db.secrets["password"].version, 2);
        assert_eq!(db.assignments.len(), 1);
        assert!(live.scopes["old"].assignments.is_empty());
        let group = &live.groups["gid"];
        assert_eq!(group.updated, 9, "a group's own fields change");
        assert_eq!(
            group.secrets.keys().collect::<Vec<_>>(),
            ["A"],
            "...not its secrets"
        );
        assert_eq!(group.secrets["A"].versions.len(), 2);
        assert_eq!(group.secrets["A"].updated, 4);
        assert_eq!(live.tinybird.len(), 1);
    }
}

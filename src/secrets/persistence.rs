//! The vault's persistence and key rotation. Records go to disk as JSON documents whose values
//! are ciphertext only; the journal is fsynced before every reply. Rotation writes the new key
//! beside the old one (`<key file>.next`), journals every record re-sealed under it, then
//! renames it into place; a start that finds a `.next` key opens values with either key.

use std::io;
use std::path::{Path, PathBuf};

use actix::{Handler, Message};
use futures_util::future::{BoxFuture, FutureExt};
use serde_json::{json, Map, Value as Json};

use super::crypto::{from_hex, to_hex, MasterKey};
use super::state::{
    Assignment, Change, Group, PrincipalType, Scope, ScopeRole, Sealed, TbSecret, TfSecret,
    TfVersion,
};
use super::{gone, SecretsError, Vault, VaultActor};
use crate::persist::format::{decode, encode, SectionKind, VaultChangeV1, VaultV1};
use crate::persist::snapshot::{SectionData, Snapshot};
use crate::persist::{FsyncPolicy, Journal, SnapshotSource};

const SCOPE: u8 = 0;
const GROUP: u8 = 1;
const TINYBIRD: u8 = 2;

fn sealed_doc(sealed: &Sealed) -> Json {
    json!({"ciphertext": to_hex(&sealed.ciphertext), "version": sealed.version, "created": sealed.created, "updated": sealed.updated})
}

fn sealed_from(doc: &Json) -> Option<Sealed> {
    Some(Sealed {
        ciphertext: from_hex(doc["ciphertext"].as_str()?)?,
        version: doc["version"].as_u64()?,
        created: doc["created"].as_i64()?,
        updated: doc["updated"].as_i64()?,
    })
}

fn scope_doc(scope: &Scope) -> Json {
    let secrets: Map<String, Json> = scope
        .secrets
        .iter()
        .map(|(k, s)| (k.clone(), sealed_doc(s)))
        .collect();
    let assignments: Vec<Json> = scope
        .assignments
        .iter()
        .map(|a| json!({"principal_type": a.principal_type.name(), "principal_id": a.principal_id, "role": a.role.name()}))
        .collect();
    json!({"name": scope.name, "created": scope.created, "secrets": secrets, "assignments": assignments})
}

fn scope_from(doc: &Json) -> Option<Scope> {
    let secrets = doc["secrets"]
        .as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), sealed_from(v)?)))
        .collect::<Option<_>>()?;
    let assignments = doc["assignments"]
        .as_array()?
        .iter()
        .map(|a| {
            Some(Assignment {
                principal_type: PrincipalType::parse(a["principal_type"].as_str()?)?,
                principal_id: a["principal_id"].as_str()?.to_string(),
                role: ScopeRole::parse(a["role"].as_str()?)?,
            })
        })
        .collect::<Option<_>>()?;
    Some(Scope {
        name: doc["name"].as_str()?.to_string(),
        created: doc["created"].as_i64()?,
        secrets,
        assignments,
    })
}

fn group_doc(group: &Group) -> Json {
    let secrets: Map<String, Json> = group
        .secrets
        .iter()
        .map(|(k, s)| {
            let versions: Vec<Json> = s.versions.iter().map(|v| json!({"id": v.id, "sealed": sealed_doc(&v.sealed)})).collect();
            (k.clone(), json!({"id": s.id, "key": s.key, "created": s.created, "updated": s.updated, "versions": versions}))
        })
        .collect();
    json!({"id": group.id, "name": group.name, "integration_id": group.integration_id, "manifest": group.manifest,
           "created_by": [group.created_by.0, group.created_by.1], "created": group.created, "updated": group.updated, "secrets": secrets})
}

fn group_from(doc: &Json) -> Option<Group> {
    let secrets = doc["secrets"]
        .as_object()?
        .iter()
        .map(|(k, s)| {
            let versions = s["versions"]
                .as_array()?
                .iter()
                .map(|v| {
                    Some(TfVersion {
                        id: v["id"].as_str()?.to_string(),
                        sealed: sealed_from(&v["sealed"])?,
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            let secret = TfSecret {
                id: s["id"].as_str()?.to_string(),
                key: s["key"].as_str()?.to_string(),
                created: s["created"].as_i64()?,
                updated: s["updated"].as_i64()?,
                versions,
            };
            Some((k.clone(), secret))
        })
        .collect::<Option<_>>()?;
    Some(Group {
        id: doc["id"].as_str()?.to_string(),
        name: doc["name"].as_str()?.to_string(),
        integration_id: doc["integration_id"].as_str().map(str::to_string),
        manifest: Some(doc["manifest"].clone()).filter(|m| !m.is_null()),
        created_by: (
            doc["created_by"][0].as_str()?.to_string(),
            doc["created_by"][1].as_str()?.to_string(),
        ),
        created: doc["created"].as_i64()?,
        updated: doc["updated"].as_i64()?,
        secrets,
    })
}

fn tinybird_doc(secret: &TbSecret) -> Json {
    json!({"name": secret.name, "sealed": sealed_doc(&secret.sealed), "edited_by": secret.edited_by})
}

fn tinybird_from(doc: &Json) -> Option<TbSecret> {
    Some(TbSecret {
        name: doc["name"].as_str()?.to_string(),
        sealed: sealed_from(&doc["sealed"])?,
        edited_by: doc["edited_by"].as_str()?.to_string(),
    })
}

fn to_disk(change: &Change) -> VaultChangeV1 {
    let put = |kind, key: &str, doc: Json| VaultChangeV1::Put {
        kind,
        key: key.to_string(),
        document: doc.to_string(),
    };
    match change {
        Change::PutScope(scope) => put(SCOPE, &scope.name, scope_doc(scope)),
        Change::DeleteScope(name) => VaultChangeV1::Delete {
            kind: SCOPE,
            key: name.clone(),
        },
        Change::PutGroup(group) => put(GROUP, &group.id, group_doc(group)),
        Change::DeleteGroup(id) => VaultChangeV1::Delete {
            kind: GROUP,
            key: id.clone(),
        },
        Change::PutTinybird(secret) => put(TINYBIRD, &secret.name, tinybird_doc(secret)),
        Change::DeleteTinybird(name) => VaultChangeV1::Delete {
            kind: TINYBIRD,
            key: name.clone(),
        },
    }
}

fn from_disk(change: VaultChangeV1) -> Option<Change> {
    match change {
        VaultChangeV1::Put { kind, document, .. } => {
            let doc: Json = serde_json::from_str(&document).ok()?;
            match kind {
                SCOPE => scope_from(&doc).map(Change::PutScope),
                GROUP => group_from(&doc).map(Change::PutGroup),
                TINYBIRD => tinybird_from(&doc).map(Change::PutTinybird),
                _ => None,
            }
        }
        VaultChangeV1::Delete { kind: SCOPE, key } => Some(Change::DeleteScope(key)),
        VaultChangeV1::Delete { kind: GROUP, key } => Some(Change::DeleteGroup(key)),
        VaultChangeV1::Delete {
            kind: TINYBIRD,
            key,
        } => Some(Change::DeleteTinybird(key)),
        VaultChangeV1::Delete { .. } => None,
    }
}

pub fn encode_changes(changes: &[Change]) -> Vec<u8> {
    encode(&changes.iter().map(to_disk).collect::<Vec<_>>())
}

impl VaultActor {
    /// Every record, as changes that recreate it.
    fn all_records(&self) -> Vec<Change> {
        let scopes = self.state.scopes.values().cloned().map(Change::PutScope);
        let groups = self.state.groups.values().cloned().map(Change::PutGroup);
        let tinybird = self.state.tinybird.iter().cloned().map(Change::PutTinybird);
        scopes.chain(groups).chain(tinybird).collect()
    }
}

struct Recover {
    section: Option<SectionData>,
    journal_dir: PathBuf,
}

impl Message for Recover {
    type Result = io::Result<usize>;
}

impl Handler<Recover> for VaultActor {
    type Result = io::Result<usize>;

    fn handle(&mut self, msg: Recover, _: &mut Self::Context) -> Self::Result {
        let invalid = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "vault snapshot section does not decode",
            )
        };
        let from_seq = msg.section.as_ref().map_or(0, |s| s.journal_seq);
        if let Some(section) = msg.section {
            let stored: VaultV1 = decode(&section.payload).map_err(|_| invalid())?;
            for record in stored.records {
                self.state.apply(from_disk(record).ok_or_else(invalid)?);
            }
        }
        let (journal, replay) = Journal::open(&msg.journal_dir, from_seq, FsyncPolicy::Always)?;
        let records = replay.records.len();
        for (i, record) in replay.records.iter().enumerate() {
            let Some(changes) = decode::<Vec<VaultChangeV1>>(record)
                .ok()
                .and_then(|c| c.into_iter().map(from_disk).collect::<Option<Vec<_>>>())
            else {
                return Err(replay.undecodable(i).into());
            };
            for change in changes {
                self.state.apply(change);
            }
        }
        self.journal = Some(journal);
        Ok(records)
    }
}

struct Export;

impl Message for Export {
    type Result = io::Result<SectionData>;
}

impl Handler<Export> for VaultActor {
    type Result = io::Result<SectionData>;

    fn handle(&mut self, _: Export, _: &mut Self::Context) -> Self::Result {
        let journal_seq = match self.journal.as_mut() {
            Some(journal) => journal.rotate()?,
            None => 0,
        };
        let records: Vec<VaultChangeV1> = self.all_records().iter().map(to_disk).collect();
        let items = records.len() as u64;
        Ok(SectionData {
            kind: SectionKind::Vault,
            journal_seq,
            items,
            payload: encode(&VaultV1 { records }),
        })
    }
}

struct DropJournalBefore(u64);

impl Message for DropJournalBefore {
    type Result = io::Result<()>;
}

impl Handler<DropJournalBefore> for VaultActor {
    type Result = io::Result<()>;

    fn handle(&mut self, msg: DropJournalBefore, _: &mut Self::Context) -> Self::Result {
        match &self.journal {
            Some(journal) => journal.remove_before(msg.0),
            None => Ok(()),
        }
    }
}

/// Re-seals every value under a new key. Answers the new key when it has no file to live in
/// (it came from `QUIVER_MASTER_KEY`, or the server is in memory), for the operator to keep.
struct RotateKey;

impl Message for RotateKey {
    type Result = Result<Option<String>, SecretsError>;
}

/// The file a rotation writes the new key to before it is final.
pub fn next_key_path(key_file: &Path) -> PathBuf {
    key_file.with_extension("next")
}

impl Handler<RotateKey> for VaultActor {
    type Result = Result<Option<String>, SecretsError>;

    fn handle(&mut self, _: RotateKey, _: &mut Self::Context) -> Self::Result {
        let io_error = |e: io::Error| SecretsError::Internal(format!("key rotation failed: {e}"));
        let new_key = MasterKey::random();
        if let Some(file) = &self.key_file {
            new_key.write_file(&next_key_path(file)).map_err(io_error)?;
        }
        let mut resealed = Vec::new();
        for change in self.all_records() {
            resealed.push(self.reseal(change, &new_key)?);
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
    /// The same record with every value opened under the current key and sealed under `key`.
    fn reseal(&self, change: Change, key: &MasterKey) -> Result<Change, SecretsError> {
        let reseal_one =
            |sealed: &mut Sealed, identity: String, what: String| -> Result<(), SecretsError> {
                let value = self.open(&sealed.ciphertext, &identity, &what)?;
                sealed.ciphertext = key.seal(&value, &identity);
                Ok(())
            };
        Ok(match change {
            Change::PutScope(mut scope) => {
                for (name, sealed) in scope.secrets.iter_mut() {
                    let identity = super::tecton::identity(&scope.name, name, sealed.version);
                    reseal_one(sealed, identity, format!("secret `{}/{name}`", scope.name))?;
                }
                Change::PutScope(scope)
            }
            Change::PutGroup(mut group) => {
                for secret in group.secrets.values_mut() {
                    for version in secret.versions.iter_mut() {
                        let identity = super::truefoundry::identity(
                            &group.id,
                            &secret.key,
                            version.sealed.version,
                        );
                        reseal_one(
                            &mut version.sealed,
                            identity,
                            format!("secret `{}:{}`", group.name, secret.key),
                        )?;
                    }
                }
                Change::PutGroup(group)
            }
            Change::PutTinybird(mut secret) => {
                let identity = super::tinybird::identity(&secret.name, secret.sealed.version);
                reseal_one(
                    &mut secret.sealed,
                    identity,
                    format!("secret `{}`", secret.name),
                )?;
                Change::PutTinybird(secret)
            }
            other => other,
        })
    }
}

impl Vault {
    /// Restores the vault from a snapshot (if any) and its journal; returns the number of
    /// journal records replayed.
    pub async fn recover(
        &self,
        snapshot: Option<&Snapshot>,
        journal_dir: PathBuf,
    ) -> io::Result<usize> {
        let section = snapshot
            .and_then(|s| {
                s.sections
                    .iter()
                    .find(|section| section.kind == SectionKind::Vault)
            })
            .cloned();
        self.addr
            .send(Recover {
                section,
                journal_dir,
            })
            .await
            .map_err(io::Error::other)?
    }

    /// Re-encrypts every value under a new master key without stopping.
    pub async fn rotate_key(&self) -> Result<Option<String>, SecretsError> {
        self.addr
            .send(RotateKey)
            .await
            .unwrap_or_else(|e| Err(gone(e)))
    }
}

impl SnapshotSource for Vault {
    fn take_section(&self) -> BoxFuture<'static, io::Result<SectionData>> {
        let addr = self.addr.clone();
        async move { addr.send(Export).await.map_err(io::Error::other)? }.boxed()
    }

    fn snapshot_saved(&self, journal_seq: u64) -> BoxFuture<'static, io::Result<()>> {
        let addr = self.addr.clone();
        async move {
            addr.send(DropJournalBefore(journal_seq))
                .await
                .map_err(io::Error::other)?
        }
        .boxed()
    }
}

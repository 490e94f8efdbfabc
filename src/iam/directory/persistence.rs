//! The directory's persistence: journal records (the changes of one request, fsynced before the
//! reply) and its snapshot section (every entry, and the service accounts' creators), in their
//! on-disk types; recovery, export and journal clean-up are `persist::journaled`'s, applying
//! the cluster's directory stream `persist::logged`'s. Records
//! and sections written before creators were kept still load: their accounts have none.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use super::state::{Change, Entry, ResourceKind};
use super::{Directory, DirectoryActor};
use crate::iam::scim::{ScimError, ScimErrorKind};
use crate::iam::{ApiKeyDigest, PrincipalRef};
use crate::persist::format::{
    decode, encode, DirectoryChangeV3, DirectoryEntryV1, DirectoryEntryV2, DirectoryV1,
    DirectoryV2, EntryCreatorV2, PrincipalRefV1, SectionKind,
};
use crate::persist::journaled::{journaled_handlers, JournaledActor, JournaledAddr};
use crate::persist::logged::{apply_logged_handler, logged_handler, LogState, LoggedActor};
use crate::persist::Journal;

fn to_disk(kind: ResourceKind, entry: &Entry) -> DirectoryEntryV1 {
    DirectoryEntryV1 {
        kind: kind.code(),
        id: entry.id.clone(),
        attributes: Json::Object(entry.attributes.clone()).to_string(),
        created_micros: entry.created,
        modified_micros: entry.modified,
        version: entry.version,
        key_digest: entry.key_digest.map(|d| d.0.to_vec()),
    }
}

/// An entry as stored; its creator, if any, is stored beside it.
fn from_disk(stored: DirectoryEntryV1) -> Option<(ResourceKind, Entry)> {
    let kind = ResourceKind::from_code(stored.kind)?;
    let attributes: Map<String, Json> = serde_json::from_str(&stored.attributes).ok()?;
    let key_digest = match stored.key_digest {
        Some(bytes) => Some(ApiKeyDigest::from_bytes(&bytes)?),
        None => None,
    };
    let entry = Entry {
        id: stored.id,
        attributes,
        created: stored.created_micros,
        modified: stored.modified_micros,
        version: stored.version,
        key_digest,
        creator: None,
    };
    Some((kind, entry))
}

pub fn encode_changes(changes: &[Change]) -> Vec<u8> {
    let record: Vec<DirectoryChangeV3> = changes
        .iter()
        .map(|change| match change {
            Change::Put(kind, entry) => DirectoryChangeV3::PutV2(DirectoryEntryV2 {
                entry: to_disk(*kind, entry),
                creator: entry.creator.as_ref().map(PrincipalRef::to_disk),
            }),
            Change::Delete(kind, id, version) => DirectoryChangeV3::DeleteV3 {
                kind: kind.code(),
                id: id.clone(),
                version: *version,
            },
        })
        .collect();
    encode(&record)
}

/// Version 1 and 2 records (no creators, no deleted versions) decode here too: see
/// `DirectoryChangeV3`.
fn decode_changes(bytes: &[u8]) -> Option<Vec<Change>> {
    let record: Vec<DirectoryChangeV3> = decode(bytes).ok()?;
    record
        .into_iter()
        .map(|change| match change {
            DirectoryChangeV3::Put(stored) => {
                from_disk(stored).map(|(kind, entry)| Change::Put(kind, entry))
            }
            DirectoryChangeV3::PutV2(stored) => from_disk(stored.entry).map(|(kind, mut entry)| {
                entry.creator = stored.creator.map(PrincipalRef::from_disk);
                Change::Put(kind, entry)
            }),
            DirectoryChangeV3::Delete { kind, id } => {
                ResourceKind::from_code(kind).map(|kind| Change::Delete(kind, id, 0))
            }
            DirectoryChangeV3::DeleteV3 { kind, id, version } => {
                ResourceKind::from_code(kind).map(|kind| Change::Delete(kind, id, version))
            }
        })
        .collect()
}

/// A snapshot section: `DirectoryV2`, or `DirectoryV1` from a build that kept no creators.
fn decode_section(payload: &[u8]) -> Result<Vec<Change>, String> {
    let (entries, creators) = match decode::<DirectoryV2>(payload) {
        Ok(section) => (section.entries, section.creators),
        Err(error) => match decode::<DirectoryV1>(payload) {
            Ok(section) => (section.entries, Vec::new()),
            Err(_) => return Err(error),
        },
    };
    let mut creators: HashMap<String, PrincipalRefV1> = creators
        .into_iter()
        .map(|stored| (stored.id, stored.creator))
        .collect();
    entries
        .into_iter()
        .map(|stored| {
            let id = stored.id.clone();
            let (kind, mut entry) =
                from_disk(stored).ok_or_else(|| format!("entry `{id}` does not decode"))?;
            entry.creator = creators.remove(&id).map(PrincipalRef::from_disk);
            Ok(Change::Put(kind, entry))
        })
        .collect()
}

impl JournaledActor for DirectoryActor {
    type Change = Change;
    const SECTION: SectionKind = SectionKind::Directory;

    fn journal(&mut self) -> &mut Option<Journal> {
        &mut self.journal
    }

    fn decode_section(payload: &[u8]) -> Result<Vec<Change>, String> {
        decode_section(payload)
    }

    fn decode_record(record: &[u8]) -> Result<Vec<Change>, String> {
        decode_changes(record).ok_or_else(|| "a change does not decode".to_string())
    }

    fn apply(&mut self, change: Change) {
        self.state.apply(change);
    }

    fn encode_section(&self) -> (Vec<u8>, u64) {
        let mut section = DirectoryV2::default();
        for (kind, entry) in self.state.all() {
            section.entries.push(to_disk(kind, entry));
            if let Some(creator) = &entry.creator {
                section.creators.push(EntryCreatorV2 {
                    id: entry.id.clone(),
                    creator: creator.to_disk(),
                });
            }
        }
        let items = section.entries.len() as u64;
        (encode(&section), items)
    }

    fn recovered(&mut self) {
        self.publish();
    }
}

journaled_handlers!(DirectoryActor);

impl LoggedActor for DirectoryActor {
    type Refusal = ScimError;

    fn log_state(&mut self) -> &mut Option<LogState<ScimError>> {
        &mut self.log
    }

    fn apply_checked(&mut self, changes: Vec<Change>) -> Result<(), ScimError> {
        self.state.apply_checked(changes)?;
        self.publish();
        Ok(())
    }

    fn unavailable(reason: String) -> ScimError {
        ScimError::new(ScimErrorKind::Unavailable, reason)
    }
}

apply_logged_handler!(DirectoryActor);
logged_handler!(DirectoryActor, super::create::Create, Json);
logged_handler!(DirectoryActor, super::update::Update, Json);
logged_handler!(DirectoryActor, super::delete::Delete, ());

impl Directory {
    /// The directory's persistence: its recovery, and its snapshot source.
    pub fn persistence(&self) -> JournaledAddr<DirectoryActor> {
        JournaledAddr(self.addr.clone(), self.journal_unwritable.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::PrincipalKind;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn service_account(creator: Option<PrincipalRef>) -> Entry {
        let mut attributes = Map::new();
        attributes.insert("name".into(), Json::String("ci".into()));
        Entry {
            id: "sa1".into(),
            attributes,
            created: 5,
            modified: 6,
            version: 1,
            key_digest: None,
            creator,
        }
    }

    /// A record and a section as the build before creators wrote them (bytes captured from
    /// it): a service account `sa1` put, a user `u1` deleted.
    const V1_RECORD: &str = "0200000000000000000000000203000000000000007361310d000000000000007b226e616d65223a226369227d05000000000000000600000000000000010000000000000000010000000002000000000000007531";
    const V1_SECTION: &str = "01000000000000000203000000000000007361310d000000000000007b226e616d65223a226369227d05000000000000000600000000000000010000000000000000";

    #[test]
    fn version_1_records_and_sections_load_without_creators() {
        assert_eq!(
            decode_changes(&hex(V1_RECORD)).unwrap(),
            vec![
                Change::Put(ResourceKind::ServiceAccount, service_account(None)),
                Change::Delete(ResourceKind::User, "u1".into(), 0),
            ]
        );
        assert_eq!(
            decode_section(&hex(V1_SECTION)).unwrap(),
            vec![Change::Put(
                ResourceKind::ServiceAccount,
                service_account(None)
            )]
        );
    }

    #[test]
    fn creators_and_deleted_versions_survive_the_journal_and_the_snapshot() {
        let creator = PrincipalRef {
            kind: PrincipalKind::User,
            id: "u9".into(),
            name: Some("ana@example.com".into()),
        };
        let put = Change::Put(
            ResourceKind::ServiceAccount,
            service_account(Some(creator.clone())),
        );
        let delete = Change::Delete(ResourceKind::User, "u1".into(), 4);
        let record = [put, delete];
        assert_eq!(decode_changes(&encode_changes(&record)).unwrap(), record);
        let section = encode(&DirectoryV2 {
            entries: vec![to_disk(
                ResourceKind::ServiceAccount,
                &service_account(None),
            )],
            creators: vec![EntryCreatorV2 {
                id: "sa1".into(),
                creator: creator.to_disk(),
            }],
        });
        assert_eq!(
            decode_section(&section).unwrap(),
            vec![Change::Put(
                ResourceKind::ServiceAccount,
                service_account(Some(creator))
            )]
        );
    }
}

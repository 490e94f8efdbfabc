//! The directory's persistence: journal records (the changes of one request, fsynced before the
//! reply) and its snapshot section (every entry), in their on-disk types; recovery, export and
//! journal clean-up are `persist::journaled`'s.

use serde_json::{Map, Value as Json};

use super::state::{Change, Entry, ResourceKind};
use super::{Directory, DirectoryActor};
use crate::iam::ApiKeyDigest;
use crate::persist::format::{
    decode, encode, DirectoryChangeV1, DirectoryEntryV1, DirectoryV1, SectionKind,
};
use crate::persist::journaled::{journaled_handlers, JournaledActor, JournaledAddr};
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
    };
    Some((kind, entry))
}

pub fn encode_changes(changes: &[Change]) -> Vec<u8> {
    let record: Vec<DirectoryChangeV1> = changes
        .iter()
        .map(|change| match change {
            Change::Put(kind, entry) => DirectoryChangeV1::Put(to_disk(*kind, entry)),
            Change::Delete(kind, id) => DirectoryChangeV1::Delete {
                kind: kind.code(),
                id: id.clone(),
            },
        })
        .collect();
    encode(&record)
}

fn decode_changes(bytes: &[u8]) -> Option<Vec<Change>> {
    let record: Vec<DirectoryChangeV1> = decode(bytes).ok()?;
    record
        .into_iter()
        .map(|change| match change {
            DirectoryChangeV1::Put(stored) => {
                from_disk(stored).map(|(kind, entry)| Change::Put(kind, entry))
            }
            DirectoryChangeV1::Delete { kind, id } => {
                ResourceKind::from_code(kind).map(|kind| Change::Delete(kind, id))
            }
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
        let stored: DirectoryV1 = decode(payload)?;
        stored
            .entries
            .into_iter()
            .map(|entry| {
                let id = entry.id.clone();
                from_disk(entry)
                    .map(|(kind, entry)| Change::Put(kind, entry))
                    .ok_or_else(|| format!("entry `{id}` does not decode"))
            })
            .collect()
    }

    fn decode_record(record: &[u8]) -> Result<Vec<Change>, String> {
        decode_changes(record).ok_or_else(|| "a change does not decode".to_string())
    }

    fn apply(&mut self, change: Change) {
        self.state.apply(change);
    }

    fn encode_section(&self) -> (Vec<u8>, u64) {
        let entries: Vec<DirectoryEntryV1> = self
            .state
            .all()
            .map(|(kind, entry)| to_disk(kind, entry))
            .collect();
        let items = entries.len() as u64;
        (encode(&DirectoryV1 { entries }), items)
    }

    fn recovered(&mut self) {
        self.publish();
    }
}

journaled_handlers!(DirectoryActor);

impl Directory {
    /// The directory's persistence: its recovery, and its snapshot source.
    pub fn persistence(&self) -> JournaledAddr<DirectoryActor> {
        JournaledAddr(self.addr.clone())
    }
}

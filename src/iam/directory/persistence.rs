//! The directory's persistence: journal records (the changes of one request, fsynced before the
//! reply), its snapshot section, and recovery (section, then the journal after it).

use std::io;
use std::path::PathBuf;

use actix::{Handler, Message};
use futures_util::future::{BoxFuture, FutureExt};
use serde_json::{Map, Value as Json};

use super::state::{Change, Entry, ResourceKind};
use super::{Directory, DirectoryActor};
use crate::iam::ApiKeyDigest;
use crate::persist::format::{
    decode, encode, DirectoryChangeV1, DirectoryEntryV1, DirectoryV1, SectionKind,
};
use crate::persist::snapshot::{SectionData, Snapshot};
use crate::persist::{FsyncPolicy, Journal, SnapshotSource};

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

/// Loads a snapshot section and the journal after it, then journals from here on.
struct Recover {
    section: Option<SectionData>,
    journal_dir: PathBuf,
}

impl Message for Recover {
    type Result = io::Result<usize>;
}

impl Handler<Recover> for DirectoryActor {
    type Result = io::Result<usize>;

    fn handle(&mut self, msg: Recover, _: &mut Self::Context) -> Self::Result {
        let invalid = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("directory {what} does not decode"),
            )
        };
        let from_seq = msg.section.as_ref().map_or(0, |s| s.journal_seq);
        if let Some(section) = msg.section {
            let stored: DirectoryV1 =
                decode(&section.payload).map_err(|_| invalid("snapshot section"))?;
            for entry in stored.entries {
                let (kind, entry) = from_disk(entry).ok_or_else(|| invalid("snapshot entry"))?;
                self.state.apply(Change::Put(kind, entry));
            }
        }
        let (journal, replay) = Journal::open(&msg.journal_dir, from_seq, FsyncPolicy::Always)?;
        let records = replay.records.len();
        for (i, record) in replay.records.iter().enumerate() {
            let Some(changes) = decode_changes(record) else {
                return Err(replay.undecodable(i).into());
            };
            for change in changes {
                self.state.apply(change);
            }
        }
        self.journal = Some(journal);
        self.publish();
        Ok(records)
    }
}

/// Rotates the journal and encodes every entry.
struct Export;

impl Message for Export {
    type Result = io::Result<SectionData>;
}

impl Handler<Export> for DirectoryActor {
    type Result = io::Result<SectionData>;

    fn handle(&mut self, _: Export, _: &mut Self::Context) -> Self::Result {
        let journal_seq = match self.journal.as_mut() {
            Some(journal) => journal.rotate()?,
            None => 0,
        };
        let entries: Vec<DirectoryEntryV1> = self
            .state
            .all()
            .map(|(kind, entry)| to_disk(kind, entry))
            .collect();
        let items = entries.len() as u64;
        Ok(SectionData {
            kind: SectionKind::Directory,
            journal_seq,
            items,
            payload: encode(&DirectoryV1 { entries }),
        })
    }
}

struct DropJournalBefore(u64);

impl Message for DropJournalBefore {
    type Result = io::Result<()>;
}

impl Handler<DropJournalBefore> for DirectoryActor {
    type Result = io::Result<()>;

    fn handle(&mut self, msg: DropJournalBefore, _: &mut Self::Context) -> Self::Result {
        match &self.journal {
            Some(journal) => journal.remove_before(msg.0),
            None => Ok(()),
        }
    }
}

impl Directory {
    /// Restores the directory from a snapshot (if any) and its journal in `journal_dir`;
    /// returns the number of journal records replayed.
    pub async fn recover(
        &self,
        snapshot: Option<&Snapshot>,
        journal_dir: PathBuf,
    ) -> io::Result<usize> {
        let section = snapshot
            .and_then(|s| {
                s.sections
                    .iter()
                    .find(|section| section.kind == SectionKind::Directory)
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
}

impl SnapshotSource for Directory {
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

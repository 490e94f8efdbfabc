//! What every journaled actor (the directory, the vault) does for persistence, written once:
//! recover (its snapshot section, then the journal after it, then journal from there on),
//! export its section as its journal moves to a new segment, and drop the segments a snapshot
//! covers. An actor says only how its changes decode and apply (`JournaledActor`) and names
//! itself in `journaled_handlers!`; its handle hands out a `JournaledAddr`, which recovers it and
//! is its `SnapshotSource`. The store's rows are not journaled this way: their journal belongs to
//! the writer actor, which feeds several shards.

use std::io;
use std::path::PathBuf;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message};
use futures_util::future::{BoxFuture, FutureExt};

use super::format::SectionKind;
use super::snapshot::{SectionData, Snapshot};
use super::{FsyncPolicy, Journal, SnapshotSource};
use crate::reported::Condition;

/// An actor whose state is a sequence of changes: each request's changes are one journal record
/// (fsynced before the reply), and a snapshot section is the changes that recreate the state.
pub trait JournaledActor: Actor {
    type Change;
    /// The snapshot section this actor owns.
    const SECTION: SectionKind;

    /// The journal, once recovery has opened it.
    fn journal(&mut self) -> &mut Option<Journal>;
    /// The changes a snapshot section holds, or why they do not decode.
    fn decode_section(payload: &[u8]) -> Result<Vec<Self::Change>, String>;
    /// The changes of one journal record, or why they do not decode.
    fn decode_record(record: &[u8]) -> Result<Vec<Self::Change>, String>;
    fn apply(&mut self, change: Self::Change);
    /// The whole state as a section payload, and the number of objects it holds.
    fn encode_section(&self) -> (Vec<u8>, u64);
    /// Called once the state is recovered (the directory publishes its key index).
    fn recovered(&mut self) {}
}

/// Loads a snapshot section and the journal after it, then journals from here on; answers the
/// number of journal records replayed.
pub struct Recover {
    section: Option<SectionData>,
    journal_dir: PathBuf,
    unwritable: Condition,
}

impl Message for Recover {
    type Result = io::Result<usize>;
}

impl Recover {
    pub fn run<A: JournaledActor>(self, actor: &mut A) -> io::Result<usize> {
        let from_seq = self.section.as_ref().map_or(0, |s| s.journal_seq);
        if let Some(section) = self.section {
            let changes = A::decode_section(&section.payload).map_err(|why| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the {} snapshot section does not decode: {why}",
                        A::SECTION.name()
                    ),
                )
            })?;
            for change in changes {
                actor.apply(change);
            }
        }
        // These journals hold requests answered only once their record is on disk.
        let (mut journal, replay) =
            Journal::open(&self.journal_dir, from_seq, FsyncPolicy::Always)?;
        journal.report_to(self.unwritable);
        for (i, record) in replay.records.iter().enumerate() {
            let Ok(changes) = A::decode_record(record) else {
                return Err(replay.undecodable(i).into());
            };
            for change in changes {
                actor.apply(change);
            }
        }
        *actor.journal() = Some(journal);
        actor.recovered();
        Ok(replay.records.len())
    }
}

/// Rotates the journal and encodes the whole state, in one turn of the actor: the section
/// holds exactly the records before the new segment.
pub struct Export;

impl Message for Export {
    type Result = io::Result<SectionData>;
}

impl Export {
    pub fn run<A: JournaledActor>(self, actor: &mut A) -> io::Result<SectionData> {
        let journal_seq = match actor.journal().as_mut() {
            Some(journal) => journal.rotate()?,
            None => 0,
        };
        let (payload, items) = actor.encode_section();
        Ok(SectionData {
            kind: A::SECTION,
            journal_seq,
            items,
            payload: payload.into(),
            payload_tail: Vec::new(),
        })
    }
}

/// A snapshot covering the segments before this one is on disk: they may go.
pub struct DropJournalBefore(u64);

impl Message for DropJournalBefore {
    type Result = io::Result<()>;
}

impl DropJournalBefore {
    pub fn run<A: JournaledActor>(self, actor: &mut A) -> io::Result<()> {
        match actor.journal() {
            Some(journal) => journal.remove_before(self.0),
            None => Ok(()),
        }
    }
}

/// Implements the handlers of `Recover`, `Export` and `DropJournalBefore` for a
/// `JournaledActor` (a blanket implementation of actix's `Handler` is not allowed).
macro_rules! journaled_handlers {
    ($actor:ty) => {
        impl ::actix::Handler<$crate::persist::journaled::Recover> for $actor {
            type Result = ::std::io::Result<usize>;

            fn handle(
                &mut self,
                msg: $crate::persist::journaled::Recover,
                _: &mut Self::Context,
            ) -> Self::Result {
                msg.run(self)
            }
        }

        impl ::actix::Handler<$crate::persist::journaled::Export> for $actor {
            type Result = ::std::io::Result<$crate::persist::snapshot::SectionData>;

            fn handle(
                &mut self,
                msg: $crate::persist::journaled::Export,
                _: &mut Self::Context,
            ) -> Self::Result {
                msg.run(self)
            }
        }

        impl ::actix::Handler<$crate::persist::journaled::DropJournalBefore> for $actor {
            type Result = ::std::io::Result<()>;

            fn handle(
                &mut self,
                msg: $crate::persist::journaled::DropJournalBefore,
                _: &mut Self::Context,
            ) -> Self::Result {
                msg.run(self)
            }
        }
    };
}
pub(crate) use journaled_handlers;

/// The address of a journaled actor, for recovery and as its snapshot source, and the cell its
/// journal reports refusing writes in (its handle's, which `/health` reads).
pub struct JournaledAddr<A: Actor>(pub Addr<A>, pub Condition);

impl<A> JournaledAddr<A>
where
    A: JournaledActor + Handler<Recover>,
    A::Context: ToEnvelope<A, Recover>,
{
    /// Restores the actor from its section of `snapshot` (if any) and its journal in
    /// `journal_dir`; answers the number of journal records replayed.
    pub async fn recover(
        &self,
        snapshot: Option<&Snapshot>,
        journal_dir: PathBuf,
    ) -> io::Result<usize> {
        let section = snapshot.and_then(|s| s.section(A::SECTION)).cloned();
        self.0
            .send(Recover {
                section,
                journal_dir,
                unwritable: self.1.clone(),
            })
            .await
            .map_err(io::Error::other)?
    }
}

impl<A> SnapshotSource for JournaledAddr<A>
where
    A: JournaledActor + Handler<Export> + Handler<DropJournalBefore>,
    A::Context: ToEnvelope<A, Export> + ToEnvelope<A, DropJournalBefore>,
{
    fn take_section(&self) -> BoxFuture<'static, io::Result<SectionData>> {
        let addr = self.0.clone();
        async move { addr.send(Export).await.map_err(io::Error::other)? }.boxed()
    }

    fn snapshot_saved(&self, journal_seq: u64) -> BoxFuture<'static, io::Result<()>> {
        let addr = self.0.clone();
        async move {
            addr.send(DropJournalBefore(journal_seq))
                .await
                .map_err(io::Error::other)?
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::format::{decode, encode};
    use actix::Context;

    /// A journaled list of words: the smallest `JournaledActor`.
    #[derive(Default)]
    struct Words {
        words: Vec<String>,
        journal: Option<Journal>,
        recovered: bool,
    }

    impl Actor for Words {
        type Context = Context<Self>;
    }

    impl JournaledActor for Words {
        type Change = String;
        const SECTION: SectionKind = SectionKind::Directory;

        fn journal(&mut self) -> &mut Option<Journal> {
            &mut self.journal
        }

        fn decode_section(payload: &[u8]) -> Result<Vec<String>, String> {
            decode(payload)
        }

        fn decode_record(record: &[u8]) -> Result<Vec<String>, String> {
            decode(record)
        }

        fn apply(&mut self, change: String) {
            self.words.push(change);
        }

        fn encode_section(&self) -> (Vec<u8>, u64) {
            (encode(&self.words), self.words.len() as u64)
        }

        fn recovered(&mut self) {
            self.recovered = true;
        }
    }

    journaled_handlers!(Words);

    /// Journals one request's words, as an actor's commit does.
    struct Say(Vec<String>);

    impl Message for Say {
        type Result = ();
    }

    impl Handler<Say> for Words {
        type Result = ();

        fn handle(&mut self, msg: Say, _: &mut Self::Context) {
            let journal = self.journal.as_mut().expect("recovered");
            journal.append(&encode(&msg.0)).unwrap();
            self.words.extend(msg.0);
        }
    }

    /// The words and recovery flag of the actor, read back.
    struct Read;

    impl Message for Read {
        type Result = (Vec<String>, bool);
    }

    impl Handler<Read> for Words {
        type Result = actix::MessageResult<Read>;

        fn handle(&mut self, _: Read, _: &mut Self::Context) -> Self::Result {
            actix::MessageResult((self.words.clone(), self.recovered))
        }
    }

    fn say(words: &[&str]) -> Say {
        Say(words.iter().map(|w| w.to_string()).collect())
    }

    #[test]
    fn a_section_and_the_journal_after_it_recover_the_state_and_covered_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        let journal_dir = dir.path().join("words");
        actix::System::new().block_on(async {
            let first = JournaledAddr(Words::default().start(), Condition::default());
            assert_eq!(first.recover(None, journal_dir.clone()).await.unwrap(), 0);
            first.0.send(say(&["a", "b"])).await.unwrap();
            let section = first.take_section().await.unwrap();
            assert_eq!((section.kind, section.items), (SectionKind::Directory, 2));
            first.0.send(say(&["c"])).await.unwrap();
            // The segments before the section's are covered by it.
            first.snapshot_saved(section.journal_seq).await.unwrap();
            let snapshot = Snapshot {
                id: "test".into(),
                created_micros: 0,
                n_shards: 1,
                sections: vec![section],
            };

            // A second actor on the same files, as after a restart.
            let second = JournaledAddr(Words::default().start(), Condition::default());
            let replayed = second
                .recover(Some(&snapshot), journal_dir.clone())
                .await
                .unwrap();
            assert_eq!(replayed, 1, "only the record after the section");
            let (words, recovered) = second.0.send(Read).await.unwrap();
            assert_eq!(words, ["a", "b", "c"]);
            assert!(recovered);

            // Without the section, the covered segment is gone: only "c" is left.
            let third = JournaledAddr(Words::default().start(), Condition::default());
            third.recover(None, journal_dir.clone()).await.unwrap();
            assert_eq!(third.0.send(Read).await.unwrap().0, ["c"]);
        });
    }
}

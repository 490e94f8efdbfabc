//! A cluster node's snapshots (replicated mode with a data directory): the cut, which holds the
//! replica still between two messages while the store's section is taken and records the
//! stream sequence it applied as the stream sequences section; and at start, the sequence a
//! snapshot lets the replica resume after.

use std::io;
use std::time::Duration;

use async_nats::jetstream::stream;
use futures_util::future::{BoxFuture, FutureExt};
use tokio::sync::{mpsc, oneshot};

use super::replica::Hold;
use super::ClusterError;
use crate::persist::format::{decode, encode, SectionKind, StreamSequencesV1};
use crate::persist::snapshot::{SectionData, Snapshot};
use crate::persist::{CutGuard, SnapshotCut};

/// The [`SnapshotCut`] of a replicated-mode replica.
pub(super) struct ReplicaCut {
    pub stream: String,
    pub partitions: usize,
    pub holds: mpsc::Sender<Hold>,
    /// How long a hold waits for the replica to stop between two messages ([`HOLD_WITHIN`]).
    pub hold_within: Duration,
}

/// How long a snapshot or an apply waits for the replica to stop between two messages. It
/// applies one message at a time, but one it cannot read yet (NATS does not answer for its
/// forms) keeps it there: past this the snapshot or apply fails, saying so, rather than hang
/// (and an apply with it every later one).
pub(super) const HOLD_WITHIN: Duration = Duration::from_secs(30);

impl SnapshotCut for ReplicaCut {
    fn hold(&self) -> BoxFuture<'static, io::Result<(SectionData, CutGuard)>> {
        let (holds, stream, partitions, hold_within) = (
            self.holds.clone(),
            self.stream.clone(),
            self.partitions,
            self.hold_within,
        );
        async move {
            let (at_in, at) = oneshot::channel();
            let (release, release_out) = oneshot::channel::<()>();
            let hold = Hold {
                at: at_in,
                release: release_out,
            };
            let gone = || io::Error::other("the cluster replica is not running");
            let stopped = async {
                holds.send(hold).await.map_err(|_| gone())?;
                at.await.map_err(|_| gone())
            };
            // Given up, the hold is dropped: the replica, once it gets to it, goes on.
            let applied = tokio::time::timeout(hold_within, stopped)
                .await
                .map_err(|_| {
                    io::Error::other(format!(
                        "the cluster replica did not stop between two messages within {} s (it may be waiting for NATS to answer for a message's forms)",
                        hold_within.as_secs_f64()
                    ))
                })??;
            // One replica applies every partition in stream order: each is covered up to the
            // same sequence.
            let sequences = StreamSequencesV1 {
                stream,
                applied: vec![(applied > 0).then_some(applied); partitions],
            };
            let section = SectionData {
                kind: SectionKind::StreamSequences,
                journal_seq: 0,
                items: 0,
                payload: encode(&sequences).into(),
                payload_tail: Vec::new(),
            };
            let guard: CutGuard = Box::new(release);
            Ok((section, guard))
        }
        .boxed()
    }
}

/// What the stream holds: its first and last sequence and its message count.
pub(super) struct StreamSpan {
    pub first: u64,
    pub last: u64,
    pub messages: u64,
}

impl From<&stream::State> for StreamSpan {
    fn from(state: &stream::State) -> StreamSpan {
        StreamSpan {
            first: state.first_sequence,
            last: state.last_sequence,
            messages: state.messages,
        }
    }
}

/// The last stream sequence the rows of `snapshot` cover (0: no snapshot). A snapshot without a
/// stream sequences section of `stream_name` (taken outside the cluster, or of another stream)
/// is refused: replaying the stream over its rows would count aggregations twice. So is one
/// the stream no longer continues (it ends before the sequence, or has dropped messages after).
pub(super) fn resume_after(
    snapshot: Option<&Snapshot>,
    stream_name: &str,
    span: StreamSpan,
) -> Result<u64, ClusterError> {
    let Some(snapshot) = snapshot else {
        return Ok(0);
    };
    let refuse = |reason: String| {
        ClusterError::Stream {
        stream: stream_name.to_string(),
        reason: format!("snapshot {}: {reason}; move it out of the snapshot directory to replay the stream from its start", snapshot.id),
    }
    };
    let Some(section) = snapshot.section(SectionKind::StreamSequences) else {
        return Err(refuse(
            "it was not taken by a cluster node (it records no stream sequence)".into(),
        ));
    };
    let sequences: StreamSequencesV1 = decode(&section.payload)
        .map_err(|e| refuse(format!("its stream sequences section cannot be read: {e}")))?;
    if sequences.stream != stream_name {
        return Err(refuse(format!(
            "it was taken from stream {}",
            sequences.stream
        )));
    }
    // Replicated mode: every partition is covered up to the same sequence.
    let after = sequences
        .applied
        .iter()
        .flatten()
        .copied()
        .min()
        .unwrap_or(0);
    if after > span.last {
        return Err(refuse(format!(
            "it covers the stream up to sequence {after}, but the stream ends at {}",
            span.last
        )));
    }
    if span.messages > 0 && span.first > after + 1 {
        return Err(refuse(format!(
            "the stream no longer holds the messages after sequence {after} (it starts at {})",
            span.first
        )));
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_with(sections: Vec<SectionData>) -> Snapshot {
        Snapshot {
            id: "20261201T000000000000Z".into(),
            created_micros: 0,
            n_shards: 1,
            sections,
        }
    }

    fn sequences(stream: &str, applied: Vec<Option<u64>>) -> SectionData {
        SectionData {
            kind: SectionKind::StreamSequences,
            journal_seq: 0,
            items: 0,
            payload: encode(&StreamSequencesV1 {
                stream: stream.into(),
                applied,
            })
            .into(),
            payload_tail: Vec::new(),
        }
    }

    fn span(first: u64, last: u64) -> StreamSpan {
        StreamSpan {
            first,
            last,
            messages: last + 1 - first,
        }
    }

    /// A replica that does not stop between two messages (stuck on one) fails the hold after
    /// the bound rather than hang it; once it gets to the hold, it goes on.
    #[actix_web::test]
    async fn a_hold_the_replica_does_not_answer_fails() {
        let (holds, mut held) = mpsc::channel(1);
        let cut = ReplicaCut {
            stream: "QUIVER".into(),
            partitions: 2,
            holds,
            hold_within: Duration::from_millis(50),
        };
        let failed = cut.hold().await.err().expect("nothing answered the hold");
        assert!(
            failed
                .to_string()
                .contains("did not stop between two messages"),
            "{failed}"
        );
        let late = held.recv().await.expect("the hold was asked");
        assert!(late.at.send(9).is_err(), "nobody waits for it any more");
    }

    fn refusal(result: Result<u64, ClusterError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn a_snapshot_resumes_after_its_sequence_and_none_from_the_start() {
        assert_eq!(resume_after(None, "QUIVER", span(1, 9)).unwrap(), 0);
        let taken = snapshot_with(vec![sequences("QUIVER", vec![Some(7), Some(7)])]);
        assert_eq!(resume_after(Some(&taken), "QUIVER", span(1, 9)).unwrap(), 7);
        // Taken before anything was applied: from the start.
        let empty = snapshot_with(vec![sequences("QUIVER", vec![None, None])]);
        assert_eq!(resume_after(Some(&empty), "QUIVER", span(1, 9)).unwrap(), 0);
    }

    #[test]
    fn a_snapshot_the_stream_does_not_continue_is_refused() {
        let single_server = snapshot_with(Vec::new());
        assert!(
            refusal(resume_after(Some(&single_server), "QUIVER", span(1, 9)))
                .contains("it was not taken by a cluster node")
        );
        let other = snapshot_with(vec![sequences("OTHER", vec![Some(3)])]);
        assert!(refusal(resume_after(Some(&other), "QUIVER", span(1, 9)))
            .contains("it was taken from stream OTHER"));
        let ahead = snapshot_with(vec![sequences("QUIVER", vec![Some(12)])]);
        assert!(refusal(resume_after(Some(&ahead), "QUIVER", span(1, 9)))
            .contains("up to sequence 12, but the stream ends at 9"));
        let behind = snapshot_with(vec![sequences("QUIVER", vec![Some(3)])]);
        assert!(refusal(resume_after(Some(&behind), "QUIVER", span(5, 9)))
            .contains("no longer holds the messages after sequence 3"));
        // Right before the first message it still holds: resumable.
        assert_eq!(
            resume_after(Some(&behind), "QUIVER", span(4, 9)).unwrap(),
            3
        );
    }
}

//! A cluster node's snapshots (replicated mode with a data directory): the cut, which holds the
//! replica still between two messages while the store's section is taken and records the
//! stream sequence it applied as the stream sequences section; and at start, the sequence a
//! snapshot lets the replica resume after.

use std::io;

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
}

impl SnapshotCut for ReplicaCut {
    fn hold(&self) -> BoxFuture<'static, io::Result<(SectionData, CutGuard)>> {
        let (holds, stream, partitions) =
            (self.holds.clone(), self.stream.clone(), self.partitions);
        async move {
            let (at_in, at) = oneshot::channel();
            let (release, release_out) = oneshot::channel::<()>();
            let hold = Hold {
                at: at_in,
                release: release_out,
            };
            let gone = || io::Error::other("the cluster replica is not running");
            holds.send(hold).await.map_err(|_| gone())?;
            let applied = at.await.map_err(|_| gone())?;
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
                payload: encode(&sequences),
            };
            let guard: CutGuard = Box::new(release);
            Ok((section, guard))
        }
        .boxed()
    }
}

/// The last stream sequence the rows of `snapshot` cover (0: no snapshot). A snapshot without a
/// stream sequences section of `stream_name` (taken outside the cluster, or of another stream)
/// is refused: replaying the stream over its rows would count aggregations twice. So is one
/// the stream no longer continues (it ends before the sequence, or has dropped messages after).
pub(super) fn resume_after(
    snapshot: Option<&Snapshot>,
    stream_name: &str,
    state: &stream::State,
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
    if after > state.last_sequence {
        return Err(refuse(format!(
            "it covers the stream up to sequence {after}, but the stream ends at {}",
            state.last_sequence
        )));
    }
    if state.messages > 0 && state.first_sequence > after + 1 {
        return Err(refuse(format!(
            "the stream no longer holds the messages after sequence {after} (it starts at {})",
            state.first_sequence
        )));
    }
    Ok(after)
}

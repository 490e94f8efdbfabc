//! What a read of the store found ([`ReadResult`]): each lookup's row, in lookup order, with
//! how long the shard that answered it took. The rows' bytes sit in one buffer for the whole
//! read, which the answer keeps and serves its stored values from.

use std::ops::Range;
use std::time::Duration;

use super::shard::StoredRow;
use crate::time::Micros;

/// Rows in lookup order, plus how long the read took. Every row's payload is appended to one
/// buffer: a `Vec` a row (and the three lists a read kept: shards, rows, latencies) cost an
/// allocation and a free each, 11 rows a seed batch.
#[derive(Debug, Default)]
pub struct ReadResult {
    /// The rows' payloads, back to back, in the order they were read.
    payloads: Vec<u8>,
    /// Index = lookup.
    found: Vec<Found>,
    /// How long the read took: of this node's shards, or the slowest of them and the nodes
    /// a partitioned cluster forwarded lookups to.
    pub read_latency: Duration,
}

/// What a read found for one lookup.
#[derive(Debug, Clone)]
struct Found {
    /// The row's event time and where its payload is in `payloads`; `None`: no row.
    row: Option<(Micros, Range<usize>)>,
    /// The shard of this node that holds the lookup's key: which of [`Router::read`]'s locked
    /// partitions reads it. (Unused in a result put together with `place`.)
    ///
    /// [`Router::read`]: super::Router::read
    shard: usize,
    /// How long the part of the read that answered it took (this node's shards', or a forwarded
    /// read's).
    latency: Duration,
}

/// A row as read, borrowed from its [`ReadResult`]: its event time and encoded values. For an
/// aggregating view, `event_time` is the window's end (the effective time) and the values are
/// the aggregates (null for an empty window).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadRow<'a> {
    pub event_time: Micros,
    pub payload: &'a [u8],
    /// Where `payload` starts in [`ReadResult::payloads`].
    pub at: usize,
}

impl ReadResult {
    /// A result for `n` lookups that has found nothing yet, with room for `payload_bytes`.
    pub(super) fn nothing_for(n: usize, payload_bytes: usize) -> ReadResult {
        ReadResult {
            payloads: Vec::with_capacity(payload_bytes),
            found: vec![
                Found {
                    row: None,
                    shard: 0,
                    latency: Duration::ZERO,
                };
                n
            ],
            read_latency: Duration::ZERO,
        }
    }

    /// The row lookup `lookup` found, if any.
    #[inline]
    pub fn row(&self, lookup: usize) -> Option<ReadRow<'_>> {
        self.read_row(&self.found[lookup])
    }

    /// Every lookup's row, in lookup order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = Option<ReadRow<'_>>> {
        self.found.iter().map(|found| self.read_row(found))
    }

    /// How long the part of the read that answered lookup `lookup` took.
    pub fn latency(&self, lookup: usize) -> Duration {
        self.found[lookup].latency
    }

    /// What answering lookup `lookup` cost: how long its part of the read took, and its row's
    /// payload bytes (0 without a row). One look at the lookup, where its latency and its
    /// row, each looked up, cost a batch's rows ~170 instructions each.
    pub fn cost(&self, lookup: usize) -> (Duration, usize) {
        let found = &self.found[lookup];
        let bytes = found.row.as_ref().map_or(0, |(_, span)| span.len());
        (found.latency, bytes)
    }

    /// The stored bytes of every row read.
    pub fn bytes_read(&self) -> usize {
        self.payloads.len()
    }

    #[inline]
    fn read_row(&self, found: &Found) -> Option<ReadRow<'_>> {
        let (event_time, span) = found.row.as_ref()?;
        Some(ReadRow {
            event_time: *event_time,
            payload: &self.payloads[span.clone()],
            at: span.start,
        })
    }

    /// Every row's payload, back to back: bytes `at..` of a [`ReadRow`] are its payload.
    #[inline]
    pub fn payloads(&self) -> &[u8] {
        &self.payloads
    }

    /// Sets which shard holds each lookup's key, for [`ReadResult::read_staged`].
    pub(super) fn set_shards(&mut self, shard_of: impl Fn(usize) -> usize) {
        for (lookup, found) in self.found.iter_mut().enumerate() {
            found.shard = shard_of(lookup);
        }
    }

    /// Whether some lookup's key is on `shard`.
    pub(super) fn reads_shard(&self, shard: usize) -> bool {
        self.found.iter().any(|found| found.shard == shard)
    }

    /// Reads the row of every lookup in two passes over up to `STAGE` of them at a time:
    /// `locate` finds where each row is (and starts loading it), then `read` appends its
    /// payload to the buffer it is given and answers its event time (`None`: no row). Their
    /// cache misses overlap, rather than each lookup's waiting for the one before. Both are
    /// handed `state` (what the read holds across lookups), the lookup and its shard.
    pub(super) fn read_staged<S, L: Copy + Default>(
        &mut self,
        state: &mut S,
        mut locate: impl FnMut(&mut S, usize, usize) -> L,
        mut read: impl FnMut(&mut S, usize, usize, L, &mut Vec<u8>) -> Option<Micros>,
    ) {
        const STAGE: usize = 16;
        let mut staged = [(0, L::default()); STAGE];
        for first in (0..self.found.len()).step_by(STAGE) {
            let lookups = first..self.found.len().min(first + STAGE);
            for (stage, lookup) in staged.iter_mut().zip(lookups.clone()) {
                *stage = (lookup, locate(state, lookup, self.found[lookup].shard));
            }
            for &(lookup, located) in &staged[..lookups.len()] {
                let start = self.payloads.len();
                let shard = self.found[lookup].shard;
                self.found[lookup].row = read(state, lookup, shard, located, &mut self.payloads)
                    .map(|event_time| (event_time, start..self.payloads.len()));
            }
        }
    }

    /// Says every lookup was answered in `latency`, the whole read's.
    pub(super) fn answered_in(&mut self, latency: Duration) {
        self.read_latency = latency;
        for found in &mut self.found {
            found.latency = latency;
        }
    }

    /// Makes `row` (copied) lookup `lookup`'s, answered in `latency`: for a result put together
    /// from a local read and a forwarded one.
    pub(super) fn place(&mut self, lookup: usize, row: Option<(Micros, &[u8])>, latency: Duration) {
        let start = self.payloads.len();
        let found = &mut self.found[lookup];
        found.row = row.map(|(event_time, payload)| {
            self.payloads.extend_from_slice(payload);
            (event_time, start..self.payloads.len())
        });
        found.latency = latency;
    }
}

#[cfg(test)]
impl ReadResult {
    /// A result of `rows`, in lookup order, as tests build one by hand.
    pub fn of_rows<'a>(
        rows: impl ExactSizeIterator<Item = Option<(Micros, &'a [u8])>>,
    ) -> ReadResult {
        let mut read = ReadResult::nothing_for(rows.len(), 0);
        for (lookup, row) in rows.enumerate() {
            read.place(lookup, row, Duration::ZERO);
        }
        read
    }
}

impl StoredRow {
    /// The row's event time and payload, borrowed.
    pub fn parts(&self) -> (Micros, &[u8]) {
        (self.event_time, &self.payload)
    }
}

//! The store's side of reads in a partitioned cluster: a node holds only some partitions, and
//! [`Router::read_anywhere`] asks a [`RemoteRows`] for the rows of the others. The way back is
//! here too: a node answers lookups forwarded to it ([`Router::answer_forwarded`]) and drops the
//! rows of a partition it gave up ([`Router::drop_keys`]).
//!
//! The store knows nothing of NATS: `cluster` implements [`RemoteRows`] and carries the bytes.

use std::sync::Arc;
use std::time::Instant;

use futures_util::future::{join_all, BoxFuture};

use super::read_result::ReadResult;
use super::recovery::view_ids_of;
use super::router::{Router, StoreError};
use super::shard::{DropKeys, DroppedKeys, Lookup, ReadContext, StoredRow};
use super::tiles::AggregateMask;
use crate::persist::format::{
    decode, encode, ForwardedLookupV1, ForwardedReadV1, ForwardedRowV1, ForwardedRowsV1,
};
use crate::registry::aggregation::LeadingEdge;
use crate::registry::ViewId;

/// Where the rows of partitions this node does not hold are read.
pub trait RemoteRows: Send + Sync {
    /// True when this node holds (caught up) the partition of `view`'s `key`.
    fn holds(&self, view: ViewId, key: &[u8]) -> bool;

    /// Reads `lookups`, none held here, from nodes that hold them, by `deadline`: the rows in
    /// lookup order.
    fn read(
        &self,
        lookups: Vec<Lookup>,
        context: ReadContext,
        deadline: Option<Instant>,
    ) -> BoxFuture<'static, Result<Vec<Option<StoredRow>>, StoreError>>;
}

impl Router {
    /// This router with the rows of partitions it does not hold read through `remote`; call
    /// before the router is cloned.
    pub fn with_remote(mut self, remote: Arc<dyn RemoteRows>) -> Router {
        self.remote = Some(remote);
        self
    }

    /// True when every read is made here (not a partitioned cluster): then
    /// [`Router::read_anywhere`] answers without waiting.
    pub fn reads_locally(&self) -> bool {
        self.remote.is_none()
    }

    /// [`Router::read`], with the lookups of partitions this node does not hold (partitioned
    /// cluster) read from the nodes that do; their latency is the whole forwarded read's.
    pub async fn read_anywhere(
        &self,
        lookups: &[Lookup],
        context: ReadContext,
        deadline: Option<Instant>,
    ) -> Result<ReadResult, StoreError> {
        let Some(remote) = &self.remote else {
            return Ok(self.read(lookups, context));
        };
        let (here, elsewhere): (Vec<usize>, Vec<usize>) =
            (0..lookups.len()).partition(|&i| remote.holds(lookups[i].view(), lookups[i].key()));
        if elsewhere.is_empty() {
            return Ok(self.read(lookups, context));
        }
        let started = Instant::now();
        let forwarded = remote.read(
            elsewhere.iter().map(|&i| lookups[i].clone()).collect(),
            context,
            deadline,
        );
        let local_lookups: Vec<Lookup> = here.iter().map(|&i| lookups[i].clone()).collect();
        let local = self.read(&local_lookups, context);
        let remote_rows = forwarded.await?;
        let forwarded_latency = started.elapsed();
        let remote_bytes: usize = remote_rows
            .iter()
            .flatten()
            .map(|row| row.payload.len())
            .sum();
        let mut read = ReadResult::nothing_for(lookups.len(), local.bytes_read() + remote_bytes);
        read.read_latency = local.read_latency.max(forwarded_latency);
        for ((row, i), &position) in local.rows().zip(0..).zip(&here) {
            read.place(
                position,
                row.map(|row| (row.event_time, row.payload)),
                local.latency(i),
            );
        }
        for (row, &position) in remote_rows.iter().zip(&elsewhere) {
            read.place(
                position,
                row.as_ref().map(StoredRow::parts),
                forwarded_latency,
            );
        }
        Ok(read)
    }

    /// Lookups as a forwarded read (views by name, so that the node asked resolves its own ids).
    pub fn encode_forwarded(&self, lookups: &[Lookup], context: ReadContext) -> Vec<u8> {
        let known = self.views.load().names_by_id();
        let mut names = Vec::new();
        let mut index_of = |view: ViewId| {
            let name = known[view as usize].clone();
            match names.iter().position(|n| *n == name) {
                Some(i) => i as u32,
                None => {
                    names.push(name);
                    (names.len() - 1) as u32
                }
            }
        };
        let lookups = lookups
            .iter()
            .map(|lookup| ForwardedLookupV1 {
                view: index_of(lookup.view()),
                key: lookup.key().to_vec(),
                aggregates: lookup.aggregates().bits(),
            })
            .collect();
        encode(&ForwardedReadV1 {
            views: names,
            lookups,
            now: context.now,
            leading_edge: match context.leading_edge {
                None => 0,
                Some(LeadingEdge::WallClockTime) => 1,
                Some(LeadingEdge::LatestEventTime) => 2,
            },
        })
    }

    /// Answers a forwarded read from this node's shards, or says it does not hold them all
    /// (`holds` tells, per view and key); a lookup of a view this node does not know reads
    /// nothing.
    pub fn answer_forwarded(
        &self,
        request: &[u8],
        holds: impl Fn(ViewId, &[u8]) -> bool,
    ) -> Result<Vec<u8>, StoreError> {
        let request: ForwardedReadV1 = decode(request).map_err(StoreError::Remote)?;
        let views = self.views.load_full();
        let ids = view_ids_of(&views, &request.views);
        let asked = request.lookups.len();
        let mut positions = Vec::with_capacity(request.lookups.len());
        let mut lookups = Vec::with_capacity(request.lookups.len());
        for (position, lookup) in request.lookups.into_iter().enumerate() {
            let Some(view) = ids.get(lookup.view as usize).copied().flatten() else {
                continue;
            };
            if !holds(view, &lookup.key) {
                return Ok(encode(&ForwardedRowsV1 { rows: None }));
            }
            let Some(layout) = views.layout(view) else {
                continue;
            };
            positions.push(position);
            let aggregates = AggregateMask::from_bits(lookup.aggregates);
            lookups.push(Lookup::new(view, layout, lookup.key, aggregates));
        }
        let context = ReadContext {
            now: request.now,
            leading_edge: match request.leading_edge {
                1 => Some(LeadingEdge::WallClockTime),
                2 => Some(LeadingEdge::LatestEventTime),
                _ => None,
            },
            // The asking node times the whole forwarded read.
            timed: false,
        };
        let read = self.read(&lookups, context);
        let mut rows = vec![None; asked];
        for (row, position) in read.rows().zip(positions) {
            rows[position] = row.map(|row| ForwardedRowV1 {
                event_time: row.event_time,
                payload: row.payload.to_vec(),
            });
        }
        Ok(encode(&ForwardedRowsV1 { rows: Some(rows) }))
    }

    /// Drops every key of every view for which `drop` is true (a partition this node gave up),
    /// on every shard; returns once all have.
    pub async fn drop_keys(&self, drop: DroppedKeys) -> Result<(), StoreError> {
        let answers = join_all(
            self.shards
                .iter()
                .map(|shard| shard.send(DropKeys(Arc::clone(&drop)))),
        )
        .await;
        for (shard, answer) in answers.into_iter().enumerate() {
            answer.map_err(|_| StoreError::ShardGone(shard))??;
        }
        Ok(())
    }
}

/// The rows of a forwarded read's answer, or `None` when the node asked does not hold them.
pub fn decode_forwarded_rows(answer: &[u8]) -> Result<Option<Vec<Option<StoredRow>>>, StoreError> {
    let answer: ForwardedRowsV1 = decode(answer).map_err(StoreError::Remote)?;
    Ok(answer.rows.map(|rows| {
        rows.into_iter()
            .map(|row| {
                row.map(|row| StoredRow {
                    event_time: row.event_time,
                    payload: row.payload,
                })
            })
            .collect()
    }))
}

#[cfg(test)]
mod tests {
    use actix::System;

    use super::*;
    use crate::persist::format::ViewRefV1;
    use crate::store::key::shard_of;
    use crate::store::{ReadRow, RowWrite};

    /// A row read, as the event time and payload a forwarded one carries.
    fn parts(row: Option<ReadRow<'_>>) -> Option<(i64, &[u8])> {
        row.map(|row| (row.event_time, row.payload))
    }

    fn lookup(key: u64) -> Lookup {
        Lookup::new(0, 0, key.to_le_bytes().to_vec(), AggregateMask::ALL)
    }

    #[test]
    fn a_forwarded_read_answers_what_a_local_read_does_and_dropped_keys_are_gone() {
        System::new().block_on(async {
            let views = vec![ViewRefV1 {
                workspace: "test".into(),
                view: "plain".into(),
            }];
            let router = Router::start(2, 4096, views, vec![None]).unwrap();
            let rows = (0..20u64)
                .map(|key| RowWrite {
                    view: 0,
                    layout: 0,
                    key: key.to_le_bytes().to_vec(),
                    event_time: key as i64,
                    payload: vec![key as u8; 3],
                })
                .collect();
            router.write(rows).await.unwrap();
            let lookups: Vec<Lookup> = (0..25).map(lookup).collect();
            let context = ReadContext {
                now: 100,
                leading_edge: Some(LeadingEdge::WallClockTime),
                timed: false,
            };
            let request = router.encode_forwarded(&lookups, context);
            let answer = router.answer_forwarded(&request, |_, _| true).unwrap();
            let forwarded = decode_forwarded_rows(&answer).unwrap().unwrap();
            let local = router.read(&lookups, context);
            let forwarded_rows: Vec<_> = forwarded
                .iter()
                .map(|row| row.as_ref().map(StoredRow::parts))
                .collect();
            assert_eq!(forwarded_rows, local.rows().map(parts).collect::<Vec<_>>());
            assert!(forwarded[..20].iter().all(Option::is_some));
            assert!(forwarded[20..].iter().all(Option::is_none));

            // A node that does not hold a partition asked says so rather than answer nothing.
            let answer = router
                .answer_forwarded(&request, |_, key| key[0] != 3)
                .unwrap();
            assert_eq!(decode_forwarded_rows(&answer).unwrap(), None);

            // Partition 1 of 4 given up: its keys read nothing, the others are kept.
            let in_partition = |key: &[u8]| shard_of(0, key, 4) == 1;
            router
                .drop_keys(Arc::new(move |_, key: &[u8]| in_partition(key)))
                .await
                .unwrap();
            let after = router.read(&lookups, context);
            for (lookup, (before, after)) in lookups
                .iter()
                .zip(forwarded.iter().zip(after.rows().map(parts)))
            {
                let expected = if in_partition(lookup.key()) {
                    None
                } else {
                    before.as_ref().map(StoredRow::parts)
                };
                assert_eq!(after, expected);
            }
        });
    }
}

//! The store's concurrency invariants, checked against a model: readers on their own threads
//! never see a torn row, never see a write before it was sent to the writer nor miss one that was
//! acknowledged, while writes grow and compact the arenas and snapshots export the shards; each
//! snapshot is a cut of the write sequence, though later batches are applied while it is taken. And the watermark of `LATEST_EVENT_TIME` windows is
//! one per view, whichever shard a key lives in. Aggregates read through the keys' memos, which
//! readers publish and replace while the writer adds events, are never stale once a write is
//! acknowledged and never torn.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use actix::System;

use super::key::shard_of;
use super::shard::ShardExport;
use super::tiles::AggregateMask;
use super::writer::StartSnapshot;
use super::{Lookup, ReadContext, ReadRow, Router, RowWrite};
use crate::persist::format::ViewRefV1;
use crate::registry::aggregation::{
    AggregateFeature, AggregationSpec, Function, LeadingEdge, Window,
};
use crate::registry::types::DataType;
use crate::registry::value::Value;
use crate::registry::Field;
use crate::store::row::{decode_row, encode_row};

const KEYS: u64 = 300;
const BATCHES: u64 = 400;
const HOUR: i64 = 3_600_000_000;

fn views(names: &[&str]) -> Vec<ViewRefV1> {
    names
        .iter()
        .map(|name| ViewRefV1 {
            workspace: "test".into(),
            view: (*name).into(),
        })
        .collect()
}

fn key_bytes(key: u64) -> Vec<u8> {
    key.to_le_bytes().to_vec()
}

/// Version `version` of `key`'s row: (key, version) repeated a version-dependent number of
/// times, so that a torn or misplaced read cannot look whole, and rows change size (the arena
/// grows and fills with dead bytes).
fn payload(key: u64, version: u64) -> Vec<u8> {
    let unit = [key.to_le_bytes(), version.to_le_bytes()].concat();
    unit.repeat(1 + ((key + version) % 40) as usize)
}

/// The version a read payload holds, after checking it is one whole row of `key`.
fn version_of(key: u64, bytes: &[u8]) -> u64 {
    assert!(
        !bytes.is_empty() && bytes.len().is_multiple_of(16),
        "torn row"
    );
    let version = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    assert_eq!(bytes, payload(key, version), "torn or misplaced row");
    version
}

/// Whether batch `batch` writes `key` (about a third of the keys each batch).
fn writes(batch: u64, key: u64) -> bool {
    (key * 7 + batch).is_multiple_of(3)
}

/// The model after batches `1..=batch`: each key's latest version (0: never written).
fn model_after(batch: u64) -> Vec<u64> {
    (0..KEYS)
        .map(|key| (1..=batch).rev().find(|&b| writes(b, key)).unwrap_or(0))
        .collect()
}

/// Per key: the newest version (or event count) handed to the writer and the newest it
/// acknowledged; and whether the writer is done.
struct Progress {
    sent: Vec<AtomicU64>,
    acknowledged: Vec<AtomicU64>,
    done: AtomicBool,
}

impl Progress {
    fn new() -> Arc<Progress> {
        let counters = || (0..KEYS).map(|_| AtomicU64::new(0)).collect();
        Arc::new(Progress {
            sent: counters(),
            acknowledged: counters(),
            done: AtomicBool::new(false),
        })
    }
}

/// What reader `reader` reads the `reads`-th time: keys, aggregates, and when.
type ReadPlan = fn(u64, u64) -> (Vec<u64>, AggregateMask, ReadContext);

/// The state of `key` (a version or an event count; 0 for no row) that a row read with these
/// aggregates holds, after checking the row is whole.
type StateOf = fn(u64, Option<ReadRow<'_>>, AggregateMask) -> u64;

/// Two reader threads reading as `plan` says until the writer is done (and at least 1000
/// times each): every key's state is between what was acknowledged before the read and what
/// was sent after it, and never goes back.
fn spawn_readers(
    router: &Router,
    progress: &Arc<Progress>,
    plan: ReadPlan,
    state_of: StateOf,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..2u64)
        .map(|reader| {
            let (router, progress) = (router.clone(), Arc::clone(progress));
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut last_seen = vec![0u64; KEYS as usize];
                while !progress.done.load(Ordering::Acquire) || reads < 1000 {
                    let (keys, wanted, context) = plan(reader, reads);
                    let lookups: Vec<Lookup> = keys
                        .iter()
                        .map(|&key| Lookup::new(0, 0, key_bytes(key), wanted))
                        .collect();
                    let floors: Vec<u64> = keys
                        .iter()
                        .map(|&k| progress.acknowledged[k as usize].load(Ordering::Acquire))
                        .collect();
                    let read = router.read(&lookups, context);
                    for ((&key, row), floor) in keys.iter().zip(read.rows()).zip(floors) {
                        let state = state_of(key, row, wanted);
                        let ceiling = progress.sent[key as usize].load(Ordering::Acquire);
                        assert!(
                            floor <= state && state <= ceiling,
                            "key {key}: read {state}, outside [{floor}, {ceiling}]"
                        );
                        assert!(state >= last_seen[key as usize], "a read went back");
                        last_seen[key as usize] = state;
                    }
                    reads += 1;
                }
            })
        })
        .collect()
}

/// Every row of a snapshot's exports, as key -> version; each key at most once.
fn exported_versions(exports: &[ShardExport]) -> Vec<u64> {
    let mut versions = vec![0; KEYS as usize];
    for export in exports {
        for record in export.records.live_records() {
            let key = u64::from_le_bytes(record.key.try_into().unwrap());
            let version = version_of(key, record.payload);
            assert_eq!((record.view, record.flags), (0, 0));
            assert_eq!(record.event_time, version as i64);
            assert_eq!(versions[key as usize], 0, "key {key} exported twice");
            versions[key as usize] = version;
        }
    }
    versions
}

#[test]
fn readers_see_whole_rows_between_sent_and_acknowledged_while_arenas_grow_compact_and_export() {
    System::new().block_on(async {
        // A tiny arena: it grows many times, and overwrites make it compact.
        let router = Router::start(2, 4096, views(&["plain"]), vec![None]).unwrap();
        let progress = Progress::new();
        let readers = spawn_readers(
            &router,
            &progress,
            |reader, reads| {
                // Three keys a read, usually spread over both shards.
                let keys = (0..3)
                    .map(|i| (reads * 31 + reader * 17 + i * 101) % KEYS)
                    .collect();
                let context = ReadContext {
                    now: 0,
                    leading_edge: None,
                    timed: false,
                };
                (keys, AggregateMask::ALL, context)
            },
            |key, row, _| row.map_or(0, |row| version_of(key, row.payload)),
        );

        // Each export is read on a thread of its own while the batches that follow it are
        // applied, and again at the end: its loan of the arena is held meanwhile, while the
        // arena grows, compacts and is lent again.
        let mut exporting = Vec::new();
        for batch in 1..=BATCHES {
            let keys: Vec<u64> = (0..KEYS).filter(|&key| writes(batch, key)).collect();
            for &key in &keys {
                progress.sent[key as usize].store(batch, Ordering::Release);
            }
            let rows = keys
                .iter()
                .map(|&key| RowWrite {
                    view: 0,
                    layout: 0,
                    key: key_bytes(key),
                    event_time: batch as i64,
                    payload: payload(key, batch),
                })
                .collect();
            // Snapshots in pairs one batch apart: the second often borrows the arena mapping
            // the first still holds, with records released in between.
            if batch % 50 < 2 {
                // A snapshot asked for while this batch is on its way: the cut must be the
                // model just before or just after it, the same in every shard.
                let (written, started) =
                    futures_util::join!(router.write(rows), router.writer.send(StartSnapshot));
                written.unwrap();
                let (_, _, receivers) = started.unwrap().unwrap();
                exporting.push(actix::spawn(async move {
                    let mut exports = Vec::new();
                    for receiver in receivers {
                        exports.push(receiver.await.unwrap());
                    }
                    std::thread::spawn(move || {
                        let versions = exported_versions(&exports);
                        assert!(
                            versions == model_after(batch - 1) || versions == model_after(batch),
                            "snapshot {batch} is not a cut"
                        );
                        (versions, exports)
                    })
                }));
            } else {
                router.write(rows).await.unwrap();
            }
            for &key in &keys {
                progress.acknowledged[key as usize].store(batch, Ordering::Release);
            }
        }
        progress.done.store(true, Ordering::Release);
        for reader in readers {
            reader.join().unwrap();
        }
        assert_eq!(exporting.len() as u64, BATCHES / 50 * 2);
        for export in exporting {
            let (versions, exports) = export.await.unwrap().join().unwrap();
            assert_eq!(exported_versions(&exports), versions, "a loan changed");
        }
        let usage = router.usage().await.unwrap();
        assert_eq!(usage.iter().map(|u| u.rows).sum::<usize>(), KEYS as usize);
        // Record: a 24-byte header, the 8-byte key, the payload.
        let appended: usize = (1..=BATCHES)
            .flat_map(|batch| {
                (0..KEYS)
                    .filter(move |&key| writes(batch, key))
                    .map(move |key| 32 + payload(key, batch).len())
            })
            .sum();
        let used: usize = usage.iter().map(|u| u.arena_used_bytes).sum();
        assert!(used < appended, "the arenas compacted while loans were out");
        let model = model_after(BATCHES);
        let lookups: Vec<Lookup> = (0..KEYS)
            .map(|key| Lookup::new(0, 0, key_bytes(key), AggregateMask::ALL))
            .collect();
        let read = router.read(
            &lookups,
            ReadContext {
                now: 0,
                leading_edge: None,
                timed: false,
            },
        );
        for (key, row) in read.rows().enumerate() {
            let version = version_of(key as u64, row.unwrap().payload);
            assert_eq!(version, model[key]);
        }
    });
}

#[test]
fn latest_event_time_windows_end_at_one_watermark_per_view_across_shards() {
    let spec = Arc::new(AggregationSpec {
        interval: HOUR,
        leading_edge: LeadingEdge::LatestEventTime,
        inputs: vec![Field {
            name: "amount".into(),
            data_type: DataType::Int64,
        }],
        aggregates: vec![AggregateFeature {
            input: 0,
            function: Function::Count,
            window: Window::Time {
                size: 24 * HOUR,
                offset: 0,
            },
        }],
        compaction: None,
    });
    // Two keys of the aggregating view that live in different shards.
    let key_in = |shard: usize| {
        (0u64..)
            .map(key_bytes)
            .find(|key| shard_of(0, key, 2) == shard)
            .unwrap()
    };
    let (early, late) = (key_in(0), key_in(1));
    System::new().block_on(async {
        let router = Router::start(2, 4096, views(&["events"]), vec![Some(spec)]).unwrap();
        let event = |key: &Vec<u8>, at: i64| {
            let mut payload = Vec::new();
            encode_row(&[Value::Int64(1)], &mut payload);
            RowWrite {
                view: 0,
                layout: 0,
                key: key.clone(),
                event_time: at,
                payload,
            }
        };
        router
            .write(vec![
                event(&early, 10 * HOUR + 5),
                event(&late, 40 * HOUR + 5),
            ])
            .await
            .unwrap();
        let read = router.read(
            &[Lookup::new(0, 0, early, AggregateMask::ALL)],
            ReadContext {
                now: 100 * HOUR,
                leading_edge: None,
                timed: false,
            },
        );
        let row = read.row(0).unwrap();
        // The window ends at the view's latest event (40 h, in the other shard), not at this
        // shard's (10 h): the early event is more than a day before it, so the window is empty.
        assert_eq!(row.event_time, 40 * HOUR);
        assert_eq!(decode_row(row.payload).unwrap(), vec![Value::Null]);
    });
}

/// An aggregating view's key written `n` times holds events 1..=n (its n-th event's value is n):
/// a whole read of it is `[n, n(n+1)/2]` twice (lifetime, then a long time window), nulls when
/// `n` is 0 and for the aggregates a read leaves out.
fn aggregates_of(n: u64, wanted: AggregateMask) -> Vec<Value> {
    let (count, sum) = match n {
        0 => (Value::Null, Value::Null),
        n => (
            Value::Int64(n as i64),
            Value::Int64((n * (n + 1) / 2) as i64),
        ),
    };
    [count, sum]
        .iter()
        .cycle()
        .take(4)
        .enumerate()
        .map(|(i, value)| {
            if wanted.contains(i) {
                value.clone()
            } else {
                Value::Null
            }
        })
        .collect()
}

#[test]
fn memoised_aggregates_are_never_stale_after_an_acknowledged_write_nor_torn() {
    let aggregate = |function, window| AggregateFeature {
        input: 0,
        function,
        window,
    };
    let long = Window::Time {
        size: 1000 * HOUR,
        offset: 0,
    };
    let spec = Arc::new(AggregationSpec {
        interval: HOUR,
        leading_edge: LeadingEdge::WallClockTime,
        inputs: vec![Field {
            name: "amount".into(),
            data_type: DataType::Int64,
        }],
        aggregates: vec![
            aggregate(Function::Count, Window::Lifetime),
            aggregate(Function::Sum, Window::Lifetime),
            aggregate(Function::Count, long),
            aggregate(Function::Sum, long),
        ],
        compaction: None,
    });
    System::new().block_on(async {
        let router = Router::start(2, 4096, views(&["events"]), vec![Some(spec)]).unwrap();
        let progress = Progress::new();
        let readers = spawn_readers(
            &router,
            &progress,
            |reader, reads| {
                // Twelve keys read again and again, at two window ends and with three masks,
                // which the readers take in turn out of step: a memo is hit by the reads of a
                // stretch, and replaced by the other reader while this one may be copying it.
                let keys = (0..3).map(|i| (reads + i * 5) % 12).collect();
                let masks = [
                    AggregateMask::ALL,
                    AggregateMask::from_bits(0b0011),
                    AggregateMask::from_bits(0b1100),
                ];
                let context = ReadContext {
                    now: (100 + (reads / 36 % 2) as i64) * HOUR,
                    leading_edge: None,
                    timed: false,
                };
                (keys, masks[((reads / 12 + reader) % 3) as usize], context)
            },
            |key, row, wanted| {
                let Some(row) = row else { return 0 };
                let values = decode_row(row.payload).unwrap();
                (0..=BATCHES)
                    .find(|&n| aggregates_of(n, wanted) == values)
                    .unwrap_or_else(|| panic!("key {key}: torn aggregates {values:?}"))
            },
        );

        for batch in 1..=BATCHES {
            let keys: Vec<u64> = (0..KEYS).filter(|&key| writes(batch, key)).collect();
            let rows = keys
                .iter()
                .map(|&key| {
                    let n = progress.sent[key as usize].load(Ordering::Acquire) + 1;
                    progress.sent[key as usize].store(n, Ordering::Release);
                    let mut payload = Vec::new();
                    encode_row(&[Value::Int64(n as i64)], &mut payload);
                    RowWrite {
                        view: 0,
                        layout: 0,
                        key: key_bytes(key),
                        event_time: batch as i64 * 1_000_000,
                        payload,
                    }
                })
                .collect();
            router.write(rows).await.unwrap();
            for &key in &keys {
                let n = progress.sent[key as usize].load(Ordering::Acquire);
                progress.acknowledged[key as usize].store(n, Ordering::Release);
            }
        }
        progress.done.store(true, Ordering::Release);
        for reader in readers {
            reader.join().unwrap();
        }
    });
}

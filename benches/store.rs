//! Criterion benchmarks of the pure parts of the store: the routing hash, the row encoding, and
//! a read through the router (on the calling thread, under each shard's read lock).

use actix::System;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

use std::sync::Arc;

use quiver::persist::format::ViewRefV1;
use quiver::registry::aggregation::{
    AggregateFeature, AggregationSpec, Function, LeadingEdge, Window,
};
use quiver::registry::types::DataType;
use quiver::registry::value::Value;
use quiver::registry::Field;
use quiver::store::key::{encode_key, shard_of};
use quiver::store::row::{decode_row, encode_row, split_values};
use quiver::store::tiles::{AggregateMask, MemoReads, TileSet};
use quiver::store::{Lookup, ReadContext, Router, RowWrite};
use quiver::time::{now_micros, MICROS_PER_SECOND};

/// A row shaped like the demo's `user_profile`: ints, a bool, a string, an array, a timestamp.
fn sample_row() -> Vec<Value> {
    vec![
        Value::Int64(712),
        Value::Int64(1460),
        Value::Bool(true),
        Value::String("US".into()),
        Value::Array(vec![
            Value::String("grocery".into()),
            Value::String("travel".into()),
        ]),
        Value::Timestamp(1_642_239_000_000_000),
    ]
}

fn key_of(i: usize) -> Vec<u8> {
    let mut key = Vec::new();
    encode_key(&[Value::String(format!("user_{i}"))], &mut key);
    key
}

fn routing_and_encoding(c: &mut Criterion) {
    let key = key_of(42);
    c.bench_function("shard_of", |b| {
        b.iter(|| shard_of(black_box(3), black_box(&key), 8))
    });
    let row = sample_row();
    c.bench_function("encode_row", |b| {
        let mut out = Vec::with_capacity(128);
        b.iter(|| {
            out.clear();
            encode_row(black_box(&row), &mut out);
        })
    });
    let mut bytes = Vec::new();
    encode_row(&row, &mut bytes);
    c.bench_function("decode_row", |b| {
        b.iter(|| decode_row(black_box(&bytes)).unwrap())
    });
}

/// A view aggregating `amt` three ways at a 10-minute tile: mean over 1h, 1d and 3d.
fn three_window_spec() -> Arc<AggregationSpec> {
    let minute = 60 * MICROS_PER_SECOND;
    let window = |minutes: i64| Window::Time {
        size: minutes * minute,
        offset: 0,
    };
    Arc::new(AggregationSpec {
        interval: 10 * minute,
        leading_edge: LeadingEdge::WallClockTime,
        inputs: vec![Field {
            name: "amt".into(),
            data_type: DataType::Float64,
        }],
        aggregates: [60, 24 * 60, 3 * 24 * 60]
            .into_iter()
            .map(|m| AggregateFeature {
                input: 0,
                function: Function::Mean,
                window: window(m),
            })
            .collect(),
        compaction: None,
    })
}

/// A store of two shards for two views: "plain" (id 0) and "aggregating" (id 1, three
/// windows). Called from within an actix system.
fn plain_and_aggregating_router(arena_bytes: usize) -> Router {
    let views = ["plain", "aggregating"]
        .map(|v| ViewRefV1 {
            workspace: "bench".into(),
            view: v.into(),
        })
        .to_vec();
    let specs = vec![None, Some(three_window_spec())];
    Router::start(2, arena_bytes, views, specs).unwrap()
}

fn router_read(c: &mut Criterion) {
    let system = System::new();
    let now = now_micros();
    let router = system.block_on(async {
        let router = plain_and_aggregating_router(1 << 20);
        let mut payload = Vec::new();
        encode_row(&sample_row(), &mut payload);
        let rows = (0..100_000)
            .map(|i| RowWrite {
                view: 0,
                layout: 0,
                key: key_of(i),
                event_time: 1,
                payload: payload.clone(),
            })
            .collect();
        router.write(rows).await.unwrap();
        // A busy key: one event a minute for three days.
        let events = (0..3 * 24 * 60)
            .map(|m| {
                let mut payload = Vec::new();
                encode_row(&[Value::Float64(m as f64)], &mut payload);
                RowWrite {
                    view: 1,
                    layout: 0,
                    key: key_of(1),
                    event_time: now - m * 60 * MICROS_PER_SECOND,
                    payload,
                }
            })
            .collect();
        router.write(events).await.unwrap();
        router
    });
    let context = ReadContext {
        now,
        leading_edge: None,
        timed: false,
    };
    c.bench_function("router_read_1_key", |b| {
        b.iter(|| {
            router.read(
                &[Lookup::new(0, 0, key_of(777), AggregateMask::ALL)],
                context,
            )
        })
    });
    c.bench_function("router_read_3_views_2_shards", |b| {
        let lookups: Vec<Lookup> = (0..3)
            .map(|i| Lookup::new(0, 0, key_of(1000 + i), AggregateMask::ALL))
            .collect();
        b.iter(|| router.read(&lookups, context))
    });
    // Ingest: 1000 events a batch into plain rows, and into the 3-window aggregate.
    let batch = |view: u32| -> Vec<RowWrite> {
        (0..1000)
            .map(|i| {
                let mut payload = Vec::new();
                if view == 0 {
                    encode_row(&sample_row(), &mut payload);
                } else {
                    encode_row(&[Value::Float64(i as f64)], &mut payload);
                }
                RowWrite {
                    view,
                    layout: 0,
                    key: key_of(i % 5000),
                    event_time: now - (i as i64) * MICROS_PER_SECOND,
                    payload,
                }
            })
            .collect()
    };
    let mut group = c.benchmark_group("write_1000");
    group.throughput(criterion::Throughput::Elements(1000));
    group.bench_function("plain_rows", |b| {
        b.iter(|| system.block_on(router.write(batch(0))).unwrap())
    });
    group.bench_function("aggregate_events", |b| {
        b.iter(|| system.block_on(router.write(batch(1))).unwrap())
    });
    group.finish();
    c.bench_function("router_read_3_window_aggregate_busy_key", |b| {
        b.iter(|| router.read(&[Lookup::new(1, 0, key_of(1), AggregateMask::ALL)], context))
    });
}

/// The aggregate computation alone: merging a busy key's tiles for three windows.
fn aggregate_read(c: &mut Criterion) {
    let spec = three_window_spec();
    let now = now_micros();
    let mut tiles = TileSet::default();
    for (seq, m) in (0..3 * 24 * 60).enumerate() {
        // An event's values as the shard hands them over: read from its stored row.
        let mut row = Vec::new();
        encode_row(&[Value::Float64(m as f64)], &mut row);
        let mut inputs = Vec::new();
        split_values(&row, &mut inputs).expect("a row just encoded");
        tiles.add(&spec, now - m * 60 * MICROS_PER_SECOND, seq as u64, &inputs);
    }
    let end = quiver::store::tiles::tile_start(now, spec.interval);
    c.bench_function("tiles_values_3_windows", |b| {
        b.iter(|| tiles.values(black_box(&spec), end, AggregateMask::ALL))
    });
    // The same read as a shard makes it of one key (its own pin): after the first, a copy of
    // the key's memo.
    c.bench_function("tiles_encoded_values_3_windows_memoised", |b| {
        let mut row = Vec::new();
        b.iter(|| {
            row.clear();
            let mut memos = MemoReads::default();
            tiles.encoded_values(
                black_box(&spec),
                end,
                true,
                AggregateMask::ALL,
                &mut memos,
                &mut row,
            )
        })
    });
}

/// Reads of keys drawn at random (ten, as a GetFeaturesBatch makes them; three, as a single
/// GetFeatures of a service of three views does), from a data set that fits in the caches and
/// from one that does not (`quiver bench`'s 120 MB does not fit this machine's 32 MiB L3): what
/// separates the two is the read's chain of dependent cache misses (index slot, key, memo,
/// payload), which instruction counts do not show.
fn router_read_many_keys(c: &mut Criterion) {
    let system = System::new();
    let now = now_micros();
    let context = ReadContext {
        now,
        leading_edge: None,
        timed: false,
    };
    let mut group = c.benchmark_group("router_read_random_keys");
    for keys in [1_000, 400_000] {
        let router = system.block_on(async {
            let router = plain_and_aggregating_router(1 << 24);
            let mut row = Vec::new();
            encode_row(&sample_row(), &mut row);
            for chunk in (0..keys).collect::<Vec<_>>().chunks(10_000) {
                let mut writes = Vec::new();
                for &i in chunk {
                    writes.push(RowWrite {
                        view: 0,
                        layout: 0,
                        key: key_of(i),
                        event_time: 1,
                        payload: row.clone(),
                    });
                    // Two events in the last hour: two tiles a key, as most keys hold.
                    for minutes in [5, 25] {
                        let mut payload = Vec::new();
                        encode_row(&[Value::Float64(i as f64)], &mut payload);
                        writes.push(RowWrite {
                            view: 1,
                            layout: 0,
                            key: key_of(i),
                            event_time: now - minutes * 60 * MICROS_PER_SECOND,
                            payload,
                        });
                    }
                }
                router.write(writes).await.unwrap();
            }
            router
        });
        // Batches of ten keys from a fixed random sequence, many more than the caches hold.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut draw = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as usize % keys
        };
        // Ten lookups, as a batch makes; three, as a single GetFeatures of the demo's plain
        // service does.
        for (name, view, per_read) in [
            ("plain", 0, 10),
            ("memoised_aggregates", 1, 10),
            ("plain", 0, 3),
        ] {
            let batches: Vec<Vec<Lookup>> = (0..8192)
                .map(|_| {
                    (0..per_read)
                        .map(|_| Lookup::new(view, 0, key_of(draw()), AggregateMask::ALL))
                        .collect()
                })
                .collect();
            // Every key read once first: its memo filled, as in a run of seconds.
            for i in 0..keys {
                router.read(
                    &[Lookup::new(view, 0, key_of(i), AggregateMask::ALL)],
                    context,
                );
            }
            let mut next = batches.iter().cycle();
            group.throughput(criterion::Throughput::Elements(per_read as u64));
            group.bench_function(format!("{per_read}_{name}_of_{keys}_keys"), |b| {
                b.iter(|| router.read(next.next().expect("endless"), context))
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    routing_and_encoding,
    router_read,
    aggregate_read,
    router_read_many_keys
);
criterion_main!(benches);

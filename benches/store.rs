//! Criterion benchmarks of the pure parts of the store: the routing hash, the row encoding, and
//! a read through the router (one actor message round trip per shard touched).

use actix::System;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

use quiver::registry::value::Value;
use quiver::store::key::{encode_key, shard_of};
use quiver::store::row::{decode_row, encode_row};
use quiver::store::{Lookup, Router, RowWrite};

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

fn router_read(c: &mut Criterion) {
    let system = System::new();
    let router = system.block_on(async {
        let views = vec![quiver::persist::format::ViewRefV1 {
            workspace: "bench".into(),
            view: "v".into(),
        }];
        let router = Router::start(2, 1 << 20, views).unwrap();
        let mut payload = Vec::new();
        encode_row(&sample_row(), &mut payload);
        let rows = (0..100_000)
            .map(|i| RowWrite {
                view: 0,
                key: key_of(i),
                event_time: 1,
                payload: payload.clone(),
            })
            .collect();
        router.write(rows).await.unwrap();
        router
    });
    c.bench_function("router_read_1_key", |b| {
        b.iter(|| {
            system
                .block_on(router.read(vec![Lookup {
                    view: 0,
                    key: key_of(777),
                }]))
                .unwrap()
        })
    });
    c.bench_function("router_read_3_views_2_shards", |b| {
        let lookups: Vec<Lookup> = (0..3)
            .map(|i| Lookup {
                view: 0,
                key: key_of(1000 + i),
            })
            .collect();
        b.iter(|| system.block_on(router.read(lookups.clone())).unwrap())
    });
}

criterion_group!(benches, routing_and_encoding, router_read);
criterion_main!(benches);

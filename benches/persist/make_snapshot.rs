//! Writes a snapshot of N `user_last_transaction` rows (the demo's stream view) straight into a
//! data directory, for the restore benchmark: `cargo run --release --example make_snapshot --
//! N DATA_DIR`. Keys are `user_0` .. `user_{N-1}`, the same keys the Redis side loads.

use quiver::persist::format::{encode, RowV1, RowsV1, SectionKind, ViewRefV1};
use quiver::persist::snapshot::{write_snapshot, SectionData};
use quiver::registry::value::Value;
use quiver::store::key::encode_key;
use quiver::store::row::encode_row;
use quiver::time::now_micros;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: make_snapshot N DATA_DIR");
    let data_dir = std::path::PathBuf::from(args.next().expect("usage: make_snapshot N DATA_DIR"));
    let now = now_micros();
    let rows = (0..n)
        .map(|i| {
            let mut key = Vec::new();
            encode_key(&[Value::String(format!("user_{i}"))], &mut key);
            let mut payload = Vec::new();
            encode_row(
                &[
                    Value::Float64(i as f64 * 0.5),
                    Value::String(format!("merchant_{}", i % 1000)),
                    Value::Bool(i % 2 == 0),
                ],
                &mut payload,
            );
            RowV1 {
                view: 0,
                key,
                event_time: now,
                payload,
            }
        })
        .collect();
    let section = RowsV1 {
        views: vec![ViewRefV1 {
            workspace: "prod".into(),
            view: "user_last_transaction".into(),
        }],
        rows,
        tiles: Vec::new(),
    };
    let payload = encode(&section);
    let sections = [SectionData {
        kind: SectionKind::FeatureRows,
        journal_seq: 1,
        items: n as u64,
        payload,
    }];
    let path = write_snapshot(&data_dir.join("snapshots"), now, 2, &sections)?;
    println!("{}", path.display());
    Ok(())
}

//! Writes a snapshot of N `user_last_transaction` rows (the demo's stream view) straight into a
//! data directory, for the restore benchmark: `cargo run --release --example make_snapshot --
//! N DATA_DIR [v2]`. Keys are `user_0` .. `user_{N-1}`, the same keys the Redis side loads.
//!
//! By default the snapshot is what this build writes (`RowsV2` records routed over 2
//! shards, as a 2-core server with `shards = 0` would have written them, with the view ids of
//! `config.toml`'s repositories). With `v2` it is what a format-2 build wrote (`RowsV1`), to
//! measure old snapshots' restore, or an older build's.

use std::path::{Path, PathBuf};

use quiver::config::{Overrides, Settings};
use quiver::persist::format::{
    checksum, encode, encode_rows_v2, RowRecordV2, RowV1, RowsV1, RowsV3Head, SectionKind,
    ViewRefV1, HEADER_LEN,
};
use quiver::persist::snapshot::{write_snapshot, SectionData};
use quiver::registry::load_registry;
use quiver::registry::value::Value;
use quiver::store::key::{encode_key, shard_of};
use quiver::store::row::encode_row;
use quiver::time::now_micros;

const USAGE: &str = "usage: make_snapshot N DATA_DIR [v2]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).expect(USAGE);
    let data_dir = PathBuf::from(args.next().expect(USAGE));
    let format_2 = args.next().as_deref() == Some("v2");
    let now = now_micros();
    let settings = Settings::load("config.toml".as_ref(), &Overrides::default())?;
    // A registry loaded from files numbers its views 0.. without gaps: index = view id.
    let views: Vec<ViewRefV1> = load_registry(&settings.workspaces)?
        .views()
        .map(|v| ViewRefV1 {
            workspace: v.workspace.clone(),
            view: v.name.clone(),
        })
        .collect();
    let view = views
        .iter()
        .position(|v| v.workspace == "prod" && v.view == "user_last_transaction")
        .expect("config.toml's prod repository has user_last_transaction") as u32;
    let rows = (0..n).map(|i| {
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
            view,
            key,
            event_time: now,
            payload,
        }
    });
    let (kind, payload) = if format_2 {
        let section = RowsV1 {
            views,
            rows: rows.collect(),
            tiles: Vec::new(),
        };
        (SectionKind::FeatureRows, encode(&section))
    } else {
        let (mut shards, mut shard_rows) = ([Vec::new(), Vec::new()], vec![0; 2]);
        for row in rows {
            let shard = shard_of(view, &row.key, 2);
            shard_rows[shard] += 1;
            RowRecordV2 {
                view,
                flags: 0,
                event_time: row.event_time,
                payload: &row.payload,
                key: &row.key,
            }
            .write_to(&mut shards[shard]);
        }
        let head = RowsV3Head {
            views,
            tiles: Vec::new(),
            shard_bytes: shards.iter().map(|s| s.len() as u64).collect(),
            shard_rows,
            // Forms not given: the rows are taken in the form the restoring server serves.
            layouts: Vec::new(),
        };
        (
            SectionKind::FeatureRecords,
            encode_rows_v2(&head, &[&shards[0], &shards[1]]),
        )
    };
    let sections = [SectionData {
        kind,
        journal_seq: 1,
        items: n as u64,
        payload: payload.into(),
        payload_tail: Vec::new(),
    }];
    let path = write_snapshot(&data_dir.join("snapshots"), now, 2, &sections)?;
    if format_2 {
        as_format_2(&path)?;
    }
    println!("{}", path.display());
    Ok(())
}

/// Rewrites the file's header as a format-2 build wrote it (the sections are unchanged).
fn as_format_2(path: &Path) -> std::io::Result<()> {
    let mut bytes = std::fs::read(path)?;
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let sum = checksum(&bytes[..HEADER_LEN - 8]);
    bytes[HEADER_LEN - 8..HEADER_LEN].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(path, bytes)
}

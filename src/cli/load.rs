//! `quiver load`: the bulk loader. Validates every row of a CSV, JSON Lines or Parquet file
//! against the view's schema first (reporting where the first bad one is, its line or its row
//! group and row, and sending nothing), then sends the rows to a running server in chunks, with
//! progress bars.

use std::path::PathBuf;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use super::{ConfigArg, ServerArg};
use crate::config::{Overrides, Settings};
use crate::ingest::file::open_load_file;
use crate::registry::load_registry;

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Workspace of the feature view.
    #[arg(long)]
    workspace: String,
    /// Feature view whose rows the file holds.
    #[arg(long = "feature-view")]
    feature_view: String,
    #[command(flatten)]
    server: ServerArg,
    /// Rows per request.
    #[arg(long = "chunk-rows", default_value_t = 5000)]
    chunk_rows: usize,
    /// A .csv (with a header line), .jsonl or .parquet file.
    file: PathBuf,
}

pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    let settings = Settings::load(&args.config.path, &Overrides::default())?;
    let registry = load_registry(&settings.workspaces)?;
    let view = registry
        .view_by_name(&args.workspace, &args.feature_view)
        .with_context(|| {
            format!(
                "no feature view `{}` in workspace `{}`",
                args.feature_view, args.workspace
            )
        })?;
    let load_file = open_load_file(&args.file)?;
    let chunk_rows = args.chunk_rows.max(1);

    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({eta})")
        .expect("valid template");
    let reading = ProgressBar::new(load_file.size)
        .with_style(style.clone())
        .with_message("validating");
    // Each row is encoded into its chunk's request body as it is validated, so neither the rows
    // nor a JSON tree of each are kept; nothing is sent until the whole file has been read.
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut rows = 0;
    let read = load_file.for_each_row(view, |row, bytes| {
        if rows % chunk_rows == 0 {
            let capacity = chunks.last().map_or(0, Vec::len);
            chunks.push(Vec::with_capacity(capacity));
        }
        let body = chunks.last_mut().expect("a chunk was just pushed");
        row.write_json(view, body);
        body.push(b'\n');
        rows += 1;
        reading.inc(bytes as u64);
    });
    if let Err(bad) = read {
        reading.abandon();
        bail!("{}: {bad}; nothing was loaded", args.file.display());
    }
    reading.finish();

    let path = format!(
        "/admin/workspaces/{}/feature-views/{}/rows",
        args.workspace, args.feature_view
    );
    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} rows ({per_sec})")
        .expect("valid template");
    let sending = ProgressBar::new(rows as u64)
        .with_style(style)
        .with_message("loading");
    let (mut stored, mut older) = (0u64, 0u64);
    for (index, body) in chunks.iter().enumerate() {
        let first = index * chunk_rows;
        let count = chunk_rows.min(rows - first);
        let answer = args
            .server
            .post(&path, Some(body))
            .with_context(|| format!("loading rows {}..{}", first, first + count))?;
        stored += answer["rowsStored"].as_u64().unwrap_or(0);
        older += answer["rowsOlderThanStored"].as_u64().unwrap_or(0);
        sending.inc(count as u64);
    }
    sending.finish();
    println!(
        "loaded {rows} rows into {}.{}: {stored} stored, {older} older than the stored row",
        args.workspace, args.feature_view
    );
    Ok(())
}

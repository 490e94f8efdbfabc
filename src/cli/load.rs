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

    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({eta})")
        .expect("valid template");
    let reading = ProgressBar::new(load_file.size)
        .with_style(style.clone())
        .with_message("validating");
    let rows = match load_file.read_rows(view, |bytes| reading.inc(bytes as u64)) {
        Ok(rows) => rows,
        Err(bad) => {
            reading.abandon();
            bail!("{}: {bad}; nothing was loaded", args.file.display());
        }
    };
    reading.finish();

    let path = format!(
        "/admin/workspaces/{}/feature-views/{}/rows",
        args.workspace, args.feature_view
    );
    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} rows ({per_sec})")
        .expect("valid template");
    let sending = ProgressBar::new(rows.len() as u64)
        .with_style(style)
        .with_message("loading");
    let (mut stored, mut older, mut sent) = (0u64, 0u64, 0);
    for chunk in rows.chunks(args.chunk_rows.max(1)) {
        let mut body = String::new();
        for row in chunk {
            body.push_str(&row.to_json(view).to_string());
            body.push('\n');
        }
        let answer = args
            .server
            .post(&path, Some(&body))
            .with_context(|| format!("loading rows {}..{}", sent, sent + chunk.len()))?;
        stored += answer["rowsStored"].as_u64().unwrap_or(0);
        older += answer["rowsOlderThanStored"].as_u64().unwrap_or(0);
        sending.inc(chunk.len() as u64);
        sent += chunk.len();
    }
    sending.finish();
    println!(
        "loaded {} rows into {}.{}: {stored} stored, {older} older than the stored row",
        rows.len(),
        args.workspace,
        args.feature_view
    );
    Ok(())
}

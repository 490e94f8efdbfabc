//! `quiver logs`: list the feature logs of a data directory, or export one service's rows in a
//! time range as one Parquet or JSON Lines file (offline: reads only complete files, so it may
//! run beside a serving server).

use std::path::PathBuf;

use anyhow::Context;

use super::DirArgs;
use crate::feature_log::export::{describe_range, export, ExportRequest};
use crate::feature_log::files;
use crate::registry::LogFormat;
use crate::time::parse_timestamp;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    #[command(subcommand)]
    command: LogsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum LogsCommand {
    /// Every log file, by workspace and service, oldest first; `.part` files are still being
    /// written (or were left by a crash) and are marked incomplete.
    List(DirArgs),
    /// Write one service's logged rows with `from <= timestamp < to` to one file.
    Export {
        #[command(flatten)]
        dir: DirArgs,
        /// The feature service whose logs to export.
        #[arg(long)]
        service: String,
        /// Needed only when the service name has logs in several workspaces.
        #[arg(long)]
        workspace: Option<String>,
        /// ISO 8601 (e.g. 2026-12-01T00:00:00Z); from the first record when absent.
        #[arg(long)]
        from: Option<String>,
        /// ISO 8601, exclusive; to the last record when absent.
        #[arg(long)]
        to: Option<String>,
        /// The exported file's format.
        #[arg(long, value_enum, default_value = "parquet")]
        format: ExportFormat,
        /// The file to write.
        #[arg(long)]
        output: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Parquet,
    Jsonl,
}

impl DirArgs {
    fn log_root(&self) -> anyhow::Result<PathBuf> {
        let data_dir = self
            .settings()?
            .data_dir
            .context("no data directory: pass --data-dir or set QUIVER_DATA_DIR")?;
        Ok(files::root(&data_dir))
    }
}

pub fn run(args: LogsArgs) -> anyhow::Result<()> {
    match args.command {
        LogsCommand::List(dir) => {
            let root = dir.log_root()?;
            let listing =
                files::list(&root).with_context(|| format!("cannot read {}", root.display()))?;
            if listing.is_empty() {
                println!("no feature logs in {}", root.display());
            }
            for file in listing {
                println!(
                    "{}/{}  {}  {} bytes{}",
                    file.workspace,
                    file.service,
                    file.path.display(),
                    file.bytes,
                    if file.complete { "" } else { "  (incomplete)" }
                );
            }
            Ok(())
        }
        LogsCommand::Export {
            dir,
            service,
            workspace,
            from,
            to,
            format,
            output,
        } => {
            let time = |flag: &str, text: Option<String>| {
                text.map(|t| parse_timestamp(&t).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
                    .transpose()
            };
            let (from, to) = (time("from", from)?, time("to", to)?);
            let root = dir.log_root()?;
            let exported = export(&ExportRequest {
                root: &root,
                workspace: workspace.as_deref(),
                service: &service,
                from,
                to,
                format: match format {
                    ExportFormat::Parquet => LogFormat::Parquet,
                    ExportFormat::Jsonl => LogFormat::JsonLines,
                },
                output: &output,
            })?;
            println!(
                "{} rows of {} in {} from {} files -> {}",
                exported.rows,
                service,
                describe_range(from, to),
                exported.files,
                output.display()
            );
            Ok(())
        }
    }
}

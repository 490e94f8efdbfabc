//! `quiver snapshot`: list, verify and restore snapshots offline, or ask a running server to
//! take one.

use std::path::PathBuf;

use anyhow::Context;

use super::{DirArgs, ServerArg};
use crate::config::{PersistenceSettings, Settings};
use crate::persist::data_dir::DataDirLock;
use crate::persist::restore::restore;
use crate::persist::snapshot::{describe_snapshots, read_snapshot};

#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    command: SnapshotCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SnapshotCommand {
    /// Id, time, size, row counts and checksum state of every snapshot, newest first.
    List(DirArgs),
    /// Check a snapshot file's checksums; exits non-zero if it does not verify.
    Verify {
        /// The snapshot file (`snapshots/snapshot-<id>.qvs` under the data directory).
        file: PathBuf,
    },
    /// Make a snapshot the state the data directory starts from (offline: refused while a
    /// server holds the data directory's lock).
    Restore {
        #[command(flatten)]
        dir: DirArgs,
        /// A snapshot id from `list`, or a snapshot file.
        snapshot: String,
        /// Set existing state (journals) aside instead of refusing.
        #[arg(long)]
        force: bool,
    },
    /// Ask a running server to take a snapshot now.
    Create(ServerArg),
}

impl DirArgs {
    fn snapshot_settings(&self) -> anyhow::Result<(Settings, PathBuf)> {
        let settings = self.settings()?;
        let snapshot_dir = settings
            .persistence
            .snapshot_dir
            .clone()
            .context("no data directory: pass --data-dir or set QUIVER_DATA_DIR")?;
        Ok((settings, snapshot_dir))
    }
}

pub fn run(args: SnapshotArgs) -> anyhow::Result<()> {
    match args.command {
        SnapshotCommand::List(dir) => {
            let (_, snapshot_dir) = dir.snapshot_settings()?;
            let listing = describe_snapshots(&snapshot_dir)
                .with_context(|| format!("cannot read {}", snapshot_dir.display()))?;
            if listing.is_empty() {
                println!("no snapshots in {}", snapshot_dir.display());
            }
            for s in listing {
                let items: Vec<String> = s
                    .items
                    .iter()
                    .map(|(kind, n)| format!("{n} {kind}"))
                    .collect();
                println!(
                    "{}  {}  {} bytes  {}  checksum {}",
                    s.id,
                    s.created_at,
                    s.bytes,
                    items.join(", "),
                    s.checksum
                );
            }
            Ok(())
        }
        SnapshotCommand::Verify { file } => {
            let snapshot = read_snapshot(&file)?;
            let items: Vec<String> = snapshot
                .sections
                .iter()
                .map(|s| format!("{} {}", s.items, s.kind.name()))
                .collect();
            println!(
                "{}: ok ({}, written with {} shards)",
                file.display(),
                items.join(", "),
                snapshot.n_shards
            );
            Ok(())
        }
        SnapshotCommand::Restore {
            dir,
            snapshot,
            force,
        } => {
            let (settings, snapshot_dir) = dir.snapshot_settings()?;
            let data_dir = settings
                .data_dir
                .as_deref()
                .context("restore needs a data directory")?;
            // A running server would keep writing the journals this moves aside.
            let _lock = DataDirLock::acquire(data_dir)?;
            let restored = restore(
                &snapshot_dir,
                &PersistenceSettings::journal_dirs(data_dir),
                &snapshot,
                force,
            )?;
            println!(
                "restored {} as {}; start the server to load it (with the iam.key and master.key of the installation that wrote it)",
                restored.source.display(),
                restored.installed.display()
            );
            Ok(())
        }
        SnapshotCommand::Create(server) => {
            let body = server.post("/admin/snapshots", None)?;
            println!("snapshot {} started", body["id"].as_str().unwrap_or("?"));
            Ok(())
        }
    }
}

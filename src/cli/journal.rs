//! `quiver journal`: verify the journals of a data directory offline (`check`) and remove one
//! bad record from a segment (`repair --skip-record SEGMENT:OFFSET`), keeping the original file.
//! A server refuses to start on a bad record; these are the operator's way forward. `repair`
//! writes the data directory, so it holds its lock (`quiver.lock`), as a server does.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::ConfigArg;
use crate::config::{Overrides, PersistenceSettings, Settings};
use crate::persist::data_dir::DataDirLock;
use crate::persist::journal::{inspect, journal_name, newest_segment_created, skip_record};

#[derive(Debug, clap::Args)]
pub struct JournalArgs {
    #[command(subcommand)]
    command: JournalCommand,
}

#[derive(Debug, clap::Subcommand)]
enum JournalCommand {
    /// Every journal and segment with its records, torn tails and bad records (with their
    /// location); exits non-zero if any record is bad.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// The data directory (as given to `quiver serve`); without it, the configuration's.
        #[arg(long, env = "QUIVER_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Rewrite a segment without one bad record (every other record is kept); the original is
    /// kept beside it as `<segment>.orig-<time>`. Offline: refused while a server holds the
    /// data directory's lock.
    Repair {
        /// The bad record, as `check` or the refused start names it: SEGMENT_FILE:BYTE_OFFSET.
        #[arg(long = "skip-record", value_name = "SEGMENT:OFFSET")]
        skip_record: String,
    },
}

pub fn run(args: JournalArgs) -> anyhow::Result<()> {
    match args.command {
        JournalCommand::Check { config, data_dir } => {
            let data_dir = match data_dir {
                Some(dir) => dir,
                None => Settings::load(&config.path, &Overrides::default())?
                    .data_dir
                    .context("no data directory: pass --data-dir or set QUIVER_DATA_DIR")?,
            };
            check(&data_dir)
        }
        JournalCommand::Repair { skip_record: spec } => {
            let (segment, offset) = spec
                .rsplit_once(':')
                .and_then(|(segment, offset)| Some((segment, offset.parse::<u64>().ok()?)))
                .with_context(|| {
                    format!("--skip-record `{spec}`: expected SEGMENT_FILE:BYTE_OFFSET, e.g. data/journal/rows/00000000000000000001.journal:1234")
                })?;
            let segment = Path::new(segment);
            let data_dir = data_dir_of(segment)?;
            // Offline: a running server appends to these segments and would lose the rewrite.
            let _lock = DataDirLock::acquire(&data_dir)?;
            let skipped = skip_record(segment, offset)?;
            println!(
                "removed the bad record at byte {offset} of {} ({} bytes: {}); the original is kept as {}",
                segment.display(),
                skipped.removed.len,
                skipped.removed.problem,
                skipped.original_kept_as.display()
            );
            Ok(())
        }
    }
}

/// The data directory a segment belongs to: segments live in `<data dir>/journal/<name>/`.
fn data_dir_of(segment: &Path) -> anyhow::Result<PathBuf> {
    let segment = std::fs::canonicalize(segment)
        .with_context(|| format!("--skip-record: cannot open {}", segment.display()))?;
    let journal_dir = segment.parent();
    let data_dir = journal_dir.and_then(Path::parent).and_then(Path::parent);
    match (journal_dir, data_dir) {
        (Some(journal_dir), Some(data_dir))
            if PersistenceSettings::journal_dirs(data_dir).contains(&journal_dir.to_path_buf()) =>
        {
            Ok(data_dir.to_path_buf())
        }
        _ => bail!(
            "--skip-record: {} is not a segment of a data directory's journal (<data dir>/journal/rows, directory or vault)",
            segment.display()
        ),
    }
}

fn check(data_dir: &Path) -> anyhow::Result<()> {
    let mut n_bad = 0;
    let mut n_missing = 0;
    // Records of the newest segment that do not read (what to do is in the line printed).
    let mut n_unreadable = 0;
    for dir in PersistenceSettings::journal_dirs(data_dir) {
        // Read before the segments are listed: a segment a running server makes in between is
        // then listed, never missed.
        let newest_created = newest_segment_created(&dir);
        let reports =
            inspect(&dir).with_context(|| format!("cannot read journal {}", dir.display()))?;
        println!(
            "journal {} ({}): {} segment(s)",
            journal_name(&dir),
            dir.display(),
            reports.len()
        );
        for segment in &reports {
            let state = if segment.bad.is_empty() { "ok" } else { "BAD" };
            println!(
                "  {}  {} records  {} bytes  {state}",
                segment.path.display(),
                segment.records,
                segment.bytes
            );
            if let Some((offset, bytes)) = segment.torn_tail {
                println!("    torn tail at byte {offset}: {bytes} bytes of an unfinished write, cut at the next start");
            }
            for bad in &segment.bad {
                n_bad += 1;
                println!(
                    "    bad record index {} at byte {} ({} bytes): {}; to remove it: quiver journal repair --skip-record {}:{}",
                    bad.index,
                    bad.offset,
                    bad.len,
                    bad.problem,
                    segment.path.display(),
                    bad.offset
                );
            }
        }
        // A record that does not read is reported like a bad record, and the check goes on.
        let newest_created = newest_created.unwrap_or_else(|error| {
            n_unreadable += 1;
            println!("  BAD: {error}");
            None
        });
        let newest_present = reports.last().map(|segment| segment.seq);
        if let Some(created) = newest_created.filter(|created| Some(*created) > newest_present) {
            n_missing += 1;
            println!(
                "  MISSING: the journal created segments up to {created}, the newest here is {}; what the missing ones held is lost (the server refuses to start unless --accept-lost-writes)",
                newest_present.map_or("none".to_string(), |seq| seq.to_string())
            );
        }
    }
    if n_bad > 0 {
        bail!("{n_bad} bad journal record(s); the server refuses to start until they are repaired");
    }
    if n_missing > 0 {
        bail!("{n_missing} journal(s) missing their newest segments; the server refuses to start unless the loss is accepted (--accept-lost-writes)");
    }
    if n_unreadable > 0 {
        bail!("{n_unreadable} journal(s) whose newest-segment record does not read; the server refuses to start until it is mended or deleted");
    }
    Ok(())
}

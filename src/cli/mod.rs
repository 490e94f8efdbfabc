//! The `quiver` command line: `serve` (the default), `load`, `snapshot`, `journal`, `logs`,
//! `secrets` and `bench`.

mod bench;
mod journal;
mod load;
mod logs;
mod secrets;
mod serve;
mod snapshot;

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::config::{Overrides, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "quiver",
    version,
    about = "An online feature server speaking Tecton's HTTP API"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand, `quiver` serves: these are `quiver serve`'s flags.
    #[command(flatten)]
    serve: serve::ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server (the default when no subcommand is given).
    Serve(serve::ServeArgs),
    /// Validate a CSV or JSON Lines file of one feature view's rows and send it to a server.
    Load(load::LoadArgs),
    /// List, verify, restore or create snapshots.
    Snapshot(snapshot::SnapshotArgs),
    /// Manage the secrets vault (rotate its master key).
    Secrets(secrets::SecretsArgs),
    /// Check the journals of a data directory, or remove a bad record (offline).
    Journal(journal::JournalArgs),
    /// List the feature logs of a data directory, or export one service's (offline).
    Logs(logs::LogsArgs),
    /// Benchmark a Quiver with a synthetic data set, side by side with its peers.
    Bench(Box<bench::BenchArgs>),
}

/// The configuration file, shared by every subcommand.
#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// The configuration file.
    #[arg(long = "config", env = "QUIVER_CONFIG", default_value = "config.toml")]
    path: PathBuf,
}

/// The data directory of the offline subcommands: `--data-dir`, or the configuration's.
#[derive(Debug, clap::Args)]
struct DirArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The data directory (as given to `quiver serve`).
    #[arg(long, env = "QUIVER_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl DirArgs {
    /// The settings, with `--data-dir` over the configuration's.
    fn settings(&self) -> anyhow::Result<Settings> {
        let overrides = Overrides {
            listen: None,
            data_dir: self.data_dir.clone(),
        };
        Ok(Settings::load(&self.config.path, &overrides)?)
    }
}

/// A running server and its admin key, for the subcommands that act through its HTTP API.
#[derive(Debug, clap::Args)]
struct ServerArg {
    /// The server's base URL.
    #[arg(long, env = "QUIVER_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// An admin API key.
    #[arg(long = "api-key", env = "QUIVER_ADMIN_KEY", hide_env_values = true)]
    api_key: String,
}

impl ServerArg {
    /// POSTs to the server with the admin key, with an NDJSON body or none; answers its JSON
    /// reply, or says why not.
    fn post(&self, path: &str, ndjson: Option<&str>) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let request =
            ureq::post(&url).set("Authorization", &format!("Tecton-key {}", self.api_key));
        let response = match ndjson {
            Some(body) => request
                .set("Content-Type", "application/x-ndjson")
                .send_string(body),
            None => request.call(),
        };
        match response {
            Ok(response) => response
                .into_json()
                .context("the server's answer was not JSON"),
            Err(ureq::Error::Status(code, response)) => bail!(
                "the server refused with {code}: {}",
                response.into_string().unwrap_or_default()
            ),
            Err(error) => bail!("could not reach {}: {error}", self.server),
        }
    }
}

pub fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QUIVER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        None => serve::run(cli.serve),
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::Load(args)) => load::run(args),
        Some(Command::Snapshot(args)) => snapshot::run(args),
        Some(Command::Secrets(args)) => secrets::run(args),
        Some(Command::Journal(args)) => journal::run(args),
        Some(Command::Logs(args)) => logs::run(args),
        Some(Command::Bench(args)) => bench::run(*args),
    }
}

//! The `quiver` command line: `serve` (the default), `config`, `load`, `snapshot`, `journal`,
//! `logs`, `secrets`, `plan`, `apply`, `bench` and `cluster`.

mod apply;
mod bench;
mod cluster;
mod config;
mod journal;
mod load;
mod load_bodies;
mod logs;
mod plan;
mod secrets;
mod serve;
mod snapshot;

use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::config::{LogFormat, Origin, Overrides, Settings, SETTINGS};
use clap::{Parser, Subcommand};

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
    /// Check a configuration and the feature repository it names, without starting anything.
    Config(config::ConfigArgs),
    /// Validate a CSV or JSON Lines file of one feature view's rows and send it to a server.
    Load(load::LoadArgs),
    /// List, verify, restore or create snapshots.
    Snapshot(snapshot::SnapshotArgs),
    /// Manage the secrets vault (rotate its master key).
    Secrets(secrets::SecretsArgs),
    /// Check the journals of a data directory, or remove a bad record (offline).
    Journal(journal::JournalArgs),
    /// Show how the repository on disk differs from the one a running server serves.
    Plan(plan::PlanArgs),
    /// Apply the repository on disk to a running server, without a restart (after a plan).
    Apply(apply::ApplyArgs),
    /// List the feature logs of a data directory, or export one service's (offline).
    Logs(logs::LogsArgs),
    /// Benchmark a Quiver with a synthetic data set, side by side with its peers.
    Bench(Box<bench::BenchArgs>),
    /// Show a cluster's stream, partitions and nodes, as NATS JetStream tells.
    Cluster(cluster::ClusterArgs),
}

/// The configuration file, shared by every subcommand.
#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// The configuration file.
    #[arg(long = "config", env = "QUIVER_CONFIG", default_value = "config.toml")]
    path: PathBuf,
}

/// Every one-value setting (`config::SETTINGS`) as a flag with its environment variable: what
/// `serve` and `config check` lay over the file.
#[derive(Debug, Clone, Default)]
struct SettingArgs(Overrides);

impl clap::FromArgMatches for SettingArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<SettingArgs, clap::Error> {
        let mut overrides = Overrides::default();
        for setting in SETTINGS {
            if let Some(text) = matches.get_one::<String>(setting.key) {
                let origin = match matches.value_source(setting.key) {
                    Some(clap::parser::ValueSource::EnvVariable) => {
                        Origin::Environment(setting.env)
                    }
                    _ => Origin::Flag(setting.flag),
                };
                overrides.set(setting.key, text.clone(), origin);
            }
        }
        Ok(SettingArgs(overrides))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = SettingArgs::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for SettingArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        SETTINGS.iter().fold(command, |command, setting| {
            command.arg(
                clap::Arg::new(setting.key)
                    .long(setting.flag)
                    .env(setting.env)
                    .help(setting.help),
            )
        })
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        SettingArgs::augment_args(command)
    }
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
        let mut overrides = Overrides::default();
        if let Some(dir) = &self.data_dir {
            let text = dir.display().to_string();
            overrides.set("storage.data_dir", text, Origin::Flag("data-dir"));
        }
        Ok(Settings::load(&self.config.path, &overrides)?)
    }
}

/// Refuses an API key no `Authorization` header can carry (empty, a space or a control
/// character), without repeating it: the HTTP client's own error, and clap's for a value
/// parser, would print the whole header, key included.
pub(crate) fn check_api_key(key: &str) -> anyhow::Result<()> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
        anyhow::bail!("--api-key must be one or more visible ASCII characters (no spaces or control characters)");
    }
    Ok(())
}

/// A running server and its admin key, for the subcommands that act through its HTTP API.
#[derive(Debug, clap::Args)]
struct ServerArg {
    /// The server's base URL.
    #[arg(
        long,
        visible_alias = "url",
        env = "QUIVER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// An admin API key.
    #[arg(long = "api-key", env = "QUIVER_ADMIN_KEY", hide_env_values = true)]
    api_key: String,
    /// One agent for every request, so its connections are kept and reused (`quiver load`
    /// sends hundreds of chunks; `ureq::request` would open a connection for each).
    #[arg(skip)]
    agent: std::sync::OnceLock<ureq::Agent>,
}

impl ServerArg {
    /// POSTs to the server with the admin key, with a body (its content type and bytes) or
    /// none; answers its JSON reply, or says why not.
    fn post(&self, path: &str, body: Option<(&str, &[u8])>) -> anyhow::Result<serde_json::Value> {
        let request = self.request("POST", path)?;
        let response = match body {
            Some((content_type, body)) => {
                request.set("Content-Type", content_type).send_bytes(body)
            }
            None => request.call(),
        };
        self.answer(response)
    }

    /// POSTs a JSON body to the server with the admin key; answers its JSON reply, or says why
    /// not.
    fn post_json(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        self.answer(self.request("POST", path)?.send_json(body))
    }

    /// GETs from the server with the admin key; answers its JSON reply, or says why not.
    fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.answer(self.request("GET", path)?.call())
    }

    fn request(&self, method: &str, path: &str) -> anyhow::Result<ureq::Request> {
        check_api_key(&self.api_key)?;
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        Ok(self
            .agent
            .get_or_init(ureq::Agent::new)
            .request(method, &url)
            .set("Authorization", &format!("Tecton-key {}", self.api_key)))
    }

    fn answer(
        &self,
        response: Result<ureq::Response, ureq::Error>,
    ) -> anyhow::Result<serde_json::Value> {
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
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve(cli.serve));
    if !matches!(command, Command::Serve(_)) {
        // `serve` starts logging itself, once it has read `[log] format` from its configuration.
        start_logging(LogFormat::from_env()?);
    }
    match command {
        Command::Serve(args) => serve::run(args),
        Command::Config(args) => config::run(args),
        Command::Load(args) => load::run(args),
        Command::Snapshot(args) => snapshot::run(args),
        Command::Secrets(args) => secrets::run(args),
        Command::Journal(args) => journal::run(args),
        Command::Bench(args) => bench::run(*args),
        Command::Logs(args) => logs::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Cluster(args) => cluster::run(args),
    }
}

/// Logs to stderr, at the level `QUIVER_LOG` sets (default `info`; see [`log_filter`]), in
/// `format`. A line that cannot be written is dropped (see [`LossyStderr`]): logging never
/// panics.
fn start_logging(format: LogFormat) {
    let logger = tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("QUIVER_LOG").ok().as_deref()))
        // Else a failed write is reported with `eprintln!`, which panics when stderr fails.
        .log_internal_errors(false)
        .with_writer(LossyStderr);
    match format {
        LogFormat::Text => logger
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logger
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// actix-http's HTTP/1 dispatcher logs, at ERROR, every connection that ends on the client's
/// mistake: a request it cannot parse (a garbage line, a bad header, a TLS hello sent to plain
/// HTTP; already answered 400), a head too large (431), a read that failed. Anyone who can
/// reach the port could write ERROR lines at will. Its other lines are about a connection's
/// socket or actix's own state, never Quiver's (Quiver's answers are whole bodies, not
/// streams that could fail): the target is silenced, unless `QUIVER_LOG` names `actix_http`
/// itself (an operator debugging connections sets it; actix logs a parse error's detail at
/// `trace` there too).
const CLIENT_MISTAKES: &str = "actix_http::h1::dispatcher=off";

/// The log's filter: `QUIVER_LOG`'s directives (`info` when unset or invalid), and
/// [`CLIENT_MISTAKES`] unless they name `actix_http`.
fn log_filter(setting: Option<&str>) -> tracing_subscriber::EnvFilter {
    let directives = |setting: &str| {
        if setting.contains("actix_http") {
            setting.to_string()
        } else {
            format!("{setting},{CLIENT_MISTAKES}")
        }
    };
    setting
        .and_then(|setting| tracing_subscriber::EnvFilter::try_new(directives(setting)).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(directives("info")))
}

/// Standard error as the log's writer, answering a failed write as done: the log line is lost,
/// nothing else. When stderr cannot be written (its file is on a full disk), an error reaching
/// the fmt layer would be printed with `eprintln!`, whose panic inside a `tracing` macro took
/// down the actor or worker thread that logged (the journal's writer among them).
#[derive(Debug, Clone, Copy)]
struct LossyStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LossyStderr {
    type Writer = Lossy<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Lossy(std::io::stderr())
    }
}

/// A writer whose failed writes are dropped.
#[derive(Debug)]
struct Lossy<W>(W);

impl<W: std::io::Write> std::io::Write for Lossy<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self.0.write(bytes) {
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => Err(error),
            Ok(0) | Err(_) => Ok(bytes.len()),
            Ok(written) => Ok(written),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::{check_api_key, log_filter, Lossy};

    /// A disk that is full.
    struct Full;

    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
        }
    }

    /// The log's writer on a full disk: lines are lost, no error reaches the fmt layer (which
    /// would `eprintln!` it), and a subscriber built on it logs on. (A real full stderr is in
    /// `tests/integration/faults.rs`.)
    #[test]
    fn a_log_writer_that_fails_drops_the_line_and_never_errs() {
        use std::io::Write;
        let mut lossy = Lossy(Full);
        assert!(lossy.write_all(b"a log line\n").is_ok());
        assert!(lossy.flush().is_ok());
        let subscriber = tracing_subscriber::fmt()
            .log_internal_errors(false)
            .with_writer(|| Lossy(Full))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("on a full disk");
            tracing::info!(field = 1, "again");
        });
    }

    /// actix's dispatcher is silenced under any level an operator sets, unless `QUIVER_LOG`
    /// says what to do with actix-http itself; an unset or invalid setting is `info`.
    #[test]
    fn the_log_filter_silences_actix_dispatcher_unless_told_otherwise() {
        let directives = |setting: Option<&str>| log_filter(setting).to_string();
        for setting in [
            None,
            Some("warn"),
            Some("debug"),
            Some("quiver=debug"),
            Some("=!"),
        ] {
            assert!(
                directives(setting).contains("actix_http::h1::dispatcher=off"),
                "{setting:?}: {}",
                directives(setting)
            );
        }
        assert!(directives(Some("=!")).contains("info"));
        let told = directives(Some("info,actix_http=trace"));
        assert!(!told.contains("=off"), "{told}");
    }

    #[test]
    fn an_api_key_no_header_can_carry_is_refused_without_being_repeated() {
        assert!(check_api_key("0123abcdef").is_ok());
        for key in ["", "a b", "sec\u{1}ret", "sécret"] {
            let refused = check_api_key(key).unwrap_err().to_string();
            assert!(refused.contains("--api-key"), "{refused}");
            assert!(key.is_empty() || !refused.contains(key), "{refused}");
        }
    }

    /// Every flag and subcommand a user can see explains itself in `--help`.
    #[test]
    fn every_visible_flag_and_subcommand_has_help_text() {
        fn missing(command: &clap::Command, path: &str, out: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !arg.is_hide_set() && !builtin && arg.get_help().is_none() {
                    out.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    out.push(sub_path.clone());
                }
                missing(sub, &sub_path, out);
            }
        }
        let mut out = Vec::new();
        missing(&super::Cli::command(), "quiver", &mut out);
        assert!(out.is_empty(), "no help text: {out:#?}");
    }
}

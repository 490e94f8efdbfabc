//! `quiver config check`: resolves a configuration as `quiver serve` would (file, environment,
//! flags), loads and validates the feature repository it names, reads its demo seeds and its
//! TLS certificate and key, without starting anything: no port, no data directory, no key file is touched.

use anyhow::Context;

use super::{ConfigArg, SettingArgs};
use crate::config::Settings;
use crate::http::tls::server_config;
use crate::ingest::seed::seed_writes;
use crate::registry::load_registry;
use crate::time::now_micros;

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Validate the configuration, its feature repository, demo seeds and TLS files; print
    /// every setting as resolved (file < environment < flags). Exits non-zero naming the first
    /// problem.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        settings: SettingArgs,
    },
}

pub fn run(args: ConfigArgs) -> anyhow::Result<()> {
    let ConfigCommand::Check { config, settings } = args.command;
    let settings = Settings::load(&config.path, &settings.0)?;
    let registry = load_registry(&settings.workspaces)?;
    if let Some(tls) = &settings.tls {
        server_config(tls).context("could not set up TLS")?;
    }
    for (key, value) in settings.resolved() {
        println!("{key} = {value}");
    }
    for workspace in registry.workspaces() {
        println!(
            "workspace {} ({}): {} entities, {} push sources, {} feature views, {} feature services",
            workspace.name,
            if workspace.live { "live" } else { "development" },
            workspace.entities.len(),
            workspace.push_sources.len(),
            workspace.views.len(),
            workspace.services.len(),
        );
    }
    for seed in &settings.demo_seeds {
        let writes = seed_writes(&registry, seed, now_micros(), settings.max_future_skew)
            .with_context(|| format!("demo seed {}", seed.file.display()))?;
        println!(
            "demo seed {}: {} rows to write",
            writes.target,
            writes.rows.len()
        );
    }
    println!("{}: valid", config.path.display());
    Ok(())
}

//! `quiver serve`: load and validate the repository, start the shard actors, seed the demo rows
//! and serve HTTP until SIGINT/SIGTERM (actix-web stops accepting, drains, then exits).

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{App, HttpServer};
use anyhow::Context;

use super::ConfigArg;
use crate::config::{DemoSeed, Overrides, Settings};
use crate::http::wire::feature_service::WireCatalog;
use crate::http::{configure, AppState, Limits};
use crate::iam::{AdminKeySource, Keyring};
use crate::ingest::file::{open_load_file, read_rows};
use crate::registry::{load_registry, Registry};
use crate::store::Router;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Address to listen on (HOST:PORT; port 0 picks a free one).
    #[arg(long, env = "QUIVER_LISTEN")]
    listen: Option<String>,
    /// Directory for persistent state; unset means in memory only.
    #[arg(long, env = "QUIVER_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
    };
    let settings = Settings::load(&args.config.path, &overrides)?;
    let registry = Arc::new(load_registry(&settings.workspaces)?);
    let admin_env = std::env::var("QUIVER_ADMIN_KEY").ok();
    let (keyring, key_source) =
        Keyring::bootstrap(admin_env.as_deref(), settings.data_dir.as_deref())
            .context("could not set up the admin key")?;
    match key_source {
        AdminKeySource::Environment => tracing::info!("admin key taken from QUIVER_ADMIN_KEY"),
        AdminKeySource::DataDir => {
            tracing::info!("admin key digest loaded from the data directory")
        }
        // Printed on stdout, once, and never logged.
        AdminKeySource::Generated(key) => {
            println!("Generated admin API key (shown once, save it now): {key}")
        }
    }
    actix_web::rt::System::new().block_on(serve(settings, registry, keyring))
}

async fn serve(
    settings: Settings,
    registry: Arc<Registry>,
    keyring: Keyring,
) -> anyhow::Result<()> {
    let router = Router::start(settings.n_shards, settings.arena_initial_bytes)
        .context("could not start the shards")?;
    for seed in &settings.demo_seeds {
        seed_demo_rows(&registry, &router, seed).await?;
    }
    let state = AppState {
        catalog: Arc::new(WireCatalog::build(&registry)),
        registry,
        router,
        keyring: Arc::new(keyring),
        limits: Limits {
            max_body_bytes: settings.max_body_bytes,
            max_batch_size: settings.max_batch_size,
        },
    };
    let server = HttpServer::new(move || App::new().configure(configure(state.clone())))
        .workers(settings.n_workers)
        .bind(settings.listen)
        .with_context(|| format!("could not listen on {}", settings.listen))?;
    for address in server.addrs() {
        // Test harnesses and scripts read this line to learn the port.
        println!("quiver listening on http://{address}");
    }
    tracing::info!(
        shards = settings.n_shards,
        workers = settings.n_workers,
        "serving"
    );
    server.run().await.context("the HTTP server failed")
}

async fn seed_demo_rows(
    registry: &Registry,
    router: &Router,
    seed: &DemoSeed,
) -> anyhow::Result<()> {
    let view = registry
        .view_by_name(&seed.workspace, &seed.feature_view)
        .with_context(|| {
            format!(
                "demo seed: no feature view `{}` in workspace `{}`",
                seed.feature_view, seed.workspace
            )
        })?;
    let load_file = open_load_file(&seed.file).context("demo seed")?;
    let rows = read_rows(view, load_file.format, load_file.file, |_| {})
        .with_context(|| format!("demo seed {}", seed.file.display()))?;
    let outcome = router
        .write(rows.iter().map(|row| row.to_write(view)).collect())
        .await?;
    tracing::info!(view = %view.name, rows = outcome.stored, "demo rows seeded");
    Ok(())
}

//! `quiver serve`: load and validate the repository, start the shard actors, recover persisted
//! state (or seed the demo rows into an empty store), serve HTTP until SIGINT/SIGTERM (actix-web
//! stops accepting and drains), then take a last snapshot and exit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::HttpServer;
use anyhow::Context;

use super::ConfigArg;
use crate::config::{Overrides, PersistenceSettings, Settings};
use crate::feature_log::FeatureLog;
use crate::http::wire::feature_service::WireCatalog;
use crate::http::{app, AppState, Limits};
use crate::iam::{bootstrap_admin, AdminKeySource, ApiKeyDigest, Directory, KeyHasher};
use crate::ingest::seed::seed_writes;
use crate::ingest::tokens::IngestTokens;
use crate::persist::data_dir::{DataDirLock, MissingKeyFile};
use crate::persist::format::ViewRefV1;
use crate::persist::restore::restore;
use crate::persist::{startup_snapshot, Snapshotter};
use crate::registry::{load_registry, Registry};
use crate::secrets::crypto::MasterKeys;
use crate::secrets::Vault;
use crate::store::Router;
use crate::time::now_micros;

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
    /// Start from this snapshot (an id from `quiver snapshot list`, or a file), setting the
    /// current journal aside: `quiver snapshot restore --force`, then serve.
    #[arg(long)]
    restore: Option<String>,
    /// Create `iam.key` / `master.key` anew when they are missing from a data directory that
    /// holds state (otherwise start-up refuses). What the lost key protected stays lost: every
    /// API key must be re-issued, or secrets sealed under the lost master key must be put again.
    #[arg(long)]
    replace_lost_keys: bool,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
    };
    let settings = Settings::load(&args.config.path, &overrides)?;
    let registry = Arc::new(load_registry(&settings.workspaces)?);
    // Held until this function returns, that is for the server's whole life.
    let _lock = settings
        .data_dir
        .as_deref()
        .map(DataDirLock::acquire)
        .transpose()?;
    let missing_key = missing_key_rule(&settings, args.restore.as_deref(), args.replace_lost_keys)?;
    let admin_env = std::env::var("QUIVER_ADMIN_KEY").ok();
    let hasher = KeyHasher::open(settings.data_dir.as_deref(), &missing_key)
        .context("could not open the API-key digest key")?;
    // Before anything below changes the data directory (a restore, a new admin key).
    let master_key_env = std::env::var("QUIVER_MASTER_KEY").ok();
    let master_keys = MasterKeys::load(
        master_key_env.as_deref(),
        settings.secrets.master_key_file.as_deref(),
        &missing_key,
    )
    .context("could not load the master key")?;
    let (admin_digest, key_source) =
        bootstrap_admin(admin_env.as_deref(), settings.data_dir.as_deref(), &hasher)
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
    if let Some(id) = &args.restore {
        let (data_dir, snapshot_dir) =
            persistent_dirs(&settings).context("--restore needs a data directory (--data-dir)")?;
        let restored = restore(
            snapshot_dir,
            &PersistenceSettings::journal_dirs(data_dir),
            id,
            true,
        )?;
        tracing::info!(snapshot = %restored.installed.display(), "restoring from snapshot");
    }
    actix_web::rt::System::new().block_on(serve(
        settings,
        registry,
        hasher,
        admin_digest,
        master_keys,
    ))
}

/// The data directory and its snapshot directory, when state is persisted.
fn persistent_dirs(settings: &Settings) -> Option<(&Path, &Path)> {
    let data_dir = settings.data_dir.as_deref()?;
    let snapshot_dir = settings
        .persistence
        .snapshot_dir
        .as_deref()
        .expect("a data directory implies a snapshot directory");
    Some((data_dir, snapshot_dir))
}

/// Whether a missing key file may be created (always, in memory).
fn missing_key_rule(
    settings: &Settings,
    restore: Option<&str>,
    replace_lost_keys: bool,
) -> anyhow::Result<MissingKeyFile> {
    let Some((data_dir, snapshot_dir)) = persistent_dirs(settings) else {
        return Ok(MissingKeyFile::Create);
    };
    MissingKeyFile::at_start(
        snapshot_dir,
        &PersistenceSettings::journal_dirs(data_dir),
        restore,
        replace_lost_keys,
    )
    .context("could not look at the data directory")
}

async fn serve(
    settings: Settings,
    registry: Arc<Registry>,
    hasher: KeyHasher,
    admin_digest: ApiKeyDigest,
    master_keys: MasterKeys,
) -> anyhow::Result<()> {
    let views = registry
        .views()
        .iter()
        .map(|v| ViewRefV1 {
            workspace: v.workspace.clone(),
            view: v.name.clone(),
        })
        .collect();
    let specs = Arc::new(
        registry
            .views()
            .iter()
            .map(|v| v.aggregation.clone())
            .collect(),
    );
    let router = Router::start(
        settings.n_shards,
        settings.arena_initial_bytes,
        views,
        specs,
    )
    .context("could not start the shards")?;
    let directory = Directory::start(hasher, admin_digest);
    let vault = Vault::start(
        master_keys.keys,
        master_keys.rotation_file,
        settings.secrets.tenant.clone(),
    );
    let snapshotter = match persistent_dirs(&settings) {
        Some(dirs) => Some(recover(&settings, dirs, &router, &directory, &vault, &registry).await?),
        None => {
            seed_demo(&settings, &registry, &router).await?;
            None
        }
    };
    // After recovery, so that the vault holds the secrets the templates read.
    let ingest_tokens = IngestTokens::render(&registry, &vault)
        .await
        .context("could not render the push sources' ingest tokens")?;
    if let (Some(snapshotter), Some(interval)) =
        (&snapshotter, settings.persistence.snapshot_interval)
    {
        snapshotter.schedule(interval);
    }
    let (feature_log, feature_log_writer) =
        FeatureLog::start(&registry, settings.data_dir.as_deref())?;
    let state = AppState {
        feature_log,
        catalog: Arc::new(WireCatalog::build(&registry)),
        ingest_tokens: Arc::new(ingest_tokens),
        registry,
        router,
        directory,
        vault,
        snapshotter: snapshotter.clone(),
        limits: Limits {
            max_body_bytes: settings.max_body_bytes,
            body_read_timeout: settings.body_read_timeout,
            max_batch_size: settings.max_batch_size,
            max_future_skew: settings.max_future_skew,
        },
    };
    let server = HttpServer::new(move || app(state.clone()))
        .workers(settings.n_workers)
        // Signals are handled below, so that the shutdown snapshot runs while the actors live.
        .disable_signals()
        .bind(settings.listen)
        .with_context(|| format!("could not listen on {}", settings.listen))?;
    // Listening before the line below is printed: whoever reads it may stop the server at once.
    let stop_signal = stop_signal();
    for address in server.addrs() {
        // Test harnesses and scripts read this line to learn the port.
        println!("quiver listening on http://{address}");
    }
    tracing::info!(
        shards = settings.n_shards,
        workers = settings.n_workers,
        "serving"
    );
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        stop_signal.await;
        tracing::info!("stop signal received: draining requests");
        handle.stop(true).await;
    });
    server.await.context("the HTTP server failed")?;
    // Requests are drained: complete the open log files (footer, fsync, rename).
    if let Some(writer) = feature_log_writer {
        writer.close();
    }
    if let Some(snapshotter) = snapshotter {
        // Graceful shutdown: requests are drained; keep their effects in a snapshot.
        let info = snapshotter
            .take()
            .await
            .context("the shutdown snapshot failed")?;
        tracing::info!(id = %info.id, "shutdown snapshot written");
    }
    Ok(())
}

/// Listens for SIGTERM and SIGINT (Ctrl-C) from now on; the future resolves on the first.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match signals {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                tracing::error!("cannot listen for stop signals; stop with SIGKILL");
                std::future::pending::<()>().await
            }
        }
    }
}

/// Loads the newest valid snapshot and the journal after it into each actor; seeds the demo
/// into a fresh directory. Returns the snapshotter for this data directory.
async fn recover(
    settings: &Settings,
    (data_dir, snapshot_dir): (&Path, &Path),
    router: &Router,
    directory: &Directory,
    vault: &Vault,
    registry: &Registry,
) -> anyhow::Result<Snapshotter> {
    let snapshot = startup_snapshot(snapshot_dir, &PersistenceSettings::journal_dirs(data_dir))?;
    let progress = indicatif::ProgressBar::new_spinner().with_message("restoring rows");
    progress.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    let recovery = router
        .recover(
            snapshot.as_ref(),
            &PersistenceSettings::rows_journal_dir(data_dir),
            settings.persistence.fsync,
            |rows| progress.inc(rows as u64),
        )
        .await
        .context("recovery failed")?;
    progress.finish_and_clear();
    let directory_records = directory
        .persistence()
        .recover(
            snapshot.as_ref(),
            PersistenceSettings::directory_journal_dir(data_dir),
        )
        .await
        .context("directory recovery failed")?;
    let vault_records = vault
        .persistence()
        .recover(
            snapshot.as_ref(),
            PersistenceSettings::vault_journal_dir(data_dir),
        )
        .await
        .context("vault recovery failed")?;
    tracing::info!(
        snapshot_rows = recovery.snapshot_rows,
        journal_records = recovery.journal_records,
        journal_rows = recovery.journal_rows,
        skipped_rows = recovery.skipped_rows,
        dropped_journal_bytes = recovery.dropped_bytes,
        directory_journal_records = directory_records,
        vault_journal_records = vault_records,
        "state recovered"
    );
    if snapshot.is_none() && recovery.journal_records == 0 {
        seed_demo(settings, registry, router).await?;
    }
    Ok(Snapshotter::new(
        snapshot_dir.to_path_buf(),
        settings.persistence.snapshot_retention,
        settings.n_shards,
        vec![
            Box::new(router.clone()),
            Box::new(directory.persistence()),
            Box::new(vault.persistence()),
        ],
    ))
}

/// Writes the demo seeds `config.toml` names into the (empty) store.
async fn seed_demo(
    settings: &Settings,
    registry: &Registry,
    router: &Router,
) -> anyhow::Result<()> {
    for seed in &settings.demo_seeds {
        let writes = seed_writes(registry, seed, now_micros(), settings.max_future_skew)?;
        let outcome = router.write(writes.rows).await?;
        tracing::info!(target = %writes.target, rows = outcome.stored, rejected = writes.rejected, "demo seed written");
    }
    Ok(())
}

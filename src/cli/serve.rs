//! `quiver serve`: load and validate the repository, start the shard actors, recover persisted
//! state (or seed the demo rows into an empty store), serve HTTP until SIGINT/SIGTERM (actix-web
//! stops accepting and drains), then take a last snapshot and exit.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::HttpServer;
use anyhow::Context;

use super::ConfigArg;
use crate::config::{DemoSeed, Overrides, PersistenceSettings, SeedTarget, Settings};
use crate::http::wire::feature_service::WireCatalog;
use crate::http::{app, AppState, Limits};
use crate::iam::{bootstrap_admin, AdminKeySource, ApiKeyDigest, Directory, KeyHasher};
use crate::ingest::file::{open_load_file, read_rows};
use crate::ingest::plan_ingest;
use crate::persist::data_dir::{existing_state, DataDirLock, MissingKeyFile};
use crate::persist::format::ViewRefV1;
use crate::persist::restore::{find_snapshot, install_snapshot};
use crate::persist::snapshot::newest_valid;
use crate::persist::Snapshotter;
use crate::registry::time::{format_timestamp, now_micros, parse_timestamp, MICROS_PER_SECOND};
use crate::registry::types::DataType;
use crate::registry::Field;
use crate::registry::{load_registry, Registry};
use crate::secrets::crypto::{KeySource, MasterKey};
use crate::secrets::persistence::next_key_path;
use crate::secrets::Vault;
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
    let master_keys = load_master_keys(&settings, &missing_key)?;
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
        let data_dir = settings
            .data_dir
            .as_deref()
            .context("--restore needs a data directory (--data-dir)")?;
        let snapshot_dir = settings
            .persistence
            .snapshot_dir
            .clone()
            .expect("a data directory implies a snapshot directory");
        let source = find_snapshot(&snapshot_dir, id)?;
        let installed = install_snapshot(
            &source,
            &snapshot_dir,
            &PersistenceSettings::journal_dirs(data_dir),
            true,
        )?;
        tracing::info!(snapshot = %installed.display(), "restoring from snapshot");
    }
    actix_web::rt::System::new().block_on(serve(
        settings,
        registry,
        hasher,
        admin_digest,
        master_keys,
    ))
}

/// Whether a missing key file may be created: on a data directory's first start (no state yet)
/// or when the operator asks for new keys; never silently where state exists that it protected.
fn missing_key_rule(
    settings: &Settings,
    restore: Option<&str>,
    replace_lost_keys: bool,
) -> anyhow::Result<MissingKeyFile> {
    let Some(data_dir) = settings.data_dir.as_deref() else {
        return Ok(MissingKeyFile::Create);
    };
    if replace_lost_keys {
        return Ok(MissingKeyFile::Create);
    }
    let state = match restore {
        Some(id) => Some(format!("snapshot `{id}`, to be restored")),
        None => {
            let snapshot_dir = settings
                .persistence
                .snapshot_dir
                .as_deref()
                .expect("a data directory implies a snapshot directory");
            existing_state(snapshot_dir, &PersistenceSettings::journal_dirs(data_dir))
                .context("could not look at the data directory")?
        }
    };
    Ok(
        state.map_or(MissingKeyFile::Create, |state| MissingKeyFile::Refuse {
            state,
        }),
    )
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
    let snapshotter = match &settings.data_dir {
        Some(data_dir) => {
            Some(recover(&settings, data_dir, &router, &directory, &vault, &registry).await?)
        }
        None => {
            seed_demo(&settings, &registry, &router).await?;
            None
        }
    };
    if let (Some(snapshotter), Some(interval)) =
        (&snapshotter, settings.persistence.snapshot_interval)
    {
        let snapshotter = snapshotter.clone();
        actix_web::rt::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(error) = snapshotter.take().await {
                    tracing::error!(%error, "periodic snapshot failed");
                }
            }
        });
    }
    let state = AppState {
        catalog: Arc::new(WireCatalog::build(&registry)),
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

/// The vault's master key(s) and the file a rotation replaces, before the vault starts.
struct MasterKeys {
    keys: Vec<MasterKey>,
    rotation_file: Option<PathBuf>,
}

/// Loads the master key (`QUIVER_MASTER_KEY`, else the key file, created only as
/// `missing_key` allows). A `.next` key beside the file means a rotation was interrupted:
/// values are then opened with either key.
fn load_master_keys(
    settings: &Settings,
    missing_key: &MissingKeyFile,
) -> anyhow::Result<MasterKeys> {
    let env_key = std::env::var("QUIVER_MASTER_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let key_file = settings.secrets.master_key_file.as_deref();
    let (key, source) = MasterKey::load(env_key.as_deref(), key_file, missing_key)
        .context("could not load the master key")?;
    match source {
        KeySource::Environment => tracing::info!("master key taken from QUIVER_MASTER_KEY"),
        KeySource::File => tracing::info!("master key loaded from its key file"),
        KeySource::CreatedFile => tracing::warn!(
            key_file = %key_file.map(|p| p.display().to_string()).unwrap_or_default(),
            "CREATED A NEW MASTER KEY FILE (mode 0600): fine for development; in production set QUIVER_MASTER_KEY or provision the file, and back it up: without it no secret can be read"
        ),
        KeySource::Ephemeral => tracing::warn!(
            "secrets are sealed with a random per-run master key (no data directory)"
        ),
    }
    let mut keys = vec![key];
    let rotation_file = if source == KeySource::Environment {
        None
    } else {
        key_file.map(std::path::Path::to_path_buf)
    };
    if let Some(next) = rotation_file
        .as_deref()
        .map(next_key_path)
        .filter(|p| p.exists())
    {
        let (next_key, _) = MasterKey::load(None, Some(&next), missing_key)
            .context("could not load the interrupted rotation's key")?;
        tracing::warn!(key_file = %next.display(), "an interrupted key rotation was found; values open with either key; run `quiver secrets rotate-key` again");
        keys.push(next_key);
    }
    Ok(MasterKeys {
        keys,
        rotation_file,
    })
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

/// Loads the newest valid snapshot and the journal after it; seeds the demo into a fresh
/// directory. Returns the snapshotter for this data directory.
async fn recover(
    settings: &Settings,
    data_dir: &std::path::Path,
    router: &Router,
    directory: &Directory,
    vault: &Vault,
    registry: &Registry,
) -> anyhow::Result<Snapshotter> {
    let snapshot_dir = settings
        .persistence
        .snapshot_dir
        .clone()
        .expect("a data directory implies a snapshot directory");
    // Every journal verifies before any is opened: a refused start changes no byte.
    for journal_dir in PersistenceSettings::journal_dirs(data_dir) {
        crate::persist::journal::verify(&journal_dir)?;
    }
    let newest = newest_valid(&snapshot_dir).context("could not list snapshots")?;
    if let Some((path, _)) = &newest {
        tracing::info!(snapshot = %path.display(), "loading snapshot");
    }
    let progress = indicatif::ProgressBar::new_spinner().with_message("restoring rows");
    progress.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    let journal_dir = PersistenceSettings::rows_journal_dir(data_dir);
    let recovery = router
        .recover(
            newest.as_ref().map(|(_, s)| s),
            &journal_dir,
            settings.persistence.fsync,
            |rows| progress.inc(rows as u64),
        )
        .await
        .context("recovery failed")?;
    progress.finish_and_clear();
    let directory_records = directory
        .recover(
            newest.as_ref().map(|(_, s)| s),
            PersistenceSettings::directory_journal_dir(data_dir),
        )
        .await
        .context("directory recovery failed")?;
    let vault_records = vault
        .recover(
            newest.as_ref().map(|(_, s)| s),
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
    if newest.is_none() && recovery.journal_records == 0 {
        seed_demo(settings, registry, router).await?;
    }
    Ok(Snapshotter::new(
        snapshot_dir,
        settings.persistence.snapshot_retention,
        settings.n_shards,
        vec![
            Box::new(router.clone()),
            Box::new(directory.clone()),
            Box::new(vault.clone()),
        ],
    ))
}

async fn seed_demo(
    settings: &Settings,
    registry: &Registry,
    router: &Router,
) -> anyhow::Result<()> {
    for seed in &settings.demo_seeds {
        seed_demo_rows(registry, router, seed, settings.max_future_skew).await?;
    }
    Ok(())
}

async fn seed_demo_rows(
    registry: &Registry,
    router: &Router,
    seed: &DemoSeed,
    max_future_skew: i64,
) -> anyhow::Result<()> {
    let context = || format!("demo seed {}", seed.file.display());
    match &seed.target {
        SeedTarget::FeatureView(name) => {
            let view = registry
                .view_by_name(&seed.workspace, name)
                .with_context(|| {
                    format!(
                        "demo seed: no feature view `{name}` in workspace `{}`",
                        seed.workspace
                    )
                })?;
            let load_file = open_load_file(&seed.file).context("demo seed")?;
            let rows =
                read_rows(view, load_file.format, load_file.file, |_| {}).with_context(context)?;
            let outcome = router
                .write(rows.iter().map(|row| row.to_write(view)).collect())
                .await?;
            tracing::info!(view = %view.name, rows = outcome.stored, "demo rows seeded");
        }
        SeedTarget::PushSource(source) => {
            let schema = &registry
                .workspace(&seed.workspace)
                .and_then(|ws| ws.push_sources.get(source))
                .with_context(|| {
                    format!(
                        "demo seed: no push source `{source}` in workspace `{}`",
                        seed.workspace
                    )
                })?
                .schema;
            let text = std::fs::read_to_string(&seed.file).with_context(context)?;
            let mut records = text
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<Vec<serde_json::Value>, _>>()
                .with_context(context)?;
            let now = now_micros();
            if seed.rebase_to_now {
                rebase_to(&mut records, schema, now - 60 * MICROS_PER_SECOND)
                    .with_context(context)?;
            }
            let plan = plan_ingest(
                registry,
                &seed.workspace,
                &[(source.clone(), records)],
                now,
                max_future_skew,
            )
            .with_context(context)?;
            let outcome = router.write(plan.rows).await?;
            tracing::info!(source = %source, rows = outcome.stored, rejected = plan.rejected.len(), "demo events seeded");
        }
    }
    Ok(())
}

/// Shifts every timestamp field of `records` by one amount, so that the newest is `anchor`.
fn rebase_to(
    records: &mut [serde_json::Value],
    schema: &[Field],
    anchor: i64,
) -> anyhow::Result<()> {
    let fields: Vec<&str> = schema
        .iter()
        .filter(|f| f.data_type == DataType::Timestamp)
        .map(|f| f.name.as_str())
        .collect();
    let time_of = |value: &serde_json::Value| {
        value
            .as_str()
            .map(parse_timestamp)
            .transpose()
            .map_err(anyhow::Error::msg)
    };
    let mut newest = i64::MIN;
    for record in records.iter() {
        for field in &fields {
            if let Some(time) = time_of(&record[*field])? {
                newest = newest.max(time);
            }
        }
    }
    let shift = anchor - newest;
    for record in records.iter_mut() {
        for field in &fields {
            if let Some(time) = time_of(&record[*field])? {
                record[*field] = serde_json::Value::String(format_timestamp(time + shift));
            }
        }
    }
    Ok(())
}

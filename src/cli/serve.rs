//! `quiver serve`: load and validate the repository, start the actors (and join the cluster in
//! cluster mode), listen (every API answering 503 and `/readyz` saying why until start-up is
//! done), recover persisted state (or seed the demo rows into an empty store, or catch up with
//! the cluster's stream), serve HTTP until SIGINT/SIGTERM (actix-web stops
//! accepting and drains), then take a last snapshot and exit.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use actix_web::HttpServer;
use anyhow::Context;
use rustls::ServerConfig;

use super::{ConfigArg, SettingArgs};
use crate::cluster::{ChangeStream, Cluster};
use crate::config::{PersistenceSettings, Settings};
use crate::feature_log::FeatureLog;
use crate::http::readiness::{StartUp, Started};
use crate::http::served::{Served, ServedRepository};
use crate::http::tls::server_config;
use crate::http::{app, AppState, Limits, Surface};
use crate::iam::{bootstrap_admin, AdminKeySource, ApiKeyDigest, Directory, KeyHasher};
use crate::ingest::seed::seed_writes;
use crate::ingest::tokens::IngestTokens;
use crate::metrics::RequestHistory;
use crate::persist::data_dir::{DataDirLock, MissingKeyFile};
use crate::persist::restore::restore;
use crate::persist::{startup_snapshot, LostWrites, Snapshotter};
use crate::registry::{load_registry, Registry};
use crate::secrets::crypto::MasterKeys;
use crate::secrets::Vault;
use crate::store::Router;
use crate::test_hooks::HookFile;
use crate::time::now_micros;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    settings: SettingArgs,
    /// Start from this snapshot (an id from `quiver snapshot list`, or a file), setting the
    /// current journal aside: `quiver snapshot restore --force`, then serve.
    #[arg(long)]
    restore: Option<String>,
    /// Create `iam.key` / `master.key` anew when they are missing from a data directory that
    /// holds state (otherwise start-up refuses). What the lost key protected stays lost: every
    /// API key must be re-issued, or secrets sealed under the lost master key must be put again.
    #[arg(long)]
    replace_lost_keys: bool,
    /// Start even though acknowledged writes would be lost: the snapshots that do not verify
    /// are skipped although the journals do not reach back past them, or a journal segment is
    /// missing (otherwise start-up refuses, saying what is missing). What only those held
    /// stays lost; the rest is loaded.
    #[arg(long)]
    accept_lost_writes: bool,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::load(&args.config.path, &args.settings.0)?;
    super::start_logging(settings.log_format);
    let registry = Arc::new(load_registry(&settings.workspaces)?);
    let tls = settings.tls.as_ref().map(server_config).transpose();
    let tls = tls.context("could not set up TLS")?;
    // Held until this function returns, that is for the server's whole life.
    let _lock = settings
        .data_dir
        .as_deref()
        .map(DataDirLock::acquire)
        .transpose()?;
    let missing_key = missing_key_rule(&settings, args.restore.as_deref(), args.replace_lost_keys)?;
    let admin_env = std::env::var("QUIVER_ADMIN_KEY").ok();
    let iam_key_env = std::env::var("QUIVER_IAM_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let master_key_env = std::env::var("QUIVER_MASTER_KEY").ok();
    shared_keys_rule(&settings, iam_key_env.as_deref(), master_key_env.as_deref())?;
    let hasher = match iam_key_env.as_deref() {
        Some(hex) => KeyHasher::from_hex(hex),
        None => KeyHasher::open(settings.data_dir.as_deref(), &missing_key),
    }
    .context("could not open the API-key digest key")?;
    // Before anything below changes the data directory (a restore, a new admin key).
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
    let lost_writes = if args.accept_lost_writes {
        LostWrites::Accept
    } else {
        LostWrites::Refuse
    };
    actix_web::rt::System::new().block_on(serve(
        settings,
        registry,
        hasher,
        admin_digest,
        master_keys,
        tls,
        lost_writes,
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

/// In cluster mode every node digests API keys and seals secrets with the same two keys,
/// given to each node at start (never made per node, never sent through NATS): an API key
/// made on one node authenticates on all, a value sealed on one opens on all. A data
/// directory keeps its own `iam.key` (the digests it holds were made with it), except a
/// cluster node's: its snapshots hold rows only (the directory comes from its stream, digested
/// with the shared key), so the shared keys given at start are the ones used.
fn shared_keys_rule(
    settings: &Settings,
    iam_key_env: Option<&str>,
    master_key_env: Option<&str>,
) -> anyhow::Result<()> {
    if settings.cluster.is_none() {
        if iam_key_env.is_some() && settings.data_dir.is_some() {
            anyhow::bail!("QUIVER_IAM_KEY is for cluster nodes and in-memory servers: a data directory keeps its own iam.key, which the API-key digests it holds were made with; unset QUIVER_IAM_KEY");
        }
        return Ok(());
    }
    if iam_key_env.is_none() {
        anyhow::bail!("cluster mode needs QUIVER_IAM_KEY (64 hex characters, the same on every node): API keys are digested with it, and a key made on one node must authenticate on every node");
    }
    let master_key_file = settings.secrets.master_key_file.as_deref();
    if master_key_env.is_none_or(str::is_empty) && !master_key_file.is_some_and(Path::exists) {
        anyhow::bail!("cluster mode needs the same master key on every node: set QUIVER_MASTER_KEY (64 hex characters) or secrets.master_key_file to an existing key file (a copy of one file on every node)");
    }
    Ok(())
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
    tls: Option<ServerConfig>,
    lost_writes: LostWrites,
) -> anyhow::Result<()> {
    let router = Router::start_with(settings.n_shards, settings.arena_initial_bytes, &registry)
        .context("could not start the shards")?;
    let mut cluster = match &settings.cluster {
        Some(cluster) => Some(
            Cluster::connect(cluster, &router)
                .await
                .context("could not join the cluster")?,
        ),
        None => None,
    };
    let router = match &cluster {
        Some(cluster) => match cluster.remote_reads() {
            Some(remote) => router.with_log(cluster.log()).with_remote(remote),
            None => router.with_log(cluster.log()),
        },
        None => router,
    };
    let change_streams = match &cluster {
        Some(cluster) => Some(
            ChangeStreams::open(cluster)
                .await
                .context("could not join the cluster")?,
        ),
        None => None,
    };
    let served = ServedRepository::new(Served::new(Arc::clone(&registry), IngestTokens::default()));
    let directory = Directory::start(
        hasher,
        admin_digest,
        change_streams.as_ref().map(|s| s.directory.log()),
    );
    let vault = Vault::start(
        master_keys.keys,
        master_keys.rotation_file,
        settings.secrets.tenant.clone(),
        change_streams.as_ref().map(|s| s.vault.log()),
    );
    let snapshotter = persistent_dirs(&settings).map(|(_, snapshot_dir)| {
        let (snapshot_dir, retention) = (
            snapshot_dir.to_path_buf(),
            settings.persistence.snapshot_retention,
        );
        match cluster.as_ref().and_then(Cluster::snapshot_cut) {
            // The directory and the vault replay their own streams from the start at every
            // start, and the repository is the files on disk: a cluster node's snapshot holds
            // the rows, and the stream sequence they cover, only.
            Some(cut) => Snapshotter::new(
                snapshot_dir,
                retention,
                settings.n_shards,
                vec![Box::new(router.clone())],
            )
            .with_cut(cut),
            None => Snapshotter::new(
                snapshot_dir,
                retention,
                settings.n_shards,
                vec![
                    Box::new(router.clone()),
                    Box::new(directory.persistence()),
                    Box::new(vault.persistence()),
                    Box::new(served.clone()),
                ],
            ),
        }
    });
    let start_up = StartUp::default();
    // Started after recovery (below): the services that log are the recovered repository's.
    let feature_log = FeatureLog::default();
    let history_router = router.clone();
    let state = AppState {
        replica_stalls: cluster
            .as_ref()
            .map(Cluster::replica_stalls)
            .unwrap_or_default(),
        feature_log: feature_log.clone(),
        history: RequestHistory::start(move || history_router.rows_written()),
        start_up: Arc::clone(&start_up),
        served: served.clone(),
        router: router.clone(),
        directory: directory.clone(),
        vault: vault.clone(),
        snapshotter: snapshotter.clone(),
        limits: Limits {
            max_body_bytes: settings.max_body_bytes,
            body_read_timeout: settings.body_read_timeout,
            body_bytes_in_flight_per_worker: settings.max_body_bytes_in_flight / settings.n_workers,
            max_batch_size: settings.max_batch_size,
            max_store_response_bytes: settings.max_store_response_bytes,
            max_future_skew: settings.max_future_skew,
        },
    };
    let metrics_server = match settings.metrics_address {
        Some(address) => {
            let (server, urls) = listen(state.clone(), Surface::Metrics, 1, address, tls.as_ref())
                .with_context(|| format!("could not listen on {address} for metrics"))?;
            for url in urls {
                println!("quiver metrics on {url}/metrics");
            }
            Some(server)
        }
        None => None,
    };
    // Listening before recovery, so that probes see the start (`/readyz` answers 503 until it
    // is done, every API 503 too); the line that scripts wait for is printed once it is.
    let (server, urls) = listen(
        state,
        Surface::Api,
        settings.n_workers,
        settings.listen,
        tls.as_ref(),
    )
    .with_context(|| format!("could not listen on {}", settings.listen))?;
    let stop_signal = stop_signal();
    let handle = server.handle();
    let metrics_handle = metrics_server.as_ref().map(|server| server.handle());
    if let Some(metrics_server) = metrics_server {
        actix_web::rt::spawn(metrics_server);
    }
    let server = actix_web::rt::spawn(server);
    for url in &urls {
        println!("quiver starting on {url}");
    }
    let stopping = handle.clone();
    actix_web::rt::spawn(async move {
        stop_signal.await;
        tracing::info!("stop signal received: draining requests");
        if let Some(metrics_handle) = metrics_handle {
            metrics_handle.stop(false).await;
        }
        stopping.stop(true).await;
    });
    let started = start(
        &settings,
        &served,
        &router,
        &directory,
        &vault,
        (snapshotter.as_ref(), lost_writes),
        cluster
            .as_mut()
            .zip(change_streams)
            .map(|(cluster, streams)| (cluster, streams, urls[0].as_str())),
    )
    .await;
    let started = started.and_then(|ingest_tokens| {
        let registry = &served.current().registry;
        let writer = feature_log.start(registry, settings.data_dir.as_deref())?;
        Ok((ingest_tokens, writer))
    });
    let (ingest_tokens, feature_log_writer) = match started {
        Ok(started) => started,
        Err(error) => {
            handle.stop(false).await;
            return Err(error);
        }
    };
    served.set_ingest_tokens(ingest_tokens);
    start_up.set(Started).expect("start-up is done once");
    if let (Some(snapshotter), Some(interval)) =
        (&snapshotter, settings.persistence.snapshot_interval)
    {
        snapshotter.schedule(interval);
    }
    for url in &urls {
        // Test harnesses and scripts read this line to learn the port: the server is ready.
        println!("quiver listening on {url}");
    }
    tracing::info!(
        shards = settings.n_shards,
        workers = settings.n_workers,
        "serving"
    );
    server
        .await
        .context("the HTTP server stopped")?
        .context("the HTTP server failed")?;
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

/// Binds `surface` on `address`, over HTTPS when `tls` is given, and starts serving it; answers
/// the server (to spawn) and the base URLs it serves.
fn listen(
    state: AppState,
    surface: Surface,
    workers: usize,
    address: SocketAddr,
    tls: Option<&ServerConfig>,
) -> std::io::Result<(actix_web::dev::Server, Vec<String>)> {
    let server = HttpServer::new(move || app(state.clone(), surface))
        .workers(workers)
        // Signals are handled in `serve`, so that the shutdown snapshot runs while the actors
        // live.
        .disable_signals();
    let server = match tls {
        Some(config) => server.bind_rustls_0_23(address, config.clone())?,
        None => server.bind(address)?,
    };
    let urls = server
        .addrs_with_scheme()
        .into_iter()
        .map(|(address, scheme)| format!("{scheme}://{address}"))
        .collect();
    Ok((server.run(), urls))
}

/// Start-up behind the listening socket: recovers persisted state (or seeds the demo into an
/// empty store), or in a cluster (with this node's URL) catches up with the cluster's stream (no demo seeds there:
/// every node would publish them again), then renders the ingest tokens from the recovered
/// vault and answers them.
async fn start(
    settings: &Settings,
    served: &ServedRepository,
    router: &Router,
    directory: &Directory,
    vault: &Vault,
    (snapshotter, lost_writes): (Option<&Snapshotter>, LostWrites),
    cluster: Option<(&mut Cluster, ChangeStreams, &str)>,
) -> anyhow::Result<IngestTokens> {
    // The integration tests hold start-up to watch `/readyz` during a start.
    HookFile::from_env("QUIVER_TEST_HOLD_START_UP")
        .wait_while_on()
        .await;
    match (cluster, persistent_dirs(settings)) {
        (Some((cluster, change_streams, url)), dirs) => {
            // No journal in cluster mode: the stream is the rows' log.
            let snapshot = match dirs {
                Some((_, snapshot_dir)) => startup_snapshot(snapshot_dir, &[], lost_writes)?,
                None => None,
            };
            let (restored, _) = router
                .restore_snapshot(snapshot.as_ref(), |_| {})
                .await
                .context("could not load the snapshot's rows")?;
            let (resumed_after, sequence) = cluster
                .start_replica(url, snapshot.as_ref())
                .await
                .context("could not catch up with the cluster's stream")?;
            tracing::info!(
                snapshot_rows = restored.snapshot_rows,
                resumed_after,
                sequence,
                "caught up with the cluster's stream"
            );
            change_streams.start(directory, vault).await?;
            if !settings.demo_seeds.is_empty() {
                tracing::info!("the demo seeds are not loaded in cluster mode");
            }
        }
        (None, Some(dirs)) => {
            let snapshot = startup_snapshot(
                dirs.1,
                &PersistenceSettings::state_journals(dirs.0),
                lost_writes,
            )?;
            if let (Some(snapshotter), Some(snapshot)) = (snapshotter, &snapshot) {
                snapshotter.started_from(snapshot);
            }
            recover(settings, dirs.0, snapshot, router, directory, vault, served).await?
        }
        (None, None) => seed_demo(settings, &served.current().registry, router).await?,
    }
    // After recovery, so that the vault holds the secrets the templates read.
    let ingest_tokens = IngestTokens::render(&served.current().registry, vault)
        .await
        .context("could not render the push sources' ingest tokens")?;
    Ok(ingest_tokens)
}

/// The cluster's streams of the directory's and the vault's changes.
struct ChangeStreams {
    directory: ChangeStream,
    vault: ChangeStream,
}

impl ChangeStreams {
    async fn open(cluster: &Cluster) -> Result<ChangeStreams, crate::cluster::ClusterError> {
        Ok(ChangeStreams {
            directory: cluster.change_stream("directory").await?,
            vault: cluster.change_stream("vault").await?,
        })
    }

    /// Applies both streams to their actors, from the start; resolves once caught up.
    async fn start(self, directory: &Directory, vault: &Vault) -> anyhow::Result<()> {
        let directory_sequence = self
            .directory
            .start(Arc::new(directory.persistence()))
            .await
            .context("could not catch up with the cluster's directory stream")?;
        let vault_sequence = self
            .vault
            .start(Arc::new(vault.persistence()))
            .await
            .context("could not catch up with the cluster's vault stream")?;
        tracing::info!(
            directory_sequence,
            vault_sequence,
            "caught up with the cluster's directory and vault streams"
        );
        Ok(())
    }
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

/// Loads the snapshot start-up chose and the journal after it into each actor (the repository
/// it says was last applied first: the rows are stored for it; the applies the rows journal
/// holds are made again as its replay reaches them); seeds the demo into a fresh directory.
async fn recover(
    settings: &Settings,
    data_dir: &Path,
    snapshot: Option<crate::persist::snapshot::Snapshot>,
    router: &Router,
    directory: &Directory,
    vault: &Vault,
    served: &ServedRepository,
) -> anyhow::Result<()> {
    if let Some(hash) = served.recover(snapshot.as_ref(), router).await? {
        tracing::info!(%hash, "serving the repository last applied, not the files on disk");
    }
    let progress = indicatif::ProgressBar::new_spinner().with_message("restoring rows");
    progress.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    let recovery = router
        .recover(
            snapshot.as_ref(),
            &PersistenceSettings::rows_journal_dir(data_dir),
            settings.persistence.fsync,
            served,
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
        journal_applies = recovery.journal_applies,
        skipped_rows = recovery.skipped_rows,
        dropped_journal_bytes = recovery.dropped_bytes,
        directory_journal_records = directory_records,
        vault_journal_records = vault_records,
        "state recovered"
    );
    if snapshot.is_none() && recovery.journal_records == 0 {
        seed_demo(settings, &served.current().registry, router).await?;
    }
    Ok(())
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
        tracing::info!(target = %writes.target, rows = outcome.stored, "demo seed written");
        for refused in &writes.refused {
            tracing::info!(
                target = %writes.target,
                feature_view = %refused.feature_view,
                events = refused.count,
                reason = refused.reason.as_str(),
                "demo seed: events not written to this view, as /ingest would refuse them"
            );
        }
    }
    Ok(())
}

//! Feature logging: what each GetFeatures / GetFeaturesBatch answer served, for training on
//! exactly what production saw and for skew checks. A feature service opts in with
//! `[feature_service.logging]` (see `registry::LoggingConfig`).
//!
//! The read path calls [`FeatureLog::offer`]: it decides sampling first, captures what it must
//! copy of the request (`record::LoggedRequest`: keys, kept request context; the answer is
//! moved), and hands it to the writer actor (`writer`), which makes the rows, with `try_send` on
//! a bounded queue. It never waits: when the queue is full the rows are dropped and counted, and a
//! line is logged at most every ten seconds. The actor owns the files (`sink`, over `parquet` and
//! `jsonl`) under the data directory (`files`), rolls them, and completes them at shutdown
//! ([`FeatureLogWriter::close`]). `export` reads them back for `quiver logs export`.
//!
//! Not here: metrics endpoints (the counts are readable through [`FeatureLog::counts`]), and the
//! request id, which `http` reads from `X-Request-Id`.

pub mod export;
pub mod files;
mod jsonl;
mod parquet;
mod record;
mod sink;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use crate::iam::Principal;
use crate::registry::{FeatureService, Registry};
use crate::serving::{Answer, RequestRow};
use crate::time::{now_micros, Micros, MICROS_PER_SECOND};
use record::{LogSchema, LoggedRequest, Stamp};
use writer::{Command, LogWriter};

/// Requests (each up to a batch of rows) waiting for the writer; past this they are dropped.
pub const QUEUE_CAPACITY: usize = 4096;
/// And the bytes they may hold (`LoggedRequest::held_bytes`): a request's context and rows can
/// reach the 4 MiB body limit, and 4096 of those waiting on a slow disk took 4.4 GB.
pub const QUEUE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FeatureLogError {
    #[error(
        "feature service `{service}` of workspace `{workspace}` declares logging, which writes \
         under the data directory, and there is none: set --data-dir (or QUIVER_DATA_DIR, or \
         storage.data_dir), or remove its [feature_service.logging] table"
    )]
    NoDataDir { workspace: String, service: String },
    #[error("feature service `{service}` of workspace `{workspace}`: its log would have the column `{column}` twice")]
    ColumnClash {
        workspace: String,
        service: String,
        column: String,
    },
    #[error("cannot start the feature-log writer: {0}")]
    Thread(std::io::Error),
}

/// How many rows were written, dropped at the full queue, or lost to a write error.
#[derive(Debug, Default)]
pub struct Counts {
    logged: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    /// What the requests waiting for the writer hold (`LoggedRequest::held_bytes`).
    queued_bytes: AtomicUsize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogCounts {
    pub logged: u64,
    pub dropped: u64,
    pub failed: u64,
}

/// Lets a repeated warning through at most once every ten seconds.
#[derive(Debug)]
struct Throttle {
    last: AtomicI64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            last: AtomicI64::new(Micros::MIN),
        }
    }
}

impl Throttle {
    fn ready(&self) -> bool {
        let now = now_micros();
        let last = self.last.load(Ordering::Relaxed);
        now.saturating_sub(last) >= 10 * MICROS_PER_SECOND
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// The read path's handle: cheap to clone; does nothing until [`FeatureLog::start`] finds a
/// service that logs. The server takes requests before it recovers its state, and the
/// services that log are those of the repository it recovered (an applied one's too), so it
/// makes the handle first and starts it after recovery.
#[derive(Clone, Default)]
pub struct FeatureLog {
    shared: Arc<OnceLock<Shared>>,
}

struct Shared {
    queue: SyncSender<Command>,
    /// By service id.
    schemas: HashMap<String, Arc<LogSchema>>,
    counts: Arc<Counts>,
    /// The most bytes the queued requests may hold (`QUEUE_BYTES`).
    queue_bytes: usize,
    drops: Throttle,
}

/// The owner of the writer thread; [`FeatureLogWriter::close`] completes the open files.
pub struct FeatureLogWriter {
    queue: SyncSender<Command>,
    thread: JoinHandle<()>,
}

impl FeatureLog {
    /// Starts the writer if a live service of `registry` declares logging: this handle and its
    /// clones log from then on. Refuses a logging service without a data directory (in memory,
    /// there is nowhere the operator would look for the files). Called once.
    pub fn start(
        &self,
        registry: &Registry,
        data_dir: Option<&Path>,
    ) -> Result<Option<FeatureLogWriter>, FeatureLogError> {
        self.start_with(registry, data_dir, QUEUE_CAPACITY, QUEUE_BYTES)
    }

    fn start_with(
        &self,
        registry: &Registry,
        data_dir: Option<&Path>,
        capacity: usize,
        queue_bytes: usize,
    ) -> Result<Option<FeatureLogWriter>, FeatureLogError> {
        let mut schemas = HashMap::new();
        for service in registry
            .workspaces()
            .filter(|w| w.live)
            .flat_map(|w| w.services.values())
        {
            if let Some(config) = &service.logging {
                if data_dir.is_none() {
                    return Err(FeatureLogError::NoDataDir {
                        workspace: service.workspace.clone(),
                        service: service.name.clone(),
                    });
                }
                let schema = LogSchema::of(registry, service, config)?;
                schemas.insert(service.id.clone(), Arc::new(schema));
            }
        }
        let Some(data_dir) = data_dir.filter(|_| !schemas.is_empty()) else {
            return Ok(None);
        };
        let (shared, writer) = Self::spawn(files::root(data_dir), schemas, capacity, queue_bytes)?;
        if self.shared.set(shared).is_err() {
            panic!("a feature log is started once");
        }
        Ok(Some(writer))
    }

    fn spawn(
        root: PathBuf,
        schemas: HashMap<String, Arc<LogSchema>>,
        capacity: usize,
        queue_bytes: usize,
    ) -> Result<(Shared, FeatureLogWriter), FeatureLogError> {
        let (queue, receiver) = sync_channel(capacity);
        let counts = Arc::new(Counts::default());
        let actor = LogWriter::new(root, counts.clone());
        let thread = std::thread::Builder::new()
            .name("feature-log".to_string())
            .spawn(move || actor.run(receiver))
            .map_err(FeatureLogError::Thread)?;
        let shared = Shared {
            queue: queue.clone(),
            schemas,
            counts,
            queue_bytes,
            drops: Throttle::default(),
        };
        Ok((shared, FeatureLogWriter { queue, thread }))
    }

    /// Logs an answer if its service logs and this request is sampled; never waits. The caller
    /// is logged by name (never its key); the request id is the client's `X-Request-Id`, or new:
    /// asked of `request_id` only for an answer logged (the HTTP layer holds it as a header
    /// value, and reading it as text checks its bytes again).
    pub fn offer<'r>(
        &self,
        service: &FeatureService,
        requests: &[RequestRow<'_>],
        answer: Answer,
        principal: &Principal,
        request_id: impl FnOnce() -> Option<&'r str>,
    ) {
        let (Some(shared), Some(config)) = (self.shared.get(), &service.logging) else {
            return;
        };
        if config.sample_rate < 1.0 && rand::random::<f64>() >= config.sample_rate {
            return;
        }
        // Schemas are built at start-up: a service an apply changed in shape logs again after
        // the next start, rather than into columns that no longer fit.
        let Some(schema) = shared.schemas.get(&service.id).filter(|s| s.fits(service)) else {
            return;
        };
        let generated;
        let request_id = match request_id() {
            Some(id) => id,
            None => {
                generated = format!("{:032x}", rand::random::<u128>());
                &generated
            }
        };
        let stamp = Stamp {
            timestamp: now_micros(),
            request_id,
            principal: &principal.name,
        };
        let request = LoggedRequest::capture(schema, service, requests, answer, &stamp);
        let n_rows = request.n_rows() as u64;
        let bytes = request.held_bytes();
        let queued = &shared.counts.queued_bytes;
        // Claimed before the send, given back by the writer once written (or here, unsent).
        let room = queued.fetch_add(bytes, Ordering::Relaxed) + bytes <= shared.queue_bytes;
        let command = Command::Log {
            schema: schema.clone(),
            request,
        };
        let sent = room && shared.queue.try_send(command).is_ok();
        if !sent {
            queued.fetch_sub(bytes, Ordering::Relaxed);
            let dropped = shared.counts.dropped.fetch_add(n_rows, Ordering::Relaxed) + n_rows;
            if shared.drops.ready() {
                tracing::warn!(
                    dropped_total = dropped,
                    "feature log: the writer is behind; records dropped"
                );
            }
        }
    }

    /// Rows written, dropped and failed so far (zeros when nothing logs).
    pub fn counts(&self) -> LogCounts {
        let Some(shared) = self.shared.get() else {
            return LogCounts::default();
        };
        let counts = &shared.counts;
        LogCounts {
            logged: counts.logged.load(Ordering::Relaxed),
            dropped: counts.dropped.load(Ordering::Relaxed),
            failed: counts.failed.load(Ordering::Relaxed),
        }
    }
}

impl FeatureLogWriter {
    /// Writes what is queued, completes every open file (footer, fsync, rename) and stops the
    /// thread. Blocks: call it once the HTTP server has stopped.
    pub fn close(self) {
        // A blocking send: the actor is draining, so room comes.
        if self.queue.send(Command::Close).is_ok() && self.thread.join().is_err() {
            tracing::error!("the feature-log writer panicked; open files stay `.part`");
        }
    }
}

#[cfg(test)]
mod tests;

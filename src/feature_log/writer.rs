//! The feature-log actor: one thread that owns every open log file. It takes batches from a
//! bounded queue (the request path only ever `try_send`s), writes them, rolls a file once it is
//! `roll_size_bytes` big or `roll_interval` old, flushes JSON lines every second, and on `Close`
//! completes every open file (Parquet footer, fsync, rename from `.part`). A thread rather than an
//! actix actor: all its work is blocking file I/O, and a `sync_channel` gives exactly the bounded,
//! never-waiting send the read path needs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::files::{new_file_name, service_dir};
use super::record::{LogSchema, LoggedRequest};
use super::sink::Sink;
use super::{Counts, Throttle};
use crate::persist::files::{create_private_dir, yield_to_reads};
use crate::time::now_micros;

/// How often buffered JSON lines reach the OS: what a crash can lose of an open file.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How long the busy writer sleeps between drains: the queue must hold a tick of requests
/// (4096 requests in 10 ms is 400,000 a second).
const POLL_TICK: Duration = Duration::from_millis(10);

/// What the request path and the owner send the actor.
pub enum Command {
    /// One answered request (a row per request row of a batch).
    Log {
        schema: Arc<LogSchema>,
        request: LoggedRequest,
    },
    /// Complete every open file and stop.
    Close,
    /// Says it has stalled, then blocks until released: a stalled disk, for tests.
    #[cfg(test)]
    Stall {
        stalled: std::sync::mpsc::Sender<()>,
        release: std::sync::mpsc::Receiver<()>,
    },
}

struct OpenFile {
    sink: Sink,
    opened: Instant,
    roll_size_bytes: u64,
    roll_interval: Duration,
}

pub struct LogWriter {
    root: PathBuf,
    counts: Arc<Counts>,
    /// By (workspace, service).
    open: HashMap<(String, String), OpenFile>,
    failures: Throttle,
    last_flush: Instant,
}

impl LogWriter {
    pub fn new(root: PathBuf, counts: Arc<Counts>) -> LogWriter {
        LogWriter {
            root,
            counts,
            open: HashMap::new(),
            failures: Throttle::default(),
            last_flush: Instant::now(),
        }
    }

    /// The actor's loop: until `Close` (or every sender is gone). Under load it drains the
    /// queue, sleeps a tick and drains again without ever parking on the channel, so a sender's
    /// `try_send` finds no one to wake (no futex call, no context switch per request); only
    /// after a tick with nothing to do does it park until the next message or deadline.
    pub fn run(mut self, queue: Receiver<Command>) {
        yield_to_reads();
        let mut busy = false;
        loop {
            let command = match queue.try_recv() {
                Ok(command) => command,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    self.roll_expired();
                    self.flush_if_due();
                    if std::mem::take(&mut busy) {
                        std::thread::sleep(POLL_TICK);
                        continue;
                    }
                    let wait = self
                        .next_deadline()
                        .saturating_duration_since(Instant::now());
                    match queue.recv_timeout(wait) {
                        Ok(command) => command,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            busy = true;
            match command {
                Command::Log { schema, request } => {
                    let bytes = request.held_bytes();
                    self.write(&schema, request);
                    self.counts.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                }
                Command::Close => break,
                #[cfg(test)]
                Command::Stall { stalled, release } => {
                    let _ = stalled.send(());
                    let _ = release.recv();
                }
            }
            // Also between messages: a writer that never finds the queue empty still rolls.
            self.roll_expired();
            self.flush_if_due();
        }
        for (_, file) in std::mem::take(&mut self.open) {
            self.complete(file);
        }
        let counts = &self.counts;
        tracing::info!(
            logged = counts.logged.load(Ordering::Relaxed),
            dropped = counts.dropped.load(Ordering::Relaxed),
            failed = counts.failed.load(Ordering::Relaxed),
            "feature log closed"
        );
    }

    fn next_deadline(&self) -> Instant {
        let roll = self
            .open
            .values()
            .map(|file| file.opened + file.roll_interval)
            .min();
        let flush = self.last_flush + FLUSH_EVERY;
        roll.map_or(flush, |roll| roll.min(flush))
    }

    fn write(&mut self, schema: &LogSchema, request: LoggedRequest) {
        let key = (schema.workspace.clone(), schema.service.clone());
        let n_rows = request.n_rows() as u64;
        let mut written = 0;
        let outcome = self.write_rows(&key, schema, request, &mut written);
        self.counts.logged.fetch_add(written, Ordering::Relaxed);
        if let Err(error) = outcome {
            self.counts
                .failed
                .fetch_add(n_rows - written, Ordering::Relaxed);
            if self.failures.ready() {
                tracing::warn!(
                    workspace = %schema.workspace,
                    service = %schema.service,
                    %error,
                    failed_total = self.counts.failed.load(Ordering::Relaxed),
                    "feature log: could not write records"
                );
            }
        }
    }

    /// Appends a request's rows to the service's open file (opening one first if needed),
    /// rolling it as soon as it reaches its size; counts each row written in `written`. A file
    /// that fails is dropped as it is (it may be torn: it stays `.part`), and the next rows
    /// start a new one.
    fn write_rows(
        &mut self,
        key: &(String, String),
        schema: &LogSchema,
        request: LoggedRequest,
        written: &mut u64,
    ) -> std::io::Result<()> {
        let mut current = self.open.remove(key);
        for row in request.into_rows(schema) {
            let mut file = match current.take() {
                Some(file) => file,
                None => self.open_file(schema)?,
            };
            file.sink.append(row)?;
            *written += 1;
            if file.sink.bytes() >= file.roll_size_bytes {
                self.complete(file);
            } else {
                current = Some(file);
            }
        }
        if let Some(file) = current {
            self.open.insert(key.clone(), file);
        }
        Ok(())
    }

    fn open_file(&self, schema: &LogSchema) -> std::io::Result<OpenFile> {
        let dir = service_dir(&self.root, &schema.workspace, &schema.service);
        create_private_dir(&dir)?;
        let config = &schema.config;
        let path = dir.join(new_file_name(&dir, now_micros(), config.format));
        Ok(OpenFile {
            sink: Sink::create(path, &schema.columns, config.format, config.roll_size_bytes)?,
            opened: Instant::now(),
            roll_size_bytes: config.roll_size_bytes,
            roll_interval: Duration::from_micros(config.roll_interval.unsigned_abs()),
        })
    }

    fn roll_expired(&mut self) {
        let now = Instant::now();
        let expired: Vec<_> = self
            .open
            .iter()
            .filter(|(_, file)| now >= file.opened + file.roll_interval)
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            let file = self.open.remove(&key).expect("listed above");
            self.complete(file);
        }
    }

    fn flush_if_due(&mut self) {
        if self.last_flush.elapsed() < FLUSH_EVERY {
            return;
        }
        self.last_flush = Instant::now();
        for file in self.open.values_mut() {
            if let Err(error) = file.sink.flush() {
                tracing::warn!(%error, "feature log: could not flush");
            }
        }
    }

    fn complete(&self, file: OpenFile) {
        if let Err(error) = file.sink.complete() {
            tracing::warn!(%error, "feature log: could not complete a file; it stays `.part`");
        }
    }
}

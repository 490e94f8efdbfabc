//! The load generator: keeps a fixed number of connections busy on a few tokio threads, either
//! closed-loop (each connection sends its next request when the previous answer arrives: the
//! maximum throughput) or open-loop at a fixed rate (each connection has its own schedule, and a
//! request's latency is measured from the time it was *meant* to be sent, so a stalled server
//! is charged for the requests it delayed: no coordinated omission; but not for the load
//! generator's own lateness, see [`PunctualClock`]). Latencies of successful
//! calls go to an HDR histogram; failures are counted by kind (HTTP status, connect, I/O).
//! What a call is (HTTP, RESP) is the `Client`'s business.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::time::Instant;

use super::BenchError;

/// Latencies are recorded in nanoseconds, up to a minute, with three significant digits.
const HISTOGRAM_MAX_NANOS: u64 = 60_000_000_000;
/// A call that takes longer than this is counted as a `timeout` error.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed connect, wait this long before trying again (a refusing server is not spun on).
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

/// The error kind of open-loop requests still unsent when the run ends.
pub const BACKLOG: &str = "backlog";

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Each connection sends as soon as its previous answer arrived.
    Closed,
    /// `rate` requests per second in all, spread evenly over the connections.
    Open { rate: f64 },
}

/// One measurement: how many connections, how paced, for how long.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub connections: usize,
    pub pacing: Pacing,
    /// Sent but not recorded, so connections and caches are warm when measuring starts.
    pub warmup: Duration,
    pub duration: Duration,
    pub client_threads: usize,
    /// Run the load generator's threads under `SCHED_BATCH` (see `schedule_as_batch`).
    pub batch_scheduling: bool,
    pub seed: u64,
}

/// What one call came to.
#[derive(Debug)]
pub enum CallOutcome {
    Succeeded,
    /// The server answered with an error status (HTTP) or an error reply (RESP).
    Refused(String),
    /// The connection broke; it is dropped and a new one made.
    Broken(String),
}

/// A protocol the load generator can speak: how to open a connection and make one call on it,
/// choosing the call's keys with `rng`.
pub trait Client: Send + Sync + 'static {
    type Connection: Send + 'static;
    fn connect(&self) -> impl Future<Output = Result<Self::Connection, String>> + Send;
    fn call(
        &self,
        connection: &mut Self::Connection,
        rng: &mut SmallRng,
    ) -> impl Future<Output = CallOutcome> + Send;
}

/// The measured window's figures.
#[derive(Debug)]
pub struct LoadResult {
    /// Latencies of successful calls sent in the measured window, in nanoseconds.
    pub latency_nanos: Histogram<u64>,
    pub succeeded: u64,
    /// Failed calls by kind: an HTTP status, `connect`, `io`, `timeout`, `backlog`.
    pub errors: BTreeMap<String, u64>,
    /// Calls completed over the whole run, warm-up included (for CPU time per call).
    pub completed_with_warmup: u64,
    pub measured: Duration,
}

impl LoadResult {
    pub fn throughput(&self) -> f64 {
        self.succeeded as f64 / self.measured.as_secs_f64()
    }

    fn merge(&mut self, other: LoadResult) {
        self.latency_nanos
            .add(&other.latency_nanos)
            .expect("histograms with the same bounds merge");
        self.succeeded += other.succeeded;
        self.completed_with_warmup += other.completed_with_warmup;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
    }
}

/// Runs `plan` against `client` on a runtime of its own and returns the merged figures.
pub fn run_load<C: Client>(client: Arc<C>, plan: &LoadPlan) -> Result<LoadResult, BenchError> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(plan.client_threads.max(1))
        .enable_all();
    if plan.batch_scheduling {
        builder.on_thread_start(schedule_as_batch);
    }
    let runtime = builder.build().map_err(BenchError::Runtime)?;
    runtime.block_on(async {
        let start = Instant::now() + Duration::from_millis(10);
        let connections = plan.connections.max(1);
        let tasks: Vec<_> = (0..connections)
            .map(|index| {
                let schedule = Schedule::new(plan, start, index, connections);
                let client = client.clone();
                let seed = plan.seed.wrapping_add(index as u64);
                tokio::spawn(drive_connection(client, schedule, seed))
            })
            .collect();
        let mut total = LoadResult {
            latency_nanos: new_histogram(),
            succeeded: 0,
            errors: BTreeMap::new(),
            completed_with_warmup: 0,
            measured: plan.duration,
        };
        for task in tasks {
            total.merge(task.await.map_err(|e| BenchError::Task(e.to_string()))?);
        }
        Ok(total)
    })
}

/// Puts the calling thread under `SCHED_BATCH`. On cores it shares with the server, a load
/// generator whose every wake-up (an answer arrived) preempts a server worker in the middle of
/// its requests measures the scheduler more than the server: the worker's other requests wait
/// out a time slice while, cache-hot, it is not moved to a core gone idle. A batch thread never
/// preempts on waking, and still gets its fair share of the CPU. Best effort: a system that
/// refuses leaves the thread as it was.
fn schedule_as_batch() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` outlives the call, which only reads it; pid 0 is the calling thread.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NANOS, 3).expect("valid histogram bounds")
}

/// When one connection sends: its send times (open loop) and the measured window.
struct Schedule {
    /// Between two sends of this connection in open loop; `None` in closed loop.
    interval: Option<Duration>,
    first_send: Instant,
    measure_from: Instant,
    end: Instant,
}

impl Schedule {
    fn new(plan: &LoadPlan, start: Instant, index: usize, connections: usize) -> Schedule {
        let measure_from = start + plan.warmup;
        let end = measure_from + plan.duration;
        match plan.pacing {
            Pacing::Closed => Schedule {
                interval: None,
                first_send: start,
                measure_from,
                end,
            },
            Pacing::Open { rate } => {
                let interval = Duration::from_secs_f64(connections as f64 / rate.max(0.001));
                // Stagger the connections so that the sends are evenly spread in time.
                let offset = interval.mul_f64(index as f64 / connections as f64);
                Schedule {
                    interval: Some(interval),
                    first_send: start + offset,
                    measure_from,
                    end,
                }
            }
        }
    }
}

/// An open-loop connection's clock, as a client that sends exactly on time would keep it.
///
/// tokio's timer wakes a task on the first millisecond tick at or after its deadline, and a
/// busy runtime later still, so requests leave up to a millisecond or more after their intended
/// times. Measured from the intended time, that lateness was counted as the server's: an
/// open loop's p50 was ~1.3 ms against a server that answers in ~50 µs. The server is charged
/// instead for what it did: each request's time with it (sent to answered), and the wait it
/// caused when it still held the connection at a request's intended time (coordinated
/// omission). A punctual client sends at the intended time or when the connection comes free,
/// whichever is later, and the connection comes free a service time after that.
#[derive(Debug, Clone, Copy)]
struct PunctualClock {
    /// When the punctual client's connection comes free of its last request.
    free_at: Instant,
}

impl PunctualClock {
    fn new(first_send: Instant) -> PunctualClock {
        PunctualClock {
            free_at: first_send,
        }
    }

    /// When the punctual client would send the request meant for `intended`.
    fn send_time(&self, intended: Instant) -> Instant {
        intended.max(self.free_at)
    }

    /// The latency of the request meant for `intended`, actually sent at `sent` and answered
    /// at `done`: from `intended` to when a punctual client would have had its answer.
    fn answered(&mut self, intended: Instant, sent: Instant, done: Instant) -> Duration {
        self.free_at = self.send_time(intended) + (done - sent);
        self.free_at - intended
    }
}

async fn drive_connection<C: Client>(client: Arc<C>, schedule: Schedule, seed: u64) -> LoadResult {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut result = LoadResult {
        latency_nanos: new_histogram(),
        succeeded: 0,
        errors: BTreeMap::new(),
        completed_with_warmup: 0,
        measured: schedule.end - schedule.measure_from,
    };
    let mut connection = None;
    let mut intended = schedule.first_send;
    let mut clock = PunctualClock::new(schedule.first_send);
    loop {
        // Open loop: `meant_at` is the request's intended time; closed loop: now.
        let meant_at = match schedule.interval {
            Some(_) => {
                tokio::time::sleep_until(intended).await;
                intended
            }
            None => Instant::now().max(schedule.first_send),
        };
        if meant_at >= schedule.end {
            break;
        }
        if let Some(interval) = schedule.interval {
            // A server slower than the rate leaves a backlog; the run ends on time anyway, and
            // the requests a punctual client could not have sent before the end, the server
            // holding the connection, count as `backlog` errors.
            if clock.send_time(intended) >= schedule.end {
                let unsent = (schedule.end - intended).as_secs_f64() / interval.as_secs_f64();
                let unsent = unsent.ceil() as u64;
                *result.errors.entry(BACKLOG.to_string()).or_default() += unsent;
                break;
            }
            intended += interval;
        }
        let sent_in_window = meant_at >= schedule.measure_from;
        // Before a (re)connect: the server's accepting is part of its time.
        let sent_at = Instant::now();
        let open = match connection.as_mut() {
            Some(open) => open,
            None => match client.connect().await {
                Ok(open) => connection.insert(open),
                Err(_) => {
                    if sent_in_window {
                        count_error(&mut result.errors, "connect");
                    }
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            },
        };
        let outcome = tokio::time::timeout(CALL_TIMEOUT, client.call(open, &mut rng))
            .await
            .unwrap_or_else(|_| CallOutcome::Broken("timeout".into()));
        let done_at = Instant::now();
        let latency = match schedule.interval {
            Some(_) => clock.answered(meant_at, sent_at, done_at),
            None => done_at - meant_at,
        };
        // Open loop: the calls meant to be sent in the window. Closed loop: the calls that
        // ended in it (as wrk counts), so a call longer than the warm-up still counts.
        let measured = match schedule.interval {
            Some(_) => sent_in_window,
            None => done_at >= schedule.measure_from,
        };
        result.completed_with_warmup += 1;
        let error = match outcome {
            CallOutcome::Succeeded => None,
            CallOutcome::Refused(kind) => Some(kind),
            CallOutcome::Broken(kind) => {
                connection = None;
                Some(kind)
            }
        };
        if !measured {
            continue;
        }
        match error {
            None => {
                result.succeeded += 1;
                result
                    .latency_nanos
                    .saturating_record(latency.as_nanos().min(u64::MAX as u128) as u64);
            }
            Some(kind) => count_error(&mut result.errors, &kind),
        }
    }
    result
}

fn count_error(errors: &mut BTreeMap<String, u64>, kind: &str) {
    *errors.entry(kind.to_string()).or_default() += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A client whose every call takes `delay`, failing every `fail_every`-th call.
    struct SleepyClient {
        delay: Duration,
        fail_every: u64,
        calls: AtomicU64,
    }

    impl Client for SleepyClient {
        type Connection = ();
        async fn connect(&self) -> Result<(), String> {
            Ok(())
        }
        async fn call(&self, _: &mut (), _: &mut SmallRng) -> CallOutcome {
            tokio::time::sleep(self.delay).await;
            let call = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
            if call.is_multiple_of(self.fail_every) {
                CallOutcome::Refused("503".into())
            } else {
                CallOutcome::Succeeded
            }
        }
    }

    fn plan(pacing: Pacing) -> LoadPlan {
        LoadPlan {
            connections: 2,
            pacing,
            warmup: Duration::from_millis(20),
            duration: Duration::from_millis(300),
            client_threads: 1,
            batch_scheduling: false,
            seed: 7,
        }
    }

    #[test]
    fn open_loop_charges_a_slow_server_for_the_requests_it_delayed() {
        // 2 connections at 100/s: each should send every 20 ms, but every call takes 50 ms,
        // so sends fall further and further behind their intended times.
        let client = Arc::new(SleepyClient {
            delay: Duration::from_millis(50),
            fail_every: u64::MAX,
            calls: AtomicU64::new(0),
        });
        let result = run_load(client, &plan(Pacing::Open { rate: 100.0 })).unwrap();
        assert!(result.succeeded > 0);
        // The run ends on time: what the slow server never got is counted, not sent late.
        assert!(result.errors[BACKLOG] > 0, "{:?}", result.errors);
        // Measured from the actual send, every latency would be about 50 ms; from the
        // intended send time the backlog shows in the tail.
        let max_millis = result.latency_nanos.max() / 1_000_000;
        assert!(
            max_millis >= 100,
            "the backlog should show: max {max_millis} ms"
        );
    }

    #[test]
    fn the_punctual_clock_charges_the_server_for_its_time_and_its_backlog_not_for_late_sends() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut clock = PunctualClock::new(t0);
        // Meant for t0, sent 1.5 ms late (the timer), answered 0.2 ms later: 0.2 ms.
        let sent = t0 + Duration::from_micros(1500);
        let latency = clock.answered(t0, sent, sent + Duration::from_micros(200));
        assert_eq!(latency, Duration::from_micros(200));
        // The server then holds the next request 30 ms, past the two after it (10 ms apart).
        assert_eq!(clock.send_time(t0 + ms(10)), t0 + ms(10));
        let latency = clock.answered(t0 + ms(10), t0 + ms(11), t0 + ms(41));
        assert_eq!(latency, ms(30));
        // Meant for 20 ms, a punctual client could send it only at 40 ms: the 20 ms it
        // waited are the server's, the ~1 ms the real client was late sending it is not.
        assert_eq!(clock.send_time(t0 + ms(20)), t0 + ms(40));
        let latency = clock.answered(t0 + ms(20), t0 + ms(41), t0 + ms(42));
        assert_eq!(latency, ms(21));
        // And the next one, meant for 30 ms, waits for 41 ms.
        assert_eq!(clock.send_time(t0 + ms(30)), t0 + ms(41));
    }

    #[test]
    fn closed_loop_counts_errors_by_kind_and_keeps_them_out_of_the_latencies() {
        let client = Arc::new(SleepyClient {
            delay: Duration::from_millis(1),
            fail_every: 3,
            calls: AtomicU64::new(0),
        });
        let result = run_load(client, &plan(Pacing::Closed)).unwrap();
        let failed = result.errors["503"];
        assert!(failed > 0 && result.succeeded > failed);
        assert_eq!(result.latency_nanos.len(), result.succeeded);
        assert!(result.completed_with_warmup > result.succeeded + failed);
    }

    #[test]
    fn a_closed_loop_call_longer_than_the_warm_up_is_measured() {
        let client = Arc::new(SleepyClient {
            delay: Duration::from_millis(100),
            fail_every: u64::MAX,
            calls: AtomicU64::new(0),
        });
        let plan = LoadPlan {
            connections: 1,
            duration: Duration::from_millis(50),
            ..plan(Pacing::Closed)
        };
        // The only call starts in the warm-up and ends after the window: it still counts.
        let result = run_load(client, &plan).unwrap();
        assert_eq!(result.succeeded, 1);
    }

    /// A client that records the scheduling policy of the thread each call runs on.
    struct PolicyClient {
        policies: std::sync::Mutex<Vec<i32>>,
    }

    impl Client for PolicyClient {
        type Connection = ();
        async fn connect(&self) -> Result<(), String> {
            Ok(())
        }
        async fn call(&self, _: &mut (), _: &mut SmallRng) -> CallOutcome {
            // SAFETY: reads the calling thread's policy; no memory is passed.
            let policy = unsafe { libc::sched_getscheduler(0) };
            self.policies.lock().unwrap().push(policy);
            tokio::time::sleep(Duration::from_millis(5)).await;
            CallOutcome::Succeeded
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn batch_scheduling_puts_every_call_on_a_batch_thread_and_only_when_asked() {
        for (batch_scheduling, expected) in [(true, libc::SCHED_BATCH), (false, libc::SCHED_OTHER)]
        {
            let client = Arc::new(PolicyClient {
                policies: Default::default(),
            });
            let plan = LoadPlan {
                batch_scheduling,
                duration: Duration::from_millis(50),
                ..plan(Pacing::Closed)
            };
            run_load(client.clone(), &plan).unwrap();
            let policies = client.policies.lock().unwrap();
            assert!(!policies.is_empty());
            assert!(policies.iter().all(|&p| p == expected), "{policies:?}");
        }
    }
}

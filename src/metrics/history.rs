//! The last hour of traffic, for the console's charts: request rate and p50/p99 latency, and
//! each view's rows written, sampled every [`SAMPLE_EVERY`] into a ring of [`KEPT_SAMPLES`].
//!
//! Recording stays as cheap as the other metrics: every answered request adds one to a bucket of
//! a process-wide, fine-grained latency histogram (atomics, like `METRICS`), and the store adds
//! each view's written rows to a [`ViewWrites`] counter array. The ring itself has one owner,
//! the `HistoryActor`: on its timer it reads the counters, keeps the differences since its last
//! turn as one [`Sample`], and answers [`RequestHistory::samples`] with a copy.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, MessageResult};

use crate::time::{now_micros, Micros};

/// How often the sampler takes a sample.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// One hour of samples.
pub const KEPT_SAMPLES: usize = 360;

/// Buckets per doubling of the duration: each bucket is 19% wide, so a percentile read from
/// its bucket's middle is within 10%.
const BUCKETS_PER_OCTAVE: f64 = 4.0;

/// From 1 µs to 2^28 µs (about 4.5 minutes); longer requests share the last bucket.
const N_BUCKETS: usize = 28 * BUCKETS_PER_OCTAVE as usize;

/// Every answered request's duration since start, by bucket.
static LATENCIES: [AtomicU64; N_BUCKETS] = [const { AtomicU64::new(0) }; N_BUCKETS];

/// The bucket of `duration`: `floor(4 log2 µs)`, read from the float's bits rather than with
/// `log2` (a libm call, ~50 instructions a request): the octave is its exponent, the quarter
/// where its mantissa falls among 2^(1/4), 2^(1/2) and 2^(3/4). A test holds it to `log2`.
fn bucket_of(duration: Duration) -> usize {
    const QUARTERS: [f64; 3] = [
        1.189_207_115_002_721,
        std::f64::consts::SQRT_2,
        1.681_792_830_507_429,
    ];
    let micros = (duration.as_secs_f64() * 1e6).max(1.0);
    let bits = micros.to_bits();
    let octave = ((bits >> 52) - 1023) as usize;
    let mantissa = f64::from_bits(bits & ((1 << 52) - 1) | 1023 << 52);
    let quarter = QUARTERS.iter().filter(|&&bound| mantissa >= bound).count();
    (octave * BUCKETS_PER_OCTAVE as usize + quarter).min(N_BUCKETS - 1)
}

/// The middle (geometric) of a bucket's range.
fn bucket_middle(bucket: usize) -> Duration {
    Duration::from_secs_f64(2f64.powf((bucket as f64 + 0.5) / BUCKETS_PER_OCTAVE) / 1e6)
}

/// Counts one answered request's duration.
pub(super) fn record_latency(duration: Duration) {
    LATENCIES[bucket_of(duration)].fetch_add(1, Ordering::Relaxed);
}

fn read_counters(counters: &[AtomicU64]) -> Vec<u64> {
    counters.iter().map(|c| c.load(Ordering::Relaxed)).collect()
}

/// The `q` quantile of the durations counted in `buckets`, if there are any.
fn quantile(buckets: &[u64], q: f64) -> Option<Duration> {
    let total: u64 = buckets.iter().sum();
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    buckets
        .iter()
        .position(|&count| {
            seen += count;
            seen >= rank
        })
        .map(bucket_middle)
}

/// Rows written per view id since start: the store adds, the sampler reads. An apply's views
/// table takes [`ViewWrites::grown`], which shares these counters, so counts survive applies.
#[derive(Debug, Clone)]
pub struct ViewWrites(Vec<Arc<AtomicU64>>);

impl ViewWrites {
    pub fn new(n_views: usize) -> ViewWrites {
        ViewWrites((0..n_views).map(|_| Arc::default()).collect())
    }

    /// Counters for `n_views` ids: this set's, then new ones at zero.
    pub fn grown(&self, n_views: usize) -> ViewWrites {
        let mut counters = self.0.clone();
        counters.resize_with(n_views.max(counters.len()), Default::default);
        ViewWrites(counters)
    }

    pub fn add(&self, view: usize, rows: u64) {
        if let Some(counter) = self.0.get(view) {
            counter.fetch_add(rows, Ordering::Relaxed);
        }
    }

    /// Index = view id: the counts now.
    pub fn read(&self) -> Vec<u64> {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

/// What happened during one sampling period, ending at `at`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Micros,
    pub period: Duration,
    pub requests: u64,
    /// `None` when no request was answered.
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    /// Index = view id: rows written.
    pub view_rows: Vec<u64>,
}

/// The samples of the last hour, oldest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub samples: Vec<Sample>,
}

impl History {
    /// Index = view id: rows written per second over the last `period` (or what the history
    /// covers of it).
    pub fn rows_per_second(&self, n_views: usize, period: Duration) -> Vec<f64> {
        let mut rows = vec![0u64; n_views];
        let mut covered = Duration::ZERO;
        for sample in self.samples.iter().rev() {
            if covered >= period {
                break;
            }
            covered += sample.period;
            for (total, written) in rows.iter_mut().zip(&sample.view_rows) {
                *total += written;
            }
        }
        let seconds = covered.as_secs_f64();
        rows.into_iter()
            .map(|r| {
                if seconds > 0.0 {
                    r as f64 / seconds
                } else {
                    0.0
                }
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request history sampler is not running")]
pub struct HistoryGone;

/// The handle on the sampler.
#[derive(Clone)]
pub struct RequestHistory(Addr<HistoryActor>);

impl RequestHistory {
    /// Starts the sampler on the current actix system; `view_rows` reads the store's rows
    /// written per view id (`Router::rows_written`).
    pub fn start(view_rows: impl Fn() -> Vec<u64> + 'static) -> RequestHistory {
        let actor = HistoryActor {
            last_latencies: read_counters(&LATENCIES),
            last_view_rows: view_rows(),
            last_at: now_micros(),
            view_rows: Box::new(view_rows),
            ring: VecDeque::with_capacity(KEPT_SAMPLES),
        };
        RequestHistory(actor.start())
    }

    pub async fn samples(&self) -> Result<History, HistoryGone> {
        self.0.send(Samples).await.map_err(|_| HistoryGone)
    }
}

struct HistoryActor {
    view_rows: Box<dyn Fn() -> Vec<u64>>,
    last_latencies: Vec<u64>,
    last_view_rows: Vec<u64>,
    last_at: Micros,
    ring: VecDeque<Sample>,
}

/// `now - then`, element-wise (counters only grow).
fn since(now: &[u64], then: &[u64]) -> Vec<u64> {
    now.iter().zip(then).map(|(n, t)| n - t).collect()
}

impl HistoryActor {
    fn sample(&mut self) {
        let latencies = read_counters(&LATENCIES);
        let view_rows = (self.view_rows)();
        let at = now_micros();
        let answered = since(&latencies, &self.last_latencies);
        if self.ring.len() == KEPT_SAMPLES {
            self.ring.pop_front();
        }
        self.ring.push_back(Sample {
            at,
            period: Duration::from_micros((at - self.last_at).max(0) as u64),
            requests: answered.iter().sum(),
            p50: quantile(&answered, 0.50),
            p99: quantile(&answered, 0.99),
            view_rows: since(&view_rows, &self.last_view_rows),
        });
        self.last_latencies = latencies;
        self.last_view_rows = view_rows;
        self.last_at = at;
    }
}

impl Actor for HistoryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SAMPLE_EVERY, |history, _| history.sample());
    }
}

struct Samples;

impl Message for Samples {
    type Result = History;
}

impl Handler<Samples> for HistoryActor {
    type Result = MessageResult<Samples>;

    fn handle(&mut self, _: Samples, _: &mut Self::Context) -> Self::Result {
        MessageResult(History {
            samples: self.ring.iter().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_floor_of_four_log2_micros() {
        let by_log2 = |duration: Duration| {
            let micros = duration.as_secs_f64() * 1e6;
            ((micros.max(1.0).log2() * BUCKETS_PER_OCTAVE) as usize).min(N_BUCKETS - 1)
        };
        let mut nanos = 1u64;
        while nanos < 1 << 50 {
            for step in [0, 1, nanos / 7, nanos / 3, nanos / 2] {
                let duration = Duration::from_nanos(nanos + step);
                assert_eq!(bucket_of(duration), by_log2(duration), "{duration:?}");
            }
            nanos = nanos * 9 / 8 + 1;
        }
        for _ in 0..100_000 {
            let duration = Duration::from_nanos(rand::random::<u64>() >> rand::random_range(0..64));
            assert_eq!(bucket_of(duration), by_log2(duration), "{duration:?}");
        }
    }

    #[test]
    fn percentiles_come_from_the_right_bucket() {
        let mut buckets = vec![0u64; N_BUCKETS];
        for _ in 0..98 {
            buckets[bucket_of(Duration::from_micros(300))] += 1;
        }
        buckets[bucket_of(Duration::from_millis(20))] += 2;
        let p50 = quantile(&buckets, 0.5).unwrap();
        let p99 = quantile(&buckets, 0.99).unwrap();
        assert!((270..=330).contains(&p50.as_micros()), "{p50:?}");
        assert!((18_000..=22_000).contains(&p99.as_micros()), "{p99:?}");
        assert_eq!(quantile(&vec![0; N_BUCKETS], 0.5), None);
    }

    #[test]
    fn rates_cover_the_last_period() {
        let sample = |rows| Sample {
            at: 0,
            period: Duration::from_secs(10),
            requests: 0,
            p50: None,
            p99: None,
            view_rows: vec![rows, 0],
        };
        let history = History {
            samples: vec![sample(1000), sample(50), sample(70)],
        };
        let rates = history.rows_per_second(2, Duration::from_secs(20));
        assert_eq!(rates, vec![6.0, 0.0]);
    }

    #[test]
    fn huge_and_tiny_durations_have_a_bucket() {
        assert_eq!(bucket_of(Duration::ZERO), 0);
        assert_eq!(bucket_of(Duration::from_secs(100_000)), N_BUCKETS - 1);
    }
}

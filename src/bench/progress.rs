//! Progress of the harness's long steps (loading millions of rows, many measurements): a bar on
//! a terminal; otherwise (a log file, CI) a line at every tenth, so a long run is never silent.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// Counts items done out of a known total.
pub struct Progress {
    what: String,
    total: u64,
    done: AtomicU64,
    /// Tenths of the total already reported as lines (when not on a terminal).
    tenths_reported: AtomicU64,
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    pub fn new(what: &str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let style = ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)",
            )
            .expect("valid template");
            ProgressBar::new(total)
                .with_style(style)
                .with_message(what.to_string())
        });
        Progress {
            what: what.to_string(),
            total,
            done: AtomicU64::new(0),
            tenths_reported: AtomicU64::new(0),
            bar,
            started: Instant::now(),
        }
    }

    pub fn advance(&self, items: u64) {
        let done = self.done.fetch_add(items, Ordering::Relaxed) + items;
        match &self.bar {
            Some(bar) => bar.inc(items),
            None => {
                let tenths = done * 10 / self.total.max(1);
                if self.tenths_reported.fetch_max(tenths, Ordering::Relaxed) < tenths {
                    let seconds = self.started.elapsed().as_secs_f64();
                    let rate = done as f64 / seconds.max(1e-9);
                    let left = self.total.saturating_sub(done) as f64 / rate.max(1e-9);
                    eprintln!(
                        "{}: {done}/{} ({rate:.0}/s, {left:.0} s left)",
                        self.what, self.total
                    );
                }
            }
        }
    }

    /// Clears the bar and prints how long the whole took; returns its seconds.
    pub fn finish(&self) -> f64 {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let seconds = self.started.elapsed().as_secs_f64();
        eprintln!(
            "{}: {} in {seconds:.1} s ({:.0}/s)",
            self.what,
            self.total,
            self.total as f64 / seconds.max(1e-9)
        );
        seconds
    }
}

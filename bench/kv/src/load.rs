//! What the guest's load and the direct one share: [`CONCURRENCY`] workers, a measured
//! window after a warm-up, and what each worker counts.
//!
//! A call counts when it completes inside the window; the rate is that count over the
//! window's length. A worker that sees anything wrong fails the whole measurement: a
//! fast wrong answer must not count as a fast answer.

use anyhow::Result;
use std::future::Future;
use std::time::{Duration, Instant};

/// Workers in flight: the c=16, for both sides.
pub const CONCURRENCY: usize = 16;
/// Not measured: connections opened, instances and caches warm.
pub const WARMUP: Duration = Duration::from_millis(500);

/// When to count and when to stop.
#[derive(Clone, Copy)]
pub struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn new(seconds: f64) -> Window {
        let start = Instant::now() + WARMUP;
        Window {
            start,
            end: start + Duration::from_secs_f64(seconds),
        }
    }

    /// Whether a worker should start another call.
    pub fn open(&self) -> bool {
        Instant::now() < self.end
    }
}

/// One worker's latencies of the calls that completed inside the window.
#[derive(Default)]
pub struct Tally {
    latencies_us: Vec<u32>,
}

impl Tally {
    /// Counts a call sent at `sent` that has just completed, if it completed in `window`.
    pub fn record(&mut self, window: &Window, sent: Instant) {
        let done = Instant::now();
        if done >= window.start && done < window.end {
            let micros = done.duration_since(sent).as_micros();
            self.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
        }
    }
}

/// What one measurement gave.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    /// Calls (invocations, or store calls) per second.
    pub per_s: f64,
    pub p50_us: u32,
}

/// Runs [`CONCURRENCY`] copies of `worker` for the warm-up and `seconds`; the first
/// error of any fails the measurement.
pub async fn measure<F, Fut>(seconds: f64, worker: F) -> Result<Rate>
where
    F: Fn(usize, Window) -> Fut,
    Fut: Future<Output = Result<Tally>> + Send + 'static,
{
    let window = Window::new(seconds);
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|id| tokio::spawn(worker(id, window)))
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??.latencies_us);
    }
    latencies.sort_unstable();
    Ok(Rate {
        per_s: latencies.len() as f64 / seconds,
        p50_us: percentile(&latencies, 50),
    })
}

/// Nearest-rank percentile of sorted samples (0 when there are none).
fn percentile(sorted: &[u32], p: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50), 50);
        assert_eq!(percentile(&[7], 50), 7);
        assert_eq!(percentile(&[], 50), 0);
    }
}

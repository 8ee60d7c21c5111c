//! The range-limited idle-time histogram behind the adaptive keep-alive policy: records a
//! function's idle times and turns them into prewarm and keep-alive [`Windows`].
//!
//! Updates are O(1); deciding the windows walks only the occupied span of the histogram
//! (from the lowest bin up to the head, from the highest occupied bin down to the tail), so
//! a busy function whose idle times sit in the first few bins pays a few steps per decision.

use std::time::Duration;

use crate::policy::{AdaptiveConfig, Windows};

/// Why a histogram did or did not decide the windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Fewer idle times recorded than [`AdaptiveConfig::min_samples`].
    TooFewSamples,
    /// More than [`AdaptiveConfig::max_oob_fraction`] of the idle times were longer than the
    /// range (the paper would forecast them with ARIMA).
    OutOfBounds,
    /// The bin counts' coefficient of variation is below [`AdaptiveConfig::cv_threshold`]:
    /// idle times are spread too evenly to predict.
    Flat,
    /// The histogram decides.
    Representative,
}

/// Idle times of one function: one count per `bin_width` bin up to `range`, and a count of
/// the longer (out-of-bounds) ones.
///
/// Counts accumulate for the pool's lifetime and are never aged (our choice: a new version
/// or a server restart starts an empty histogram, which falls back to the fixed window until
/// it has [`AdaptiveConfig::min_samples`] idle times). 240 one-minute bins take 1 KB.
#[derive(Clone, Debug)]
pub struct IdleHistogram {
    bin_width: Duration,
    bins: Vec<u32>,
    /// Idle times that fell in a bin.
    in_range: u64,
    /// Sum over bins of count², kept so the CV is O(1).
    sum_squares: u64,
    out_of_bounds: u64,
    /// Highest bin with a count: where the tail walk starts.
    highest: usize,
}

impl IdleHistogram {
    /// An empty histogram shaped by `config` (at least two bins, so the CV is defined).
    pub fn new(config: &AdaptiveConfig) -> IdleHistogram {
        let width = config.bin_width.max(Duration::from_nanos(1));
        let bins = (config.range.as_nanos() / width.as_nanos()).clamp(2, 1 << 20) as usize;
        IdleHistogram {
            bin_width: width,
            bins: vec![0; bins],
            in_range: 0,
            sum_squares: 0,
            out_of_bounds: 0,
            highest: 0,
        }
    }

    /// Records one idle time: the time from the end of an invocation to the next arrival
    /// while nothing ran.
    pub fn record(&mut self, idle: Duration) {
        let bin = idle.as_nanos() / self.bin_width.as_nanos();
        match usize::try_from(bin).ok().filter(|&bin| bin < self.bins.len()) {
            Some(bin) => {
                let count = &mut self.bins[bin];
                // (c+1)² − c² = 2c + 1
                self.sum_squares += 2 * u64::from(*count) + 1;
                *count = count.saturating_add(1);
                self.in_range += 1;
                self.highest = self.highest.max(bin);
            }
            None => self.out_of_bounds += 1,
        }
    }

    /// Idle times recorded, in range and out of bounds.
    pub fn samples(&self) -> u64 {
        self.in_range + self.out_of_bounds
    }

    /// Idle times longer than the range.
    pub fn out_of_bounds(&self) -> u64 {
        self.out_of_bounds
    }

    /// Coefficient of variation of the bin counts (sample standard deviation over the mean,
    /// across every bin, empty ones included); 0 when the histogram is empty.
    pub fn cv(&self) -> f64 {
        if self.in_range == 0 {
            return 0.0;
        }
        let n = self.bins.len() as f64;
        let mean = self.in_range as f64 / n;
        let variance = (self.sum_squares as f64 - n * mean * mean).max(0.0) / (n - 1.0);
        variance.sqrt() / mean
    }

    /// Whether the histogram is fit to decide, and if not, why.
    pub fn verdict(&self, config: &AdaptiveConfig) -> Verdict {
        let samples = self.samples();
        if samples < u64::from(config.min_samples).max(1) {
            Verdict::TooFewSamples
        } else if self.out_of_bounds as f64 > config.max_oob_fraction * samples as f64 {
            Verdict::OutOfBounds
        } else if self.cv() < config.cv_threshold {
            Verdict::Flat
        } else {
            Verdict::Representative
        }
    }

    /// The windows the histogram picks, or `None` when it is not [`Verdict::Representative`].
    ///
    /// The prewarm window is the lower edge of the head percentile's bin, less the margin;
    /// the pool then stays warm up to the upper edge of the tail percentile's bin, plus the
    /// margin (so `keep_alive = tail·(1+margin) − prewarm`). Percentiles are over the
    /// in-range idle times.
    pub fn windows(&self, config: &AdaptiveConfig) -> Option<Windows> {
        if self.verdict(config) != Verdict::Representative {
            return None;
        }
        let head = self.bin_edge(self.head_bin(config.head_percentile));
        let tail = self.bin_edge(self.tail_bin(config.tail_percentile) + 1);
        let margin = if config.margin.is_finite() {
            config.margin.max(0.0)
        } else {
            0.0
        };
        let prewarm = scale(head, 1.0 - margin);
        let covered = scale(tail, 1.0 + margin);
        Some(Windows {
            prewarm,
            keep_alive: covered.saturating_sub(prewarm),
            adaptive: true,
        })
    }

    /// The lower edge of `bin`.
    fn bin_edge(&self, bin: usize) -> Duration {
        u32::try_from(bin)
            .ok()
            .and_then(|bin| self.bin_width.checked_mul(bin))
            .unwrap_or(Duration::MAX)
    }

    /// The count at or below which `percentile` of the in-range idle times fall (at least 1).
    fn rank(&self, percentile: f64) -> u64 {
        let p = if percentile.is_nan() {
            0.0
        } else {
            percentile.clamp(0.0, 1.0)
        };
        ((p * self.in_range as f64).ceil() as u64).clamp(1, self.in_range.max(1))
    }

    /// The first bin at which the cumulative count reaches `percentile`, walking up.
    fn head_bin(&self, percentile: f64) -> usize {
        let rank = self.rank(percentile);
        let mut seen = 0;
        for (bin, &count) in self.bins.iter().enumerate() {
            seen += u64::from(count);
            if seen >= rank {
                return bin;
            }
        }
        self.highest
    }

    /// The same as [`IdleHistogram::head_bin`], walking down from the highest occupied bin:
    /// cheap for high percentiles.
    fn tail_bin(&self, percentile: f64) -> usize {
        let rank = self.rank(percentile);
        let mut bin = self.highest;
        let mut through = self.in_range; // cumulative count up to and including `bin`
        while bin > 0 && through - u64::from(self.bins[bin]) >= rank {
            through -= u64::from(self.bins[bin]);
            bin -= 1;
        }
        bin
    }
}

/// `duration × factor`, saturating instead of panicking (negative or NaN gives zero).
fn scale(duration: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(duration.as_secs_f64() * factor).unwrap_or(if factor > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(m: f64) -> Duration {
        Duration::from_secs_f64(m * 60.0)
    }

    fn approx(actual: Duration, expected_minutes: f64) {
        let diff = (actual.as_secs_f64() / 60.0 - expected_minutes).abs();
        assert!(diff < 1e-6, "{actual:?} is not {expected_minutes} min");
    }

    #[test]
    fn regular_thirty_minute_gaps_prewarm_at_27_and_cover_to_33() {
        let config = AdaptiveConfig::default();
        let mut histogram = IdleHistogram::new(&config);
        // Invocations start every 30 minutes and run one second: idle 29:59.
        for _ in 0..20 {
            histogram.record(minutes(30.0) - Duration::from_secs(1));
        }
        assert_eq!(histogram.verdict(&config), Verdict::Representative);
        let windows = histogram.windows(&config).unwrap();
        assert!(windows.adaptive);
        approx(windows.prewarm, 29.0 * 0.9); // bin [29, 30) rounded down, less 10%
        approx(windows.prewarm + windows.keep_alive, 30.0 * 1.1); // rounded up, plus 10%
    }

    #[test]
    fn head_and_tail_are_the_5th_and_99th_percentiles() {
        let config = AdaptiveConfig::default();
        let mut histogram = IdleHistogram::new(&config);
        // 200 idle times: 10 at 2 min (5%), 188 at 20 min, 2 at 50 min (1%).
        for (count, at) in [(10, 2.5), (188, 20.5), (2, 50.5)] {
            for _ in 0..count {
                histogram.record(minutes(at));
            }
        }
        assert_eq!(histogram.head_bin(0.05), 2);
        assert_eq!(histogram.head_bin(0.06), 20);
        assert_eq!(histogram.tail_bin(0.99), 20);
        assert_eq!(histogram.tail_bin(0.995), 50);
        let windows = histogram.windows(&config).unwrap();
        approx(windows.prewarm, 1.8);
        approx(windows.prewarm + windows.keep_alive, 21.0 * 1.1);
    }

    #[test]
    fn sub_minute_idle_times_give_no_prewarm_and_a_short_keep_alive() {
        let config = AdaptiveConfig::default();
        let mut histogram = IdleHistogram::new(&config);
        for _ in 0..50 {
            histogram.record(Duration::from_secs(5));
        }
        let windows = histogram.windows(&config).unwrap();
        assert_eq!(windows.prewarm, Duration::ZERO);
        approx(windows.keep_alive, 1.1);
    }

    #[test]
    fn too_few_samples_fall_back() {
        let config = AdaptiveConfig::default();
        let mut histogram = IdleHistogram::new(&config);
        for _ in 0..config.min_samples - 1 {
            histogram.record(minutes(30.0));
        }
        assert_eq!(histogram.verdict(&config), Verdict::TooFewSamples);
        assert_eq!(histogram.windows(&config), None);
        histogram.record(minutes(30.0));
        assert_eq!(histogram.verdict(&config), Verdict::Representative);
    }

    #[test]
    fn a_flat_histogram_falls_back() {
        let config = AdaptiveConfig::default();
        let mut histogram = IdleHistogram::new(&config);
        // One idle time in each of the 240 bins: every bin count equal, CV 0.
        for minute in 0..240 {
            histogram.record(minutes(minute as f64 + 0.5));
        }
        assert!(histogram.cv() < 1e-9);
        assert_eq!(histogram.verdict(&config), Verdict::Flat);
        assert_eq!(histogram.windows(&config), None);
    }

    #[test]
    fn cv_matches_the_definition() {
        let config = AdaptiveConfig::default();
        let mut histogram = IdleHistogram::new(&config);
        for (count, at) in [(3, 0.5), (1, 7.5), (6, 100.5)] {
            for _ in 0..count {
                histogram.record(minutes(at));
            }
        }
        let mut counts = vec![0.0f64; 240];
        counts[0] = 3.0;
        counts[7] = 1.0;
        counts[100] = 6.0;
        let mean = 10.0 / 240.0;
        let var = counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / 239.0;
        assert!((histogram.cv() - var.sqrt() / mean).abs() < 1e-9);
    }

    #[test]
    fn mostly_out_of_bounds_falls_back() {
        let config = AdaptiveConfig::default();
        let mut histogram = IdleHistogram::new(&config);
        for _ in 0..6 {
            histogram.record(minutes(5.0 * 60.0)); // longer than the 4-hour range
        }
        for _ in 0..5 {
            histogram.record(minutes(30.0));
        }
        assert_eq!(histogram.out_of_bounds(), 6);
        assert_eq!(histogram.verdict(&config), Verdict::OutOfBounds);
        assert_eq!(histogram.windows(&config), None);
        for _ in 0..2 {
            histogram.record(minutes(30.0));
        }
        // 6 of 13 out of bounds: under half, the in-range idle times decide.
        assert_eq!(histogram.verdict(&config), Verdict::Representative);
    }

    #[test]
    fn odd_configurations_do_not_panic() {
        let config = AdaptiveConfig {
            bin_width: Duration::ZERO,
            range: Duration::ZERO,
            head_percentile: f64::NAN,
            tail_percentile: 7.0,
            margin: f64::INFINITY,
            min_samples: 0,
            ..AdaptiveConfig::default()
        };
        let mut histogram = IdleHistogram::new(&config);
        histogram.record(Duration::ZERO);
        histogram.record(Duration::MAX);
        let _ = histogram.windows(&config);
    }
}

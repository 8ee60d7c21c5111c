//! Keep-alive policies: how long a pool stays warm after its last invocation ends, and when
//! it is loaded again ahead of the next one. Parsed from configuration, consulted by the
//! [`Autoscaler`](crate::Autoscaler).

use std::time::Duration;

/// The fixed keep-alive when configuration does not say: AWS Lambda's 10 minutes, the
/// baseline Shahrad et al. compare against.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10 * 60);

/// How a pool decides its [`Windows`] after going idle.
#[derive(Clone, Debug, PartialEq)]
pub enum KeepAlivePolicy {
    /// Keep a pool warm for this long after its last invocation ends.
    Fixed(Duration),
    /// Shahrad et al.'s hybrid histogram policy, falling back to `fallback` (fixed) while
    /// the function's histogram is not representative.
    Adaptive(AdaptiveConfig),
}

impl KeepAlivePolicy {
    /// [`KeepAlivePolicy::Fixed`] with [`DEFAULT_KEEP_ALIVE`].
    pub fn fixed_default() -> KeepAlivePolicy {
        KeepAlivePolicy::Fixed(DEFAULT_KEEP_ALIVE)
    }

    /// Parses "fixed" / "adaptive" with a fixed window (used as the adaptive fallback too).
    pub fn parse(name: &str, window: Duration) -> Result<KeepAlivePolicy, String> {
        match name {
            "fixed" => Ok(KeepAlivePolicy::Fixed(window)),
            "adaptive" => Ok(KeepAlivePolicy::Adaptive(AdaptiveConfig {
                fallback: window,
                ..AdaptiveConfig::default()
            })),
            other => Err(format!(
                "unknown keep-alive policy `{other}`: use `fixed` or `adaptive`"
            )),
        }
    }

    /// The name [`KeepAlivePolicy::parse`] accepts for this policy: "fixed" or "adaptive".
    pub fn name(&self) -> &'static str {
        match self {
            KeepAlivePolicy::Fixed(_) => "fixed",
            KeepAlivePolicy::Adaptive(_) => "adaptive",
        }
    }

    /// The windows this policy falls back to (or always uses, when fixed).
    pub(crate) fn fixed_windows(&self) -> Windows {
        let keep_alive = match self {
            KeepAlivePolicy::Fixed(window) => *window,
            KeepAlivePolicy::Adaptive(config) => config.fallback,
        };
        Windows {
            prewarm: Duration::ZERO,
            keep_alive,
            adaptive: false,
        }
    }
}

impl Default for KeepAlivePolicy {
    fn default() -> Self {
        KeepAlivePolicy::fixed_default()
    }
}

/// The knobs of the hybrid histogram policy. [`AdaptiveConfig::default`] is the paper's
/// configuration (Shahrad et al., USENIX ATC 2020, §4.2) with a 10-minute fallback.
///
/// Where the paper gives no number, the choice is ours and says so below.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveConfig {
    /// Width of one histogram bin: 1 minute in the paper.
    pub bin_width: Duration,
    /// Idle times up to this long are binned; longer ones are out of bounds (OOB) and only
    /// counted. 4 hours in the paper.
    pub range: Duration,
    /// The "head" percentile, as a fraction: the 5th percentile in the paper. The prewarm
    /// window ends at the lower edge of the bin holding it, less the margin.
    pub head_percentile: f64,
    /// The "tail" percentile, as a fraction: the 99th percentile in the paper. The pool stays
    /// warm up to the upper edge of the bin holding it, plus the margin.
    pub tail_percentile: f64,
    /// Safety margin, as a fraction: 10% in the paper. The prewarm window shrinks by it and
    /// the end of the keep-alive window grows by it.
    pub margin: f64,
    /// The histogram is representative only when the coefficient of variation of its bin
    /// counts (sample standard deviation over mean, across all bins) is at least this. A
    /// histogram concentrated in a few bins has a high CV; a flat one a low CV. 2.0, the
    /// value the open reimplementations of the policy use (dslab-faas, an OpenWhisk port).
    pub cv_threshold: f64,
    /// Idle times recorded (in range and out of bounds) before the histogram is trusted.
    /// The paper only says the histogram needs "enough" samples; our choice is 10, so that
    /// a handful of early idle times cannot pick windows on their own. (With fewer samples
    /// than bins, the bin counts' CV is high whatever the spread, so the CV test alone would
    /// trust one or two observations.)
    pub min_samples: u32,
    /// When more than this fraction of idle times fell out of bounds, the histogram cannot
    /// place the next arrival. The paper forecasts such idle times with ARIMA; we fall back
    /// to the fixed window instead (no time-series model in a pure, dependency-free crate).
    /// 0.5 (our choice: "most" idle times are OOB; the paper gives no number).
    pub max_oob_fraction: f64,
    /// The fixed keep-alive used while the histogram is not representative (prewarm 0).
    /// The paper falls back to keeping the pool warm for the whole histogram range (4 h);
    /// we keep the operator's fixed window, so `adaptive` never holds memory longer than
    /// `fixed` for a function it knows nothing about.
    pub fallback: Duration,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            bin_width: Duration::from_secs(60),
            range: Duration::from_secs(4 * 60 * 60),
            head_percentile: 0.05,
            tail_percentile: 0.99,
            margin: 0.10,
            cv_threshold: 2.0,
            min_samples: 10,
            max_oob_fraction: 0.5,
            fallback: DEFAULT_KEEP_ALIVE,
        }
    }
}

/// The windows in force after the last running invocation ends at `t`:
/// with `prewarm` zero, stay warm until `t + keep_alive`; otherwise release at `t`, load
/// again at `t + prewarm` and stay warm until `t + prewarm + keep_alive`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    /// How long after going idle the pool is loaded again (zero: never released early).
    pub prewarm: Duration,
    /// How long the pool stays warm once loaded (after going idle, or after the prewarm).
    pub keep_alive: Duration,
    /// True when the histogram decided, false when the fixed window did.
    pub adaptive: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_policies_and_names_them() {
        let ten = Duration::from_secs(600);
        let fixed = KeepAlivePolicy::parse("fixed", ten).unwrap();
        assert_eq!(fixed, KeepAlivePolicy::Fixed(ten));
        assert_eq!(fixed.name(), "fixed");

        let five = Duration::from_secs(300);
        let adaptive = KeepAlivePolicy::parse("adaptive", five).unwrap();
        assert_eq!(adaptive.name(), "adaptive");
        let KeepAlivePolicy::Adaptive(config) = adaptive else {
            panic!("not adaptive")
        };
        assert_eq!(config.fallback, five);
        assert_eq!(config.bin_width, Duration::from_secs(60));
        assert_eq!(config.range, Duration::from_secs(4 * 3600));
    }

    #[test]
    fn unknown_policy_names_the_allowed_values() {
        let err = KeepAlivePolicy::parse("lru", DEFAULT_KEEP_ALIVE).unwrap_err();
        assert_eq!(err, "unknown keep-alive policy `lru`: use `fixed` or `adaptive`");
        assert!(KeepAlivePolicy::parse("Fixed", DEFAULT_KEEP_ALIVE).is_err());
    }

    #[test]
    fn default_is_fixed_ten_minutes() {
        assert_eq!(
            KeepAlivePolicy::default(),
            KeepAlivePolicy::Fixed(Duration::from_secs(600))
        );
        let windows = KeepAlivePolicy::fixed_default().fixed_windows();
        assert_eq!(
            windows,
            Windows {
                prewarm: Duration::ZERO,
                keep_alive: Duration::from_secs(600),
                adaptive: false
            }
        );
    }
}

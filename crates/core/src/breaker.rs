//! A circuit breaker's settings ([`BreakerConfig`]): when the breaker on a caller →
//! callee pair (a function-to-function call, a destination or subscription delivery)
//! opens, how long it stays open, and how many probes it lets through half-open.
//!
//! The state machine itself is the engine's (`wisp_engine`'s `breaker` module); this
//! is the part a configuration writes, so it lives with the other configurations and
//! is checked by [`BreakerConfig::validate`] with the field's name.

use crate::duration_text;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// When a circuit breaker opens and how it recovers. Every field has a default, so
/// `[breaker]` with nothing in it (or no table at all) is the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// The share of failed calls over `window`, above `0` and at most `1`, at which
    /// the breaker opens (`0.5`: half of them failed).
    #[serde(default = "default_failure_rate")]
    pub failure_rate: f64,
    /// How far back calls are counted.
    #[serde(default = "default_window", with = "duration_text")]
    pub window: Duration,
    /// How many calls `window` must hold before their failure rate can open the
    /// breaker (so that one failure out of one call does not).
    #[serde(default = "default_min_calls")]
    pub min_calls: u32,
    /// How long the breaker stays open before it lets probes through (half-open).
    #[serde(default = "default_open_for", with = "duration_text")]
    pub open_for: Duration,
    /// How many probes may be in flight at once while half-open.
    #[serde(default = "default_half_open_probes")]
    pub half_open_probes: u32,
}

fn default_failure_rate() -> f64 {
    BreakerConfig::DEFAULT.failure_rate
}

fn default_window() -> Duration {
    BreakerConfig::DEFAULT.window
}

fn default_min_calls() -> u32 {
    BreakerConfig::DEFAULT.min_calls
}

fn default_open_for() -> Duration {
    BreakerConfig::DEFAULT.open_for
}

fn default_half_open_probes() -> u32 {
    BreakerConfig::DEFAULT.half_open_probes
}

/// Sound because [`BreakerConfig::validate`] refuses a NaN `failure_rate`; configurations
/// compare whole (a function's configuration is `Eq`).
impl Eq for BreakerConfig {}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig::DEFAULT
    }
}

/// A [`BreakerConfig`] value out of bounds; `field` names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BreakerConfigError {
    pub field: &'static str,
    pub message: String,
}

impl BreakerConfig {
    /// The defaults: open at half of at least 10 calls failing over 10 seconds, stay
    /// open 5 seconds, then let one probe through.
    pub const DEFAULT: BreakerConfig = BreakerConfig {
        failure_rate: 0.5,
        window: Duration::from_secs(10),
        min_calls: 10,
        open_for: Duration::from_secs(5),
        half_open_probes: 1,
    };
    /// The shortest `window` (it is counted in tenths).
    pub const MIN_WINDOW: Duration = Duration::from_millis(100);
    /// The longest `window`.
    pub const MAX_WINDOW: Duration = Duration::from_secs(3600);
    /// The shortest `open_for`.
    pub const MIN_OPEN_FOR: Duration = Duration::from_millis(100);
    /// The longest `open_for`.
    pub const MAX_OPEN_FOR: Duration = Duration::from_secs(3600);
    /// The largest `min_calls`.
    pub const MAX_MIN_CALLS: u32 = 1_000_000;
    /// The largest `half_open_probes`.
    pub const MAX_HALF_OPEN_PROBES: u32 = 100;

    /// Checks every field against its bounds.
    pub fn validate(&self) -> Result<(), BreakerConfigError> {
        let fail = |field, message: String| Err(BreakerConfigError { field, message });
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        // Written so that NaN fails too.
        if !(self.failure_rate > 0.0 && self.failure_rate <= 1.0) {
            return fail(
                "failure_rate",
                format!(
                    "failure_rate = {} is out of range: use a share above 0 and at most 1, like 0.5",
                    self.failure_rate
                ),
            );
        }
        if self.window < Self::MIN_WINDOW || self.window > Self::MAX_WINDOW {
            return fail(
                "window",
                format!(
                    "window `{}` is out of range: use {} to {}",
                    fmt(self.window),
                    fmt(Self::MIN_WINDOW),
                    fmt(Self::MAX_WINDOW)
                ),
            );
        }
        if !(1..=Self::MAX_MIN_CALLS).contains(&self.min_calls) {
            return fail(
                "min_calls",
                format!(
                    "min_calls = {} is out of range: use 1 to {}",
                    self.min_calls,
                    Self::MAX_MIN_CALLS
                ),
            );
        }
        if self.open_for < Self::MIN_OPEN_FOR || self.open_for > Self::MAX_OPEN_FOR {
            return fail(
                "open_for",
                format!(
                    "open_for `{}` is out of range: use {} to {}",
                    fmt(self.open_for),
                    fmt(Self::MIN_OPEN_FOR),
                    fmt(Self::MAX_OPEN_FOR)
                ),
            );
        }
        if !(1..=Self::MAX_HALF_OPEN_PROBES).contains(&self.half_open_probes) {
            return fail(
                "half_open_probes",
                format!(
                    "half_open_probes = {} is out of range: use 1 to {}",
                    self.half_open_probes,
                    Self::MAX_HALF_OPEN_PROBES
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_fill_a_partial_table() {
        BreakerConfig::default().validate().unwrap();
        let c: BreakerConfig = serde_json::from_str(r#"{"failure_rate": 0.25, "open_for": "30s"}"#).unwrap();
        assert_eq!(
            c,
            BreakerConfig {
                failure_rate: 0.25,
                open_for: Duration::from_secs(30),
                ..BreakerConfig::DEFAULT
            }
        );
        let c: BreakerConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, BreakerConfig::DEFAULT);
    }

    #[test]
    fn durations_are_text_both_ways() {
        let json = serde_json::to_value(BreakerConfig::DEFAULT).unwrap();
        assert_eq!(json["window"], "10s");
        assert_eq!(json["open_for"], "5s");
        let back: BreakerConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, BreakerConfig::DEFAULT);
        let e = serde_json::from_str::<BreakerConfig>(r#"{"window": "ten"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid duration `ten`"), "{e}");
        let e = serde_json::from_str::<BreakerConfig>(r#"{"windows": "1s"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `windows`"), "{e}");
    }

    #[test]
    fn every_field_is_checked() {
        let field = |c: BreakerConfig| c.validate().unwrap_err().field;
        let d = BreakerConfig::DEFAULT;
        for rate in [0.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            let c = BreakerConfig {
                failure_rate: rate,
                ..d
            };
            assert_eq!(field(c), "failure_rate", "{rate}");
        }
        BreakerConfig {
            failure_rate: 1.0,
            ..d
        }
        .validate()
        .unwrap();
        let c = BreakerConfig {
            window: Duration::from_millis(10),
            ..d
        };
        assert_eq!(field(c), "window");
        let c = BreakerConfig {
            window: Duration::from_secs(7200),
            ..d
        };
        assert_eq!(field(c), "window");
        assert_eq!(field(BreakerConfig { min_calls: 0, ..d }), "min_calls");
        let c = BreakerConfig {
            open_for: Duration::ZERO,
            ..d
        };
        assert_eq!(field(c), "open_for");
        let c = BreakerConfig {
            half_open_probes: 0,
            ..d
        };
        assert_eq!(field(c), "half_open_probes");
        let c = BreakerConfig {
            half_open_probes: 101,
            ..d
        };
        let e = c.validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "half_open_probes: half_open_probes = 101 is out of range: use 1 to 100"
        );
    }
}

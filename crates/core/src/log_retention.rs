//! How long a function's log lines are kept and how much of them ([`LogRetention`]):
//! `[functions.NAME.logs]` in a `wisp.toml`, checked by [`LogRetention::validate`] with
//! the field's name. The store trims to it (`wisp_store::Records::trim_logs`), on top of
//! its cap of lines per function.

use crate::duration_text;
use serde::{Deserialize, Deserializer, Serialize};
use std::time::Duration;

/// A function's log retention. Every field has a default, so `[logs]` with nothing in
/// it (or no table at all) is the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRetention {
    /// Lines older than this (by the time they were written) are dropped.
    #[serde(default = "default_retention", with = "duration_text")]
    pub retention: Duration,
    /// At most this many bytes of line text are kept, the oldest lines dropped first.
    /// Written as a size (`"10MiB"`) or a number of bytes.
    #[serde(default = "default_max_size", deserialize_with = "size")]
    pub max_size: u64,
}

fn default_retention() -> Duration {
    LogRetention::DEFAULT.retention
}

fn default_max_size() -> u64 {
    LogRetention::DEFAULT.max_size
}

/// A size as text (`"10MiB"`) or a whole number of bytes.
fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(n) => Ok(n),
        Size::Text(text) => crate::size_text::parse(&text).map_err(serde::de::Error::custom),
    }
}

impl Default for LogRetention {
    fn default() -> LogRetention {
        LogRetention::DEFAULT
    }
}

/// A [`LogRetention`] value out of bounds; `field` names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct LogRetentionError {
    pub field: &'static str,
    pub message: String,
}

impl LogRetention {
    /// The defaults: a week, and 10 MiB of text.
    pub const DEFAULT: LogRetention = LogRetention {
        retention: Duration::from_secs(7 * 24 * 3600),
        max_size: 10 << 20,
    };
    /// The shortest `retention`.
    pub const MIN_RETENTION: Duration = Duration::from_secs(60);
    /// The longest `retention`.
    pub const MAX_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
    /// The smallest `max_size`.
    pub const MIN_SIZE: u64 = 1 << 10;
    /// The largest `max_size`.
    pub const MAX_SIZE: u64 = 1 << 30;

    /// Checks every field against its bounds.
    pub fn validate(&self) -> Result<(), LogRetentionError> {
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        if self.retention < Self::MIN_RETENTION || self.retention > Self::MAX_RETENTION {
            return Err(LogRetentionError {
                field: "retention",
                message: format!(
                    "retention `{}` is out of range: use {} to {}",
                    fmt(self.retention),
                    fmt(Self::MIN_RETENTION),
                    fmt(Self::MAX_RETENTION)
                ),
            });
        }
        if !(Self::MIN_SIZE..=Self::MAX_SIZE).contains(&self.max_size) {
            let size = crate::size_text::format;
            return Err(LogRetentionError {
                field: "max_size",
                message: format!(
                    "max_size {} is out of range: use {} to {}",
                    size(self.max_size),
                    size(Self::MIN_SIZE),
                    size(Self::MAX_SIZE)
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_a_partial_table_and_sizes_are_text_or_bytes() {
        LogRetention::default().validate().unwrap();
        let r: LogRetention = serde_json::from_str(r#"{"retention": "1d"}"#).unwrap();
        assert_eq!(
            r,
            LogRetention {
                retention: Duration::from_secs(24 * 3600),
                ..LogRetention::DEFAULT
            }
        );
        let r: LogRetention = serde_json::from_str(r#"{"max_size": "2MiB"}"#).unwrap();
        assert_eq!(r.max_size, 2 << 20);
        let r: LogRetention = serde_json::from_str(r#"{"max_size": 4096}"#).unwrap();
        assert_eq!(r.max_size, 4096);
        let back: LogRetention = serde_json::from_value(serde_json::to_value(r).unwrap()).unwrap();
        assert_eq!(back, r);
        let e = serde_json::from_str::<LogRetention>(r#"{"max_size": "lots"}"#).unwrap_err();
        assert!(e.to_string().contains("is not a size"), "{e}");
        let e = serde_json::from_str::<LogRetention>(r#"{"retention": "forever"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid duration `forever`"), "{e}");
    }

    #[test]
    fn every_field_is_checked() {
        let field = |r: LogRetention| r.validate().unwrap_err().field;
        let d = LogRetention::DEFAULT;
        for retention in [Duration::from_secs(59), Duration::from_secs(31 * 24 * 3600)] {
            assert_eq!(field(LogRetention { retention, ..d }), "retention");
        }
        for max_size in [0, 1023, (1 << 30) + 1] {
            assert_eq!(field(LogRetention { max_size, ..d }), "max_size");
        }
    }
}

//! The wall clock as Wisp records it: Unix milliseconds and microseconds, durations in
//! the same units, and the RFC 3339 text the API and Lambda-shaped documents show.
//!
//! Every crate reads the clock through here. Code whose behaviour depends on the time
//! (the store's work queues, schedules, retries) takes `now` as an argument instead,
//! so it is tested with a fake clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type UnixMillis = i64;

/// Microseconds since the Unix epoch.
pub type UnixMicros = i64;

/// Now, in Unix microseconds (0 before 1970, which a clock set that far back means).
pub fn now_us() -> UnixMicros {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, micros)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> UnixMillis {
    now_us() / 1000
}

/// `d` in whole milliseconds, saturating.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `d` in whole microseconds, saturating.
pub fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// `d` in whole microseconds, saturating, unsigned (for durations that are recorded,
/// never subtracted).
pub fn micros_u64(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `ms` as RFC 3339 UTC with milliseconds (`2023-11-14T22:13:20.123Z`), as the API
/// shows times; empty when out of range.
pub fn rfc3339_ms(ms: UnixMillis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// `ms` as RFC 3339 UTC to the second (`2023-11-14T22:13:20Z`), as EventBridge writes
/// an event's `time`; the epoch when out of range.
pub fn rfc3339_s(ms: UnixMillis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_the_api_and_eventbridge_write_them() {
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_s(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(millis(Duration::from_micros(2_500)), 2);
        assert_eq!(micros(Duration::MAX), i64::MAX);
        assert!(now_ms() > 1_700_000_000_000);
    }
}

//! The wall clock as the store records it: Unix milliseconds and microseconds, and
//! durations in the same units.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wisp_store::{UnixMicros, UnixMillis};

/// Now, in Unix microseconds (0 before 1970, which a clock set that far back means).
pub(crate) fn now_us() -> UnixMicros {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, micros)
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> UnixMillis {
    now_us() / 1000
}

/// `d` in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `d` in whole microseconds, saturating.
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

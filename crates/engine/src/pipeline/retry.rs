//! When an async event runs again: exponential backoff with jitter after a failed
//! attempt, a short jittered delay after a throttle or a system error (which do not
//! count as attempts), and the decision to give up (retries exhausted, event too old).
//!
//! Pure: the time and the random draw are arguments, so it is tested with a fake clock.

use std::time::Duration;

/// How retries are spaced, server-wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetrySettings {
    /// The delay before the first retry; each further retry doubles it.
    pub base: Duration,
    /// No delay is longer than this.
    pub max: Duration,
}

impl Default for RetrySettings {
    /// Lambda waits about a minute before the first retry of an async invocation and
    /// two before the second; Wisp starts sooner (1 s), doubling up to 5 minutes.
    fn default() -> RetrySettings {
        RetrySettings {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Run again after this delay.
    RetryAfter(Duration),
    /// Give up: the last allowed attempt failed.
    RetriesExhausted,
    /// Give up: the event would be older than its `max_event_age` by its next run.
    AgeExceeded,
}

impl RetrySettings {
    /// The delay before retry number `retry` (1 for the first), with "equal jitter":
    /// half the exponential step fixed, half drawn from `jitter` in `[0, 1)`, so
    /// retries of events that failed together spread out but never come back at once.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let exponent = retry.saturating_sub(1).min(30);
        let step = self.base.saturating_mul(1u32 << exponent).min(self.max);
        let half = step / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// After a throttle or a system error: run again soon (between one and two
    /// `base` delays), not counting an attempt.
    pub fn throttled(&self, jitter: f64) -> Duration {
        self.base + self.base.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// After failed attempt number `attempts` (1 for the first run) of an event that
    /// is `age` old and may retry `max_retries` times within `max_event_age`.
    pub fn after_failure(
        &self,
        attempts: u32,
        max_retries: u32,
        age: Duration,
        max_event_age: Duration,
        jitter: f64,
    ) -> Next {
        if attempts > max_retries {
            return Next::RetriesExhausted;
        }
        let delay = self.backoff(attempts, jitter);
        if age + delay > max_event_age {
            return Next::AgeExceeded;
        }
        Next::RetryAfter(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: RetrySettings = RetrySettings {
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        assert_eq!(S.backoff(1, 0.0), Duration::from_millis(500));
        assert_eq!(S.backoff(1, 1.0), Duration::from_secs(1));
        assert_eq!(S.backoff(2, 0.5), Duration::from_millis(1500));
        assert_eq!(S.backoff(3, 1.0), Duration::from_secs(4));
        assert_eq!(S.backoff(7, 1.0), Duration::from_secs(60));
        assert_eq!(S.backoff(u32::MAX, 1.0), Duration::from_secs(60));
        assert_eq!(S.backoff(7, 0.0), Duration::from_secs(30));
    }

    #[test]
    fn retries_stop_after_max_retries() {
        let age = Duration::ZERO;
        let max_age = Duration::from_secs(3600);
        assert!(matches!(
            S.after_failure(1, 2, age, max_age, 0.0),
            Next::RetryAfter(_)
        ));
        assert!(matches!(
            S.after_failure(2, 2, age, max_age, 0.0),
            Next::RetryAfter(_)
        ));
        assert_eq!(S.after_failure(3, 2, age, max_age, 0.0), Next::RetriesExhausted);
        assert_eq!(S.after_failure(1, 0, age, max_age, 0.0), Next::RetriesExhausted);
        assert!(matches!(
            S.after_failure(50, 100, age, max_age, 0.0),
            Next::RetryAfter(_)
        ));
    }

    #[test]
    fn an_event_too_old_for_its_next_retry_gives_up() {
        let max_age = Duration::from_secs(10);
        assert_eq!(
            S.after_failure(1, 5, Duration::from_millis(9_600), max_age, 0.0),
            Next::AgeExceeded
        );
        assert_eq!(
            S.after_failure(1, 5, Duration::from_millis(9_400), max_age, 0.0),
            Next::RetryAfter(Duration::from_millis(500))
        );
    }

    #[test]
    fn throttles_come_back_within_one_to_two_bases() {
        assert_eq!(S.throttled(0.0), Duration::from_secs(1));
        assert_eq!(S.throttled(1.0), Duration::from_secs(2));
        assert_eq!(S.throttled(7.0), Duration::from_secs(2));
    }
}

//! One pool's scaling state: when its warm state (loaded code, idle instances) is released
//! and loaded again. The engine owns one [`Autoscaler`] per function version, reports
//! invocation starts and ends, and applies the [`Action`]s it polls.
//!
//! # Design
//!
//! The autoscaler is a pure state machine over a caller-supplied clock: every method takes
//! `now` (a [`Duration`] since an epoch the caller picks) and nothing reads a real clock or
//! sleeps, so tests and the trace replay (`keepalive-replay`) drive it with fake time, and
//! the engine drives it from its own clock: poll at [`Autoscaler::next_deadline`] (or on a
//! periodic tick; late polls are fine) until [`Autoscaler::poll`] says `None`.
//!
//! The plan follows Shahrad et al. (ATC 2020): when the last running invocation ends at
//! `t`, the [`Windows`] in force decide. With no prewarm window the pool stays warm until
//! `t + keep_alive`, then is released. With a prewarm window `pw` the pool is released at
//! `t`, loaded again at `t + pw` and released at `t + pw + keep_alive`. Any arrival cancels
//! the plan; an arrival finds the pool warm or cold, and that alone decides whether it is a
//! cold start, so overlapping invocations are warm. A poll that comes so late that a
//! prewarm's keep-alive has already run out skips the prewarm instead of loading code only
//! to drop it.
//!
//! `min_instances > 0` pins the pool: it is prewarmed at creation and never released (the
//! windows still tell the engine when to stop instances beyond the minimum).
//!
//! The idle time fed to the adaptive policy's histogram is the paper's: from the end of the
//! last invocation to the next arrival, recorded only when nothing was running.

use std::time::Duration;

use crate::histogram::IdleHistogram;
use crate::policy::{KeepAlivePolicy, Windows};

/// After [`Autoscaler::on_released`] on a pinned pool (`min_instances > 0`), how long until
/// [`Action::Prewarm`] is due again, so that a load that keeps failing is retried at a
/// steady pace instead of in a loop.
pub const PREWARM_RETRY: Duration = Duration::from_secs(5);

/// What the caller should do to the pool now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Release the warm state: unload the code / stop idle instances (beyond min_instances).
    Release,
    /// Load the code / start instances (up to `max(min_instances, 1)`) ahead of need.
    Prewarm,
}

/// One pool's scaling state (one per function version). A pure state machine: the caller
/// reports invocation starts and ends, polls for actions at `next_deadline()` (or on a tick),
/// and applies them.
#[derive(Clone, Debug)]
pub struct Autoscaler {
    policy: KeepAlivePolicy,
    /// Idle times, for the adaptive policy.
    histogram: Option<IdleHistogram>,
    min_instances: u32,
    running: u32,
    warm: bool,
    /// When the last invocation ended, if the pool has gone idle since it was created.
    idle_since: Option<Duration>,
    /// When `Release` is due. Only set while warm.
    release_at: Option<Duration>,
    /// When `Prewarm` is due, and the keep-alive that follows it.
    prewarm_at: Option<(Duration, Duration)>,
    /// When a pinned pool that is cold should be prewarmed.
    pin_at: Duration,
}

impl Autoscaler {
    /// A cold pool. With `min_instances > 0`, the first [`Autoscaler::poll`] says
    /// [`Action::Prewarm`].
    pub fn new(policy: KeepAlivePolicy, min_instances: u32, now: Duration) -> Autoscaler {
        let histogram = match &policy {
            KeepAlivePolicy::Adaptive(config) => Some(IdleHistogram::new(config)),
            KeepAlivePolicy::Fixed(_) => None,
        };
        Autoscaler {
            policy,
            histogram,
            min_instances,
            running: 0,
            warm: false,
            idle_since: None,
            release_at: None,
            prewarm_at: None,
            pin_at: now,
        }
    }

    /// An invocation starts at `now`. Returns true when it is a cold start (the pool was not warm);
    /// the pool is warm afterwards. Records the idle time since the last end when nothing was running.
    pub fn on_start(&mut self, now: Duration) -> bool {
        if self.running == 0
            && let (Some(since), Some(histogram)) = (self.idle_since, self.histogram.as_mut())
        {
            histogram.record(now.saturating_sub(since));
        }
        let cold = !self.warm;
        self.running = self.running.saturating_add(1);
        self.warm = true;
        self.release_at = None;
        self.prewarm_at = None;
        cold
    }

    /// An invocation that started ends at `now`. When it was the last one running, the
    /// windows in force plan the release (and the prewarm).
    pub fn on_finish(&mut self, now: Duration) {
        if self.running == 0 {
            return; // no matching start: nothing to end
        }
        self.running -= 1;
        if self.running > 0 {
            return;
        }
        self.idle_since = Some(now);
        if self.min_instances > 0 {
            return;
        }
        let windows = self.windows();
        if windows.prewarm.is_zero() {
            self.release_at = self.warm.then(|| now.saturating_add(windows.keep_alive));
        } else {
            self.release_at = self.warm.then_some(now);
            self.prewarm_at = Some((now.saturating_add(windows.prewarm), windows.keep_alive));
        }
    }

    /// The action due at `now`, if any (call repeatedly until None). Never Release while an
    /// invocation runs or when min_instances > 0 (min_instances keeps the pool warm forever).
    pub fn poll(&mut self, now: Duration) -> Option<Action> {
        if self.running > 0 {
            return None;
        }
        if self.min_instances > 0 {
            if !self.warm && now >= self.pin_at {
                self.warm = true;
                return Some(Action::Prewarm);
            }
            return None;
        }
        if let Some(at) = self.release_at
            && now >= at
        {
            self.release_at = None;
            self.warm = false;
            return Some(Action::Release);
        }
        if self.release_at.is_none()
            && let Some((at, keep_alive)) = self.prewarm_at
            && now >= at
        {
            self.prewarm_at = None;
            let until = at.saturating_add(keep_alive);
            if now < until {
                self.warm = true;
                self.release_at = Some(until);
                return Some(Action::Prewarm);
            }
        }
        None
    }

    /// When poll() next has something to do, if ever.
    pub fn next_deadline(&self) -> Option<Duration> {
        if self.running > 0 {
            None
        } else if self.min_instances > 0 {
            (!self.warm).then_some(self.pin_at)
        } else {
            self.release_at.or(self.prewarm_at.map(|(at, _)| at))
        }
    }

    /// Whether the pool holds its warm state (as far as the actions applied tell).
    pub fn is_warm(&self) -> bool {
        self.warm
    }

    /// Invocations started and not yet finished.
    pub fn running(&self) -> u32 {
        self.running
    }

    /// The windows in force now (the engine uses keep_alive to stop individual idle process
    /// instances that have been idle longer than it).
    pub fn windows(&self) -> Windows {
        if let (KeepAlivePolicy::Adaptive(config), Some(histogram)) = (&self.policy, &self.histogram)
            && let Some(windows) = histogram.windows(config)
        {
            return windows;
        }
        self.policy.fixed_windows()
    }

    /// The caller could not keep the pool warm (e.g. the load failed or was cancelled): the pool is cold.
    pub fn on_released(&mut self, now: Duration) {
        self.warm = false;
        self.release_at = None;
        if self.min_instances > 0 {
            self.pin_at = now.saturating_add(PREWARM_RETRY);
        }
    }

    /// The policy this pool follows.
    pub fn policy(&self) -> &KeepAlivePolicy {
        &self.policy
    }

    /// The idle-time histogram, for the adaptive policy (diagnostics and metrics).
    pub fn histogram(&self) -> Option<&IdleHistogram> {
        self.histogram.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::AdaptiveConfig;

    fn min(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn fixed(window: Duration) -> Autoscaler {
        Autoscaler::new(KeepAlivePolicy::Fixed(window), 0, Duration::ZERO)
    }

    /// Every action due up to `now`, in order.
    fn drain(scaler: &mut Autoscaler, now: Duration) -> Vec<Action> {
        std::iter::from_fn(|| scaler.poll(now)).collect()
    }

    #[test]
    fn fixed_keeps_warm_for_the_window_then_releases() {
        let mut scaler = fixed(min(10));
        assert!(!scaler.is_warm());
        assert_eq!(scaler.next_deadline(), None);
        assert_eq!(scaler.poll(min(100)), None);

        assert!(scaler.on_start(secs(0)), "first invocation is cold");
        assert_eq!(scaler.next_deadline(), None, "nothing to do while running");
        scaler.on_finish(secs(2));
        assert_eq!(scaler.next_deadline(), Some(secs(2) + min(10)));
        assert_eq!(scaler.poll(secs(2) + min(10) - secs(1)), None);
        assert!(scaler.is_warm());

        assert!(!scaler.on_start(min(5)), "within the window: warm");
        scaler.on_finish(min(6));
        assert_eq!(
            scaler.next_deadline(),
            Some(min(16)),
            "the arrival restarted the window"
        );
        assert_eq!(drain(&mut scaler, min(16)), vec![Action::Release]);
        assert!(!scaler.is_warm());
        assert_eq!(scaler.next_deadline(), None);
        assert!(scaler.on_start(min(17)), "after the release: cold");
    }

    #[test]
    fn fixed_windows_are_the_fixed_window() {
        let scaler = fixed(min(20));
        assert_eq!(
            scaler.windows(),
            Windows {
                prewarm: Duration::ZERO,
                keep_alive: min(20),
                adaptive: false
            }
        );
    }

    #[test]
    fn zero_keep_alive_releases_as_soon_as_idle() {
        let mut scaler = fixed(Duration::ZERO);
        assert!(scaler.on_start(secs(10)));
        scaler.on_finish(secs(11));
        assert_eq!(scaler.next_deadline(), Some(secs(11)));
        assert_eq!(drain(&mut scaler, secs(11)), vec![Action::Release]);
        assert!(scaler.on_start(secs(12)));
    }

    #[test]
    fn overlapping_invocations_are_warm_and_hold_the_pool() {
        let mut scaler = fixed(min(1));
        assert!(scaler.on_start(secs(0)), "cold");
        assert!(!scaler.on_start(secs(1)), "arrives while the first runs: warm");
        assert!(!scaler.on_start(secs(2)), "warm");
        assert_eq!(scaler.running(), 3);
        scaler.on_finish(secs(3));
        scaler.on_finish(secs(4));
        assert_eq!(scaler.next_deadline(), None, "one still runs");
        assert_eq!(scaler.poll(min(10)), None, "never released while running");
        assert!(scaler.is_warm());
        scaler.on_finish(min(10));
        assert_eq!(
            scaler.next_deadline(),
            Some(min(11)),
            "the window starts at the last end"
        );
        assert_eq!(drain(&mut scaler, min(11)), vec![Action::Release]);
        assert_eq!(scaler.running(), 0);
    }

    #[test]
    fn unmatched_finish_is_ignored() {
        let mut scaler = fixed(min(1));
        scaler.on_finish(secs(5));
        assert_eq!(scaler.running(), 0);
        assert_eq!(scaler.next_deadline(), None);
    }

    #[test]
    fn min_instances_prewarms_at_creation_and_never_releases() {
        let mut scaler = Autoscaler::new(KeepAlivePolicy::Fixed(Duration::ZERO), 2, secs(7));
        assert!(!scaler.is_warm());
        assert_eq!(scaler.next_deadline(), Some(secs(7)));
        assert_eq!(drain(&mut scaler, secs(7)), vec![Action::Prewarm]);
        assert!(scaler.is_warm());
        assert_eq!(scaler.next_deadline(), None);

        assert!(!scaler.on_start(secs(8)), "prewarmed: warm");
        scaler.on_finish(secs(9));
        assert_eq!(scaler.next_deadline(), None);
        assert_eq!(drain(&mut scaler, min(24 * 60)), vec![], "never released");
        assert!(scaler.is_warm());
    }

    #[test]
    fn min_instances_retries_a_failed_prewarm_after_a_pause() {
        let mut scaler = Autoscaler::new(KeepAlivePolicy::fixed_default(), 1, secs(0));
        assert_eq!(drain(&mut scaler, secs(0)), vec![Action::Prewarm]);
        scaler.on_released(secs(1)); // the load failed
        assert!(!scaler.is_warm());
        assert_eq!(scaler.next_deadline(), Some(secs(1) + PREWARM_RETRY));
        assert_eq!(scaler.poll(secs(2)), None);
        assert_eq!(drain(&mut scaler, secs(1) + PREWARM_RETRY), vec![Action::Prewarm]);
    }

    #[test]
    fn min_instances_arrival_before_the_first_prewarm_is_cold() {
        let mut scaler = Autoscaler::new(KeepAlivePolicy::fixed_default(), 1, secs(0));
        assert!(scaler.on_start(secs(0)));
        scaler.on_finish(secs(1));
        assert_eq!(scaler.next_deadline(), None, "already warm");
    }

    #[test]
    fn on_released_makes_the_pool_cold_and_drops_the_release() {
        let mut scaler = fixed(min(10));
        scaler.on_start(secs(0));
        scaler.on_finish(secs(1));
        scaler.on_released(secs(2));
        assert!(!scaler.is_warm());
        assert_eq!(scaler.next_deadline(), None);
        assert_eq!(scaler.poll(min(20)), None, "nothing left to release");
        assert!(scaler.on_start(min(3)), "cold after the caller lost the pool");
    }

    #[test]
    fn release_during_a_run_plans_nothing_to_release() {
        let mut scaler = fixed(min(10));
        scaler.on_start(secs(0));
        scaler.on_released(secs(0)); // e.g. the load failed under the invocation
        scaler.on_finish(secs(1));
        assert_eq!(scaler.next_deadline(), None);
        assert!(scaler.on_start(secs(2)));
    }

    /// An adaptive pool that has seen `n` idle times of `gap` (runs of one second).
    fn adaptive_trained(gap: Duration, n: usize) -> (Autoscaler, Duration) {
        let mut scaler = Autoscaler::new(KeepAlivePolicy::Adaptive(AdaptiveConfig::default()), 0, secs(0));
        let mut t = secs(0);
        for _ in 0..=n {
            scaler.on_start(t);
            scaler.on_finish(t + secs(1));
            t += secs(1) + gap;
        }
        (scaler, t - gap)
    }

    #[test]
    fn adaptive_with_regular_gaps_releases_then_prewarms_before_the_next_arrival() {
        let (mut scaler, end) = adaptive_trained(min(30), 12);
        let windows = scaler.windows();
        assert!(windows.adaptive);
        assert_eq!(windows.prewarm, min(27));
        assert_eq!(
            windows.prewarm + windows.keep_alive,
            Duration::from_secs_f64(31.0 * 60.0 * 1.1)
        );

        // The last invocation ended at `end`: release now, prewarm at +27 min.
        assert_eq!(scaler.next_deadline(), Some(end));
        assert_eq!(drain(&mut scaler, end), vec![Action::Release]);
        assert!(!scaler.is_warm());
        assert_eq!(scaler.next_deadline(), Some(end + min(27)));
        assert_eq!(drain(&mut scaler, end + min(27) - secs(1)), vec![]);
        assert_eq!(drain(&mut scaler, end + min(27)), vec![Action::Prewarm]);
        assert!(scaler.is_warm());
        assert_eq!(
            scaler.next_deadline(),
            Some(end + windows.prewarm + windows.keep_alive)
        );

        // The next arrival, 30 minutes after the end, finds the pool warm.
        assert!(!scaler.on_start(end + min(30)));
        assert_eq!(scaler.next_deadline(), None);
    }

    #[test]
    fn adaptive_prewarmed_pool_is_released_when_nobody_comes() {
        let (mut scaler, end) = adaptive_trained(min(30), 12);
        let windows = scaler.windows();
        let until = end + windows.prewarm + windows.keep_alive;
        assert_eq!(
            drain(&mut scaler, end + min(27)),
            vec![Action::Release, Action::Prewarm]
        );
        assert_eq!(drain(&mut scaler, until), vec![Action::Release]);
        assert_eq!(scaler.next_deadline(), None);
        assert!(scaler.on_start(until + secs(1)), "past the keep-alive: cold");
    }

    #[test]
    fn adaptive_arrival_before_the_prewarm_is_cold_and_cancels_it() {
        let (mut scaler, end) = adaptive_trained(min(30), 12);
        assert_eq!(drain(&mut scaler, end + min(1)), vec![Action::Release]);
        assert!(
            scaler.on_start(end + min(2)),
            "released and not yet prewarmed: cold"
        );
        assert_eq!(scaler.next_deadline(), None, "the prewarm was cancelled");
        assert_eq!(scaler.poll(end + min(28)), None);
    }

    #[test]
    fn a_late_poll_skips_a_prewarm_whose_keep_alive_ran_out() {
        let (mut scaler, end) = adaptive_trained(min(30), 12);
        assert_eq!(drain(&mut scaler, end + min(60)), vec![Action::Release]);
        assert!(!scaler.is_warm());
        assert_eq!(scaler.next_deadline(), None);
    }

    #[test]
    fn adaptive_falls_back_to_the_fixed_window_while_learning() {
        let (mut scaler, end) = adaptive_trained(min(30), 3);
        assert_eq!(
            scaler.windows(),
            Windows {
                prewarm: Duration::ZERO,
                keep_alive: min(10),
                adaptive: false
            }
        );
        assert_eq!(scaler.next_deadline(), Some(end + min(10)));
        assert_eq!(drain(&mut scaler, end + min(10)), vec![Action::Release]);
    }

    #[test]
    fn adaptive_falls_back_when_idle_times_are_mostly_out_of_bounds() {
        let (scaler, _) = adaptive_trained(min(5 * 60), 20);
        assert_eq!(scaler.histogram().unwrap().out_of_bounds(), 20);
        assert!(!scaler.windows().adaptive);
        assert_eq!(scaler.windows().keep_alive, min(10));
    }

    #[test]
    fn adaptive_frequent_function_gets_a_short_keep_alive() {
        let (mut scaler, end) = adaptive_trained(secs(20), 50);
        let windows = scaler.windows();
        assert!(windows.adaptive);
        assert_eq!(windows.prewarm, Duration::ZERO);
        assert_eq!(windows.keep_alive, Duration::from_secs(66));
        assert_eq!(drain(&mut scaler, end + secs(65)), vec![]);
        assert_eq!(drain(&mut scaler, end + secs(66)), vec![Action::Release]);
    }

    #[test]
    fn idle_time_is_recorded_only_when_nothing_ran() {
        let mut scaler = Autoscaler::new(KeepAlivePolicy::Adaptive(AdaptiveConfig::default()), 0, secs(0));
        scaler.on_start(secs(0));
        scaler.on_start(secs(1)); // overlaps: no idle time
        scaler.on_finish(secs(2));
        scaler.on_finish(secs(3));
        assert_eq!(scaler.histogram().unwrap().samples(), 0);
        scaler.on_start(min(2)); // idle from 0:03 to 2:00
        assert_eq!(scaler.histogram().unwrap().samples(), 1);
    }
}

//! Each function's recent history, for the dashboard's charts: per minute over the
//! last hour and per quarter hour over the last day, its invocations, errors,
//! throttles and duration percentiles. One task samples the counters `/metrics` reads
//! at each minute's end, so nothing is added to the request path; the minute still
//! open is read live when a chart is drawn. Kept in memory: the charts start when the
//! server does (Prometheus, scraping `/metrics`, keeps longer history).

use crate::Engine;
use crate::metrics::{Tally, VersionKey};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use wisp_core::wall::{UnixMillis, now_ms};
use wisp_core::{FunctionName, Namespace};

const MINUTE_MS: i64 = 60_000;
const QUARTER_MS: i64 = 15 * MINUTE_MS;
/// Minutes the hour's chart shows, and quarters the day's.
const MINUTES: usize = 60;
const QUARTERS: usize = 96;

/// The span a chart covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The last 60 minutes, a point a minute.
    Hour,
    /// The last 24 hours, a point a quarter hour.
    Day,
}

impl Window {
    /// The span of one point, in milliseconds.
    pub fn step_ms(self) -> i64 {
        match self {
            Window::Hour => MINUTE_MS,
            Window::Day => QUARTER_MS,
        }
    }

    /// Its name in a query: `hour` or `day`.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }

    fn points(self) -> usize {
        match self {
            Window::Hour => MINUTES,
            Window::Day => QUARTERS,
        }
    }
}

impl std::str::FromStr for Window {
    type Err = String;

    fn from_str(text: &str) -> Result<Window, String> {
        match text {
            "hour" => Ok(Window::Hour),
            "day" => Ok(Window::Day),
            other => Err(format!("`{other}` is not a window: use `hour` or `day`")),
        }
    }
}

/// What a function did in one step of a chart.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Point {
    /// When the step starts.
    pub start_ms: UnixMillis,
    /// Invocations that ended in it, and of them in an error.
    pub invocations: u64,
    pub errors: u64,
    /// Refused for want of a slot.
    pub throttles: u64,
    /// Duration percentiles in seconds, estimated from the histogram; `None` when no
    /// invocation ended.
    pub p50_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
}

impl Point {
    fn new(start_ms: UnixMillis, tally: &Tally) -> Point {
        Point {
            start_ms,
            invocations: tally.ended,
            errors: tally.errors,
            throttles: tally.throttled,
            p50_seconds: tally.duration_quantile(0.5),
            p99_seconds: tally.duration_quantile(0.99),
        }
    }
}

/// One function's closed steps.
#[derive(Default)]
struct Steps {
    /// Minutes with their counts, the oldest first; the last [`MINUTES`].
    minutes: VecDeque<(UnixMillis, Tally)>,
    /// Quarter hours, closed ones only; the last [`QUARTERS`].
    quarters: VecDeque<Point>,
    /// The quarter hour the latest minutes fall in: its start and counts so far.
    quarter: Option<(UnixMillis, Tally)>,
}

impl Steps {
    fn push(&mut self, minute: UnixMillis, tally: Tally) {
        let quarter_start = minute - minute.rem_euclid(QUARTER_MS);
        match &mut self.quarter {
            Some((start, sum)) if *start == quarter_start => sum.add(&tally),
            open => {
                if let Some((start, sum)) = open.take() {
                    self.quarters.push_back(Point::new(start, &sum));
                    if self.quarters.len() > QUARTERS {
                        self.quarters.pop_front();
                    }
                }
                *open = Some((quarter_start, tally));
            }
        }
        self.minutes.push_back((minute, tally));
        if self.minutes.len() > MINUTES {
            self.minutes.pop_front();
        }
    }

    /// Whether nothing happened in the last day.
    fn is_idle(&self, now: UnixMillis) -> bool {
        let busy = |t: &Tally| t.ended + t.throttled > 0;
        let recent = self.minutes.iter().any(|(_, t)| busy(t))
            || self.quarter.as_ref().is_some_and(|(_, t)| busy(t))
            || self
                .quarters
                .iter()
                .any(|p| p.start_ms > now - QUARTERS as i64 * QUARTER_MS && p.invocations + p.throttles > 0);
        !recent
    }
}

/// Every function's steps, and the counters at the last sample.
#[derive(Default)]
struct State {
    /// When the last sample was taken (the end of the minute it closed).
    sampled_at: Option<UnixMillis>,
    /// Each version's counters then.
    last: HashMap<VersionKey, Tally>,
    functions: HashMap<(Namespace, FunctionName), Steps>,
}

/// What the charts are drawn from: see the module docs.
#[derive(Default)]
pub(crate) struct History {
    state: Mutex<State>,
}

/// What each function counted since the previous counters `last` (a version new since
/// then counts from 0), summed over its versions.
fn since(
    last: &HashMap<VersionKey, Tally>,
    now: &[(VersionKey, Tally)],
) -> HashMap<(Namespace, FunctionName), Tally> {
    let mut sums: HashMap<(Namespace, FunctionName), Tally> = HashMap::new();
    for (key, tally) in now {
        let delta = match last.get(key) {
            Some(before) => tally.since(before),
            None => *tally,
        };
        let (ns, function, _) = key;
        sums.entry((ns.clone(), function.clone()))
            .or_default()
            .add(&delta);
    }
    sums
}

impl History {
    /// Closes the minute ending at `at` with the counters `now`. The counters start at
    /// zero with the process, and the first sample is taken at the end of the minute it
    /// started in, so what they counted before it falls in that minute too.
    pub(crate) fn sample(&self, at: UnixMillis, now: Vec<(VersionKey, Tally)>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let minute = at - MINUTE_MS;
        for (function, tally) in since(&state.last, &now) {
            let idle = tally == Tally::default();
            match state.functions.get_mut(&function) {
                Some(steps) => steps.push(minute, tally),
                None if idle => {}
                None => state.functions.entry(function).or_default().push(minute, tally),
            }
        }
        state.functions.retain(|_, steps| !steps.is_idle(at));
        state.sampled_at = Some(at);
        state.last = now.into_iter().collect();
    }

    /// A function's chart over `window` ending at `at`, one point a step, the oldest
    /// first; steps with nothing recorded are zero. `open` is the function's counters
    /// now, for the step still open.
    fn series(
        &self,
        function: &(Namespace, FunctionName),
        window: Window,
        at: UnixMillis,
        open: &[(VersionKey, Tally)],
    ) -> Vec<Point> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let step = window.step_ms();
        let current = at - at.rem_euclid(step);
        let first = current - (window.points() as i64 - 1) * step;
        let mut points: Vec<Point> = (0..window.points() as i64)
            .map(|i| Point {
                start_ms: first + i * step,
                ..Point::default()
            })
            .collect();
        let mut put = |start: UnixMillis, point: Point| {
            if start >= first && start <= current {
                points[((start - first) / step) as usize] = Point {
                    start_ms: start,
                    ..point
                };
            }
        };
        // The minute since the last sample (or since the process started), read live.
        let live = since(&state.last, open).remove(function).unwrap_or_default();
        let live_start = state.sampled_at.unwrap_or(at);
        let steps = state.functions.get(function);
        match window {
            Window::Hour => {
                for (minute, tally) in steps.iter().flat_map(|s| s.minutes.iter()) {
                    put(*minute, Point::new(*minute, tally));
                }
                let start = live_start - live_start.rem_euclid(step);
                put(start, Point::new(start, &live));
            }
            Window::Day => {
                for point in steps.iter().flat_map(|s| s.quarters.iter()) {
                    put(point.start_ms, *point);
                }
                // The open quarter: its closed minutes and the live ones.
                let mut sum = Tally::default();
                let start = live_start - live_start.rem_euclid(step);
                if let Some((quarter, tally)) = steps.and_then(|s| s.quarter.as_ref())
                    && *quarter == start
                {
                    sum.add(tally);
                }
                sum.add(&live);
                put(start, Point::new(start, &sum));
            }
        }
        points
    }
}

impl Engine {
    /// A function's chart over `window`, one point a step, the oldest first (zero for
    /// a function with nothing recorded). See the `history` module's docs.
    pub fn function_history(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        window: Window,
    ) -> Vec<Point> {
        let open = self.metrics.counters(|ns, f| ns == namespace && f == function);
        self.history
            .series(&(namespace.clone(), function.clone()), window, now_ms(), &open)
    }
}

/// Starts the task that samples the counters at each minute's end.
pub(crate) fn start(engine: &Arc<Engine>) {
    let me = Arc::downgrade(engine);
    tokio::spawn(async move {
        loop {
            let now = now_ms();
            let end = now - now.rem_euclid(MINUTE_MS) + MINUTE_MS;
            tokio::time::sleep(Duration::from_millis((end - now) as u64)).await;
            let Some(engine) = me.upgrade() else { return };
            let counters = engine.metrics.counters(|_, _| true);
            engine.history.sample(end, counters);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(f: &str, version: u32) -> VersionKey {
        (
            Namespace::new("default").unwrap(),
            FunctionName::new(f).unwrap(),
            version,
        )
    }

    fn tally(ended: u64, errors: u64) -> Tally {
        let mut durations = [0; 21];
        durations[3] = ended; // 500 µs to 1 ms
        Tally {
            ended,
            errors,
            throttled: 0,
            durations,
        }
    }

    fn function(f: &str) -> (Namespace, FunctionName) {
        let (ns, f, _) = key(f, 1);
        (ns, f)
    }

    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % QUARTER_MS;

    #[test]
    fn each_minute_counts_what_ended_in_it_over_every_version() {
        let history = History::default();
        history.sample(T0, vec![(key("a", 1), tally(5, 0))]);
        history.sample(T0 + MINUTE_MS, vec![(key("a", 1), tally(8, 1))]);
        // Version 2 appears; version 1 goes on counting.
        history.sample(
            T0 + 2 * MINUTE_MS,
            vec![(key("a", 1), tally(9, 1)), (key("a", 2), tally(4, 2))],
        );
        let now = [(key("a", 1), tally(10, 1)), (key("a", 2), tally(4, 2))];
        let series = history.series(&function("a"), Window::Hour, T0 + 2 * MINUTE_MS + 5_000, &now);
        assert_eq!(series.len(), 60);
        let tail: Vec<(i64, u64, u64)> = series[56..]
            .iter()
            .map(|p| ((p.start_ms - T0) / MINUTE_MS, p.invocations, p.errors))
            .collect();
        // The minute the process started in had 5; minute 0 had 3 (1 error), minute 1
        // had 1 + 4 (2 errors), and minute 2, still open, 1 so far.
        assert_eq!(tail, vec![(-1, 5, 0), (0, 3, 1), (1, 5, 2), (2, 1, 0)]);
        assert_eq!(
            series[58].p50_seconds.map(|s| s > 0.0005 && s <= 0.001),
            Some(true)
        );
        assert_eq!(series[10].invocations, 0);
        assert_eq!(series[10].p99_seconds, None);
    }

    #[test]
    fn quarters_sum_their_minutes_and_the_open_one_is_live() {
        let history = History::default();
        history.sample(T0, vec![(key("a", 1), tally(0, 0))]);
        let mut total = 0;
        for minute in 1..=20 {
            total += 2;
            history.sample(T0 + minute * MINUTE_MS, vec![(key("a", 1), tally(total, 0))]);
        }
        // 20 minutes closed: the first quarter (15 minutes, 30) is closed, the second
        // holds 5 minutes (10) and 3 more live.
        let now = [(key("a", 1), tally(total + 3, 0))];
        let series = history.series(&function("a"), Window::Day, T0 + 20 * MINUTE_MS + 1, &now);
        assert_eq!(series.len(), 96);
        let last: Vec<u64> = series[94..].iter().map(|p| p.invocations).collect();
        assert_eq!(last, vec![30, 13]);
        assert_eq!(series[95].start_ms, T0 + QUARTER_MS);
    }

    #[test]
    fn a_counter_made_again_counts_from_zero_and_idle_functions_are_not_kept() {
        let history = History::default();
        history.sample(
            T0,
            vec![(key("a", 1), tally(7, 0)), (key("idle", 1), tally(0, 0))],
        );
        // The handle was dropped and made again: its counters restarted.
        history.sample(
            T0 + MINUTE_MS,
            vec![(key("a", 1), tally(2, 0)), (key("idle", 1), tally(0, 0))],
        );
        let series = history.series(&function("a"), Window::Hour, T0 + MINUTE_MS, &[]);
        assert_eq!((series[57].invocations, series[58].invocations), (7, 2));
        let state = history.state.lock().unwrap();
        assert!(state.functions.contains_key(&function("a")));
        assert!(!state.functions.contains_key(&function("idle")));
    }
}

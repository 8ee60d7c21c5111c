//! What `/metrics` shows. Per function version, counters and histograms that the
//! dispatcher and the async pipeline update with an atomic add or two
//! ([`VersionMetrics`]: a handle resolved when the version is deployed, and kept while
//! its function is redeployed, so counters do not restart with every deploy); at a
//! scrape, the gauges read then (instances, queues, the async backlog, buckets, quotas,
//! the process), written by [`Engine::write_metrics`].
//!
//! A scrape reads the store with a handful of grouped queries, never one per function,
//! and holds no lock an invocation takes while it writes.

use crate::registry::Version;
use crate::{Engine, EngineError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use wisp_core::billing::{MB_MS_PER_GB_SECOND, Plan, Used};
use wisp_core::exposition::{Buckets, Exposition, Kind, Label};
use wisp_core::wall::now_ms;
use wisp_core::{ErrorCode, FunctionName, Namespace};
use wisp_store::InvocationRecord;

/// The histograms' upper bounds, in microseconds: 100 µs to 15 minutes (the longest
/// timeout).
const BOUNDS_US: [u64; 20] = [
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
    900_000_000,
];

/// The bounds in seconds, as the exposition writes them.
const BOUNDS_SECONDS: [f64; 20] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 300.0, 900.0,
];

/// Counts per bucket (the last is `+Inf`) and the sum, in microseconds.
pub(crate) struct Histogram {
    counts: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, us: u64) {
        let bucket = BOUNDS_US.partition_point(|&bound| bound < us);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn write(&self, e: &mut Exposition, name: &str, labels: &[Label<'_>]) {
        let counts: [u64; BOUNDS_US.len() + 1] =
            std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed));
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        e.histogram(
            name,
            labels,
            Buckets {
                bounds: &BOUNDS_SECONDS,
                counts: &counts,
                sum,
            },
        );
    }
}

/// One version's counters and histograms: see the module docs.
pub(crate) struct VersionMetrics {
    /// Admitted (given a slot).
    pub(crate) invocations: AtomicU64,
    pub(crate) cold_starts: AtomicU64,
    /// Refused for want of a slot (its own or its namespace's).
    pub(crate) throttled: AtomicU64,
    /// Ended invocations by outcome: `[0]` success, `[1 + i]` [`ErrorCode::ALL`]`[i]`.
    outcomes: Box<[AtomicU64]>,
    duration: Histogram,
    init: Histogram,
    queue: Histogram,
    /// Async events run again after a failure, and given up (dead letters).
    pub(crate) retries: AtomicU64,
    pub(crate) dead_letters: AtomicU64,
}

impl VersionMetrics {
    fn new() -> VersionMetrics {
        VersionMetrics {
            invocations: AtomicU64::new(0),
            cold_starts: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            outcomes: (0..=ErrorCode::ALL.len()).map(|_| AtomicU64::new(0)).collect(),
            duration: Histogram::new(),
            init: Histogram::new(),
            queue: Histogram::new(),
            retries: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
        }
    }

    /// Counts an ended invocation as its record says.
    pub(crate) fn observe(&self, record: &InvocationRecord) {
        let outcome = match &record.error {
            None => 0,
            Some(code) => ErrorCode::ALL
                .iter()
                .position(|c| c.as_str() == code)
                .map_or(1 + ErrorCode::Internal as usize, |i| i + 1),
        };
        self.outcomes[outcome].fetch_add(1, Ordering::Relaxed);
        self.duration.observe(record.run_us);
        self.queue.observe(record.queue_us);
        if let Some(init) = record.init_us {
            self.init.observe(init);
        }
    }

    /// Its counters now, as an alarm or the dashboard reads them.
    fn tally(&self) -> Tally {
        Tally {
            ended: self.outcomes.iter().map(|n| n.load(Ordering::Relaxed)).sum(),
            errors: self.errors(),
            throttled: self.throttled.load(Ordering::Relaxed),
            durations: std::array::from_fn(|i| self.duration.counts[i].load(Ordering::Relaxed)),
        }
    }

    fn errors(&self) -> u64 {
        self.outcomes[1..].iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }
}

pub(crate) type VersionKey = (Namespace, FunctionName, u32);

/// A metric family written from a list of `T`: its name, help, and each one's value.
type Family<T, V> = (&'static str, &'static str, fn(&T) -> V);

/// A histogram family of versions: its name, help, and each version's histogram.
type HistogramFamily = (&'static str, &'static str, fn(&VersionMetrics) -> &Histogram);

/// A schedule's runs: fired, missed (skipped while Wisp was down, or while its function
/// was disabled or its namespace stopped), and the slot it last fired for.
#[derive(Default)]
struct ScheduleRuns {
    fired: u64,
    missed: u64,
    last_fired_ms: Option<i64>,
}

/// Every deployed version's [`VersionMetrics`], and what `/metrics` needs besides.
pub(crate) struct Metrics {
    versions: Mutex<HashMap<VersionKey, Arc<VersionMetrics>>>,
    /// Per schedule (namespace, function, expression): changed a few times a minute at
    /// most, so a lock is fine.
    schedules: Mutex<std::collections::BTreeMap<(Namespace, FunctionName, String), ScheduleRuns>>,
    started: Instant,
    started_ms: i64,
    /// The bearer token that may read `/metrics` (every namespace's), if one is set.
    token: arc_swap::ArcSwapOption<String>,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        Metrics {
            versions: Mutex::new(HashMap::new()),
            schedules: Mutex::new(std::collections::BTreeMap::new()),
            started: Instant::now(),
            started_ms: now_ms(),
            token: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// The handle of a version: the one it had, if its function was deployed before.
    pub(crate) fn version(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        number: u32,
    ) -> Arc<VersionMetrics> {
        let mut versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        versions
            .entry((namespace.clone(), function.clone(), number))
            .or_insert_with(|| Arc::new(VersionMetrics::new()))
            .clone()
    }

    /// Counts a schedule's run for `slot`.
    pub(crate) fn schedule_fired(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        schedule: &str,
        slot: i64,
    ) {
        let mut schedules = self.schedules.lock().unwrap_or_else(PoisonError::into_inner);
        let runs = schedules
            .entry((namespace.clone(), function.clone(), schedule.to_owned()))
            .or_default();
        runs.fired += 1;
        runs.last_fired_ms = Some(slot);
    }

    /// The slot a schedule last fired for since the server started, if it has.
    pub(crate) fn schedule_last_fired(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        schedule: &str,
    ) -> Option<i64> {
        let schedules = self.schedules.lock().unwrap_or_else(PoisonError::into_inner);
        schedules
            .get(&(namespace.clone(), function.clone(), schedule.to_owned()))
            .and_then(|runs| runs.last_fired_ms)
    }

    /// Counts `count` slots of a schedule that did not run.
    pub(crate) fn schedule_missed(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        schedule: &str,
        count: u64,
    ) {
        let mut schedules = self.schedules.lock().unwrap_or_else(PoisonError::into_inner);
        schedules
            .entry((namespace.clone(), function.clone(), schedule.to_owned()))
            .or_default()
            .missed += count;
    }

    /// Forgets the handles no deployed version holds any more.
    fn prune(&self) {
        let mut versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        versions.retain(|_, handle| Arc::strong_count(handle) > 1);
    }
}

/// How much of each limit a namespace's quota sets it has used this month, as a
/// fraction (past 1 once over; 1 for a limit of 0): `requests`, `gb_seconds`, `budget`.
pub(crate) fn quota_used(plan: &Plan, used: Used) -> Vec<(&'static str, f64)> {
    let quota = &plan.quota;
    let gb = used.mb_ms as f64 / MB_MS_PER_GB_SECOND as f64;
    let limits = [
        (
            "requests",
            quota.requests.map(|q| (used.requests as f64, q as f64)),
        ),
        ("gb_seconds", quota.gb_seconds.map(|q| (gb, q as f64))),
        (
            "budget",
            quota
                .budget
                .map(|b| (plan.cost(used).picodollars() as f64, b.picodollars() as f64)),
        ),
    ];
    limits
        .into_iter()
        .filter_map(|(limit, pair)| {
            let (used, quota) = pair?;
            Some((limit, if quota <= 0.0 { 1.0 } else { used / quota }))
        })
        .collect()
}

/// One version's counters at an instant, as an alarm reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Tally {
    /// Invocations that ended, and of them in an error.
    pub(crate) ended: u64,
    pub(crate) errors: u64,
    pub(crate) throttled: u64,
    /// The duration histogram's counts per bucket (the last is `+Inf`).
    pub(crate) durations: [u64; BOUNDS_US.len() + 1],
}

impl Tally {
    /// What was counted between `before` and `self` (a counter that went back, which a
    /// handle made again does, counts from 0).
    pub(crate) fn since(&self, before: &Tally) -> Tally {
        if self.ended < before.ended || self.throttled < before.throttled {
            return *self;
        }
        Tally {
            ended: self.ended - before.ended,
            errors: self.errors.saturating_sub(before.errors),
            throttled: self.throttled - before.throttled,
            durations: std::array::from_fn(|i| self.durations[i].saturating_sub(before.durations[i])),
        }
    }

    /// Adds `other`'s counts to these.
    pub(crate) fn add(&mut self, other: &Tally) {
        self.ended += other.ended;
        self.errors += other.errors;
        self.throttled += other.throttled;
        for (sum, n) in self.durations.iter_mut().zip(other.durations) {
            *sum += n;
        }
    }

    /// The `q` quantile (0 to 1) of the durations counted, in seconds, estimated as
    /// Prometheus' `histogram_quantile` does: linearly within the bucket it falls in
    /// (the highest finite bound when it falls in `+Inf`). `None` when none was counted.
    pub(crate) fn duration_quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.durations.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &n) in self.durations.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let Some(&upper) = BOUNDS_SECONDS.get(i) else {
                    return BOUNDS_SECONDS.last().copied();
                };
                let lower = if i == 0 { 0.0 } else { BOUNDS_SECONDS[i - 1] };
                return Some(lower + (upper - lower) * (rank - below as f64) / n as f64);
            }
            below += n;
        }
        BOUNDS_SECONDS.last().copied()
    }
}

impl Metrics {
    /// The counters now of every version `wanted` picks (by namespace and function).
    pub(crate) fn counters(
        &self,
        wanted: impl Fn(&Namespace, &FunctionName) -> bool,
    ) -> Vec<(VersionKey, Tally)> {
        let versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        versions
            .iter()
            .filter(|((ns, f, _), _)| wanted(ns, f))
            .map(|(key, m)| (key.clone(), m.tally()))
            .collect()
    }

    /// Each live version of a function with its counters now, by version number.
    pub(crate) fn tallies(&self, namespace: &Namespace, function: &FunctionName) -> Vec<(u32, Tally)> {
        let versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        versions
            .iter()
            .filter(|((ns, f, _), _)| ns == namespace && f == function)
            .map(|((_, _, number), m)| (*number, m.tally()))
            .collect()
    }
}

/// A function's counts since the server started, over all its versions: what the
/// dashboard shows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FunctionStats {
    /// Invocations that ended, and of them in an error.
    pub invocations: u64,
    pub errors: u64,
    pub throttles: u64,
    pub cold_starts: u64,
    /// Duration percentiles in seconds, estimated from the histogram; `None` before
    /// the first invocation ends.
    pub p50_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
}

impl FunctionStats {
    fn new(total: &Tally, cold_starts: u64) -> FunctionStats {
        FunctionStats {
            invocations: total.ended,
            errors: total.errors,
            throttles: total.throttled,
            cold_starts,
            p50_seconds: total.duration_quantile(0.5),
            p99_seconds: total.duration_quantile(0.99),
        }
    }
}

impl Engine {
    /// Each deployed function of a namespace with its counts since the server started,
    /// in one pass over the counters (a page of 1,000 functions reads them once).
    pub fn namespace_stats(&self, namespace: &Namespace) -> HashMap<FunctionName, FunctionStats> {
        let mut totals: HashMap<FunctionName, (Tally, u64)> = HashMap::new();
        {
            let versions = self
                .metrics
                .versions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for ((ns, function, _), m) in versions.iter() {
                if ns != namespace {
                    continue;
                }
                let (total, cold) = totals.entry(function.clone()).or_default();
                total.add(&m.tally());
                *cold += m.cold_starts.load(Ordering::Relaxed);
            }
        }
        totals
            .into_iter()
            .map(|(function, (total, cold))| (function, FunctionStats::new(&total, cold)))
            .collect()
    }

    /// A function's counts since the server started (zero for one not deployed).
    pub fn function_stats(&self, namespace: &Namespace, function: &FunctionName) -> FunctionStats {
        self.namespace_stats(namespace)
            .remove(function)
            .unwrap_or_default()
    }
}

/// The shortest a metrics token may be.
pub const METRICS_TOKEN_MIN: usize = 32;

impl Engine {
    /// Sets (or clears) the bearer token that may read `/metrics` for every namespace
    /// and nothing else: what a Prometheus server scrapes with. Refused when shorter
    /// than [`METRICS_TOKEN_MIN`] characters or not printable ASCII.
    pub fn set_metrics_token(&self, token: Option<String>) -> Result<(), EngineError> {
        if let Some(token) = &token
            && (token.len() < METRICS_TOKEN_MIN || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(EngineError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "the metrics token must be at least {METRICS_TOKEN_MIN} printable ASCII characters without spaces (e.g. `openssl rand -hex 32`)"
                ),
            ));
        }
        self.metrics.token.store(token.map(Arc::new));
        Ok(())
    }

    /// Whether `token` is the metrics token (compared in constant time).
    pub fn is_metrics_token(&self, token: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.metrics
            .token
            .load()
            .as_deref()
            .is_some_and(|expected| bool::from(expected.as_bytes().ct_eq(token.as_bytes())))
    }

    /// Writes every metric of `namespace`'s (`None`: of every namespace, and of the
    /// process) to `e`.
    pub async fn write_metrics(
        &self,
        e: &mut Exposition,
        namespace: Option<&Namespace>,
    ) -> Result<(), EngineError> {
        self.metrics.prune();
        let functions = self.functions.load();
        let mut versions: Vec<_> = functions
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|only| ns == only))
            .flat_map(|(_, deployed)| deployed.versions().cloned())
            .collect();
        versions.sort_by(|a, b| {
            (&a.namespace, &a.function, a.record.number).cmp(&(&b.namespace, &b.function, b.record.number))
        });
        let rows: Vec<(Arc<Version>, String)> = versions
            .into_iter()
            .map(|v| {
                let number = v.record.number.to_string();
                (v, number)
            })
            .collect();

        e.family(
            "wisp_invocations",
            Kind::Counter,
            "Invocations that ended, by outcome (`success` or the error code).",
        );
        for (v, number) in &rows {
            let m = &v.pool.metrics;
            for (i, n) in m.outcomes.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                // Success and function errors always; other outcomes once they happen.
                if n == 0 && i != 0 && i != 1 + ErrorCode::FunctionError as usize {
                    continue;
                }
                let outcome = if i == 0 {
                    "success"
                } else {
                    ErrorCode::ALL[i - 1].as_str()
                };
                let [a, b, c] = labels(v, number);
                e.counter("wisp_invocations", &[a, b, c, ("outcome", outcome)], n);
            }
        }
        let counters: [Family<VersionMetrics, u64>; 6] = [
            (
                "wisp_invocation_errors",
                "Invocations that ended in an error, of any kind.",
                VersionMetrics::errors,
            ),
            (
                "wisp_throttles",
                "Invocations refused for want of a slot (the function's max_concurrency or the namespace's limit).",
                |m| m.throttled.load(Ordering::Relaxed),
            ),
            (
                "wisp_cold_starts",
                "Invocations that loaded code or started an instance first.",
                |m| m.cold_starts.load(Ordering::Relaxed),
            ),
            (
                "wisp_invocations_started",
                "Invocations admitted (given a slot).",
                |m| m.invocations.load(Ordering::Relaxed),
            ),
            (
                "wisp_async_retries",
                "Async events run again after a failed attempt.",
                |m| m.retries.load(Ordering::Relaxed),
            ),
            (
                "wisp_async_dead_letters",
                "Async events given up (turned into dead letters).",
                |m| m.dead_letters.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            e.family(name, Kind::Counter, help);
            for (v, number) in &rows {
                e.counter(name, &labels(v, number), value(&v.pool.metrics));
            }
        }
        let histograms: [HistogramFamily; 3] = [
            (
                "wisp_invocation_duration_seconds",
                "How long invocations ran (a cold start's init included).",
                |m| &m.duration,
            ),
            (
                "wisp_init_duration_seconds",
                "How long cold starts took to load code or start an instance.",
                |m| &m.init,
            ),
            (
                "wisp_queue_wait_seconds",
                "How long invocations waited for a slot.",
                |m| &m.queue,
            ),
        ];
        for (name, help, histogram) in histograms {
            e.family(name, Kind::Histogram, help);
            for (v, number) in &rows {
                histogram(&v.pool.metrics).write(e, name, &labels(v, number));
            }
        }
        let statuses: Vec<_> = rows.iter().map(|(v, _)| v.status()).collect();
        let gauges: [Family<crate::pool::PoolStatus, usize>; 3] = [
            ("wisp_concurrent_executions", "Invocations running now.", |s| {
                s.instances.busy
            }),
            (
                "wisp_queued_invocations",
                "Invocations waiting for a slot now.",
                |s| s.queued,
            ),
            (
                "wisp_idle_instances",
                "Native instances started and waiting for an invocation.",
                |s| s.instances.idle,
            ),
        ];
        for (name, help, value) in gauges {
            e.family(name, Kind::Gauge, help);
            for ((v, number), status) in rows.iter().zip(&statuses) {
                e.gauge(name, &labels(v, number), value(status) as f64);
            }
        }

        self.write_schedule_metrics(e, namespace);
        self.write_namespace_metrics(e, namespace);
        self.write_store_metrics(e, namespace).await?;
        self.write_alarm_metrics(e, namespace).await?;
        if namespace.is_none() {
            self.write_process_metrics(e);
        }
        Ok(())
    }

    /// Per schedule of a deployed function: runs fired and missed, and the last.
    fn write_schedule_metrics(&self, e: &mut Exposition, namespace: Option<&Namespace>) {
        let functions = self.functions.load();
        let schedules = self
            .metrics
            .schedules
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let rows: Vec<_> = schedules
            .iter()
            .filter(|((ns, f, _), _)| {
                namespace.is_none_or(|only| ns == only) && functions.contains_key(&(ns.clone(), f.clone()))
            })
            .collect();
        fn labels((ns, f, s): &(Namespace, FunctionName, String)) -> [Label<'_>; 3] {
            [
                ("namespace", ns.as_str()),
                ("function", f.as_str()),
                ("schedule", s.as_str()),
            ]
        }
        e.family("wisp_schedule_runs", Kind::Counter, "Scheduled runs fired.");
        for (key, runs) in &rows {
            e.counter("wisp_schedule_runs", &labels(key), runs.fired);
        }
        e.family(
            "wisp_schedule_missed_runs",
            Kind::Counter,
            "Scheduled slots that did not run: missed while Wisp was down (past any catch-up), or while the function was disabled or its namespace stopped.",
        );
        for (key, runs) in &rows {
            e.counter("wisp_schedule_missed_runs", &labels(key), runs.missed);
        }
        e.family(
            "wisp_schedule_last_run_timestamp_seconds",
            Kind::Gauge,
            "The slot a schedule last fired for, in seconds since the Unix epoch.",
        );
        for (key, runs) in &rows {
            if let Some(ms) = runs.last_fired_ms {
                e.gauge(
                    "wisp_schedule_last_run_timestamp_seconds",
                    &labels(key),
                    ms as f64 / 1000.0,
                );
            }
        }
    }

    /// Per namespace: the month's usage and what its quota leaves.
    fn write_namespace_metrics(&self, e: &mut Exposition, namespace: Option<&Namespace>) {
        let namespaces: Vec<Namespace> = match namespace {
            Some(only) => vec![only.clone()],
            None => self.namespaces().into_iter().map(|n| n.name).collect(),
        };
        let rows: Vec<_> = namespaces
            .iter()
            .map(|ns| {
                let (used, stopped) = self.month_usage(ns);
                (ns, used, stopped, self.plan(ns))
            })
            .collect();
        e.family(
            "wisp_namespace_month_requests",
            Kind::Gauge,
            "Invocations this calendar month (UTC).",
        );
        for (ns, used, _, _) in &rows {
            e.gauge(
                "wisp_namespace_month_requests",
                &[("namespace", ns.as_str())],
                used.requests as f64,
            );
        }
        e.family(
            "wisp_namespace_month_gigabyte_seconds",
            Kind::Gauge,
            "GB-seconds (memory × billed time) this calendar month (UTC).",
        );
        for (ns, used, _, _) in &rows {
            let gb_seconds = used.mb_ms as f64 / MB_MS_PER_GB_SECOND as f64;
            e.gauge(
                "wisp_namespace_month_gigabyte_seconds",
                &[("namespace", ns.as_str())],
                gb_seconds,
            );
        }
        e.family(
            "wisp_namespace_month_cost_dollars",
            Kind::Gauge,
            "This month's cost past the free tier, at the namespace's prices.",
        );
        for (ns, used, _, plan) in &rows {
            let dollars = plan.cost(*used).picodollars() as f64 / 1e12;
            e.gauge(
                "wisp_namespace_month_cost_dollars",
                &[("namespace", ns.as_str())],
                dollars,
            );
        }
        e.family(
            "wisp_namespace_quota_headroom_ratio",
            Kind::Gauge,
            "What the namespace's quota leaves this month, as a fraction of it (0: stopped), per limit set.",
        );
        for (ns, used, _, plan) in &rows {
            for (limit, fraction) in quota_used(plan, *used) {
                e.gauge(
                    "wisp_namespace_quota_headroom_ratio",
                    &[("namespace", ns.as_str()), ("limit", limit)],
                    (1.0 - fraction).clamp(0.0, 1.0),
                );
            }
        }
        e.family(
            "wisp_namespace_stopped",
            Kind::Gauge,
            "1 while a quota or budget stops the namespace's work.",
        );
        for (ns, _, stopped, _) in &rows {
            e.gauge(
                "wisp_namespace_stopped",
                &[("namespace", ns.as_str())],
                f64::from(u8::from(stopped.is_some())),
            );
        }
    }

    /// What the store holds: the async backlog, queues, buckets.
    async fn write_store_metrics(
        &self,
        e: &mut Exposition,
        namespace: Option<&Namespace>,
    ) -> Result<(), EngineError> {
        let now = now_ms();
        let backlog = self.store.event_backlog(namespace).await?;
        let async_gauges: [Family<wisp_store::EventBacklog, u64>; 3] = [
            (
                "wisp_async_backlog",
                "Async events waiting to run (not running now).",
                |b| b.queued,
            ),
            ("wisp_async_running", "Async events running now.", |b| b.running),
            (
                "wisp_async_dead_letter_queue",
                "Dead letters kept (until redriven or purged).",
                |b| b.failed,
            ),
        ];
        for (name, help, value) in async_gauges {
            e.family(name, Kind::Gauge, help);
            for b in &backlog {
                let labels = [
                    ("namespace", b.namespace.as_str()),
                    ("function", b.function.as_str()),
                ];
                e.gauge(name, &labels, value(b) as f64);
            }
        }
        e.family(
            "wisp_async_oldest_event_age_seconds",
            Kind::Gauge,
            "Age of the oldest async event still pending (0 when none is).",
        );
        for b in &backlog {
            let labels = [
                ("namespace", b.namespace.as_str()),
                ("function", b.function.as_str()),
            ];
            let age = b
                .oldest_pending_ms
                .map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
            e.gauge("wisp_async_oldest_event_age_seconds", &labels, age);
        }

        let depths = self.store.queue_depths(namespace, now).await?;
        let queue_gauges: [Family<wisp_store::QueueDepth, f64>; 3] = [
            (
                "wisp_queue_messages_visible",
                "Queue messages ready to receive.",
                |q| q.stats.visible as f64,
            ),
            (
                "wisp_queue_messages_in_flight",
                "Queue messages received and not yet deleted.",
                |q| q.stats.in_flight as f64,
            ),
            (
                "wisp_queue_messages_delayed",
                "Queue messages sent with a delay not yet over.",
                |q| q.stats.delayed as f64,
            ),
        ];
        for (name, help, value) in queue_gauges {
            e.family(name, Kind::Gauge, help);
            for q in &depths {
                let labels = [("namespace", q.namespace.as_str()), ("queue", q.queue.as_str())];
                e.gauge(name, &labels, value(q));
            }
        }
        e.family(
            "wisp_queue_oldest_message_age_seconds",
            Kind::Gauge,
            "Age of the oldest message in the queue (0 when it is empty).",
        );
        for q in &depths {
            let labels = [("namespace", q.namespace.as_str()), ("queue", q.queue.as_str())];
            let age = q.oldest_sent_ms.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
            e.gauge("wisp_queue_oldest_message_age_seconds", &labels, age);
        }

        let buckets = self.store.list_buckets(namespace).await?;
        e.family("wisp_bucket_objects", Kind::Gauge, "Objects a bucket holds.");
        for b in &buckets {
            let labels = [("namespace", b.namespace.as_str()), ("bucket", b.name.as_str())];
            e.gauge("wisp_bucket_objects", &labels, b.objects as f64);
        }
        e.family("wisp_bucket_bytes", Kind::Gauge, "Bytes a bucket's objects hold.");
        for b in &buckets {
            let labels = [("namespace", b.namespace.as_str()), ("bucket", b.name.as_str())];
            e.gauge("wisp_bucket_bytes", &labels, b.bytes as f64);
        }
        Ok(())
    }

    /// The process: memory, open files, uptime, lines the log queue dropped.
    fn write_process_metrics(&self, e: &mut Exposition) {
        e.family(
            "wisp_build_info",
            Kind::Gauge,
            "1, labelled with the version of Wisp.",
        );
        e.gauge("wisp_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
        e.family(
            "wisp_uptime_seconds",
            Kind::Gauge,
            "Seconds since this server started.",
        );
        e.gauge(
            "wisp_uptime_seconds",
            &[],
            self.metrics.started.elapsed().as_secs_f64(),
        );
        e.family(
            "process_start_time_seconds",
            Kind::Gauge,
            "Start time of the process since the Unix epoch, in seconds.",
        );
        e.gauge(
            "process_start_time_seconds",
            &[],
            self.metrics.started_ms as f64 / 1000.0,
        );
        if let Some(rss) = resident_bytes() {
            e.family(
                "process_resident_memory_bytes",
                Kind::Gauge,
                "Resident memory size in bytes.",
            );
            e.gauge("process_resident_memory_bytes", &[], rss as f64);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            e.family(
                "process_open_fds",
                Kind::Gauge,
                "Number of open file descriptors.",
            );
            e.gauge("process_open_fds", &[], fds.count() as f64);
        }
        e.family(
            "wisp_log_lines_dropped",
            Kind::Counter,
            "Log lines and invocation records dropped because the log queue was full (the store could not keep up).",
        );
        e.counter("wisp_log_lines_dropped", &[], self.logs.dropped());
    }
}

/// A version's labels.
fn labels<'a>(v: &'a Version, number: &'a str) -> [Label<'a>; 3] {
    [
        ("namespace", v.namespace.as_str()),
        ("function", v.function.as_str()),
        ("version", number),
    ]
}

/// The resident set size, from `/proc/self/status` (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_a_bucket_as_prometheus_does() {
        let mut t = Tally::default();
        assert_eq!(t.duration_quantile(0.99), None);
        // 100 durations in (50 ms, 100 ms]: p50 halfway, p99 near the top.
        t.durations[9] = 100;
        assert!((t.duration_quantile(0.5).unwrap() - 0.075).abs() < 1e-9);
        assert!((t.duration_quantile(0.99).unwrap() - 0.0995).abs() < 1e-9);
        // Past the last finite bound: that bound.
        t.durations[BOUNDS_US.len()] = 1_000;
        assert_eq!(t.duration_quantile(0.99), Some(900.0));
        let before = Tally {
            ended: 5,
            errors: 2,
            ..Tally::default()
        };
        let now = Tally {
            ended: 9,
            errors: 3,
            ..Tally::default()
        };
        assert_eq!((now.since(&before).ended, now.since(&before).errors), (4, 1));
        assert_eq!(
            before.since(&now).ended,
            5,
            "a counter that went back counts from 0"
        );
    }

    #[test]
    fn an_observation_lands_in_the_first_bucket_at_or_above_it() {
        let h = Histogram::new();
        h.observe(100);
        h.observe(101);
        h.observe(2_000_000_000);
        assert_eq!(h.counts[0].load(Ordering::Relaxed), 1);
        assert_eq!(h.counts[1].load(Ordering::Relaxed), 1);
        assert_eq!(h.counts[BOUNDS_US.len()].load(Ordering::Relaxed), 1);
        assert_eq!(h.sum_us.load(Ordering::Relaxed), 2_000_000_201);
    }

    #[test]
    fn the_bounds_in_seconds_match_the_bounds_in_microseconds() {
        for (us, s) in BOUNDS_US.iter().zip(BOUNDS_SECONDS) {
            assert!((*us as f64 / 1e6 - s).abs() < 1e-12, "{us} µs vs {s} s");
        }
    }
}

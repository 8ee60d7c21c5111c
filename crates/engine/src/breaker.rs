//! Circuit breakers: one per caller → callee pair ([`BreakerKey`]), held in a
//! registry ([`Breakers`]), each a small state machine over the caller's clock. A
//! function-to-function call, a destination delivery or a subscription delivery asks
//! its breaker first ([`Breaker::admit`]) and reports how the call went on the
//! [`Permit`] it got; an open breaker answers at once with [`Open`] (the API's
//! `circuit_open`, 503 with `Retry-After`), and the call is not made.
//!
//! # Design
//!
//! The states and what moves between them:
//!
//! ```text
//!            failures/calls ≥ failure_rate
//!            and calls ≥ min_calls (over window)
//!   Closed ──────────────────────────────────────▶ Open ◀──────────┐
//!     ▲                                             │               │ a probe fails
//!     │ a probe succeeds                            │ open_for      │ (open_for starts
//!     │ (the window starts empty)                   ▼  passed       │  again)
//!     └──────────────────────────────────────── HalfOpen ───────────┘
//!                                    (at most half_open_probes calls in flight)
//! ```
//!
//! - **Closed** admits every call. Outcomes land in a sliding window of ten buckets,
//!   each a tenth of `window` long; a bucket older than the window is reset when its
//!   slot comes round again, so old failures are forgotten a tenth of a window at a
//!   time. After every report the window is checked: at least `min_calls` calls with
//!   a failure rate at or above `failure_rate` opens the breaker.
//! - **Open** admits nothing: [`Open::retry_after`] says how long until it lets a
//!   probe through. Nothing waits in the breaker: a caller that must (an async
//!   delivery) waits `retry_after` itself and asks again.
//! - **HalfOpen** is entered by the first [`Breaker::admit`] after `open_for` (there
//!   is no timer: the state moves when someone asks). It admits up to
//!   `half_open_probes` calls at once; the first probe to succeed closes the breaker
//!   with an empty window, the first to fail opens it again for a fresh `open_for`.
//!   While every probe slot is taken, callers are answered [`Open`] with
//!   `retry_after = open_for` (how long a failing probe would keep it shut).
//!
//! Each transition bumps a generation, and every permit carries the generation it
//! was admitted in: an outcome reported after the breaker has moved on (a call
//! admitted while closed that fails after it opened, a second probe finishing after
//! the first closed the breaker) is about a past state and changes nothing.
//!
//! A permit dropped without a verdict counts as a **failure**: the usual way to lose
//! one is a timeout wrapped round the call (`tokio::time::timeout` drops the future
//! holding it) or a panic, and both are the callee's calls going wrong. A caller that
//! gives up for its own reasons (its client went away) says so with
//! [`Permit::release`], which counts nothing and frees a probe slot. A dropped
//! permit's failure is dated at the latest time the breaker has been told of (or its
//! admission, if later), since `Drop` has no clock.
//!
//! Time is a [`Duration`] since an origin the caller chooses (the engine's pool
//! clock), as in `wisp_scaling`: nothing here reads a clock, so tests drive it with
//! made-up times. Wall times in [`BreakerView`] are derived from a `wall_now` the
//! caller passes with `now`.
//!
//! Cost: the state and generation are one atomic word, so admitting through a closed
//! breaker takes no lock (a load and an `Arc` clone). Reports, and admits while open
//! or half-open, take the breaker's own mutex for a few dozen instructions. A call
//! admitted in the instant a breaker opens may still go through (it read `Closed`);
//! its outcome is ignored, as above. The registry's map is behind one mutex, taken
//! only to find a pair's breaker: callers on a hot path keep the `Arc<Breaker>`.
//! The ignored test `breaker::tests::cost` measures these paths (no test is timed).

use crate::EngineError;
use serde::{Serialize, Serializer};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use wisp_core::{BreakerConfig, ErrorCode, FunctionName, Namespace, QueueName, UnixMillis};

/// One end of a guarded call: who calls, or what is called.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// A function (any of its versions).
    Function {
        namespace: Namespace,
        name: FunctionName,
    },
    /// A queue messages are sent to.
    Queue { namespace: Namespace, name: QueueName },
    /// A topic whose subscriptions are delivered to (named as written: topics have
    /// no name type of their own yet).
    Topic { namespace: Namespace, name: String },
    /// An HTTP endpoint outside Wisp, by its URL.
    Webhook(String),
}

impl Endpoint {
    /// The namespace the endpoint is in; `None` for a webhook.
    pub fn namespace(&self) -> Option<&Namespace> {
        match self {
            Endpoint::Function { namespace, .. }
            | Endpoint::Queue { namespace, .. }
            | Endpoint::Topic { namespace, .. } => Some(namespace),
            Endpoint::Webhook(_) => None,
        }
    }
}

/// `function:NS/NAME`, `queue:NS/NAME`, `topic:NS/NAME` or `webhook:URL`.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Function { namespace, name } => write!(f, "function:{namespace}/{name}"),
            Endpoint::Queue { namespace, name } => write!(f, "queue:{namespace}/{name}"),
            Endpoint::Topic { namespace, name } => write!(f, "topic:{namespace}/{name}"),
            Endpoint::Webhook(url) => write!(f, "webhook:{url}"),
        }
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a breaker guards: calls from `caller` to `callee`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct BreakerKey {
    pub caller: Endpoint,
    pub callee: Endpoint,
}

impl fmt::Display for BreakerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {}", self.caller, self.callee)
    }
}

/// Where a breaker is in its state machine (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    fn bits(self) -> u64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }

    fn from_bits(bits: u64) -> BreakerState {
        match bits & 3 {
            0 => BreakerState::Closed,
            1 => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }
}

/// A breaker's answer when it admits nothing: the call was not made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the circuit is open; retry after {}", humantime::format_duration(*.retry_after))]
pub struct Open {
    /// How long until the breaker lets a probe through (while half-open with every
    /// probe slot taken: its `open_for`).
    pub retry_after: Duration,
}

impl Open {
    /// The error a caller is answered with: `circuit_open`, with `Retry-After` in
    /// whole seconds rounded up (at least 1).
    pub fn into_error(self, key: &BreakerKey) -> EngineError {
        let mut e = EngineError::new(
            ErrorCode::CircuitOpen,
            format!(
                "the circuit breaker from {} to {} is open after too many failed calls; the call was not made",
                key.caller, key.callee
            ),
        );
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        e.retry_after = Some(u32::try_from(secs.max(1)).unwrap_or(u32::MAX));
        e
    }
}

/// A transition, as [`BreakerView`] shows the last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TransitionView {
    pub from: BreakerState,
    pub to: BreakerState,
    /// When, in Unix milliseconds.
    pub at: UnixMillis,
}

/// A breaker as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BreakerView {
    pub state: BreakerState,
    /// Calls reported over the window now. Only calls admitted while closed count,
    /// and a breaker closes with an empty window: while open or half-open, these are
    /// the calls that opened it, until they age out.
    pub calls: u64,
    /// Of those, the failed ones.
    pub failures: u64,
    /// When it last opened, in Unix milliseconds, while open or half-open.
    pub opened_at: Option<UnixMillis>,
    /// While open: when it lets probes through, in Unix milliseconds.
    pub half_open_at: Option<UnixMillis>,
    /// While half-open: the probes in flight.
    pub probes_in_flight: u32,
    pub last_transition: Option<TransitionView>,
    /// Every transition since the breaker was made.
    pub transitions: u64,
    pub config: BreakerConfig,
}

/// The ten buckets of a sliding window.
const BUCKETS: usize = 10;

/// One tenth of a window: the calls and failures reported in time slot `slot`.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    slot: u64,
    calls: u64,
    failures: u64,
}

/// Calls and failures over the last `BUCKETS` slots of `window / BUCKETS` each.
#[derive(Debug, Default)]
struct Window {
    buckets: [Bucket; BUCKETS],
    /// The newest slot reported or asked about: reports may come a little out of order
    /// (threads read the clock before they lock), and the window ends here.
    newest: u64,
}

impl Window {
    /// The slot `now` falls in, for a window of `window`.
    fn slot(now: Duration, window: Duration) -> u64 {
        let width = (window.as_nanos() / BUCKETS as u128).max(1);
        u64::try_from(now.as_nanos() / width).unwrap_or(u64::MAX)
    }

    fn index(slot: u64) -> usize {
        // The remainder is below BUCKETS, so it fits.
        usize::try_from(slot % BUCKETS as u64).unwrap_or(0)
    }

    fn record(&mut self, slot: u64, failed: bool) {
        self.newest = self.newest.max(slot);
        let bucket = &mut self.buckets[Window::index(slot)];
        if bucket.slot > slot {
            // A whole window older than what the bucket holds: forgotten already.
            return;
        }
        if bucket.slot < slot {
            *bucket = Bucket {
                slot,
                calls: 0,
                failures: 0,
            };
        }
        bucket.calls += 1;
        bucket.failures += u64::from(failed);
    }

    /// (calls, failures) over the window that ends at the newest of `slot` and the
    /// slots seen.
    fn totals(&self, slot: u64) -> (u64, u64) {
        let end = self.newest.max(slot);
        self.buckets
            .iter()
            .filter(|b| b.slot <= end && end - b.slot < BUCKETS as u64)
            .fold((0, 0), |(c, f), b| (c + b.calls, f + b.failures))
    }
}

/// What the breaker's mutex guards.
#[derive(Debug)]
struct Inner {
    config: BreakerConfig,
    state: BreakerState,
    /// Bumped by every transition; also the count of them.
    generation: u64,
    window: Window,
    /// When it last opened, while open or half-open.
    opened_at: Option<Duration>,
    /// Probes admitted and not yet reported, while half-open.
    probes: u32,
    /// The latest time the breaker has been told of (what a dropped permit's failure
    /// is dated with).
    latest: Duration,
    last_transition: Option<(BreakerState, BreakerState, Duration)>,
}

/// The breaker of one caller → callee pair. See the module docs.
#[derive(Debug)]
pub struct Breaker {
    /// `generation << 2 | state`: what a closed admit reads, without the lock. Written
    /// only with `inner` locked.
    word: AtomicU64,
    inner: Mutex<Inner>,
}

/// How a call went, as a permit reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    /// No verdict: counts nothing, frees a probe slot.
    Released,
}

impl Breaker {
    /// A closed breaker with an empty window.
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            word: AtomicU64::new(BreakerState::Closed.bits()),
            inner: Mutex::new(Inner {
                config,
                state: BreakerState::Closed,
                generation: 0,
                window: Window::default(),
                opened_at: None,
                probes: 0,
                latest: Duration::ZERO,
                last_transition: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic cannot leave `Inner` half-changed in a way that matters more than
        // refusing every call forever would.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks to make a call at `now`: a permit to report its outcome on, or [`Open`]
    /// at once (the call must not be made). Never blocks beyond the breaker's own
    /// short lock, and takes none while closed.
    pub fn admit(self: &Arc<Self>, now: Duration) -> Result<Permit, Open> {
        let word = self.word.load(Ordering::Acquire);
        if BreakerState::from_bits(word) == BreakerState::Closed {
            return Ok(self.permit(word >> 2, false, now));
        }
        let mut inner = self.lock();
        inner.latest = inner.latest.max(now);
        match inner.state {
            BreakerState::Closed => Ok(self.permit(inner.generation, false, now)),
            BreakerState::Open => {
                let until = inner
                    .opened_at
                    .unwrap_or(now)
                    .saturating_add(inner.config.open_for);
                if now < until {
                    return Err(Open {
                        retry_after: until - now,
                    });
                }
                self.transition(&mut inner, BreakerState::HalfOpen, now);
                inner.probes = 1;
                Ok(self.permit(inner.generation, true, now))
            }
            BreakerState::HalfOpen => {
                if inner.probes < inner.config.half_open_probes {
                    inner.probes += 1;
                    Ok(self.permit(inner.generation, true, now))
                } else {
                    Err(Open {
                        retry_after: inner.config.open_for,
                    })
                }
            }
        }
    }

    fn permit(self: &Arc<Self>, generation: u64, probe: bool, now: Duration) -> Permit {
        Permit {
            breaker: self.clone(),
            generation,
            probe,
            admitted: now,
            reported: false,
        }
    }

    /// The state now (one atomic load: for a quick look, not a decision).
    pub fn state(&self) -> BreakerState {
        BreakerState::from_bits(self.word.load(Ordering::Acquire))
    }

    /// The breaker as the API shows it, at `now` (the window forgets what is older),
    /// with wall times derived from `wall_now`, the wall clock at `now`.
    pub fn view(&self, now: Duration, wall_now: UnixMillis) -> BreakerView {
        let inner = self.lock();
        // `at` may be past or (`half_open_at`) still to come.
        let wall = |at: Duration| {
            if at <= now {
                wall_now - wisp_core::wall::millis(now - at)
            } else {
                wall_now + wisp_core::wall::millis(at - now)
            }
        };
        let (calls, failures) = inner.window.totals(Window::slot(now, inner.config.window));
        BreakerView {
            state: inner.state,
            calls,
            failures,
            opened_at: inner.opened_at.map(wall),
            half_open_at: match (inner.state, inner.opened_at) {
                (BreakerState::Open, Some(at)) => Some(wall(at.saturating_add(inner.config.open_for))),
                _ => None,
            },
            probes_in_flight: inner.probes,
            last_transition: inner.last_transition.map(|(from, to, at)| TransitionView {
                from,
                to,
                at: wall(at),
            }),
            transitions: inner.generation,
            config: inner.config,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> BreakerConfig {
        self.lock().config
    }

    /// Changes the settings; they apply from the next admit or report. The window's
    /// counts are kept, unless `window` itself changed: then it starts empty.
    pub fn set_config(&self, config: BreakerConfig) {
        let mut inner = self.lock();
        if inner.config.window != config.window {
            inner.window = Window::default();
        }
        inner.config = config;
    }

    /// Moves to `to` at `now`. Call with the lock held.
    fn transition(&self, inner: &mut Inner, to: BreakerState, now: Duration) {
        inner.last_transition = Some((inner.state, to, now));
        inner.state = to;
        inner.generation += 1;
        inner.probes = 0;
        match to {
            BreakerState::Open => inner.opened_at = Some(now),
            BreakerState::Closed => {
                inner.opened_at = None;
                inner.window = Window::default();
            }
            BreakerState::HalfOpen => {}
        }
        self.word
            .store(inner.generation << 2 | to.bits(), Ordering::Release);
    }

    /// A permit's outcome. `now` is `None` for a dropped permit.
    fn report(&self, permit: &Permit, outcome: Outcome, now: Option<Duration>) {
        let mut inner = self.lock();
        let now = now.unwrap_or(inner.latest.max(permit.admitted));
        inner.latest = inner.latest.max(now);
        if permit.generation != inner.generation {
            // About a state the breaker has left.
            return;
        }
        match (inner.state, outcome) {
            (BreakerState::Closed, Outcome::Released) => {}
            (BreakerState::Closed, _) => {
                let slot = Window::slot(now, inner.config.window);
                inner.window.record(slot, outcome == Outcome::Failure);
                let (calls, failures) = inner.window.totals(slot);
                // calls ≥ min_calls ≥ 1, so the division is defined.
                if calls >= u64::from(inner.config.min_calls)
                    && failures as f64 / calls as f64 >= inner.config.failure_rate
                {
                    self.transition(&mut inner, BreakerState::Open, now);
                }
            }
            (BreakerState::HalfOpen, outcome) if permit.probe => {
                inner.probes = inner.probes.saturating_sub(1);
                match outcome {
                    Outcome::Success => self.transition(&mut inner, BreakerState::Closed, now),
                    Outcome::Failure => self.transition(&mut inner, BreakerState::Open, now),
                    Outcome::Released => {}
                }
            }
            // No permit is admitted while open, and none but probes while half-open.
            _ => {}
        }
    }
}

/// Leave to make one call, from [`Breaker::admit`]. Report how the call went with
/// [`Permit::success`] or [`Permit::failure`], or give it back with
/// [`Permit::release`]; dropped without any of them, it counts as a failure (see the
/// module docs).
#[derive(Debug)]
#[must_use = "a permit dropped without a report counts as a failure"]
pub struct Permit {
    breaker: Arc<Breaker>,
    generation: u64,
    /// Admitted half-open, as one of its probes.
    probe: bool,
    admitted: Duration,
    reported: bool,
}

impl Permit {
    /// Whether the call is a half-open probe (its outcome decides the state).
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The call succeeded at `now`.
    pub fn success(mut self, now: Duration) {
        self.finish(Outcome::Success, Some(now));
    }

    /// The call failed at `now` (the callee's failure: an error, a timeout, a
    /// crash; not a refusal of the caller's own making).
    pub fn failure(mut self, now: Duration) {
        self.finish(Outcome::Failure, Some(now));
    }

    /// The call was abandoned for reasons that say nothing about the callee (its
    /// caller went away): counts nothing, and frees a probe slot.
    pub fn release(mut self) {
        self.finish(Outcome::Released, None);
    }

    fn finish(&mut self, outcome: Outcome, now: Option<Duration>) {
        if !self.reported {
            self.reported = true;
            self.breaker.report(self, outcome, now);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.finish(Outcome::Failure, None);
    }
}

/// Every pair's breaker, made on first use. See the module docs.
#[derive(Debug, Default)]
pub struct Breakers {
    map: Mutex<HashMap<BreakerKey, Arc<Breaker>>>,
}

impl Breakers {
    pub fn new() -> Breakers {
        Breakers::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<BreakerKey, Arc<Breaker>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The breaker of `key`, made closed with `config` if there is none; an existing
    /// one is brought to `config` if its settings differ.
    pub fn breaker(&self, key: &BreakerKey, config: &BreakerConfig) -> Arc<Breaker> {
        let breaker = {
            let mut map = self.lock();
            // Looked up before inserting: a hit clones no key.
            match map.get(key) {
                Some(b) => b.clone(),
                None => {
                    let b = Arc::new(Breaker::new(*config));
                    map.insert(key.clone(), b.clone());
                    return b;
                }
            }
        };
        if breaker.config() != *config {
            breaker.set_config(*config);
        }
        breaker
    }

    /// [`Breaker::admit`] on `key`'s breaker.
    pub fn admit(&self, key: &BreakerKey, config: &BreakerConfig, now: Duration) -> Result<Permit, Open> {
        self.breaker(key, config).admit(now)
    }

    /// The breakers `keep` picks (`|k| &k.callee == callee`, say), sorted by key, as
    /// the API shows them at `now` (wall clock `wall_now`).
    pub fn list(
        &self,
        keep: impl Fn(&BreakerKey) -> bool,
        now: Duration,
        wall_now: UnixMillis,
    ) -> Vec<(BreakerKey, BreakerView)> {
        let picked: Vec<(BreakerKey, Arc<Breaker>)> = self
            .lock()
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, b)| (k.clone(), b.clone()))
            .collect();
        // Viewed outside the map's lock: each view takes its breaker's.
        let mut list: Vec<_> = picked
            .into_iter()
            .map(|(k, b)| (k, b.view(now, wall_now)))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    /// Forgets the breakers `keep` does not pick (those of a deleted function, say).
    /// Permits of a forgotten breaker still report to it, harmlessly.
    pub fn retain(&self, keep: impl Fn(&BreakerKey) -> bool) {
        self.lock().retain(|k, _| keep(k));
    }

    /// Forgets breakers that hold nothing worth keeping at `now`: closed, no calls
    /// over their window, and no permit or holder outside the registry.
    pub fn prune(&self, now: Duration) {
        self.lock().retain(|_, b| {
            if Arc::strong_count(b) > 1 {
                return true;
            }
            let inner = b.lock();
            let slot = Window::slot(now, inner.config.window);
            inner.state != BreakerState::Closed || inner.window.totals(slot).0 > 0
        });
    }

    /// How many breakers the registry holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;

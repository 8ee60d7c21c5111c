//! Quotas and budgets: what each namespace has used this calendar month (UTC), held in
//! memory and checked at admission, so that a spent quota stops work without a store
//! read on the request path.
//!
//! # Design
//!
//! Each namespace has a [`Ledger`]. Its month's usage is what the store's rollup held
//! at the last reconcile ([`wisp_store::Usage`]) plus what this node counted that the
//! store did not yet have: requests are counted at admission (so a request quota is
//! exact on one node: of a burst, exactly the allowed number get in), MB-ms when a run
//! finishes, and both are marked written when the log writer has appended the records
//! (or lost them). A reconcile, once a second, reads the month's totals under the same
//! lock as the writer's appends, so the store's figure and "written" agree; it brings in
//! other nodes' usage, the month's turn, and settings changed anywhere.
//!
//! Admission reads one flag when the namespace has no limit, and one counter more for a
//! request quota. GB-seconds and budget limits are looked at when a run finishes: the
//! run that crosses one completes, and the next is refused.

use crate::{Engine, EngineError};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use wisp_core::billing::{Limit, Plan, Prices, Used, month_of};
use wisp_core::wall::{now_ms, rfc3339_s};
use wisp_core::{ErrorCode, Namespace, UnixMillis};
use wisp_store::{InvocationRecord, NamespaceRecord, Store, UsageGrouping, UsageQuery};

/// How often the ledgers are reconciled with the store and the settings.
const RECONCILE: Duration = Duration::from_secs(1);

/// The server's free tier: Lambda's (a million requests and 400,000 GB-seconds a month).
pub const FREE_REQUESTS: u64 = 1_000_000;
pub const FREE_GB_SECONDS: u64 = 400_000;

/// Every namespace's ledger, and the server's plan.
pub(crate) struct Quotas {
    ledgers: ArcSwap<HashMap<Namespace, Arc<Ledger>>>,
    /// Held by the log writer while it appends records and marks them written, and by a
    /// reconcile while it reads the store's totals and sets the bases.
    pub(crate) sync: tokio::sync::Mutex<()>,
    /// Held while a ledger is added.
    adding: Mutex<()>,
    server: ArcSwap<Plan>,
}

/// Something to record in the audit trail: a threshold passed, or a limit reached.
struct Notice {
    action: &'static str,
    detail: String,
}

/// One namespace's month.
pub(crate) struct Ledger {
    plan: ArcSwap<Plan>,
    /// Whether the plan limits anything (else admission only counts).
    limited: AtomicBool,
    /// The start of the month counted.
    month: AtomicI64,
    /// The store's totals at the last reconcile, less what this node had written by then.
    base_requests: AtomicI64,
    base_mb_ms: AtomicI64,
    base_reserved_mb_ms: AtomicI64,
    /// Reserved capacity held, as the store has it (the capacity meter writes it there).
    capacity_mb_ms: AtomicU64,
    /// Counted here: requests at admission (less those refunded), MB-ms at finish.
    counted_requests: AtomicU64,
    counted_mb_ms: AtomicU64,
    counted_reserved_mb_ms: AtomicU64,
    /// The part of the counts appended to the store (or lost on the way).
    written_requests: AtomicU64,
    written_mb_ms: AtomicU64,
    written_reserved_mb_ms: AtomicU64,
    /// 0: open; else the [`Limit`] reached, as its index + 1.
    stopped: AtomicU8,
    /// Per limit, this month: warned (bit 0-2), reached (bits 4-6).
    noted: AtomicU8,
    /// Set when work stopped and then did not: held events are to be released.
    reopened: AtomicBool,
    notices: Mutex<Vec<Notice>>,
}

fn limit_code(limit: Option<Limit>) -> u8 {
    limit.map_or(0, |l| {
        Limit::ALL.iter().position(|&x| x == l).map_or(0, |i| i as u8 + 1)
    })
}

fn code_limit(code: u8) -> Option<Limit> {
    code.checked_sub(1)
        .and_then(|i| Limit::ALL.get(usize::from(i)).copied())
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Ledger {
    fn new(plan: Plan, month: UnixMillis) -> Ledger {
        Ledger {
            limited: AtomicBool::new(plan.limits_anything()),
            plan: ArcSwap::from_pointee(plan),
            month: AtomicI64::new(month),
            base_requests: AtomicI64::new(0),
            base_mb_ms: AtomicI64::new(0),
            base_reserved_mb_ms: AtomicI64::new(0),
            capacity_mb_ms: AtomicU64::new(0),
            counted_requests: AtomicU64::new(0),
            counted_mb_ms: AtomicU64::new(0),
            counted_reserved_mb_ms: AtomicU64::new(0),
            written_requests: AtomicU64::new(0),
            written_mb_ms: AtomicU64::new(0),
            written_reserved_mb_ms: AtomicU64::new(0),
            stopped: AtomicU8::new(0),
            noted: AtomicU8::new(0),
            reopened: AtomicBool::new(false),
            notices: Mutex::new(Vec::new()),
        }
    }

    /// The month's usage as known here.
    pub(crate) fn used(&self) -> Used {
        let total = |base: &AtomicI64, counted: &AtomicU64| {
            let n = base.load(Ordering::Acquire) + signed(counted.load(Ordering::Acquire));
            u64::try_from(n).unwrap_or(0)
        };
        Used {
            requests: total(&self.base_requests, &self.counted_requests),
            mb_ms: total(&self.base_mb_ms, &self.counted_mb_ms),
            reserved_mb_ms: total(&self.base_reserved_mb_ms, &self.counted_reserved_mb_ms),
            capacity_mb_ms: self.capacity_mb_ms.load(Ordering::Acquire),
        }
    }

    /// The limit that stops work now, if any.
    pub(crate) fn stopped(&self) -> Option<Limit> {
        code_limit(self.stopped.load(Ordering::Acquire))
    }

    /// `quota_exceeded` when a limit stops the namespace's work now.
    pub(crate) fn refuse_if_stopped(&self, namespace: &Namespace) -> Result<(), EngineError> {
        match self.stopped() {
            Some(limit) => Err(exceeded(namespace, limit)),
            None => Ok(()),
        }
    }

    pub(crate) fn plan(&self) -> Plan {
        **self.plan.load()
    }

    /// Counts a request, or says which limit refuses it.
    fn admit(&self) -> Result<(), Limit> {
        if let Some(limit) = self.stopped() {
            return Err(limit);
        }
        if !self.limited.load(Ordering::Relaxed) {
            self.counted_requests.fetch_add(1, Ordering::AcqRel);
            return Ok(());
        }
        let max = self.plan.load().quota.requests;
        let before = self.counted_requests.fetch_add(1, Ordering::AcqRel);
        if let Some(max) = max
            && self.base_requests.load(Ordering::Acquire) + signed(before) >= signed(max)
        {
            self.counted_requests.fetch_sub(1, Ordering::AcqRel);
            self.stop(Some(Limit::Requests));
            return Err(Limit::Requests);
        }
        Ok(())
    }

    /// A run finished: counts its MB-ms (and whether they ran on reserved capacity) and
    /// looks at the limits.
    fn finished(&self, mb_ms: u64, reserved: bool) {
        if reserved {
            self.counted_reserved_mb_ms.fetch_add(mb_ms, Ordering::AcqRel);
        }
        self.counted_mb_ms.fetch_add(mb_ms, Ordering::AcqRel);
        if self.limited.load(Ordering::Relaxed) {
            self.judge();
        }
    }

    /// Compares the usage with the plan: stops work at a limit, notes a warning past
    /// the soft threshold.
    fn judge(&self) {
        let plan = self.plan();
        let used = self.used();
        self.stop(plan.exceeded(used));
        if let Some(percent) = plan.quota.warn_percent {
            for (i, limit) in Limit::ALL.into_iter().enumerate() {
                if let Some(taken) = plan.taken(limit, used)
                    && taken >= u64::from(percent) * 10
                    && taken < 1000
                {
                    self.note(1 << i, "quota.warning", || {
                        format!(
                            "{} at {}.{}% of its monthly limit (warning at {percent}%)",
                            limit.as_str(),
                            taken / 10,
                            taken % 10
                        )
                    });
                }
            }
        }
    }

    fn stop(&self, limit: Option<Limit>) {
        if self.stopped.swap(limit_code(limit), Ordering::AcqRel) != 0 && limit.is_none() {
            self.reopened.store(true, Ordering::Release);
        }
        if let Some(limit) = limit {
            let i = Limit::ALL.iter().position(|&l| l == limit).unwrap_or(0);
            self.note(1 << (i + 4), "quota.exceeded", || {
                format!(
                    "{} limit reached: work stops until it is raised or the month turns",
                    limit.as_str()
                )
            });
        }
    }

    /// Queues a notice once a month per `bit`.
    fn note(&self, bit: u8, action: &'static str, detail: impl FnOnce() -> String) {
        if self.noted.fetch_or(bit, Ordering::AcqRel) & bit == 0 {
            self.notices
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Notice {
                    action,
                    detail: detail(),
                });
        }
    }

    /// Marks usage as appended to the store (or lost).
    fn written(&self, requests: u64, mb_ms: u64, reserved: bool) {
        self.written_requests.fetch_add(requests, Ordering::AcqRel);
        self.written_mb_ms.fetch_add(mb_ms, Ordering::AcqRel);
        if reserved {
            self.written_reserved_mb_ms.fetch_add(mb_ms, Ordering::AcqRel);
        }
    }

    /// Takes the store's totals for `month` (read with the writer held off) and the
    /// plan in force.
    fn reconcile(&self, month: UnixMillis, store: Used, plan: Plan) {
        if self.month.swap(month, Ordering::AcqRel) != month {
            self.noted.store(0, Ordering::Release);
        }
        self.limited.store(plan.limits_anything(), Ordering::Relaxed);
        self.plan.store(Arc::new(plan));
        let base =
            |stored: u64, written: &AtomicU64| signed(stored) - signed(written.load(Ordering::Acquire));
        self.base_requests
            .store(base(store.requests, &self.written_requests), Ordering::Release);
        self.base_mb_ms
            .store(base(store.mb_ms, &self.written_mb_ms), Ordering::Release);
        self.base_reserved_mb_ms.store(
            base(store.reserved_mb_ms, &self.written_reserved_mb_ms),
            Ordering::Release,
        );
        self.capacity_mb_ms.store(store.capacity_mb_ms, Ordering::Release);
        self.judge();
    }
}

/// A request counted against its namespace's quota: refunded when dropped before
/// its run finished (the gate refused it, its code did not load).
pub(crate) struct Charge {
    ledger: Arc<Ledger>,
    ran: bool,
}

impl Charge {
    /// Counts an invocation about to run against `ledger`, or refuses it with
    /// `quota_exceeded`.
    pub(crate) fn take(ledger: Arc<Ledger>, namespace: &Namespace) -> Result<Charge, EngineError> {
        match ledger.admit() {
            Ok(()) => Ok(Charge { ledger, ran: false }),
            Err(limit) => Err(exceeded(namespace, limit)),
        }
    }

    /// The run finished with this billed figure (its record goes to the writer).
    pub(crate) fn finish(mut self, record: &InvocationRecord) {
        self.ran = true;
        let mb_ms = wisp_core::billing::mb_ms(record.memory_mb, record.billed_ms);
        self.ledger.finished(mb_ms, record.reserved);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if !self.ran {
            self.ledger.counted_requests.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Quotas {
    pub(crate) fn new(server: Plan) -> Quotas {
        Quotas {
            ledgers: ArcSwap::default(),
            sync: tokio::sync::Mutex::new(()),
            adding: Mutex::new(()),
            server: ArcSwap::from_pointee(server),
        }
    }

    /// The namespace's ledger; made (empty until the next reconcile) if it has none.
    pub(crate) fn ledger(&self, namespace: &Namespace) -> Arc<Ledger> {
        if let Some(ledger) = self.ledgers.load().get(namespace) {
            return ledger.clone();
        }
        let _adding = self.adding.lock().unwrap_or_else(PoisonError::into_inner);
        let ledgers = self.ledgers.load();
        if let Some(ledger) = ledgers.get(namespace) {
            return ledger.clone();
        }
        let ledger = Arc::new(Ledger::new(**self.server.load(), month_of(now_ms()).0));
        let mut next = HashMap::clone(&ledgers);
        next.insert(namespace.clone(), ledger.clone());
        self.ledgers.store(Arc::new(next));
        ledger
    }

    /// The limit that stops the namespace's work now, if any (no store read).
    pub(crate) fn stopped(&self, namespace: &Namespace) -> Option<Limit> {
        self.ledgers.load().get(namespace).and_then(|l| l.stopped())
    }

    /// Marks invocation records as appended to the store (or lost on the way).
    pub(crate) fn written(&self, records: &[InvocationRecord]) {
        let ledgers = self.ledgers.load();
        for record in records {
            if let Some(ledger) = ledgers.get(&record.namespace) {
                let mb_ms = wisp_core::billing::mb_ms(record.memory_mb, record.billed_ms);
                ledger.written(1, mb_ms, record.reserved);
            }
        }
    }

    /// The server's plan (prices and free tier).
    pub(crate) fn server_plan(&self) -> Plan {
        **self.server.load()
    }

    /// A namespace's plan: its settings over the server's.
    pub(crate) fn plan_of(&self, record: Option<&NamespaceRecord>) -> Plan {
        let server = self.server_plan();
        match record {
            Some(r) => server.with(&r.settings.prices, &r.settings.free_tier, &r.settings.quota),
            None => server,
        }
    }

    /// Reads the month's totals and applies them and the namespaces' plans to every
    /// ledger; returns the notices to record.
    async fn reconcile(
        &self,
        store: &dyn Store,
        namespaces: &HashMap<Namespace, NamespaceRecord>,
        now: UnixMillis,
    ) -> Result<Reconciled, EngineError> {
        for name in namespaces.keys() {
            self.ledger(name);
        }
        let (from, to) = month_of(now);
        let _writer_held = self.sync.lock().await;
        let rows = store
            .usage(&UsageQuery {
                namespace: None,
                function: None,
                from,
                to,
                group_by: UsageGrouping::Namespace,
            })
            .await?;
        let totals: HashMap<&Namespace, Used> = rows
            .iter()
            .map(|r| {
                let used = Used {
                    requests: r.requests,
                    mb_ms: r.mb_ms,
                    reserved_mb_ms: r.reserved_mb_ms,
                    capacity_mb_ms: r.capacity_mb_ms,
                };
                (&r.namespace, used)
            })
            .collect();
        let mut done = Reconciled::default();
        for (name, ledger) in self.ledgers.load().iter() {
            let used = totals.get(name).copied().unwrap_or_default();
            ledger.reconcile(from, used, self.plan_of(namespaces.get(name)));
            let mut queued = ledger.notices.lock().unwrap_or_else(PoisonError::into_inner);
            done.notices.extend(queued.drain(..).map(|n| (name.clone(), n)));
            if ledger.reopened.swap(false, Ordering::AcqRel) {
                done.reopened.push(name.clone());
            }
        }
        Ok(done)
    }
}

/// What a reconcile found to do.
#[derive(Default)]
struct Reconciled {
    /// Notices to record in the audit trail.
    notices: Vec<(Namespace, Notice)>,
    /// Namespaces whose work no longer stops: their held events are released.
    reopened: Vec<Namespace>,
}

/// `quota_exceeded`, saying which limit and when the month turns.
fn exceeded(namespace: &Namespace, limit: Limit) -> EngineError {
    let now = now_ms();
    let next_month = month_of(now).1;
    let mut error = EngineError::new(
        ErrorCode::QuotaExceeded,
        format!(
            "namespace `{namespace}` has reached its monthly {} limit; work resumes when an admin raises it or at {}",
            limit.as_str(),
            rfc3339_s(next_month)
        ),
    );
    error.retry_after = u32::try_from((next_month - now + 999) / 1000).ok();
    error
}

impl Engine {
    /// Reconciles every namespace's ledger with the store and its settings now, and
    /// records the notices due.
    pub(crate) async fn reconcile_quotas(&self) -> Result<(), EngineError> {
        // Capacity held counts toward budgets: written first, so the totals include it.
        if let Err(e) = self.flush_capacity().await {
            tracing::warn!("cannot record reserved capacity held: {}", e.with_cause());
        }
        let namespaces = self.identity.namespaces_snapshot();
        let now = now_ms();
        let done = self
            .quotas
            .reconcile(self.store.as_ref(), &namespaces, now)
            .await?;
        for namespace in &done.reopened {
            let released = self
                .store
                .release_held_events(namespace, None, ErrorCode::QuotaExceeded, now)
                .await?;
            tracing::info!(%namespace, "the namespace's quota no longer stops work; {released} held async events released");
            self.pipeline.wake();
        }
        for (namespace, notice) in done.notices {
            tracing::warn!(%namespace, "{}: {}", notice.action, notice.detail);
            self.audit(crate::AuditRecord {
                by: None,
                namespace: &namespace,
                action: notice.action,
                target: namespace.as_str(),
                detail: Some(notice.detail),
                source: None,
            })
            .await;
        }
        Ok(())
    }

    /// The server's prices.
    pub fn prices(&self) -> Prices {
        self.quotas.server_plan().prices
    }

    /// A namespace's plan in force: prices, free tier and quota.
    pub fn plan(&self, namespace: &Namespace) -> Plan {
        self.quotas.plan_of(self.identity.namespace(namespace).as_ref())
    }

    /// Sets the server's plan (the `--price-*` and `--free-*` flags); takes effect at
    /// once.
    pub async fn set_server_plan(&self, plan: Plan) -> Result<(), EngineError> {
        self.quotas.server.store(Arc::new(plan));
        self.reconcile_quotas().await
    }

    /// A namespace's usage this month as admission sees it, and the limit stopping
    /// it, if any.
    pub fn month_usage(&self, namespace: &Namespace) -> (Used, Option<Limit>) {
        let ledger = self.quotas.ledger(namespace);
        (ledger.used(), ledger.stopped())
    }

    /// The limit that stops a namespace's work now, if any.
    pub(crate) fn quota_stop(&self, namespace: &Namespace) -> Option<Limit> {
        self.quotas.stopped(namespace)
    }

    /// `quota_exceeded` when the namespace's work is stopped: for work that is
    /// accepted now and run later (async invocations, queue messages).
    pub(crate) fn refuse_if_stopped(&self, namespace: &Namespace) -> Result<(), EngineError> {
        match self.quota_stop(namespace) {
            Some(limit) => Err(exceeded(namespace, limit)),
            None => Ok(()),
        }
    }

    /// The namespace's ledger, for admission.
    pub(crate) fn ledger(&self, namespace: &Namespace) -> Arc<Ledger> {
        self.quotas.ledger(namespace)
    }
}

/// Starts the task that reconciles the ledgers once a second.
pub(crate) fn start(engine: &Arc<Engine>) {
    let me = Arc::downgrade(engine);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RECONCILE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(engine) = me.upgrade() else { return };
            if let Err(e) = engine.reconcile_quotas().await {
                tracing::warn!("cannot reconcile usage quotas: {}", e.with_cause());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_core::billing::{MB_MS_PER_GB_SECOND, Money, Quota};

    fn plan(quota: Quota) -> Plan {
        Plan {
            quota,
            ..Plan::new(Prices::LAMBDA, FREE_REQUESTS, FREE_GB_SECONDS)
        }
    }

    const DEC_2026: UnixMillis = 1_796_083_200_000;
    const JAN_2027: UnixMillis = 1_798_761_600_000;

    #[test]
    fn a_request_quota_admits_exactly_its_number_then_the_month_turns() {
        let quota = Quota {
            requests: Some(3),
            ..Quota::default()
        };
        let ledger = Ledger::new(plan(quota), DEC_2026);
        // The store already holds one request of this month.
        ledger.reconcile(
            DEC_2026,
            Used {
                requests: 1,
                ..Used::default()
            },
            plan(quota),
        );
        assert_eq!(ledger.admit(), Ok(()));
        assert_eq!(ledger.admit(), Ok(()));
        assert_eq!(ledger.admit(), Err(Limit::Requests));
        assert_eq!(ledger.stopped(), Some(Limit::Requests));
        assert_eq!(ledger.used().requests, 3);
        // Both are written; the store now has 3.
        ledger.written(2, 0, false);
        ledger.reconcile(
            DEC_2026,
            Used {
                requests: 3,
                ..Used::default()
            },
            plan(quota),
        );
        assert_eq!(ledger.used().requests, 3);
        assert_eq!(ledger.admit(), Err(Limit::Requests));
        // A fake clock's next month: the store has nothing for January.
        ledger.reconcile(JAN_2027, Used::default(), plan(quota));
        assert_eq!(ledger.stopped(), None);
        assert_eq!(ledger.used().requests, 0);
        assert_eq!(ledger.admit(), Ok(()));
        let notices = ledger.notices.lock().unwrap();
        assert_eq!(notices.len(), 1, "one exceeded notice in December");
        assert_eq!(notices[0].action, "quota.exceeded");
    }

    #[test]
    fn a_refunded_request_is_not_counted() {
        let ledger = Arc::new(Ledger::new(plan(Quota::default()), DEC_2026));
        ledger.admit().unwrap();
        drop(Charge {
            ledger: ledger.clone(),
            ran: false,
        });
        assert_eq!(ledger.used().requests, 0);
    }

    #[test]
    fn raising_a_quota_reopens_and_gb_seconds_stop_after_the_crossing_run() {
        let tight = Quota {
            gb_seconds: Some(1),
            warn_percent: Some(50),
            ..Quota::default()
        };
        let ledger = Ledger::new(plan(tight), DEC_2026);
        ledger.reconcile(DEC_2026, Used::default(), plan(tight));
        ledger.admit().unwrap();
        ledger.finished(MB_MS_PER_GB_SECOND * 6 / 10, false);
        assert_eq!(ledger.stopped(), None, "60% is a warning, not a stop");
        ledger.admit().unwrap();
        ledger.finished(MB_MS_PER_GB_SECOND / 2, false);
        assert_eq!(ledger.admit(), Err(Limit::GbSeconds));
        let raised = Quota {
            gb_seconds: Some(10),
            ..tight
        };
        ledger.reconcile(DEC_2026, Used::default(), plan(raised));
        assert_eq!(ledger.admit(), Ok(()));
        let actions: Vec<_> = ledger.notices.lock().unwrap().iter().map(|n| n.action).collect();
        assert_eq!(actions, ["quota.warning", "quota.exceeded"]);
    }

    #[test]
    fn a_budget_counts_past_the_free_tier() {
        let quota = Quota {
            budget: Some(Money::parse("0.20").unwrap()),
            ..Quota::default()
        };
        let ledger = Ledger::new(plan(quota), DEC_2026);
        // The free tier's million requests cost nothing; a million more cost $0.20.
        let free = Used {
            requests: FREE_REQUESTS,
            ..Used::default()
        };
        ledger.reconcile(DEC_2026, free, plan(quota));
        assert_eq!(ledger.stopped(), None);
        let spent = Used {
            requests: 2 * FREE_REQUESTS,
            ..Used::default()
        };
        ledger.reconcile(DEC_2026, spent, plan(quota));
        assert_eq!(ledger.stopped(), Some(Limit::Budget));
    }
}

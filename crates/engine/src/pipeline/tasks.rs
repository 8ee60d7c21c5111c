//! The pipeline's tasks: the writer (new events and outcomes, one transaction per
//! batch, fresh events handed straight to runners) and the dispatcher (claims the
//! due events nobody runs yet).

use super::leases::{self, Taken};
use super::{Inboxes, Waiting};
use crate::Engine;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use wisp_core::wall::{micros, millis, now_ms, now_us};
use wisp_core::{Limits, Namespace, QueueName};
use wisp_store::{
    Enqueued, EventOutcome, EventRecord, FollowUp, Lease, Resolution, Store, StoreError, UnixMillis,
};

/// New events written per transaction at most.
const ENQUEUE_BATCH: usize = 1024;
/// Outcomes written per transaction at most.
const COMPLETE_BATCH: usize = 1024;
/// Events claimed per claim at most.
const CLAIM_BATCH: usize = 64;
/// How long a claim holds an event: longer than any timeout and queue wait, so only a
/// crashed process's leases ever expire (and those are released at start-up).
const LEASE: Duration = Duration::from_secs(40 * 60);
/// The dispatcher looks at the store at least this often (for events whose retry
/// time came while it slept on an older estimate).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How often succeeded events past the idempotency window are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How long outcomes wait for new events to share a transaction with, before they
/// are written alone, when the writer is busy (when it is idle they are written at
/// once). Short: a crash in that time runs their events again.
const OUTCOME_LINGER: Duration = Duration::from_millis(2);
/// After a failed write of outcomes, the first wait before the next try.
const OUTCOME_RETRY: Duration = Duration::from_millis(50);

/// Starts the writer and the dispatcher, once every lease the last process held is
/// released (before the writer, whose fresh events are leased as they are written).
/// They end once the engine is gone.
pub(crate) fn start(engine: &Arc<Engine>, inboxes: Inboxes) {
    let store = engine.store.clone();
    let pipeline = &engine.pipeline;
    let (wake, slots) = (pipeline.wake.clone(), pipeline.slots.clone());
    let taken = pipeline.taken.clone();
    let weak = Arc::downgrade(engine);
    tokio::spawn(async move {
        match store.release_event_leases().await {
            Ok(0) => {}
            Ok(n) => tracing::info!("{n} async events were running when Wisp stopped; they run again"),
            Err(e) => tracing::error!("releasing the leases of async events failed: {e}"),
        }
        let writer = Writer {
            engine: weak.clone(),
            store: store.clone(),
            wake: wake.clone(),
            slots: slots.clone(),
            taken: taken.clone(),
        };
        tokio::spawn(writer.run(inboxes));
        tokio::spawn(leases::check(
            weak.clone(),
            store.clone(),
            taken.clone(),
            wake.clone(),
        ));
        dispatch(weak, store, wake, slots, taken).await;
    });
}

/// Runs `event` under `permit`, and sends its outcome to the writer.
fn run(engine: Arc<Engine>, event: EventRecord, permit: OwnedSemaphorePermit) {
    tokio::spawn(async move {
        let function = event.function.clone();
        let mut outcome = engine.run_event(event).await;
        engine.guard_destinations(&function, &mut outcome).await;
        let _ = engine.pipeline.complete.send(outcome);
        drop(permit);
    });
}

struct Writer {
    engine: Weak<Engine>,
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    slots: Arc<Semaphore>,
    taken: Arc<Taken>,
}

impl Writer {
    async fn run(self, mut inboxes: Inboxes) {
        let mut waiting: Vec<Waiting> = Vec::with_capacity(ENQUEUE_BATCH);
        let mut outcomes: Vec<EventOutcome> = Vec::new();
        // When the outcomes gathered so far are written even if no event comes to
        // share the transaction.
        let mut outcomes_by: Option<Instant> = None;
        // Outcomes the store refused, tried again after a growing wait, apart from
        // the others: they are the only record of runs that happened (dropping them
        // would run the events again after a restart).
        let mut stuck: Vec<EventOutcome> = Vec::new();
        let mut stuck_by = Instant::now();
        let mut failures = 0u32;
        let mut last_write = Instant::now();
        let (mut enqueue_open, mut complete_open) = (true, true);
        loop {
            if !outcomes.is_empty() && outcomes_by.is_none() {
                // Busy (the last write was moments ago): another batch is likely
                // soon, so the outcomes wait a little for it. Idle: no point.
                let now = Instant::now();
                let busy = now.duration_since(last_write) < OUTCOME_LINGER;
                outcomes_by = Some(if busy { now + OUTCOME_LINGER } else { now });
            }
            let closing = !enqueue_open && !complete_open;
            let now = Instant::now();
            let stuck_due = !stuck.is_empty() && stuck_by <= now;
            let outcomes_due = stuck_due
                || (!outcomes.is_empty()
                    && (closing
                        || outcomes.len() >= COMPLETE_BATCH
                        || outcomes_by.is_some_and(|by| by <= now)
                        // Events are being written anyway: the outcomes go with them.
                        || !waiting.is_empty()));
            if waiting.is_empty() && !outcomes_due {
                if closing && outcomes.is_empty() {
                    break;
                }
                let retry_at = (!stuck.is_empty()).then_some(stuck_by);
                tokio::select! {
                    n = inboxes.enqueue.recv_many(&mut waiting, ENQUEUE_BATCH), if enqueue_open => {
                        enqueue_open = n > 0;
                    }
                    n = inboxes.complete.recv_many(&mut outcomes, COMPLETE_BATCH), if complete_open => {
                        complete_open = n > 0;
                    }
                    () = sleep_until(outcomes_by), if outcomes_by.is_some() => {}
                    () = sleep_until(retry_at), if retry_at.is_some() => {}
                }
                continue;
            }
            // Whatever else has arrived joins this transaction.
            while waiting.len() < ENQUEUE_BATCH
                && let Ok(w) = inboxes.enqueue.try_recv()
            {
                waiting.push(w);
            }
            let mut due = Vec::new();
            if outcomes_due {
                while outcomes.len() < COMPLETE_BATCH
                    && let Ok(o) = inboxes.complete.try_recv()
                {
                    outcomes.push(o);
                }
                outcomes_by = None;
                due = std::mem::take(&mut outcomes);
                if stuck_due {
                    due.append(&mut stuck);
                }
            }
            let written = self.write(std::mem::take(&mut waiting), due).await;
            last_write = Instant::now();
            match written {
                Ok(()) if stuck_due => failures = 0,
                Ok(()) => {}
                Err(mut refused) => {
                    stuck.append(&mut refused);
                    failures = if stuck_due { failures + 1 } else { failures.max(1) };
                    let wait = OUTCOME_RETRY * 2u32.pow(failures.min(7) - 1);
                    stuck_by = Instant::now() + wait.min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Writes one batch; on failure, gives back the outcomes still to write. A
    /// failed combined write is split, so that neither half holds the other up: the
    /// waiters hear about their events, and the outcomes are tried alone (and then
    /// each alone).
    async fn write(
        &self,
        waiting: Vec<Waiting>,
        outcomes: Vec<EventOutcome>,
    ) -> Result<(), Vec<EventOutcome>> {
        let now_us = now_us();
        let now = now_us / 1000;
        let lease = Lease {
            until: now + millis(LEASE),
            started_us: now_us,
        };
        let since = now_us - micros(Limits::IDEMPOTENCY_WINDOW);
        let mut events = Vec::with_capacity(waiting.len());
        let mut replies = Vec::with_capacity(waiting.len());
        let mut permits = Vec::with_capacity(waiting.len());
        for Waiting { mut event, reply } in waiting {
            // Room now means the event runs as soon as it is written, claimed by
            // the same transaction; without room it waits for the dispatcher.
            let permit = (event.run_at <= now)
                .then(|| self.slots.clone().try_acquire_owned().ok())
                .flatten();
            event.lease = permit.as_ref().map(|_| lease);
            events.push(event);
            replies.push(reply);
            permits.push(permit);
        }
        let store = &self.store;
        let (written, outcomes_failed) = match store.write_events(&events, since, &outcomes, now).await {
            Ok(results) => (Ok(results), None),
            Err(e) if events.is_empty() => (Ok(Vec::new()), Some(e)),
            Err(e) if outcomes.is_empty() => (Err(e), None),
            Err(e) => {
                tracing::warn!("writing async events with outcomes failed ({e}); writing them apart");
                let written = store.write_events(&events, since, &[], now).await;
                let failed = store.complete_events(&outcomes, now).await.err();
                (written, failed)
            }
        };
        let engine = self.engine.upgrade();
        let mut unclaimed = false;
        match written {
            Ok(results) => {
                for (((event, reply), permit), result) in
                    events.into_iter().zip(replies).zip(permits).zip(results)
                {
                    match (&result, permit, &engine) {
                        (Enqueued::New, Some(permit), Some(engine)) => {
                            self.taken.add([event.id.as_str()]);
                            run(engine.clone(), EventRecord::fresh(event), permit);
                        }
                        (Enqueued::New, None, _) => unclaimed = true,
                        _ => {}
                    }
                    let _ = reply.send(Ok(result));
                }
            }
            Err(e) => {
                tracing::error!("recording {} async events failed: {e}", events.len());
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Backend(e.to_string())));
                }
            }
        }
        // Failed outcomes are tried one by one, so that one that cannot be written
        // does not hold up the rest; those that still fail are kept for later.
        let (outcomes, stuck) = match outcomes_failed {
            None => (outcomes, Vec::new()),
            Some(e) => {
                tracing::warn!(
                    "recording {} async outcomes failed ({e}); recording each alone",
                    outcomes.len()
                );
                write_each(store.as_ref(), outcomes, now).await
            }
        };
        self.taken.remove(outcomes.iter().map(|o| o.id.as_str()));
        // Retries and destination events are the dispatcher's to claim; messages wake
        // the pollers of their queues.
        let scheduled = outcomes.iter().any(|o| {
            matches!(o.resolution, Resolution::Retry { .. })
                || o.follow_ups.iter().any(|f| matches!(f, FollowUp::Event(_)))
        });
        if unclaimed || scheduled {
            self.wake.notify_one();
        }
        if let Some(engine) = engine {
            let queues: Vec<(&Namespace, &QueueName)> = outcomes
                .iter()
                .flat_map(|o| &o.follow_ups)
                .filter_map(|f| match f {
                    FollowUp::Message { namespace, queue, .. } => Some((namespace, queue)),
                    FollowUp::Event(_) => None,
                })
                .collect();
            for (namespace, queue) in queues {
                engine.queue_sent(namespace, queue);
            }
        }
        if stuck.is_empty() { Ok(()) } else { Err(stuck) }
    }
}

/// Writes each outcome in its own transaction: the written ones, then the refused.
async fn write_each(
    store: &dyn Store,
    outcomes: Vec<EventOutcome>,
    now: UnixMillis,
) -> (Vec<EventOutcome>, Vec<EventOutcome>) {
    let (mut written, mut refused) = (Vec::with_capacity(outcomes.len()), Vec::new());
    for outcome in outcomes {
        match store.complete_events(std::slice::from_ref(&outcome), now).await {
            Ok(()) => written.push(outcome),
            Err(e) => {
                tracing::error!(
                    "recording the outcome of async event {} failed (retrying): {e}",
                    outcome.id
                );
                refused.push(outcome);
            }
        }
    }
    (written, refused)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Claims due events while there is room, and sleeps until the next is due or a
/// wake when there are none.
async fn dispatch(
    engine: Weak<Engine>,
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    slots: Arc<Semaphore>,
    taken: Arc<Taken>,
) {
    let mut last_sweep = Instant::now();
    loop {
        // Wait for room before claiming, so claimed events never wait on us.
        let Ok(first) = slots.clone().acquire_owned().await else {
            break;
        };
        let want = (slots.available_permits() + 1).min(CLAIM_BATCH);
        let now = now_ms();
        let claimed = match store.claim_events(now, now_us(), now + millis(LEASE), want).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!("claiming async events failed: {e}");
                drop(first);
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
        };
        let Some(strong) = engine.upgrade() else {
            break;
        };
        let got = claimed.len();
        taken.add(claimed.iter().map(|e| e.id.as_str()));
        let mut first = Some(first);
        for event in claimed {
            let permit = match first.take() {
                Some(permit) => permit,
                None => match slots.clone().try_acquire_owned() {
                    Ok(permit) => permit,
                    // The writer took the room meanwhile: wait rather than overrun
                    // the bound.
                    Err(_) => match slots.clone().acquire_owned().await {
                        Ok(permit) => permit,
                        Err(_) => return,
                    },
                },
            };
            run(strong.clone(), event, permit);
        }
        drop((first, strong));
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = Instant::now();
            let before = now_us() - micros(Limits::IDEMPOTENCY_WINDOW);
            if let Err(e) = store.sweep_events(before).await {
                tracing::warn!("sweeping old async events failed: {e}");
            }
        }
        if got == want {
            continue;
        }
        // Fewer due than asked: sleep until the next one is due, or a wake.
        let sleep = match store.next_event_due().await {
            Ok(Some(due)) => Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0)).min(IDLE_POLL),
            Ok(None) => IDLE_POLL,
            Err(e) => {
                tracing::error!("reading the next async event's time failed: {e}");
                IDLE_POLL
            }
        };
        if sleep.is_zero() {
            continue;
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

//! Concurrency gates: at most N invocations inside, a bounded queue of waiters in
//! arrival order, and a deadline for each waiter. A full queue or a passed deadline
//! is a throttle, answered 429; nothing waits forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// A gate in front of a function version, or a namespace.
pub(crate) struct Gate {
    permits: Arc<Semaphore>,
    limit: usize,
    waiting: AtomicUsize,
}

/// Why a gate refused an invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The queue already holds its limit of waiters.
    QueueFull,
    /// The invocation waited until its deadline without getting in.
    TimedOut,
}

/// Counts a waiter for as long as it waits, even when its caller goes away.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gate {
    pub(crate) fn new(limit: usize) -> Gate {
        Gate {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            waiting: AtomicUsize::new(0),
        }
    }

    /// Gets in at once when there is room; otherwise waits in line (when fewer than
    /// `max_queue` already wait) until `deadline`. The permit lets the next one in
    /// when dropped.
    pub(crate) async fn enter(
        &self,
        max_queue: usize,
        deadline: Instant,
    ) -> Result<OwnedSemaphorePermit, Refusal> {
        // The semaphore is fair: permits go to waiters first, so this never jumps the line.
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= max_queue {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal::QueueFull);
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a closed one would admit nobody.
            Ok(Err(_)) | Err(_) => Err(Refusal::TimedOut),
        }
    }

    /// How many may be inside at once.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Invocations inside the gate now.
    pub(crate) fn inside(&self) -> usize {
        self.limit - self.permits.available_permits()
    }

    /// Invocations waiting in line now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn later(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test(start_paused = true)]
    async fn admits_up_to_the_limit_then_queues_then_refuses() {
        let gate = Arc::new(Gate::new(2));
        let a = gate.enter(1, later(100)).await.unwrap();
        let _b = gate.enter(1, later(100)).await.unwrap();
        assert_eq!(gate.inside(), 2);
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter(1, later(1_000)).await.map(drop) })
        };
        tokio::task::yield_now().await;
        assert_eq!(gate.waiting(), 1);
        // The queue (of one) is full: refused at once.
        assert_eq!(gate.enter(1, later(1_000)).await.unwrap_err(), Refusal::QueueFull);
        drop(a);
        waiter.await.unwrap().unwrap();
        assert_eq!(gate.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gives_up_at_its_deadline_and_leaves_the_line() {
        let gate = Gate::new(1);
        let _held = gate.enter(0, later(0)).await.unwrap();
        let started = Instant::now();
        assert_eq!(gate.enter(5, later(250)).await.unwrap_err(), Refusal::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_millis(250));
        assert_eq!(gate.waiting(), 0);
        // With no queue at all, refused without waiting.
        assert_eq!(gate.enter(0, later(250)).await.unwrap_err(), Refusal::QueueFull);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_leaves_the_line() {
        let gate = Gate::new(1);
        let _held = gate.enter(0, later(0)).await.unwrap();
        let wait = gate.enter(1, later(10_000));
        let _ = tokio::time::timeout(Duration::from_millis(5), wait).await;
        assert_eq!(gate.waiting(), 0);
        let second = tokio::time::timeout(Duration::from_millis(5), gate.enter(1, later(10_000))).await;
        assert!(second.is_err(), "still held, so the second waiter waits");
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_get_in_in_arrival_order() {
        let gate = Arc::new(Gate::new(1));
        let held = gate.enter(0, later(0)).await.unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (gate, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let permit = gate.enter(10, later(10_000)).await.unwrap();
                order.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(1)).await;
                drop(permit);
            }));
            tokio::task::yield_now().await;
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }
}

//! A process function version: its warm instances and the running of invocations
//! on them, one at a time per instance (Lambda's model).
//!
//! An invocation takes an idle instance or starts one (a cold start, whose init time
//! is reported apart from the run time), runs on it, and gives it back if it is
//! still healthy. Starts ramp: at most [`concurrent_starts`] instances start at once
//! (starting is CPU-bound, so more at once would not start sooner), and an
//! invocation waiting for its turn takes the first instance given back instead. A
//! burst of short invocations is served by a few instances rather than one process
//! per invocation. Invocations run in their own task, so a caller that goes away
//! does not kill a warm instance mid-invocation. The engine's autoscaler prewarms
//! instances and stops those idle past their keep-alive; dropping the function stops
//! every idle instance.

use super::FunctionContext;
use super::api::Delivery;
use super::instance::{Instance, StartFailure};
use super::package::CodeLease;
use crate::invocation::{Finished, Input, Invocation, InvokeError, Logs, Output};
use crate::{Function, Instances};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, SemaphorePermit};

/// Instances of one function starting at once at most: one per core, and two on a
/// single core (so that a start waiting on I/O does not hold the others up).
fn concurrent_starts() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)
}

pub(crate) struct ProcessFunction {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: FunctionContext,
    /// Least recently used first: invocations take from the end, scale-in stops from
    /// the front.
    idle: Mutex<Vec<Idle>>,
    busy: AtomicUsize,
    starting: AtomicUsize,
    /// Turns to start an instance: a permit per instance starting.
    starts: Semaphore,
    /// Told when an instance is given back, for an invocation waiting for one.
    returned: Notify,
    /// Keeps the unpacked code; dropped last, after the instances.
    _code: CodeLease,
}

impl ProcessFunction {
    pub(crate) fn new(ctx: FunctionContext, code: CodeLease) -> ProcessFunction {
        ProcessFunction {
            inner: Arc::new(Inner {
                ctx,
                idle: Mutex::new(Vec::new()),
                busy: AtomicUsize::new(0),
                starting: AtomicUsize::new(0),
                starts: Semaphore::new(concurrent_starts()),
                returned: Notify::new(),
                _code: code,
            }),
        }
    }
}

/// An instance waiting for an invocation.
struct Idle {
    instance: Instance,
    since: Instant,
    /// What a prewarmed instance wrote while starting: its first invocation's logs
    /// begin with it.
    init_logs: Logs,
}

/// What an invocation runs on: an idle instance, or a new one it has the turn to
/// start.
enum Ready<'a> {
    Idle(Box<Idle>),
    Start(Option<SemaphorePermit<'a>>),
}

/// Counts one instance in a state for as long as it lives.
struct Count<'a>(&'a AtomicUsize);

impl<'a> Count<'a> {
    fn new(counter: &'a AtomicUsize) -> Count<'a> {
        counter.fetch_add(1, Ordering::Relaxed);
        Count(counter)
    }
}

impl Drop for Count<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for ProcessFunction {
    fn drop(&mut self) {
        // Instances kill their processes when dropped.
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[async_trait]
impl Function for ProcessFunction {
    async fn invoke(&self, invocation: Invocation) -> Result<Output, InvokeError> {
        let inner = self.inner.clone();
        tokio::spawn(inner.run(invocation))
            .await
            .map_err(|e| InvokeError::Internal(format!("the invocation task failed: {e}")))?
    }

    fn keeps_instances(&self) -> bool {
        true
    }

    fn published_as(&self, number: u32) {
        self.inner.ctx.version.store(number, Ordering::Relaxed);
    }

    fn instances(&self) -> Instances {
        let inner = &self.inner;
        Instances {
            busy: inner.busy.load(Ordering::Relaxed),
            idle: inner.idle.lock().unwrap_or_else(PoisonError::into_inner).len(),
            starting: inner.starting.load(Ordering::Relaxed),
        }
    }

    async fn prewarm(&self, count: usize) -> Result<(), InvokeError> {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            while inner.total() < count {
                let (instance, init, init_logs) =
                    inner.start_instance().await.map_err(|failure| failure.error)?;
                tracing::debug!(function = %inner.ctx.name, instance = instance.id(), "prewarmed an instance in {init:?}");
                inner.give_back(instance, init_logs);
            }
            Ok(())
        })
        .await
        .map_err(|e| InvokeError::Internal(format!("the prewarm task failed: {e}")))?
    }

    fn stop_idle(&self, idle_for: Duration, keep: usize) -> usize {
        let stopped: Vec<Idle> = {
            let mut idle = self.inner.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let stale = idle
                .iter()
                .take(idle.len().saturating_sub(keep))
                .take_while(|i| i.since.elapsed() >= idle_for)
                .count();
            idle.drain(..stale).collect()
        };
        // Instances kill their processes when dropped: outside the lock.
        stopped.len()
    }
}

impl Inner {
    async fn run(self: Arc<Self>, invocation: Invocation) -> Result<Output, InvokeError> {
        // Native functions reach platform services over HTTP, not through host calls.
        let Invocation {
            id,
            input,
            on_finish,
            context,
            client_context,
            qualifier,
            ..
        } = invocation;
        let Input::Event(payload) = input else {
            return Err(InvokeError::WrongInput("process functions take events"));
        };
        let ready = self.ready().await;
        // Billed from here: waiting for a turn to start an instance is queueing.
        let started = Instant::now();
        let finish = |logs: Logs, error: Option<&InvokeError>, init| {
            if let Some(on_finish) = on_finish {
                on_finish(Finished {
                    logs,
                    duration: started.elapsed(),
                    error: error.map(InvokeError::code),
                    init,
                });
            }
        };
        let _busy = Count::new(&self.busy);
        let (mut instance, init, init_logs) = match ready {
            Ready::Idle(idle) => (idle.instance, None, idle.init_logs),
            Ready::Start(turn) => match self.start_with(turn).await {
                Ok((instance, init, logs)) => {
                    tracing::debug!(function = %self.ctx.name, instance = instance.id(), "started an instance in {init:?}");
                    (instance, Some(init), logs)
                }
                Err(StartFailure { error, logs }) => {
                    finish(logs, Some(&error), None);
                    return Err(error);
                }
            },
        };
        let run_started = Instant::now();
        // The caller's remaining time counts from its own clock: a cold start here spends it.
        let (_, timeout) = context.bound(run_started, self.ctx.timeout);
        let trace = wisp_core::trace::header(&context.root_for(&id), &wisp_core::trace::span_of(&id));
        let (result, mut logs) = instance
            .invoke(
                &id,
                payload,
                timeout,
                Delivery {
                    trace,
                    client_context,
                    qualifier,
                },
            )
            .await;
        let report = report_line(
            &id,
            run_started.elapsed(),
            self.ctx.memory_mb,
            instance.peak_memory(),
            init,
        );
        logs.stderr = concat_bytes(logs.stderr, Bytes::from(report));
        finish(concat(init_logs, logs), result.as_ref().err(), init);
        self.give_back(instance, Logs::default());
        result.map(Output::Event)
    }

    /// An idle instance, or a turn to start one: whichever comes first.
    async fn ready(&self) -> Ready<'_> {
        // A warm function's common case, without registering as a waiter.
        if let Some(idle) = self.take_idle() {
            return Ready::Idle(Box::new(idle));
        }
        loop {
            // Registered before looking, so an instance given back in between is
            // not missed.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(idle) = self.take_idle() {
                return Ready::Idle(Box::new(idle));
            }
            tokio::select! {
                biased;
                () = &mut returned => {}
                turn = self.starts.acquire() => {
                    // One may have come back while we waited for the turn.
                    if let Some(idle) = self.take_idle() {
                        return Ready::Idle(Box::new(idle));
                    }
                    // The semaphore is never closed; if it were, start anyway.
                    return Ready::Start(turn.ok());
                }
            }
        }
    }

    /// Starts an instance once it has a turn (prewarming).
    async fn start_instance(&self) -> Result<(Instance, Duration, Logs), StartFailure> {
        let turn = self.starts.acquire().await.ok();
        self.start_with(turn).await
    }

    /// Starts an instance, holding `_turn` until it is up.
    async fn start_with(
        &self,
        _turn: Option<SemaphorePermit<'_>>,
    ) -> Result<(Instance, Duration, Logs), StartFailure> {
        let _starting = Count::new(&self.starting);
        Instance::start(&self.ctx).await
    }

    /// Busy, idle and starting instances.
    fn total(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).len();
        idle + self.busy.load(Ordering::Relaxed) + self.starting.load(Ordering::Relaxed)
    }

    /// Keeps `instance` for the next invocation if it is still healthy, and tells an
    /// invocation waiting for one.
    fn give_back(&self, mut instance: Instance, init_logs: Logs) {
        if instance.reusable() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Idle {
                    instance,
                    since: Instant::now(),
                    init_logs,
                });
            self.returned.notify_one();
        }
    }

    /// The most recently used idle instance that is still alive.
    fn take_idle(&self) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(mut entry) = idle.pop() {
            if entry.instance.reusable() {
                return Some(entry);
            }
        }
        None
    }
}

/// Lambda's `REPORT` line, closing every invocation's log: its run time, billed
/// time, memory size and peak (from the cgroup), and the init time of a cold start.
fn report_line(id: &str, run: Duration, memory_mb: u32, peak: Option<u64>, init: Option<Duration>) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut line = format!(
        "REPORT RequestId: {id}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {memory_mb} MB",
        ms(run),
        wisp_core::billing::billed_ms(run),
    );
    if let Some(peak) = peak {
        line.push_str(&format!("\tMax Memory Used: {} MB", peak.div_ceil(1024 * 1024)));
    }
    if let Some(init) = init {
        line.push_str(&format!("\tInit Duration: {:.2} ms", ms(init)));
    }
    line.push('\n');
    line
}

fn concat_bytes(a: Bytes, b: Bytes) -> Bytes {
    if a.is_empty() {
        return b;
    }
    let mut joined = BytesMut::from(a);
    joined.extend_from_slice(&b);
    joined.freeze()
}

fn concat(first: Logs, then: Logs) -> Logs {
    Logs {
        stdout: concat_bytes(first.stdout, then.stdout),
        stderr: concat_bytes(first.stderr, then.stderr),
        truncated: first.truncated || then.truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_read_like_lambdas() {
        let line = report_line(
            "abc",
            Duration::from_micros(1500),
            128,
            Some(3 * 1024 * 1024 + 1),
            None,
        );
        assert_eq!(
            line,
            "REPORT RequestId: abc\tDuration: 1.50 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 4 MB\n"
        );
        let cold = report_line(
            "abc",
            Duration::from_millis(3),
            256,
            None,
            Some(Duration::from_micros(4250)),
        );
        assert!(
            cold.contains("Billed Duration: 3 ms\tMemory Size: 256 MB\tInit Duration: 4.25 ms\n"),
            "{cold}"
        );
    }
}

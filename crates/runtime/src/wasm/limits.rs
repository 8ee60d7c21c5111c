//! Enforcing a function's memory and time limits inside a store.

use std::time::Instant;
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};

/// Raised (as a trap) when a guest asks for memory past its `memory_mb`.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit_mb} MB exceeded")]
pub(crate) struct MemoryLimitExceeded {
    pub(crate) limit_mb: u32,
}

/// Raised (as a trap) when a guest computes past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded")]
pub(crate) struct DeadlineExceeded;

/// Caps the total linear memory of all instances in a store at `memory_mb`.
///
/// Growth past the cap traps at once (rather than making `memory.grow` return -1)
/// so that an out-of-memory guest is reported as such, whatever its allocator does.
pub(crate) struct MemoryLimiter {
    limit_bytes: usize,
    limit_mb: u32,
    total: usize,
    pub(crate) exceeded: bool,
}

/// Most table elements an instance may grow to (tables hold function references).
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

impl MemoryLimiter {
    pub(crate) fn new(memory_mb: u32) -> MemoryLimiter {
        MemoryLimiter {
            limit_bytes: memory_mb as usize * 1024 * 1024,
            limit_mb: memory_mb,
            total: 0,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total + desired.saturating_sub(current);
        if total > self.limit_bytes {
            self.exceeded = true;
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit_mb: self.limit_mb,
            }));
        }
        self.total = total;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // The pool's per-memory reservation is exhausted: that too is out of memory.
        tracing::debug!("memory growth failed: {error:#}");
        self.exceeded = true;
        Err(wasmtime::Error::new(MemoryLimitExceeded {
            limit_mb: self.limit_mb,
        }))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Interrupts the guest at `deadline`, yielding to the executor at every epoch tick
/// before then so a computing guest never starves other work on its thread.
pub(crate) fn set_deadline<T: 'static>(store: &mut Store<T>, deadline: Instant) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(wasmtime::Error::new(DeadlineExceeded))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
}

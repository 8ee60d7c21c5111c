//! Turning what a guest run ended with into an [`InvokeError`].

use super::limits::{DeadlineExceeded, MemoryLimitExceeded};
use crate::InvokeError;
use std::time::Duration;
use wasmtime_wasi::I32Exit;

/// How a guest run ended, before classification.
pub(crate) enum RunEnd {
    /// The wall-clock deadline passed (possibly while in a host call).
    Elapsed,
    /// The run returned an error (trap, exit, host error).
    Failed(wasmtime::Error),
}

/// Classifies a failed run. `memory_exceeded` is the limiter's flag: a guest may turn
/// a refused allocation into its own abort, which is still out of memory.
pub(crate) fn classify(
    end: RunEnd,
    memory_exceeded: bool,
    memory_mb: u32,
    timeout: Duration,
) -> Option<InvokeError> {
    let err = match end {
        RunEnd::Elapsed => return Some(InvokeError::Timeout(timeout)),
        RunEnd::Failed(err) => err,
    };
    if err.downcast_ref::<DeadlineExceeded>().is_some() {
        return Some(InvokeError::Timeout(timeout));
    }
    if memory_exceeded || err.downcast_ref::<MemoryLimitExceeded>().is_some() {
        return Some(InvokeError::OutOfMemory(memory_mb));
    }
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return match exit.0 {
            0 => None,
            code => Some(InvokeError::Function(format!(
                "the function exited with status {code}"
            ))),
        };
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        return Some(InvokeError::Function(format!("the function trapped: {trap}")));
    }
    Some(InvokeError::Function(format!("the function failed: {err:#}")))
}

//! Function-to-function calls: one function invoking another of its namespace, sync or
//! async — a wasm guest through the platform address (`services::platform`), a native
//! function through Lambda's Invoke API on its services endpoint — held to the chain's
//! loop guard, the caller's remaining time and the circuit breaker on caller → callee
//! ([`Engine::call`], [`Engine::call_async`]). The server checks the caller's `invoke`
//! grant before it asks.
//!
//! # Design
//!
//! A call carries its caller's [`CallContext`]: the deadline the caller runs under (so
//! the callee is cut at the caller's remaining time), how deep the chain is (a call
//! from [`Limits::MAX_CHAIN_DEPTH`] deep is refused with `loop_detected`) and the trace
//! root. A wasm guest's requests carry it directly (the runtime hands its host calls
//! a [`wisp_runtime::CallSite`]). A native function's calls come over HTTP with its
//! version's credential, which says who calls but not from which invocation: the AWS
//! SDKs send `X-Amzn-Trace-Id` (from `_X_AMZN_TRACE_ID`, which Wisp sets per
//! invocation), whose `Parent` is the invocation's span. [`LiveCalls`] maps the spans
//! of running native invocations to their context, so such a call finds its own; a
//! call without the header (or naming an invocation that is not running, or one of
//! another function) is taken as one call deep with no deadline but the callee's.

use crate::breaker::Endpoint;
use crate::pipeline::{Accepted, AsyncOptions};
use crate::registry::Version;
use crate::{Engine, EngineError, InvokeOptions};
use bytes::Bytes;
use http::Response;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use wisp_core::{ErrorCode, FunctionName, Limits, Namespace, Qualifier, trace};
use wisp_runtime::{Body, CallContext};

/// Who calls: a function of `namespace`, from an invocation running under `context`
/// (its own deadline, depth and trace).
#[derive(Clone, Debug)]
pub struct CallFrom {
    pub namespace: Namespace,
    pub function: FunctionName,
    pub context: CallContext,
    /// The calling invocation's id, when known: the parent of what the call causes
    /// (`None` for a native function's call that names no running invocation).
    pub invocation: Option<Arc<str>>,
}

impl CallFrom {
    /// The context the callee runs under: one call deeper, by the caller's deadline, in
    /// its trace, with the calling invocation as its parent.
    fn callee_context(&self) -> Result<CallContext, EngineError> {
        let depth = self.context.depth + 1;
        if depth > Limits::MAX_CHAIN_DEPTH {
            return Err(EngineError::new(
                ErrorCode::LoopDetected,
                format!(
                    "function `{}` called another from a chain of calls {} deep (the limit is {}): \
                     a function is calling itself in a loop; the call was not made",
                    self.function,
                    self.context.depth,
                    Limits::MAX_CHAIN_DEPTH
                ),
            ));
        }
        if let Some(deadline) = self.context.deadline
            && deadline <= Instant::now()
        {
            return Err(EngineError::new(
                ErrorCode::Timeout,
                format!(
                    "function `{}` has no time left to call another: its own deadline has passed",
                    self.function
                ),
            ));
        }
        Ok(CallContext {
            deadline: self.context.deadline,
            depth,
            trace_root: self.context.trace_root.clone(),
            parent: self.invocation.clone(),
        })
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::Function {
            namespace: self.namespace.clone(),
            name: self.function.clone(),
        }
    }
}

/// Whether a failed call counts against the callee in its breaker: its own failures,
/// timeouts and throttles do; a call the caller got wrong (no such function, a bad
/// payload) says nothing about the callee's health.
fn counts_against_callee(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::FunctionError
            | ErrorCode::Timeout
            | ErrorCode::OutOfMemory
            | ErrorCode::InvalidResponse
            | ErrorCode::ResponseTooLarge
            | ErrorCode::Throttled
            | ErrorCode::Internal
    )
}

impl Engine {
    /// Runs function `name` of the caller's namespace for `from`, synchronously, as
    /// [`Engine::invoke`] does, under the caller's context; refused with
    /// `loop_detected` from too deep a chain, `timeout` when the caller has no time left
    /// and `circuit_open` (nothing run) while the breaker on caller → callee is open.
    /// An answer with a 5xx status, or the callee's failure, counts as a failed call.
    pub async fn call(
        &self,
        from: &CallFrom,
        name: &FunctionName,
        payload: Bytes,
        options: InvokeOptions,
    ) -> Result<Response<Body>, EngineError> {
        let context = from.callee_context()?;
        let callee = Endpoint::Function {
            namespace: from.namespace.clone(),
            name: name.clone(),
        };
        let permit = self.guard(from.endpoint(), callee)?;
        let answer = self
            .invoke_in(&from.namespace, name, payload, context, options)
            .await;
        let now = self.breaker_now();
        match &answer {
            Ok(response) if response.status().is_server_error() => permit.failure(now),
            Ok(_) => permit.success(now),
            Err(e) if counts_against_callee(e.code) => permit.failure(now),
            Err(_) => permit.release(),
        }
        answer
    }

    /// Queues an event for function `name` of the caller's namespace (an async call):
    /// refused as [`Engine::call`] is by the loop guard and an open breaker, so
    /// nothing piles up behind a callee that fails; the event carries the chain's
    /// depth and the caller's trace root, and its run is not part of the caller's.
    pub async fn call_async(
        &self,
        from: &CallFrom,
        name: &FunctionName,
        qualifier: Option<Qualifier>,
        payload: Bytes,
    ) -> Result<Accepted, EngineError> {
        let context = from.callee_context()?;
        let callee = Endpoint::Function {
            namespace: from.namespace.clone(),
            name: name.clone(),
        };
        // Asked only to fail fast: the event's run is what succeeds or fails, later.
        self.guard(from.endpoint(), callee)?.release();
        let options = AsyncOptions {
            chain_depth: context.depth,
            source: format!("function:{}", from.function),
            qualifier,
            trace: context.trace_root.as_deref().map(str::to_owned),
            parent: context.parent.as_deref().map(str::to_owned),
            ..AsyncOptions::default()
        };
        self.enqueue(&from.namespace, name, payload, options).await
    }

    /// Who makes a call that function `function` of `namespace` sent over HTTP with
    /// X-Ray header `trace_header`: the running invocation the header's `Parent`
    /// names, when it is one of this function's; else a call with no context of its
    /// own (one call deep, in the header's trace if it names one).
    pub fn call_from(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        trace_header: Option<&str>,
    ) -> CallFrom {
        let (root, parent) = trace_header.map(trace::parse).unwrap_or_default();
        let (context, invocation) = match parent.and_then(|span| self.calls.find(span, namespace, function)) {
            Some((context, invocation)) => (context, Some(invocation)),
            None => (
                CallContext {
                    trace_root: root.map(Arc::from),
                    ..CallContext::default()
                },
                None,
            ),
        };
        CallFrom {
            namespace: namespace.clone(),
            function: function.clone(),
            context,
            invocation,
        }
    }
}

/// A running native invocation, as a call from it finds it.
struct Running {
    namespace: Namespace,
    function: FunctionName,
    context: CallContext,
    /// Its id: the parent of what its calls cause.
    invocation: Arc<str>,
}

/// The running native invocations, by span (see the module docs).
#[derive(Default)]
pub(crate) struct LiveCalls {
    running: Mutex<HashMap<String, Running>>,
}

impl LiveCalls {
    /// Records invocation `id` of `version` as running until the guard is dropped,
    /// under `context` with the deadline and timeout it was bound to.
    pub(crate) fn enter(
        self: &Arc<Self>,
        id: &str,
        version: &Version,
        (deadline, _timeout): (Instant, std::time::Duration),
        context: &CallContext,
    ) -> LiveGuard {
        let span = trace::span_of(id);
        let running = Running {
            namespace: version.namespace.clone(),
            function: version.function.clone(),
            context: CallContext {
                deadline: Some(deadline),
                depth: context.depth,
                trace_root: Some(context.root_for(id)),
                parent: context.parent.clone(),
            },
            invocation: id.into(),
        };
        self.lock().insert(span.clone(), running);
        LiveGuard {
            calls: self.clone(),
            span,
        }
    }

    /// The context and id of the running invocation with `span`, when it is one of
    /// `function`'s.
    fn find(
        &self,
        span: &str,
        namespace: &Namespace,
        function: &FunctionName,
    ) -> Option<(CallContext, Arc<str>)> {
        let running = self.lock();
        let found = running.get(span)?;
        (found.namespace == *namespace && found.function == *function)
            .then(|| (found.context.clone(), found.invocation.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes its invocation from [`LiveCalls`] when dropped (when the invocation is done).
pub(crate) struct LiveGuard {
    calls: Arc<LiveCalls>,
    span: String,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.calls.lock().remove(&self.span);
    }
}

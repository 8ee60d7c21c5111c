//! `http` functions: `wasi:http/proxy` components, a fresh instance per request.
//!
//! The request's body streams into the guest and the guest's response body streams
//! out while the guest keeps running in its own task, under the function's deadline.
//! This is the hot path: per request it builds a store, instantiates from the
//! `ProxyPre`, and calls `wasi:http/incoming-handler.handle`.

use super::capture::Capture;
use super::failure::{RunEnd, classify};
use super::guest_body::{Guest, GuestBody};
use super::limits::{MemoryLimiter, set_deadline};
use super::state::{ComponentState, wasi_builder};
use super::{Artifact, Inner};
use crate::body::{BodyTooLarge, BoxError};
use crate::env::FunctionEnv;
use crate::{
    CallContext, CallSite, Finished, FunctionSpec, Input, Invocation, InvokeError, LoadError, Logs, Output,
};
use async_trait::async_trait;
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::component::Component;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

pub(crate) struct HttpFunction {
    inner: Arc<Inner>,
    /// The compiled code, shared by every function loaded from it; held so that it
    /// stays shared for as long as one of them is loaded.
    _code: Arc<Artifact>,
    pre: ProxyPre<ComponentState>,
    name: String,
    /// Built at load; secret references resolved per instance (see `crate::env`).
    env: FunctionEnv,
    memory_mb: u32,
    timeout: Duration,
}

impl HttpFunction {
    pub(crate) fn new(
        inner: Arc<Inner>,
        spec: &FunctionSpec,
        component: &Component,
        code: Arc<Artifact>,
    ) -> Result<Self, LoadError> {
        let instance_pre = inner.component_linker.instantiate_pre(component).map_err(|e| {
            LoadError::InvalidCode(format!(
                "the component imports something Wisp does not provide: {e:#}"
            ))
        })?;
        let pre = ProxyPre::new(instance_pre).map_err(|e| {
            LoadError::InvalidCode(format!(
                "kind = \"http\" needs a wasi:http/proxy component exporting wasi:http/incoming-handler, \
                 and this one does not ({e:#}); a WASI command program is deployed with kind = \"event\""
            ))
        })?;
        Ok(HttpFunction {
            inner,
            _code: code,
            pre,
            name: spec.name.clone(),
            env: FunctionEnv::new(&spec.config.env),
            memory_mb: spec.config.memory_mb,
            timeout: spec.config.timeout,
        })
    }
}

/// Ends an invocation whose instance cannot start for a missing secret: its log says
/// why, and it fails with `function_error`.
pub(super) fn missing_secret(
    missing: crate::env::MissingSecret,
    started: Instant,
    on_finish: Option<Box<dyn FnOnce(Finished) + Send>>,
) -> InvokeError {
    let logs = Logs {
        stderr: missing.log_line(),
        ..Logs::default()
    };
    let error = missing.into_invoke_error();
    if let Some(on_finish) = on_finish {
        on_finish(Finished {
            logs,
            duration: started.elapsed(),
            error: Some(error.code()),
            init: None,
        });
    }
    error
}

/// Maps our body's errors onto wasi:http's, keeping "too large" recognisable to the guest.
fn to_wasi_error(err: BoxError) -> wasmtime_wasi_http::Error {
    if let Some(too_large) = err.downcast_ref::<BodyTooLarge>() {
        return wasmtime_wasi_http::Error::HttpRequestBodySize(Some(too_large.limit as u64));
    }
    match err.downcast::<hyper::Error>() {
        Ok(hyper_err) => wasmtime_wasi_http::Error::Hyper(*hyper_err),
        Err(other) => wasmtime_wasi_http::Error::InternalError(Some(other.to_string())),
    }
}

#[async_trait]
impl crate::Function for HttpFunction {
    async fn invoke(&self, invocation: Invocation) -> Result<Output, InvokeError> {
        let Input::Http(request) = invocation.input else {
            return Err(InvokeError::WrongInput("http functions take HTTP requests"));
        };
        let started = Instant::now();
        let (deadline, timeout) = invocation.context.bound(started, self.timeout);
        let site = CallSite {
            invocation: invocation.id,
            context: CallContext {
                deadline: Some(deadline),
                ..invocation.context
            },
        };
        let log_cap = self.inner.limits.max_log_bytes_per_invocation;
        let env = match self.env.resolve(invocation.services.secret_values().as_ref()) {
            Ok(env) => env,
            Err(missing) => return Err(missing_secret(missing, started, invocation.on_finish)),
        };
        let (stdout, stderr) = (Capture::new(log_cap), Capture::new(log_cap));
        let wasi = wasi_builder(&self.name, &env, &stdout, &stderr).build();
        let mut store = Store::new(
            &self.inner.engine,
            ComponentState::new(
                wasi,
                MemoryLimiter::new(self.memory_mb),
                invocation.services,
                site,
            ),
        );
        store.limiter(|s| &mut s.limiter);
        set_deadline(&mut store, deadline);

        let (sender, mut receiver) = tokio::sync::oneshot::channel();
        let request = request.map(|body| body.map_err(to_wasi_error));
        let internal = |e: wasmtime::Error| InvokeError::Internal(format!("{e:#}"));
        let guest_request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(internal)?;
        let response_out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(internal)?;

        let pre = self.pre.clone();
        let memory_mb = self.memory_mb;
        let on_finish = invocation.on_finish;
        let (ended_tx, mut ended_rx) = tokio::sync::oneshot::channel();
        let run = async move {
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, guest_request, response_out)
                    .await
            };
            let end = match tokio::time::timeout_at(deadline.into(), run).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(RunEnd::Failed(e)),
                Err(_) => Some(RunEnd::Elapsed),
            };
            let memory_exceeded = store.data().limiter.exceeded;
            drop(store);
            let error = end.and_then(|end| classify(end, memory_exceeded, memory_mb, timeout));
            if let Some(on_finish) = on_finish {
                on_finish(Finished {
                    logs: Logs {
                        truncated: stdout.overflowed() || stderr.overflowed(),
                        stdout: stdout.take(),
                        stderr: stderr.take(),
                    },
                    duration: started.elapsed(),
                    error: error.as_ref().map(InvokeError::code),
                    init: None,
                });
            }
            let _ = ended_tx.send(error);
        };
        let mut guest = Guest::new(Box::pin(run));

        // Drive the guest on this task until it sets the response head (or ends);
        // after that it travels inside the response body (see `guest_body`).
        let head = std::future::poll_fn(|cx| {
            if let Poll::Ready(head) = Pin::new(&mut receiver).poll(cx) {
                return Poll::Ready(head.map_err(|_| ()));
            }
            match guest.poll(cx) {
                // The guest ended; it may have set the response on its way out.
                Poll::Ready(()) => Poll::Ready(receiver.try_recv().map_err(|_| ())),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        match head {
            Ok(Ok(response)) => Ok(Output::Http(
                response.map(|body| GuestBody::new(body, guest).boxed_unsync()),
            )),
            Ok(Err(code)) => Err(InvokeError::Function(format!(
                "the function answered with an error: {code:?}"
            ))),
            // No response will come: the guest's end says why.
            Err(()) => {
                std::future::poll_fn(|cx| guest.poll(cx)).await;
                match ended_rx.try_recv() {
                    Ok(Some(error)) => Err(error),
                    Ok(None) => Err(InvokeError::InvalidResponse(
                        "the function returned without setting a response".into(),
                    )),
                    Err(_) => Err(InvokeError::Internal("the guest ended without a result".into())),
                }
            }
        }
    }
}

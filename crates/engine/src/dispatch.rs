//! Running invocations: admission by the function's pool, the run itself with the
//! function's services, and its record (cold or warm, init, queue wait and run
//! time), for every way in: the sync invoke API ([`Engine::invoke`]), HTTP routes
//! (the http trigger) and the one attempt path of the async pipeline and the queue
//! triggers ([`Engine::attempt`]), which gets a function's answer as bytes.

use crate::pool::Ticket;
use crate::quota::Charge;
use crate::registry::{Deployed, Version};
use crate::verdict::{Judge, Verdict};
use crate::{Engine, EngineError, TailSender};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use wisp_core::wall::micros_u64;
use wisp_core::{ErrorCode, FunctionName, Kind, Namespace, Qualifier};
use wisp_runtime::{Body, CallContext, Function, Input, Invocation, Output, body};
use wisp_store::InvocationRecord;

/// The response header carrying the invocation id (the logs carry it too).
pub const INVOCATION_ID_HEADER: &str = "x-wisp-invocation-id";

/// The response header carrying the number of the version that ran (Lambda's path
/// says it in `X-Amz-Executed-Version`).
pub const VERSION_HEADER: &str = "x-wisp-version";

/// What a synchronous invocation is given besides its payload.
#[derive(Default)]
pub struct InvokeOptions {
    /// The version or alias to run (`None`: `live`).
    pub qualifier: Option<Qualifier>,
    /// The payload's type, for an http function's request (JSON by default).
    pub content_type: Option<HeaderValue>,
    /// Lambda's `ClientContext`, decoded: the JSON object a caller's client sent with the
    /// invocation. A native function's runtime gets it as `Lambda-Runtime-Client-Context`
    /// (`context.client_context`), an http function as `X-Amz-Client-Context` (base64).
    pub client_context: Option<Arc<str>>,
    /// Where to send the end of the run's output when it finishes ([`crate::log_tail`]).
    pub tail: Option<TailSender>,
}

/// The request header an http function finds Lambda's `ClientContext` in, base64 as
/// Lambda's Invoke takes it.
const CLIENT_CONTEXT_HEADER: &str = "x-amz-client-context";

/// An admitted invocation whose code is loaded, ready to run.
pub(crate) struct Admitted {
    function: Arc<dyn Function>,
    /// The number of the version that runs, as a header value.
    version: HeaderValue,
    /// How long it waited for a slot.
    queued: Duration,
    /// How long loading the code took, on a cold start.
    load: Option<Duration>,
    /// For functions that keep instances: an instance's start-up time, set when the
    /// invocation finishes (wasm functions have none, and skip the allocation).
    instance_init: Option<Arc<Mutex<Option<Duration>>>>,
    /// On the attempt path: where the record waits for the answer's judgement.
    verdict: Option<Arc<Verdict>>,
}

/// An admitted invocation's claims, held until it is done: its slots ([`Ticket`]) and
/// the request counted against its namespace's quota ([`Charge`]).
pub(crate) struct Slot {
    ticket: Ticket,
    charge: Charge,
}

impl Admitted {
    /// `Server-Timing` for the response: the queue wait, and the init time of a cold
    /// start (the code load, or the instance start when it is known by then).
    fn server_timing(&self) -> Option<HeaderValue> {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut value = format!("queue;dur={:.3}", ms(self.queued));
        let instance = self
            .instance_init
            .as_ref()
            .and_then(|cell| *cell.lock().unwrap_or_else(PoisonError::into_inner));
        let init = self.load.unwrap_or_default() + instance.unwrap_or_default();
        if self.load.is_some() || instance.is_some() {
            value.push_str(&format!(", init;dur={:.3}", ms(init)));
        }
        HeaderValue::from_str(&value).ok()
    }

    /// Adds the invocation id, the version that ran and `Server-Timing` to a response.
    pub(crate) fn tag(&self, mut response: Response<Body>, id: &str) -> Response<Body> {
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(id) {
            headers.insert(INVOCATION_ID_HEADER, value);
        }
        headers.insert(VERSION_HEADER, self.version.clone());
        if let Some(timing) = self.server_timing() {
            headers.append("server-timing", timing);
        }
        response
    }
}

pub(crate) fn new_invocation_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub(crate) fn too_large(limit: usize) -> EngineError {
    EngineError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than the limit of {limit} bytes"),
    )
}

impl Engine {
    /// The version an invocation of `deployed` naming `qualifier` (`live` when it names
    /// none) runs; a disabled function runs none.
    pub(crate) fn choose<'a>(
        &self,
        deployed: &'a Deployed,
        qualifier: Option<&Qualifier>,
    ) -> Result<&'a Arc<Version>, EngineError> {
        let name = &deployed.record.name;
        if deployed.record.disabled {
            return Err(EngineError::disabled(name));
        }
        match qualifier {
            None => Ok(deployed.live()),
            Some(q) => deployed
                .resolve(q)
                .ok_or_else(|| EngineError::no_qualifier(name, q)),
        }
    }

    /// Admits an invocation (a slot, or a bounded wait for one, then a request of the
    /// namespace's quota) and loads the code.
    pub(crate) async fn admit(&self, deployed: &Arc<Version>) -> Result<(Admitted, Slot), EngineError> {
        let namespace = &deployed.namespace;
        // A stopped namespace is refused before it waits for a slot; an invocation is
        // counted only once it has one (a throttled one is not billed).
        let ledger = self.ledger(namespace);
        ledger.refuse_if_stopped(namespace)?;
        let gate = self.namespace_gate(namespace);
        let ticket = deployed.pool.admit(&gate).await?;
        let charge = Charge::take(ledger, namespace)?;
        let (function, load) = deployed.pool.function().await?;
        if load.is_some() {
            deployed.pool.count_cold_start();
        }
        let instance_init = function.keeps_instances().then(|| Arc::new(Mutex::new(None)));
        let admitted = Admitted {
            function,
            version: deployed.header.clone(),
            queued: ticket.queued,
            load,
            instance_init,
            verdict: None,
        };
        Ok((admitted, Slot { ticket, charge }))
    }

    /// Runs an admitted invocation. Its slot is held until the guest has finished
    /// (for a streaming response, until the body is done), then its logs and record
    /// are queued for the store. Of `options`, the qualifier (which version runs is
    /// chosen), the tail and the client context count here (`input` is built).
    #[expect(
        clippy::too_many_arguments,
        reason = "what admission gave, and the Invoke's options"
    )]
    pub(crate) async fn run(
        &self,
        deployed: &Arc<Version>,
        id: &str,
        mut input: Input,
        admitted: &Admitted,
        slot: Slot,
        context: CallContext,
        options: InvokeOptions,
    ) -> Result<Output, EngineError> {
        let Slot { ticket, charge } = slot;
        let InvokeOptions {
            qualifier,
            tail,
            client_context,
            ..
        } = options;
        // A native function's calls name the invocation they come from by its span;
        // wasm guests' calls carry their context themselves.
        let (context, running) = if admitted.function.keeps_instances() {
            // One root for the instance's trace header and the calls that name it.
            let context = CallContext {
                trace_root: Some(context.root_for(id)),
                ..context
            };
            let bound = context.bound(std::time::Instant::now(), deployed.record.config.timeout);
            let running = self.calls.enter(id, deployed, bound, &context);
            (context, Some(running))
        } else {
            (context, None)
        };
        let root = context.root_for(id);
        if let Input::Http(request) = &mut input {
            trace_headers(request.headers_mut(), &root, id);
        }
        let sink = self.logs.clone();
        let pool = deployed.pool.clone();
        let record = InvocationRecord {
            namespace: deployed.namespace.clone(),
            function: deployed.function.clone(),
            id: id.to_string(),
            version: deployed.record.id.clone(),
            version_number: deployed.record.number,
            started_at: ticket.arrived,
            cold: admitted.load.is_some(),
            init_us: admitted.load.map(micros_u64),
            queue_us: micros_u64(ticket.queued),
            run_us: 0,
            error: None,
            memory_mb: deployed.record.config.memory_mb,
            billed_ms: 0,
            reserved: ticket.reserved(),
            trace: Some(root.to_string()),
            parent: context.parent.as_deref().map(str::to_owned),
        };
        let instance_init = admitted.instance_init.clone();
        let verdict = admitted.verdict.clone();
        let invocation = Invocation {
            id: id.to_string(),
            input,
            services: deployed.services.clone(),
            context,
            client_context,
            qualifier,
            on_finish: Some(Box::new(move |finished| {
                let mut record = record;
                if let Some(init) = finished.init {
                    if let Some(cell) = &instance_init {
                        *cell.lock().unwrap_or_else(PoisonError::into_inner) = Some(init);
                    }
                    if !record.cold {
                        pool.count_cold_start();
                    }
                    record.cold = true;
                    record.init_us = Some(record.init_us.unwrap_or(0) + micros_u64(init));
                }
                record.run_us = micros_u64(finished.duration);
                // Billed: the run, not a native instance's start (a cold start is the
                // platform's doing, as scaling to zero is).
                let run = finished
                    .duration
                    .saturating_sub(finished.init.unwrap_or_default());
                // In whole microseconds, as `run_us` is recorded: a warm run's billed_ms is
                // its run_us rounded up, never one more for the nanoseconds past it.
                record.billed_ms = wisp_core::billing::billed_ms(Duration::from_micros(micros_u64(run)));
                record.error = finished.error.map(|code| code.as_str().to_string());
                if let Some(code) = finished.error {
                    tracing::debug!(function = %record.function, invocation = %record.id, %code, "invocation failed");
                }
                charge.finish(&record);
                if let Some(tail) = tail {
                    tail.send(&finished.logs, &record);
                }
                sink.record(
                    &record.namespace,
                    &record.function,
                    &record.id,
                    record.version_number,
                    finished.logs,
                );
                match verdict {
                    Some(verdict) => verdict.finished(record),
                    None => {
                        pool.metrics.observe(&record);
                        sink.record_invocation(record);
                    }
                }
                // The slot frees only now that the guest is done.
                drop(ticket);
                drop(running);
            })),
        };
        admitted
            .function
            .invoke(invocation)
            .await
            .map_err(EngineError::from)
    }

    /// Invokes a function synchronously with `payload`: an event function reads it on
    /// stdin and its stdout is the `200 application/json` answer; an http function gets
    /// it as the body of a `POST /` and its response comes back as it is. `trace` is
    /// the trace root the client named (`None`: the invocation starts its own);
    /// `options`, the version to run and what else goes with the payload.
    pub async fn invoke(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        payload: Bytes,
        trace: Option<String>,
        options: InvokeOptions,
    ) -> Result<Response<Body>, EngineError> {
        let context = CallContext {
            trace_root: trace.map(Arc::from),
            ..CallContext::default()
        };
        self.invoke_in(namespace, name, payload, context, options).await
    }

    /// [`Engine::invoke`] in a chain of calls (`context`: its deadline, depth and
    /// trace).
    pub(crate) async fn invoke_in(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        payload: Bytes,
        context: CallContext,
        mut options: InvokeOptions,
    ) -> Result<Response<Body>, EngineError> {
        let function = self
            .function(namespace, name)
            .ok_or_else(|| EngineError::function_not_found(name.as_str()))?;
        let deployed = self.choose(&function, options.qualifier.as_ref())?;
        let limit = self.limits.max_request_body;
        if payload.len() > limit {
            return Err(too_large(limit));
        }
        let id = new_invocation_id();
        let fail = |e: EngineError| e.ran(&id, deployed.record.number);
        let (admitted, ticket) = self.admit(deployed).await.map_err(fail)?;
        let input = payload_input(deployed, &id, payload, &mut options);
        let output = self
            .run(deployed, &id, input, &admitted, ticket, context, options)
            .await
            .map_err(fail)?;
        let response = match output {
            Output::Http(response) => response,
            Output::Event(bytes) => {
                let mut response = Response::new(body::full(bytes));
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                response
            }
        };
        Ok(admitted.tag(response, &id))
    }

    /// Runs `payload` once on a deployed function as invocation `id` (an async
    /// event's attempts all carry the event's id) and returns what it answered: an
    /// event function's stdout as it is, an http function's response body (an answer
    /// with a 5xx status is the function's failure, `function_error`). The one path
    /// by which the async pipeline and the queue triggers run work; the error's code
    /// tells a throttle or Wisp's own failure (`throttled`, `internal`) from the
    /// function's. `qualifier`: the version or alias the event named, if it did.
    pub(crate) async fn attempt(
        &self,
        deployed: &Arc<Version>,
        id: &str,
        payload: Bytes,
        context: CallContext,
        qualifier: Option<Qualifier>,
    ) -> Result<Bytes, EngineError> {
        let (mut admitted, ticket) = self.admit(deployed).await?;
        let verdict = Verdict::new(self.logs.clone(), deployed.pool.metrics.clone());
        admitted.verdict = Some(verdict.clone());
        let judge = Judge::new(verdict);
        let mut options = InvokeOptions {
            qualifier,
            ..InvokeOptions::default()
        };
        let input = payload_input(deployed, id, payload, &mut options);
        match self
            .run(deployed, id, input, &admitted, ticket, context, options)
            .await?
        {
            Output::Event(bytes) => Ok(bytes),
            Output::Http(response) => {
                let status = response.status();
                let limit = self.limits.max_response_body;
                let answer = match body::read_to_bytes(response.into_body(), limit).await {
                    Ok(answer) => answer,
                    Err(e) => {
                        judge.judge(Some(ErrorCode::ResponseTooLarge));
                        return Err(EngineError::new(
                            ErrorCode::ResponseTooLarge,
                            format!("reading the function's response failed: {e}"),
                        ));
                    }
                };
                // The record says what the pipeline counts: a 5xx is the function's failure.
                judge.judge(status.is_server_error().then_some(ErrorCode::FunctionError));
                if status.is_server_error() {
                    return Err(EngineError::new(
                        ErrorCode::FunctionError,
                        format!(
                            "the function answered {status}: {}",
                            String::from_utf8_lossy(&answer[..answer.len().min(512)])
                        ),
                    ));
                }
                Ok(answer)
            }
        }
    }
}

/// A payload as a function of its kind takes it: an event function's stdin, or the
/// body of a `POST /` to an http function (with the options' content type, JSON by
/// default, and their client context).
fn payload_input(deployed: &Version, id: &str, payload: Bytes, options: &mut InvokeOptions) -> Input {
    match deployed.record.config.kind {
        Kind::Event => Input::Event(payload),
        Kind::Http => {
            let mut request = Request::new(body::full(payload));
            *request.method_mut() = Method::POST;
            *request.uri_mut() = http::Uri::from_static("/");
            let headers = request.headers_mut();
            headers.insert(header::HOST, HeaderValue::from_static("localhost"));
            headers.insert(
                header::CONTENT_TYPE,
                options
                    .content_type
                    .take()
                    .unwrap_or(HeaderValue::from_static("application/json")),
            );
            if let Ok(value) = HeaderValue::from_str(id) {
                headers.insert(INVOCATION_ID_HEADER, value);
            }
            if let Some(context) = &options.client_context
                && let Ok(value) = HeaderValue::from_str(&BASE64.encode(context.as_bytes()))
            {
                headers.insert(CLIENT_CONTEXT_HEADER, value);
            }
            Input::Http(request)
        }
    }
}

/// Tells an http guest its trace: W3C's `traceparent` naming this invocation's span in
/// trace `root` (replacing a client's, whose `tracestate` is kept as it is) and X-Ray's
/// `X-Amzn-Trace-Id` with the same root and span. Both values are built on the stack:
/// two header inserts and their two copies, about 0.3-0.6 µs per request.
fn trace_headers(headers: &mut http::HeaderMap, root: &str, id: &str) {
    if let Some(value) =
        wisp_core::trace::traceparent(root, id).and_then(|value| HeaderValue::from_bytes(&value).ok())
    {
        headers.insert("traceparent", value);
    }
    if let Some(value) =
        wisp_core::trace::header_of(root, id).and_then(|value| HeaderValue::from_bytes(&value).ok())
    {
        headers.insert("x-amzn-trace-id", value);
    }
}

#[expect(dead_code, reason = "compiles only if the futures the server awaits are Send")]
fn assert_send(e: &Engine, r: Request<Body>, n: &Namespace, f: &FunctionName) {
    fn s<T: Send>(_: T) {}
    s(e.handle(r));
    s(e.invoke(n, f, Bytes::new(), None, InvokeOptions::default()));
}

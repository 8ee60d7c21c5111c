//! Invocations: the sync invoke API and requests to user routes, admitted by the
//! function's pool and dispatched to its loaded code. Every invocation is recorded:
//! cold or warm, init, queue wait and run time.

use crate::apigw::{self, RequestInfo};
use crate::pool::Ticket;
use crate::routes::Lookup;
use crate::{Deployed, Engine, EngineError};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::BodyExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use wisp_core::wall::micros_u64;
use wisp_core::{ErrorCode, FunctionName, Kind, Namespace};
use wisp_runtime::body::{BodyTooLarge, Limited};
use wisp_runtime::{Body, Function, Input, Invocation, Output, body};
use wisp_store::InvocationRecord;

/// The response header carrying the invocation id (the logs carry it too).
pub const INVOCATION_ID_HEADER: &str = "x-wisp-invocation-id";

/// An admitted invocation whose code is loaded, ready to run.
struct Admitted {
    function: Arc<dyn Function>,
    /// How long it waited for a slot.
    queued: Duration,
    /// How long loading the code took, on a cold start.
    load: Option<Duration>,
    /// For functions that keep instances: an instance's start-up time, set when the
    /// invocation finishes (wasm functions have none, and skip the allocation).
    instance_init: Option<Arc<Mutex<Option<Duration>>>>,
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
}

fn new_invocation_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn too_large(limit: usize) -> EngineError {
    EngineError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than the limit of {limit} bytes"),
    )
}

fn tag(mut response: Response<Body>, id: &str, admitted: &Admitted) -> Response<Body> {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(id) {
        headers.insert(INVOCATION_ID_HEADER, value);
    }
    if let Some(timing) = admitted.server_timing() {
        headers.append("server-timing", timing);
    }
    response
}

impl Engine {
    /// Admits an invocation (a slot, or a bounded wait for one) and loads the code.
    async fn admit(&self, deployed: &Arc<Deployed>) -> Result<(Admitted, Ticket), EngineError> {
        let gate = self.namespace_gate(&deployed.record.namespace);
        let ticket = deployed.pool.admit(&gate).await?;
        let (function, load) = deployed.pool.function().await?;
        if load.is_some() {
            deployed.pool.count_cold_start();
        }
        let instance_init = function.keeps_instances().then(|| Arc::new(Mutex::new(None)));
        let admitted = Admitted {
            function,
            queued: ticket.queued,
            load,
            instance_init,
        };
        Ok((admitted, ticket))
    }

    /// Runs an admitted invocation. Its slot is held until the guest has finished
    /// (for a streaming response, until the body is done), then its logs and record
    /// are queued for the store.
    async fn run(
        &self,
        deployed: &Arc<Deployed>,
        id: &str,
        input: Input,
        admitted: &Admitted,
        ticket: Ticket,
    ) -> Result<Output, EngineError> {
        let sink = self.logs.clone();
        let pool = deployed.pool.clone();
        let record = InvocationRecord {
            namespace: deployed.record.namespace.clone(),
            function: deployed.record.name.clone(),
            id: id.to_string(),
            version: deployed.record.version.id.clone(),
            started_at: ticket.arrived,
            cold: admitted.load.is_some(),
            init_us: admitted.load.map(micros_u64),
            queue_us: micros_u64(ticket.queued),
            run_us: 0,
            error: None,
        };
        let instance_init = admitted.instance_init.clone();
        let invocation = Invocation {
            id: id.to_string(),
            input,
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
                record.error = finished.error.map(|code| code.as_str().to_string());
                if let Some(code) = finished.error {
                    tracing::debug!(function = %record.function, invocation = %record.id, %code, "invocation failed");
                }
                sink.record(&record.namespace, &record.function, &record.id, finished.logs);
                sink.record_invocation(record);
                // The slot frees only now that the guest is done.
                drop(ticket);
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
    /// it as the body of a `POST /` and its response comes back as it is.
    pub async fn invoke(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        payload: Bytes,
        content_type: Option<HeaderValue>,
    ) -> Result<Response<Body>, EngineError> {
        let deployed = self
            .function(namespace, name)
            .ok_or_else(|| EngineError::function_not_found(name.as_str()))?;
        let limit = self.limits.max_request_body;
        if payload.len() > limit {
            return Err(too_large(limit));
        }
        let id = new_invocation_id();
        self.invoke_deployed(&deployed, &id, payload, content_type).await
    }

    /// Invokes a deployed function as invocation `id` (an async event's attempts all
    /// carry the event's id).
    pub(crate) async fn invoke_deployed(
        &self,
        deployed: &Arc<Deployed>,
        id: &str,
        payload: Bytes,
        content_type: Option<HeaderValue>,
    ) -> Result<Response<Body>, EngineError> {
        let fail = |e: EngineError| e.with_invocation(id);
        let (admitted, ticket) = self.admit(deployed).await.map_err(fail)?;
        let input = match deployed.record.version.config.kind {
            Kind::Event => Input::Event(payload),
            Kind::Http => {
                let mut request = Request::new(body::full(payload));
                *request.method_mut() = Method::POST;
                *request.uri_mut() = http::Uri::from_static("/");
                let headers = request.headers_mut();
                headers.insert(header::HOST, HeaderValue::from_static("localhost"));
                headers.insert(
                    header::CONTENT_TYPE,
                    content_type.unwrap_or(HeaderValue::from_static("application/json")),
                );
                if let Ok(value) = HeaderValue::from_str(id) {
                    headers.insert(INVOCATION_ID_HEADER, value);
                }
                Input::Http(request)
            }
        };
        let output = self
            .run(deployed, id, input, &admitted, ticket)
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
        Ok(tag(response, id, &admitted))
    }

    /// Serves a request to a user route.
    pub async fn handle(&self, request: Request<Body>) -> Result<Response<Body>, EngineError> {
        let (mut parts, body) = request.into_parts();
        let state = self.state.load_full();
        let (target, params) = match state.routes.lookup(parts.method.as_str(), parts.uri.path()) {
            Lookup::Found { target, params } => (target, params),
            Lookup::MethodNotAllowed { allow } => {
                let mut err = EngineError::new(
                    ErrorCode::MethodNotAllowed,
                    format!(
                        "`{}` is not allowed on `{}`; allowed: {allow}",
                        parts.method,
                        parts.uri.path()
                    ),
                );
                err.allow = Some(allow);
                return Err(err);
            }
            Lookup::NotFound => {
                let hint = if state.routes.is_empty() {
                    " (no function has routes yet)"
                } else {
                    ""
                };
                return Err(EngineError::new(
                    ErrorCode::RouteNotFound,
                    format!("no route matches `{}`{hint}", parts.uri.path()),
                ));
            }
        };
        let deployed: Arc<Deployed> = target.function.clone();
        let limit = self.limits.max_request_body;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            body::drain(body);
            return Err(too_large(limit));
        }
        let id = new_invocation_id();
        let fail = |e: EngineError| e.with_invocation(&id);
        match deployed.record.version.config.kind {
            Kind::Http => {
                // The body streams into the guest, so the slot is taken first.
                let (admitted, ticket) = self.admit(&deployed).await.map_err(fail)?;
                let (limited, exceeded) = Limited::new(body, limit);
                if parts.uri.authority().is_none() && !parts.headers.contains_key(header::HOST) {
                    parts
                        .headers
                        .insert(header::HOST, HeaderValue::from_static("localhost"));
                }
                let request = Request::from_parts(parts, limited.boxed_unsync());
                let result = self
                    .run(&deployed, &id, Input::Http(request), &admitted, ticket)
                    .await;
                if exceeded.load(Ordering::Acquire) {
                    return Err(fail(too_large(limit)));
                }
                match result.map_err(fail)? {
                    Output::Http(response) => Ok(tag(response, &id, &admitted)),
                    Output::Event(_) => Err(fail(EngineError::new(
                        ErrorCode::Internal,
                        "http function answered an event",
                    ))),
                }
            }
            Kind::Event => {
                // The body is read before taking a slot: a slow client holds none.
                let bytes: Bytes = match body::read_to_bytes(body, limit).await {
                    Ok(bytes) => bytes,
                    Err(e) if e.is::<BodyTooLarge>() => return Err(fail(too_large(limit))),
                    Err(e) => {
                        return Err(fail(EngineError::new(
                            ErrorCode::InvalidRequest,
                            format!("cannot read the request body: {e}"),
                        )));
                    }
                };
                let method = match target.methods.as_slice() {
                    [] => None,
                    [only] => Some(only.as_str()),
                    _ => Some(parts.method.as_str()),
                };
                let route_key = apigw::route_key(method, &target.pattern);
                let info = RequestInfo {
                    parts: &parts,
                    route_key: &route_key,
                    path_parameters: params,
                    request_id: &id,
                    namespace: deployed.record.namespace.as_str(),
                };
                let event = apigw::event(&info, &bytes);
                let (admitted, ticket) = self.admit(&deployed).await.map_err(fail)?;
                let output = self
                    .run(&deployed, &id, Input::Event(event.into()), &admitted, ticket)
                    .await
                    .map_err(fail)?;
                match output {
                    Output::Event(bytes) => apigw::response(bytes)
                        .map(|r| tag(r, &id, &admitted))
                        .map_err(fail),
                    Output::Http(_) => Err(fail(EngineError::new(
                        ErrorCode::Internal,
                        "event function answered HTTP",
                    ))),
                }
            }
        }
    }
}

#[allow(dead_code)]
fn _assert_send(e: &Engine, r: Request<Body>, n: &Namespace, f: &FunctionName) {
    fn s<T: Send>(_: T) {}
    s(e.handle(r));
    s(e.invoke(n, f, Bytes::new(), None));
}

//! The AWS Lambda Runtime API (version 2018-06-01), served to one instance.
//!
//! Each instance gets its own listener on a loopback port (its
//! `AWS_LAMBDA_RUNTIME_API`), so every request on it is that instance's:
//! - `GET  /2018-06-01/runtime/invocation/next` waits for the next event;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` answers it;
//! - `POST /2018-06-01/runtime/invocation/{id}/error` fails it, Lambda-shaped;
//! - `POST /2018-06-01/runtime/init/error` reports that the runtime could not start.
//!
//! Answers follow Lambda's: `202 {"status":"OK"}` on success, `400 InvalidRequestID`
//! for an id that is not the current invocation's, `413 RequestEntityTooLarge`.

use super::peer::PeerCheck;
use crate::invocation::ErrorReport;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

const PREFIX: &str = "/2018-06-01/runtime/";
/// The header a runtime names its error type in.
const ERROR_TYPE_HEADER: &str = "lambda-runtime-function-error-type";

/// One event handed to the instance.
pub(crate) struct Pending {
    pub id: String,
    pub payload: Bytes,
    /// When the invocation times out, in milliseconds since the Unix epoch.
    pub deadline_ms: u64,
    pub delivery: Delivery,
    pub reply: oneshot::Sender<Reply>,
}

/// What the runtime's `next` says of an event besides its id and deadline.
pub(crate) struct Delivery {
    /// `Lambda-Runtime-Trace-Id`, X-Ray's form (see `wisp_core::trace`).
    pub trace: String,
    /// `Lambda-Runtime-Client-Context`: Lambda's `ClientContext`, its JSON decoded (one
    /// line of ASCII: the server writes it so).
    pub client_context: Option<Arc<str>>,
    /// The version or alias the invocation's caller named: the end of
    /// `Lambda-Runtime-Invoked-Function-Arn`, unqualified without one.
    pub qualifier: Option<wisp_core::Qualifier>,
}

/// How the runtime answered an event.
#[derive(Debug)]
pub(crate) enum Reply {
    Response(Bytes),
    Error(ErrorReport),
    /// The response was larger than the limit; the runtime was told so.
    TooLarge,
}

/// Where the runtime is in its start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InitState {
    Starting,
    /// It has asked for its first event: initialised.
    Ready,
    Failed(ErrorReport),
}

/// A running Runtime API. Dropping it stops the listener and every connection.
pub(crate) struct RuntimeApi {
    pub addr: SocketAddr,
    pub submit: mpsc::Sender<Pending>,
    pub init: watch::Receiver<InitState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    function_arn: String,
    max_response: usize,
    queue: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    current: Mutex<Option<(String, oneshot::Sender<Reply>)>>,
    init: watch::Sender<InitState>,
}

impl RuntimeApi {
    /// Serves the API on `listener` (bound inside the instance's network namespace),
    /// or else on a loopback port of its own; with a `peer_check`, only to the
    /// instance's own processes.
    pub async fn start(
        function_arn: String,
        max_response: usize,
        peer_check: Option<PeerCheck>,
        listener: Option<std::net::TcpListener>,
    ) -> std::io::Result<RuntimeApi> {
        let listener = match listener {
            Some(listener) => TcpListener::from_std(listener)?,
            None => TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?,
        };
        let addr = listener.local_addr()?;
        let (submit, queue) = mpsc::channel(1);
        let (init_tx, init) = watch::channel(InitState::Starting);
        let shared = Arc::new(Shared {
            function_arn,
            max_response,
            queue: tokio::sync::Mutex::new(queue),
            current: Mutex::new(None),
            init: init_tx,
        });
        let task = tokio::spawn(accept(listener, shared, peer_check));
        Ok(RuntimeApi {
            addr,
            submit,
            init,
            task,
        })
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, peer_check: Option<PeerCheck>) {
    // Owned here so that aborting this task closes every connection.
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("runtime API accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next() => continue,
        };
        if let Some(check) = &peer_check
            && let Ok(local) = stream.local_addr()
            && !check.allows(local, peer)
        {
            tracing::warn!(%peer, "refused a Runtime API connection from outside the instance");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    let segments: Vec<&str> = rest.split('/').collect();
    match (request.method(), segments.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => next(shared).await,
        (&Method::POST, ["invocation", id, "response"]) => {
            let id = id.to_string();
            respond(shared, &id, request, false).await
        }
        (&Method::POST, ["invocation", id, "error"]) => {
            let id = id.to_string();
            respond(shared, &id, request, true).await
        }
        (&Method::POST, ["init", "error"]) => {
            let header_type = error_type_header(&request);
            let body = read_body(request.into_body(), shared.max_response)
                .await
                .unwrap_or_default();
            let report = ErrorReport::from_posted(&body, header_type.as_deref());
            shared.init.send_replace(InitState::Failed(report));
            accepted()
        }
        (method, ["invocation", "next"] | ["invocation", _, _] | ["init", "error"]) => {
            let message = format!("`{method}` is not allowed on `{path}`");
            discard(request, shared).await;
            lambda_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", &message)
        }
        _ => {
            discard(request, shared).await;
            lambda_error(
                StatusCode::NOT_FOUND,
                "UnknownPath",
                &format!("unknown path `{path}`"),
            )
        }
    }
}

/// Reads a request's body to its end before an error answer: a body left unread
/// would cost the runtime its kept-alive connection.
async fn discard(request: Request<Incoming>, shared: &Shared) {
    let _ = read_body(request.into_body(), shared.max_response).await;
}

/// Long-polls for the next event. The first call marks the runtime initialised.
async fn next(shared: &Shared) -> Response<Full<Bytes>> {
    shared.init.send_if_modified(|state| {
        let starting = *state == InitState::Starting;
        if starting {
            *state = InitState::Ready;
        }
        starting
    });
    // A runtime that asks again without answering has abandoned its invocation:
    // dropping the reply sender tells the caller so.
    drop(lock(&shared.current).take());
    let mut queue = shared.queue.lock().await;
    let pending = loop {
        match queue.recv().await {
            // The caller gave up (timed out) before the event was picked up.
            Some(pending) if pending.reply.is_closed() => continue,
            Some(pending) => break pending,
            None => {
                return lambda_error(
                    StatusCode::GONE,
                    "InstanceStopping",
                    "the instance is being stopped",
                );
            }
        }
    };
    drop(queue);
    let Pending {
        id,
        payload,
        deadline_ms,
        delivery,
        reply,
    } = pending;
    let mut response = Response::new(Full::new(payload));
    let headers = response.headers_mut();
    // awslambdaric crashes on a `next` without a content type.
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    put("lambda-runtime-aws-request-id", &id);
    put("lambda-runtime-deadline-ms", &deadline_ms.to_string());
    match &delivery.qualifier {
        Some(qualifier) => put(
            "lambda-runtime-invoked-function-arn",
            &format!("{}:{qualifier}", shared.function_arn),
        ),
        None => put("lambda-runtime-invoked-function-arn", &shared.function_arn),
    }
    put("lambda-runtime-trace-id", &delivery.trace);
    if let Some(client_context) = &delivery.client_context {
        put("lambda-runtime-client-context", client_context);
    }
    *lock(&shared.current) = Some((id, reply));
    response
}

/// `/invocation/{id}/response` and `/invocation/{id}/error`.
async fn respond(
    shared: &Shared,
    id: &str,
    request: Request<Incoming>,
    is_error: bool,
) -> Response<Full<Bytes>> {
    let header_type = error_type_header(&request);
    // Read first, whatever the answer (see `discard`).
    let body = read_body(request.into_body(), shared.max_response).await;
    let is_current = lock(&shared.current)
        .as_ref()
        .is_some_and(|(current, _)| current == id);
    if !is_current {
        return lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            &format!("Invalid request ID: `{id}` is not the invocation in progress"),
        );
    }
    let Some((_, reply)) = lock(&shared.current).take() else {
        return lambda_error(StatusCode::BAD_REQUEST, "InvalidRequestID", "Invalid request ID");
    };
    match body {
        Err(BodyError::TooLarge) => {
            let _ = reply.send(Reply::TooLarge);
            lambda_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!(
                    "Exceeded maximum allowed payload size ({} bytes).",
                    shared.max_response
                ),
            )
        }
        Err(BodyError::Read(e)) => {
            let _ = reply.send(Reply::Error(ErrorReport::new(
                "Runtime.InvalidResponse",
                format!("the runtime's response could not be read: {e}"),
            )));
            lambda_error(StatusCode::BAD_REQUEST, "InvalidResponse", &e)
        }
        Ok(body) if is_error => {
            let _ = reply.send(Reply::Error(ErrorReport::from_posted(
                &body,
                header_type.as_deref(),
            )));
            accepted()
        }
        Ok(body) => {
            let _ = reply.send(Reply::Response(body));
            accepted()
        }
    }
}

enum BodyError {
    TooLarge,
    Read(String),
}

async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}

fn error_type_header(request: &Request<Incoming>) -> Option<String> {
    request
        .headers()
        .get(ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn accepted() -> Response<Full<Bytes>> {
    json(StatusCode::ACCEPTED, br#"{"status":"OK"}"#.as_slice().into())
}

fn lambda_error(status: StatusCode, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    json(status, Bytes::from(body.to_string()))
}

fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

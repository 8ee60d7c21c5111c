//! Lambda's API under `/2015-03-31`, so the AWS CLI and SDKs (`--endpoint-url`) work
//! against Wisp unchanged: `Invoke` (`POST /2015-03-31/functions/{name}/invocations`,
//! here) and the management operations deploy tools use — functions, versions and
//! aliases (modules `functions` and `aliases`, their documents in `shapes`).
//!
//! These are routes of the control router ([`crate::router`]); any other path under
//! Lambda's prefix stays a reserved path Wisp does not serve (a `not_found` problem
//! document). The function is named as Lambda allows: a bare name,
//! `name:qualifier`, `ACCOUNT:function:NAME[:QUALIFIER]` or a whole ARN
//! (`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`), or with `?Qualifier=`.
//! The qualifier is a version number, an alias, or `$LATEST` (the newest version);
//! without one, `live` runs. `X-Amz-Executed-Version` says which version ran.
//!
//! `X-Amz-Invocation-Type` picks the call: `RequestResponse` (the default) runs the
//! function and answers `200` with its output — or, when the function failed, `200`
//! with `X-Amz-Function-Error: Unhandled` and the error document, as Lambda does;
//! `Event` answers `202` once the event is durable (the async pipeline runs it);
//! `DryRun` answers `204` when the function exists. Errors of the call itself are in
//! Lambda's shape, `{"Type", "Message"}` with the exception's name in
//! `x-amzn-ErrorType`, which is what the SDKs read.

mod aliases;
mod functions;
mod shapes;
mod stream;

use crate::auth::Scope;
use crate::body::{BodyError, read_limited};
use crate::platform::PlatformCall;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wisp_core::{ErrorCode, FunctionName, Limits, Namespace, Qualifier};
use wisp_engine::{
    AsyncOptions, CallFrom, Engine, EngineError, ErrorReport, INVOCATION_ID_HEADER, InvokeOptions,
    VERSION_HEADER, body,
};

/// The path prefix of Lambda's API (its version date).
pub const PREFIX: &str = "/2015-03-31";
/// The path prefix of Lambda's `InvokeWithResponseStream` (a later version date).
pub const STREAM_PREFIX: &str = "/2021-11-15";

/// The one path segment between `prefix` and `suffix` that `path` is made of, if it is.
fn segment_between<'a>(path: &'a str, prefix: &str, suffix: &str) -> Option<&'a str> {
    let name = path.strip_prefix(prefix)?.strip_suffix(suffix)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// The function an `Invoke` path names (`/2015-03-31/functions/{name}/invocations`), as
/// it is written there (percent-encoded, perhaps).
pub(crate) fn invoke_target(path: &str) -> Option<&str> {
    segment_between(path, "/2015-03-31/functions/", "/invocations")
}

/// Whether `path` is an `InvokeWithResponseStream`'s, a function named: on the S3
/// listener, only that is taken from the bucket `2021-11-15`'s namespace of paths.
pub(crate) fn is_stream_invoke(path: &str) -> bool {
    segment_between(path, "/2021-11-15/functions/", "/response-streaming-invocations").is_some()
}

/// Whether `path` is one of Lambda's API: where AWS clients sign with SigV4 and read
/// Lambda's error shape.
pub(crate) fn is_lambda_path(path: &str) -> bool {
    crate::router::is_under(path, PREFIX) || crate::router::is_under(path, STREAM_PREFIX)
}

/// The request id header of every answer (the invocation id when one ran).
const REQUEST_ID: &str = "x-amzn-requestid";
const ERROR_TYPE: &str = "x-amzn-errortype";
const FUNCTION_ERROR: &str = "x-amz-function-error";
const EXECUTED_VERSION: &str = "x-amz-executed-version";
const INVOCATION_TYPE: &str = "x-amz-invocation-type";
const LOG_TYPE: &str = "x-amz-log-type";
const LOG_RESULT: &str = "x-amz-log-result";
const CLIENT_CONTEXT: &str = "x-amz-client-context";
/// The longest `X-Amz-Client-Context` Lambda takes, in bytes of base64.
const CLIENT_CONTEXT_MAX: usize = 3583;
/// The X-Ray trace header the AWS SDKs send from inside a function.
const TRACE_HEADER: &str = "x-amzn-trace-id";

/// The region and account of ARNs Wisp makes up (as in its SQS events).
const LOCAL_REGION: &str = "local";
const LOCAL_ACCOUNT: &str = "000000000000";

/// The Lambda API's routes: `Invoke` and the management operations. Every other
/// path under [`PREFIX`] is a reserved path this server does not serve (the control
/// router's fallback).
pub(crate) fn routes() -> Router<Arc<Engine>> {
    // The SDKs list functions at `functions/`, with the trailing slash.
    let list_or_create = get(functions::list).post(functions::create);
    Router::new()
        .route("/2015-03-31/functions", list_or_create.clone())
        .route("/2015-03-31/functions/", list_or_create)
        .route(
            "/2015-03-31/functions/{name}",
            get(functions::get).delete(functions::delete),
        )
        .route("/2015-03-31/functions/{name}/code", put(functions::update_code))
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(functions::get_configuration).put(functions::update_configuration),
        )
        .route(
            "/2015-03-31/functions/{name}/versions",
            get(functions::list_versions).post(functions::publish_version),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases",
            get(aliases::list).post(aliases::create),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases/{alias}",
            get(aliases::get).put(aliases::update).delete(aliases::delete),
        )
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .route(stream::PATH, post(stream::invoke))
}

/// Lambda's Invoke on the services functions call (the S3 listener, and the platform
/// address for wasm guests): a function calling another, held to its `invoke` grant and
/// run as a function-to-function call ([`Engine::call`]: the loop guard, the caller's
/// remaining time, the circuit breaker). A person's key there invokes as on the control
/// listener.
pub(crate) fn invoke_router() -> Router<Arc<Engine>> {
    Router::new()
        .route(
            "/2015-03-31/functions/{name}/invocations",
            post(invoke_from_function),
        )
        .route(stream::PATH, post(stream::invoke_from_function))
}

/// An error of the call, in Lambda's shape.
struct LambdaError {
    status: StatusCode,
    /// The exception's name (`x-amzn-ErrorType`).
    kind: &'static str,
    /// `User` (the caller's fault) or `Service`.
    blame: &'static str,
    message: String,
    request_id: String,
    retry_after: Option<u32>,
}

impl LambdaError {
    fn user(status: StatusCode, kind: &'static str, message: impl Into<String>) -> LambdaError {
        LambdaError {
            status,
            kind,
            blame: "User",
            message: message.into(),
            request_id: request_id(),
            retry_after: None,
        }
    }

    fn invalid(message: impl Into<String>) -> LambdaError {
        LambdaError::user(StatusCode::BAD_REQUEST, "InvalidParameterValueException", message)
    }

    fn not_found(target: &Target) -> LambdaError {
        LambdaError::user(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("Function not found: {}", target.arn()),
        )
    }

    fn too_large(limit: usize, operation: &str) -> LambdaError {
        LambdaError::user(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!("Request must be smaller than {limit} bytes for the {operation} operation"),
        )
    }

    /// An engine error that is not the function's own failure.
    fn from_engine(e: EngineError, target: &Target) -> LambdaError {
        // Answered here: an internal error's cause goes to the server's log.
        e.log();
        let mut error = match e.code {
            ErrorCode::FunctionNotFound | ErrorCode::VersionNotFound | ErrorCode::AliasNotFound => {
                LambdaError::not_found(target)
            }
            ErrorCode::Forbidden => {
                LambdaError::user(StatusCode::FORBIDDEN, "AccessDeniedException", e.detail)
            }
            // AWS's name for a call cut by its recursive-loop detection.
            ErrorCode::LoopDetected => LambdaError::user(
                StatusCode::LOOP_DETECTED,
                "RecursiveInvocationException",
                e.detail,
            ),
            ErrorCode::CircuitOpen => LambdaError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "CircuitOpenException",
                blame: "Service",
                message: e.detail,
                request_id: request_id(),
                retry_after: e.retry_after,
            },
            // Lambda's answer to a function in a state that cannot run.
            ErrorCode::FunctionDisabled => {
                LambdaError::user(StatusCode::CONFLICT, "ResourceConflictException", e.detail)
            }
            // Lambda answers throttles this way; a spent monthly quota is one too.
            ErrorCode::Throttled | ErrorCode::QuotaExceeded => {
                let mut error = LambdaError::user(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequestsException",
                    e.detail,
                );
                error.retry_after = e.retry_after;
                error
            }
            ErrorCode::PayloadTooLarge => LambdaError::user(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                e.detail,
            ),
            code if code.status() < 500 => LambdaError::user(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                e.detail,
            ),
            _ => LambdaError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                kind: "ServiceException",
                blame: "Service",
                // Internal details stay in the server's log.
                message: if e.code == ErrorCode::Internal {
                    "the service failed; see the Wisp server's log".to_string()
                } else {
                    e.detail
                },
                request_id: request_id(),
                retry_after: None,
            },
        };
        if let Some(id) = e.invocation_id {
            error.request_id = id;
        }
        error
    }
}

impl IntoResponse for LambdaError {
    fn into_response(self) -> Response {
        let mut body = json!({ "Type": self.blame, "Message": self.message });
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            body["Reason"] = json!("ConcurrentInvocationLimitExceeded");
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(ERROR_TYPE, HeaderValue::from_static(self.kind));
        set_request_id(headers, &self.request_id);
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A request the auth layer refused, in Lambda's shape (`kind` is the exception AWS
/// clients know: `UnrecognizedClientException`, `InvalidSignatureException`, …).
pub(crate) fn refusal(status: u16, kind: &'static str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    LambdaError::user(status, kind, message).into_response()
}

fn set_request_id(headers: &mut HeaderMap, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        headers.insert(REQUEST_ID, value);
    }
}

/// A request id for an answer that ran nothing: UUID-shaped, unique in the process.
fn request_id() -> String {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let state = std::collections::hash_map::RandomState::new();
    let (a, b) = (state.hash_one(n), state.hash_one(!n));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// The function a request names.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    name: String,
    qualifier: Option<String>,
    region: String,
    account: String,
}

impl Target {
    /// Reads a bare name, `NAME:QUALIFIER`, a partial ARN or a whole one.
    fn parse(text: &str) -> Result<Target, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let local = |name: &str, qualifier: Option<&&str>| Target {
            name: name.to_string(),
            qualifier: qualifier.map(|q| q.to_string()),
            region: LOCAL_REGION.to_string(),
            account: LOCAL_ACCOUNT.to_string(),
        };
        let target = match parts.as_slice() {
            [name] | [name, _] => local(name, parts.get(1)),
            [account, "function", name] | [account, "function", name, _] => Target {
                account: account.to_string(),
                ..local(name, parts.get(3))
            },
            ["arn", _partition, "lambda", region, account, "function", name]
            | ["arn", _partition, "lambda", region, account, "function", name, _] => Target {
                region: region.to_string(),
                account: account.to_string(),
                ..local(name, parts.get(7))
            },
            _ => {
                return Err(format!(
                    "`{text}` is not a function name or ARN: use NAME, NAME:QUALIFIER or \
                     arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]"
                ));
            }
        };
        if target.name.is_empty() || target.qualifier.as_deref() == Some("") {
            return Err(format!("`{text}` has an empty part"));
        }
        Ok(target)
    }

    fn arn(&self) -> String {
        let mut arn = format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account, self.name
        );
        if let Some(q) = &self.qualifier {
            arn.push(':');
            arn.push_str(q);
        }
        arn
    }
}

#[derive(Deserialize)]
struct InvokeParams {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

/// The Invoke's `X-Amz-Invocation-Type`; `streaming`: `InvokeWithResponseStream`'s,
/// which has no `Event`.
fn invocation_type(headers: &HeaderMap, streaming: bool) -> Result<InvocationType, LambdaError> {
    let Some(value) = headers.get(INVOCATION_TYPE) else {
        return Ok(InvocationType::RequestResponse);
    };
    match (value.to_str().unwrap_or_default(), streaming) {
        ("RequestResponse", _) => Ok(InvocationType::RequestResponse),
        ("Event", false) => Ok(InvocationType::Event),
        ("DryRun", _) => Ok(InvocationType::DryRun),
        (other, _) => {
            let allowed = if streaming {
                "[RequestResponse, DryRun]"
            } else {
                "[Event, RequestResponse, DryRun]"
            };
            Err(LambdaError::invalid(format!(
                "1 validation error detected: Value '{other}' at 'invocationType' failed to satisfy constraint: \
                 Member must satisfy enum value set: {allowed}"
            )))
        }
    }
}

/// Whether the caller asked for the end of the run's log (`X-Amz-Log-Type: Tail`), in
/// `X-Amz-Log-Result` as Lambda gives it: base64 of its last 4 KB.
fn log_type(headers: &HeaderMap) -> Result<bool, LambdaError> {
    let Some(value) = headers.get(LOG_TYPE) else {
        return Ok(false);
    };
    match value.to_str().unwrap_or_default() {
        "None" => Ok(false),
        "Tail" => Ok(true),
        other => Err(LambdaError::invalid(format!(
            "1 validation error detected: Value '{other}' at 'logType' failed to satisfy constraint: \
             Member must satisfy enum value set: [Tail, None]"
        ))),
    }
}

/// Lambda's `ClientContext` (`X-Amz-Client-Context`): base64 of a JSON object, at most
/// 3583 bytes, which the function gets in its context; returned as compact JSON in
/// ASCII, fit for a header value every runtime's HTTP client reads alike.
fn client_context(headers: &HeaderMap) -> Result<Option<Arc<str>>, LambdaError> {
    let Some(value) = headers.get(CLIENT_CONTEXT) else {
        return Ok(None);
    };
    let bad = |why: &str| {
        LambdaError::user(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            format!("Client context must be a valid Base64-encoded JSON object: {why}"),
        )
    };
    if value.len() > CLIENT_CONTEXT_MAX {
        return Err(bad(&format!(
            "it is {} bytes, over the limit of {CLIENT_CONTEXT_MAX}",
            value.len()
        )));
    }
    let decoded = BASE64
        .decode(value.as_bytes())
        .map_err(|e| bad(&format!("it is not base64 ({e})")))?;
    match serde_json::from_slice::<serde_json::Value>(&decoded) {
        Ok(object @ serde_json::Value::Object(_)) => Ok(Some(ascii_json(&object.to_string()).into())),
        Ok(_) => Err(bad("it decodes to JSON that is not an object")),
        Err(e) => Err(bad(&format!("it does not decode to JSON ({e})"))),
    }
}

/// `json` with every character past ASCII written as a `\uXXXX` escape (two for one
/// past the Basic Multilingual Plane), the same JSON value. Such characters only stand
/// in strings, where an escape means the same.
fn ascii_json(json: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

/// Which function to run, checked: the name is one Wisp could have, and the
/// qualifier, if any, a version number, an alias or `$LATEST`.
fn resolve(
    raw: &str,
    query_qualifier: Option<String>,
) -> Result<(Target, FunctionName, Option<Qualifier>), LambdaError> {
    let mut target = Target::parse(raw).map_err(LambdaError::invalid)?;
    match (&target.qualifier, query_qualifier) {
        (Some(derived), Some(given)) if *derived != given => {
            return Err(LambdaError::invalid(format!(
                "The derived qualifier from the function name (`{derived}`) does not match the specified qualifier (`{given}`)."
            )));
        }
        (None, Some(given)) => target.qualifier = Some(given),
        _ => {}
    }
    let qualifier = match target.qualifier.as_deref() {
        None => None,
        Some(q) => Some(q.parse::<Qualifier>().map_err(|e| {
            LambdaError::invalid(format!(
                "invalid qualifier `{q}`: {e}; name a version number, an alias or $LATEST"
            ))
        })?),
    };
    let name = FunctionName::new(target.name.as_str()).map_err(|e| {
        LambdaError::invalid(format!(
            "{e} (Wisp function names are DNS labels, so no function of this name can exist)"
        ))
    })?;
    Ok((target, name, qualifier))
}

async fn invoke(
    scope: Scope,
    State(engine): State<Arc<Engine>>,
    request: InvokeRequest,
) -> Result<Response, LambdaError> {
    invoke_as(scope, engine, None, request).await
}

/// [`invoke`] on the services endpoint: who calls is a function (its credential, or the
/// platform address's identity), whose call runs as one; the invocation it comes from
/// is the platform's word for a wasm guest, or the X-Ray header's `Parent` for a
/// native one (see `wisp_engine`'s `calls` module).
async fn invoke_from_function(
    scope: Scope,
    State(engine): State<Arc<Engine>>,
    platform: Option<axum::Extension<PlatformCall>>,
    request: InvokeRequest,
) -> Result<Response, LambdaError> {
    let from = caller_of(&scope, &engine, platform, &request.headers);
    invoke_as(scope, engine, from, request).await
}

/// Which function calls, on the services endpoint: the platform's word for a wasm
/// guest, the credential's function (with the X-Ray header's `Parent` as the invocation
/// it comes from) for a native one; `None` for a person's key, whose invoke is like any
/// other.
fn caller_of(
    scope: &Scope,
    engine: &Engine,
    platform: Option<axum::Extension<PlatformCall>>,
    headers: &HeaderMap,
) -> Option<CallFrom> {
    match (platform, &scope.caller.grants) {
        (Some(axum::Extension(call)), _) => Some(call.from),
        (None, Some(grants)) => {
            let trace = headers.get(TRACE_HEADER).and_then(|v| v.to_str().ok());
            Some(engine.call_from(&scope.namespace, &grants.function, trace))
        }
        (None, None) => None,
    }
}

/// Lambda's Invoke from a wasm guest at the platform address, straight to the handler:
/// the function's identity is the platform's word, so there is nothing for the
/// services router's auth layer to check (a function's role may invoke in its own
/// namespace), and a call is one function of the callee's path cheaper without it.
pub(crate) async fn invoke_from_platform(
    engine: Arc<Engine>,
    call: PlatformCall,
    raw: String,
    request: http::Request<axum::body::Body>,
) -> Response {
    let (parts, body) = request.into_parts();
    let scope = Scope {
        namespace: call.caller.namespace.clone(),
        caller: call.caller,
        source: None,
    };
    let request = InvokeRequest {
        raw,
        params: Query::try_from_uri(&parts.uri),
        uri: parts.uri,
        headers: parts.headers,
        body,
    };
    invoke_as(scope, engine, Some(call.from), request)
        .await
        .into_response()
}

/// What an Invoke request says, before it is checked.
struct InvokeRequest {
    raw: String,
    uri: http::Uri,
    params: Result<Query<InvokeParams>, QueryRejection>,
    headers: HeaderMap,
    body: axum::body::Body,
}

impl InvokeRequest {
    /// `functions//…` names no function: not an Invoke at all, but a path under a
    /// reserved prefix that Wisp does not serve.
    fn not_served(&self) -> Option<Response> {
        self.raw
            .is_empty()
            .then(|| crate::router::not_served(self.uri.path()).into_response())
    }
}

/// An Invoke's parts as its route gives them: the function's name as the path names
/// it, and a query string that may be malformed (the check says so in Lambda's shape).
impl<S: Send + Sync> axum::extract::FromRequest<S> for InvokeRequest {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Response> {
        use axum::extract::FromRequestParts as _;
        let (mut parts, body) = request.into_parts();
        let Path(raw) = Path::<String>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(InvokeRequest {
            raw,
            params: Query::try_from_uri(&parts.uri),
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }
}

/// An Invoke's request, checked: who runs, how, and with what.
struct Checked {
    target: Target,
    name: FunctionName,
    qualifier: Option<Qualifier>,
    kind: InvocationType,
    wants_tail: bool,
    client_context: Option<Arc<str>>,
    namespace: Namespace,
    headers: HeaderMap,
    payload: Bytes,
}

impl Checked {
    /// Checks `request` (one that names a function: [`InvokeRequest::not_served`]) for
    /// `scope` and reads its payload. `streaming`: Lambda's `InvokeWithResponseStream`,
    /// which takes no `Event`.
    async fn read(
        scope: Scope,
        engine: &Engine,
        request: InvokeRequest,
        streaming: bool,
    ) -> Result<Checked, LambdaError> {
        let InvokeRequest {
            raw,
            uri: _,
            params,
            headers,
            body,
        } = request;
        let qualifier = params
            .map_err(|e| LambdaError::invalid(format!("the query string is malformed: {}", e.body_text())))?
            .0
            .qualifier;
        let (target, name, qualifier) = resolve(&raw, qualifier)?;
        let kind = invocation_type(&headers, streaming)?;
        let wants_tail = log_type(&headers)?;
        let client_context = client_context(&headers)?;
        let namespace = scope.namespace;
        // The grant first: a function not granted the callee learns nothing of it, not
        // even whether it exists.
        scope
            .caller
            .check_invoke_grant(&name)
            .map_err(|e| LambdaError::from_engine(e, &target))?;
        if engine.function(&namespace, &name).is_none() {
            return Err(LambdaError::not_found(&target));
        }
        let (limit, operation) = match (kind, streaming) {
            (InvocationType::Event, _) => (Limits::MAX_ASYNC_PAYLOAD, "InvokeAsync"),
            (_, true) => (engine.limits().max_request_body, "InvokeWithResponseStream"),
            (_, false) => (engine.limits().max_request_body, "InvokeFunction"),
        };
        let payload: Bytes = match read_limited(body, limit).await {
            Ok(bytes) => bytes,
            Err(BodyError::TooLarge { limit }) => return Err(LambdaError::too_large(limit, operation)),
            Err(BodyError::Unreadable(e)) => {
                return Err(LambdaError::user(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    format!("cannot read the request body: {e}"),
                ));
            }
        };
        Ok(Checked {
            target,
            name,
            qualifier,
            kind,
            wants_tail,
            client_context,
            namespace,
            headers,
            payload,
        })
    }

    /// What a run is given, with `tail` where its log's end goes: Lambda's `LogResult`
    /// and `ClientContext` are for a run's caller only, not for events.
    fn run_options(&mut self, tail: Option<wisp_engine::TailSender>) -> InvokeOptions {
        InvokeOptions {
            qualifier: self.qualifier.take(),
            client_context: self.client_context.take(),
            tail,
            content_type: None,
        }
    }

    /// Runs it synchronously: as a call from `from` when a function makes it.
    async fn run(
        &mut self,
        engine: &Engine,
        from: Option<&CallFrom>,
        tail: Option<wisp_engine::TailSender>,
    ) -> Result<Response<wisp_engine::Body>, EngineError> {
        let options = self.run_options(tail);
        let payload = std::mem::take(&mut self.payload);
        match from {
            Some(from) => engine.call(from, &self.name, payload, options).await,
            None => {
                let trace = crate::api::trace_root(&self.headers);
                engine
                    .invoke(&self.namespace, &self.name, payload, trace, options)
                    .await
            }
        }
    }
}

/// A `204` with a request id: a `DryRun`'s answer.
fn dry_run() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_request_id(response.headers_mut(), &request_id());
    response
}

/// Runs an Invoke for `scope`, as a function-to-function call when `from` says which
/// function makes it.
async fn invoke_as(
    scope: Scope,
    engine: Arc<Engine>,
    from: Option<CallFrom>,
    request: InvokeRequest,
) -> Result<Response, LambdaError> {
    if let Some(refusal) = request.not_served() {
        return Ok(refusal);
    }
    let mut checked = Checked::read(scope, &engine, request, false).await?;
    match checked.kind {
        InvocationType::DryRun => Ok(dry_run()),
        InvocationType::Event => {
            let Checked {
                target,
                name,
                qualifier,
                namespace,
                headers,
                payload,
                ..
            } = checked;
            let options = AsyncOptions {
                qualifier,
                trace: crate::api::trace_root(&headers),
                ..AsyncOptions::default()
            };
            let accepted = match &from {
                Some(from) => engine.call_async(from, &name, options.qualifier, payload).await,
                None => engine.enqueue(&namespace, &name, payload, options).await,
            }
            .map_err(|e| LambdaError::from_engine(e, &target))?;
            let mut response = StatusCode::ACCEPTED.into_response();
            let headers = response.headers_mut();
            set_request_id(headers, &accepted.id);
            if let Ok(id) = HeaderValue::from_str(&accepted.id) {
                headers.insert(INVOCATION_ID_HEADER, id);
            }
            Ok(response)
        }
        InvocationType::RequestResponse => {
            let (sender, tail) = checked.wants_tail.then(wisp_engine::log_tail).unzip();
            let answered = run_request_response(&engine, &mut checked, from.as_ref(), sender).await;
            let Some(tail) = tail else {
                return answered;
            };
            let mut response = answered?;
            if let Some(tail) = tail.when_finished().await
                && let Ok(value) = HeaderValue::from_str(&BASE64.encode(tail))
            {
                response.headers_mut().insert(LOG_RESULT, value);
            }
            Ok(response)
        }
    }
}

/// Runs a `RequestResponse` Invoke (as a call from `from`, when a function makes it)
/// and answers it in Lambda's shape: the function's answer read whole, or its failure's
/// error document.
async fn run_request_response(
    engine: &Arc<Engine>,
    checked: &mut Checked,
    from: Option<&CallFrom>,
    tail: Option<wisp_engine::TailSender>,
) -> Result<Response, LambdaError> {
    let answered = checked.run(engine, from, tail).await;
    // The answer read whole: one that cannot be is the function's failure, as one that
    // failed before its head is.
    let read = match answered {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            read_answer(engine, &parts.headers, body)
                .await
                .map(|answer| (parts, answer))
        }
        Err(e) => Err(e),
    };
    let (parts, answer) = match read {
        Ok(read) => read,
        Err(e) => {
            return match function_failure(&e) {
                Some(report) => Ok(failed(&e, &report)),
                None => Err(LambdaError::from_engine(e, &checked.target)),
            };
        }
    };
    let mut response = Response::from_parts(parts, axum::body::Body::from(answer));
    let (id, version) = run_of(response.headers());
    tag_run(response.headers_mut(), id, version);
    Ok(response)
}

/// A function's answer to a `RequestResponse` Invoke, read whole before it is sent, as
/// Lambda's is: an answer past the engine's response limit (6 MiB, Lambda's) or one that
/// breaks off is the function's failure, told in Lambda's error shape rather than as a
/// stream cut short. A caller at the platform address also gets the answer in one read.
async fn read_answer(
    engine: &Engine,
    head: &HeaderMap,
    body: wisp_engine::Body,
) -> Result<Bytes, EngineError> {
    let limit = engine.limits().max_response_body;
    body::read_to_bytes(body, limit).await.map_err(|e| {
        let mut error = if e.is::<body::BodyTooLarge>() {
            EngineError::new(
                ErrorCode::ResponseTooLarge,
                format!("the function's answer is larger than Invoke's limit of {limit} bytes"),
            )
        } else {
            EngineError::new(
                ErrorCode::InvalidResponse,
                format!("the function's answer broke off: {e}"),
            )
        };
        // The version that ran and the invocation, for the error's headers.
        *error.headers_mut() = head.clone();
        error.invocation_id = head
            .get(INVOCATION_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        error
    })
}

/// The error document of a function's own failure (Lambda answers those `200`), or
/// `None` when the call failed some other way.
fn function_failure(e: &EngineError) -> Option<ErrorReport> {
    let error_type = match e.code {
        ErrorCode::FunctionError => "Runtime.ExitError",
        ErrorCode::Timeout => "Sandbox.Timedout",
        ErrorCode::OutOfMemory => "Runtime.OutOfMemory",
        ErrorCode::InvalidResponse => "Runtime.InvalidResponse",
        ErrorCode::ResponseTooLarge => "Function.ResponseSizeTooLarge",
        _ => return None,
    };
    Some(match &e.report {
        Some(report) => (**report).clone(),
        None => ErrorReport::new(error_type, e.detail.clone()),
    })
}

fn failed(e: &EngineError, report: &ErrorReport) -> Response {
    let mut response = (StatusCode::OK, axum::Json(report)).into_response();
    let headers = response.headers_mut();
    headers.insert(FUNCTION_ERROR, HeaderValue::from_static("Unhandled"));
    tag_run(
        headers,
        e.invocation_id.clone(),
        e.version().map(HeaderValue::from),
    );
    response
}

/// Says on an answer which run it is: the invocation's id (`x-amzn-RequestId` and
/// Wisp's header; a fresh request id when none ran) and the version that ran
/// (`X-Amz-Executed-Version`).
fn tag_run(headers: &mut HeaderMap, id: Option<String>, version: Option<HeaderValue>) {
    let id = id.unwrap_or_else(request_id);
    set_request_id(headers, &id);
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(INVOCATION_ID_HEADER, value);
    }
    if let Some(version) = version {
        headers.insert(EXECUTED_VERSION, version);
    }
}

/// The invocation id and the version that ran, as the engine's answer tells them.
fn run_of(headers: &HeaderMap) -> (Option<String>, Option<HeaderValue>) {
    let id = headers
        .get(INVOCATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (id, headers.get(VERSION_HEADER).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_qualifiers_and_arns_are_read() {
        let t = Target::parse("hello").unwrap();
        assert_eq!((t.name.as_str(), t.qualifier.as_deref()), ("hello", None));
        assert_eq!(t.arn(), "arn:aws:lambda:local:000000000000:function:hello");
        let t = Target::parse("hello:$LATEST").unwrap();
        assert_eq!(t.qualifier.as_deref(), Some("$LATEST"));
        let t = Target::parse("arn:aws:lambda:eu-west-1:123456789012:function:hello").unwrap();
        assert_eq!(
            (t.region.as_str(), t.account.as_str()),
            ("eu-west-1", "123456789012")
        );
        assert_eq!(t.arn(), "arn:aws:lambda:eu-west-1:123456789012:function:hello");
        let t = Target::parse("arn:aws:lambda:eu-west-1:123456789012:function:hello:prod").unwrap();
        assert_eq!(t.qualifier.as_deref(), Some("prod"));
        let t = Target::parse("123456789012:function:hello").unwrap();
        assert_eq!((t.account.as_str(), t.name.as_str()), ("123456789012", "hello"));
        for bad in ["a:b:c", "arn:aws:lambda:r:a:layer:x", "hello:", ":x", "a:b:c:d:e"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn qualifiers_are_versions_aliases_or_latest() {
        let qualifier =
            |raw: &str, query: Option<&str>| resolve(raw, query.map(String::from)).ok().map(|r| r.2);
        assert_eq!(qualifier("hello", None), Some(None));
        assert_eq!(qualifier("hello:$LATEST", None), Some(Some(Qualifier::Latest)));
        assert_eq!(qualifier("hello", Some("7")), Some(Some(Qualifier::Version(7))));
        assert_eq!(qualifier("hello:prod", None), Some(Some("prod".parse().unwrap())));
        let e = resolve("hello:Prod_1", None).unwrap_err();
        assert!(e.message.contains("invalid qualifier `Prod_1`"), "{}", e.message);
        let e = resolve("hello", Some("0".into())).unwrap_err();
        assert!(e.message.contains("invalid qualifier `0`"), "{}", e.message);
        let e = resolve("hello:$LATEST", Some("prod".into())).unwrap_err();
        assert!(e.message.contains("does not match"), "{}", e.message);
        let e = resolve("My_Function", None).unwrap_err();
        assert_eq!(e.kind, "InvalidParameterValueException");
    }

    #[test]
    fn stream_invoke_paths_name_one_function() {
        assert!(is_stream_invoke(
            "/2021-11-15/functions/f/response-streaming-invocations"
        ));
        assert!(crate::api::services::serves(
            "/2021-11-15/functions/f/response-streaming-invocations"
        ));
        for other in [
            "/2021-11-15/functions//response-streaming-invocations",
            "/2021-11-15/functions/a/b/response-streaming-invocations",
            "/2021-11-15/functions/f",
            "/2021-11-15/photo.jpg",
        ] {
            assert!(!is_stream_invoke(other), "{other}");
            assert!(!crate::api::services::serves(other), "{other}");
        }
    }

    #[test]
    fn client_contexts_go_on_as_ascii_json() {
        assert_eq!(
            ascii_json(r#"{"a":"Ærø 🦀"}"#),
            r#"{"a":"\u00c6r\u00f8 \ud83e\udd80"}"#
        );
        let value: serde_json::Value = serde_json::from_str(&ascii_json(r#"{"a":"Ærø 🦀"}"#)).unwrap();
        assert_eq!(value["a"], "Ærø 🦀");
    }

    #[test]
    fn request_ids_are_uuid_shaped_and_differ() {
        let (a, b) = (request_id(), request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}

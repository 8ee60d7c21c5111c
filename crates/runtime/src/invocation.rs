//! The invocation contract shared by all runtimes: input, output, errors, logs.

use crate::Services;
use crate::body::Body;
use bytes::Bytes;
use serde::Serialize;
use std::time::Duration;
use wisp_core::ErrorCode;

/// One run of a function.
pub struct Invocation {
    /// Unique id of this invocation (logs carry it).
    pub id: String,
    pub input: Input,
    /// What the guest may call beyond its own code, as its function version is granted.
    pub services: Services,
    /// Called once when the guest has finished, with its logs and outcome.
    pub on_finish: Option<Box<dyn FnOnce(Finished) + Send>>,
    /// Where it stands in a chain of calls (its deadline, depth and trace).
    pub context: CallContext,
    /// Lambda's `ClientContext` of a synchronous Invoke (the client's JSON object,
    /// decoded): a native function's runtime gets it as `Lambda-Runtime-Client-Context`.
    pub client_context: Option<std::sync::Arc<str>>,
    /// The version or alias its caller named (`3`, `prod`, `$LATEST`), or `None`: a
    /// native function's runtime gets it at the end of `Lambda-Runtime-Invoked-Function-Arn`
    /// (`context.invoked_function_arn`), as Lambda qualifies the ARN it was invoked by.
    pub qualifier: Option<wisp_core::Qualifier>,
}

/// Where an invocation stands in a chain of function calls: what a function-to-function
/// call hands its callee. The default is an invocation nobody's function made.
#[derive(Clone, Debug, Default)]
pub struct CallContext {
    /// The latest instant it may run until: its caller's remaining time. `None`: only
    /// its own `timeout` bounds it.
    pub deadline: Option<std::time::Instant>,
    /// How many calls deep it is: 0 when no function made it.
    pub depth: u32,
    /// The trace it belongs to (X-Ray's root form, `1-<8 hex>-<24 hex>`; see
    /// `wisp_core::trace`); `None`: it starts one.
    pub trace_root: Option<std::sync::Arc<str>>,
    /// The id of the invocation that caused it (a function's call, or the run that sent
    /// the event or message it runs for), recorded so a trace reads as a tree; `None`:
    /// no invocation did (a client's request, a schedule).
    pub parent: Option<std::sync::Arc<str>>,
}

impl CallContext {
    /// The deadline and the timeout an invocation started at `started` runs under: its
    /// own `timeout`, cut to the caller's remaining time.
    pub fn bound(&self, started: std::time::Instant, timeout: Duration) -> (std::time::Instant, Duration) {
        let own = started + timeout;
        match self.deadline {
            Some(deadline) if deadline < own => (deadline, deadline.saturating_duration_since(started)),
            _ => (own, timeout),
        }
    }

    /// The trace root of invocation `id` under this context: the caller's, else a new one.
    pub fn root_for(&self, id: &str) -> std::sync::Arc<str> {
        match &self.trace_root {
            Some(root) => root.clone(),
            None => wisp_core::trace::new_root(id).into(),
        }
    }
}

/// A running invocation as its outgoing calls name it: the invocation, and its context
/// with the deadline it actually runs under.
#[derive(Clone, Debug)]
pub struct CallSite {
    pub invocation: String,
    pub context: CallContext,
}

/// What a function is given.
#[expect(
    clippy::large_enum_variant,
    reason = "moved once per invocation; boxing would add an allocation on the hot path"
)]
pub enum Input {
    /// For `http` functions: the request, its body streaming.
    Http(http::Request<Body>),
    /// For `event` functions: the event, written to the guest's stdin.
    Event(Bytes),
}

/// What a function answers.
pub enum Output {
    /// From `http` functions: the response; its body may still be streaming.
    Http(http::Response<Body>),
    /// From `event` functions: what the guest wrote to stdout.
    Event(Bytes),
}

/// Output a guest wrote that is not its result: the invocation's logs.
#[derive(Clone, Debug, Default)]
pub struct Logs {
    pub stdout: Bytes,
    pub stderr: Bytes,
    /// Whether output past the per-invocation cap was dropped.
    pub truncated: bool,
}

/// Reported once an invocation is over.
#[derive(Debug)]
pub struct Finished {
    pub logs: Logs,
    /// Wall time from the start of the invocation to the guest's end.
    pub duration: Duration,
    /// The error the invocation ended with, if any.
    pub error: Option<ErrorCode>,
    /// For a cold start of a process function: how long its instance took to start
    /// (spawn to the first `next`).
    pub init: Option<Duration>,
}

/// A function error in Lambda's shape: what a process function's runtime posted to
/// `/invocation/{id}/error` or `/init/error`, or what Wisp says happened to the
/// instance (`Runtime.ExitError`, `Sandbox.Timedout`, `Runtime.OutOfMemory`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorReport {
    #[serde(rename = "errorType")]
    pub error_type: String,
    #[serde(rename = "errorMessage")]
    pub error_message: String,
    #[serde(rename = "stackTrace", skip_serializing_if = "Vec::is_empty")]
    pub stack_trace: Vec<String>,
}

impl ErrorReport {
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> ErrorReport {
        ErrorReport {
            error_type: error_type.into(),
            error_message: error_message.into(),
            stack_trace: Vec::new(),
        }
    }

    /// Reads what a runtime posted: `{"errorType", "errorMessage", "stackTrace"}`,
    /// leniently (any JSON, or none). `header_type` is the
    /// `Lambda-Runtime-Function-Error-Type` header, which wins when the body has no type.
    pub fn from_posted(body: &[u8], header_type: Option<&str>) -> ErrorReport {
        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        let text = |key: &str| json.get(key).and_then(|v| v.as_str()).map(str::to_string);
        let error_type = text("errorType")
            .or_else(|| header_type.map(str::to_string))
            .unwrap_or_else(|| "Unhandled".to_string());
        let error_message = text("errorMessage").unwrap_or_else(|| {
            if json.is_null() {
                String::from_utf8_lossy(body).into_owned()
            } else {
                String::new()
            }
        });
        let stack_trace = match json.get("stackTrace") {
            Some(serde_json::Value::Array(lines)) => lines
                .iter()
                .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_string))
                .collect(),
            Some(serde_json::Value::String(s)) => s.lines().map(str::to_string).collect(),
            _ => Vec::new(),
        };
        ErrorReport {
            error_type,
            error_message,
            stack_trace,
        }
    }
}

impl std::fmt::Display for ErrorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.error_message.is_empty() {
            f.write_str(&self.error_type)
        } else {
            write!(f, "{}: {}", self.error_type, self.error_message)
        }
    }
}

/// Why an invocation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// The guest trapped, exited non-zero or failed to answer.
    #[error("{0}")]
    Function(String),
    #[error("the function did not finish within its timeout of {}", humantime_ms(*.0))]
    Timeout(Duration),
    #[error("the function exceeded its memory limit of {0} MB")]
    OutOfMemory(u32),
    #[error("the function's result is larger than the limit of {0} bytes")]
    ResponseTooLarge(usize),
    #[error("the function's response is invalid: {0}")]
    InvalidResponse(String),
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the function's kind does not accept this input: {0}")]
    WrongInput(&'static str),
    /// A process function's error, in Lambda's shape; `code` is how Wisp classes it.
    #[error("{report}")]
    Reported { code: ErrorCode, report: ErrorReport },
    #[error("internal error: {0}")]
    Internal(String),
}

fn humantime_ms(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl InvokeError {
    /// The Lambda-shaped error, for process functions.
    pub fn report(&self) -> Option<&ErrorReport> {
        match self {
            InvokeError::Reported { report, .. } => Some(report),
            _ => None,
        }
    }

    /// The API error code this failure is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            InvokeError::Function(_) => ErrorCode::FunctionError,
            InvokeError::Timeout(_) => ErrorCode::Timeout,
            InvokeError::OutOfMemory(_) => ErrorCode::OutOfMemory,
            InvokeError::ResponseTooLarge(_) => ErrorCode::ResponseTooLarge,
            InvokeError::InvalidResponse(_) => ErrorCode::InvalidResponse,
            InvokeError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            InvokeError::Reported { code, .. } => *code,
            InvokeError::WrongInput(_) | InvokeError::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// Why code could not be made ready to run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The code is not valid for its kind: answered as `invalid_code`.
    #[error("{0}")]
    InvalidCode(String),
    #[error("internal error: {0}")]
    Internal(String),
}

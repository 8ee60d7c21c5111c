//! The invocation contract shared by all runtimes: input, output, errors, logs.

use crate::body::Body;
use bytes::Bytes;
use std::time::Duration;
use wisp_core::ErrorCode;

/// One run of a function.
pub struct Invocation {
    /// Unique id of this invocation (logs carry it).
    pub id: String,
    pub input: Input,
    /// Called once when the guest has finished, with its logs and outcome.
    pub on_finish: Option<Box<dyn FnOnce(Finished) + Send>>,
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
    /// The API error code this failure is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            InvokeError::Function(_) => ErrorCode::FunctionError,
            InvokeError::Timeout(_) => ErrorCode::Timeout,
            InvokeError::OutOfMemory(_) => ErrorCode::OutOfMemory,
            InvokeError::ResponseTooLarge(_) => ErrorCode::ResponseTooLarge,
            InvokeError::InvalidResponse(_) => ErrorCode::InvalidResponse,
            InvokeError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
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

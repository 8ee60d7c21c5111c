//! The engine's error: an API error code with a human detail.

use wisp_core::ErrorCode;
use wisp_runtime::{ErrorReport, InvokeError, LoadError};
use wisp_store::StoreError;

/// An error the engine answers a caller with; the server renders it as
/// `application/problem+json`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct EngineError {
    pub code: ErrorCode,
    pub detail: String,
    /// The invocation that failed, when there was one (its logs carry the same id).
    pub invocation_id: Option<String>,
    /// For `method_not_allowed`: the methods the route does take.
    pub allow: Option<String>,
    /// For process functions: the error in Lambda's shape (`errorType`, ...).
    pub report: Option<Box<ErrorReport>>,
    /// For `throttled`: when to try again (the `Retry-After` header), in seconds.
    pub retry_after: Option<u32>,
}

impl EngineError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> EngineError {
        EngineError {
            code,
            detail: detail.into(),
            invocation_id: None,
            allow: None,
            report: None,
            retry_after: None,
        }
    }

    /// 429 `throttled`, to be retried after a second.
    pub(crate) fn throttled(detail: impl Into<String>) -> EngineError {
        let mut e = EngineError::new(ErrorCode::Throttled, detail);
        e.retry_after = Some(1);
        e
    }

    pub(crate) fn with_invocation(mut self, id: &str) -> EngineError {
        self.invocation_id = Some(id.to_string());
        self
    }

    pub(crate) fn function_not_found(name: &str) -> EngineError {
        EngineError::new(
            ErrorCode::FunctionNotFound,
            format!("no function named `{name}` is deployed"),
        )
    }
}

impl From<InvokeError> for EngineError {
    fn from(e: InvokeError) -> Self {
        if let InvokeError::Internal(_) | InvokeError::WrongInput(_) = e {
            tracing::error!("invocation failed inside Wisp: {e}");
        }
        let mut error = EngineError::new(e.code(), e.to_string());
        if let InvokeError::Reported { report, .. } = e {
            error.report = Some(Box::new(report));
        }
        error
    }
}

impl From<LoadError> for EngineError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::InvalidCode(detail) => EngineError::new(ErrorCode::InvalidCode, detail),
            LoadError::Internal(detail) => {
                tracing::error!("loading code failed: {detail}");
                EngineError::new(ErrorCode::Internal, "loading the function's code failed")
            }
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        tracing::error!("store error: {e}");
        EngineError::new(ErrorCode::Internal, "the store failed; see the server log")
    }
}

//! The engine's error: an API error code with a human detail.
//!
//! An `internal` error keeps what went wrong inside Wisp apart from what a client is
//! told: the [`EngineError::cause`] is for the server's log, written once where the
//! error is answered (the server's problem document, the Lambda-shaped error, or the
//! async pipeline's outcome), never sent.

use wisp_core::{ErrorCode, FunctionName, Qualifier};
use wisp_runtime::{ErrorReport, InvokeError, LoadError};
use wisp_store::StoreError;

/// An error the engine answers a caller with; the server renders it as
/// `application/problem+json`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct EngineError {
    pub code: ErrorCode,
    /// What the caller is told.
    pub detail: String,
    /// For `internal`: what failed inside Wisp, for the server's log only.
    pub cause: Option<String>,
    /// The invocation that failed, when there was one (its logs carry the same id).
    pub invocation_id: Option<String>,
    /// For process functions: the error in Lambda's shape (`errorType`, ...).
    pub report: Option<Box<ErrorReport>>,
    /// For `throttled` and `rate_limited`: when to try again (the `Retry-After`
    /// header), in seconds.
    pub retry_after: Option<u32>,
    /// More headers to answer with: `Allow` on `method_not_allowed`,
    /// `WWW-Authenticate` on `unauthorized`, the `RateLimit-*` headers on
    /// `rate_limited`.
    /// Boxed: most errors have none, and a result's error stays small.
    pub headers: Option<Box<http::HeaderMap>>,
}

impl EngineError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> EngineError {
        EngineError {
            code,
            detail: detail.into(),
            cause: None,
            invocation_id: None,
            report: None,
            retry_after: None,
            headers: None,
        }
    }

    /// Wisp itself failed: the caller is told only that, and `cause` goes to the
    /// server's log where the error is answered.
    pub fn internal(cause: impl Into<String>) -> EngineError {
        EngineError::internal_as("Wisp failed to serve this; the server's log says why", cause)
    }

    /// The detail and, when there is one, the cause: for the operator (a failure at
    /// start-up), never for a caller of the API.
    pub fn with_cause(&self) -> String {
        match &self.cause {
            Some(cause) => format!("{} ({cause})", self.detail),
            None => self.detail.clone(),
        }
    }

    /// [`EngineError::internal`], telling the caller `detail` (which must not reveal
    /// the cause).
    pub fn internal_as(detail: impl Into<String>, cause: impl Into<String>) -> EngineError {
        let mut error = EngineError::new(ErrorCode::Internal, detail);
        error.cause = Some(cause.into());
        error
    }

    /// 503 `store_unavailable`: a durable write failed, so nothing was accepted; retried
    /// after a second. The store's error goes to the log as the cause.
    pub(crate) fn store_unavailable(detail: impl Into<String>, cause: impl std::fmt::Display) -> EngineError {
        let mut e = EngineError::new(ErrorCode::StoreUnavailable, detail);
        e.cause = Some(format!("store: {cause}"));
        e.retry_after = Some(1);
        e
    }

    /// 429 `throttled`, to be retried after a second.
    pub(crate) fn throttled(detail: impl Into<String>) -> EngineError {
        let mut e = EngineError::new(ErrorCode::Throttled, detail);
        e.retry_after = Some(1);
        e
    }

    /// The extra headers, to add to.
    pub fn headers_mut(&mut self) -> &mut http::HeaderMap {
        self.headers.get_or_insert_default()
    }

    pub(crate) fn with_invocation(mut self, id: &str) -> EngineError {
        self.invocation_id = Some(id.to_string());
        self
    }

    /// The same error, its detail prefixed with what it concerns (`function `x``).
    pub(crate) fn context(mut self, what: &str) -> EngineError {
        self.detail = format!("{what}: {}", self.detail);
        self
    }

    /// [`EngineError::with_invocation`], for an invocation that ran `version`: the
    /// answer says which, as a success's does.
    pub(crate) fn ran(self, id: &str, version: u32) -> EngineError {
        let mut e = self.with_invocation(id);
        e.headers_mut()
            .insert(crate::VERSION_HEADER, http::HeaderValue::from(version));
        e
    }

    /// The version the failed invocation ran, when it ran one.
    pub fn version(&self) -> Option<u32> {
        self.headers
            .as_ref()?
            .get(crate::VERSION_HEADER)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }

    pub(crate) fn function_not_found(name: &str) -> EngineError {
        EngineError::new(
            ErrorCode::FunctionNotFound,
            format!("no function named `{name}` is deployed"),
        )
    }

    /// 409 `function_disabled`: the function runs nothing until it is enabled.
    pub(crate) fn disabled(name: &FunctionName) -> EngineError {
        EngineError::new(
            ErrorCode::FunctionDisabled,
            format!("`{name}` is disabled: it runs nothing until `wisp enable {name}`"),
        )
    }

    /// 404: the qualifier names no alias or kept version of the function.
    pub(crate) fn no_qualifier(name: &FunctionName, qualifier: &Qualifier) -> EngineError {
        match qualifier {
            Qualifier::Alias(alias) => EngineError::new(
                ErrorCode::AliasNotFound,
                format!("`{name}` has no alias `{alias}`"),
            ),
            _ => EngineError::new(
                ErrorCode::VersionNotFound,
                format!(
                    "`{name}` has no version {qualifier} (it keeps the newest and those an alias points to)"
                ),
            ),
        }
    }

    /// Writes an internal error to the server's log: call it once, where the error
    /// is answered. Other errors are the caller's business and are not logged.
    pub fn log(&self) {
        if self.code == ErrorCode::Internal {
            let cause = self.cause.as_deref().unwrap_or("no cause recorded");
            match &self.invocation_id {
                Some(id) => tracing::error!(invocation = %id, "internal error: {}: {cause}", self.detail),
                None => tracing::error!("internal error: {}: {cause}", self.detail),
            }
        }
    }
}

impl From<InvokeError> for EngineError {
    fn from(e: InvokeError) -> Self {
        let mut error = match e {
            InvokeError::Internal(_) | InvokeError::WrongInput(_) => {
                EngineError::internal(format!("the invocation failed inside Wisp: {e}"))
            }
            _ => EngineError::new(e.code(), e.to_string()),
        };
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
            LoadError::Internal(cause) => EngineError::internal_as(
                "loading the function's code failed",
                format!("loading code: {cause}"),
            ),
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => EngineError::store_unavailable(
                "the store cannot be reached now; retry later (a change asked for may have been made before the answer was lost)",
                e,
            ),
            e => EngineError::internal_as("the store failed; see the server log", format!("store: {e}")),
        }
    }
}

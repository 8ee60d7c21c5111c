//! Rendering errors as RFC 9457 `application/problem+json` documents.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;
use wisp_core::ErrorCode;
use wisp_engine::EngineError;
use wisp_engine::{Body, ErrorReport, body};

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    invocation_id: Option<&'a str>,
    /// A process function's error, in Lambda's shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorReport>,
}

/// Renders an engine error (and writes an internal one's cause to the log: this is
/// where it is answered).
pub fn problem_response(err: &EngineError) -> Response<Body> {
    err.log();
    let mut response = render(
        err.code,
        &err.detail,
        err.invocation_id.as_deref(),
        err.report.as_deref(),
    );
    if let Some(seconds) = err.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    for (name, value) in err.headers.iter().flat_map(|h| h.iter()) {
        response.headers_mut().append(name, value.clone());
    }
    if let Some(id) = err
        .invocation_id
        .as_deref()
        .and_then(|a| HeaderValue::from_str(a).ok())
    {
        response
            .headers_mut()
            .insert(wisp_engine::INVOCATION_ID_HEADER, id);
    }
    response
}

/// Renders a problem document for `code`.
pub fn problem(code: ErrorCode, detail: &str, invocation_id: Option<&str>) -> Response<Body> {
    render(code, detail, invocation_id, None)
}

fn render(
    code: ErrorCode,
    detail: &str,
    invocation_id: Option<&str>,
    error: Option<&ErrorReport>,
) -> Response<Body> {
    let doc = Problem {
        kind: code.type_uri(),
        title: code.title(),
        status: code.status(),
        detail,
        code: code.as_str(),
        invocation_id,
        error,
    };
    let json = serde_json::to_vec(&doc).unwrap_or_default();
    let mut response = Response::new(body::full(Bytes::from(json)));
    *response.status_mut() = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

/// An API handler's error: converts into a problem response.
#[derive(Debug)]
pub struct ApiError(pub EngineError);

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError(EngineError::new(code, detail))
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        ApiError(e)
    }
}

impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        problem_response(&self.0).map(axum::body::Body::new)
    }
}

//! The HTTP client of the control API that every client subcommand uses.

use crate::exit::{CliError, Exit};
use bytes::Bytes;
use clap::Args;
use reqwest::StatusCode;
use serde_json::Value;
use wisp_core::ErrorCode;

/// The `--server` flag shared by client subcommands.
#[derive(Args, Clone, Debug)]
pub struct ServerArg {
    /// The Wisp server to talk to.
    #[arg(
        long,
        env = "WISP_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub server: String,
}

/// A problem document from the API.
#[derive(Debug, serde::Deserialize)]
pub struct Problem {
    pub code: String,
    pub detail: String,
    pub status: u16,
    pub invocation_id: Option<String>,
}

pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// A raw response: status, content type, body.
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

impl Client {
    pub fn new(server: &ServerArg) -> anyhow::Result<Client> {
        let base = server.server.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::new(Exit::Usage, format!("invalid server URL `{base}`"))
                .hint("give a URL such as http://127.0.0.1:8080 to --server or WISP_SERVER")
                .into());
        }
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| CliError::new(Exit::Failure, format!("cannot build the HTTP client: {e}")))?;
        Ok(Client { base, http })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, e: &reqwest::Error) -> CliError {
        let cause = std::error::Error::source(e).map_or_else(
            || e.to_string(),
            |s| {
                let mut text = s.to_string();
                let mut next = s.source();
                while let Some(inner) = next {
                    text = format!("{text}: {inner}");
                    next = inner.source();
                }
                text
            },
        );
        CliError::new(
            Exit::Unreachable,
            format!("cannot reach the Wisp server at {}: {cause}", self.base),
        )
        .hint(
            "start one with `wisp serve` (or `wisp up`), or point --server / WISP_SERVER at a running server",
        )
    }

    /// Sends a request; any answer (even an error status) comes back raw.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<RawResponse> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// Sends a request and returns its JSON, turning problem documents into errors.
    pub async fn json(&self, request: reqwest::RequestBuilder) -> anyhow::Result<(StatusCode, Value)> {
        let response = self.send(request).await?;
        if !response.status.is_success() {
            return Err(problem_error(&response).into());
        }
        if response.body.is_empty() {
            return Ok((response.status, Value::Null));
        }
        let value = serde_json::from_slice(&response.body).map_err(|e| {
            CliError::new(
                Exit::Failure,
                format!("the server answered with invalid JSON: {e}"),
            )
            .hint("is --server pointing at a Wisp server?")
        })?;
        Ok((response.status, value))
    }
}

/// The error for a non-success response: the problem's detail when there is one.
pub fn problem_error(response: &RawResponse) -> CliError {
    let is_problem = response
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/problem+json"));
    let parsed = is_problem
        .then(|| serde_json::from_slice::<Problem>(&response.body).ok())
        .flatten();
    let Some(problem) = parsed else {
        let text = String::from_utf8_lossy(&response.body);
        return CliError::new(
            Exit::Failure,
            format!(
                "the server answered HTTP {}: {}",
                response.status.as_u16(),
                text.trim()
            ),
        );
    };
    let exit = match problem.status {
        400..=499 => Exit::Refused,
        502 | 504 => Exit::FunctionFailed,
        _ => Exit::Failure,
    };
    let mut message = format!("{} ({})", problem.detail, problem.code);
    if let Some(id) = &problem.invocation_id {
        message.push_str(&format!("\n  invocation: {id}"));
    }
    let err = CliError::new(exit, message);
    // Unknown codes (a newer server) get no hint, only their detail.
    match ErrorCode::parse(&problem.code) {
        Some(ErrorCode::FunctionNotFound) => err.hint("run `wisp ls` to see the deployed functions"),
        Some(ErrorCode::QueueNotFound) => {
            err.hint("run `wisp queue ls` to see the queues; create one with `wisp queue create NAME`")
        }
        Some(ErrorCode::QueueInUse) => err.hint(
            "a queue stays while a function's trigger or destination, or another queue's dead_letter_queue, names it",
        ),
        Some(ErrorCode::InvocationNotFound) => {
            err.hint("async invocation ids come from `wisp invoke --async` and `wisp dlq ls FUNCTION`")
        }
        Some(ErrorCode::FunctionError | ErrorCode::Timeout | ErrorCode::OutOfMemory) => {
            match &problem.invocation_id {
                Some(_) => err.hint("the function's output is in `wisp logs NAME --invocation ID`"),
                None => err,
            }
        }
        Some(ErrorCode::RouteConflict) => err.hint("routes must be unique across functions"),
        Some(ErrorCode::InvalidCode) => {
            err.hint("check the source's `kind` in wisp.toml and that the .wasm is built for it")
        }
        _ => err,
    }
}

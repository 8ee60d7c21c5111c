//! The HTTP client of the control API that every client subcommand uses.

use crate::exit::{CliError, Exit};
use bytes::Bytes;
use clap::Args;
use reqwest::StatusCode;
use serde_json::Value;
use std::path::PathBuf;
use wisp_core::ErrorCode;

/// The file a local server writes its first admin key to (in its data directory).
const ADMIN_KEY_FILE: &str = "admin.key";

/// The flags every client subcommand shares: which server, with which key, in which
/// namespace.
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
    /// The API key (`<key id>.<secret>`). Without it, the admin key a local server
    /// wrote to its data directory is used.
    #[arg(long, env = "WISP_KEY", value_name = "TOKEN", hide_env_values = true)]
    pub key: Option<String>,
    /// The data directory of a server on this machine, whose `admin.key` is used
    /// when no --key is given.
    #[arg(long, env = "WISP_DATA_DIR", default_value = ".wisp", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The namespace to act in (an admin key may name any; other keys act in their own).
    #[arg(long, env = "WISP_NAMESPACE", value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

impl ServerArg {
    /// A server on `url` with the key of the data directory `data_dir`.
    pub fn local(url: String, data_dir: PathBuf) -> ServerArg {
        ServerArg {
            server: url,
            key: None,
            data_dir,
            namespace: None,
        }
    }

    /// The key to send: --key, else the data directory's admin key, else none.
    fn token(&self) -> anyhow::Result<Option<String>> {
        if let Some(key) = &self.key {
            return Ok(Some(key.trim().to_string()));
        }
        let path = self.data_dir.join(ADMIN_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CliError::new(
                Exit::Usage,
                format!("cannot read the admin key `{}`: {e}", path.display()),
            )
            .hint("give a key with --key or WISP_KEY, or run as the user that runs the server")
            .into()),
        }
    }
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
    /// Whether a key is sent (to say what to do about a 401).
    has_key: bool,
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
        let mut headers = reqwest::header::HeaderMap::new();
        let token = server.token()?;
        if let Some(token) = &token {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    CliError::new(
                        Exit::Usage,
                        "the API key holds characters no HTTP header can carry",
                    )
                    .hint("a key looks like WKABCDEFGHIJKLMNOP.<40 characters>")
                })?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        if let Some(namespace) = &server.namespace {
            let value = reqwest::header::HeaderValue::from_str(namespace)
                .map_err(|_| CliError::new(Exit::Usage, format!("invalid namespace `{namespace}`")))?;
            headers.insert("wisp-namespace", value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .map_err(|e| CliError::new(Exit::Failure, format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            base,
            http,
            has_key: token.is_some(),
        })
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

    /// Sends a request and returns the response with its body unread, to stream it;
    /// a non-success answer is read and turned into its error.
    pub async fn stream(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        Err(self
            .problem(&RawResponse {
                status,
                headers,
                body,
            })
            .into())
    }

    /// Deletes `COLLECTION/NAME` for each of `names` in turn, saying `removed WHAT NAME`
    /// after each; stops at the first refusal (the ones before it stay removed).
    pub async fn remove_each<T: std::fmt::Display>(
        &self,
        collection: &str,
        what: &str,
        names: &[T],
    ) -> anyhow::Result<()> {
        for name in names {
            self.json(self.request(reqwest::Method::DELETE, &format!("{collection}/{name}")))
                .await?;
            println!("removed {what} {name}");
        }
        Ok(())
    }

    /// Every item of a paged listing (`GET path?prefix=…&limit=…&after=…` answering
    /// `{FIELD: [...], next}`, with `truncated: false` on the last page where the API
    /// says so), up to `limit` items, a page of at most `Limits::MAX_KEYS` at a time.
    pub async fn pages(
        &self,
        path: &str,
        field: &str,
        prefix: &str,
        limit: Option<u64>,
    ) -> anyhow::Result<Vec<Value>> {
        let mut items: Vec<Value> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let wanted = limit.map_or(u64::MAX, |l| l.saturating_sub(items.len() as u64));
            if wanted == 0 {
                break;
            }
            let page = wanted.min(u64::from(wisp_core::Limits::MAX_KEYS));
            let mut query = vec![("prefix", prefix.to_string()), ("limit", page.to_string())];
            if let Some(after) = &after {
                query.push(("after", after.clone()));
            }
            let request = self.request(reqwest::Method::GET, path).query(&query);
            let (_, mut answer) = self.json(request).await?;
            if let Value::Array(listed) = answer[field].take() {
                items.extend(listed);
            }
            match answer["next"].as_str() {
                Some(next) if answer["truncated"] != Value::Bool(false) => after = Some(next.to_string()),
                _ => break,
            }
        }
        Ok(items)
    }

    /// Sends a request and returns its JSON, turning problem documents into errors.
    pub async fn json(&self, request: reqwest::RequestBuilder) -> anyhow::Result<(StatusCode, Value)> {
        let response = self.send(request).await?;
        if !response.status.is_success() {
            return Err(self.problem(&response).into());
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

impl Client {
    /// The error for a non-success response, with what to do about a missing key.
    pub fn problem(&self, response: &RawResponse) -> CliError {
        let err = problem_error(response);
        if response.status == StatusCode::UNAUTHORIZED && !self.has_key {
            return err.hint(
                "give an API key with --key or WISP_KEY, or point --data-dir (WISP_DATA_DIR) at the local server's data directory, whose admin.key is used",
            );
        }
        err
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
        Some(ErrorCode::BucketNotFound) => {
            err.hint("run `wisp bucket ls` to see the buckets; create one with `wisp bucket create NAME`")
        }
        Some(ErrorCode::ObjectNotFound) => err.hint("run `wisp object ls BUCKET` to see its objects"),
        Some(ErrorCode::KvStoreNotFound) => {
            err.hint("run `wisp kv ls` to see the key-value stores; create one with `wisp kv create NAME`")
        }
        Some(ErrorCode::KvKeyNotFound) => err.hint("run `wisp kv ls STORE` to see its keys"),
        Some(ErrorCode::BucketNotEmpty) => {
            err.hint("delete its objects first: `wisp object ls BUCKET`, then `wisp object rm BUCKET KEY…`")
        }
        Some(ErrorCode::InvocationNotFound) => {
            err.hint("async invocation ids come from `wisp invoke --async` and `wisp dlq ls FUNCTION`")
        }
        Some(ErrorCode::FunctionError | ErrorCode::Timeout | ErrorCode::OutOfMemory) => {
            match &problem.invocation_id {
                Some(_) => err.hint("the function's output is in `wisp logs NAME --invocation ID`"),
                None => err,
            }
        }
        Some(ErrorCode::AlarmNotFound) => err.hint(
            "run `wisp alarms` to see the namespace's alarms (another namespace's are named with --namespace)",
        ),
        Some(ErrorCode::RouteConflict) => err.hint("routes must be unique across a namespace's functions"),
        Some(ErrorCode::Unauthorized) => {
            err.hint("check the key given with --key or WISP_KEY (or the data directory's admin.key); it may be revoked or expired")
        }
        Some(ErrorCode::Forbidden) => err.hint("run `wisp keys ls` with an admin key to see the roles of keys"),
        Some(ErrorCode::NamespaceNotFound) => err.hint("run `wisp ns ls` with an admin key to see the namespaces"),
        Some(ErrorCode::InvalidCode) => {
            err.hint("check the source's `kind` in wisp.toml and that the .wasm is built for it")
        }
        _ => err,
    }
}

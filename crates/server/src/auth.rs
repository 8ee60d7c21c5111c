//! Who calls the control router, in which namespace, and whether their key's role
//! allows the request: the one layer every control request passes ([`check`]),
//! which leaves a [`Scope`] for the handlers.
//!
//! Credentials are an API key, sent as `Authorization: Bearer <key id>.<secret>`, or
//! on the Lambda-compatible paths also as an AWS Signature V4 made with the key id as
//! access key and the secret as secret key ([`crate::sigv4`]). `GET /v1/health` alone
//! needs none. A key acts in its own namespace; an admin key may name another with
//! the `Wisp-Namespace` header. A namespace the key may not see is answered as one
//! that does not exist (`404`), so no tenant learns of another. What each request
//! needs of the role is one table, [`permission`] (with one exception, object reads by
//! invoke keys: [`role_allows`]).

use crate::lambda;
use crate::platform::PlatformCall;
use crate::problem::ApiError;
use crate::router::is_under;
use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, Method, header};
use std::sync::Arc;
use wisp_core::{ErrorCode, Namespace, Permission, Role};
use wisp_engine::{AuditRecord, Caller, Cause, ClientAddr, Engine, EngineError};

/// The header an admin names another namespace with.
pub const NAMESPACE_HEADER: &str = "wisp-namespace";

/// Who called and where they act: what the auth layer leaves for handlers.
#[derive(Clone, Debug)]
pub struct Scope {
    pub caller: Caller,
    /// The namespace the request acts in (it exists, and the caller may act there).
    pub namespace: Namespace,
    /// The client's address, for the audit trail.
    pub source: Option<std::net::IpAddr>,
}

impl Scope {
    /// The namespace a read across namespaces covers: an admin key that names none
    /// (no `Wisp-Namespace`) reads every namespace (`None`); any other key, or an admin
    /// naming one, reads the scope's.
    pub(crate) fn namespace_or_all(&self, headers: &http::HeaderMap) -> Option<Namespace> {
        let all = self.caller.role == Role::Admin && !headers.contains_key(NAMESPACE_HEADER);
        (!all).then(|| self.namespace.clone())
    }

    /// Records a change this caller made in the scope's namespace.
    pub(crate) async fn audit(
        &self,
        engine: &Engine,
        action: &'static str,
        target: &str,
        detail: Option<String>,
    ) {
        self.audit_in(engine, &self.namespace, action, target, detail)
            .await;
    }

    /// Records a change this caller made in `namespace`.
    pub(crate) async fn audit_in(
        &self,
        engine: &Engine,
        namespace: &Namespace,
        action: &'static str,
        target: &str,
        detail: Option<String>,
    ) {
        engine
            .audit(AuditRecord {
                by: Some(&self.caller),
                namespace,
                action,
                target,
                detail,
                source: self.source.map(|ip| ip.to_string()),
            })
            .await;
    }
}

impl Scope {
    /// What a write made under this scope (an object, a queue or topic message) gives
    /// the work it causes: its depth and trace (`Engine::write_cause`), from the
    /// invocation a wasm guest's request comes from (`platform`), else the one the
    /// request's `X-Amzn-Trace-Id` names.
    pub(crate) fn write_cause(
        &self,
        engine: &Engine,
        platform: Option<&PlatformCall>,
        headers: &http::HeaderMap,
    ) -> Cause {
        let trace = headers.get("x-amzn-trace-id").and_then(|v| v.to_str().ok());
        engine.write_cause(&self.caller, platform.map(|call| &call.from), trace)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Scope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Scope, ApiError> {
        // Taken, not cloned: a handler has one Scope.
        parts.extensions.remove::<Scope>().ok_or_else(|| {
            ApiError(EngineError::internal(format!(
                "{} {} reached a handler without passing the auth layer",
                parts.method,
                parts.uri.path()
            )))
        })
    }
}

/// What a request needs its key's role to allow.
pub fn permission(method: &Method, path: &str) -> Permission {
    if ["/v1/namespaces", "/v1/keys", "/v1/cluster"]
        .iter()
        .any(|p| is_under(path, p))
    {
        return Permission::Admin;
    }
    if is_under(path, "/v1/audit") {
        return Permission::Deploy;
    }
    // `PREFIX{name}SUFFIX`, one name segment between them.
    let action = |path: &str, prefix: &str, suffix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
    };
    // Lambda's `Invoke` is a POST, as are its management operations: the path tells.
    let lambda_invoke = lambda::invoke_target(path).is_some() || lambda::is_stream_invoke(path);
    if method == Method::POST && lambda_invoke {
        return Permission::Invoke;
    }
    if method == Method::GET || method == Method::HEAD {
        return Permission::Read;
    }
    if action(path, "/v1/functions/", "/invoke")
        || action(path, "/v1/queues/", "/messages")
        || action(path, "/v1/topics/", "/messages")
    {
        Permission::Invoke
    } else {
        Permission::Deploy
    }
}

/// Whether `role` may make the request: what [`permission`] says it needs, except that
/// buckets and objects (`GET` and `HEAD` under `/v1/buckets`) and key-value stores
/// (`GET` and `HEAD` under `/v1/kv`) are read by invoke keys too. That is the S3
/// listener's rule, invoke keys read and deploy keys write, so a key reaches the same
/// objects on either listener.
pub fn role_allows(role: Role, method: &Method, path: &str) -> bool {
    let needed = permission(method, path);
    let read_by_invoke = is_under(path, "/v1/buckets") || is_under(path, crate::api::kv::PREFIX);
    role.allows(needed) || (needed == Permission::Read && read_by_invoke && role.allows(Permission::Invoke))
}

/// Paths that need no key.
/// Whether the request's bearer token is the metrics token (see
/// [`Engine::set_metrics_token`]): it may read `/metrics`, and nothing else.
fn is_metrics_token(engine: &Engine, request: &Request) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|text| strip_scheme(text, "Bearer"))
        .is_some_and(|token| engine.is_metrics_token(token.trim()))
}

fn is_public(method: &Method, path: &str) -> bool {
    method == Method::GET && path == "/v1/health"
}

/// A refused request, answered in the shape its path speaks.
pub(crate) struct Refusal {
    error: Box<EngineError>,
    /// For `unauthorized` on the Lambda paths: the exception AWS clients know.
    aws_kind: &'static str,
}

impl Refusal {
    pub(crate) fn new(code: ErrorCode, detail: impl Into<String>, aws_kind: &'static str) -> Refusal {
        Refusal {
            error: Box::new(EngineError::new(code, detail)),
            aws_kind,
        }
    }

    fn respond(self, path: &str) -> Response {
        let mut response = if lambda::is_lambda_path(path) {
            let kind = match self.error.code {
                ErrorCode::Forbidden => "AccessDeniedException",
                ErrorCode::NamespaceNotFound => "ResourceNotFoundException",
                ErrorCode::Unauthorized => self.aws_kind,
                _ => "InvalidRequestContentException",
            };
            lambda::refusal(self.error.code.status(), kind, &self.error.detail)
        } else {
            ApiError(*self.error.clone()).into_response()
        };
        if self.error.code == ErrorCode::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"wisp\""),
            );
        }
        response
    }
}

fn unauthorized(e: EngineError, aws_kind: &'static str) -> Refusal {
    Refusal {
        error: Box::new(e),
        aws_kind,
    }
}

/// The auth layer: checks the caller, the namespace and the role, then runs the
/// request with its [`Scope`].
pub(crate) async fn check(State(engine): State<Arc<Engine>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if is_public(request.method(), &path) {
        return next.run(request).await;
    }
    if path == crate::metrics::PATH && is_metrics_token(&engine, &request) {
        let mut request = request;
        request.extensions_mut().insert(crate::metrics::TokenReader);
        return next.run(request).await;
    }
    match scope(&engine, request).await {
        Ok(request) => next.run(request).await,
        Err(refusal) => refusal.respond(&path),
    }
}

async fn scope(engine: &Engine, request: Request) -> Result<Request, Refusal> {
    let (caller, request) = caller(engine, request).await?;
    admit(engine, caller, request)
}

/// The auth layer of the services functions call, on the S3 listener (`/v1/kv`, Lambda's
/// Invoke): as [`check`], but the bearer token may also be a function's credential
/// (what a native instance finds in `WISP_TOKEN`), Lambda's Invoke may be signed with
/// it (AWS Signature V4, as the SDKs do with `AWS_ACCESS_KEY_ID`), and a wasm guest's
/// request to the platform address comes with its function's identity instead
/// ([`PlatformCall`]).
pub(crate) async fn check_service(
    State(engine): State<Arc<Engine>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let called = match request.extensions().get::<PlatformCall>() {
        Some(call) => Ok((call.caller.clone(), request)),
        None if crate::sigv4::is_sigv4(request.headers()) && lambda::is_lambda_path(&path) => {
            crate::signed::caller(&engine, request, crate::signed::Keys::Services).await
        }
        None => service_caller(&engine, &request).map(|caller| (caller, request)),
    };
    match called.and_then(|(caller, request)| admit(&engine, caller, request)) {
        Ok(request) => next.run(request).await,
        Err(refusal) => refusal.respond(&path),
    }
}

/// The caller a services request's bearer token names.
fn service_caller(engine: &Engine, request: &Request) -> Result<Caller, Refusal> {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|text| strip_scheme(text, "Bearer"));
    let Some(token) = token else {
        return Err(Refusal::new(
            ErrorCode::Unauthorized,
            "this request needs a token: send `Authorization: Bearer <token>` (a function finds its own in `WISP_TOKEN`; a person's API key works too)",
            "MissingAuthenticationTokenException",
        ));
    };
    engine
        .authenticate_service(token.trim())
        .map_err(|e| unauthorized(e, "UnrecognizedClientException"))
}

/// Checks the namespace and the role of `caller` for `request`, and leaves the
/// [`Scope`] for the handler.
fn admit(engine: &Engine, caller: Caller, mut request: Request) -> Result<Request, Refusal> {
    let namespace = namespace(engine, &caller, request.headers())?;
    let needed = permission(request.method(), request.uri().path());
    if !role_allows(caller.role, request.method(), request.uri().path()) {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            format!(
                "API key `{}` has role `{}`, which may not {}",
                caller.key_id,
                caller.role,
                match needed {
                    Permission::Read => "read",
                    Permission::Invoke => "invoke functions or send messages",
                    Permission::Deploy => "change (or read the audit of) a namespace",
                    Permission::Admin => "manage namespaces and keys (an admin key may)",
                }
            ),
            "AccessDeniedException",
        ));
    }
    let source = request.extensions().get::<ClientAddr>().map(|a| a.0.ip());
    request.extensions_mut().insert(Scope {
        caller,
        namespace,
        source,
    });
    Ok(request)
}

/// The caller the request's credentials name.
async fn caller(engine: &Engine, request: Request) -> Result<(Caller, Request), Refusal> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Err(Refusal::new(
            ErrorCode::Unauthorized,
            "this request needs an API key: send `Authorization: Bearer <key id>.<secret>` (a local server's admin key is in its data directory's `admin.key`)",
            "MissingAuthenticationTokenException",
        ));
    };
    let Ok(text) = value.to_str() else {
        return Err(Refusal::new(
            ErrorCode::Unauthorized,
            "the Authorization header is not visible ASCII",
            "IncompleteSignatureException",
        ));
    };
    if let Some(token) = strip_scheme(text, "Bearer") {
        let caller = engine
            .authenticate(token.trim())
            .map_err(|e| unauthorized(e, "UnrecognizedClientException"))?;
        return Ok((caller, request));
    }
    if crate::sigv4::is_sigv4(request.headers()) {
        if !lambda::is_lambda_path(request.uri().path()) {
            return Err(Refusal::new(
                ErrorCode::Unauthorized,
                "AWS Signature V4 is accepted on the Lambda-compatible paths only; send `Authorization: Bearer <key id>.<secret>`",
                "IncompleteSignatureException",
            ));
        }
        return crate::signed::caller(engine, request, crate::signed::Keys::People).await;
    }
    let scheme = text.split_whitespace().next().unwrap_or_default();
    Err(Refusal::new(
        ErrorCode::Unauthorized,
        format!(
            "`Authorization: {scheme} …` is not a scheme Wisp takes; send `Authorization: Bearer <key id>.<secret>`"
        ),
        "IncompleteSignatureException",
    ))
}

/// `text` without its scheme, when the scheme is `scheme` (case-insensitive).
fn strip_scheme<'a>(text: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = text.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// The namespace a request acts in: the key's own, or for an admin the one its
/// `Wisp-Namespace` header names.
fn namespace(engine: &Engine, caller: &Caller, headers: &http::HeaderMap) -> Result<Namespace, Refusal> {
    let Some(value) = headers.get(NAMESPACE_HEADER) else {
        return Ok(caller.namespace.clone());
    };
    let text = value.to_str().unwrap_or_default();
    let named = Namespace::new(text).map_err(|e| {
        Refusal::new(
            ErrorCode::InvalidName,
            e.to_string(),
            "InvalidParameterValueException",
        )
    })?;
    let visible = caller.role == Role::Admin || named == caller.namespace;
    if !visible || !engine.namespace_exists(&named) {
        return Err(Refusal::new(
            ErrorCode::NamespaceNotFound,
            format!("there is no namespace `{named}`"),
            "ResourceNotFoundException",
        ));
    }
    Ok(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_needs_what_the_table_says() {
        let get = Method::GET;
        let post = Method::POST;
        let put = Method::PUT;
        let delete = Method::DELETE;
        let cases = [
            (&get, "/v1/functions", Permission::Read),
            (&get, "/v1/functions/f/logs", Permission::Read),
            (&put, "/v1/functions/f", Permission::Deploy),
            (&delete, "/v1/functions/f", Permission::Deploy),
            (&post, "/v1/functions/f/invoke", Permission::Invoke),
            (&post, "/v1/queues/q/messages", Permission::Invoke),
            (&post, "/v1/queues/q/receive", Permission::Deploy),
            (&post, "/v1/functions/f/invoke/x", Permission::Deploy),
            (&post, "/v1/functions//invoke", Permission::Deploy),
            (&post, "/2015-03-31/functions/f/invocations", Permission::Invoke),
            (
                &post,
                "/2021-11-15/functions/f/response-streaming-invocations",
                Permission::Invoke,
            ),
            (&post, "/2021-11-15/functions/f", Permission::Deploy),
            (
                &post,
                "/2015-03-31/functions/arn%3Aaws%3Alambda%3Alocal%3A0%3Afunction%3Af/invocations",
                Permission::Invoke,
            ),
            (&post, "/2015-03-31/functions//invocations", Permission::Deploy),
            (&get, "/2015-03-31/functions/f/invocations", Permission::Read),
            (&get, "/2015-03-31/functions/", Permission::Read),
            (&get, "/2015-03-31/functions/f", Permission::Read),
            (&get, "/2015-03-31/functions/f/versions", Permission::Read),
            (&get, "/2015-03-31/functions/f/aliases/prod", Permission::Read),
            (&Method::HEAD, "/2015-03-31/functions/f", Permission::Read),
            (&post, "/2015-03-31/functions", Permission::Deploy),
            (&post, "/2015-03-31/functions/", Permission::Deploy),
            (&put, "/2015-03-31/functions/f/code", Permission::Deploy),
            (&put, "/2015-03-31/functions/f/configuration", Permission::Deploy),
            (&delete, "/2015-03-31/functions/f", Permission::Deploy),
            (&post, "/2015-03-31/functions/f/versions", Permission::Deploy),
            (&post, "/2015-03-31/functions/f/aliases", Permission::Deploy),
            (&put, "/2015-03-31/functions/f/aliases/prod", Permission::Deploy),
            (
                &delete,
                "/2015-03-31/functions/f/aliases/prod",
                Permission::Deploy,
            ),
            (&post, "/2015-03-31/functions/f/invocations/x", Permission::Deploy),
            (&get, "/v1/keys", Permission::Admin),
            (&get, "/v1/cluster", Permission::Admin),
            (&post, "/v1/namespaces", Permission::Admin),
            (&get, "/v1/audit", Permission::Deploy),
            (&get, "/v1/buckets", Permission::Read),
            (&Method::HEAD, "/v1/buckets/b/objects/k", Permission::Read),
            (&put, "/v1/buckets/b", Permission::Deploy),
            (&put, "/v1/buckets/b/objects/a/b.jpg", Permission::Deploy),
            (&delete, "/v1/buckets/b/objects/k", Permission::Deploy),
        ];
        for (method, path, needed) in cases {
            assert_eq!(permission(method, path), needed, "{method} {path}");
        }
    }

    #[test]
    fn invoke_keys_read_buckets_and_objects_and_write_nothing() {
        let get = Method::GET;
        for path in ["/v1/buckets", "/v1/buckets/b", "/v1/buckets/b/objects/k"] {
            for role in Role::ALL {
                assert!(role_allows(role, &get, path), "{role} GET {path}");
            }
            assert!(role_allows(Role::Invoke, &Method::HEAD, path), "HEAD {path}");
            assert!(!role_allows(Role::Invoke, &Method::PUT, path), "PUT {path}");
            assert!(!role_allows(Role::Read, &Method::DELETE, path), "DELETE {path}");
            assert!(role_allows(Role::Deploy, &Method::PUT, path), "PUT {path}");
        }
        assert!(!role_allows(Role::Invoke, &get, "/v1/functions"));
        assert!(!role_allows(Role::Invoke, &get, "/v1/bucketsx"));
    }

    #[test]
    fn invoke_keys_read_key_value_stores_and_write_nothing() {
        for path in [
            "/v1/kv",
            "/v1/kv/cache",
            "/v1/kv/cache/keys",
            "/v1/kv/cache/keys/a/b",
        ] {
            for method in [Method::GET, Method::HEAD] {
                assert!(role_allows(Role::Invoke, &method, path), "{method} {path}");
                assert!(role_allows(Role::Read, &method, path), "{method} {path}");
            }
            for method in [Method::PUT, Method::DELETE] {
                assert!(!role_allows(Role::Invoke, &method, path), "{method} {path}");
                assert!(!role_allows(Role::Read, &method, path), "{method} {path}");
                assert!(role_allows(Role::Deploy, &method, path), "{method} {path}");
            }
        }
        for path in ["/v1/kv/cache/increment/n", "/v1/kv/cache/batch"] {
            assert_eq!(permission(&Method::POST, path), Permission::Deploy, "{path}");
        }
        assert!(!role_allows(Role::Invoke, &Method::GET, "/v1/kvx"));
    }
}

//! The http trigger: the routes functions declare, and requests to them.
//!
//! An http function gets the request as it is, its body streaming in and its answer
//! streaming out; an event function gets Lambda's API Gateway HTTP API v2 event
//! ([`apigw`]) and answers with the proxy response shape. Routes are per namespace
//! ([`namespaces`]); each namespace's route table ([`routes`]) is rebuilt on every
//! change to what is deployed and all are swapped in whole, so a request takes no
//! lock: one `ArcSwap` load and one `matchit` match. Before the function is admitted
//! the route's [`access`] is checked: its auth ([`jwt`], API keys) and its rate
//! limit ([`rate`]).

pub(crate) mod access;
pub(crate) mod apigw;
pub(crate) mod jwt;
pub(crate) mod namespaces;
pub(crate) mod rate;
pub(crate) mod routes;

use super::{Functions, Trigger};
use crate::dispatch::{new_invocation_id, too_large};
use crate::registry::FunctionKey;
use crate::{Deployed, Engine, EngineError, InvokeOptions};
use access::{Caller, JWT_CLAIMS_HEADER};
use apigw::{ClientAddr, RequestInfo};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::HeaderName;
use http::{HeaderValue, Request, Response, header};
use http_body_util::BodyExt;
use namespaces::Tables;
use rate::{Client, Decision};
use routes::Lookup;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use wisp_core::{ErrorCode, Kind, RateLimitBy};
use wisp_runtime::body::{self, BodyTooLarge, Limited};
use wisp_runtime::{Body, CallContext, Input, Output};

/// The header telling a function reached by `/@N/…` the prefix that was stripped.
const FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// The routes being served.
#[derive(Default)]
pub(crate) struct HttpRoutes {
    table: ArcSwap<Tables>,
    /// `--domain`: `N.<domain>` reaches namespace `N`.
    domain: OnceLock<String>,
    /// Whether the sweeper of idle rate-limit clients runs.
    sweeper: OnceLock<()>,
}

impl HttpRoutes {
    /// Checks that `functions` can serve: the routes of `changed`'s namespace do not
    /// conflict. The routes of `changed` (the function being deployed) go in last, so
    /// a conflict names that function's route as the one in the way of a route
    /// already serving. Other namespaces are not looked at: each has its own routes.
    pub(crate) fn check(&self, functions: &Functions, changed: &FunctionKey) -> Result<(), EngineError> {
        let others = functions
            .iter()
            .filter(|(k, _)| *k != changed && k.0 == changed.0)
            .map(|(_, v)| v);
        let mut limiters = routes::Limiters::default();
        routes::RouteTable::build(others.chain(functions.get(changed)), &mut limiters)
            .map(drop)
            .map_err(|c| {
            let detail = if c.other_function.is_empty() {
                format!("route `{}` conflicts with a deployed route: {}", c.route, c.other_route)
            } else {
                format!(
                    "route `{}` conflicts with route `{}` of function `{}`; change one of them or remove `{}` first",
                    c.route, c.other_route, c.other_function, c.other_function
                )
            };
            EngineError::new(ErrorCode::RouteConflict, detail)
        })
    }

    /// Starts the task that sweeps idle clients from the rate limiters, once.
    fn start_sweeper(&self, engine: &Engine) {
        if self.sweeper.set(()).is_err() {
            return;
        }
        let me = engine.me.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(rate::SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(engine) = me.upgrade() else { return };
                let tables = engine.triggers.http.table.load_full();
                drop(engine);
                for limiter in tables.limiters() {
                    limiter.sweep();
                }
            }
        });
    }
}

impl Trigger for HttpRoutes {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn sync(&self, engine: &Engine, functions: &Functions) {
        let previous = self.table.load();
        let tables = Tables::build(functions.values(), &previous).unwrap_or_else(|(namespace, conflict)| {
            // Deploys refuse conflicts; a store that holds one anyway keeps serving
            // what it can rather than refusing to start.
            tracing::error!(
                "stored routes of namespace `{namespace}` conflict ({conflict:?}); serving without routes"
            );
            Tables::default()
        });
        if !tables.limiters.is_empty() {
            self.start_sweeper(engine);
        }
        self.table.store(Arc::new(tables));
    }
}

impl Engine {
    /// Serves namespace `N` at `N.<domain>` as well as at `/@N/`. Call once, before
    /// serving; later calls are ignored.
    pub fn set_domain(&self, domain: &str) {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if !domain.is_empty() {
            let _ = self.triggers.http.domain.set(domain);
        }
    }
}

/// The `route_not_found` error for `path`; `hint` only where it reveals nothing.
/// The trace root a route request names, if any (`wisp_core::trace::root_of_request`).
/// Two header lookups when it names none: the common case costs no parsing.
fn trace_root(headers: &http::HeaderMap) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    wisp_core::trace::root_of_request(text("traceparent"), text("x-amzn-trace-id"))
}

fn no_route(path: &str, hint: bool) -> EngineError {
    let hint = if hint { " (no function has routes yet)" } else { "" };
    EngineError::new(
        ErrorCode::RouteNotFound,
        format!("no route matches `{path}`{hint}"),
    )
}

/// `parts` with the `/@N` prefix (`len` bytes) cut from the path, and the
/// `X-Forwarded-Prefix` header saying so.
fn strip_prefix(parts: &mut http::request::Parts, len: usize) {
    let path = parts.uri.path();
    let (prefix, rest) = path.split_at(len.min(path.len()));
    let rest = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_string(),
    };
    if let Ok(prefix) = HeaderValue::from_str(prefix) {
        parts.headers.insert(FORWARDED_PREFIX, prefix);
    }
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.path_and_query = path_and_query.parse().ok();
    parts.uri = http::Uri::from_parts(uri).unwrap_or_default();
}

impl Engine {
    /// Serves a request to a user route.
    pub async fn handle(&self, request: Request<Body>) -> Result<Response<Body>, EngineError> {
        let (mut parts, body) = request.into_parts();
        // Only the gateway writes this header (a static name: no parsing per request).
        const CLAIMS: HeaderName = HeaderName::from_static(JWT_CLAIMS_HEADER);
        parts.headers.remove(&CLAIMS);
        let tables = self.triggers.http.table.load();
        let resolved = tables.resolve(self.triggers.http.domain.get().map(String::as_str), &parts);
        let Some(routes) = resolved.table else {
            return Err(no_route(parts.uri.path(), false));
        };
        if let Some(len) = resolved.prefix {
            strip_prefix(&mut parts, len);
        }
        let (target, params) = match routes.lookup(parts.method.as_str(), parts.uri.path()) {
            Lookup::Found { target, params } => (target, params),
            Lookup::MethodNotAllowed { allow } => {
                let mut err = EngineError::new(
                    ErrorCode::MethodNotAllowed,
                    format!(
                        "`{}` is not allowed on `{}`; allowed: {allow}",
                        parts.method,
                        parts.uri.path()
                    ),
                );
                if let Ok(allow) = HeaderValue::from_str(&allow) {
                    err.headers_mut().insert(header::ALLOW, allow);
                }
                return Err(err);
            }
            Lookup::NotFound => {
                return Err(no_route(
                    parts.uri.path(),
                    resolved.is_default && routes.is_empty(),
                ));
            }
        };
        // Who calls and how often, before anything is admitted or read.
        let access = &target.access;
        let client_ip = || {
            let ip = parts.extensions.get::<ClientAddr>().map(|a| a.0.ip());
            Client::ip(ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()))
        };
        let limit = |limiter: &rate::Limiter, client: Client| -> Result<Decision, EngineError> {
            limiter
                .check(&client)
                .map_err(|refused| refused.error(limiter.limit))
        };
        let mut decision = None;
        if let Some(limiter) = access.limiter.as_deref()
            && limiter.limit.by == RateLimitBy::Ip
        {
            decision = Some(limit(limiter, client_ip())?);
        }
        let namespace = &target.function.record.namespace;
        let caller = access.authenticate(self, &parts.headers, namespace)?;
        if let Some(limiter) = access.limiter.as_deref()
            && limiter.limit.by == RateLimitBy::Key
        {
            let client = match caller.identity() {
                Some(id) => Client::Caller(id.into()),
                None => client_ip(),
            };
            decision = Some(limit(limiter, client)?);
        }
        let (claims, authorizer) = match &caller {
            Caller::Jwt(verified) => (
                HeaderValue::from_str(verified.payload).ok(),
                Some(jwt::authorizer(&verified.claims)),
            ),
            _ => (None, None),
        };
        let is_key = matches!(caller, Caller::Key(_));
        drop(caller);
        if let Some(claims) = claims {
            parts.headers.insert(CLAIMS, claims);
        }
        if is_key {
            // A Wisp API key is the caller's credential, not the function's.
            parts.headers.remove(header::AUTHORIZATION);
        }
        let finish = |mut response: Response<Body>| {
            if let Some(decision) = &decision {
                decision.write(response.headers_mut());
            }
            response
        };
        let function: &Arc<Deployed> = &target.function;
        let limit = self.limits.max_request_body;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            body::drain(body);
            return Err(too_large(limit));
        }
        let id = new_invocation_id();
        // A request that names its trace (W3C `traceparent`, X-Ray's header) runs in it.
        let context = CallContext {
            trace_root: trace_root(&parts.headers).map(Arc::from),
            ..CallContext::default()
        };
        let deployed = match self.choose(function, None) {
            Ok(version) => version,
            Err(e) => {
                // Nothing runs: no invocation to name.
                body::drain(body);
                return Err(e);
            }
        };
        let fail = |e: EngineError| e.ran(&id, deployed.record.number);
        match deployed.record.config.kind {
            Kind::Http => {
                // The body streams into the guest, so the slot is taken first.
                let (admitted, ticket) = self.admit(deployed).await.map_err(fail)?;
                let (limited, exceeded) = Limited::new(body, limit);
                if parts.uri.authority().is_none() && !parts.headers.contains_key(header::HOST) {
                    parts
                        .headers
                        .insert(header::HOST, HeaderValue::from_static("localhost"));
                }
                let request = Request::from_parts(parts, limited.boxed_unsync());
                let result = self
                    .run(
                        deployed,
                        &id,
                        Input::Http(request),
                        &admitted,
                        ticket,
                        context,
                        InvokeOptions::default(),
                    )
                    .await;
                if exceeded.load(Ordering::Acquire) {
                    return Err(fail(too_large(limit)));
                }
                match result.map_err(fail)? {
                    Output::Http(response) => Ok(finish(admitted.tag(response, &id))),
                    Output::Event(_) => {
                        Err(fail(EngineError::internal("an http function answered an event")))
                    }
                }
            }
            Kind::Event => {
                // The body is read before taking a slot: a slow client holds none.
                let bytes: Bytes = match body::read_to_bytes(body, limit).await {
                    Ok(bytes) => bytes,
                    Err(e) if e.is::<BodyTooLarge>() => return Err(fail(too_large(limit))),
                    Err(e) => {
                        return Err(fail(EngineError::new(
                            ErrorCode::InvalidRequest,
                            format!("cannot read the request body: {e}"),
                        )));
                    }
                };
                let method = match target.methods.as_slice() {
                    [] => None,
                    [only] => Some(only.as_str()),
                    _ => Some(parts.method.as_str()),
                };
                let route_key = apigw::route_key(method, &target.pattern);
                let info = RequestInfo {
                    parts: &parts,
                    route_key: &route_key,
                    path_parameters: params,
                    request_id: &id,
                    namespace: deployed.namespace.as_str(),
                    authorizer: authorizer.as_ref(),
                };
                let event = apigw::event(&info, &bytes);
                let (admitted, ticket) = self.admit(deployed).await.map_err(fail)?;
                let output = self
                    .run(
                        deployed,
                        &id,
                        Input::Event(event.into()),
                        &admitted,
                        ticket,
                        context,
                        InvokeOptions::default(),
                    )
                    .await
                    .map_err(fail)?;
                match output {
                    Output::Event(bytes) => apigw::response(bytes)
                        .map(|r| finish(admitted.tag(r, &id)))
                        .map_err(fail),
                    Output::Http(_) => Err(fail(EngineError::internal("an event function answered HTTP"))),
                }
            }
        }
    }
}

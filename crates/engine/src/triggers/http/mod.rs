//! The http trigger: the routes functions declare, and requests to them.
//!
//! An http function gets the request as it is, its body streaming in and its answer
//! streaming out; an event function gets Lambda's API Gateway HTTP API v2 event
//! ([`apigw`]) and answers with the proxy response shape. The route table
//! ([`routes`]) is rebuilt on every change to what is deployed and swapped in whole,
//! so a request takes no lock: one `ArcSwap` load and one `matchit` match.

pub(crate) mod apigw;
pub(crate) mod routes;

use super::{Functions, Trigger};
use crate::dispatch::{new_invocation_id, too_large};
use crate::registry::FunctionKey;
use crate::{Deployed, Engine, EngineError};
use apigw::RequestInfo;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::BodyExt;
use routes::{Lookup, RouteTable};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use wisp_core::{ErrorCode, Kind};
use wisp_runtime::body::{self, BodyTooLarge, Limited};
use wisp_runtime::{Body, Input, Output};

/// The routes being served.
#[derive(Default)]
pub(crate) struct HttpRoutes {
    table: ArcSwap<RouteTable>,
}

impl HttpRoutes {
    /// The table `functions` would serve, or the conflict that makes it impossible,
    /// as an error to refuse a deploy with. The routes of `changed` (the function being
    /// deployed) go in last, so a conflict names that function's route as the one in
    /// the way of a route already serving.
    pub(crate) fn check(
        &self,
        functions: &Functions,
        changed: &FunctionKey,
    ) -> Result<RouteTable, EngineError> {
        let others = functions.iter().filter(|(k, _)| *k != changed).map(|(_, v)| v);
        RouteTable::build(others.chain(functions.get(changed))).map_err(|c| {
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
}

impl Trigger for HttpRoutes {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn sync(&self, _engine: &Engine, functions: &Functions) {
        let table = RouteTable::build(functions.values()).unwrap_or_else(|conflict| {
            // Deploys refuse conflicts; a store that holds one anyway keeps serving
            // what it can rather than refusing to start.
            tracing::error!("stored routes conflict ({conflict:?}); serving without routes");
            RouteTable::default()
        });
        self.table.store(Arc::new(table));
    }
}

impl Engine {
    /// Serves a request to a user route.
    pub async fn handle(&self, request: Request<Body>) -> Result<Response<Body>, EngineError> {
        let (mut parts, body) = request.into_parts();
        let routes = self.triggers.http.table.load();
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
                err.allow = Some(allow);
                return Err(err);
            }
            Lookup::NotFound => {
                let hint = if routes.is_empty() {
                    " (no function has routes yet)"
                } else {
                    ""
                };
                return Err(EngineError::new(
                    ErrorCode::RouteNotFound,
                    format!("no route matches `{}`{hint}", parts.uri.path()),
                ));
            }
        };
        let deployed: Arc<Deployed> = target.function.clone();
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
        let fail = |e: EngineError| e.with_invocation(&id);
        match deployed.record.version.config.kind {
            Kind::Http => {
                // The body streams into the guest, so the slot is taken first.
                let (admitted, ticket) = self.admit(&deployed).await.map_err(fail)?;
                let (limited, exceeded) = Limited::new(body, limit);
                if parts.uri.authority().is_none() && !parts.headers.contains_key(header::HOST) {
                    parts
                        .headers
                        .insert(header::HOST, HeaderValue::from_static("localhost"));
                }
                let request = Request::from_parts(parts, limited.boxed_unsync());
                let result = self
                    .run(&deployed, &id, Input::Http(request), &admitted, ticket)
                    .await;
                if exceeded.load(Ordering::Acquire) {
                    return Err(fail(too_large(limit)));
                }
                match result.map_err(fail)? {
                    Output::Http(response) => Ok(admitted.tag(response, &id)),
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
                    namespace: deployed.record.namespace.as_str(),
                };
                let event = apigw::event(&info, &bytes);
                let (admitted, ticket) = self.admit(&deployed).await.map_err(fail)?;
                let output = self
                    .run(&deployed, &id, Input::Event(event.into()), &admitted, ticket)
                    .await
                    .map_err(fail)?;
                match output {
                    Output::Event(bytes) => {
                        apigw::response(bytes).map(|r| admitted.tag(r, &id)).map_err(fail)
                    }
                    Output::Http(_) => Err(fail(EngineError::internal("an event function answered HTTP"))),
                }
            }
        }
    }
}

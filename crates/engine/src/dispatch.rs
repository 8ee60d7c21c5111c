//! Invocations: the sync invoke API and requests to user routes, dispatched to the
//! function's loaded code.

use crate::apigw::{self, RequestInfo};
use crate::routes::Lookup;
use crate::{Deployed, Engine, EngineError};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use wisp_core::{ErrorCode, FunctionName, Kind, Namespace};
use wisp_runtime::body::{BodyTooLarge, Limited};
use wisp_runtime::{Body, Input, Invocation, Output, body};

/// The response header carrying the invocation id (the logs carry it too).
pub const INVOCATION_ID_HEADER: &str = "x-wisp-invocation-id";

fn new_invocation_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn too_large(limit: usize) -> EngineError {
    EngineError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than the limit of {limit} bytes"),
    )
}

fn tag(mut response: Response<Body>, id: &str) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(INVOCATION_ID_HEADER, value);
    }
    response
}

impl Engine {
    fn invocation(&self, deployed: &Deployed, id: &str, input: Input) -> Invocation {
        let sink = self.logs.clone();
        let namespace = deployed.record.namespace.clone();
        let name = deployed.record.name.clone();
        let invocation_id = id.to_string();
        Invocation {
            id: id.to_string(),
            input,
            on_finish: Some(Box::new(move |finished| {
                if let Some(code) = finished.error {
                    tracing::debug!(function = %name, invocation = %invocation_id, %code, "invocation failed");
                }
                sink.record(&namespace, &name, &invocation_id, finished.logs);
            })),
        }
    }

    /// Invokes a function synchronously with `payload`: an event function reads it on
    /// stdin and its stdout is the `200 application/json` answer; an http function gets
    /// it as the body of a `POST /` and its response comes back as it is.
    pub async fn invoke(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        payload: Bytes,
        content_type: Option<HeaderValue>,
    ) -> Result<Response<Body>, EngineError> {
        let deployed = self
            .function(namespace, name)
            .ok_or_else(|| EngineError::function_not_found(name.as_str()))?;
        let limit = self.limits.max_request_body;
        if payload.len() > limit {
            return Err(too_large(limit));
        }
        let id = new_invocation_id();
        let fail = |e: EngineError| e.with_invocation(&id);
        let function = deployed
            .function(&*self.runtime, &*self.store)
            .await
            .map_err(fail)?;
        let input = match deployed.record.version.config.kind {
            Kind::Event => Input::Event(payload),
            Kind::Http => {
                let mut request = Request::new(body::full(payload));
                *request.method_mut() = Method::POST;
                *request.uri_mut() = http::Uri::from_static("/");
                let headers = request.headers_mut();
                headers.insert(header::HOST, HeaderValue::from_static("localhost"));
                headers.insert(
                    header::CONTENT_TYPE,
                    content_type.unwrap_or(HeaderValue::from_static("application/json")),
                );
                Input::Http(request)
            }
        };
        let output = function
            .invoke(self.invocation(&deployed, &id, input))
            .await
            .map_err(|e| fail(e.into()))?;
        let response = match output {
            Output::Http(response) => response,
            Output::Event(bytes) => {
                let mut response = Response::new(body::full(bytes));
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                response
            }
        };
        Ok(tag(response, &id))
    }

    /// Serves a request to a user route.
    pub async fn handle(&self, request: Request<Body>) -> Result<Response<Body>, EngineError> {
        let (mut parts, body) = request.into_parts();
        let state = self.state.load_full();
        let (target, params) = match state.routes.lookup(parts.method.as_str(), parts.uri.path()) {
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
                let hint = if state.routes.is_empty() {
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
        let function = deployed
            .function(&*self.runtime, &*self.store)
            .await
            .map_err(fail)?;
        match deployed.record.version.config.kind {
            Kind::Http => {
                let (limited, exceeded) = Limited::new(body, limit);
                if parts.uri.authority().is_none() && !parts.headers.contains_key(header::HOST) {
                    parts
                        .headers
                        .insert(header::HOST, HeaderValue::from_static("localhost"));
                }
                let request = Request::from_parts(parts, limited.boxed_unsync());
                let result = function
                    .invoke(self.invocation(&deployed, &id, Input::Http(request)))
                    .await;
                if exceeded.load(Ordering::Acquire) {
                    return Err(fail(too_large(limit)));
                }
                match result.map_err(|e| fail(e.into()))? {
                    Output::Http(response) => Ok(tag(response, &id)),
                    Output::Event(_) => Err(fail(EngineError::new(
                        ErrorCode::Internal,
                        "http function answered an event",
                    ))),
                }
            }
            Kind::Event => {
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
                let output = function
                    .invoke(self.invocation(&deployed, &id, Input::Event(event.into())))
                    .await
                    .map_err(|e| fail(e.into()))?;
                match output {
                    Output::Event(bytes) => apigw::response(bytes).map(|r| tag(r, &id)).map_err(fail),
                    Output::Http(_) => Err(fail(EngineError::new(
                        ErrorCode::Internal,
                        "event function answered HTTP",
                    ))),
                }
            }
        }
    }
}

#[allow(dead_code)]
fn _assert_send(e: &Engine, r: Request<Body>, n: &Namespace, f: &FunctionName) {
    fn s<T: Send>(_: T) {}
    s(e.handle(r));
    s(e.invoke(n, f, Bytes::new(), None));
}

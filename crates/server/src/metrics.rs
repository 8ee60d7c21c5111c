//! `GET /metrics`: Prometheus' scrape of what the engine counts
//! ([`Engine::write_metrics`]), in the text format or OpenMetrics as the `Accept`
//! header asks. An admin key (without `Wisp-Namespace`) or the metrics token reads
//! every namespace and the process; any other key with read rights, its namespace's.

use crate::auth::Scope;
use crate::problem::ApiError;
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use std::sync::Arc;
use wisp_core::exposition::{Exposition, Format};
use wisp_engine::Engine;

/// Where Prometheus scrapes.
pub(crate) const PATH: &str = "/metrics";

/// Left by the auth layer on a request that carries the metrics token.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenReader;

pub(crate) async fn serve(State(engine): State<Arc<Engine>>, request: Request) -> Result<Response, ApiError> {
    let (mut parts, _) = request.into_parts();
    let namespace = if parts.extensions.get::<TokenReader>().is_some() {
        None
    } else {
        let scope = Scope::from_request_parts(&mut parts, &()).await?;
        scope.namespace_or_all(&parts.headers)
    };
    let accept = parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let mut exposition = Exposition::new(format);
    engine.write_metrics(&mut exposition, namespace.as_ref()).await?;
    let mut response = exposition.finish().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}

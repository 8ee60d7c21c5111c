//! The routes functions call on the S3 listener (every `/v1/…` path there: "v1" is no
//! bucket name, being shorter than three characters): the key-value API (`/v1/kv`) and
//! sending to a queue (`POST /v1/queues/{name}/messages`), behind the services' auth
//! layer ([`crate::auth::check_service`]), which takes a function's credential
//! (`WISP_TOKEN`) as well as a person's key. The handlers check a function's grants.
//! Nothing else of the control API is served there.

use axum::Router;
use std::sync::Arc;
use wisp_core::ErrorCode;
use wisp_engine::Engine;

use crate::problem::ApiError;

/// Where the services are, under the S3 listener's paths.
pub(crate) const PREFIX: &str = "/v1";

/// The services router, ready to serve.
pub fn router(engine: Arc<Engine>) -> Router {
    super::kv::router()
        .merge(super::queues::send_router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            engine.clone(),
            crate::auth::check_service,
        ))
        .with_state(engine)
}

async fn not_found(uri: http::Uri) -> ApiError {
    crate::router::not_served(uri.path())
}

async fn method_not_allowed(method: http::Method, uri: http::Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("`{method}` is not allowed on `{}`", uri.path()),
    )
}

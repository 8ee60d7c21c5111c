//! The routes functions call on the S3 listener (every `/v1/…` path there: "v1" is no
//! bucket name, being shorter than three characters): the key-value API (`/v1/kv`) and
//! sending to a queue (`POST /v1/queues/{name}/messages`), publishing to a topic
//! (`POST /v1/topics/{name}/messages`), Lambda's Invoke (function-to-function calls,
//! `POST /2015-03-31/functions/{name}/invocations`), behind the services' auth
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

/// Where Lambda's Invoke is, under the S3 listener's paths. (`2015-03-31` could be a
/// bucket's name: its objects under `functions/` are shadowed there.)
const INVOKE_PREFIX: &str = "/2015-03-31/functions";

/// Whether the services router serves `path` (else it is S3's).
pub(crate) fn serves(path: &str) -> bool {
    crate::router::is_under(path, PREFIX)
        || crate::router::is_under(path, INVOKE_PREFIX)
        || crate::lambda::is_stream_invoke(path)
}

/// The services router, ready to serve.
pub fn router(engine: Arc<Engine>) -> Router {
    super::kv::router()
        .merge(super::queues::send_router())
        .merge(super::topics::publish_router())
        .merge(crate::lambda::invoke_router())
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

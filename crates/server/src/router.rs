//! The control router: one axum `Router` for every path Wisp reserves for itself —
//! the control API under `/v1` ([`crate::api`]), Lambda's `Invoke` and management
//! operations under `/2015-03-31` and `InvokeWithResponseStream` under `/2021-11-15`
//! ([`crate::lambda`]), Prometheus' `/metrics`
//! ([`crate::metrics`]), the dashboard under `/ui` ([`crate::ui`], behind its own
//! session check), and the prefix kept for later (the Runtime API's `/2018-06-01`),
//! which answers `not_found`. Anything that applies to every other control request is
//! one layer here: authentication and authorization ([`crate::auth`]).
//! User routes never pass through it: [`crate::App`] sends them straight to the
//! engine.

use crate::problem::ApiError;
use crate::{api, auth, lambda, metrics, ui};
use axum::Router;
use std::sync::Arc;
use wisp_core::{ErrorCode, RESERVED_PREFIXES};
use wisp_engine::Engine;

/// Whether `path` is `prefix` or below it (whole segments: `/v1x` is not under `/v1`).
pub(crate) fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether `path` belongs to the control router rather than to user routes.
pub(crate) fn is_reserved(path: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|prefix| is_under(path, prefix))
}

/// The control router over `engine`.
pub fn control(engine: Arc<Engine>) -> Router {
    Router::new()
        .merge(api::routes(engine.limits()))
        .merge(lambda::routes())
        .route(metrics::PATH, axum::routing::get(metrics::serve))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(engine.clone(), auth::check))
        // After the API's auth layer, so not inside it: the dashboard checks its own
        // session, then each page's role as the API would.
        .merge(ui::routes_for(&engine))
        .with_state(engine)
}

async fn not_found(uri: http::Uri) -> ApiError {
    not_served(uri.path())
}

/// A reserved path this server has nothing at: a `not_found` problem.
pub(crate) fn not_served(path: &str) -> ApiError {
    if is_under(path, "/v1") {
        return ApiError::new(
            ErrorCode::NotFound,
            format!("there is no API resource at `{path}`"),
        );
    }
    let prefix = RESERVED_PREFIXES
        .iter()
        .find(|p| is_under(path, p))
        .copied()
        .unwrap_or(path);
    ApiError::new(
        ErrorCode::NotFound,
        format!("`{prefix}` is reserved by Wisp and this server does not serve `{path}`"),
    )
}

async fn method_not_allowed(method: http::Method, uri: http::Uri) -> ApiError {
    if !is_under(uri.path(), "/v1") {
        // Under Lambda's prefix, a method a served path does not take is an operation
        // Wisp does not serve.
        return not_served(uri.path());
    }
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("`{method}` is not allowed on `{}`", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_whole_segments() {
        assert!(is_reserved("/v1"));
        assert!(is_reserved("/v1/functions"));
        assert!(is_reserved("/2015-03-31/functions/x/invocations"));
        assert!(is_reserved("/ui/x"));
        assert!(!is_reserved("/v1x"));
        assert!(!is_reserved("/"));
        assert!(!is_reserved("/hello"));
    }
}

//! The control API under `/v1`: deploy, inspect, invoke and delete functions, manage
//! their versions and aliases (roll back, disable, enable), read
//! their logs and invocations, manage async invocations, queues, topics, buckets and their
//! objects, key-value stores and their keys, secrets (never read back), alarms; and for admin keys, namespaces and API
//! keys; the audit trail; a trace's invocations. Every error is a problem document (see [`crate::problem`]);
//! `docs/api.md` is the reference.

mod alarms;
mod apps;
mod audit;
mod breakers;
mod buckets;
mod functions;
mod invocations;
mod json;
mod keys;
pub(crate) mod kv;
mod logs;
mod namespaces;
mod queues;
mod secrets;
pub(crate) mod services;
mod stats;
mod topics;
mod traces;
mod usage;
mod versions;

pub(crate) use functions::trace_root;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post, put};
use std::sync::Arc;
use wisp_core::Limits;
use wisp_engine::Engine;

/// Room for the multipart framing and the config part around the code.
const DEPLOY_OVERHEAD: usize = 1024 * 1024;
/// An app's upload holds each distinct code once: up to this many of the largest.
const APP_CODE_FACTOR: usize = 8;

/// The `/v1` routes. `limits` sizes the deploy body.
pub(crate) fn routes(limits: &Limits) -> Router<Arc<Engine>> {
    let deploy_limit = limits.max_code_size + DEPLOY_OVERHEAD;
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/functions", get(functions::list))
        .route(
            "/v1/apps/{app}",
            put(apps::deploy).layer(DefaultBodyLimit::max(APP_CODE_FACTOR * deploy_limit)),
        )
        .route(
            "/v1/functions/{name}",
            get(functions::get)
                .put(functions::deploy)
                .delete(functions::delete)
                .layer(DefaultBodyLimit::max(deploy_limit)),
        )
        .route("/v1/functions/{name}/invoke", post(functions::invoke))
        .route("/v1/functions/{name}/versions", get(versions::list))
        .route("/v1/functions/{name}/aliases", get(versions::aliases))
        .route(
            "/v1/functions/{name}/aliases/{alias}",
            put(versions::set_alias).delete(versions::delete_alias),
        )
        .route("/v1/functions/{name}/rollback", post(versions::rollback))
        .route("/v1/functions/{name}/disable", post(versions::disable))
        .route("/v1/functions/{name}/enable", post(versions::enable))
        .route("/v1/functions/{name}/logs", get(functions::logs))
        .route("/v1/functions/{name}/invocations", get(functions::invocations))
        .route("/v1/functions/{name}/stats", get(stats::get))
        .route(
            "/v1/functions/{name}/dlq",
            get(invocations::dead_letters).delete(invocations::purge),
        )
        .route("/v1/functions/{name}/dlq/redrive", post(invocations::redrive))
        .route("/v1/invocations/{id}", get(invocations::get))
        .merge(queues::router())
        .merge(topics::router())
        .merge(breakers::router())
        .merge(traces::router())
        .merge(buckets::router())
        .merge(kv::router())
        .merge(secrets::router())
        .merge(alarms::router())
        .route("/v1/namespaces", get(namespaces::list).post(namespaces::create))
        .route(
            "/v1/namespaces/{name}",
            get(namespaces::show)
                .patch(namespaces::update)
                .delete(namespaces::delete),
        )
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", get(keys::show).delete(keys::revoke))
        .route("/v1/audit", get(audit::list))
        .route("/v1/cluster", get(cluster))
        .route("/v1/usage", get(usage::report))
}

/// `GET /v1/health`: 200 while this node reaches its store, 503 when its heartbeats stop
/// reaching it (with NATS down, a node accepts no durable work: a load balancer should
/// send clients to another node).
async fn health(State(engine): functions::EngineState) -> axum::response::Response {
    use axum::response::IntoResponse;
    let store = engine.store_health();
    let (code, status) = if store.reachable {
        (http::StatusCode::OK, "ok")
    } else {
        (http::StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let body = serde_json::json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "node": engine.node_name(),
        "store": store,
    });
    (code, axum::Json(body)).into_response()
}

/// `GET /v1/cluster` (admin): the nodes serving the store, seen within the last day.
async fn cluster(
    State(engine): functions::EngineState,
) -> Result<axum::Json<serde_json::Value>, crate::problem::ApiError> {
    let nodes = engine.cluster().await?;
    Ok(axum::Json(serde_json::json!({
        "node": engine.node_name(),
        "nodes": nodes,
    })))
}

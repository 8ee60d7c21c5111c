//! `GET /v1/traces/{root}`: the invocations a request caused, read from the invocation
//! records alone (no collector): every record of the caller's namespace that ran under
//! trace root `root`, across functions, oldest first, each naming its parent (the
//! invocation that called it or sent what it ran for), so a client can draw the tree
//! (`wisp trace`). `docs/api.md` lists the fields.

use super::functions::EngineState;
use crate::auth::Scope;
use crate::problem::ApiError;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use wisp_core::wall::rfc3339_ms;
use wisp_engine::Engine;
use wisp_store::InvocationRecord;

/// The trace routes.
pub(super) fn router() -> Router<Arc<Engine>> {
    Router::new().route("/v1/traces/{root}", get(show))
}

/// One invocation of a trace as the API shows it.
#[derive(Serialize)]
struct TraceInvocation {
    id: String,
    function: String,
    /// The number of the version that ran it.
    version: u32,
    version_id: String,
    /// The invocation that caused it; `null` for a root of the tree.
    parent: Option<String>,
    started_at: String,
    /// When it started, in milliseconds since the Unix epoch (for drawing offsets).
    started_ms: i64,
    cold: bool,
    init_us: Option<u64>,
    queue_us: u64,
    run_us: u64,
    error: Option<String>,
}

impl From<InvocationRecord> for TraceInvocation {
    fn from(r: InvocationRecord) -> TraceInvocation {
        TraceInvocation {
            id: r.id,
            function: r.function.to_string(),
            version: r.version_number,
            version_id: r.version.to_string(),
            parent: r.parent,
            started_at: rfc3339_ms(r.started_at),
            started_ms: r.started_at,
            cold: r.cold,
            init_us: r.init_us,
            queue_us: r.queue_us,
            run_us: r.run_us,
            error: r.error,
        }
    }
}

/// `GET /v1/traces/{root}`: `400 invalid_request` for a root not of X-Ray's form,
/// `404 trace_not_found` when no record of the caller's namespace carries it.
async fn show(
    scope: Scope,
    State(engine): EngineState,
    Path(root): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let records = engine.trace(&scope.namespace, &root).await?;
    let invocations: Vec<TraceInvocation> = records.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "trace": root, "invocations": invocations })))
}

//! `GET /v1/functions/{name}/stats`: a function's counts since the server started and
//! its recent history, a point a minute over the last hour or a quarter hour over the
//! last day (`?window=day`): what the dashboard's charts draw, for scripts.

use super::functions::{EngineState, deployed, parse_name, query_params};
use crate::auth::Scope;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::{Path, Query};
use serde::{Deserialize, Serialize};
use wisp_core::ErrorCode;
use wisp_core::wall::rfc3339_ms;
use wisp_engine::history::Window;

#[derive(Deserialize)]
pub(super) struct StatsParams {
    window: Option<String>,
}

#[derive(Serialize)]
struct PointView {
    start: String,
    invocations: u64,
    errors: u64,
    throttles: u64,
    p50_seconds: Option<f64>,
    p99_seconds: Option<f64>,
}

pub(super) async fn get(
    scope: Scope,
    axum::extract::State(engine): EngineState,
    Path(name): Path<String>,
    params: Result<Query<StatsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = parse_name(&name)?;
    let Query(params) = query_params(params, "`window` (`hour` or `day`)")?;
    let window: Window = match params.window.as_deref() {
        None => Window::Hour,
        Some(text) => text
            .parse()
            .map_err(|e: String| ApiError::new(ErrorCode::InvalidRequest, e))?,
    };
    deployed(&engine, &scope.namespace, &name)?;
    let totals = engine.function_stats(&scope.namespace, &name);
    let points: Vec<PointView> = engine
        .function_history(&scope.namespace, &name, window)
        .into_iter()
        .map(|p| PointView {
            start: rfc3339_ms(p.start_ms),
            invocations: p.invocations,
            errors: p.errors,
            throttles: p.throttles,
            p50_seconds: p.p50_seconds,
            p99_seconds: p.p99_seconds,
        })
        .collect();
    Ok(Json(serde_json::json!({
        "function": name,
        "totals": {
            "invocations": totals.invocations,
            "errors": totals.errors,
            "throttles": totals.throttles,
            "cold_starts": totals.cold_starts,
            "p50_seconds": totals.p50_seconds,
            "p99_seconds": totals.p99_seconds,
        },
        "window": window.as_str(),
        "step_seconds": window.step_ms() / 1000,
        "points": points,
    })))
}

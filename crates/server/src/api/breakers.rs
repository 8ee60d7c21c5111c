//! `/v1/breakers`: the circuit breakers whose caller is in the caller's namespace
//! (function → function, function → destination, topic → subscriber), each with its
//! state and the calls its window holds. Read-only: breakers are made on first use and
//! move by themselves. `docs/api.md` lists the fields.

use super::functions::EngineState;
use crate::auth::Scope;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;
use wisp_core::wall::rfc3339_ms;
use wisp_engine::Engine;
use wisp_engine::breaker::{BreakerKey, BreakerView};

/// The breaker routes.
pub(super) fn router() -> Router<Arc<Engine>> {
    Router::new().route("/v1/breakers", get(list))
}

/// A breaker as the API shows it: its pair, state and window, times as RFC 3339.
fn breaker_view(key: &BreakerKey, view: &BreakerView) -> Value {
    json!({
        "caller": key.caller,
        "callee": key.callee,
        "state": view.state,
        "calls": view.calls,
        "failures": view.failures,
        "opened_at": view.opened_at.map(rfc3339_ms),
        "half_open_at": view.half_open_at.map(rfc3339_ms),
        "probes_in_flight": view.probes_in_flight,
        "last_transition": view.last_transition.map(|t| json!({
            "from": t.from,
            "to": t.to,
            "at": rfc3339_ms(t.at),
        })),
        "transitions": view.transitions,
        "config": view.config,
    })
}

async fn list(scope: Scope, State(engine): EngineState) -> Json<Value> {
    let breakers: Vec<Value> = engine
        .breakers(&scope.namespace)
        .iter()
        .map(|(key, view)| breaker_view(key, view))
        .collect();
    Json(json!({ "breakers": breakers }))
}

//! `/v1/alarms`: a namespace's alarms — put a rule (`[alarms.NAME]`'s keys as JSON),
//! list them with their state, show one with its history, delete one.
//! `docs/alarms.md` is the reference.

use super::functions::EngineState;
use super::json::{read_fields, read_json};
use crate::auth::Scope;
use crate::problem::ApiError;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;
use wisp_core::wall::rfc3339_ms;
use wisp_core::{AlarmName, AlarmSpec, ErrorCode};
use wisp_engine::Engine;
use wisp_store::{AlarmPut, AlarmRecord};

/// What a put takes, for errors.
const TAKES: &str = "an alarm rule: {\"metric\": \"error_rate\", \"function\": \"api\", \"threshold\": 0.05, …} (see docs/alarms.md)";

/// The alarm routes.
pub(super) fn router() -> Router<Arc<Engine>> {
    Router::new()
        .route("/v1/alarms", get(list))
        .route("/v1/alarms/{name}", get(show).put(put).delete(delete))
}

fn parse_name(name: &str) -> Result<AlarmName, ApiError> {
    AlarmName::new(name).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.to_string()))
}

/// An alarm as the API shows it, without its history: its record, and its latest
/// judgement when the engine has one.
fn view(engine: &Engine, record: &AlarmRecord) -> Value {
    let mut view = json!({
        "name": record.name.as_str(),
        "namespace": record.namespace.as_str(),
        "state": record.state,
        "reason": record.reason,
        "state_since": rfc3339_ms(record.state_since_ms),
        "condition": record.spec.condition(),
        "spec": record.spec,
        "created_at": rfc3339_ms(record.created_ms),
        "updated_at": rfc3339_ms(record.updated_ms),
        "transitions": record.transitions,
    });
    if let Some(judged) = engine.alarm_judged(&record.namespace, &record.name) {
        view["judged"] = json!({
            "at": rfc3339_ms(judged.at_ms),
            "value": judged.value,
            "state": judged.state,
            "reason": judged.reason,
        });
    }
    view
}

async fn list(scope: Scope, State(engine): EngineState) -> Result<Json<Value>, ApiError> {
    let alarms: Vec<Value> = engine
        .alarms(&scope.namespace)
        .await?
        .iter()
        .map(|r| view(&engine, r))
        .collect();
    Ok(Json(json!({ "alarms": alarms })))
}

async fn show(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = parse_name(&name)?;
    let record = engine.alarm(&scope.namespace, &name).await?;
    let history: Vec<Value> = record
        .history
        .iter()
        .rev()
        .map(|t| {
            json!({
                "seq": t.seq,
                "at": rfc3339_ms(t.at_ms),
                "from": t.from,
                "to": t.to,
                "reason": t.reason,
                "value": t.value,
                "action_errors": t.action_errors,
            })
        })
        .collect();
    let mut shown = view(&engine, &record);
    shown["history"] = json!(history);
    shown["notified"] = json!(record.notified);
    Ok(Json(shown))
}

async fn put(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let name = parse_name(&name)?;
    let Some(value) = read_json(&engine, body, TAKES).await? else {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the request has no body: send {TAKES}"),
        ));
    };
    let spec: AlarmSpec = read_fields(value, TAKES)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("invalid alarm rule: {e}")))?;
    let put = engine.put_alarm(&scope.namespace, &name, &spec).await?;
    let (status, text, action) = match &put {
        AlarmPut::Created(_) => (StatusCode::CREATED, "created", Some("alarm.create")),
        AlarmPut::Updated(_) => (StatusCode::OK, "updated", Some("alarm.update")),
        AlarmPut::Unchanged(_) => (StatusCode::OK, "unchanged", None),
    };
    if let Some(action) = action {
        scope.audit(&engine, action, name.as_str(), None).await;
    }
    Ok((
        status,
        Json(json!({ "status": text, "alarm": view(&engine, put.record()) })),
    )
        .into_response())
}

async fn delete(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = parse_name(&name)?;
    engine.delete_alarm(&scope.namespace, &name).await?;
    scope.audit(&engine, "alarm.delete", name.as_str(), None).await;
    Ok(StatusCode::NO_CONTENT)
}

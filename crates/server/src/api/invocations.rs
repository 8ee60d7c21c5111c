//! Async invocations: `GET /v1/invocations/{id}` (status, attempts, result) and a
//! function's dead letters under `/v1/functions/{name}/dlq`.

use super::functions::{EngineState, parse_name};
use crate::auth::Scope;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::{Path, Query, State};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wisp_core::ErrorCode;
use wisp_core::wall::rfc3339_ms;
use wisp_store::{EventRecord, EventStatus, Failure};

/// An async invocation as the API shows it.
#[derive(Serialize)]
pub struct EventView {
    id: String,
    function: String,
    /// `queued`, `running`, `succeeded` or `failed` (a dead letter).
    status: &'static str,
    attempts: u32,
    source: String,
    /// The version or alias it runs; absent: `live`.
    #[serde(skip_serializing_if = "Option::is_none")]
    qualifier: Option<String>,
    chain_depth: u32,
    /// The trace root its invocation runs in; absent: it starts its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<String>,
    /// The invocation that caused it (an async call's caller, the run whose
    /// destination it is, a message's sender); absent: none did.
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
    created_at: String,
    /// When it first started to run.
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    /// From acceptance to the first start, in milliseconds (microsecond precision).
    #[serde(skip_serializing_if = "Option::is_none")]
    start_delay_ms: Option<f64>,
    updated_at: String,
    /// When a pending event runs next.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    /// How long its namespace's quota held it back (not counted in its age).
    #[serde(skip_serializing_if = "is_zero")]
    held_ms: u64,
    /// Why a dead letter failed for good.
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<Failure>,
    /// The event as sent (JSON when it is JSON, else text; `payload_base64` when not UTF-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
    /// What the function answered (or its error document), likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_base64: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// JSON as it is, UTF-8 text as a string, anything else base64.
fn shown(bytes: &[u8]) -> (Option<Value>, Option<String>) {
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        return (Some(value), None);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => (Some(Value::String(text.to_string())), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
    }
}

impl EventView {
    pub fn new(event: &EventRecord, with_payload: bool) -> EventView {
        let status = match (event.status, event.leased_until) {
            (EventStatus::Pending, Some(_)) => "running",
            (EventStatus::Pending, None) => "queued",
            (EventStatus::Succeeded, _) => "succeeded",
            (EventStatus::Failed, _) => "failed",
        };
        let (payload, payload_base64) = if with_payload {
            shown(&event.payload)
        } else {
            (None, None)
        };
        let (result, result_base64) = event.result.as_deref().map(shown).unwrap_or_default();
        EventView {
            id: event.id.clone(),
            function: event.function.to_string(),
            status,
            attempts: event.attempts,
            source: event.source.clone(),
            qualifier: event.qualifier.as_ref().map(ToString::to_string),
            chain_depth: event.chain_depth,
            trace: event.trace.clone(),
            parent: event.parent.clone(),
            idempotency_key: event.idempotency_key.clone(),
            created_at: rfc3339_ms(event.created_us / 1000),
            started_at: event.first_run_us.map(|us| rfc3339_ms(us / 1000)),
            start_delay_ms: event
                .first_run_us
                .map(|us| (us - event.created_us).max(0) as f64 / 1000.0),
            updated_at: rfc3339_ms(event.updated_at),
            next_attempt_at: (event.status == EventStatus::Pending && event.leased_until.is_none())
                .then(|| rfc3339_ms(event.run_at)),
            last_error: event.last_error.clone(),
            held_ms: event.held_ms,
            failure: event.failure,
            payload,
            payload_base64,
            result,
            result_base64,
        }
    }
}

pub(super) async fn get(
    scope: Scope,
    State(engine): EngineState,
    Path(id): Path<String>,
) -> Result<Json<EventView>, ApiError> {
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("`{id}` is not an invocation id"),
        ));
    }
    let event = engine.event(&scope.namespace, &id).await?;
    Ok(Json(EventView::new(&event, true)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DlqParams {
    limit: Option<usize>,
}

/// Most dead letters one listing shows.
const DLQ_LIST_MAX: usize = 1000;

pub(super) async fn dead_letters(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    params: Result<Query<DlqParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let name = parse_name(&name)?;
    let Query(params) = super::functions::query_params(params, "`limit` (a number)")?;
    let limit = super::functions::limit_param(params.limit, DLQ_LIST_MAX)?;
    let events = engine
        .events_of(&scope.namespace, &name, EventStatus::Failed, limit)
        .await?;
    let counts = engine.event_counts(&scope.namespace, &name).await?;
    let views: Vec<EventView> = events.iter().map(|e| EventView::new(e, true)).collect();
    Ok(Json(
        serde_json::json!({ "dead_letters": views, "counts": counts }),
    ))
}

/// Which dead letters a redrive or purge takes: all, or the listed ids.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Selection {
    ids: Option<Vec<String>>,
}

fn selection(body: Option<Json<Selection>>) -> Result<Option<Vec<String>>, ApiError> {
    let ids = body.and_then(|Json(s)| s.ids);
    if let Some(ids) = &ids
        && ids.is_empty()
    {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "`ids` is empty: leave it out to take every dead letter",
        ));
    }
    Ok(ids)
}

pub(super) async fn redrive(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    body: Option<Json<Selection>>,
) -> Result<Json<Value>, ApiError> {
    let name = parse_name(&name)?;
    let ids = selection(body)?;
    let redriven = engine.redrive(&scope.namespace, &name, ids.as_deref()).await?;
    Ok(Json(
        serde_json::json!({ "redriven": redriven.len(), "ids": redriven }),
    ))
}

pub(super) async fn purge(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    body: Option<Json<Selection>>,
) -> Result<Json<Value>, ApiError> {
    let name = parse_name(&name)?;
    let ids = selection(body)?;
    let purged = engine.purge(&scope.namespace, &name, ids.as_deref()).await?;
    Ok(Json(serde_json::json!({ "purged": purged })))
}

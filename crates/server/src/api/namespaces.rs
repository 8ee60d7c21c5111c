//! `/v1/namespaces`: the tenants (admin keys only): create, list, show, change
//! settings, delete (with `?force=true`, everything in it).

use super::functions::EngineState;
use super::json::{read_fields, read_json};
use crate::auth::Scope;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use wisp_core::billing::{Limit, Money, Prices, Quota, gb_seconds_text, month_of};
use wisp_core::wall::{now_ms, rfc3339_ms, rfc3339_s};
use wisp_core::{ErrorCode, Namespace};
use wisp_engine::Engine;
use wisp_store::{NamespaceRecord, NamespaceSettings};

/// A namespace as the API shows it.
#[derive(Serialize)]
pub struct NamespaceView {
    name: String,
    /// Its cap on concurrent invocations, and whether it is its own or the server's.
    max_concurrency: u32,
    max_concurrency_is_default: bool,
    functions: usize,
    created_at: String,
    /// Its limits per month, as set.
    quota: Quota,
    /// Its free tier and prices in force (its own over the server's).
    free_tier: FreeTierView,
    prices: Prices,
    /// This month's usage as admission counts it, and the limit stopping work, if any.
    month: MonthView,
}

#[derive(Serialize)]
struct FreeTierView {
    requests: u64,
    gb_seconds: u64,
}

#[derive(Serialize)]
struct MonthView {
    from: String,
    to: String,
    requests: u64,
    gb_seconds: String,
    reserved_gb_seconds: String,
    capacity_gb_seconds: String,
    /// The cost past the free tier at the namespace's prices.
    cost: Money,
    /// `requests`, `gb_seconds` or `budget` when that limit stops work; else null.
    stopped_by: Option<Limit>,
}

impl NamespaceView {
    fn new(engine: &Engine, record: &NamespaceRecord) -> NamespaceView {
        let plan = engine.plan(&record.name);
        let (used, stopped_by) = engine.month_usage(&record.name);
        let (from, to) = month_of(now_ms());
        NamespaceView {
            name: record.name.to_string(),
            max_concurrency: record
                .settings
                .max_concurrency
                .unwrap_or(engine.limits().namespace_max_concurrency),
            max_concurrency_is_default: record.settings.max_concurrency.is_none(),
            functions: engine.functions(&record.name).len(),
            created_at: rfc3339_ms(record.created_at),
            quota: plan.quota,
            free_tier: FreeTierView {
                requests: plan.free_requests,
                gb_seconds: plan.free_gb_seconds,
            },
            prices: plan.prices,
            month: MonthView {
                from: rfc3339_s(from),
                to: rfc3339_s(to),
                requests: used.requests,
                gb_seconds: gb_seconds_text(used.mb_ms),
                reserved_gb_seconds: gb_seconds_text(used.reserved_mb_ms),
                capacity_gb_seconds: gb_seconds_text(used.capacity_mb_ms),
                cost: plan.cost(used),
                stopped_by,
            },
        }
    }
}

/// The settings a body may set, and how: a JSON merge patch (RFC 7396) of the
/// namespace's settings, `null` putting a setting back to its default.
const SETTINGS_TAKE: &str = "max_concurrency (1 to 10000), quota {requests, gb_seconds, budget, warn_percent, storage_bytes}, \
     free_tier {requests, gb_seconds}, prices {per_million_requests, per_gb_second, \
     per_reserved_gb_second, per_reserved_duration_gb_second}; \
     amounts of dollars as strings (\"10.50\"); null puts a setting back to its default";

/// Applies `patch` (a JSON merge patch) to `settings`: the settings it gives replace
/// the ones there, a `null` removes one (back to the default). A patch that does not
/// read is answered with `code` (the values' bounds are the engine's to check).
fn patch_settings(
    settings: &NamespaceSettings,
    patch: Map<String, Value>,
    code: ErrorCode,
) -> Result<NamespaceSettings, ApiError> {
    let invalid = |detail: String| ApiError::new(code, detail);
    for key in patch.keys() {
        if !["max_concurrency", "quota", "free_tier", "prices"].contains(&key.as_str()) {
            return Err(invalid(format!(
                "unknown setting `{key}`; settings: {SETTINGS_TAKE}"
            )));
        }
    }
    let mut merged = serde_json::to_value(settings).map_err(|e| invalid(e.to_string()))?;
    merge(&mut merged, Value::Object(patch.clone()));
    read_fields(merged, SETTINGS_TAKE).map_err(invalid)
}

/// RFC 7396: objects merge key by key, `null` removes, anything else replaces.
fn merge(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(&key);
            } else {
                merge(map.entry(key).or_insert(Value::Null), value);
            }
        }
    }
}

fn parse_namespace(name: &str) -> Result<Namespace, ApiError> {
    Namespace::new(name).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.to_string()))
}

pub(super) async fn list(State(engine): EngineState) -> Json<Value> {
    let list: Vec<NamespaceView> = engine
        .namespaces()
        .iter()
        .map(|r| NamespaceView::new(&engine, r))
        .collect();
    Json(json!({ "namespaces": list }))
}

pub(super) async fn show(
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<Json<NamespaceView>, ApiError> {
    let name = parse_namespace(&name)?;
    Ok(Json(NamespaceView::new(&engine, &engine.namespace(&name)?)))
}

const CREATE_TAKES: &str = "{\"name\": \"team-a\", \"max_concurrency\": 100, \"quota\": {\"requests\": 1000000}} (every setting optional)";

/// The body as an object, or `invalid_request` saying what to send.
fn object(value: Option<Value>, takes: &str) -> Result<Map<String, Value>, ApiError> {
    match value {
        Some(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("send a JSON object: {takes}"),
        )),
    }
}

pub(super) async fn create(
    scope: Scope,
    State(engine): EngineState,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let mut input = object(read_json(&engine, body, CREATE_TAKES).await?, CREATE_TAKES)?;
    let name = match input.remove("name") {
        Some(Value::String(name)) => parse_namespace(&name)?,
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("`name` must be a string: {CREATE_TAKES}"),
            ));
        }
    };
    let settings = patch_settings(&NamespaceSettings::default(), input, ErrorCode::InvalidRequest)?;
    let record = engine.create_namespace(&name, &settings).await?;
    scope
        .audit_in(&engine, &name, "namespace.create", name.as_str(), None)
        .await;
    Ok((StatusCode::CREATED, Json(NamespaceView::new(&engine, &record))).into_response())
}

const UPDATE_TAKES: &str =
    "a JSON merge patch of the settings, e.g. {\"quota\": {\"requests\": 1000000, \"budget\": \"25.00\"}}";

pub(super) async fn update(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Result<Json<NamespaceView>, ApiError> {
    let name = parse_namespace(&name)?;
    let patch = object(read_json(&engine, body, UPDATE_TAKES).await?, UPDATE_TAKES)?;
    // Checked once against the current settings, so a bad patch is answered here.
    patch_settings(
        &engine.namespace(&name)?.settings,
        patch.clone(),
        ErrorCode::InvalidConfig,
    )?;
    let record = engine
        .update_namespace(&name, |settings| {
            if let Ok(patched) = patch_settings(settings, patch.clone(), ErrorCode::InvalidConfig) {
                *settings = patched;
            }
        })
        .await?;
    let detail = Value::Object(patch).to_string();
    scope
        .audit_in(&engine, &name, "namespace.update", name.as_str(), Some(detail))
        .await;
    Ok(Json(NamespaceView::new(&engine, &record)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeleteParams {
    #[serde(default)]
    force: bool,
}

pub(super) async fn delete(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    params: Result<Query<DeleteParams>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let name = parse_namespace(&name)?;
    let Query(params) = params.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("bad query: {}; the one parameter is `force=true`", e.body_text()),
        )
    })?;
    engine.delete_namespace(&name, params.force).await?;
    let detail = params
        .force
        .then(|| "forced: everything in it deleted".to_owned());
    scope
        .audit_in(&engine, &name, "namespace.delete", name.as_str(), detail)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

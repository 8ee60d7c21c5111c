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
use serde_json::{Value, json};
use wisp_core::wall::rfc3339_ms;
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
}

impl NamespaceView {
    fn new(engine: &Engine, record: &NamespaceRecord) -> NamespaceView {
        NamespaceView {
            name: record.name.to_string(),
            max_concurrency: record
                .settings
                .max_concurrency
                .unwrap_or(engine.limits().namespace_max_concurrency),
            max_concurrency_is_default: record.settings.max_concurrency.is_none(),
            functions: engine.functions(&record.name).len(),
            created_at: rfc3339_ms(record.created_at),
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

const CREATE_TAKES: &str = "{\"name\": \"team-a\", \"max_concurrency\": 100} (max_concurrency optional)";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateIn {
    name: String,
    #[serde(default)]
    max_concurrency: Option<u32>,
}

pub(super) async fn create(
    scope: Scope,
    State(engine): EngineState,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let value = read_json(&engine, body, CREATE_TAKES).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("send a JSON body: {CREATE_TAKES}"),
        )
    })?;
    let input: CreateIn =
        read_fields(value, CREATE_TAKES).map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e))?;
    let name = parse_namespace(&input.name)?;
    let settings = NamespaceSettings {
        max_concurrency: input.max_concurrency,
    };
    let record = engine.create_namespace(&name, &settings).await?;
    scope
        .audit_in(&engine, &name, "namespace.create", name.as_str(), None)
        .await;
    Ok((StatusCode::CREATED, Json(NamespaceView::new(&engine, &record))).into_response())
}

const UPDATE_TAKES: &str = "{\"max_concurrency\": 100} (null: back to the server's default)";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateIn {
    /// Absent: unchanged; `null`: the server's default.
    #[serde(default, deserialize_with = "present")]
    max_concurrency: Option<Option<u32>>,
}

/// Reads a field that is present (possibly `null`) as `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

pub(super) async fn update(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Result<Json<NamespaceView>, ApiError> {
    let name = parse_namespace(&name)?;
    let value = read_json(&engine, body, UPDATE_TAKES).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("send a JSON body: {UPDATE_TAKES}"),
        )
    })?;
    let input: UpdateIn =
        read_fields(value, UPDATE_TAKES).map_err(|e| ApiError::new(ErrorCode::InvalidConfig, e))?;
    let record = engine
        .update_namespace(&name, |settings| {
            if let Some(cap) = input.max_concurrency {
                settings.max_concurrency = cap;
            }
        })
        .await?;
    let detail = record.settings.max_concurrency.map_or_else(
        || "max_concurrency default".to_owned(),
        |n| format!("max_concurrency {n}"),
    );
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

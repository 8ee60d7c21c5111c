//! `/v1/keys`: API keys (admin keys only): create (the secret is in that answer and
//! nowhere else, ever), list, show, revoke.

use super::functions::EngineState;
use super::json::{read_fields, read_json};
use crate::auth::Scope;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wisp_core::wall::{now_ms, rfc3339_ms};
use wisp_core::{ErrorCode, Namespace, Role};
use wisp_store::ApiKeyRecord;

/// A key as the API shows it: never its secret.
#[derive(Serialize)]
pub struct KeyView {
    id: String,
    namespace: String,
    role: Role,
    name: Option<String>,
    /// `active`, `revoked` or `expired`.
    status: &'static str,
    created_at: String,
    created_by: Option<String>,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    last_used_at: Option<String>,
}

impl KeyView {
    fn new(record: &ApiKeyRecord) -> KeyView {
        let status = if record.revoked_at.is_some() {
            "revoked"
        } else if record.expires_at.is_some_and(|at| at <= now_ms()) {
            "expired"
        } else {
            "active"
        };
        KeyView {
            id: record.id.clone(),
            namespace: record.namespace.to_string(),
            role: record.role,
            name: record.name.clone(),
            status,
            created_at: rfc3339_ms(record.created_at),
            created_by: record.created_by.clone(),
            expires_at: record.expires_at.map(rfc3339_ms),
            revoked_at: record.revoked_at.map(rfc3339_ms),
            last_used_at: record.last_used_at.map(rfc3339_ms),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    namespace: Option<String>,
}

pub(super) async fn list(
    State(engine): EngineState,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("bad query: {}; the one parameter is `namespace`", e.body_text()),
        )
    })?;
    let namespace = params
        .namespace
        .map(|n| Namespace::new(&n).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.to_string())))
        .transpose()?;
    let keys = engine.keys(namespace.as_ref()).await?;
    let list: Vec<KeyView> = keys.iter().map(KeyView::new).collect();
    Ok(Json(json!({ "keys": list })))
}

pub(super) async fn show(
    State(engine): EngineState,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    Ok(Json(KeyView::new(&engine.key(&id).await?)))
}

const CREATE_TAKES: &str = "{\"namespace\": \"default\", \"role\": \"admin|deploy|invoke|read\", \"name\": \"ci\", \"expires_in\": \"30d\"} (namespace defaults to the caller's; name and expires_in optional)";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateIn {
    #[serde(default)]
    namespace: Option<String>,
    role: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    expires_in: Option<String>,
}

pub(super) async fn create(
    scope: Scope,
    State(engine): EngineState,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let bad = |e: String| ApiError::new(ErrorCode::InvalidRequest, e);
    let value = read_json(&engine, body, CREATE_TAKES)
        .await?
        .ok_or_else(|| bad(format!("send a JSON body: {CREATE_TAKES}")))?;
    let input: CreateIn = read_fields(value, CREATE_TAKES).map_err(bad)?;
    let role = Role::parse(&input.role).map_err(|e| bad(format!("role: {e}")))?;
    let namespace = match input.namespace {
        None => scope.namespace.clone(),
        Some(n) => Namespace::new(&n).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.to_string()))?,
    };
    let expires_at = match input.expires_in.as_deref() {
        None => None,
        Some(text) => {
            let after = wisp_core::duration_text::parse(text).map_err(|e| bad(format!("expires_in: {e}")))?;
            let millis = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
            Some(now_ms().saturating_add(millis))
        }
    };
    let key = engine
        .create_key(
            Some(&scope.caller),
            &namespace,
            role,
            input.name,
            expires_at,
            None,
        )
        .await?;
    scope
        .audit_in(
            &engine,
            &namespace,
            "key.create",
            &key.record.id,
            Some(format!("role {role}")),
        )
        .await;
    let mut view = serde_json::to_value(KeyView::new(&key.record)).unwrap_or_default();
    view["secret"] = json!(key.secret);
    view["token"] = json!(key.token);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub(super) async fn revoke(
    scope: Scope,
    State(engine): EngineState,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    let before = engine.key(&id).await?;
    let record = engine.revoke_key(&id).await?;
    if before.revoked_at.is_none() {
        scope
            .audit_in(&engine, &record.namespace, "key.revoke", &record.id, None)
            .await;
    }
    Ok(Json(KeyView::new(&record)))
}

//! A function's versions and aliases: `/v1/functions/{name}/versions`,
//! `/v1/functions/{name}/aliases[/{alias}]`, and the lifecycle actions `rollback`,
//! `disable` and `enable`.

use super::functions::{EngineState, FunctionView, deployed, parse_name};
use super::json::read_json;
use crate::auth::Scope;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use wisp_core::wall::rfc3339_ms;
use wisp_core::{AliasName, AliasTarget, ErrorCode};
use wisp_engine::{PoolStatus, Version};

/// A version as the API shows it.
#[derive(Serialize)]
struct VersionView {
    version: u32,
    version_id: String,
    code_hash: String,
    code_size: u64,
    kind: wisp_core::Kind,
    memory_mb: u32,
    created_at: String,
    /// The aliases pointing at it.
    aliases: Vec<String>,
    #[serde(flatten)]
    status: PoolStatus,
}

impl VersionView {
    fn of(version: &Version, aliases: Vec<String>) -> VersionView {
        let record = &version.record;
        VersionView {
            version: record.number,
            version_id: record.id.to_string(),
            code_hash: record.code_hash.clone(),
            code_size: record.code_size,
            kind: record.config.kind,
            memory_mb: record.config.memory_mb,
            created_at: rfc3339_ms(record.created_at),
            aliases,
            status: version.status(),
        }
    }
}

/// `GET /v1/functions/{name}/versions`: the versions kept, newest first.
pub(super) async fn list(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = parse_name(&name)?;
    let deployed = deployed(&engine, &scope.namespace, &name)?;
    let versions: Vec<VersionView> = deployed
        .versions()
        .rev()
        .map(|v| {
            let aliases = deployed
                .record
                .aliases_of(v.record.number)
                .map(|a| a.to_string())
                .collect();
            VersionView::of(v, aliases)
        })
        .collect();
    Ok(Json(serde_json::json!({ "versions": versions })))
}

fn parse_alias(alias: &str) -> Result<AliasName, ApiError> {
    AliasName::new(alias).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.to_string()))
}

/// `GET /v1/functions/{name}/aliases`: each alias and where it points.
pub(super) async fn aliases(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = parse_name(&name)?;
    let deployed = deployed(&engine, &scope.namespace, &name)?;
    let aliases: Vec<serde_json::Value> = deployed
        .record
        .aliases
        .iter()
        .map(|(alias, target)| alias_json(alias, target))
        .collect();
    Ok(Json(serde_json::json!({ "aliases": aliases })))
}

fn alias_json(alias: &AliasName, target: &AliasTarget) -> serde_json::Value {
    let mut value = serde_json::json!({ "name": alias.as_str() });
    if let (Some(map), Ok(serde_json::Value::Object(target))) =
        (value.as_object_mut(), serde_json::to_value(target))
    {
        map.extend(target);
    }
    value
}

const ALIAS_BODY: &str = "`{\"version\": N}`, or `{\"version\": N, \"additional\": {\"version\": M, \"weight\": 0.1}}` \
                          to send a share of the traffic to version M";

/// `PUT /v1/functions/{name}/aliases/{alias}`: creates or moves an alias.
pub(super) async fn set_alias(
    scope: Scope,
    State(engine): EngineState,
    Path((name, alias)): Path<(String, String)>,
    body: axum::body::Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = parse_name(&name)?;
    let alias = parse_alias(&alias)?;
    let body = read_json(&engine, body, ALIAS_BODY).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the request has no body; send {ALIAS_BODY}"),
        )
    })?;
    let target: AliasTarget = serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the alias is not valid: {e}; send {ALIAS_BODY}"),
        )
    })?;
    let record = engine
        .set_alias(&scope.namespace, &name, &alias, target.clone())
        .await?;
    let detail = format!("{alias} → {target}");
    scope
        .audit(&engine, "function.alias", name.as_str(), Some(detail))
        .await;
    Ok(Json(serde_json::json!({
        "alias": alias_json(&alias, &target),
        "function": FunctionView::new(&record, None),
    })))
}

/// `DELETE /v1/functions/{name}/aliases/{alias}`.
pub(super) async fn delete_alias(
    scope: Scope,
    State(engine): EngineState,
    Path((name, alias)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let name = parse_name(&name)?;
    let alias = parse_alias(&alias)?;
    engine.delete_alias(&scope.namespace, &name, &alias).await?;
    let detail = format!("{alias} deleted");
    scope
        .audit(&engine, "function.alias", name.as_str(), Some(detail))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    to: Option<u32>,
}

/// `POST /v1/functions/{name}/rollback`: moves `live` back (`{"to": N}` names where).
pub(super) async fn rollback(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Result<Json<FunctionView>, ApiError> {
    let name = parse_name(&name)?;
    let takes = "no body, or `{\"to\": N}` to name the version";
    let to = match read_json(&engine, body, takes).await? {
        None => None,
        Some(value) => {
            serde_json::from_value::<RollbackBody>(value)
                .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("{e}; send {takes}")))?
                .to
        }
    };
    let before = deployed(&engine, &scope.namespace, &name)?.record.live().clone();
    let record = engine.rollback(&scope.namespace, &name, to).await?;
    let detail = format!("live {before} → {}", record.live());
    scope
        .audit(&engine, "function.rollback", name.as_str(), Some(detail))
        .await;
    Ok(Json(FunctionView::new(&record, None)))
}

/// `POST /v1/functions/{name}/disable`.
pub(super) async fn disable(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<Json<FunctionView>, ApiError> {
    set_disabled(scope, engine, name, true).await
}

/// `POST /v1/functions/{name}/enable`.
pub(super) async fn enable(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<Json<FunctionView>, ApiError> {
    set_disabled(scope, engine, name, false).await
}

async fn set_disabled(
    scope: Scope,
    engine: std::sync::Arc<wisp_engine::Engine>,
    name: String,
    disabled: bool,
) -> Result<Json<FunctionView>, ApiError> {
    let name = parse_name(&name)?;
    let record = engine.set_disabled(&scope.namespace, &name, disabled).await?;
    let action = if disabled {
        "function.disable"
    } else {
        "function.enable"
    };
    scope.audit(&engine, action, name.as_str(), None).await;
    Ok(Json(FunctionView::new(&record, None)))
}

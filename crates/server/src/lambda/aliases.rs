//! Lambda's alias operations over Wisp's aliases ([`Engine::set_alias`]):
//! `CreateAlias`, `UpdateAlias`, `GetAlias`, `ListAliases` and `DeleteAlias`.
//!
//! A Wisp alias points at one version, or at two with a weight
//! ([`wisp_core::AliasTarget`]): Lambda's `RoutingConfig` with one entry in
//! `AdditionalVersionWeights`. `live` is one of them, listed with the rest; moving it
//! changes what the function's routes and unqualified invocations run.

use super::shapes::{
    self, AliasConfiguration, ListParams, RoutingConfig, alias_not_found, answer, engine_error, listed,
    no_content, query,
};
use super::{LambdaError, Target, resolve};
use crate::auth::Scope;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use std::sync::Arc;
use wisp_core::{AliasName, AliasTarget, FunctionName};
use wisp_engine::{Deployed, Engine};

type EngineState = State<Arc<Engine>>;

/// The function a path names (no qualifier), deployed.
fn function(
    engine: &Engine,
    scope: &Scope,
    raw: &str,
) -> Result<(Target, FunctionName, Arc<Deployed>), LambdaError> {
    let (target, name, qualifier) = resolve(raw, None)?;
    if let Some(q) = qualifier {
        return Err(LambdaError::invalid(format!(
            "aliases belong to the function: drop the qualifier `{q}`"
        )));
    }
    let deployed = engine
        .function(&scope.namespace, &name)
        .ok_or_else(|| LambdaError::not_found(&target))?;
    Ok((target, name, deployed))
}

fn alias_name(text: &str) -> Result<AliasName, LambdaError> {
    AliasName::new(text).map_err(|e| LambdaError::invalid(format!("{e} (Wisp alias names are DNS labels)")))
}

/// The function's target qualified with an alias: what the alias's errors name.
fn aliased(target: &Target, alias: &AliasName) -> Target {
    Target {
        qualifier: Some(alias.to_string()),
        ..target.clone()
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct AliasBody {
    name: Option<String>,
    function_version: Option<String>,
    routing_config: Option<RoutingConfig>,
    revision_id: Option<String>,
}

/// Points `alias` at `target` and records it in the audit trail; answers the alias.
async fn set(
    scope: &Scope,
    engine: &Engine,
    function: &Target,
    name: &FunctionName,
    record: &wisp_store::FunctionRecord,
    alias: &AliasName,
    target: AliasTarget,
) -> Result<AliasConfiguration, LambdaError> {
    if let Some(missing) = shapes::missing_version(record, &target, function) {
        return Err(missing);
    }
    let record = engine
        .set_alias(&scope.namespace, name, alias, target.clone())
        .await
        .map_err(|e| engine_error(e, &aliased(function, alias)))?;
    scope
        .audit(
            engine,
            "function.alias",
            name.as_str(),
            Some(format!("{alias} → {target} through the Lambda API")),
        )
        .await;
    Ok(AliasConfiguration::of(&record, alias, &target))
}

/// `POST /2015-03-31/functions/{name}/aliases`: `CreateAlias`.
pub(super) async fn create(
    scope: Scope,
    State(engine): EngineState,
    Path(raw): Path<String>,
    body: axum::body::Body,
) -> Result<Response, LambdaError> {
    let body: AliasBody = shapes::read_body(body, engine.limits().max_request_body, "CreateAlias").await?;
    let (target, name, deployed) = function(&engine, &scope, &raw)?;
    let alias = alias_name(
        body.name
            .as_deref()
            .ok_or_else(|| LambdaError::invalid("Name is required"))?,
    )?;
    let version = body
        .function_version
        .as_deref()
        .ok_or_else(|| LambdaError::invalid("FunctionVersion is required"))?;
    let record = &deployed.record;
    if record.aliases.contains_key(&alias) {
        return Err(shapes::conflict(format!(
            "Alias already exists: {}",
            aliased(&target, &alias).arn()
        )));
    }
    let weights = body.routing_config.unwrap_or_default().additional_version_weights;
    let alias_target = shapes::alias_target(record, version, &weights)?;
    let configuration = set(&scope, &engine, &target, &name, record, &alias, alias_target).await?;
    Ok(answer(StatusCode::CREATED, configuration))
}

/// `PUT /2015-03-31/functions/{name}/aliases/{alias}`: `UpdateAlias`. What the
/// request leaves out stays: the version, and the routing unless `RoutingConfig`
/// is given (an empty one ends the split).
pub(super) async fn update(
    scope: Scope,
    State(engine): EngineState,
    Path((raw, alias)): Path<(String, String)>,
    body: axum::body::Body,
) -> Result<Response, LambdaError> {
    let body: AliasBody = shapes::read_body(body, engine.limits().max_request_body, "UpdateAlias").await?;
    let (target, name, deployed) = function(&engine, &scope, &raw)?;
    let alias = alias_name(&alias)?;
    let record = &deployed.record;
    let current = record
        .aliases
        .get(&alias)
        .ok_or_else(|| alias_not_found(&aliased(&target, &alias)))?;
    shapes::check_revision(record, body.revision_id.as_deref())?;
    let version = body
        .function_version
        .unwrap_or_else(|| current.version.to_string());
    let mut alias_target = shapes::alias_target(record, &version, &Default::default())?;
    alias_target.additional = match body.routing_config {
        Some(routing) => {
            shapes::alias_target(record, &version, &routing.additional_version_weights)?.additional
        }
        None => current.additional.filter(|a| a.version != alias_target.version),
    };
    let configuration = set(&scope, &engine, &target, &name, record, &alias, alias_target).await?;
    Ok(answer(StatusCode::OK, configuration))
}

/// `GET /2015-03-31/functions/{name}/aliases/{alias}`: `GetAlias`.
pub(super) async fn get(
    scope: Scope,
    State(engine): EngineState,
    Path((raw, alias)): Path<(String, String)>,
) -> Result<Response, LambdaError> {
    let (target, _, deployed) = function(&engine, &scope, &raw)?;
    let alias = alias_name(&alias)?;
    let record = &deployed.record;
    let alias_target = record
        .aliases
        .get(&alias)
        .ok_or_else(|| alias_not_found(&aliased(&target, &alias)))?;
    Ok(answer(
        StatusCode::OK,
        AliasConfiguration::of(record, &alias, alias_target),
    ))
}

/// `GET /2015-03-31/functions/{name}/aliases`: `ListAliases`, by name, `live`
/// among them; `FunctionVersion=N` keeps those sending traffic to version N.
pub(super) async fn list(
    scope: Scope,
    State(engine): EngineState,
    Path(raw): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, LambdaError> {
    let params = query(params)?;
    let (_, _, deployed) = function(&engine, &scope, &raw)?;
    let record = &deployed.record;
    let version = match params.function_version.as_deref() {
        None => None,
        Some("$LATEST") => Some(record.latest().number),
        Some(text) => Some(text.parse::<u32>().map_err(|_| {
            LambdaError::invalid(format!(
                "Value {text} at 'functionVersion' is not a version number"
            ))
        })?),
    };
    let aliases: Vec<AliasConfiguration> = record
        .aliases
        .iter()
        .filter(|(_, t)| version.is_none_or(|n| t.versions().any(|v| v == n)))
        .map(|(alias, t)| AliasConfiguration::of(record, alias, t))
        .collect();
    let (page, next) = params.page(aliases, |a| a.name().to_string())?;
    Ok(answer(StatusCode::OK, listed("Aliases", page, next)))
}

/// `DELETE /2015-03-31/functions/{name}/aliases/{alias}`: `DeleteAlias` (never `live`).
pub(super) async fn delete(
    scope: Scope,
    State(engine): EngineState,
    Path((raw, alias)): Path<(String, String)>,
) -> Result<Response, LambdaError> {
    let (target, name, _) = function(&engine, &scope, &raw)?;
    let alias = alias_name(&alias)?;
    engine
        .delete_alias(&scope.namespace, &name, &alias)
        .await
        .map_err(|e| engine_error(e, &aliased(&target, &alias)))?;
    scope
        .audit(
            &engine,
            "function.alias",
            name.as_str(),
            Some(format!("{alias} deleted through the Lambda API")),
        )
        .await;
    Ok(no_content())
}

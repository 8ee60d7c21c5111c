//! Lambda's function operations over Wisp's deploys: `CreateFunction`,
//! `UpdateFunctionCode`, `UpdateFunctionConfiguration`, `GetFunction`,
//! `GetFunctionConfiguration`, `ListFunctions`, `DeleteFunction`, `PublishVersion` and
//! `ListVersionsByFunction`.
//!
//! Every change is a deploy ([`Engine::deploy`]): it publishes the next version
//! number and points `live` at it, as `PUT /v1/functions/{name}` does, and is in the
//! audit trail the same way. So Lambda's `Publish` is always in effect, and
//! `PublishVersion` finds the newest version already published. Updates build on the
//! version `live` runs (its main one): its code, its configuration, its app.

use super::shapes::{
    self, DEFAULT_TIMEOUT, Environment, FunctionConfiguration, ListParams, Shown, answer, engine_error,
    listed, no_content, query,
};
use super::{LambdaError, Target, resolve};
use crate::auth::Scope;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use wisp_core::{FunctionConfig, FunctionName, Kind, Qualifier};
use wisp_engine::{DeployRequest, Deployed, Engine, EngineError};
use wisp_store::{DeployOutcome, FunctionRecord};

type EngineState = State<Arc<Engine>>;

/// Room for the JSON around the base64 code.
const BODY_OVERHEAD: usize = 1024 * 1024;

/// The largest body that can carry the largest code Wisp takes, in base64.
fn code_body_limit(engine: &Engine) -> usize {
    engine.limits().max_code_size.div_ceil(3) * 4 + BODY_OVERHEAD
}

/// The function a path names, which may not carry a qualifier.
fn unqualified(raw: &str) -> Result<(Target, FunctionName), LambdaError> {
    let (target, name, qualifier) = resolve(raw, None)?;
    if let Some(q) = qualifier {
        return Err(LambdaError::invalid(format!(
            "this operation takes a function, not a version or alias: drop the qualifier `{q}`"
        )));
    }
    Ok((target, name))
}

/// The function, deployed, or `ResourceNotFoundException`.
fn deployed(
    engine: &Engine,
    scope: &Scope,
    target: &Target,
    name: &FunctionName,
) -> Result<Arc<Deployed>, LambdaError> {
    engine
        .function(&scope.namespace, name)
        .ok_or_else(|| LambdaError::not_found(target))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct CodeInput {
    zip_file: Option<String>,
    s3_bucket: Option<String>,
    image_uri: Option<String>,
}

impl CodeInput {
    fn zip(&self) -> Result<Bytes, LambdaError> {
        match (&self.zip_file, &self.s3_bucket, &self.image_uri) {
            (Some(zip), _, _) => shapes::decode_zip(zip),
            (None, Some(_), _) => Err(LambdaError::invalid(
                "Wisp takes code inline as ZipFile: S3Bucket and S3Key are not supported",
            )),
            (None, None, Some(_)) => Err(LambdaError::invalid(
                "Wisp runs zip packages only: ImageUri is not supported",
            )),
            _ => Err(LambdaError::invalid(
                "ZipFile is required: the function's code as a zip",
            )),
        }
    }
}

/// What `CreateFunction` reads; `Role`, `Description` and the rest are accepted and
/// not kept.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    function_name: Option<String>,
    runtime: Option<String>,
    handler: Option<String>,
    code: Option<CodeInput>,
    memory_size: Option<u32>,
    timeout: Option<u64>,
    environment: Option<Environment>,
    #[serde(default)]
    publish: bool,
    package_type: Option<String>,
    #[serde(default)]
    layers: Vec<String>,
}

/// Refuses what Wisp cannot do rather than ignore it: layers would change the code.
fn refuse_layers(layers: &[String]) -> Result<(), LambdaError> {
    if layers.is_empty() {
        Ok(())
    } else {
        Err(LambdaError::invalid(
            "Wisp has no layers: put the layer's files in the function's zip",
        ))
    }
}

/// A handler the runtime needs, as Lambda names it.
fn check_handler(config: &FunctionConfig, runtime: &str) -> Result<(), LambdaError> {
    let missing = config.handler.as_deref().is_none_or(str::is_empty);
    if config.runtime.needs_handler() && missing {
        return Err(LambdaError::invalid(format!(
            "Handler is required for runtime {runtime}: name the module and function, as `app.handler`"
        )));
    }
    Ok(())
}

fn seconds(timeout: u64) -> Result<Duration, LambdaError> {
    if timeout == 0 {
        return Err(LambdaError::invalid(
            "Value 0 at 'timeout' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ));
    }
    Ok(Duration::from_secs(timeout))
}

/// `POST /2015-03-31/functions`: `CreateFunction`.
pub(super) async fn create(
    scope: Scope,
    State(engine): EngineState,
    body: axum::body::Body,
) -> Result<Response, LambdaError> {
    let body: CreateBody = shapes::read_body(body, code_body_limit(&engine), "CreateFunction").await?;
    let raw = body
        .function_name
        .as_deref()
        .ok_or_else(|| LambdaError::invalid("FunctionName is required"))?;
    let (target, name) = unqualified(raw)?;
    if body.package_type.as_deref().is_some_and(|p| p != "Zip") {
        return Err(LambdaError::invalid(
            "Wisp runs zip packages only: PackageType must be Zip",
        ));
    }
    refuse_layers(&body.layers)?;
    let lambda_runtime = body.runtime.as_deref().ok_or_else(|| {
        LambdaError::invalid("Runtime is required: provided.al2023, python3.x or nodejs*.x")
    })?;
    let mut config = FunctionConfig::new(Kind::Event);
    config.runtime = shapes::runtime(lambda_runtime)?;
    config.handler = body.handler.filter(|h| !h.is_empty());
    check_handler(&config, lambda_runtime)?;
    // Wisp checks the bounds at deploy.
    config.memory_mb = body.memory_size.unwrap_or(config.memory_mb);
    config.timeout = seconds(body.timeout.unwrap_or(DEFAULT_TIMEOUT.as_secs()))?;
    config.env = body.environment.and_then(|e| e.variables).unwrap_or_default();
    let code = body.code.unwrap_or_default().zip()?;
    if engine.function(&scope.namespace, &name).is_some() {
        return Err(shapes::conflict(format!("Function already exist: {name}")));
    }
    let record = deploy(&scope, &engine, &target, name, None, config, code).await?;
    let number = record.latest().number.to_string();
    let shown = if body.publish {
        Shown::Version(record.latest(), &number)
    } else {
        Shown::Latest
    };
    Ok(answer(
        StatusCode::CREATED,
        FunctionConfiguration::of(&record, shown),
    ))
}

/// Deploys and records it in the audit trail, as `PUT /v1/functions/{name}` does;
/// returns the function's record after.
async fn deploy(
    scope: &Scope,
    engine: &Engine,
    target: &Target,
    name: FunctionName,
    app: Option<String>,
    config: FunctionConfig,
    code: Bytes,
) -> Result<FunctionRecord, LambdaError> {
    let report = engine
        .deploy(DeployRequest {
            namespace: scope.namespace.clone(),
            name,
            app,
            config,
            code,
        })
        .await
        .map_err(|e| engine_error(e, target))?;
    let version = report.outcome.version();
    let text = match report.outcome {
        DeployOutcome::Created { .. } => "created",
        DeployOutcome::Published { .. } => "published",
        DeployOutcome::Unchanged { .. } => return Ok(report.record),
    };
    let id = report
        .record
        .version(version)
        .map(|v| v.id.short())
        .unwrap_or_default();
    scope
        .audit(
            engine,
            "function.deploy",
            report.record.name.as_str(),
            Some(format!("{text} version {version} ({id}) through the Lambda API")),
        )
        .await;
    Ok(report.record)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct UpdateCodeBody {
    #[serde(flatten)]
    code: CodeInput,
    #[serde(default)]
    publish: bool,
    #[serde(default)]
    dry_run: bool,
    revision_id: Option<String>,
}

/// `PUT /2015-03-31/functions/{name}/code`: `UpdateFunctionCode`, the code of
/// `live`'s version replaced, its configuration kept.
pub(super) async fn update_code(
    scope: Scope,
    State(engine): EngineState,
    Path(raw): Path<String>,
    body: axum::body::Body,
) -> Result<Response, LambdaError> {
    let (target, name) = unqualified(&raw)?;
    let body: UpdateCodeBody =
        shapes::read_body(body, code_body_limit(&engine), "UpdateFunctionCode").await?;
    if body.dry_run {
        return Err(LambdaError::invalid(
            "DryRun is not supported: Wisp checks code by deploying it",
        ));
    }
    let code = body.code.zip()?;
    let current = deployed(&engine, &scope, &target, &name)?;
    shapes::check_revision(&current.record, body.revision_id.as_deref())?;
    let config = current.record.live_version().config.clone();
    let app = current.record.app.clone();
    let record = deploy(&scope, &engine, &target, name, app, config, code).await?;
    let number = record.latest().number.to_string();
    let shown = if body.publish {
        Shown::Version(record.latest(), &number)
    } else {
        Shown::Latest
    };
    Ok(answer(StatusCode::OK, FunctionConfiguration::of(&record, shown)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct UpdateConfigurationBody {
    runtime: Option<String>,
    handler: Option<String>,
    memory_size: Option<u32>,
    timeout: Option<u64>,
    environment: Option<Environment>,
    revision_id: Option<String>,
    layers: Option<Vec<String>>,
}

/// `PUT /2015-03-31/functions/{name}/configuration`: `UpdateFunctionConfiguration`,
/// `live`'s version's code deployed again with its configuration changed as asked.
pub(super) async fn update_configuration(
    scope: Scope,
    State(engine): EngineState,
    Path(raw): Path<String>,
    body: axum::body::Body,
) -> Result<Response, LambdaError> {
    let (target, name) = unqualified(&raw)?;
    let limit = engine.limits().max_request_body;
    let body: UpdateConfigurationBody = shapes::read_body(body, limit, "UpdateFunctionConfiguration").await?;
    refuse_layers(body.layers.as_deref().unwrap_or_default())?;
    let current = deployed(&engine, &scope, &target, &name)?;
    shapes::check_revision(&current.record, body.revision_id.as_deref())?;
    let live = current.record.live_version();
    let mut config = live.config.clone();
    if let Some(runtime) = &body.runtime {
        config.runtime = shapes::runtime(runtime)?;
    }
    if let Some(handler) = body.handler {
        config.handler = Some(handler).filter(|h| !h.is_empty());
    }
    let runtime = body
        .runtime
        .as_deref()
        .unwrap_or(shapes::lambda_runtime(config.runtime));
    check_handler(&config, runtime)?;
    config.memory_mb = body.memory_size.unwrap_or(config.memory_mb);
    if let Some(timeout) = body.timeout {
        config.timeout = seconds(timeout)?;
    }
    if let Some(environment) = body.environment {
        // Lambda replaces the whole set: variables left out are removed.
        config.env = environment.variables.unwrap_or_default();
    }
    let code = engine
        .code(&scope.namespace, &live.code_hash)
        .await
        .map_err(|e| engine_error(e, &target))?
        .ok_or_else(|| {
            let e = EngineError::internal(format!(
                "the store keeps no code `{}` for version {} of `{name}`, which `live` runs",
                live.code_hash, live.number
            ));
            engine_error(e, &target)
        })?;
    let app = current.record.app.clone();
    let record = deploy(&scope, &engine, &target, name, app, config, code).await?;
    Ok(answer(
        StatusCode::OK,
        FunctionConfiguration::of(&record, Shown::Latest),
    ))
}

#[derive(Deserialize, Default)]
pub(super) struct QualifierParam {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

/// The configuration a possibly qualified name shows: `$LATEST` without a
/// qualifier, else the version it names (an alias's main version).
fn configuration_of(
    engine: &Engine,
    scope: &Scope,
    raw: &str,
    qualifier: Option<String>,
) -> Result<FunctionConfiguration, LambdaError> {
    let (target, name, qualifier) = resolve(raw, qualifier)?;
    let function = deployed(engine, scope, &target, &name)?;
    let record = &function.record;
    let Some(qualifier) = qualifier else {
        return Ok(FunctionConfiguration::of(record, Shown::Latest));
    };
    if qualifier == Qualifier::Latest {
        return Ok(FunctionConfiguration::of(record, Shown::QualifiedLatest));
    }
    let text = qualifier.to_string();
    let version = record
        .resolve(&qualifier)
        .and_then(|t| record.version(t.version))
        .ok_or_else(|| LambdaError::not_found(&target))?;
    Ok(FunctionConfiguration::of(record, Shown::Version(version, &text)))
}

/// `GET /2015-03-31/functions/{name}`: `GetFunction`. Wisp serves no download of
/// the code, so the answer has no `Code` location.
pub(super) async fn get(
    scope: Scope,
    State(engine): EngineState,
    Path(raw): Path<String>,
    params: Result<Query<QualifierParam>, QueryRejection>,
) -> Result<Response, LambdaError> {
    let qualifier = query(params)?.qualifier;
    let configuration = configuration_of(&engine, &scope, &raw, qualifier)?;
    Ok(answer(StatusCode::OK, json!({ "Configuration": configuration })))
}

/// `GET /2015-03-31/functions/{name}/configuration`: `GetFunctionConfiguration`.
pub(super) async fn get_configuration(
    scope: Scope,
    State(engine): EngineState,
    Path(raw): Path<String>,
    params: Result<Query<QualifierParam>, QueryRejection>,
) -> Result<Response, LambdaError> {
    let qualifier = query(params)?.qualifier;
    let configuration = configuration_of(&engine, &scope, &raw, qualifier)?;
    Ok(answer(StatusCode::OK, configuration))
}

/// `GET /2015-03-31/functions/`: `ListFunctions`, each function's `$LATEST`, or with
/// `FunctionVersion=ALL` every version as well.
pub(super) async fn list(
    scope: Scope,
    State(engine): EngineState,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, LambdaError> {
    let params = query(params)?;
    let all = match params.function_version.as_deref() {
        None => false,
        Some("ALL") => true,
        Some(other) => {
            return Err(LambdaError::invalid(format!(
                "Value {other} at 'functionVersion' failed to satisfy constraint: Member must satisfy enum value set: [ALL]"
            )));
        }
    };
    let mut configurations = Vec::new();
    for function in engine.functions(&scope.namespace) {
        let record = &function.record;
        configurations.push(FunctionConfiguration::of(record, Shown::Latest));
        if all {
            for version in &record.versions {
                configurations.push(FunctionConfiguration::of(
                    record,
                    Shown::Version(version, &version.number.to_string()),
                ));
            }
        }
    }
    let (page, next) = params.page(configurations, |c| format!("{}:{}", c.name(), c.version()))?;
    Ok(answer(StatusCode::OK, listed("Functions", page, next)))
}

/// `DELETE /2015-03-31/functions/{name}`: `DeleteFunction`. Wisp deletes whole
/// functions: a version goes when it is no longer kept.
pub(super) async fn delete(
    scope: Scope,
    State(engine): EngineState,
    Path(raw): Path<String>,
    params: Result<Query<QualifierParam>, QueryRejection>,
) -> Result<Response, LambdaError> {
    let qualifier = query(params)?.qualifier;
    let (target, name, qualifier) = resolve(&raw, qualifier)?;
    if let Some(q) = qualifier {
        return Err(LambdaError::invalid(format!(
            "Wisp deletes whole functions, not one version or alias: drop the qualifier `{q}` \
             (a version goes when it is neither among the newest kept nor named by an alias)"
        )));
    }
    let deleted = engine
        .delete(&scope.namespace, &name)
        .await
        .map_err(|e| engine_error(e, &target))?;
    if !deleted {
        return Err(LambdaError::not_found(&target));
    }
    scope.audit(&engine, "function.delete", name.as_str(), None).await;
    Ok(no_content())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct PublishBody {
    code_sha256: Option<String>,
    revision_id: Option<String>,
}

/// `POST /2015-03-31/functions/{name}/versions`: `PublishVersion`. Every change
/// published a version already, so this answers the newest one, as Lambda does
/// when nothing changed since the last publish.
pub(super) async fn publish_version(
    scope: Scope,
    State(engine): EngineState,
    Path(raw): Path<String>,
    body: axum::body::Body,
) -> Result<Response, LambdaError> {
    let (target, name) = unqualified(&raw)?;
    let body: PublishBody =
        shapes::read_body(body, engine.limits().max_request_body, "PublishVersion").await?;
    let function = deployed(&engine, &scope, &target, &name)?;
    let record = &function.record;
    shapes::check_revision(record, body.revision_id.as_deref())?;
    let latest = record.latest();
    let sha = shapes::code_sha256(&latest.code_hash);
    if let Some(given) = body.code_sha256.filter(|given| *given != sha) {
        return Err(LambdaError::user(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailedException",
            format!(
                "CodeSHA256 ({given}) is different from current CodeSHA256 in $LATEST ({sha}). Please try again"
            ),
        ));
    }
    let number = latest.number.to_string();
    Ok(answer(
        StatusCode::CREATED,
        FunctionConfiguration::of(record, Shown::Version(latest, &number)),
    ))
}

/// `GET /2015-03-31/functions/{name}/versions`: `ListVersionsByFunction`, `$LATEST`
/// then each kept version, oldest first.
pub(super) async fn list_versions(
    scope: Scope,
    State(engine): EngineState,
    Path(raw): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, LambdaError> {
    let paging = query(params)?;
    let (target, name) = unqualified(&raw)?;
    let function = deployed(&engine, &scope, &target, &name)?;
    let record = &function.record;
    let mut versions = vec![FunctionConfiguration::of(record, Shown::QualifiedLatest)];
    for version in &record.versions {
        versions.push(FunctionConfiguration::of(
            record,
            Shown::Version(version, &version.number.to_string()),
        ));
    }
    let (page, next) = paging.page(versions, |c| c.version().to_string())?;
    Ok(answer(StatusCode::OK, listed("Versions", page, next)))
}

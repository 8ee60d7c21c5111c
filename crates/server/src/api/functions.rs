//! `/v1/functions`: the function resources.

use crate::auth::Scope;
use crate::body::{BodyError, read_limited};
use crate::problem::ApiError;
use axum::Json;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use wisp_core::wall::rfc3339_ms;
use wisp_core::{AliasTarget, ErrorCode, FunctionConfig, FunctionName, Namespace, Qualifier};
use wisp_engine::{AsyncOptions, DeployRequest, Deployed, Engine, InvokeOptions, PoolStatus};
use wisp_store::{DeployOutcome, FunctionRecord};

pub(super) type EngineState = State<Arc<Engine>>;

pub(super) fn parse_name(name: &str) -> Result<FunctionName, ApiError> {
    FunctionName::new(name).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.to_string()))
}

/// `NAME` or `NAME:QUALIFIER` (a version number, an alias or `$LATEST`).
pub(crate) fn parse_qualified(text: &str) -> Result<(FunctionName, Option<Qualifier>), ApiError> {
    match text.split_once(':') {
        None => Ok((parse_name(text)?, None)),
        Some((name, qualifier)) => Ok((parse_name(name)?, Some(parse_qualifier(qualifier)?))),
    }
}

/// A version number, an alias or `$LATEST`.
pub(crate) fn parse_qualifier(text: &str) -> Result<Qualifier, ApiError> {
    text.parse::<Qualifier>().map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("invalid qualifier `{text}`: {e}; name a version number, an alias or $LATEST"),
        )
    })
}

/// The function named in the path, deployed.
pub(super) fn deployed(
    engine: &Engine,
    namespace: &Namespace,
    name: &FunctionName,
) -> Result<Arc<Deployed>, ApiError> {
    engine.function(namespace, name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::FunctionNotFound,
            format!("no function named `{name}` is deployed"),
        )
    })
}

/// A function as the API shows it.
#[derive(Serialize)]
pub struct FunctionView {
    name: String,
    namespace: String,
    app: Option<String>,
    kind: wisp_core::Kind,
    /// The version `live` runs (its main one, when it splits traffic).
    version: u32,
    /// That version's content id.
    version_id: String,
    /// The newest version.
    latest_version: u32,
    /// A disabled function runs nothing until enabled.
    disabled: bool,
    /// Where each alias points.
    aliases: BTreeMap<String, AliasTarget>,
    code_hash: String,
    code_size: u64,
    config: FunctionConfig,
    created_at: String,
    updated_at: String,
    /// Whether the code is loaded, its instances, queue and counters (since start).
    #[serde(flatten)]
    status: Option<PoolStatus>,
}

impl FunctionView {
    pub(super) fn new(record: &FunctionRecord, status: Option<PoolStatus>) -> FunctionView {
        let live = record.live_version();
        FunctionView {
            name: record.name.to_string(),
            namespace: record.namespace.to_string(),
            app: record.app.clone(),
            kind: live.config.kind,
            version: live.number,
            version_id: live.id.to_string(),
            latest_version: record.latest().number,
            disabled: record.disabled,
            aliases: record
                .aliases
                .iter()
                .map(|(name, target)| (name.to_string(), target.clone()))
                .collect(),
            code_hash: live.code_hash.clone(),
            code_size: live.code_size,
            config: live.config.redacted(),
            created_at: rfc3339_ms(record.created_at),
            updated_at: rfc3339_ms(record.updated_at),
            status,
        }
    }

    pub(super) fn of(deployed: &Deployed) -> FunctionView {
        FunctionView::new(&deployed.record, Some(deployed.live_version().status()))
    }
}

pub(super) async fn list(scope: Scope, State(engine): EngineState) -> Json<serde_json::Value> {
    let functions: Vec<FunctionView> = engine
        .functions(&scope.namespace)
        .iter()
        .map(|d| FunctionView::of(d))
        .collect();
    // What the operator should know about how these run (e.g. native functions not
    // network-isolated on this machine).
    let warnings = engine.runtime_warnings();
    Json(serde_json::json!({ "functions": functions, "warnings": warnings }))
}

pub(super) async fn get(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<Json<FunctionView>, ApiError> {
    let name = parse_name(&name)?;
    let deployed = deployed(&engine, &scope.namespace, &name)?;
    Ok(Json(FunctionView::of(&deployed)))
}

pub(super) async fn delete(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = parse_name(&name)?;
    if engine.delete(&scope.namespace, &name).await? {
        scope.audit(&engine, "function.delete", name.as_str(), None).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            ErrorCode::FunctionNotFound,
            format!("no function named `{name}` is deployed"),
        ))
    }
}

#[derive(Serialize)]
struct DeployResponse {
    status: &'static str,
    /// The version published, or the newest one when nothing changed.
    version: u32,
    /// Where `live` pointed before this deploy moved it.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<AliasTarget>,
    function: FunctionView,
}

const DEPLOY_HELP: &str = "send multipart/form-data with a `config` part (the function's configuration as JSON) \
                           and a `code` part (the .wasm), and optionally an `app` part";

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the upload is too large: {}", e.body_text()),
        )
    } else {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("malformed multipart body: {}; {DEPLOY_HELP}", e.body_text()),
        )
    }
}

pub(super) async fn deploy(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let name = parse_name(&name)?;
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("{}; {DEPLOY_HELP}", e.body_text()),
        )
    })?;
    let (mut config, mut code, mut app) = (None, None, None);
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let part = field.name().unwrap_or_default().to_string();
        match part.as_str() {
            "config" => config = Some(field.bytes().await.map_err(multipart_error)?),
            "code" => code = Some(field.bytes().await.map_err(multipart_error)?),
            "app" => app = Some(field.text().await.map_err(multipart_error)?),
            other => {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("unexpected part `{other}`; {DEPLOY_HELP}"),
                ));
            }
        }
    }
    let config = config.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the `config` part is missing; {DEPLOY_HELP}"),
        )
    })?;
    let code = code.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the `code` part is missing; {DEPLOY_HELP}"),
        )
    })?;
    let config: FunctionConfig = serde_json::from_slice(&config).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidConfig,
            format!("the `config` part is not a valid configuration: {e}"),
        )
    })?;
    if let Some(app) = &app
        && FunctionName::new(app.as_str()).is_err()
    {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            format!(
                "invalid app name `{app}`: use lowercase letters, digits and '-', starting with a letter"
            ),
        ));
    }
    let report = engine
        .deploy(DeployRequest {
            namespace: scope.namespace.clone(),
            name,
            app,
            config,
            code,
        })
        .await?;
    let version = report.outcome.version();
    let (status, text, previous) = match report.outcome {
        DeployOutcome::Created { .. } => (StatusCode::CREATED, "created", None),
        DeployOutcome::Published { previous, .. } => (StatusCode::OK, "published", Some(previous)),
        DeployOutcome::Unchanged { .. } => (StatusCode::OK, "unchanged", None),
    };
    if text != "unchanged" {
        let id = report
            .record
            .version(version)
            .map(|v| v.id.short())
            .unwrap_or_default();
        let detail = format!("{text} version {version} ({id})");
        scope
            .audit(
                &engine,
                "function.deploy",
                report.record.name.as_str(),
                Some(detail),
            )
            .await;
    }
    let body = DeployResponse {
        status: text,
        version,
        previous,
        function: match engine.function(&report.record.namespace, &report.record.name) {
            Some(deployed) if deployed.record.revision == report.record.revision => {
                FunctionView::of(&deployed)
            }
            _ => FunctionView::new(&report.record, None),
        },
    };
    Ok((status, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InvokeParams {
    qualifier: Option<String>,
}

/// `POST /v1/functions/{name}/invoke`: `{name}` may carry a qualifier (`NAME:7`,
/// `NAME:beta`), or the query may (`?qualifier=7`).
pub(super) async fn invoke(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    params: Result<Query<InvokeParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let (name, mut qualifier) = parse_qualified(&name)?;
    let Query(params) = query_params(params, "`qualifier` (a version number or an alias)")?;
    if let Some(text) = params.qualifier {
        let from_query = parse_qualifier(&text)?;
        if qualifier.as_ref().is_some_and(|q| *q != from_query) {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "the path names `{name}:{}` and the query `qualifier={text}`: name one",
                    qualifier.unwrap_or(from_query)
                ),
            ));
        }
        qualifier = Some(from_query);
    }
    let limit = engine.limits().max_request_body;
    let payload: Bytes = match read_limited(body, limit).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge { limit }) => {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the payload is larger than the limit of {limit} bytes"),
            ));
        }
        Err(BodyError::Unreadable(e)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("cannot read the payload: {e}"),
            ));
        }
    };
    if is_async(&headers)? {
        let mut options = async_options(&headers)?;
        options.qualifier = qualifier;
        return accept_async(&engine, &scope.namespace, &name, payload, options).await;
    }
    let options = InvokeOptions {
        qualifier,
        content_type: headers.get(header::CONTENT_TYPE).cloned(),
        ..InvokeOptions::default()
    };
    let response = engine
        .invoke(&scope.namespace, &name, payload, trace_root(&headers), options)
        .await?;
    Ok(response.map(axum::body::Body::new))
}

/// The header naming the invocation type (`event` or `request-response`).
pub const INVOCATION_TYPE_HEADER: &str = "x-wisp-invocation-type";
/// The header carrying how many event hops led to a request (see the loop guard).
pub const CHAIN_DEPTH_HEADER: &str = "x-wisp-chain-depth";
/// X-Ray's trace header: a client's `Root=1-…` (or W3C's `traceparent`) puts an async
/// invoke in its trace.
const TRACE_HEADER: &str = "x-amzn-trace-id";

/// Whether the invoke asks to be async: `X-Wisp-Invocation-Type: event`, or
/// `Prefer: respond-async` (RFC 7240).
fn is_async(headers: &HeaderMap) -> Result<bool, ApiError> {
    if let Some(value) = headers.get(INVOCATION_TYPE_HEADER) {
        return match value.to_str().unwrap_or_default().to_ascii_lowercase().as_str() {
            "event" => Ok(true),
            "request-response" | "requestresponse" => Ok(false),
            other => Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "`X-Wisp-Invocation-Type: {other}` is not an invocation type; use `event` or `request-response`"
                ),
            )),
        };
    }
    Ok(headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async")))
}

/// Reads the async options an invoke request carries: `Idempotency-Key`,
/// `X-Wisp-Chain-Depth`, and the trace root of `X-Amzn-Trace-Id` (ignored when it names
/// none of X-Ray's form).
pub(super) fn async_options(headers: &HeaderMap) -> Result<AsyncOptions, ApiError> {
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v.to_str().map(|s| Some(s.to_string())).map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("the `{name}` header is not visible ASCII"),
                )
            }),
        }
    };
    let chain_depth = match text(CHAIN_DEPTH_HEADER)? {
        None => 0,
        Some(v) => v.trim().parse::<u32>().map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("`X-Wisp-Chain-Depth: {v}` is not a number of hops"),
            )
        })?,
    };
    Ok(AsyncOptions {
        idempotency_key: text("idempotency-key")?,
        chain_depth,
        source: String::new(),
        qualifier: None,
        trace: trace_root(headers),
        // A client's request: no invocation caused it.
        parent: None,
    })
}

/// The trace root a request names: W3C's `traceparent`, else X-Ray's `X-Amzn-Trace-Id`
/// (a malformed one is ignored).
pub(crate) fn trace_root(headers: &HeaderMap) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    wisp_core::trace::root_of_request(text("traceparent"), text(TRACE_HEADER))
}

/// `202 Accepted` once the event is durable: its id in the body, the
/// `X-Wisp-Invocation-Id` header and `Location`.
async fn accept_async(
    engine: &Engine,
    namespace: &Namespace,
    name: &FunctionName,
    payload: Bytes,
    options: AsyncOptions,
) -> Result<Response, ApiError> {
    let accepted = engine.enqueue(namespace, name, payload, options).await?;
    let location = format!("/v1/invocations/{}", accepted.id);
    let body = serde_json::json!({
        "id": accepted.id,
        "status": "accepted",
        "duplicate": accepted.duplicate,
        "location": location,
    });
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = header::HeaderValue::from_str(&accepted.id) {
        headers.insert(wisp_engine::INVOCATION_ID_HEADER, v);
    }
    if let Ok(v) = header::HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, v);
    }
    if accepted.duplicate {
        headers.insert("idempotent-replayed", header::HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A query string that did not parse, answered with what the endpoint takes.
pub(super) fn query_params<T>(
    params: Result<Query<T>, axum::extract::rejection::QueryRejection>,
    takes: &str,
) -> Result<Query<T>, ApiError> {
    params.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("{}; use {takes}", e.body_text()),
        )
    })
}

/// A `limit` query parameter: 100 when absent, else 1 to `kept` (what the store keeps).
pub(super) fn limit_param(limit: Option<usize>, kept: usize) -> Result<usize, ApiError> {
    match limit.unwrap_or(100) {
        limit @ 1.. if limit <= kept => Ok(limit),
        _ => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("`limit` must be between 1 and {kept}"),
        )),
    }
}

pub(super) use super::logs::logs;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InvocationParams {
    limit: Option<usize>,
    cold: Option<bool>,
}

/// One invocation as the API shows it.
#[derive(Serialize)]
struct InvocationView {
    id: String,
    /// The number of the version that ran it (`0`: recorded before versions were numbered).
    version: u32,
    version_id: String,
    started_at: String,
    cold: bool,
    init_us: Option<u64>,
    queue_us: u64,
    run_us: u64,
    /// The run rounded up to the next millisecond (at least 1), as usage bills it.
    billed_ms: u64,
    memory_mb: u32,
    /// It ran on reserved capacity (`min_instances`), billed at the reserved rate.
    reserved: bool,
    error: Option<String>,
    /// The trace root it ran under (X-Ray's `1-<8 hex>-<24 hex>`); absent in records
    /// written before Wisp recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<String>,
    /// The invocation that caused it (its caller, or the sender of what it ran for);
    /// `null` for a trace's root and in records written before Wisp recorded it.
    parent: Option<String>,
}

/// `GET /v1/functions/{name}/invocations`: recent invocations, oldest first (cold or
/// warm, init, queue and run times, how each ended), with totals over those kept.
pub(super) async fn invocations(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    params: Result<Query<InvocationParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = parse_name(&name)?;
    let Query(params) = query_params(params, "`limit` (a number) and `cold` (true or false)")?;
    let limit = limit_param(params.limit, wisp_store::INVOCATIONS_KEPT_PER_FUNCTION)?;
    let query = wisp_store::InvocationQuery {
        limit,
        cold_only: params.cold.unwrap_or(false),
    };
    let (records, summary) = engine.invocations(&scope.namespace, &name, &query).await?;
    let invocations: Vec<InvocationView> = records
        .into_iter()
        .map(|r| InvocationView {
            id: r.id,
            version: r.version_number,
            version_id: r.version.to_string(),
            started_at: rfc3339_ms(r.started_at),
            cold: r.cold,
            init_us: r.init_us,
            queue_us: r.queue_us,
            run_us: r.run_us,
            billed_ms: r.billed_ms,
            memory_mb: r.memory_mb,
            reserved: r.reserved,
            error: r.error,
            trace: r.trace,
            parent: r.parent,
        })
        .collect();
    Ok(Json(
        serde_json::json!({ "invocations": invocations, "summary": summary }),
    ))
}

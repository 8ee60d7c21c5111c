//! `PUT /v1/apps/{app}`: deploy every function of an app in one request, all or
//! nothing, each distinct code uploaded once; `dry_run` plans, `prune` deletes the
//! app's functions the request no longer names.

use super::functions::{EngineState, parse_name};
use crate::auth::Scope;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::Path;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use wisp_core::{ErrorCode, FunctionConfig};
use wisp_engine::{AppCode, AppRequest, Planned};

const APP_HELP: &str = "send multipart/form-data with a `manifest` part \
    ({\"functions\": [{\"name\", \"config\", \"code\": SHA-256 of its code}], \"prune\", \"dry_run\"}) \
    and one `code` part per distinct code";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppManifest {
    functions: Vec<AppEntry>,
    #[serde(default)]
    prune: bool,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppEntry {
    name: String,
    config: FunctionConfig,
    /// The hex SHA-256 of its code: one of the `code` parts.
    code: String,
}

fn bad(detail: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, detail)
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the upload is too large: {}", e.body_text()),
        )
    } else {
        bad(format!("malformed multipart body: {}; {APP_HELP}", e.body_text()))
    }
}

pub(super) async fn deploy(
    scope: Scope,
    State(engine): EngineState,
    Path(app): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let app = parse_name(&app).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidName,
            format!(
                "invalid app name `{app}`: use lowercase letters, digits and '-', starting with a letter"
            ),
        )
    })?;
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("{}; {APP_HELP}", e.body_text()),
        )
    })?;
    let mut manifest = None;
    let mut codes: HashMap<String, Arc<AppCode>> = HashMap::new();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "manifest" => {
                let bytes = field.bytes().await.map_err(multipart_error)?;
                let parsed: AppManifest = serde_json::from_slice(&bytes)
                    .map_err(|e| bad(format!("the `manifest` part is not valid: {e}; {APP_HELP}")))?;
                manifest = Some(parsed);
            }
            "code" => {
                let code = AppCode::new(field.bytes().await.map_err(multipart_error)?);
                codes.insert(code.hash().to_owned(), Arc::new(code));
            }
            other => return Err(bad(format!("unexpected part `{other}`; {APP_HELP}"))),
        }
    }
    let manifest = manifest.ok_or_else(|| bad(format!("the `manifest` part is missing; {APP_HELP}")))?;
    let mut functions = Vec::with_capacity(manifest.functions.len());
    for entry in manifest.functions {
        let name = parse_name(&entry.name)?;
        let code = codes.get(&entry.code).cloned().ok_or_else(|| {
            bad(format!(
                "function `{name}` names code `{}`, which no `code` part has (its SHA-256 must match)",
                entry.code
            ))
        })?;
        functions.push((name, entry.config, code));
    }
    let report = engine
        .deploy_app(AppRequest {
            namespace: scope.namespace.clone(),
            app: app.to_string(),
            functions,
            prune: manifest.prune,
            dry_run: manifest.dry_run,
        })
        .await?;
    let functions: Vec<serde_json::Value> = report
        .functions
        .iter()
        .map(|(name, planned, record)| {
            let (status, version) = match planned {
                Planned::Create => ("created", 1),
                Planned::Publish(n) => ("published", *n),
                Planned::Unchanged(n) => ("unchanged", *n),
            };
            let routes = record
                .as_ref()
                .filter(|_| !manifest.dry_run)
                .map(|r| json!(r.live_version().config.routes));
            json!({ "name": name.as_str(), "status": status, "version": version, "routes": routes })
        })
        .collect();
    let removed: Vec<&str> = report.removed.iter().map(|n| n.as_str()).collect();
    if !manifest.dry_run {
        let changed = report
            .functions
            .iter()
            .filter(|(_, p, _)| !matches!(p, Planned::Unchanged(_)))
            .count();
        let detail = format!(
            "{changed} of {} functions changed{}",
            report.functions.len(),
            if manifest.prune {
                format!(", {} removed", removed.len())
            } else {
                String::new()
            }
        );
        scope
            .audit(&engine, "app.deploy", app.as_str(), Some(detail))
            .await;
    }
    let body = json!({
        "app": app.as_str(),
        "dry_run": manifest.dry_run,
        "functions": functions,
        // Deleted with `prune`; without it, what `prune` would delete.
        "removed": removed,
        "pruned": manifest.prune && !manifest.dry_run,
    });
    Ok((StatusCode::OK, Json(body)).into_response())
}

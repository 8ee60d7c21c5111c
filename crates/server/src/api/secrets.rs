//! `/v1/secrets`: a namespace's secrets — set one (`PUT`, the value as the raw body),
//! list them (names and times), delete one. No route reads a value back: a `GET` of one
//! secret is answered 405. Values are never logged: the body is read here, handed to the
//! engine, and no error message quotes it.
//!
//! Roles: `deploy` sets and deletes, `read` lists (the auth layer's rule for every
//! path); a function's own credential may do none of it.

use super::functions::EngineState;
use crate::auth::Scope;
use crate::body::{BodyError, read_limited};
use crate::problem::ApiError;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use wisp_core::wall::rfc3339_ms;
use wisp_core::{ErrorCode, Limits, SecretName};
use wisp_engine::{Engine, SecretInfo, SecretSet};

/// The secret routes.
pub(super) fn router() -> Router<Arc<Engine>> {
    Router::new()
        .route("/v1/secrets", get(list))
        .route("/v1/secrets/{name}", put(set).delete(delete))
}

fn parse_name(name: &str) -> Result<SecretName, ApiError> {
    SecretName::new(name).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.to_string()))
}

/// 403 for a function's credential: secrets are managed by people, and reach functions
/// only through their `env`.
fn people_only(scope: &Scope) -> Result<(), ApiError> {
    match &scope.caller.grants {
        Some(grants) => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "function `{}` may not manage secrets: a function gets a secret's value through its `env`",
                grants.function
            ),
        )),
        None => Ok(()),
    }
}

/// A secret as the API shows it: never its value.
#[derive(Serialize)]
struct SecretView {
    name: String,
    created_at: String,
    updated_at: String,
}

impl SecretView {
    fn new(info: SecretInfo) -> SecretView {
        SecretView {
            name: info.name.to_string(),
            created_at: rfc3339_ms(info.created_ms),
            updated_at: rfc3339_ms(info.updated_ms),
        }
    }
}

async fn list(scope: Scope, State(engine): EngineState) -> Result<Json<Value>, ApiError> {
    people_only(&scope)?;
    let secrets: Vec<SecretView> = engine
        .list_secrets(&scope.namespace)
        .await?
        .into_iter()
        .map(SecretView::new)
        .collect();
    Ok(Json(json!({ "secrets": secrets })))
}

/// `PUT /v1/secrets/{name}`: the body, as UTF-8 text, is the value (byte for byte: no
/// trimming, no JSON). 201 when the secret is new, 200 when its value was replaced.
async fn set(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    people_only(&scope)?;
    let name = parse_name(&name)?;
    let limit = Limits::MAX_SECRET_VALUE_BYTES;
    let bytes = match read_limited(body, limit).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge { limit }) => {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the value of secret `{name}` is larger than the limit of {limit} bytes"),
            ));
        }
        Err(BodyError::Unreadable(e)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("cannot read the request body: {e}"),
            ));
        }
    };
    // The error says where, never what: the bytes are the secret.
    let value = std::str::from_utf8(&bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "the value of secret `{name}` is not UTF-8 (at byte {}): an environment variable holds text; \
                 encode binary values, e.g. as base64",
                e.valid_up_to()
            ),
        )
    })?;
    let set = engine.set_secret(&scope.namespace, &name, value).await?;
    let (status, action, word) = match set {
        SecretSet::Created => (StatusCode::CREATED, "secret.create", "created"),
        SecretSet::Updated => (StatusCode::OK, "secret.update", "updated"),
    };
    scope.audit(&engine, action, name.as_str(), None).await;
    Ok((status, Json(json!({ "name": name.as_str(), "status": word }))).into_response())
}

async fn delete(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    people_only(&scope)?;
    let name = parse_name(&name)?;
    engine.delete_secret(&scope.namespace, &name).await?;
    scope.audit(&engine, "secret.delete", name.as_str(), None).await;
    Ok(StatusCode::NO_CONTENT)
}

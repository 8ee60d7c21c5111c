//! Reading a JSON request body, and its fields one by one so an error names the field.

use crate::body::{BodyError, read_limited};
use crate::problem::ApiError;
use bytes::Bytes;
use serde_json::{Map, Value};
use wisp_core::ErrorCode;
use wisp_engine::Engine;

/// Reads a request body of at most the engine's request limit. An empty body is
/// `None`, so endpoints whose fields are all optional take no body at all.
pub(super) async fn read_json(
    engine: &Engine,
    body: axum::body::Body,
    takes: &str,
) -> Result<Option<Value>, ApiError> {
    let limit = engine.limits().max_request_body;
    let bytes: Bytes = match read_limited(body, limit).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge { limit }) => {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the request body is larger than the limit of {limit} bytes"),
            ));
        }
        Err(BodyError::Unreadable(e)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("cannot read the request body: {e}"),
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the request body is not JSON: {e}; send {takes}"),
        )
    })
}

/// A serde error without serde_json's position (the body was re-read in parts, so
/// the position would mislead).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" at line ") {
        Some((message, _)) => message.to_string(),
        None => text,
    }
}

/// Reads `value` as a `T`; when it does not read, finds the key at fault by reading
/// each key alone, so the error names the field.
pub(super) fn read_fields<T: serde::de::DeserializeOwned>(value: Value, takes: &str) -> Result<T, String> {
    let Value::Object(map) = value else {
        return Err(format!("the body must be a JSON object: {takes}"));
    };
    match serde_json::from_value::<T>(Value::Object(map.clone())) {
        Ok(parsed) => Ok(parsed),
        Err(whole) => {
            for (key, field) in map {
                let alone = Value::Object(Map::from_iter([(key.clone(), field)]));
                if let Err(e) = serde_json::from_value::<T>(alone) {
                    let message = without_position(&e);
                    if message.starts_with("missing field") {
                        continue;
                    }
                    return Err(if message.contains(&format!("`{key}`")) {
                        message
                    } else {
                        format!("{key}: {message}")
                    });
                }
            }
            Err(without_position(&whole))
        }
    }
}

//! `/v1/queues`: queues as a platform resource — create, inspect and delete them,
//! send, receive and delete messages, purge, and redrive a dead-letter queue.
//!
//! Request bodies are read here (not with axum's `Json`), so a client that sends
//! no `Content-Type` is served too, and every malformed body is a problem document
//! that names the field at fault.

use super::functions::EngineState;
use super::json::{read_fields, read_json};
use crate::auth::Scope;
use crate::platform::PlatformCall;
use crate::problem::ApiError;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wisp_core::duration_text;
use wisp_core::wall::rfc3339_ms;
use wisp_core::{ErrorCode, Limits, QueueConfig, QueueName};
use wisp_engine::{Engine, Outgoing};
use wisp_store::{QueueRecord, QueueStats, ReceivedMessage};

/// The queue routes.
/// Sending to a queue alone: what functions may do on the S3 listener (by grant).
pub(super) fn send_router() -> Router<Arc<Engine>> {
    Router::new().route("/v1/queues/{name}/messages", post(send))
}

pub(super) fn router() -> Router<Arc<Engine>> {
    Router::new()
        .route("/v1/queues", get(list))
        .route("/v1/queues/{name}", get(show).put(put).delete(delete))
        .route("/v1/queues/{name}/messages", post(send))
        .route("/v1/queues/{name}/receive", post(receive))
        .route("/v1/queues/{name}/delete", post(delete_messages))
        .route("/v1/queues/{name}/purge", post(purge))
        .route("/v1/queues/{name}/redrive", post(redrive))
}

fn parse_queue(name: &str) -> Result<QueueName, ApiError> {
    QueueName::new(name).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.to_string()))
}

/// A queue as the API shows it.
#[derive(Serialize)]
struct QueueView {
    name: String,
    namespace: String,
    config: QueueConfig,
    /// What the queue holds now.
    messages: QueueStats,
    created_at: String,
    updated_at: String,
}

impl QueueView {
    fn new((record, stats): (QueueRecord, QueueStats)) -> QueueView {
        QueueView {
            name: record.name.to_string(),
            namespace: record.namespace.to_string(),
            config: record.config,
            messages: stats,
            created_at: rfc3339_ms(record.created_at),
            updated_at: rfc3339_ms(record.updated_at),
        }
    }
}

/// A received message as the API shows it.
#[derive(Serialize)]
struct MessageView {
    id: String,
    /// Deleting the message takes this; the next receive of it makes it stale.
    receipt_handle: String,
    body: String,
    /// Including this receive.
    receive_count: u32,
    sent_at: String,
    first_received_at: String,
}

impl MessageView {
    fn new(m: ReceivedMessage) -> MessageView {
        MessageView {
            id: m.id,
            receipt_handle: m.receipt_handle,
            body: m.body,
            receive_count: m.receive_count,
            sent_at: rfc3339_ms(m.sent_at),
            first_received_at: rfc3339_ms(m.first_received_at),
        }
    }
}

async fn list(scope: Scope, State(engine): EngineState) -> Result<Json<Value>, ApiError> {
    let queues: Vec<QueueView> = engine
        .queues(&scope.namespace)
        .await?
        .into_iter()
        .map(QueueView::new)
        .collect();
    Ok(Json(json!({ "queues": queues })))
}

async fn show(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<Json<QueueView>, ApiError> {
    let name = parse_queue(&name)?;
    Ok(Json(QueueView::new(engine.queue(&scope.namespace, &name).await?)))
}

const CONFIG_TAKES: &str = "a queue configuration: `visibility_timeout` (\"30s\"), `retention` (\"4d\"), \
                            `max_receive_count` (a number) with `dead_letter_queue` (a queue's name), all optional";

async fn put(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let name = parse_queue(&name)?;
    let config = match read_json(&engine, body, CONFIG_TAKES).await? {
        None => QueueConfig::default(),
        Some(value) => read_fields::<QueueConfig>(value, CONFIG_TAKES).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidConfig,
                format!("invalid queue configuration: {e}"),
            )
        })?,
    };
    let before = match engine.queue(&scope.namespace, &name).await {
        Ok((record, _)) => Some(record.config),
        Err(e) if e.code == ErrorCode::QueueNotFound => None,
        Err(e) => return Err(e.into()),
    };
    let unchanged = before.as_ref() == Some(&config);
    let created = engine.put_queue(&scope.namespace, &name, config).await?;
    let queue = QueueView::new(engine.queue(&scope.namespace, &name).await?);
    let (status, text) = match (created, unchanged) {
        (true, _) => (StatusCode::CREATED, "created"),
        (false, true) => (StatusCode::OK, "unchanged"),
        (false, false) => (StatusCode::OK, "updated"),
    };
    if !unchanged {
        let action = if created { "queue.create" } else { "queue.update" };
        scope.audit(&engine, action, name.as_str(), None).await;
    }
    Ok((status, Json(json!({ "status": text, "queue": queue }))).into_response())
}

async fn delete(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = parse_queue(&name)?;
    if engine.delete_queue(&scope.namespace, &name).await? {
        scope.audit(&engine, "queue.delete", name.as_str(), None).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            ErrorCode::QueueNotFound,
            format!("there is no queue named `{name}`"),
        ))
    }
}

/// One message to send.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageIn {
    body: Value,
    #[serde(default, with = "duration_text")]
    delay: Duration,
}

const SEND_TAKES: &str = "`{\"body\": \"text\", \"delay\": \"5s\"}` (delay optional), \
                          or a batch `{\"messages\": [{\"body\": …}, …]}`";

/// Reads the messages of a send: one, or a batch.
fn outgoing(value: Value) -> Result<(Vec<Outgoing>, bool), ApiError> {
    let bad = |detail: String| ApiError::new(ErrorCode::InvalidRequest, detail);
    let Value::Object(mut map) = value else {
        return Err(bad(format!("the body must be a JSON object: {SEND_TAKES}")));
    };
    let (items, batch) = match map.remove("messages") {
        Some(Value::Array(items)) if map.is_empty() => (items, true),
        Some(Value::Array(_)) => {
            return Err(bad(format!(
                "a batch has only `messages`; move the other keys ({}) into its messages",
                map.keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Some(_) => return Err(bad(format!("`messages` must be a list: {SEND_TAKES}"))),
        None => (vec![Value::Object(map)], false),
    };
    if items.is_empty() || items.len() > Limits::MAX_MESSAGES_PER_CALL {
        return Err(bad(format!(
            "send 1 to {} messages at once (this request has {})",
            Limits::MAX_MESSAGES_PER_CALL,
            items.len()
        )));
    }
    let mut messages = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let which = if batch {
            format!("message {i}: ")
        } else {
            String::new()
        };
        let message: MessageIn = read_fields(item, SEND_TAKES).map_err(|e| bad(format!("{which}{e}")))?;
        let body = match message.body {
            Value::String(text) => text,
            Value::Null => {
                return Err(bad(format!("{which}`body` is required: a string (the message)")));
            }
            other => {
                let kind = match other {
                    Value::Null | Value::String(_) => "that",
                    Value::Bool(_) => "a boolean",
                    Value::Number(_) => "a number",
                    Value::Array(_) => "a list",
                    Value::Object(_) => "an object",
                };
                return Err(bad(format!(
                    "{which}`body` must be a string, not {kind}; to send JSON, send it encoded as a string: \
                     {{\"body\": {}}}",
                    Value::String(other.to_string())
                )));
            }
        };
        messages.push(Outgoing {
            body,
            delay: message.delay,
        });
    }
    Ok((messages, batch))
}

async fn send(
    scope: Scope,
    State(engine): EngineState,
    platform: Option<axum::Extension<PlatformCall>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let name = parse_queue(&name)?;
    scope.caller.check_queue_grant(&name)?;
    // A function's own sends run one hop deeper than the event it is running, so a
    // function that feeds the queue that triggers it reaches the chain limit; they
    // carry its trace.
    let mut cause = scope.write_cause(&engine, platform.as_deref(), &headers);
    cause.depth = cause
        .depth
        .max(super::functions::async_options(&headers)?.chain_depth);
    let value = read_json(&engine, body, SEND_TAKES).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the body is empty: send {SEND_TAKES}"),
        )
    })?;
    let (messages, batch) = outgoing(value)?;
    let ids = engine
        .send_messages(&scope.namespace, &name, messages, cause)
        .await?;
    let body = match (batch, ids.as_slice()) {
        (false, [id]) => json!({ "id": id }),
        _ => json!({ "ids": ids }),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiveIn {
    #[serde(default = "default_max")]
    max: usize,
    #[serde(default, with = "optional_duration")]
    visibility_timeout: Option<Duration>,
}

/// Messages one receive takes when the request does not say.
const DEFAULT_RECEIVE_MAX: usize = 10;

fn default_max() -> usize {
    DEFAULT_RECEIVE_MAX
}

mod optional_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => wisp_core::duration_text::parse(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

const RECEIVE_TAKES: &str = "`{\"max\": 10, \"visibility_timeout\": \"30s\"}` (both optional)";

async fn receive(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let name = parse_queue(&name)?;
    let params = match read_json(&engine, body, RECEIVE_TAKES).await? {
        None => ReceiveIn {
            max: DEFAULT_RECEIVE_MAX,
            visibility_timeout: None,
        },
        Some(value) => read_fields::<ReceiveIn>(value, RECEIVE_TAKES)
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e))?,
    };
    let received = engine
        .receive_messages(&scope.namespace, &name, params.max, params.visibility_timeout)
        .await?;
    let messages: Vec<MessageView> = received.messages.into_iter().map(MessageView::new).collect();
    Ok(Json(json!({
        "messages": messages,
        "dead_lettered": received.dead_lettered,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteIn {
    receipts: Vec<String>,
}

const DELETE_TAKES: &str = "`{\"receipts\": [\"…\"]}`: the `receipt_handle`s of received messages";

async fn delete_messages(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let name = parse_queue(&name)?;
    let value = read_json(&engine, body, DELETE_TAKES).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the body is empty: send {DELETE_TAKES}"),
        )
    })?;
    let DeleteIn { receipts } =
        read_fields(value, DELETE_TAKES).map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e))?;
    if receipts.is_empty() || receipts.len() > Limits::MAX_MESSAGES_PER_CALL {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "delete 1 to {} messages at once (this request has {})",
                Limits::MAX_MESSAGES_PER_CALL,
                receipts.len()
            ),
        ));
    }
    // The store deletes by receipt alone; a missing queue must still be a 404.
    engine.queue(&scope.namespace, &name).await?;
    let deleted = engine.delete_messages(&scope.namespace, &name, &receipts).await?;
    let stale: Vec<&String> = receipts
        .iter()
        .zip(&deleted)
        .filter(|(_, deleted)| !**deleted)
        .map(|(r, _)| r)
        .collect();
    Ok(Json(json!({
        "deleted": deleted.iter().filter(|d| **d).count(),
        "stale": stale,
    })))
}

async fn purge(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = parse_queue(&name)?;
    let purged = engine.purge_queue(&scope.namespace, &name).await?;
    Ok(Json(json!({ "purged": purged })))
}

async fn redrive(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = parse_queue(&name)?;
    let redriven = engine.redrive_queue(&scope.namespace, &name).await?;
    Ok(Json(json!({ "redriven": redriven })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_field() {
        let e = read_fields::<QueueConfig>(json!({"visibility_timeout": "soon"}), "x").unwrap_err();
        assert!(
            e.starts_with("visibility_timeout: invalid duration `soon`"),
            "{e}"
        );
        let e = read_fields::<QueueConfig>(json!({"retention": "1h", "colour": 1}), "x").unwrap_err();
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = read_fields::<QueueConfig>(json!({"dead_letter_queue": "Bad_Name"}), "x").unwrap_err();
        assert!(
            e.starts_with("dead_letter_queue: invalid queue name `Bad_Name`"),
            "{e}"
        );
        let c = read_fields::<QueueConfig>(json!({"visibility_timeout": "1s"}), "x").unwrap();
        assert_eq!(c.visibility_timeout, Duration::from_secs(1));
    }

    #[test]
    fn sends_take_one_message_or_a_batch_of_strings() {
        let (one, batch) = outgoing(json!({"body": "hi", "delay": "2s"})).unwrap();
        assert!(!batch);
        assert_eq!(
            (one[0].body.as_str(), one[0].delay),
            ("hi", Duration::from_secs(2))
        );
        let (many, batch) = outgoing(json!({"messages": [{"body": "a"}, {"body": "b"}]})).unwrap();
        assert!(batch);
        assert_eq!(many.len(), 2);
        let e = outgoing(json!({"body": {"k": 1}})).unwrap_err();
        assert!(
            e.0.detail.contains("`body` must be a string, not an object"),
            "{}",
            e.0.detail
        );
        assert!(e.0.detail.contains(r#"{"body": "{\"k\":1}"}"#), "{}", e.0.detail);
        let e = outgoing(json!({"messages": [{"body": "a"}, {"body": 2}]})).unwrap_err();
        assert!(
            e.0.detail.starts_with("message 1: `body` must be a string"),
            "{}",
            e.0.detail
        );
        let e = outgoing(json!({"messages": []})).unwrap_err();
        assert!(e.0.detail.contains("send 1 to 100"), "{}", e.0.detail);
        let e = outgoing(json!({"bdy": "x"})).unwrap_err();
        assert!(e.0.detail.contains("unknown field `bdy`"), "{}", e.0.detail);
        let e = outgoing(json!({"body": "x", "delay": "later"})).unwrap_err();
        assert!(
            e.0.detail.starts_with("delay: invalid duration"),
            "{}",
            e.0.detail
        );
    }
}

//! `/v1/topics`: pub/sub topics — create, list and delete them, subscribe functions,
//! queues and webhooks (with SNS filter policies), list and delete subscriptions, and
//! publish messages (also on the services router, for functions by their `topics`
//! grant). `docs/topics.md` is the reference.

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
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use wisp_core::filter_policy::MessageAttribute;
use wisp_core::wall::rfc3339_ms;
use wisp_core::{ErrorCode, FunctionName, PolicyScope, QueueName, TopicName};
use wisp_engine::{Engine, TopicPublish};
use wisp_store::{Endpoint, SubscriptionRecord, TopicRecord};

/// The route functions publish on, on the services router: a function publishes to
/// the topics its `topics` grant names.
pub(super) fn publish_router() -> Router<Arc<Engine>> {
    Router::new().route("/v1/topics/{name}/messages", post(publish))
}

/// The topic routes.
pub(super) fn router() -> Router<Arc<Engine>> {
    Router::new()
        .route("/v1/topics", get(list))
        .route("/v1/topics/{name}", get(show).put(put).delete(delete))
        .route(
            "/v1/topics/{name}/subscriptions",
            get(subscriptions).post(subscribe),
        )
        .route(
            "/v1/topics/{name}/subscriptions/{id}",
            axum::routing::delete(unsubscribe),
        )
        .route(
            "/v1/topics/{name}/subscriptions/{id}/dead-letters",
            get(dead_letters),
        )
        .route("/v1/topics/{name}/messages", post(publish))
}

fn parse_topic(name: &str) -> Result<TopicName, ApiError> {
    TopicName::new(name).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.to_string()))
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, detail)
}

fn topic_view(record: &TopicRecord) -> Value {
    json!({
        "name": record.name.as_str(),
        "namespace": record.namespace.as_str(),
        "arn": format!("arn:aws:sns:local:000000000000:{}", record.name),
        "created_at": rfc3339_ms(record.created_ms),
    })
}

fn subscription_view(record: &SubscriptionRecord) -> Value {
    let mut view = json!({
        "id": record.id,
        "topic": record.topic.as_str(),
        "raw_message_delivery": record.raw_message_delivery,
        "created_at": rfc3339_ms(record.created_ms),
    });
    match &record.endpoint {
        Endpoint::Function(f) => view["function"] = json!(f.as_str()),
        Endpoint::Queue(q) => view["queue"] = json!(q.as_str()),
        Endpoint::Webhook(url) => view["webhook"] = json!(url),
    }
    if let Some(filter) = &record.filter {
        view["filter_policy"] = serde_json::from_str(&filter.policy).unwrap_or(Value::Null);
        view["filter_policy_scope"] = json!(filter.scope.as_str());
    }
    view
}

async fn list(scope: Scope, State(engine): EngineState) -> Result<Json<Value>, ApiError> {
    let topics: Vec<Value> = engine
        .list_topics(&scope.namespace)
        .await?
        .iter()
        .map(topic_view)
        .collect();
    Ok(Json(json!({ "topics": topics })))
}

async fn show(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = parse_topic(&name)?;
    let record = engine.topic(&scope.namespace, &name).await?;
    let subscriptions = engine.list_subscriptions(&scope.namespace, &name).await?;
    let mut view = topic_view(&record);
    view["subscriptions"] = json!(subscriptions.len());
    Ok(Json(view))
}

async fn put(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let name = parse_topic(&name)?;
    let created = engine.create_topic(&scope.namespace, &name).await?;
    if created {
        scope.audit(&engine, "topic.create", name.as_str(), None).await;
    }
    let record = engine.topic(&scope.namespace, &name).await?;
    let (status, text) = if created {
        (StatusCode::CREATED, "created")
    } else {
        (StatusCode::OK, "unchanged")
    };
    Ok((
        status,
        Json(json!({ "status": text, "topic": topic_view(&record) })),
    )
        .into_response())
}

async fn delete(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = parse_topic(&name)?;
    engine.delete_topic(&scope.namespace, &name).await?;
    scope.audit(&engine, "topic.delete", name.as_str(), None).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn subscriptions(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = parse_topic(&name)?;
    let list: Vec<Value> = engine
        .list_subscriptions(&scope.namespace, &name)
        .await?
        .iter()
        .map(subscription_view)
        .collect();
    Ok(Json(json!({ "subscriptions": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeIn {
    function: Option<String>,
    queue: Option<String>,
    webhook: Option<String>,
    filter_policy: Option<Value>,
    filter_policy_scope: Option<String>,
    #[serde(default)]
    raw_message_delivery: bool,
}

const SUBSCRIBE_TAKES: &str = "`{\"function\": \"name\"}`, `{\"queue\": \"name\"}` or \
                               `{\"webhook\": \"https://host/path\"}`, with optional \
                               `\"filter_policy\": {…}`, `\"filter_policy_scope\": \"MessageAttributes\" | \
                               \"MessageBody\"` and (queues and webhooks) `\"raw_message_delivery\": true`";

/// The endpoint and filter a subscribe asks for.
fn subscription_in(input: SubscribeIn) -> Result<(Endpoint, Option<(String, PolicyScope)>), ApiError> {
    let endpoint = match (input.function, input.queue, input.webhook) {
        (Some(f), None, None) => Endpoint::Function(
            FunctionName::new(&f).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.to_string()))?,
        ),
        (None, Some(q), None) => Endpoint::Queue(
            QueueName::new(&q).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.to_string()))?,
        ),
        (None, None, Some(url)) => Endpoint::Webhook(url),
        _ => {
            return Err(bad(format!("name exactly one endpoint: {SUBSCRIBE_TAKES}")));
        }
    };
    let scope = match input.filter_policy_scope.as_deref() {
        None => PolicyScope::MessageAttributes,
        Some(text) => text.parse::<PolicyScope>().map_err(|e| bad(e.to_string()))?,
    };
    let filter = match input.filter_policy {
        None | Some(Value::Null) => None,
        // SNS's APIs carry the policy as JSON text: take that too.
        Some(Value::String(text)) => Some((text, scope)),
        Some(policy) => Some((policy.to_string(), scope)),
    };
    Ok((endpoint, filter))
}

async fn subscribe(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let name = parse_topic(&name)?;
    let value = read_json(&engine, body, SUBSCRIBE_TAKES)
        .await?
        .ok_or_else(|| bad(format!("the body is empty: send {SUBSCRIBE_TAKES}")))?;
    let input: SubscribeIn = read_fields(value, SUBSCRIBE_TAKES).map_err(bad)?;
    let raw = input.raw_message_delivery;
    let (endpoint, filter) = subscription_in(input)?;
    let (record, created) = engine
        .subscribe(&scope.namespace, &name, endpoint, filter, raw)
        .await?;
    let status = if created {
        scope
            .audit(&engine, "topic.subscribe", name.as_str(), Some(record.id.clone()))
            .await;
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(subscription_view(&record))).into_response())
}

async fn unsubscribe(
    scope: Scope,
    State(engine): EngineState,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let name = parse_topic(&name)?;
    engine.unsubscribe(&scope.namespace, &name, &id).await?;
    scope
        .audit(&engine, "topic.unsubscribe", name.as_str(), Some(id))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn dead_letters(
    scope: Scope,
    State(engine): EngineState,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let name = parse_topic(&name)?;
    let dead: Vec<Value> = engine
        .subscription_dead_letters(&scope.namespace, &name, &id)
        .await?
        .into_iter()
        .map(|d| {
            json!({
                "id": d.id,
                "message_id": d.message.id,
                "message": d.message.body,
                "attributes": d.message.attributes,
                "published_at": rfc3339_ms(d.message.published_ms),
                "attempts": d.attempts,
                "last_error": d.last_error,
                "reason": d.reason,
                "dead_at": rfc3339_ms(d.dead_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "dead_letters": dead })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageIn {
    message: Value,
    #[serde(default)]
    attributes: BTreeMap<String, MessageAttribute>,
}

const PUBLISH_TAKES: &str = "`{\"message\": \"text\", \"attributes\": {\"name\": {\"DataType\": \"String\", \
                             \"StringValue\": \"v\"}}}` (attributes optional), or a batch \
                             `{\"messages\": [{\"message\": …}, …]}`";

/// Reads the messages of a publish: one, or a batch.
fn publications(value: Value) -> Result<(Vec<TopicPublish>, bool), ApiError> {
    let Value::Object(mut map) = value else {
        return Err(bad(format!("the body must be a JSON object: {PUBLISH_TAKES}")));
    };
    let (items, batch) = match map.remove("messages") {
        Some(Value::Array(items)) if map.is_empty() => (items, true),
        Some(Value::Array(_)) => {
            return Err(bad(
                "a batch has only `messages`; move the other keys into its messages",
            ));
        }
        Some(_) => return Err(bad(format!("`messages` must be a list: {PUBLISH_TAKES}"))),
        None => (vec![Value::Object(map)], false),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let which = if batch {
            format!("message {i}: ")
        } else {
            String::new()
        };
        let m: MessageIn = read_fields(item, PUBLISH_TAKES).map_err(|e| bad(format!("{which}{e}")))?;
        let body = match m.message {
            Value::String(text) => text,
            Value::Null => return Err(bad(format!("{which}`message` is required: a string"))),
            other => {
                return Err(bad(format!(
                    "{which}`message` must be a string; to publish JSON, send it encoded as a string: \
                     {{\"message\": {}}}",
                    Value::String(other.to_string())
                )));
            }
        };
        out.push(TopicPublish {
            body,
            attributes: m.attributes,
        });
    }
    Ok((out, batch))
}

async fn publish(
    scope: Scope,
    State(engine): EngineState,
    platform: Option<axum::Extension<PlatformCall>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let name = parse_topic(&name)?;
    scope.caller.check_topic_grant(&name)?;
    // A function's own publishes run one hop deeper than the event it is running, so a
    // function that publishes to a topic it is subscribed to reaches the chain limit;
    // they carry its trace.
    let mut cause = scope.write_cause(&engine, platform.as_deref(), &headers);
    cause.depth = cause
        .depth
        .max(super::functions::async_options(&headers)?.chain_depth);
    let value = read_json(&engine, body, PUBLISH_TAKES)
        .await?
        .ok_or_else(|| bad(format!("the body is empty: send {PUBLISH_TAKES}")))?;
    let (messages, batch) = publications(value)?;
    let ids = engine
        .publish_batch(&scope.namespace, &name, messages, cause)
        .await?;
    let body = match (batch, ids.as_slice()) {
        (false, [id]) => json!({ "id": id }),
        _ => json!({ "ids": ids }),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_take_one_message_or_a_batch() {
        let (one, batch) = publications(json!({
            "message": "hi",
            "attributes": {"k": {"DataType": "String", "StringValue": "v"}}
        }))
        .unwrap();
        assert!(!batch);
        assert_eq!(one[0].body, "hi");
        assert_eq!(one[0].attributes["k"], MessageAttribute::string("v"));
        let (many, batch) = publications(json!({"messages": [{"message": "a"}, {"message": "b"}]})).unwrap();
        assert!(batch);
        assert_eq!(many.len(), 2);
        let e = publications(json!({"message": {"k": 1}})).unwrap_err();
        assert!(e.0.detail.contains("must be a string"), "{}", e.0.detail);
        let e = publications(json!({"mesage": "x"})).unwrap_err();
        assert!(e.0.detail.contains("unknown field `mesage`"), "{}", e.0.detail);
    }

    #[test]
    fn a_subscription_names_one_endpoint() {
        let input = |v: Value| read_fields::<SubscribeIn>(v, "x").unwrap();
        let (endpoint, filter) = subscription_in(input(json!({
            "queue": "jobs",
            "filter_policy": {"kind": ["a"]},
            "filter_policy_scope": "MessageBody"
        })))
        .unwrap();
        assert!(matches!(endpoint, Endpoint::Queue(_)));
        assert_eq!(filter.unwrap().1, PolicyScope::MessageBody);
        let (_, filter) = subscription_in(input(
            json!({"function": "f", "filter_policy": "{\"a\":[\"x\"]}"}),
        ))
        .unwrap();
        assert_eq!(filter.unwrap().0, r#"{"a":["x"]}"#);
        assert!(subscription_in(input(json!({"queue": "a", "function": "b"}))).is_err());
        assert!(subscription_in(input(json!({}))).is_err());
        let e = subscription_in(input(json!({"queue": "a", "filter_policy_scope": "Body"}))).unwrap_err();
        assert!(
            e.0.detail.contains("unknown filter policy scope"),
            "{}",
            e.0.detail
        );
    }
}

//! Topics (pub/sub): create, list and delete them, subscribe functions and queues with
//! SNS filter policies, publish messages, and the delivery worker ([`start`]) that hands
//! each matched message to each subscriber, at least once, over the store's
//! [`Topics`](wisp_store::Topics).
//!
//! A publish evaluates every subscription's filter here and stores the message with the
//! ids that matched (one transaction), then wakes the worker. The worker claims due
//! deliveries with a lease, enqueues an async invocation (SNS-shaped event) for a
//! function, sends a message for a queue or POSTs the notification to a webhook
//! ([`webhook`]), and acks; a failure is retried with exponential backoff and, after
//! [`MAX_ATTEMPTS`], becomes a dead letter of the subscription.
//!
//! Every delivery first asks the circuit breaker from the topic to its endpoint
//! ([`Engine::guard`]) and reports how it went. While the breaker is open the delivery
//! is not tried: it waits the breaker's `retry_after` and is claimed again, with no
//! attempt counted, so an endpoint that is down for a while costs neither requests
//! nor dead letters.

pub(crate) mod webhook;

use crate::breaker::Endpoint as BreakerEndpoint;
use crate::pipeline::AsyncOptions;
use crate::queues::Outgoing;
use crate::{Cause, Engine, EngineError};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use wisp_core::filter_policy::MessageAttribute;
use wisp_core::wall::{now_ms, rfc3339_ms};
use wisp_core::{ErrorCode, FilterPolicy, Limits, Namespace, PolicyScope, TopicName};
use wisp_store::{
    DeadDelivery, Delivery, Endpoint, FilterScope, NewSubscription, Publication, PublishOutcome, Subscribed,
    SubscriptionFilter, SubscriptionRecord, TopicMessage, TopicRecord,
};

/// How long a claimed delivery stays hidden from other claims.
const LEASE: Duration = Duration::from_secs(30);
/// Deliveries one claim takes.
const CLAIM_BATCH: usize = 64;
/// Deliveries of one claim handed off at once.
const CONCURRENT_DELIVERIES: usize = 16;
/// How often the worker looks for due retries when nothing wakes it.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Failed attempts after which a delivery becomes a dead letter.
pub const MAX_ATTEMPTS: u32 = 10;
/// The first retry's delay; each next one doubles, up to [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// Messages one publish call takes (SNS's `PublishBatch`).
pub const MAX_PUBLISH_BATCH: usize = 10;
/// Attributes one message carries (SNS's limit).
pub const MAX_ATTRIBUTES: usize = 10;

/// The ARN functions see for a topic.
pub fn topic_arn(topic: &TopicName) -> String {
    format!("arn:aws:sns:local:000000000000:{topic}")
}

/// 404 `topic_not_found`.
pub(crate) fn topic_not_found(name: &TopicName) -> EngineError {
    EngineError::new(
        ErrorCode::TopicNotFound,
        format!("there is no topic named `{name}`"),
    )
}

fn subscription_not_found(topic: &TopicName, id: &str) -> EngineError {
    EngineError::new(
        ErrorCode::NotFound,
        format!("topic `{topic}` has no subscription `{id}`"),
    )
}

fn bad(detail: impl Into<String>) -> EngineError {
    EngineError::new(ErrorCode::InvalidRequest, detail)
}

/// A message to publish, as the API takes it.
#[derive(Clone, Debug)]
pub struct TopicPublish {
    pub body: String,
    pub attributes: BTreeMap<String, MessageAttribute>,
}

/// A subscription's wanted filter: the policy's JSON text and its scope.
pub type FilterText = (String, PolicyScope);

fn store_scope(scope: PolicyScope) -> FilterScope {
    match scope {
        PolicyScope::MessageAttributes => FilterScope::MessageAttributes,
        PolicyScope::MessageBody => FilterScope::MessageBody,
    }
}

fn policy_scope(scope: FilterScope) -> PolicyScope {
    match scope {
        FilterScope::MessageAttributes => PolicyScope::MessageAttributes,
        FilterScope::MessageBody => PolicyScope::MessageBody,
    }
}

/// Whether `message` passes `subscription`'s filter (every message when it has none).
fn matches(subscription: &SubscriptionRecord, message: &TopicPublish) -> bool {
    let Some(filter) = &subscription.filter else {
        return true;
    };
    let scope = policy_scope(filter.scope);
    match FilterPolicy::parse(&filter.policy, scope) {
        Ok(policy) => match scope {
            PolicyScope::MessageAttributes => policy.matches_attributes(&message.attributes),
            PolicyScope::MessageBody => policy.matches_body_text(&message.body),
        },
        Err(e) => {
            tracing::warn!(
                "subscription {} has a filter policy that no longer parses ({e}); it matches nothing",
                subscription.id
            );
            false
        }
    }
}

/// Checks a message's attributes: at most [`MAX_ATTRIBUTES`], each with a known type.
fn check_attributes(which: &str, attributes: &BTreeMap<String, MessageAttribute>) -> Result<(), EngineError> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(bad(format!(
            "{which}{} attributes; a message carries at most {MAX_ATTRIBUTES}",
            attributes.len()
        )));
    }
    for (name, attribute) in attributes {
        if name.is_empty() || name.len() > 256 {
            return Err(bad(format!("{which}an attribute's name is 1 to 256 characters")));
        }
        let base = attribute
            .data_type
            .split_once('.')
            .map_or(attribute.data_type.as_str(), |(base, _)| base);
        let known = matches!(base, "String" | "Number" | "Binary");
        if !known {
            return Err(bad(format!(
                "{which}attribute `{name}`: DataType `{}` is not `String`, `Number`, `String.Array` or `Binary`",
                attribute.data_type
            )));
        }
        if attribute.data_type == "Number" && attribute.value.trim().parse::<f64>().is_err() {
            return Err(bad(format!(
                "{which}attribute `{name}`: a Number's StringValue must be a number, not `{}`",
                attribute.value
            )));
        }
    }
    Ok(())
}

/// The attributes as the SNS notification shows them: `{name: {"Type", "Value"}}`.
fn notification_attributes(attributes: &BTreeMap<String, Value>) -> Value {
    let mut out = Map::new();
    for (name, value) in attributes {
        let kind = value.get("DataType").cloned().unwrap_or(Value::Null);
        let text = value.get("StringValue").cloned().unwrap_or(Value::Null);
        out.insert(name.clone(), json!({ "Type": kind, "Value": text }));
    }
    Value::Object(out)
}

/// The SNS notification of a message (what a queue subscriber receives).
fn notification(message: &TopicMessage) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": message.id,
        "TopicArn": topic_arn(&message.topic),
        "Subject": Value::Null,
        "Message": message.body,
        "Timestamp": rfc3339_ms(message.published_ms),
        "MessageAttributes": notification_attributes(&message.attributes),
    })
}

/// The SNS event a function subscriber is invoked with.
pub(crate) fn sns_event(subscription: &SubscriptionRecord, message: &TopicMessage) -> Value {
    json!({
        "Records": [{
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "EventSubscriptionArn": format!("{}:{}", topic_arn(&message.topic), subscription.id),
            "Sns": notification(message),
        }]
    })
}

/// The delay before the next attempt after `attempts` failures.
fn backoff(attempts: u32) -> Duration {
    let factor = 1u32.checked_shl(attempts.min(16)).unwrap_or(u32::MAX);
    BASE_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

impl Engine {
    /// Creates a topic; `false` when the namespace already has it.
    pub async fn create_topic(&self, namespace: &Namespace, name: &TopicName) -> Result<bool, EngineError> {
        let record = TopicRecord {
            namespace: namespace.clone(),
            name: name.clone(),
            created_ms: now_ms(),
        };
        Ok(self.store.create_topic(&record).await?)
    }

    pub async fn topic(&self, namespace: &Namespace, name: &TopicName) -> Result<TopicRecord, EngineError> {
        self.store
            .get_topic(namespace, name)
            .await?
            .ok_or_else(|| topic_not_found(name))
    }

    pub async fn list_topics(&self, namespace: &Namespace) -> Result<Vec<TopicRecord>, EngineError> {
        Ok(self.store.list_topics(Some(namespace)).await?)
    }

    /// Deletes a topic with its subscriptions and undelivered messages.
    pub async fn delete_topic(&self, namespace: &Namespace, name: &TopicName) -> Result<(), EngineError> {
        if self.store.delete_topic(namespace, name).await? {
            Ok(())
        } else {
            Err(topic_not_found(name))
        }
    }

    /// Subscribes `endpoint` to a topic, with an optional filter policy. Returns the
    /// subscription and whether it is new (subscribing the same endpoint with the same
    /// filter again returns the existing one).
    pub async fn subscribe(
        &self,
        namespace: &Namespace,
        topic: &TopicName,
        endpoint: Endpoint,
        filter: Option<FilterText>,
        raw_message_delivery: bool,
    ) -> Result<(SubscriptionRecord, bool), EngineError> {
        self.topic(namespace, topic).await?;
        match &endpoint {
            Endpoint::Function(name) => {
                if self.function(namespace, name).is_none() {
                    return Err(EngineError::function_not_found(name.as_str()));
                }
                if raw_message_delivery {
                    return Err(bad(
                        "raw_message_delivery applies to queue and webhook subscribers only: functions get the SNS event",
                    ));
                }
            }
            Endpoint::Queue(name) => {
                if self.store.get_queue(namespace, name).await?.is_none() {
                    return Err(crate::queues::queue_not_found(name));
                }
            }
            Endpoint::Webhook(url) => {
                webhook::check_url(url)?;
            }
        }
        let filter = match filter {
            None => None,
            Some((text, scope)) => {
                let policy = FilterPolicy::parse(&text, scope).map_err(|e| bad(e.to_string()))?;
                // The empty policy passes everything: it is no filter.
                (!policy.is_empty()).then(|| SubscriptionFilter {
                    policy: policy.as_str().to_owned(),
                    scope: store_scope(scope),
                })
            }
        };
        let new = NewSubscription {
            namespace: namespace.clone(),
            topic: topic.clone(),
            endpoint,
            filter: filter.clone(),
            raw_message_delivery,
            created_ms: now_ms(),
        };
        match self.store.subscribe(&new).await? {
            Subscribed::Created(record) => Ok((record, true)),
            Subscribed::Existing(record)
                if record.filter == filter && record.raw_message_delivery == raw_message_delivery =>
            {
                Ok((record, false))
            }
            Subscribed::Existing(record) => Err(bad(format!(
                "topic `{topic}` already has subscription `{}` for this endpoint with other settings; \
                 unsubscribe it first",
                record.id
            ))),
            Subscribed::TopicNotFound => Err(topic_not_found(topic)),
        }
    }

    pub async fn list_subscriptions(
        &self,
        namespace: &Namespace,
        topic: &TopicName,
    ) -> Result<Vec<SubscriptionRecord>, EngineError> {
        self.topic(namespace, topic).await?;
        Ok(self.store.list_subscriptions(namespace, topic).await?)
    }

    /// Deletes a subscription of the topic, with its undelivered messages.
    pub async fn unsubscribe(
        &self,
        namespace: &Namespace,
        topic: &TopicName,
        id: &str,
    ) -> Result<(), EngineError> {
        self.topic(namespace, topic).await?;
        match self.store.get_subscription(id).await? {
            Some(s) if &s.namespace == namespace && &s.topic == topic => {
                self.store.unsubscribe(id).await?;
                Ok(())
            }
            _ => Err(subscription_not_found(topic, id)),
        }
    }

    /// The dead letters of a subscription of the topic, oldest first.
    pub async fn subscription_dead_letters(
        &self,
        namespace: &Namespace,
        topic: &TopicName,
        id: &str,
    ) -> Result<Vec<DeadDelivery>, EngineError> {
        self.topic(namespace, topic).await?;
        match self.store.get_subscription(id).await? {
            Some(s) if &s.namespace == namespace && &s.topic == topic => {
                Ok(self.store.list_dead_deliveries(id).await?)
            }
            _ => Err(subscription_not_found(topic, id)),
        }
    }

    /// Publishes one message; returns its id.
    pub async fn publish_message(
        &self,
        namespace: &Namespace,
        topic: &TopicName,
        body: String,
        attributes: BTreeMap<String, MessageAttribute>,
        cause: Cause,
    ) -> Result<String, EngineError> {
        let ids = self
            .publish_batch(namespace, topic, vec![TopicPublish { body, attributes }], cause)
            .await?;
        ids.into_iter()
            .next()
            .ok_or_else(|| EngineError::internal("a publish of one message gave no id"))
    }

    /// Publishes messages (1 to [`MAX_PUBLISH_BATCH`]); returns their ids in order.
    /// Each carries `cause` (its depth and trace) to every delivery.
    pub async fn publish_batch(
        &self,
        namespace: &Namespace,
        topic: &TopicName,
        messages: Vec<TopicPublish>,
        cause: Cause,
    ) -> Result<Vec<String>, EngineError> {
        self.refuse_if_stopped(namespace)?;
        if messages.is_empty() || messages.len() > MAX_PUBLISH_BATCH {
            return Err(bad(format!(
                "publish 1 to {MAX_PUBLISH_BATCH} messages at once (this request has {})",
                messages.len()
            )));
        }
        let batch = messages.len() > 1;
        for (i, m) in messages.iter().enumerate() {
            let which = if batch {
                format!("message {i}: ")
            } else {
                String::new()
            };
            if m.body.len() > Limits::MAX_MESSAGE_SIZE {
                return Err(EngineError::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "{which}{} bytes; a message holds at most {} bytes",
                        m.body.len(),
                        Limits::MAX_MESSAGE_SIZE
                    ),
                ));
            }
            check_attributes(&which, &m.attributes)?;
        }
        self.topic(namespace, topic).await?;
        let subscriptions = self.store.list_subscriptions(namespace, topic).await?;
        let now = now_ms();
        let mut publications = Vec::with_capacity(messages.len());
        for m in &messages {
            let matched = subscriptions
                .iter()
                .filter(|s| matches(s, m))
                .map(|s| s.id.clone())
                .collect();
            let attributes = m
                .attributes
                .iter()
                .map(|(k, v)| Ok((k.clone(), serde_json::to_value(v)?)))
                .collect::<Result<BTreeMap<_, _>, serde_json::Error>>()
                .map_err(|e| EngineError::internal(format!("cannot encode attributes: {e}")))?;
            publications.push(Publication {
                message: TopicMessage {
                    id: uuid::Uuid::now_v7().to_string(),
                    namespace: namespace.clone(),
                    topic: topic.clone(),
                    body: m.body.clone(),
                    attributes,
                    published_ms: now,
                    chain_depth: cause.depth,
                    trace: cause.trace.clone(),
                    parent: cause.parent.clone(),
                },
                subscriptions: matched,
            });
        }
        let outcomes = self.store.publish_many(&publications).await?;
        if outcomes.contains(&PublishOutcome::TopicNotFound) {
            return Err(topic_not_found(topic));
        }
        self.topic_wake.notify_one();
        Ok(publications.into_iter().map(|p| p.message.id).collect())
    }

    /// Hands one delivery to its endpoint.
    async fn deliver(&self, delivery: &Delivery) -> Result<(), Undelivered> {
        let subscription = &delivery.subscription;
        let message = &delivery.message;
        let namespace = &subscription.namespace;
        match &subscription.endpoint {
            Endpoint::Function(name) => {
                let payload = serde_json::to_vec(&sns_event(subscription, message))
                    .map_err(|e| EngineError::internal(format!("cannot encode the SNS event: {e}")))?;
                let options = AsyncOptions {
                    // A delivery handed out twice runs the function once.
                    idempotency_key: Some(format!("topic:{}:{}", subscription.id, message.id)),
                    chain_depth: message.chain_depth,
                    source: format!("topic:{}", message.topic),
                    qualifier: None,
                    trace: message.trace.clone(),
                    parent: message.parent.clone(),
                };
                self.enqueue(namespace, name, Bytes::from(payload), options)
                    .await?;
            }
            Endpoint::Queue(queue) => {
                let body = if subscription.raw_message_delivery {
                    message.body.clone()
                } else {
                    notification(message).to_string()
                };
                let outgoing = Outgoing {
                    body,
                    delay: Duration::ZERO,
                };
                let cause = Cause {
                    depth: message.chain_depth,
                    trace: message.trace.clone(),
                    parent: message.parent.clone(),
                };
                self.send_messages(namespace, queue, vec![outgoing], cause)
                    .await?;
            }
            Endpoint::Webhook(url) => {
                webhook::post(url, subscription, message)
                    .await
                    .map_err(|webhook::Failed(why)| Undelivered::Endpoint(why))?;
            }
        }
        Ok(())
    }

    /// Delivers and settles one claimed delivery, through its circuit breaker.
    async fn settle_delivery(&self, delivery: Delivery) {
        let subscription = &delivery.subscription;
        let caller = BreakerEndpoint::Topic {
            namespace: subscription.namespace.clone(),
            name: subscription.topic.to_string(),
        };
        let result = match self.guard(caller, breaker_callee(subscription)) {
            Err(open) => {
                // Not tried: it waits for the breaker, counting no attempt.
                let wait = Duration::from_secs(u64::from(open.retry_after.unwrap_or(1)));
                self.store.postpone_delivery(&delivery.id, due_after(wait)).await
            }
            Ok(permit) => {
                let outcome = self.deliver(&delivery).await;
                match &outcome {
                    Ok(()) => permit.success(self.breaker_now()),
                    // The endpoint's failure (or its being gone) counts against its
                    // breaker; a refusal of the message itself, or of the platform's
                    // own making (a quota, the store), does not.
                    Err(Undelivered::Endpoint(_)) => permit.failure(self.breaker_now()),
                    Err(Undelivered::Refused(e))
                        if matches!(e.code, ErrorCode::FunctionNotFound | ErrorCode::QueueNotFound) =>
                    {
                        permit.failure(self.breaker_now());
                    }
                    Err(Undelivered::Refused(_)) => permit.release(),
                }
                match outcome {
                    Ok(()) => self.store.ack_delivery(&delivery.id).await,
                    Err(e) => self.delivery_failed(&delivery, e).await,
                }
            }
        };
        if let Err(e) = result {
            tracing::warn!("cannot settle topic delivery {}: {e}", delivery.id);
        }
    }

    /// Retries a failed delivery after its backoff, or makes it a dead letter.
    async fn delivery_failed(&self, delivery: &Delivery, failure: Undelivered) -> wisp_store::Result<bool> {
        let (error, permanent) = match failure {
            Undelivered::Endpoint(why) => (why, false),
            Undelivered::Refused(e) => (
                format!("{}: {}", e.code, e.detail),
                matches!(e.code, ErrorCode::PayloadTooLarge | ErrorCode::InvalidRequest),
            ),
        };
        let attempts = delivery.attempts.saturating_add(1);
        if permanent || attempts >= MAX_ATTEMPTS {
            tracing::warn!(
                "topic `{}`: giving up on message {} for subscription {} after {attempts} attempts: {error}",
                delivery.message.topic,
                delivery.message.id,
                delivery.subscription.id
            );
            self.store
                .dead_letter_delivery(&delivery.id, &error, now_ms())
                .await
        } else {
            let next = due_after(backoff(delivery.attempts));
            self.store.retry_delivery(&delivery.id, next, &error).await
        }
    }
}

/// Why a delivery did not happen.
enum Undelivered {
    /// The platform refused it (the function or queue is gone, the message too large…).
    Refused(EngineError),
    /// The endpoint failed it (a webhook's non-2xx answer, no connection).
    Endpoint(String),
}

impl From<EngineError> for Undelivered {
    fn from(e: EngineError) -> Undelivered {
        Undelivered::Refused(e)
    }
}

/// The callee of a subscription's circuit breaker: its endpoint.
fn breaker_callee(subscription: &SubscriptionRecord) -> BreakerEndpoint {
    let namespace = subscription.namespace.clone();
    match &subscription.endpoint {
        Endpoint::Function(name) => BreakerEndpoint::Function {
            namespace,
            name: name.clone(),
        },
        Endpoint::Queue(name) => BreakerEndpoint::Queue {
            namespace,
            name: name.clone(),
        },
        Endpoint::Webhook(url) => BreakerEndpoint::Webhook(url.clone()),
    }
}

/// The wall time `wait` from now, in Unix milliseconds.
fn due_after(wait: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
}

/// Starts the delivery worker: it claims due deliveries whenever a publish wakes it,
/// and every [`POLL_EVERY`] for retries and lapsed leases.
pub(crate) fn start(engine: &Arc<Engine>) {
    let me = Arc::downgrade(engine);
    let wake: Arc<Notify> = engine.topic_wake.clone();
    tokio::spawn(async move {
        loop {
            let full = {
                let Some(engine) = me.upgrade() else { return };
                let now = now_ms();
                let lease = now.saturating_add(i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX));
                match engine.store.due_deliveries(now, CLAIM_BATCH, lease).await {
                    Ok(batch) => {
                        let full = batch.len() >= CLAIM_BATCH;
                        let engine = &engine;
                        futures::stream::iter(batch)
                            .for_each_concurrent(CONCURRENT_DELIVERIES, |delivery| async move {
                                engine.settle_delivery(delivery).await;
                            })
                            .await;
                        full
                    }
                    Err(e) => {
                        tracing::warn!("cannot claim topic deliveries: {e}");
                        false
                    }
                }
            };
            if !full {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(POLL_EVERY) => {}
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn attributes_are_checked() {
        let mut attributes = BTreeMap::new();
        attributes.insert("n".to_owned(), MessageAttribute::number("x"));
        assert!(check_attributes("", &attributes).is_err());
        attributes.insert("n".to_owned(), MessageAttribute::number("1.5"));
        attributes.insert("s".to_owned(), MessageAttribute::string_array("[\"a\"]"));
        assert!(check_attributes("", &attributes).is_ok());
        attributes.insert(
            "t".to_owned(),
            MessageAttribute {
                data_type: "Blob".to_owned(),
                value: String::new(),
            },
        );
        assert!(check_attributes("", &attributes).is_err());
    }
}

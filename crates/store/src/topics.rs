//! The [`Topics`] concern: pub/sub topics of each namespace ([`TopicRecord`], declared
//! as `[topics.NAME]`), their subscriptions ([`SubscriptionRecord`]: a function, a
//! queue or an HTTPS webhook, each with an optional filter policy), the messages
//! published to them ([`TopicMessage`]) and the durable work of handing each message to
//! each subscriber ([`Delivery`]).
//!
//! The store does not filter: the engine evaluates each subscription's filter policy
//! (kept here as text with its [`FilterScope`]) and hands [`Topics::publish`] the ids of
//! the subscriptions that matched. The store does not deliver either: the engine's topic
//! trigger claims due deliveries ([`Topics::due_deliveries`]), hands each to its
//! endpoint (a function through the async pipeline, a queue message, an HTTPS POST) and
//! reports back: [`Topics::ack_delivery`], [`Topics::retry_delivery`],
//! [`Topics::postpone_delivery`] (not tried: its circuit breaker is open) or
//! [`Topics::dead_letter_delivery`].
//!
//! # Contract
//!
//! Written so that a NATS JetStream backend keeps it with a KV bucket for topics and
//! subscriptions, and per topic one stream (the message once, its id as `Nats-Msg-Id`,
//! the matched subscription ids in a header) with one durable consumer per subscription
//! (explicit acks; the lease is the consumer's `AckWait`, a retry a `nak` with a delay,
//! a dead letter a `term` plus a record in a dead-letter stream; a consumer acks at once
//! the messages whose header does not name it):
//!
//! - **One publish reaches every matching subscriber at least once.** A publish is
//!   atomic: the message and one pending delivery for each subscription named (that
//!   still exists and belongs to the topic) are stored together or not at all, so once
//!   [`Topics::publish`] returns, nothing is lost: each delivery stays until it is
//!   acked, dead-lettered, or its subscription or topic is deleted.
//! - **A message id is written once.** Publishing an id the topic still holds (while any
//!   delivery of it is kept, pending or dead) is [`PublishOutcome::Duplicate`] and adds
//!   no delivery, so a caller that retries a publish passes the same id. Once the last
//!   delivery of a message is gone the id may be reused, as JetStream's duplicate window
//!   ends.
//! - **Deliveries are leased.** [`Topics::due_deliveries`] returns pending deliveries
//!   whose due time has come, earliest due first, and hides each until its
//!   `lease_until`; a delivery not acked, retried or dead-lettered by then is due again
//!   (its worker is presumed dead). So a delivery may be handed out more than once, and
//!   endpoints see duplicates with the same message id. Nothing orders deliveries of one
//!   subscription beyond their due times.
//! - Acking, retrying and dead-lettering name a delivery by its id and are idempotent
//!   on a delivery that is gone (they return `false`). They do not check the lease: a
//!   worker whose lease ran out may still settle the delivery, which at worst drops a
//!   duplicate that another worker holds.
//! - `attempts` counts the failures reported by [`Topics::retry_delivery`]; the engine
//!   decides from it when to give up. A lease that runs out counts nothing, nor does a
//!   [`Topics::postpone_delivery`] (JetStream: a `nak` with a delay, which the engine
//!   does not count).
//! - A subscription is unique per topic and endpoint, as in SNS: subscribing the same
//!   endpoint again returns the existing subscription unchanged
//!   ([`Subscribed::Existing`]), whatever its filter.
//! - Deleting a subscription deletes its deliveries (pending and dead); deleting a topic
//!   deletes its subscriptions, messages and deliveries. Neither is atomic with
//!   deliveries in flight: a worker settling one that is gone gets `false`.
//! - Times are the caller's clock.
//!
//! The store checks no size: the engine refuses messages past its limits before they
//! get here.

use crate::{Result, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wisp_core::{FunctionName, Namespace, QueueName, TopicName};

/// A topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub namespace: Namespace,
    pub name: TopicName,
    pub created_ms: UnixMillis,
}

/// Where a subscription delivers, stored as JSON (`{"function":"resize"}`,
/// `{"queue":"jobs"}`, `{"webhook":"https://…"}`). Functions and queues are of the
/// topic's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// An async invocation of the function, through the events pipeline.
    Function(FunctionName),
    /// A message on the platform queue.
    Queue(QueueName),
    /// An HTTP(S) POST to the URL (`http://` or `https://`), retried, then
    /// dead-lettered.
    Webhook(String),
}

/// What part of a message a filter policy applies to (SNS's `FilterPolicyScope`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FilterScope {
    #[default]
    MessageAttributes,
    MessageBody,
}

impl FilterScope {
    /// The name stored and shown: `MessageAttributes` or `MessageBody`.
    pub fn as_str(self) -> &'static str {
        match self {
            FilterScope::MessageAttributes => "MessageAttributes",
            FilterScope::MessageBody => "MessageBody",
        }
    }

    /// The scope named `name` as [`FilterScope::as_str`] gives it.
    pub fn parse(name: &str) -> Option<FilterScope> {
        match name {
            "MessageAttributes" => Some(FilterScope::MessageAttributes),
            "MessageBody" => Some(FilterScope::MessageBody),
            _ => None,
        }
    }
}

/// A subscription's filter: the policy as the user wrote it (JSON text, parsed and
/// checked by the engine; opaque to the store) and what it applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionFilter {
    pub policy: String,
    pub scope: FilterScope,
}

/// What [`Topics::subscribe`] is asked to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSubscription {
    pub namespace: Namespace,
    pub topic: TopicName,
    pub endpoint: Endpoint,
    /// `None`: every message.
    pub filter: Option<SubscriptionFilter>,
    /// Deliver the body as published, without the notification envelope.
    pub raw_message_delivery: bool,
    pub created_ms: UnixMillis,
}

/// A subscription as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    /// Given by the store (a UUIDv7 as text); opaque, unique across topics and namespaces.
    pub id: String,
    pub namespace: Namespace,
    pub topic: TopicName,
    pub endpoint: Endpoint,
    pub filter: Option<SubscriptionFilter>,
    pub raw_message_delivery: bool,
    pub created_ms: UnixMillis,
}

/// What a subscribe did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subscribed {
    /// A new subscription.
    Created(SubscriptionRecord),
    /// The topic already had a subscription for this endpoint; it is unchanged (compare
    /// its filter to tell a repeat from a conflict).
    Existing(SubscriptionRecord),
    /// There is no such topic.
    TopicNotFound,
}

/// A message published to a topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMessage {
    /// Given by the publisher's caller (a UUID); a second publish with it is a duplicate.
    pub id: String,
    pub namespace: Namespace,
    pub topic: TopicName,
    pub body: String,
    /// SNS-style message attributes (name → `{"DataType": …, "StringValue": …}` or any
    /// JSON the engine chooses); stored as a JSON object.
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// When it was published; its deliveries are due from then.
    pub published_ms: UnixMillis,
    /// How many function hops led to this publish, carried to what it invokes.
    pub chain_depth: u32,
    /// The trace root of the publish (X-Ray's `1-<8 hex>-<24 hex>`), carried as
    /// `chain_depth` is to every delivery; `None`: what a delivery invokes starts a
    /// trace of its own. Data kept with the message (a column; JetStream: a header).
    #[serde(default)]
    pub trace: Option<String>,
    /// The id of the invocation that published it, carried as `trace` is: the parent
    /// of what its deliveries invoke. `None`: no invocation published it.
    #[serde(default)]
    pub parent: Option<String>,
}

/// One publish: the message and the ids of the subscriptions whose filter it matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    pub message: TopicMessage,
    pub subscriptions: Vec<String>,
}

/// What a publish did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The message is stored with this many pending deliveries (fewer than named when a
    /// subscription was gone; zero stores nothing).
    Published { deliveries: usize },
    /// The topic already holds a message with this id; nothing changed.
    Duplicate,
    /// There is no such topic; nothing was stored.
    TopicNotFound,
}

/// One message owed to one subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Given by the store; opaque. Names the delivery to settle it.
    pub id: String,
    pub subscription: SubscriptionRecord,
    pub message: TopicMessage,
    /// Failures reported by [`Topics::retry_delivery`] so far.
    pub attempts: u32,
    /// The error of the last failure reported.
    pub last_error: Option<String>,
    /// When it became due: the publish, a retry's next attempt, or a lapsed lease.
    pub due_ms: UnixMillis,
    /// Hidden from [`Topics::due_deliveries`] until then (the lease the claim took).
    pub lease_until: UnixMillis,
}

/// A delivery given up on: the subscription's dead letter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadDelivery {
    pub id: String,
    pub subscription_id: String,
    pub message: TopicMessage,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Why it was given up on.
    pub reason: String,
    pub dead_ms: UnixMillis,
}

/// Topics, subscriptions and deliveries of every namespace. See the module docs.
///
/// Called by the control plane (topics and subscriptions: rare), by the engine when a
/// function or the API publishes (one [`Topics::publish`] or [`Topics::publish_many`] per
/// publish or batch, never on a sync request's path unless the caller publishes), and by
/// the topic trigger's loop, which claims and settles deliveries in batches. Each method
/// is one short statement or transaction.
///
/// A message's `chain_depth`, `trace` and `parent` are opaque data carried with it (SQLite:
/// columns; JetStream: headers): each of its deliveries returns them as published.
#[async_trait]
pub trait Topics: Send + Sync + 'static {
    /// Stores a topic; `false` (and nothing changes) when the namespace already has one
    /// by that name.
    async fn create_topic(&self, topic: &TopicRecord) -> Result<bool>;

    /// The topic's record; `None` when there is no such topic.
    async fn get_topic(&self, namespace: &Namespace, name: &TopicName) -> Result<Option<TopicRecord>>;

    /// The topics of `namespace` (of every namespace with `None`), by namespace, then
    /// name.
    async fn list_topics(&self, namespace: Option<&Namespace>) -> Result<Vec<TopicRecord>>;

    /// Deletes a topic with its subscriptions, messages and deliveries (pending and
    /// dead); `false` when there was no such topic (its leftovers, if any, go anyway).
    async fn delete_topic(&self, namespace: &Namespace, name: &TopicName) -> Result<bool>;

    /// Subscribes an endpoint to a topic, giving the subscription its id; see
    /// [`Subscribed`] for a topic that already has the endpoint.
    async fn subscribe(&self, subscription: &NewSubscription) -> Result<Subscribed>;

    /// The subscription with this id; `None` when there is none.
    async fn get_subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>>;

    /// The subscriptions of a topic, oldest first (by creation time, then id): what the
    /// engine filters a publish against.
    async fn list_subscriptions(
        &self,
        namespace: &Namespace,
        topic: &TopicName,
    ) -> Result<Vec<SubscriptionRecord>>;

    /// Deletes a subscription with its deliveries (pending and dead); `false` when there
    /// was none.
    async fn unsubscribe(&self, id: &str) -> Result<bool>;

    /// Stores a message and one pending delivery, due at its `published_ms`, per named
    /// subscription of its topic, atomically; see the module docs and
    /// [`PublishOutcome`]. Ids naming no subscription of the topic, and repeats, are
    /// skipped.
    async fn publish(&self, publication: &Publication) -> Result<PublishOutcome>;

    /// [`Topics::publish`] for each, with an outcome per publication in order. Each
    /// publication is atomic; the batch is not promised to be (the SQLite backend writes
    /// it in one transaction), so a caller that gets an error publishes the whole batch
    /// again, and what was stored comes back [`PublishOutcome::Duplicate`].
    async fn publish_many(&self, publications: &[Publication]) -> Result<Vec<PublishOutcome>>;

    /// Claims up to `limit` pending deliveries due at `now` (whose due time or lapsed
    /// lease is at or before it), earliest due first, and leases each until
    /// `lease_until`, hiding it from later claims until then.
    async fn due_deliveries(
        &self,
        now: UnixMillis,
        limit: usize,
        lease_until: UnixMillis,
    ) -> Result<Vec<Delivery>>;

    /// The delivery succeeded: removes it (and its message once no delivery needs it);
    /// `false` when it was gone.
    async fn ack_delivery(&self, id: &str) -> Result<bool>;

    /// The delivery failed and will be tried again: counts the attempt, keeps the error
    /// and makes it due at `next_attempt_at` (dropping its lease); `false` when it was
    /// gone or dead.
    async fn retry_delivery(&self, id: &str, next_attempt_at: UnixMillis, last_error: &str) -> Result<bool>;

    /// The delivery was not tried (its endpoint's circuit breaker is open) and waits:
    /// makes it due at `due_at` (dropping its lease) without counting an attempt or
    /// touching its last error; `false` when it was gone or dead.
    async fn postpone_delivery(&self, id: &str, due_at: UnixMillis) -> Result<bool>;

    /// Gives up on a delivery: it becomes a dead letter of its subscription, never due
    /// again; `false` when it was gone or already dead.
    async fn dead_letter_delivery(&self, id: &str, reason: &str, now: UnixMillis) -> Result<bool>;

    /// The dead letters of a subscription, oldest first (by when they died, then id).
    async fn list_dead_deliveries(&self, subscription: &str) -> Result<Vec<DeadDelivery>>;
}

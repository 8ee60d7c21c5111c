//! Platform queues and their messages, on SQS's model ([`Queues`] and its records).
//!
//! Every operation that depends on the time takes it as an argument (`now`), so the
//! store's behaviour over time is tested with a fake clock.

use crate::{Result, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wisp_core::{Namespace, QueueConfig, QueueName};

/// A queue as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRecord {
    pub namespace: Namespace,
    pub name: QueueName,
    pub config: QueueConfig,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// The message id (UUID v7 text).
    pub id: String,
    pub body: String,
    /// Invisible until `now + delay_ms`.
    pub delay_ms: u64,
    /// Event hops that led here, carried into the event of the function it triggers.
    pub chain_depth: u32,
    /// The trace root it is part of (X-Ray's `1-<8 hex>-<24 hex>`), carried as
    /// `chain_depth` is into what it triggers; `None`: that starts a trace of its own.
    /// Data kept with the message (a column; a JetStream backend: a header).
    pub trace: Option<String>,
    /// The id of the invocation that sent it, carried as `trace` is: the parent of
    /// the invocation it triggers. `None`: no invocation sent it.
    pub parent: Option<String>,
}

/// A received message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedMessage {
    pub id: String,
    /// Identifies this receive: deleting or changing visibility needs it, and a
    /// later receive of the same message makes it stale.
    pub receipt_handle: String,
    pub body: String,
    pub sent_at: UnixMillis,
    pub first_received_at: UnixMillis,
    /// Including this receive.
    pub receive_count: u32,
    pub chain_depth: u32,
    /// As sent ([`NewMessage::trace`]).
    pub trace: Option<String>,
    /// As sent ([`NewMessage::parent`]).
    pub parent: Option<String>,
}

/// What a queue holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Ready to receive.
    pub visible: u64,
    /// Received and not yet deleted, still invisible.
    pub in_flight: u64,
    /// Sent with a delay not yet over.
    pub delayed: u64,
}

/// What a queue holds, for metrics ([`Queues::queue_depths`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    pub namespace: Namespace,
    pub queue: QueueName,
    pub stats: QueueStats,
    /// When its oldest message was sent; `None` when it is empty.
    pub oldest_sent_ms: Option<UnixMillis>,
}

/// What [`Queues::receive_messages`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub messages: Vec<ReceivedMessage>,
    /// Ids of messages that had been received `max_receive_count` times and were
    /// moved to the dead-letter queue instead of being delivered.
    pub dead_lettered: Vec<String>,
}

/// Platform queues and their messages.
///
/// A message is visible when its visibility time has come. Receiving it makes it
/// invisible until the visibility timeout is over and gives it a fresh receipt handle,
/// which deleting it or changing its visibility needs; the next receive replaces the
/// handle, so the previous receiver's goes stale. Delivery is at least once: a message a
/// receiver does not delete in time is delivered again. Messages belong to one queue at a
/// time; a queue with a dead-letter queue moves a message there once it has been received
/// `max_receive_count` times.
///
/// Queues are not per function (functions send to and are triggered by them), so they
/// have no part in removing a function. Clients call these methods through the API, and
/// the engine's queue pollers receive, delete and change visibility for the functions a
/// queue triggers; each may block on I/O.
///
/// The operations on a queue's messages as a whole (send, receive, stats, purge, redrive)
/// fail with [`crate::StoreError::QueueNotFound`] when the queue does not exist; those by
/// receipt handle find no message instead. Each message changes whole; a batch is not
/// atomic in general (SQLite does each call in one transaction).
///
/// A message's `chain_depth`, `trace` and `parent` are opaque data carried with it (SQLite:
/// columns; JetStream: headers): every receive returns them as sent, and a move to the
/// dead-letter queue or a redrive keeps them.
#[async_trait]
pub trait Queues: Send + Sync + 'static {
    /// Creates or updates a queue. Returns whether it was created. Putting the same config
    /// again leaves `updated_at` alone. Called by the control plane.
    async fn put_queue(
        &self,
        namespace: &Namespace,
        name: &QueueName,
        config: &QueueConfig,
        now: UnixMillis,
    ) -> Result<bool>;

    /// A queue's record. Called by the control plane and the API.
    async fn get_queue(&self, namespace: &Namespace, name: &QueueName) -> Result<Option<QueueRecord>>;

    /// Every queue of a namespace (or of all), ordered by namespace and name. Called by the
    /// control plane and the API.
    async fn list_queues(&self, namespace: Option<&Namespace>) -> Result<Vec<QueueRecord>>;

    /// Deletes a queue and its messages. Returns whether it existed. Called by the control
    /// plane.
    ///
    /// A queue made again under the name starts empty. Messages the queue moved to its
    /// dead-letter queue stay there (a redrive passes over them while the queue is gone).
    /// (SQLite deletes the record and the messages in one transaction.)
    async fn delete_queue(&self, namespace: &Namespace, name: &QueueName) -> Result<bool>;

    /// Sends messages, in order: among messages sent without a delay and not received yet,
    /// sending order is receiving order. [`crate::StoreError::QueueNotFound`], sending
    /// nothing, if the queue does not exist.
    ///
    /// Called by the API (a client's send); an outcome's follow-up messages go through
    /// [`crate::Events::write_events`] instead. Each message is recorded whole. A failed
    /// call may have sent part of the batch (SQLite: none of it, one transaction). A
    /// message whose id the namespace holds, or held, is skipped on JetStream (the ids
    /// are fresh UUIDs, so only a repeated send has one; the events' follow-ups rely on
    /// it); SQLite does not look, as SQS does not: a caller that sends again may deliver
    /// those twice there, which at-least-once delivery allows.
    async fn send_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        messages: &[NewMessage],
        now: UnixMillis,
    ) -> Result<()>;

    /// Receives up to `max` visible messages, the longest visible first (for messages sent
    /// without a delay and not received yet, that is sending order), making each invisible
    /// until `now + visibility_ms` and giving it a fresh receipt handle.
    /// [`crate::StoreError::QueueNotFound`] if the queue does not exist.
    ///
    /// Messages past the queue's retention (counted from sending) are dropped first. A
    /// message already received `max_receive_count` times is moved to the queue's
    /// dead-letter queue instead (remembering where it came from, visible there now, its
    /// receive count reset) and the receive goes on to fill `max`; when that queue does not
    /// exist the message is delivered again, with a warning.
    ///
    /// Called by the API (a client's receive) and by the pollers of queue-triggered
    /// functions whenever messages may be visible. Each delivery changes the message whole
    /// (count, visibility and handle), and a message is delivered to one receive at a
    /// time: no two receives within its visibility timeout both get it. A moved message is
    /// never lost (SQLite moves it within the receive's one transaction, so it is in
    /// exactly one queue at any time).
    async fn receive_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        max: usize,
        visibility_ms: u64,
        now: UnixMillis,
    ) -> Result<Received>;

    /// Deletes received messages by receipt handle. Per handle: whether it deleted one (a
    /// stale or unknown handle, or one of another queue, deletes nothing). A handle stays
    /// current until the message is received again, even after its visibility timeout.
    ///
    /// Called when a receiver is done with messages: by the API, and by a poller once its
    /// function handled a batch. Each message is deleted whole (SQLite: the call in one
    /// transaction).
    async fn delete_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        receipts: &[String],
    ) -> Result<Vec<bool>>;

    /// Makes a received message visible at `visible_at` instead (sooner, to give it back;
    /// later, to keep it longer). Whether the handle was current; the handle stays current.
    ///
    /// Called by a poller to let a throttled batch come back soon.
    async fn change_visibility(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        receipt: &str,
        visible_at: UnixMillis,
    ) -> Result<bool>;

    /// How many of a queue's messages are visible, in flight and delayed at `now` (see
    /// [`QueueStats`]). [`crate::StoreError::QueueNotFound`] if the queue does not exist.
    ///
    /// Called by the API. SQLite counts in one snapshot; a backend that cannot may count a
    /// message that changes meanwhile in two places or none.
    async fn queue_stats(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        now: UnixMillis,
    ) -> Result<QueueStats>;

    /// [`Queues::queue_stats`] of every queue (of `namespace`, or of all), empty ones
    /// too, with the age of each one's oldest message, in one read: what a metrics
    /// scrape reads, however many queues there are. The order is by namespace and queue.
    /// The same snapshot caveat as [`Queues::queue_stats`] applies.
    async fn queue_depths(&self, namespace: Option<&Namespace>, now: UnixMillis) -> Result<Vec<QueueDepth>>;

    /// Deletes every message of a queue. Returns how many. Called by the API.
    async fn purge_queue(&self, namespace: &Namespace, queue: &QueueName) -> Result<u64>;

    /// Moves the messages of a dead-letter queue back to the queues they came from
    /// (visible now, receive count reset). Messages sent to it directly, or whose queue no
    /// longer exists, stay. Returns how many moved.
    ///
    /// Called by the API, at an operator's request. Each message moves whole and is never
    /// lost; a failed call may have moved some (SQLite: none, one transaction), and calling
    /// again moves the rest.
    async fn redrive_queue(
        &self,
        namespace: &Namespace,
        dead_letter_queue: &QueueName,
        now: UnixMillis,
    ) -> Result<u64>;

    /// The earliest time a message of the queue becomes visible, if it has any.
    ///
    /// Called by a queue's poller when a receive came back empty, to sleep until then (a
    /// send wakes it sooner).
    async fn next_message_visible(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
    ) -> Result<Option<UnixMillis>>;
}

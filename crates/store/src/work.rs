//! The records of durable, event-driven work: async invocation events (the async
//! pipeline's queue, its dead letters and its idempotency keys), platform queues and
//! their messages, and the last slot each cron schedule ran.
//!
//! Every operation that depends on the time takes it as an argument (`now`), so the
//! store's behaviour over time is tested with a fake clock.

use crate::{UnixMicros, UnixMillis};
use serde::{Deserialize, Serialize};
use wisp_core::{FunctionName, Namespace, QueueConfig, QueueName};

/// An async invocation to record, durably, before it is answered `202`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub namespace: Namespace,
    pub function: FunctionName,
    /// The event id (UUID v7 text), which every attempt carries as its invocation id.
    pub id: String,
    pub payload: Vec<u8>,
    /// Deduplicates: a second event of the same function with the same key, created
    /// after the `idempotent_since` given to [`crate::Store::enqueue_events`], is not
    /// recorded; the first one's id is returned instead.
    pub idempotency_key: Option<String>,
    /// How many event hops led here (0 for a client's invoke); see
    /// `Limits::MAX_CHAIN_DEPTH`.
    pub chain_depth: u32,
    /// Who sent it: `api`, `schedule:<key>`, `destination:<function>`, …
    pub source: String,
    pub created_us: UnixMicros,
    /// When it may first run (normally its creation time).
    pub run_at: UnixMillis,
    /// Written as already claimed: the engine hands a fresh event straight to a
    /// runner when it has room, so the event needs no claim of its own. Ignored when
    /// the event turns out to be a duplicate.
    pub lease: Option<Lease>,
}

/// A claim written with a new event (see [`NewEvent::lease`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// `leased_until`: as a claim's.
    pub until: UnixMillis,
    /// `first_run_us`: when the claim was taken.
    pub started_us: UnixMicros,
}

/// What [`crate::Store::enqueue_events`] did with one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Recorded as new.
    New,
    /// Not recorded: an event with the same id, or the same idempotency key within
    /// the window, exists; `id` is that event's.
    Duplicate { id: String },
}

/// Where an event is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Waiting to run (or to run again), or running under a lease.
    Pending,
    /// Ran successfully.
    Succeeded,
    /// Failed for good: a dead letter, until redriven or purged.
    Failed,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Succeeded => "succeeded",
            EventStatus::Failed => "failed",
        }
    }
}

/// An event as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub namespace: Namespace,
    pub function: FunctionName,
    pub id: String,
    pub payload: Vec<u8>,
    pub status: EventStatus,
    /// Claimed by a dispatcher until this time (only while pending).
    pub leased_until: Option<UnixMillis>,
    /// Times the function ran it and it ended (successfully or not); throttles and
    /// system errors do not count.
    pub attempts: u32,
    pub chain_depth: u32,
    pub source: String,
    pub idempotency_key: Option<String>,
    pub created_us: UnixMicros,
    /// When it was first claimed to run.
    pub first_run_us: Option<UnixMicros>,
    /// When it may run next (pending).
    pub run_at: UnixMillis,
    /// When it last changed: its creation, then each outcome and redrive (a claim
    /// does not count).
    pub updated_at: UnixMillis,
    /// The last attempt's error, as `code: message`.
    pub last_error: Option<String>,
    /// Why it failed for good: `retries_exhausted`, `event_age_exceeded`,
    /// `loop_detected`, `function_not_found`.
    pub failure: Option<String>,
    /// What the function answered, on success (and on a handled error, its error document).
    pub result: Option<Vec<u8>>,
}

impl EventRecord {
    /// `event` as [`crate::Store::write_events`] records it when it is new: pending,
    /// not yet attempted, and claimed if it came with a lease.
    pub fn fresh(event: NewEvent) -> EventRecord {
        EventRecord {
            namespace: event.namespace,
            function: event.function,
            id: event.id,
            payload: event.payload,
            status: EventStatus::Pending,
            leased_until: event.lease.map(|l| l.until),
            attempts: 0,
            chain_depth: event.chain_depth,
            source: event.source,
            idempotency_key: event.idempotency_key,
            created_us: event.created_us,
            first_run_us: event.lease.map(|l| l.started_us),
            run_at: event.run_at,
            updated_at: event.created_us.div_euclid(1000),
            last_error: None,
            failure: None,
            result: None,
        }
    }
}

/// How an attempt at an event ended, and what follows from it, applied in one
/// transaction by [`crate::Store::complete_events`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventOutcome {
    pub namespace: Namespace,
    pub id: String,
    /// The event's attempt count after this attempt.
    pub attempts: u32,
    pub resolution: Resolution,
    /// Destination records to write with it (so a crash cannot separate them).
    pub follow_ups: Vec<FollowUp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    Succeeded {
        result: Vec<u8>,
    },
    /// Back to pending, released, to run at `run_at`.
    Retry {
        run_at: UnixMillis,
        error: String,
    },
    /// A dead letter.
    Failed {
        error: String,
        failure: String,
        result: Option<Vec<u8>>,
    },
}

/// A record an outcome sends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowUp {
    /// An async invocation of a function (its `NewEvent::id` is fresh).
    Event(NewEvent),
    /// A message on a queue. A queue that no longer exists drops it (with a warning).
    Message {
        namespace: Namespace,
        queue: QueueName,
        message: NewMessage,
    },
}

/// How many events of a function are where.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    /// Pending and not leased.
    pub queued: u64,
    /// Pending under a lease.
    pub running: u64,
    pub succeeded: u64,
    /// Dead letters.
    pub failed: u64,
}

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

/// What [`crate::Store::receive_messages`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub messages: Vec<ReceivedMessage>,
    /// Ids of messages that had been received `max_receive_count` times and were
    /// moved to the dead-letter queue instead of being delivered.
    pub dead_lettered: Vec<String>,
}

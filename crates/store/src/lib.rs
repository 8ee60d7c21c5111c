//! The persistence boundary of Wisp: the [`Store`] trait and its backends.
//!
//! Everything Wisp must remember across a restart goes through [`Store`]: functions,
//! their immutable versions, code blobs, invocation logs and invocation records (one
//! per invocation: when it arrived, how long it queued and ran, whether it was a cold
//! start and how it ended), and durable, event-driven work: async invocation events
//! ([`EventRecord`]: pending, running under a lease, succeeded, or a dead letter) with
//! their idempotency keys, platform queues ([`QueueRecord`]) and their messages, and
//! the last slot each cron schedule reached. Every record belongs to a namespace.
//!
//! The embedded default is [`SqliteStore`] (one file in the data directory, WAL mode);
//! a NATS JetStream backend for clusters will implement the same trait and pass the
//! same conformance suite (`tests/conformance/`).
//!
//! The request path never calls the store: the engine keeps the registry in memory
//! and writes logs and invocation records through channels in batches. Both are
//! capped per function ([`LOG_LINES_KEPT_PER_FUNCTION`],
//! [`INVOCATIONS_KEPT_PER_FUNCTION`]), the oldest dropped. The one exception is a
//! durable async invoke, which answers `202` only once its event is recorded; the
//! engine groups those into batches too ([`Store::write_events`], which also applies the
//! outcomes of finished runs), so that path costs one transaction per batch, not per
//! request.

mod sqlite;
mod work;

pub use sqlite::SqliteStore;
pub use work::{
    Enqueued, EventCounts, EventOutcome, EventRecord, EventStatus, FollowUp, Lease, NewEvent, NewMessage,
    QueueRecord, QueueStats, Received, ReceivedMessage, Resolution,
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wisp_core::{FunctionConfig, FunctionName, Namespace, QueueConfig, QueueName, VersionId};

pub use wisp_core::wall::{UnixMicros, UnixMillis};

/// An immutable version of a function: code (by hash) plus configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub id: VersionId,
    /// Hex SHA-256 of the code.
    pub code_hash: String,
    pub code_size: u64,
    pub config: FunctionConfig,
    pub created_at: UnixMillis,
}

/// A function and the version it currently serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub namespace: Namespace,
    pub name: FunctionName,
    /// The app (manifest) that last deployed it, if any.
    pub app: Option<String>,
    pub version: VersionRecord,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// What a deploy did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum DeployOutcome {
    /// The function did not exist.
    Created,
    /// The function now serves a different version.
    Updated { previous: VersionId },
    /// The function already served exactly this version.
    Unchanged,
}

/// Which output stream a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One line a function wrote during an invocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub namespace: Namespace,
    pub function: FunctionName,
    pub invocation_id: String,
    pub time: UnixMillis,
    pub stream: LogStream,
    pub line: String,
}

/// A query for log lines, newest last.
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    pub invocation_id: Option<String>,
    /// At most this many lines (the newest ones); `0` means the default of 100.
    pub limit: usize,
}

/// One invocation, as the dispatcher saw it: when, how long it waited and ran, whether it
/// was a cold start, how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationRecord {
    pub namespace: Namespace,
    pub function: FunctionName,
    /// The invocation id (UUID v7 text), as in [`LogLine::invocation_id`].
    pub id: String,
    /// The version that ran it.
    pub version: VersionId,
    /// When it arrived.
    pub started_at: UnixMillis,
    /// It had to load code or start an instance.
    pub cold: bool,
    /// How long loading or starting took, for a cold start.
    pub init_us: Option<u64>,
    /// Time spent waiting for a concurrency slot.
    pub queue_us: u64,
    /// The run itself.
    pub run_us: u64,
    /// The error code (`ErrorCode::as_str()`), `None` on success.
    pub error: Option<String>,
}

/// A query for invocation records, newest last.
#[derive(Clone, Debug, Default)]
pub struct InvocationQuery {
    /// At most this many records (the newest ones); `0` means the default of 100.
    pub limit: usize,
    /// Only cold starts.
    pub cold_only: bool,
}

/// Totals over the invocation records a function keeps (at most
/// [`INVOCATIONS_KEPT_PER_FUNCTION`], so these describe recent traffic, not all time).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationSummary {
    pub invocations: u64,
    pub cold_starts: u64,
    /// Records with an error code.
    pub errors: u64,
    /// Median of the recorded `init_us` (nearest rank); `None` without any.
    pub init_p50_us: Option<u64>,
    /// 99th percentile of the recorded `init_us` (nearest rank); `None` without any.
    pub init_p99_us: Option<u64>,
}

/// A store error. Backends map their own failures onto these.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store's data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// A queue operation named a queue that does not exist.
    #[error("there is no queue `{0}`")]
    QueueNotFound(QueueName),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The one persistence boundary.
///
/// Methods are async and may block on I/O internally (the SQLite backend runs them
/// on tokio's blocking pool); they are called from the control plane and from
/// background writers, never per request.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records `version` of `name` (saving `code` under `version.code_hash` unless a
    /// blob with that hash is stored already) and makes it the version the function
    /// serves, all in one transaction. Idempotent: deploying the serving version again
    /// is [`DeployOutcome::Unchanged`].
    async fn deploy(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        app: Option<&str>,
        version: &VersionRecord,
        code: &[u8],
    ) -> Result<DeployOutcome>;

    /// Whether a code blob with this hash is stored in the namespace.
    async fn has_code(&self, namespace: &Namespace, code_hash: &str) -> Result<bool>;

    /// The code blob with this hash.
    async fn get_code(&self, namespace: &Namespace, code_hash: &str) -> Result<Option<Vec<u8>>>;

    /// A function and its serving version.
    async fn get_function(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
    ) -> Result<Option<FunctionRecord>>;

    /// Every function of a namespace (or of all namespaces), ordered by namespace and name.
    async fn list_functions(&self, namespace: Option<&Namespace>) -> Result<Vec<FunctionRecord>>;

    /// Deletes a function with its versions, logs, invocation records, async events
    /// (pending and dead letters), schedule state, and the code no other version uses.
    /// Returns whether it existed.
    async fn delete_function(&self, namespace: &Namespace, name: &FunctionName) -> Result<bool>;

    /// Appends log lines (a batch, in one transaction). The store keeps at most
    /// [`LOG_LINES_KEPT_PER_FUNCTION`] lines per function, dropping the oldest.
    async fn append_logs(&self, lines: &[LogLine]) -> Result<()>;

    /// Log lines of a function, oldest first, at most `query.limit` of the newest.
    async fn logs(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        query: &LogQuery,
    ) -> Result<Vec<LogLine>>;

    /// Appends invocation records (a batch, in one transaction), called by the engine's
    /// background writer. The store keeps at most [`INVOCATIONS_KEPT_PER_FUNCTION`]
    /// records per function, dropping the oldest. Records of a function that does not
    /// exist (deleted while the batch was in flight) are accepted like any other.
    async fn append_invocations(&self, records: &[InvocationRecord]) -> Result<()>;

    /// Invocation records of a function, oldest first, at most `query.limit` of the
    /// newest. Order is the order they were appended, not `started_at`.
    async fn invocations(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        query: &InvocationQuery,
    ) -> Result<Vec<InvocationRecord>>;

    /// Totals over a function's kept invocation records; all zero for a function
    /// without any.
    async fn invocation_summary(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
    ) -> Result<InvocationSummary>;

    // ---- async invocation events ----

    /// The async pipeline's group commit: records new events and applies the outcomes
    /// of finished runs, all in one transaction. Outcomes are applied first: each
    /// releases its event's lease and writes its follow-ups; one for an event that is
    /// gone (purged, its function deleted) or no longer pending (resolved already: the
    /// same batch written twice) is skipped with its follow-ups; a follow-up event
    /// whose id exists is skipped; a follow-up message to a queue that does not exist
    /// is dropped with a warning.
    ///
    /// Then each new event is recorded (with its [`NewEvent::lease`], if any), and the
    /// answer says, per event and in order, whether it is new or a duplicate; a
    /// duplicate writes nothing. An event is a duplicate when an event with its id
    /// exists (ids are unique across namespaces; an earlier event of the same batch
    /// counts), or when an event of the same namespace and function holds its
    /// idempotency key and was created at or after `idempotent_since`. A holder
    /// created before then gives the key up to the new event.
    async fn write_events(
        &self,
        events: &[NewEvent],
        idempotent_since: UnixMicros,
        outcomes: &[EventOutcome],
        now: UnixMillis,
    ) -> Result<Vec<Enqueued>>;

    /// [`Store::write_events`] with new events only.
    async fn enqueue_events(
        &self,
        events: &[NewEvent],
        idempotent_since: UnixMicros,
    ) -> Result<Vec<Enqueued>> {
        self.write_events(events, idempotent_since, &[], 0).await
    }

    /// [`Store::write_events`] with outcomes only.
    async fn complete_events(&self, outcomes: &[EventOutcome], now: UnixMillis) -> Result<()> {
        self.write_events(&[], 0, outcomes, now).await.map(drop)
    }

    /// Claims up to `limit` pending, unleased events whose `run_at <= now`, oldest
    /// `run_at` first (then oldest `created_us`): leases them until `lease_until` and
    /// sets `first_run_us` (to `now_us`) where unset. Returns them with the lease set,
    /// in that order. A lease is never taken over when it runs out: only
    /// [`Store::release_event_leases`] frees leases.
    async fn claim_events(
        &self,
        now: UnixMillis,
        now_us: UnixMicros,
        lease_until: UnixMillis,
        limit: usize,
    ) -> Result<Vec<EventRecord>>;

    /// Releases every lease (at start-up: the process that held them is gone).
    /// Returns how many were released.
    async fn release_event_leases(&self) -> Result<u64>;

    /// The earliest `run_at` of a pending, unleased event.
    async fn next_event_due(&self) -> Result<Option<UnixMillis>>;

    /// One event of the namespace, by id, whatever its status.
    async fn get_event(&self, namespace: &Namespace, id: &str) -> Result<Option<EventRecord>>;

    /// A function's events with `status`, newest `created_us` first, at most `limit`.
    async fn list_events(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        status: EventStatus,
        limit: usize,
    ) -> Result<Vec<EventRecord>>;

    /// How many of a function's events are where.
    async fn event_counts(&self, namespace: &Namespace, function: &FunctionName) -> Result<EventCounts>;

    /// Puts a function's dead letters (all, or those in `ids`) back to pending with
    /// no attempts and a chain depth of 0 (a person decided to run them: a cut loop
    /// starts afresh), aged from now (`now_us`, and `first_run_us` cleared), to run at
    /// `now`. Their `failure` and `result` are cleared, their `last_error` kept. Ids
    /// that are not dead letters of the function are passed over. Returns the ids
    /// redriven.
    async fn redrive_events(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        ids: Option<&[String]>,
        now: UnixMillis,
        now_us: UnixMicros,
    ) -> Result<Vec<String>>;

    /// Deletes a function's dead letters (all, or those in `ids`; others are passed
    /// over). Returns how many.
    async fn purge_events(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        ids: Option<&[String]>,
    ) -> Result<u64>;

    /// Deletes succeeded events created before `before_us` (kept until then to answer
    /// status queries and idempotency keys). Returns how many.
    async fn sweep_events(&self, before_us: UnixMicros) -> Result<u64>;

    // ---- queues ----
    //
    // The operations on a queue's messages as a whole (send, receive, stats, purge,
    // redrive) fail with `StoreError::QueueNotFound` when the queue does not exist;
    // those by receipt handle find no message instead.

    /// Creates or updates a queue. Returns whether it was created. Putting the same
    /// config again leaves `updated_at` alone.
    async fn put_queue(
        &self,
        namespace: &Namespace,
        name: &QueueName,
        config: &QueueConfig,
        now: UnixMillis,
    ) -> Result<bool>;

    async fn get_queue(&self, namespace: &Namespace, name: &QueueName) -> Result<Option<QueueRecord>>;

    /// Every queue of a namespace (or of all), ordered by namespace and name.
    async fn list_queues(&self, namespace: Option<&Namespace>) -> Result<Vec<QueueRecord>>;

    /// Deletes a queue and its messages. Returns whether it existed.
    async fn delete_queue(&self, namespace: &Namespace, name: &QueueName) -> Result<bool>;

    /// Sends messages (one transaction). [`StoreError::QueueNotFound`] if the queue
    /// does not exist.
    async fn send_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        messages: &[NewMessage],
        now: UnixMillis,
    ) -> Result<()>;

    /// Receives up to `max` visible messages, the longest visible first (for
    /// messages sent without a delay and not received yet, that is sending order),
    /// making them invisible until `now + visibility_ms` and giving each a fresh
    /// receipt handle, all in one transaction. A message already received
    /// `max_receive_count` times is moved to the queue's dead-letter queue instead
    /// (remembering where it came from, visible there now, its receive count reset)
    /// and the receive goes on to fill `max`; when that queue does not exist the
    /// message is delivered again, with a warning. Messages past the queue's
    /// retention (counted from sending) are dropped first. [`StoreError::QueueNotFound`]
    /// if the queue does not exist.
    async fn receive_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        max: usize,
        visibility_ms: u64,
        now: UnixMillis,
    ) -> Result<Received>;

    /// Deletes received messages by receipt handle. Per handle: whether it deleted
    /// one (a stale or unknown handle, or one of another queue, deletes nothing). A
    /// handle stays current until the message is received again, even after its
    /// visibility timeout.
    async fn delete_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        receipts: &[String],
    ) -> Result<Vec<bool>>;

    /// Makes a received message visible at `visible_at` instead. Whether the handle
    /// was current.
    async fn change_visibility(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        receipt: &str,
        visible_at: UnixMillis,
    ) -> Result<bool>;

    /// How many of a queue's messages are visible, in flight and delayed at `now`
    /// (see [`QueueStats`]). [`StoreError::QueueNotFound`] if the queue does not exist.
    async fn queue_stats(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        now: UnixMillis,
    ) -> Result<QueueStats>;

    /// Deletes every message of a queue. Returns how many.
    async fn purge_queue(&self, namespace: &Namespace, queue: &QueueName) -> Result<u64>;

    /// Moves the messages of a dead-letter queue back to the queues they came from
    /// (visible now, receive count reset). Messages sent to it directly, or whose
    /// queue no longer exists, stay. Returns how many moved.
    async fn redrive_queue(
        &self,
        namespace: &Namespace,
        dead_letter_queue: &QueueName,
        now: UnixMillis,
    ) -> Result<u64>;

    /// The earliest time a message of the queue becomes visible, if it has any.
    async fn next_message_visible(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
    ) -> Result<Option<UnixMillis>>;

    // ---- schedules ----

    /// The last slot a schedule (by [`wisp_core::Schedule::key`]) ran or skipped.
    async fn schedule_last_slot(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        schedule_key: &str,
    ) -> Result<Option<UnixMillis>>;

    /// Records that a schedule reached `slot`, with the event it fires (none for a
    /// skipped slot), in one transaction. Returns `false` and records nothing when
    /// the schedule already reached `slot` or a later one.
    async fn advance_schedule(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        schedule_key: &str,
        slot: UnixMillis,
        event: Option<&NewEvent>,
    ) -> Result<bool>;
}

/// How many log lines each function keeps.
pub const LOG_LINES_KEPT_PER_FUNCTION: usize = 10_000;

/// How many invocation records each function keeps.
pub const INVOCATIONS_KEPT_PER_FUNCTION: usize = 10_000;

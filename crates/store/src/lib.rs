//! The persistence boundary of Wisp: one trait per concern, [`Store`] over all of them, and
//! the backends.
//!
//! Everything Wisp must remember across a restart goes through fifteen traits, each with its
//! own records, in its own module:
//!
//! - [`Registry`]: functions, their numbered immutable versions, their aliases, and code
//!   blobs.
//! - [`Records`]: what invocations leave behind: log lines and one [`InvocationRecord`] per
//!   invocation (when it arrived, how long it queued and ran, whether it was a cold start,
//!   how it ended, its memory and billed duration).
//! - [`Usage`]: the rollup of invocation records per namespace, function, version and
//!   hour ([`UsageRow`]: requests, errors, billed milliseconds and MB-milliseconds), which
//!   [`Records::append_invocations`] writes and nothing removes: what was used stays
//!   billable.
//! - [`Events`]: async invocation events, the async pipeline's durable queue
//!   ([`EventRecord`]: pending, running under a lease, succeeded, or a dead letter, with its
//!   [`Failure`]), with their idempotency keys.
//! - [`Queues`]: platform queues ([`QueueRecord`]) and their messages.
//! - [`Schedules`]: the last slot each cron schedule reached.
//! - [`Namespaces`]: which namespaces exist ([`NamespaceRecord`]) and their
//!   [`NamespaceSettings`], changed by compare-and-set on a revision.
//! - [`ApiKeys`]: API keys ([`ApiKeyRecord`]: namespace, role, the secret's hash and sealed
//!   form, revocation and last use).
//! - [`Audit`]: the audit log of changes made through the control plane ([`AuditEntry`]),
//!   which outlives what it describes.
//! - [`Objects`]: buckets ([`BucketRecord`]), the metadata of their objects, and
//!   multipart uploads; the bytes are blobs ([`BlobDir`]).
//! - [`KeyValues`]: key-value stores for functions ([`KvStoreRecord`]) and their entries
//!   ([`KvEntry`]), each with a version for compare-and-set and an optional expiry.
//! - [`Secrets`]: each namespace's secrets ([`SecretRecord`]), their values sealed by the
//!   engine, with a revision for compare-and-set.
//! - [`Topics`]: pub/sub topics ([`TopicRecord`]), their subscriptions
//!   ([`SubscriptionRecord`]), and the durable deliveries of each published message to
//!   each matching subscription ([`Delivery`]), leased, retried and dead-lettered.
//! - [`Alarms`]: each namespace's alarms ([`AlarmRecord`]: the rule, its state, its
//!   latest transitions and how far their actions went), changed by compare-and-set on
//!   a revision.
//! - [`Nodes`]: the nodes serving the store ([`NodeRecord`]: each one's heartbeat and
//!   load), and the check that they share one master key.
//!
//! Every record but a node's belongs to a namespace. [`Store`] is all fifteen together, so the engine
//! holds one `Arc<dyn Store>`; it has two methods of its own, [`Store::remove_function`]
//! and [`Store::remove_namespace`], which remove a function, or everything a namespace
//! holds, from every concern. A caller names the traits it calls through
//! (`use wisp_store::{Store, Registry, Events}`).
//!
//! # Contracts
//!
//! Each method's documentation says when it is called, how often, and what it guarantees,
//! in terms a backend without transactions across concerns can keep: the embedded default,
//! [`SqliteStore`] (one file in the data directory, WAL mode), and a NATS JetStream backend
//! for clusters (KV buckets whose revisions give compare-and-set, streams with work-queue
//! consumers, and no transaction across buckets). What every backend gives:
//!
//! - One record's change is atomic: an event, a message, a function's record changes
//!   whole or not at all.
//! - What may be written twice carries an id, and a second write with the same id is a
//!   duplicate, not a second record: event ids, message ids of follow-ups, schedule events
//!   (whose ids the caller derives from the slot), invocation records (counted into
//!   usage once per run: the invocation id and its start). Callers that retry pass the same ids.
//! - A write that spans records of several concerns is ordered so that a failure midway
//!   loses nothing and a retry finishes it (see [`Events::write_events`],
//!   [`Schedules::advance_schedule`], [`Store::remove_function`],
//!   [`Store::remove_namespace`]).
//! - A record that two writers may change at once is changed by compare-and-set where a
//!   lost update would matter ([`Namespaces::update_namespace`], [`ApiKeys::revoke_key`]).
//!
//! Where the SQLite backend gives more (a whole batch, or records of several concerns, in
//! one transaction), the method says so; callers must not rely on it. Every backend passes
//! the same conformance suite (`tests/conformance/`), one concern at a time.
//!
//! Every method is async and may block on I/O internally (the SQLite backend runs each on
//! tokio's blocking pool); none is called per request. The engine keeps the registry in
//! memory and writes logs and invocation records through channels in batches. Both are
//! capped per function ([`LOG_LINES_KEPT_PER_FUNCTION`],
//! [`INVOCATIONS_KEPT_PER_FUNCTION`]), the oldest dropped. The one exception is a durable
//! async invoke, which answers `202` only once its event is recorded; the engine groups
//! those into batches too ([`Events::write_events`], which also applies the outcomes of
//! finished runs), so that path costs one write per batch, not per request. API keys are
//! checked on every request from a copy in memory, refreshed about once a second
//! ([`ApiKeys`]); their uses and the audit log are written in batches too, the audit
//! capped at [`AUDIT_ENTRIES_KEPT`].

mod alarms;
mod api_keys;
mod audit;
mod blobs;
mod events;
mod jetstream;
mod key_values;
mod namespaces;
mod nodes;
mod objects;
mod queues;
mod records;
mod registry;
mod schedules;
mod secrets;
mod sqlite;
mod topics;
mod usage;

pub use alarms::{ALARM_HISTORY_KEPT, AlarmPut, AlarmRecord, AlarmTransition, Alarms, StateChange};
pub use api_keys::{ApiKeyRecord, ApiKeys};
pub use audit::{AUDIT_ENTRIES_KEPT, Audit, AuditEntry, AuditQuery};
pub use blobs::{BlobDir, BlobHome, BlobWriter, HOME_SWEEP_GRACE, Swept, WrittenBlob};
pub use events::{
    Enqueued, EventBacklog, EventCounts, EventOutcome, EventQuery, EventRecord, EventStatus, Events, Failure,
    FollowUp, HeldLease, Lease, NewEvent, Resolution,
};
pub use jetstream::JetStreamStore;
pub use key_values::{
    KeyValues, KvCondition, KvDeleted, KvEntry, KvIncremented, KvPage, KvSet, KvSetMany, KvStoreRecord,
    KvWrite,
};
pub use namespaces::{NamespaceRecord, NamespaceSettings, Namespaces};
pub use nodes::{NodeLoad, NodeRecord, Nodes};
pub use objects::{
    BucketDeleted, BucketRecord, Condition, ListQuery, Listing, ObjectDeleted, ObjectRecord, ObjectWrite,
    Objects, PartRecord, PartWrite, PutObject, UploadRecord,
};
pub use queues::{NewMessage, QueueDepth, QueueRecord, QueueStats, Queues, Received, ReceivedMessage};
pub use records::{
    INVOCATIONS_KEPT_PER_FUNCTION, InvocationQuery, InvocationRecord, InvocationSummary,
    LOG_LINES_KEPT_PER_FUNCTION, LogLine, LogQuery, LogStream, Records, TRACE_INVOCATIONS_MAX,
};
pub use registry::{
    AppFunction, DeployOutcome, FunctionChange, FunctionRecord, FunctionWatch, PublishOptions, Registry,
    Updated, VersionRecord,
};
pub use schedules::Schedules;
pub use secrets::{SecretCondition, SecretPut, SecretRecord, Secrets};
pub use sqlite::SqliteStore;
pub use topics::{
    DeadDelivery, Delivery, Endpoint, FilterScope, NewSubscription, Publication, PublishOutcome, Subscribed,
    SubscriptionFilter, SubscriptionRecord, TopicMessage, TopicRecord, Topics,
};
pub use usage::{CapacityHeld, DAY_MS, HOUR_MS, Usage, UsageGrouping, UsageQuery, UsageRow, hour_of};

pub use wisp_core::wall::{UnixMicros, UnixMillis};

use async_trait::async_trait;
use wisp_core::{FunctionName, Namespace, QueueName};

/// A store error. Backends map their own failures onto these.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store's data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// The store could not be reached, or did not answer in time (a server down, a
    /// cluster electing a leader): a write may or may not have been made, and the same
    /// call may well succeed in a moment.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A queue operation named a queue that does not exist.
    #[error("there is no queue `{0}`")]
    QueueNotFound(QueueName),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Every concern of the store together: what the engine holds (`Arc<dyn Store>`).
///
/// Implemented for every type that implements the fifteen concern traits; a backend
/// implements those, never this. Its methods are provided, so that every backend removes
/// a function, or a namespace, the same way.
#[async_trait]
pub trait Store:
    Registry
    + Records
    + Events
    + Queues
    + Schedules
    + Namespaces
    + ApiKeys
    + Audit
    + Usage
    + Objects
    + KeyValues
    + Secrets
    + Topics
    + Alarms
    + Nodes
{
    /// Removes a function from every concern: its schedule state, its events (pending,
    /// running, succeeded and dead letters), its log lines and invocation records, and
    /// last its registry data (the function, its versions, and the code no other version
    /// uses). Returns whether the function existed, as [`Registry::delete_function`] says.
    /// Its [`Usage`] stays: what was used stays billable.
    ///
    /// Called by the control plane when a function is deleted; rare. Each concern's data
    /// goes in its own call, so this is not atomic: a failure midway returns the error
    /// and leaves the function registered (the registry goes last), with part of its
    /// other data gone, and calling this again finishes the job (every step is
    /// idempotent). The schedules go before the events, because a schedule that fires
    /// between the two steps would otherwise leave an event behind that runs.
    ///
    /// Whatever the engine writes for the function while this runs (a log batch in flight,
    /// the outcome of a run) is accepted or skipped as each concern's contract says, so
    /// the engine should stop the function's schedules and runs first.
    async fn remove_function(&self, namespace: &Namespace, name: &FunctionName) -> Result<bool> {
        Schedules::forget_function(self, namespace, name).await?;
        Events::forget_function(self, namespace, name).await?;
        Records::forget_function(self, namespace, name).await?;
        self.delete_function(namespace, name).await
    }

    /// Removes everything a namespace holds from every concern: each of its functions (as
    /// [`Store::remove_function`] does), each of its queues with their messages, each of
    /// its key-value stores with their entries, its secrets, each of its topics with their
    /// subscriptions, messages and deliveries, its alarms, its API keys, and last its
    /// record.
    /// Returns whether the record existed, as [`Namespaces::delete_namespace`] says; the
    /// contents go either way (a namespace used before it had a record loses them too).
    /// Its audit entries stay: the audit log outlives what it describes. So does its
    /// [`Usage`]: what was used stays billable.
    ///
    /// Called by the control plane when a namespace is deleted; rare. Each function, each
    /// queue, each key-value store, each topic, the keys and the record go in calls of
    /// their own, so this is not atomic: a failure midway returns the error and leaves the
    /// namespace's record (it goes last), with part of its contents gone, and calling this
    /// again finishes the job (every step is idempotent, and each listing reads what is
    /// left).
    ///
    /// Whatever is made in the namespace while this runs (a deploy, a queue, a key) may
    /// survive it, so the control plane refuses changes to a namespace it is removing and
    /// the engine stops its functions first, as for [`Store::remove_function`].
    async fn remove_namespace(&self, namespace: &Namespace) -> Result<bool> {
        for function in self.list_functions(Some(namespace)).await? {
            self.remove_function(namespace, &function.name).await?;
        }
        for queue in self.list_queues(Some(namespace)).await? {
            self.delete_queue(namespace, &queue.name).await?;
        }
        for kv in self.list_kv_stores(Some(namespace)).await? {
            self.delete_kv_store(namespace, &kv.name).await?;
        }
        for secret in self.list_secrets(Some(namespace)).await? {
            self.delete_secret(namespace, &secret.name).await?;
        }
        for topic in self.list_topics(Some(namespace)).await? {
            self.delete_topic(namespace, &topic.name).await?;
        }
        for alarm in self.list_alarms(Some(namespace)).await? {
            self.delete_alarm(namespace, &alarm.name).await?;
        }
        self.forget_namespace_keys(namespace).await?;
        self.delete_namespace(namespace).await
    }
}

impl<
    S: Registry
        + Records
        + Events
        + Queues
        + Schedules
        + Namespaces
        + ApiKeys
        + Audit
        + Usage
        + Objects
        + KeyValues
        + Secrets
        + Topics
        + Alarms
        + Nodes,
> Store for S
{
}

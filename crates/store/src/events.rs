//! Async invocation events: the async pipeline's durable queue, its dead letters and its
//! idempotency keys ([`Events`] and its records, with the typed dead-letter reason
//! [`Failure`]).
//!
//! Every operation that depends on the time takes it as an argument (`now`), so the
//! store's behaviour over time is tested with a fake clock.

use crate::{NewMessage, Result, UnixMicros, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;
use wisp_core::{ErrorCode, FunctionName, Namespace, Qualifier, QueueName};

/// An async invocation to record, durably, before it is answered `202`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub namespace: Namespace,
    pub function: FunctionName,
    /// The event id (UUID v7 text), which every attempt carries as its invocation id.
    pub id: String,
    pub payload: Vec<u8>,
    /// Deduplicates: a second event of the same function with the same key, created
    /// after the `idempotent_since` given to [`Events::write_events`], is not recorded;
    /// the first one's id is returned instead.
    pub idempotency_key: Option<String>,
    /// How many event hops led here (0 for a client's invoke); see
    /// `Limits::MAX_CHAIN_DEPTH`.
    pub chain_depth: u32,
    /// Who sent it: `api`, `schedule:<key>`, `destination:<function>`, …
    pub source: String,
    /// The version or alias it runs (`None`: `live`), resolved when it runs.
    pub qualifier: Option<Qualifier>,
    /// The trace root it is part of (X-Ray's `1-<8 hex>-<24 hex>`, see
    /// `wisp_core::trace`), carried to every attempt's invocation; `None`: its
    /// invocation starts a trace of its own. Data carried with the event, as
    /// `chain_depth` is (a column; a JetStream backend: a field of the message).
    pub trace: Option<String>,
    /// The id of the invocation that caused it (an async call's caller, the run whose
    /// destination it is, a message's sender), recorded as its invocation's parent;
    /// `None`: no invocation did. Opaque data, as `trace` is.
    pub parent: Option<String>,
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

/// A lease this node holds, as [`Events::held_leases`] lists it: the event, and its
/// lease's `leased_until`, which tells one claim of the event from a later one (each
/// claim's end is later than the one before).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeldLease {
    pub id: String,
    pub leased_until: UnixMillis,
}

/// What [`Events::write_events`] did with one new event.
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

/// Why an event failed for good (became a dead letter).
///
/// Stored, shown by the API and written into failure destination records as its stable
/// snake_case string ([`Failure::as_str`]), which never changes for a variant once it
/// has shipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The function failed on every attempt its retries allowed.
    RetriesExhausted,
    /// The event grew older than the function's maximum event age before it succeeded.
    EventAgeExceeded,
    /// The event's chain of hops grew past the limit: a loop was cut.
    LoopDetected,
    /// The function the event was for does not exist.
    FunctionNotFound,
}

impl Failure {
    /// Every reason, in declaration order.
    pub const ALL: [Failure; 4] = [
        Failure::RetriesExhausted,
        Failure::EventAgeExceeded,
        Failure::LoopDetected,
        Failure::FunctionNotFound,
    ];

    /// The stable string: `retries_exhausted`, `event_age_exceeded`, `loop_detected`,
    /// `function_not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::RetriesExhausted => "retries_exhausted",
            Failure::EventAgeExceeded => "event_age_exceeded",
            Failure::LoopDetected => "loop_detected",
            Failure::FunctionNotFound => "function_not_found",
        }
    }

    /// The reason [`Failure::as_str`] gives `s`, if any.
    pub fn parse(s: &str) -> Option<Failure> {
        Failure::ALL.into_iter().find(|failure| failure.as_str() == s)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    /// The version or alias it runs (`None`: `live`).
    pub qualifier: Option<Qualifier>,
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
    /// How long its namespace's quota has held it back, in all; its age
    /// (`max_event_age`) does not count this time.
    pub held_ms: u64,
    /// Why it failed for good (a dead letter's only).
    pub failure: Option<Failure>,
    /// What the function answered, on success (and on a handled error, its error document).
    pub result: Option<Vec<u8>>,
    /// The trace root it is part of, as [`NewEvent::trace`].
    pub trace: Option<String>,
    /// The invocation that caused it, as [`NewEvent::parent`].
    pub parent: Option<String>,
}

impl EventRecord {
    /// `event` as [`Events::write_events`] records it when it is new: pending, not yet
    /// attempted, and claimed if it came with a lease.
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
            qualifier: event.qualifier,
            idempotency_key: event.idempotency_key,
            created_us: event.created_us,
            first_run_us: event.lease.map(|l| l.started_us),
            run_at: event.run_at,
            updated_at: event.created_us.div_euclid(1000),
            last_error: None,
            held_ms: 0,
            failure: None,
            result: None,
            trace: event.trace,
            parent: event.parent,
        }
    }

    /// How long it has waited to run, in microseconds: since it was created, less the
    /// time its namespace's quota held it (what `max_event_age` is held to).
    pub fn age_us(&self, now_us: UnixMicros) -> u64 {
        let held_us = i64::try_from(self.held_ms.saturating_mul(1000)).unwrap_or(i64::MAX);
        u64::try_from(now_us.saturating_sub(self.created_us).saturating_sub(held_us)).unwrap_or(0)
    }
}

/// How an attempt at an event ended, and what follows from it, applied by
/// [`Events::write_events`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventOutcome {
    pub namespace: Namespace,
    pub id: String,
    /// The event's attempt count after this attempt.
    pub attempts: u32,
    pub resolution: Resolution,
    /// Destination records to write with it (so a crash cannot separate them). Their ids
    /// are made once, with the outcome, and kept when the outcome is written again.
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
    /// Back to pending, released, not run: its namespace's quota stops work. Runs at
    /// `run_at` (when it looks again); `held_ms` is the time held in all, this hold
    /// included (a total, so that writing the outcome twice changes nothing).
    Held {
        run_at: UnixMillis,
        held_ms: u64,
        error: String,
    },
    /// A dead letter.
    Failed {
        error: String,
        failure: Failure,
        result: Option<Vec<u8>>,
    },
}

/// A record an outcome sends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowUp {
    /// An async invocation of a function (its `NewEvent::id` is fresh).
    Event(NewEvent),
    /// A message on a queue (its `NewMessage::id` is fresh). A queue that no longer
    /// exists drops it (with a warning).
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

/// One function's events waiting or dead, for metrics ([`Events::event_backlog`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBacklog {
    pub namespace: Namespace,
    pub function: FunctionName,
    /// Pending and not leased.
    pub queued: u64,
    /// Pending under a lease.
    pub running: u64,
    /// Dead letters.
    pub failed: u64,
    /// When the oldest pending event was created; `None` when none is pending.
    pub oldest_pending_ms: Option<UnixMillis>,
}

/// A page of a function's events of one status, as a person browses them
/// ([`Events::browse_events`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventQuery {
    pub namespace: Namespace,
    pub function: FunctionName,
    pub status: EventStatus,
    /// Only events after this one in the order: the `created_us` and id of the last event
    /// of the page before (so events created in the same microsecond are neither lost nor
    /// repeated across pages); `None`: from the newest.
    pub before: Option<(UnixMicros, String)>,
    /// At most this many events.
    pub limit: usize,
}

/// Async invocation events: the async pipeline's durable queue and its dead letters.
///
/// An event is `pending` (due at `run_at`; running while it holds a lease), `succeeded`
/// (kept until swept, to answer status queries and idempotency keys) or `failed` (a dead
/// letter, until redriven or purged). The engine's async pipeline writes new events and
/// outcomes ([`Events::write_events`]) and claims due events to run
/// ([`Events::claim_events`]); the API reads them and operates on dead letters. Every
/// method may block on I/O.
///
/// Each event's record changes whole (a backend keeps one record per event and changes it
/// by compare-and-set); event ids are unique across namespaces. Batches are not atomic in
/// general: a failed call may have applied part of its batch, and the caller retries with
/// the same values, which the contracts below make safe. (SQLite applies each call in one
/// transaction, all or nothing.)
///
/// An event's `chain_depth`, `trace` and `parent` are opaque data to the store: written with the
/// event and read back unchanged with every claim and query, never interpreted (SQLite:
/// columns; JetStream: fields of the event's record).
#[async_trait]
pub trait Events: Send + Sync + 'static {
    /// The async pipeline's group commit: applies the outcomes of finished runs, then
    /// records new events. Answers, per new event and in order, whether it is new or a
    /// duplicate.
    ///
    /// Called continuously under load by the engine's one async writer, one call at a
    /// time: each call carries the events that arrived (each a durable async invoke that
    /// answers `202` once this returns) and the outcomes that finished while the previous
    /// call ran. It is the one store write on a request's path, so a call must cost about
    /// one write per batch, not per event. `now` is when the outcomes are recorded (their
    /// events' `updated_at`, their follow-up messages' `sent_at`).
    ///
    /// Outcomes, each on its own:
    /// - An outcome changes its event's record whole, and only while the event is pending.
    ///   One for an event that is gone (purged, its function removed) or no longer pending
    ///   (resolved already: the same outcome written twice) is skipped with its follow-ups,
    ///   so writing an outcome again changes nothing.
    /// - Its follow-ups are never lost once the outcome is recorded, and never recorded
    ///   twice. Follow-ups carry fresh ids, made with the outcome and kept when the caller
    ///   writes it again; a backend without transactions across concerns writes them
    ///   first, deduplicated by id, and then the outcome, so a failure in between leaves
    ///   follow-ups that the retry finds already written. A follow-up event whose id exists
    ///   is skipped; a follow-up message to a queue that does not exist is dropped with a
    ///   warning. (SQLite writes each outcome with its follow-ups in the call's one
    ///   transaction.)
    ///
    /// New events, in order:
    /// - An event is a duplicate when an event with its id exists (an earlier event of the
    ///   same call counts): the answer names its own id. So an event recorded by a call
    ///   that then failed is a duplicate of itself when the caller writes it again.
    /// - It is also a duplicate when an event of the same namespace and function holds its
    ///   idempotency key and was created at or after `idempotent_since`: the answer names
    ///   the holder. A holder created before then gives the key up to the new event.
    /// - A duplicate writes nothing (its lease is ignored); a new event is recorded as
    ///   [`EventRecord::fresh`] says, claimed already when it comes with a lease.
    async fn write_events(
        &self,
        events: &[NewEvent],
        idempotent_since: UnixMicros,
        outcomes: &[EventOutcome],
        now: UnixMillis,
    ) -> Result<Vec<Enqueued>>;

    /// [`Events::write_events`] with new events only.
    async fn enqueue_events(
        &self,
        events: &[NewEvent],
        idempotent_since: UnixMicros,
    ) -> Result<Vec<Enqueued>> {
        self.write_events(events, idempotent_since, &[], 0).await
    }

    /// [`Events::write_events`] with outcomes only.
    async fn complete_events(&self, outcomes: &[EventOutcome], now: UnixMillis) -> Result<()> {
        self.write_events(&[], 0, outcomes, now).await.map(drop)
    }

    /// Claims up to `limit` pending, unleased events whose `run_at <= now`, oldest
    /// `run_at` first (then oldest `created_us`): leases them until `lease_until` and sets
    /// `first_run_us` (to `now_us`) where unset. Returns them with the lease set, in that
    /// order.
    ///
    /// Called by the engine's dispatcher whenever it has room to run events and some may
    /// be due (after a wake-up, or at [`Events::next_event_due`]).
    ///
    /// Each claim is a compare-and-set of the event's record, so no two claims return the
    /// same event. A lease never runs out by itself: it is held until the event's outcome
    /// is written or [`Events::release_event_leases`] frees it (a run has its own timeout,
    /// and only a restart loses runs).
    async fn claim_events(
        &self,
        now: UnixMillis,
        now_us: UnixMicros,
        lease_until: UnixMillis,
        limit: usize,
    ) -> Result<Vec<EventRecord>>;

    /// Releases this node's leases: the events are due again, keeping their
    /// `first_run_us`. Returns how many were released.
    ///
    /// Called once at start-up, before the first claim: the process that held the leases
    /// is gone. With SQLite (one node: its data directory is locked) that is every lease;
    /// with a store several nodes share, only those held under this node's name (which
    /// it keeps across restarts), never another node's runs in flight.
    async fn release_event_leases(&self) -> Result<u64>;

    /// Releases the leases held by node `node`, which is gone (its heartbeat stopped:
    /// [`crate::Nodes`]), so its events run again elsewhere. Returns how many.
    ///
    /// Called by the other nodes once they see it gone; several may call it at once (each
    /// release is a compare-and-set, so an event is released once). A node that is only
    /// cut off from the store and still running loses its leases too: its runs' outcomes
    /// are then skipped and the events run again (at least once, never lost). SQLite has
    /// one node, so there is nothing to release: `0`.
    async fn release_node_leases(&self, node: &str) -> Result<u64>;

    /// The leases this node holds (with SQLite, every lease), in no order.
    ///
    /// With [`Events::release_leases`], how a live node finds and frees the leases it holds
    /// without running their events: a claim or a write of new events whose commit
    /// happened but whose answer was lost (a store server killed mid-commit) leaves its
    /// events leased to a node that never heard it got them, and they would wait for
    /// that node's restart. The engine lists them now and then, and frees those it has
    /// not been running for two looks in a row.
    async fn held_leases(&self) -> Result<Vec<HeldLease>>;

    /// Releases each of `leases` that is still as listed: the event pending and leased
    /// by this node until the same `leased_until` (a compare-and-set: an event resolved
    /// or claimed again meanwhile is left alone). The events are due again, keeping
    /// their `first_run_us`. Returns how many were released.
    async fn release_leases(&self, leases: &[HeldLease]) -> Result<u64>;

    /// Makes every event of the namespace (or of one of its functions) held for `code`
    /// due at `now`: pending, not leased, last resolved [`Resolution::Held`] with
    /// `last_error` carrying that code (`quota_exceeded`, `function_disabled`), and due
    /// later; the part of its hold not served is taken off its `held_ms`. Returns how
    /// many. Called when what held them is gone (the namespace's quota no longer stops
    /// work, the function is enabled), so that held events run at once rather than at
    /// their next look.
    async fn release_held_events(
        &self,
        namespace: &Namespace,
        function: Option<&FunctionName>,
        code: ErrorCode,
        now: UnixMillis,
    ) -> Result<u64>;

    /// The earliest `run_at` of a pending, unleased event, if any.
    ///
    /// Called by the dispatcher when it has nothing to claim, to sleep until then (a new
    /// event wakes it sooner).
    async fn next_event_due(&self) -> Result<Option<UnixMillis>>;

    /// One event of the namespace, by id, whatever its status. Called by the API (an
    /// async invoke's status).
    async fn get_event(&self, namespace: &Namespace, id: &str) -> Result<Option<EventRecord>>;

    /// A function's events with `status`, newest `created_us` first, at most `limit`.
    /// Called by the API.
    async fn list_events(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        status: EventStatus,
        limit: usize,
    ) -> Result<Vec<EventRecord>>;

    /// A function's events of one status, newest `created_us` first and, among events
    /// created in the same microsecond, greatest id first; at most `query.limit`,
    /// starting after `query.before`. The whole record is returned, payload and result
    /// included.
    ///
    /// Called by the dashboard's events page, a page at a time at a person's pace; never
    /// on a request's path. Pages are separate reads, not one snapshot: an event that
    /// changes status between two pages shows as each page found it, and one redriven
    /// meanwhile (its `created_us` renewed, see [`Events::redrive_events`]) may show on
    /// two pages or on none. One function and one status, because that is the order a
    /// backend keeps anyway to list them ([`Events::list_events`]; SQLite's
    /// `events_by_function`, a JetStream subject per function and status): browsing
    /// must not make every enqueue keep one more order. A namespace's overview is
    /// [`Events::event_backlog`].
    async fn browse_events(&self, query: &EventQuery) -> Result<Vec<EventRecord>>;

    /// How many of a function's events are where. Called by the API. SQLite counts in one
    /// snapshot; a backend that cannot may count an event that changes meanwhile in two
    /// places or none.
    async fn event_counts(&self, namespace: &Namespace, function: &FunctionName) -> Result<EventCounts>;

    /// Every function's pending and dead events, counted (of `namespace`'s functions, or
    /// of all), in one read: what a metrics scrape reads, however many functions there
    /// are. Functions with neither are left out; the order is by namespace and function.
    /// Like [`Events::event_counts`], a backend that cannot count in one snapshot may
    /// count an event that changes meanwhile in two places or none (on JetStream: the
    /// stream's per-subject counts, with the oldest pending from the first message).
    async fn event_backlog(&self, namespace: Option<&Namespace>) -> Result<Vec<EventBacklog>>;

    /// Puts a function's dead letters (all, or those in `ids`) back to pending with no
    /// attempts and a chain depth of 0 (a person decided to run them: a cut loop starts
    /// afresh), aged from now (`now_us`, and `first_run_us` cleared), to run at `now`.
    /// Their `failure` and `result` are cleared, their `last_error` kept. Ids that are not
    /// dead letters of the function are passed over. Returns the ids redriven.
    ///
    /// Called by the API, at an operator's request. Each event changes whole; a failed
    /// call may have redriven some (SQLite: none, one transaction), and calling again
    /// redrives the rest, since the redriven ones are dead letters no longer.
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
    ///
    /// Called by the API, at an operator's request. Like [`Events::redrive_events`], a
    /// failed call may have purged some, and calling again purges the rest.
    async fn purge_events(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        ids: Option<&[String]>,
    ) -> Result<u64>;

    /// Deletes succeeded events created before `before_us` (kept until then to answer
    /// status queries and idempotency keys; a swept event's key is free again). Returns
    /// how many.
    ///
    /// Called periodically by the engine. Pending events and dead letters are never swept.
    async fn sweep_events(&self, before_us: UnixMicros) -> Result<u64>;

    /// Deletes every event of one function, whatever its status: pending (queued or
    /// running), succeeded, and dead letters. Other functions, and the same name in other
    /// namespaces, keep theirs.
    ///
    /// Called by [`crate::Store::remove_function`]. Idempotent. An outcome written
    /// afterwards for a deleted event is skipped with its follow-ups, as for any event
    /// that is gone.
    async fn forget_function(&self, namespace: &Namespace, function: &FunctionName) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::Failure;

    #[test]
    fn failures_have_stable_strings() -> Result<(), serde_json::Error> {
        let strings = [
            "retries_exhausted",
            "event_age_exceeded",
            "loop_detected",
            "function_not_found",
        ];
        for (failure, string) in Failure::ALL.into_iter().zip(strings) {
            assert_eq!(failure.as_str(), string);
            assert_eq!(failure.to_string(), string);
            assert_eq!(Failure::parse(string), Some(failure));
            assert_eq!(serde_json::to_string(&failure)?, format!("\"{string}\""));
            assert_eq!(
                serde_json::from_str::<Failure>(&format!("\"{string}\""))?,
                failure
            );
        }
        assert_eq!(Failure::parse("RetriesExhausted"), None);
        assert_eq!(Failure::parse(""), None);
        assert!(serde_json::from_str::<Failure>("\"gremlins\"").is_err());
        Ok(())
    }
}

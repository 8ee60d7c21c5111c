//! The [`Alarms`] concern: each namespace's alarms ([`AlarmRecord`]): the rule as the
//! user wrote it, the state the engine last judged, and the latest changes of state
//! ([`AlarmTransition`]), with how far their actions have been carried out.
//!
//! # Contract
//!
//! Written so that a NATS JetStream backend keeps it with one KV bucket, one entry per
//! alarm (key `namespace.name`), whose revision is [`AlarmRecord::revision`]:
//!
//! - **One record per alarm, changed whole.** The rule, the state, the history and the
//!   notification mark live in the one record, so every change is one atomic write.
//! - **State changes are compare-and-set.** [`Alarms::set_alarm_state`] writes only if
//!   the record's revision is still the one the evaluator read, so of two evaluators
//!   (two nodes, or one racing a rule's update) exactly one records a change, and only
//!   the one that recorded it starts its actions: a change's actions start once.
//! - **Transitions are numbered.** Each recorded change gets the next `seq` (1, 2, …),
//!   never reused for the alarm while its record lives. The history keeps the latest
//!   [`ALARM_HISTORY_KEPT`], oldest first.
//! - **Notification is marked, not assumed.** [`AlarmRecord::notified`] is the `seq`
//!   through which actions were carried out (or given up). A change recorded but not
//!   marked (the process died between) is carried out again after a restart, so actions
//!   are at-least-once, each carrying the change's `seq`. Marking only moves forward.
//! - Updating a rule ([`Alarms::put_alarm`]) keeps the state, history and mark (as
//!   CloudWatch's `PutMetricAlarm` does); the next evaluation judges the new rule.
//! - Times are the caller's clock.

use crate::{Result, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wisp_core::{AlarmName, AlarmSpec, AlarmState, Namespace};

/// How many transitions an alarm's record keeps, the oldest dropped first.
pub const ALARM_HISTORY_KEPT: usize = 100;

/// One change of an alarm's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlarmTransition {
    /// 1 for the alarm's first change, then 2, 3, …
    pub seq: u64,
    pub at_ms: UnixMillis,
    pub from: AlarmState,
    pub to: AlarmState,
    /// Why, in words: which datapoints crossed the threshold, or why there were none.
    pub reason: String,
    /// The latest datapoint, if the period had one.
    pub value: Option<f64>,
    /// What went wrong carrying out its actions, one line per action that failed for
    /// good; empty when they all succeeded or have not run yet (see
    /// [`AlarmRecord::notified`]).
    #[serde(default)]
    pub action_errors: Vec<String>,
}

/// An alarm as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlarmRecord {
    pub namespace: Namespace,
    pub name: AlarmName,
    pub spec: AlarmSpec,
    /// `INSUFFICIENT_DATA` until the first change.
    pub state: AlarmState,
    /// Why it is in its state (the last transition's reason; for a new alarm, that it
    /// has not been evaluated yet).
    pub reason: String,
    /// Since when it is in its state (its creation, before the first change).
    pub state_since_ms: UnixMillis,
    pub created_ms: UnixMillis,
    /// When the rule was last written.
    pub updated_ms: UnixMillis,
    /// The latest transitions, oldest first, at most [`ALARM_HISTORY_KEPT`].
    pub history: Vec<AlarmTransition>,
    /// The `seq` of the latest transition (0: none yet).
    pub transitions: u64,
    /// The `seq` through which actions were carried out (0: none).
    pub notified: u64,
    /// Changes with every write of the record, to a larger value; what
    /// [`Alarms::set_alarm_state`] compares. Opaque otherwise.
    pub revision: u64,
}

/// What every backend does to a record; a backend reads it, calls one of these, and
/// writes it back on the revision it read.
impl AlarmRecord {
    /// A new alarm: not evaluated yet, so `INSUFFICIENT_DATA` since `now`, with no history.
    /// Its revision is set when it is saved.
    pub fn new(namespace: Namespace, name: AlarmName, spec: AlarmSpec, now: UnixMillis) -> AlarmRecord {
        AlarmRecord {
            namespace,
            name,
            spec,
            state: AlarmState::InsufficientData,
            reason: "not evaluated yet".to_owned(),
            state_since_ms: now,
            created_ms: now,
            updated_ms: now,
            history: Vec::new(),
            transitions: 0,
            notified: 0,
            revision: 0,
        }
    }

    /// Appends `change` as the next transition, moves the state to it, and drops the
    /// oldest transitions past [`ALARM_HISTORY_KEPT`].
    pub fn apply(&mut self, change: StateChange) {
        let seq = self.transitions + 1;
        self.history.push(AlarmTransition {
            seq,
            at_ms: change.at_ms,
            from: self.state,
            to: change.to,
            reason: change.reason.clone(),
            value: change.value,
            action_errors: Vec::new(),
        });
        let excess = self.history.len().saturating_sub(ALARM_HISTORY_KEPT);
        self.history.drain(..excess);
        self.state = change.to;
        self.reason = change.reason;
        self.state_since_ms = change.at_ms;
        self.transitions = seq;
    }

    /// Moves the mark forward to `seq` and gives transition `seq`, if still held, its
    /// `errors`. Returns whether anything changed.
    pub fn mark_notified(&mut self, seq: u64, errors: Vec<String>) -> bool {
        let mut changed = seq > self.notified;
        self.notified = self.notified.max(seq);
        if let Some(transition) = self.history.iter_mut().find(|t| t.seq == seq)
            && transition.action_errors != errors
        {
            transition.action_errors = errors;
            changed = true;
        }
        changed
    }

    /// The transitions whose actions have not been carried out yet, oldest first.
    pub fn unnotified(&self) -> impl Iterator<Item = &AlarmTransition> {
        self.history.iter().filter(|t| t.seq > self.notified)
    }
}

/// A change of state to record.
#[derive(Clone, Debug, PartialEq)]
pub struct StateChange {
    pub to: AlarmState,
    pub reason: String,
    pub value: Option<f64>,
    pub at_ms: UnixMillis,
}

/// What [`Alarms::put_alarm`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum AlarmPut {
    /// There was no such alarm; it is made, `INSUFFICIENT_DATA`.
    Created(AlarmRecord),
    /// Its rule is replaced; state, history and mark kept.
    Updated(AlarmRecord),
    /// Its rule was this already; nothing was written.
    Unchanged(AlarmRecord),
}

impl AlarmPut {
    pub fn record(&self) -> &AlarmRecord {
        match self {
            AlarmPut::Created(r) | AlarmPut::Updated(r) | AlarmPut::Unchanged(r) => r,
        }
    }
}

/// Each namespace's alarms. Called by the control plane (rules) and by the engine's
/// evaluator (state, marks), a few times per alarm per period at most; never per
/// request.
#[async_trait]
pub trait Alarms: Send + Sync + 'static {
    /// Creates an alarm, or replaces its rule (see [`AlarmPut`]). A new alarm is
    /// `INSUFFICIENT_DATA` with reason "not evaluated yet", no history, `state_since_ms`
    /// and `created_ms` `now`. Two puts racing on a new name: one creates, the other
    /// updates (a KV create, then an update on its revision).
    async fn put_alarm(
        &self,
        namespace: &Namespace,
        name: &AlarmName,
        spec: &AlarmSpec,
        now: UnixMillis,
    ) -> Result<AlarmPut>;

    /// An alarm's record.
    async fn alarm(&self, namespace: &Namespace, name: &AlarmName) -> Result<Option<AlarmRecord>>;

    /// A namespace's alarms (`None`: every namespace's), ordered by namespace then name.
    async fn list_alarms(&self, namespace: Option<&Namespace>) -> Result<Vec<AlarmRecord>>;

    /// Records a change of state if the record's revision is still `revision`: sets the
    /// state, reason and `state_since_ms` (`change.at_ms`), appends a transition with
    /// `seq` = `transitions + 1` and `from` the state it had, and drops the oldest past
    /// [`ALARM_HISTORY_KEPT`]. Returns the updated record; `None`, writing nothing, when
    /// the alarm is gone or its revision moved (read it again and judge again).
    ///
    /// Recording a change to the state it has is allowed (it is a transition all the
    /// same); the engine does not ask for one.
    async fn set_alarm_state(
        &self,
        namespace: &Namespace,
        name: &AlarmName,
        revision: u64,
        change: &StateChange,
    ) -> Result<Option<AlarmRecord>>;

    /// Marks transition `seq`'s actions carried out: `notified` becomes
    /// `max(notified, seq)` and, if the history still holds `seq`, its `action_errors`
    /// become `errors`. Returns `false` when the alarm is gone, or `seq` is past its
    /// `transitions` (nothing written). Idempotent. Not compare-and-set for the
    /// caller: a backend without transactions reads, changes and writes on the
    /// revision it read, again until it lands, so it never undoes a concurrent change
    /// of state.
    async fn mark_alarm_notified(
        &self,
        namespace: &Namespace,
        name: &AlarmName,
        seq: u64,
        errors: &[String],
    ) -> Result<bool>;

    /// Deletes an alarm. Returns whether it existed. Idempotent.
    async fn delete_alarm(&self, namespace: &Namespace, name: &AlarmName) -> Result<bool>;
}

//! Cron schedule state: the last slot each schedule of a function reached ([`Schedules`]).

use crate::{NewEvent, Result, UnixMillis};
use async_trait::async_trait;
use wisp_core::{FunctionName, Namespace};

/// The last slot each cron schedule reached (ran or skipped), keyed by namespace,
/// function and [`wisp_core::Schedule::key`].
///
/// Each schedule of a deployed function has one task in the engine: it reads where the
/// schedule stopped when it starts, then advances it once per slot. Nothing else writes
/// here. Every method may block on I/O.
#[async_trait]
pub trait Schedules: Send + Sync + 'static {
    /// The last slot the schedule ran or skipped; `None` for one that never advanced.
    ///
    /// Called when a schedule's task starts (at start-up and after a deploy), to catch up
    /// or skip from there.
    async fn schedule_last_slot(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        schedule_key: &str,
    ) -> Result<Option<UnixMillis>>;

    /// Records that the schedule reached `slot`, with the event the slot fires (none for a
    /// skipped slot). Returns `false` and records nothing when the schedule already reached
    /// `slot` or a later one.
    ///
    /// Called by the schedule's task once per slot it reaches.
    ///
    /// Guarantees:
    /// - The slot never goes backwards: it only moves to a later slot, and advancing to a
    ///   slot already reached (or an earlier one) records nothing, not even its event.
    /// - The slot is never recorded without its event. The caller derives the event's id
    ///   from the schedule and the slot, so recording it twice is a duplicate, skipped like
    ///   an event of [`crate::Events::write_events`] whose id exists, not a second event. A
    ///   backend without transactions across concerns reads the slot (and its revision),
    ///   records the event, then moves the slot by compare-and-set on that revision; a
    ///   failure in between leaves the event recorded and the slot behind, and the next
    ///   advance to that slot moves it without a second event. (SQLite records both in one
    ///   transaction.)
    async fn advance_schedule(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        schedule_key: &str,
        slot: UnixMillis,
        event: Option<&NewEvent>,
    ) -> Result<bool>;

    /// Drops the state of every schedule of one function; other functions, and the same
    /// name in other namespaces, keep theirs. Events the schedules fired are not touched
    /// ([`crate::Events::forget_function`] drops those).
    ///
    /// Called by [`crate::Store::remove_function`]. Idempotent. A schedule advanced
    /// afterwards starts afresh, as for a function deployed anew.
    async fn forget_function(&self, namespace: &Namespace, function: &FunctionName) -> Result<()>;
}

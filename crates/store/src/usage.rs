//! Usage: the rollup of invocation records per namespace × function × version × hour
//! ([`Usage`] and its rows), what metering and billing read.
//!
//! [`crate::Records::append_invocations`] writes it: each invocation record is counted
//! once, into the hour its `started_at` falls in (UTC). Usage is not capped, and neither
//! [`crate::Records::forget_function`] nor [`crate::Store::remove_namespace`] drops it:
//! what was used stays billable after the function or the namespace is gone.

use crate::{Result, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wisp_core::{FunctionName, Namespace, VersionId};

/// Milliseconds in an hour, the rollup's finest period.
pub const HOUR_MS: UnixMillis = 3_600_000;

/// Milliseconds in a day (UTC days: Unix time has no leap seconds).
pub const DAY_MS: UnixMillis = 24 * HOUR_MS;

/// The start of the UTC hour `at` falls in (floored, also before 1970).
pub fn hour_of(at: UnixMillis) -> UnixMillis {
    at.div_euclid(HOUR_MS) * HOUR_MS
}

/// The sums of one group of a [`UsageQuery`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub namespace: Namespace,
    /// `None` unless grouped by function or version.
    pub function: Option<FunctionName>,
    /// `None` unless grouped by version.
    pub version: Option<VersionId>,
    /// The start of the hour or day (UTC) when grouped by hour or day; `None` otherwise.
    pub period: Option<UnixMillis>,
    /// Invocations counted.
    pub requests: u64,
    /// Invocations counted that have an error code.
    pub errors: u64,
    /// Σ `billed_ms`.
    pub billed_ms: u64,
    /// Σ `memory_mb × billed_ms` (GB-seconds = `mb_ms / 1024 / 1000`).
    pub mb_ms: u64,
    /// The part of `mb_ms` that ran on reserved capacity.
    pub reserved_mb_ms: u64,
    /// Reserved capacity held (`min_instances × memory × time`), in MB-ms.
    pub capacity_mb_ms: u64,
}

/// Reserved capacity held by a function version within one hour, to add to usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapacityHeld {
    pub namespace: Namespace,
    pub function: FunctionName,
    pub version: VersionId,
    /// The start of the UTC hour.
    pub hour: UnixMillis,
    pub mb_ms: u64,
}

/// How a [`UsageQuery`] groups its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageGrouping {
    /// One row per namespace.
    #[default]
    Namespace,
    /// One row per namespace and function.
    Function,
    /// One row per namespace, function and version.
    Version,
    /// One row per namespace and UTC day (all its functions together).
    Day,
    /// One row per namespace and UTC hour (all its functions together).
    Hour,
}

/// A query for usage: which namespace and function, which hours, grouped how.
///
/// Counts are per hour, so the bounds select hours: an hour counts when it overlaps
/// `[from, to)`, i.e. the store floors `from` to its hour and takes every hour that
/// starts before `to`. Bounds on the hour select exactly the hours between them; a day
/// row sums only the selected hours of its day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageQuery {
    /// Only this namespace; `None` for every namespace.
    pub namespace: Option<Namespace>,
    /// Only functions of this name (in every namespace, unless `namespace` is given).
    pub function: Option<FunctionName>,
    /// Inclusive, floored to its hour.
    pub from: UnixMillis,
    /// Exclusive: hours that start at or after it are left out.
    pub to: UnixMillis,
    pub group_by: UsageGrouping,
}

/// The usage rollup. Written only by [`crate::Records::append_invocations`]; read by
/// the API and metering, rarely (a page, a billing run). May block on I/O.
#[async_trait]
pub trait Usage: Send + Sync + 'static {
    /// The sums of every group with at least one invocation counted in the selected
    /// hours, ordered by namespace, function, version and period (each ascending; the
    /// `None`s of a grouping are all equal). No rows when nothing matches.
    ///
    /// A backend that rolls up asynchronously (a JetStream consumer) may not yet count
    /// the records appended a moment ago; SQLite counts them when the append returns.
    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>>;

    /// Adds reserved capacity held to the hours' rows (making rows with no invocations
    /// yet). Called by the engine's capacity meter, about once a second, with what was
    /// held since its last call that returned `Ok`: an add, not a set, so a call must
    /// not be repeated after it succeeded (a JetStream backend would give each call a
    /// message id to drop a repeat).
    async fn add_capacity(&self, held: &[CapacityHeld]) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_floored() {
        assert_eq!(hour_of(0), 0);
        assert_eq!(hour_of(HOUR_MS - 1), 0);
        assert_eq!(hour_of(HOUR_MS), HOUR_MS);
        assert_eq!(hour_of(-1), -HOUR_MS);
        assert_eq!(hour_of(1_700_000_123_456), 1_699_999_200_000);
    }
}

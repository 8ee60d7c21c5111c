//! What invocations leave behind: log lines and invocation records ([`Records`] and its
//! records), each capped per function.

use crate::{Result, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wisp_core::{FunctionName, Namespace, VersionId};

/// How many log lines each function keeps.
pub const LOG_LINES_KEPT_PER_FUNCTION: usize = 10_000;

/// How many invocation records each function keeps.
pub const INVOCATIONS_KEPT_PER_FUNCTION: usize = 10_000;

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

/// Per-invocation logs and invocation records: append-only, per function, capped.
///
/// The engine's one background writer appends both in batches (a batch of whatever
/// gathered, then a short linger), one call at a time, never on a request's path; the API
/// reads them back. Records need no function: a batch in flight when its function was
/// removed is accepted like any other, and a function's records are only dropped by
/// [`Records::forget_function`] or by the cap. Every method may block on I/O.
///
/// Order is the order of appending (earlier calls first, then the order within a call), not
/// the `time` or `started_at` a record carries: clocks of different instances need not
/// agree, and a record is appended when its invocation ends. Lines and records carry no
/// id the store dedupes on: appending a batch twice records it twice.
#[async_trait]
pub trait Records: Send + Sync + 'static {
    /// Appends log lines. After it returns, each function the batch touched keeps at most
    /// [`LOG_LINES_KEPT_PER_FUNCTION`] lines, the oldest dropped.
    ///
    /// Each line is recorded whole. A failed call may have recorded part of the batch (the
    /// SQLite backend: none of it, one transaction); the engine's writer reports the
    /// failure and does not retry. An empty batch writes nothing.
    async fn append_logs(&self, lines: &[LogLine]) -> Result<()>;

    /// Log lines of a function (optionally of one invocation), oldest first: at most
    /// `query.limit` of the newest. Called by the API.
    async fn logs(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        query: &LogQuery,
    ) -> Result<Vec<LogLine>>;

    /// Appends invocation records. After it returns, each function the batch touched keeps
    /// at most [`INVOCATIONS_KEPT_PER_FUNCTION`] records, the oldest dropped.
    ///
    /// Atomic per record, like [`Records::append_logs`] (SQLite: the batch in one
    /// transaction). Durations past `i64::MAX` microseconds may be clamped rather than
    /// failing the batch. An empty batch writes nothing.
    async fn append_invocations(&self, records: &[InvocationRecord]) -> Result<()>;

    /// Invocation records of a function (optionally only cold starts), oldest first: at
    /// most `query.limit` of the newest. Called by the API.
    async fn invocations(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        query: &InvocationQuery,
    ) -> Result<Vec<InvocationRecord>>;

    /// Totals over a function's kept invocation records; all zero for a function without
    /// any. Called by the API. The totals and the percentiles describe the same records
    /// (SQLite reads them in one snapshot); a backend that cannot may be off by the
    /// records appended in between.
    async fn invocation_summary(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
    ) -> Result<InvocationSummary>;

    /// Drops every log line and invocation record of one function; other functions, and
    /// the same name in other namespaces, keep theirs.
    ///
    /// Called by [`crate::Store::remove_function`]. Idempotent. Lines and records appended
    /// afterwards (a batch that was in flight) are kept, as for any function. (SQLite drops
    /// both in one transaction.)
    async fn forget_function(&self, namespace: &Namespace, function: &FunctionName) -> Result<()>;
}

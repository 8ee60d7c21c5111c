//! What invocations leave behind: log lines and invocation records ([`Records`] and its
//! records), each capped per function. Appending a record also counts it into
//! [`crate::Usage`], which is neither capped nor forgotten with the function.

use crate::{Result, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wisp_core::{FunctionName, Namespace, VersionId};

/// How many log lines each function keeps.
pub const LOG_LINES_KEPT_PER_FUNCTION: usize = 10_000;

/// How many invocation records each function keeps.
pub const INVOCATIONS_KEPT_PER_FUNCTION: usize = 10_000;

/// How many invocation records [`Records::trace_invocations`] returns at most.
pub const TRACE_INVOCATIONS_MAX: usize = 1_000;

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
    /// The content id of the version that ran it.
    pub version: VersionId,
    /// The number of the version that ran it. `0` in records written before versions
    /// were numbered.
    #[serde(default)]
    pub version_number: u32,
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
    /// The configured memory of the version that ran it, in MB; what usage bills
    /// `billed_ms` at. `0` in records written before Wisp recorded it.
    pub memory_mb: u32,
    /// The billed duration in milliseconds: the run time rounded up to the next
    /// millisecond, at least 1 (the engine computes it). `0` in records written before
    /// Wisp recorded it.
    pub billed_ms: u64,
    /// It ran on reserved capacity (one of the version's `min_instances`), which bills
    /// its duration at the reserved rate.
    #[serde(default)]
    pub reserved: bool,
    /// The trace root it ran under (X-Ray's `1-<8 hex>-<24 hex>`, see
    /// `wisp_core::trace`): the one its request, event or message carried, else the
    /// one it started. `None` in records written before Wisp recorded it. Data kept
    /// with the record, as the other fields are.
    #[serde(default)]
    pub trace: Option<String>,
    /// The id of the invocation that caused it: the caller of a sync or async call,
    /// the run whose destination it is, the sender of the message or the writer of
    /// the object it ran for. `None` for a trace's root (a client's request, a
    /// schedule) and in records written before Wisp recorded it.
    #[serde(default)]
    pub parent: Option<String>,
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
/// agree, and a record is appended when its invocation ends. Log lines carry no id the
/// store dedupes on: appending a batch of lines twice records it twice. Invocation records
/// are deduped on their run (invocation id and start), because each is also counted into
/// [`crate::Usage`], which is billed (see [`Records::append_invocations`]).
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

    /// Appends invocation records and counts each into [`crate::Usage`]: one request (and
    /// one error when it has an error code), its `billed_ms`, and `memory_mb × billed_ms`,
    /// into the row of its namespace, function, version and hour (`started_at` floored to
    /// the UTC hour). After it returns, each function the batch touched keeps at most
    /// [`INVOCATIONS_KEPT_PER_FUNCTION`] records, the oldest dropped; trimming does not
    /// touch usage.
    ///
    /// Each run is counted exactly once. A run is an invocation id with its `started_at`:
    /// the attempts of one async invocation share its id, and each is a run (and billed,
    /// as Lambda bills every retry). A record whose (namespace, function, invocation id,
    /// started_at) the store already keeps (a retried batch, appended again soon after the
    /// first try) is skipped, neither a second record nor counted twice. So a failed call
    /// may be retried with the same batch. A backend keeps that dedupe at least as long as
    /// it keeps the first copy (a JetStream backend: records published on a stream with
    /// the invocation id and start as message id, within the stream's duplicate window, and a
    /// consumer rolling them up into a KV bucket by compare-and-set, acknowledging a record
    /// only once its rollup is written, and remembering the last sequence it rolled up so a
    /// redelivery is not counted again); a record appended again after its first copy was
    /// trimmed or forgotten may be counted again.
    ///
    /// Atomic per record: a record and its count land together or not at all, though a
    /// backend may make a record readable a moment before its count (JetStream: the
    /// consumer lags the stream). A failed call may have recorded part of the batch
    /// (SQLite: none of it; the records and their counts are one transaction). Durations
    /// and sums past `i64::MAX` may be clamped rather than failing the batch. An empty
    /// batch writes nothing.
    async fn append_invocations(&self, records: &[InvocationRecord]) -> Result<()>;

    /// Invocation records of a function (optionally only cold starts), oldest first: at
    /// most `query.limit` of the newest. Called by the API.
    async fn invocations(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        query: &InvocationQuery,
    ) -> Result<Vec<InvocationRecord>>;

    /// The kept invocation records of a namespace that ran under trace root `trace`,
    /// across its functions, oldest first (by `started_at`, then order of appending): at
    /// most [`TRACE_INVOCATIONS_MAX`], the oldest ones. Empty when none has it. Called by
    /// the API (`GET /v1/traces/{root}`); the trace is a value compared whole, never
    /// parsed. SQLite reads the `(namespace, trace)` index; a JetStream backend reads
    /// the records stream filtered by the trace (a subject token or header per trace),
    /// not the whole stream.
    async fn trace_invocations(&self, namespace: &Namespace, trace: &str) -> Result<Vec<InvocationRecord>>;

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
    /// the same name in other namespaces, keep theirs. The function's [`crate::Usage`]
    /// stays: what was used stays billable.
    ///
    /// Called by [`crate::Store::remove_function`]. Idempotent. Lines and records appended
    /// afterwards (a batch that was in flight) are kept, as for any function. (SQLite drops
    /// both in one transaction.)
    async fn forget_function(&self, namespace: &Namespace, function: &FunctionName) -> Result<()>;
}

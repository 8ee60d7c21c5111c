//! What invocations leave behind: log lines and invocation records ([`Records`] and its
//! records), each capped per function. Appending a record also counts it into
//! [`crate::Usage`], which is neither capped nor forgotten with the function. Log lines
//! are also kept within each function's retention ([`Records::trim_logs`]) and carry a
//! cursor, so a follower reads "the lines after this one" ([`LogQuery::after`]).

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
    /// The number of the version that wrote it; `0` for a line Wisp wrote outside a
    /// version's run (a schedule's or a queue's note) and for lines written before
    /// Wisp recorded it.
    #[serde(default)]
    pub version: u32,
    /// Its place in its function's log: assigned by the store when the line is appended
    /// (ignored in [`Records::append_logs`]'s input), growing in the order of appending,
    /// never reused for the function, never `0`. SQLite: the row id; JetStream: the
    /// stream sequence. What a follower resumes after ([`LogQuery::after`]).
    #[serde(default)]
    pub cursor: u64,
}

/// A query for log lines, oldest first. Every filter given must hold.
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    pub invocation_id: Option<String>,
    /// At most this many lines; `0` means the default of 100. Without `after`, the
    /// newest ones; with it, the oldest ones after the cursor.
    pub limit: usize,
    /// Only lines of this version number.
    pub version: Option<u32>,
    /// Only lines whose `time` is at or after this.
    pub since: Option<UnixMillis>,
    /// Only lines whose `time` is at or before this.
    pub until: Option<UnixMillis>,
    /// Only lines holding this text (case-sensitive, a plain substring).
    pub contains: Option<String>,
    /// Only lines appended after the line with this [`LogLine::cursor`] (which need not
    /// be kept any more): following. `Some(0)`: from the first line kept.
    pub after: Option<u64>,
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

    /// Log lines of a function matching `query`'s filters, oldest first, each with its
    /// [`LogLine::cursor`]: at most `query.limit` of the newest, or with `query.after`,
    /// the oldest after that cursor. Called by the API, for a listing and by each
    /// follower of a function's log.
    ///
    /// # Following
    ///
    /// A follower reads the newest lines, then asks again and again for the lines after
    /// the last cursor it saw, so it never misses a line kept and never sees one twice;
    /// the engine wakes it when its own writer commits a batch, and polls about once a
    /// second for lines another node wrote. So a cursor must order every line of a
    /// function the way appending did, across every node writing to it: SQLite's row id;
    /// on NATS JetStream, a stream per namespace with a subject per function, where the
    /// cursor is the stream sequence and `after` is a consumer's `opt_start_seq` (the
    /// filters are applied to the messages read). A query with `after` reads from the
    /// cursor forward, not the whole log; it may cost a read of every line after the
    /// cursor when the filters match few of them.
    async fn logs(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        query: &LogQuery,
    ) -> Result<Vec<LogLine>>;

    /// Drops the function's log lines older than `older_than` (by their `time`), then
    /// the oldest lines past the newest `max_bytes` bytes of line text (a line that
    /// would cross the limit goes whole). Returns how many lines it dropped. Other
    /// functions keep theirs.
    ///
    /// The engine's log writer calls it for every deployed function about once a
    /// minute, with that function's configured retention; on a cluster every node may,
    /// which only trims again what is already trimmed. Idempotent; may block on I/O.
    /// (JetStream: the stream's `max_age` cannot differ per function, so a backend
    /// purges the function's subject up to the first sequence to keep.)
    async fn trim_logs(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        older_than: UnixMillis,
        max_bytes: u64,
    ) -> Result<u64>;

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

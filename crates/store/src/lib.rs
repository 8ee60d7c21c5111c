//! The persistence boundary of Wisp: the [`Store`] trait and its backends.
//!
//! Everything Wisp must remember across a restart goes through [`Store`]: functions,
//! their immutable versions, code blobs, invocation logs and invocation records (one
//! per invocation: when it arrived, how long it queued and ran, whether it was a cold
//! start and how it ended). Every record belongs to a namespace. The embedded default is [`SqliteStore`] (one file in the data directory,
//! WAL mode); a NATS JetStream backend for clusters will implement the same trait and
//! pass the same conformance suite (`tests/conformance.rs`).
//!
//! The request path never calls the store: the engine keeps the registry in memory
//! and writes logs and invocation records through channels in batches. Both are
//! capped per function ([`LOG_LINES_KEPT_PER_FUNCTION`],
//! [`INVOCATIONS_KEPT_PER_FUNCTION`]), the oldest dropped.

mod sqlite;

pub use sqlite::SqliteStore;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wisp_core::{FunctionConfig, FunctionName, Namespace, VersionId};

/// Milliseconds since the Unix epoch.
pub type UnixMillis = i64;

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

    /// Deletes a function with its versions, logs, invocation records, and the code no
    /// other version uses.
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
}

/// How many log lines each function keeps.
pub const LOG_LINES_KEPT_PER_FUNCTION: usize = 10_000;

/// How many invocation records each function keeps.
pub const INVOCATIONS_KEPT_PER_FUNCTION: usize = 10_000;

//! The embedded SQLite backend of [`Store`]: one database file in the data directory,
//! in WAL mode, with one writer connection and one read-only connection.
//!
//! # Design
//!
//! rusqlite is synchronous, so every operation runs on tokio's blocking pool
//! (`spawn_blocking`) and locks its connection there; no lock is ever held across an
//! `.await`. Writes go through the single writer connection, which serialises them
//! (SQLite allows one writer anyway) and lets each operation be one `IMMEDIATE`
//! transaction. Reads use a separate connection: WAL lets them proceed while the
//! writer commits, and each read is one statement, so it sees one snapshot.
//!
//! A future dropped mid-operation does not cancel it: the blocking task runs its
//! transaction to the end, so a write is either fully applied or not at all.
//!
//! The SQL lives in [`registry`] (functions, versions, code), [`logs`] and
//! [`invocations`] (per-invocation records), [`events`] (async invocation events, the
//! `events` table), [`queues`] (the `queues` and `messages` tables) and [`schedules`]
//! (the `schedules` table); the schema and connection pragmas in [`schema`].
//!
//! Enqueueing events is the one write on a request's path (a durable async invoke
//! answers only once its event is recorded), so it is built for throughput: one
//! transaction per batch, one cached insert per event, and a read only when an id or
//! idempotency key conflicts. Claiming due events and receiving messages read their
//! rows in the order of an index and stop at the limit; the unit tests check the
//! query plans.

mod events;
mod invocations;
mod logs;
mod queues;
mod registry;
mod schedules;
mod schema;
#[cfg(test)]
mod tests;

use crate::{
    DeployOutcome, Enqueued, EventCounts, EventOutcome, EventRecord, EventStatus, FunctionRecord,
    INVOCATIONS_KEPT_PER_FUNCTION, InvocationQuery, InvocationRecord, InvocationSummary,
    LOG_LINES_KEPT_PER_FUNCTION, LogLine, LogQuery, NewEvent, NewMessage, QueueRecord, QueueStats, Received,
    Result, Store, StoreError, UnixMicros, UnixMillis, VersionRecord,
};
use async_trait::async_trait;
use rusqlite::Connection;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use wisp_core::wall::now_ms as now;
use wisp_core::{FunctionName, Namespace, QueueConfig, QueueName};

/// The SQLite [`Store`]. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct SqliteStore {
    conns: Arc<Connections>,
    path: PathBuf,
    log_lines_kept: usize,
    invocations_kept: usize,
}

struct Connections {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

/// Which connection an operation needs.
#[derive(Clone, Copy)]
enum Access {
    Read,
    Write,
}

impl SqliteStore {
    /// Opens (creating if needed, with its parent directory) the database at `path`
    /// and brings its schema up to date. Blocks on file I/O: call it at startup.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("creating the directory `{}`: {e}", dir.display()))
            })?;
        }
        let writer = schema::open_writer(path)?;
        let reader = schema::open_reader(path)?;
        tracing::debug!(path = %path.display(), "opened the sqlite store");
        Ok(SqliteStore {
            conns: Arc::new(Connections {
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
            }),
            path: path.to_path_buf(),
            log_lines_kept: LOG_LINES_KEPT_PER_FUNCTION,
            invocations_kept: INVOCATIONS_KEPT_PER_FUNCTION,
        })
    }

    /// Keeps `lines` log lines per function instead of [`LOG_LINES_KEPT_PER_FUNCTION`],
    /// so tests can cross the limit without writing ten thousand lines.
    #[doc(hidden)]
    pub fn with_log_lines_kept(mut self, lines: usize) -> SqliteStore {
        self.log_lines_kept = lines;
        self
    }

    /// Keeps `records` invocation records per function instead of
    /// [`INVOCATIONS_KEPT_PER_FUNCTION`], for the same reason.
    #[doc(hidden)]
    pub fn with_invocations_kept(mut self, records: usize) -> SqliteStore {
        self.invocations_kept = records;
        self
    }

    /// Runs `op` on the blocking pool with the connection `access` asks for. `what`
    /// names the operation in error messages ("deploying `default/hello`").
    async fn run<T, F>(&self, access: Access, what: String, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, OpError> + Send + 'static,
    {
        let conns = Arc::clone(&self.conns);
        let what_failed = what.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mutex = match access {
                Access::Read => &conns.reader,
                Access::Write => &conns.writer,
            };
            // A panic while the lock was held left no half-done work behind: an open
            // `Transaction` rolls back when it is dropped during unwinding. So a
            // poisoned lock still guards a usable connection.
            let mut conn = mutex.lock().unwrap_or_else(PoisonError::into_inner);
            op(&mut conn).map_err(|e| e.during(&what))
        });
        task.await
            .map_err(|e| StoreError::Backend(format!("{what_failed}: the store's worker task failed: {e}")))?
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("log_lines_kept", &self.log_lines_kept)
            .field("invocations_kept", &self.invocations_kept)
            .finish_non_exhaustive()
    }
}

/// A failure inside an operation. SQLite's errors and [`OpError::Failed`] messages
/// get the operation's name when they become a [`StoreError::Backend`]; a
/// [`OpError::Store`] was fully described where it arose and passes through.
#[derive(Debug)]
enum OpError {
    Sql(rusqlite::Error),
    Failed(String),
    Store(StoreError),
}

impl OpError {
    fn during(self, what: &str) -> StoreError {
        match self {
            OpError::Sql(e) => StoreError::Backend(format!("{what}: {e}")),
            OpError::Failed(message) => StoreError::Backend(format!("{what}: {message}")),
            OpError::Store(e) => e,
        }
    }
}

impl From<rusqlite::Error> for OpError {
    fn from(e: rusqlite::Error) -> Self {
        OpError::Sql(e)
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        OpError::Store(e)
    }
}

/// Tables whose rows each function keeps only its newest of: log lines and invocation
/// records. Both have an autoincrement `id` and `namespace`, `function` columns.
#[derive(Clone, Copy)]
enum PerFunction {
    Logs,
    Invocations,
}

/// Drops all but the newest `keep` rows of `table` for every `(namespace, function)` in
/// `touched`: one DELETE per function, cutting at the id of the newest row beyond the
/// `keep` newest (NULL, so nothing, when the function keeps fewer).
fn trim_to_newest<'a>(
    tx: &rusqlite::Transaction<'_>,
    table: PerFunction,
    touched: impl IntoIterator<Item = (&'a str, &'a str)>,
    keep: usize,
) -> rusqlite::Result<()> {
    let sql = match table {
        PerFunction::Logs => {
            "DELETE FROM logs WHERE namespace = ?1 AND function = ?2 AND id <= (
                 SELECT id FROM logs WHERE namespace = ?1 AND function = ?2
                 ORDER BY id DESC LIMIT 1 OFFSET ?3)"
        }
        PerFunction::Invocations => {
            "DELETE FROM invocations WHERE namespace = ?1 AND function = ?2 AND id <= (
                 SELECT id FROM invocations WHERE namespace = ?1 AND function = ?2
                 ORDER BY id DESC LIMIT 1 OFFSET ?3)"
        }
    };
    let mut trim = tx.prepare_cached(sql)?;
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    for (namespace, function) in touched {
        trim.execute(rusqlite::params![namespace, function, keep])?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn deploy(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        app: Option<&str>,
        version: &VersionRecord,
        code: &[u8],
    ) -> Result<DeployOutcome> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let (app, version, code) = (app.map(str::to_owned), version.clone(), code.to_vec());
        let what = format!("deploying `{namespace}/{name}`");
        self.run(Access::Write, what, move |conn| {
            let deploy = registry::Deploy {
                namespace: &namespace,
                name: &name,
                app: app.as_deref(),
                version: &version,
                code: &code,
                now: now(),
            };
            registry::deploy(conn, &deploy)
        })
        .await
    }

    async fn has_code(&self, namespace: &Namespace, code_hash: &str) -> Result<bool> {
        let (namespace, code_hash) = (namespace.clone(), code_hash.to_owned());
        let what = format!("looking up code `{code_hash}` in `{namespace}`");
        self.run(Access::Read, what, move |conn| {
            registry::has_code(conn, &namespace, &code_hash)
        })
        .await
    }

    async fn get_code(&self, namespace: &Namespace, code_hash: &str) -> Result<Option<Vec<u8>>> {
        let (namespace, code_hash) = (namespace.clone(), code_hash.to_owned());
        let what = format!("reading code `{code_hash}` in `{namespace}`");
        self.run(Access::Read, what, move |conn| {
            registry::get_code(conn, &namespace, &code_hash)
        })
        .await
    }

    async fn get_function(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
    ) -> Result<Option<FunctionRecord>> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("reading function `{namespace}/{name}`");
        self.run(Access::Read, what, move |conn| {
            registry::get_function(conn, &namespace, &name)
        })
        .await
    }

    async fn list_functions(&self, namespace: Option<&Namespace>) -> Result<Vec<FunctionRecord>> {
        let namespace = namespace.cloned();
        let what = match &namespace {
            Some(ns) => format!("listing the functions of `{ns}`"),
            None => "listing the functions of every namespace".to_owned(),
        };
        self.run(Access::Read, what, move |conn| {
            registry::list_functions(conn, namespace.as_ref())
        })
        .await
    }

    async fn delete_function(&self, namespace: &Namespace, name: &FunctionName) -> Result<bool> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("deleting function `{namespace}/{name}`");
        self.run(Access::Write, what, move |conn| {
            registry::delete_function(conn, &namespace, &name)
        })
        .await
    }

    async fn append_logs(&self, lines: &[LogLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let lines = lines.to_vec();
        let keep = self.log_lines_kept;
        let what = format!("appending log lines (a batch of {})", lines.len());
        self.run(Access::Write, what, move |conn| logs::append(conn, &lines, keep))
            .await
    }

    async fn logs(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        query: &LogQuery,
    ) -> Result<Vec<LogLine>> {
        let (namespace, function, query) = (namespace.clone(), function.clone(), query.clone());
        let what = format!("reading the logs of `{namespace}/{function}`");
        self.run(Access::Read, what, move |conn| {
            logs::query(conn, &namespace, &function, &query)
        })
        .await
    }

    async fn append_invocations(&self, records: &[InvocationRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let records = records.to_vec();
        let keep = self.invocations_kept;
        let what = format!("appending invocation records (a batch of {})", records.len());
        self.run(Access::Write, what, move |conn| {
            invocations::append(conn, &records, keep)
        })
        .await
    }

    async fn invocations(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        query: &InvocationQuery,
    ) -> Result<Vec<InvocationRecord>> {
        let (namespace, function, query) = (namespace.clone(), function.clone(), query.clone());
        let what = format!("reading the invocations of `{namespace}/{function}`");
        self.run(Access::Read, what, move |conn| {
            invocations::query(conn, &namespace, &function, &query)
        })
        .await
    }

    async fn invocation_summary(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
    ) -> Result<InvocationSummary> {
        let (namespace, function) = (namespace.clone(), function.clone());
        let what = format!("summarising the invocations of `{namespace}/{function}`");
        self.run(Access::Read, what, move |conn| {
            invocations::summary(conn, &namespace, &function)
        })
        .await
    }

    async fn write_events(
        &self,
        events: &[NewEvent],
        idempotent_since: UnixMicros,
        outcomes: &[EventOutcome],
        now: UnixMillis,
    ) -> Result<Vec<Enqueued>> {
        if events.is_empty() && outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let (events, outcomes) = (events.to_vec(), outcomes.to_vec());
        let what = match (events.len(), outcomes.len()) {
            (n, 0) => format!("recording async events (a batch of {n})"),
            (0, n) => format!("recording async outcomes (a batch of {n})"),
            (n, m) => format!("recording async events and outcomes (batches of {n} and {m})"),
        };
        self.run(Access::Write, what, move |conn| {
            events::write(conn, &events, idempotent_since, &outcomes, now)
        })
        .await
    }

    async fn claim_events(
        &self,
        now: UnixMillis,
        now_us: UnixMicros,
        lease_until: UnixMillis,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let what = format!("claiming up to {limit} due async events");
        self.run(Access::Write, what, move |conn| {
            events::claim(conn, now, now_us, lease_until, limit)
        })
        .await
    }

    async fn release_event_leases(&self) -> Result<u64> {
        let what = "releasing the leases of async events".to_owned();
        self.run(Access::Write, what, events::release_leases).await
    }

    async fn next_event_due(&self) -> Result<Option<UnixMillis>> {
        let what = "reading when the next async event is due".to_owned();
        self.run(Access::Read, what, |conn| events::next_due(conn)).await
    }

    async fn get_event(&self, namespace: &Namespace, id: &str) -> Result<Option<EventRecord>> {
        let (namespace, id) = (namespace.clone(), id.to_owned());
        let what = format!("reading async event `{id}` in `{namespace}`");
        self.run(Access::Read, what, move |conn| events::get(conn, &namespace, &id))
            .await
    }

    async fn list_events(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        status: EventStatus,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let (namespace, function) = (namespace.clone(), function.clone());
        let what = format!(
            "listing the {} async events of `{namespace}/{function}`",
            status.as_str()
        );
        self.run(Access::Read, what, move |conn| {
            events::list(conn, &namespace, &function, status, limit)
        })
        .await
    }

    async fn event_counts(&self, namespace: &Namespace, function: &FunctionName) -> Result<EventCounts> {
        let (namespace, function) = (namespace.clone(), function.clone());
        let what = format!("counting the async events of `{namespace}/{function}`");
        self.run(Access::Read, what, move |conn| {
            events::counts(conn, &namespace, &function)
        })
        .await
    }

    async fn redrive_events(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        ids: Option<&[String]>,
        now: UnixMillis,
        now_us: UnixMicros,
    ) -> Result<Vec<String>> {
        let (namespace, function, ids) = (namespace.clone(), function.clone(), ids.map(<[String]>::to_vec));
        let what = format!("redriving the dead letters of `{namespace}/{function}`");
        self.run(Access::Write, what, move |conn| {
            let dead = events::DeadLetters {
                namespace: &namespace,
                function: &function,
                ids: ids.as_deref(),
            };
            events::redrive(conn, dead, now, now_us)
        })
        .await
    }

    async fn purge_events(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        ids: Option<&[String]>,
    ) -> Result<u64> {
        let (namespace, function, ids) = (namespace.clone(), function.clone(), ids.map(<[String]>::to_vec));
        let what = format!("purging the dead letters of `{namespace}/{function}`");
        self.run(Access::Write, what, move |conn| {
            let dead = events::DeadLetters {
                namespace: &namespace,
                function: &function,
                ids: ids.as_deref(),
            };
            events::purge(conn, dead)
        })
        .await
    }

    async fn sweep_events(&self, before_us: UnixMicros) -> Result<u64> {
        let what = "sweeping old succeeded async events".to_owned();
        self.run(Access::Write, what, move |conn| events::sweep(conn, before_us))
            .await
    }

    async fn put_queue(
        &self,
        namespace: &Namespace,
        name: &QueueName,
        config: &QueueConfig,
        now: UnixMillis,
    ) -> Result<bool> {
        let (namespace, name, config) = (namespace.clone(), name.clone(), config.clone());
        let what = format!("saving queue `{namespace}/{name}`");
        self.run(Access::Write, what, move |conn| {
            queues::put(conn, &namespace, &name, &config, now)
        })
        .await
    }

    async fn get_queue(&self, namespace: &Namespace, name: &QueueName) -> Result<Option<QueueRecord>> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("reading queue `{namespace}/{name}`");
        self.run(Access::Read, what, move |conn| {
            queues::get(conn, &namespace, &name)
        })
        .await
    }

    async fn list_queues(&self, namespace: Option<&Namespace>) -> Result<Vec<QueueRecord>> {
        let namespace = namespace.cloned();
        let what = match &namespace {
            Some(ns) => format!("listing the queues of `{ns}`"),
            None => "listing the queues of every namespace".to_owned(),
        };
        self.run(Access::Read, what, move |conn| {
            queues::list(conn, namespace.as_ref())
        })
        .await
    }

    async fn delete_queue(&self, namespace: &Namespace, name: &QueueName) -> Result<bool> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("deleting queue `{namespace}/{name}`");
        self.run(Access::Write, what, move |conn| {
            queues::delete(conn, &namespace, &name)
        })
        .await
    }

    async fn send_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        messages: &[NewMessage],
        now: UnixMillis,
    ) -> Result<()> {
        let (namespace, queue, messages) = (namespace.clone(), queue.clone(), messages.to_vec());
        let what = format!(
            "sending {} messages to queue `{namespace}/{queue}`",
            messages.len()
        );
        self.run(Access::Write, what, move |conn| {
            queues::send(conn, &namespace, &queue, &messages, now)
        })
        .await
    }

    async fn receive_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        max: usize,
        visibility_ms: u64,
        now: UnixMillis,
    ) -> Result<Received> {
        let (namespace, queue) = (namespace.clone(), queue.clone());
        let what = format!("receiving messages from queue `{namespace}/{queue}`");
        self.run(Access::Write, what, move |conn| {
            queues::receive(conn, &namespace, &queue, max, visibility_ms, now)
        })
        .await
    }

    async fn delete_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        receipts: &[String],
    ) -> Result<Vec<bool>> {
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let (namespace, queue, receipts) = (namespace.clone(), queue.clone(), receipts.to_vec());
        let what = format!("deleting messages from queue `{namespace}/{queue}`");
        self.run(Access::Write, what, move |conn| {
            queues::delete_messages(conn, &namespace, &queue, &receipts)
        })
        .await
    }

    async fn change_visibility(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        receipt: &str,
        visible_at: UnixMillis,
    ) -> Result<bool> {
        let (namespace, queue, receipt) = (namespace.clone(), queue.clone(), receipt.to_owned());
        let what = format!("changing the visibility of a message of queue `{namespace}/{queue}`");
        self.run(Access::Write, what, move |conn| {
            queues::change_visibility(conn, &namespace, &queue, &receipt, visible_at)
        })
        .await
    }

    async fn queue_stats(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        now: UnixMillis,
    ) -> Result<QueueStats> {
        let (namespace, queue) = (namespace.clone(), queue.clone());
        let what = format!("counting the messages of queue `{namespace}/{queue}`");
        self.run(Access::Read, what, move |conn| {
            queues::stats(conn, &namespace, &queue, now)
        })
        .await
    }

    async fn purge_queue(&self, namespace: &Namespace, queue: &QueueName) -> Result<u64> {
        let (namespace, queue) = (namespace.clone(), queue.clone());
        let what = format!("purging queue `{namespace}/{queue}`");
        self.run(Access::Write, what, move |conn| {
            queues::purge(conn, &namespace, &queue)
        })
        .await
    }

    async fn redrive_queue(
        &self,
        namespace: &Namespace,
        dead_letter_queue: &QueueName,
        now: UnixMillis,
    ) -> Result<u64> {
        let (namespace, queue) = (namespace.clone(), dead_letter_queue.clone());
        let what = format!("redriving dead-letter queue `{namespace}/{queue}`");
        self.run(Access::Write, what, move |conn| {
            queues::redrive(conn, &namespace, &queue, now)
        })
        .await
    }

    async fn next_message_visible(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
    ) -> Result<Option<UnixMillis>> {
        let (namespace, queue) = (namespace.clone(), queue.clone());
        let what = format!("reading when a message of queue `{namespace}/{queue}` is next visible");
        self.run(Access::Read, what, move |conn| {
            queues::next_visible(conn, &namespace, &queue)
        })
        .await
    }

    async fn schedule_last_slot(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        schedule_key: &str,
    ) -> Result<Option<UnixMillis>> {
        let (namespace, function, key) = (namespace.clone(), function.clone(), schedule_key.to_owned());
        let what = format!("reading schedule `{key}` of `{namespace}/{function}`");
        self.run(Access::Read, what, move |conn| {
            let schedule = schedules::ScheduleRef {
                namespace: &namespace,
                function: &function,
                key: &key,
            };
            schedules::last_slot(conn, schedule)
        })
        .await
    }

    async fn advance_schedule(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        schedule_key: &str,
        slot: UnixMillis,
        event: Option<&NewEvent>,
    ) -> Result<bool> {
        let (namespace, function, key) = (namespace.clone(), function.clone(), schedule_key.to_owned());
        let event = event.cloned();
        let what = format!("advancing schedule `{key}` of `{namespace}/{function}` to {slot}");
        self.run(Access::Write, what, move |conn| {
            let schedule = schedules::ScheduleRef {
                namespace: &namespace,
                function: &function,
                key: &key,
            };
            schedules::advance(conn, schedule, slot, event.as_ref(), now())
        })
        .await
    }
}

//! The embedded SQLite backend ([`SqliteStore`]): one database file in the data
//! directory, in WAL mode, with one writer connection and one read-only connection. This
//! module owns the store, its connections and how an operation runs on them.
//!
//! # Design
//!
//! rusqlite is synchronous, so every operation runs on tokio's blocking pool
//! (`spawn_blocking`) and locks its connection there; no lock is ever held across an
//! `.await`. Writes go through the single writer connection, which serialises them
//! (SQLite allows one writer anyway) and lets each operation be one `IMMEDIATE`
//! transaction. Reads use a separate connection: WAL lets them proceed while the
//! writer commits, and each read is one statement or one read transaction, so it sees
//! one snapshot.
//!
//! A future dropped mid-operation does not cancel it: the blocking task runs its
//! transaction to the end, so a write is either fully applied or not at all.
//!
//! Each concern's trait is implemented, with its SQL, in its own module: [`registry`]
//! (functions, versions, code), [`records`] (log lines and invocation records),
//! [`events`] (async invocation events, the `events` table), [`queues`] (the `queues`
//! and `messages` tables), [`schedules`] (the `schedules` table), [`namespaces`] (the
//! `namespaces` table and its revision counter), [`api_keys`] (the `api_keys` table) and
//! [`audit`] (the `audit` table), [`usage`] (reading the `usage` table, which
//! [`records`] writes with the invocation records), [`objects`] (buckets, object metadata
//! and uploads), [`key_values`] (the `kv_stores` and `kv_entries` tables) and
//! [`secrets`] (the `secrets` table: sealed values only), [`topics`] (topics, their
//! subscriptions, messages and deliveries) and [`alarms`] (the `alarms` table: one
//! record per alarm, changed whole); the schema
//! and connection pragmas are in [`schema`]. A method clones its arguments (the blocking
//! task needs owned data), names itself for error messages, and runs its SQL on
//! [`SqliteStore::read`] or [`SqliteStore::write`].
//!
//! The traits' contracts are written for backends without transactions across
//! concerns; this one gives more where a transaction makes it free: every call is one
//! transaction, so a batch is all or nothing, an outcome's follow-ups (events and queue
//! messages) are written in the same transaction as the outcome, a schedule's slot
//! with its event, and an invocation record with its count in `usage`.
//!
//! Enqueueing events is the one write on a request's path (a durable async invoke
//! answers only once its event is recorded), so it is built for throughput: one
//! transaction per batch, one cached insert per event, and a read only when an id or
//! idempotency key conflicts. Claiming due events and receiving messages read their
//! rows in the order of an index and stop at the limit; the unit tests check the
//! query plans.
//!
//! Log lines and invocation records are written in the background, but on the same
//! cores: each function keeps only its newest N of each, and its count of them
//! (`row_counts`, changed in the transaction of every insert and delete) lets a batch's
//! trim walk only the rows it drops, not the N it keeps.

mod alarms;
mod api_keys;
mod audit;
mod events;
mod key_values;
mod namespaces;
mod nodes;
mod objects;
mod queues;
mod records;
mod registry;
mod schedules;
mod schema;
mod secrets;
#[cfg(test)]
mod tests;
mod topics;
mod usage;

use crate::{
    AUDIT_ENTRIES_KEPT, INVOCATIONS_KEPT_PER_FUNCTION, LOG_LINES_KEPT_PER_FUNCTION, Result, StoreError,
};
use rusqlite::Connection;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The SQLite [`crate::Store`]. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct SqliteStore {
    conns: Arc<Connections>,
    path: PathBuf,
    log_lines_kept: usize,
    invocations_kept: usize,
    audit_entries_kept: usize,
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
            audit_entries_kept: AUDIT_ENTRIES_KEPT,
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

    /// Keeps `entries` audit entries instead of [`AUDIT_ENTRIES_KEPT`], for the same
    /// reason.
    #[doc(hidden)]
    pub fn with_audit_entries_kept(mut self, entries: usize) -> SqliteStore {
        self.audit_entries_kept = entries;
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

    /// [`SqliteStore::run`] on the read-only connection.
    async fn read<T, F>(&self, what: String, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, OpError> + Send + 'static,
    {
        self.run(Access::Read, what, op).await
    }

    /// [`SqliteStore::run`] on the writer connection.
    async fn write<T, F>(&self, what: String, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, OpError> + Send + 'static,
    {
        self.run(Access::Write, what, op).await
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("log_lines_kept", &self.log_lines_kept)
            .field("invocations_kept", &self.invocations_kept)
            .field("audit_entries_kept", &self.audit_entries_kept)
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
/// records. Both have an autoincrement `id` and `namespace`, `function` columns, and
/// each function's count of rows in `row_counts`.
#[derive(Clone, Copy)]
enum PerFunction {
    Logs,
    Invocations,
}

impl PerFunction {
    /// The table's name, as `row_counts.tbl` holds it.
    fn table(self) -> &'static str {
        match self {
            PerFunction::Logs => "logs",
            PerFunction::Invocations => "invocations",
        }
    }
}

/// Counts the rows just inserted into `table` (`added`: how many, per namespace and
/// function), then drops each of those functions' rows beyond its newest `keep`, oldest
/// first: one DELETE per function over it, cutting at the newest row to go, found by
/// walking only the rows that go. Runs in the transaction that inserted them.
fn count_and_trim<'a>(
    tx: &rusqlite::Transaction<'_>,
    table: PerFunction,
    added: impl IntoIterator<Item = ((&'a str, &'a str), u64)>,
    keep: usize,
) -> rusqlite::Result<()> {
    let mut count = tx.prepare_cached(
        "INSERT INTO row_counts (tbl, namespace, function, rows) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tbl, namespace, function) DO UPDATE SET rows = rows + excluded.rows
         RETURNING rows",
    )?;
    let mut trim = tx.prepare_cached(match table {
        PerFunction::Logs => {
            "DELETE FROM logs WHERE namespace = ?1 AND function = ?2 AND id <= (
                 SELECT id FROM logs WHERE namespace = ?1 AND function = ?2
                 ORDER BY id LIMIT 1 OFFSET ?3)"
        }
        PerFunction::Invocations => {
            "DELETE FROM invocations WHERE namespace = ?1 AND function = ?2 AND id <= (
                 SELECT id FROM invocations WHERE namespace = ?1 AND function = ?2
                 ORDER BY id LIMIT 1 OFFSET ?3)"
        }
    })?;
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    for ((namespace, function), added) in added {
        let added = i64::try_from(added).unwrap_or(i64::MAX);
        let rows: i64 = count.query_row(
            rusqlite::params![table.table(), namespace, function, added],
            |row| row.get(0),
        )?;
        if rows > keep {
            let deleted = trim.execute(rusqlite::params![namespace, function, rows - keep - 1])?;
            uncount(tx, table, namespace, function, deleted)?;
        }
    }
    Ok(())
}

/// Takes `deleted` rows of `table` off the function's count, in the transaction that
/// deleted them.
fn uncount(
    tx: &rusqlite::Transaction<'_>,
    table: PerFunction,
    namespace: &str,
    function: &str,
    deleted: usize,
) -> rusqlite::Result<()> {
    if deleted == 0 {
        return Ok(());
    }
    tx.prepare_cached(
        "UPDATE row_counts SET rows = max(rows - ?4, 0) WHERE tbl = ?1 AND namespace = ?2 AND function = ?3",
    )?
    .execute(rusqlite::params![
        table.table(),
        namespace,
        function,
        i64::try_from(deleted).unwrap_or(i64::MAX)
    ])?;
    Ok(())
}

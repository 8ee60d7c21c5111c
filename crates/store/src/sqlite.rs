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
//! [`invocations`] (per-invocation records); the schema and connection pragmas in
//! [`schema`].

mod invocations;
mod logs;
mod registry;
mod schema;
#[cfg(test)]
mod tests;

use crate::{
    DeployOutcome, FunctionRecord, INVOCATIONS_KEPT_PER_FUNCTION, InvocationQuery, InvocationRecord,
    InvocationSummary, LOG_LINES_KEPT_PER_FUNCTION, LogLine, LogQuery, Result, Store, StoreError, UnixMillis,
    VersionRecord,
};
use async_trait::async_trait;
use rusqlite::Connection;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use wisp_core::{FunctionName, Namespace};

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

/// The wall clock in Unix milliseconds.
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

fn now() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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
}

//! The SQLite [`Records`]: log lines (the `logs` table) and invocation records (the
//! `invocations` table), each appended in batches, trimmed to the newest per function and
//! read back newest last.
//!
//! Order is insertion order (the autoincrement `id`), not the `time` or `started_at`
//! column: the engine appends lines in the order they were written and a record when its
//! invocation ends, and clocks of different instances need not agree. A log line's `id`
//! is its cursor (`AUTOINCREMENT`: never reused, even after the newest line is trimmed).

use super::{OpError, PerFunction, SqliteStore, count_and_trim, uncount};
use crate::usage::hour_of;
use crate::{
    InvocationQuery, InvocationRecord, InvocationSummary, LogLine, LogQuery, LogStream, Records, Result,
    StoreError, TRACE_INVOCATIONS_MAX,
};
use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior, params};
use std::collections::BTreeMap;
use wisp_core::{FunctionName, Namespace, UnixMillis, VersionId};

/// How many lines or records a query returns when its limit is `0`.
const DEFAULT_LIMIT: usize = 100;

#[async_trait]
impl Records for SqliteStore {
    async fn append_logs(&self, lines: &[LogLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let lines = lines.to_vec();
        let keep = self.log_lines_kept;
        let what = format!("appending log lines (a batch of {})", lines.len());
        self.write(what, move |conn| insert_logs(conn, &lines, keep))
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
        self.read(what, move |conn| query_logs(conn, &namespace, &function, &query))
            .await
    }

    async fn trim_logs(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        older_than: UnixMillis,
        max_bytes: u64,
    ) -> Result<u64> {
        let (namespace, function) = (namespace.clone(), function.clone());
        let what = format!("trimming the logs of `{namespace}/{function}`");
        self.write(what, move |conn| {
            trim_logs(conn, &namespace, &function, older_than, max_bytes)
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
        self.write(what, move |conn| insert_invocations(conn, &records, keep))
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
        self.read(what, move |conn| {
            query_invocations(conn, &namespace, &function, &query)
        })
        .await
    }

    async fn trace_invocations(&self, namespace: &Namespace, trace: &str) -> Result<Vec<InvocationRecord>> {
        let (namespace, trace) = (namespace.clone(), trace.to_owned());
        let what = format!("reading the invocations of trace `{trace}` in `{namespace}`");
        self.read(what, move |conn| query_trace(conn, &namespace, &trace))
            .await
    }

    async fn invocation_summary(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
    ) -> Result<InvocationSummary> {
        let (namespace, function) = (namespace.clone(), function.clone());
        let what = format!("summarising the invocations of `{namespace}/{function}`");
        self.read(what, move |conn| summary(conn, &namespace, &function))
            .await
    }

    /// Deletes the function's log lines and invocation records in one transaction;
    /// its `usage` rows stay.
    async fn forget_function(&self, namespace: &Namespace, function: &FunctionName) -> Result<()> {
        let (namespace, function) = (namespace.clone(), function.clone());
        let what = format!("forgetting the logs and invocation records of `{namespace}/{function}`");
        self.write(what, move |conn| {
            let (ns, name) = (namespace.as_str(), function.as_str());
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached("DELETE FROM logs WHERE namespace = ?1 AND function = ?2")?
                .execute(params![ns, name])?;
            tx.prepare_cached("DELETE FROM invocations WHERE namespace = ?1 AND function = ?2")?
                .execute(params![ns, name])?;
            tx.prepare_cached("DELETE FROM row_counts WHERE namespace = ?1 AND function = ?2")?
                .execute(params![ns, name])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

/// A query's limit as SQLite binds it: `0` means [`DEFAULT_LIMIT`].
fn limit(limit: usize) -> i64 {
    let limit = match limit {
        0 => DEFAULT_LIMIT,
        n => n,
    };
    i64::try_from(limit).unwrap_or(i64::MAX)
}

// ---- log lines ----

/// Inserts `lines` in one transaction, then drops all but the newest `keep` lines
/// of every function the batch touched.
fn insert_logs(conn: &mut Connection, lines: &[LogLine], keep: usize) -> Result<(), OpError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut added = BTreeMap::new();
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO logs (namespace, function, invocation_id, time, stream, line, version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for line in lines {
            insert.execute(params![
                line.namespace.as_str(),
                line.function.as_str(),
                line.invocation_id,
                line.time,
                line.stream.as_str(),
                line.line,
                line.version,
            ])?;
            *added
                .entry((line.namespace.as_str(), line.function.as_str()))
                .or_insert(0) += 1;
        }
    }
    count_and_trim(&tx, PerFunction::Logs, added, keep)?;
    tx.commit()?;
    Ok(())
}

/// Drops the function's lines older than `older_than`, then those past the newest
/// `max_bytes` bytes of text, in one transaction; how many went.
fn trim_logs(
    conn: &mut Connection,
    namespace: &Namespace,
    function: &FunctionName,
    older_than: UnixMillis,
    max_bytes: u64,
) -> Result<u64, OpError> {
    let (ns, name) = (namespace.as_str(), function.as_str());
    let max_bytes = i64::try_from(max_bytes).unwrap_or(i64::MAX);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let old = tx
        .prepare_cached("DELETE FROM logs WHERE namespace = ?1 AND function = ?2 AND time < ?3")?
        .execute(params![ns, name, older_than])?;
    // The newest line whose running total of bytes (newest first) passes the limit is
    // the first to go, and every older one with it.
    let big = tx
        .prepare_cached(
            "DELETE FROM logs WHERE namespace = ?1 AND function = ?2 AND id <= (
                 SELECT id FROM (
                     SELECT id, SUM(length(CAST(line AS BLOB)))
                         OVER (ORDER BY id DESC ROWS UNBOUNDED PRECEDING) AS total
                     FROM logs WHERE namespace = ?1 AND function = ?2)
                 WHERE total > ?3 ORDER BY id DESC LIMIT 1)",
        )?
        .execute(params![ns, name, max_bytes])?;
    uncount(&tx, PerFunction::Logs, ns, name, old + big)?;
    tx.commit()?;
    Ok(u64::try_from(old + big).unwrap_or(u64::MAX))
}

/// The lines of a function matching `query`, oldest first: the newest `query.limit`,
/// or with `query.after` the oldest `query.limit` after it. One statement: an absent
/// filter binds NULL and holds for every line.
fn query_logs(
    conn: &Connection,
    namespace: &Namespace,
    function: &FunctionName,
    query: &LogQuery,
) -> Result<Vec<LogLine>, OpError> {
    let limit = limit(query.limit);
    let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, String, i64, String, String, u32)> {
        Ok((
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
        ))
    };
    let (ns, name) = (namespace.as_str(), function.as_str());
    let after = query.after.map(|c| i64::try_from(c).unwrap_or(i64::MAX));
    let filters = params![
        ns,
        name,
        query.invocation_id,
        query.version,
        query.since,
        query.until,
        query.contains,
        after,
        limit
    ];
    // `instr` rather than LIKE: a plain, case-sensitive substring, no wildcards to escape.
    const WHERE: &str = "namespace = ?1 AND function = ?2
        AND (?3 IS NULL OR invocation_id = ?3)
        AND (?4 IS NULL OR version = ?4)
        AND (?5 IS NULL OR time >= ?5)
        AND (?6 IS NULL OR time <= ?6)
        AND (?7 IS NULL OR instr(line, ?7) > 0)";
    let rows = if after.is_some() {
        conn.prepare_cached(&format!(
            "SELECT id, invocation_id, time, stream, line, version FROM logs
             WHERE {WHERE} AND id > ?8 ORDER BY id LIMIT ?9"
        ))?
        .query_map(filters, read)?
        .collect::<rusqlite::Result<Vec<_>>>()?
    } else {
        conn.prepare_cached(&format!(
            "SELECT id, invocation_id, time, stream, line, version FROM (
                 SELECT id, invocation_id, time, stream, line, version FROM logs
                 WHERE {WHERE} AND ?8 IS NULL ORDER BY id DESC LIMIT ?9)
             ORDER BY id"
        ))?
        .query_map(filters, read)?
        .collect::<rusqlite::Result<Vec<_>>>()?
    };
    rows.into_iter()
        .map(|(id, invocation_id, time, stream, line, version)| {
            let stream = match stream.as_str() {
                "stdout" => LogStream::Stdout,
                "stderr" => LogStream::Stderr,
                other => {
                    return Err(OpError::Store(StoreError::Corrupt(format!(
                        "a log line of `{namespace}/{function}` names the unknown stream `{other}`"
                    ))));
                }
            };
            Ok(LogLine {
                namespace: namespace.clone(),
                function: function.clone(),
                invocation_id,
                time,
                stream,
                line,
                version,
                cursor: u64::try_from(id).unwrap_or_default(),
            })
        })
        .collect()
}

// ---- invocation records ----

/// Inserts each record the function does not already keep (by invocation id) and
/// counts it into `usage`, in one transaction, then drops all but the newest `keep`
/// records of every function the batch touched (usage stays).
fn insert_invocations(
    conn: &mut Connection,
    records: &[InvocationRecord],
    keep: usize,
) -> Result<(), OpError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut added = BTreeMap::new();
    let mut rows = BTreeMap::new();
    {
        // A run the function already keeps (an invocation id and its start: attempts of
        // one async invocation share the id) is skipped and not counted again. Looked up
        // first, so the insert is one row of `VALUES`: SQLite opens no statement journal
        // for that, where an `INSERT … SELECT … WHERE NOT EXISTS` (it may write several
        // rows) copied every page it touched into one, a third of the writer's time.
        let mut kept = tx.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM invocations
                 WHERE namespace = ?1 AND function = ?2 AND invocation_id = ?3 AND started_at = ?4)",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO invocations
                 (namespace, function, invocation_id, version, started_at, cold, init_us, queue_us,
                  run_us, error, memory_mb, billed_ms, reserved, version_number, trace, parent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )?;
        // Sums saturate at i64::MAX rather than overflow (SQLite would turn the sum into
        // a REAL, which the STRICT column refuses, failing the batch).
        // The batch's counts are summed per row first: one upsert per row it touches,
        // not one per record (the writer runs beside the request path, on its cores).
        let mut count = tx.prepare_cached(
            "INSERT INTO usage (namespace, function, version, hour, requests, errors, billed_ms, mb_ms,
                                reserved_mb_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (namespace, function, version, hour) DO UPDATE SET
                 reserved_mb_ms = CASE WHEN reserved_mb_ms > 9223372036854775807 - excluded.reserved_mb_ms
                     THEN 9223372036854775807 ELSE reserved_mb_ms + excluded.reserved_mb_ms END,
                 requests = requests + excluded.requests,
                 errors = errors + excluded.errors,
                 billed_ms = CASE WHEN billed_ms > 9223372036854775807 - excluded.billed_ms
                     THEN 9223372036854775807 ELSE billed_ms + excluded.billed_ms END,
                 mb_ms = CASE WHEN mb_ms > 9223372036854775807 - excluded.mb_ms
                     THEN 9223372036854775807 ELSE mb_ms + excluded.mb_ms END",
        )?;
        for r in records {
            let already: bool = kept.query_row(
                params![r.namespace.as_str(), r.function.as_str(), r.id, r.started_at],
                |row| row.get(0),
            )?;
            if already {
                continue;
            }
            insert.execute(params![
                r.namespace.as_str(),
                r.function.as_str(),
                r.id,
                r.version.0,
                r.started_at,
                r.cold,
                r.init_us.map(clamp),
                clamp(r.queue_us),
                clamp(r.run_us),
                r.error,
                r.memory_mb,
                clamp(r.billed_ms),
                r.reserved,
                r.version_number,
                r.trace,
                r.parent,
            ])?;
            let sums = rows
                .entry((
                    r.namespace.as_str(),
                    r.function.as_str(),
                    r.version.0.as_str(),
                    hour_of(r.started_at),
                ))
                .or_insert([0u64; 5]);
            let mb_ms = u64::from(r.memory_mb).saturating_mul(r.billed_ms);
            sums[0] += 1;
            sums[1] += u64::from(r.error.is_some());
            sums[2] = sums[2].saturating_add(r.billed_ms);
            sums[3] = sums[3].saturating_add(mb_ms);
            if r.reserved {
                sums[4] = sums[4].saturating_add(mb_ms);
            }
            *added
                .entry((r.namespace.as_str(), r.function.as_str()))
                .or_insert(0) += 1;
        }
        for ((namespace, function, version, hour), [requests, errors, billed_ms, mb_ms, reserved]) in rows {
            count.execute(params![
                namespace,
                function,
                version,
                hour,
                clamp(requests),
                clamp(errors),
                clamp(billed_ms),
                clamp(mb_ms),
                clamp(reserved),
            ])?;
        }
    }
    count_and_trim(&tx, PerFunction::Invocations, added, keep)?;
    tx.commit()?;
    Ok(())
}

/// A duration as SQLite stores it. Past `i64::MAX` microseconds (292 millennia) the
/// value is nonsense anyway; failing the whole batch over it would lose the others.
fn clamp(us: u64) -> i64 {
    i64::try_from(us).unwrap_or(i64::MAX)
}

/// One stored row, before its integers are checked.
struct InvocationRow {
    invocation_id: String,
    version: String,
    started_at: i64,
    cold: bool,
    init_us: Option<i64>,
    queue_us: i64,
    run_us: i64,
    error: Option<String>,
    memory_mb: i64,
    billed_ms: i64,
    reserved: bool,
    version_number: u32,
    trace: Option<String>,
    parent: Option<String>,
}

impl InvocationRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<InvocationRow> {
        Ok(InvocationRow {
            invocation_id: row.get(0)?,
            version: row.get(1)?,
            started_at: row.get(2)?,
            cold: row.get(3)?,
            init_us: row.get(4)?,
            queue_us: row.get(5)?,
            run_us: row.get(6)?,
            error: row.get(7)?,
            memory_mb: row.get(8)?,
            billed_ms: row.get(9)?,
            reserved: row.get(10)?,
            version_number: row.get(11)?,
            trace: row.get(12)?,
            parent: row.get(13)?,
        })
    }

    fn into_record(
        self,
        namespace: &Namespace,
        function: &FunctionName,
    ) -> Result<InvocationRecord, OpError> {
        let duration = |what: &str, value: i64| {
            u64::try_from(value).map_err(|_| {
                OpError::Store(StoreError::Corrupt(format!(
                    "invocation `{}` of `{namespace}/{function}` has a negative {what} `{value}`",
                    self.invocation_id
                )))
            })
        };
        let init_us = self.init_us.map(|v| duration("init_us", v)).transpose()?;
        let queue_us = duration("queue_us", self.queue_us)?;
        let run_us = duration("run_us", self.run_us)?;
        let billed_ms = duration("billed_ms", self.billed_ms)?;
        let memory_mb = u32::try_from(self.memory_mb).map_err(|_| {
            OpError::Store(StoreError::Corrupt(format!(
                "invocation `{}` of `{namespace}/{function}` has an invalid memory_mb `{}`",
                self.invocation_id, self.memory_mb
            )))
        })?;
        Ok(InvocationRecord {
            namespace: namespace.clone(),
            function: function.clone(),
            id: self.invocation_id,
            version: VersionId(self.version),
            started_at: self.started_at,
            cold: self.cold,
            init_us,
            queue_us,
            run_us,
            error: self.error,
            memory_mb,
            billed_ms,
            reserved: self.reserved,
            version_number: self.version_number,
            trace: self.trace,
            parent: self.parent,
        })
    }
}

/// The newest `query.limit` records of a function (optionally only cold starts),
/// oldest first.
fn query_invocations(
    conn: &Connection,
    namespace: &Namespace,
    function: &FunctionName,
    query: &InvocationQuery,
) -> Result<Vec<InvocationRecord>, OpError> {
    let limit = limit(query.limit);
    // `cold_only` is a parameter rather than a second statement: `?3 = 0 OR cold = 1`.
    // The scan walks the (namespace, function, id) index newest first either way, and
    // the per-function cap bounds it.
    let rows = conn
        .prepare_cached(
            "SELECT invocation_id, version, started_at, cold, init_us, queue_us, run_us, error,
                    memory_mb, billed_ms, reserved, version_number, trace, parent FROM (
                 SELECT id, invocation_id, version, started_at, cold, init_us, queue_us, run_us, error,
                        memory_mb, billed_ms, reserved, version_number, trace, parent
                 FROM invocations
                 WHERE namespace = ?1 AND function = ?2 AND (?3 = 0 OR cold = 1)
                 ORDER BY id DESC LIMIT ?4)
             ORDER BY id",
        )?
        .query_map(
            params![namespace.as_str(), function.as_str(), query.cold_only, limit],
            InvocationRow::read,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|row| row.into_record(namespace, function))
        .collect()
}

/// A trace's records, oldest first, in the order of the `invocations_by_trace` index
/// (`id` is the rowid, which the index ends with): no sort.
pub(super) const TRACE: &str = "
    SELECT invocation_id, version, started_at, cold, init_us, queue_us, run_us, error,
           memory_mb, billed_ms, reserved, version_number, trace, parent, function
    FROM invocations
    WHERE namespace = ?1 AND trace = ?2
    ORDER BY started_at, id LIMIT ?3";

/// The oldest [`TRACE_INVOCATIONS_MAX`] records of a namespace under trace root `trace`,
/// across functions, by the `(namespace, trace)` index.
fn query_trace(
    conn: &Connection,
    namespace: &Namespace,
    trace: &str,
) -> Result<Vec<InvocationRecord>, OpError> {
    let max = i64::try_from(TRACE_INVOCATIONS_MAX).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(TRACE)?
        .query_map(params![namespace.as_str(), trace, max], |row| {
            Ok((InvocationRow::read(row)?, row.get::<_, String>(14)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(row, function)| {
            let function = FunctionName::new(function.as_str()).map_err(|e| {
                OpError::Store(StoreError::Corrupt(format!(
                    "invocation `{}` of `{namespace}` names function `{function}`: {e}",
                    row.invocation_id
                )))
            })?;
            row.into_record(namespace, &function)
        })
        .collect()
}

/// Counts and init-time percentiles over a function's kept records.
///
/// Two statements in one read transaction, so both see the same snapshot even while
/// the writer appends. The percentiles are computed here from the sorted init times:
/// there are at most as many as the function keeps records.
fn summary(
    conn: &mut Connection,
    namespace: &Namespace,
    function: &FunctionName,
) -> Result<InvocationSummary, OpError> {
    let (ns, name) = (namespace.as_str(), function.as_str());
    let tx = conn.transaction()?;
    let (invocations, cold_starts, errors): (i64, i64, i64) = tx
        .prepare_cached(
            "SELECT count(*), coalesce(sum(cold), 0), count(error)
             FROM invocations WHERE namespace = ?1 AND function = ?2",
        )?
        .query_row(params![ns, name], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    let inits = tx
        .prepare_cached(
            "SELECT init_us FROM invocations
             WHERE namespace = ?1 AND function = ?2 AND init_us IS NOT NULL
             ORDER BY init_us",
        )?
        .query_map(params![ns, name], |row| row.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.commit()?;
    let inits = inits
        .into_iter()
        .map(|v| {
            u64::try_from(v).map_err(|_| {
                OpError::Store(StoreError::Corrupt(format!(
                    "an invocation of `{namespace}/{function}` has a negative init_us `{v}`"
                )))
            })
        })
        .collect::<Result<Vec<u64>, OpError>>()?;
    // count(*) and sum() of a 0/1 column are never negative.
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(InvocationSummary {
        invocations: count(invocations),
        cold_starts: count(cold_starts),
        errors: count(errors),
        init_p50_us: percentile(&inits, 50),
        init_p99_us: percentile(&inits, 99),
    })
}

/// The nearest-rank `p`th percentile of `sorted` (ascending): the smallest value
/// with at least `p`% of the values at or below it.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[1, 2], 50), Some(1));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 50), Some(50));
        assert_eq!(percentile(&hundred, 99), Some(99));
        let thousand: Vec<u64> = (1..=1_000).collect();
        assert_eq!(percentile(&thousand, 99), Some(990));
    }
}

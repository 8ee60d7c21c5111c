//! Log lines: appending a batch (and trimming each function it touched to its
//! newest lines) and reading the newest lines of a function back.
//!
//! Order is insertion order (the autoincrement `id`), not the `time` column: the
//! engine appends lines in the order they were written, and clocks of different
//! instances need not agree.

use super::OpError;
use crate::{LogLine, LogQuery, LogStream, StoreError};
use rusqlite::{Connection, TransactionBehavior, params};
use std::collections::BTreeSet;
use wisp_core::{FunctionName, Namespace};

/// How many lines [`query`] returns when the query's limit is `0`.
pub(super) const DEFAULT_LIMIT: usize = 100;

/// Inserts `lines` in one transaction, then drops all but the newest `keep` lines
/// of every function the batch touched.
pub(super) fn append(conn: &mut Connection, lines: &[LogLine], keep: usize) -> Result<(), OpError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut touched = BTreeSet::new();
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO logs (namespace, function, invocation_id, time, stream, line)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for line in lines {
            insert.execute(params![
                line.namespace.as_str(),
                line.function.as_str(),
                line.invocation_id,
                line.time,
                line.stream.as_str(),
                line.line,
            ])?;
            touched.insert((line.namespace.as_str(), line.function.as_str()));
        }
    }
    super::trim_to_newest(&tx, super::PerFunction::Logs, touched, keep)?;
    tx.commit()?;
    Ok(())
}

/// The newest `query.limit` lines of a function (optionally of one invocation),
/// oldest first.
pub(super) fn query(
    conn: &Connection,
    namespace: &Namespace,
    function: &FunctionName,
    query: &LogQuery,
) -> Result<Vec<LogLine>, OpError> {
    let limit = match query.limit {
        0 => DEFAULT_LIMIT,
        n => n,
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<(String, i64, String, String)> {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
    };
    let (ns, name) = (namespace.as_str(), function.as_str());
    let rows = match &query.invocation_id {
        Some(invocation) => conn
            .prepare_cached(
                "SELECT invocation_id, time, stream, line FROM (
                     SELECT id, invocation_id, time, stream, line FROM logs
                     WHERE namespace = ?1 AND function = ?2 AND invocation_id = ?3
                     ORDER BY id DESC LIMIT ?4)
                 ORDER BY id",
            )?
            .query_map(params![ns, name, invocation, limit], read)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        None => conn
            .prepare_cached(
                "SELECT invocation_id, time, stream, line FROM (
                     SELECT id, invocation_id, time, stream, line FROM logs
                     WHERE namespace = ?1 AND function = ?2
                     ORDER BY id DESC LIMIT ?3)
                 ORDER BY id",
            )?
            .query_map(params![ns, name, limit], read)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    rows.into_iter()
        .map(|(invocation_id, time, stream, line)| {
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
            })
        })
        .collect()
}

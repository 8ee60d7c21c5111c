//! The SQLite [`Audit`]: the `audit` table, appended in batches (a duplicate id skipped by
//! its unique index), trimmed to the last `audit_entries_kept` appended (by `seq`), and read
//! newest first along `audit_by_time` or `audit_by_namespace`.

use super::{OpError, SqliteStore};
use crate::{Audit, AuditEntry, AuditQuery, Result, StoreError};
use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior, params};
use wisp_core::Namespace;

/// How many entries a query returns when its limit is `0`.
const DEFAULT_LIMIT: usize = 100;

/// Entries newest first: `?1` a namespace or NULL, `?2` the time they are before or NULL,
/// `?3` the id that, with `?2`, makes entries at exactly `?2` count as before it, `?4` how
/// many. The namespace filter and the cursor are spelled out rather than written as
/// `?1 IS NULL OR …`, so each query walks its index; [`query_sql`] picks the text.
pub(super) fn query_sql(namespace: bool, before: bool, before_id: bool) -> String {
    let mut conditions = Vec::new();
    if namespace {
        conditions.push("namespace = ?1");
    }
    match (before, before_id) {
        (true, true) => conditions.push("(at, id) < (?2, ?3)"),
        (true, false) => conditions.push("at < ?2"),
        (false, _) => {}
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    format!(
        "SELECT id, at, namespace, key_id, action, target, source, detail FROM audit {filter}
         ORDER BY at DESC, id DESC LIMIT ?4"
    )
}

#[async_trait]
impl Audit for SqliteStore {
    /// Appends the batch and trims, in one transaction.
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let entries = entries.to_vec();
        let keep = self.audit_entries_kept;
        let what = format!("appending audit entries (a batch of {})", entries.len());
        self.write(what, move |conn| append(conn, &entries, keep)).await
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let query = query.clone();
        let what = match &query.namespace {
            Some(ns) => format!("reading the audit entries of `{ns}`"),
            None => "reading the audit entries of every namespace".to_owned(),
        };
        self.read(what, move |conn| {
            let sql = query_sql(
                query.namespace.is_some(),
                query.before.is_some(),
                query.before_id.is_some(),
            );
            let limit = match query.limit {
                0 => DEFAULT_LIMIT,
                n => n,
            };
            conn.prepare_cached(&sql)?
                .query_map(
                    params![
                        query.namespace.as_ref().map(Namespace::as_str),
                        query.before,
                        query.before_id,
                        i64::try_from(limit).unwrap_or(i64::MAX),
                    ],
                    AuditRow::read,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .map(AuditRow::into_entry)
                .collect()
        })
        .await
    }
}

/// Inserts `entries` (skipping ids already kept), then drops all but the last `keep`
/// appended.
fn append(conn: &mut Connection, entries: &[AuditEntry], keep: usize) -> Result<(), OpError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO audit (id, at, namespace, key_id, action, target, source, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (id) DO NOTHING",
        )?;
        for entry in entries {
            insert.execute(params![
                entry.id,
                entry.at,
                entry.namespace.as_str(),
                entry.key_id,
                entry.action,
                entry.target,
                entry.source,
                entry.detail,
            ])?;
        }
    }
    tx.prepare_cached(
        "DELETE FROM audit WHERE seq <= (SELECT seq FROM audit ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
    )?
    .execute([i64::try_from(keep).unwrap_or(i64::MAX)])?;
    tx.commit()?;
    Ok(())
}

/// One row of the `audit` table, as stored.
struct AuditRow {
    id: String,
    at: i64,
    namespace: String,
    key_id: Option<String>,
    action: String,
    target: String,
    source: Option<String>,
    detail: Option<String>,
}

impl AuditRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
        Ok(AuditRow {
            id: row.get(0)?,
            at: row.get(1)?,
            namespace: row.get(2)?,
            key_id: row.get(3)?,
            action: row.get(4)?,
            target: row.get(5)?,
            source: row.get(6)?,
            detail: row.get(7)?,
        })
    }

    fn into_entry(self) -> Result<AuditEntry, OpError> {
        let namespace = Namespace::new(self.namespace.as_str()).map_err(|e| {
            OpError::Store(StoreError::Corrupt(format!(
                "audit entry `{}` has a bad namespace: {e}",
                self.id
            )))
        })?;
        Ok(AuditEntry {
            id: self.id,
            at: self.at,
            namespace,
            key_id: self.key_id,
            action: self.action,
            target: self.target,
            source: self.source,
            detail: self.detail,
        })
    }
}

//! The SQLite [`Secrets`]: the `secrets` table (migration 12), one row per namespace and
//! name holding the sealed value, its revision and its times. Revisions come from the
//! `revisions` counter (row `secrets`), so they only grow, across deletes too, as a
//! JetStream bucket's sequence does.

use super::{OpError, SqliteStore, StoreError};
use crate::{Result, SecretCondition, SecretPut, SecretRecord, Secrets, UnixMillis};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use wisp_core::{Namespace, SecretName};

const SELECT: &str = "SELECT namespace, name, sealed, revision, created_ms, updated_ms FROM secrets";

#[async_trait]
impl Secrets for SqliteStore {
    async fn put_secret(
        &self,
        namespace: &Namespace,
        name: &SecretName,
        sealed: Vec<u8>,
        condition: SecretCondition,
        now: UnixMillis,
    ) -> Result<SecretPut> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("setting secret `{namespace}/{name}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<i64> = tx
                .prepare_cached("SELECT revision FROM secrets WHERE namespace = ?1 AND name = ?2")?
                .query_row(params![namespace.as_str(), name.as_str()], |row| row.get(0))
                .optional()?;
            let current = current.map(revision_of).transpose()?;
            if !condition.holds(current) {
                return Ok(SecretPut::ConditionFailed { current });
            }
            let revision: i64 = tx
                .prepare_cached(
                    "INSERT INTO revisions (name, last) VALUES ('secrets', 1)
                     ON CONFLICT (name) DO UPDATE SET last = last + 1
                     RETURNING last",
                )?
                .query_row([], |row| row.get(0))?;
            tx.prepare_cached(
                "INSERT INTO secrets (namespace, name, sealed, revision, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (namespace, name) DO UPDATE
                 SET sealed = excluded.sealed, revision = excluded.revision, updated_ms = excluded.updated_ms",
            )?
            .execute(params![namespace.as_str(), name.as_str(), sealed, revision, now])?;
            tx.commit()?;
            let revision = revision_of(revision)?;
            Ok(match current {
                None => SecretPut::Created { revision },
                Some(_) => SecretPut::Updated { revision },
            })
        })
        .await
    }

    async fn get_secret(&self, namespace: &Namespace, name: &SecretName) -> Result<Option<SecretRecord>> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("reading secret `{namespace}/{name}`");
        self.read(what, move |conn| {
            conn.prepare_cached(&format!("{SELECT} WHERE namespace = ?1 AND name = ?2"))?
                .query_row(params![namespace.as_str(), name.as_str()], SecretRow::read)
                .optional()?
                .map(SecretRow::into_record)
                .transpose()
        })
        .await
    }

    async fn list_secrets(&self, namespace: Option<&Namespace>) -> Result<Vec<SecretRecord>> {
        let namespace = namespace.cloned();
        self.read("listing secrets".into(), move |conn| {
            conn.prepare_cached(&format!(
                "{SELECT} WHERE ?1 IS NULL OR namespace = ?1 ORDER BY namespace, name"
            ))?
            .query_map([namespace.as_ref().map(Namespace::as_str)], SecretRow::read)?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(SecretRow::into_record)
            .collect()
        })
        .await
    }

    async fn delete_secret(&self, namespace: &Namespace, name: &SecretName) -> Result<bool> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("deleting secret `{namespace}/{name}`");
        self.write(what, move |conn| {
            let n = conn
                .prepare_cached("DELETE FROM secrets WHERE namespace = ?1 AND name = ?2")?
                .execute(params![namespace.as_str(), name.as_str()])?;
            Ok(n > 0)
        })
        .await
    }
}

fn revision_of(revision: i64) -> Result<u64, OpError> {
    u64::try_from(revision)
        .map_err(|_| OpError::Store(StoreError::Corrupt(format!("a secret has revision {revision}"))))
}

/// One row of the `secrets` table, as stored.
struct SecretRow {
    namespace: String,
    name: String,
    sealed: Vec<u8>,
    revision: i64,
    created_ms: i64,
    updated_ms: i64,
}

impl SecretRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<SecretRow> {
        Ok(SecretRow {
            namespace: row.get(0)?,
            name: row.get(1)?,
            sealed: row.get(2)?,
            revision: row.get(3)?,
            created_ms: row.get(4)?,
            updated_ms: row.get(5)?,
        })
    }

    fn into_record(self) -> Result<SecretRecord, OpError> {
        let corrupt = |what: String| {
            OpError::Store(StoreError::Corrupt(format!(
                "secret `{}/{}` has a bad {what}",
                self.namespace, self.name
            )))
        };
        let namespace =
            Namespace::new(self.namespace.as_str()).map_err(|e| corrupt(format!("namespace: {e}")))?;
        let name = SecretName::new(self.name.as_str()).map_err(|e| corrupt(format!("name: {e}")))?;
        Ok(SecretRecord {
            namespace,
            name,
            revision: revision_of(self.revision)?,
            sealed: self.sealed,
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
        })
    }
}

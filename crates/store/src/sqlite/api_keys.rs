//! The SQLite [`ApiKeys`]: the `api_keys` table. Revoking and touching are conditional
//! updates (`revoked_at IS NULL`, `last_used_at < ?`), which is the compare-and-set the
//! trait asks for.

use super::{OpError, SqliteStore};
use crate::{ApiKeyRecord, ApiKeys, Result, StoreError, UnixMillis};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use wisp_core::{Namespace, Role};

/// The columns [`KeyRow::read`] reads, in its order.
const SELECT: &str = "SELECT id, namespace, role, name, secret_hash, sealed_secret, created_at,
                             created_by, expires_at, revoked_at, last_used_at
                      FROM api_keys";

/// Every key (of one namespace, `?1`) in listing order, along `api_keys_by_age` (or
/// `api_keys_by_namespace`).
pub(super) fn list_sql(namespace: bool) -> String {
    let filter = if namespace { "WHERE namespace = ?1" } else { "" };
    format!("{SELECT} {filter} ORDER BY created_at, id")
}

#[async_trait]
impl ApiKeys for SqliteStore {
    async fn create_key(&self, key: &ApiKeyRecord) -> Result<bool> {
        let key = key.clone();
        let what = format!("creating API key `{}` of `{}`", key.id, key.namespace);
        self.write(what, move |conn| {
            let created = conn
                .prepare_cached(
                    "INSERT INTO api_keys (id, namespace, role, name, secret_hash, sealed_secret,
                                           created_at, created_by, expires_at, revoked_at, last_used_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![
                    key.id,
                    key.namespace.as_str(),
                    key.role.as_str(),
                    key.name,
                    key.secret_hash,
                    key.sealed_secret,
                    key.created_at,
                    key.created_by,
                    key.expires_at,
                    key.revoked_at,
                    key.last_used_at,
                ])?;
            Ok(created > 0)
        })
        .await
    }

    async fn key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let id = id.to_owned();
        let what = format!("reading API key `{id}`");
        self.read(what, move |conn| {
            conn.prepare_cached(&format!("{SELECT} WHERE id = ?1"))?
                .query_row([id.as_str()], KeyRow::read)
                .optional()?
                .map(KeyRow::into_record)
                .transpose()
        })
        .await
    }

    async fn list_keys(&self, namespace: Option<&Namespace>) -> Result<Vec<ApiKeyRecord>> {
        let namespace = namespace.cloned();
        let what = match &namespace {
            Some(ns) => format!("listing the API keys of `{ns}`"),
            None => "listing the API keys of every namespace".to_owned(),
        };
        self.read(what, move |conn| {
            let rows = match &namespace {
                Some(ns) => conn
                    .prepare_cached(&list_sql(true))?
                    .query_map([ns.as_str()], KeyRow::read)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => conn
                    .prepare_cached(&list_sql(false))?
                    .query_map([], KeyRow::read)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            rows.into_iter().map(KeyRow::into_record).collect()
        })
        .await
    }

    async fn revoke_key(&self, id: &str, at: UnixMillis) -> Result<bool> {
        let id = id.to_owned();
        let what = format!("revoking API key `{id}`");
        self.write(what, move |conn| {
            let revoked = conn
                .prepare_cached("UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")?
                .execute(params![id, at])?;
            Ok(revoked > 0)
        })
        .await
    }

    /// Applies the batch in one transaction.
    async fn touch_keys(&self, used: &[(String, UnixMillis)]) -> Result<()> {
        if used.is_empty() {
            return Ok(());
        }
        let used = used.to_vec();
        let what = format!("recording the use of API keys (a batch of {})", used.len());
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut touch = tx.prepare_cached(
                    "UPDATE api_keys SET last_used_at = ?2
                     WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
                )?;
                for (id, at) in &used {
                    touch.execute(params![id, at])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn forget_namespace_keys(&self, namespace: &Namespace) -> Result<()> {
        let namespace = namespace.clone();
        let what = format!("forgetting the API keys of `{namespace}`");
        self.write(what, move |conn| {
            conn.prepare_cached("DELETE FROM api_keys WHERE namespace = ?1")?
                .execute([namespace.as_str()])?;
            Ok(())
        })
        .await
    }
}

/// One row of the `api_keys` table, as stored.
struct KeyRow {
    id: String,
    namespace: String,
    role: String,
    name: Option<String>,
    secret_hash: Vec<u8>,
    sealed_secret: Vec<u8>,
    created_at: i64,
    created_by: Option<String>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl KeyRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRow> {
        Ok(KeyRow {
            id: row.get(0)?,
            namespace: row.get(1)?,
            role: row.get(2)?,
            name: row.get(3)?,
            secret_hash: row.get(4)?,
            sealed_secret: row.get(5)?,
            created_at: row.get(6)?,
            created_by: row.get(7)?,
            expires_at: row.get(8)?,
            revoked_at: row.get(9)?,
            last_used_at: row.get(10)?,
        })
    }

    fn into_record(self) -> Result<ApiKeyRecord, OpError> {
        let corrupt = |what: String| {
            OpError::Store(StoreError::Corrupt(format!(
                "API key `{}` has a bad {what}",
                self.id
            )))
        };
        let namespace =
            Namespace::new(self.namespace.as_str()).map_err(|e| corrupt(format!("namespace: {e}")))?;
        let role = Role::parse(&self.role).map_err(|e| corrupt(format!("role: {e}")))?;
        Ok(ApiKeyRecord {
            id: self.id,
            namespace,
            role,
            name: self.name,
            secret_hash: self.secret_hash,
            sealed_secret: self.sealed_secret,
            created_at: self.created_at,
            created_by: self.created_by,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            last_used_at: self.last_used_at,
        })
    }
}

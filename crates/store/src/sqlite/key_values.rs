//! The SQLite [`KeyValues`]: stores (the `kv_stores` table, each with the last version
//! it gave) and their entries (`kv_entries`, keyed by namespace, store and key, the key
//! a BLOB so that keys order as bytes). A write takes its version from its store's row
//! in the same transaction, so versions increase per store. Reads skip expired rows;
//! writes replace or delete them; [`KeyValues::sweep_expired`] removes the rest.

use super::{OpError, SqliteStore, StoreError, objects::successor};
use crate::{
    KeyValues, KvCondition, KvDeleted, KvEntry, KvIncremented, KvPage, KvSet, KvSetMany, KvStoreRecord,
    KvWrite, Result, UnixMillis,
};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use wisp_core::{KvStoreName, Namespace};

#[async_trait]
impl KeyValues for SqliteStore {
    async fn create_kv_store(&self, record: &KvStoreRecord) -> Result<bool> {
        let r = record.clone();
        let what = format!("creating key-value store `{}/{}`", r.namespace, r.name);
        self.write(what, move |conn| {
            let n = conn.execute(
                "INSERT INTO kv_stores (namespace, name, created_ms, last_version) VALUES (?1, ?2, ?3, 0)
                 ON CONFLICT DO NOTHING",
                params![r.namespace.as_str(), r.name.as_str(), r.created_ms],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn get_kv_store(&self, namespace: &Namespace, name: &KvStoreName) -> Result<Option<KvStoreRecord>> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("reading key-value store `{namespace}/{name}`");
        self.read(what, move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT namespace, name, created_ms FROM kv_stores WHERE namespace = ?1 AND name = ?2",
                )?
                .query_row(params![namespace.as_str(), name.as_str()], |row| {
                    Ok(read_store(row))
                })
                .optional()?;
            row.transpose()
        })
        .await
    }

    async fn list_kv_stores(&self, namespace: Option<&Namespace>) -> Result<Vec<KvStoreRecord>> {
        let namespace = namespace.cloned();
        self.read("listing key-value stores".into(), move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT namespace, name, created_ms FROM kv_stores
                 WHERE ?1 IS NULL OR namespace = ?1 ORDER BY namespace, name",
            )?;
            let rows = statement
                .query_map([namespace.as_ref().map(Namespace::as_str)], |row| {
                    Ok(read_store(row))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().collect()
        })
        .await
    }

    async fn delete_kv_store(&self, namespace: &Namespace, name: &KvStoreName) -> Result<bool> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("deleting key-value store `{namespace}/{name}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "DELETE FROM kv_entries WHERE namespace = ?1 AND store = ?2",
                params![namespace.as_str(), name.as_str()],
            )?;
            let n = tx.execute(
                "DELETE FROM kv_stores WHERE namespace = ?1 AND name = ?2",
                params![namespace.as_str(), name.as_str()],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    async fn kv_get(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        key: &str,
        now: UnixMillis,
    ) -> Result<Option<KvEntry>> {
        let (namespace, store, key) = (namespace.clone(), store.clone(), key.to_string());
        let what = format!("reading key `{key}` of key-value store `{namespace}/{store}`");
        self.read(what, move |conn| entry(conn, &namespace, &store, &key, now))
            .await
    }

    async fn kv_get_many(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        keys: &[String],
        now: UnixMillis,
    ) -> Result<Vec<Option<KvEntry>>> {
        let (namespace, store, keys) = (namespace.clone(), store.clone(), keys.to_vec());
        let what = format!(
            "reading {} keys of key-value store `{namespace}/{store}`",
            keys.len()
        );
        self.read(what, move |conn| {
            let tx = conn.transaction()?;
            keys.iter()
                .map(|key| entry(&tx, &namespace, &store, key, now))
                .collect()
        })
        .await
    }

    async fn kv_set(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        write: KvWrite,
        now: UnixMillis,
    ) -> Result<KvSet> {
        let (namespace, store) = (namespace.clone(), store.clone());
        let what = format!(
            "writing key `{}` of key-value store `{namespace}/{store}`",
            write.key
        );
        let many = self
            .kv_set_many_as(what, namespace, store, vec![write], now)
            .await?;
        Ok(match many {
            KvSetMany::Stored { versions } => match versions.first() {
                Some(&version) => KvSet::Stored { version },
                None => return Err(StoreError::Backend("a write stored nothing".into())),
            },
            KvSetMany::ConditionFailed { current, .. } => KvSet::ConditionFailed { current },
            KvSetMany::NoStore => KvSet::NoStore,
        })
    }

    async fn kv_set_many(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        writes: Vec<KvWrite>,
        now: UnixMillis,
    ) -> Result<KvSetMany> {
        let (namespace, store) = (namespace.clone(), store.clone());
        let what = format!(
            "writing {} keys of key-value store `{namespace}/{store}`",
            writes.len()
        );
        self.kv_set_many_as(what, namespace, store, writes, now).await
    }

    async fn kv_delete(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        key: &str,
        condition: KvCondition,
        now: UnixMillis,
    ) -> Result<KvDeleted> {
        let (namespace, store, key) = (namespace.clone(), store.clone(), key.to_string());
        let what = format!("deleting key `{key}` of key-value store `{namespace}/{store}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if last_version(&tx, &namespace, &store)?.is_none() {
                return Ok(KvDeleted::NoStore);
            }
            let Some(current) = entry(&tx, &namespace, &store, &key, now)? else {
                // An expired row goes now, as it would have on its own.
                remove(&tx, &namespace, &store, &key)?;
                tx.commit()?;
                return Ok(KvDeleted::NotFound);
            };
            if !condition.holds(Some(current.version)) {
                return Ok(KvDeleted::ConditionFailed {
                    current: current.version,
                });
            }
            remove(&tx, &namespace, &store, &key)?;
            tx.commit()?;
            Ok(KvDeleted::Deleted)
        })
        .await
    }

    async fn kv_delete_many(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        keys: &[String],
        now: UnixMillis,
    ) -> Result<Option<u64>> {
        let (namespace, store, keys) = (namespace.clone(), store.clone(), keys.to_vec());
        let what = format!(
            "deleting {} keys of key-value store `{namespace}/{store}`",
            keys.len()
        );
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if last_version(&tx, &namespace, &store)?.is_none() {
                return Ok(None);
            }
            let mut deleted = 0;
            for key in &keys {
                if entry(&tx, &namespace, &store, key, now)?.is_some() {
                    deleted += 1;
                }
                remove(&tx, &namespace, &store, key)?;
            }
            tx.commit()?;
            Ok(Some(deleted))
        })
        .await
    }

    async fn kv_increment(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        key: &str,
        delta: i64,
        now: UnixMillis,
    ) -> Result<KvIncremented> {
        let (namespace, store, key) = (namespace.clone(), store.clone(), key.to_string());
        let what = format!("incrementing key `{key}` of key-value store `{namespace}/{store}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if last_version(&tx, &namespace, &store)?.is_none() {
                return Ok(KvIncremented::NoStore);
            }
            let current = entry(&tx, &namespace, &store, &key, now)?;
            let (old, expires_ms) = match &current {
                None => (0, None),
                Some(e) => match std::str::from_utf8(&e.value)
                    .ok()
                    .and_then(|t| t.parse::<i64>().ok())
                {
                    Some(n) => (n, e.expires_ms),
                    None => return Ok(KvIncremented::NotANumber),
                },
            };
            let Some(value) = old.checked_add(delta) else {
                return Ok(KvIncremented::Overflow);
            };
            let version = put(
                &tx,
                &namespace,
                &store,
                &key,
                value.to_string().as_bytes(),
                expires_ms,
            )?;
            tx.commit()?;
            Ok(KvIncremented::Incremented { value, version })
        })
        .await
    }

    async fn kv_list(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        prefix: &str,
        after: Option<String>,
        limit: u32,
        now: UnixMillis,
    ) -> Result<KvPage> {
        let (namespace, store, prefix) = (namespace.clone(), store.clone(), prefix.to_string());
        let what = format!("listing key-value store `{namespace}/{store}`");
        self.read(what, move |conn| {
            let mut low = prefix.as_bytes().to_vec();
            if let Some(after) = &after {
                low = low.max([after.as_bytes(), &[0]].concat());
            }
            let high = (!prefix.is_empty()).then(|| successor(prefix.as_bytes()));
            let mut statement = conn.prepare_cached(
                "SELECT key FROM kv_entries
                 WHERE namespace = ?1 AND store = ?2 AND key >= ?3 AND (?4 IS NULL OR key < ?4)
                   AND (expires_ms IS NULL OR expires_ms > ?5)
                 ORDER BY key LIMIT ?6",
            )?;
            let rows: Vec<Vec<u8>> = statement
                .query_map(
                    params![
                        namespace.as_str(),
                        store.as_str(),
                        low,
                        high,
                        now,
                        i64::from(limit) + 1
                    ],
                    |row| row.get(0),
                )?
                .collect::<rusqlite::Result<_>>()?;
            let mut keys = rows.into_iter().map(text).collect::<Result<Vec<_>, _>>()?;
            let mut next = None;
            if keys.len() > limit as usize {
                keys.truncate(limit as usize);
                next = keys.last().cloned();
            }
            Ok(KvPage { keys, next })
        })
        .await
    }

    async fn sweep_expired(&self, now: UnixMillis, limit: u32) -> Result<u64> {
        self.write("sweeping expired key-value entries".into(), move |conn| {
            let n = conn
                .prepare_cached(
                    "DELETE FROM kv_entries WHERE (namespace, store, key) IN (
                         SELECT namespace, store, key FROM kv_entries
                         WHERE expires_ms IS NOT NULL AND expires_ms <= ?1 LIMIT ?2)",
                )?
                .execute(params![now, limit])?;
            Ok(n as u64)
        })
        .await
    }
}

impl SqliteStore {
    /// [`KeyValues::kv_set_many`], named `what` in errors.
    async fn kv_set_many_as(
        &self,
        what: String,
        namespace: Namespace,
        store: KvStoreName,
        writes: Vec<KvWrite>,
        now: UnixMillis,
    ) -> Result<KvSetMany> {
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if last_version(&tx, &namespace, &store)?.is_none() {
                return Ok(KvSetMany::NoStore);
            }
            let mut versions = Vec::with_capacity(writes.len());
            for (index, w) in writes.iter().enumerate() {
                let current = entry(&tx, &namespace, &store, &w.key, now)?.map(|e| e.version);
                if !w.condition.holds(current) {
                    // Dropping `tx` rolls back the writes before this one.
                    return Ok(KvSetMany::ConditionFailed { index, current });
                }
                versions.push(put(&tx, &namespace, &store, &w.key, &w.value, w.ttl_expires_ms)?);
            }
            tx.commit()?;
            Ok(KvSetMany::Stored { versions })
        })
        .await
    }
}

/// The store's last given version; `None` when there is no such store.
fn last_version(
    conn: &Connection,
    namespace: &Namespace,
    store: &KvStoreName,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT last_version FROM kv_stores WHERE namespace = ?1 AND name = ?2")?
        .query_row(params![namespace.as_str(), store.as_str()], |row| row.get(0))
        .optional()
}

/// Writes a key with the store's next version, which it returns. The store exists.
fn put(
    tx: &Transaction<'_>,
    namespace: &Namespace,
    store: &KvStoreName,
    key: &str,
    value: &[u8],
    expires_ms: Option<UnixMillis>,
) -> Result<u64, OpError> {
    let version: i64 = tx
        .prepare_cached(
            "UPDATE kv_stores SET last_version = last_version + 1 WHERE namespace = ?1 AND name = ?2
             RETURNING last_version",
        )?
        .query_row(params![namespace.as_str(), store.as_str()], |row| row.get(0))?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO kv_entries (namespace, store, key, value, version, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        namespace.as_str(),
        store.as_str(),
        key.as_bytes(),
        value,
        version,
        expires_ms
    ])?;
    unsigned(version)
}

fn remove(
    tx: &Transaction<'_>,
    namespace: &Namespace,
    store: &KvStoreName,
    key: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM kv_entries WHERE namespace = ?1 AND store = ?2 AND key = ?3")?
        .execute(params![namespace.as_str(), store.as_str(), key.as_bytes()])?;
    Ok(())
}

/// The key's live entry at `now`.
fn entry(
    conn: &Connection,
    namespace: &Namespace,
    store: &KvStoreName,
    key: &str,
    now: UnixMillis,
) -> Result<Option<KvEntry>, OpError> {
    let row: Option<(Vec<u8>, i64, Option<i64>)> = conn
        .prepare_cached(
            "SELECT value, version, expires_ms FROM kv_entries
             WHERE namespace = ?1 AND store = ?2 AND key = ?3 AND (expires_ms IS NULL OR expires_ms > ?4)",
        )?
        .query_row(
            params![namespace.as_str(), store.as_str(), key.as_bytes(), now],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    row.map(|(value, version, expires_ms)| {
        Ok(KvEntry {
            key: key.to_string(),
            value,
            version: unsigned(version)?,
            expires_ms,
        })
    })
    .transpose()
}

fn read_store(row: &rusqlite::Row<'_>) -> Result<KvStoreRecord, OpError> {
    let namespace: String = row.get(0)?;
    let name: String = row.get(1)?;
    Ok(KvStoreRecord {
        namespace: Namespace::new(&namespace).map_err(|e| corrupt(format!("namespace: {e}")))?,
        name: KvStoreName::new(&name).map_err(|e| corrupt(format!("key-value store: {e}")))?,
        created_ms: row.get(2)?,
    })
}

fn text(bytes: Vec<u8>) -> Result<String, OpError> {
    String::from_utf8(bytes).map_err(|_| corrupt("a key-value key is not UTF-8".into()))
}

fn unsigned(n: i64) -> Result<u64, OpError> {
    u64::try_from(n).map_err(|_| corrupt(format!("a key-value version is negative: {n}")))
}

fn corrupt(message: String) -> OpError {
    OpError::Store(StoreError::Corrupt(message))
}

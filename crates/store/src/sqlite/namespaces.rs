//! The SQLite [`Namespaces`]: the `namespaces` table, each record's settings as JSON, its
//! revision drawn from the `revisions` counter so it only ever grows, even across a delete
//! and a create under the same name.

use super::{OpError, SqliteStore};
use crate::{NamespaceRecord, NamespaceSettings, Namespaces, Result, StoreError, UnixMillis};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use wisp_core::Namespace;

const SELECT: &str = "SELECT name, settings, created_at, revision FROM namespaces";

#[async_trait]
impl Namespaces for SqliteStore {
    async fn create_namespace(
        &self,
        name: &Namespace,
        settings: &NamespaceSettings,
        created_at: UnixMillis,
    ) -> Result<bool> {
        let name = name.clone();
        let settings = encode(&name, settings)?;
        let what = format!("creating namespace `{name}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if read(&tx, &name)?.is_some() {
                // Nothing was written; dropping the transaction rolls back an empty one.
                return Ok(false);
            }
            let revision = next_revision(&tx, "namespaces")?;
            tx.prepare_cached(
                "INSERT INTO namespaces (name, settings, created_at, revision) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![name.as_str(), settings, created_at, revision])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn namespace(&self, name: &Namespace) -> Result<Option<NamespaceRecord>> {
        let name = name.clone();
        let what = format!("reading namespace `{name}`");
        self.read(what, move |conn| read(conn, &name)).await
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceRecord>> {
        let what = "listing the namespaces".to_owned();
        self.read(what, move |conn| {
            conn.prepare_cached(&format!("{SELECT} ORDER BY name"))?
                .query_map([], NamespaceRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .map(NamespaceRow::into_record)
                .collect()
        })
        .await
    }

    /// Compares the revision and writes the settings with the next one, in one
    /// transaction.
    async fn update_namespace(
        &self,
        name: &Namespace,
        settings: &NamespaceSettings,
        revision: u64,
    ) -> Result<Option<NamespaceRecord>> {
        let name = name.clone();
        let settings = encode(&name, settings)?;
        let what = format!("updating namespace `{name}`");
        self.write(what, move |conn| {
            // A revision past i64::MAX was never handed out, so it cannot match.
            let Ok(expected) = i64::try_from(revision) else {
                return Ok(None);
            };
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<i64> = tx
                .prepare_cached("SELECT revision FROM namespaces WHERE name = ?1")?
                .query_row([name.as_str()], |row| row.get(0))
                .optional()?;
            if current != Some(expected) {
                return Ok(None);
            }
            let next = next_revision(&tx, "namespaces")?;
            tx.prepare_cached("UPDATE namespaces SET settings = ?2, revision = ?3 WHERE name = ?1")?
                .execute(params![name.as_str(), settings, next])?;
            let record = read(&tx, &name)?;
            tx.commit()?;
            Ok(record)
        })
        .await
    }

    async fn delete_namespace(&self, name: &Namespace) -> Result<bool> {
        let name = name.clone();
        let what = format!("deleting namespace `{name}`");
        self.write(what, move |conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM namespaces WHERE name = ?1")?
                .execute([name.as_str()])?;
            Ok(deleted > 0)
        })
        .await
    }
}

fn encode(name: &Namespace, settings: &NamespaceSettings) -> Result<String> {
    serde_json::to_string(settings)
        .map_err(|e| StoreError::Backend(format!("encoding the settings of namespace `{name}`: {e}")))
}

fn read(conn: &Connection, name: &Namespace) -> Result<Option<NamespaceRecord>, OpError> {
    conn.prepare_cached(&format!("{SELECT} WHERE name = ?1"))?
        .query_row([name.as_str()], NamespaceRow::read)
        .optional()?
        .map(NamespaceRow::into_record)
        .transpose()
}

/// The next revision of `table`'s records: one more than the last handed out, from
/// its row of the `revisions` counter. Shared with the other tables whose records
/// change by compare-and-set ([`super::alarms`]).
pub(super) fn next_revision(conn: &Connection, table: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO revisions (name, last) VALUES (?1, 1)
         ON CONFLICT (name) DO UPDATE SET last = last + 1
         RETURNING last",
    )?
    .query_row([table], |row| row.get(0))
}

/// One row of the `namespaces` table, as stored.
struct NamespaceRow {
    name: String,
    settings: String,
    created_at: i64,
    revision: i64,
}

impl NamespaceRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<NamespaceRow> {
        Ok(NamespaceRow {
            name: row.get(0)?,
            settings: row.get(1)?,
            created_at: row.get(2)?,
            revision: row.get(3)?,
        })
    }

    fn into_record(self) -> Result<NamespaceRecord, OpError> {
        let corrupt = |what: String| {
            OpError::Store(StoreError::Corrupt(format!(
                "namespace `{}` has a bad {what}",
                self.name
            )))
        };
        let name = Namespace::new(self.name.as_str()).map_err(|e| corrupt(format!("name: {e}")))?;
        let settings = serde_json::from_str(&self.settings).map_err(|e| corrupt(format!("settings: {e}")))?;
        let revision =
            u64::try_from(self.revision).map_err(|_| corrupt(format!("revision `{}`", self.revision)))?;
        Ok(NamespaceRecord {
            name,
            settings,
            created_at: self.created_at,
            revision,
        })
    }
}

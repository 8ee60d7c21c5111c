//! The SQLite [`Alarms`]: the `alarms` table (migration 17), one row per namespace and
//! name holding the whole [`AlarmRecord`] as JSON (all but its revision, which has a
//! column of its own). Every change reads the record, changes it and writes it back in
//! one `IMMEDIATE` transaction, as a JetStream backend would update one KV entry.
//! Revisions come from the `revisions` counter (row `alarms`), so they only grow, across
//! a delete and a create under the same name too.

use super::namespaces::next_revision;
use super::{OpError, SqliteStore};
use crate::{AlarmPut, AlarmRecord, Alarms, Result, StateChange, StoreError, UnixMillis};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use wisp_core::{AlarmName, AlarmSpec, Namespace};

const SELECT: &str = "SELECT namespace, name, record, revision FROM alarms";

#[async_trait]
impl Alarms for SqliteStore {
    async fn put_alarm(
        &self,
        namespace: &Namespace,
        name: &AlarmName,
        spec: &AlarmSpec,
        now: UnixMillis,
    ) -> Result<AlarmPut> {
        let (namespace, name, spec) = (namespace.clone(), name.clone(), spec.clone());
        let what = format!("putting alarm `{namespace}/{name}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let put = match read(&tx, &namespace, &name)? {
                // Nothing was written; dropping the transaction rolls back an empty one.
                Some(record) if record.spec == spec => return Ok(AlarmPut::Unchanged(record)),
                Some(mut record) => {
                    record.spec = spec;
                    record.updated_ms = now;
                    AlarmPut::Updated(save(&tx, record)?)
                }
                None => AlarmPut::Created(save(&tx, AlarmRecord::new(namespace, name, spec, now))?),
            };
            tx.commit()?;
            Ok(put)
        })
        .await
    }

    async fn alarm(&self, namespace: &Namespace, name: &AlarmName) -> Result<Option<AlarmRecord>> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("reading alarm `{namespace}/{name}`");
        self.read(what, move |conn| read(conn, &namespace, &name)).await
    }

    async fn list_alarms(&self, namespace: Option<&Namespace>) -> Result<Vec<AlarmRecord>> {
        let namespace = namespace.cloned();
        self.read("listing alarms".into(), move |conn| {
            conn.prepare_cached(&format!(
                "{SELECT} WHERE ?1 IS NULL OR namespace = ?1 ORDER BY namespace, name"
            ))?
            .query_map([namespace.as_ref().map(Namespace::as_str)], AlarmRow::read)?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(AlarmRow::into_record)
            .collect()
        })
        .await
    }

    /// Compares the revision and writes the changed record with the next one, in one
    /// transaction.
    async fn set_alarm_state(
        &self,
        namespace: &Namespace,
        name: &AlarmName,
        revision: u64,
        change: &StateChange,
    ) -> Result<Option<AlarmRecord>> {
        let (namespace, name, change) = (namespace.clone(), name.clone(), change.clone());
        let what = format!("changing the state of alarm `{namespace}/{name}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(mut record) = read(&tx, &namespace, &name)?.filter(|r| r.revision == revision) else {
                return Ok(None);
            };
            record.apply(change);
            let record = save(&tx, record)?;
            tx.commit()?;
            Ok(Some(record))
        })
        .await
    }

    /// Writes only when the mark or the errors change, so marking again does not move
    /// the revision an evaluator may be about to compare.
    async fn mark_alarm_notified(
        &self,
        namespace: &Namespace,
        name: &AlarmName,
        seq: u64,
        errors: &[String],
    ) -> Result<bool> {
        let (namespace, name, errors) = (namespace.clone(), name.clone(), errors.to_vec());
        let what = format!("marking transition {seq} of alarm `{namespace}/{name}` notified");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(mut record) = read(&tx, &namespace, &name)? else {
                return Ok(false);
            };
            if seq > record.transitions {
                return Ok(false);
            }
            if record.mark_notified(seq, errors) {
                save(&tx, record)?;
                tx.commit()?;
            }
            Ok(true)
        })
        .await
    }

    async fn delete_alarm(&self, namespace: &Namespace, name: &AlarmName) -> Result<bool> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("deleting alarm `{namespace}/{name}`");
        self.write(what, move |conn| {
            let n = conn
                .prepare_cached("DELETE FROM alarms WHERE namespace = ?1 AND name = ?2")?
                .execute(params![namespace.as_str(), name.as_str()])?;
            Ok(n > 0)
        })
        .await
    }
}

fn read(conn: &Connection, namespace: &Namespace, name: &AlarmName) -> Result<Option<AlarmRecord>, OpError> {
    conn.prepare_cached(&format!("{SELECT} WHERE namespace = ?1 AND name = ?2"))?
        .query_row(params![namespace.as_str(), name.as_str()], AlarmRow::read)
        .optional()?
        .map(AlarmRow::into_record)
        .transpose()
}

/// Writes `record` whole under the next revision, and returns it with that revision.
fn save(conn: &Connection, mut record: AlarmRecord) -> Result<AlarmRecord, OpError> {
    let json = encode(&record)?;
    let revision = next_revision(conn, "alarms")?;
    conn.prepare_cached(
        "INSERT INTO alarms (namespace, name, record, revision) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (namespace, name) DO UPDATE
         SET record = excluded.record, revision = excluded.revision",
    )?
    .execute(params![
        record.namespace.as_str(),
        record.name.as_str(),
        json,
        revision
    ])?;
    record.revision = u64::try_from(revision)
        .map_err(|_| StoreError::Corrupt(format!("the alarms were given revision {revision}")))?;
    Ok(record)
}

/// The record as stored: its JSON without the revision, which the row's column holds.
fn encode(record: &AlarmRecord) -> Result<String, OpError> {
    let failed = |e: serde_json::Error| {
        OpError::Store(StoreError::Backend(format!(
            "encoding alarm `{}/{}`: {e}",
            record.namespace, record.name
        )))
    };
    let mut json = serde_json::to_value(record).map_err(failed)?;
    if let Some(fields) = json.as_object_mut() {
        fields.remove("revision");
    }
    serde_json::to_string(&json).map_err(failed)
}

/// One row of the `alarms` table, as stored.
struct AlarmRow {
    namespace: String,
    name: String,
    record: String,
    revision: i64,
}

impl AlarmRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<AlarmRow> {
        Ok(AlarmRow {
            namespace: row.get(0)?,
            name: row.get(1)?,
            record: row.get(2)?,
            revision: row.get(3)?,
        })
    }

    fn into_record(self) -> Result<AlarmRecord, OpError> {
        let corrupt = |what: String| {
            OpError::Store(StoreError::Corrupt(format!(
                "alarm `{}/{}` has a bad {what}",
                self.namespace, self.name
            )))
        };
        let mut fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.record).map_err(|e| corrupt(format!("record: {e}")))?;
        fields.insert("revision".to_owned(), self.revision.into());
        let record: AlarmRecord = serde_json::from_value(fields.into())
            .map_err(|e| corrupt(format!("record (revision {}): {e}", self.revision)))?;
        if (record.namespace.as_str(), record.name.as_str()) != (self.namespace.as_str(), self.name.as_str())
        {
            return Err(corrupt(format!(
                "record: it names `{}/{}`",
                record.namespace, record.name
            )));
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// A record that does not parse is corrupt, and the error names the alarm.
    #[tokio::test]
    async fn a_record_that_does_not_parse_is_corrupt() -> TestResult {
        let dir = TempDir::new()?;
        let store = SqliteStore::open(&dir.path().join("wisp.db"))?;
        let (namespace, name) = (Namespace::new("default")?, AlarmName::new("errors")?);
        let spec: AlarmSpec = serde_json::from_str(r#"{"metric":"errors","function":"api","threshold":1}"#)?;
        store.put_alarm(&namespace, &name, &spec, 7).await?;
        store
            .conns
            .writer
            .lock()
            .map_err(|e| e.to_string())?
            .execute_batch("UPDATE alarms SET record = '{\"state\":\"ON_FIRE\"}'")?;

        for err in [
            store.alarm(&namespace, &name).await.err(),
            store.list_alarms(None).await.err(),
        ] {
            let Some(StoreError::Corrupt(message)) = &err else {
                return Err(format!("expected Corrupt, got {err:?}").into());
            };
            assert!(message.contains("`default/errors`"), "{message}");
        }
        Ok(())
    }
}

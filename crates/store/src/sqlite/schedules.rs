//! The SQLite [`Schedules`]: the last slot each schedule of a function reached (the
//! `schedules` table), advanced in one transaction with the event the slot fires, so that
//! a crash can neither fire a slot twice nor record a slot whose event was lost.

use super::{SqliteStore, events};
use crate::{NewEvent, Result, Schedules, UnixMillis};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use wisp_core::wall::now_ms;
use wisp_core::{FunctionName, Namespace};

#[async_trait]
impl Schedules for SqliteStore {
    async fn schedule_last_slot(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        schedule_key: &str,
    ) -> Result<Option<UnixMillis>> {
        let (namespace, function, key) = (namespace.clone(), function.clone(), schedule_key.to_owned());
        let what = format!("reading schedule `{key}` of `{namespace}/{function}`");
        self.read(what, move |conn| {
            let slot = conn
                .prepare_cached(
                    "SELECT last_slot FROM schedules
                     WHERE namespace = ?1 AND function = ?2 AND schedule_key = ?3",
                )?
                .query_row(params![namespace.as_str(), function.as_str(), key], |row| {
                    row.get(0)
                })
                .optional()?;
            Ok(slot)
        })
        .await
    }

    /// Moves the schedule to `slot` and records `event`, in one transaction; does
    /// nothing and returns `false` unless `slot` is later than the last one.
    async fn advance_schedule(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        schedule_key: &str,
        slot: UnixMillis,
        event: Option<&NewEvent>,
    ) -> Result<bool> {
        let (namespace, function, key) = (namespace.clone(), function.clone(), schedule_key.to_owned());
        let event = event.cloned();
        let what = format!("advancing schedule `{key}` of `{namespace}/{function}` to {slot}");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let advanced =
                tx.prepare_cached(
                    "INSERT INTO schedules (namespace, function, schedule_key, last_slot, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (namespace, function, schedule_key) DO UPDATE
                         SET last_slot = excluded.last_slot, updated_at = excluded.updated_at
                         WHERE excluded.last_slot > schedules.last_slot",
                )?
                .execute(params![
                    namespace.as_str(),
                    function.as_str(),
                    key,
                    slot,
                    now_ms()
                ])? > 0;
            if !advanced {
                // Nothing was written; dropping the transaction rolls back an empty one.
                return Ok(false);
            }
            if let Some(event) = &event {
                // Event ids are fresh; one already taken is not this slot's to fire twice.
                events::insert(&tx, event)?;
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn forget_function(&self, namespace: &Namespace, function: &FunctionName) -> Result<()> {
        let (namespace, function) = (namespace.clone(), function.clone());
        let what = format!("forgetting the schedules of `{namespace}/{function}`");
        self.write(what, move |conn| {
            conn.prepare_cached("DELETE FROM schedules WHERE namespace = ?1 AND function = ?2")?
                .execute(params![namespace.as_str(), function.as_str()])?;
            Ok(())
        })
        .await
    }
}

//! Cron schedule state: the last slot each schedule of a function reached (ran or
//! skipped), advanced together with the event the slot fires, so that a crash can
//! neither fire a slot twice nor record a slot whose event was lost.

use super::{OpError, events};
use crate::{NewEvent, UnixMillis};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use wisp_core::{FunctionName, Namespace};

/// One schedule of one function.
#[derive(Clone, Copy)]
pub(super) struct ScheduleRef<'a> {
    pub namespace: &'a Namespace,
    pub function: &'a FunctionName,
    pub key: &'a str,
}

pub(super) fn last_slot(conn: &Connection, schedule: ScheduleRef<'_>) -> Result<Option<UnixMillis>, OpError> {
    let slot = conn
        .prepare_cached(
            "SELECT last_slot FROM schedules
             WHERE namespace = ?1 AND function = ?2 AND schedule_key = ?3",
        )?
        .query_row(
            params![
                schedule.namespace.as_str(),
                schedule.function.as_str(),
                schedule.key
            ],
            |row| row.get(0),
        )
        .optional()?;
    Ok(slot)
}

/// Moves the schedule to `slot` and records `event`, in one transaction; does
/// nothing and returns `false` unless `slot` is later than the last one.
pub(super) fn advance(
    conn: &mut Connection,
    schedule: ScheduleRef<'_>,
    slot: UnixMillis,
    event: Option<&NewEvent>,
    now: UnixMillis,
) -> Result<bool, OpError> {
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
            schedule.namespace.as_str(),
            schedule.function.as_str(),
            schedule.key,
            slot,
            now
        ])? > 0;
    if !advanced {
        // Nothing was written; dropping the transaction rolls back an empty one.
        return Ok(false);
    }
    if let Some(event) = event {
        // Event ids are fresh; one already taken is not this slot's to fire twice.
        events::insert(&tx, event)?;
    }
    tx.commit()?;
    Ok(true)
}

/// Deletes every schedule of a function (inside `delete_function`'s transaction).
pub(super) fn delete_function(tx: &Transaction<'_>, namespace: &str, function: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM schedules WHERE namespace = ?1 AND function = ?2")?
        .execute(params![namespace, function])?;
    Ok(())
}

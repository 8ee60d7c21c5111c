//! The SQLite [`Events`]: async invocation events (the `events` table). Writing them (the
//! hot path of a durable async invoke: new events, and the outcomes of finished runs with
//! their follow-ups), claiming due events under a lease, and the dead-letter and status
//! queries.
//!
//! An event is `pending` (due at `run_at`; running while `leased_until` is set),
//! `succeeded` (kept until swept, to answer status queries and idempotency keys) or
//! `failed` (a dead letter). The claim reads the partial index `events_due`, which
//! holds exactly the pending, unleased events, so its cost does not grow with the
//! succeeded and dead events the table keeps.

use super::{OpError, SqliteStore, queues};
use crate::{
    Enqueued, EventBacklog, EventCounts, EventOutcome, EventQuery, EventRecord, EventStatus, Events, Failure,
    FollowUp, HeldLease, NewEvent, Resolution, Result, StoreError, UnixMicros, UnixMillis,
};
use async_trait::async_trait;
use rusqlite::{CachedStatement, Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use wisp_core::{ErrorCode, FunctionName, Namespace, Qualifier};

/// Inserts one new event, claimed already when it comes with a lease; a conflict on
/// the id or on the idempotency key inserts nothing (`changes() == 0`), and the
/// caller finds out which.
const INSERT: &str = "
    INSERT INTO events (id, namespace, function, payload, status, attempts, chain_depth, source,
                        idempotency_key, created_us, run_at, updated_at, leased_until, first_run_us,
                        qualifier, trace, parent)
    VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
    ON CONFLICT DO NOTHING";

/// The columns [`Row::read`] reads, in its order.
macro_rules! columns {
    () => {
        "namespace, function, id, payload, status, leased_until, attempts, chain_depth, source,
         idempotency_key, created_us, first_run_us, run_at, updated_at, last_error, failure, result,
         held_ms, qualifier, trace, parent"
    };
}

/// Leases the due events, oldest `run_at` first. The subquery is the one that must
/// use `events_due` (see the test of its plan); the update then goes by rowid.
pub(super) const CLAIM: &str = concat!(
    "UPDATE events SET leased_until = ?3, first_run_us = coalesce(first_run_us, ?2)
     WHERE rowid IN (
         SELECT rowid FROM events
         WHERE status = 'pending' AND leased_until IS NULL AND run_at <= ?1
         ORDER BY run_at, created_us LIMIT ?4)
     RETURNING ",
    columns!()
);

/// The earliest `run_at` of a pending, unleased event: the first entry of `events_due`.
pub(super) const NEXT_DUE: &str =
    "SELECT min(run_at) FROM events WHERE status = 'pending' AND leased_until IS NULL";

/// Who holds an idempotency key (`events_by_idempotency_key`).
pub(super) const KEY_HOLDER: &str = "SELECT id, created_us FROM events
     WHERE namespace = ?1 AND function = ?2 AND idempotency_key = ?3";

/// Every lease, at start-up (`events_leased`).
pub(super) const RELEASE: &str = "UPDATE events SET leased_until = NULL WHERE leased_until IS NOT NULL";

/// Every lease and its end (`events_leased`).
pub(super) const LEASES: &str =
    "SELECT id, leased_until FROM events WHERE leased_until IS NOT NULL AND status = 'pending'";

/// One lease, if it is still as listed: `?1` the id, `?2` its `leased_until`.
pub(super) const RELEASE_ONE: &str = "UPDATE events SET leased_until = NULL
     WHERE id = ?1 AND leased_until = ?2 AND status = 'pending'";

/// Old successes (`events_succeeded`).
pub(super) const SWEEP: &str = "DELETE FROM events WHERE status = 'succeeded' AND created_us < ?1";

/// [`Events::browse_events`]' statements, the first page's and the pages' after: `?1`
/// namespace, `?2` function, `?3` status, `?4` and `?5` the last event's `created_us` and
/// id, `?6` the limit. They read `events_by_function` in its order, newest first, from
/// where the page before stopped.
macro_rules! browse {
    ($after:literal) => {
        concat!(
            "SELECT ",
            columns!(),
            " FROM events INDEXED BY events_by_function
            WHERE namespace = ?1 AND function = ?2 AND status = ?3",
            $after,
            " ORDER BY created_us DESC, id DESC LIMIT ?6"
        )
    };
}
pub(super) const BROWSE_FIRST: &str = browse!(" AND ?4 IS NULL AND ?5 IS NULL");
pub(super) const BROWSE_AFTER: &str = browse!(" AND (created_us, id) < (?4, ?5)");

#[async_trait]
impl Events for SqliteStore {
    async fn write_events(
        &self,
        events: &[NewEvent],
        idempotent_since: UnixMicros,
        outcomes: &[EventOutcome],
        now: UnixMillis,
    ) -> Result<Vec<Enqueued>> {
        if events.is_empty() && outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let (events, outcomes) = (events.to_vec(), outcomes.to_vec());
        let what = match (events.len(), outcomes.len()) {
            (n, 0) => format!("recording async events (a batch of {n})"),
            (0, n) => format!("recording async outcomes (a batch of {n})"),
            (n, m) => format!("recording async events and outcomes (batches of {n} and {m})"),
        };
        self.write(what, move |conn| {
            write(conn, &events, idempotent_since, &outcomes, now)
        })
        .await
    }

    async fn claim_events(
        &self,
        now: UnixMillis,
        now_us: UnixMicros,
        lease_until: UnixMillis,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let what = format!("claiming up to {limit} due async events");
        self.write(what, move |conn| claim(conn, now, now_us, lease_until, limit))
            .await
    }

    async fn release_event_leases(&self) -> Result<u64> {
        let what = "releasing the leases of async events".to_owned();
        self.write(what, |conn| {
            let released = conn.prepare_cached(RELEASE)?.execute([])?;
            Ok(released as u64)
        })
        .await
    }

    /// One node (the data directory is locked): no other node holds leases.
    async fn release_node_leases(&self, _node: &str) -> Result<u64> {
        Ok(0)
    }

    /// Every lease (one node holds them all). A claim or write is one transaction, so a
    /// lease whose answer was lost does not happen here; the check is the same anyway.
    async fn held_leases(&self) -> Result<Vec<HeldLease>> {
        let what = "listing the leases of async events".to_owned();
        self.read(what, |conn| {
            let leases = conn
                .prepare_cached(LEASES)?
                .query_map([], |row| {
                    Ok(HeldLease {
                        id: row.get(0)?,
                        leased_until: row.get(1)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(leases)
        })
        .await
    }

    /// One transaction, one compare-and-set per lease.
    async fn release_leases(&self, leases: &[HeldLease]) -> Result<u64> {
        if leases.is_empty() {
            return Ok(0);
        }
        let leases = leases.to_vec();
        let what = format!("releasing {} leases of async events", leases.len());
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut released = 0;
            {
                let mut release = tx.prepare_cached(RELEASE_ONE)?;
                for lease in &leases {
                    released += release.execute(params![lease.id, lease.leased_until])? as u64;
                }
            }
            tx.commit()?;
            Ok(released)
        })
        .await
    }

    async fn next_event_due(&self) -> Result<Option<UnixMillis>> {
        let what = "reading when the next async event is due".to_owned();
        self.read(what, |conn| {
            let due = conn.prepare_cached(NEXT_DUE)?.query_row([], |row| row.get(0))?;
            Ok(due)
        })
        .await
    }

    async fn get_event(&self, namespace: &Namespace, id: &str) -> Result<Option<EventRecord>> {
        let (namespace, id) = (namespace.clone(), id.to_owned());
        let what = format!("reading async event `{id}` in `{namespace}`");
        self.read(what, move |conn| {
            let row = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM events WHERE id = ?2 AND namespace = ?1"
                ))?
                .query_row(params![namespace.as_str(), id], Row::read)
                .optional()?;
            row.map(Row::into_record).transpose()
        })
        .await
    }

    async fn list_events(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        status: EventStatus,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let (namespace, function) = (namespace.clone(), function.clone());
        let what = format!(
            "listing the {} async events of `{namespace}/{function}`",
            status.as_str()
        );
        self.read(what, move |conn| {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM events WHERE namespace = ?1 AND function = ?2 AND status = ?3
                      ORDER BY created_us DESC LIMIT ?4"
                ))?
                .query_map(
                    params![namespace.as_str(), function.as_str(), status.as_str(), limit],
                    Row::read,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(Row::into_record).collect()
        })
        .await
    }

    async fn browse_events(&self, query: &EventQuery) -> Result<Vec<EventRecord>> {
        let query = query.clone();
        let what = format!("listing the async events of `{}`", query.namespace);
        self.read(what, move |conn| {
            let (before_us, before_id) = query.before.clone().unzip();
            let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
            let rows = conn
                .prepare_cached(if query.before.is_some() {
                    BROWSE_AFTER
                } else {
                    BROWSE_FIRST
                })?
                .query_map(
                    params![
                        query.namespace.as_str(),
                        query.function.as_str(),
                        query.status.as_str(),
                        before_us,
                        before_id,
                        limit
                    ],
                    Row::read,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(Row::into_record).collect()
        })
        .await
    }

    async fn event_counts(&self, namespace: &Namespace, function: &FunctionName) -> Result<EventCounts> {
        let (namespace, function) = (namespace.clone(), function.clone());
        let what = format!("counting the async events of `{namespace}/{function}`");
        self.read(what, move |conn| counts(conn, &namespace, &function))
            .await
    }

    async fn event_backlog(&self, namespace: Option<&Namespace>) -> Result<Vec<EventBacklog>> {
        const SELECT: &str = "SELECT namespace, function,
                count(*) FILTER (WHERE status = 'pending' AND leased_until IS NULL),
                count(*) FILTER (WHERE status = 'pending' AND leased_until IS NOT NULL),
                count(*) FILTER (WHERE status = 'failed'),
                min(created_us) FILTER (WHERE status = 'pending')
            FROM events WHERE status IN ('pending', 'failed')";
        let namespace = namespace.cloned();
        let what = "counting the async backlog".to_owned();
        self.read(what, move |conn| {
            let read = |row: &rusqlite::Row<'_>| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    [row.get::<_, i64>(2)?, row.get::<_, i64>(3)?, row.get::<_, i64>(4)?],
                    row.get::<_, Option<i64>>(5)?,
                ))
            };
            let rows = match &namespace {
                Some(ns) => conn
                    .prepare_cached(&format!(
                        "{SELECT} AND namespace = ?1 GROUP BY namespace, function ORDER BY namespace, function"
                    ))?
                    .query_map([ns.as_str()], read)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => conn
                    .prepare_cached(&format!("{SELECT} GROUP BY namespace, function ORDER BY namespace, function"))?
                    .query_map([], read)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            // count(*) is never negative.
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            rows.into_iter()
                .map(|(ns, function, [queued, running, failed], oldest_us)| {
                    let corrupt = |what: String| {
                        OpError::Store(StoreError::Corrupt(format!("an event of `{ns}/{function}` has a bad {what}")))
                    };
                    Ok(EventBacklog {
                        namespace: Namespace::new(ns.as_str()).map_err(|e| corrupt(format!("namespace: {e}")))?,
                        function: FunctionName::new(function.as_str())
                            .map_err(|e| corrupt(format!("function name: {e}")))?,
                        queued: count(queued),
                        running: count(running),
                        failed: count(failed),
                        oldest_pending_ms: oldest_us.map(|us| us / 1000),
                    })
                })
                .collect()
        })
        .await
    }

    async fn redrive_events(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        ids: Option<&[String]>,
        now: UnixMillis,
        now_us: UnixMicros,
    ) -> Result<Vec<String>> {
        let (namespace, function, ids) = (namespace.clone(), function.clone(), ids.map(<[String]>::to_vec));
        let what = format!("redriving the dead letters of `{namespace}/{function}`");
        self.write(what, move |conn| {
            let dead = DeadLetters {
                namespace: &namespace,
                function: &function,
                ids: ids.as_deref(),
            };
            redrive(conn, dead, now, now_us)
        })
        .await
    }

    async fn purge_events(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        ids: Option<&[String]>,
    ) -> Result<u64> {
        let (namespace, function, ids) = (namespace.clone(), function.clone(), ids.map(<[String]>::to_vec));
        let what = format!("purging the dead letters of `{namespace}/{function}`");
        self.write(what, move |conn| {
            let dead = DeadLetters {
                namespace: &namespace,
                function: &function,
                ids: ids.as_deref(),
            };
            purge(conn, dead)
        })
        .await
    }

    async fn release_held_events(
        &self,
        namespace: &Namespace,
        function: Option<&FunctionName>,
        code: ErrorCode,
        now: UnixMillis,
    ) -> Result<u64> {
        let (namespace, function) = (namespace.clone(), function.cloned());
        let what = format!("releasing the held async events of `{namespace}`");
        // The code's `_` is a LIKE wildcard: escaped.
        let pattern = format!("{}:%", code.as_str().replace('_', "\\_"));
        self.write(what, move |conn| {
            let released = conn
                .prepare_cached(
                    "UPDATE events SET run_at = ?2, held_ms = max(0, held_ms - (run_at - ?2))
                     WHERE namespace = ?1 AND (?3 IS NULL OR function = ?3)
                       AND status = 'pending' AND leased_until IS NULL
                       AND run_at > ?2 AND last_error LIKE ?4 ESCAPE '\\'",
                )?
                .execute(params![
                    namespace.as_str(),
                    now,
                    function.as_ref().map(FunctionName::as_str),
                    pattern
                ])?;
            Ok(released as u64)
        })
        .await
    }

    async fn sweep_events(&self, before_us: UnixMicros) -> Result<u64> {
        let what = "sweeping old succeeded async events".to_owned();
        self.write(what, move |conn| {
            let swept = conn.prepare_cached(SWEEP)?.execute([before_us])?;
            Ok(swept as u64)
        })
        .await
    }

    async fn forget_function(&self, namespace: &Namespace, function: &FunctionName) -> Result<()> {
        let (namespace, function) = (namespace.clone(), function.clone());
        let what = format!("forgetting the async events of `{namespace}/{function}`");
        self.write(what, move |conn| {
            conn.prepare_cached("DELETE FROM events WHERE namespace = ?1 AND function = ?2")?
                .execute(params![namespace.as_str(), function.as_str()])?;
            Ok(())
        })
        .await
    }
}

/// Applies `outcomes`, then records `events`, in one transaction. The common case
/// of an event (a fresh id, and a fresh key or none) is one insert and no read; only
/// a conflict costs a lookup.
fn write(
    conn: &mut Connection,
    events: &[NewEvent],
    idempotent_since: UnixMicros,
    outcomes: &[EventOutcome],
    now: UnixMillis,
) -> Result<Vec<Enqueued>, OpError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    complete(&tx, outcomes, now)?;
    let mut results = Vec::with_capacity(events.len());
    {
        let mut insert = tx.prepare_cached(INSERT)?;
        for event in events {
            let result = if insert_with(&mut insert, event)? {
                Enqueued::New
            } else {
                resolve_conflict(&tx, &mut insert, event, idempotent_since)?
            };
            results.push(result);
        }
    }
    tx.commit()?;
    Ok(results)
}

/// Inserts `event` unless its id is taken (or its key is held); whether it did.
pub(super) fn insert(conn: &Connection, event: &NewEvent) -> Result<bool, OpError> {
    insert_with(&mut conn.prepare_cached(INSERT)?, event)
}

fn insert_with(insert: &mut CachedStatement<'_>, e: &NewEvent) -> Result<bool, OpError> {
    let inserted = insert.execute(params![
        e.id,
        e.namespace.as_str(),
        e.function.as_str(),
        e.payload,
        e.chain_depth,
        e.source,
        e.idempotency_key,
        e.created_us,
        e.run_at,
        e.created_us.div_euclid(1000),
        e.lease.map(|l| l.until),
        e.lease.map(|l| l.started_us),
        e.qualifier.as_ref().map(ToString::to_string),
        e.trace,
        e.parent,
    ])?;
    Ok(inserted > 0)
}

/// Why `event` was not inserted: its id exists (a duplicate of itself), or its key is
/// held by an event created within the window (a duplicate of that one), or by an
/// older one, whose key is then released so that this event takes it.
fn resolve_conflict(
    tx: &Transaction<'_>,
    insert: &mut CachedStatement<'_>,
    event: &NewEvent,
    idempotent_since: UnixMicros,
) -> Result<Enqueued, OpError> {
    let id_taken: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM events WHERE id = ?1)")?
        .query_row([&event.id], |row| row.get(0))?;
    if id_taken {
        return Ok(Enqueued::Duplicate { id: event.id.clone() });
    }
    let unexplained = || {
        OpError::Failed(format!(
            "event `{}` of `{}/{}` was refused, but neither its id nor its idempotency key is taken",
            event.id, event.namespace, event.function
        ))
    };
    let Some(key) = &event.idempotency_key else {
        return Err(unexplained());
    };
    let holder: Option<(String, UnixMicros)> = tx
        .prepare_cached(KEY_HOLDER)?
        .query_row(
            params![event.namespace.as_str(), event.function.as_str(), key],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    match holder {
        Some((id, created_us)) if created_us >= idempotent_since => Ok(Enqueued::Duplicate { id }),
        Some((id, _)) => {
            tx.prepare_cached("UPDATE events SET idempotency_key = NULL WHERE id = ?1")?
                .execute([&id])?;
            if insert_with(insert, event)? {
                Ok(Enqueued::New)
            } else {
                Err(unexplained())
            }
        }
        None => Err(unexplained()),
    }
}

/// Leases up to `limit` due events until `lease_until`, oldest `run_at` first.
fn claim(
    conn: &mut Connection,
    now: UnixMillis,
    now_us: UnixMicros,
    lease_until: UnixMillis,
    limit: usize,
) -> Result<Vec<EventRecord>, OpError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rows = tx
        .prepare_cached(CLAIM)?
        .query_map(params![now, now_us, lease_until, limit], Row::read)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.commit()?;
    // RETURNING gives rows in the order the update visited them (by rowid).
    let mut records = rows
        .into_iter()
        .map(Row::into_record)
        .collect::<Result<Vec<_>, _>>()?;
    records.sort_by_key(|r| (r.run_at, r.created_us));
    Ok(records)
}

/// Applies each outcome to its event, if the event is still pending, and then writes
/// the outcome's follow-ups (inside [`write()`]'s transaction, which makes the order of
/// the two irrelevant: a backend without one writes the follow-ups first).
fn complete(tx: &Transaction<'_>, outcomes: &[EventOutcome], now: UnixMillis) -> Result<(), OpError> {
    for outcome in outcomes {
        let (ns, id, attempts) = (outcome.namespace.as_str(), outcome.id.as_str(), outcome.attempts);
        // `status = 'pending'` makes a repeated outcome (a batch written again after an
        // error) a no-op instead of a second set of follow-ups.
        let applied = match &outcome.resolution {
            Resolution::Succeeded { result } => tx
                .prepare_cached(
                    "UPDATE events SET status = 'succeeded', result = ?3, leased_until = NULL,
                                       attempts = ?4, updated_at = ?5
                     WHERE id = ?2 AND namespace = ?1 AND status = 'pending'",
                )?
                .execute(params![ns, id, result, attempts, now])?,
            Resolution::Retry { run_at, error } => tx
                .prepare_cached(
                    "UPDATE events SET leased_until = NULL, run_at = ?3, last_error = ?4,
                                       attempts = ?5, updated_at = ?6
                     WHERE id = ?2 AND namespace = ?1 AND status = 'pending'",
                )?
                .execute(params![ns, id, run_at, error, attempts, now])?,
            Resolution::Held {
                run_at,
                held_ms,
                error,
            } => tx
                .prepare_cached(
                    "UPDATE events SET leased_until = NULL, run_at = ?3, last_error = ?4,
                                       held_ms = ?5, updated_at = ?6
                     WHERE id = ?2 AND namespace = ?1 AND status = 'pending'",
                )?
                .execute(params![
                    ns,
                    id,
                    run_at,
                    error,
                    i64::try_from(*held_ms).unwrap_or(i64::MAX),
                    now
                ])?,
            Resolution::Failed {
                error,
                failure,
                result,
            } => tx
                .prepare_cached(
                    "UPDATE events SET status = 'failed', leased_until = NULL, last_error = ?3,
                                       failure = ?4, result = ?5, attempts = ?6, updated_at = ?7
                     WHERE id = ?2 AND namespace = ?1 AND status = 'pending'",
                )?
                .execute(params![ns, id, error, failure.as_str(), result, attempts, now])?,
        };
        if applied == 0 {
            tracing::debug!(
                namespace = ns,
                event = id,
                "an outcome for an event no longer pending was skipped"
            );
            continue;
        }
        for follow_up in &outcome.follow_ups {
            match follow_up {
                FollowUp::Event(event) => {
                    insert(tx, event)?;
                }
                FollowUp::Message {
                    namespace,
                    queue,
                    message,
                } => {
                    if queues::config(tx, namespace, queue)?.is_some() {
                        queues::insert_message(tx, namespace, queue, message, now)?;
                    } else {
                        tracing::warn!(
                            namespace = namespace.as_str(),
                            queue = queue.as_str(),
                            event = id,
                            "the destination queue does not exist; the message was dropped"
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// Counts by status from the index alone, then the running ones (pending under a
/// lease: few) from their rows; one read transaction, so one snapshot.
fn counts(
    conn: &mut Connection,
    namespace: &Namespace,
    function: &FunctionName,
) -> Result<EventCounts, OpError> {
    let (ns, name) = (namespace.as_str(), function.as_str());
    let tx = conn.transaction()?;
    let by_status = tx
        .prepare_cached(
            "SELECT status, count(*) FROM events WHERE namespace = ?1 AND function = ?2 GROUP BY status",
        )?
        .query_map(params![ns, name], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let running: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM events
             WHERE namespace = ?1 AND function = ?2 AND status = 'pending' AND leased_until IS NOT NULL",
        )?
        .query_row(params![ns, name], |row| row.get(0))?;
    tx.commit()?;
    // count(*) is never negative.
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut counts = EventCounts {
        running: count(running),
        ..EventCounts::default()
    };
    for (status, n) in by_status {
        match parse_status(&status, || format!("an event of `{namespace}/{function}`"))? {
            EventStatus::Pending => counts.queued = count(n).saturating_sub(counts.running),
            EventStatus::Succeeded => counts.succeeded = count(n),
            EventStatus::Failed => counts.failed = count(n),
        }
    }
    Ok(counts)
}

/// The dead letters of a function a redrive or purge touches: all, or those in `ids`.
#[derive(Clone, Copy)]
struct DeadLetters<'a> {
    namespace: &'a Namespace,
    function: &'a FunctionName,
    ids: Option<&'a [String]>,
}

fn redrive(
    conn: &mut Connection,
    dead: DeadLetters<'_>,
    now: UnixMillis,
    now_us: UnixMicros,
) -> Result<Vec<String>, OpError> {
    // Aged from now: `first_run_us` goes with `created_us`, so queueing time is
    // measured afresh. `result` belonged to the failure, like `failure`; the last
    // error stays for whoever looks at the event before it runs again.
    const REDRIVE: &str = "
        UPDATE events SET status = 'pending', attempts = 0, chain_depth = 0, leased_until = NULL, created_us = ?4,
                          first_run_us = NULL, run_at = ?3, failure = NULL, result = NULL,
                          updated_at = ?3
        WHERE namespace = ?1 AND function = ?2 AND status = 'failed'";
    let (ns, name) = (dead.namespace.as_str(), dead.function.as_str());
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let redriven = match dead.ids {
        None => tx
            .prepare_cached(&format!("{REDRIVE} RETURNING id"))?
            .query_map(params![ns, name, now, now_us], |row| row.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?,
        Some(ids) => {
            let mut one = tx.prepare_cached(&format!("{REDRIVE} AND id = ?5 RETURNING id"))?;
            let mut redriven = Vec::new();
            for id in ids {
                if let Some(id) = one
                    .query_row(params![ns, name, now, now_us, id], |row| row.get(0))
                    .optional()?
                {
                    redriven.push(id);
                }
            }
            redriven
        }
    };
    tx.commit()?;
    Ok(redriven)
}

fn purge(conn: &mut Connection, dead: DeadLetters<'_>) -> Result<u64, OpError> {
    const PURGE: &str = "DELETE FROM events WHERE namespace = ?1 AND function = ?2 AND status = 'failed'";
    let (ns, name) = (dead.namespace.as_str(), dead.function.as_str());
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let purged = match dead.ids {
        None => tx.prepare_cached(PURGE)?.execute(params![ns, name])?,
        Some(ids) => {
            let mut one = tx.prepare_cached(&format!("{PURGE} AND id = ?3"))?;
            let mut purged = 0;
            for id in ids {
                purged += one.execute(params![ns, name, id])?;
            }
            purged
        }
    };
    tx.commit()?;
    Ok(purged as u64)
}

fn parse_status(status: &str, whose: impl FnOnce() -> String) -> Result<EventStatus, OpError> {
    match status {
        "pending" => Ok(EventStatus::Pending),
        "succeeded" => Ok(EventStatus::Succeeded),
        "failed" => Ok(EventStatus::Failed),
        other => Err(OpError::Store(StoreError::Corrupt(format!(
            "{} has the unknown status `{other}`",
            whose()
        )))),
    }
}

/// One row of [`columns!`], as stored.
struct Row {
    namespace: String,
    function: String,
    id: String,
    payload: Vec<u8>,
    status: String,
    leased_until: Option<i64>,
    attempts: i64,
    chain_depth: i64,
    source: String,
    idempotency_key: Option<String>,
    created_us: i64,
    first_run_us: Option<i64>,
    run_at: i64,
    updated_at: i64,
    last_error: Option<String>,
    failure: Option<String>,
    result: Option<Vec<u8>>,
    held_ms: i64,
    qualifier: Option<String>,
    trace: Option<String>,
    parent: Option<String>,
}

impl Row {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        Ok(Row {
            namespace: row.get(0)?,
            function: row.get(1)?,
            id: row.get(2)?,
            payload: row.get(3)?,
            status: row.get(4)?,
            leased_until: row.get(5)?,
            attempts: row.get(6)?,
            chain_depth: row.get(7)?,
            source: row.get(8)?,
            idempotency_key: row.get(9)?,
            created_us: row.get(10)?,
            first_run_us: row.get(11)?,
            run_at: row.get(12)?,
            updated_at: row.get(13)?,
            last_error: row.get(14)?,
            failure: row.get(15)?,
            result: row.get(16)?,
            held_ms: row.get(17)?,
            qualifier: row.get(18)?,
            trace: row.get(19)?,
            parent: row.get(20)?,
        })
    }

    fn into_record(self) -> Result<EventRecord, OpError> {
        let at = format!("event `{}` of `{}/{}`", self.id, self.namespace, self.function);
        let corrupt = |what: String| OpError::Store(StoreError::Corrupt(format!("{at} {what}")));
        let namespace = Namespace::new(self.namespace.as_str())
            .map_err(|e| corrupt(format!("has a bad namespace: {e}")))?;
        let function = FunctionName::new(self.function.as_str())
            .map_err(|e| corrupt(format!("has a bad function name: {e}")))?;
        let status = parse_status(&self.status, || at.clone())?;
        let failure = self
            .failure
            .map(|failure| {
                Failure::parse(&failure)
                    .ok_or_else(|| corrupt(format!("has the unknown failure `{failure}`")))
            })
            .transpose()?;
        let qualifier = self
            .qualifier
            .map(|q| {
                q.parse::<Qualifier>()
                    .map_err(|e| corrupt(format!("has a bad qualifier `{q}`: {e}")))
            })
            .transpose()?;
        let count = |what: &str, n: i64| {
            u32::try_from(n).map_err(|_| corrupt(format!("has an out-of-range {what} `{n}`")))
        };
        Ok(EventRecord {
            namespace,
            function,
            attempts: count("attempts", self.attempts)?,
            chain_depth: count("chain_depth", self.chain_depth)?,
            id: self.id,
            payload: self.payload,
            status,
            leased_until: self.leased_until,
            source: self.source,
            qualifier,
            idempotency_key: self.idempotency_key,
            created_us: self.created_us,
            first_run_us: self.first_run_us,
            run_at: self.run_at,
            updated_at: self.updated_at,
            last_error: self.last_error,
            held_ms: u64::try_from(self.held_ms).unwrap_or(0),
            failure,
            result: self.result,
            trace: self.trace,
            parent: self.parent,
        })
    }
}

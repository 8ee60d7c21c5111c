//! The SQLite [`Queues`]: platform queues and their messages (the `queues` and `messages`
//! tables), SQS's model on one table of messages.
//!
//! A message is visible when `visible_at <= now`. Receiving one makes it invisible
//! until the visibility timeout is over and gives it a fresh `receipt_handle`, which
//! deleting it or changing its visibility needs; the next receive replaces the
//! handle, so the previous receiver's goes stale. A message with no handle has not
//! been received in the queue it is in (sent, or moved there by a dead-letter move or
//! a redrive), which is how [`Queues::queue_stats`] tells delayed messages from
//! in-flight ones.
//!
//! Receiving walks `messages_by_visibility` (namespace, queue, visible_at, and the
//! rowid `seq` after them): the message visible the longest first, and among those
//! visible since the same millisecond, the one sent first. For messages sent without
//! a delay and not received yet that is sending order.

use super::{OpError, SqliteStore};
use crate::{
    NewMessage, QueueDepth, QueueRecord, QueueStats, Queues, Received, ReceivedMessage, Result, StoreError,
    UnixMillis,
};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::collections::HashSet;
use wisp_core::wall::millis;
use wisp_core::{Namespace, QueueConfig, QueueName};

/// The visible messages of a queue in receiving order; `?4` is how many to read.
pub(super) const VISIBLE: &str = "
    SELECT seq, id, body, sent_at, receive_count, first_received_at, chain_depth, trace, parent FROM messages
    WHERE namespace = ?1 AND queue = ?2 AND visible_at <= ?3
    ORDER BY visible_at, seq LIMIT ?4";

/// Drops a queue's messages sent before `?3` (`messages_by_age`).
pub(super) const EXPIRE: &str = "DELETE FROM messages WHERE namespace = ?1 AND queue = ?2 AND sent_at < ?3";

#[async_trait]
impl Queues for SqliteStore {
    async fn put_queue(
        &self,
        namespace: &Namespace,
        name: &QueueName,
        config: &QueueConfig,
        now: UnixMillis,
    ) -> Result<bool> {
        let (namespace, name, config) = (namespace.clone(), name.clone(), config.clone());
        let what = format!("saving queue `{namespace}/{name}`");
        self.write(what, move |conn| put(conn, &namespace, &name, &config, now))
            .await
    }

    async fn get_queue(&self, namespace: &Namespace, name: &QueueName) -> Result<Option<QueueRecord>> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("reading queue `{namespace}/{name}`");
        self.read(what, move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT namespace, name, config, created_at, updated_at FROM queues
                     WHERE namespace = ?1 AND name = ?2",
                )?
                .query_row(params![namespace.as_str(), name.as_str()], QueueRow::read)
                .optional()?;
            row.map(QueueRow::into_record).transpose()
        })
        .await
    }

    async fn list_queues(&self, namespace: Option<&Namespace>) -> Result<Vec<QueueRecord>> {
        const SELECT: &str = "SELECT namespace, name, config, created_at, updated_at FROM queues";
        let namespace = namespace.cloned();
        let what = match &namespace {
            Some(ns) => format!("listing the queues of `{ns}`"),
            None => "listing the queues of every namespace".to_owned(),
        };
        self.read(what, move |conn| {
            let rows = match &namespace {
                Some(ns) => conn
                    .prepare_cached(&format!("{SELECT} WHERE namespace = ?1 ORDER BY namespace, name"))?
                    .query_map([ns.as_str()], QueueRow::read)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => conn
                    .prepare_cached(&format!("{SELECT} ORDER BY namespace, name"))?
                    .query_map([], QueueRow::read)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            rows.into_iter().map(QueueRow::into_record).collect()
        })
        .await
    }

    /// Deletes the queue and its messages in one transaction. Messages it dead-lettered
    /// elsewhere keep its name as their source; a redrive skips them while it does not
    /// exist.
    async fn delete_queue(&self, namespace: &Namespace, name: &QueueName) -> Result<bool> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("deleting queue `{namespace}/{name}`");
        self.write(what, move |conn| {
            let (ns, name) = (namespace.as_str(), name.as_str());
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existed = tx
                .prepare_cached("DELETE FROM queues WHERE namespace = ?1 AND name = ?2")?
                .execute(params![ns, name])?
                > 0;
            tx.prepare_cached("DELETE FROM messages WHERE namespace = ?1 AND queue = ?2")?
                .execute(params![ns, name])?;
            tx.commit()?;
            Ok(existed)
        })
        .await
    }

    async fn send_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        messages: &[NewMessage],
        now: UnixMillis,
    ) -> Result<()> {
        let (namespace, queue, messages) = (namespace.clone(), queue.clone(), messages.to_vec());
        let what = format!(
            "sending {} messages to queue `{namespace}/{queue}`",
            messages.len()
        );
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            config_or_not_found(&tx, &namespace, &queue)?;
            for message in &messages {
                insert_message(&tx, &namespace, &queue, message, now)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn receive_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        max: usize,
        visibility_ms: u64,
        now: UnixMillis,
    ) -> Result<Received> {
        let (namespace, queue) = (namespace.clone(), queue.clone());
        let what = format!("receiving messages from queue `{namespace}/{queue}`");
        self.write(what, move |conn| {
            receive(conn, &namespace, &queue, max, visibility_ms, now)
        })
        .await
    }

    async fn delete_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        receipts: &[String],
    ) -> Result<Vec<bool>> {
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let (namespace, queue, receipts) = (namespace.clone(), queue.clone(), receipts.to_vec());
        let what = format!("deleting messages from queue `{namespace}/{queue}`");
        self.write(what, move |conn| {
            let (ns, name) = (namespace.as_str(), queue.as_str());
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut deleted = Vec::with_capacity(receipts.len());
            {
                let mut delete = tx.prepare_cached(
                    "DELETE FROM messages WHERE receipt_handle = ?3 AND namespace = ?1 AND queue = ?2",
                )?;
                for receipt in &receipts {
                    deleted.push(delete.execute(params![ns, name, receipt])? > 0);
                }
            }
            tx.commit()?;
            Ok(deleted)
        })
        .await
    }

    async fn change_visibility(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        receipt: &str,
        visible_at: UnixMillis,
    ) -> Result<bool> {
        let (namespace, queue, receipt) = (namespace.clone(), queue.clone(), receipt.to_owned());
        let what = format!("changing the visibility of a message of queue `{namespace}/{queue}`");
        self.write(what, move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE messages SET visible_at = ?4
                     WHERE receipt_handle = ?3 AND namespace = ?1 AND queue = ?2",
                )?
                .execute(params![namespace.as_str(), queue.as_str(), receipt, visible_at])?;
            Ok(changed > 0)
        })
        .await
    }

    /// Counts the queue's messages by where they are, in one read transaction.
    async fn queue_stats(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        now: UnixMillis,
    ) -> Result<QueueStats> {
        let (namespace, queue) = (namespace.clone(), queue.clone());
        let what = format!("counting the messages of queue `{namespace}/{queue}`");
        self.read(what, move |conn| {
            let tx = conn.transaction()?;
            config_or_not_found(&tx, &namespace, &queue)?;
            let (visible, in_flight, delayed): (i64, i64, i64) = tx
                .prepare_cached(
                    "SELECT count(*) FILTER (WHERE visible_at <= ?3),
                            count(*) FILTER (WHERE visible_at > ?3 AND receipt_handle IS NOT NULL),
                            count(*) FILTER (WHERE visible_at > ?3 AND receipt_handle IS NULL)
                     FROM messages WHERE namespace = ?1 AND queue = ?2",
                )?
                .query_row(params![namespace.as_str(), queue.as_str(), now], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?;
            tx.commit()?;
            // count(*) is never negative.
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            Ok(QueueStats {
                visible: count(visible),
                in_flight: count(in_flight),
                delayed: count(delayed),
            })
        })
        .await
    }

    /// Every queue's counts, in one read transaction: a left join of the queues and
    /// their messages, grouped.
    async fn queue_depths(&self, namespace: Option<&Namespace>, now: UnixMillis) -> Result<Vec<QueueDepth>> {
        const SELECT: &str = "SELECT q.namespace, q.name,
                count(m.seq) FILTER (WHERE m.visible_at <= ?1),
                count(m.seq) FILTER (WHERE m.visible_at > ?1 AND m.receipt_handle IS NOT NULL),
                count(m.seq) FILTER (WHERE m.visible_at > ?1 AND m.receipt_handle IS NULL),
                min(m.sent_at)
            FROM queues q LEFT JOIN messages m ON m.namespace = q.namespace AND m.queue = q.name";
        let namespace = namespace.cloned();
        let what = "counting the messages of every queue".to_owned();
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
                        "{SELECT} WHERE q.namespace = ?2 GROUP BY q.namespace, q.name ORDER BY q.namespace, q.name"
                    ))?
                    .query_map(params![now, ns.as_str()], read)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => conn
                    .prepare_cached(&format!("{SELECT} GROUP BY q.namespace, q.name ORDER BY q.namespace, q.name"))?
                    .query_map(params![now], read)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            // count(*) is never negative.
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            rows.into_iter()
                .map(|(ns, name, [visible, in_flight, delayed], oldest)| {
                    let corrupt =
                        |what: String| OpError::Store(StoreError::Corrupt(format!("queue `{ns}/{name}` has a bad {what}")));
                    Ok(QueueDepth {
                        namespace: Namespace::new(ns.as_str()).map_err(|e| corrupt(format!("namespace: {e}")))?,
                        queue: QueueName::new(name.as_str()).map_err(|e| corrupt(format!("name: {e}")))?,
                        stats: QueueStats {
                            visible: count(visible),
                            in_flight: count(in_flight),
                            delayed: count(delayed),
                        },
                        oldest_sent_ms: oldest,
                    })
                })
                .collect()
        })
        .await
    }

    async fn purge_queue(&self, namespace: &Namespace, queue: &QueueName) -> Result<u64> {
        let (namespace, queue) = (namespace.clone(), queue.clone());
        let what = format!("purging queue `{namespace}/{queue}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            config_or_not_found(&tx, &namespace, &queue)?;
            let purged = tx
                .prepare_cached("DELETE FROM messages WHERE namespace = ?1 AND queue = ?2")?
                .execute(params![namespace.as_str(), queue.as_str()])?;
            tx.commit()?;
            Ok(purged as u64)
        })
        .await
    }

    /// Moves the dead-letter queue's messages back to the queues they came from, where
    /// those still exist, in one transaction.
    async fn redrive_queue(
        &self,
        namespace: &Namespace,
        dead_letter_queue: &QueueName,
        now: UnixMillis,
    ) -> Result<u64> {
        let (namespace, queue) = (namespace.clone(), dead_letter_queue.clone());
        let what = format!("redriving dead-letter queue `{namespace}/{queue}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            config_or_not_found(&tx, &namespace, &queue)?;
            let moved = tx
                .prepare_cached(
                    "UPDATE messages SET queue = source_queue, source_queue = NULL, receive_count = 0,
                                         first_received_at = NULL, visible_at = ?3, receipt_handle = NULL
                     WHERE namespace = ?1 AND queue = ?2 AND source_queue IS NOT NULL
                       AND EXISTS (SELECT 1 FROM queues
                                   WHERE queues.namespace = messages.namespace
                                     AND queues.name = messages.source_queue)",
                )?
                .execute(params![namespace.as_str(), queue.as_str(), now])?;
            tx.commit()?;
            Ok(moved as u64)
        })
        .await
    }

    async fn next_message_visible(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
    ) -> Result<Option<UnixMillis>> {
        let (namespace, queue) = (namespace.clone(), queue.clone());
        let what = format!("reading when a message of queue `{namespace}/{queue}` is next visible");
        self.read(what, move |conn| {
            let next = conn
                .prepare_cached("SELECT min(visible_at) FROM messages WHERE namespace = ?1 AND queue = ?2")?
                .query_row(params![namespace.as_str(), queue.as_str()], |row| row.get(0))?;
            Ok(next)
        })
        .await
    }
}

/// The config of a queue, if it exists.
pub(super) fn config(
    conn: &Connection,
    namespace: &Namespace,
    name: &QueueName,
) -> Result<Option<QueueConfig>, OpError> {
    let config: Option<String> = conn
        .prepare_cached("SELECT config FROM queues WHERE namespace = ?1 AND name = ?2")?
        .query_row(params![namespace.as_str(), name.as_str()], |row| row.get(0))
        .optional()?;
    config
        .map(|config| parse_config(&config, namespace.as_str(), name.as_str()))
        .transpose()
}

fn parse_config(config: &str, namespace: &str, name: &str) -> Result<QueueConfig, OpError> {
    serde_json::from_str(config).map_err(|e| {
        OpError::Store(StoreError::Corrupt(format!(
            "the config of queue `{namespace}/{name}` does not parse: {e}"
        )))
    })
}

fn config_or_not_found(
    conn: &Connection,
    namespace: &Namespace,
    name: &QueueName,
) -> Result<QueueConfig, OpError> {
    config(conn, namespace, name)?.ok_or_else(|| OpError::Store(StoreError::QueueNotFound(name.clone())))
}

/// Adds a message to a queue the caller knows exists.
pub(super) fn insert_message(
    conn: &Connection,
    namespace: &Namespace,
    queue: &QueueName,
    message: &NewMessage,
    now: UnixMillis,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO messages (id, namespace, queue, body, sent_at, visible_at, receive_count, chain_depth,
                               trace, parent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9)",
    )?
    .execute(params![
        message.id,
        namespace.as_str(),
        queue.as_str(),
        message.body,
        now,
        now.saturating_add(clamp(message.delay_ms)),
        message.chain_depth,
        message.trace,
        message.parent,
    ])?;
    Ok(())
}

/// Milliseconds as SQLite stores them; past `i64::MAX` only "never" makes sense.
fn clamp(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Creates or updates a queue; whether it created it. An update that changes
/// nothing leaves `updated_at` alone.
fn put(
    conn: &mut Connection,
    namespace: &Namespace,
    name: &QueueName,
    config: &QueueConfig,
    now: UnixMillis,
) -> Result<bool, OpError> {
    let (ns, name) = (namespace.as_str(), name.as_str());
    let config = serde_json::to_string(config)
        .map_err(|e| OpError::Failed(format!("encoding the config of queue `{ns}/{name}`: {e}")))?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let existed: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM queues WHERE namespace = ?1 AND name = ?2)")?
        .query_row(params![ns, name], |row| row.get(0))?;
    tx.prepare_cached(
        "INSERT INTO queues (namespace, name, config, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT (namespace, name) DO UPDATE
             SET config = excluded.config, updated_at = excluded.updated_at
             WHERE config IS NOT excluded.config",
    )?
    .execute(params![ns, name, config, now])?;
    tx.commit()?;
    Ok(!existed)
}

/// What a receive needs to know about the queue's dead-letter queue.
struct DeadLetter<'a> {
    max_receive_count: u32,
    queue: &'a QueueName,
    /// Whether it exists; looked up when a message first needs it.
    exists: Option<bool>,
}

/// One visible message, as [`VISIBLE`] reads it.
struct Visible {
    seq: i64,
    id: String,
    body: String,
    sent_at: i64,
    receive_count: i64,
    first_received_at: Option<i64>,
    chain_depth: i64,
    trace: Option<String>,
    parent: Option<String>,
}

impl Visible {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Visible> {
        Ok(Visible {
            seq: row.get(0)?,
            id: row.get(1)?,
            body: row.get(2)?,
            sent_at: row.get(3)?,
            receive_count: row.get(4)?,
            first_received_at: row.get(5)?,
            chain_depth: row.get(6)?,
            trace: row.get(7)?,
            parent: row.get(8)?,
        })
    }
}

/// Drops expired messages, then receives up to `max` visible ones, moving those
/// received `max_receive_count` times to the dead-letter queue instead; one
/// transaction. A move frees a slot, so the read repeats until `max` are delivered or
/// no visible message is left.
fn receive(
    conn: &mut Connection,
    namespace: &Namespace,
    queue: &QueueName,
    max: usize,
    visibility_ms: u64,
    now: UnixMillis,
) -> Result<Received, OpError> {
    let (ns, name) = (namespace.as_str(), queue.as_str());
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let config = config_or_not_found(&tx, namespace, queue)?;
    tx.prepare_cached(EXPIRE)?
        .execute(params![ns, name, now.saturating_sub(millis(config.retention))])?;

    let mut dead_letter = match (config.max_receive_count, &config.dead_letter_queue) {
        (Some(max_receive_count), Some(queue)) => Some(DeadLetter {
            max_receive_count,
            queue,
            exists: None,
        }),
        _ => None,
    };
    let visible_until = now.saturating_add(clamp(visibility_ms));
    let mut received = Received::default();
    // With a zero visibility timeout a delivered message is still visible, so a
    // second read must step over what this receive delivered already.
    let mut delivered = HashSet::new();
    while received.messages.len() < max {
        let want = max - received.messages.len() + delivered.len();
        let batch = tx
            .prepare_cached(VISIBLE)?
            .query_map(
                params![ns, name, now, i64::try_from(want).unwrap_or(i64::MAX)],
                Visible::read,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut moved_any = false;
        for message in batch {
            if received.messages.len() == max {
                break;
            }
            if delivered.contains(&message.seq) {
                continue;
            }
            if let Some(dlq) = dead_letter
                .as_mut()
                .filter(|d| message.receive_count >= i64::from(d.max_receive_count))
                && dead_letter_exists(&tx, namespace, queue, dlq)?
            {
                tx.prepare_cached(
                    "UPDATE messages SET queue = ?2, source_queue = queue, receive_count = 0,
                                         first_received_at = NULL, visible_at = ?3, receipt_handle = NULL
                     WHERE seq = ?1",
                )?
                .execute(params![message.seq, dlq.queue.as_str(), now])?;
                received.dead_lettered.push(message.id);
                moved_any = true;
                continue;
            }
            let receipt_handle = uuid::Uuid::now_v7().to_string();
            tx.prepare_cached(
                "UPDATE messages SET receive_count = receive_count + 1,
                                     first_received_at = coalesce(first_received_at, ?2),
                                     visible_at = ?3, receipt_handle = ?4
                 WHERE seq = ?1",
            )?
            .execute(params![message.seq, now, visible_until, receipt_handle])?;
            delivered.insert(message.seq);
            received
                .messages
                .push(received_message(message, receipt_handle, now, namespace, queue)?);
        }
        if !moved_any {
            // Every slot the read could fill was filled, or the queue ran out.
            break;
        }
    }
    tx.commit()?;
    Ok(received)
}

/// Whether the dead-letter queue exists (asked once per receive); warns when not,
/// so the message is delivered again rather than lost.
fn dead_letter_exists(
    tx: &Transaction<'_>,
    namespace: &Namespace,
    queue: &QueueName,
    dlq: &mut DeadLetter<'_>,
) -> Result<bool, OpError> {
    if let Some(exists) = dlq.exists {
        return Ok(exists);
    }
    let exists = config(tx, namespace, dlq.queue)?.is_some();
    if !exists {
        tracing::warn!(
            namespace = namespace.as_str(),
            queue = queue.as_str(),
            dead_letter_queue = dlq.queue.as_str(),
            "a message reached max_receive_count, but the dead-letter queue does not exist; delivering it again"
        );
    }
    dlq.exists = Some(exists);
    Ok(exists)
}

fn received_message(
    message: Visible,
    receipt_handle: String,
    now: UnixMillis,
    namespace: &Namespace,
    queue: &QueueName,
) -> Result<ReceivedMessage, OpError> {
    let corrupt = |what: &str, n: i64| {
        OpError::Store(StoreError::Corrupt(format!(
            "message `{}` of queue `{namespace}/{queue}` has an out-of-range {what} `{n}`",
            message.id
        )))
    };
    let receive_count = u32::try_from(message.receive_count.saturating_add(1))
        .map_err(|_| corrupt("receive_count", message.receive_count))?;
    let chain_depth =
        u32::try_from(message.chain_depth).map_err(|_| corrupt("chain_depth", message.chain_depth))?;
    Ok(ReceivedMessage {
        receipt_handle,
        body: message.body,
        sent_at: message.sent_at,
        first_received_at: message.first_received_at.unwrap_or(now),
        receive_count,
        chain_depth,
        id: message.id,
        trace: message.trace,
        parent: message.parent,
    })
}

/// One row of the `queues` table, as stored.
struct QueueRow {
    namespace: String,
    name: String,
    config: String,
    created_at: i64,
    updated_at: i64,
}

impl QueueRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<QueueRow> {
        Ok(QueueRow {
            namespace: row.get(0)?,
            name: row.get(1)?,
            config: row.get(2)?,
            created_at: row.get(3)?,
            updated_at: row.get(4)?,
        })
    }

    fn into_record(self) -> Result<QueueRecord, OpError> {
        let corrupt = |what: String| {
            OpError::Store(StoreError::Corrupt(format!(
                "queue `{}/{}` has a bad {what}",
                self.namespace, self.name
            )))
        };
        let namespace =
            Namespace::new(self.namespace.as_str()).map_err(|e| corrupt(format!("namespace: {e}")))?;
        let name = QueueName::new(self.name.as_str()).map_err(|e| corrupt(format!("name: {e}")))?;
        let config = parse_config(&self.config, &self.namespace, &self.name)?;
        Ok(QueueRecord {
            namespace,
            name,
            config,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

//! The SQLite [`Topics`]: the `topics`, `topic_subscriptions`, `topic_messages` and
//! `topic_deliveries` tables (migration 13). A publish is one transaction: the message
//! row and a delivery row per matched subscription. A delivery's `due_ms` is when a
//! claim may take it: a claim moves it to the end of the lease, so a lapsed lease makes
//! it due again with no sweep, and claims read the `topic_deliveries_due` index in order
//! and stop at the limit. A message row goes with its last delivery.

use super::{OpError, SqliteStore, StoreError};
use crate::{
    DeadDelivery, Delivery, Endpoint, FilterScope, NewSubscription, Publication, PublishOutcome, Result,
    Subscribed, SubscriptionFilter, SubscriptionRecord, TopicMessage, TopicRecord, Topics, UnixMillis,
};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::collections::BTreeMap;
use wisp_core::{Namespace, TopicName};

const SELECT_SUBSCRIPTION: &str = "SELECT id, namespace, topic, endpoint, filter_policy, filter_scope,
     raw_delivery, created_ms FROM topic_subscriptions";

/// A delivery joined with its subscription and message: the subscription's columns
/// (as [`SELECT_SUBSCRIPTION`]) from 0, the message's from 8, the delivery's from 15,
/// then the message's trace at 21 and parent at 22.
const SELECT_DELIVERY: &str = "SELECT s.id, s.namespace, s.topic, s.endpoint, s.filter_policy,
     s.filter_scope, s.raw_delivery, s.created_ms,
     m.id, m.namespace, m.topic, m.body, m.attributes, m.published_ms, m.chain_depth,
     d.id, d.attempts, d.last_error, d.due_ms, d.dead_ms, d.dead_reason, m.trace,
     m.parent
     FROM topic_deliveries d
     JOIN topic_subscriptions s ON s.id = d.subscription
     JOIN topic_messages m ON m.namespace = d.namespace AND m.topic = d.topic AND m.id = d.message";

/// The deliveries a claim takes (after [`SELECT_DELIVERY`]): due at `?1`, earliest
/// first, at most `?2`, read in the order of the `topic_deliveries_due` index.
const CLAIM: &str = "WHERE d.id IN (
         SELECT id FROM topic_deliveries INDEXED BY topic_deliveries_due
         WHERE dead_ms IS NULL AND due_ms <= ?1 ORDER BY due_ms, id LIMIT ?2)
     ORDER BY d.due_ms, d.id";

/// A subscription's dead letters (after [`SELECT_DELIVERY`]), oldest first.
const DEAD: &str = "WHERE d.subscription = ?1 AND d.dead_ms IS NOT NULL ORDER BY d.dead_ms, d.id";

#[async_trait]
impl Topics for SqliteStore {
    async fn create_topic(&self, topic: &TopicRecord) -> Result<bool> {
        let topic = topic.clone();
        let what = format!("creating topic `{}/{}`", topic.namespace, topic.name);
        self.write(what, move |conn| {
            let n = conn
                .prepare_cached(
                    "INSERT INTO topics (namespace, name, created_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (namespace, name) DO NOTHING",
                )?
                .execute(params![
                    topic.namespace.as_str(),
                    topic.name.as_str(),
                    topic.created_ms
                ])?;
            Ok(n > 0)
        })
        .await
    }

    async fn get_topic(&self, namespace: &Namespace, name: &TopicName) -> Result<Option<TopicRecord>> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("reading topic `{namespace}/{name}`");
        self.read(what, move |conn| {
            conn.prepare_cached(
                "SELECT namespace, name, created_ms FROM topics WHERE namespace = ?1 AND name = ?2",
            )?
            .query_row(params![namespace.as_str(), name.as_str()], read_topic)
            .optional()?
            .map(topic_record)
            .transpose()
        })
        .await
    }

    async fn list_topics(&self, namespace: Option<&Namespace>) -> Result<Vec<TopicRecord>> {
        let namespace = namespace.cloned();
        self.read("listing topics".into(), move |conn| {
            conn.prepare_cached(
                "SELECT namespace, name, created_ms FROM topics
                 WHERE ?1 IS NULL OR namespace = ?1 ORDER BY namespace, name",
            )?
            .query_map([namespace.as_ref().map(Namespace::as_str)], read_topic)?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(topic_record)
            .collect()
        })
        .await
    }

    async fn delete_topic(&self, namespace: &Namespace, name: &TopicName) -> Result<bool> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("deleting topic `{namespace}/{name}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let key = params![namespace.as_str(), name.as_str()];
            tx.prepare_cached("DELETE FROM topic_deliveries WHERE namespace = ?1 AND topic = ?2")?
                .execute(key)?;
            tx.prepare_cached("DELETE FROM topic_messages WHERE namespace = ?1 AND topic = ?2")?
                .execute(key)?;
            tx.prepare_cached("DELETE FROM topic_subscriptions WHERE namespace = ?1 AND topic = ?2")?
                .execute(key)?;
            let n = tx
                .prepare_cached("DELETE FROM topics WHERE namespace = ?1 AND name = ?2")?
                .execute(key)?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    async fn subscribe(&self, subscription: &NewSubscription) -> Result<Subscribed> {
        let new = subscription.clone();
        let what = format!("subscribing to topic `{}/{}`", new.namespace, new.topic);
        self.write(what, move |conn| {
            let endpoint = serde_json::to_string(&new.endpoint)
                .map_err(|e| OpError::Failed(format!("encoding the endpoint: {e}")))?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !topic_exists(&tx, &new.namespace, &new.topic)? {
                return Ok(Subscribed::TopicNotFound);
            }
            let existing = tx
                .prepare_cached(&format!(
                    "{SELECT_SUBSCRIPTION} WHERE namespace = ?1 AND topic = ?2 AND endpoint = ?3"
                ))?
                .query_row(
                    params![new.namespace.as_str(), new.topic.as_str(), endpoint],
                    SubscriptionRow::read,
                )
                .optional()?;
            if let Some(row) = existing {
                return Ok(Subscribed::Existing(row.into_record()?));
            }
            let id = uuid::Uuid::now_v7().to_string();
            let (policy, scope) = match &new.filter {
                Some(filter) => (Some(filter.policy.as_str()), Some(filter.scope.as_str())),
                None => (None, None),
            };
            tx.prepare_cached(
                "INSERT INTO topic_subscriptions (id, namespace, topic, endpoint, filter_policy,
                     filter_scope, raw_delivery, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                id,
                new.namespace.as_str(),
                new.topic.as_str(),
                endpoint,
                policy,
                scope,
                new.raw_message_delivery,
                new.created_ms
            ])?;
            tx.commit()?;
            Ok(Subscribed::Created(SubscriptionRecord {
                id,
                namespace: new.namespace,
                topic: new.topic,
                endpoint: new.endpoint,
                filter: new.filter,
                raw_message_delivery: new.raw_message_delivery,
                created_ms: new.created_ms,
            }))
        })
        .await
    }

    async fn get_subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>> {
        let id = id.to_owned();
        let what = format!("reading subscription `{id}`");
        self.read(what, move |conn| {
            conn.prepare_cached(&format!("{SELECT_SUBSCRIPTION} WHERE id = ?1"))?
                .query_row([id], SubscriptionRow::read)
                .optional()?
                .map(SubscriptionRow::into_record)
                .transpose()
        })
        .await
    }

    async fn list_subscriptions(
        &self,
        namespace: &Namespace,
        topic: &TopicName,
    ) -> Result<Vec<SubscriptionRecord>> {
        let (namespace, topic) = (namespace.clone(), topic.clone());
        let what = format!("listing the subscriptions of topic `{namespace}/{topic}`");
        self.read(what, move |conn| {
            conn.prepare_cached(&format!(
                "{SELECT_SUBSCRIPTION} WHERE namespace = ?1 AND topic = ?2 ORDER BY created_ms, id"
            ))?
            .query_map(params![namespace.as_str(), topic.as_str()], SubscriptionRow::read)?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(SubscriptionRow::into_record)
            .collect()
        })
        .await
    }

    async fn unsubscribe(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        let what = format!("deleting subscription `{id}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let messages = tx
                .prepare_cached(
                    "DELETE FROM topic_deliveries WHERE subscription = ?1
                     RETURNING namespace, topic, message",
                )?
                .query_map([&id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<rusqlite::Result<Vec<(String, String, String)>>>()?;
            for (namespace, topic, message) in &messages {
                drop_message_if_unused(&tx, namespace, topic, message)?;
            }
            let n = tx
                .prepare_cached("DELETE FROM topic_subscriptions WHERE id = ?1")?
                .execute([&id])?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    async fn publish(&self, publication: &Publication) -> Result<PublishOutcome> {
        let publication = publication.clone();
        let message = &publication.message;
        let what = format!(
            "publishing message `{}` to topic `{}/{}`",
            message.id, message.namespace, message.topic
        );
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let outcome = publish_one(&tx, &publication)?;
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn publish_many(&self, publications: &[Publication]) -> Result<Vec<PublishOutcome>> {
        let publications = publications.to_vec();
        let what = format!("publishing {} messages", publications.len());
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let outcomes = publications
                .iter()
                .map(|publication| publish_one(&tx, publication))
                .collect::<Result<Vec<_>, OpError>>()?;
            tx.commit()?;
            Ok(outcomes)
        })
        .await
    }

    async fn due_deliveries(
        &self,
        now: UnixMillis,
        limit: usize,
        lease_until: UnixMillis,
    ) -> Result<Vec<Delivery>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write("claiming due topic deliveries".into(), move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let rows = tx
                .prepare_cached(&format!("{SELECT_DELIVERY} {CLAIM}"))?
                .query_map(params![now, limit], DeliveryRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut lease = tx.prepare_cached("UPDATE topic_deliveries SET due_ms = ?2 WHERE id = ?1")?;
            for row in &rows {
                lease.execute(params![row.id, lease_until])?;
            }
            drop(lease);
            tx.commit()?;
            rows.into_iter()
                .map(|row| row.into_delivery(lease_until))
                .collect()
        })
        .await
    }

    async fn ack_delivery(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        let what = format!("acknowledging topic delivery `{id}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let gone: Option<(String, String, String)> = tx
                .prepare_cached(
                    "DELETE FROM topic_deliveries WHERE id = ?1 AND dead_ms IS NULL
                     RETURNING namespace, topic, message",
                )?
                .query_row([&id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()?;
            let Some((namespace, topic, message)) = gone else {
                return Ok(false);
            };
            drop_message_if_unused(&tx, &namespace, &topic, &message)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn retry_delivery(&self, id: &str, next_attempt_at: UnixMillis, last_error: &str) -> Result<bool> {
        let (id, last_error) = (id.to_owned(), last_error.to_owned());
        let what = format!("rescheduling topic delivery `{id}`");
        self.write(what, move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE topic_deliveries
                     SET attempts = attempts + 1, last_error = ?3, due_ms = ?2
                     WHERE id = ?1 AND dead_ms IS NULL",
                )?
                .execute(params![id, next_attempt_at, last_error])?;
            Ok(n > 0)
        })
        .await
    }

    async fn postpone_delivery(&self, id: &str, due_at: UnixMillis) -> Result<bool> {
        let id = id.to_owned();
        let what = format!("postponing topic delivery `{id}`");
        self.write(what, move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE topic_deliveries SET due_ms = ?2
                     WHERE id = ?1 AND dead_ms IS NULL",
                )?
                .execute(params![id, due_at])?;
            Ok(n > 0)
        })
        .await
    }

    async fn dead_letter_delivery(&self, id: &str, reason: &str, now: UnixMillis) -> Result<bool> {
        let (id, reason) = (id.to_owned(), reason.to_owned());
        let what = format!("dead-lettering topic delivery `{id}`");
        self.write(what, move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE topic_deliveries SET dead_ms = ?2, dead_reason = ?3
                     WHERE id = ?1 AND dead_ms IS NULL",
                )?
                .execute(params![id, now, reason])?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_dead_deliveries(&self, subscription: &str) -> Result<Vec<DeadDelivery>> {
        let subscription = subscription.to_owned();
        let what = format!("listing the dead letters of subscription `{subscription}`");
        self.read(what, move |conn| {
            conn.prepare_cached(&format!("{SELECT_DELIVERY} {DEAD}"))?
                .query_map([subscription], DeliveryRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .map(DeliveryRow::into_dead)
                .collect()
        })
        .await
    }
}

fn topic_exists(conn: &Connection, namespace: &Namespace, topic: &TopicName) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM topics WHERE namespace = ?1 AND name = ?2")?
        .query_row(params![namespace.as_str(), topic.as_str()], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
}

/// Stores one publication inside the caller's transaction.
fn publish_one(conn: &Connection, publication: &Publication) -> Result<PublishOutcome, OpError> {
    let message = &publication.message;
    let (namespace, topic) = (message.namespace.as_str(), message.topic.as_str());
    if !topic_exists(conn, &message.namespace, &message.topic)? {
        return Ok(PublishOutcome::TopicNotFound);
    }
    let held = conn
        .prepare_cached("SELECT 1 FROM topic_messages WHERE namespace = ?1 AND topic = ?2 AND id = ?3")?
        .query_row(params![namespace, topic, message.id], |_| Ok(()))
        .optional()?;
    if held.is_some() {
        return Ok(PublishOutcome::Duplicate);
    }
    let mut deliveries = 0;
    {
        let mut insert = conn.prepare_cached(
            "INSERT INTO topic_deliveries (id, subscription, namespace, topic, message, due_ms)
             SELECT ?1, s.id, s.namespace, s.topic, ?5, ?6 FROM topic_subscriptions s
             WHERE s.id = ?2 AND s.namespace = ?3 AND s.topic = ?4
             ON CONFLICT DO NOTHING",
        )?;
        for subscription in &publication.subscriptions {
            let id = uuid::Uuid::now_v7().to_string();
            deliveries += insert.execute(params![
                id,
                subscription,
                namespace,
                topic,
                message.id,
                message.published_ms
            ])?;
        }
    }
    if deliveries > 0 {
        let attributes = serde_json::to_string(&message.attributes)
            .map_err(|e| OpError::Failed(format!("encoding the message's attributes: {e}")))?;
        conn.prepare_cached(
            "INSERT INTO topic_messages (namespace, topic, id, body, attributes, published_ms, chain_depth,
                                         trace, parent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            namespace,
            topic,
            message.id,
            message.body,
            attributes,
            message.published_ms,
            message.chain_depth,
            message.trace,
            message.parent
        ])?;
    }
    Ok(PublishOutcome::Published { deliveries })
}

/// Deletes a message once no delivery refers to it.
fn drop_message_if_unused(
    conn: &Connection,
    namespace: &str,
    topic: &str,
    message: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM topic_messages WHERE namespace = ?1 AND topic = ?2 AND id = ?3
         AND NOT EXISTS (SELECT 1 FROM topic_deliveries
                         WHERE namespace = ?1 AND topic = ?2 AND message = ?3)",
    )?
    .execute(params![namespace, topic, message])?;
    Ok(())
}

fn corrupt(what: String) -> OpError {
    OpError::Store(StoreError::Corrupt(what))
}

fn read_topic(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn topic_record((namespace, name, created_ms): (String, String, i64)) -> Result<TopicRecord, OpError> {
    let bad = |e: wisp_core::NameError| corrupt(format!("topic `{namespace}/{name}` has a bad name: {e}"));
    Ok(TopicRecord {
        namespace: Namespace::new(namespace.as_str()).map_err(bad)?,
        name: TopicName::new(name.as_str()).map_err(bad)?,
        created_ms,
    })
}

/// One row of `topic_subscriptions`, as stored.
struct SubscriptionRow {
    id: String,
    namespace: String,
    topic: String,
    endpoint: String,
    filter_policy: Option<String>,
    filter_scope: Option<String>,
    raw_delivery: bool,
    created_ms: i64,
}

impl SubscriptionRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<SubscriptionRow> {
        SubscriptionRow::read_at(row, 0)
    }

    fn read_at(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<SubscriptionRow> {
        Ok(SubscriptionRow {
            id: row.get(at)?,
            namespace: row.get(at + 1)?,
            topic: row.get(at + 2)?,
            endpoint: row.get(at + 3)?,
            filter_policy: row.get(at + 4)?,
            filter_scope: row.get(at + 5)?,
            raw_delivery: row.get(at + 6)?,
            created_ms: row.get(at + 7)?,
        })
    }

    fn into_record(self) -> Result<SubscriptionRecord, OpError> {
        let bad = |what: String| corrupt(format!("subscription `{}` has a bad {what}", self.id));
        let namespace =
            Namespace::new(self.namespace.as_str()).map_err(|e| bad(format!("namespace: {e}")))?;
        let topic = TopicName::new(self.topic.as_str()).map_err(|e| bad(format!("topic: {e}")))?;
        let endpoint: Endpoint =
            serde_json::from_str(&self.endpoint).map_err(|e| bad(format!("endpoint: {e}")))?;
        let filter = match (self.filter_policy, self.filter_scope) {
            (None, None) => None,
            (Some(policy), Some(scope)) => Some(SubscriptionFilter {
                policy,
                scope: FilterScope::parse(&scope).ok_or_else(|| bad(format!("filter scope `{scope}`")))?,
            }),
            _ => {
                return Err(bad(
                    "filter: a policy without a scope, or a scope without one".into()
                ));
            }
        };
        Ok(SubscriptionRecord {
            id: self.id,
            namespace,
            topic,
            endpoint,
            filter,
            raw_message_delivery: self.raw_delivery,
            created_ms: self.created_ms,
        })
    }
}

/// One row of [`SELECT_DELIVERY`], as stored.
struct DeliveryRow {
    subscription: SubscriptionRow,
    message_id: String,
    message_namespace: String,
    message_topic: String,
    body: String,
    attributes: String,
    published_ms: i64,
    chain_depth: i64,
    id: String,
    attempts: i64,
    last_error: Option<String>,
    due_ms: i64,
    dead_ms: Option<i64>,
    dead_reason: Option<String>,
    trace: Option<String>,
    parent: Option<String>,
}

impl DeliveryRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
        Ok(DeliveryRow {
            subscription: SubscriptionRow::read_at(row, 0)?,
            message_id: row.get(8)?,
            message_namespace: row.get(9)?,
            message_topic: row.get(10)?,
            body: row.get(11)?,
            attributes: row.get(12)?,
            published_ms: row.get(13)?,
            chain_depth: row.get(14)?,
            id: row.get(15)?,
            attempts: row.get(16)?,
            last_error: row.get(17)?,
            due_ms: row.get(18)?,
            dead_ms: row.get(19)?,
            dead_reason: row.get(20)?,
            trace: row.get(21)?,
            parent: row.get(22)?,
        })
    }

    /// The parts every delivery has: its subscription, message and attempts.
    fn parts(self) -> Result<(DeliveryParts, DeliveryRest), OpError> {
        let id = self.id;
        let bad = |what: String| corrupt(format!("topic delivery `{id}` has a bad {what}"));
        let subscription = self.subscription.into_record()?;
        let attributes: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&self.attributes).map_err(|e| bad(format!("message attributes: {e}")))?;
        let message = TopicMessage {
            id: self.message_id,
            namespace: Namespace::new(self.message_namespace.as_str())
                .map_err(|e| bad(format!("message namespace: {e}")))?,
            topic: TopicName::new(self.message_topic.as_str())
                .map_err(|e| bad(format!("message topic: {e}")))?,
            body: self.body,
            attributes,
            published_ms: self.published_ms,
            chain_depth: u32::try_from(self.chain_depth)
                .map_err(|_| bad(format!("chain depth {}", self.chain_depth)))?,
            trace: self.trace,
            parent: self.parent,
        };
        let attempts =
            u32::try_from(self.attempts).map_err(|_| bad(format!("attempt count {}", self.attempts)))?;
        Ok((
            DeliveryParts {
                subscription,
                message,
                attempts,
            },
            DeliveryRest {
                id,
                last_error: self.last_error,
                due_ms: self.due_ms,
                dead_ms: self.dead_ms,
                dead_reason: self.dead_reason,
            },
        ))
    }

    fn into_delivery(self, lease_until: UnixMillis) -> Result<Delivery, OpError> {
        let (parts, rest) = self.parts()?;
        Ok(Delivery {
            id: rest.id,
            subscription: parts.subscription,
            message: parts.message,
            attempts: parts.attempts,
            last_error: rest.last_error,
            due_ms: rest.due_ms,
            lease_until,
        })
    }

    fn into_dead(self) -> Result<DeadDelivery, OpError> {
        let (parts, rest) = self.parts()?;
        let dead_ms = rest
            .dead_ms
            .ok_or_else(|| corrupt(format!("topic delivery `{}` is listed dead but is not", rest.id)))?;
        Ok(DeadDelivery {
            id: rest.id,
            subscription_id: parts.subscription.id,
            message: parts.message,
            attempts: parts.attempts,
            last_error: rest.last_error,
            reason: rest.dead_reason.unwrap_or_default(),
            dead_ms,
        })
    }
}

struct DeliveryParts {
    subscription: SubscriptionRecord,
    message: TopicMessage,
    attempts: u32,
}

struct DeliveryRest {
    id: String,
    last_error: Option<String>,
    due_ms: i64,
    dead_ms: Option<i64>,
    dead_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    fn plan(sql: &str) -> std::result::Result<String, Box<dyn std::error::Error>> {
        let mut conn = Connection::open_in_memory()?;
        super::super::schema::MIGRATIONS.to_latest(&mut conn)?;
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        let nulls = std::iter::repeat_n(rusqlite::types::Null, stmt.parameter_count());
        let lines = stmt
            .query_map(rusqlite::params_from_iter(nulls), |row| row.get::<_, String>(3))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(lines.join("\n"))
    }

    /// Claims and dead-letter listings read deliveries through their indexes, never by
    /// scanning every delivery of every topic.
    #[test]
    fn delivery_queries_use_their_indexes() -> TestResult {
        for (sql, index) in [(CLAIM, "topic_deliveries_due"), (DEAD, "topic_deliveries_dead")] {
            let plan = plan(&format!("{SELECT_DELIVERY} {sql}"))?;
            assert!(plan.contains(index), "{plan}");
            assert!(!plan.contains("SCAN d"), "{plan}");
        }
        Ok(())
    }
}

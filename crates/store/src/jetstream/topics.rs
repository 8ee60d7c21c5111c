//! The JetStream [`Topics`]: bucket `{prefix}_topics` (atomic batch publish allowed on its
//! stream, as the registry's) holds every record:
//!
//! - `t.NAMESPACE.TOPIC`: a topic (`{created_ms}`).
//! - `s.ID`: a subscription, the whole [`SubscriptionRecord`].
//! - `e.NAMESPACE.TOPIC.DIGEST`: the id of the topic's subscription for an endpoint (the
//!   MD5 of the endpoint's JSON), which makes a subscription unique per endpoint: a
//!   subscribe creates it and `s.ID` in one batch, expecting it absent.
//! - `m.NAMESPACE.TOPIC.HEX`: a message (its id as hex) and the ids of its deliveries
//!   still kept (pending or dead); while it exists a publish of the id is a duplicate.
//! - `d.ID`: a delivery: subscription, message key, attempts, last error, due time (a
//!   claim moves it to the lease's end, as SQLite does) and, once dead, why and when.
//!
//! Every change of several entries is one atomic batch, each message expecting the
//! revision read, so it is stored whole or refused whole and then read and decided again:
//! a publish (the message and its deliveries), a subscribe and an unsubscribe (the
//! subscription and its endpoint entry), removing a delivery (the delivery and its
//! message's list, or the message with its last delivery). A claim, retry, postpone or
//! dead letter changes one delivery: a KV `update` on the revision read.

use super::batch::{self, BatchEntry};
use super::{
    JetStreamStore, MAX_CAS_ATTEMPTS, Written, backend, contended, decode, encode, is_key_token,
    live_entries, live_entry,
};
use crate::{
    DeadDelivery, Delivery, NewSubscription, Publication, PublishOutcome, Result, Subscribed,
    SubscriptionRecord, TopicMessage, TopicRecord, Topics, UnixMillis,
};
use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use wisp_core::{Namespace, TopicName};

fn topic_key(namespace: &Namespace, name: &TopicName) -> String {
    format!("t.{namespace}.{name}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn message_key(namespace: &Namespace, topic: &TopicName, id: &str) -> String {
    format!("m.{namespace}.{topic}.x{}", hex(id.as_bytes()))
}

fn endpoint_key(namespace: &Namespace, topic: &TopicName, endpoint: &crate::Endpoint) -> Result<String> {
    let json = encode(endpoint, "subscribing")?;
    Ok(format!("e.{namespace}.{topic}.{}", hex(&Md5::digest(&json))))
}

#[derive(Serialize, Deserialize)]
struct StoredTopic {
    created_ms: UnixMillis,
}

#[derive(Serialize, Deserialize)]
struct StoredMessage {
    message: TopicMessage,
    deliveries: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredDelivery {
    subscription: String,
    message: String,
    attempts: u32,
    last_error: Option<String>,
    due_ms: UnixMillis,
    dead: Option<(String, UnixMillis)>,
}

/// The revision to expect for `key` and its live value.
async fn slot<T: serde::de::DeserializeOwned>(
    kv: &kv::Store,
    key: &str,
    what: &str,
) -> Result<(u64, Option<T>)> {
    match kv.entry(key).await.map_err(|e| backend(what, e))? {
        None => Ok((0, None)),
        Some(entry) if entry.operation == kv::Operation::Put => Ok((entry.revision, Some(decode(&entry)?))),
        Some(entry) => Ok((entry.revision, None)),
    }
}

impl JetStreamStore {
    /// Publishes `entries` to the topics bucket as one atomic batch: `true` when
    /// committed, `false` when one entry's revision was not the one expected (nothing is
    /// written then).
    async fn topics_batch(&self, entries: Vec<BatchEntry>, what: &str) -> Result<bool> {
        Ok(batch::commit(&self.context, &self.topics, &entries, what)
            .await?
            .is_some())
    }

    /// Removes delivery `id` (with its message once no delivery needs it) when it exists
    /// and, unless `dead_too`, is not dead; whether it did.
    async fn remove_delivery(&self, id: &str, dead_too: bool, what: &str) -> Result<bool> {
        if !is_key_token(id) {
            return Ok(false);
        }
        let key = format!("d.{id}");
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (revision, delivery) = slot::<StoredDelivery>(&self.topics, &key, what).await?;
            let Some(delivery) = delivery else {
                return Ok(false);
            };
            if delivery.dead.is_some() && !dead_too {
                return Ok(false);
            }
            let mut entries = vec![(key.clone(), revision, None)];
            let (message_revision, message) =
                slot::<StoredMessage>(&self.topics, &delivery.message, what).await?;
            if let Some(mut message) = message {
                message.deliveries.retain(|d| d != id);
                let value = if message.deliveries.is_empty() {
                    None
                } else {
                    Some(encode(&message, what)?)
                };
                entries.push((delivery.message.clone(), message_revision, value));
            }
            if self.topics_batch(entries, what).await? {
                return Ok(true);
            }
        }
        Err(contended(what))
    }

    /// Changes delivery `id` with `change` (given it and its key's revision; `false`:
    /// leave it) on the revision read; whether it changed it.
    async fn change_delivery(
        &self,
        id: &str,
        what: &str,
        change: impl Fn(&mut StoredDelivery) -> bool,
    ) -> Result<bool> {
        if !is_key_token(id) {
            return Ok(false);
        }
        let key = format!("d.{id}");
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (revision, delivery) = slot::<StoredDelivery>(&self.topics, &key, what).await?;
            let Some(mut delivery) = delivery else {
                return Ok(false);
            };
            if !change(&mut delivery) {
                return Ok(false);
            }
            let value = encode(&delivery, what)?;
            if let Written::Done(_) = super::update(&self.topics, &key, value, revision, what).await? {
                return Ok(true);
            }
        }
        Err(contended(what))
    }

    /// Every delivery stored, with its id.
    async fn all_deliveries(&self, what: &str) -> Result<Vec<(String, u64, StoredDelivery)>> {
        let mut out = Vec::new();
        for entry in live_entries(&self.topics, "d.", what).await? {
            let id = entry.key["d.".len()..].to_owned();
            out.push((id, entry.revision, decode(&entry)?));
        }
        Ok(out)
    }

    /// Unsubscribes `record` (its entry and its endpoint's, in one batch) and removes its
    /// deliveries; whether its entry was there.
    async fn drop_subscription(&self, id: &str, what: &str) -> Result<bool> {
        let key = format!("s.{id}");
        let mut removed = false;
        for attempt in 0..=MAX_CAS_ATTEMPTS {
            if attempt == MAX_CAS_ATTEMPTS {
                return Err(contended(what));
            }
            let (revision, record) = slot::<SubscriptionRecord>(&self.topics, &key, what).await?;
            let Some(record) = record else { break };
            let endpoint = endpoint_key(&record.namespace, &record.topic, &record.endpoint)?;
            let (endpoint_revision, owner) = slot::<String>(&self.topics, &endpoint, what).await?;
            let mut entries = vec![(key.clone(), revision, None)];
            if owner.as_deref() == Some(id) {
                entries.push((endpoint, endpoint_revision, None));
            }
            if self.topics_batch(entries, what).await? {
                removed = true;
                break;
            }
        }
        for (delivery, _, stored) in self.all_deliveries(what).await? {
            if stored.subscription == id {
                self.remove_delivery(&delivery, true, what).await?;
            }
        }
        Ok(removed)
    }

    /// One publish, read and decided again while another writer comes between.
    async fn publish_one(&self, publication: &Publication) -> Result<PublishOutcome> {
        let what = "publishing to a topic";
        let message = &publication.message;
        let key = message_key(&message.namespace, &message.topic, &message.id);
        for _ in 0..MAX_CAS_ATTEMPTS {
            if live_entry(&self.topics, &topic_key(&message.namespace, &message.topic), what)
                .await?
                .is_none()
            {
                return Ok(PublishOutcome::TopicNotFound);
            }
            let (revision, existing) = slot::<StoredMessage>(&self.topics, &key, what).await?;
            if existing.is_some() {
                return Ok(PublishOutcome::Duplicate);
            }
            let mut seen = BTreeSet::new();
            let mut subscriptions = Vec::new();
            for id in &publication.subscriptions {
                if !is_key_token(id) || !seen.insert(id.clone()) {
                    continue;
                }
                let Some(entry) = live_entry(&self.topics, &format!("s.{id}"), what).await? else {
                    continue;
                };
                let record: SubscriptionRecord = decode(&entry)?;
                if record.namespace == message.namespace && record.topic == message.topic {
                    subscriptions.push(record.id);
                }
            }
            if subscriptions.is_empty() {
                return Ok(PublishOutcome::Published { deliveries: 0 });
            }
            let ids: Vec<String> = subscriptions
                .iter()
                .map(|_| uuid::Uuid::now_v7().to_string())
                .collect();
            let mut entries = vec![(
                key.clone(),
                revision,
                Some(encode(
                    &StoredMessage {
                        message: message.clone(),
                        deliveries: ids.clone(),
                    },
                    what,
                )?),
            )];
            for (id, subscription) in ids.iter().zip(&subscriptions) {
                let delivery = StoredDelivery {
                    subscription: subscription.clone(),
                    message: key.clone(),
                    attempts: 0,
                    last_error: None,
                    due_ms: message.published_ms,
                    dead: None,
                };
                entries.push((format!("d.{id}"), 0, Some(encode(&delivery, what)?)));
            }
            if self.topics_batch(entries, what).await? {
                return Ok(PublishOutcome::Published {
                    deliveries: subscriptions.len(),
                });
            }
        }
        Err(contended(what))
    }
}

#[async_trait]
impl Topics for JetStreamStore {
    async fn create_topic(&self, topic: &TopicRecord) -> Result<bool> {
        let what = "creating a topic";
        let value = encode(
            &StoredTopic {
                created_ms: topic.created_ms,
            },
            what,
        )?;
        let key = topic_key(&topic.namespace, &topic.name);
        Ok(matches!(
            super::create(&self.topics, &key, value, what).await?,
            Written::Done(_)
        ))
    }

    async fn get_topic(&self, namespace: &Namespace, name: &TopicName) -> Result<Option<TopicRecord>> {
        let what = "reading a topic";
        let Some(entry) = live_entry(&self.topics, &topic_key(namespace, name), what).await? else {
            return Ok(None);
        };
        let stored: StoredTopic = decode(&entry)?;
        Ok(Some(TopicRecord {
            namespace: namespace.clone(),
            name: name.clone(),
            created_ms: stored.created_ms,
        }))
    }

    async fn list_topics(&self, namespace: Option<&Namespace>) -> Result<Vec<TopicRecord>> {
        let what = "listing topics";
        let prefix = match namespace {
            Some(namespace) => format!("t.{namespace}."),
            None => "t.".to_owned(),
        };
        let mut topics = Vec::new();
        for entry in live_entries(&self.topics, &prefix, what).await? {
            let stored: StoredTopic = decode(&entry)?;
            let mut parts = entry.key["t.".len()..].splitn(2, '.');
            let (Some(namespace), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            let namespace = Namespace::new(namespace).map_err(|e| backend(what, e))?;
            let name = TopicName::new(name).map_err(|e| backend(what, e))?;
            topics.push(TopicRecord {
                namespace,
                name,
                created_ms: stored.created_ms,
            });
        }
        topics.sort_by(|a, b| {
            (a.namespace.as_str(), a.name.as_str()).cmp(&(b.namespace.as_str(), b.name.as_str()))
        });
        Ok(topics)
    }

    async fn delete_topic(&self, namespace: &Namespace, name: &TopicName) -> Result<bool> {
        let what = "deleting a topic";
        let key = topic_key(namespace, name);
        let mut existed = false;
        for attempt in 0..=MAX_CAS_ATTEMPTS {
            if attempt == MAX_CAS_ATTEMPTS {
                return Err(contended(what));
            }
            let Some(entry) = live_entry(&self.topics, &key, what).await? else {
                break;
            };
            if let Written::Done(_) = super::delete(&self.topics, &key, entry.revision, what).await? {
                existed = true;
                break;
            }
        }
        // Its subscriptions with their deliveries, then messages left over (and theirs).
        for subscription in self.list_subscriptions(namespace, name).await? {
            self.drop_subscription(&subscription.id, what).await?;
        }
        let messages = format!("m.{namespace}.{name}.");
        for entry in live_entries(&self.topics, &messages, what).await? {
            let stored: StoredMessage = decode(&entry)?;
            for delivery in &stored.deliveries {
                self.remove_delivery(delivery, true, what).await?;
            }
            if let Some(entry) = live_entry(&self.topics, &entry.key, what).await? {
                super::delete(&self.topics, &entry.key, entry.revision, what).await?;
            }
        }
        Ok(existed)
    }

    async fn subscribe(&self, subscription: &NewSubscription) -> Result<Subscribed> {
        let what = "subscribing";
        let endpoint = endpoint_key(
            &subscription.namespace,
            &subscription.topic,
            &subscription.endpoint,
        )?;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let topic = topic_key(&subscription.namespace, &subscription.topic);
            if live_entry(&self.topics, &topic, what).await?.is_none() {
                return Ok(Subscribed::TopicNotFound);
            }
            let (revision, owner) = slot::<String>(&self.topics, &endpoint, what).await?;
            if let Some(owner) = owner
                && let Some(existing) = self.get_subscription(&owner).await?
            {
                return Ok(Subscribed::Existing(existing));
            }
            let record = SubscriptionRecord {
                id: uuid::Uuid::now_v7().to_string(),
                namespace: subscription.namespace.clone(),
                topic: subscription.topic.clone(),
                endpoint: subscription.endpoint.clone(),
                filter: subscription.filter.clone(),
                raw_message_delivery: subscription.raw_message_delivery,
                created_ms: subscription.created_ms,
            };
            let entries = vec![
                (endpoint.clone(), revision, Some(encode(&record.id, what)?)),
                (format!("s.{}", record.id), 0, Some(encode(&record, what)?)),
            ];
            if self.topics_batch(entries, what).await? {
                return Ok(Subscribed::Created(record));
            }
        }
        Err(contended(what))
    }

    async fn get_subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>> {
        if !is_key_token(id) {
            return Ok(None);
        }
        let what = "reading a subscription";
        match live_entry(&self.topics, &format!("s.{id}"), what).await? {
            Some(entry) => Ok(Some(decode(&entry)?)),
            None => Ok(None),
        }
    }

    async fn list_subscriptions(
        &self,
        namespace: &Namespace,
        topic: &TopicName,
    ) -> Result<Vec<SubscriptionRecord>> {
        let what = "listing subscriptions";
        let mut records = Vec::new();
        for entry in live_entries(&self.topics, "s.", what).await? {
            let record: SubscriptionRecord = decode(&entry)?;
            if &record.namespace == namespace && &record.topic == topic {
                records.push(record);
            }
        }
        records.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(records)
    }

    async fn unsubscribe(&self, id: &str) -> Result<bool> {
        if !is_key_token(id) {
            return Ok(false);
        }
        self.drop_subscription(id, "unsubscribing").await
    }

    async fn publish(&self, publication: &Publication) -> Result<PublishOutcome> {
        self.publish_one(publication).await
    }

    async fn publish_many(&self, publications: &[Publication]) -> Result<Vec<PublishOutcome>> {
        let mut outcomes = Vec::with_capacity(publications.len());
        for publication in publications {
            outcomes.push(self.publish_one(publication).await?);
        }
        Ok(outcomes)
    }

    async fn due_deliveries(
        &self,
        now: UnixMillis,
        limit: usize,
        lease_until: UnixMillis,
    ) -> Result<Vec<Delivery>> {
        let what = "claiming topic deliveries";
        let mut due: Vec<_> = self
            .all_deliveries(what)
            .await?
            .into_iter()
            .filter(|(_, _, d)| d.dead.is_none() && d.due_ms <= now)
            .collect();
        due.sort_by(|a, b| (a.2.due_ms, &a.0).cmp(&(b.2.due_ms, &b.0)));
        let mut claimed = Vec::new();
        for (id, revision, stored) in due {
            if claimed.len() >= limit {
                break;
            }
            let Some(subscription) = self.get_subscription(&stored.subscription).await? else {
                continue;
            };
            let Some(message) = live_entry(&self.topics, &stored.message, what).await? else {
                continue;
            };
            let message: StoredMessage = decode(&message)?;
            let mut leased = stored.clone();
            leased.due_ms = lease_until;
            let value = encode(&leased, what)?;
            // Taken meanwhile by another worker (or settled): not this claim's.
            let Written::Done(_) =
                super::update(&self.topics, &format!("d.{id}"), value, revision, what).await?
            else {
                continue;
            };
            claimed.push(Delivery {
                id,
                subscription,
                message: message.message,
                attempts: stored.attempts,
                last_error: stored.last_error,
                due_ms: stored.due_ms,
                lease_until,
            });
        }
        Ok(claimed)
    }

    async fn ack_delivery(&self, id: &str) -> Result<bool> {
        self.remove_delivery(id, false, "acking a topic delivery").await
    }

    async fn retry_delivery(&self, id: &str, next_attempt_at: UnixMillis, last_error: &str) -> Result<bool> {
        self.change_delivery(id, "retrying a topic delivery", |d| {
            if d.dead.is_some() {
                return false;
            }
            d.attempts += 1;
            d.last_error = Some(last_error.to_owned());
            d.due_ms = next_attempt_at;
            true
        })
        .await
    }

    async fn postpone_delivery(&self, id: &str, due_at: UnixMillis) -> Result<bool> {
        self.change_delivery(id, "postponing a topic delivery", |d| {
            if d.dead.is_some() {
                return false;
            }
            d.due_ms = due_at;
            true
        })
        .await
    }

    async fn dead_letter_delivery(&self, id: &str, reason: &str, now: UnixMillis) -> Result<bool> {
        self.change_delivery(id, "dead-lettering a topic delivery", |d| {
            if d.dead.is_some() {
                return false;
            }
            d.dead = Some((reason.to_owned(), now));
            true
        })
        .await
    }

    async fn list_dead_deliveries(&self, subscription: &str) -> Result<Vec<DeadDelivery>> {
        let what = "listing dead topic deliveries";
        let mut dead = Vec::new();
        for (id, _, stored) in self.all_deliveries(what).await? {
            if stored.subscription != subscription {
                continue;
            }
            let Some((reason, dead_ms)) = stored.dead else {
                continue;
            };
            let Some(message) = live_entry(&self.topics, &stored.message, what).await? else {
                continue;
            };
            let message: StoredMessage = decode(&message)?;
            dead.push(DeadDelivery {
                id,
                subscription_id: stored.subscription,
                message: message.message,
                attempts: stored.attempts,
                last_error: stored.last_error,
                reason,
                dead_ms,
            });
        }
        dead.sort_by(|a, b| (a.dead_ms, &a.id).cmp(&(b.dead_ms, &b.id)));
        Ok(dead)
    }
}

/// Opens the topics bucket `{prefix}_topics`, with atomic batches allowed, as the
/// registry's.
pub(super) async fn open(context: &jetstream::Context, prefix: &str) -> Result<kv::Store> {
    batch::atomic_bucket(context, prefix, "topics").await
}

#[cfg(test)]
mod tests {
    //! What the shared suite cannot show: racing nodes neither double-claim a delivery,
    //! nor subscribe one endpoint twice, nor store one message id twice.
    use super::*;
    use crate::Endpoint;
    use std::collections::BTreeMap;
    use wisp_core::QueueName;
    use wisp_test_support::nats::NatsServer;

    async fn open() -> (NatsServer, JetStreamStore) {
        let server = NatsServer::start();
        let store = JetStreamStore::connect(&server.url, "test").await.unwrap();
        (server, store)
    }

    async fn topic(store: &JetStreamStore) -> (Namespace, TopicName) {
        let (ns, name) = (
            Namespace::new("default").unwrap(),
            TopicName::new("orders").unwrap(),
        );
        let record = TopicRecord {
            namespace: ns.clone(),
            name: name.clone(),
            created_ms: 1,
        };
        assert!(store.create_topic(&record).await.unwrap());
        (ns, name)
    }

    fn new_subscription(ns: &Namespace, topic: &TopicName) -> NewSubscription {
        NewSubscription {
            namespace: ns.clone(),
            topic: topic.clone(),
            endpoint: Endpoint::Queue(QueueName::new("jobs").unwrap()),
            filter: None,
            raw_message_delivery: false,
            created_ms: 1,
        }
    }

    fn message(ns: &Namespace, topic: &TopicName, id: &str) -> TopicMessage {
        TopicMessage {
            id: id.to_owned(),
            namespace: ns.clone(),
            topic: topic.clone(),
            body: id.to_owned(),
            attributes: BTreeMap::new(),
            published_ms: 10,
            chain_depth: 0,
            trace: None,
            parent: None,
        }
    }

    /// Eight subscribes of one endpoint at once: one creates it, seven get it.
    #[tokio::test]
    async fn racing_subscribes_make_one_subscription() {
        let (_server, store) = open().await;
        let (ns, name) = topic(&store).await;
        let racers = (0..8).map(|_| {
            let (store, new) = (store.clone(), new_subscription(&ns, &name));
            tokio::spawn(async move { store.subscribe(&new).await })
        });
        let mut created = Vec::new();
        let mut ids = BTreeSet::new();
        for racer in racers {
            match racer.await.unwrap().unwrap() {
                Subscribed::Created(record) => {
                    ids.insert(record.id.clone());
                    created.push(record);
                }
                Subscribed::Existing(record) => {
                    ids.insert(record.id);
                }
                Subscribed::TopicNotFound => panic!("no topic"),
            }
        }
        assert_eq!(created.len(), 1);
        assert_eq!(ids.len(), 1);
        assert_eq!(store.list_subscriptions(&ns, &name).await.unwrap(), created);
    }

    /// Eight publishes of one id at once store it once; four claimers at once take each of
    /// 40 deliveries exactly once.
    #[tokio::test]
    async fn racing_publishes_and_claims_are_exact() {
        let (_server, store) = open().await;
        let (ns, name) = topic(&store).await;
        let Subscribed::Created(sub) = store.subscribe(&new_subscription(&ns, &name)).await.unwrap() else {
            panic!("not created");
        };
        let racers = (0..8).map(|_| {
            let store = store.clone();
            let publication = Publication {
                message: message(&ns, &name, "same"),
                subscriptions: vec![sub.id.clone()],
            };
            tokio::spawn(async move { store.publish(&publication).await })
        });
        let mut published = 0;
        for racer in racers {
            match racer.await.unwrap().unwrap() {
                PublishOutcome::Published { deliveries: 1 } => published += 1,
                PublishOutcome::Duplicate => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(published, 1);
        for n in 1..40 {
            let publication = Publication {
                message: message(&ns, &name, &format!("m{n}")),
                subscriptions: vec![sub.id.clone()],
            };
            store.publish(&publication).await.unwrap();
        }
        let claimers = (0..4).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let claimed = store.due_deliveries(10, 5, 1_000).await.unwrap();
                    if claimed.is_empty() {
                        return ids;
                    }
                    ids.extend(claimed.into_iter().map(|d| d.id));
                }
            })
        });
        let mut all = Vec::new();
        for claimer in claimers {
            all.extend(claimer.await.unwrap());
        }
        let unique: BTreeSet<_> = all.iter().cloned().collect();
        assert_eq!((all.len(), unique.len()), (40, 40));
    }
}

//! The JetStream [`Queues`]: bucket `{prefix}_queues` (atomic batch publish allowed on its
//! stream, as the topics') holds queues, messages and an index of when each is visible.
//!
//! - `q.NAMESPACE.QUEUE`: a queue ([`StoredQueue`]: config, created and updated times).
//! - `m.NAMESPACE.ID`: a message, the whole record ([`StoredMessage`]): the queue it is in,
//!   body, times, receive count, current receipt, the queue it was dead-lettered from. Its
//!   key is its id (as is when it is a key token, else `=` and its hex), so it is the same
//!   key wherever the message moves, and a send of an id the namespace holds (or held and
//!   deleted: the delete marker stays) stores nothing: the send expects no entry.
//! - `v.NAMESPACE.QUEUE.STAY`: the message's index entry in the queue it is in
//!   ([`IndexEntry`], a few dozen bytes, no body): visible-at and sent-at times, send
//!   order, receive count, whether it is in flight. `STAY` is fresh at every send and every
//!   move, so creating an index entry always expects no entry.
//!
//! Every time is the caller's (`now`): visibility, delays, retention and receive counts
//! are decided from the records, never by JetStream's timers (a work queue's `ack_wait`
//! runs on the server's clock, which a fake clock cannot move).
//!
//! A message and its index entry change together in one atomic batch, always the message
//! then its (new) index entry, each expecting the revision read; so the index entry's
//! revision is the message's plus one, which the operations by receipt handle use instead
//! of reading the index entry. A receive reads the queue's index (one scan), picks the
//! visible entries in order, and changes each message by compare-and-set on its record:
//! of two receivers on two nodes one wins, the other reads it again and finds it taken.
//! Several messages changed by one call (a receive, a delete of several receipts) are read
//! together and changed in one batch; when another writer came between, that batch is
//! refused whole and each message is read, decided and changed on its own.
//!
//! What each operation costs (requests; a scan is one consumer created and fetched from,
//! the queue's index entries only, never the bodies):
//! - send: the queue read, then one atomic batch per 500 messages (a duplicate id refuses
//!   the batch: the messages are read at once, the duplicates dropped, the batch sent
//!   again);
//! - receive: the queue read, a scan of the queue's index, then the messages wanted read at
//!   once and one batch for them all (per message when contended; the dead-letter queue
//!   read once when a message may need it);
//! - delete: the messages read at once and one batch; change visibility: a read and a batch;
//! - stats and the next visible time: one scan of the queue's index; `queue_depths`: one
//!   scan of the queues and one of every index entry (of the namespace), however many
//!   queues there are: O(messages held) entries of a few dozen bytes per metrics scrape;
//! - purge and delete: a scan, then one batch per 500 messages.
//!
//! An atomic batch's commit takes about 10 ms on nats-server 2.15.1 where a KV update takes
//! 0.3 ms (measured on one local server), so a call's changes go in one batch.

use super::batch::{self, BatchEntry, MAX_BATCH};
use super::{JetStreamStore, MAX_CAS_ATTEMPTS, Written, backend, contended, decode, encode, live_entry};
use crate::{
    NewMessage, QueueDepth, QueueRecord, QueueStats, Queues, Received, ReceivedMessage, Result, StoreError,
    UnixMillis,
};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use futures::StreamExt;
use futures::future::try_join_all;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::IntoFuture;
use std::time::Duration;
use wisp_core::wall::millis;
use wisp_core::{Namespace, QueueConfig, QueueName};

/// How many entries one fetch of a scan asks for.
const SCAN_FETCH: usize = 1_000;

/// How long the server keeps a scan's consumer once nothing fetches from it.
const SCAN_CONSUMER_IDLE: Duration = Duration::from_secs(10);

/// How many messages a receive, a delete, a redrive or a drop of expired messages changes
/// at once (read together, then one batch, or each its own when that batch is refused).
const ROUND: usize = 64;

/// How many messages one atomic batch changes (two entries each).
const MESSAGES_PER_BATCH: usize = MAX_BATCH / 2;

/// The bucket this concern keeps.
#[derive(Clone)]
pub(super) struct Parts {
    bucket: kv::Store,
}

/// Opens the queues bucket `{prefix}_queues`, with atomic batches allowed.
pub(super) async fn open(context: &jetstream::Context, prefix: &str) -> Result<Parts> {
    Ok(Parts {
        bucket: batch::atomic_bucket(context, prefix, "queues").await?,
    })
}

fn queue_key(namespace: &Namespace, queue: &QueueName) -> String {
    format!("q.{namespace}.{queue}")
}

fn message_key(namespace: &Namespace, token: &str) -> String {
    format!("m.{namespace}.{token}")
}

fn index_key(namespace: &Namespace, queue: &QueueName, stay: &str) -> String {
    format!("v.{namespace}.{queue}.{stay}")
}

/// A message id as one key token: as is when it is one (UUID text is) and does not start
/// with `=`, else `=` and its bytes in hex, so two ids never share a token.
fn id_token(id: &str) -> String {
    if super::is_key_token(id) && !id.starts_with('=') {
        id.to_owned()
    } else {
        let mut token = String::with_capacity(1 + 2 * id.len());
        token.push('=');
        for byte in id.bytes() {
            token.push_str(&format!("{byte:02x}"));
        }
        token
    }
}

/// A fresh token: a UUID v7 as 32 hex digits, so later ones (of this process) sort after.
fn fresh() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// A receipt handle: `NONCE.TOKEN`, the receive's fresh nonce and the message's id token.
fn receipt_handle(nonce: &str, token: &str) -> String {
    format!("{nonce}.{token}")
}

/// The nonce and id token of a receipt handle this store made; `None` for any other text.
fn parse_receipt(receipt: &str) -> Option<(&str, &str)> {
    let (nonce, token) = receipt.split_once('.')?;
    let nonce_ok = nonce.len() == 32 && nonce.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (nonce_ok && super::is_key_token(token)).then_some((nonce, token))
}

/// A queue as stored under `q.NAMESPACE.QUEUE`.
#[derive(Serialize, Deserialize)]
struct StoredQueue {
    config: QueueConfig,
    created_at: UnixMillis,
    updated_at: UnixMillis,
}

/// A message as stored under `m.NAMESPACE.ID`.
#[derive(Clone, Serialize, Deserialize)]
struct StoredMessage {
    id: String,
    /// The queue it is in.
    queue: QueueName,
    /// The last token of its index entry's key.
    stay: String,
    /// Send order: a fresh token made when it was sent, kept through moves.
    seq: String,
    body: String,
    sent_at: UnixMillis,
    visible_at: UnixMillis,
    receive_count: u32,
    first_received_at: Option<UnixMillis>,
    /// The nonce of the current receipt handle; `None` until received in this queue.
    receipt: Option<String>,
    chain_depth: u32,
    trace: Option<String>,
    parent: Option<String>,
    /// The queue that moved it here as its dead-letter queue.
    source_queue: Option<QueueName>,
}

/// A message's index entry under `v.NAMESPACE.QUEUE.STAY`: what receiving, counting and
/// redriving decide from without reading the message.
#[derive(Serialize, Deserialize)]
struct IndexEntry {
    /// The message's id token.
    #[serde(rename = "m")]
    token: String,
    #[serde(rename = "v")]
    visible_at: UnixMillis,
    #[serde(rename = "s")]
    sent_at: UnixMillis,
    #[serde(rename = "o")]
    seq: String,
    #[serde(rename = "n")]
    receive_count: u32,
    /// Whether it has a receipt: invisible, it is in flight rather than delayed.
    #[serde(rename = "r")]
    received: bool,
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    source_queue: Option<QueueName>,
}

impl StoredMessage {
    fn index_entry(&self) -> IndexEntry {
        IndexEntry {
            token: id_token(&self.id),
            visible_at: self.visible_at,
            sent_at: self.sent_at,
            seq: self.seq.clone(),
            receive_count: self.receive_count,
            received: self.receipt.is_some(),
            source_queue: self.source_queue.clone(),
        }
    }

    /// This message moved to `queue`, visible at `now`, its count and receipt reset.
    fn moved(&self, queue: &QueueName, source_queue: Option<QueueName>, now: UnixMillis) -> StoredMessage {
        StoredMessage {
            queue: queue.clone(),
            stay: fresh(),
            visible_at: now,
            receive_count: 0,
            first_received_at: None,
            receipt: None,
            source_queue,
            ..self.clone()
        }
    }
}

/// What a change does to a message (and its index entry).
enum Change {
    /// Writes it: in place when its queue and stay are the same, else a move (the old
    /// index entry deleted, a new one created).
    Put(Box<StoredMessage>),
    Delete,
}

/// One index entry as scanned: the key's queue and stay, its revision and value.
struct Indexed {
    namespace: Namespace,
    queue: QueueName,
    stay: String,
    revision: u64,
    entry: IndexEntry,
}

/// The batch entries of `change` to message `old` (at `revision`, its index entry at
/// `revision + 1`, as every batch writes them).
fn change_entries(
    namespace: &Namespace,
    old: &StoredMessage,
    revision: u64,
    change: &Change,
    what: &str,
) -> Result<Vec<BatchEntry>> {
    let key = message_key(namespace, &id_token(&old.id));
    let old_index = index_key(namespace, &old.queue, &old.stay);
    Ok(match change {
        Change::Delete => vec![(key, revision, None), (old_index, revision + 1, None)],
        Change::Put(new) => {
            let value = Some(encode(new, what)?);
            let index = Some(encode(&new.index_entry(), what)?);
            if new.queue == old.queue && new.stay == old.stay {
                vec![(key, revision, value), (old_index, revision + 1, index)]
            } else {
                vec![
                    (old_index, revision + 1, None),
                    (key, revision, value),
                    (index_key(namespace, &new.queue, &new.stay), 0, index),
                ]
            }
        }
    })
}

impl JetStreamStore {
    fn queues_bucket(&self) -> &kv::Store {
        &self.queues.bucket
    }

    async fn queue_config(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        what: &str,
    ) -> Result<Option<StoredQueue>> {
        match live_entry(self.queues_bucket(), &queue_key(namespace, queue), what).await? {
            Some(entry) => Ok(Some(decode(&entry)?)),
            None => Ok(None),
        }
    }

    async fn queue_or_not_found(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        what: &str,
    ) -> Result<StoredQueue> {
        self.queue_config(namespace, queue, what)
            .await?
            .ok_or_else(|| StoreError::QueueNotFound(queue.clone()))
    }

    /// Commits `entries` as one atomic batch; whether it committed (`false`: an entry's
    /// revision was not the one expected, nothing is written). The index entries it
    /// deletes are purged then, in the background.
    async fn queues_commit(&self, entries: &[BatchEntry], what: &str) -> Result<bool> {
        let committed = batch::commit(&self.context, self.queues_bucket(), entries, what)
            .await?
            .is_some();
        if committed {
            self.purge_index_markers(
                entries
                    .iter()
                    .filter(|(key, _, value)| value.is_none() && key.starts_with("v."))
                    .map(|(key, _, _)| key.as_str()),
            );
        }
        Ok(committed)
    }

    /// Purges the delete markers of index entries `keys`, in the background. A deleted
    /// index entry's key is never written again (its `STAY` was fresh), so its subject is
    /// purged whole; without this every scan of a queue would read one marker per message
    /// the queue ever held. A purge that fails leaves a marker for the next scan to purge.
    fn purge_index_markers<'a>(&self, keys: impl Iterator<Item = &'a str>) {
        let bucket = self.queues_bucket();
        for key in keys {
            let purge = bucket
                .stream
                .purge()
                .filter(format!("{}{key}", bucket.prefix))
                .into_future();
            tokio::spawn(async move {
                if let Err(error) = purge.await {
                    tracing::debug!(%error, "purging the delete marker of a queue's index entry");
                }
            });
        }
    }

    /// The last live entry of every key under `filter` (a key with wildcards), as (key,
    /// revision, value), in no order.
    ///
    /// An ephemeral pull consumer (last message per key, no acks, in memory) fetched from
    /// without waiting until a fetch comes back short: the server says when nothing is
    /// left, so a key changed or removed during the scan never leaves it waiting for a
    /// message that will not come (an ordered consumer's pending count can). It is not a
    /// snapshot: a key written during the scan is seen before or after its change, once.
    /// A scan the server did not answer is made again ([`super::scan_again`]).
    async fn queues_scan(&self, filter: &str, what: &str) -> Result<Vec<(String, u64, Vec<u8>)>> {
        super::scan_again(what, || self.queues_scan_once(filter, what)).await
    }

    async fn queues_scan_once(&self, filter: &str, what: &str) -> Result<Vec<(String, u64, Vec<u8>)>> {
        let bucket = self.queues_bucket();
        let consumer = bucket
            .stream
            .create_consumer(pull::Config {
                filter_subject: format!("{}{filter}", bucket.prefix),
                deliver_policy: DeliverPolicy::LastPerSubject,
                ack_policy: AckPolicy::None,
                inactive_threshold: SCAN_CONSUMER_IDLE,
                memory_storage: true,
                ..pull::Config::default()
            })
            .await
            .map_err(|e| backend(what, e))?;
        // The consumer goes on past the last messages it started from, so a key written
        // during the scan may come twice: its last message (or delete marker) counts.
        let mut found: HashMap<String, (u64, Option<Vec<u8>>)> = HashMap::new();
        loop {
            let mut fetched = 0;
            let mut batch = consumer
                .fetch()
                .max_messages(SCAN_FETCH)
                .messages()
                .await
                .map_err(|e| backend(what, e))?;
            while let Some(message) = batch.next().await {
                let message = message.map_err(|e| backend(what, e))?;
                fetched += 1;
                let info = message.info().map_err(|e| backend(what, e))?;
                let revision = info.stream_sequence;
                let marker = message.headers.as_ref().is_some_and(|h| {
                    h.get("KV-Operation").is_some() || h.get("Nats-Marker-Reason").is_some()
                });
                let key = message
                    .subject
                    .strip_prefix(bucket.prefix.as_str())
                    .unwrap_or(&message.subject)
                    .to_owned();
                let value = (!marker).then(|| message.payload.to_vec());
                match found.get(&key) {
                    Some((seen, _)) if *seen > revision => {}
                    _ => {
                        found.insert(key, (revision, value));
                    }
                }
            }
            if fetched < SCAN_FETCH {
                break;
            }
        }
        self.purge_index_markers(
            found
                .iter()
                .filter(|(key, (_, value))| value.is_none() && key.starts_with("v."))
                .map(|(key, _)| key.as_str()),
        );
        Ok(found
            .into_iter()
            .filter_map(|(key, (revision, value))| Some((key, revision, value?)))
            .collect())
    }

    /// The index entries under `filter` (`v.NAMESPACE.QUEUE.>`, `v.NAMESPACE.>` or `v.>`).
    async fn scan_index(&self, filter: &str, what: &str) -> Result<Vec<Indexed>> {
        let mut indexed = Vec::new();
        for (key, revision, value) in self.queues_scan(filter, what).await? {
            let corrupt = |why: String| {
                StoreError::Corrupt(format!(
                    "entry `{key}` of JetStream bucket `{}` (revision {revision}): {why}",
                    self.queues_bucket().name
                ))
            };
            let parts: Vec<&str> = key.split('.').collect();
            let [_, namespace, queue, stay] = parts[..] else {
                return Err(corrupt("not an index key".to_owned()));
            };
            indexed.push(Indexed {
                namespace: Namespace::new(namespace).map_err(|e| corrupt(e.to_string()))?,
                queue: QueueName::new(queue).map_err(|e| corrupt(e.to_string()))?,
                stay: stay.to_owned(),
                revision,
                entry: serde_json::from_slice(&value).map_err(|e| corrupt(e.to_string()))?,
            });
        }
        Ok(indexed)
    }

    /// Changes message `token` of `namespace` as `decide` says (given the record read;
    /// `None`: leave it), by compare-and-set on its record and index entry, reading and
    /// deciding again when another writer came between. What `decide` answered with the
    /// change made, or `None` when the message is gone or was left.
    async fn change_message<T>(
        &self,
        namespace: &Namespace,
        token: &str,
        what: &str,
        mut decide: impl FnMut(&StoredMessage) -> Option<(Change, T)>,
    ) -> Result<Option<T>> {
        let key = message_key(namespace, token);
        let mut refused = None;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(entry) = live_entry(self.queues_bucket(), &key, what).await? else {
                return Ok(None);
            };
            if refused == Some(entry.revision) {
                // Nothing changed the message, so its index entry was not at the revision
                // after the message's: something other than this module wrote it.
                return Err(StoreError::Corrupt(format!(
                    "the index entry of `{key}` in JetStream bucket `{}` is not at revision {}",
                    entry.bucket,
                    entry.revision + 1
                )));
            }
            let message: StoredMessage = decode(&entry)?;
            let Some((change, answer)) = decide(&message) else {
                return Ok(None);
            };
            let entries = change_entries(namespace, &message, entry.revision, &change, what)?;
            if self.queues_commit(&entries, what).await? {
                return Ok(Some(answer));
            }
            refused = Some(entry.revision);
        }
        Err(contended(what))
    }

    /// [`JetStreamStore::change_message`] for several messages (`decide` is given the
    /// position of the token): all read at once and changed in one atomic batch; refused
    /// (another writer came between), each is read, decided and changed again on its own.
    async fn change_messages<T>(
        &self,
        namespace: &Namespace,
        tokens: &[&str],
        what: &str,
        decide: impl Fn(usize, &StoredMessage) -> Option<(Change, T)>,
    ) -> Result<Vec<Option<T>>> {
        let decide = &decide;
        let bucket = self.queues_bucket();
        let read = try_join_all(
            tokens
                .iter()
                .map(|token| async move { live_entry(bucket, &message_key(namespace, token), what).await }),
        )
        .await?;
        let mut entries = Vec::new();
        let mut answers = Vec::with_capacity(tokens.len());
        for (n, entry) in read.iter().enumerate() {
            let Some(entry) = entry else {
                answers.push(None);
                continue;
            };
            let message: StoredMessage = decode(entry)?;
            match decide(n, &message) {
                Some((change, answer)) => {
                    entries.extend(change_entries(
                        namespace,
                        &message,
                        entry.revision,
                        &change,
                        what,
                    )?);
                    answers.push(Some(answer));
                }
                None => answers.push(None),
            }
        }
        if entries.len() <= MAX_BATCH && self.queues_commit(&entries, what).await? {
            return Ok(answers);
        }
        try_join_all(
            tokens
                .iter()
                .enumerate()
                .map(|(n, token)| self.change_message(namespace, token, what, move |m| decide(n, m))),
        )
        .await
    }

    /// Deletes the messages of `indexed` (index entries as scanned) as batches of many,
    /// each message only while unchanged since the scan; how many it deleted. A batch
    /// refused (a message changed meanwhile) is done message by message instead.
    async fn delete_indexed(&self, indexed: &[Indexed], what: &str) -> Result<u64> {
        let mut deleted = 0;
        for chunk in indexed.chunks(MESSAGES_PER_BATCH) {
            let mut entries = Vec::with_capacity(2 * chunk.len());
            for index in chunk {
                entries.push((
                    message_key(&index.namespace, &index.entry.token),
                    index.revision.saturating_sub(1),
                    None,
                ));
                entries.push((
                    index_key(&index.namespace, &index.queue, &index.stay),
                    index.revision,
                    None,
                ));
            }
            if self.queues_commit(&entries, what).await? {
                deleted += chunk.len() as u64;
                continue;
            }
            for index in chunk {
                let gone = self
                    .change_message(&index.namespace, &index.entry.token, what, |m| {
                        (m.queue == index.queue && m.stay == index.stay).then_some((Change::Delete, ()))
                    })
                    .await?;
                deleted += u64::from(gone.is_some());
            }
        }
        Ok(deleted)
    }

    /// Deletes every message in a queue; how many.
    async fn delete_all_messages(&self, namespace: &Namespace, queue: &QueueName, what: &str) -> Result<u64> {
        let indexed = self.scan_index(&format!("v.{namespace}.{queue}.>"), what).await?;
        self.delete_indexed(&indexed, what).await
    }

    /// Stores `messages` (ids new to the namespace) in one atomic batch per
    /// [`MESSAGES_PER_BATCH`], dropping those whose id the namespace has held.
    async fn store_messages(
        &self,
        namespace: &Namespace,
        mut messages: Vec<StoredMessage>,
        what: &str,
    ) -> Result<()> {
        let mut kept = BTreeSet::new();
        messages.retain(|m| kept.insert(m.id.clone()));
        for chunk in messages.chunks(MESSAGES_PER_BATCH) {
            let mut chunk = chunk.to_vec();
            for attempt in 0..=MAX_CAS_ATTEMPTS {
                if attempt == MAX_CAS_ATTEMPTS {
                    return Err(contended(what));
                }
                let mut entries = Vec::with_capacity(2 * chunk.len());
                for message in &chunk {
                    entries.push((
                        message_key(namespace, &id_token(&message.id)),
                        0,
                        Some(encode(message, what)?),
                    ));
                    entries.push((
                        index_key(namespace, &message.queue, &message.stay),
                        0,
                        Some(encode(&message.index_entry(), what)?),
                    ));
                }
                if self.queues_commit(&entries, what).await? {
                    break;
                }
                // An id held already (or held and deleted): that message is a duplicate.
                let bucket = self.queues_bucket();
                let held = try_join_all(chunk.iter().map(|m| async move {
                    let key = message_key(namespace, &id_token(&m.id));
                    bucket
                        .entry(key)
                        .await
                        .map(|e| e.is_some())
                        .map_err(|e| backend(what, e))
                }))
                .await?;
                let mut held = held.into_iter();
                chunk.retain(|_| held.next() != Some(true));
                if chunk.is_empty() {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// What a receive decides from: its arguments, the queue's and the time's.
struct Receiving<'a> {
    queue: &'a QueueName,
    now: UnixMillis,
    /// Messages sent before this are past the queue's retention.
    expired_before: UnixMillis,
    visible_until: UnixMillis,
    /// The queue's `max_receive_count` and dead-letter queue, when that queue exists.
    dead_letter: Option<(u32, &'a QueueName)>,
}

/// What a receive does with the message of index entry `index`, read as `m`: delivers
/// it, moves it to the dead-letter queue or drops it as expired; `None` when it is no
/// longer there and visible (another receiver took it).
fn take(r: &Receiving<'_>, index: &Indexed, m: &StoredMessage) -> Option<(Change, Taken)> {
    if m.queue != *r.queue || m.stay != index.stay || m.visible_at > r.now {
        return None;
    }
    if m.sent_at < r.expired_before {
        return Some((Change::Delete, Taken::Expired));
    }
    if let Some((max_count, dlq)) = r.dead_letter
        && m.receive_count >= max_count
    {
        let moved = m.moved(dlq, Some(r.queue.clone()), r.now);
        return Some((Change::Put(Box::new(moved)), Taken::DeadLettered(m.id.clone())));
    }
    let nonce = fresh();
    let delivered = StoredMessage {
        receive_count: m.receive_count.saturating_add(1),
        first_received_at: Some(m.first_received_at.unwrap_or(r.now)),
        visible_at: r.visible_until,
        receipt: Some(nonce.clone()),
        ..m.clone()
    };
    let message = ReceivedMessage {
        id: m.id.clone(),
        receipt_handle: receipt_handle(&nonce, &index.entry.token),
        body: m.body.clone(),
        sent_at: m.sent_at,
        first_received_at: m.first_received_at.unwrap_or(r.now),
        receive_count: delivered.receive_count,
        chain_depth: m.chain_depth,
        trace: m.trace.clone(),
        parent: m.parent.clone(),
    };
    Some((Change::Put(Box::new(delivered)), Taken::Delivered(message)))
}

/// What one receive did with one message.
enum Taken {
    Delivered(ReceivedMessage),
    DeadLettered(String),
    Expired,
}

#[async_trait]
impl Queues for JetStreamStore {
    /// Creates the record (expecting none) or updates it on the revision read. A queue
    /// created clears messages left under its name by a send that raced its deletion.
    async fn put_queue(
        &self,
        namespace: &Namespace,
        name: &QueueName,
        config: &QueueConfig,
        now: UnixMillis,
    ) -> Result<bool> {
        let what = format!("saving queue `{namespace}/{name}`");
        let key = queue_key(namespace, name);
        for _ in 0..MAX_CAS_ATTEMPTS {
            match live_entry(self.queues_bucket(), &key, &what).await? {
                Some(entry) => {
                    let mut stored: StoredQueue = decode(&entry)?;
                    if stored.config == *config {
                        return Ok(false);
                    }
                    stored.config = config.clone();
                    stored.updated_at = now;
                    let value = encode(&stored, &what)?;
                    if let Written::Done(_) =
                        super::update(self.queues_bucket(), &key, value, entry.revision, &what).await?
                    {
                        return Ok(false);
                    }
                }
                None => {
                    let stored = StoredQueue {
                        config: config.clone(),
                        created_at: now,
                        updated_at: now,
                    };
                    let value = encode(&stored, &what)?;
                    if let Written::Done(_) = super::create(self.queues_bucket(), &key, value, &what).await? {
                        self.delete_all_messages(namespace, name, &what).await?;
                        return Ok(true);
                    }
                }
            }
        }
        Err(contended(what))
    }

    async fn get_queue(&self, namespace: &Namespace, name: &QueueName) -> Result<Option<QueueRecord>> {
        let what = format!("reading queue `{namespace}/{name}`");
        Ok(self
            .queue_config(namespace, name, &what)
            .await?
            .map(|stored| QueueRecord {
                namespace: namespace.clone(),
                name: name.clone(),
                config: stored.config,
                created_at: stored.created_at,
                updated_at: stored.updated_at,
            }))
    }

    /// One scan of the queue records.
    async fn list_queues(&self, namespace: Option<&Namespace>) -> Result<Vec<QueueRecord>> {
        let what = "listing queues";
        let filter = match namespace {
            Some(namespace) => format!("q.{namespace}.>"),
            None => "q.>".to_owned(),
        };
        let mut records = Vec::new();
        for (key, revision, value) in self.queues_scan(&filter, what).await? {
            let corrupt = |why: String| {
                StoreError::Corrupt(format!(
                    "entry `{key}` of JetStream bucket `{}` (revision {revision}): {why}",
                    self.queues_bucket().name
                ))
            };
            let parts: Vec<&str> = key.split('.').collect();
            let [_, namespace, name] = parts[..] else {
                return Err(corrupt("not a queue key".to_owned()));
            };
            let stored: StoredQueue = serde_json::from_slice(&value).map_err(|e| corrupt(e.to_string()))?;
            records.push(QueueRecord {
                namespace: Namespace::new(namespace).map_err(|e| corrupt(e.to_string()))?,
                name: QueueName::new(name).map_err(|e| corrupt(e.to_string()))?,
                config: stored.config,
                created_at: stored.created_at,
                updated_at: stored.updated_at,
            });
        }
        records.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(records)
    }

    /// Deletes the record (on the revision read), then the queue's messages in batches:
    /// not one step, so a failure between leaves messages that the queue made again under
    /// the name clears when created.
    async fn delete_queue(&self, namespace: &Namespace, name: &QueueName) -> Result<bool> {
        let what = format!("deleting queue `{namespace}/{name}`");
        let key = queue_key(namespace, name);
        let mut existed = false;
        for attempt in 0..=MAX_CAS_ATTEMPTS {
            if attempt == MAX_CAS_ATTEMPTS {
                return Err(contended(what));
            }
            let Some(entry) = live_entry(self.queues_bucket(), &key, &what).await? else {
                break;
            };
            if let Written::Done(_) = super::delete(self.queues_bucket(), &key, entry.revision, &what).await?
            {
                existed = true;
                break;
            }
        }
        self.delete_all_messages(namespace, name, &what).await?;
        Ok(existed)
    }

    /// One atomic batch per 500 messages after the queue's read. Better than the trait
    /// asks: a message whose id the namespace holds, or held and deleted, is not stored
    /// again (its key is its id, which a send expects to have no entry), so the async
    /// pipeline's follow-ups, written again after a failure, are stored once. Ids are
    /// fresh UUIDs, so no two messages of a namespace share one otherwise.
    async fn send_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        messages: &[NewMessage],
        now: UnixMillis,
    ) -> Result<()> {
        let what = format!(
            "sending {} messages to queue `{namespace}/{queue}`",
            messages.len()
        );
        self.queue_or_not_found(namespace, queue, &what).await?;
        let stored = messages
            .iter()
            .map(|message| {
                let seq = fresh();
                StoredMessage {
                    id: message.id.clone(),
                    queue: queue.clone(),
                    stay: seq.clone(),
                    seq,
                    body: message.body.clone(),
                    sent_at: now,
                    visible_at: now.saturating_add(i64::try_from(message.delay_ms).unwrap_or(i64::MAX)),
                    receive_count: 0,
                    first_received_at: None,
                    receipt: None,
                    chain_depth: message.chain_depth,
                    trace: message.trace.clone(),
                    parent: message.parent.clone(),
                    source_queue: None,
                }
            })
            .collect();
        self.store_messages(namespace, stored, &what).await
    }

    /// Scans the queue's index, drops the expired messages, then takes the visible ones
    /// in order, as many at a time as are still wanted: read together and changed in one
    /// batch expecting the revisions read. Refused, each is read and decided again on its
    /// own: one taken by another receiver meanwhile is found invisible and passed over, and
    /// the next round fills its place. So a message goes to one receive at a time across
    /// nodes, and a receive is not one snapshot of the queue (SQLite's is).
    async fn receive_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        max: usize,
        visibility_ms: u64,
        now: UnixMillis,
    ) -> Result<Received> {
        let what = format!("receiving messages from queue `{namespace}/{queue}`");
        let config = self.queue_or_not_found(namespace, queue, &what).await?.config;
        let expired_before = now.saturating_sub(millis(config.retention));
        let visible_until = now.saturating_add(i64::try_from(visibility_ms).unwrap_or(i64::MAX));
        let indexed = self
            .scan_index(&format!("v.{namespace}.{queue}.>"), &what)
            .await?;
        let (expired, mut visible): (Vec<Indexed>, Vec<Indexed>) = indexed
            .into_iter()
            .filter(|i| i.entry.sent_at < expired_before || i.entry.visible_at <= now)
            .partition(|i| i.entry.sent_at < expired_before);
        for round in expired.chunks(ROUND) {
            let tokens: Vec<&str> = round.iter().map(|i| i.entry.token.as_str()).collect();
            self.change_messages(namespace, &tokens, &what, |n, m| {
                (m.queue == *queue && m.stay == round[n].stay && m.sent_at < expired_before)
                    .then_some((Change::Delete, ()))
            })
            .await?;
        }
        visible.sort_by(|a, b| (a.entry.visible_at, &a.entry.seq).cmp(&(b.entry.visible_at, &b.entry.seq)));

        let dead_letter = match (config.max_receive_count, &config.dead_letter_queue) {
            (Some(max_count), Some(dlq)) if visible.iter().any(|i| i.entry.receive_count >= max_count) => {
                if self.queue_config(namespace, dlq, &what).await?.is_some() {
                    Some((max_count, dlq))
                } else {
                    tracing::warn!(
                        namespace = namespace.as_str(),
                        queue = queue.as_str(),
                        dead_letter_queue = dlq.as_str(),
                        "a message reached max_receive_count, but the dead-letter queue does not exist; delivering it again"
                    );
                    None
                }
            }
            _ => None,
        };

        let receiving = Receiving {
            queue,
            now,
            expired_before,
            visible_until,
            dead_letter,
        };
        // The next messages in order, as many at once as are still wanted: read together and
        // changed in one batch (one by one when another receiver came between).
        let mut received = Received::default();
        let mut candidates = visible.iter();
        loop {
            let wanted = max.saturating_sub(received.messages.len());
            let round: Vec<&Indexed> = candidates.by_ref().take(wanted.min(ROUND)).collect();
            if round.is_empty() {
                break;
            }
            let tokens: Vec<&str> = round.iter().map(|i| i.entry.token.as_str()).collect();
            let taken = self
                .change_messages(namespace, &tokens, &what, |n, m| take(&receiving, round[n], m))
                .await?;
            for taken in taken {
                match taken {
                    Some(Taken::Delivered(message)) => received.messages.push(message),
                    Some(Taken::DeadLettered(id)) => received.dead_lettered.push(id),
                    Some(Taken::Expired) | None => {}
                }
            }
        }
        Ok(received)
    }

    /// The messages read together, then deleted with their index entries in one batch on
    /// the revisions read, each while the receipt is its current one (one by one when
    /// another writer came between).
    async fn delete_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        receipts: &[String],
    ) -> Result<Vec<bool>> {
        let what = format!("deleting messages from queue `{namespace}/{queue}`");
        let parsed: Vec<Option<(&str, &str)>> = receipts.iter().map(|r| parse_receipt(r)).collect();
        let mut deleted = Vec::with_capacity(receipts.len());
        for round in parsed.chunks(ROUND) {
            // A receipt that is not this store's reads a placeholder and changes nothing.
            let tokens: Vec<&str> = round.iter().map(|p| p.map_or("-", |(_, token)| token)).collect();
            let done = self
                .change_messages(namespace, &tokens, &what, |n, m| {
                    let (nonce, _) = round[n]?;
                    (m.queue == *queue && m.receipt.as_deref() == Some(nonce)).then_some((Change::Delete, ()))
                })
                .await?;
            deleted.extend(done.iter().map(Option::is_some));
        }
        Ok(deleted)
    }

    async fn change_visibility(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        receipt: &str,
        visible_at: UnixMillis,
    ) -> Result<bool> {
        let what = format!("changing the visibility of a message of queue `{namespace}/{queue}`");
        let Some((nonce, token)) = parse_receipt(receipt) else {
            return Ok(false);
        };
        let changed = self
            .change_message(namespace, token, &what, |m| {
                (m.queue == *queue && m.receipt.as_deref() == Some(nonce)).then(|| {
                    let changed = StoredMessage {
                        visible_at,
                        ..m.clone()
                    };
                    (Change::Put(Box::new(changed)), ())
                })
            })
            .await?;
        Ok(changed.is_some())
    }

    /// One scan of the queue's index: not a snapshot, so a message that changes during
    /// it may be counted in two places or none.
    async fn queue_stats(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        now: UnixMillis,
    ) -> Result<QueueStats> {
        let what = format!("counting the messages of queue `{namespace}/{queue}`");
        self.queue_or_not_found(namespace, queue, &what).await?;
        let mut stats = QueueStats::default();
        for index in self
            .scan_index(&format!("v.{namespace}.{queue}.>"), &what)
            .await?
        {
            count(&mut stats, &index.entry, now);
        }
        Ok(stats)
    }

    /// Two scans, however many queues: the queue records and every index entry (of the
    /// namespace): O(messages held) entries of a few dozen bytes each.
    async fn queue_depths(&self, namespace: Option<&Namespace>, now: UnixMillis) -> Result<Vec<QueueDepth>> {
        let what = "counting the messages of every queue";
        let queues = self.list_queues(namespace).await?;
        let filter = match namespace {
            Some(namespace) => format!("v.{namespace}.>"),
            None => "v.>".to_owned(),
        };
        let mut depths: BTreeMap<(Namespace, QueueName), QueueDepth> = queues
            .into_iter()
            .map(|q| {
                let depth = QueueDepth {
                    namespace: q.namespace.clone(),
                    queue: q.name.clone(),
                    stats: QueueStats::default(),
                    oldest_sent_ms: None,
                };
                ((q.namespace, q.name), depth)
            })
            .collect();
        for index in self.scan_index(&filter, what).await? {
            // Messages left by a send that raced the queue's deletion are not counted.
            let Some(depth) = depths.get_mut(&(index.namespace, index.queue)) else {
                continue;
            };
            count(&mut depth.stats, &index.entry, now);
            depth.oldest_sent_ms = Some(match depth.oldest_sent_ms {
                Some(oldest) => oldest.min(index.entry.sent_at),
                None => index.entry.sent_at,
            });
        }
        Ok(depths.into_values().collect())
    }

    async fn purge_queue(&self, namespace: &Namespace, queue: &QueueName) -> Result<u64> {
        let what = format!("purging queue `{namespace}/{queue}`");
        self.queue_or_not_found(namespace, queue, &what).await?;
        self.delete_all_messages(namespace, queue, &what).await
    }

    /// Scans the dead-letter queue's index and moves each message that came from a queue
    /// still there (each move one batch on the revisions read: the old index entry, the
    /// message, the new index entry).
    async fn redrive_queue(
        &self,
        namespace: &Namespace,
        dead_letter_queue: &QueueName,
        now: UnixMillis,
    ) -> Result<u64> {
        let what = format!("redriving dead-letter queue `{namespace}/{dead_letter_queue}`");
        self.queue_or_not_found(namespace, dead_letter_queue, &what)
            .await?;
        let indexed = self
            .scan_index(&format!("v.{namespace}.{dead_letter_queue}.>"), &what)
            .await?;
        let mut exists: HashMap<QueueName, bool> = HashMap::new();
        let mut movable = Vec::new();
        for index in &indexed {
            let Some(source) = &index.entry.source_queue else {
                continue;
            };
            let there = match exists.get(source) {
                Some(there) => *there,
                None => {
                    let there = self.queue_config(namespace, source, &what).await?.is_some();
                    exists.insert(source.clone(), there);
                    there
                }
            };
            if there {
                movable.push((index, source));
            }
        }
        let mut moved = 0;
        for round in movable.chunks(ROUND) {
            let tokens: Vec<&str> = round.iter().map(|(i, _)| i.entry.token.as_str()).collect();
            let done = self
                .change_messages(namespace, &tokens, &what, |n, m| {
                    let (index, source) = round[n];
                    (m.queue == *dead_letter_queue
                        && m.stay == index.stay
                        && m.source_queue.as_ref() == Some(source))
                    .then(|| (Change::Put(Box::new(m.moved(source, None, now))), ()))
                })
                .await?;
            moved += done.iter().filter(|d| d.is_some()).count() as u64;
        }
        Ok(moved)
    }

    /// One scan of the queue's index.
    async fn next_message_visible(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
    ) -> Result<Option<UnixMillis>> {
        let what = format!("reading when a message of queue `{namespace}/{queue}` is next visible");
        Ok(self
            .scan_index(&format!("v.{namespace}.{queue}.>"), &what)
            .await?
            .iter()
            .map(|i| i.entry.visible_at)
            .min())
    }
}

/// Counts `entry` where it is at `now`.
fn count(stats: &mut QueueStats, entry: &IndexEntry, now: UnixMillis) {
    if entry.visible_at <= now {
        stats.visible += 1;
    } else if entry.received {
        stats.in_flight += 1;
    } else {
        stats.delayed += 1;
    }
}

#[cfg(test)]
mod tests {
    //! What the shared suite cannot show: two nodes (two stores on one server and prefix)
    //! receiving at once hand each message to one receiver, a receipt made stale on one
    //! node is stale on the other, racing dead-letter moves and redrives move each message
    //! once, and racing sends of one id store it once.
    use super::*;
    use wisp_test_support::nats::NatsServer;

    const T: UnixMillis = 1_700_000_000_000;

    async fn two_nodes() -> (NatsServer, JetStreamStore, JetStreamStore) {
        let server = NatsServer::start();
        let a = JetStreamStore::connect(&server.url, "test").await.unwrap();
        let b = JetStreamStore::connect(&server.url, "test").await.unwrap();
        (server, a, b)
    }

    fn message(id: &str) -> NewMessage {
        NewMessage {
            id: id.to_owned(),
            body: format!("body of {id}"),
            delay_ms: 0,
            chain_depth: 0,
            trace: None,
            parent: None,
        }
    }

    fn names() -> (Namespace, QueueName) {
        (
            Namespace::new("default").unwrap(),
            QueueName::new("jobs").unwrap(),
        )
    }

    /// Four receivers on two nodes drain 40 messages: each is received exactly once; past
    /// the timeout one node receives them all again, and the first receipts delete nothing.
    #[tokio::test]
    async fn racing_receivers_on_two_nodes_share_no_message() {
        let (_server, a, b) = two_nodes().await;
        let (ns, jobs) = names();
        a.put_queue(&ns, &jobs, &QueueConfig::default(), T).await.unwrap();
        let sent: Vec<NewMessage> = (0..40).map(|n| message(&format!("m{n:02}"))).collect();
        b.send_messages(&ns, &jobs, &sent, T).await.unwrap();

        let receivers = [&a, &b, &a, &b].map(|store| {
            let (store, ns, jobs) = (store.clone(), ns.clone(), jobs.clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let received = store.receive_messages(&ns, &jobs, 5, 60_000, T).await.unwrap();
                    if received.messages.is_empty() {
                        return got;
                    }
                    got.extend(received.messages);
                }
            })
        });
        let mut first = Vec::new();
        for receiver in receivers {
            first.extend(receiver.await.unwrap());
        }
        let ids: BTreeSet<&str> = first.iter().map(|m| m.id.as_str()).collect();
        assert_eq!((first.len(), ids.len()), (40, 40));
        assert!(first.iter().all(|m| m.receive_count == 1));
        assert_eq!(
            a.queue_stats(&ns, &jobs, T).await.unwrap(),
            QueueStats {
                visible: 0,
                in_flight: 40,
                delayed: 0
            }
        );

        let again = b
            .receive_messages(&ns, &jobs, 100, 60_000, T + 60_000)
            .await
            .unwrap();
        let in_order: Vec<&str> = again.messages.iter().map(|m| m.id.as_str()).collect();
        let sent_order: Vec<&str> = sent.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            in_order, sent_order,
            "visible since the same time: in sending order"
        );
        let stale: Vec<String> = first.iter().map(|m| m.receipt_handle.clone()).collect();
        assert!(
            a.delete_messages(&ns, &jobs, &stale)
                .await
                .unwrap()
                .iter()
                .all(|d| !d)
        );
        let current: Vec<String> = again.messages.iter().map(|m| m.receipt_handle.clone()).collect();
        assert!(
            a.delete_messages(&ns, &jobs, &current)
                .await
                .unwrap()
                .iter()
                .all(|d| *d)
        );
        assert_eq!(b.next_message_visible(&ns, &jobs).await.unwrap(), None);
    }

    /// Four receivers on two nodes racing over 20 messages due for the dead-letter queue
    /// move each exactly once, and a redrive racing another brings each back once.
    #[tokio::test]
    async fn racing_dead_letter_moves_and_redrives_move_each_message_once() {
        let (_server, a, b) = two_nodes().await;
        let (ns, jobs) = names();
        let dlq = QueueName::new("jobs-dlq").unwrap();
        a.put_queue(&ns, &dlq, &QueueConfig::default(), T).await.unwrap();
        let config = QueueConfig {
            max_receive_count: Some(1),
            dead_letter_queue: Some(dlq.clone()),
            ..QueueConfig::default()
        };
        a.put_queue(&ns, &jobs, &config, T).await.unwrap();
        let sent: Vec<NewMessage> = (0..20).map(|n| message(&format!("m{n:02}"))).collect();
        a.send_messages(&ns, &jobs, &sent, T).await.unwrap();
        assert_eq!(
            a.receive_messages(&ns, &jobs, 20, 10, T)
                .await
                .unwrap()
                .messages
                .len(),
            20
        );

        let receivers = [&a, &b, &a, &b].map(|store| {
            let (store, ns, jobs) = (store.clone(), ns.clone(), jobs.clone());
            tokio::spawn(async move { store.receive_messages(&ns, &jobs, 3, 1_000, T + 10).await })
        });
        let mut moved = Vec::new();
        for receiver in receivers {
            let received = receiver.await.unwrap().unwrap();
            assert!(received.messages.is_empty());
            moved.extend(received.dead_lettered);
        }
        // Each receive moves until it fills `max` or runs out: together they move them all.
        moved.extend(
            a.receive_messages(&ns, &jobs, 3, 1_000, T + 10)
                .await
                .unwrap()
                .dead_lettered,
        );
        moved.sort();
        let ids: Vec<String> = sent.iter().map(|m| m.id.clone()).collect();
        assert_eq!(moved, ids);
        let stats = |visible| QueueStats {
            visible,
            in_flight: 0,
            delayed: 0,
        };
        assert_eq!(b.queue_stats(&ns, &dlq, T + 10).await.unwrap(), stats(20));

        let redrives = [&a, &b].map(|store| {
            let (store, ns, dlq) = (store.clone(), ns.clone(), dlq.clone());
            tokio::spawn(async move { store.redrive_queue(&ns, &dlq, T + 20).await })
        });
        let mut redriven = 0;
        for redrive in redrives {
            redriven += redrive.await.unwrap().unwrap();
        }
        assert_eq!(redriven, 20);
        assert_eq!(a.queue_stats(&ns, &dlq, T + 20).await.unwrap(), stats(0));
        assert_eq!(a.queue_stats(&ns, &jobs, T + 20).await.unwrap(), stats(20));
    }

    /// Eight sends of one id at once, from two nodes, store one message; a send of it after
    /// it was deleted stores nothing either.
    #[tokio::test]
    async fn racing_sends_of_one_id_store_it_once() {
        let (_server, a, b) = two_nodes().await;
        let (ns, jobs) = names();
        a.put_queue(&ns, &jobs, &QueueConfig::default(), T).await.unwrap();
        let senders = [&a, &b, &a, &b, &a, &b, &a, &b].map(|store| {
            let (store, ns, jobs) = (store.clone(), ns.clone(), jobs.clone());
            tokio::spawn(async move {
                let batch = [message("other"), message("same")];
                store.send_messages(&ns, &jobs, &batch, T).await
            })
        });
        for sender in senders {
            sender.await.unwrap().unwrap();
        }
        let received = a.receive_messages(&ns, &jobs, 10, 1_000, T).await.unwrap();
        let ids: Vec<&str> = received.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["other", "same"]);

        let receipts: Vec<String> = received
            .messages
            .iter()
            .map(|m| m.receipt_handle.clone())
            .collect();
        assert_eq!(
            b.delete_messages(&ns, &jobs, &receipts).await.unwrap(),
            [true, true]
        );
        b.send_messages(&ns, &jobs, &[message("same"), message("new")], T)
            .await
            .unwrap();
        let received = b.receive_messages(&ns, &jobs, 10, 1_000, T).await.unwrap();
        let ids: Vec<&str> = received.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["new"]);
    }

    /// Index entries deleted leave no delete markers behind for later scans to read.
    #[tokio::test]
    async fn deleted_index_entries_leave_no_markers() {
        let (_server, a, _b) = two_nodes().await;
        let (ns, jobs) = names();
        a.put_queue(&ns, &jobs, &QueueConfig::default(), T).await.unwrap();
        let sent: Vec<NewMessage> = (0..20).map(|n| message(&format!("m{n}"))).collect();
        a.send_messages(&ns, &jobs, &sent, T).await.unwrap();
        let received = a.receive_messages(&ns, &jobs, 20, 1_000, T).await.unwrap();
        let receipts: Vec<String> = received
            .messages
            .iter()
            .map(|m| m.receipt_handle.clone())
            .collect();
        assert!(
            a.delete_messages(&ns, &jobs, &receipts)
                .await
                .unwrap()
                .iter()
                .all(|d| *d)
        );
        let bucket = a.queues_bucket();
        let mut left = u64::MAX;
        for _ in 0..100 {
            let consumer = bucket
                .stream
                .create_consumer(pull::OrderedConfig {
                    filter_subject: format!("{}v.>", bucket.prefix),
                    ..pull::OrderedConfig::default()
                })
                .await
                .unwrap();
            left = consumer.cached_info().num_pending;
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(left, 0, "index markers left");
    }

    /// Ids that are not key tokens, and receipts that are not this store's, are safe.
    #[tokio::test]
    async fn any_id_is_a_key_and_any_receipt_text_is_refused() {
        let (_server, a, _b) = two_nodes().await;
        let (ns, jobs) = names();
        a.put_queue(&ns, &jobs, &QueueConfig::default(), T).await.unwrap();
        let odd = ["a.b", "*", "=6131", "a1", ""];
        let batch: Vec<NewMessage> = odd.iter().map(|id| message(id)).collect();
        a.send_messages(&ns, &jobs, &batch, T).await.unwrap();
        let received = a.receive_messages(&ns, &jobs, 10, 1_000, T).await.unwrap();
        let ids: Vec<&str> = received.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, odd);
        let bad = [
            "",
            ".",
            "x.y",
            "0123456789abcdef0123456789abcdef.a.b",
            "0123456789abcdef0123456789abcdef.>",
        ];
        for receipt in bad {
            assert!(!a.change_visibility(&ns, &jobs, receipt, T).await.unwrap());
        }
        let receipts: Vec<String> = received
            .messages
            .iter()
            .map(|m| m.receipt_handle.clone())
            .collect();
        assert!(
            a.delete_messages(&ns, &jobs, &receipts)
                .await
                .unwrap()
                .iter()
                .all(|d| *d)
        );
    }
}

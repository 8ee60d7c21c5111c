//! The NATS JetStream backend ([`JetStreamStore`]), for clusters of identical nodes; this
//! module owns the connection, the buckets and what every concern's module shares.
//!
//! Every concern is implemented, each in its own module, and passes the conformance suite
//! against a real `nats-server`, so a `JetStreamStore` is a [`crate::Store`] (`wisp serve
//! --store nats://…`): [`namespaces`], [`api_keys`], [`secrets`], [`alarms`], [`nodes`],
//! [`key_values`], [`registry`] (code bytes in an object store, every deploy one atomic
//! batch), [`topics`], [`audit`] and [`records`] (streams), [`usage`] (deltas on a stream
//! folded into hourly rows), [`events`], [`queues`] and [`objects`] (records and their
//! index entries changed together in atomic batches) and [`schedules`]. `docs/cluster.md`
//! maps each one onto JetStream.
//!
//! # Design
//!
//! Each concern is one JetStream KV bucket, named `{prefix}_{concern}` (the audit log is
//! a stream, `{prefix}_audit`, on subjects `{prefix}.audit.NAMESPACE`): the prefix lets
//! one server (or cluster) hold many stores, e.g. one per test. A record is one KV entry,
//! JSON-encoded, so one record's change is atomic. The buckets keep one value per key
//! (`history: 1`): the store needs the current record, never an older one.
//!
//! Every compare-and-set is JetStream's own: an entry's revision is the sequence of the
//! bucket stream's message that wrote it, and `update(key, value, revision)` (the
//! `Nats-Expected-Last-Subject-Sequence` header) is refused by the server when another
//! write came between; `create` is an update expecting no message (or a delete marker).
//! A method that must read a record before writing it (to keep a field, or to decide)
//! reads the entry, decides, and writes with the revision it read; refused, it reads
//! again and decides again ([`MAX_CAS_ATTEMPTS`] times at most), so its answer always
//! holds for one record the server had. A deleted key keeps a delete marker (a message
//! of its own), so revisions only grow across a delete and a create under one name.
//!
//! Listing reads the bucket's live keys (an ordered consumer over the last message per
//! key, headers only) and then each entry: the buckets are small (namespaces, keys,
//! secrets, alarms) and their lists are read rarely or, for the keys, once a second per
//! node.
//! Nothing spans two buckets, so there is no transaction across concerns; the traits'
//! contracts do not ask for one.

mod alarms;
mod api_keys;
mod audit;
mod batch;
mod blobs;
mod events;
mod key_values;
mod namespaces;
mod nodes;
mod objects;
mod queues;
mod records;
mod registry;
mod schedules;
mod secrets;
mod topics;
mod usage;

use crate::{Result, StoreError};
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::{self, kv, stream};
use futures::{StreamExt, TryStreamExt};
use std::fmt;

/// How many times a read-decide-write loop tries before it gives up with an error: each
/// retry means another writer changed the record meanwhile, so this many in a row means
/// a storm, not a race.
const MAX_CAS_ATTEMPTS: usize = 64;

/// How long [`JetStreamStore::replicate`] waits for a replicated stream to have a leader.
const LEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// The NATS JetStream store (a first slice: see the module docs). Cheap to clone; all
/// methods take `&self`.
#[derive(Clone)]
pub struct JetStreamStore {
    prefix: String,
    /// This process's name among the nodes sharing the store: what its leases are held
    /// under, so that a node restarting frees its own and no other's.
    node: String,
    context: jetstream::Context,
    namespaces: kv::Store,
    nodes: kv::Store,
    api_keys: kv::Store,
    secrets: kv::Store,
    alarms: kv::Store,
    registry: kv::Store,
    code: jetstream::object_store::ObjectStore,
    /// The home of object bytes ([`blobs`]).
    blobs: jetstream::object_store::ObjectStore,
    kv_stores: kv::Store,
    kv_entries: kv::Store,
    audit: stream::Stream,
    topics: kv::Store,
    logs: stream::Stream,
    invocations: stream::Stream,
    usage: usage::Parts,
    events: events::Parts,
    queues: queues::Parts,
    schedules: schedules::Parts,
    objects: objects::Parts,
}

impl fmt::Debug for JetStreamStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JetStreamStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl JetStreamStore {
    /// Connects to the NATS server(s) at `url` (`nats://HOST:PORT`, or several separated by
    /// commas) and opens the store whose buckets are named `{prefix}_…`, making the buckets
    /// that do not exist yet. `prefix` is letters, digits, `-` and `_`.
    pub async fn connect(url: &str, prefix: &str) -> Result<JetStreamStore> {
        check_prefix(prefix)?;
        let failed =
            |e: &dyn fmt::Display| StoreError::Backend(format!("connecting to NATS at `{url}`: {e}"));
        let servers = url
            .split(',')
            .map(|server| server.trim().parse::<async_nats::ServerAddr>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| failed(&e))?;
        let client = async_nats::connect(servers).await.map_err(|e| failed(&e))?;
        // Boxed: opening awaits many buckets in turn, and its future inline overflowed a
        // 2 MiB thread stack in debug builds.
        Box::pin(JetStreamStore::open(client, prefix)).await
    }

    /// Opens the store with buckets `{prefix}_…` over a client already connected, making
    /// the buckets that do not exist yet.
    pub async fn open(client: async_nats::Client, prefix: &str) -> Result<JetStreamStore> {
        check_prefix(prefix)?;
        let context = jetstream::new(client);
        let (registry, code) = Box::pin(registry::open(&context, prefix)).await?;
        // Each concern's opening boxed: inline, their futures together overflowed a
        // 2 MiB thread stack in debug builds.
        let topics = Box::pin(topics::open(&context, prefix)).await?;
        let (logs, invocations) = Box::pin(records::open_streams(&context, prefix)).await?;
        let usage = Box::pin(usage::open(&context, prefix)).await?;
        let events = Box::pin(events::open(&context, prefix)).await?;
        let queues = Box::pin(queues::open(&context, prefix)).await?;
        let schedules = Box::pin(schedules::open(&context, prefix)).await?;
        let objects = Box::pin(objects::open(&context, prefix)).await?;
        let audit = Box::pin(audit::open_stream(&context, prefix)).await?;
        let blobs = Box::pin(blobs::open(&context, prefix)).await?;
        let mut buckets = Vec::new();
        for concern in [
            "namespaces",
            "nodes",
            "api_keys",
            "secrets",
            "alarms",
            "kv_stores",
            "kv_entries",
        ] {
            buckets.push(Box::pin(bucket(&context, prefix, concern)).await?);
        }
        let mut buckets = buckets.into_iter();
        let mut next = || {
            buckets
                .next()
                .ok_or_else(|| StoreError::Backend("opening the JetStream buckets: one is missing".into()))
        };
        Ok(JetStreamStore {
            prefix: prefix.to_owned(),
            node: uuid::Uuid::now_v7().simple().to_string(),
            namespaces: next()?,
            nodes: next()?,
            api_keys: next()?,
            secrets: next()?,
            alarms: next()?,
            kv_stores: next()?,
            kv_entries: next()?,
            registry,
            code,
            blobs,
            audit,
            topics,
            logs,
            invocations,
            usage,
            events,
            queues,
            schedules,
            objects,
            context,
        })
    }

    /// Keeps every bucket and stream of this store on `replicas` servers of the NATS
    /// cluster (1 to 5; JetStream's own replication, Raft per stream): with 3, the store
    /// loses nothing and keeps serving while one server of three is down. Changes the
    /// streams that have another count (scaling a stream up copies its messages to the new
    /// replicas), and returns once each has a leader (up to 20 s each); idempotent, so
    /// every node may call it at start.
    pub async fn replicate(&self, replicas: usize) -> Result<()> {
        if !(1..=5).contains(&replicas) {
            return Err(StoreError::Backend(format!(
                "{replicas} replicas: JetStream keeps 1 to 5"
            )));
        }
        let what = format!("setting the replicas of the JetStream store `{}`", self.prefix);
        let names: Vec<String> = self
            .context
            .stream_names()
            .try_collect()
            .await
            .map_err(|e| backend(&what, e))?;
        for name in names.iter().filter(|n| is_store_stream(&self.prefix, n)) {
            let mut stream = self
                .context
                .get_stream(name)
                .await
                .map_err(|e| backend(&what, e))?;
            let info = stream.info().await.map_err(|e| backend(&what, e))?;
            if info.config.num_replicas != replicas {
                let mut config = info.config.clone();
                config.num_replicas = replicas;
                self.context
                    .update_stream(config)
                    .await
                    .map_err(|e| backend(format!("{what}: stream `{name}`"), e))?;
            }
            // A stream just scaled (or its leader just lost) answers no request until
            // its Raft group elects a leader: wait for one, so that the node's first
            // writes do not fail.
            let since = std::time::Instant::now();
            loop {
                let info = stream.info().await.map_err(|e| backend(&what, e))?;
                if replicas == 1 || info.cluster.as_ref().is_some_and(|c| c.leader.is_some()) {
                    break;
                }
                if since.elapsed() > LEADER_WAIT {
                    return Err(StoreError::Backend(format!(
                        "{what}: stream `{name}` has no leader after {} s",
                        LEADER_WAIT.as_secs()
                    )));
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// The prefix of this store's buckets.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// This store under node name `node` (letters, digits, `-` and `_`): what its leases
    /// are held under. A node keeps its name across restarts (`wisp serve` keeps it in
    /// its data directory), so that it frees its own leases when it starts again; by
    /// default each store opened is a node of its own.
    pub fn with_node(mut self, node: &str) -> Result<JetStreamStore> {
        if !is_key_token(node) || node.contains('=') {
            return Err(StoreError::Backend(format!(
                "invalid node name `{node}`: use letters, digits, '-' and '_'"
            )));
        }
        self.node = node.to_owned();
        Ok(self)
    }

    /// This store's node name ([`JetStreamStore::with_node`]).
    pub fn node(&self) -> &str {
        &self.node
    }
}

fn check_prefix(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Backend(format!(
            "invalid JetStream store prefix `{prefix}`: use letters, digits, '-' and '_'"
        )))
    }
}

/// Opens bucket `{prefix}_{concern}`, making it if it does not exist. An existing
/// bucket is opened as it is (another node's, an earlier start's, or one
/// [`JetStreamStore::replicate`] changed), and a create that loses a race to another
/// node opens the bucket that node made.
async fn bucket(context: &jetstream::Context, prefix: &str, concern: &str) -> Result<kv::Store> {
    let name = format!("{prefix}_{concern}");
    if let Ok(store) = context.get_key_value(&name).await {
        return Ok(store);
    }
    let made = context
        .create_key_value(kv::Config {
            bucket: name.clone(),
            history: 1,
            ..kv::Config::default()
        })
        .await;
    match made {
        Ok(store) => Ok(store),
        Err(e) => context
            .get_key_value(&name)
            .await
            .map_err(|_| StoreError::Backend(format!("opening the JetStream KV bucket `{name}`: {e}"))),
    }
}

/// Opens object store `name`, making it if it does not exist: an existing one is opened
/// as it is (its replicas may have been changed), and a create that fails because it is
/// there after all (the first read failed for a moment, or another node made it first)
/// opens it.
async fn object_store(
    context: &jetstream::Context,
    name: &str,
) -> Result<jetstream::object_store::ObjectStore> {
    if let Ok(store) = context.get_object_store(name).await {
        return Ok(store);
    }
    let made = context
        .create_object_store(jetstream::object_store::Config {
            bucket: name.to_owned(),
            ..Default::default()
        })
        .await;
    match made {
        Ok(store) => Ok(store),
        Err(e) => context
            .get_object_store(name)
            .await
            .map_err(|_| backend(format!("opening the JetStream object store `{name}`"), e)),
    }
}

/// The concerns' buckets and streams, by the name after `{prefix}_`: what
/// [`JetStreamStore::replicate`] sets the replicas of. A test checks that every stream a
/// store makes is one of these.
const STREAMS: &[&str] = &[
    "alarms",
    "api_keys",
    "audit",
    "blobs",
    "code",
    "events",
    "invocations",
    "kv_entries",
    "kv_stores",
    "logs",
    "namespaces",
    "nodes",
    "objects",
    "queues",
    "registry",
    "schedules",
    "secrets",
    "topics",
    "usage",
    "usage_deltas",
];

/// Whether `stream` is one of store `prefix`'s: `{prefix}_X`, `KV_{prefix}_X` or
/// `OBJ_{prefix}_X` with `X` in [`STREAMS`].
fn is_store_stream(prefix: &str, stream: &str) -> bool {
    let name = stream
        .strip_prefix("KV_")
        .or_else(|| stream.strip_prefix("OBJ_"))
        .unwrap_or(stream);
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|concern| STREAMS.contains(&concern))
}

/// An error of the backend while `what`.
fn backend(what: impl fmt::Display, error: impl fmt::Display) -> StoreError {
    let error = error.to_string();
    if is_unavailable(&error) {
        StoreError::Unavailable(format!("{what}: {error}"))
    } else {
        StoreError::Backend(format!("{what}: {error}"))
    }
}

/// How many times [`scan_again`] tries a scan.
const SCAN_ATTEMPTS: u64 = 3;

/// Runs `scan` (a read through an ephemeral consumer) again while it fails as
/// [`StoreError::Unavailable`], up to [`SCAN_ATTEMPTS`] times in all, 50 ms more apart each
/// time: under load a consumer just made now and then answers a fetch with status 503,
/// and a scan only reads.
async fn scan_again<T, F: Future<Output = Result<T>>>(what: &str, scan: impl Fn() -> F) -> Result<T> {
    let mut attempt = 1;
    loop {
        match scan().await {
            Err(StoreError::Unavailable(e)) if attempt < SCAN_ATTEMPTS => {
                tracing::debug!("{what}: a scan failed ({e}); scanning again");
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                attempt += 1;
            }
            scanned => return scanned,
        }
    }
}

/// Whether a NATS client error says the server did not answer (rather than refused): a
/// timeout, no responders, status 503, or a connection lost. (The client's error kinds
/// differ per request type; their texts share these words.)
fn is_unavailable(error: &str) -> bool {
    let error = error.to_ascii_lowercase();
    let status_503 = error
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| word == "503");
    status_503
        || [
            "timed out",
            "deadline has elapsed",
            "no responders",
            "disconnected",
            "connection closed",
        ]
        .iter()
        .any(|sign| error.contains(sign))
}

/// The error of a read-decide-write loop that lost [`MAX_CAS_ATTEMPTS`] races in a row.
fn contended(what: impl fmt::Display) -> StoreError {
    StoreError::Backend(format!(
        "{what}: the record kept changing ({MAX_CAS_ATTEMPTS} compare-and-set attempts failed)"
    ))
}

/// Whether `text` may be one token of a KV key (`[-_A-Za-z0-9=]`, no dots): ids from
/// outside (API key ids) are checked before they name a key, so a strange id reads as
/// absent instead of failing.
fn is_key_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '='))
}

/// The live entry of `key`: `None` when there is none or it was deleted.
async fn live_entry(kv: &kv::Store, key: &str, what: impl fmt::Display) -> Result<Option<kv::Entry>> {
    let entry = kv.entry(key).await.map_err(|e| backend(&what, e))?;
    Ok(entry.filter(|e| e.operation == kv::Operation::Put))
}

/// Every live entry of `kv` whose key starts with `prefix` (all with `""`), in no order.
async fn live_entries(kv: &kv::Store, prefix: &str, what: impl fmt::Display) -> Result<Vec<kv::Entry>> {
    let keys: Vec<String> = kv
        .keys()
        .await
        .map_err(|e| backend(&what, e))?
        .try_collect()
        .await
        .map_err(|e| backend(&what, e))?;
    let mut entries = Vec::with_capacity(keys.len());
    for key in keys.iter().filter(|k| k.starts_with(prefix)) {
        // Deleted since the keys were read: skipped, as if read a moment later.
        if let Some(entry) = live_entry(kv, key, &what).await? {
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// What a conditional write ([`kv::Store::create`], [`kv::Store::update`],
/// [`kv::Store::delete_expect_revision`]) came to.
enum Written {
    /// Stored, with this revision (`0` for a delete, whose revision is not returned).
    Done(u64),
    /// Refused: the key's revision was not the one expected; read again.
    Raced,
}

async fn create(kv: &kv::Store, key: &str, value: Vec<u8>, what: impl fmt::Display) -> Result<Written> {
    match kv.create(key, value.into()).await {
        Ok(revision) => Ok(Written::Done(revision)),
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(Written::Raced),
        Err(e) => Err(backend(what, e)),
    }
}

async fn update(
    kv: &kv::Store,
    key: &str,
    value: Vec<u8>,
    revision: u64,
    what: impl fmt::Display,
) -> Result<Written> {
    match kv.update(key, value.into(), revision).await {
        Ok(revision) => Ok(Written::Done(revision)),
        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(Written::Raced),
        Err(e) => Err(backend(what, e)),
    }
}

async fn delete(kv: &kv::Store, key: &str, revision: u64, what: impl fmt::Display) -> Result<Written> {
    match kv.delete_expect_revision(key, Some(revision)).await {
        Ok(()) => Ok(Written::Done(0)),
        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(Written::Raced),
        Err(e) => Err(backend(what, e)),
    }
}

fn encode<T: serde::Serialize>(value: &T, what: impl fmt::Display) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| backend(format!("{what}: encoding"), e))
}

fn decode<T: serde::de::DeserializeOwned>(entry: &kv::Entry) -> Result<T> {
    serde_json::from_slice(&entry.value).map_err(|e| {
        StoreError::Corrupt(format!(
            "entry `{}` of JetStream bucket `{}` (revision {}): {e}",
            entry.key, entry.bucket, entry.revision
        ))
    })
}

/// How long a scan waits for its next message before it ends (a key purged after the
/// consumer counted it sends nothing).
const SCAN_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The last message of every key of `filters` (KV keys, wildcards allowed) that is not a
/// delete marker, as (KV key, revision, value); in no order.
pub(super) async fn scan_last(
    kv: &kv::Store,
    filters: Vec<String>,
    what: &str,
) -> Result<Vec<(String, u64, Vec<u8>)>> {
    let consumer = kv
        .stream
        .create_consumer(pull::OrderedConfig {
            filter_subjects: filters.iter().map(|f| format!("{}{f}", kv.prefix)).collect(),
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..pull::OrderedConfig::default()
        })
        .await
        .map_err(|e| backend(what, e))?;
    let mut found = Vec::new();
    if consumer.cached_info().num_pending == 0 {
        return Ok(found);
    }
    let mut messages = consumer.messages().await.map_err(|e| backend(what, e))?;
    // A key purged after the consumer counted it sends nothing, so the last
    // `pending == 0` may never come: a scan that hears nothing for `SCAN_IDLE` ends, as
    // if it had run a moment later.
    while let Ok(Some(message)) = tokio::time::timeout(SCAN_IDLE, messages.next()).await {
        let message = message.map_err(|e| backend(what, e))?;
        let info = message.info().map_err(|e| backend(what, e))?;
        let (revision, pending) = (info.stream_sequence, info.pending);
        let marker = message
            .headers
            .as_ref()
            .is_some_and(|h| h.get("KV-Operation").is_some() || h.get("Nats-Marker-Reason").is_some());
        if !marker && !message.payload.is_empty() {
            let key = message
                .subject
                .strip_prefix(kv.prefix.as_str())
                .unwrap_or(&message.subject)
                .to_owned();
            found.push((key, revision, message.payload.to_vec()));
        }
        if pending == 0 {
            break;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    //! Replication on a real NATS cluster: every stream a store makes is one
    //! [`JetStreamStore::replicate`] knows, and a node opening the store after it was
    //! replicated opens it as it is.
    use super::*;
    use wisp_test_support::nats::NatsCluster;

    /// A server that did not answer is told from one that refused: a status 503 is a
    /// word of its own, not digits inside a sequence number of a refused write.
    #[test]
    fn unavailable_errors_are_told_from_refusals() {
        for error in [
            "error while processing messages from the stream: 503, None",
            "timed out: didn't receive ack in time",
            "request timed out: deadline has elapsed",
            "no responders",
        ] {
            assert!(is_unavailable(error), "{error}");
            assert!(
                matches!(backend("reading", error), StoreError::Unavailable(_)),
                "{error}"
            );
        }
        for error in [
            "wrong last sequence: 15031",
            "wrong last sequence: 2503",
            "maximum payload exceeded",
        ] {
            assert!(!is_unavailable(error), "{error}");
            assert!(
                matches!(backend("writing", error), StoreError::Backend(_)),
                "{error}"
            );
        }
    }

    #[tokio::test]
    async fn replicate_keeps_every_stream_of_the_store_on_that_many_servers() {
        let cluster = NatsCluster::start(3);
        let store = JetStreamStore::connect(&cluster.url(), "wisp").await.unwrap();
        let other = JetStreamStore::connect(&cluster.url(), "wisp_other")
            .await
            .unwrap();
        store.replicate(3).await.unwrap();
        // A second node opens the replicated store as it is, and may replicate again.
        let again = JetStreamStore::connect(&cluster.server_url(2), "wisp")
            .await
            .unwrap();
        again.replicate(3).await.unwrap();

        let names: Vec<String> = store.context.stream_names().try_collect().await.unwrap();
        let mut ours = 0;
        for name in &names {
            let mut stream = store.context.get_stream(name).await.unwrap();
            let replicas = stream.info().await.unwrap().config.num_replicas;
            if is_store_stream("wisp_other", name) {
                assert_eq!(replicas, 1, "`{name}` belongs to another store");
                continue;
            }
            assert!(is_store_stream("wisp", name), "`{name}` is not in STREAMS");
            assert_eq!(replicas, 3, "`{name}`");
            ours += 1;
        }
        assert_eq!(ours, STREAMS.len(), "{names:?}");
        drop(other);

        for bad in [0, 6] {
            let err = store.replicate(bad).await.unwrap_err().to_string();
            assert!(err.contains("JetStream keeps 1 to 5"), "{err}");
        }
    }
}

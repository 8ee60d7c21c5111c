//! The NATS JetStream backend ([`JetStreamStore`]), for clusters of identical nodes; this
//! module owns the connection, the buckets and what every concern's module shares.
//!
//! A first slice: [`Namespaces`](crate::Namespaces) ([`namespaces`]),
//! [`ApiKeys`](crate::ApiKeys) ([`api_keys`]), [`Secrets`](crate::Secrets) ([`secrets`]),
//! [`Alarms`](crate::Alarms) ([`alarms`]), [`KeyValues`](crate::KeyValues) ([`key_values`])
//! [`Registry`](crate::Registry) ([`registry`]: a bucket, code bytes in an object store,
//! every deploy one atomic batch), [`Topics`](crate::Topics) ([`topics`]: records and
//! deliveries in a bucket, every multi-entry change one atomic batch),
//! and [`Audit`](crate::Audit) ([`audit`], a stream
//! rather than a bucket) are implemented and pass the conformance suite against a real
//! `nats-server`; the other concerns are not yet, so a `JetStreamStore` is not yet a
//! [`crate::Store`] and `wisp serve` cannot use it. `docs/cluster.md` keeps the state of
//! the rest.
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
use async_nats::jetstream::{self, kv, stream};
use futures::TryStreamExt;
use std::fmt;

/// How many times a read-decide-write loop tries before it gives up with an error: each
/// retry means another writer changed the record meanwhile, so this many in a row means
/// a storm, not a race.
const MAX_CAS_ATTEMPTS: usize = 64;

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
        let client = async_nats::connect(url)
            .await
            .map_err(|e| StoreError::Backend(format!("connecting to NATS at `{url}`: {e}")))?;
        // Boxed: opening awaits many buckets in turn, and its future inline overflowed a
        // 2 MiB thread stack in debug builds.
        Box::pin(JetStreamStore::open(client, prefix)).await
    }

    /// Opens the store with buckets `{prefix}_…` over a client already connected, making
    /// the buckets that do not exist yet.
    pub async fn open(client: async_nats::Client, prefix: &str) -> Result<JetStreamStore> {
        check_prefix(prefix)?;
        let context = jetstream::new(client);
        let (registry, code) = registry::open(&context, prefix).await?;
        // Boxed: the future of `open` is large enough already for a 2 MiB thread stack.
        let topics = Box::pin(topics::open(&context, prefix)).await?;
        // Boxed: the streams' futures would make `open`'s too large for a small stack.
        let (logs, invocations) = Box::pin(records::open_streams(&context, prefix)).await?;
        let usage = Box::pin(usage::open(&context, prefix)).await?;
        let events = Box::pin(events::open(&context, prefix)).await?;
        let queues = Box::pin(queues::open(&context, prefix)).await?;
        let schedules = Box::pin(schedules::open(&context, prefix)).await?;
        let objects = Box::pin(objects::open(&context, prefix)).await?;
        Ok(JetStreamStore {
            prefix: prefix.to_owned(),
            node: uuid::Uuid::now_v7().simple().to_string(),
            namespaces: bucket(&context, prefix, "namespaces").await?,
            nodes: bucket(&context, prefix, "nodes").await?,
            api_keys: bucket(&context, prefix, "api_keys").await?,
            secrets: bucket(&context, prefix, "secrets").await?,
            alarms: bucket(&context, prefix, "alarms").await?,
            registry,
            code,
            kv_stores: bucket(&context, prefix, "kv_stores").await?,
            kv_entries: bucket(&context, prefix, "kv_entries").await?,
            audit: audit::open_stream(&context, prefix).await?,
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

/// Opens bucket `{prefix}_{concern}`, making it if it does not exist. Creating is
/// idempotent (the server accepts a stream made again with the same configuration), so
/// nodes starting together do not race.
async fn bucket(context: &jetstream::Context, prefix: &str, concern: &str) -> Result<kv::Store> {
    let name = format!("{prefix}_{concern}");
    context
        .create_key_value(kv::Config {
            bucket: name.clone(),
            history: 1,
            ..kv::Config::default()
        })
        .await
        .map_err(|e| StoreError::Backend(format!("opening the JetStream KV bucket `{name}`: {e}")))
}

/// An error of the backend while `what`.
fn backend(what: impl fmt::Display, error: impl fmt::Display) -> StoreError {
    StoreError::Backend(format!("{what}: {error}"))
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

//! The [`KeyValues`] concern: key-value stores that functions read and write, each
//! belonging to a namespace ([`KvStoreRecord`]), and their entries ([`KvEntry`]).
//!
//! # Contract
//!
//! Written so that a NATS JetStream backend keeps it with one KV bucket per store:
//!
//! - Every write of a key gives it a larger version than any the store gave before
//!   (JetStream's revision: the bucket stream's sequence). Versions are opaque and
//!   compared only for equality and order within one store; a store deleted and made
//!   again may give the same numbers again. The API shows a version as the ETag.
//! - A write or a delete may carry a [`KvCondition`], checked against the key's current
//!   entry in the same step as the change (JetStream's expected last subject sequence).
//! - An entry may expire: at and after its `expires_ms`, every read and write treats the
//!   key as absent. Expired entries are removed lazily (a write over them) or by
//!   [`KeyValues::sweep_expired`]; none is ever seen again once it has expired.
//! - One key's change is atomic. A batch ([`KeyValues::kv_set_many`]) is not promised
//!   to be: see its method.
//! - Keys are compared and listed as bytes of UTF-8.
//!
//! The store checks no size: the engine refuses keys, values and batches past
//! [`wisp_core::Limits::MAX_KV_KEY_BYTES`], [`wisp_core::Limits::MAX_KV_VALUE_BYTES`] and
//! [`wisp_core::Limits::MAX_KV_BATCH`] before they get here.

use crate::{Result, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wisp_core::{KvStoreName, Namespace};

/// A key-value store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvStoreRecord {
    pub namespace: Namespace,
    pub name: KvStoreName,
    pub created_ms: UnixMillis,
}

/// A key's live entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEntry {
    pub key: String,
    pub value: Vec<u8>,
    /// Given by the write that stored it; see the module docs.
    pub version: u64,
    /// When it expires; `None`: never.
    pub expires_ms: Option<UnixMillis>,
}

/// What a write or a delete checks against the key's live entry before it changes
/// anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvCondition {
    /// Whatever the key holds.
    #[default]
    Any,
    /// Only if the key holds nothing (`If-None-Match: *`).
    Absent,
    /// Only if the key's entry has this version (`If-Match`).
    Version(u64),
}

impl KvCondition {
    /// Whether the condition holds for a key whose live entry has version `current`.
    pub fn holds(self, current: Option<u64>) -> bool {
        match self {
            KvCondition::Any => true,
            KvCondition::Absent => current.is_none(),
            KvCondition::Version(version) => current == Some(version),
        }
    }
}

/// One write of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvWrite {
    pub key: String,
    pub value: Vec<u8>,
    /// When the entry expires; `None`: never (a write without one clears an earlier
    /// expiry).
    pub ttl_expires_ms: Option<UnixMillis>,
    pub condition: KvCondition,
}

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvSet {
    Stored {
        version: u64,
    },
    /// Nothing stored: the condition does not hold for the key's live entry, whose
    /// version (`None`: the key holds nothing) this is.
    ConditionFailed {
        current: Option<u64>,
    },
    NoStore,
}

/// What a batch of writes did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvSetMany {
    /// Every write stored, with the versions they got, in the batch's order.
    Stored {
        versions: Vec<u64>,
    },
    /// The write at `index` was not stored, nor any after it: its condition does not
    /// hold for the key's live entry, whose version this is. What the writes before it
    /// did depends on the backend (see [`KeyValues::kv_set_many`]).
    ConditionFailed {
        index: usize,
        current: Option<u64>,
    },
    NoStore,
}

/// What a delete did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvDeleted {
    Deleted,
    /// The key held nothing (whatever the condition): nothing changed.
    NotFound,
    /// Not deleted: the condition does not hold for the key's entry, whose version this is.
    ConditionFailed {
        current: u64,
    },
    NoStore,
}

/// What an increment did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvIncremented {
    /// The key now holds `value` as decimal text, written with `version`.
    Incremented {
        value: i64,
        version: u64,
    },
    /// Nothing changed: the key holds something that is not the decimal text of an i64.
    NotANumber,
    /// Nothing changed: the sum does not fit in an i64.
    Overflow,
    NoStore,
}

/// A page of a store's keys, in byte order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvPage {
    pub keys: Vec<String>,
    /// Set when more keys follow: pass it as `after` for the next page.
    pub next: Option<String>,
}

/// Key-value stores and their entries. See the module docs.
///
/// Every method but those on stores themselves is called on a function's behalf, once
/// per call the function makes (the engine does not cache entries), so each is one
/// short statement or transaction. `now` is the caller's clock: expiry is judged by it,
/// never by the backend's.
#[async_trait]
pub trait KeyValues: Send + Sync + 'static {
    /// Creates a store; `false` when the namespace has one of that name already.
    async fn create_kv_store(&self, record: &KvStoreRecord) -> Result<bool>;

    async fn get_kv_store(&self, namespace: &Namespace, name: &KvStoreName) -> Result<Option<KvStoreRecord>>;

    /// The stores of `namespace` (of every namespace with `None`), by name.
    async fn list_kv_stores(&self, namespace: Option<&Namespace>) -> Result<Vec<KvStoreRecord>>;

    /// Deletes a store and every entry it holds; `false` when there is no such store.
    async fn delete_kv_store(&self, namespace: &Namespace, name: &KvStoreName) -> Result<bool>;

    /// The key's live entry; `None` when it holds nothing, has expired, or the store
    /// does not exist (callers that must tell those apart check the store).
    async fn kv_get(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        key: &str,
        now: UnixMillis,
    ) -> Result<Option<KvEntry>>;

    /// [`KeyValues::kv_get`] of each key, in the order given. One snapshot on SQLite;
    /// key by key on JetStream.
    async fn kv_get_many(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        keys: &[String],
        now: UnixMillis,
    ) -> Result<Vec<Option<KvEntry>>>;

    /// Writes a key if its condition holds; see [`KvSet`].
    async fn kv_set(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        write: KvWrite,
        now: UnixMillis,
    ) -> Result<KvSet>;

    /// Writes keys in order, each as [`KeyValues::kv_set`] does, stopping at the first
    /// whose condition does not hold. SQLite writes the batch in one transaction, so then
    /// nothing is stored; a JetStream backend writes key by key (each its own
    /// compare-and-set), so the writes before the failed one stay. Callers must not rely
    /// on all or nothing.
    async fn kv_set_many(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        writes: Vec<KvWrite>,
        now: UnixMillis,
    ) -> Result<KvSetMany>;

    /// Deletes a key if `condition` holds for its live entry; see [`KvDeleted`].
    async fn kv_delete(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        key: &str,
        condition: KvCondition,
        now: UnixMillis,
    ) -> Result<KvDeleted>;

    /// Deletes keys without conditions; how many held a live entry, or `None` when
    /// there is no such store. One transaction on SQLite; key by key on JetStream.
    async fn kv_delete_many(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        keys: &[String],
        now: UnixMillis,
    ) -> Result<Option<u64>>;

    /// Adds `delta` to the integer a key holds as decimal text (a key that holds
    /// nothing holds 0), storing the sum as decimal text with a new version; the
    /// entry's expiry stays. See [`KvIncremented`]. A compare-and-set loop on
    /// JetStream.
    async fn kv_increment(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        key: &str,
        delta: i64,
        now: UnixMillis,
    ) -> Result<KvIncremented>;

    /// A page of the keys with live entries that start with `prefix`, after `after`
    /// when given, in byte order, at most `limit`. A store that does not exist lists
    /// nothing.
    async fn kv_list(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        prefix: &str,
        after: Option<String>,
        limit: u32,
        now: UnixMillis,
    ) -> Result<KvPage>;

    /// Removes up to `limit` entries that have expired by `now`, in every store; how
    /// many. Called periodically by the engine; reads never depend on it.
    async fn sweep_expired(&self, now: UnixMillis, limit: u32) -> Result<u64>;
}

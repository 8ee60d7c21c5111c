//! Key-value stores: the operations the `/v1` API and guests (through
//! [`crate::services`]) call on a namespace's stores and their entries, over the
//! store's [`KeyValues`](wisp_store::KeyValues).
//!
//! This module is where the limits are enforced: keys past
//! [`Limits::MAX_KV_KEY_BYTES`], values past [`Limits::MAX_KV_VALUE_BYTES`] and batches
//! past [`Limits::MAX_KV_BATCH`] are refused here, before the store sees them. Expiry
//! is judged by the engine's wall clock ([`wisp_core::wall`]), never the backend's.
//!
//! A missing store is told apart from a missing key only where the store's answer
//! cannot say which (a read that found nothing, a list that is empty): a hit costs
//! one statement. Expired entries are never read; a background task ([`start`])
//! removes them from the store now and then.

use crate::{Engine, EngineError};
use std::sync::Arc;
use std::time::Duration;
use wisp_core::{ErrorCode, KvStoreName, Limits, Namespace};
use wisp_store::Store;
use wisp_store::{
    KvCondition, KvDeleted, KvEntry, KvIncremented, KvPage, KvSet, KvSetMany, KvStoreRecord, KvWrite,
    UnixMillis,
};

/// How often expired entries are swept from every store.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Most expired entries one sweep statement removes (it repeats while it fills them).
const SWEEP_BATCH: u32 = 1000;

/// Starts the task that removes expired entries every [`SWEEP_EVERY`]. Reads never
/// depend on it: it only gives the space back.
pub(crate) fn start(engine: &Arc<Engine>) {
    let me = Arc::downgrade(engine);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(engine) = me.upgrade() else { return };
            loop {
                match engine
                    .store
                    .sweep_expired(wisp_core::wall::now_ms(), SWEEP_BATCH)
                    .await
                {
                    Ok(n) if n >= u64::from(SWEEP_BATCH) => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!("cannot sweep expired key-value entries: {e}");
                        break;
                    }
                }
            }
        }
    });
}

/// 404 `kv_store_not_found`.
pub(crate) fn store_not_found(store: &KvStoreName) -> EngineError {
    EngineError::new(
        ErrorCode::KvStoreNotFound,
        format!("no key-value store named `{store}`"),
    )
}

/// 400 unless `key` is a key a store takes: 1 to [`Limits::MAX_KV_KEY_BYTES`] bytes.
pub(crate) fn check_key(key: &str) -> Result<(), EngineError> {
    if key.is_empty() {
        return Err(EngineError::new(
            ErrorCode::InvalidRequest,
            "a key-value store's key must not be empty",
        ));
    }
    if key.len() > Limits::MAX_KV_KEY_BYTES {
        let shown: String = key.chars().take(32).collect();
        return Err(EngineError::new(
            ErrorCode::InvalidRequest,
            format!(
                "key `{shown}…` is {} bytes long: a key-value store's keys are at most {} bytes",
                key.len(),
                Limits::MAX_KV_KEY_BYTES
            ),
        ));
    }
    Ok(())
}

/// 413 unless `value` fits [`Limits::MAX_KV_VALUE_BYTES`].
pub(crate) fn check_value(key: &str, value: &[u8]) -> Result<(), EngineError> {
    if value.len() > Limits::MAX_KV_VALUE_BYTES {
        return Err(EngineError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the value for key `{key}` is {} bytes: a key-value store's values are at most {} bytes",
                value.len(),
                Limits::MAX_KV_VALUE_BYTES
            ),
        ));
    }
    Ok(())
}

/// 400 unless a batch of `n` fits [`Limits::MAX_KV_BATCH`].
pub(crate) fn check_batch(n: usize) -> Result<(), EngineError> {
    if n > Limits::MAX_KV_BATCH {
        return Err(EngineError::new(
            ErrorCode::InvalidRequest,
            format!(
                "a batch of {n} keys: a key-value batch carries at most {}",
                Limits::MAX_KV_BATCH
            ),
        ));
    }
    Ok(())
}

/// When an entry written `now` with `ttl` expires.
fn expiry(now: UnixMillis, ttl: Option<Duration>) -> Result<Option<UnixMillis>, EngineError> {
    match ttl {
        None => Ok(None),
        Some(ttl) if ttl < Duration::from_millis(1) => Err(EngineError::new(
            ErrorCode::InvalidRequest,
            "a key-value entry's time to live must be at least 1 ms",
        )),
        Some(ttl) => Ok(Some(now.saturating_add(wisp_core::wall::millis(ttl)))),
    }
}

/// 412 `precondition_failed`, saying what the key holds.
fn condition_failed(
    store: &KvStoreName,
    key: &str,
    condition: KvCondition,
    current: Option<u64>,
) -> EngineError {
    let holds = match current {
        Some(version) => format!("holds version {version}"),
        None => "holds nothing".to_string(),
    };
    let wanted = match condition {
        KvCondition::Any => "anything".to_string(),
        KvCondition::Absent => "nothing".to_string(),
        KvCondition::Version(version) => format!("version {version}"),
    };
    EngineError::new(
        ErrorCode::PreconditionFailed,
        format!("key `{key}` of store `{store}` {holds}, not {wanted}"),
    )
}

/// The operations over a store, for the engine's methods and for guests' calls
/// ([`crate::services`]), which hold the store, not the engine.
#[derive(Clone, Copy)]
pub(crate) struct KvOps<'a> {
    pub(crate) store: &'a dyn Store,
}

impl KvOps<'_> {
    /// 404 unless `namespace` has the store.
    pub(crate) async fn kv_store_exists(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
    ) -> Result<(), EngineError> {
        match self.store.get_kv_store(namespace, store).await? {
            Some(_) => Ok(()),
            None => Err(store_not_found(store)),
        }
    }

    /// Creates a key-value store in `ns`; 409 `kv_store_exists` when it has one of that
    /// name.
    pub(crate) async fn create_kv_store(
        &self,
        ns: &Namespace,
        name: &KvStoreName,
    ) -> Result<KvStoreRecord, EngineError> {
        let record = KvStoreRecord {
            namespace: ns.clone(),
            name: name.clone(),
            created_ms: wisp_core::wall::now_ms(),
        };
        if !self.store.create_kv_store(&record).await? {
            return Err(EngineError::new(
                ErrorCode::KvStoreExists,
                format!("namespace `{ns}` has a key-value store named `{name}` already"),
            ));
        }
        Ok(record)
    }

    /// The key-value stores of `ns`, by name.
    pub(crate) async fn list_kv_stores(&self, ns: &Namespace) -> Result<Vec<KvStoreRecord>, EngineError> {
        Ok(self.store.list_kv_stores(Some(ns)).await?)
    }

    /// Deletes a key-value store with every entry it holds.
    pub(crate) async fn delete_kv_store(
        &self,
        ns: &Namespace,
        name: &KvStoreName,
    ) -> Result<(), EngineError> {
        if !self.store.delete_kv_store(ns, name).await? {
            return Err(store_not_found(name));
        }
        Ok(())
    }

    /// A key's live entry; `None` when it holds nothing (or has expired).
    pub(crate) async fn kv_get(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        key: &str,
    ) -> Result<Option<KvEntry>, EngineError> {
        check_key(key)?;
        let entry = self
            .store
            .kv_get(ns, store, key, wisp_core::wall::now_ms())
            .await?;
        if entry.is_none() {
            self.kv_store_exists(ns, store).await?;
        }
        Ok(entry)
    }

    /// [`Engine::kv_get`] of each key, in the order given.
    pub(crate) async fn kv_get_many(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        keys: &[String],
    ) -> Result<Vec<Option<KvEntry>>, EngineError> {
        check_batch(keys.len())?;
        for key in keys {
            check_key(key)?;
        }
        let entries = self
            .store
            .kv_get_many(ns, store, keys, wisp_core::wall::now_ms())
            .await?;
        if entries.iter().any(Option::is_none) || keys.is_empty() {
            self.kv_store_exists(ns, store).await?;
        }
        Ok(entries)
    }

    /// Writes a key if `condition` holds for its live entry (412 `precondition_failed`
    /// saying what it holds otherwise); the version the entry got. Without a `ttl` the
    /// entry never expires (an earlier expiry is cleared).
    pub(crate) async fn kv_set(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        condition: KvCondition,
    ) -> Result<u64, EngineError> {
        check_key(key)?;
        check_value(key, &value)?;
        let now = wisp_core::wall::now_ms();
        let write = KvWrite {
            key: key.to_string(),
            value,
            ttl_expires_ms: expiry(now, ttl)?,
            condition,
        };
        match self.store.kv_set(ns, store, write, now).await? {
            KvSet::Stored { version } => Ok(version),
            KvSet::ConditionFailed { current } => Err(condition_failed(store, key, condition, current)),
            KvSet::NoStore => Err(store_not_found(store)),
        }
    }

    /// Writes keys, each as an unconditional [`Engine::kv_set`]; their versions, in
    /// order. Not promised to be all or nothing (see
    /// [`KeyValues::kv_set_many`](wisp_store::KeyValues::kv_set_many)).
    pub(crate) async fn kv_set_many(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        writes: Vec<(String, Vec<u8>)>,
        ttl: Option<Duration>,
    ) -> Result<Vec<u64>, EngineError> {
        check_batch(writes.len())?;
        let now = wisp_core::wall::now_ms();
        let expires = expiry(now, ttl)?;
        let mut batch = Vec::with_capacity(writes.len());
        for (key, value) in writes {
            check_key(&key)?;
            check_value(&key, &value)?;
            batch.push(KvWrite {
                key,
                value,
                ttl_expires_ms: expires,
                condition: KvCondition::Any,
            });
        }
        if batch.is_empty() {
            self.kv_store_exists(ns, store).await?;
            return Ok(Vec::new());
        }
        match self.store.kv_set_many(ns, store, batch, now).await? {
            KvSetMany::Stored { versions } => Ok(versions),
            KvSetMany::ConditionFailed { index, current } => Err(EngineError::internal(format!(
                "the store refused unconditional write {index} of a batch to `{ns}/{store}` \
                 (current version {current:?})"
            ))),
            KvSetMany::NoStore => Err(store_not_found(store)),
        }
    }

    /// Deletes a key if `condition` holds for its live entry; whether it held one. A
    /// key that holds nothing is not an error, unless the condition asks for a
    /// version (412, as `If-Match` on nothing is).
    pub(crate) async fn kv_delete(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        key: &str,
        condition: KvCondition,
    ) -> Result<bool, EngineError> {
        check_key(key)?;
        let now = wisp_core::wall::now_ms();
        match self.store.kv_delete(ns, store, key, condition, now).await? {
            KvDeleted::Deleted => Ok(true),
            KvDeleted::NotFound => match condition {
                KvCondition::Version(_) => Err(condition_failed(store, key, condition, None)),
                KvCondition::Any | KvCondition::Absent => Ok(false),
            },
            KvDeleted::ConditionFailed { current } => {
                Err(condition_failed(store, key, condition, Some(current)))
            }
            KvDeleted::NoStore => Err(store_not_found(store)),
        }
    }

    /// Deletes keys without conditions; how many held a live entry.
    pub(crate) async fn kv_delete_many(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        keys: &[String],
    ) -> Result<u64, EngineError> {
        check_batch(keys.len())?;
        for key in keys {
            check_key(key)?;
        }
        self.store
            .kv_delete_many(ns, store, keys, wisp_core::wall::now_ms())
            .await?
            .ok_or_else(|| store_not_found(store))
    }

    /// Adds `delta` to the integer a key holds as decimal text (nothing counts as 0);
    /// the sum and the version it was written with. 409 `kv_not_a_number` when the key
    /// holds something else or the sum overflows an i64.
    pub(crate) async fn kv_increment(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        key: &str,
        delta: i64,
    ) -> Result<(i64, u64), EngineError> {
        check_key(key)?;
        let now = wisp_core::wall::now_ms();
        match self.store.kv_increment(ns, store, key, delta, now).await? {
            KvIncremented::Incremented { value, version } => Ok((value, version)),
            KvIncremented::NotANumber => Err(EngineError::new(
                ErrorCode::KvNotANumber,
                format!(
                    "key `{key}` of store `{store}` does not hold the decimal text of a 64-bit integer: \
                     it cannot be incremented"
                ),
            )),
            KvIncremented::Overflow => Err(EngineError::new(
                ErrorCode::KvNotANumber,
                format!(
                    "adding {delta} to key `{key}` of store `{store}` overflows a 64-bit integer: nothing changed"
                ),
            )),
            KvIncremented::NoStore => Err(store_not_found(store)),
        }
    }

    /// A page of at most `limit` (1 to [`Limits::MAX_KEYS`]) keys that start with
    /// `prefix`, after `after` when given, in byte order.
    pub(crate) async fn kv_list(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<KvPage, EngineError> {
        if prefix.len() > Limits::MAX_KV_KEY_BYTES {
            return Err(EngineError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "a prefix of {} bytes: a key-value store's keys are at most {} bytes",
                    prefix.len(),
                    Limits::MAX_KV_KEY_BYTES
                ),
            ));
        }
        let limit = u32::try_from(limit)
            .unwrap_or(u32::MAX)
            .clamp(1, Limits::MAX_KEYS);
        let page = self
            .store
            .kv_list(
                ns,
                store,
                prefix,
                after.map(str::to_string),
                limit,
                wisp_core::wall::now_ms(),
            )
            .await?;
        if page.keys.is_empty() {
            self.kv_store_exists(ns, store).await?;
        }
        Ok(page)
    }
}

impl Engine {
    fn kv(&self) -> KvOps<'_> {
        KvOps {
            store: self.store.as_ref(),
        }
    }

    /// Creates a key-value store in `ns`; 409 `kv_store_exists` when it has one of that
    /// name.
    pub async fn create_kv_store(
        &self,
        ns: &Namespace,
        name: &KvStoreName,
    ) -> Result<KvStoreRecord, EngineError> {
        self.kv().create_kv_store(ns, name).await
    }

    /// The key-value stores of `ns`, by name.
    pub async fn list_kv_stores(&self, ns: &Namespace) -> Result<Vec<KvStoreRecord>, EngineError> {
        self.kv().list_kv_stores(ns).await
    }

    /// Deletes a key-value store with every entry it holds.
    pub async fn delete_kv_store(&self, ns: &Namespace, name: &KvStoreName) -> Result<(), EngineError> {
        self.kv().delete_kv_store(ns, name).await
    }

    /// A key's live entry; `None` when it holds nothing (or has expired).
    pub async fn kv_get(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        key: &str,
    ) -> Result<Option<KvEntry>, EngineError> {
        self.kv().kv_get(ns, store, key).await
    }

    /// [`Engine::kv_get`] of each key, in the order given.
    pub async fn kv_get_many(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        keys: &[String],
    ) -> Result<Vec<Option<KvEntry>>, EngineError> {
        self.kv().kv_get_many(ns, store, keys).await
    }

    /// Writes a key if `condition` holds for its live entry (412 `precondition_failed`
    /// saying what it holds otherwise); the version the entry got. Without a `ttl` the
    /// entry never expires (an earlier expiry is cleared).
    pub async fn kv_set(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        condition: KvCondition,
    ) -> Result<u64, EngineError> {
        self.kv().kv_set(ns, store, key, value, ttl, condition).await
    }

    /// Writes keys, each as an unconditional [`Engine::kv_set`]; their versions, in
    /// order. Not promised to be all or nothing (see
    /// [`KeyValues::kv_set_many`](wisp_store::KeyValues::kv_set_many)).
    pub async fn kv_set_many(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        writes: Vec<(String, Vec<u8>)>,
        ttl: Option<Duration>,
    ) -> Result<Vec<u64>, EngineError> {
        self.kv().kv_set_many(ns, store, writes, ttl).await
    }

    /// Deletes a key if `condition` holds for its live entry; whether it held one. A
    /// key that holds nothing is not an error, unless the condition asks for a
    /// version (412, as `If-Match` on nothing is).
    pub async fn kv_delete(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        key: &str,
        condition: KvCondition,
    ) -> Result<bool, EngineError> {
        self.kv().kv_delete(ns, store, key, condition).await
    }

    /// Deletes keys without conditions; how many held a live entry.
    pub async fn kv_delete_many(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        keys: &[String],
    ) -> Result<u64, EngineError> {
        self.kv().kv_delete_many(ns, store, keys).await
    }

    /// Adds `delta` to the integer a key holds as decimal text (nothing counts as 0);
    /// the sum and the version it was written with. 409 `kv_not_a_number` when the key
    /// holds something else or the sum overflows an i64.
    pub async fn kv_increment(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        key: &str,
        delta: i64,
    ) -> Result<(i64, u64), EngineError> {
        self.kv().kv_increment(ns, store, key, delta).await
    }

    /// A page of at most `limit` (1 to [`Limits::MAX_KEYS`]) keys that start with
    /// `prefix`, after `after` when given, in byte order.
    pub async fn kv_list(
        &self,
        ns: &Namespace,
        store: &KvStoreName,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<KvPage, EngineError> {
        self.kv().kv_list(ns, store, prefix, after, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For engines that run no function.
    struct NoRuntime;

    #[async_trait::async_trait]
    impl wisp_runtime::Runtime for NoRuntime {
        async fn compile(
            &self,
            _: wisp_runtime::FunctionSpec,
            _: bytes::Bytes,
        ) -> Result<Arc<dyn wisp_runtime::Function>, wisp_runtime::LoadError> {
            Err(wisp_runtime::LoadError::Internal(
                "no runtime in this test".into(),
            ))
        }

        async fn load(
            &self,
            _: wisp_runtime::FunctionSpec,
        ) -> Result<Option<Arc<dyn wisp_runtime::Function>>, wisp_runtime::LoadError> {
            Ok(None)
        }
    }

    async fn engine() -> (Arc<Engine>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = wisp_store::SqliteStore::open(&dir.path().join("wisp.db")).unwrap();
        let engine = Engine::start(
            Arc::new(store),
            Arc::new(NoRuntime),
            Limits::DEFAULT,
            crate::KeepAlivePolicy::fixed_default(),
            crate::RetrySettings::default(),
            crate::MasterKey::generate().unwrap(),
            crate::StorageConfig {
                blobs: wisp_store::BlobDir::open(&dir.path().join("objects")).unwrap(),
            },
        )
        .await
        .unwrap();
        (engine, dir)
    }

    fn names() -> (Namespace, KvStoreName) {
        (
            Namespace::new("default").unwrap(),
            KvStoreName::new("cache").unwrap(),
        )
    }

    #[tokio::test]
    async fn stores_are_created_listed_and_deleted() {
        let (engine, _dir) = engine().await;
        let (ns, name) = names();
        engine.create_kv_store(&ns, &name).await.unwrap();
        let e = engine.create_kv_store(&ns, &name).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::KvStoreExists);
        let stores = engine.list_kv_stores(&ns).await.unwrap();
        assert_eq!(stores.len(), 1);
        assert_eq!(stores[0].name, name);
        engine.delete_kv_store(&ns, &name).await.unwrap();
        let e = engine.delete_kv_store(&ns, &name).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::KvStoreNotFound);
        let e = engine.kv_get(&ns, &name, "k").await.unwrap_err();
        assert_eq!(e.code, ErrorCode::KvStoreNotFound);
        let e = engine
            .kv_set(&ns, &name, "k", b"v".to_vec(), None, KvCondition::Any)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::KvStoreNotFound);
        let e = engine.kv_list(&ns, &name, "", None, 10).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::KvStoreNotFound);
    }

    #[tokio::test]
    async fn entries_are_set_read_conditioned_and_deleted() {
        let (engine, _dir) = engine().await;
        let (ns, name) = names();
        engine.create_kv_store(&ns, &name).await.unwrap();
        assert_eq!(engine.kv_get(&ns, &name, "k").await.unwrap(), None);
        let v1 = engine
            .kv_set(&ns, &name, "k", b"one".to_vec(), None, KvCondition::Absent)
            .await
            .unwrap();
        let e = engine
            .kv_set(&ns, &name, "k", b"two".to_vec(), None, KvCondition::Absent)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::PreconditionFailed);
        assert!(e.detail.contains(&format!("version {v1}")), "{}", e.detail);
        let v2 = engine
            .kv_set(&ns, &name, "k", b"two".to_vec(), None, KvCondition::Version(v1))
            .await
            .unwrap();
        assert!(v2 > v1);
        let entry = engine.kv_get(&ns, &name, "k").await.unwrap().unwrap();
        assert_eq!((entry.value.as_slice(), entry.version), (&b"two"[..], v2));
        let e = engine
            .kv_delete(&ns, &name, "k", KvCondition::Version(v1))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::PreconditionFailed);
        assert!(engine.kv_delete(&ns, &name, "k", KvCondition::Any).await.unwrap());
        assert!(!engine.kv_delete(&ns, &name, "k", KvCondition::Any).await.unwrap());
    }

    #[tokio::test]
    async fn batches_increments_and_lists() {
        let (engine, _dir) = engine().await;
        let (ns, name) = names();
        engine.create_kv_store(&ns, &name).await.unwrap();
        let writes: Vec<_> = (0..5).map(|i| (format!("k{i}"), vec![i as u8])).collect();
        assert_eq!(
            engine.kv_set_many(&ns, &name, writes, None).await.unwrap().len(),
            5
        );
        let got = engine
            .kv_get_many(&ns, &name, &["k1".into(), "zz".into()])
            .await
            .unwrap();
        assert_eq!(got[0].as_ref().unwrap().value, vec![1]);
        assert!(got[1].is_none());
        let page = engine.kv_list(&ns, &name, "k", None, 3).await.unwrap();
        assert_eq!(page.keys, ["k0", "k1", "k2"]);
        let page = engine
            .kv_list(&ns, &name, "k", page.next.as_deref(), 3)
            .await
            .unwrap();
        assert_eq!(page.keys, ["k3", "k4"]);
        assert_eq!(page.next, None);
        assert_eq!(
            engine
                .kv_delete_many(&ns, &name, &["k0".into(), "k1".into(), "nope".into()])
                .await
                .unwrap(),
            2
        );
        assert_eq!(engine.kv_increment(&ns, &name, "n", 5).await.unwrap().0, 5);
        assert_eq!(engine.kv_increment(&ns, &name, "n", -7).await.unwrap().0, -2);
        let e = engine.kv_increment(&ns, &name, "k2", 1).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::KvNotANumber);
        assert!(e.detail.contains("decimal text"), "{}", e.detail);
        engine
            .kv_set(
                &ns,
                &name,
                "big",
                i64::MAX.to_string().into_bytes(),
                None,
                KvCondition::Any,
            )
            .await
            .unwrap();
        let e = engine.kv_increment(&ns, &name, "big", 1).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::KvNotANumber);
        assert!(e.detail.contains("overflows"), "{}", e.detail);
    }

    #[tokio::test]
    async fn limits_are_enforced() {
        let (engine, _dir) = engine().await;
        let (ns, name) = names();
        engine.create_kv_store(&ns, &name).await.unwrap();
        let long = "x".repeat(Limits::MAX_KV_KEY_BYTES + 1);
        let e = engine.kv_get(&ns, &name, &long).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let e = engine.kv_get(&ns, &name, "").await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let big = vec![0; Limits::MAX_KV_VALUE_BYTES + 1];
        let e = engine
            .kv_set(&ns, &name, "k", big, None, KvCondition::Any)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::PayloadTooLarge);
        let keys: Vec<String> = (0..=Limits::MAX_KV_BATCH).map(|i| i.to_string()).collect();
        let e = engine.kv_get_many(&ns, &name, &keys).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let e = engine
            .kv_set(&ns, &name, "k", vec![1], Some(Duration::ZERO), KvCondition::Any)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }
}

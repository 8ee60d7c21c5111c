//! Key-value stores for guests: the engine's side of
//! [`wisp_runtime::services::KeyValues`], over the same operations the `/v1` API uses
//! ([`crate::kv`]), so guests get the same limits and errors.
//!
//! One [`GrantedKeyValues`] per function version holds its namespace and the stores
//! its configuration grants (`kv = [...]`). Opening a store checks the grant, then
//! that the store exists (one read); the [`KvBucket`] it gives holds the store, so the
//! calls after it go straight to the store.

use crate::EngineError;
use crate::kv::KvOps;
use std::future::Future;
use std::sync::Arc;
use wisp_core::{ErrorCode, KvStoreName, Namespace};
use wisp_runtime::services::{
    KeyValues, KvBucket, KvError, KvFound, KvKeys, KvSwap, KvVersion, KvVersioned, ServiceFuture,
};
use wisp_store::{KvCondition, Store};

/// How many keys one `list-keys` page holds: as many as one batch takes, so a guest
/// can fetch a page's values with one `get-many`.
const LIST_PAGE: usize = wisp_core::Limits::MAX_KV_BATCH;

/// The key-value stores one function version may open.
pub(crate) struct GrantedKeyValues {
    store: Arc<dyn Store>,
    namespace: Namespace,
    grants: Vec<KvStoreName>,
}

impl GrantedKeyValues {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        namespace: Namespace,
        grants: &[KvStoreName],
    ) -> GrantedKeyValues {
        GrantedKeyValues {
            store,
            namespace,
            grants: grants.to_vec(),
        }
    }
}

impl KeyValues for GrantedKeyValues {
    fn open(&self, name: &str) -> ServiceFuture<Result<Arc<dyn KvBucket>, KvError>> {
        // A store not granted is refused without a look: whether it exists is none of
        // the guest's business.
        let Some(name) = self.grants.iter().find(|g| g.as_str() == name).cloned() else {
            return Box::pin(async { Err(KvError::AccessDenied) });
        };
        let store = self.store.clone();
        let namespace = self.namespace.clone();
        Box::pin(async move {
            let ops = KvOps {
                store: store.as_ref(),
            };
            ops.kv_store_exists(&namespace, &name).await.map_err(kv_error)?;
            let bucket: Arc<dyn KvBucket> = Arc::new(Bucket(Arc::new(Opened {
                store,
                namespace,
                name,
            })));
            Ok(bucket)
        })
    }
}

/// An opened store.
struct Opened {
    store: Arc<dyn Store>,
    namespace: Namespace,
    name: KvStoreName,
}

struct Bucket(Arc<Opened>);

impl Bucket {
    /// Runs `call` on the opened store, as a future the runtime can hold.
    fn call<T, F, Fut>(&self, call: F) -> ServiceFuture<Result<T, KvError>>
    where
        F: FnOnce(Arc<Opened>) -> Fut,
        Fut: Future<Output = Result<T, EngineError>> + Send + 'static,
    {
        let done = call(self.0.clone());
        Box::pin(async move { done.await.map_err(kv_error) })
    }
}

impl Opened {
    fn ops(&self) -> KvOps<'_> {
        KvOps {
            store: self.store.as_ref(),
        }
    }
}

/// An engine error as a guest sees it. Internal causes are logged here, where the
/// guest is answered, and not passed on.
fn kv_error(e: EngineError) -> KvError {
    match e.code {
        ErrorCode::KvStoreNotFound => KvError::NoSuchStore,
        ErrorCode::Internal => {
            e.log();
            KvError::Other(e.detail)
        }
        _ => KvError::Other(e.detail),
    }
}

impl KvBucket for Bucket {
    fn get(&self, key: String) -> ServiceFuture<Result<Option<Vec<u8>>, KvError>> {
        self.call(|o| async move {
            let entry = o.ops().kv_get(&o.namespace, &o.name, &key).await?;
            Ok(entry.map(|e| e.value))
        })
    }

    fn set(&self, key: String, value: Vec<u8>) -> ServiceFuture<Result<(), KvError>> {
        self.call(|o| async move {
            o.ops()
                .kv_set(&o.namespace, &o.name, &key, value, None, KvCondition::Any)
                .await
                .map(drop)
        })
    }

    fn delete(&self, key: String) -> ServiceFuture<Result<(), KvError>> {
        self.call(|o| async move {
            o.ops()
                .kv_delete(&o.namespace, &o.name, &key, KvCondition::Any)
                .await
                .map(drop)
        })
    }

    fn exists(&self, key: String) -> ServiceFuture<Result<bool, KvError>> {
        self.call(|o| async move {
            let entry = o.ops().kv_get(&o.namespace, &o.name, &key).await?;
            Ok(entry.is_some())
        })
    }

    fn list_keys(&self, cursor: Option<String>) -> ServiceFuture<Result<KvKeys, KvError>> {
        self.call(|o| async move {
            let page = o
                .ops()
                .kv_list(&o.namespace, &o.name, "", cursor.as_deref(), LIST_PAGE)
                .await?;
            Ok(KvKeys {
                keys: page.keys,
                cursor: page.next,
            })
        })
    }

    fn increment(&self, key: String, delta: i64) -> ServiceFuture<Result<i64, KvError>> {
        self.call(|o| async move {
            let (sum, _) = o.ops().kv_increment(&o.namespace, &o.name, &key, delta).await?;
            Ok(sum)
        })
    }

    fn get_many(&self, keys: Vec<String>) -> ServiceFuture<Result<KvFound, KvError>> {
        self.call(|o| async move {
            let entries = o.ops().kv_get_many(&o.namespace, &o.name, &keys).await?;
            Ok(entries.into_iter().map(|e| e.map(|e| (e.key, e.value))).collect())
        })
    }

    fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> ServiceFuture<Result<(), KvError>> {
        self.call(|o| async move {
            o.ops()
                .kv_set_many(&o.namespace, &o.name, entries, None)
                .await
                .map(drop)
        })
    }

    fn delete_many(&self, keys: Vec<String>) -> ServiceFuture<Result<(), KvError>> {
        self.call(|o| async move {
            o.ops()
                .kv_delete_many(&o.namespace, &o.name, &keys)
                .await
                .map(drop)
        })
    }

    fn read_versioned(&self, key: String) -> ServiceFuture<Result<Option<KvVersioned>, KvError>> {
        self.call(|o| async move {
            let entry = o.ops().kv_get(&o.namespace, &o.name, &key).await?;
            Ok(entry.map(|e| KvVersioned {
                value: e.value,
                version: KvVersion(e.version),
            }))
        })
    }

    fn write_if(
        &self,
        key: String,
        value: Vec<u8>,
        expected: Option<KvVersion>,
    ) -> ServiceFuture<Result<KvSwap, KvError>> {
        let condition = match expected {
            Some(KvVersion(version)) => KvCondition::Version(version),
            None => KvCondition::Absent,
        };
        self.call(|o| async move {
            match o
                .ops()
                .kv_set(&o.namespace, &o.name, &key, value, None, condition)
                .await
            {
                Ok(_) => Ok(KvSwap::Swapped),
                Err(e) if e.code == ErrorCode::PreconditionFailed => Ok(KvSwap::Changed),
                Err(e) => Err(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(dir: &tempfile::TempDir) -> (Arc<dyn Store>, GrantedKeyValues) {
        let store: Arc<dyn Store> =
            Arc::new(wisp_store::SqliteStore::open(&dir.path().join("wisp.db")).unwrap());
        let grants = [
            KvStoreName::new("cache").unwrap(),
            KvStoreName::new("missing").unwrap(),
        ];
        let kv = GrantedKeyValues::new(store.clone(), Namespace::new("default").unwrap(), &grants);
        (store, kv)
    }

    async fn create(store: &Arc<dyn Store>, name: &str) {
        let record = wisp_store::KvStoreRecord {
            namespace: Namespace::new("default").unwrap(),
            name: KvStoreName::new(name).unwrap(),
            created_ms: 0,
        };
        assert!(store.create_kv_store(&record).await.unwrap());
    }

    #[tokio::test]
    async fn stores_open_only_when_granted_and_existing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, kv) = granted(&dir);
        create(&store, "cache").await;
        create(&store, "other").await;
        assert!(kv.open("cache").await.is_ok());
        assert_eq!(kv.open("other").await.err(), Some(KvError::AccessDenied));
        assert_eq!(kv.open("missing").await.err(), Some(KvError::NoSuchStore));
    }

    #[tokio::test]
    async fn a_compare_and_set_writes_only_over_the_version_it_read() {
        let dir = tempfile::tempdir().unwrap();
        let (store, kv) = granted(&dir);
        create(&store, "cache").await;
        let bucket = kv.open("cache").await.unwrap();
        assert_eq!(bucket.read_versioned("k".into()).await.unwrap(), None);
        assert_eq!(
            bucket.write_if("k".into(), b"one".to_vec(), None).await.unwrap(),
            KvSwap::Swapped
        );
        assert_eq!(
            bucket.write_if("k".into(), b"two".to_vec(), None).await.unwrap(),
            KvSwap::Changed
        );
        let read = bucket.read_versioned("k".into()).await.unwrap().unwrap();
        assert_eq!(read.value, b"one");
        bucket.set("k".into(), b"three".to_vec()).await.unwrap();
        assert_eq!(
            bucket
                .write_if("k".into(), b"four".to_vec(), Some(read.version))
                .await
                .unwrap(),
            KvSwap::Changed
        );
        assert_eq!(bucket.get("k".into()).await.unwrap(), Some(b"three".to_vec()));
        let e = bucket.set("k".repeat(2000), Vec::new()).await.unwrap_err();
        assert!(
            matches!(&e, KvError::Other(why) if why.contains("at most 1024 bytes")),
            "{e}"
        );
    }
}

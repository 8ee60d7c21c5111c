//! The reference: the store calls the engine makes for a guest's `get` and `set`
//! (`KeyValues::kv_get` and `kv_set` of [`wisp_store::SqliteStore`], unconditional, no
//! expiry, the wall clock's `now`), made by this process on its own database file, at the
//! same concurrency as the guest's invocations.

use crate::Op;
use crate::load::{self, Rate, Tally, Window};
use anyhow::{Context as _, Result, bail, ensure};
use std::path::Path;
use std::sync::Arc;
use wisp_core::{KvStoreName, Namespace};
use wisp_store::{KeyValues as _, KvCondition, KvSet, KvStoreRecord, KvWrite, SqliteStore};

/// A store holding the benchmark's key, as the server's does.
pub struct Direct {
    store: Arc<SqliteStore>,
    namespace: Namespace,
    name: KvStoreName,
    key: String,
    value: Vec<u8>,
}

impl Direct {
    /// Opens (creating) the database at `path` with store `default/{store}`, and writes
    /// `key` once so that gets find it.
    pub async fn open(path: &Path, store: &str, key: &str, value: Vec<u8>) -> Result<Direct> {
        let store_db = SqliteStore::open(path).with_context(|| format!("opening {}", path.display()))?;
        let direct = Direct {
            store: Arc::new(store_db),
            namespace: Namespace::new("default")?,
            name: KvStoreName::new(store)?,
            key: key.to_owned(),
            value,
        };
        let record = KvStoreRecord {
            namespace: direct.namespace.clone(),
            name: direct.name.clone(),
            created_ms: wisp_core::wall::now_ms(),
        };
        direct.store.create_kv_store(&record).await?;
        direct.call(Op::Set).await?;
        direct.call(Op::Get).await?;
        Ok(direct)
    }

    /// One call, checked: a get finds the key, a set stores it.
    async fn call(&self, op: Op) -> Result<()> {
        let now = wisp_core::wall::now_ms();
        match op {
            Op::Get => {
                let entry = self
                    .store
                    .kv_get(&self.namespace, &self.name, &self.key, now)
                    .await?;
                ensure!(
                    entry.is_some_and(|e| e.value.len() == self.value.len()),
                    "a direct get did not find the key"
                );
            }
            Op::Set => {
                let write = KvWrite {
                    key: self.key.clone(),
                    value: self.value.clone(),
                    ttl_expires_ms: None,
                    condition: KvCondition::Any,
                };
                match self.store.kv_set(&self.namespace, &self.name, write, now).await? {
                    KvSet::Stored { .. } => {}
                    other => bail!("a direct set answered {other:?}"),
                }
            }
        }
        Ok(())
    }

    /// Store calls per second at [`load::CONCURRENCY`].
    pub async fn rate(self: &Arc<Self>, op: Op, seconds: f64) -> Result<Rate> {
        load::measure(seconds, |_, window| worker(self.clone(), op, window)).await
    }
}

async fn worker(direct: Arc<Direct>, op: Op, window: Window) -> Result<Tally> {
    let mut tally = Tally::default();
    while window.open() {
        let sent = std::time::Instant::now();
        direct.call(op).await?;
        tally.record(&window, sent);
    }
    Ok(tally)
}

//! Who calls, and in which tenant: the API keys and namespaces the engine holds in
//! memory, so that checking a key costs no store read.
//!
//! Keys and namespaces live in the store ([`wisp_store::ApiKeys`],
//! [`wisp_store::Namespaces`]); the engine keeps a snapshot of both (swapped whole,
//! so a check takes no lock) and reloads it once a second, and at once after a change
//! made here. A key revoked or a namespace changed on another node is seen within a
//! second; an expired key is refused from the millisecond it expires (the check reads
//! the clock). A key's last use is noted in memory and written to the store in
//! batches by the same once-a-second task, never per request.
//!
//! A bearer secret is checked against its SHA-256 in constant time. The secret itself
//! is needed only for SigV4, whose signatures are HMACs keyed by it: the store keeps
//! it sealed under the node's master key ([`secret::MasterKey`]).

pub mod function_credentials;
mod keys;
mod namespaces;
pub mod secret;
mod session;

pub use keys::NewKey;

use crate::{Engine, EngineError};
use arc_swap::ArcSwap;
pub use function_credentials::FunctionGrants;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use subtle::ConstantTimeEq;
use wisp_core::wall::now_ms;
use wisp_core::{
    BucketName, ErrorCode, FunctionName, KvStoreName, Namespace, QueueName, Role, TopicName, UnixMillis,
};
use wisp_store::{ApiKeyRecord, NamespaceRecord, Store};

use secret::MasterKey;

/// How often the snapshot is reloaded from the store (and last uses written).
const REFRESH: Duration = Duration::from_secs(1);

/// A caller whose key checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    /// The key's namespace: where it acts unless it is an admin naming another.
    pub namespace: Namespace,
    pub role: Role,
    /// A function's credential: the grants that bound it beyond its role. `None` for
    /// a person's key, whose role decides alone.
    pub grants: Option<Arc<FunctionGrants>>,
    /// A wasm guest's request at the platform address: how many calls or event hops
    /// deep the invocation making it is. `None` for everyone else (a native function's
    /// depth is found from its credential).
    pub call_depth: Option<u32>,
}

impl Caller {
    /// Whether the caller may use key-value store `store` of its namespace: a person's
    /// key by its role (checked by the server), a function only by its `kv` grant.
    pub fn check_kv_grant(&self, store: &KvStoreName) -> Result<(), EngineError> {
        match &self.grants {
            Some(grants) if !grants.kv.contains(store) => Err(EngineError::new(
                ErrorCode::Forbidden,
                format!(
                    "function `{}` is not granted key-value store `{store}`: add it to the function's `kv` in wisp.toml",
                    grants.function
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the caller may send to queue `queue` of its namespace: a person's key by
    /// its role (checked by the server), a function only by its `queues` grant.
    pub fn check_queue_grant(&self, queue: &QueueName) -> Result<(), EngineError> {
        match &self.grants {
            Some(grants) if !grants.queues.contains(queue) => Err(EngineError::new(
                ErrorCode::Forbidden,
                format!(
                    "function `{}` is not granted queue `{queue}`: add it to the function's `queues` in wisp.toml",
                    grants.function
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the caller may publish to topic `topic` of its namespace: a person's key
    /// by its role (checked by the server), a function only by its `topics` grant.
    pub fn check_topic_grant(&self, topic: &TopicName) -> Result<(), EngineError> {
        match &self.grants {
            Some(grants) if !grants.topics.contains(topic) => Err(EngineError::new(
                ErrorCode::Forbidden,
                format!(
                    "function `{}` is not granted topic `{topic}`: add it to the function's `topics` in wisp.toml",
                    grants.function
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the caller may invoke function `function` of its namespace: a person's
    /// key by its role (checked by the server), a function only by its `invoke` grant.
    pub fn check_invoke_grant(&self, function: &FunctionName) -> Result<(), EngineError> {
        match &self.grants {
            Some(grants) if !grants.invoke.contains(function) => Err(EngineError::new(
                ErrorCode::Forbidden,
                format!(
                    "function `{}` is not granted invoke of function `{function}`: add it to the function's `invoke` in wisp.toml",
                    grants.function
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the caller may read (`write: false`) or write `bucket`: a person's key by
    /// its role (checked by the server), a function only by its `buckets` grant.
    pub fn check_bucket_grant(&self, bucket: &BucketName, write: bool) -> Result<(), EngineError> {
        let Some(grants) = &self.grants else {
            return Ok(());
        };
        let access = grants.bucket(bucket);
        if access.is_some_and(|a| if write { a.writes() } else { a.reads() }) {
            return Ok(());
        }
        let (what, example) = if write {
            ("write", format!("\"{bucket}\" or \"{bucket}:write\""))
        } else {
            ("read", format!("\"{bucket}\" or \"{bucket}:read\""))
        };
        Err(EngineError::new(
            ErrorCode::Forbidden,
            format!(
                "function `{}` is not granted to {what} bucket `{bucket}`: add {example} to the function's `buckets` in wisp.toml",
                grants.function
            ),
        ))
    }
}

/// A key as the check needs it.
struct KeyEntry {
    namespace: Namespace,
    role: Role,
    secret_hash: Vec<u8>,
    sealed_secret: Vec<u8>,
    expires_at: Option<UnixMillis>,
    revoked: bool,
    /// The last use seen here (0: none since start), and the last one written.
    used: AtomicI64,
    written: AtomicI64,
}

impl KeyEntry {
    fn new(record: ApiKeyRecord, old: Option<&KeyEntry>) -> KeyEntry {
        let written = record.last_used_at.unwrap_or(0);
        let (used, written) = match old {
            Some(old) => (
                old.used.load(Ordering::Relaxed).max(written),
                old.written.load(Ordering::Relaxed).max(written),
            ),
            None => (written, written),
        };
        KeyEntry {
            namespace: record.namespace,
            role: record.role,
            secret_hash: record.secret_hash,
            sealed_secret: record.sealed_secret,
            expires_at: record.expires_at,
            revoked: record.revoked_at.is_some(),
            used: AtomicI64::new(used),
            written: AtomicI64::new(written),
        }
    }

    /// Refuses a revoked or expired key.
    fn live(&self, id: &str, now: UnixMillis) -> Result<(), EngineError> {
        if self.revoked {
            return Err(unauthorized(format!("API key `{id}` was revoked")));
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return Err(unauthorized(format!("API key `{id}` has expired")));
        }
        Ok(())
    }

    fn caller(&self, id: &str) -> Caller {
        Caller {
            key_id: id.to_owned(),
            namespace: self.namespace.clone(),
            role: self.role,
            grants: None,
            call_depth: None,
        }
    }
}

fn unauthorized(detail: String) -> EngineError {
    EngineError::new(ErrorCode::Unauthorized, detail)
}

/// The snapshot of keys and namespaces, and the master key.
pub(crate) struct Identity {
    master: MasterKey,
    /// Held by a reload from its read to its swap, so a reload that read earlier never
    /// replaces the snapshot of one that read later.
    reloading: tokio::sync::Mutex<()>,
    keys: ArcSwap<HashMap<String, Arc<KeyEntry>>>,
    namespaces: ArcSwap<HashMap<Namespace, NamespaceRecord>>,
}

impl Identity {
    pub(crate) fn new(master: MasterKey) -> Identity {
        Identity {
            master,
            reloading: tokio::sync::Mutex::new(()),
            keys: ArcSwap::default(),
            namespaces: ArcSwap::default(),
        }
    }

    /// Reloads keys and namespaces from the store.
    pub(crate) async fn reload(&self, store: &dyn Store) -> Result<(), EngineError> {
        let _one_at_a_time = self.reloading.lock().await;
        let records = store.list_keys(None).await?;
        let old = self.keys.load();
        let keys = records
            .into_iter()
            .map(|r| {
                let id = r.id.clone();
                let entry = KeyEntry::new(r, old.get(&id).map(Arc::as_ref));
                (id, Arc::new(entry))
            })
            .collect();
        self.keys.store(Arc::new(keys));
        let namespaces = store
            .list_namespaces()
            .await?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        self.namespaces.store(Arc::new(namespaces));
        Ok(())
    }

    /// Writes the last uses not written yet.
    async fn write_uses(&self, store: &dyn Store) -> Result<(), EngineError> {
        let keys = self.keys.load();
        let used: Vec<(String, UnixMillis)> = keys
            .iter()
            .filter_map(|(id, e)| {
                let used = e.used.load(Ordering::Relaxed);
                (used > e.written.load(Ordering::Relaxed)).then(|| (id.clone(), used))
            })
            .collect();
        if used.is_empty() {
            return Ok(());
        }
        store.touch_keys(&used).await?;
        for (id, at) in &used {
            if let Some(entry) = keys.get(id) {
                entry.written.fetch_max(*at, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The namespace's record, if it exists.
    pub(crate) fn namespace(&self, name: &Namespace) -> Option<NamespaceRecord> {
        self.namespaces.load().get(name).cloned()
    }

    /// Every namespace's record, as loaded last.
    pub(crate) fn namespaces_snapshot(&self) -> Arc<HashMap<Namespace, NamespaceRecord>> {
        self.namespaces.load_full()
    }

    /// The namespace's own cap on concurrent invocations, if it sets one.
    /// A namespace's own cap on the bytes its buckets hold, if it has one.
    pub(crate) fn storage_quota(&self, name: &Namespace) -> Option<u64> {
        self.namespaces
            .load()
            .get(name)
            .and_then(|r| r.settings.quota.storage_bytes)
    }

    pub(crate) fn max_concurrency(&self, name: &Namespace) -> Option<u32> {
        self.namespaces
            .load()
            .get(name)
            .and_then(|r| r.settings.max_concurrency)
    }
}

impl Engine {
    /// Checks a bearer token (`<key id>.<secret>`): the caller, or `unauthorized`
    /// saying why (malformed, unknown or wrong, revoked, expired).
    pub fn authenticate(&self, token: &str) -> Result<Caller, EngineError> {
        let Some((id, secret)) = secret::parse_token(token) else {
            return Err(unauthorized(
                "the bearer token is not a Wisp API key (`<key id>.<secret>`)".to_owned(),
            ));
        };
        let keys = self.identity.keys.load();
        let hash = secret::hash(secret);
        let Some(entry) = keys.get(id).filter(|e| bool::from(e.secret_hash.ct_eq(&hash))) else {
            return Err(unauthorized(format!("API key `{id}` is not valid")));
        };
        let now = now_ms();
        entry.live(id, now)?;
        entry.used.fetch_max(now, Ordering::Relaxed);
        Ok(entry.caller(id))
    }

    /// The caller a key id names and the key's secret, for checking a signature made
    /// with it (SigV4); `unauthorized` for an unknown, revoked or expired key.
    pub fn signing_secret(&self, key_id: &str) -> Result<(Caller, String), EngineError> {
        let keys = self.identity.keys.load();
        let Some(entry) = keys.get(key_id) else {
            return Err(unauthorized(format!("API key `{key_id}` is not valid")));
        };
        let now = now_ms();
        entry.live(key_id, now)?;
        let secret = self
            .identity
            .master
            .open(key_id, &entry.sealed_secret)
            .map_err(|e| EngineError::internal(format!("key {key_id}: {e}")))?;
        entry.used.fetch_max(now, Ordering::Relaxed);
        Ok((entry.caller(key_id), secret))
    }

    /// As [`Engine::signing_secret`], for the services functions call (the S3
    /// listener): a function's credential (`WF…`) is accepted too, while its version is
    /// deployed. Nowhere else is it: a function's credential never reaches the control
    /// API or the Lambda API.
    pub fn service_signing_secret(&self, key_id: &str) -> Result<(Caller, String), EngineError> {
        if !function_credentials::is_function_credential(key_id) {
            return self.signing_secret(key_id);
        }
        let Some(credential) = self.function_credentials.get(key_id) else {
            return Err(unauthorized(format!(
                "function credential `{key_id}` is not valid (its function version is gone)"
            )));
        };
        let caller = Caller {
            key_id: key_id.to_owned(),
            namespace: credential.namespace.clone(),
            role: Role::Deploy,
            grants: Some(credential.grants.clone()),
            call_depth: None,
        };
        Ok((caller, credential.secret.clone()))
    }

    /// Checks a bearer token on the functions' services endpoint (the S3 listener's
    /// `/v1/kv`): a function's credential (`<WF id>.<secret>`, what a native instance
    /// finds in `WISP_TOKEN`) while its version is deployed, else a person's key as
    /// [`Engine::authenticate`] checks it.
    pub fn authenticate_service(&self, token: &str) -> Result<Caller, EngineError> {
        let Some((id, secret)) = token.split_once('.') else {
            return self.authenticate(token);
        };
        if !function_credentials::is_function_credential(id) {
            return self.authenticate(token);
        }
        let (caller, expected) = self.service_signing_secret(id)?;
        if !bool::from(expected.as_bytes().ct_eq(secret.as_bytes())) {
            return Err(unauthorized(format!("function credential `{id}` is not valid")));
        }
        Ok(caller)
    }

    /// Whether a namespace exists.
    pub fn namespace_exists(&self, name: &Namespace) -> bool {
        self.identity.namespaces.load().contains_key(name)
    }
}

/// Starts the task that reloads the snapshot and writes last uses once a second.
pub(crate) fn start(engine: &Arc<Engine>) {
    let me = Arc::downgrade(engine);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(engine) = me.upgrade() else { return };
            let store = engine.store.clone();
            if let Err(e) = engine.identity.write_uses(store.as_ref()).await {
                tracing::warn!("cannot record API keys' last use: {}", e.with_cause());
            }
            if let Err(e) = engine.identity.reload(store.as_ref()).await {
                tracing::warn!("cannot reload API keys and namespaces: {}", e.with_cause());
            }
        }
    });
}

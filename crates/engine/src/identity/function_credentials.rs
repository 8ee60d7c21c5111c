//! Function credentials: what a native function's instances find in their environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL_S3`, and for Wisp's
//! own service APIs `WISP_TOKEN` and `WISP_KV_URL`), the way
//! Lambda hands a function its execution role, so that stock AWS SDKs in a handler
//! reach Wisp's S3 listener unmodified.
//!
//! A credential belongs to one version of one function (by content: versions with the
//! same code and configuration share it). It is derived from the master key (id and
//! secret are HMACs of the version's name), so every node of a cluster
//! computes the same one and nothing is stored; it lives while the version is
//! deployed here ([`FunctionCredentials::issue`] at load, forgotten when the version goes).
//! Its id starts `WF` (a person's keys start `WK`). It acts in its function's namespace
//! and reaches only what the version is granted ([`FunctionGrants`]): the buckets, with
//! the access each grant names, and the key-value stores it lists.
//!
//! It also carries the loop guard of storage events: a write made with it produces
//! events one hop deeper than the deepest event its version is running
//! ([`RunningDepths`]), so a function that writes into the bucket that triggers it
//! reaches the event chain limit instead of looping forever.

use super::secret::MasterKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use wisp_core::{
    BucketAccess, BucketGrant, BucketName, FunctionConfig, FunctionName, KvStoreName, Namespace, QueueName,
    TopicName, VersionId,
};

/// Every function credential starts so.
pub const ID_PREFIX: &str = "WF";
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The chain depths of the events a version is running now (a multiset).
#[derive(Debug, Default)]
pub(crate) struct RunningDepths(Mutex<BTreeMap<u32, usize>>);

impl RunningDepths {
    /// Counts an event of `depth` as running until the guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>, depth: u32) -> DepthGuard {
        *self.lock().entry(depth).or_default() += 1;
        DepthGuard {
            depths: self.clone(),
            depth,
        }
    }

    /// The deepest running event's depth (0 with none).
    pub(crate) fn deepest(&self) -> u32 {
        self.lock().keys().next_back().copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, usize>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// See [`RunningDepths::enter`].
pub(crate) struct DepthGuard {
    depths: Arc<RunningDepths>,
    depth: u32,
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        let mut depths = self.depths.lock();
        if let Some(n) = depths.get_mut(&self.depth) {
            *n -= 1;
            if *n == 0 {
                depths.remove(&self.depth);
            }
        }
    }
}

/// One version's credential.
#[derive(Debug)]
pub struct FunctionCredential {
    pub id: String,
    pub secret: String,
    pub namespace: Namespace,
    pub function: FunctionName,
    /// The version's content id: versions of the same code and configuration share it.
    pub version: VersionId,
    /// What it may use: its version's grants.
    pub grants: Arc<FunctionGrants>,
    pub(crate) depths: Arc<RunningDepths>,
}

/// What a function version's credential may use beyond its role: the grants of the
/// version's configuration. A person's key has none (its role decides alone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionGrants {
    pub function: FunctionName,
    pub kv: Vec<KvStoreName>,
    pub buckets: Vec<BucketGrant>,
    pub queues: Vec<QueueName>,
    pub invoke: Vec<FunctionName>,
    pub topics: Vec<TopicName>,
}

impl FunctionGrants {
    pub fn of(function: &FunctionName, config: &FunctionConfig) -> FunctionGrants {
        FunctionGrants {
            function: function.clone(),
            kv: config.kv.clone(),
            buckets: config.buckets.clone(),
            queues: config.queues.clone(),
            invoke: config.invoke.clone(),
            topics: config.topics.clone(),
        }
    }

    /// What the function may do with `bucket` (`None`: nothing).
    pub fn bucket(&self, bucket: &BucketName) -> Option<BucketAccess> {
        let mut access: Option<BucketAccess> = None;
        for grant in self.buckets.iter().filter(|g| &g.bucket == bucket) {
            access = Some(match access {
                None => grant.access,
                Some(a) if a == grant.access => a,
                Some(_) => BucketAccess::ReadWrite,
            });
        }
        access
    }
}

/// The credentials of the versions deployed here.
pub(crate) struct FunctionCredentials {
    key: hmac::Key,
    issued: Mutex<HashMap<String, Weak<FunctionCredential>>>,
}

impl FunctionCredentials {
    pub(crate) fn new(master: &MasterKey) -> FunctionCredentials {
        FunctionCredentials {
            key: hmac::Key::new(hmac::HMAC_SHA256, &master.derive("wisp function credentials v1")),
            issued: Mutex::new(HashMap::new()),
        }
    }

    /// The credential of a version (the same one every time, on every node); it is
    /// known here while the returned `Arc` lives.
    pub(crate) fn issue(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        version: &VersionId,
        grants: FunctionGrants,
    ) -> Arc<FunctionCredential> {
        let tag = hmac::sign(
            &self.key,
            format!("id\0{namespace}\0{function}\0{}", version.0).as_bytes(),
        );
        let id: String = ID_PREFIX
            .chars()
            .chain(
                tag.as_ref()[..16]
                    .iter()
                    .map(|b| BASE32[usize::from(b % 32)] as char),
            )
            .collect();
        let secret =
            URL_SAFE_NO_PAD.encode(&hmac::sign(&self.key, format!("secret\0{id}").as_bytes()).as_ref()[..30]);
        let mut issued = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = issued.get(&id).and_then(Weak::upgrade) {
            return key;
        }
        issued.retain(|_, k| k.strong_count() > 0);
        let key = Arc::new(FunctionCredential {
            id: id.clone(),
            secret,
            namespace: namespace.clone(),
            function: function.clone(),
            version: version.clone(),
            grants: Arc::new(grants),
            depths: Arc::default(),
        });
        issued.insert(id, Arc::downgrade(&key));
        key
    }

    /// The credential with this id, while its version is deployed.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<FunctionCredential>> {
        self.issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .and_then(Weak::upgrade)
    }

    /// The environment a native instance of the version gets.
    pub(crate) fn env(&self, key: &FunctionCredential) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), key.id.clone()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), key.secret.clone()),
        ];
        // The same credential as a bearer token, for Wisp's own service APIs (`/v1/kv`).
        // Where to send them (`AWS_ENDPOINT_URL_S3`, `WISP_KV_URL`) the process runtime
        // adds: it depends on the instance's network.
        env.push(("WISP_TOKEN".to_string(), format!("{}.{}", key.id, key.secret)));
        env
    }
}

/// Whether `id` has the shape of a function credential's id.
pub fn is_function_credential(id: &str) -> bool {
    id.len() == ID_PREFIX.len() + 16 && id.starts_with(ID_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(f: &FunctionName) -> FunctionGrants {
        FunctionGrants::of(f, &FunctionConfig::new(wisp_core::Kind::Event))
    }

    #[test]
    fn credentials_are_derived_and_known_while_held() -> Result<(), Box<dyn std::error::Error>> {
        let master = MasterKey::generate()?;
        let keys = FunctionCredentials::new(&master);
        let (ns, f) = (Namespace::new("default")?, FunctionName::new("thumbs")?);
        let (v1, v2) = (VersionId("one".into()), VersionId("two".into()));
        let a = keys.issue(&ns, &f, &v1, grants(&f));
        assert!(is_function_credential(&a.id), "{}", a.id);
        assert_eq!(keys.issue(&ns, &f, &v1, grants(&f)).secret, a.secret);
        assert_ne!(keys.issue(&ns, &f, &v2, grants(&f)).id, a.id);
        let other = FunctionCredentials::new(&master);
        assert_eq!(
            other.issue(&ns, &f, &v1, grants(&f)).id,
            a.id,
            "every node derives the same credential"
        );
        assert!(keys.get(&a.id).is_some());
        let id = a.id.clone();
        drop(a);
        assert!(
            keys.get(&id).is_none(),
            "a version gone takes its credential with it"
        );
        Ok(())
    }

    #[test]
    fn running_depths_track_the_deepest() {
        let depths = Arc::new(RunningDepths::default());
        assert_eq!(depths.deepest(), 0);
        let a = depths.enter(3);
        let b = depths.enter(5);
        assert_eq!(depths.deepest(), 5);
        drop(b);
        assert_eq!(depths.deepest(), 3);
        drop(a);
        assert_eq!(depths.deepest(), 0);
    }
}

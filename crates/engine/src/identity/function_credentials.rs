//! Function credentials: what a native function's instances find in their environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL_S3`), the way
//! Lambda hands a function its execution role, so that stock AWS SDKs in a handler
//! reach Wisp's S3 listener unmodified.
//!
//! A credential belongs to one version of one function (by content: versions with the
//! same code and configuration share it). It is derived from the master key (id and
//! secret are HMACs of the version's name), so every node of a cluster
//! computes the same one and nothing is stored; it lives while the version is
//! deployed here ([`FunctionCredentials::issue`] at load, forgotten when the version goes).
//! Its id starts `WF` (a person's keys start `WK`). It acts with the `deploy` role in
//! its function's namespace until per-function grants narrow it.
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
use wisp_core::{FunctionName, Namespace, VersionId};

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
    pub(crate) depths: Arc<RunningDepths>,
}

/// The credentials of the versions deployed here, and the S3 endpoint they are given.
pub(crate) struct FunctionCredentials {
    key: hmac::Key,
    s3_endpoint: Option<String>,
    issued: Mutex<HashMap<String, Weak<FunctionCredential>>>,
}

impl FunctionCredentials {
    pub(crate) fn new(master: &MasterKey, s3_endpoint: Option<String>) -> FunctionCredentials {
        FunctionCredentials {
            key: hmac::Key::new(hmac::HMAC_SHA256, &master.derive("wisp function credentials v1")),
            s3_endpoint,
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
        if let Some(endpoint) = &self.s3_endpoint {
            env.push(("AWS_ENDPOINT_URL_S3".to_string(), endpoint.clone()));
        }
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

    #[test]
    fn credentials_are_derived_and_known_while_held() -> Result<(), Box<dyn std::error::Error>> {
        let master = MasterKey::generate()?;
        let keys = FunctionCredentials::new(&master, Some("http://127.0.0.1:9/".into()));
        let (ns, f) = (Namespace::new("default")?, FunctionName::new("thumbs")?);
        let (v1, v2) = (VersionId("one".into()), VersionId("two".into()));
        let a = keys.issue(&ns, &f, &v1);
        assert!(is_function_credential(&a.id), "{}", a.id);
        assert_eq!(keys.issue(&ns, &f, &v1).secret, a.secret);
        assert_ne!(keys.issue(&ns, &f, &v2).id, a.id);
        let other = FunctionCredentials::new(&master, None);
        assert_eq!(
            other.issue(&ns, &f, &v1).id,
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

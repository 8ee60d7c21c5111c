//! API keys: who may call the API, in which namespace, with which role ([`ApiKeys`] and
//! its record).
//!
//! The store keeps what the server needs to check a key and nothing it could use to
//! answer as one: the SHA-256 of the secret (for bearer tokens) and the secret sealed
//! under the node's master key (SigV4 signs with the secret itself, so the server must be
//! able to recover it). Both are opaque bytes here; hashing and sealing are the caller's.

use crate::{Result, UnixMillis};
use async_trait::async_trait;
use std::fmt;
use wisp_core::{Namespace, Role};

/// An API key as stored. Not `Serialize`: what the API shows of a key is the server's to
/// choose, and neither the hash nor the sealed secret belongs in it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The key's public id, e.g. `WKABCDEFGHIJKLMNOP`; unique across namespaces.
    pub id: String,
    pub namespace: Namespace,
    pub role: Role,
    /// A label its creator chose.
    pub name: Option<String>,
    /// SHA-256 of the secret, to check a bearer token.
    pub secret_hash: Vec<u8>,
    /// The secret sealed under the node's master key, to check a SigV4 signature; opaque
    /// to the store.
    pub sealed_secret: Vec<u8>,
    pub created_at: UnixMillis,
    /// The id of the key that created it; `None` for the bootstrap key.
    pub created_by: Option<String>,
    pub expires_at: Option<UnixMillis>,
    pub revoked_at: Option<UnixMillis>,
    /// The latest use [`ApiKeys::touch_keys`] recorded; behind by up to one batch.
    pub last_used_at: Option<UnixMillis>,
}

/// Leaves the secret's hash and sealed form out (their lengths only), so that logging a
/// record never writes them.
impl fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("namespace", &self.namespace)
            .field("role", &self.role)
            .field("name", &self.name)
            .field("secret_hash", &format_args!("<{} bytes>", self.secret_hash.len()))
            .field(
                "sealed_secret",
                &format_args!("<{} bytes>", self.sealed_secret.len()),
            )
            .field("created_at", &self.created_at)
            .field("created_by", &self.created_by)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .field("last_used_at", &self.last_used_at)
            .finish()
    }
}

/// API keys, each of one namespace.
///
/// Checking a key is on every request's path, so it never reads the store: the engine
/// keeps every key in memory and re-reads [`ApiKeys::list_keys`] about once a second, so
/// a key created or revoked through another node is honoured (or refused) everywhere
/// within about a second. Uses are recorded the same way: the engine gathers each key's
/// latest use and writes them with [`ApiKeys::touch_keys`] in batches, never per request.
/// The control plane creates, revokes and lists keys at an admin's request. Every method
/// may block on I/O. Each key's record changes whole; a batch is not atomic in general.
///
/// The store does not check that a key's namespace exists (the control plane does), nor
/// expiry (the caller compares `expires_at` with its clock).
#[async_trait]
pub trait ApiKeys: Send + Sync + 'static {
    /// Records a new key. Returns `false`, and writes nothing, when a key with its id
    /// exists (in any namespace); the caller makes a fresh id and tries again. Called by
    /// the control plane, and once at first start for the bootstrap key.
    ///
    /// Two creates racing on one id: exactly one returns `true` (a create-if-absent).
    async fn create_key(&self, key: &ApiKeyRecord) -> Result<bool>;

    /// A key by id. Called by the control plane.
    async fn key(&self, id: &str) -> Result<Option<ApiKeyRecord>>;

    /// Every key of a namespace (or of all), revoked and expired ones included, ordered by
    /// `created_at`, then id. Called by the engine about once a second (all namespaces, to
    /// refresh its cache) and by the API.
    async fn list_keys(&self, namespace: Option<&Namespace>) -> Result<Vec<ApiKeyRecord>>;

    /// Marks a key revoked at `at`. Returns `false`, writing nothing, when the key does not
    /// exist or is revoked already: `revoked_at` keeps its first value, so revoking twice
    /// (two admins, a retry) does not move it. Called by the control plane; every node
    /// refuses the key once it has re-read the keys.
    ///
    /// A compare-and-set on the key's record, so of two racing revokes exactly one returns
    /// `true`.
    async fn revoke_key(&self, id: &str, at: UnixMillis) -> Result<bool>;

    /// Records when keys were last used: a batch of `(id, at)`. A key's `last_used_at` only
    /// moves forward (an `at` older than the recorded one changes nothing, and of one id
    /// twice in a batch the later wins), ids of keys that do not exist (deleted meanwhile)
    /// are skipped, and nothing else of the record changes. An empty batch writes nothing.
    ///
    /// Called by the engine's background writer, a batch at a time, never per request.
    /// Each key's update is a compare-and-set on its record, retried when a revoke or
    /// another node's touch moved it; a failed call may have recorded part of the batch
    /// (SQLite: none of it, one transaction), and the next batch carries newer times anyway.
    async fn touch_keys(&self, used: &[(String, UnixMillis)]) -> Result<()>;

    /// Deletes every key of a namespace; other namespaces keep theirs. Idempotent.
    ///
    /// Called by [`crate::Store::remove_namespace`]. Each key goes whole; a failure midway
    /// leaves the rest, and calling again deletes them. A key created in the namespace
    /// meanwhile may survive, so the control plane refuses creating keys in a namespace it
    /// is removing.
    async fn forget_namespace_keys(&self, namespace: &Namespace) -> Result<()>;
}

//! The [`Secrets`] concern: the secrets of each namespace ([`SecretRecord`]), which
//! functions' environments refer to by name. The store holds each value only sealed
//! (encrypted by the engine, bound to its namespace and name); it never sees one in
//! the clear, and nothing here decrypts.
//!
//! # Contract
//!
//! Written so that a NATS JetStream backend keeps it with one KV bucket for every
//! namespace's secrets (key `NAMESPACE.NAME`):
//!
//! - Every put gives the secret a larger revision than any the backend gave any secret
//!   before (JetStream's revision: the bucket stream's sequence), across deletes: a
//!   secret deleted and set again never gets back a revision it had. Revisions are
//!   opaque, compared only for equality and order.
//! - A put may carry a [`SecretCondition`], checked against the secret's current
//!   record in the same step as the change (JetStream's `create` and `update` with an
//!   expected revision), so two writers racing on one secret cannot lose an update
//!   unnoticed.
//! - One secret's change is atomic: its sealed value, revision and times change
//!   together or not at all.
//! - `created_ms` is when the secret was first put (since its last delete); a put over
//!   it keeps that and moves `updated_ms`. Times are the caller's clock.
//!
//! The store checks no size: the engine refuses values past
//! [`wisp_core::Limits::MAX_SECRET_VALUE_BYTES`] before they get here.

use crate::{Result, UnixMillis};
use async_trait::async_trait;
use wisp_core::{Namespace, SecretName};

/// A secret as stored: its value sealed, never in the clear.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub namespace: Namespace,
    pub name: SecretName,
    /// The value as the engine sealed it; opaque to the store.
    pub sealed: Vec<u8>,
    /// Given by the put that stored it; see the module docs.
    pub revision: u64,
    pub created_ms: UnixMillis,
    pub updated_ms: UnixMillis,
}

// Sealed bytes are no plaintext, but they have no business in a log either.
impl std::fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRecord")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("sealed", &format_args!("<{} bytes>", self.sealed.len()))
            .field("revision", &self.revision)
            .field("created_ms", &self.created_ms)
            .field("updated_ms", &self.updated_ms)
            .finish()
    }
}

/// What a put checks against the secret's current record before it changes anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecretCondition {
    /// Whatever the secret holds (set or replace).
    #[default]
    Any,
    /// Only if there is no such secret (create).
    Absent,
    /// Only if the secret's record has this revision (replace what was read).
    Revision(u64),
}

impl SecretCondition {
    /// Whether the condition holds for a secret whose record has revision `current`
    /// (`None`: there is no such secret).
    pub fn holds(self, current: Option<u64>) -> bool {
        match self {
            SecretCondition::Any => true,
            SecretCondition::Absent => current.is_none(),
            SecretCondition::Revision(revision) => current == Some(revision),
        }
    }
}

/// What a put did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretPut {
    /// There was no such secret; now there is, with this revision.
    Created { revision: u64 },
    /// The secret's value was replaced; this is its new revision.
    Updated { revision: u64 },
    /// Nothing changed: the condition does not hold for the secret's record, whose
    /// revision (`None`: there is no such secret) this is.
    ConditionFailed { current: Option<u64> },
}

/// The secrets of every namespace. See the module docs.
///
/// Called by the control plane (a put or a delete per `wisp secret` command; rare) and
/// by the engine when it loads every namespace's secrets into memory (at start, and
/// when it refreshes): never per invocation. Each method is one short statement or
/// transaction.
#[async_trait]
pub trait Secrets: Send + Sync + 'static {
    /// Stores `sealed` as the value of secret `name` of `namespace` if `condition`
    /// holds; see [`SecretPut`].
    async fn put_secret(
        &self,
        namespace: &Namespace,
        name: &SecretName,
        sealed: Vec<u8>,
        condition: SecretCondition,
        now: UnixMillis,
    ) -> Result<SecretPut>;

    /// The secret's record; `None` when there is no such secret.
    async fn get_secret(&self, namespace: &Namespace, name: &SecretName) -> Result<Option<SecretRecord>>;

    /// The secrets of `namespace` (of every namespace with `None`), by namespace, then
    /// name, sealed values included (what the engine loads).
    async fn list_secrets(&self, namespace: Option<&Namespace>) -> Result<Vec<SecretRecord>>;

    /// Deletes a secret; `false` when there was no such secret.
    async fn delete_secret(&self, namespace: &Namespace, name: &SecretName) -> Result<bool>;
}

//! The audit log: who changed what, when ([`Audit`] and its records), capped at
//! [`AUDIT_ENTRIES_KEPT`].
//!
//! Entries outlive what they describe: removing a function, a key or a whole namespace
//! keeps the entries about it (and the entry saying it was removed).

use crate::{Result, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wisp_core::Namespace;

/// How many audit entries the store keeps, over every namespace; the first appended are
/// dropped beyond it.
pub const AUDIT_ENTRIES_KEPT: usize = 100_000;

/// One change made through the control plane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Unique (UUID v7 text, made by the caller); see [`Audit::append_audit`].
    pub id: String,
    pub at: UnixMillis,
    /// The namespace acted on.
    pub namespace: Namespace,
    /// The key that acted; `None` for the server itself (the bootstrap).
    pub key_id: Option<String>,
    /// What was done, as `<resource>.<verb>`: `function.deploy`, `function.delete`,
    /// `key.create`, `key.revoke`, `namespace.create`, `namespace.update`,
    /// `namespace.delete`, `queue.create`, `queue.delete`.
    pub action: String,
    /// The resource's name or id.
    pub target: String,
    /// The client's address.
    pub source: Option<String>,
    /// Short free text: a version id, a role.
    pub detail: Option<String>,
}

/// A query for audit entries, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this namespace's entries; `None`: every namespace's.
    pub namespace: Option<Namespace>,
    /// Only entries strictly before this time (the next page starts at the last entry of
    /// the previous one; see `before_id`).
    pub before: Option<UnixMillis>,
    /// With `before`: entries at exactly `before` whose id is smaller than this also
    /// count as before it. The next page of a listing asks with the last entry's `at` and
    /// `id`, so entries of one millisecond split across pages are neither lost nor
    /// repeated. Ignored without `before`.
    pub before_id: Option<String>,
    /// At most this many entries (the newest that match); `0` means the default of 100.
    pub limit: usize,
}

/// The audit log: append-only, capped, read newest first.
///
/// The control plane appends an entry for every change it makes, after making it (an
/// entry for a change that failed would lie), gathering entries into batches through a
/// background writer rather than writing per request; the API reads them back. Every
/// method may block on I/O.
#[async_trait]
pub trait Audit: Send + Sync + 'static {
    /// Appends entries. An entry whose id is already kept is a duplicate and skipped, so a
    /// caller that retries a failed batch passes the same entries (a backend may only spot
    /// duplicates within a window, as JetStream's duplicate window; a retry comes well
    /// within it). After it returns the store keeps at most [`AUDIT_ENTRIES_KEPT`] entries,
    /// the first appended dropped.
    ///
    /// Each entry is recorded whole; a failed call may have recorded part of the batch
    /// (SQLite: none of it, one transaction). Entries need no namespace, function or key
    /// to exist. An empty batch writes nothing.
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()>;

    /// Entries matching `query`, newest first: by `at` descending, then id descending.
    /// Called by the API.
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
}

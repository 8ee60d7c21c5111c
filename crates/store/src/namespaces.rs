//! Namespaces as records of their own: which exist and their settings ([`Namespaces`] and
//! its records).
//!
//! Every other concern's records carry a namespace already; this one says which namespaces
//! exist, when each was made and what it may use. It does not own their contents:
//! [`crate::Store::remove_namespace`] removes those from every concern.

use crate::{Result, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wisp_core::Namespace;
use wisp_core::billing::{FreeTier, PriceSettings, Quota};

/// What a namespace may use. Every field is optional, `None` meaning the server's default,
/// so a setting added later reads as its default from records written before it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamespaceSettings {
    /// How many invocations of the namespace's functions may run at once; `None`: the
    /// server's default cap.
    pub max_concurrency: Option<u32>,
    /// Its limits per calendar month (none by default).
    pub quota: Quota,
    /// What it uses free each month (each `None`: the server's default).
    pub free_tier: FreeTier,
    /// Its own prices (each `None`: the server's).
    pub prices: PriceSettings,
}

/// A namespace as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    pub name: Namespace,
    pub settings: NamespaceSettings,
    pub created_at: UnixMillis,
    /// Changes with every write of the record, to a larger value; what
    /// [`Namespaces::update_namespace`] compares. Opaque otherwise: revisions need not be
    /// consecutive, and a namespace made again under the same name never gets back a
    /// revision it had before.
    pub revision: u64,
}

/// The namespaces that exist and their settings.
///
/// The control plane creates, updates and deletes them at an admin's request; the engine
/// reads them at start-up and when one changes. None of these is called per request, and
/// every method may block on I/O. A record changes whole; each method touches one record.
///
/// The store does not tie other concerns to these records: deploying into a namespace
/// without a record is the control plane's to refuse, and deleting the record leaves the
/// namespace's contents ([`crate::Store::remove_namespace`] removes both).
#[async_trait]
pub trait Namespaces: Send + Sync + 'static {
    /// Creates a namespace. Returns `false`, and writes nothing, when it exists already
    /// (whatever its settings): creating is not updating. Called by the control plane.
    ///
    /// Two creates racing on one name: exactly one returns `true` (a create-if-absent,
    /// which a KV bucket's create gives).
    async fn create_namespace(
        &self,
        name: &Namespace,
        settings: &NamespaceSettings,
        created_at: UnixMillis,
    ) -> Result<bool>;

    /// A namespace's record. Called by the control plane and the engine.
    async fn namespace(&self, name: &Namespace) -> Result<Option<NamespaceRecord>>;

    /// Every namespace, ordered by name. Called at start-up and by the API.
    async fn list_namespaces(&self) -> Result<Vec<NamespaceRecord>>;

    /// Replaces a namespace's settings if its revision is still `revision`: a
    /// compare-and-set, so that of two admins editing the same record the second is told
    /// instead of silently undoing the first. Returns the updated record, with a new,
    /// larger revision; `None`, writing nothing, when the namespace does not exist or its
    /// revision moved (read it again and retry). `created_at` stays. Called by the control
    /// plane.
    ///
    /// Writing the settings it has again still moves the revision.
    async fn update_namespace(
        &self,
        name: &Namespace,
        settings: &NamespaceSettings,
        revision: u64,
    ) -> Result<Option<NamespaceRecord>>;

    /// Deletes a namespace's record; only the record (see
    /// [`crate::Store::remove_namespace`]). Returns whether it existed. Idempotent.
    /// Called by [`crate::Store::remove_namespace`], last.
    async fn delete_namespace(&self, name: &Namespace) -> Result<bool>;
}

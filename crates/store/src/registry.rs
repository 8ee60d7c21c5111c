//! The registry: functions, their immutable versions and the code blobs versions point at
//! ([`Registry`] and its records).

use crate::{Result, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wisp_core::{FunctionConfig, FunctionName, Namespace, VersionId};

/// An immutable version of a function: code (by hash) plus configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub id: VersionId,
    /// Hex SHA-256 of the code.
    pub code_hash: String,
    pub code_size: u64,
    pub config: FunctionConfig,
    pub created_at: UnixMillis,
}

/// A function and the version it currently serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub namespace: Namespace,
    pub name: FunctionName,
    /// The app (manifest) that last deployed it, if any.
    pub app: Option<String>,
    pub version: VersionRecord,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// What a deploy did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum DeployOutcome {
    /// The function did not exist.
    Created,
    /// The function now serves a different version.
    Updated { previous: VersionId },
    /// The function already served exactly this version.
    Unchanged,
}

/// Functions, their versions and their code: what the engine serves.
///
/// A function points at the one version it serves. Versions are immutable, named by
/// `(namespace, function, id)`. Code blobs are content-addressed, named by
/// `(namespace, hash)`, and shared by every version of the namespace with that code.
///
/// The engine reads the whole registry at start-up and keeps it in memory, so the request
/// path never calls this trait: it serves the control plane (deploys, deletes, the API's
/// listings) and the loading of a version's code. Every method may block on I/O.
#[async_trait]
pub trait Registry: Send + Sync + 'static {
    /// Records `version` of `name` (saving `code` under `version.code_hash` unless a blob
    /// with that hash is stored already) and makes it the version the function serves.
    ///
    /// Called once per deploy, by the control plane; the engine does not deploy one
    /// function twice at the same time.
    ///
    /// Guarantees:
    /// - Nothing dangles: the blob is stored before the version that names it, and the
    ///   version before the function points at it, so no reader ever sees a function whose
    ///   version or code is missing. The function's record (its version, app and
    ///   `updated_at`) changes whole. A failure may leave a stored blob or version that
    ///   nothing serves yet; deploying again uses them. (SQLite does the whole deploy in one
    ///   transaction.)
    /// - Versions are immutable: when a version with this id is stored, it wins over
    ///   `version` (its code, config and `created_at` stay; a different `code_hash` is
    ///   logged and ignored).
    /// - Idempotent: deploying the serving version again is [`DeployOutcome::Unchanged`]
    ///   and leaves `updated_at` alone; only the `app` that deployed it may change.
    /// - Refuses, with [`crate::StoreError::Corrupt`] and writing nothing, to store `code`
    ///   whose length is not `version.code_size`: a caller that skipped the upload because
    ///   [`Registry::has_code`] said yes, and raced a delete, must not store empty bytes
    ///   under the hash.
    async fn deploy(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        app: Option<&str>,
        version: &VersionRecord,
        code: &[u8],
    ) -> Result<DeployOutcome>;

    /// Whether a code blob with this hash is stored in the namespace.
    ///
    /// Called before an upload, so a client can skip sending code the store has. The
    /// answer may be stale by the time the caller deploys (a delete may remove the blob);
    /// [`Registry::deploy`] refuses the missing bytes then.
    async fn has_code(&self, namespace: &Namespace, code_hash: &str) -> Result<bool>;

    /// The code blob with this hash.
    ///
    /// Called when the engine first needs a version's code (to compile it), not per
    /// invocation.
    async fn get_code(&self, namespace: &Namespace, code_hash: &str) -> Result<Option<Vec<u8>>>;

    /// A function and its serving version.
    ///
    /// Called after a deploy (to read the record back) and by the API. A function whose
    /// version or code is missing is [`crate::StoreError::Corrupt`], not absent.
    async fn get_function(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
    ) -> Result<Option<FunctionRecord>>;

    /// Every function of a namespace (or of all namespaces), ordered by namespace and name.
    ///
    /// Called once at start-up (all namespaces, to build the engine's routes) and by the
    /// API.
    async fn list_functions(&self, namespace: Option<&Namespace>) -> Result<Vec<FunctionRecord>>;

    /// Deletes a function's registry data: the function, its versions, and the code blobs
    /// no remaining version of the namespace uses (shared code stays). Returns whether the
    /// function existed.
    ///
    /// Touches no other concern: a caller deleting a function calls
    /// [`crate::Store::remove_function`], which forgets the function's records, events and
    /// schedule state first and calls this last.
    ///
    /// The function's record goes first, so it is never served or listed with half its
    /// versions. The versions and unused code go whether or not the function existed, so
    /// calling again after a failure finishes the job (and returns `false`). (SQLite
    /// deletes all of it in one transaction.)
    async fn delete_function(&self, namespace: &Namespace, name: &FunctionName) -> Result<bool>;
}

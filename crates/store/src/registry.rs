//! The registry: functions, their numbered immutable versions, their aliases, and the
//! code blobs versions point at ([`Registry`] and its records).

use crate::{Result, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wisp_core::version::live;
use wisp_core::{AliasName, AliasTarget, FunctionConfig, FunctionName, Namespace, Qualifier, VersionId};

/// A published version of a function: code (by hash) plus configuration, immutable,
/// under the next number of its function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Its number: 1 for a function's first version, then one more per publish.
    pub number: u32,
    /// Its content id: the same code and configuration make the same id, so two
    /// numbers may share one (a function deployed back to earlier code).
    pub id: VersionId,
    /// Hex SHA-256 of the code.
    pub code_hash: String,
    pub code_size: u64,
    pub config: FunctionConfig,
    pub created_at: UnixMillis,
}

/// A function: the versions it keeps, the aliases that point at them, and whether it
/// is disabled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub namespace: Namespace,
    pub name: FunctionName,
    /// The app (manifest) that last deployed it, if any.
    pub app: Option<String>,
    /// A disabled function runs nothing: sync calls are refused, async events and
    /// queue messages wait, schedules skip.
    pub disabled: bool,
    /// The versions kept, oldest first; never empty. Numbers only grow: a pruned
    /// number is never reused.
    pub versions: Vec<VersionRecord>,
    /// Its aliases by name; `live` is always there.
    pub aliases: BTreeMap<AliasName, AliasTarget>,
    /// Moves on every change to the record, for [`Registry::update_function`]'s
    /// compare-and-set. Opaque otherwise.
    pub revision: u64,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

impl FunctionRecord {
    /// The version numbered `number`, if kept.
    pub fn version(&self, number: u32) -> Option<&VersionRecord> {
        self.versions
            .binary_search_by_key(&number, |v| v.number)
            .ok()
            .map(|i| &self.versions[i])
    }

    /// The newest version.
    #[expect(
        clippy::expect_used,
        reason = "the store never yields a function without a version and a `live` alias that points at a kept one; it reports such a record as corrupt"
    )]
    pub fn latest(&self) -> &VersionRecord {
        self.versions
            .last()
            .expect("a function keeps at least one version")
    }

    /// Where `live` points.
    #[expect(
        clippy::expect_used,
        reason = "the store never yields a function without a version and a `live` alias that points at a kept one; it reports such a record as corrupt"
    )]
    pub fn live(&self) -> &AliasTarget {
        self.aliases
            .get(&live())
            .expect("every function has a `live` alias")
    }

    /// The main version of `live`: the configuration routes and triggers follow.
    #[expect(
        clippy::expect_used,
        reason = "the store never yields a function without a version and a `live` alias that points at a kept one; it reports such a record as corrupt"
    )]
    pub fn live_version(&self) -> &VersionRecord {
        self.version(self.live().version)
            .expect("`live` points at a kept version")
    }

    /// Where a qualifier points: an alias's target, or the one version it names.
    pub fn resolve(&self, qualifier: &Qualifier) -> Option<AliasTarget> {
        match qualifier {
            Qualifier::Alias(alias) => self.aliases.get(alias).cloned(),
            Qualifier::Version(n) => self.version(*n).map(|v| AliasTarget::one(v.number)),
            Qualifier::Latest => Some(AliasTarget::one(self.latest().number)),
        }
    }

    /// The aliases pointing at `number`.
    pub fn aliases_of(&self, number: u32) -> impl Iterator<Item = &AliasName> {
        self.aliases
            .iter()
            .filter(move |(_, target)| target.versions().any(|n| n == number))
            .map(|(name, _)| name)
    }
}

/// What a deploy did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum DeployOutcome {
    /// The function did not exist; `version` (1) is its first.
    Created { version: u32 },
    /// The code or configuration changed: `version` is published, and `live` moved to
    /// it from `previous` (when the deploy moves `live`).
    Published { version: u32, previous: AliasTarget },
    /// The newest version has this code and configuration already: nothing was
    /// published, and no alias moved.
    Unchanged { version: u32 },
}

impl DeployOutcome {
    /// The version the deploy published or found.
    pub fn version(&self) -> u32 {
        match self {
            DeployOutcome::Created { version }
            | DeployOutcome::Published { version, .. }
            | DeployOutcome::Unchanged { version } => *version,
        }
    }
}

/// How a deploy publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishOptions {
    /// Versions to keep besides those an alias points to: the newest this many.
    pub keep_versions: u32,
    /// Whether `live` moves to the version published (a deploy), or stays (publishing
    /// a version to point an alias at later).
    pub move_live: bool,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            keep_versions: 10,
            move_live: true,
        }
    }
}

/// One function of an app deploy: its name, its version (as for [`Registry::deploy`])
/// and its code (empty when the caller knows the blob is stored).
#[derive(Clone, Debug)]
pub struct AppFunction {
    pub name: FunctionName,
    pub version: VersionRecord,
    /// Shared by the app's functions with the same code: one upload serves them all.
    pub code: std::sync::Arc<[u8]>,
}

/// A change to a function's record other than a deploy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FunctionChange {
    /// Creates or moves an alias. Its versions must be kept.
    SetAlias(AliasName, AliasTarget),
    /// Removes an alias (never `live`).
    DeleteAlias(AliasName),
    /// Disables or enables the function.
    SetDisabled(bool),
}

/// What [`Registry::update_function`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Updated {
    /// The change is made: the record as it is now.
    Done(Box<FunctionRecord>),
    /// Nothing written: the function's revision moved (read it again and retry).
    Stale,
    /// Nothing written: no such function.
    NoFunction,
    /// Nothing written: the alias would point at a version not kept.
    NoVersion(u32),
    /// Nothing written: no such alias to delete, or `live`, which stays.
    NoAlias,
}

/// Functions, their versions, their aliases and their code: what the engine serves.
///
/// A function keeps numbered, immutable versions and points aliases at them; `live`
/// is what routes and triggers run. Code blobs are content-addressed, named by
/// `(namespace, hash)`, and shared by every version of the namespace with that code.
///
/// The engine reads the whole registry at start-up and keeps it in memory, so the request
/// path never calls this trait: it serves the control plane (deploys, alias changes,
/// deletes, the API's listings) and the loading of a version's code. Every method may
/// block on I/O.
#[async_trait]
pub trait Registry: Send + Sync + 'static {
    /// Publishes `version` of `name` unless the function's newest version has the same
    /// content id (saving `code` under `version.code_hash` unless a blob with that hash
    /// is stored already), numbers it one past the newest number the function ever had,
    /// and, with `options.move_live`, points `live` at it alone. Then forgets versions
    /// beyond the newest `options.keep_versions` that no alias points to, with the code
    /// no remaining version of the namespace uses. `version.number` is ignored.
    ///
    /// Called once per deploy, by the control plane. Returns the outcome and the record
    /// as it is after the deploy.
    ///
    /// Guarantees:
    /// - Nothing dangles: the blob is stored before the version that names it, and the
    ///   version before an alias points at it, so no reader ever sees a function whose
    ///   version or code is missing. The function's record changes whole (its revision
    ///   moves). A failure may leave a stored blob that nothing uses yet; deploying again
    ///   uses it. (SQLite does the whole deploy in one transaction.)
    /// - Idempotent: deploying the newest version's content again is
    ///   [`DeployOutcome::Unchanged`], moves no alias and leaves `updated_at` alone; only
    ///   the `app` that deployed it may change.
    /// - Two deploys of one function at once publish two numbers, one after the other;
    ///   neither is lost (a backend without transactions takes the next number by
    ///   compare-and-set on the function's revision).
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
        options: PublishOptions,
    ) -> Result<(DeployOutcome, FunctionRecord)>;

    /// Deploys an app in one step: publishes each of `functions` as
    /// [`Registry::deploy`] does (with `app` and `options`), and deletes the registry
    /// data of each of `removed`, as [`Registry::delete_function`] does. Returns each
    /// function's outcome and record, in order.
    ///
    /// All or nothing: on an error nothing of it is written (SQLite: one transaction;
    /// a backend without transactions across records stages the code and versions,
    /// which nothing serves, then commits the functions' records in one atomic batch
    /// of its registry stream). Called once per app deploy, by the control plane; a
    /// caller removing functions forgets their other concerns afterwards
    /// ([`crate::Store::remove_function`]).
    async fn deploy_app(
        &self,
        namespace: &Namespace,
        app: &str,
        functions: &[AppFunction],
        removed: &[FunctionName],
        options: PublishOptions,
    ) -> Result<Vec<(DeployOutcome, FunctionRecord)>>;

    /// Makes `change` to a function whose revision is still `revision`. See
    /// [`Updated`] for what it answers; only [`Updated::Done`] wrote anything, and it
    /// moved the revision (`updated_at` too).
    async fn update_function(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        revision: u64,
        change: &FunctionChange,
    ) -> Result<Updated>;

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

    /// A function, its kept versions and its aliases.
    ///
    /// Called by the control plane and the API. A function whose versions, aliases or
    /// code do not fit together (an alias to a version not kept, a version whose code
    /// is missing) is [`crate::StoreError::Corrupt`], not absent.
    async fn get_function(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
    ) -> Result<Option<FunctionRecord>>;

    /// Every function of a namespace (or of all namespaces), ordered by namespace and name.
    ///
    /// Called once at start-up (all namespaces, to build the engine's registry) and by
    /// the API.
    async fn list_functions(&self, namespace: Option<&Namespace>) -> Result<Vec<FunctionRecord>>;

    /// Deletes a function's registry data: the function, its aliases, its versions, and
    /// the code blobs no remaining version of the namespace uses (shared code stays).
    /// Returns whether the function existed.
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

    /// Which functions change, as they change, when several processes share the store:
    /// the namespace and name of each function whose record any of them (this one
    /// included) writes or deletes from now on. `None` for a backend only this process
    /// writes (SQLite): its changes are the ones it made.
    ///
    /// Called once at start-up by the engine, which keeps the registry in memory and reads
    /// each function named here again ([`Registry::get_function`]), so a deploy on one
    /// node is served by every node. A name may come more than once, and for a change the
    /// caller already has. When the stream ends (with an error or not) changes may have
    /// been missed: the caller lists every function again and watches anew.
    async fn watch_functions(&self) -> Result<Option<FunctionWatch>> {
        Ok(None)
    }
}

/// The functions changed by any process sharing the store, as [`Registry::watch_functions`]
/// yields them.
pub type FunctionWatch =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<(Namespace, FunctionName)>> + Send>>;

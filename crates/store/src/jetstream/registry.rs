//! The JetStream [`Registry`]: bucket `{prefix}_registry` holds the records, object store
//! `{prefix}_code` the code bytes.
//!
//! - `fn.NAMESPACE.NAME`: a function's whole record (app, disabled, the next version
//!   number, its kept versions with their configuration, its aliases, times) as JSON; its
//!   `revision` is the entry's KV revision.
//! - `code.NAMESPACE.HASH`: a code blob of the namespace: its size, the object holding its
//!   bytes (`NAMESPACE/HASH/UUID` in `{prefix}_code`), and the functions of the namespace
//!   with a kept version that uses it.
//!
//! Every change (a deploy, an app deploy, a delete) reads the entries it touches, decides
//! in memory as SQLite's transaction does, and commits every entry it changed in **one
//! atomic batch** of the bucket's stream (ADR-50, nats-server ≥ 2.12, `allow_atomic` on the
//! stream), each message expecting the revision it read
//! (`Nats-Expected-Last-Subject-Sequence`): the server stores all of it or none of it, and
//! refuses all of it when any entry changed since it was read; the change is then read and
//! decided again. Code bytes are uploaded before the batch, under a fresh object name that
//! nothing serves until a committed `code.` entry names it; the object of a `code.` entry
//! the batch deleted is removed after the commit.

use super::batch;
use super::{
    JetStreamStore, MAX_CAS_ATTEMPTS, backend, contended, decode, encode, is_key_token, live_entries,
};
use crate::{
    AppFunction, DeployOutcome, FunctionChange, FunctionRecord, FunctionWatch, PublishOptions, Registry,
    Result, StoreError, UnixMillis, Updated, VersionRecord,
};
use async_nats::jetstream::kv;
use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tokio::io::AsyncReadExt;
use wisp_core::version::live;
use wisp_core::{AliasName, AliasTarget, FunctionName, Namespace};

fn function_key(namespace: &Namespace, name: &FunctionName) -> String {
    format!("fn.{namespace}.{name}")
}

fn code_key(namespace: &Namespace, hash: &str) -> Result<String> {
    if !is_key_token(hash) {
        return Err(StoreError::Corrupt(format!(
            "code hash `{hash}` of `{namespace}` cannot name a JetStream key"
        )));
    }
    Ok(format!("code.{namespace}.{hash}"))
}

/// A function's record as stored (its revision is the entry's).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredFunction {
    namespace: Namespace,
    name: FunctionName,
    app: Option<String>,
    disabled: bool,
    /// The number the next published version takes.
    next_version: u32,
    versions: Vec<VersionRecord>,
    aliases: BTreeMap<AliasName, AliasTarget>,
    created_at: UnixMillis,
    updated_at: UnixMillis,
}

impl StoredFunction {
    fn record(&self, revision: u64) -> FunctionRecord {
        FunctionRecord {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            app: self.app.clone(),
            disabled: self.disabled,
            versions: self.versions.clone(),
            aliases: self.aliases.clone(),
            revision,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A code blob as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredCode {
    size: u64,
    /// The object of `{prefix}_code` holding the bytes.
    object: String,
    /// The functions of the namespace with a kept version that uses it; the entry goes
    /// when this empties.
    users: BTreeSet<FunctionName>,
}

/// Checks a record read whole: versions, `live`, and every alias's versions kept.
fn check(record: &FunctionRecord) -> Result<()> {
    let at = format!("`{}/{}`", record.namespace, record.name);
    if record.versions.is_empty() {
        return Err(StoreError::Corrupt(format!("function {at} has no version")));
    }
    if !record.aliases.contains_key(&live()) {
        return Err(StoreError::Corrupt(format!("function {at} has no `live` alias")));
    }
    for (alias, target) in &record.aliases {
        if let Some(missing) = target.versions().find(|&n| record.version(n).is_none()) {
            return Err(StoreError::Corrupt(format!(
                "alias `{alias}` of function {at} points at version {missing}, which is not stored"
            )));
        }
    }
    Ok(())
}

/// One entry of the bucket as a change read it: the revision to expect when writing it
/// (`0`: no message ever), its value now (`None`: absent or deleted), and whether the
/// change wrote it.
struct Slot<T> {
    expected: u64,
    value: Option<T>,
    dirty: bool,
}

/// The entries a change read and the changes it made, committed by [`Change::commit`].
struct Change<'a> {
    store: &'a JetStreamStore,
    what: &'a str,
    functions: HashMap<String, Slot<StoredFunction>>,
    code: HashMap<String, Slot<StoredCode>>,
    /// Objects uploaded for this change (key → object), kept across attempts.
    uploaded: &'a mut HashMap<String, String>,
    /// The order keys were first written in, for the batch.
    order: Vec<String>,
    /// The objects of the code entries deleted, to remove once committed.
    doomed: Vec<String>,
}

impl<'a> Change<'a> {
    async fn read_slot<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Slot<T>> {
        let entry = self
            .store
            .registry
            .entry(key)
            .await
            .map_err(|e| backend(self.what, e))?;
        Ok(match entry {
            None => Slot {
                expected: 0,
                value: None,
                dirty: false,
            },
            Some(entry) => Slot {
                expected: entry.revision,
                value: match entry.operation {
                    kv::Operation::Put => Some(decode(&entry)?),
                    _ => None,
                },
                dirty: false,
            },
        })
    }

    async fn function(&mut self, key: &str) -> Result<&mut Slot<StoredFunction>> {
        if !self.functions.contains_key(key) {
            let slot = self.read_slot(key).await?;
            self.functions.insert(key.to_owned(), slot);
        }
        self.functions
            .get_mut(key)
            .ok_or_else(|| backend(self.what, "a slot vanished"))
    }

    async fn code(&mut self, key: &str) -> Result<&mut Slot<StoredCode>> {
        if !self.code.contains_key(key) {
            let slot = self.read_slot(key).await?;
            self.code.insert(key.to_owned(), slot);
        }
        self.code
            .get_mut(key)
            .ok_or_else(|| backend(self.what, "a slot vanished"))
    }

    fn touch(&mut self, key: &str) {
        if !self.order.iter().any(|k| k == key) {
            self.order.push(key.to_owned());
        }
    }

    fn set_function(&mut self, key: &str, value: Option<StoredFunction>) {
        if let Some(slot) = self.functions.get_mut(key) {
            slot.value = value;
            slot.dirty = true;
        }
        self.touch(key);
    }

    /// Adds `user` to the users of code `hash`, storing the code first when the namespace
    /// has no blob with that hash; returns the stored size.
    async fn use_code(
        &mut self,
        namespace: &Namespace,
        user: &FunctionName,
        version: &VersionRecord,
        bytes: &[u8],
    ) -> Result<u64> {
        let key = code_key(namespace, &version.code_hash)?;
        let stored = self.code(&key).await?.value.clone();
        let code = match stored {
            Some(mut code) => {
                if code.users.contains(user) {
                    return Ok(code.size);
                }
                code.users.insert(user.clone());
                code
            }
            None => {
                if bytes.len() as u64 != version.code_size {
                    return Err(StoreError::Corrupt(format!(
                        "refusing to store {} bytes as code `{}` of `{namespace}/{user}`: the version says {} bytes",
                        bytes.len(),
                        version.code_hash,
                        version.code_size
                    )));
                }
                let object = match self.uploaded.get(&key) {
                    Some(object) => object.clone(),
                    None => {
                        let object = format!(
                            "{namespace}/{}/{}",
                            version.code_hash,
                            uuid::Uuid::now_v7().simple()
                        );
                        let mut reader = bytes;
                        self.store
                            .code
                            .put(object.as_str(), &mut reader)
                            .await
                            .map_err(|e| backend(format!("{}: storing code", self.what), e))?;
                        self.uploaded.insert(key.clone(), object.clone());
                        object
                    }
                };
                StoredCode {
                    size: bytes.len() as u64,
                    object,
                    users: BTreeSet::from([user.clone()]),
                }
            }
        };
        let size = code.size;
        if let Some(slot) = self.code.get_mut(&key) {
            slot.value = Some(code);
            slot.dirty = true;
        }
        self.touch(&key);
        Ok(size)
    }

    /// Removes `user` from the users of the code of each of `hashes` that `remaining` no
    /// longer uses, deleting the entries that no function uses any more.
    async fn release_code(
        &mut self,
        namespace: &Namespace,
        user: &FunctionName,
        hashes: BTreeSet<String>,
        remaining: &[VersionRecord],
    ) -> Result<()> {
        for hash in hashes {
            if remaining.iter().any(|v| v.code_hash == hash) {
                continue;
            }
            let key = code_key(namespace, &hash)?;
            let Some(mut code) = self.code(&key).await?.value.clone() else {
                continue;
            };
            if !code.users.remove(user) {
                continue;
            }
            let value = if code.users.is_empty() {
                self.doomed.push(code.object);
                None
            } else {
                Some(code)
            };
            if let Some(slot) = self.code.get_mut(&key) {
                slot.value = value;
                slot.dirty = true;
            }
            self.touch(&key);
        }
        Ok(())
    }

    /// Publishes one version of `name` as [`Registry::deploy`] does.
    #[expect(
        clippy::too_many_arguments,
        reason = "one deploy's inputs, as the trait takes them"
    )]
    async fn deploy(
        &mut self,
        namespace: &Namespace,
        name: &FunctionName,
        app: Option<&str>,
        version: &VersionRecord,
        code: &[u8],
        options: PublishOptions,
        now: UnixMillis,
    ) -> Result<DeployOutcome> {
        let key = function_key(namespace, name);
        let current = self.function(&key).await?.value.clone();
        if let Some(mut current) = current.clone()
            && let Some(newest) = current.versions.last()
            && newest.id == version.id
        {
            let number = newest.number;
            if current.app.as_deref() != app {
                current.app = app.map(str::to_owned);
                self.set_function(&key, Some(current));
            }
            return Ok(DeployOutcome::Unchanged { version: number });
        }
        let code_size = self.use_code(namespace, name, version, code).await?;
        let mut function = current.clone().unwrap_or_else(|| StoredFunction {
            namespace: namespace.clone(),
            name: name.clone(),
            app: None,
            disabled: false,
            next_version: 1,
            versions: Vec::new(),
            aliases: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        });
        let number = function.next_version;
        function.next_version = number.checked_add(1).ok_or_else(|| {
            backend(
                self.what,
                format!("`{namespace}/{name}` has run out of version numbers"),
            )
        })?;
        function.versions.push(VersionRecord {
            number,
            code_size,
            ..version.clone()
        });
        function.app = app.map(str::to_owned);
        function.updated_at = now;
        let outcome = match function.aliases.get(&live()).cloned() {
            None => {
                function.aliases.insert(live(), AliasTarget::one(number));
                DeployOutcome::Created { version: number }
            }
            Some(previous) => {
                if options.move_live {
                    function.aliases.insert(live(), AliasTarget::one(number));
                }
                DeployOutcome::Published {
                    version: number,
                    previous,
                }
            }
        };
        // Prune: beyond the newest `keep_versions`, what no alias points to.
        let keep = options.keep_versions.max(1) as usize;
        let newest_from = function.versions.len().saturating_sub(keep);
        let aliased: BTreeSet<u32> = function.aliases.values().flat_map(|t| t.versions()).collect();
        let (kept, pruned): (Vec<_>, Vec<_>) = function
            .versions
            .drain(..)
            .enumerate()
            .partition(|(i, v)| *i >= newest_from || aliased.contains(&v.number));
        function.versions = kept.into_iter().map(|(_, v)| v).collect();
        let hashes = pruned.into_iter().map(|(_, v)| v.code_hash).collect();
        self.release_code(namespace, name, hashes, &function.versions.clone())
            .await?;
        self.set_function(&key, Some(function));
        Ok(outcome)
    }

    /// Deletes `name`'s record and releases its code; whether it existed.
    async fn delete(&mut self, namespace: &Namespace, name: &FunctionName) -> Result<bool> {
        let key = function_key(namespace, name);
        let Some(current) = self.function(&key).await?.value.clone() else {
            return Ok(false);
        };
        let hashes = current.versions.iter().map(|v| v.code_hash.clone()).collect();
        self.set_function(&key, None);
        self.release_code(namespace, name, hashes, &[]).await?;
        Ok(true)
    }

    /// The record of `name` as the change leaves it, with the revision it will have once
    /// committed at `revisions`.
    fn record(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        revisions: &HashMap<String, u64>,
    ) -> Result<FunctionRecord> {
        let key = function_key(namespace, name);
        let slot = self
            .functions
            .get(&key)
            .and_then(|slot| slot.value.as_ref().map(|v| (slot, v)));
        let Some((slot, value)) = slot else {
            return Err(backend(
                self.what,
                format!("`{namespace}/{name}` vanished while deploying"),
            ));
        };
        let revision = revisions.get(&key).copied().unwrap_or(slot.expected);
        Ok(value.record(revision))
    }

    /// Commits every entry written in one atomic batch; the new revision of each, or
    /// `None` when an entry changed since it was read (nothing is written then).
    async fn commit(&self) -> Result<Option<HashMap<String, u64>>> {
        let mut entries = Vec::new();
        for key in &self.order {
            let (expected, value) = if let Some(slot) = self.functions.get(key) {
                let value = slot.value.as_ref().map(|v| encode(v, self.what)).transpose()?;
                (slot.expected, value)
            } else if let Some(slot) = self.code.get(key) {
                let value = slot.value.as_ref().map(|v| encode(v, self.what)).transpose()?;
                (slot.expected, value)
            } else {
                continue;
            };
            // Deleting what was never there writes nothing.
            if value.is_none() && expected == 0 {
                continue;
            }
            entries.push((key.clone(), expected, value));
        }
        batch::commit(&self.store.context, &self.store.registry, &entries, self.what).await
    }
}

impl<'a> Change<'a> {
    fn new(
        store: &'a JetStreamStore,
        what: &'a str,
        uploaded: &'a mut HashMap<String, String>,
    ) -> Change<'a> {
        Change {
            store,
            what,
            functions: HashMap::new(),
            code: HashMap::new(),
            uploaded,
            order: Vec::new(),
            doomed: Vec::new(),
        }
    }

    /// The objects to remove once committed: those of the code entries deleted, and those
    /// uploaded but named by no entry.
    fn unused_objects(&self) -> Vec<String> {
        let named: BTreeSet<&str> = self
            .code
            .values()
            .filter_map(|slot| slot.value.as_ref().map(|c| c.object.as_str()))
            .collect();
        let mut unused = self.doomed.clone();
        unused.extend(
            self.uploaded
                .values()
                .filter(|object| !named.contains(object.as_str()))
                .cloned(),
        );
        unused
    }
}

impl JetStreamStore {
    /// Removes code objects no committed entry names (best effort: one left behind is
    /// bytes nothing reads).
    async fn remove_objects(&self, objects: Vec<String>) {
        for object in objects {
            if let Err(e) = self.code.delete(&object).await {
                tracing::warn!(%object, error = %e, "could not remove an unused code object");
            }
        }
    }

    /// Deploys `functions` and removes `removed` in one atomic batch (see the module docs).
    async fn apply(
        &self,
        namespace: &Namespace,
        app: Option<&str>,
        functions: &[(&FunctionName, &VersionRecord, &[u8])],
        removed: &[FunctionName],
        options: PublishOptions,
        what: &str,
    ) -> Result<Vec<(DeployOutcome, FunctionRecord)>> {
        let mut uploaded = HashMap::new();
        let result = self
            .apply_attempts(namespace, app, functions, removed, options, what, &mut uploaded)
            .await;
        match result {
            Ok((done, unused)) => {
                self.remove_objects(unused).await;
                Ok(done)
            }
            Err(e) => {
                self.remove_objects(uploaded.into_values().collect()).await;
                Err(e)
            }
        }
    }

    #[expect(clippy::too_many_arguments, reason = "one deploy's inputs, passed through")]
    async fn apply_attempts(
        &self,
        namespace: &Namespace,
        app: Option<&str>,
        functions: &[(&FunctionName, &VersionRecord, &[u8])],
        removed: &[FunctionName],
        options: PublishOptions,
        what: &str,
        uploaded: &mut HashMap<String, String>,
    ) -> Result<(Vec<(DeployOutcome, FunctionRecord)>, Vec<String>)> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let now = wisp_core::wall::now_ms();
            let mut change = Change::new(self, what, uploaded);
            let mut outcomes = Vec::with_capacity(functions.len());
            for (name, version, code) in functions {
                outcomes.push(
                    change
                        .deploy(namespace, name, app, version, code, options, now)
                        .await?,
                );
            }
            for name in removed {
                change.delete(namespace, name).await?;
            }
            let Some(revisions) = change.commit().await? else {
                continue;
            };
            let done = functions
                .iter()
                .zip(outcomes)
                .map(|((name, _, _), outcome)| Ok((outcome, change.record(namespace, name, &revisions)?)))
                .collect::<Result<Vec<_>>>()?;
            return Ok((done, change.unused_objects()));
        }
        Err(contended(what))
    }

    /// The code entry of `hash`, if live.
    async fn code_entry(&self, namespace: &Namespace, hash: &str, what: &str) -> Result<Option<StoredCode>> {
        let Ok(key) = code_key(namespace, hash) else {
            return Ok(None);
        };
        super::live_entry(&self.registry, &key, what)
            .await?
            .map(|entry| decode(&entry))
            .transpose()
    }

    /// Checks that every version's code is stored, as `code` (hash → entry) has it.
    fn check_code(record: &FunctionRecord, code: &HashMap<String, StoredCode>) -> Result<()> {
        for v in &record.versions {
            if !code.contains_key(&v.code_hash) {
                return Err(StoreError::Corrupt(format!(
                    "the code `{}` of version {} of function `{}/{}` is not stored",
                    v.code_hash, v.number, record.namespace, record.name
                )));
            }
        }
        Ok(())
    }
}

fn function_record(entry: &kv::Entry) -> Result<FunctionRecord> {
    let stored: StoredFunction = decode(entry)?;
    let record = stored.record(entry.revision);
    check(&record)?;
    Ok(record)
}

#[async_trait]
impl Registry for JetStreamStore {
    async fn deploy(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        app: Option<&str>,
        version: &VersionRecord,
        code: &[u8],
        options: PublishOptions,
    ) -> Result<(DeployOutcome, FunctionRecord)> {
        let what = format!("deploying `{namespace}/{name}`");
        self.apply(namespace, app, &[(name, version, code)], &[], options, &what)
            .await?
            .pop()
            .ok_or_else(|| backend(&what, "no outcome"))
    }

    async fn deploy_app(
        &self,
        namespace: &Namespace,
        app: &str,
        functions: &[AppFunction],
        removed: &[FunctionName],
        options: PublishOptions,
    ) -> Result<Vec<(DeployOutcome, FunctionRecord)>> {
        let what = format!("deploying app `{app}` to `{namespace}`");
        let items: Vec<(&FunctionName, &VersionRecord, &[u8])> = functions
            .iter()
            .map(|f| (&f.name, &f.version, &f.code[..]))
            .collect();
        self.apply(namespace, Some(app), &items, removed, options, &what)
            .await
    }

    /// One KV `update` expecting `revision`: a refusal is [`Updated::Stale`].
    async fn update_function(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        revision: u64,
        change: &FunctionChange,
    ) -> Result<Updated> {
        let what = format!("changing function `{namespace}/{name}`");
        let key = function_key(namespace, name);
        let Some(entry) = super::live_entry(&self.registry, &key, &what).await? else {
            return Ok(Updated::NoFunction);
        };
        if entry.revision != revision {
            return Ok(Updated::Stale);
        }
        let mut stored: StoredFunction = decode(&entry)?;
        match change {
            FunctionChange::SetAlias(alias, target) => {
                if let Some(missing) = target
                    .versions()
                    .find(|&n| !stored.versions.iter().any(|v| v.number == n))
                {
                    return Ok(Updated::NoVersion(missing));
                }
                stored.aliases.insert(alias.clone(), target.clone());
            }
            FunctionChange::DeleteAlias(alias) => {
                if *alias == live() || stored.aliases.remove(alias).is_none() {
                    return Ok(Updated::NoAlias);
                }
            }
            FunctionChange::SetDisabled(disabled) => stored.disabled = *disabled,
        }
        stored.updated_at = wisp_core::wall::now_ms();
        let value = encode(&stored, &what)?;
        match super::update(&self.registry, &key, value, revision, &what).await? {
            super::Written::Done(revision) => Ok(Updated::Done(Box::new(stored.record(revision)))),
            super::Written::Raced => Ok(Updated::Stale),
        }
    }

    async fn has_code(&self, namespace: &Namespace, code_hash: &str) -> Result<bool> {
        let what = format!("looking up code `{code_hash}` in `{namespace}`");
        Ok(self.code_entry(namespace, code_hash, &what).await?.is_some())
    }

    async fn get_code(&self, namespace: &Namespace, code_hash: &str) -> Result<Option<Vec<u8>>> {
        let what = format!("reading code `{code_hash}` in `{namespace}`");
        let Some(code) = self.code_entry(namespace, code_hash, &what).await? else {
            return Ok(None);
        };
        let mut object = match self.code.get(&code.object).await {
            Ok(object) => object,
            // Deleted since its entry was read: gone, as if read a moment later.
            Err(e) if e.kind() == async_nats::jetstream::object_store::GetErrorKind::NotFound => {
                return Ok(None);
            }
            Err(e) => return Err(backend(&what, e)),
        };
        let mut bytes = Vec::with_capacity(usize::try_from(code.size).unwrap_or(0));
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| backend(&what, e))?;
        Ok(Some(bytes))
    }

    /// Reads the record, then the code entries of its versions; when one is missing and
    /// the record moved meanwhile, reads again (a delete or prune came between).
    async fn get_function(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
    ) -> Result<Option<FunctionRecord>> {
        let what = format!("reading function `{namespace}/{name}`");
        let key = function_key(namespace, name);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(entry) = super::live_entry(&self.registry, &key, &what).await? else {
                return Ok(None);
            };
            let record = function_record(&entry)?;
            let mut code = HashMap::new();
            for v in &record.versions {
                if let Some(c) = self.code_entry(namespace, &v.code_hash, &what).await? {
                    code.insert(v.code_hash.clone(), c);
                }
            }
            if let Err(e) = JetStreamStore::check_code(&record, &code) {
                let again = super::live_entry(&self.registry, &key, &what).await?;
                if again.map(|e| e.revision) == Some(entry.revision) {
                    return Err(e);
                }
                continue;
            }
            return Ok(Some(record));
        }
        Err(contended(what))
    }

    async fn list_functions(&self, namespace: Option<&Namespace>) -> Result<Vec<FunctionRecord>> {
        let what = match namespace {
            Some(ns) => format!("listing the functions of `{ns}`"),
            None => "listing the functions of every namespace".to_owned(),
        };
        let (fn_prefix, code_prefix) = match namespace {
            Some(ns) => (format!("fn.{ns}."), format!("code.{ns}.")),
            None => ("fn.".to_owned(), "code.".to_owned()),
        };
        for _ in 0..MAX_CAS_ATTEMPTS {
            let entries = live_entries(&self.registry, &fn_prefix, &what).await?;
            let mut code: HashMap<(String, String), StoredCode> = HashMap::new();
            for entry in live_entries(&self.registry, &code_prefix, &what).await? {
                let mut parts = entry.key.splitn(3, '.').skip(1);
                if let (Some(ns), Some(hash)) = (parts.next(), parts.next()) {
                    code.insert((ns.to_owned(), hash.to_owned()), decode(&entry)?);
                }
            }
            let mut records = entries.iter().map(function_record).collect::<Result<Vec<_>>>()?;
            let missing = records.iter().find(|r| {
                r.versions
                    .iter()
                    .any(|v| !code.contains_key(&(r.namespace.to_string(), v.code_hash.clone())))
            });
            if let Some(record) = missing {
                // Read again: a delete or prune may have come between the two reads.
                let key = function_key(&record.namespace, &record.name);
                let again = super::live_entry(&self.registry, &key, &what).await?;
                if again.map(|e| e.revision) == Some(record.revision) {
                    self.get_function(&record.namespace, &record.name).await?;
                }
                continue;
            }
            records.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            return Ok(records);
        }
        Err(contended(what))
    }

    async fn delete_function(&self, namespace: &Namespace, name: &FunctionName) -> Result<bool> {
        let what = format!("deleting function `{namespace}/{name}`");
        let mut uploaded = HashMap::new();
        for _ in 0..MAX_CAS_ATTEMPTS {
            let mut change = Change::new(self, &what, &mut uploaded);
            let existed = change.delete(namespace, name).await?;
            if change.commit().await?.is_some() {
                let unused = change.unused_objects();
                self.remove_objects(unused).await;
                return Ok(existed);
            }
        }
        Err(contended(what))
    }

    /// A KV watch of the `fn.` entries: every put and delete of a function's record, by
    /// any node, from now on. A key that does not name a function (none should) ends the
    /// stream with [`StoreError::Corrupt`].
    async fn watch_functions(&self) -> Result<Option<FunctionWatch>> {
        let what = "watching the registry";
        let watch = self.registry.watch("fn.>").await.map_err(|e| backend(what, e))?;
        let names = watch.map(move |entry| {
            let entry = entry.map_err(|e| backend(what, e))?;
            let named = entry.key.strip_prefix("fn.").and_then(|rest| {
                let (namespace, name) = rest.split_once('.')?;
                Some((Namespace::new(namespace).ok()?, FunctionName::new(name).ok()?))
            });
            named.ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "entry `{}` of JetStream bucket `{}` names no function",
                    entry.key, entry.bucket
                ))
            })
        });
        Ok(Some(Box::pin(names)))
    }
}

/// Opens the registry's bucket `{prefix}_registry`, with atomic batch publish allowed on
/// its stream (nats-server ≥ 2.12), and its object store `{prefix}_code`.
pub(super) async fn open(
    context: &async_nats::jetstream::Context,
    prefix: &str,
) -> Result<(kv::Store, async_nats::jetstream::object_store::ObjectStore)> {
    let registry = batch::atomic_bucket(context, prefix, "registry").await?;
    let code = super::object_store(context, &format!("{prefix}_code")).await?;
    Ok((registry, code))
}

#[cfg(test)]
mod tests {
    //! What the shared suite cannot show: that the server, not the client, makes an app
    //! deploy whole, and that racing writers neither lose nor mix changes.
    use super::*;
    use futures::TryStreamExt;
    use wisp_core::{FunctionConfig, Kind, VersionId};
    use wisp_test_support::nats::NatsServer;

    fn version(id: &str, code: &[u8]) -> VersionRecord {
        VersionRecord {
            number: 0,
            id: VersionId(id.to_owned()),
            code_hash: code.iter().map(|b| format!("{b:02x}")).collect(),
            code_size: code.len() as u64,
            config: FunctionConfig::new(Kind::Http),
            created_at: 1,
        }
    }

    fn app_function(name: &str, id: &str) -> AppFunction {
        AppFunction {
            name: FunctionName::new(name).unwrap(),
            version: version(id, id.as_bytes()),
            code: std::sync::Arc::from(id.as_bytes()),
        }
    }

    async fn open() -> (NatsServer, JetStreamStore) {
        let server = NatsServer::start();
        let store = JetStreamStore::connect(&server.url, "test").await.unwrap();
        (server, store)
    }

    /// The next change `watch` names, within 5 seconds.
    async fn next(watch: &mut FunctionWatch) -> (Namespace, FunctionName) {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), watch.next());
        next.await.expect("a change within 5 s").unwrap().unwrap()
    }

    /// Another node's watch names every function a deploy, an app deploy, an alias change
    /// and a delete touch, as they happen, and nothing else the registry holds (code).
    #[tokio::test]
    async fn another_node_watches_every_change_to_a_function() {
        let (server, store) = open().await;
        let other = JetStreamStore::connect(&server.url, "test").await.unwrap();
        let mut watch = other.watch_functions().await.unwrap().unwrap();
        let ns = Namespace::new("default").unwrap();
        let a = FunctionName::new("a").unwrap();
        let (_, record) = store
            .deploy(
                &ns,
                &a,
                None,
                &version("a-1", b"a1"),
                b"a1",
                PublishOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(next(&mut watch).await, (ns.clone(), a.clone()));
        let change = FunctionChange::SetDisabled(true);
        store
            .update_function(&ns, &a, record.revision, &change)
            .await
            .unwrap();
        assert_eq!(next(&mut watch).await, (ns.clone(), a.clone()));
        store
            .deploy_app(
                &ns,
                "app",
                &[app_function("b", "b-1")],
                std::slice::from_ref(&a),
                PublishOptions::default(),
            )
            .await
            .unwrap();
        let mut both = vec![next(&mut watch).await.1, next(&mut watch).await.1];
        both.sort();
        assert_eq!(both, vec![a.clone(), FunctionName::new("b").unwrap()]);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(300), watch.next())
                .await
                .is_err(),
            "a change nothing made"
        );
    }

    /// A change whose batch names one entry another writer changed after it was read is
    /// refused by the server whole: the entries it would have created stay absent.
    #[tokio::test]
    async fn a_batch_with_one_stale_entry_writes_nothing() {
        let (_server, store) = open().await;
        let ns = Namespace::new("default").unwrap();
        let (a, b) = (FunctionName::new("a").unwrap(), FunctionName::new("b").unwrap());
        store
            .deploy(
                &ns,
                &b,
                None,
                &version("b-1", b"b1"),
                b"b1",
                PublishOptions::default(),
            )
            .await
            .unwrap();

        let mut uploaded = HashMap::new();
        let mut change = Change::new(&store, "test", &mut uploaded);
        for (name, id) in [(&a, "a-1"), (&b, "b-2")] {
            change
                .deploy(
                    &ns,
                    name,
                    None,
                    &version(id, id.as_bytes()),
                    id.as_bytes(),
                    PublishOptions::default(),
                    5,
                )
                .await
                .unwrap();
        }
        // Another node deploys `b` between the read and the commit.
        store
            .deploy(
                &ns,
                &b,
                None,
                &version("b-3", b"b3"),
                b"b3",
                PublishOptions::default(),
            )
            .await
            .unwrap();
        assert!(
            change.commit().await.unwrap().is_none(),
            "a stale batch was committed"
        );
        assert_eq!(
            store.get_function(&ns, &a).await.unwrap(),
            None,
            "half a batch was written"
        );
        assert!(
            !store
                .has_code(&ns, &version("a-1", b"a-1").code_hash)
                .await
                .unwrap()
        );
        let b_now = store.get_function(&ns, &b).await.unwrap().unwrap();
        assert_eq!(b_now.latest().id.0, "b-3");
    }

    /// Eight deploys of one function at once publish eight numbers, none lost.
    #[tokio::test]
    async fn racing_deploys_publish_one_number_each() {
        let (_server, store) = open().await;
        let ns = Namespace::new("default").unwrap();
        let hello = FunctionName::new("hello").unwrap();
        let deploys = (0..8).map(|n| {
            let (store, ns, hello) = (store.clone(), ns.clone(), hello.clone());
            tokio::spawn(async move {
                let id = format!("v{n}");
                store
                    .deploy(
                        &ns,
                        &hello,
                        None,
                        &version(&id, id.as_bytes()),
                        id.as_bytes(),
                        PublishOptions::default(),
                    )
                    .await
            })
        });
        let mut numbers = Vec::new();
        for deploy in deploys {
            numbers.push(deploy.await.unwrap().unwrap().0.version());
        }
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
        let record = store.get_function(&ns, &hello).await.unwrap().unwrap();
        assert_eq!(record.versions.len(), 8);
        for v in &record.versions {
            assert!(store.get_code(&ns, &v.code_hash).await.unwrap().is_some());
        }
    }

    /// Two apps deploying the same three functions at once, round after round: each round
    /// ends with all three from one app, never a mix.
    #[tokio::test]
    async fn racing_app_deploys_never_mix() {
        let (_server, store) = open().await;
        let ns = Namespace::new("default").unwrap();
        for round in 0..10 {
            let deploys = ["x", "y"].map(|app| {
                let (store, ns) = (store.clone(), ns.clone());
                tokio::spawn(async move {
                    let functions = ["a", "b", "c"].map(|f| app_function(f, &format!("{app}{round}-{f}")));
                    store
                        .deploy_app(&ns, app, &functions, &[], PublishOptions::default())
                        .await
                })
            });
            for deploy in deploys {
                deploy.await.unwrap().unwrap();
            }
            let live: Vec<String> = store
                .list_functions(Some(&ns))
                .await
                .unwrap()
                .iter()
                .map(|r| r.live_version().id.0.split('-').next().unwrap().to_owned())
                .collect();
            assert_eq!(live.len(), 3);
            assert!(
                live.iter().all(|app| *app == live[0]),
                "round {round} mixed apps: {live:?}"
            );
        }
    }

    /// The code objects go with the last function that uses them.
    #[tokio::test]
    async fn deleting_the_last_user_removes_the_code_object() {
        let (_server, store) = open().await;
        let ns = Namespace::new("default").unwrap();
        let functions = [app_function("a", "shared"), app_function("b", "shared")];
        store
            .deploy_app(&ns, "shop", &functions, &[], PublishOptions::default())
            .await
            .unwrap();
        let objects = || async {
            store
                .code
                .list()
                .await
                .unwrap()
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
                .into_iter()
                .filter(|o| !o.deleted)
                .count()
        };
        assert_eq!(objects().await, 1, "one upload serves both");
        assert!(store.delete_function(&ns, &functions[0].name).await.unwrap());
        assert_eq!(objects().await, 1);
        assert!(store.delete_function(&ns, &functions[1].name).await.unwrap());
        assert_eq!(objects().await, 0);
    }
}

//! The SQLite [`Registry`]: functions, their numbered immutable versions, their aliases
//! and the code blobs versions point at (the `functions`, `versions`, `aliases` and
//! `code` tables).

use super::{OpError, SqliteStore};
use crate::{
    AppFunction, DeployOutcome, FunctionChange, FunctionRecord, PublishOptions, Registry, Result, StoreError,
    UnixMillis, Updated, VersionRecord,
};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::collections::{BTreeMap, HashMap};
use wisp_core::version::live;
use wisp_core::{
    AdditionalVersion, AliasName, AliasTarget, FunctionConfig, FunctionName, Namespace, VersionId, Weight,
};

#[async_trait]
impl Registry for SqliteStore {
    async fn deploy(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        app: Option<&str>,
        version: &VersionRecord,
        code: &[u8],
        options: PublishOptions,
    ) -> Result<(DeployOutcome, FunctionRecord)> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let (app, version, code) = (app.map(str::to_owned), version.clone(), code.to_vec());
        let what = format!("deploying `{namespace}/{name}`");
        self.write(what, move |conn| {
            let deploy = Deploy {
                namespace: &namespace,
                name: &name,
                app: app.as_deref(),
                version: &version,
                code: &code,
                options,
                now: wisp_core::wall::now_ms(),
            };
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let outcome = deploy.run(&tx)?;
            let record = read_functions(&tx, Some(&namespace), Some(&name))?
                .pop()
                .ok_or_else(|| OpError::Failed("the function vanished while deploying".into()))?;
            tx.commit()?;
            Ok((outcome, record))
        })
        .await
    }

    async fn deploy_app(
        &self,
        namespace: &Namespace,
        app: &str,
        functions: &[AppFunction],
        removed: &[FunctionName],
        options: PublishOptions,
    ) -> Result<Vec<(DeployOutcome, FunctionRecord)>> {
        let (namespace, app) = (namespace.clone(), app.to_owned());
        let (functions, removed) = (functions.to_vec(), removed.to_vec());
        let what = format!("deploying app `{app}` to `{namespace}`");
        self.write(what, move |conn| {
            let now = wisp_core::wall::now_ms();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut outcomes = Vec::with_capacity(functions.len());
            for f in &functions {
                let deploy = Deploy {
                    namespace: &namespace,
                    name: &f.name,
                    app: Some(&app),
                    version: &f.version,
                    code: &f.code,
                    options,
                    now,
                };
                outcomes.push(deploy.run(&tx)?);
            }
            for name in &removed {
                delete(&tx, namespace.as_str(), name.as_str())?;
            }
            // One read of the namespace's records, not one per function.
            let mut records: HashMap<FunctionName, FunctionRecord> =
                read_functions(&tx, Some(&namespace), None)?
                    .into_iter()
                    .map(|r| (r.name.clone(), r))
                    .collect();
            let done = functions
                .iter()
                .zip(outcomes)
                .map(|(f, outcome)| {
                    let record = records
                        .remove(&f.name)
                        .ok_or_else(|| OpError::Failed(format!("`{}` vanished while deploying", f.name)))?;
                    Ok((outcome, record))
                })
                .collect::<Result<Vec<_>, OpError>>()?;
            tx.commit()?;
            Ok(done)
        })
        .await
    }

    async fn update_function(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        revision: u64,
        change: &FunctionChange,
    ) -> Result<Updated> {
        let (namespace, name, change) = (namespace.clone(), name.clone(), change.clone());
        let what = format!("changing function `{namespace}/{name}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let updated = update(&tx, &namespace, &name, revision, &change)?;
            if matches!(updated, Updated::Done(_)) {
                tx.commit()?;
            }
            Ok(updated)
        })
        .await
    }

    async fn has_code(&self, namespace: &Namespace, code_hash: &str) -> Result<bool> {
        let (namespace, code_hash) = (namespace.clone(), code_hash.to_owned());
        let what = format!("looking up code `{code_hash}` in `{namespace}`");
        self.read(what, move |conn| has_code(conn, &namespace, &code_hash))
            .await
    }

    async fn get_code(&self, namespace: &Namespace, code_hash: &str) -> Result<Option<Vec<u8>>> {
        let (namespace, code_hash) = (namespace.clone(), code_hash.to_owned());
        let what = format!("reading code `{code_hash}` in `{namespace}`");
        self.read(what, move |conn| {
            let data = conn
                .prepare_cached("SELECT data FROM code WHERE namespace = ?1 AND hash = ?2")?
                .query_row(params![namespace.as_str(), code_hash], |row| row.get(0))
                .optional()?;
            Ok(data)
        })
        .await
    }

    async fn get_function(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
    ) -> Result<Option<FunctionRecord>> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("reading function `{namespace}/{name}`");
        self.read(what, move |conn| {
            let tx = conn.transaction()?;
            Ok(read_functions(&tx, Some(&namespace), Some(&name))?.pop())
        })
        .await
    }

    async fn list_functions(&self, namespace: Option<&Namespace>) -> Result<Vec<FunctionRecord>> {
        let namespace = namespace.cloned();
        let what = match &namespace {
            Some(ns) => format!("listing the functions of `{ns}`"),
            None => "listing the functions of every namespace".to_owned(),
        };
        self.read(what, move |conn| {
            // One read transaction: the three tables as of one moment.
            let tx = conn.transaction()?;
            read_functions(&tx, namespace.as_ref(), None)
        })
        .await
    }

    /// Deletes the function, its aliases, its versions and the code blobs that no
    /// remaining version of the namespace uses, in one transaction.
    async fn delete_function(&self, namespace: &Namespace, name: &FunctionName) -> Result<bool> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("deleting function `{namespace}/{name}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existed = delete(&tx, namespace.as_str(), name.as_str())?;
            tx.commit()?;
            Ok(existed)
        })
        .await
    }
}

/// Deletes a function's aliases, record, versions and the code no other version of the
/// namespace uses, in the caller's transaction. Returns whether it existed.
fn delete(tx: &Transaction<'_>, ns: &str, name: &str) -> Result<bool, OpError> {
    tx.prepare_cached("DELETE FROM aliases WHERE namespace = ?1 AND function = ?2")?
        .execute(params![ns, name])?;
    let existed = tx
        .prepare_cached("DELETE FROM functions WHERE namespace = ?1 AND name = ?2")?
        .execute(params![ns, name])?
        > 0;
    let hashes = tx
        .prepare_cached("SELECT DISTINCT code_hash FROM versions WHERE namespace = ?1 AND function = ?2")?
        .query_map(params![ns, name], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.prepare_cached("DELETE FROM versions WHERE namespace = ?1 AND function = ?2")?
        .execute(params![ns, name])?;
    delete_unused_code(tx, ns, &hashes)?;
    Ok(existed)
}

/// Deletes the blobs among `hashes` that no version of the namespace uses.
fn delete_unused_code(tx: &Transaction<'_>, ns: &str, hashes: &[String]) -> Result<(), OpError> {
    let mut delete_unused = tx.prepare_cached(
        "DELETE FROM code WHERE namespace = ?1 AND hash = ?2
         AND NOT EXISTS (SELECT 1 FROM versions WHERE namespace = ?1 AND code_hash = ?2)",
    )?;
    for hash in hashes {
        delete_unused.execute(params![ns, hash])?;
    }
    Ok(())
}

/// One deploy's input (see [`Registry::deploy`]).
struct Deploy<'a> {
    namespace: &'a Namespace,
    name: &'a FunctionName,
    app: Option<&'a str>,
    version: &'a VersionRecord,
    code: &'a [u8],
    options: PublishOptions,
    /// The time to record as `created_at`/`updated_at`.
    now: UnixMillis,
}

impl Deploy<'_> {
    /// Publishes the version (and stores its code) unless it is the newest already,
    /// moves `live`, and prunes, in the caller's transaction.
    fn run(&self, tx: &Transaction<'_>) -> Result<DeployOutcome, OpError> {
        let (ns, name, id) = (
            self.namespace.as_str(),
            self.name.as_str(),
            self.version.id.0.as_str(),
        );
        let current: Option<(Option<String>, i64)> = tx
            .prepare_cached("SELECT app, next_version FROM functions WHERE namespace = ?1 AND name = ?2")?
            .query_row(params![ns, name], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let newest: Option<(u32, String)> = tx
            .prepare_cached(
                "SELECT number, id FROM versions WHERE namespace = ?1 AND function = ?2
                 ORDER BY number DESC LIMIT 1",
            )?
            .query_row(params![ns, name], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;

        if let (Some((app, _)), Some((number, newest_id))) = (&current, &newest)
            && newest_id == id
        {
            // Same code and config as the newest version: only the app that deployed
            // it may have changed, which is not a publish, so `updated_at` stays.
            if app.as_deref() != self.app {
                tx.prepare_cached(
                    "UPDATE functions SET app = ?3, revision = revision + 1
                     WHERE namespace = ?1 AND name = ?2",
                )?
                .execute(params![ns, name, self.app])?;
            }
            return Ok(DeployOutcome::Unchanged { version: *number });
        }

        insert_code_if_absent(tx, self)?;
        let number: u32 = match &current {
            None => 1,
            Some((_, next)) => u32::try_from(*next)
                .map_err(|_| OpError::Failed(format!("`{ns}/{name}` has run out of version numbers")))?,
        };
        let config = serde_json::to_string(&self.version.config)
            .map_err(|e| OpError::Failed(format!("encoding the config of version {number}: {e}")))?;
        if current.is_none() {
            tx.prepare_cached(
                "INSERT INTO functions (namespace, name, app, disabled, next_version, revision, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 0, 1, 1, ?4, ?4)",
            )?
            .execute(params![ns, name, self.app, self.now])?;
        }
        tx.prepare_cached(
            "INSERT INTO versions (namespace, function, number, id, code_hash, config, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            ns,
            name,
            number,
            id,
            self.version.code_hash,
            config,
            self.version.created_at
        ])?;
        tx.prepare_cached(
            "UPDATE functions SET app = ?3, next_version = ?4 + 1, revision = revision + 1, updated_at = ?5
             WHERE namespace = ?1 AND name = ?2",
        )?
        .execute(params![ns, name, self.app, number, self.now])?;

        let previous = read_aliases(tx, ns, name)?.remove(&live());
        let outcome = match previous {
            None => {
                set_alias(tx, ns, name, &live(), &AliasTarget::one(number))?;
                DeployOutcome::Created { version: number }
            }
            Some(previous) => {
                if self.options.move_live {
                    set_alias(tx, ns, name, &live(), &AliasTarget::one(number))?;
                }
                DeployOutcome::Published {
                    version: number,
                    previous,
                }
            }
        };
        prune(tx, ns, name, self.options.keep_versions)?;
        Ok(outcome)
    }
}

/// Forgets the versions of a function beyond the newest `keep` that no alias points
/// to, and the code they alone used.
fn prune(tx: &Transaction<'_>, ns: &str, name: &str, keep: u32) -> Result<(), OpError> {
    let doomed: Vec<(u32, String)> = tx
        .prepare_cached(
            "SELECT v.number, v.code_hash FROM versions v
             WHERE v.namespace = ?1 AND v.function = ?2
               AND v.number NOT IN (SELECT number FROM versions WHERE namespace = ?1 AND function = ?2
                                    ORDER BY number DESC LIMIT ?3)
               AND NOT EXISTS (SELECT 1 FROM aliases a WHERE a.namespace = ?1 AND a.function = ?2
                               AND (a.version = v.number OR a.additional_version = v.number))",
        )?
        .query_map(params![ns, name, keep.max(1)], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if doomed.is_empty() {
        return Ok(());
    }
    {
        let mut delete =
            tx.prepare_cached("DELETE FROM versions WHERE namespace = ?1 AND function = ?2 AND number = ?3")?;
        for (number, _) in &doomed {
            delete.execute(params![ns, name, number])?;
        }
    }
    let hashes: Vec<String> = doomed.into_iter().map(|(_, hash)| hash).collect();
    delete_unused_code(tx, ns, &hashes)
}

fn update(
    tx: &Transaction<'_>,
    namespace: &Namespace,
    name: &FunctionName,
    revision: u64,
    change: &FunctionChange,
) -> Result<Updated, OpError> {
    let (ns, fname) = (namespace.as_str(), name.as_str());
    let stored: Option<i64> = tx
        .prepare_cached("SELECT revision FROM functions WHERE namespace = ?1 AND name = ?2")?
        .query_row(params![ns, fname], |row| row.get(0))
        .optional()?;
    match stored {
        None => return Ok(Updated::NoFunction),
        Some(stored) if u64::try_from(stored).ok() != Some(revision) => return Ok(Updated::Stale),
        Some(_) => {}
    }
    match change {
        FunctionChange::SetAlias(alias, target) => {
            for number in target.versions() {
                let kept: bool = tx
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM versions WHERE namespace = ?1 AND function = ?2 AND number = ?3)",
                    )?
                    .query_row(params![ns, fname, number], |row| row.get(0))?;
                if !kept {
                    return Ok(Updated::NoVersion(number));
                }
            }
            set_alias(tx, ns, fname, alias, target)?;
        }
        FunctionChange::DeleteAlias(alias) => {
            if *alias == live() {
                return Ok(Updated::NoAlias);
            }
            let deleted = tx
                .prepare_cached("DELETE FROM aliases WHERE namespace = ?1 AND function = ?2 AND name = ?3")?
                .execute(params![ns, fname, alias.as_str()])?;
            if deleted == 0 {
                return Ok(Updated::NoAlias);
            }
        }
        FunctionChange::SetDisabled(disabled) => {
            tx.prepare_cached("UPDATE functions SET disabled = ?3 WHERE namespace = ?1 AND name = ?2")?
                .execute(params![ns, fname, disabled])?;
        }
    }
    tx.prepare_cached(
        "UPDATE functions SET revision = revision + 1, updated_at = ?3 WHERE namespace = ?1 AND name = ?2",
    )?
    .execute(params![ns, fname, wisp_core::wall::now_ms()])?;
    let record = read_functions(tx, Some(namespace), Some(name))?
        .pop()
        .ok_or_else(|| OpError::Failed("the function vanished while changing it".into()))?;
    Ok(Updated::Done(Box::new(record)))
}

fn set_alias(
    tx: &Transaction<'_>,
    ns: &str,
    name: &str,
    alias: &AliasName,
    target: &AliasTarget,
) -> Result<(), OpError> {
    let (additional, weight) = match &target.additional {
        Some(a) => (Some(a.version), Some(a.weight.millionths())),
        None => (None, None),
    };
    tx.prepare_cached(
        "INSERT INTO aliases (namespace, function, name, version, additional_version, additional_weight)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (namespace, function, name) DO UPDATE SET version = ?4,
             additional_version = ?5, additional_weight = ?6",
    )?
    .execute(params![
        ns,
        name,
        alias.as_str(),
        target.version,
        additional,
        weight
    ])?;
    Ok(())
}

fn read_aliases(
    tx: &Transaction<'_>,
    ns: &str,
    name: &str,
) -> Result<BTreeMap<AliasName, AliasTarget>, OpError> {
    let rows = tx
        .prepare_cached(
            "SELECT name, version, additional_version, additional_weight FROM aliases
             WHERE namespace = ?1 AND function = ?2",
        )?
        .query_map(params![ns, name], AliasRow::read)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|row| row.into_alias(&format!("`{ns}/{name}`")))
        .collect()
}

fn insert_code_if_absent(conn: &Connection, d: &Deploy<'_>) -> Result<(), OpError> {
    let (ns, hash) = (d.namespace.as_str(), d.version.code_hash.as_str());
    if has_code(conn, d.namespace, hash)? {
        return Ok(());
    }
    // A caller that skipped the upload because `has_code` said yes may have raced a
    // delete. Storing its empty (or wrong) bytes under the hash would poison every
    // later deploy of that code, so refuse.
    if d.code.len() as u64 != d.version.code_size {
        return Err(StoreError::Corrupt(format!(
            "refusing to store {} bytes as code `{hash}` of `{ns}/{}`: the version says {} bytes",
            d.code.len(),
            d.name,
            d.version.code_size
        ))
        .into());
    }
    let size = i64::try_from(d.code.len())
        .map_err(|_| OpError::Failed(format!("code `{hash}` is too large to store")))?;
    conn.prepare_cached(
        "INSERT INTO code (namespace, hash, data, size, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![ns, hash, d.code, size, d.now])?;
    Ok(())
}

fn has_code(conn: &Connection, namespace: &Namespace, code_hash: &str) -> Result<bool, OpError> {
    let found = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM code WHERE namespace = ?1 AND hash = ?2)")?
        .query_row(params![namespace.as_str(), code_hash], |row| row.get(0))?;
    Ok(found)
}

type Key = (String, String);

/// The functions of a namespace (or of all, or the one named), whole: three queries in
/// the caller's transaction, put together and checked.
fn read_functions(
    tx: &Transaction<'_>,
    namespace: Option<&Namespace>,
    name: Option<&FunctionName>,
) -> Result<Vec<FunctionRecord>, OpError> {
    let ns = namespace.map(Namespace::as_str);
    let fname = name.map(FunctionName::as_str);
    // `?1 IS NULL OR …`: one statement serves every scope.
    let mut functions: Vec<FunctionRow> = tx
        .prepare_cached(
            "SELECT namespace, name, app, disabled, revision, created_at, updated_at FROM functions
             WHERE (?1 IS NULL OR namespace = ?1) AND (?2 IS NULL OR name = ?2)
             ORDER BY namespace, name",
        )?
        .query_map(params![ns, fname], |row| {
            Ok(FunctionRow {
                namespace: row.get(0)?,
                name: row.get(1)?,
                app: row.get(2)?,
                disabled: row.get(3)?,
                revision: row.get(4)?,
                created_at: row.get(5)?,
                updated_at: row.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut versions: HashMap<Key, Vec<VersionRow>> = HashMap::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT v.namespace, v.function, v.number, v.id, v.code_hash, v.config, v.created_at, c.size
             FROM versions v LEFT JOIN code c ON c.namespace = v.namespace AND c.hash = v.code_hash
             WHERE (?1 IS NULL OR v.namespace = ?1) AND (?2 IS NULL OR v.function = ?2)
             ORDER BY v.namespace, v.function, v.number",
        )?;
        let rows = stmt.query_map(params![ns, fname], |row| {
            Ok((
                (row.get(0)?, row.get(1)?),
                VersionRow {
                    number: row.get(2)?,
                    id: row.get(3)?,
                    code_hash: row.get(4)?,
                    config: row.get(5)?,
                    created_at: row.get(6)?,
                    code_size: row.get(7)?,
                },
            ))
        })?;
        for row in rows {
            let (key, version) = row?;
            versions.entry(key).or_default().push(version);
        }
    }
    let mut aliases: HashMap<Key, Vec<AliasRow>> = HashMap::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT namespace, function, name, version, additional_version, additional_weight FROM aliases
             WHERE (?1 IS NULL OR namespace = ?1) AND (?2 IS NULL OR function = ?2)",
        )?;
        let rows = stmt.query_map(params![ns, fname], |row| {
            Ok((
                (row.get(0)?, row.get(1)?),
                AliasRow {
                    name: row.get(2)?,
                    version: row.get(3)?,
                    additional_version: row.get(4)?,
                    additional_weight: row.get(5)?,
                },
            ))
        })?;
        for row in rows {
            let (key, alias) = row?;
            aliases.entry(key).or_default().push(alias);
        }
    }
    functions
        .drain(..)
        .map(|f| {
            let key = (f.namespace.clone(), f.name.clone());
            let versions = versions.remove(&key).unwrap_or_default();
            let aliases = aliases.remove(&key).unwrap_or_default();
            f.into_record(versions, aliases)
        })
        .collect()
}

struct FunctionRow {
    namespace: String,
    name: String,
    app: Option<String>,
    disabled: bool,
    revision: i64,
    created_at: UnixMillis,
    updated_at: UnixMillis,
}

struct VersionRow {
    number: u32,
    id: String,
    code_hash: String,
    config: String,
    created_at: UnixMillis,
    code_size: Option<i64>,
}

struct AliasRow {
    name: String,
    version: u32,
    additional_version: Option<u32>,
    additional_weight: Option<u32>,
}

fn corrupt(what: String) -> OpError {
    OpError::Store(StoreError::Corrupt(what))
}

impl AliasRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<AliasRow> {
        Ok(AliasRow {
            name: row.get(0)?,
            version: row.get(1)?,
            additional_version: row.get(2)?,
            additional_weight: row.get(3)?,
        })
    }

    fn into_alias(self, at: &str) -> Result<(AliasName, AliasTarget), OpError> {
        let name = AliasName::new(self.name.as_str())
            .map_err(|e| corrupt(format!("function {at} has a bad alias: {e}")))?;
        let additional = match (self.additional_version, self.additional_weight) {
            (Some(version), Some(weight)) => Some(AdditionalVersion {
                version,
                weight: Weight::new(f64::from(weight) / f64::from(Weight::ONE))
                    .map_err(|e| corrupt(format!("alias `{name}` of function {at}: {e}")))?,
            }),
            (None, None) => None,
            _ => {
                return Err(corrupt(format!(
                    "alias `{name}` of function {at} has half a split"
                )));
            }
        };
        Ok((
            name,
            AliasTarget {
                version: self.version,
                additional,
            },
        ))
    }
}

impl FunctionRow {
    fn into_record(
        self,
        versions: Vec<VersionRow>,
        aliases: Vec<AliasRow>,
    ) -> Result<FunctionRecord, OpError> {
        let at = format!("`{}/{}`", self.namespace, self.name);
        let namespace = Namespace::new(self.namespace.as_str())
            .map_err(|e| corrupt(format!("function {at} has a bad namespace: {e}")))?;
        let name = FunctionName::new(self.name.as_str())
            .map_err(|e| corrupt(format!("function {at} has a bad name: {e}")))?;
        let versions = versions
            .into_iter()
            .map(|v| {
                let Some(code_size) = v.code_size.and_then(|size| u64::try_from(size).ok()) else {
                    return Err(corrupt(format!(
                        "the code `{}` of version {} of function {at} is not stored",
                        v.code_hash, v.number
                    )));
                };
                let config: FunctionConfig = serde_json::from_str(&v.config).map_err(|e| {
                    corrupt(format!(
                        "the config of version {} of function {at} does not parse: {e}",
                        v.number
                    ))
                })?;
                Ok(VersionRecord {
                    number: v.number,
                    id: VersionId(v.id),
                    code_hash: v.code_hash,
                    code_size,
                    config,
                    created_at: v.created_at,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if versions.is_empty() {
            return Err(corrupt(format!("function {at} has no version")));
        }
        let aliases = aliases
            .into_iter()
            .map(|a| a.into_alias(&at))
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let record = FunctionRecord {
            namespace,
            name,
            app: self.app,
            disabled: self.disabled,
            versions,
            aliases,
            revision: u64::try_from(self.revision).unwrap_or(0),
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        if !record.aliases.contains_key(&live()) {
            return Err(corrupt(format!("function {at} has no `live` alias")));
        }
        for (alias, target) in &record.aliases {
            if let Some(missing) = target.versions().find(|&n| record.version(n).is_none()) {
                return Err(corrupt(format!(
                    "alias `{alias}` of function {at} points at version {missing}, which is not stored"
                )));
            }
        }
        Ok(record)
    }
}

//! The SQLite [`Registry`]: functions, their immutable versions and the code blobs
//! versions point at (the `functions`, `versions` and `code` tables).

use super::{OpError, SqliteStore};
use crate::{DeployOutcome, FunctionRecord, Registry, Result, StoreError, UnixMillis, VersionRecord};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use wisp_core::wall::now_ms;
use wisp_core::{FunctionConfig, FunctionName, Namespace, VersionId};

/// The columns [`FunctionRow`] reads. Left joins, so that a function whose version
/// or code is missing is reported as corrupt instead of silently vanishing.
macro_rules! select_functions {
    () => {
        "SELECT f.namespace, f.name, f.app, f.version, f.created_at, f.updated_at,
                v.code_hash, v.config, v.created_at, c.size
         FROM functions f
         LEFT JOIN versions v
                ON v.namespace = f.namespace AND v.function = f.name AND v.id = f.version
         LEFT JOIN code c ON c.namespace = v.namespace AND c.hash = v.code_hash"
    };
}

#[async_trait]
impl Registry for SqliteStore {
    async fn deploy(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        app: Option<&str>,
        version: &VersionRecord,
        code: &[u8],
    ) -> Result<DeployOutcome> {
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
                now: now_ms(),
            };
            deploy.run(conn)
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
            let row = conn
                .prepare_cached(concat!(
                    select_functions!(),
                    " WHERE f.namespace = ?1 AND f.name = ?2"
                ))?
                .query_row(params![namespace.as_str(), name.as_str()], FunctionRow::read)
                .optional()?;
            row.map(FunctionRow::into_record).transpose()
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
            let rows = match &namespace {
                Some(ns) => conn
                    .prepare_cached(concat!(
                        select_functions!(),
                        " WHERE f.namespace = ?1 ORDER BY f.namespace, f.name"
                    ))?
                    .query_map([ns.as_str()], FunctionRow::read)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => conn
                    .prepare_cached(concat!(select_functions!(), " ORDER BY f.namespace, f.name"))?
                    .query_map([], FunctionRow::read)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            rows.into_iter().map(FunctionRow::into_record).collect()
        })
        .await
    }

    /// Deletes the function, its versions and the code blobs that no remaining version
    /// of the namespace uses, in one transaction.
    async fn delete_function(&self, namespace: &Namespace, name: &FunctionName) -> Result<bool> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("deleting function `{namespace}/{name}`");
        self.write(what, move |conn| {
            let (ns, name) = (namespace.as_str(), name.as_str());
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existed = tx
                .prepare_cached("DELETE FROM functions WHERE namespace = ?1 AND name = ?2")?
                .execute(params![ns, name])?
                > 0;
            let hashes = tx
                .prepare_cached(
                    "SELECT DISTINCT code_hash FROM versions WHERE namespace = ?1 AND function = ?2",
                )?
                .query_map(params![ns, name], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.prepare_cached("DELETE FROM versions WHERE namespace = ?1 AND function = ?2")?
                .execute(params![ns, name])?;
            {
                let mut delete_unused = tx.prepare_cached(
                    "DELETE FROM code WHERE namespace = ?1 AND hash = ?2
                     AND NOT EXISTS (SELECT 1 FROM versions WHERE namespace = ?1 AND code_hash = ?2)",
                )?;
                for hash in &hashes {
                    delete_unused.execute(params![ns, hash])?;
                }
            }
            tx.commit()?;
            Ok(existed)
        })
        .await
    }
}

/// One deploy's input (see [`Registry::deploy`]).
struct Deploy<'a> {
    namespace: &'a Namespace,
    name: &'a FunctionName,
    app: Option<&'a str>,
    version: &'a VersionRecord,
    code: &'a [u8],
    /// The time to record as the function's `created_at`/`updated_at`.
    now: UnixMillis,
}

impl Deploy<'_> {
    /// Records the version (and its code) unless stored, then points the function at
    /// it, in one transaction.
    fn run(&self, conn: &mut Connection) -> Result<DeployOutcome, OpError> {
        let (ns, name, id) = (
            self.namespace.as_str(),
            self.name.as_str(),
            self.version.id.0.as_str(),
        );
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;

        let stored_code_hash: Option<String> = tx
            .prepare_cached(
                "SELECT code_hash FROM versions WHERE namespace = ?1 AND function = ?2 AND id = ?3",
            )?
            .query_row(params![ns, name, id], |row| row.get(0))
            .optional()?;
        match stored_code_hash {
            // Versions are immutable: the stored one wins, and its code is already there.
            Some(stored) => {
                if stored != self.version.code_hash {
                    tracing::warn!(
                        namespace = ns,
                        function = name,
                        version = id,
                        stored,
                        given = self.version.code_hash,
                        "deploy of a stored version named other code; keeping the stored version"
                    );
                }
            }
            None => {
                insert_code_if_absent(&tx, self)?;
                let config = serde_json::to_string(&self.version.config)
                    .map_err(|e| OpError::Failed(format!("encoding the config of version `{id}`: {e}")))?;
                tx.prepare_cached(
                    "INSERT INTO versions (namespace, function, id, code_hash, config, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    ns,
                    name,
                    id,
                    self.version.code_hash,
                    config,
                    self.version.created_at
                ])?;
            }
        }

        let current: Option<(String, Option<String>)> = tx
            .prepare_cached("SELECT version, app FROM functions WHERE namespace = ?1 AND name = ?2")?
            .query_row(params![ns, name], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let outcome = match current {
            None => {
                tx.prepare_cached(
                    "INSERT INTO functions (namespace, name, app, version, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                )?
                .execute(params![ns, name, self.app, id, self.now])?;
                DeployOutcome::Created
            }
            Some((serving, app)) if serving == id => {
                // Same code and config: only the app that deployed it may have changed,
                // which is not a new deployment, so `updated_at` stays.
                if app.as_deref() != self.app {
                    tx.prepare_cached("UPDATE functions SET app = ?3 WHERE namespace = ?1 AND name = ?2")?
                        .execute(params![ns, name, self.app])?;
                }
                DeployOutcome::Unchanged
            }
            Some((previous, _)) => {
                tx.prepare_cached(
                    "UPDATE functions SET version = ?3, app = ?4, updated_at = ?5
                 WHERE namespace = ?1 AND name = ?2",
                )?
                .execute(params![ns, name, id, self.app, self.now])?;
                DeployOutcome::Updated {
                    previous: VersionId(previous),
                }
            }
        };
        tx.commit()?;
        Ok(outcome)
    }
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
            "refusing to store {} bytes as code `{hash}` of version `{}` of `{ns}/{}`: \
             the version says {} bytes",
            d.code.len(),
            d.version.id,
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

/// One row of [`select_functions!`], as stored.
struct FunctionRow {
    namespace: String,
    name: String,
    app: Option<String>,
    version: String,
    created_at: UnixMillis,
    updated_at: UnixMillis,
    code_hash: Option<String>,
    config: Option<String>,
    version_created_at: Option<UnixMillis>,
    code_size: Option<i64>,
}

impl FunctionRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<FunctionRow> {
        Ok(FunctionRow {
            namespace: row.get(0)?,
            name: row.get(1)?,
            app: row.get(2)?,
            version: row.get(3)?,
            created_at: row.get(4)?,
            updated_at: row.get(5)?,
            code_hash: row.get(6)?,
            config: row.get(7)?,
            version_created_at: row.get(8)?,
            code_size: row.get(9)?,
        })
    }

    fn into_record(self) -> Result<FunctionRecord, OpError> {
        let at = format!("`{}/{}`", self.namespace, self.name);
        let corrupt = |what: String| OpError::Store(StoreError::Corrupt(what));
        let namespace = Namespace::new(self.namespace.as_str())
            .map_err(|e| corrupt(format!("function {at} has a bad namespace: {e}")))?;
        let name = FunctionName::new(self.name.as_str())
            .map_err(|e| corrupt(format!("function {at} has a bad name: {e}")))?;
        let (Some(code_hash), Some(config), Some(version_created_at)) =
            (self.code_hash, self.config, self.version_created_at)
        else {
            return Err(corrupt(format!(
                "function {at} serves version `{}`, which is not stored",
                self.version
            )));
        };
        let Some(code_size) = self.code_size.and_then(|size| u64::try_from(size).ok()) else {
            return Err(corrupt(format!(
                "the code `{code_hash}` of version `{}` of function {at} is not stored",
                self.version
            )));
        };
        let config: FunctionConfig = serde_json::from_str(&config).map_err(|e| {
            corrupt(format!(
                "the config of version `{}` of function {at} does not parse: {e}",
                self.version
            ))
        })?;
        Ok(FunctionRecord {
            namespace,
            name,
            app: self.app,
            version: VersionRecord {
                id: VersionId(self.version),
                code_hash,
                code_size,
                config,
                created_at: version_created_at,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

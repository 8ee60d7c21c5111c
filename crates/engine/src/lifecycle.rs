//! A function's lifecycle after its deploys: pointing aliases at versions (with a
//! weight to split traffic), rolling `live` back, and disabling and enabling it. Each
//! change is a compare-and-set on the function's record in the store, then a new
//! registry published to the request path and the triggers, as a deploy does.

use crate::registry::Deployed;
use crate::{Engine, EngineError};
use std::sync::Arc;
use wisp_core::version::live;
use wisp_core::{AliasName, AliasTarget, ErrorCode, FunctionName, Namespace};
use wisp_store::{FunctionChange, FunctionRecord, Updated};

impl Engine {
    /// Creates or moves alias `alias` of a function to `target`. Moving `live` changes
    /// what its routes and triggers run (their routes, from `target`'s main version,
    /// are checked against every other function's first).
    pub async fn set_alias(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        alias: &AliasName,
        target: AliasTarget,
    ) -> Result<FunctionRecord, EngineError> {
        target
            .validate()
            .map_err(|e| EngineError::new(ErrorCode::InvalidRequest, format!("alias `{alias}`: {e}")))?;
        self.change(namespace, name, FunctionChange::SetAlias(alias.clone(), target))
            .await
    }

    /// Removes an alias (never `live`).
    pub async fn delete_alias(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        alias: &AliasName,
    ) -> Result<FunctionRecord, EngineError> {
        if *alias == live() {
            return Err(EngineError::new(
                ErrorCode::InvalidRequest,
                "`live` cannot be deleted: it is what the function's routes and triggers run",
            ));
        }
        self.change(namespace, name, FunctionChange::DeleteAlias(alias.clone()))
            .await
    }

    /// Moves `live` back at once: to version `to`, or, when `live` splits traffic, to
    /// its main version alone, or else to the newest kept version before the one it
    /// runs.
    pub async fn rollback(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        to: Option<u32>,
    ) -> Result<FunctionRecord, EngineError> {
        let deployed = self
            .function(namespace, name)
            .ok_or_else(|| EngineError::function_not_found(name.as_str()))?;
        let record = &deployed.record;
        let current = record.live();
        let target = match to {
            Some(n) => n,
            None if current.additional.is_some() => current.version,
            None => record
                .versions
                .iter()
                .rev()
                .map(|v| v.number)
                .find(|&n| n < current.version)
                .ok_or_else(|| {
                    EngineError::new(
                        ErrorCode::VersionNotFound,
                        format!(
                            "`{name}` keeps no version before {}, the one `live` runs; name one with --to",
                            current.version
                        ),
                    )
                })?,
        };
        self.change(
            namespace,
            name,
            FunctionChange::SetAlias(live(), AliasTarget::one(target)),
        )
        .await
    }

    /// Disables a function (it runs nothing: sync calls answer `function_disabled`,
    /// async events and queue messages wait, schedules skip) or enables it again
    /// (what waited runs at once).
    pub async fn set_disabled(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        disabled: bool,
    ) -> Result<FunctionRecord, EngineError> {
        let record = self
            .change(namespace, name, FunctionChange::SetDisabled(disabled))
            .await?;
        if !disabled {
            let now = wisp_core::wall::now_ms();
            let released = self
                .store
                .release_held_events(namespace, Some(name), ErrorCode::FunctionDisabled, now)
                .await?;
            tracing::info!(%namespace, function = %name, "enabled; {released} held async events released");
            self.pipeline.wake();
        }
        Ok(record)
    }

    /// Makes `change` in the store by compare-and-set on the record the engine holds
    /// (reading it again if another writer moved it), then publishes the new registry.
    async fn change(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        change: FunctionChange,
    ) -> Result<FunctionRecord, EngineError> {
        let _guard = self.changes.lock().await;
        let functions = self.functions.load_full();
        let key = (namespace.clone(), name.clone());
        let current = functions
            .get(&key)
            .ok_or_else(|| EngineError::function_not_found(name.as_str()))?;
        if let FunctionChange::SetAlias(alias, target) = &change
            && *alias == live()
            && let Some(main) = current.record.version(target.version)
        {
            let mut candidate = current.record.clone();
            candidate.aliases.insert(live(), AliasTarget::one(main.number));
            let mut next = (*functions).clone();
            next.insert(key.clone(), Arc::new(Deployed::new(candidate, &self.pools, None)));
            self.triggers.http.check(&next, &key)?;
        }
        let mut revision = current.record.revision;
        let record = loop {
            match self
                .store
                .update_function(namespace, name, revision, &change)
                .await?
            {
                Updated::Done(record) => break *record,
                Updated::Stale => {
                    revision = self
                        .store
                        .get_function(namespace, name)
                        .await?
                        .ok_or_else(|| EngineError::function_not_found(name.as_str()))?
                        .revision;
                }
                Updated::NoFunction => return Err(EngineError::function_not_found(name.as_str())),
                Updated::NoVersion(n) => {
                    return Err(EngineError::new(
                        ErrorCode::VersionNotFound,
                        format!(
                            "`{name}` has no version {n} (it keeps the newest and those an alias points to)"
                        ),
                    ));
                }
                Updated::NoAlias => {
                    let FunctionChange::DeleteAlias(alias) = &change else {
                        return Err(EngineError::internal(
                            "the store refused an alias it was not asked about",
                        ));
                    };
                    return Err(EngineError::new(
                        ErrorCode::AliasNotFound,
                        format!("`{name}` has no alias `{alias}`"),
                    ));
                }
            }
        };
        let deployed = Arc::new(Deployed::new(record.clone(), &self.pools, Some(current)));
        let mut next = (*functions).clone();
        next.insert(key, deployed.clone());
        self.publish(next);
        for version in deployed.versions() {
            version.pool.drive(self.pools.clock.now());
        }
        Ok(record)
    }
}

//! Deploying and deleting functions: validate, check routes, compile, publish a
//! numbered version, and publish the new registry to the request path and the triggers.

use crate::registry::Deployed;
use crate::{Engine, EngineError, version};
use bytes::Bytes;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use wisp_core::version::live;
use wisp_core::{AliasTarget, ErrorCode, FunctionConfig, FunctionName, Namespace};
use wisp_store::{DeployOutcome, FunctionRecord, PublishOptions, VersionRecord};

/// A request to deploy one function.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub namespace: Namespace,
    pub name: FunctionName,
    pub app: Option<String>,
    pub config: FunctionConfig,
    pub code: Bytes,
}

/// What a deploy did.
#[derive(Debug, Clone)]
pub struct DeployReport {
    pub outcome: DeployOutcome,
    pub record: FunctionRecord,
}

impl Engine {
    /// Validates and compiles a function version, publishes it under the next number
    /// (unless the newest version has the same code and configuration) and points
    /// `live` at it.
    pub async fn deploy(&self, request: DeployRequest) -> Result<DeployReport, EngineError> {
        let DeployRequest {
            namespace,
            name,
            app,
            config,
            code,
        } = request;
        let config = config.validate_named(&name).map_err(|e| {
            let code = match e.route_error {
                Some(wisp_core::RouteError::Reserved { .. }) => ErrorCode::ReservedRoute,
                _ => ErrorCode::InvalidConfig,
            };
            EngineError::new(code, format!("{}: {}", e.field, e.message))
        })?;
        self.check_secret_refs(&namespace, &config, None)?;
        if code.len() > self.limits.max_code_size {
            return Err(EngineError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "the code is {} bytes; the limit is {} bytes",
                    code.len(),
                    self.limits.max_code_size
                ),
            ));
        }
        let code_hash = version::code_hash(&code);
        let version_id = version::version_id(&code_hash, &config);

        let _guard = self.changes.lock().await;
        let functions = self.functions.load_full();
        let key = (namespace.clone(), name.clone());
        let current = functions.get(&key);
        let unchanged = current.filter(|c| c.record.latest().id == version_id);
        if let Some(current) = unchanged
            && current.record.app == app
        {
            return Ok(DeployReport {
                outcome: DeployOutcome::Unchanged {
                    version: current.record.latest().number,
                },
                record: current.record.clone(),
            });
        }

        let now = wisp_core::wall::now_ms();
        let version = VersionRecord {
            number: current.map_or(1, |c| c.record.latest().number + 1),
            id: version_id.clone(),
            code_hash: code_hash.clone(),
            code_size: code.len() as u64,
            config: config.clone(),
            created_at: now,
        };
        let mut next = (*functions).clone();
        if unchanged.is_none() {
            // Check the routes before the (slow) compile, against everything else
            // serving, as they will be once `live` runs this version.
            let candidate = FunctionRecord {
                namespace: namespace.clone(),
                name: name.clone(),
                app: app.clone(),
                disabled: false,
                versions: vec![version.clone()],
                aliases: BTreeMap::from([(live(), AliasTarget::one(version.number))]),
                revision: 0,
                created_at: now,
                updated_at: now,
            };
            next.insert(key.clone(), Arc::new(Deployed::new(candidate, &self.pools, None)));
            self.triggers.http.check(&next, &key)?;
        }

        // Code loaded for a kept version with this content serves on: nothing to compile.
        let loaded = current.and_then(|c| {
            c.versions()
                .filter(|v| v.record.id == version_id)
                .find_map(|v| v.loaded())
        });
        let function = match loaded {
            Some(function) => Some(function),
            // Only the app changed: the version serves on as it is.
            None if unchanged.is_some() => None,
            None => {
                let spec = self.pools.spec(&namespace, &name, &version_id, code_hash, config);
                Some(self.runtime.compile(spec, code.clone()).await?)
            }
        };
        let options = PublishOptions {
            keep_versions: self.limits.keep_versions,
            move_live: true,
        };
        let (outcome, record) = self
            .store
            .deploy(&namespace, &name, app.as_deref(), &version, &code, options)
            .await?;
        let deployed = Arc::new(Deployed::with_code(
            record.clone(),
            &self.pools,
            current.map(|c| c.as_ref()),
            function.map(|f| (outcome.version(), f)),
        ));
        next.insert(key, deployed.clone());
        self.publish(next);
        // `min_instances` are started now, not at the scaler's next wake-up.
        deployed.live_version().pool.drive(self.pools.clock.now());
        if matches!(outcome, DeployOutcome::Published { .. }) {
            self.retain_artifacts().await;
        }
        Ok(DeployReport { outcome, record })
    }

    /// Forgets the compiled artifacts of code no deployed version uses any more
    /// (versions pruned, functions deleted). Call with the lock on changes held, so
    /// no deploy is compiling code the registry does not name yet.
    pub(crate) async fn retain_artifacts(&self) {
        let keep: HashSet<String> = self
            .functions
            .load()
            .values()
            .flat_map(|d| d.versions())
            .map(|v| v.record.code_hash.clone())
            .collect();
        self.runtime.retain(&keep).await;
    }

    /// Removes a function: it stops serving at once (routes, triggers, invokes), then
    /// the store forgets it with its versions, logs, invocation records, async events
    /// and schedule state. Returns whether it existed.
    pub async fn delete(&self, namespace: &Namespace, name: &FunctionName) -> Result<bool, EngineError> {
        let _guard = self.changes.lock().await;
        let functions = self.functions.load_full();
        let key = (namespace.clone(), name.clone());
        if functions.contains_key(&key) {
            let mut next = (*functions).clone();
            next.remove(&key);
            self.publish(next);
        }
        let existed = self.store.remove_function(namespace, name).await?;
        self.retain_artifacts().await;
        Ok(existed)
    }
}

//! Deploying and deleting functions: validate, check routes, compile, record, and
//! publish the new registry to the request path and the triggers.

use crate::{Deployed, Engine, EngineError, version};
use bytes::Bytes;
use std::sync::Arc;
use wisp_core::{ErrorCode, FunctionConfig, FunctionName, Namespace};
use wisp_runtime::FunctionSpec;
use wisp_store::{DeployOutcome, FunctionRecord, VersionRecord};

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
    /// Validates, compiles and records a function version, and makes it serve.
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
        if let Some(current) = current
            && current.record.version.id == version_id
            && current.record.app == app
        {
            return Ok(DeployReport {
                outcome: DeployOutcome::Unchanged,
                record: current.record.clone(),
            });
        }

        let now = wisp_core::wall::now_ms();
        let version = VersionRecord {
            id: version_id.clone(),
            code_hash: code_hash.clone(),
            code_size: code.len() as u64,
            config: config.clone(),
            created_at: now,
        };
        // Check the routes before the (slow) compile, against everything else serving.
        let candidate = FunctionRecord {
            namespace: namespace.clone(),
            name: name.clone(),
            app: app.clone(),
            version: version.clone(),
            created_at: current.map_or(now, |c| c.record.created_at),
            updated_at: now,
        };
        let mut next = (*functions).clone();
        next.insert(key.clone(), Arc::new(Deployed::new(candidate, &self.pools)));
        self.triggers.http.check(&next, &key)?;

        let spec = FunctionSpec {
            name: name.to_string(),
            code_hash,
            config,
        };
        // Only the app changed: the loaded code serves on, nothing to compile.
        let loaded = current
            .filter(|c| c.record.version.id == version_id)
            .and_then(|c| c.loaded());
        let function = match loaded {
            Some(function) => function,
            None => self.runtime.compile(spec, code.clone()).await?,
        };
        let outcome = self
            .store
            .deploy(&namespace, &name, app.as_deref(), &version, &code)
            .await?;
        let record = self.store.get_function(&namespace, &name).await?.ok_or_else(|| {
            EngineError::internal(format!("`{name}` vanished from the store while deploying"))
        })?;
        let deployed = Arc::new(Deployed::with_code(record.clone(), &self.pools, Some(function)));
        next.insert(key, deployed.clone());
        self.publish(next);
        // `min_instances` are started now, not at the scaler's next wake-up.
        deployed.pool.drive(self.pools.clock.now());
        Ok(DeployReport { outcome, record })
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
        Ok(self.store.remove_function(namespace, name).await?)
    }
}

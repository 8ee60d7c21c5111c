//! Deploying an app: every function of a manifest in one step, all or nothing — each
//! validated, routes checked together, code compiled once per distinct code, one
//! store write, one new registry — with a plan of what it would do (a dry run) and
//! pruning of the app's functions the manifest no longer has.

use crate::registry::Deployed;
use crate::{Engine, EngineError, version};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use wisp_core::version::live;
use wisp_core::{AliasTarget, ErrorCode, FunctionConfig, FunctionName, Namespace};
use wisp_runtime::Function;
use wisp_store::{AppFunction, DeployOutcome, FunctionRecord, PublishOptions, VersionRecord};

/// One distinct code of an app, hashed once however many functions use it.
#[derive(Debug)]
pub struct AppCode {
    hash: String,
    bytes: Bytes,
}

impl AppCode {
    pub fn new(bytes: Bytes) -> AppCode {
        AppCode {
            hash: version::code_hash(&bytes),
            bytes,
        }
    }

    /// Its hex SHA-256, as deploys name code.
    pub fn hash(&self) -> &str {
        &self.hash
    }
}

/// An app to deploy.
#[derive(Debug, Clone)]
pub struct AppRequest {
    pub namespace: Namespace,
    pub app: String,
    /// Its functions, each with its configuration and code (functions with the same
    /// code share one [`AppCode`]).
    pub functions: Vec<(FunctionName, FunctionConfig, Arc<AppCode>)>,
    /// Delete the functions of this app (deployed with its name) it no longer has.
    pub prune: bool,
    /// Say what would change, and change nothing.
    pub dry_run: bool,
}

/// What an app deploy did, or would do.
#[derive(Debug, Clone, Default)]
pub struct AppReport {
    /// Each function's outcome and record, in the request's order (a dry run's
    /// records are the current ones, `None` for a function to create).
    pub functions: Vec<(FunctionName, Planned, Option<FunctionRecord>)>,
    /// The app's functions deleted (or, without `prune`, that `prune` would delete).
    pub removed: Vec<FunctionName>,
}

/// A function's part in an app deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    Create,
    /// A new version: the number it gets.
    Publish(u32),
    Unchanged(u32),
}

impl From<&DeployOutcome> for Planned {
    fn from(outcome: &DeployOutcome) -> Planned {
        match outcome {
            DeployOutcome::Created { .. } => Planned::Create,
            DeployOutcome::Published { version, .. } => Planned::Publish(*version),
            DeployOutcome::Unchanged { version } => Planned::Unchanged(*version),
        }
    }
}

impl Engine {
    /// Deploys (or plans) an app. See the module docs.
    pub async fn deploy_app(&self, request: AppRequest) -> Result<AppReport, EngineError> {
        let AppRequest {
            namespace,
            app,
            functions,
            prune,
            dry_run,
        } = request;
        let mut seen = std::collections::HashSet::new();
        let mut checked = Vec::with_capacity(functions.len());
        for (name, config, code) in functions {
            if !seen.insert(name.clone()) {
                return Err(EngineError::new(
                    ErrorCode::InvalidRequest,
                    format!("the app names function `{name}` twice"),
                ));
            }
            let config = config.validate_named(&name).map_err(|e| {
                let code = match e.route_error {
                    Some(wisp_core::RouteError::Reserved { .. }) => ErrorCode::ReservedRoute,
                    _ => ErrorCode::InvalidConfig,
                };
                EngineError::new(code, format!("function `{name}`: {}: {}", e.field, e.message))
            })?;
            self.check_secret_refs(&namespace, &config, Some(&name))?;
            if code.bytes.len() > self.limits.max_code_size {
                return Err(EngineError::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "function `{name}`: the code is {} bytes; the limit is {} bytes",
                        code.bytes.len(),
                        self.limits.max_code_size
                    ),
                ));
            }
            checked.push((name, config, code));
        }
        let _guard = self.changes.lock().await;
        let current = self.functions.load_full();
        let now = wisp_core::wall::now_ms();
        let mut plan = Vec::with_capacity(checked.len());
        for (name, config, code) in checked {
            let id = version::version_id(code.hash(), &config);
            let existing = current.get(&(namespace.clone(), name.clone())).cloned();
            let planned = match &existing {
                None => Planned::Create,
                Some(d) if d.record.latest().id == id => Planned::Unchanged(d.record.latest().number),
                Some(d) => Planned::Publish(d.record.latest().number + 1),
            };
            let version = VersionRecord {
                number: 0,
                id,
                code_hash: code.hash.clone(),
                code_size: code.bytes.len() as u64,
                config,
                created_at: now,
            };
            plan.push((name, planned, version, code, existing));
        }
        let kept: std::collections::HashSet<&FunctionName> = plan.iter().map(|p| &p.0).collect();
        let removed: Vec<FunctionName> = current
            .values()
            .filter(|d| d.record.namespace == namespace && d.record.app.as_deref() == Some(app.as_str()))
            .map(|d| d.record.name.clone())
            .filter(|name| !kept.contains(name))
            .collect();
        // The registry as it will be, for the route check (before any compile).
        let mut next = (*current).clone();
        if prune {
            for name in &removed {
                next.remove(&(namespace.clone(), name.clone()));
            }
        }
        let mut changed = None;
        for (name, planned, version, _, _) in &plan {
            if matches!(planned, Planned::Unchanged(_)) {
                continue;
            }
            let candidate = FunctionRecord {
                namespace: namespace.clone(),
                name: name.clone(),
                app: Some(app.clone()),
                disabled: false,
                versions: vec![VersionRecord {
                    number: 1,
                    ..version.clone()
                }],
                aliases: BTreeMap::from([(live(), AliasTarget::one(1))]),
                revision: 0,
                created_at: now,
                updated_at: now,
            };
            let key = (namespace.clone(), name.clone());
            next.insert(key.clone(), Arc::new(Deployed::new(candidate, &self.pools, None)));
            changed = Some(key);
        }
        if let Some(key) = &changed {
            self.triggers.http.check(&next, key)?;
        }

        if dry_run {
            return Ok(AppReport {
                functions: plan
                    .into_iter()
                    .map(|(name, planned, _, _, existing)| {
                        (name, planned, existing.map(|d| d.record.clone()))
                    })
                    .collect(),
                removed,
            });
        }

        // Compile what is new; the runtime shares one compiled copy per distinct code.
        let mut loaded: HashMap<FunctionName, Arc<dyn Function>> = HashMap::new();
        for (name, planned, version, code, existing) in &plan {
            if matches!(planned, Planned::Unchanged(_)) {
                continue;
            }
            let warm = existing.as_ref().and_then(|d| {
                d.versions()
                    .filter(|v| v.record.id == version.id)
                    .find_map(|v| v.loaded())
            });
            let function = match warm {
                Some(function) => function,
                None => {
                    let spec = self.pools.spec(
                        &namespace,
                        name,
                        &version.id,
                        version.code_hash.clone(),
                        version.config.clone(),
                    );
                    self.runtime
                        .compile(spec, code.bytes.clone())
                        .await
                        .map_err(|e| EngineError::from(e).context(&format!("function `{name}`")))?
                }
            };
            loaded.insert(name.clone(), function);
        }

        // The store takes each distinct code once, shared by the functions that use it.
        let mut shared: HashMap<&str, Arc<[u8]>> = HashMap::new();
        let items: Vec<AppFunction> = plan
            .iter()
            .map(|(name, _, version, code, _)| AppFunction {
                name: name.clone(),
                version: version.clone(),
                code: shared
                    .entry(code.hash())
                    .or_insert_with(|| Arc::from(code.bytes.as_ref()))
                    .clone(),
            })
            .collect();
        let options = PublishOptions {
            keep_versions: self.limits.keep_versions,
            move_live: true,
        };
        let pruned: &[FunctionName] = if prune { &removed } else { &[] };
        let written = self
            .store
            .deploy_app(&namespace, &app, &items, pruned, options)
            .await?;

        let mut next = (*current).clone();
        for name in pruned {
            next.remove(&(namespace.clone(), name.clone()));
        }
        let mut report = AppReport::default();
        let mut warm = Vec::new();
        for ((name, _, _, _, existing), (outcome, record)) in plan.into_iter().zip(written) {
            let code = loaded.remove(&name).map(|f| (outcome.version(), f));
            let deployed = Arc::new(Deployed::with_code(
                record.clone(),
                &self.pools,
                existing.as_deref(),
                code,
            ));
            next.insert((namespace.clone(), name.clone()), deployed.clone());
            warm.push(deployed);
            report
                .functions
                .push((name, Planned::from(&outcome), Some(record)));
        }
        self.publish(next);
        for deployed in warm {
            deployed.live_version().pool.drive(self.pools.clock.now());
        }
        // Their other concerns (records, events, schedule state) go after the registry.
        for name in pruned {
            self.store.remove_function(&namespace, name).await?;
        }
        self.retain_artifacts().await;
        report.removed = removed;
        Ok(report)
    }
}

//! The engine: everything between the HTTP server and the runtimes.
//!
//! It keeps the registry of deployed functions and the route table in memory (swapped
//! whole on every change, so the request path takes no lock), deploys code (validate,
//! compile, record), dispatches invocations to runtimes, turns route requests into
//! invocations (HTTP functions get the request as it is; event functions get an API
//! Gateway v2 event), and sends every invocation's logs to the store in batches.
//!
//! # Design
//!
//! The request path is: route lookup (an `ArcSwap` load and a `matchit` match) → the
//! version's pool ([`pool`]): a slot under its `max_concurrency` and the namespace's
//! cap, or a bounded wait for one, else 429 → its loaded code (loaded on a cold start
//! from the artifact cache, or by compiling) → the runtime. Nothing on it touches the
//! store: logs and invocation records leave through a channel. Deploys and deletes
//! are serialised by one async mutex and publish a new [`State`] when they are done.
//! One background task, the scaler, wakes at the pools' autoscaler deadlines to
//! release idle pools (scale to zero) and prewarm others.

mod apigw;
mod dispatch;
mod error;
pub mod events;
mod gate;
mod logs;
mod pool;
mod queues;
mod registry;
mod routes;
mod scaler;
mod schedules;
pub mod version;

pub use apigw::ClientAddr;
pub use dispatch::INVOCATION_ID_HEADER;
pub use error::EngineError;
pub use events::retry::RetrySettings;
pub use events::{Accepted, AsyncOptions};
pub use pool::PoolStatus;
pub use queues::Outgoing;
pub use registry::Deployed;
pub use wisp_scaling::KeepAlivePolicy;

use arc_swap::ArcSwap;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use wisp_core::{ErrorCode, FunctionConfig, FunctionName, Limits, Namespace};
use wisp_runtime::{FunctionSpec, Runtime};
use wisp_store::{
    DeployOutcome, FunctionRecord, InvocationQuery, InvocationRecord, InvocationSummary, LogLine, LogQuery,
    Store, VersionRecord,
};

use gate::Gate;
use pool::{Clock, PoolContext};
use routes::RouteTable;

/// What the request path reads: every deployed function and the route table.
struct State {
    functions: HashMap<(Namespace, FunctionName), Arc<Deployed>>,
    routes: RouteTable,
}

/// See the crate docs.
pub struct Engine {
    store: Arc<dyn Store>,
    runtime: Arc<dyn Runtime>,
    state: ArcSwap<State>,
    changes: tokio::sync::Mutex<()>,
    logs: logs::LogSink,
    log_writer: Mutex<Option<logs::LogWriter>>,
    limits: Limits,
    pools: PoolContext,
    /// Each namespace's cap on concurrent invocations.
    namespace_gates: Mutex<HashMap<Namespace, Arc<Gate>>>,
    /// The engine itself, for the background tasks it starts.
    me: std::sync::Weak<Engine>,
    /// The async pipeline.
    events: events::Events,
    /// Queue triggers and the wake-ups of their pollers.
    queues: queues::Queues,
    /// Cron triggers.
    schedules: schedules::Schedules,
}

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
    /// Starts the engine over `store`: loads the registry (not the code: that loads on
    /// first use) and starts the log writer. Must run inside a tokio runtime.
    pub async fn start(
        store: Arc<dyn Store>,
        runtime: Arc<dyn Runtime>,
        limits: Limits,
        keep_alive: KeepAlivePolicy,
        retry: RetrySettings,
    ) -> Result<Arc<Engine>, EngineError> {
        let pools = PoolContext {
            runtime: runtime.clone(),
            store: store.clone(),
            clock: Clock::new(),
            policy: keep_alive,
        };
        let records = store.list_functions(None).await?;
        let functions: HashMap<_, _> = records
            .into_iter()
            .map(|r| {
                let key = (r.namespace.clone(), r.name.clone());
                (key, Arc::new(Deployed::new(r, &pools)))
            })
            .collect();
        let routes = RouteTable::build(functions.values()).unwrap_or_else(|conflict| {
            // Conflicts are refused at deploy; a store that holds one anyway keeps
            // serving what it can rather than refusing to start.
            tracing::error!("stored routes conflict ({conflict:?}); serving without routes");
            RouteTable::default()
        });
        let (sink, writer) = logs::start(store.clone());
        let (events, inboxes) = events::Events::new(retry);
        let engine = Arc::new_cyclic(|me| Engine {
            me: me.clone(),
            store,
            runtime,
            state: ArcSwap::from_pointee(State { functions, routes }),
            changes: tokio::sync::Mutex::new(()),
            logs: sink,
            log_writer: Mutex::new(Some(writer)),
            limits,
            pools,
            namespace_gates: Mutex::new(HashMap::new()),
            events,
            queues: queues::Queues::default(),
            schedules: schedules::Schedules::default(),
        });
        // Prewarms functions with `min_instances` now, and releases idle pools later.
        scaler::start(&engine);
        events::start(&engine, inboxes);
        engine.sync_triggers();
        Ok(engine)
    }

    /// The gate holding a namespace to its cap on concurrent invocations.
    fn namespace_gate(&self, namespace: &Namespace) -> Arc<Gate> {
        let mut gates = self
            .namespace_gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Looked up before inserting: the request path clones no name.
        if let Some(gate) = gates.get(namespace) {
            return gate.clone();
        }
        let gate = Arc::new(Gate::new(self.limits.namespace_max_concurrency as usize));
        gates.insert(namespace.clone(), gate.clone());
        gate
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Writes out queued logs. Call once, at shutdown, after the last invocation.
    pub async fn shutdown(self: Arc<Self>) {
        let writer = self.log_writer.lock().ok().and_then(|mut w| w.take());
        // The writer ends when every sender is gone: ours goes with the engine.
        drop(self);
        if let Some(writer) = writer {
            writer.flush().await;
        }
    }

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
        let state = self.state.load_full();
        let key = (namespace.clone(), name.clone());
        let current = state.functions.get(&key);
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
        let probe = Arc::new(Deployed::new(candidate, &self.pools));
        self.build_routes(&state, &key, Some(&probe))?;

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
            EngineError::new(
                ErrorCode::Internal,
                format!("`{name}` vanished from the store while deploying"),
            )
        })?;
        let deployed = Arc::new(Deployed::with_code(record.clone(), &self.pools, Some(function)));
        let routes = self.build_routes(&state, &key, Some(&deployed))?;
        let mut functions = state.functions.clone();
        functions.insert(key, deployed.clone());
        self.state.store(Arc::new(State { functions, routes }));
        self.sync_triggers();
        // `min_instances` are started now, not at the scaler's next wake-up.
        deployed.pool.drive(self.pools.clock.now());
        Ok(DeployReport { outcome, record })
    }

    /// The route table with `key` replaced by `replacement` (or removed).
    fn build_routes(
        &self,
        state: &State,
        key: &(Namespace, FunctionName),
        replacement: Option<&Arc<Deployed>>,
    ) -> Result<RouteTable, EngineError> {
        let others = state.functions.iter().filter(|(k, _)| *k != key).map(|(_, v)| v);
        RouteTable::build(others.chain(replacement)).map_err(|c| {
            let detail = if c.other_function.is_empty() {
                format!("route `{}` conflicts with a deployed route: {}", c.route, c.other_route)
            } else {
                format!(
                    "route `{}` conflicts with route `{}` of function `{}`; change one of them or remove `{}` first",
                    c.route, c.other_route, c.other_function, c.other_function
                )
            };
            EngineError::new(ErrorCode::RouteConflict, detail)
        })
    }

    /// Removes a function, its versions and logs. Returns whether it existed.
    pub async fn delete(&self, namespace: &Namespace, name: &FunctionName) -> Result<bool, EngineError> {
        let _guard = self.changes.lock().await;
        let existed = self.store.delete_function(namespace, name).await?;
        let state = self.state.load_full();
        let key = (namespace.clone(), name.clone());
        if state.functions.contains_key(&key) {
            let routes = self.build_routes(&state, &key, None)?;
            let mut functions = state.functions.clone();
            functions.remove(&key);
            self.state.store(Arc::new(State { functions, routes }));
            self.sync_triggers();
        }
        Ok(existed)
    }

    /// A deployed function.
    pub fn function(&self, namespace: &Namespace, name: &FunctionName) -> Option<Arc<Deployed>> {
        self.state
            .load()
            .functions
            .get(&(namespace.clone(), name.clone()))
            .cloned()
    }

    /// Every deployed function of a namespace, by name.
    pub fn functions(&self, namespace: &Namespace) -> Vec<Arc<Deployed>> {
        let state = self.state.load();
        let mut list: Vec<_> = state
            .functions
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(_, d)| d.clone())
            .collect();
        list.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        list
    }

    /// A function's recent invocation records, with totals over all it keeps.
    pub async fn invocations(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        query: &InvocationQuery,
    ) -> Result<(Vec<InvocationRecord>, InvocationSummary), EngineError> {
        if self.function(namespace, name).is_none() {
            return Err(EngineError::function_not_found(name.as_str()));
        }
        let records = self.store.invocations(namespace, name, query).await?;
        let summary = self.store.invocation_summary(namespace, name).await?;
        Ok((records, summary))
    }

    /// A function's recent log lines.
    pub async fn logs(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        query: &LogQuery,
    ) -> Result<Vec<LogLine>, EngineError> {
        if self.function(namespace, name).is_none() {
            return Err(EngineError::function_not_found(name.as_str()));
        }
        Ok(self.store.logs(namespace, name, query).await?)
    }
}

//! The engine: everything between the HTTP server and the runtimes.
//!
//! It keeps the registry of deployed functions in memory (swapped whole on every
//! change, so the request path takes no lock), deploys code (validate, compile,
//! record), dispatches invocations to runtimes ([`dispatch`]), runs the triggers that
//! turn routes, queue messages and schedules into invocations ([`triggers`]) and the
//! async pipeline ([`pipeline`]), offers guests the services they are granted
//! ([`services`]), and sends every invocation's logs and record to the store in
//! batches.
//!
//! # Design
//!
//! The request path is: route lookup (an `ArcSwap` load and a `matchit` match) → the
//! version's pool ([`pool`]): a slot under its `max_concurrency` and the namespace's
//! cap, or a bounded wait for one, else 429 → its loaded code (loaded on a cold start
//! from the artifact cache, or by compiling) → the runtime. Nothing on it touches the
//! store: logs and invocation records leave through a channel. Deploys and deletes
//! are serialised by one async mutex and publish a new registry when they are done,
//! which every trigger then follows ([`triggers::Triggers::sync`]). One background
//! task, the scaler, wakes at the pools' autoscaler deadlines to release idle pools
//! (scale to zero) and prewarm others.
//!
//! The server reaches the runtimes only through the engine: the body and error types
//! it needs are re-exported here.

mod alarms;
mod app;
mod audit;
pub mod breaker;
mod calls;
mod capacity;
mod cause;
pub mod cluster;
mod code;
mod deploy;
mod dispatch;
mod error;
mod follow;
mod gate;
mod guard;
pub mod history;
pub mod identity;
mod kv;
mod lifecycle;
mod logs;
mod metrics;
mod otlp;
pub mod pipeline;
mod pool;
mod queues;
mod quota;
mod registry;
mod scaler;
mod secrets;
mod services;
mod storage;
mod tail;
mod topics;
mod triggers;
mod usage;
mod verdict;
pub mod version;

pub use alarms::Judged;
pub use app::{AppCode, AppReport, AppRequest, Planned};
pub use audit::AuditRecord;
pub use calls::CallFrom;
pub use cause::Cause;
pub use deploy::{DeployReport, DeployRequest};
pub use dispatch::{INVOCATION_ID_HEADER, InvokeOptions, VERSION_HEADER};
pub use error::EngineError;
pub use identity::secret::MasterKey;
pub use identity::{Caller, FunctionGrants, NewKey};
pub use metrics::{FunctionStats, METRICS_TOKEN_MIN};
pub use otlp::OtlpEndpoint;
pub use pipeline::retry::RetrySettings;
pub use pipeline::{Accepted, AsyncOptions};
pub use pool::PoolStatus;
pub use queues::Outgoing;
pub use quota::{FREE_GB_SECONDS, FREE_REQUESTS};
pub use registry::{Deployed, Version};
pub use secrets::{SecretInfo, SecretSet};
pub use services::platform::{PLATFORM_HOST, Platform};
pub use storage::{ByteRange, ByteStream, ObjectInfo, ObjectPut, ObjectRead, ReadConditions, StorageConfig};
pub use tail::{LogTail, TailSender, log_tail};
pub use topics::{FilterText, TopicPublish};
pub use triggers::http::apigw::ClientAddr;
pub use wisp_runtime::services::ServiceFuture;
pub use wisp_runtime::{Body, BoxError, CallContext, ErrorReport, body};
pub use wisp_scaling::KeepAlivePolicy;
pub use wisp_store::{KvCondition, KvEntry, KvPage, KvStoreRecord};

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use wisp_core::{ErrorCode, FunctionName, Limits, Namespace};
use wisp_runtime::Runtime;
use wisp_store::{InvocationQuery, InvocationRecord, InvocationSummary, LogLine, LogQuery, Store};

use gate::Gate;
use pool::{Clock, PoolContext};
use registry::Functions;

/// See the crate docs.
pub struct Engine {
    store: Arc<dyn Store>,
    runtime: Arc<dyn Runtime>,
    /// Every deployed function; what the invoke API and the triggers read.
    functions: ArcSwap<Functions>,
    /// Held by deploys and deletes, one at a time.
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
    pipeline: pipeline::Pipeline,
    /// Wake-ups of whoever waits on a queue's messages.
    queue_wakes: queues::QueueWakes,
    /// HTTP routes, queue pollers, schedule timers.
    triggers: triggers::Triggers,
    /// Wakes the topic delivery worker (a publish stored deliveries).
    topic_wake: Arc<tokio::sync::Notify>,
    /// API keys and namespaces, as checks read them.
    identity: identity::Identity,
    /// Each namespace's month of usage, and the plans it is held to.
    quotas: Arc<quota::Quotas>,
    /// The reserved capacity (`min_instances`) each version holds.
    capacity: capacity::CapacityMeter,
    /// Object storage's blobs and S3 endpoint.
    storage: StorageConfig,
    /// The credentials native functions get (also in `pools`).
    function_credentials: Arc<identity::function_credentials::FunctionCredentials>,
    /// Every namespace's secrets, opened (also in `pools`, for versions' services).
    secrets: Arc<secrets::SecretCache>,
    /// The circuit breakers on calls between functions, queues, topics and webhooks.
    breakers: breaker::Breakers,
    /// The running native invocations, for the calls they make.
    calls: Arc<calls::LiveCalls>,
    /// Where the log writer hands written records for OTLP export ([`Engine::export_spans`]).
    spans: otlp::SpanTap,
    /// Every version's counters, and what `/metrics` needs besides (also in `pools`).
    metrics: Arc<metrics::Metrics>,
    /// Each function's recent minutes and quarter hours, for the dashboard's charts.
    history: history::History,
    /// The alarm task's wake-up and each alarm's latest judgement.
    alarms: alarms::AlarmBook,
    /// This node among the store's nodes, and whether it reaches the store.
    membership: cluster::Membership,
}

impl Engine {
    /// What the runtimes cannot enforce on this machine (see
    /// [`wisp_runtime::Runtime::warnings`]).
    pub fn runtime_warnings(&self) -> Vec<String> {
        self.runtime.warnings()
    }
}

impl Engine {
    /// Starts the engine over `store`: loads the registry (not the code: that loads on
    /// first use), starts the log writer, the scaler, the async pipeline and the
    /// triggers. Must run inside a tokio runtime.
    pub async fn start(
        store: Arc<dyn Store>,
        runtime: Arc<dyn Runtime>,
        limits: Limits,
        keep_alive: KeepAlivePolicy,
        retry: RetrySettings,
        master_key: MasterKey,
        storage: StorageConfig,
    ) -> Result<Arc<Engine>, EngineError> {
        let function_credentials = Arc::new(identity::function_credentials::FunctionCredentials::new(
            &master_key,
        ));
        let secrets = Arc::new(secrets::SecretCache::new(master_key.clone()));
        // Before any version is built: prewarmed instances resolve their references.
        secrets.reload(store.as_ref()).await?;
        let pools = PoolContext {
            secrets: secrets.clone(),
            runtime: runtime.clone(),
            store: store.clone(),
            clock: Clock::new(),
            policy: keep_alive,
            function_credentials: function_credentials.clone(),
            platform: Arc::default(),
            engine: Arc::default(),
            metrics: Arc::new(metrics::Metrics::new()),
            nodes_up: Arc::new(std::sync::atomic::AtomicUsize::new(1)),
        };
        let records = store.list_functions(None).await?;
        let functions: Functions = records
            .into_iter()
            .map(|r| {
                let key = (r.namespace.clone(), r.name.clone());
                (key, Arc::new(Deployed::new(r, &pools, None)))
            })
            .collect();
        let quotas = Arc::new(quota::Quotas::new(wisp_core::billing::Plan::new(
            wisp_core::billing::Prices::LAMBDA,
            FREE_REQUESTS,
            FREE_GB_SECONDS,
        )));
        let spans = otlp::SpanTap::default();
        let (sink, writer) = logs::start(store.clone(), quotas.clone(), spans.clone());
        let (pipeline, inboxes) = pipeline::Pipeline::new(retry);
        let identity = identity::Identity::new(master_key);
        identity.reload(store.as_ref()).await?;
        let metrics = pools.metrics.clone();
        let nodes_up = pools.nodes_up.clone();
        let engine = Arc::new_cyclic(|me| Engine {
            me: me.clone(),
            store,
            runtime,
            functions: ArcSwap::from_pointee(functions),
            changes: tokio::sync::Mutex::new(()),
            logs: sink,
            log_writer: Mutex::new(Some(writer)),
            limits,
            pools,
            namespace_gates: Mutex::new(HashMap::new()),
            pipeline,
            queue_wakes: queues::QueueWakes::default(),
            triggers: triggers::Triggers::default(),
            topic_wake: Arc::new(tokio::sync::Notify::new()),
            identity,
            quotas,
            capacity: capacity::CapacityMeter::default(),
            storage,
            function_credentials,
            secrets,
            breakers: breaker::Breakers::new(),
            calls: Arc::default(),
            metrics,
            history: history::History::default(),
            spans,
            alarms: alarms::AlarmBook::default(),
            membership: cluster::Membership::new(nodes_up),
        });
        // Versions' services (built above, and at each deploy) reach it from now on. The
        // cell was made empty above and is set only here, so this cannot find it set.
        let _ = engine.pools.engine.set(Arc::downgrade(&engine));
        engine.sweep_blobs().await?;
        engine
            .capacity
            .sync(wisp_core::wall::now_ms(), &engine.functions.load());
        identity::start(&engine);
        engine.reconcile_quotas().await?;
        quota::start(&engine);
        // Removes expired key-value entries now and then.
        kv::start(&engine);
        // Prewarms functions with `min_instances` now, and releases idle pools later.
        scaler::start(&engine);
        pipeline::start(&engine, inboxes);
        // Hands published messages to their subscribers.
        topics::start(&engine);
        // Evaluates alarms and carries out their actions.
        alarms::start(&engine);
        // Samples each function's counters a minute at a time, for the charts.
        history::start(&engine);
        // Serves what other nodes sharing the store deploy, change and delete.
        follow::start(&engine);
        engine.triggers.sync(&engine, &engine.functions.load());
        Ok(engine)
    }

    /// Makes `functions` the registry and brings every trigger in line with it. Call
    /// with the lock on changes held.
    fn publish(&self, functions: Functions) {
        // Capacity held by the versions replaced or deleted ends now; the new ones' starts.
        self.capacity.sync(wisp_core::wall::now_ms(), &functions);
        self.functions.store(Arc::new(functions));
        self.triggers.sync(self, &self.functions.load());
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
        let limit = self
            .identity
            .max_concurrency(namespace)
            .unwrap_or(self.limits.namespace_max_concurrency);
        // Each of the store's nodes holds its share, so the cluster holds the whole cap.
        let gate = Arc::new(Gate::new(self.cluster_share(limit) as usize));
        gates.insert(namespace.clone(), gate.clone());
        gate
    }

    /// Drops a namespace's gate, so the next invocation makes one with its current
    /// cap (invocations inside the old one finish there).
    fn forget_namespace_gate(&self, namespace: &Namespace) {
        self.namespace_gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(namespace);
    }

    /// Drops every namespace's gate, as [`Engine::forget_namespace_gate`] does one's.
    fn forget_namespace_gates(&self) {
        self.namespace_gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Writes out queued logs (and exports their spans). Call once, at shutdown, after
    /// the last invocation.
    pub async fn shutdown(self: Arc<Self>) {
        self.stop_platform();
        if let Err(e) = self.flush_capacity().await {
            tracing::warn!(
                "cannot record the last reserved capacity held: {}",
                e.with_cause()
            );
        }
        let writer = self.log_writer.lock().ok().and_then(|mut w| w.take());
        let spans = self.spans.clone();
        // The writer ends when every sender is gone: ours goes with the engine.
        drop(self);
        if let Some(writer) = writer {
            writer.flush().await;
        }
        // The writer's last records are offered for export: send them.
        spans.finish(otlp::FINISH_WITHIN).await;
    }

    /// A deployed function.
    pub fn function(&self, namespace: &Namespace, name: &FunctionName) -> Option<Arc<Deployed>> {
        self.functions
            .load()
            .get(&(namespace.clone(), name.clone()))
            .cloned()
    }

    /// Every deployed function of a namespace, by name.
    pub fn functions(&self, namespace: &Namespace) -> Vec<Arc<Deployed>> {
        let functions = self.functions.load();
        let mut list: Vec<_> = functions
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

    /// The invocation records of a namespace under trace root `root`, across its
    /// functions, oldest first (at most `wisp_store::TRACE_INVOCATIONS_MAX`); refused
    /// with `invalid_request` for a root not of X-Ray's form and `trace_not_found`
    /// when no record carries it (another namespace's trace included).
    pub async fn trace(
        &self,
        namespace: &Namespace,
        root: &str,
    ) -> Result<Vec<InvocationRecord>, EngineError> {
        if !wisp_core::trace::is_root(root) {
            return Err(EngineError::new(
                ErrorCode::InvalidRequest,
                format!("`{root}` is not a trace root: use X-Ray's form `1-<8 hex digits>-<24 hex digits>`"),
            ));
        }
        let records = self.store.trace_invocations(namespace, root).await?;
        if records.is_empty() {
            return Err(EngineError::new(
                ErrorCode::TraceNotFound,
                format!("no invocation record carries trace `{root}`"),
            ));
        }
        Ok(records)
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

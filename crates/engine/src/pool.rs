//! A function version's pool: its warm state (the loaded code and, for process
//! functions, the instances that code keeps), the gate that holds invocations to
//! `max_concurrency`, the autoscaler that decides when to release and prewarm, and the
//! counters the API shows.
//!
//! # Design
//!
//! The autoscaler ([`wisp_scaling::Autoscaler`]) is a pure state machine; the pool is
//! its driver. It reports every invocation's start and end, and applies what the
//! autoscaler asks for: *release* (unload a wasm function's code — the next invocation
//! reloads it from the artifact cache — or stop a process function's idle instances)
//! and *prewarm* (load the code, start instances). Releases due when an invocation
//! ends are applied at once; the rest wait for the engine's scaler task, which wakes
//! at the earliest deadline of any pool.

use crate::EngineError;
use crate::gate::{Gate, Refusal};
use crate::identity::FunctionGrants;
use crate::metrics::VersionMetrics;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wisp_core::{FunctionConfig, FunctionName, FunctionRuntime, Namespace, VersionId};
use wisp_runtime::{Function, FunctionSpec, Instances, Runtime};
use wisp_scaling::{Action, Autoscaler, KeepAlivePolicy};
use wisp_store::{Store, UnixMillis};

/// The engine's monotonic clock, as the autoscaler reads it: time since the engine
/// started.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: std::time::Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            origin: std::time::Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    pub(crate) fn at(&self, offset: Duration) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.origin + offset)
    }
}

/// What a pool needs from the engine.
#[derive(Clone)]
pub(crate) struct PoolContext {
    pub runtime: Arc<dyn Runtime>,
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    pub policy: KeepAlivePolicy,
    /// What native functions' credentials are derived from.
    pub function_credentials: Arc<crate::identity::function_credentials::FunctionCredentials>,
    /// Every namespace's secrets: what versions' services resolve `env` references with.
    pub secrets: Arc<crate::secrets::SecretCache>,
    /// What answers guests' requests to the platform address, once the server installs it.
    pub platform: crate::services::platform::PlatformCell,
    /// The engine, for guests' calls to other functions (set once it is made).
    pub engine: crate::services::calls::EngineCell,
    /// Every version's counters: a pool takes its version's at deploy.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The nodes up that share the store (1 alone): each holds its share of a version's
    /// `max_concurrency`.
    pub nodes_up: Arc<AtomicUsize>,
}

impl PoolContext {
    /// What the runtime is given to load or compile a version: its configuration, and
    /// for a native function the credential and endpoints it finds in its environment
    /// (as Lambda hands out an execution role: the platform's, so they override any
    /// variable of the same name the configuration sets).
    pub(crate) fn spec(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        version: &VersionId,
        code_hash: String,
        mut config: FunctionConfig,
    ) -> FunctionSpec {
        if config.runtime != FunctionRuntime::Wasm {
            let credential = self.function_credentials.issue(
                namespace,
                function,
                version,
                FunctionGrants::of(function, &config),
            );
            config.env.extend(
                self.function_credentials
                    .env(&credential)
                    .into_iter()
                    .map(|(k, v)| (k, wisp_core::EnvValue::Text(v))),
            );
        }
        // Built here, so that code compiled at a deploy (before its version exists)
        // starts instances with the same services as code loaded for a version.
        let services = crate::services::for_function(
            namespace,
            function,
            &config,
            &self.store,
            &self.platform,
            &self.engine,
        )
        .with_secret_values(self.secrets.for_namespace(namespace));
        FunctionSpec {
            name: function.to_string(),
            code_hash,
            config,
            services,
        }
    }
}

/// See the module docs.
pub struct Pool {
    ctx: PoolContext,
    namespace: Namespace,
    spec: FunctionSpec,
    /// The version's number, which its code is told ([`Function::published_as`]).
    number: u32,
    code: Mutex<Option<Arc<dyn Function>>>,
    /// Held while loading, so concurrent cold starts load once.
    loading: tokio::sync::Mutex<()>,
    gate: Gate,
    /// With other nodes up: this node's share of `max_concurrency` (divided by the nodes
    /// up, rounded up), made for the count it holds and made again when it changes.
    share: Mutex<Option<(usize, Arc<Gate>)>>,
    /// The reserved capacity (`min_instances`): an invocation that takes one of these
    /// slots runs on it and bills its duration at the reserved rate. `None` without.
    reserved: Option<Arc<Semaphore>>,
    /// The instances kept warm: the version's `min_instances` while an alias points at
    /// it, else none.
    min_instances: u32,
    scaler: Mutex<Autoscaler>,
    /// Its version's counters and histograms (kept across redeploys of the function).
    pub(crate) metrics: Arc<VersionMetrics>,
}

/// A pool's state, as the API shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PoolStatus {
    /// Whether the code is loaded in memory.
    pub loaded: bool,
    /// Instances by state. For wasm functions `busy` is the invocations running (each
    /// has its own instance) and nothing is ever idle or starting.
    pub instances: Instances,
    /// Invocations waiting for a slot.
    pub queued: usize,
    pub invocations: u64,
    pub cold_starts: u64,
    pub throttled: u64,
}

/// An admitted invocation: it holds its slots until dropped, and its drop tells the
/// autoscaler it ended.
pub(crate) struct Ticket {
    pool: Arc<Pool>,
    _slot: OwnedSemaphorePermit,
    _share_slot: Option<OwnedSemaphorePermit>,
    _namespace_slot: OwnedSemaphorePermit,
    /// A slot of the reserved capacity, when one was free.
    reserved: Option<OwnedSemaphorePermit>,
    /// When it arrived (wall clock).
    pub arrived: UnixMillis,
    /// How long it waited for its slots.
    pub queued: Duration,
}

impl Ticket {
    /// Whether it runs on the function's reserved capacity.
    pub(crate) fn reserved(&self) -> bool {
        self.reserved.is_some()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.pool.finished();
    }
}

impl Pool {
    /// The pool of version `number`, with its code when it is `loaded` already.
    pub(crate) fn new(
        ctx: PoolContext,
        namespace: Namespace,
        spec: FunctionSpec,
        number: u32,
        min_instances: u32,
        loaded: Option<Arc<dyn Function>>,
        metrics: Arc<VersionMetrics>,
    ) -> Arc<Pool> {
        if let Some(function) = &loaded {
            // Code compiled at a deploy learns its number only now.
            function.published_as(number);
        }
        let config = &spec.config;
        let now = ctx.clock.now();
        let mut scaler = Autoscaler::new(ctx.policy.clone(), min_instances, now);
        if loaded.is_some() && min_instances == 0 {
            // Just deployed: warm, as if an invocation had just ended. (With
            // `min_instances`, the first poll prewarms the instances.)
            scaler.on_start(now);
            scaler.on_finish(now);
        }
        Arc::new(Pool {
            gate: Gate::new(config.max_concurrency as usize),
            share: Mutex::new(None),
            reserved: (min_instances > 0).then(|| Arc::new(Semaphore::new(min_instances as usize))),
            min_instances,
            scaler: Mutex::new(scaler),
            code: Mutex::new(loaded),
            loading: tokio::sync::Mutex::new(()),
            metrics,
            ctx,
            namespace,
            spec,
            number,
        })
    }

    fn config(&self) -> &FunctionConfig {
        &self.spec.config
    }

    /// The loaded code, if it is loaded.
    pub(crate) fn loaded(&self) -> Option<Arc<dyn Function>> {
        self.code.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Admits an invocation through this version's gate and then its namespace's,
    /// waiting in line up to the function's `queue_timeout`.
    pub(crate) async fn admit(self: &Arc<Self>, namespace_gate: &Gate) -> Result<Ticket, EngineError> {
        let arrived = wisp_core::wall::now_ms();
        let started = tokio::time::Instant::now();
        let config = self.config();
        let deadline = started + config.queue_timeout;
        let throttled = |refusal: Refusal, whose: String| {
            self.metrics.throttled.fetch_add(1, Ordering::Relaxed);
            let detail = match refusal {
                Refusal::QueueFull => format!("{whose}, and its queue is full; retry later"),
                Refusal::TimedOut => format!(
                    "{whose}; this invocation waited {} (the function's queue_timeout) without getting a slot",
                    humantime::format_duration(config.queue_timeout)
                ),
            };
            EngineError::throttled(detail)
        };
        let slot = self
            .gate
            .enter(config.max_queue as usize, deadline)
            .await
            .map_err(|r| {
                throttled(
                    r,
                    format!(
                        "`{}` is running its max_concurrency of {} invocations",
                        self.spec.name, config.max_concurrency
                    ),
                )
            })?;
        let share_slot = match self.share() {
            Some((up, share)) => Some(share.enter(usize::MAX, deadline).await.map_err(|r| {
                throttled(
                    r,
                    format!(
                        "`{}` is running its share of its max_concurrency of {} ({} invocations on each of the {up} nodes up)",
                        self.spec.name,
                        config.max_concurrency,
                        share.limit()
                    ),
                )
            })?),
            None => None,
        };
        let namespace_slot = namespace_gate.enter(usize::MAX, deadline).await.map_err(|r| {
            throttled(
                r,
                format!(
                    "namespace `{}` is running its limit of {} concurrent invocations",
                    self.namespace,
                    namespace_gate.limit()
                ),
            )
        })?;
        self.metrics.invocations.fetch_add(1, Ordering::Relaxed);
        self.scaler().on_start(self.ctx.clock.now());
        let reserved = self
            .reserved
            .as_ref()
            .and_then(|r| r.clone().try_acquire_owned().ok());
        Ok(Ticket {
            pool: self.clone(),
            _slot: slot,
            _share_slot: share_slot,
            _namespace_slot: namespace_slot,
            reserved,
            arrived,
            queued: started.elapsed(),
        })
    }

    /// This node's share of `max_concurrency` while other nodes are up, with the count
    /// of nodes it was made for; `None` alone (the version's own gate is the whole cap).
    /// Invocations admitted before a change hold the old share's slots until they end.
    fn share(&self) -> Option<(usize, Arc<Gate>)> {
        let up = self.ctx.nodes_up.load(Ordering::Relaxed);
        if up <= 1 {
            return None;
        }
        let mut share = self.share.lock().unwrap_or_else(PoisonError::into_inner);
        match &*share {
            Some((made_for, gate)) if *made_for == up => Some((up, gate.clone())),
            _ => {
                let limit = (self.config().max_concurrency as usize).div_ceil(up).max(1);
                let gate = Arc::new(Gate::new(limit));
                *share = Some((up, gate.clone()));
                Some((up, gate))
            }
        }
    }

    fn scaler(&self) -> std::sync::MutexGuard<'_, Autoscaler> {
        self.scaler.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a cold start (the dispatcher knows: it loaded code, or the runtime started
    /// an instance).
    pub(crate) fn count_cold_start(&self) {
        self.metrics.cold_starts.fetch_add(1, Ordering::Relaxed);
    }

    /// The loaded code, loading it when it is not loaded (a cold start): from the
    /// artifact cache, or by compiling the stored code when the cache has no usable
    /// artifact. Returns how long loading took when it had to.
    pub(crate) async fn function(&self) -> Result<(Arc<dyn Function>, Option<Duration>), EngineError> {
        if let Some(function) = self.loaded() {
            return Ok((function, None));
        }
        let _loading = self.loading.lock().await;
        if let Some(function) = self.loaded() {
            return Ok((function, None));
        }
        let started = std::time::Instant::now();
        let function = self.load().await?;
        *self.code.lock().unwrap_or_else(PoisonError::into_inner) = Some(function.clone());
        Ok((function, Some(started.elapsed())))
    }

    async fn load(&self) -> Result<Arc<dyn Function>, EngineError> {
        let started = std::time::Instant::now();
        let name = &self.spec.name;
        if let Some(function) = self.ctx.runtime.load(self.spec.clone()).await? {
            tracing::info!(function = %name, "loaded `{name}` from the artifact cache in {:?}", started.elapsed());
            function.published_as(self.number);
            return Ok(function);
        }
        let code = self
            .ctx
            .store
            .get_code(&self.namespace, &self.spec.code_hash)
            .await?
            .ok_or_else(|| {
                EngineError::internal(format!("the code of `{name}` is missing from the store"))
            })?;
        let function = self.ctx.runtime.compile(self.spec.clone(), code.into()).await?;
        tracing::info!(function = %name, "compiled `{name}` in {:?}", started.elapsed());
        function.published_as(self.number);
        Ok(function)
    }

    /// An invocation ended: tell the autoscaler, and apply what it asks for now.
    fn finished(self: &Arc<Self>) {
        let now = self.ctx.clock.now();
        self.drive_after(now, |scaler| scaler.on_finish(now));
    }

    /// Applies every action due at `now`.
    pub(crate) fn drive(self: &Arc<Self>, now: Duration) {
        self.drive_after(now, |_| ());
    }

    /// Tells the autoscaler `event`, then applies every action due at `now`, under one
    /// lock (an invocation's end takes it once).
    fn drive_after(self: &Arc<Self>, now: Duration, event: impl FnOnce(&mut Autoscaler)) {
        let mut released = None;
        {
            let mut scaler = self.scaler();
            event(&mut scaler);
            while let Some(action) = scaler.poll(now) {
                match action {
                    // Under the autoscaler's lock, so no invocation starts in between.
                    Action::Release => released = released.or(self.release()),
                    Action::Prewarm => self.prewarm(),
                }
            }
        }
        // Unloading code or stopping instances happens outside the lock.
        drop(released);
    }

    /// When [`Pool::drive`] next has something to do, if ever.
    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        self.scaler().next_deadline()
    }

    /// Releases the warm state: a wasm function's code is unloaded (returned, to be
    /// dropped by the caller); a process function's idle instances beyond
    /// `min_instances` are stopped.
    fn release(&self) -> Option<Arc<dyn Function>> {
        let mut code = self.code.lock().unwrap_or_else(PoisonError::into_inner);
        match code.as_ref() {
            Some(function) if function.keeps_instances() => {
                let stopped = function.stop_idle(Duration::ZERO, self.min_instances as usize);
                if stopped > 0 {
                    tracing::debug!(function = %self.spec.name, "scaled in: stopped {stopped} idle instances");
                }
                None
            }
            Some(_) => {
                tracing::debug!(function = %self.spec.name, "scaled to zero: unloaded the code");
                code.take()
            }
            None => None,
        }
    }

    /// Stops a process function's instances that have been idle longer than the
    /// keep-alive window (scale-in while the function stays warm).
    pub(crate) fn trim(&self) {
        let keep_alive = self.scaler().windows().keep_alive;
        if let Some(function) = self.loaded().filter(|f| f.keeps_instances()) {
            function.stop_idle(keep_alive, self.min_instances as usize);
        }
    }

    /// Loads the code and starts `max(min_instances, 1)` instances, in the background.
    fn prewarm(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.clone();
        handle.spawn(async move {
            let count = pool.min_instances.max(1) as usize;
            let result = match pool.function().await {
                Ok((function, _)) => function.prewarm(count).await.map_err(EngineError::from),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => tracing::debug!(function = %pool.spec.name, "prewarmed"),
                Err(e) => {
                    tracing::warn!(function = %pool.spec.name, "cannot prewarm `{}`: {}", pool.spec.name, e.with_cause());
                    pool.scaler().on_released(pool.ctx.clock.now());
                }
            }
        });
    }

    /// The pool's state now.
    pub fn status(&self) -> PoolStatus {
        let loaded = self.loaded();
        let mut instances = loaded.as_ref().map(|f| f.instances()).unwrap_or_default();
        if !loaded.as_ref().is_some_and(|f| f.keeps_instances()) {
            instances.busy = self.gate.inside();
        }
        PoolStatus {
            loaded: loaded.is_some(),
            instances,
            queued: self.gate.waiting(),
            invocations: self.metrics.invocations.load(Ordering::Relaxed),
            cold_starts: self.metrics.cold_starts.load(Ordering::Relaxed),
            throttled: self.metrics.throttled.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use async_trait::async_trait;
    use bytes::Bytes;
    use wisp_runtime::LoadError;

    struct NoRuntime;

    #[async_trait]
    impl Runtime for NoRuntime {
        async fn compile(&self, _: FunctionSpec, _: Bytes) -> Result<Arc<dyn Function>, LoadError> {
            Err(LoadError::Internal("no runtime in this test".into()))
        }

        async fn load(&self, _: FunctionSpec) -> Result<Option<Arc<dyn Function>>, LoadError> {
            Ok(None)
        }
    }

    /// For tests that only read records (the route table): nothing can load.
    pub(crate) fn unused_context() -> PoolContext {
        let dir = tempfile::tempdir().unwrap().keep();
        let store = wisp_store::SqliteStore::open(&dir.join("wisp.db")).unwrap();
        PoolContext {
            runtime: Arc::new(NoRuntime),
            store: Arc::new(store),
            clock: Clock::new(),
            platform: Arc::default(),
            engine: Arc::default(),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            policy: KeepAlivePolicy::fixed_default(),
            secrets: Arc::new(crate::secrets::SecretCache::new(
                crate::MasterKey::generate().unwrap(),
            )),
            function_credentials: Arc::new(crate::identity::function_credentials::FunctionCredentials::new(
                &crate::MasterKey::generate().unwrap(),
            )),
            nodes_up: Arc::new(AtomicUsize::new(1)),
        }
    }
}

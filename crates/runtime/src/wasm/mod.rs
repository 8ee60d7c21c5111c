//! The WebAssembly runtime, on wasmtime.
//!
//! One [`wasmtime::Engine`] (pooling allocator, epoch interruption) serves every
//! function. Code is compiled ahead of time at deploy and cached on disk
//! ([`cache`]) and shared in memory by every loaded function with the same code; a
//! loaded function keeps its `InstancePre` (the warm state) and
//! creates a fresh store and instance per invocation ([`http`], [`event`]).
//! Limits ([`limits`]): memory through a `ResourceLimiter`, time through epoch
//! deadlines plus a wall-clock timer that also covers time spent in host calls.
//! What guests may call beyond WASI goes through the invocation's services
//! ([`host`]).

mod cache;
mod capture;
mod event;
mod failure;
mod guest_body;
mod host;
mod http;
mod limits;
mod state;

pub use cache::ArtifactCache;

use crate::{Function, FunctionSpec, LoadError, Runtime};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use wasmtime::component::{Component, Linker as ComponentLinker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig};
use wisp_core::{Kind, Limits};

use state::{ComponentState, ModuleState};

/// How often the epoch ticks: the granularity of timeouts and of cooperative
/// yielding for guests that compute without calling the host.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Settings of the wasm runtime.
#[derive(Clone, Debug)]
pub struct WasmConfig {
    /// Where compiled artifacts are cached.
    pub cache_dir: PathBuf,
    /// Most instances (of all functions) alive at once.
    pub max_instances: u32,
    pub limits: Limits,
}

impl WasmConfig {
    pub fn new(cache_dir: impl Into<PathBuf>) -> WasmConfig {
        WasmConfig {
            cache_dir: cache_dir.into(),
            max_instances: 1000,
            limits: Limits::DEFAULT,
        }
    }
}

/// Runs wasm functions. See the module docs.
pub struct WasmRuntime {
    inner: Arc<Inner>,
    ticker: Arc<AtomicBool>,
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) component_linker: ComponentLinker<ComponentState>,
    pub(crate) module_linker: Linker<ModuleState>,
    pub(crate) cache: ArtifactCache,
    pub(crate) limits: Limits,
    /// The compiled code loaded now, by code hash: functions with the same code share
    /// one copy in memory.
    loaded: Mutex<HashMap<String, Weak<Artifact>>>,
}

/// What the code of a function turned out to be.
pub(crate) enum Artifact {
    Component(Component),
    Module(Module),
}

impl WasmRuntime {
    /// Creates the engine, the linkers and the artifact cache, and starts the epoch ticker.
    pub fn new(config: WasmConfig) -> Result<WasmRuntime, LoadError> {
        let engine = Engine::new(&engine_config(config.max_instances))
            .map_err(|e| LoadError::Internal(format!("cannot create the wasm engine: {e:#}")))?;
        let mut component_linker = ComponentLinker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component_linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component_linker))
            .and_then(|()| host::keyvalue::add_to_linker(&mut component_linker, ComponentState::key_value))
            .and_then(|()| host::platform::add_to_linker(&mut component_linker, ComponentState::functions))
            .map_err(|e| LoadError::Internal(format!("cannot link WASI: {e:#}")))?;
        let mut module_linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut module_linker, |s: &mut ModuleState| &mut s.wasi)
            .map_err(|e| LoadError::Internal(format!("cannot link WASI p1: {e:#}")))?;
        let cache = ArtifactCache::open(&config.cache_dir, &engine)
            .map_err(|e| LoadError::Internal(format!("cannot open the artifact cache: {e}")))?;
        let ticker = Arc::new(AtomicBool::new(true));
        start_epoch_ticker(engine.clone(), ticker.clone())
            .map_err(|e| LoadError::Internal(format!("cannot start the epoch ticker thread: {e}")))?;
        Ok(WasmRuntime {
            inner: Arc::new(Inner {
                engine,
                component_linker,
                module_linker,
                cache,
                limits: config.limits,
                loaded: Mutex::new(HashMap::new()),
            }),
            ticker,
        })
    }

    /// The wasmtime engine (for tests and benchmarks).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The artifact cache.
    pub fn cache(&self) -> &ArtifactCache {
        &self.inner.cache
    }
}

impl Drop for WasmRuntime {
    fn drop(&mut self) {
        self.ticker.store(false, Ordering::Relaxed);
    }
}

fn engine_config(max_instances: u32) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    config.parallel_compilation(true);

    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(max_instances);
    // A wasm32-wasip2 component holds a handful of core instances (the program and
    // the adapter shims); leave room for them.
    pool.total_core_instances(max_instances * 4);
    pool.total_memories(max_instances * 2);
    pool.total_tables(max_instances * 4);
    pool.total_stacks(max_instances);
    pool.max_memory_size(Limits::MAX_MEMORY_MB as usize * 1024 * 1024);
    // Reset a slot for reuse by rewriting only the pages the last instance dirtied
    // (found with the PAGEMAP_SCAN ioctl, Linux ≥ 6.7; elsewhere wasmtime falls back
    // to madvise) and keep them resident: the next instance takes no page faults.
    // Measured with bench/http-hello: ~1.7× the requests per second of resetting
    // with memset alone (see docs/performance.md).
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    pool.linear_memory_keep_resident(1 << 20);
    pool.table_keep_resident(64 << 10);
    pool.async_stack_keep_resident(128 << 10);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Ticks the engine's epoch until `running` is cleared. Without it no guest could
/// be interrupted, so failing to start it fails the runtime.
fn start_epoch_ticker(engine: Engine, running: Arc<AtomicBool>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("wisp-epoch".into())
        .spawn(move || {
            while running.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .map(drop)
}

/// The kind of binary: a core module or a component, by the header's version field.
fn binary_kind(code: &[u8]) -> Result<bool, LoadError> {
    const MAGIC: &[u8; 4] = b"\0asm";
    if code.len() < 8 || &code[..4] != MAGIC {
        return Err(LoadError::InvalidCode(
            "the code is not a WebAssembly binary (it does not start with the `\\0asm` magic number)".into(),
        ));
    }
    match code[4..8] {
        [1, 0, 0, 0] => Ok(false),
        [0x0d, 0, 1, 0] => Ok(true),
        _ => Err(LoadError::InvalidCode(format!(
            "unsupported WebAssembly binary version {:02x?}: expected a core module (version 1) or a component (layer 1)",
            &code[4..8]
        ))),
    }
}

impl Inner {
    fn compile_artifact(&self, code: &[u8]) -> Result<(Artifact, Vec<u8>), LoadError> {
        let invalid = |e: wasmtime::Error| LoadError::InvalidCode(format!("invalid WebAssembly: {e:#}"));
        if binary_kind(code)? {
            let bytes = self.engine.precompile_component(code).map_err(invalid)?;
            let component = self
                .cache
                .deserialize_component(&self.engine, &bytes)
                .map_err(|e| LoadError::Internal(format!("cannot load freshly compiled component: {e:#}")))?;
            Ok((Artifact::Component(component), bytes))
        } else {
            let bytes = self.engine.precompile_module(code).map_err(invalid)?;
            let module = self
                .cache
                .deserialize_module(&self.engine, &bytes)
                .map_err(|e| LoadError::Internal(format!("cannot load freshly compiled module: {e:#}")))?;
            Ok((Artifact::Module(module), bytes))
        }
    }

    /// Pre-instantiates an artifact for its kind, checking exports and imports.
    fn prepare(
        self: &Arc<Self>,
        spec: &FunctionSpec,
        artifact: Arc<Artifact>,
    ) -> Result<Arc<dyn Function>, LoadError> {
        match (spec.config.kind, &*artifact) {
            (Kind::Http, Artifact::Component(c)) => Ok(Arc::new(http::HttpFunction::new(
                self.clone(),
                spec,
                c,
                artifact.clone(),
            )?)),
            (Kind::Http, Artifact::Module(_)) => Err(LoadError::InvalidCode(
                "kind = \"http\" needs a wasi:http/proxy component, but the code is a core module \
                 (a WASI command module is deployed with kind = \"event\")"
                    .into(),
            )),
            (Kind::Event, Artifact::Module(m)) => Ok(Arc::new(event::EventFunction::from_module(
                self.clone(),
                spec,
                m,
                artifact.clone(),
            )?)),
            (Kind::Event, Artifact::Component(c)) => Ok(Arc::new(event::EventFunction::from_component(
                self.clone(),
                spec,
                c,
                artifact.clone(),
            )?)),
        }
    }

    /// The compiled code of `code_hash` if some loaded function holds it (shared, not
    /// loaded again), or else from the artifact cache.
    fn artifact(&self, code_hash: &str) -> Option<Arc<Artifact>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(artifact) = loaded.get(code_hash).and_then(Weak::upgrade) {
            return Some(artifact);
        }
        let artifact = Arc::new(self.cache.load(&self.engine, code_hash)?);
        loaded.retain(|_, weak| weak.strong_count() > 0);
        loaded.insert(code_hash.to_owned(), Arc::downgrade(&artifact));
        Some(artifact)
    }

    /// Shares `artifact`, just compiled from `code_hash`.
    fn share(&self, code_hash: &str, artifact: Artifact) -> Arc<Artifact> {
        let artifact = Arc::new(artifact);
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        loaded.insert(code_hash.to_owned(), Arc::downgrade(&artifact));
        artifact
    }
}

#[async_trait]
impl Runtime for WasmRuntime {
    async fn compile(&self, spec: FunctionSpec, code: Bytes) -> Result<Arc<dyn Function>, LoadError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // The cache is keyed by the code's hash: an artifact there was compiled
            // from these very bytes (by another function, or an earlier deploy), so
            // deploying known code loads it instead of compiling again.
            if let Some(artifact) = inner.artifact(&spec.code_hash) {
                return inner.prepare(&spec, artifact);
            }
            let (artifact, bytes) = inner.compile_artifact(&code)?;
            let function = inner.prepare(&spec, inner.share(&spec.code_hash, artifact))?;
            if let Err(e) = inner.cache.save(&spec.code_hash, &bytes) {
                // The function still runs; the next cold start compiles again.
                tracing::warn!(function = %spec.name, "cannot save compiled artifact: {e}");
            }
            Ok(function)
        })
        .await
        .map_err(|e| LoadError::Internal(format!("compile task failed: {e}")))?
    }

    async fn retain(&self, keep: &std::collections::HashSet<String>) {
        let inner = self.inner.clone();
        let keep = keep.clone();
        let removed = tokio::task::spawn_blocking(move || inner.cache.retain(&keep)).await;
        match removed {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!("removed {n} compiled artifacts no version uses"),
            Ok(Err(e)) => tracing::warn!("cannot prune the artifact cache: {e}"),
            Err(e) => tracing::warn!("pruning the artifact cache failed: {e}"),
        }
    }

    async fn load(&self, spec: FunctionSpec) -> Result<Option<Arc<dyn Function>>, LoadError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let Some(artifact) = inner.artifact(&spec.code_hash) else {
                return Ok(None);
            };
            inner.prepare(&spec, artifact).map(Some)
        })
        .await
        .map_err(|e| LoadError::Internal(format!("load task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_kind_tells_modules_from_components() {
        assert!(!binary_kind(b"\0asm\x01\0\0\0").unwrap());
        assert!(binary_kind(b"\0asm\x0d\0\x01\0").unwrap());
        let err = binary_kind(b"hello world").unwrap_err();
        assert!(err.to_string().contains("not a WebAssembly binary"));
        assert!(binary_kind(b"\0asm\x02\0\0\0").is_err());
    }
}

//! Runtimes: the layer that runs function code.
//!
//! A [`Runtime`] turns deployed code into a [`Function`] (compiling it, or loading the
//! compiled artifact from its on-disk cache), and a [`Function`] runs one
//! [`Invocation`] at a time per call, enforcing the function's limits (memory, time,
//! payload size). The engine's dispatcher is the only caller; runtimes know nothing of
//! the store or of HTTP listeners. What a guest may call beyond its own code comes
//! with each invocation as its [`Services`], which the engine implements.
//!
//! The wasm runtime ([`wasm::WasmRuntime`]) runs `wasi:http/proxy` components for
//! `http` functions and WASI command programs (p1 modules and p2 components) for
//! `event` functions, under wasmtime. The process runtime ([`process::ProcessRuntime`])
//! runs native code speaking the AWS Lambda Runtime API. [`Runtimes`] puts them
//! behind one [`Runtime`], choosing by the function's `runtime`.

pub mod body;
mod env;
mod invocation;
pub mod process;
pub mod services;
pub mod wasm;

pub use body::{Body, BoxError};
pub use invocation::{
    CallContext, CallSite, ErrorReport, Finished, Input, Invocation, InvokeError, LoadError, Logs, Output,
};
pub use services::Services;

use async_trait::async_trait;
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use wisp_core::{FunctionConfig, FunctionRuntime};

/// What a runtime needs to know about a function version to run it.
#[derive(Clone, Debug)]
pub struct FunctionSpec {
    /// The function's name, for diagnostics.
    pub name: String,
    /// Hex SHA-256 of the code: the key of the artifact cache.
    pub code_hash: String,
    pub config: FunctionConfig,
    /// The services the version is granted. Wasm guests are handed them with each
    /// invocation; a native instance's network (its proxy, its forwarded service
    /// port) and its environment are set up from these when it starts, which may be
    /// before any invocation (prewarming).
    pub services: Services,
}

/// Turns code into runnable functions.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Checks and compiles `code` for `spec`, saves the compiled artifact in the
    /// cache and returns the function ready to run; code whose artifact the cache
    /// holds already (by `spec.code_hash`) is loaded from it instead. Called at
    /// deploy, and on a cold start whose artifact is missing or unusable. CPU-heavy:
    /// runs on the blocking pool.
    async fn compile(&self, spec: FunctionSpec, code: Bytes) -> Result<Arc<dyn Function>, LoadError>;

    /// Loads the compiled artifact of `spec` from the cache without compiling.
    /// `Ok(None)` when there is none, or it was built by another engine
    /// configuration, or it fails its checksum (it is then removed); the caller
    /// then fetches the code and calls [`Runtime::compile`].
    async fn load(&self, spec: FunctionSpec) -> Result<Option<Arc<dyn Function>>, LoadError>;

    /// Forgets the compiled artifacts of every code but `keep` (the code hashes some
    /// deployed version uses): versions are pruned, and their artifacts must not stay
    /// on disk forever. Called by the engine after a change that may have removed
    /// versions, with no deploy in progress. A runtime that keeps nothing across
    /// versions does nothing.
    async fn retain(&self, keep: &HashSet<String>) {
        let _ = keep;
    }

    /// What this runtime cannot enforce on this machine, in words for operators
    /// (shown at start and by `wisp ls`); empty when it isolates as designed.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A loaded function version. Cheap to share; every call is independent.
#[async_trait]
pub trait Function: Send + Sync + 'static {
    /// Runs one invocation to completion (or, for streaming HTTP responses, until
    /// the response head is ready; the body then streams while the guest runs on,
    /// still under the function's deadline). `invocation.on_finish` is called exactly
    /// once, when the guest has finished, with its logs and outcome.
    async fn invoke(&self, invocation: Invocation) -> Result<Output, InvokeError>;

    /// Whether this function's warm state is instances it keeps (process functions)
    /// rather than its loaded code alone (wasm, whose instances live for one
    /// invocation). Scaling a wasm function to zero unloads its code; scaling a
    /// process function to zero stops its idle instances.
    fn keeps_instances(&self) -> bool {
        false
    }

    /// The instances this function keeps, by state.
    fn instances(&self) -> Instances {
        Instances::default()
    }

    /// Starts instances ahead of need until `count` exist (busy, idle or starting).
    async fn prewarm(&self, _count: usize) -> Result<(), InvokeError> {
        Ok(())
    }

    /// Stops the instances that have been idle for at least `idle_for`, longest idle
    /// first, leaving at least `keep` idle. Returns how many it stopped.
    fn stop_idle(&self, _idle_for: Duration, _keep: usize) -> usize {
        0
    }

    /// Tells the code which version `number` it runs as, once that is known (code is
    /// compiled at a deploy before its version is published): a native function's
    /// instances started from now on see it as `AWS_LAMBDA_FUNCTION_VERSION`, as
    /// Lambda's do. Code that serves a newer version of the same content (a deploy back
    /// to it) is told that one's number, which then stands.
    fn published_as(&self, _number: u32) {}
}

/// A function's instances, by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Instances {
    /// Running an invocation.
    pub busy: usize,
    /// Started and waiting for an invocation.
    pub idle: usize,
    /// Being started.
    pub starting: usize,
}

/// Every runtime a node has, as one: each function goes to the runtime its
/// configuration names.
pub struct Runtimes {
    pub wasm: Arc<dyn Runtime>,
    /// `None` on a node that does not run native code.
    pub process: Option<Arc<dyn Runtime>>,
}

impl Runtimes {
    fn pick(&self, spec: &FunctionSpec) -> Result<&Arc<dyn Runtime>, LoadError> {
        match spec.config.runtime {
            FunctionRuntime::Wasm => Ok(&self.wasm),
            runtime => self.process.as_ref().ok_or_else(|| {
                LoadError::InvalidCode(format!("this server does not run `{runtime}` functions"))
            }),
        }
    }
}

#[async_trait]
impl Runtime for Runtimes {
    async fn compile(&self, spec: FunctionSpec, code: Bytes) -> Result<Arc<dyn Function>, LoadError> {
        self.pick(&spec)?.compile(spec, code).await
    }

    async fn load(&self, spec: FunctionSpec) -> Result<Option<Arc<dyn Function>>, LoadError> {
        self.pick(&spec)?.load(spec).await
    }

    fn warnings(&self) -> Vec<String> {
        let mut warnings = self.wasm.warnings();
        if let Some(process) = &self.process {
            warnings.extend(process.warnings());
        }
        warnings
    }

    async fn retain(&self, keep: &HashSet<String>) {
        self.wasm.retain(keep).await;
        if let Some(process) = &self.process {
            process.retain(keep).await;
        }
    }
}

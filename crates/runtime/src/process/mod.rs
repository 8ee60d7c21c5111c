//! The process runtime: native code speaking the AWS Lambda Runtime API.
//!
//! A function's code is a zip ([`package`]): for `runtime = "process"` its root holds
//! an executable `bootstrap` (Lambda's custom-runtime convention); for `python` and
//! `node` it holds the handler's module, and Wisp's own bootstrap for that language
//! ([`bootstraps`]) runs the Runtime API loop. At deploy the zip is unpacked once per
//! code hash under `DATA/functions/`.
//!
//! Each function keeps a pool of warm instances ([`function`]); an instance
//! ([`instance`]) is a sandboxed process ([`sandbox`], [`cgroup`]) serving one
//! invocation at a time through its own Runtime API listener ([`api`]), in a network
//! namespace of its own where the machine allows ([`network`]).

mod api;
mod bootstraps;
pub mod cgroup;
mod function;
mod instance;
pub mod network;
mod package;
mod peer;
mod pipes;
pub mod proxy;
pub mod sandbox;
pub mod shim;
mod spawner;

pub use sandbox::{Sandbox, SandboxUser, UserChoice};
pub use shim::SHIM_ARG;
pub use spawner::ShimCommand;

use crate::{Function, FunctionSpec, LoadError, Runtime};
use async_trait::async_trait;
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wisp_core::{FunctionRuntime, Limits};

/// Settings of the process runtime.
#[derive(Clone, Debug)]
pub struct ProcessConfig {
    /// Where code is unpacked (`DATA/functions`).
    pub functions_dir: PathBuf,
    /// Where Wisp's bootstraps are written (`DATA/runtimes`).
    pub runtimes_dir: PathBuf,
    /// Where instances get private temp dirs when there is no mount namespace.
    pub instances_dir: PathBuf,
    pub sandbox: Sandbox,
    /// How to start an instance's shim (the `wisp` binary itself, in production).
    pub shim: ShimCommand,
    /// How many shims to keep started ahead of need (each already in its cgroup).
    pub spare_shims: usize,
    pub limits: Limits,
    /// Where instances reach Wisp's services for functions (the S3 listener, which
    /// also serves `/v1/kv`); `None`: nowhere.
    pub services_endpoint: Option<ServicesEndpoint>,
}

/// Wisp's services listener, as instances reach it.
#[derive(Clone, Debug)]
pub struct ServicesEndpoint {
    /// Its URL from the host (`http://127.0.0.1:8081`), for instances that share the
    /// host's network.
    pub url: String,
    /// Its address, where an instance's forwarded services port leads.
    pub addr: std::net::SocketAddr,
}

impl ProcessConfig {
    /// The layout under a data directory, with the sandbox found on this machine.
    pub fn new(data_dir: &Path, sandbox: Sandbox, shim: ShimCommand) -> ProcessConfig {
        ProcessConfig {
            functions_dir: data_dir.join("functions"),
            runtimes_dir: data_dir.join("runtimes"),
            instances_dir: data_dir.join("instances"),
            sandbox,
            shim,
            spare_shims: 2,
            limits: Limits::DEFAULT,
            services_endpoint: None,
        }
    }
}

/// Runs process functions. See the module docs.
pub struct ProcessRuntime {
    config: ProcessConfig,
    sandbox: Arc<Sandbox>,
    spawner: Arc<spawner::Spawner>,
    networks: Option<Arc<network::SpareNetworks>>,
    bootstraps: bootstraps::Bootstraps,
    code_dirs: Arc<package::CodeDirs>,
}

impl ProcessRuntime {
    /// Makes the directories and writes the bootstraps.
    pub fn new(config: ProcessConfig) -> Result<ProcessRuntime, LoadError> {
        let io = |what: &str, dir: &Path, e: std::io::Error| {
            LoadError::Internal(format!("cannot create {what} `{}`: {e}", dir.display()))
        };
        for dir in [&config.functions_dir, &config.instances_dir] {
            std::fs::create_dir_all(dir).map_err(|e| io("the directory", dir, e))?;
        }
        // Instances of an earlier run that were killed with the server, and code
        // directories it was removing.
        if let Ok(entries) = std::fs::read_dir(&config.instances_dir) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        if let Ok(entries) = std::fs::read_dir(&config.functions_dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".removed-") {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let bootstraps = bootstraps::Bootstraps::install(&config.runtimes_dir)
            .map_err(|e| io("the runtime directory", &config.runtimes_dir, e))?;
        let spawner = spawner::Spawner::new(
            config.shim.clone(),
            config.sandbox.cgroups.clone(),
            config.spare_shims,
        );
        // The first cold start finds spare shims waiting (and network namespaces).
        spawner.refill();
        let networks = config.sandbox.network_namespace.then(|| {
            let networks = network::SpareNetworks::new(config.spare_shims);
            networks.prime();
            networks
        });
        Ok(ProcessRuntime {
            networks,
            sandbox: Arc::new(config.sandbox.clone()),
            code_dirs: package::CodeDirs::new(config.functions_dir.clone()),
            spawner,
            config,
            bootstraps,
        })
    }

    fn context(&self, spec: &FunctionSpec, code_dir: PathBuf) -> Result<FunctionContext, LoadError> {
        let runtime = spec.config.runtime;
        let (launcher, runtime_dir) = match runtime {
            FunctionRuntime::Process => (Launcher::Bootstrap, None),
            FunctionRuntime::Python | FunctionRuntime::Node => {
                let (interpreter, dir, script) = self.bootstraps.for_runtime(runtime)?;
                (Launcher::Interpreter { interpreter, script }, Some(dir))
            }
            FunctionRuntime::Wasm => {
                return Err(LoadError::Internal(
                    "a wasm function reached the process runtime".into(),
                ));
            }
        };
        Ok(FunctionContext {
            name: spec.name.clone(),
            version: std::sync::atomic::AtomicU32::new(0),
            function_arn: format!("arn:aws:lambda:local:000000000000:function:{}", spec.name),
            handler: spec.config.handler.clone(),
            memory_mb: spec.config.memory_mb,
            timeout: spec.config.timeout,
            env: crate::env::FunctionEnv::new(&spec.config.env),
            code_dir,
            runtime_dir,
            launcher,
            // V8 reserves far more address space than it uses.
            address_space_limit_ok: runtime != FunctionRuntime::Node,
            sandbox: self.sandbox.clone(),
            spawner: self.spawner.clone(),
            instances_dir: self.config.instances_dir.clone(),
            limits: self.config.limits.clone(),
            services: spec.services.clone(),
            services_endpoint: self.config.services_endpoint.clone(),
            networks: self.networks.clone(),
        })
    }
}

impl Drop for ProcessRuntime {
    fn drop(&mut self) {
        // Spare shims go first (functions still holding the spawner keep it alive).
        // Best effort: instances still stopping keep theirs; the next start sweeps them.
        if let Some(cgroups) = &self.sandbox.cgroups {
            cgroups.remove();
        }
    }
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn warnings(&self) -> Vec<String> {
        if self.sandbox.network_namespace {
            return Vec::new();
        }
        vec![
            "native functions share this machine's network: they can reach Wisp's control API, \
             other local ports and any host, whatever they are granted (run Wisp as root to give \
             each instance a network of its own)"
                .to_string(),
        ]
    }

    async fn compile(&self, spec: FunctionSpec, code: Bytes) -> Result<Arc<dyn Function>, LoadError> {
        let lease = self.code_dirs.lease(&spec.code_hash);
        let dir = package::unpack(&self.config.functions_dir, &spec, code).await?;
        package::check_entry(&dir, &spec.config)?;
        let ctx = self.context(&spec, dir)?;
        Ok(Arc::new(function::ProcessFunction::new(ctx, lease)))
    }

    async fn load(&self, spec: FunctionSpec) -> Result<Option<Arc<dyn Function>>, LoadError> {
        let lease = self.code_dirs.lease(&spec.code_hash);
        let dir = self.config.functions_dir.join(&spec.code_hash);
        if !dir.is_dir() {
            return Ok(None);
        }
        package::check_entry(&dir, &spec.config)?;
        let ctx = self.context(&spec, dir)?;
        Ok(Some(Arc::new(function::ProcessFunction::new(ctx, lease))))
    }
}

/// Runs blocking clean-up (killing what is left in a cgroup, removing a directory)
/// on the blocking pool, off the caller's task; inline when there is no runtime
/// (a drop at shutdown).
pub(crate) fn in_background(work: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn_blocking(work);
        }
        Err(_) => work(),
    }
}

/// How an instance's process is started.
#[derive(Clone, Debug)]
enum Launcher {
    /// The code's own `bootstrap`.
    Bootstrap,
    /// An interpreter running Wisp's bootstrap script for the language.
    Interpreter {
        interpreter: PathBuf,
        /// The script's file name in the runtime dir.
        script: &'static str,
    },
}

/// What every instance of one function version is started from.
pub(crate) struct FunctionContext {
    pub name: String,
    /// `AWS_LAMBDA_FUNCTION_VERSION`: the number of the version it was published as
    /// ([`crate::Function::published_as`]); 0, written `$LATEST`, until it is known.
    pub version: std::sync::atomic::AtomicU32,
    pub function_arn: String,
    pub handler: Option<String>,
    pub memory_mb: u32,
    pub timeout: std::time::Duration,
    /// Resolved at each instance start, secret references through `services`.
    pub env: crate::env::FunctionEnv,
    pub code_dir: PathBuf,
    pub runtime_dir: Option<PathBuf>,
    launcher: Launcher,
    pub address_space_limit_ok: bool,
    pub sandbox: Arc<Sandbox>,
    pub(crate) spawner: Arc<spawner::Spawner>,
    pub instances_dir: PathBuf,
    pub limits: Limits,
    /// What the version is granted: its proxy's outbound policy.
    pub services: crate::Services,
    pub services_endpoint: Option<ServicesEndpoint>,
    /// Where instances get their network namespaces; `None` without them.
    pub(crate) networks: Option<Arc<network::SpareNetworks>>,
}

impl FunctionContext {
    /// The program and its arguments, with paths as the instance sees them.
    pub(crate) fn command(&self, task_root: &Path, runtime_root: Option<&Path>) -> (PathBuf, Vec<PathBuf>) {
        match &self.launcher {
            Launcher::Bootstrap => (task_root.join("bootstrap"), Vec::new()),
            Launcher::Interpreter { interpreter, script } => {
                let script = runtime_root.unwrap_or(task_root).join(script);
                let mut args = Vec::new();
                if interpreter
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("python"))
                {
                    args.push(PathBuf::from("-u"));
                }
                args.push(script);
                (interpreter.clone(), args)
            }
        }
    }
}

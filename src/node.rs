//! The composition root: a Wisp node is the data directory, the store, the runtimes,
//! the engine and the server, built and wired together here (as wasmtime's
//! `src/commands/serve.rs` wires its parts), so that no library crate builds another.
//! `wisp serve` and `wisp up` start one.
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use wisp_core::Limits;
use wisp_engine::{Engine, KeepAlivePolicy, RetrySettings};
use wisp_runtime::Runtimes;
use wisp_runtime::process::{ProcessConfig, ProcessRuntime, Sandbox, ShimCommand, UserChoice};
use wisp_runtime::wasm::{WasmConfig, WasmRuntime};
use wisp_server::{App, serve};
use wisp_store::SqliteStore;

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    pub drain_timeout: Duration,
    pub limits: Limits,
    /// How idle functions are kept warm and scaled to zero.
    pub keep_alive: KeepAlivePolicy,
    /// How async invocations are retried.
    pub retry: RetrySettings,
    /// The user process functions run as.
    pub sandbox_user: UserChoice,
    /// `--domain`: namespace `N` is served at `N.<domain>` too.
    pub domain: Option<String>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot use the data directory `{dir}`: {source}")]
    DataDir { dir: PathBuf, source: std::io::Error },
    #[error(
        "the data directory `{0}` is in use by another Wisp server; stop it, or give this one another directory with --data-dir"
    )]
    DataDirLocked(PathBuf),
    #[error("cannot open the store in `{dir}`: {message}")]
    Store { dir: PathBuf, message: String },
    #[error("cannot start the wasm runtime: {0}")]
    Runtime(String),
    #[error("cannot start the process runtime: {0}")]
    ProcessRuntime(String),
    #[error("cannot listen on `{addr}`: {source}; pick another address with --listen (or WISP_LISTEN)")]
    Listen { addr: String, source: std::io::Error },
}

/// A started node, bound and ready to serve.
pub struct Node {
    engine: Arc<Engine>,
    listener: TcpListener,
    addr: SocketAddr,
    drain_timeout: Duration,
    _lock: File,
}

fn lock_data_dir(dir: &Path) -> Result<File, NodeError> {
    let io = |source| NodeError::DataDir {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(io)?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(NodeError::DataDirLocked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

impl Node {
    /// Opens the data directory (locking it), the store and the runtime, loads the
    /// registry, and binds the listener.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let dir = config.data_dir.clone();
        let lock = lock_data_dir(&dir)?;
        let store = SqliteStore::open(&dir.join("wisp.db")).map_err(|e| NodeError::Store {
            dir: dir.clone(),
            message: e.to_string(),
        })?;
        let mut wasm = WasmConfig::new(dir.join("cache"));
        wasm.limits = config.limits.clone();
        let wasm = WasmRuntime::new(wasm).map_err(|e| NodeError::Runtime(e.to_string()))?;
        let sandbox = Sandbox::detect(&config.sandbox_user).map_err(NodeError::ProcessRuntime)?;
        tracing::info!("process functions run as {}", sandbox.describe());
        let shim = ShimCommand::current_exe().map_err(|e| NodeError::ProcessRuntime(e.to_string()))?;
        let mut process = ProcessConfig::new(&dir, sandbox, shim);
        process.limits = config.limits.clone();
        let process = ProcessRuntime::new(process).map_err(|e| NodeError::ProcessRuntime(e.to_string()))?;
        let runtime = Runtimes {
            wasm: Arc::new(wasm),
            process: Some(Arc::new(process)),
        };
        let engine = Engine::start(
            Arc::new(store),
            Arc::new(runtime),
            config.limits.clone(),
            config.keep_alive.clone(),
            config.retry,
        )
        .await
        .map_err(|e| NodeError::Store {
            dir: dir.clone(),
            message: e.to_string(),
        })?;
        if let Some(domain) = &config.domain {
            engine.set_domain(domain);
        }
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|source| NodeError::Listen {
                addr: config.listen.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| NodeError::Listen {
            addr: config.listen.clone(),
            source,
        })?;
        Ok(Node {
            engine,
            listener,
            addr,
            drain_timeout: config.drain_timeout,
            _lock: lock,
        })
    }

    /// The address the node listens on (the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, drains, and writes out queued logs.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let app = App::new(self.engine.clone());
        serve(self.listener, app, shutdown, self.drain_timeout).await?;
        self.engine.shutdown().await;
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called,
/// not when the future is first polled: call it before announcing the server, so a
/// signal sent right after the announcement is not lost.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
    async move {
        let (Ok(mut term), Ok(mut int)) = signals else {
            tracing::error!("cannot install signal handlers; stop the server with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("received SIGTERM"),
            _ = int.recv() => tracing::info!("received SIGINT"),
        }
    }
}

//! The composition root: a Wisp node is the data directory, the store, the runtimes,
//! the engine and the server, built and wired together here (as wasmtime's
//! `src/commands/serve.rs` wires its parts), so that no library crate builds another.
//! `wisp serve` and `wisp up` start one.
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket};
use tokio::signal::unix::{Signal, SignalKind, signal};
use wisp_core::Limits;
use wisp_engine::cluster::NodeIdentity;
use wisp_engine::{Engine, KeepAlivePolicy, RetrySettings, StorageConfig};
use wisp_runtime::Runtimes;
use wisp_runtime::process::{
    ProcessConfig, ProcessRuntime, Sandbox, ServicesEndpoint, ShimCommand, UserChoice,
};
use wisp_runtime::wasm::{WasmConfig, WasmRuntime};
use wisp_server::listen::tls::{Tls, TlsError, TlsFiles};
use wisp_server::{App, ListenConfig, serve};
use wisp_store::{BlobDir, BlobHome, JetStreamStore, SqliteStore, Store};

mod keys;

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub listen: String,
    /// The S3 listener's address; `None` serves none.
    pub s3_listen: Option<String>,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<TlsFiles>,
    /// Connection caps and timeouts, and the drain timeout.
    pub connections: ListenConfig,
    pub data_dir: PathBuf,
    pub limits: Limits,
    /// How idle functions are kept warm and scaled to zero.
    pub keep_alive: KeepAlivePolicy,
    /// How async invocations are retried.
    pub retry: RetrySettings,
    /// The user process functions run as.
    pub sandbox_user: UserChoice,
    /// The admin key a first start creates, instead of a random one (`<id>.<secret>`).
    pub bootstrap_key: Option<String>,
    /// `--domain`: namespace `N` is served at `N.<domain>` too.
    pub domain: Option<String>,
    /// What usage is costed at and what is free: the server's plan.
    pub plan: wisp_core::billing::Plan,
    /// `--otlp-endpoint`: where invocation spans are exported.
    pub otlp: Option<wisp_engine::OtlpEndpoint>,
    /// The bearer token that may read `/metrics` (see `Engine::set_metrics_token`).
    pub metrics_token: Option<String>,
    /// Where the store is: SQLite in the data directory, or NATS JetStream.
    pub store: StoreChoice,
    /// With NATS: the prefix of the store's buckets and streams (`{prefix}_…`); every
    /// node given the same NATS and prefix shares the store.
    pub store_prefix: String,
    /// With NATS: how many servers keep each bucket and stream.
    pub store_replicas: usize,
    /// This node's name among the store's nodes; by default the one the data directory
    /// keeps (`node.name`), made on the first start.
    pub node_name: Option<String>,
}

/// Where a node keeps its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreChoice {
    /// `wisp.db` in the data directory: one node.
    Sqlite,
    /// NATS JetStream at `url` (`nats://HOST:PORT`, several separated by commas).
    Nats { url: String },
}

impl StoreChoice {
    /// Reads `--store`: `sqlite`, or a `nats://` (or `tls://`) URL.
    pub fn parse(text: &str) -> Result<StoreChoice, String> {
        let text = text.trim();
        if text == "sqlite" {
            return Ok(StoreChoice::Sqlite);
        }
        let urls: Vec<&str> = text.split(',').map(str::trim).collect();
        if urls
            .iter()
            .all(|u| (u.starts_with("nats://") || u.starts_with("tls://")) && u.len() > "nats://".len())
        {
            return Ok(StoreChoice::Nats { url: urls.join(",") });
        }
        Err(format!(
            "`{text}` is not a store: use `sqlite` (the default) or NATS JetStream as `nats://HOST:PORT` (several servers of one NATS cluster separated by commas)"
        ))
    }
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
    #[error("cannot open the store on NATS at `{url}`: {message}")]
    Nats { url: String, message: String },
    #[error("{0}")]
    Cluster(String),
    #[error("cannot start the wasm runtime: {0}")]
    Runtime(String),
    #[error("cannot start the process runtime: {0}")]
    ProcessRuntime(String),
    #[error("cannot set up API keys: {0}")]
    Identity(String),
    #[error("cannot listen on `{addr}`: {source}; pick another address with --listen (or WISP_LISTEN)")]
    Listen { addr: String, source: std::io::Error },
    #[error(
        "cannot listen for S3 on `{addr}`: {source}; pick another address with --s3-listen (or WISP_S3_LISTEN), or `--s3-listen off`"
    )]
    S3Listen { addr: String, source: std::io::Error },
    #[error("--metrics-token (or WISP_METRICS_TOKEN): {0}")]
    MetricsToken(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A started node, bound and ready to serve.
pub struct Node {
    engine: Arc<Engine>,
    listener: TcpListener,
    addr: SocketAddr,
    /// The S3 listener and its address, when one is served.
    s3: Option<(TcpListener, SocketAddr)>,
    tls: Option<Arc<Tls>>,
    /// SIGHUP, with TLS: installed at start, so that a SIGHUP sent once the node has
    /// announced itself reloads rather than ends it.
    hangup: Option<Signal>,
    connections: ListenConfig,
    _lock: File,
}

/// The file in the data directory that keeps the node's name.
const NODE_NAME_FILE: &str = "node.name";

/// The node's name: `given` (kept in the data directory from then on), else the one the
/// data directory keeps, else a new one (`node-` and 8 random hex digits), kept.
fn node_name(dir: &Path, given: Option<&str>) -> Result<String, NodeError> {
    let path = dir.join(NODE_NAME_FILE);
    let io = |source| NodeError::DataDir {
        dir: dir.to_path_buf(),
        source,
    };
    let valid = |name: &str| {
        !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let name = match given {
        Some(name) => name.trim().to_owned(),
        None => match std::fs::read_to_string(&path) {
            Ok(name) => name.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                format!("node-{:08x}", fastrand::u32(..))
            }
            Err(e) => return Err(io(e)),
        },
    };
    if !valid(&name) {
        return Err(NodeError::Cluster(format!(
            "`{name}` is not a node name (--node-name, or {}): use 1 to 64 letters, digits, '-' and '_'",
            path.display()
        )));
    }
    std::fs::write(&path, format!("{name}\n")).map_err(io)?;
    Ok(name)
}

/// How long a node starting on NATS keeps trying to open the store before it gives up.
const NATS_START_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Opens the store `config` names, as node `node`, with the home of object bytes the
/// nodes sharing it share (none for SQLite: the bytes stay in the data directory).
async fn open_store(
    config: &NodeConfig,
    node: &str,
) -> Result<(Arc<dyn Store>, Option<Arc<dyn BlobHome>>), NodeError> {
    let dir = &config.data_dir;
    match &config.store {
        StoreChoice::Sqlite => {
            let store = SqliteStore::open(&dir.join("wisp.db")).map_err(|e| NodeError::Store {
                dir: dir.to_path_buf(),
                message: e.to_string(),
            })?;
            Ok((Arc::new(store), None))
        }
        StoreChoice::Nats { url } => {
            let prefix = &config.store_prefix;
            let failed = |e: wisp_store::StoreError| NodeError::Nats {
                url: url.clone(),
                message: e.to_string(),
            };
            // A NATS cluster electing leaders (a server just died) times requests out for
            // a few seconds: a node starting then waits for it rather than exit.
            let started = std::time::Instant::now();
            let store = loop {
                let opened = async {
                    let store = JetStreamStore::connect(url, prefix).await?.with_node(node)?;
                    store.replicate(config.store_replicas).await?;
                    Ok::<_, wisp_store::StoreError>(store)
                };
                match Box::pin(opened).await {
                    Ok(store) => break store,
                    Err(e) if started.elapsed() < NATS_START_WAIT => {
                        tracing::warn!("cannot open the store on NATS at {url} yet, trying again: {e}");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                    Err(e) => return Err(failed(e)),
                }
            };
            tracing::info!("the store is NATS JetStream at {url} (prefix `{prefix}`), as node `{node}`");
            let home = store.blob_home();
            Ok((Arc::new(store), Some(home)))
        }
    }
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
        // Bad certificate files fail before anything else is opened.
        let tls = config.tls.clone().map(Tls::load).transpose()?.map(Arc::new);
        let hangup = match &tls {
            Some(_) => match signal(SignalKind::hangup()) {
                Ok(hangup) => Some(hangup),
                Err(e) => {
                    tracing::error!("cannot install the SIGHUP handler; TLS files will not be reloaded: {e}");
                    None
                }
            },
            None => None,
        };
        let dir = config.data_dir.clone();
        let lock = lock_data_dir(&dir)?;
        let node_name = node_name(&dir, config.node_name.as_deref())?;
        let (store, blob_home) = open_store(&config, &node_name).await?;
        let mut wasm = WasmConfig::new(dir.join("cache"));
        wasm.limits = config.limits.clone();
        let wasm = WasmRuntime::new(wasm).map_err(|e| NodeError::Runtime(e.to_string()))?;
        let sandbox = Sandbox::detect(&config.sandbox_user).map_err(NodeError::ProcessRuntime)?;
        tracing::info!("process functions run as {}", sandbox.describe());
        if !sandbox.network_namespace {
            tracing::warn!(
                "native functions are NOT network-isolated here (Wisp is not root): they can reach Wisp's control API, other local ports and any host"
            );
        }
        // Both listeners are bound before the engine starts (native functions are given
        // the S3 listener's address), the main one first, so that a taken main address
        // is what a failed start reports.
        let listener = bind(&config.listen).await.map_err(|source| NodeError::Listen {
            addr: config.listen.clone(),
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| NodeError::Listen {
            addr: config.listen.clone(),
            source,
        })?;
        let s3 = match &config.s3_listen {
            Some(addr) => {
                let failed = |source| NodeError::S3Listen {
                    addr: addr.clone(),
                    source,
                };
                let listener = bind(addr).await.map_err(failed)?;
                let bound = listener.local_addr().map_err(failed)?;
                Some((listener, bound))
            }
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shim = ShimCommand::current_exe().map_err(|e| NodeError::ProcessRuntime(e.to_string()))?;
        let mut process = ProcessConfig::new(&dir, sandbox, shim);
        process.limits = config.limits.clone();
        process.services_endpoint = s3.as_ref().map(|(_, addr)| ServicesEndpoint {
            url: format!("{scheme}://{addr}"),
            addr: *addr,
        });
        let process = ProcessRuntime::new(process).map_err(|e| NodeError::ProcessRuntime(e.to_string()))?;
        let runtime = Runtimes {
            wasm: Arc::new(wasm),
            process: Some(Arc::new(process)),
        };
        let blobs = BlobDir::open(&dir.join("objects")).map_err(|source| NodeError::DataDir {
            dir: dir.join("objects"),
            source,
        })?;
        let storage = StorageConfig {
            blobs: match blob_home {
                Some(home) => blobs.with_home(home),
                None => blobs,
            },
        };
        let master_key = keys::master_key(&dir)?;
        wisp_engine::cluster::check_master_key(store.as_ref(), &master_key)
            .await
            .map_err(|e| NodeError::Cluster(e.with_cause()))?;
        let engine = Engine::start(
            store,
            Arc::new(runtime),
            config.limits.clone(),
            config.keep_alive.clone(),
            config.retry,
            master_key,
            storage,
        )
        .await
        .map_err(|e| NodeError::Store {
            dir: dir.clone(),
            message: e.to_string(),
        })?;
        keys::bootstrap(&engine, &dir, config.bootstrap_key.as_deref()).await?;
        engine
            .set_server_plan(config.plan)
            .await
            .map_err(|e| NodeError::Store {
                dir: dir.clone(),
                message: e.with_cause(),
            })?;
        if let Some(domain) = &config.domain {
            engine.set_domain(domain);
        }
        engine
            .set_metrics_token(config.metrics_token.clone())
            .map_err(|e| NodeError::MetricsToken(e.detail))?;
        if let Some(endpoint) = &config.otlp {
            engine.export_spans(endpoint.clone());
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let identity = NodeIdentity {
            name: node_name,
            url: format!("{scheme}://{addr}/"),
        };
        engine.join(identity).await.map_err(|e| NodeError::Store {
            dir: dir.clone(),
            message: format!("writing this node's first heartbeat: {}", e.with_cause()),
        })?;
        Ok(Node {
            engine,
            listener,
            addr,
            s3,
            tls,
            hangup,
            connections: config.connections,
            _lock: lock,
        })
    }

    /// The address the node listens on (the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL clients reach the node at: `http://ADDR/`, or `https://ADDR/` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/", self.addr)
    }

    /// The line that says the node serves (test harnesses read it): `Serving HTTP on
    /// http://ADDR/` or `Serving HTTPS on https://ADDR/`.
    pub fn serving_line(&self) -> String {
        let protocol = if self.tls.is_some() { "HTTPS" } else { "HTTP" };
        format!("Serving {protocol} on {}", self.url())
    }

    /// The line that says where the dashboard is and how to log in: `Dashboard at
    /// http://ADDR/ui (log in with an API key: the admin key is in DATA/admin.key)`.
    pub fn dashboard_line(&self, data_dir: &Path) -> String {
        let key = data_dir.join("admin.key");
        let hint = if key.exists() {
            format!("log in with an API key: the admin key is in {}", key.display())
        } else {
            "log in with an API key".to_owned()
        };
        format!("Dashboard at {}ui ({hint})", self.url())
    }

    /// The line that says the S3 listener serves, when there is one: `Serving S3 on
    /// http://ADDR/`.
    pub fn s3_serving_line(&self) -> Option<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.s3
            .as_ref()
            .map(|(_, addr)| format!("Serving S3 on {scheme}://{addr}/"))
    }

    /// Serves until `shutdown` resolves, drains, and writes out queued logs. With TLS,
    /// SIGHUP reads the certificate and key files again.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let app = App::new(self.engine.clone());
        // Wasm guests reach the services in-process, whether or not S3 listens.
        wisp_server::platform::install(&self.engine);
        let reloader = match (self.tls.clone(), self.hangup) {
            (Some(tls), Some(hangup)) => Some(tokio::spawn(reload_on_sighup(tls, hangup))),
            _ => None,
        };
        // Both listeners stop together, on `shutdown`.
        let stop = tokio_util::sync::CancellationToken::new();
        let s3 = self.s3.map(|(listener, _)| {
            let app = App::s3(self.engine.clone());
            let (connections, tls, stop) = (self.connections.clone(), self.tls.clone(), stop.clone());
            tokio::spawn(async move { serve(listener, app, connections, tls, stop.cancelled_owned()).await })
        });
        let main = serve(
            self.listener,
            app,
            self.connections,
            self.tls,
            stop.clone().cancelled_owned(),
        );
        tokio::pin!(main);
        let served = tokio::select! {
            served = &mut main => served,
            () = shutdown => {
                stop.cancel();
                main.await
            }
        };
        stop.cancel();
        if let Some(s3) = s3 {
            match s3.await {
                Ok(result) => result?,
                Err(e) => tracing::error!("the S3 listener's task failed: {e}"),
            }
        }
        if let Some(reloader) = reloader {
            reloader.abort();
        }
        served?;
        self.engine.shutdown().await;
        Ok(())
    }
}

/// Reads the TLS files again on each SIGHUP; a bad new pair is logged and the old one
/// kept.
async fn reload_on_sighup(tls: Arc<Tls>, mut hangup: Signal) {
    while hangup.recv().await.is_some() {
        let files = tls.files();
        match tls.reload() {
            Ok(()) => tracing::info!(
                "SIGHUP: reloaded the TLS certificate `{}` and key `{}`",
                files.cert.display(),
                files.key.display()
            ),
            Err(e) => tracing::error!("SIGHUP: kept the TLS certificate in use: {e}"),
        }
    }
}

/// How many connections the kernel may queue for `accept` (capped by the system's
/// `net.core.somaxconn`): a burst of connections that overflows the queue has its
/// handshakes dropped and retried a second later, ordinary clients' with them.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the first address `addr` resolves to that can be bound.
async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut failed = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As `TcpListener::bind` does: a restart may bind while old connections linger.
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => failed = Some(e),
        }
    }
    Err(failed.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called,
/// not when the future is first polled: call it before announcing the server, so a
/// signal sent right after the announcement is not lost.
pub fn shutdown_signal() -> impl Future<Output = ()> {
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

//! `wisp serve`: run a node.

use crate::node::{Node, NodeConfig, shutdown_signal};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use wisp_core::Limits;
use wisp_engine::{KeepAlivePolicy, RetrySettings};
use wisp_runtime::process::UserChoice;

/// Run a Wisp server.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long,
        env = "WISP_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: String,
    /// Where Wisp keeps its data (functions, code, compiled artifacts, logs).
    #[arg(long, env = "WISP_DATA_DIR", default_value = ".wisp", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// How long to wait for in-flight requests at shutdown.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub drain_timeout: Duration,
    /// The user process functions run as: a name or uid. By default `nobody` when
    /// Wisp runs as root, else Wisp's own user; `same` keeps Wisp's own user.
    #[arg(long, env = "WISP_SANDBOX_USER", value_name = "USER")]
    pub sandbox_user: Option<String>,
    /// How long an idle function stays warm before it is scaled to zero (its code
    /// unloaded, its instances stopped). The adaptive policy falls back to it.
    #[arg(long, env = "WISP_KEEP_ALIVE", default_value = "10m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub keep_alive: Duration,
    /// How keep-alive windows are chosen: `fixed` (the --keep-alive window for every
    /// function) or `adaptive` (per function, from the idle times it has seen).
    #[arg(long, env = "WISP_KEEP_ALIVE_POLICY", default_value = "fixed", value_parser = ["fixed", "adaptive"], value_name = "POLICY")]
    pub keep_alive_policy: String,
    /// How many invocations may run at once across a namespace's functions.
    #[arg(long, env = "WISP_NAMESPACE_MAX_CONCURRENCY", default_value_t = Limits::DEFAULT_NAMESPACE_MAX_CONCURRENCY, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub namespace_max_concurrency: u32,
    /// The delay before an async invocation's first retry; each further retry doubles
    /// it (with jitter), up to --async-retry-max.
    #[arg(long, env = "WISP_ASYNC_RETRY_BASE", default_value = "1s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub async_retry_base: Duration,
    /// The longest delay between two attempts of an async invocation.
    #[arg(long, env = "WISP_ASYNC_RETRY_MAX", default_value = "5m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub async_retry_max: Duration,
    /// The domain user routes are served under: `N.<DOMAIN>` reaches namespace `N`
    /// (the bare domain and every other host reach `default`). Without it,
    /// namespaces are reached by the path prefix `/@N/` only.
    #[arg(long, env = "WISP_DOMAIN", value_name = "DOMAIN")]
    pub domain: Option<String>,
}

impl ServeArgs {
    pub fn node_config(&self) -> NodeConfig {
        NodeConfig {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            drain_timeout: self.drain_timeout,
            limits: Limits {
                namespace_max_concurrency: self.namespace_max_concurrency,
                ..Limits::DEFAULT
            },
            keep_alive: KeepAlivePolicy::parse(&self.keep_alive_policy, self.keep_alive)
                .unwrap_or(KeepAlivePolicy::Fixed(self.keep_alive)),
            retry: RetrySettings {
                base: self.async_retry_base.max(Duration::from_millis(1)),
                max: self.async_retry_max.max(self.async_retry_base),
            },
            sandbox_user: match self.sandbox_user.as_deref() {
                None | Some("") => UserChoice::Default,
                Some("same") => UserChoice::Same,
                Some(user) => UserChoice::Named(user.to_string()),
            },
            domain: self.domain.clone().filter(|d| !d.trim().is_empty()),
        }
    }
}

/// Starts the server's log output (to stderr; `WISP_LOG` sets the filter).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WISP_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,cranelift=warn,wasmtime=warn,rusqlite_migration=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    let node = Node::start(args.node_config()).await?;
    let shutdown = shutdown_signal();
    eprintln!("Serving HTTP on http://{}/", node.addr());
    node.serve(shutdown).await?;
    Ok(())
}

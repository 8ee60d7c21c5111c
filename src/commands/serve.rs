//! `wisp serve`: run a node.

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use wisp_core::Limits;
use wisp_server::node::{Node, NodeConfig, shutdown_signal};

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
}

impl ServeArgs {
    pub fn node_config(&self) -> NodeConfig {
        NodeConfig {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            drain_timeout: self.drain_timeout,
            limits: Limits::DEFAULT,
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

//! `wisp serve`: run a node.

use crate::node::{Node, NodeConfig, StoreChoice, shutdown_signal};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use wisp_core::Limits;
use wisp_core::billing::{Money, Plan, Prices};
use wisp_engine::{KeepAlivePolicy, RetrySettings};
use wisp_runtime::process::UserChoice;
use wisp_server::ListenConfig;
use wisp_server::listen::tls::TlsFiles;

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
    /// Address of the S3-compatible object storage listener (AWS CLI and SDKs with
    /// `--endpoint-url`); `off` serves none. By default the host of --listen, one
    /// port up (a free port when --listen's port is 0).
    #[arg(long, env = "WISP_S3_LISTEN", value_name = "ADDR")]
    pub s3_listen: Option<String>,
    /// The largest object a bucket accepts (`5GiB`, `100MiB`, bytes).
    #[arg(long, env = "WISP_MAX_OBJECT_SIZE", default_value = "5GiB", value_parser = wisp_core::size_text::parse, value_name = "BYTES")]
    pub max_object_size: u64,
    /// The bytes each namespace's buckets may hold together (no cap by default; a
    /// bucket's own quota applies too).
    #[arg(long, env = "WISP_NAMESPACE_STORAGE_QUOTA", value_parser = wisp_core::size_text::parse, value_name = "BYTES")]
    pub namespace_storage_quota: Option<u64>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key. SIGHUP reads
    /// both files again.
    #[arg(long, env = "WISP_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert; needs --tls-cert.
    #[arg(long, env = "WISP_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How long a client has to send a request's header (and to finish a TLS
    /// handshake) before its connection is closed.
    #[arg(long, env = "WISP_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub header_timeout: Duration,
    /// How long a connection with no request in flight is kept open.
    #[arg(long, env = "WISP_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,
    /// The most connections open at once (lowered to fit the open-file limit); more
    /// are answered 503 `overloaded`.
    #[arg(long, env = "WISP_MAX_CONNECTIONS", default_value = "10000", value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_connections: u32,
    /// The most connections open at once from one client address (an IPv6 /64);
    /// by default a quarter of --max-connections.
    #[arg(long, env = "WISP_MAX_CONNECTIONS_PER_IP", value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_connections_per_ip: Option<u32>,
    /// The largest request line and headers a client may send, in bytes (`64KiB`,
    /// `16384`; at least 8KiB); larger ones are answered 431.
    #[arg(long, env = "WISP_MAX_HEADER_BYTES", default_value = "64KiB", value_parser = parse_bytes, value_name = "BYTES")]
    pub max_header_bytes: usize,
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
    /// How many versions each function keeps besides those an alias points to (the
    /// newest ones; older ones and the code only they used go at the next deploy).
    #[arg(long, env = "WISP_KEEP_VERSIONS", default_value_t = Limits::DEFAULT.keep_versions, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub keep_versions: u32,
    /// The delay before an async invocation's first retry; each further retry doubles
    /// it (with jitter), up to --async-retry-max.
    #[arg(long, env = "WISP_ASYNC_RETRY_BASE", default_value = "1s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub async_retry_base: Duration,
    /// The admin API key the first start creates (`<key id>.<secret>`), instead of a
    /// random one; ignored once the store holds any key. For provisioning: the token
    /// is written to DATA_DIR/admin.key either way.
    #[arg(
        long,
        env = "WISP_BOOTSTRAP_KEY",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub bootstrap_key: Option<String>,
    /// The longest delay between two attempts of an async invocation.
    #[arg(long, env = "WISP_ASYNC_RETRY_MAX", default_value = "5m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub async_retry_max: Duration,
    /// The domain user routes are served under: `N.<DOMAIN>` reaches namespace `N`
    /// (the bare domain and every other host reach `default`). Without it,
    /// namespaces are reached by the path prefix `/@N/` only.
    #[arg(long, env = "WISP_DOMAIN", value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// The price of a million requests, in dollars (usage reports cost usage at it).
    #[arg(long, env = "WISP_PRICE_PER_MILLION_REQUESTS", default_value = "0.20", value_parser = Money::parse, value_name = "DOLLARS")]
    pub price_per_million_requests: Money,
    /// The price of a GB-second (configured memory × billed time), in dollars.
    #[arg(long, env = "WISP_PRICE_PER_GB_SECOND", default_value = "0.0000166667", value_parser = Money::parse, value_name = "DOLLARS")]
    pub price_per_gb_second: Money,
    /// The price of a GB-second of reserved capacity held (`min_instances` × memory ×
    /// time), used or not (Lambda's provisioned concurrency).
    #[arg(long, env = "WISP_PRICE_PER_RESERVED_GB_SECOND", default_value = "0.0000041667", value_parser = Money::parse, value_name = "DOLLARS")]
    pub price_per_reserved_gb_second: Money,
    /// The price of a GB-second of billed time that ran on reserved capacity.
    #[arg(long, env = "WISP_PRICE_PER_RESERVED_DURATION_GB_SECOND", default_value = "0.0000097222", value_parser = Money::parse, value_name = "DOLLARS")]
    pub price_per_reserved_duration_gb_second: Money,
    /// Requests each namespace makes free each month before it pays (a namespace's own
    /// `free_tier` overrides it).
    #[arg(long, env = "WISP_FREE_REQUESTS", default_value_t = wisp_engine::FREE_REQUESTS, value_name = "N")]
    pub free_requests: u64,
    /// GB-seconds each namespace uses free each month before it pays.
    #[arg(long, env = "WISP_FREE_GB_SECONDS", default_value_t = wisp_engine::FREE_GB_SECONDS, value_name = "N")]
    pub free_gb_seconds: u64,
    /// Export a span per invocation to this OpenTelemetry collector (OTLP/HTTP with
    /// JSON, `POST URL/v1/traces`): `http://localhost:4318` for a collector, Jaeger
    /// or Tempo on this machine. Off by default.
    #[arg(long, env = "WISP_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<wisp_engine::OtlpEndpoint>,
    /// A bearer token that may read `/metrics` (every namespace's) and nothing else:
    /// what Prometheus scrapes with (at least 32 characters; `openssl rand -hex 32`).
    /// Without it, `/metrics` takes an API key: an admin key reads every namespace,
    /// another key with read rights its own.
    #[arg(
        long,
        env = "WISP_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// Where the state is kept: `sqlite` (a file in --data-dir; one node), or NATS
    /// JetStream as `nats://HOST:PORT` (several servers of one NATS cluster separated by
    /// commas): every node given the same NATS and --store-prefix serves the same
    /// functions (docs/cluster.md).
    #[arg(long, env = "WISP_STORE", default_value = "sqlite", value_parser = StoreChoice::parse, value_name = "STORE")]
    pub store: StoreChoice,
    /// With a NATS store: the prefix of its buckets and streams, so one NATS can hold
    /// several Wisp clusters.
    #[arg(long, env = "WISP_STORE_PREFIX", default_value = "wisp", value_parser = check_prefix, value_name = "PREFIX")]
    pub store_prefix: String,
    /// With a NATS store: on how many servers of the NATS cluster each bucket and stream
    /// is kept (1 to 5). With 3 on a cluster of three, the store loses nothing and keeps
    /// serving while one NATS server is down.
    #[arg(long, env = "WISP_STORE_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5), value_name = "N")]
    pub store_replicas: u8,
    /// This node's name among the store's nodes (letters, digits, '-', '_'); by default
    /// the one --data-dir keeps, made on the first start.
    #[arg(long, env = "WISP_NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
}

fn check_prefix(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!("`{text}`: use letters, digits, '-' and '_'"))
    }
}

impl ServeArgs {
    pub fn node_config(&self) -> NodeConfig {
        NodeConfig {
            listen: self.listen.clone(),
            s3_listen: match self.s3_listen.as_deref().map(str::trim) {
                Some("off") => None,
                Some(addr) if !addr.is_empty() => Some(addr.to_string()),
                _ => Some(s3_beside(&self.listen)),
            },
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
            connections: ListenConfig {
                header_timeout: self.header_timeout,
                idle_timeout: self.idle_timeout,
                max_connections: self.max_connections as usize,
                max_connections_per_ip: self.max_connections_per_ip.map(|n| n as usize),
                max_header_bytes: self.max_header_bytes,
                drain_timeout: self.drain_timeout,
            },
            data_dir: self.data_dir.clone(),
            limits: Limits {
                namespace_max_concurrency: self.namespace_max_concurrency,
                keep_versions: self.keep_versions,
                max_object_bytes: self.max_object_size,
                namespace_storage_bytes: self.namespace_storage_quota,
                ..Limits::DEFAULT
            },
            keep_alive: KeepAlivePolicy::parse(&self.keep_alive_policy, self.keep_alive)
                .unwrap_or(KeepAlivePolicy::Fixed(self.keep_alive)),
            retry: RetrySettings {
                base: self.async_retry_base.max(Duration::from_millis(1)),
                max: self.async_retry_max.max(self.async_retry_base),
            },
            bootstrap_key: self.bootstrap_key.clone(),
            sandbox_user: match self.sandbox_user.as_deref() {
                None | Some("") => UserChoice::Default,
                Some("same") => UserChoice::Same,
                Some(user) => UserChoice::Named(user.to_string()),
            },
            domain: self.domain.clone().filter(|d| !d.trim().is_empty()),
            otlp: self.otlp_endpoint.clone(),
            metrics_token: self.metrics_token.clone(),
            store: self.store.clone(),
            store_prefix: self.store_prefix.clone(),
            store_replicas: usize::from(self.store_replicas),
            node_name: self.node_name.clone(),
            plan: Plan::new(
                Prices {
                    per_reserved_gb_second: self.price_per_reserved_gb_second,
                    per_reserved_duration_gb_second: self.price_per_reserved_duration_gb_second,
                    ..Prices::new(self.price_per_million_requests, self.price_per_gb_second)
                },
                self.free_requests,
                self.free_gb_seconds,
            ),
        }
    }
}

/// Starts the server's log output (to stderr; `WISP_LOG` sets the filter).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WISP_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,cranelift=warn,wasmtime=warn,rusqlite_migration=warn,s3s=off",
        )
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
    if let Some(line) = node.s3_serving_line() {
        eprintln!("{line}");
    }
    eprintln!("{}", node.serving_line());
    eprintln!("{}", node.dashboard_line(&args.data_dir));
    node.serve(shutdown).await?;
    Ok(())
}

/// The S3 listener's default address: the host of `listen`, one port up (port 0
/// stays 0: a free port).
fn s3_beside(listen: &str) -> String {
    match listen.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>() {
            Ok(0) => format!("{host}:0"),
            Ok(port) => format!("{host}:{}", port.saturating_add(1)),
            Err(_) => listen.to_string(),
        },
        None => listen.to_string(),
    }
}

/// The largest request head: a size from 8KiB to 16MiB.
fn parse_bytes(text: &str) -> Result<usize, String> {
    wisp_core::size_text::parse(text)
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (wisp_server::listen::MIN_HEADER_BYTES..=16 * 1024 * 1024).contains(n))
        .ok_or_else(|| format!("`{}` is not a size from 8KiB to 16MiB", text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn the_flag_defaults_are_the_listener_defaults() {
        let config = Cli::parse_from(["wisp"]).serve.node_config().connections;
        let defaults = ListenConfig::default();
        assert_eq!(config.header_timeout, defaults.header_timeout);
        assert_eq!(config.idle_timeout, defaults.idle_timeout);
        assert_eq!(config.max_connections, defaults.max_connections);
        assert_eq!(config.max_connections_per_ip, defaults.max_connections_per_ip);
        assert_eq!(config.max_header_bytes, defaults.max_header_bytes);
        assert_eq!(config.drain_timeout, defaults.drain_timeout);
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert_eq!(parse_bytes("16384"), Ok(16384));
        assert_eq!(parse_bytes("1M"), Ok(1 << 20));
        assert!(parse_bytes("4KiB").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
        assert_eq!(s3_beside("127.0.0.1:8080"), "127.0.0.1:8081");
        assert_eq!(s3_beside("127.0.0.1:0"), "127.0.0.1:0");
        assert_eq!(s3_beside("[::1]:9000"), "[::1]:9001");
    }
}

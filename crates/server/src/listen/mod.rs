//! The main listener: the accept loop that hands each connection to [`App`], over
//! plain HTTP or TLS ([`tls`]), HTTP/1.1 and HTTP/2, under the caps that keep a flood
//! of connections from taking the server down ([`limits`]) and the timeouts that keep
//! slow or idle clients from holding them ([`conn`]), and the drain at shutdown.
//!
//! [`serve`] never stops accepting while it runs: a connection over a cap is accepted
//! and answered `503 overloaded`, and a failing `accept` (descriptors run out) backs off
//! and tries again. On the shutdown signal it takes the connections already queued in
//! the kernel, closes the listening socket (new connections are refused, before a client
//! can send anything on them), and then drains the open ones (see [`conn`]) for at most
//! `drain_timeout`.

mod conn;
pub mod limits;
pub mod tls;
mod unread;

use crate::App;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use limits::ConnectionLimits;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tls::Tls;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// In a request's extensions when it came over TLS (`--tls-cert`): the dashboard then
/// marks its cookies `Secure`, which it may not over plain HTTP (a browser drops a
/// `Secure` cookie that `http://` sets).
#[derive(Clone, Copy, Debug)]
pub struct OverTls;

/// How the main listener treats its connections. The defaults are those of `wisp serve`.
#[derive(Clone, Debug)]
pub struct ListenConfig {
    /// How long a client has to send a request's header (from its first byte, or from the
    /// connection's start for its first request), and to complete a TLS handshake.
    pub header_timeout: Duration,
    /// How long a connection with no request in flight is kept open.
    pub idle_timeout: Duration,
    /// The most connections open at once (lowered to what the open-file limit allows).
    pub max_connections: usize,
    /// The most connections open at once from one client address; `None` for a quarter
    /// of `max_connections`.
    pub max_connections_per_ip: Option<usize>,
    /// The largest request line and header section, in bytes (HTTP/1: `431` past it).
    pub max_header_bytes: usize,
    /// How long the drain at shutdown waits for requests in flight.
    pub drain_timeout: Duration,
}

impl ListenConfig {
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
    pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
}

/// The smallest `max_header_bytes` (hyper's smallest read buffer).
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

impl Default for ListenConfig {
    fn default() -> ListenConfig {
        ListenConfig {
            header_timeout: ListenConfig::DEFAULT_HEADER_TIMEOUT,
            idle_timeout: ListenConfig::DEFAULT_IDLE_TIMEOUT,
            max_connections: ListenConfig::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: None,
            max_header_bytes: ListenConfig::DEFAULT_MAX_HEADER_BYTES,
            drain_timeout: ListenConfig::DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// What every connection task shares.
struct Shared {
    app: App,
    builder: auto::Builder<TokioExecutor>,
    tls: Option<Arc<Tls>>,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// Cancelled when the drain starts.
    drain: CancellationToken,
    /// Cancelled when the drain times out: the remaining connections are closed.
    abort: CancellationToken,
}

/// Serves `app` on `listener` (with `tls` when given) until `shutdown` resolves, then
/// drains the open connections for at most `config.drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    app: App,
    config: ListenConfig,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            "listening on {addr} without TLS: API keys, requests and responses travel in clear text to anyone on the network path. \
             Serve HTTPS with --tls-cert FILE --tls-key FILE (or WISP_TLS_CERT/WISP_TLS_KEY), \
             or listen on 127.0.0.1 behind a proxy that terminates TLS"
        );
    }
    let limits = connection_limits(&config, addr);
    let shared = Arc::new(Shared {
        app,
        builder: builder(&config),
        tls,
        header_timeout: config.header_timeout,
        idle_timeout: config.idle_timeout,
        drain: CancellationToken::new(),
        abort: CancellationToken::new(),
    });
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(stream, peer, &limits, &shared, &tracker),
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    // Take what the kernel has queued (those clients may have sent a request already),
    // then stop listening, so that a client told to reconnect is refused cleanly; only
    // then tell the connections to drain.
    match listener.into_std() {
        Ok(listener) => {
            while let Ok((stream, peer)) = listener.accept() {
                if let Ok(stream) = stream
                    .set_nonblocking(true)
                    .and_then(|()| TcpStream::from_std(stream))
                {
                    admit(stream, peer, &limits, &shared, &tracker);
                }
            }
        }
        Err(e) => tracing::warn!("cannot take the queued connections: {e}"),
    }
    tracing::info!("shutting down: draining in-flight requests");
    shared.drain.cancel();
    tracker.close();
    if tokio::time::timeout(config.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "drain timed out after {:?}; closing {} remaining connections",
            config.drain_timeout,
            limits.open()
        );
        shared.abort.cancel();
        tracker.wait().await;
    }
    Ok(())
}

/// Serves a connection under the caps, or refuses it.
fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    limits: &Arc<ConnectionLimits>,
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
) {
    match limits.try_acquire(peer.ip()) {
        Ok(permit) => {
            tracker.spawn(conn::connection(stream, peer, permit, shared.clone()));
        }
        Err(why) => limits.refuse(stream, peer.ip(), why, shared.tls.as_deref()),
    }
}

/// The caps, with `max_connections` lowered to what the open-file limit allows.
fn connection_limits(config: &ListenConfig, addr: SocketAddr) -> Arc<ConnectionLimits> {
    let mut max = config.max_connections.max(1);
    match limits::raise_open_file_limit() {
        Some(files) => {
            let allowed = limits::connections_allowed_by(files);
            if allowed < max {
                tracing::warn!(
                    "the open-file limit is {files}: accepting at most {allowed} connections, not {max} \
                     (raise the limit, e.g. LimitNOFILE= in a systemd unit or `ulimit -n`, to allow more)"
                );
                max = allowed;
            }
        }
        None => {
            tracing::warn!("cannot read the open-file limit; the connection cap is not checked against it")
        }
    }
    let per_ip = config.max_connections_per_ip.unwrap_or(max / 4).clamp(1, max);
    let limits = ConnectionLimits::new(max, per_ip);
    tracing::info!(
        "{addr}: accepting at most {} connections, {} per client address",
        limits.max(),
        limits.per_ip()
    );
    limits
}

fn builder(config: &ListenConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header timeout is the connection watchdog's (see `conn`): hyper's would also
    // close idle keep-alive connections at the header timeout.
    // hyper-util's auto builder does not pass `max_header_size` on; a head that does not
    // fit the read buffer is answered 431 all the same. hyper's floor is 8 KiB.
    builder
        .http1()
        .header_read_timeout(None)
        .max_buf_size(config.max_header_bytes.max(MIN_HEADER_BYTES));
    builder
        .http2()
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

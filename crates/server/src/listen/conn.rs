//! One connection, from its accept to its close: the TLS handshake (bounded by the header
//! timeout), hyper serving it, and a watchdog that closes it when a client is too slow
//! to send a request's header, when it has been idle too long, or (in a drain) once it
//! has no request in flight.
//!
//! # Design
//!
//! hyper's own `header_read_timeout` restarts as soon as an HTTP/1.1 connection goes
//! idle, so it would also be the idle timeout; it has none for HTTP/2. The watchdog
//! keeps the two apart over any protocol, from what the connection does ([`Activity`]):
//! requests in flight (counted from the service call until the response body is done),
//! when it went idle, and when the first byte arrived since then.
//!
//! - With a request in flight there is no deadline (the function's own timeout bounds it).
//! - Idle, it closes `idle_timeout` after its last request ended (or after the handshake).
//! - HTTP/1: once a byte of the next request arrives, the whole header must follow within
//!   `header_timeout`; a connection that has sent no request yet has `header_timeout`
//!   from its start. HTTP/2 is framed and pings: bytes while idle say nothing about a
//!   request, so only the idle timeout applies once it has shown itself as HTTP/2.
//!
//! The drain closes HTTP/1 connections without racing a client's next request: a
//! request in flight is answered with `Connection: close` (and hyper then closes); an
//! idle connection is closed only once it has been idle for [`DRAIN_GRACE`] with no byte
//! of a new request arrived, the time a client that reuses connections back to back
//! needs to send its next request, which is then answered with `Connection: close`
//! instead of being cut off. HTTP/2 connections get hyper's graceful shutdown (GOAWAY),
//! which tells the client which requests were not taken.

use super::Shared;
use super::limits::Permit;
use super::unread;
use http::{HeaderValue, Request, Version, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use wisp_engine::ClientAddr;

/// How long an idle HTTP/1 connection is kept in a drain for a request its client may
/// be sending (see the module's design notes).
pub(crate) const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Serves one accepted connection until it ends, times out, or the drain closes it.
pub(crate) async fn connection(stream: TcpStream, peer: SocketAddr, permit: Permit, shared: Arc<Shared>) {
    let _permit = permit;
    let _ = stream.set_nodelay(true);
    let Some(tls) = shared.tls.as_ref() else {
        return serve_io(stream, peer, false, shared).await;
    };
    let handshake = tokio::time::timeout(shared.header_timeout, tls.acceptor().accept(stream));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return tracing::debug!(%peer, "TLS handshake failed: {e}"),
            Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
        },
        () = shared.abort.cancelled() => return,
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    serve_io(stream, peer, h2, shared).await;
}

async fn serve_io<I>(io: I, peer: SocketAddr, h2: bool, shared: Arc<Shared>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new(h2));
    let io = TokioIo::new(Watched {
        inner: io,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        let shared = shared.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = InFlight::start(&activity, request.version());
            let shared = shared.clone();
            let (request, unread) = unread::watch(request);
            let mut request = request.map(|b| b.map_err(box_hyper_error).boxed_unsync());
            request.extensions_mut().insert(ClientAddr(peer));
            if shared.tls.is_some() {
                request.extensions_mut().insert(super::OverTls);
            }
            async move {
                let http1 = request.version() < Version::HTTP_2;
                let mut response = shared.app.handle(request).await;
                let upgrade = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                // Close (and say so) when draining, or when the handler left the body
                // unread (hyper closes such a connection anyway).
                if http1 && !upgrade && (shared.drain.is_cancelled() || unread.left()) {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(response.map(|body| Tracked {
                    body,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let connection = shared.builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        let (close_at, check_at) = activity.deadline(&shared, draining);
        let wake_at = close_at.map_or(check_at, |close| close.min(check_at));
        tokio::select! {
            done = connection.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, "connection ended with an error: {e}");
                }
                return;
            }
            () = shared.drain.cancelled(), if !draining => {
                draining = true;
                if activity.h2.load(Ordering::Relaxed) {
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep_until(wake_at.into()) => {
                if activity.deadline(&shared, draining).0.is_some_and(|at| at <= Instant::now()) {
                    tracing::debug!(%peer, draining, "closing a connection that is idle or slow to send a request");
                    return;
                }
            }
            () = shared.abort.cancelled() => return,
        }
    }
}

/// What a connection has been doing, shared by its IO, its service and its watchdog.
/// Times are milliseconds since `start`.
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// When the last request ended (or the connection started).
    idle_since: AtomicU64,
    /// One more than when the first byte arrived since `idle_since`; 0 for none yet.
    reading_since: AtomicU64,
    /// Whether a request has been seen.
    served: AtomicBool,
    /// Whether the connection speaks HTTP/2.
    h2: AtomicBool,
}

impl Activity {
    fn new(h2: bool) -> Activity {
        Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            reading_since: AtomicU64::new(0),
            served: AtomicBool::new(false),
            h2: AtomicBool::new(h2),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// When the connection is to be closed unless something happens first, and when to
    /// look again at the latest.
    ///
    /// The watchdog is not woken when a request starts or ends or a byte arrives (that
    /// would cost the hot path a wake-up per request); it looks again before any of
    /// those could have brought the close closer: a deadline set from now on is at
    /// least the shorter of the timeouts away.
    fn deadline(&self, shared: &Shared, draining: bool) -> (Option<Instant>, Instant) {
        let idle_timeout = if draining {
            DRAIN_GRACE
        } else {
            shared.idle_timeout
        };
        let recheck = Instant::now() + idle_timeout.min(shared.header_timeout);
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return (None, recheck);
        }
        let idle = self.at(self.idle_since.load(Ordering::Acquire)) + idle_timeout;
        if self.h2.load(Ordering::Relaxed) {
            return (Some(idle), recheck);
        }
        let reading = self.reading_since.load(Ordering::Acquire);
        let close = if !self.served.load(Ordering::Relaxed) {
            let first = self.start + shared.header_timeout;
            if reading == 0 { first.min(idle) } else { first }
        } else {
            match reading {
                0 => idle,
                since => self.at(since - 1) + shared.header_timeout,
            }
        };
        (Some(close), recheck)
    }

    fn on_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0 && self.reading_since.load(Ordering::Relaxed) == 0 {
            self.reading_since.store(self.now() + 1, Ordering::Release);
        }
    }
}

/// A request in flight on its connection, from the service call until its response body
/// is done (or dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>, version: Version) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.reading_since.store(0, Ordering::Release);
        activity.served.store(true, Ordering::Relaxed);
        if version == Version::HTTP_2 {
            activity.h2.store(true, Ordering::Relaxed);
        }
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.idle_since.store(activity.now(), Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds its request's [`InFlight`] until it is done.
struct Tracked<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B: HttpBody + Unpin> HttpBody for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's IO, noting when bytes arrive.
struct Watched<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn box_hyper_error(e: hyper::Error) -> wisp_engine::BoxError {
    Box::new(e)
}

//! Outbound HTTP from functions, held to the hosts each is granted
//! ([`FunctionConfig::outbound`](wisp_core::FunctionConfig)): the engine's
//! [`OutboundHttp`], for `wasi:http` guests' requests and for the tunnels of native
//! functions' proxy.
//!
//! # Design
//!
//! A request is checked in three steps, each refusing on its own terms:
//!
//! 1. its scheme, host and port must match a grant, else `HTTP-request-denied`
//!    ([`OutboundError::Denied`]) before anything is resolved;
//! 2. the host is resolved here (an IP literal is taken as is), and every address in a
//!    range a function must never reach on a name alone ([`is_prohibited`]: loopback,
//!    private, link-local with the cloud metadata address, CGNAT, …) is dropped unless a
//!    matching grant names that address literally (`http://127.0.0.1:*`); if none is
//!    left, `destination-IP-prohibited` ([`OutboundError::DestinationIpProhibited`]);
//! 3. the connection goes to a kept address itself, so nothing is resolved twice and a
//!    name cannot be rebound between the check and the connect.
//!
//! HTTPS is rustls with the Mozilla roots compiled in (`webpki-roots`: the binary needs
//! no system trust store, which a sandbox or a minimal image may lack, and trusts the
//! same roots on every node); SNI is the request's host. Requests go out as HTTP/1.1 in
//! origin form with a `Host` header. Redirects are answered to the guest as they are:
//! a guest that follows one sends a new request, which passes here again.
//!
//! Timeouts: connecting (resolving, TCP and TLS) and the first response byte wait as
//! long as the guest asked, or [`CONNECT_TIMEOUT`] and [`FIRST_BYTE_TIMEOUT`]; the
//! invocation's own deadline cuts the whole call anyway. A response body past
//! [`MAX_RESPONSE_BODY`] fails.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Uri, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use wisp_core::OutboundHost;
use wisp_core::outbound::default_port;
use wisp_runtime::services::{OutboundError, OutboundHttp, OutboundRequest, ServiceFuture};
use wisp_runtime::{Body, BoxError, body};

/// How long resolving and connecting (with the TLS handshake) may take when the guest
/// asks nothing.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the response's head may take when the guest asks nothing.
pub(crate) const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body a function may read from one request.
pub(crate) const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;

/// The hosts one function version may reach.
pub(crate) struct OutboundPolicy {
    grants: Vec<OutboundHost>,
}

impl OutboundPolicy {
    /// A policy granting nothing.
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "kept for callers without a configuration")
    )]
    pub(crate) fn deny_all() -> Arc<OutboundPolicy> {
        OutboundPolicy::new(&[])
    }

    /// A policy granting `grants`.
    pub(crate) fn new(grants: &[OutboundHost]) -> Arc<OutboundPolicy> {
        Arc::new(OutboundPolicy {
            grants: grants.to_vec(),
        })
    }

    /// The grants covering `host:port` for `scheme` (`None`: either scheme).
    fn matching(&self, scheme: Option<&str>, host: &str, port: u16) -> Vec<OutboundHost> {
        self.grants
            .iter()
            .filter(|g| match scheme {
                Some(scheme) => g.allows(scheme, host, port),
                None => g.allows("http", host, port) || g.allows("https", host, port),
            })
            .cloned()
            .collect()
    }
}

impl OutboundHttp for OutboundPolicy {
    fn send(&self, request: OutboundRequest) -> ServiceFuture<Result<http::Response<Body>, OutboundError>> {
        let OutboundRequest {
            request,
            site: _,
            connect_timeout,
            first_byte_timeout,
            between_bytes_timeout,
        } = request;
        let target = match Target::of(request.uri()) {
            Ok(target) => target,
            Err(why) => return refuse(request, OutboundError::Denied, &why),
        };
        let grants = self.matching(Some(target.scheme.as_str()), &target.host, target.port);
        if grants.is_empty() {
            let why = format!("no grant covers `{}`", target.origin());
            return refuse(request, OutboundError::Denied, &why);
        }
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let connect = connect_timeout.unwrap_or(CONNECT_TIMEOUT);
            let stream = match tokio::time::timeout(connect, target.dial(&grants)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(refused_body(body, e)),
                Err(_) => {
                    let why = format!("connecting to `{}` timed out after {connect:?}", target.origin());
                    return Err(refused_body(body, OutboundError::Failed(why)));
                }
            };
            parts.uri = target.origin_form(&parts.uri);
            strip_hop_by_hop(&mut parts.headers);
            parts.headers.insert(header::HOST, target.host_header()?);
            let request = http::Request::from_parts(parts, body);
            let first_byte = first_byte_timeout.unwrap_or(FIRST_BYTE_TIMEOUT);
            if target.scheme == "https" {
                let tls = match tokio::time::timeout(connect, target.tls(stream)).await {
                    Ok(tls) => tls?,
                    Err(_) => {
                        let why = format!("TLS with `{}` timed out after {connect:?}", target.origin());
                        return Err(OutboundError::Failed(why));
                    }
                };
                exchange(tls, request, &target, first_byte, between_bytes_timeout).await
            } else {
                exchange(stream, request, &target, first_byte, between_bytes_timeout).await
            }
        })
    }

    fn connect(
        &self,
        authority: &str,
        scheme_hint: Option<&str>,
    ) -> ServiceFuture<Result<TcpStream, OutboundError>> {
        let target = match Target::of_authority(authority, scheme_hint) {
            Ok(target) => target,
            Err(why) => {
                tracing::debug!(authority, "refused an outgoing tunnel: {why}");
                return Box::pin(async { Err(OutboundError::Denied) });
            }
        };
        let grants = self.matching(scheme_hint, &target.host, target.port);
        if grants.is_empty() {
            tracing::debug!(authority, "refused an outgoing tunnel: no grant covers it");
            return Box::pin(async { Err(OutboundError::Denied) });
        }
        Box::pin(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, target.dial(&grants)).await {
                Ok(dialed) => dialed,
                Err(_) => Err(OutboundError::Failed(format!(
                    "connecting to `{}:{}` timed out after {CONNECT_TIMEOUT:?}",
                    target.host, target.port
                ))),
            }
        })
    }
}

/// Refuses a request before anything is resolved.
fn refuse(
    request: http::Request<Body>,
    error: OutboundError,
    why: &str,
) -> ServiceFuture<Result<http::Response<Body>, OutboundError>> {
    tracing::debug!(uri = %request.uri(), "refused an outgoing request: {why}");
    // A guest writes its request body after it has sent the request (wstd does, even
    // for an empty body); dropping the body now would fail those writes, and the
    // guest would see `connection reset` instead of the refusal. Read it away.
    body::drain(request.into_body());
    Box::pin(async move { Err(error) })
}

/// Drains the body of a request that will not be sent (see [`refuse`]); returns `error`.
fn refused_body(body: Body, error: OutboundError) -> OutboundError {
    body::drain(body);
    error
}

/// Where a request goes: scheme and host lowercased, the host without IPv6 brackets
/// or a trailing dot, the port made explicit.
struct Target {
    scheme: String,
    host: String,
    port: u16,
}

impl Target {
    fn of(uri: &Uri) -> Result<Target, String> {
        let Some(scheme) = uri.scheme_str() else {
            return Err("the URI has no scheme".into());
        };
        let scheme = scheme.to_ascii_lowercase();
        let Some(default) = default_port(&scheme) else {
            return Err(format!("scheme `{scheme}` is not http or https"));
        };
        let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
            return Err("the URI has no host".into());
        };
        Ok(Target {
            host: normalize_host(host),
            port: uri.port_u16().unwrap_or(default),
            scheme,
        })
    }

    /// `host:port` of a `CONNECT`; the port is required.
    fn of_authority(authority: &str, scheme: Option<&str>) -> Result<Target, String> {
        let parsed: http::uri::Authority = authority
            .parse()
            .map_err(|e| format!("`{authority}` is not host:port: {e}"))?;
        if authority.contains('@') {
            return Err(format!("`{authority}` has userinfo"));
        }
        let Some(port) = parsed.port_u16() else {
            return Err(format!("`{authority}` has no port"));
        };
        if parsed.host().is_empty() {
            return Err(format!("`{authority}` has no host"));
        }
        Ok(Target {
            scheme: scheme.unwrap_or("https").to_ascii_lowercase(),
            host: normalize_host(parsed.host()),
            port,
        })
    }

    /// `scheme://host:port`, for messages.
    fn origin(&self) -> String {
        match self.host.parse::<Ipv6Addr>() {
            Ok(_) => format!("{}://[{}]:{}", self.scheme, self.host, self.port),
            Err(_) => format!("{}://{}:{}", self.scheme, self.host, self.port),
        }
    }

    /// The `Host` header: the host, with the port unless it is the scheme's default.
    fn host_header(&self) -> Result<HeaderValue, OutboundError> {
        let host = match self.host.parse::<Ipv6Addr>() {
            Ok(_) => format!("[{}]", self.host),
            Err(_) => self.host.clone(),
        };
        let text = match default_port(&self.scheme) == Some(self.port) {
            true => host,
            false => format!("{host}:{}", self.port),
        };
        HeaderValue::from_str(&text)
            .map_err(|_| OutboundError::Failed(format!("`{text}` is not a valid Host header")))
    }

    /// `uri` in origin form (`/path?query`), as a request to an origin server is sent.
    fn origin_form(&self, uri: &Uri) -> Uri {
        let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let path = if path.starts_with('/') { path } else { "/" };
        path.parse().unwrap_or_else(|_| Uri::from_static("/"))
    }

    /// Resolves the host, keeps the addresses the grants let it reach, and connects to
    /// the first that answers.
    async fn dial(&self, grants: &[OutboundHost]) -> Result<TcpStream, OutboundError> {
        let resolved: Vec<SocketAddr> = match self.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, self.port)],
            Err(_) => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|e| OutboundError::Failed(format!("failed to resolve `{}`: {e}", self.host)))?
                .collect(),
        };
        let allowed: Vec<SocketAddr> = resolved
            .iter()
            .copied()
            .filter(|addr| !is_prohibited(addr.ip()) || grants.iter().any(|g| g.names_address(addr.ip())))
            .collect();
        if allowed.is_empty() {
            if resolved.is_empty() {
                return Err(OutboundError::Failed(format!(
                    "`{}` resolved to no address",
                    self.host
                )));
            }
            tracing::debug!(
                host = %self.host,
                addresses = ?resolved,
                "refused an outgoing connection: every address is prohibited and no grant names one"
            );
            return Err(OutboundError::DestinationIpProhibited);
        }
        let mut last = None;
        for addr in allowed {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    // Requests are written whole; Nagle would only delay them.
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(e) => last = Some((addr, e)),
            }
        }
        Err(OutboundError::Failed(match last {
            Some((addr, e)) => format!("failed to connect to `{}` ({addr}): {e}", self.host),
            None => format!("failed to connect to `{}`", self.host),
        }))
    }

    /// The TLS client side over `stream`, for this host.
    async fn tls(
        &self,
        stream: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, OutboundError> {
        let config = tls_config()?;
        let name = rustls::pki_types::ServerName::try_from(self.host.as_str())
            .map(|name| name.to_owned())
            .map_err(|e| OutboundError::Failed(format!("`{}` is not a TLS server name: {e}", self.host)))?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| OutboundError::Failed(format!("TLS with `{}` failed: {e}", self.host)))
    }
}

/// A host lowercased, without IPv6 brackets or a trailing dot.
fn normalize_host(host: &str) -> String {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// One client configuration for every function: the Mozilla roots, ring, HTTP/1.1.
pub(crate) fn tls_config() -> Result<Arc<rustls::ClientConfig>, OutboundError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("failed to set up TLS: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(OutboundError::Failed)
}

/// Sends `request` over `io` as HTTP/1.1 and answers its response, whose body is
/// capped and, if the guest asked, timed between chunks.
async fn exchange<T>(
    io: T,
    request: http::Request<Body>,
    target: &Target,
    first_byte: Duration,
    between_bytes: Option<Duration>,
) -> Result<http::Response<Body>, OutboundError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let origin = target.origin();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| OutboundError::Failed(format!("HTTP handshake with `{origin}` failed: {e}")))?;
    // The connection lives until the response body is read or dropped.
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("an outgoing connection failed: {e}");
        }
    });
    let response = match tokio::time::timeout(first_byte, sender.send_request(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            return Err(OutboundError::Failed(format!(
                "request to `{origin}` failed: {e}"
            )));
        }
        Err(_) => {
            return Err(OutboundError::Failed(format!(
                "`{origin}` sent no response within {first_byte:?}"
            )));
        }
    };
    let (mut parts, incoming) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = CappedBody::new(incoming, MAX_RESPONSE_BODY, between_bytes).boxed_unsync();
    Ok(http::Response::from_parts(parts, body))
}

/// Removes the headers that describe one connection, not the message (RFC 9110 §7.6.1),
/// with those the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

/// Whether functions may reach `ip` only through a grant naming it: every address that
/// is not public unicast on the internet. IPv6 forms that carry an IPv4 address
/// (mapped, compatible, NAT64) are judged by that address.
pub(crate) fn is_prohibited(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_prohibited_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_prohibited_v4(v4);
            }
            let s = v6.segments();
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
                || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard 100::/64
        }
    }
}

/// The IPv4 address an IPv6 one stands for: `::ffff:a.b.c.d` (mapped), `::a.b.c.d`
/// (compatible, deprecated but still routed by some stacks), `64:ff9b::a.b.c.d` (NAT64).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let [a, b] = [s[6], s[7]];
    let low = Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8);
    let compatible = s[..6].iter().all(|&x| x == 0) && !v6.is_unspecified() && !v6.is_loopback();
    let nat64 = s[0] == 0x0064 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0);
    (compatible || nat64).then_some(low)
}

fn is_prohibited_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0 // "this network" 0.0.0.0/8, with the unspecified address
        || ip.is_loopback() // 127.0.0.0/8
        || ip.is_private() // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local() // 169.254/16, with 169.254.169.254 (cloud metadata)
        || ip.is_broadcast()
        || ip.is_multicast() // 224/4
        || ip.is_documentation() // 192.0.2/24, 198.51.100/24, 203.0.113/24
        || (a == 100 && (b & 0xc0) == 64) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0/24
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18/15
        || a >= 240 // reserved 240/4
}

/// A response body that fails past `limit` bytes, and after `between` without a frame
/// when that is set.
struct CappedBody<B> {
    inner: B,
    remaining: usize,
    limit: usize,
    between: Option<Duration>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> CappedBody<B> {
    fn new(inner: B, limit: usize, between: Option<Duration>) -> CappedBody<B> {
        CappedBody {
            inner,
            remaining: limit,
            limit,
            between,
            timer: None,
        }
    }
}

/// The error of a response body past [`MAX_RESPONSE_BODY`].
#[derive(Debug, thiserror::Error)]
#[error("the response body is larger than {limit} bytes")]
struct ResponseTooLarge {
    limit: usize,
}

/// The error of a response body that stalled longer than the guest allowed.
#[derive(Debug, thiserror::Error)]
#[error("the response body sent nothing for {0:?}")]
struct ResponseStalled(Duration);

impl<B> HttpBody for CappedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.timer = None;
                if let Some(data) = frame.data_ref() {
                    if data.len() > this.remaining {
                        this.remaining = 0;
                        return Poll::Ready(Some(Err(Box::new(ResponseTooLarge { limit: this.limit }))));
                    }
                    this.remaining -= data.len();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let Some(between) = this.between else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(between)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(ResponseStalled(between))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn grants<S: AsRef<str>>(texts: &[S]) -> Arc<OutboundPolicy> {
        let hosts: Vec<OutboundHost> = texts.iter().map(|t| t.as_ref().parse().unwrap()).collect();
        OutboundPolicy::new(&hosts)
    }

    fn get(url: &str) -> OutboundRequest {
        OutboundRequest {
            request: http::Request::get(url).body(body::empty()).unwrap(),
            site: None,
            connect_timeout: None,
            first_byte_timeout: None,
            between_bytes_timeout: None,
        }
    }

    /// A server answering one request with `response` (raw HTTP/1.1); hands back the
    /// request head it read.
    async fn upstream(response: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            stream.write_all(response.as_bytes()).await.unwrap();
            stream.shutdown().await.ok();
            String::from_utf8_lossy(&head).into_owned()
        });
        (port, task)
    }

    async fn text(response: http::Response<Body>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn a_granted_loopback_server_is_reached_in_origin_form_with_a_host_header() {
        let (port, head) = upstream("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
        let policy = grants(&[format!("http://127.0.0.1:{port}")]);
        let response = policy
            .send(get(&format!("http://127.0.0.1:{port}/secret?x=1")))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(text(response).await, "hello");
        let head = head.await.unwrap();
        assert!(head.starts_with("GET /secret?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("host: 127.0.0.1:{port}\r\n")),
            "{head}"
        );
    }

    #[tokio::test]
    async fn redirects_are_answered_not_followed() {
        let (port, _head) =
            upstream("HTTP/1.1 302 Found\r\nlocation: http://10.0.0.1/\r\ncontent-length: 0\r\n\r\n").await;
        let policy = grants(&[format!("http://127.0.0.1:{port}")]);
        let response = policy
            .send(get(&format!("http://127.0.0.1:{port}/")))
            .await
            .unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(response.headers()["location"], "http://10.0.0.1/");
    }

    #[tokio::test]
    async fn ungranted_hosts_are_denied() {
        let policy = grants(&["https://example.com", "http://127.0.0.1:1"]);
        for url in [
            "http://example.com/",
            "https://example.com:8443/",
            "https://api.example.com/",
            "http://127.0.0.1:2/",
            "http://localhost:1/",
            "ftp://example.com/",
        ] {
            let e = policy.send(get(url)).await.err();
            assert!(matches!(e, Some(OutboundError::Denied)), "{url}: {e:?}");
        }
        assert!(matches!(
            OutboundPolicy::deny_all().send(get("http://127.0.0.1/")).await,
            Err(OutboundError::Denied)
        ));
    }

    #[tokio::test]
    async fn wide_grants_do_not_reach_prohibited_addresses() {
        let (port, _head) = upstream("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        let policy = grants(&["http://*:*", "https://*:*"]);
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://localhost:{port}/"),
            format!("http://[::1]:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            "http://10.0.0.1/".to_string(),
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "https://192.168.1.1/".to_string(),
        ] {
            let e = policy.send(get(&url)).await.err();
            assert!(
                matches!(e, Some(OutboundError::DestinationIpProhibited)),
                "{url}: {e:?}"
            );
        }
        // A name resolving to loopback is not a literal grant of loopback.
        let policy = grants(&[format!("http://localhost:{port}")]);
        let e = policy.send(get(&format!("http://localhost:{port}/"))).await.err();
        assert!(matches!(e, Some(OutboundError::DestinationIpProhibited)), "{e:?}");
    }

    #[tokio::test]
    async fn tunnels_follow_the_same_grants() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let policy = grants(&[format!("http://127.0.0.1:{port}")]);
        let mut stream = policy.connect(&format!("127.0.0.1:{port}"), None).await.unwrap();
        let (mut accepted, _) = listener.accept().await.unwrap();
        stream.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        accepted.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");

        for (authority, hint) in [
            (format!("127.0.0.1:{}", port.wrapping_add(1)), None),
            (format!("127.0.0.1:{port}"), Some("https")),
            (format!("localhost:{port}"), None),
            ("127.0.0.1".to_string(), None),
        ] {
            let e = policy.connect(&authority, hint).await.err();
            assert!(matches!(e, Some(OutboundError::Denied)), "{authority}: {e:?}");
        }
        let wide = grants(&["https://*:*"]);
        let e = wide.connect(&format!("127.0.0.1:{port}"), None).await.err();
        assert!(matches!(e, Some(OutboundError::DestinationIpProhibited)), "{e:?}");
        let https = grants(&["https://example.com"]);
        assert!(https.matching(None, "example.com", 443).len() == 1);
        assert!(https.matching(None, "example.com", 80).is_empty());
    }

    #[tokio::test]
    async fn https_verifies_the_certificate_against_the_mozilla_roots() {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key.into())
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            acceptor.accept(stream).await.is_ok()
        });
        let policy = grants(&[format!("https://127.0.0.1:{port}")]);
        let e = policy
            .send(get(&format!("https://127.0.0.1:{port}/")))
            .await
            .err();
        let Some(OutboundError::Failed(why)) = e else {
            panic!("a self-signed certificate was accepted: {e:?}");
        };
        assert!(why.starts_with("TLS with `127.0.0.1` failed"), "{why}");
        assert!(why.contains("certificate"), "{why}");
        assert!(!server.await.unwrap(), "the handshake completed");
    }

    /// Writes `request` to a proxy over `policy` and reads the answer to the end.
    async fn through_proxy(policy: Arc<OutboundPolicy>, request: String) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = listener.local_addr().unwrap();
        let serving = tokio::spawn(wisp_runtime::process::proxy::serve(listener, policy));
        let mut stream = TcpStream::connect(proxy).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        serving.abort();
        answer
    }

    #[tokio::test]
    async fn native_functions_proxy_is_held_to_the_policy() {
        // Absolute form: sent in origin form.
        let (port, head) = upstream("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        let policy = grants(&[format!("http://127.0.0.1:{port}")]);
        let request = format!(
            "GET http://127.0.0.1:{port}/p HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n"
        );
        let answer = through_proxy(policy.clone(), request).await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("\r\n\r\nok"),
            "{answer}"
        );
        assert!(head.await.unwrap().starts_with("GET /p HTTP/1.1\r\n"));

        // CONNECT: a tunnel to the same grant.
        let (port, head) = upstream("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        let policy = grants(&[format!("http://127.0.0.1:{port}")]);
        let request = format!(
            "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n\
             GET /t HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        );
        let answer = through_proxy(policy, request).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
        assert!(head.await.unwrap().starts_with("GET /t HTTP/1.1\r\n"));

        // Refusals: not granted, and granted widely but prohibited.
        let policy = grants(&["http://127.0.0.1:1"]);
        let answer = through_proxy(policy, "CONNECT 127.0.0.1:2 HTTP/1.1\r\nhost: x\r\n\r\n".into()).await;
        assert!(
            answer.starts_with("HTTP/1.1 403") && answer.contains("denied: "),
            "{answer}"
        );
        let policy = grants(&["http://*:*"]);
        let answer = through_proxy(
            policy,
            "GET http://localhost:1/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".into(),
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 403") && answer.contains("prohibited: "),
            "{answer}"
        );
    }

    #[test]
    fn prohibited_ranges() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "198.18.0.1",
            "192.0.0.8",
            "240.0.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
        ] {
            assert!(is_prohibited(ip.parse().unwrap()), "{ip} should be prohibited");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!is_prohibited(ip.parse().unwrap()), "{ip} should be allowed");
        }
    }

    #[tokio::test]
    async fn response_bodies_are_capped() {
        let body = http_body_util::Full::new(Bytes::from(vec![0u8; 10]));
        let capped = CappedBody::new(body, 9, None);
        assert!(capped.collect().await.is_err());
        let body = http_body_util::Full::new(Bytes::from(vec![0u8; 10]));
        let fits = CappedBody::new(body, 10, None);
        assert_eq!(fits.collect().await.unwrap().to_bytes().len(), 10);
    }

    /// A body that never sends anything.
    struct Silent;

    impl HttpBody for Silent {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_response_body_fails_after_the_guests_between_bytes_timeout() {
        let stalled = CappedBody::new(Silent, 10, Some(Duration::from_secs(5)));
        let e = stalled.collect().await.err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("the response body sent nothing for 5s"));
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("close, x-private"));
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("proxy-authorization", HeaderValue::from_static("secret"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }
}

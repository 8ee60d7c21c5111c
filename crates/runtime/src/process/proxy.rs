//! The HTTP proxy a native function's instance reaches the network through
//! (`HTTPS_PROXY`/`HTTP_PROXY`), held to the function's grants by its
//! [`OutboundHttp`] service.
//!
//! One [`serve`] per instance, on a listener inside the instance's network namespace.
//! It speaks HTTP/1.1 and understands two requests:
//!
//! - `CONNECT host:port` (what clients send for `https://` URLs): the service opens the
//!   connection ([`OutboundHttp::connect`]: same grants, same prohibited addresses), the
//!   proxy answers `200` and copies bytes both ways; TLS runs end to end between the
//!   function and the destination;
//! - an absolute-form request (`GET http://host/path`, what clients send for `http://`
//!   URLs): the service sends it ([`OutboundHttp::send`], which writes it in origin form)
//!   and the response streams back.
//!
//! Anything else is `400`. A refusal is `403` with a one-line text body saying why
//! (`denied`: no grant covers the destination; `prohibited`: it resolved to an address
//! functions may not reach); a failure to reach a granted destination is `502`.

use crate::body::{Body, BoxError, full};
use crate::services::{OutboundError, OutboundHttp, OutboundRequest};
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Most connections one instance may hold open through its proxy; past it, accepting
/// waits for one to end.
const MAX_CONNECTIONS: usize = 256;

/// A tunnel to run once its connection has been handed over.
type Tunnel = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Accepts and serves proxy connections until the task running it is dropped or
/// aborted, which ends every connection and tunnel it holds.
pub async fn serve(listener: TcpListener, outbound: Arc<dyn OutboundHttp>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.len() >= MAX_CONNECTIONS {
            connections.join_next().await;
        }
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("outbound proxy accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next() => continue,
        };
        let _ = stream.set_nodelay(true);
        let outbound = outbound.clone();
        connections.spawn(async move {
            // A CONNECT's tunnel can only start once hyper has let go of the connection,
            // so the handler leaves it here and this task runs it after: it stays in
            // `connections`, and ends with the proxy.
            let (tunnels, mut tunnel) = mpsc::unbounded_channel::<Tunnel>();
            let service = hyper::service::service_fn(move |request| {
                let outbound = outbound.clone();
                let tunnels = tunnels.clone();
                async move { Ok::<_, Infallible>(handle(request, outbound.as_ref(), &tunnels).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
            if let Err(e) = served {
                tracing::debug!("an outbound proxy connection failed: {e}");
            }
            while let Ok(run) = tunnel.try_recv() {
                run.await;
            }
        });
    }
}

async fn handle(
    mut request: Request<Incoming>,
    outbound: &dyn OutboundHttp,
    tunnels: &mpsc::UnboundedSender<Tunnel>,
) -> Response<Body> {
    if request.method() == Method::CONNECT {
        let Some(authority) = request.uri().authority().map(|a| a.as_str().to_string()) else {
            return text(StatusCode::BAD_REQUEST, "CONNECT needs host:port\n");
        };
        let upstream = match outbound.connect(&authority, None).await {
            Ok(upstream) => upstream,
            Err(e) => {
                // A client whose tunnel was refused does not send on this connection.
                let mut response = refusal(e, &authority);
                response
                    .headers_mut()
                    .insert(header::CONNECTION, header::HeaderValue::from_static("close"));
                return response;
            }
        };
        let upgrade = hyper::upgrade::on(&mut request);
        let tunnel: Tunnel = Box::pin(async move {
            let mut upstream = upstream;
            match upgrade.await {
                Ok(upgraded) => {
                    let mut client = TokioIo::new(upgraded);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                        tracing::debug!(%authority, "an outbound tunnel ended: {e}");
                    }
                }
                Err(e) => tracing::debug!(%authority, "an outbound tunnel was not taken up: {e}"),
            }
        });
        if tunnels.send(tunnel).is_err() {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the proxy connection is closing\n",
            );
        }
        return Response::new(crate::body::empty());
    }
    let uri = request.uri();
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "this is a forward proxy: send `CONNECT host:port` or an absolute-form request \
             (`GET http://host/path`)\n",
        );
    };
    let destination = format!("{scheme}://{authority}");
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync();
    let request = OutboundRequest {
        site: None,
        request: Request::from_parts(parts, body),
        connect_timeout: None,
        first_byte_timeout: None,
        between_bytes_timeout: None,
    };
    match outbound.send(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body)
        }
        Err(e) => refusal(e, &destination),
    }
}

/// The answer to a request the service would not or could not carry.
fn refusal(error: OutboundError, destination: &str) -> Response<Body> {
    match error {
        OutboundError::Denied => text(
            StatusCode::FORBIDDEN,
            &format!("denied: the function is not granted `{destination}`\n"),
        ),
        OutboundError::DestinationIpProhibited => text(
            StatusCode::FORBIDDEN,
            &format!("prohibited: `{destination}` resolves to an address functions may not reach\n"),
        ),
        OutboundError::Failed(why) => text(StatusCode::BAD_GATEWAY, &format!("failed: {why}\n")),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Removes the headers that describe one connection, not the message (RFC 9110 §7.6.1),
/// with those the `Connection` header names: the proxy's own (`Proxy-Authorization`)
/// never travel on.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::ServiceFuture;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Grants one `host:port`; refuses `10.0.0.1` as a prohibited address, the rest as
    /// denied. Sends with a plain hyper client, as the engine's policy would.
    struct Grant(String);

    impl OutboundHttp for Grant {
        fn send(&self, request: OutboundRequest) -> ServiceFuture<Result<Response<Body>, OutboundError>> {
            let authority = request
                .request
                .uri()
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let verdict = self.verdict(&authority);
            Box::pin(async move {
                verdict?;
                let (mut parts, body) = request.request.into_parts();
                parts.uri = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .parse()
                    .unwrap();
                parts.headers.insert(header::HOST, authority.parse().unwrap());
                let stream = TcpStream::connect(&authority).await.unwrap();
                let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let response = sender
                    .send_request(Request::from_parts(parts, body))
                    .await
                    .unwrap();
                Ok(response.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()))
            })
        }

        fn connect(
            &self,
            authority: &str,
            _scheme_hint: Option<&str>,
        ) -> ServiceFuture<Result<TcpStream, OutboundError>> {
            let verdict = self.verdict(authority);
            let authority = authority.to_string();
            Box::pin(async move {
                verdict?;
                Ok(TcpStream::connect(authority).await.unwrap())
            })
        }
    }

    impl Grant {
        fn verdict(&self, authority: &str) -> Result<(), OutboundError> {
            match authority {
                a if a == self.0 => Ok(()),
                a if a.starts_with("10.0.0.1") => Err(OutboundError::DestinationIpProhibited),
                _ => Err(OutboundError::Denied),
            }
        }
    }

    /// An origin server answering every request with its request line.
    async fn upstream() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let head = read_head(&mut stream).await;
                    let line = head.lines().next().unwrap_or_default().to_string();
                    let body = format!("upstream saw {line}");
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    stream.write_all(response.as_bytes()).await.unwrap();
                });
            }
        });
        port
    }

    async fn read_head(stream: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        String::from_utf8_lossy(&head).into_owned()
    }

    async fn proxy(granted: String) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(serve(listener, Arc::new(Grant(granted))));
        port
    }

    /// Sends `request` to the proxy and reads everything it answers.
    async fn exchange(proxy: u16, request: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", proxy)).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn connect_tunnels_to_a_granted_destination() {
        let up = upstream().await;
        let proxy = proxy(format!("127.0.0.1:{up}")).await;
        let mut stream = TcpStream::connect(("127.0.0.1", proxy)).await.unwrap();
        let connect = format!("CONNECT 127.0.0.1:{up} HTTP/1.1\r\nHost: 127.0.0.1:{up}\r\n\r\n");
        stream.write_all(connect.as_bytes()).await.unwrap();
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        stream
            .write_all(b"GET /through HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.ends_with("upstream saw GET /through HTTP/1.1"), "{answer}");
    }

    #[tokio::test]
    async fn absolute_form_requests_are_forwarded_in_origin_form() {
        let up = upstream().await;
        let proxy = proxy(format!("127.0.0.1:{up}")).await;
        let answer = exchange(
            proxy,
            &format!(
                "GET http://127.0.0.1:{up}/path?q=1 HTTP/1.1\r\nHost: 127.0.0.1:{up}\r\n\
                 Proxy-Authorization: secret\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.ends_with("upstream saw GET /path?q=1 HTTP/1.1"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn refusals_are_403_with_the_reason() {
        let up = upstream().await;
        let proxy = proxy(format!("127.0.0.1:{up}")).await;
        let denied = exchange(
            proxy,
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        )
        .await;
        assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
        assert!(
            denied.ends_with("denied: the function is not granted `example.com:443`\n"),
            "{denied}"
        );

        let other_port = format!(
            "GET http://127.0.0.1:{}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            up ^ 1
        );
        let denied = exchange(proxy, &other_port).await;
        assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
        assert!(denied.contains("denied: "), "{denied}");

        let prohibited = exchange(
            proxy,
            "CONNECT 10.0.0.1:443 HTTP/1.1\r\nHost: 10.0.0.1:443\r\n\r\n",
        )
        .await;
        assert!(prohibited.starts_with("HTTP/1.1 403"), "{prohibited}");
        assert!(prohibited.contains("prohibited: `10.0.0.1:443`"), "{prohibited}");
    }

    #[tokio::test]
    async fn origin_form_requests_are_400() {
        let proxy = proxy("127.0.0.1:1".into()).await;
        let answer = exchange(
            proxy,
            "GET /path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("forward proxy"), "{answer}");
    }
}

//! The HTTP server: one listener for the control router (every path Wisp reserves:
//! `/v1`, Lambda's `Invoke`, …) and user routes (the gateway into the engine).
//!
//! [`serve`] is the accept loop (hyper, HTTP/1.1 and HTTP/2 cleartext) with graceful
//! shutdown: on the shutdown signal it stops accepting, lets in-flight requests finish
//! (bounded by a drain timeout), and returns. [`App`] is the service each connection
//! runs: a request under a reserved prefix goes to the control router
//! ([`router::control`]), one axum `Router` behind which every control concern is a
//! layer; everything else goes straight to [`wisp_engine::Engine::handle`], without a
//! router in between — that is the hot path.
//!
//! The server builds nothing: the binary wires the store, runtimes and engine (it is
//! the composition root) and hands the engine in.

pub mod api;
pub mod auth;
mod body;
pub mod lambda;
pub mod problem;
pub mod router;
mod signed;
pub mod sigv4;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;
use wisp_engine::{Body, BoxError, ClientAddr, Engine};

/// The service every connection runs.
#[derive(Clone)]
pub struct App {
    engine: Arc<Engine>,
    control: axum::Router,
}

impl App {
    pub fn new(engine: Arc<Engine>) -> App {
        App {
            control: router::control(engine.clone()),
            engine,
        }
    }

    /// Answers one request.
    pub async fn handle(&self, mut request: Request<Body>) -> Response<Body> {
        if router::is_reserved(request.uri().path()) {
            let request = request.map(axum::body::Body::new);
            return match self.control.clone().oneshot(request).await {
                Ok(response) => response.map(|b| b.map_err(box_axum_error).boxed_unsync()),
                Err(never) => match never {},
            };
        }
        if request.extensions().get::<ClientAddr>().is_none() {
            request
                .extensions_mut()
                .insert(ClientAddr(SocketAddr::from(([127, 0, 0, 1], 0))));
        }
        match self.engine.handle(request).await {
            Ok(response) => response,
            Err(err) => problem::problem_response(&err),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains in-flight
/// requests for at most `drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Running out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let app = app.clone();
            let mut request = request.map(|b| b.map_err(box_hyper_error).boxed_unsync());
            request.extensions_mut().insert(ClientAddr(peer));
            async move { Ok::<_, Infallible>(app.handle(request).await) }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timed out after {drain_timeout:?}; closing remaining connections");
    }
    Ok(())
}

fn box_hyper_error(e: hyper::Error) -> BoxError {
    Box::new(e)
}

fn box_axum_error(e: axum::Error) -> BoxError {
    Box::new(e)
}

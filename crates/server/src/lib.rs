//! The HTTP server: one listener for the control router (every path Wisp reserves:
//! `/v1`, Lambda's `Invoke`, …) and user routes (the gateway into the engine).
//!
//! [`listen`] is the main listener: the accept loop (hyper, HTTP/1.1 and HTTP/2, plain
//! or TLS), the connection caps and timeouts, and the drain at shutdown. [`App`] is the
//! service each connection runs: a request under a reserved prefix goes to the control router
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
pub mod listen;
mod metrics;
pub mod platform;
pub mod problem;
pub mod router;
pub mod s3;
mod signed;
pub mod sigv4;
mod ui;

use http::{Request, Response};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;
use wisp_engine::{Body, BoxError, ClientAddr, Engine};

pub use listen::{ListenConfig, serve};

/// The service every connection runs.
#[derive(Clone)]
pub struct App {
    engine: Arc<Engine>,
    control: axum::Router,
    /// Set on the S3 listener's app: every request is an S3 request, but those under
    /// `/v1`.
    s3: Option<Arc<s3::S3Handler>>,
    /// On the S3 listener's app: the services functions call there
    /// ([`api::services`]).
    services: Option<axum::Router>,
}

impl App {
    pub fn new(engine: Arc<Engine>) -> App {
        App {
            control: router::control(engine.clone()),
            engine,
            s3: None,
            services: None,
        }
    }

    /// The app of the S3 listener: the S3 API, and the services functions call
    /// (under `/v1`: "v1" is no bucket name, being shorter than three characters; and
    /// Lambda's Invoke), and nothing else.
    pub fn s3(engine: Arc<Engine>) -> App {
        App {
            s3: Some(Arc::new(s3::handler(engine.clone()))),
            services: Some(api::services::router(engine.clone())),
            ..App::new(engine)
        }
    }

    /// Answers one request.
    pub async fn handle(&self, mut request: Request<Body>) -> Response<Body> {
        if let Some(s3) = &self.s3 {
            return match &self.services {
                Some(services) if api::services::serves(request.uri().path()) => {
                    route(services, request).await
                }
                _ => s3.handle(request).await,
            };
        }
        if router::is_reserved(request.uri().path()) {
            return route(&self.control, request).await;
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

/// Runs `request` through an axum router.
async fn route(router: &axum::Router, request: Request<Body>) -> Response<Body> {
    let request = request.map(axum::body::Body::new);
    match router.clone().oneshot(request).await {
        Ok(response) => from_axum(response),
        Err(never) => match never {},
    }
}

/// An axum response as the engine's.
fn from_axum(response: axum::response::Response) -> Response<Body> {
    response.map(|b| b.map_err(box_axum_error).boxed_unsync())
}

fn box_axum_error(e: axum::Error) -> BoxError {
    Box::new(e)
}

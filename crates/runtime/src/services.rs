//! The services context: what the platform offers a running guest beyond its own
//! code (outbound HTTP today; key-value, object storage and function calls later).
//!
//! # Design
//!
//! The engine builds one [`Services`] per function version, from what that version
//! is granted, and hands it to the runtime with every [`Invocation`](crate::Invocation).
//! The runtime's host bindings (`wasm/host/`) call it and know nothing of what is
//! behind it: the implementations live in the engine (`engine/src/services/`), over
//! the store, so the runtime never depends on the store. Each service is a trait here
//! in the runtime's own types, so neither side sees the other's internals (the
//! engine never sees a wasmtime type; the runtime never sees a grant).
//!
//! Cloning a [`Services`] is a few reference-count increments: it is cloned into
//! every invocation.

use crate::body::Body;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Every service a guest may call, as granted to its function version.
#[derive(Clone)]
pub struct Services {
    outbound_http: Arc<dyn OutboundHttp>,
}

impl Services {
    pub fn new(outbound_http: Arc<dyn OutboundHttp>) -> Services {
        Services { outbound_http }
    }

    /// Nothing granted: every service refuses (what a function gets by default, and
    /// what tests of a runtime alone use).
    pub fn none() -> Services {
        Services::new(Arc::new(DenyAll))
    }

    /// Sends a guest's outgoing HTTP requests.
    pub fn outbound_http(&self) -> &Arc<dyn OutboundHttp> {
        &self.outbound_http
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}

/// A future a service answers with.
pub type ServiceFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// An HTTP request a guest sends, with the timeouts it asked for (`None`: the
/// service's own bound).
pub struct OutboundRequest {
    pub request: http::Request<Body>,
    pub connect_timeout: Option<Duration>,
    pub first_byte_timeout: Option<Duration>,
    pub between_bytes_timeout: Option<Duration>,
}

/// Why an outgoing request got no response. The host bindings map each onto the
/// guest interface's own error (for `wasi:http`, its `error-code`).
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The function is not granted this destination (`HTTP-request-denied`).
    #[error("the function may not send this request")]
    Denied,
    /// The destination resolved to an address functions may never reach
    /// (`destination-IP-prohibited`).
    #[error("the destination's address is prohibited")]
    DestinationIpProhibited,
    /// Anything else (`internal-error`, with this text).
    #[error("{0}")]
    Failed(String),
}

/// Sends the outgoing HTTP requests of a guest. Called from a guest's host call, on
/// the invocation's task, once per request; the answer is awaited under the
/// invocation's deadline.
pub trait OutboundHttp: Send + Sync + 'static {
    fn send(&self, request: OutboundRequest) -> ServiceFuture<Result<http::Response<Body>, OutboundError>>;
}

/// Refuses everything.
struct DenyAll;

impl OutboundHttp for DenyAll {
    fn send(&self, _request: OutboundRequest) -> ServiceFuture<Result<http::Response<Body>, OutboundError>> {
        Box::pin(async { Err(OutboundError::Denied) })
    }
}

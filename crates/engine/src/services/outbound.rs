//! Outbound HTTP from guests, held to the hosts a function is granted. No function is
//! granted any host yet, so every request is refused with `HTTP-request-denied`
//! before anything is resolved or connected.

use std::sync::Arc;
use wisp_runtime::services::{OutboundError, OutboundHttp, OutboundRequest, ServiceFuture};
use wisp_runtime::{Body, body};

/// The hosts one function version may reach. No configuration grants a host yet, so
/// there is one policy, which grants none; grants come with capabilities.
pub(crate) struct OutboundPolicy;

impl OutboundPolicy {
    /// A policy granting nothing.
    pub(crate) fn deny_all() -> Arc<OutboundPolicy> {
        Arc::new(OutboundPolicy)
    }
}

impl OutboundHttp for OutboundPolicy {
    fn send(&self, request: OutboundRequest) -> ServiceFuture<Result<http::Response<Body>, OutboundError>> {
        tracing::debug!(uri = %request.request.uri(), "refused an outgoing request: no host is granted");
        // A guest writes its request body after it has sent the request (wstd does, even
        // for an empty body); dropping the body now would fail those writes, and the
        // guest would see `connection reset` instead of the refusal. Read it away.
        body::drain(request.request.into_body());
        Box::pin(async { Err(OutboundError::Denied) })
    }
}

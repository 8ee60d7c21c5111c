//! Outbound HTTP from guests, held to the hosts a function is granted. No function is
//! granted any host yet, so every request is refused with `HTTP-request-denied`
//! before anything is resolved or connected.

use std::sync::Arc;
use wisp_runtime::Body;
use wisp_runtime::services::{OutboundError, OutboundHttp, OutboundRequest, ServiceFuture};

/// The hosts one function version may reach.
pub(crate) struct OutboundPolicy {
    // Granted hosts come with the capabilities issue; until then the policy is
    // empty and the type says only that.
    _granted: (),
}

impl OutboundPolicy {
    /// A policy granting nothing.
    pub(crate) fn deny_all() -> Arc<OutboundPolicy> {
        Arc::new(OutboundPolicy { _granted: () })
    }
}

impl OutboundHttp for OutboundPolicy {
    fn send(&self, request: OutboundRequest) -> ServiceFuture<Result<http::Response<Body>, OutboundError>> {
        tracing::debug!(uri = %request.request.uri(), "refused an outgoing request: no host is granted");
        Box::pin(async { Err(OutboundError::Denied) })
    }
}

//! The platform address, `http://wisp.internal`: a wasm guest's requests to it are
//! answered in-process, with no socket, by the same routes a native function finds on
//! its services endpoint — Lambda's Invoke API (function-to-function calls), the
//! key-value, queue and topic routes under `/v1`, and path-style S3 — each held to the
//! function's grants. No `outbound` grant is needed to reach it.
//!
//! The engine cannot serve those routes itself (they are the server's), so the server
//! installs a [`Platform`] at start ([`Engine::serve_platform`]); until it has, or in
//! an engine without a server, the platform address is refused like any ungranted host.

use super::outbound::OutboundPolicy;
use crate::Engine;
use crate::calls::CallFrom;
use crate::identity::{Caller, FunctionGrants};
use http::{Request, Response};
use std::sync::{Arc, PoisonError, RwLock};
use wisp_core::{FunctionConfig, FunctionName, Namespace, Role};
use wisp_runtime::services::{OutboundError, OutboundHttp, OutboundRequest, ServiceFuture};
use wisp_runtime::{Body, CallSite};

/// The host of the platform address.
pub const PLATFORM_HOST: &str = "wisp.internal";

/// Answers requests to the platform address: the server's services routes.
pub trait Platform: Send + Sync + 'static {
    /// Answers `request` from a function: `caller` is its identity (role `deploy`,
    /// bounded by its version's grants, as a native function's credential is), `from`
    /// the invocation it comes from. Every refusal is a response, as the route answers
    /// it.
    fn handle(&self, caller: Caller, from: CallFrom, request: Request<Body>)
    -> ServiceFuture<Response<Body>>;
}

/// Where the server's [`Platform`] is, while it is installed (shared by every
/// version's services). The platform holds the engine (its routes do), so the engine
/// lets go of it at shutdown ([`Engine::stop_platform`]) to end the cycle.
pub(crate) type PlatformCell = Arc<RwLock<Option<Arc<dyn Platform>>>>;

impl Engine {
    /// Installs what answers the platform address (the server does, at start),
    /// replacing any before it.
    pub fn serve_platform(&self, platform: Arc<dyn Platform>) {
        *self
            .pools
            .platform
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(platform);
    }

    /// Stops answering the platform address: its requests are refused from now on.
    pub(crate) fn stop_platform(&self) {
        self.pools
            .platform
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// Who a wasm guest of a function version is to the platform: its function, and the
/// identity it acts with (role `deploy`, bounded by its version's grants, as a native
/// function's credential is).
#[derive(Clone)]
pub(crate) struct Guest {
    pub(crate) function: FunctionName,
    pub(crate) caller: Caller,
}

impl Guest {
    pub(crate) fn new(namespace: &Namespace, function: &FunctionName, config: &FunctionConfig) -> Guest {
        Guest {
            function: function.clone(),
            caller: Caller {
                key_id: format!("function `{function}`"),
                namespace: namespace.clone(),
                role: Role::Deploy,
                grants: Some(Arc::new(FunctionGrants::of(function, config))),
                call_depth: None,
            },
        }
    }

    /// Who calls from the invocation at `site`: its context, in its trace (its own root
    /// when it started none), with the invocation as the parent of what the call causes.
    pub(crate) fn call_from(&self, site: CallSite) -> CallFrom {
        let CallSite { invocation, context } = site;
        CallFrom {
            namespace: self.caller.namespace.clone(),
            function: self.function.clone(),
            context: wisp_runtime::CallContext {
                trace_root: Some(context.root_for(&invocation)),
                ..context
            },
            invocation: Some(invocation.into()),
        }
    }
}

/// A wasm guest's outgoing HTTP: to the platform address, the [`Platform`]; to anywhere
/// else, the function's [`OutboundPolicy`].
pub(crate) struct GuestHttp {
    policy: Arc<OutboundPolicy>,
    platform: PlatformCell,
    guest: Guest,
}

impl GuestHttp {
    pub(crate) fn new(guest: Guest, config: &FunctionConfig, platform: &PlatformCell) -> Arc<GuestHttp> {
        Arc::new(GuestHttp {
            policy: OutboundPolicy::new(&config.outbound),
            platform: platform.clone(),
            guest,
        })
    }
}

/// Whether `request` is for the platform address.
fn is_platform(request: &Request<Body>) -> bool {
    request
        .uri()
        .host()
        .is_some_and(|host| host.eq_ignore_ascii_case(PLATFORM_HOST))
}

impl OutboundHttp for GuestHttp {
    fn send(&self, mut request: OutboundRequest) -> ServiceFuture<Result<Response<Body>, OutboundError>> {
        // A guest writes its request body after it has sent the request: an answer that
        // does not read it all (a refusal, or a server that answers and closes) must not
        // fail those writes with `connection reset` instead of giving the answer.
        request.request = request.request.map(wisp_runtime::body::drained_when_dropped);
        if !is_platform(&request.request) {
            return self.policy.send(request);
        }
        let platform = self
            .platform
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (Some(platform), Some(site)) = (platform, request.site) else {
            return Box::pin(async { Err(OutboundError::Denied) });
        };
        let from = self.guest.call_from(site);
        // What it writes (objects, messages) causes events one hop deeper than it runs.
        let caller = Caller {
            call_depth: Some(from.context.depth),
            ..self.guest.caller.clone()
        };
        let answer = platform.handle(caller, from, request.request);
        Box::pin(async move { Ok(answer.await) })
    }

    fn connect(
        &self,
        authority: &str,
        scheme_hint: Option<&str>,
    ) -> ServiceFuture<Result<tokio::net::TcpStream, OutboundError>> {
        self.policy.connect(authority, scheme_hint)
    }
}

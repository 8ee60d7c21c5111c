//! The server's side of the platform address (`http://wisp.internal`, see
//! `wisp_engine::Platform`): a wasm guest's request to it runs through the S3
//! listener's app in-process — the services routes (`/v1/…`, Lambda's Invoke) or the
//! S3 API — with the function's identity in the request's extensions
//! ([`PlatformCall`]) instead of a token or a signature, so every grant and role check
//! is the one a native function's request meets.

use crate::App;
use http::{Request, Response};
use std::sync::Arc;
use wisp_engine::ServiceFuture;
use wisp_engine::{Body, CallFrom, Caller, Engine, Platform};

/// Who sent a platform request: left in its extensions by [`Routes`], read by the auth
/// layers in place of credentials. Only the engine's platform calls set it; nothing a
/// client sends can.
#[derive(Clone, Debug)]
pub(crate) struct PlatformCall {
    pub caller: Caller,
    pub from: CallFrom,
}

/// Answers the platform address with the S3 listener's app.
struct Routes {
    app: App,
}

/// Installs the platform address's routes in `engine`.
pub fn install(engine: &Arc<Engine>) {
    engine.serve_platform(Arc::new(Routes {
        app: App::s3(engine.clone()),
    }));
}

impl Platform for Routes {
    fn handle(
        &self,
        caller: Caller,
        from: CallFrom,
        mut request: Request<Body>,
    ) -> ServiceFuture<Response<Body>> {
        request.extensions_mut().insert(PlatformCall { caller, from });
        let app = self.app.clone();
        Box::pin(async move { app.handle(request).await })
    }
}

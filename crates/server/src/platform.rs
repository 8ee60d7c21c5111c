//! The server's side of the platform address (`http://wisp.internal`, see
//! `wisp_engine::Platform`): a wasm guest's request to it runs through the S3
//! listener's app in-process — the services routes (`/v1/…`, Lambda's Invoke) or the
//! S3 API — with the function's identity in the request's extensions
//! ([`PlatformCall`]) instead of a token or a signature, so every grant and role check
//! is the one a native function's request meets.

use crate::{App, lambda};
use http::{Method, Request, Response};
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
    engine: Arc<Engine>,
    app: App,
}

/// Installs the platform address's routes in `engine`.
pub fn install(engine: &Arc<Engine>) {
    engine.serve_platform(Arc::new(Routes {
        engine: engine.clone(),
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
        let call = PlatformCall { caller, from };
        // A function-to-function call, the hot path, skips the router.
        if request.method() == Method::POST
            && let Some(name) = invoke_name(request.uri().path())
        {
            let (engine, name) = (self.engine.clone(), name.to_string());
            let request = request.map(axum::body::Body::new);
            return Box::pin(async move {
                let response = lambda::invoke_from_platform(engine, call, name, request).await;
                crate::from_axum(response)
            });
        }
        request.extensions_mut().insert(call);
        let app = self.app.clone();
        Box::pin(async move { app.handle(request).await })
    }
}

/// The function an Invoke path names (`/2015-03-31/functions/{name}/invocations`), when it
/// needs no decoding; a percent-encoded one takes the router's way.
fn invoke_name(path: &str) -> Option<&str> {
    lambda::invoke_target(path).filter(|name| !name.contains('%'))
}

#[cfg(test)]
mod tests {
    use super::invoke_name;

    #[test]
    fn invoke_paths_name_their_function() {
        assert_eq!(
            invoke_name("/2015-03-31/functions/resize/invocations"),
            Some("resize")
        );
        assert_eq!(
            invoke_name("/2015-03-31/functions/resize:prod/invocations"),
            Some("resize:prod")
        );
        for other in [
            "/2015-03-31/functions//invocations",
            "/2015-03-31/functions/a%3Ab/invocations",
            "/2015-03-31/functions/a/b/invocations",
            "/2015-03-31/functions/resize",
            "/v1/kv/cache",
        ] {
            assert_eq!(invoke_name(other), None, "{other}");
        }
    }
}

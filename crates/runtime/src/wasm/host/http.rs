//! Outgoing `wasi:http` requests: `WasiHttpHooks::send_request` hands each request to
//! the invocation's [`OutboundHttp`](crate::services::OutboundHttp) service and maps
//! its answer back onto `wasi:http`'s types and error codes.

use crate::CallSite;
use crate::body::{Body, BoxError};
use crate::services::{OutboundError, OutboundRequest, Services};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The hooks of one invocation's store.
pub(crate) struct OutboundHooks {
    pub(crate) services: Services,
    /// The invocation whose requests these are.
    pub(crate) site: CallSite,
}

impl OutboundHooks {
    pub(crate) fn new(services: Services, site: CallSite) -> OutboundHooks {
        OutboundHooks { services, site }
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        // Reports a failure of the response body's consumer; the service learns of it
        // when the body is dropped, so nothing listens here.
        _response_consumed: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let options = options.unwrap_or_default();
        let request = OutboundRequest {
            request: request.map(|body| body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()),
            site: Some(self.site.clone()),
            connect_timeout: options.connect_timeout,
            first_byte_timeout: options.first_byte_timeout,
            between_bytes_timeout: options.between_bytes_timeout,
        };
        let sent = self.services.outbound_http().send(request);
        Box::new(async move {
            let response = sent.await.map_err(wasi_error)?;
            let response = response.map(|body: Body| body.map_err(body_error).boxed_unsync());
            let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

fn wasi_error(e: OutboundError) -> Error {
    match e {
        OutboundError::Denied => Error::HttpRequestDenied,
        OutboundError::DestinationIpProhibited => Error::DestinationIpProhibited,
        OutboundError::Failed(why) => Error::InternalError(Some(why)),
    }
}

/// A response body's error as `wasi:http` sees it: its own error when it was one.
fn body_error(e: BoxError) -> Error {
    match e.downcast::<Error>() {
        Ok(e) => *e,
        Err(other) => Error::InternalError(Some(other.to_string())),
    }
}

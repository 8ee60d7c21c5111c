//! A response body that also drives the guest producing it.
//!
//! # Design
//!
//! An http function's guest keeps running after it hands back the response head: it
//! writes the body. Running it in a task of its own costs a spawn and a cross-thread
//! wake-up or two per request; instead the guest's future travels inside the response
//! body and is polled whenever the connection polls the body, on the connection's own
//! task. When the body is dropped before the guest is done (the client went away, or
//! the guest works on after finishing the body) the rest of the guest is spawned, so it
//! still ends — at the latest at its deadline — and its logs are still recorded.

use crate::BoxError;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The guest's remaining run, as a boxed future.
pub(crate) type GuestRun = Pin<Box<dyn Future<Output = ()> + Send>>;

pub(crate) struct GuestBody {
    body: HyperOutgoingBody,
    guest: Option<GuestRun>,
}

impl GuestBody {
    pub(crate) fn new(body: HyperOutgoingBody, guest: Option<GuestRun>) -> GuestBody {
        GuestBody { body, guest }
    }

    fn drive_guest(&mut self, cx: &mut Context<'_>) {
        if let Some(guest) = self.guest.as_mut()
            && guest.as_mut().poll(cx).is_ready()
        {
            self.guest = None;
        }
    }
}

impl HttpBody for GuestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        this.drive_guest(cx);
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(None) => {
                // Give the guest its last step (returning from the handler) now.
                this.drive_guest(cx);
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(frame.map_err(BoxError::from))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for GuestBody {
    fn drop(&mut self) {
        if let Some(guest) = self.guest.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(guest);
        }
    }
}

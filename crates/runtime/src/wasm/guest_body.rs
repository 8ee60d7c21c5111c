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
//! still ends — at the latest at its deadline — and its logs are still recorded. The
//! same holds when the caller gives up before the head is ready ([`Guest`]).

use crate::BoxError;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The guest's remaining run, as a boxed future.
pub(crate) type GuestRun = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A guest's run that is never abandoned: dropped before it is done, it is spawned
/// to finish on its own (within its deadline), so its logs are recorded.
pub(crate) struct Guest(Option<GuestRun>);

impl Guest {
    pub(crate) fn new(run: GuestRun) -> Guest {
        Guest(Some(run))
    }

    /// Polls the run; `Ready` once it has ended (and on every poll after that).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(run) = self.0.as_mut() else {
            return Poll::Ready(());
        };
        let polled = run.as_mut().poll(cx);
        if polled.is_ready() {
            self.0 = None;
        }
        polled
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Some(run) = self.0.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(run);
        }
    }
}

pub(crate) struct GuestBody {
    body: HyperOutgoingBody,
    guest: Guest,
}

impl GuestBody {
    pub(crate) fn new(body: HyperOutgoingBody, guest: Guest) -> GuestBody {
        GuestBody { body, guest }
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
        let _ = this.guest.poll(cx);
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(None) => {
                // Give the guest its last step (returning from the handler) now.
                let _ = this.guest.poll(cx);
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

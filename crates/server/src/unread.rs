//! Closing a connection whose request body a handler left unread.
//!
//! A control handler may answer before reading the body it was sent (a refused key, a
//! bad name). hyper then closes the connection after the response, because the rest of
//! the body is still on the wire, but without saying so, and a keep-alive client may
//! already have sent its next request on it: that request fails (`IncompleteMessage`).
//! Saying `Connection: close` on such a response tells the client not to reuse it.

use http::{HeaderValue, Request, Response, Version, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// A request body that notes when it has been read to its end.
pub(crate) struct Watched<B> {
    inner: B,
    ended: Arc<AtomicBool>,
}

/// Whether the body of a request was read to its end, learned after its handler ran.
pub(crate) struct Ended(Option<Arc<AtomicBool>>);

/// Wraps the body of an HTTP/1 request that has one; other requests pass as they are.
pub(crate) fn watch<B: HttpBody>(request: Request<B>) -> (Request<Watched<B>>, Ended) {
    let has_body = request.version() < Version::HTTP_2 && !request.body().is_end_stream();
    let ended = Arc::new(AtomicBool::new(!has_body));
    let watched = request.map(|inner| Watched {
        inner,
        ended: ended.clone(),
    });
    (watched, Ended(has_body.then_some(ended)))
}

impl Ended {
    /// Marks `response` `Connection: close` when the body was left unread.
    pub(crate) fn close_if_unread<B>(self, response: &mut Response<B>) {
        if let Some(ended) = self.0
            && !ended.load(Ordering::Acquire)
        {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

impl<B: HttpBody + Unpin> HttpBody for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.ended.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

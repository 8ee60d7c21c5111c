//! Noticing a request body that its handler left unread.
//!
//! A handler may answer before reading the body it was sent (a refused key, a bad name,
//! a rate limit). hyper then closes the connection after the response, because the rest
//! of the body is still on the wire, but without saying so, and a keep-alive client may
//! already have sent its next request on it: that request fails (`IncompleteMessage`).
//! The connection ([`super::conn`]) says `Connection: close` on such a response, as it
//! does during a drain, so the client does not reuse it.

use http::{Request, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// A request body that notes when it has been read to its end.
pub(super) struct BodyWatch<B> {
    inner: B,
    ended: Option<Arc<AtomicBool>>,
}

/// Whether a request's body was read to its end, asked once its handler answered.
pub(super) struct Unread(Option<Arc<AtomicBool>>);

/// Watches the body of an HTTP/1 request that has one; a request without a body (or over
/// HTTP/2, whose streams end on their own) costs no allocation.
pub(super) fn watch<B: HttpBody>(request: Request<B>) -> (Request<BodyWatch<B>>, Unread) {
    let has_body = request.version() < Version::HTTP_2 && !request.body().is_end_stream();
    let ended = has_body.then(|| Arc::new(AtomicBool::new(false)));
    let unread = Unread(ended.clone());
    (request.map(|inner| BodyWatch { inner, ended }), unread)
}

impl Unread {
    /// Whether the handler left part of the body unread.
    pub(super) fn left(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|ended| !ended.load(Ordering::Acquire))
    }
}

impl<B: HttpBody + Unpin> HttpBody for BodyWatch<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Some(ended) = &self.ended
            && (matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream())
        {
            ended.store(true, Ordering::Release);
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

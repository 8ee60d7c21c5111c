//! The body type that flows between the server, the engine and runtimes, and a
//! body wrapper that enforces a size limit while streaming.

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// A boxed error, the error type of [`Body`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming HTTP body.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// The error a [`Limited`] body fails with once more than its limit arrived.
#[derive(Debug, thiserror::Error)]
#[error("request body is larger than {limit} bytes")]
pub struct BodyTooLarge {
    pub limit: usize,
}

/// Passes a body through until more than `limit` bytes have gone by, then fails
/// with [`BodyTooLarge`] and raises a shared flag, so whoever answers the request
/// can turn it into a 413 even if the consumer swallowed the error.
pub struct Limited {
    inner: Option<Body>,
    remaining: usize,
    limit: usize,
    exceeded: Arc<AtomicBool>,
}

impl Limited {
    pub fn new(inner: Body, limit: usize) -> (Self, Arc<AtomicBool>) {
        let exceeded = Arc::new(AtomicBool::new(false));
        let body = Limited {
            inner: Some(inner),
            remaining: limit,
            limit,
            exceeded: exceeded.clone(),
        };
        (body, exceeded)
    }
}

// Not generic over the inner body on purpose: a `where B: Body<Error = BoxError>`
// bound makes futures that await this body fail rustc's `Send` check (a
// higher-ranked lifetime limitation around `Box<dyn Error>`).
impl HttpBody for Limited {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Some(Err(Box::new(BodyTooLarge { limit: this.limit }))));
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if data.len() > this.remaining {
                        this.exceeded.store(true, Ordering::Release);
                        if let Some(rest) = this.inner.take() {
                            drain(rest);
                        }
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge { limit: this.limit }))));
                    }
                    this.remaining -= data.len();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(HttpBody::size_hint).unwrap_or_default()
    }
}

/// Most bytes [`drain`] reads before giving up on a client.
const DRAIN_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Longest [`drain`] waits for a client.
const DRAIN_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads and discards the rest of a refused request body in the background (up to
/// 64 MiB or 10 s), so a client still sending it can finish and read the `413`
/// instead of failing with a broken pipe. Needs a tokio runtime.
pub fn drain(body: Body) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        let mut body = body;
        let mut seen = 0usize;
        let read = async {
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, Bytes::len);
                if seen > DRAIN_MAX_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_MAX_TIME, read).await;
    });
}

/// `body`, read away by [`drain`] if whoever holds it drops it before its end: a guest
/// writes its request body after it has sent the request, and an answer that does not
/// read the body (a refusal) would otherwise fail those writes with `connection reset`.
pub fn drained_when_dropped(body: Body) -> Body {
    DrainedWhenDropped(Some(body)).boxed_unsync()
}

struct DrainedWhenDropped(Option<Body>);

impl HttpBody for DrainedWhenDropped {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut().0.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.0.as_ref().map(HttpBody::size_hint).unwrap_or_default()
    }
}

impl Drop for DrainedWhenDropped {
    fn drop(&mut self) {
        if let Some(body) = self.0.take()
            && !body.is_end_stream()
        {
            drain(body);
        }
    }
}

/// Reads a whole body, failing with [`BodyTooLarge`] past `limit` bytes.
///
pub async fn read_to_bytes(body: Body, limit: usize) -> Result<Bytes, BoxError> {
    let (limited, _) = Limited::new(body, limit);
    limited.collect().await.map(|c| c.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limited_passes_small_bodies_and_fails_big_ones() {
        let (ok, flag) = Limited::new(full("hello"), 5);
        assert_eq!(ok.collect().await.unwrap().to_bytes(), "hello");
        assert!(!flag.load(Ordering::Acquire));

        let (big, flag) = Limited::new(full("hello!"), 5);
        let err = big.collect().await.unwrap_err();
        assert!(err.is::<BodyTooLarge>());
        assert!(flag.load(Ordering::Acquire));
    }

    /// A body fed by a channel, as a guest's outgoing body is.
    fn channel() -> (
        futures::channel::mpsc::Sender<Result<Frame<Bytes>, BoxError>>,
        Body,
    ) {
        let (tx, rx) = futures::channel::mpsc::channel(1);
        (tx, http_body_util::StreamBody::new(rx).boxed_unsync())
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_is_read_away() {
        use futures::SinkExt;
        // Dropped plainly, the writer fails: what a guest saw as `connection reset`.
        let (mut tx, body) = channel();
        drop(body);
        assert!(tx.send(Ok(Frame::data(Bytes::from("late")))).await.is_err());
        // Dropped through the wrapper, the rest is read away and the writes go through.
        let (mut tx, body) = channel();
        drop(drained_when_dropped(body));
        for _ in 0..3 {
            tx.send(Ok(Frame::data(Bytes::from("late")))).await.unwrap();
        }
        // Read whole, it is the body it wraps.
        let (mut tx, body) = channel();
        let wrapped = drained_when_dropped(body);
        tx.send(Ok(Frame::data(Bytes::from("all")))).await.unwrap();
        drop(tx);
        assert_eq!(wrapped.collect().await.unwrap().to_bytes(), "all");
    }
}

//! Capturing a guest's stdout and stderr in memory, up to a cap.
//!
//! Unlike wasmtime-wasi's `MemoryOutputPipe`, which traps the guest when full, a
//! [`Capture`] drops what is past the cap and remembers that it did: a chatty guest
//! loses log lines, not its invocation. Event functions' stdout (their result) uses
//! the same type and checks [`Capture::overflowed`] to fail with `response_too_large`.

use bytes::{Bytes, BytesMut};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A shared, capped in-memory output stream. Clones write to the same buffer.
#[derive(Clone)]
pub(crate) struct Capture {
    inner: Arc<Mutex<Buffer>>,
}

struct Buffer {
    bytes: BytesMut,
    cap: usize,
    overflowed: bool,
}

impl Capture {
    pub(crate) fn new(cap: usize) -> Capture {
        Capture {
            inner: Arc::new(Mutex::new(Buffer {
                bytes: BytesMut::new(),
                cap,
                overflowed: false,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // A panic while holding this lock cannot leave the buffer inconsistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn append(&self, data: &[u8]) {
        let mut buf = self.lock();
        let room = buf.cap.saturating_sub(buf.bytes.len());
        if data.len() > room {
            buf.overflowed = true;
        }
        let take = data.len().min(room);
        buf.bytes.extend_from_slice(&data[..take]);
    }

    /// Takes what was written so far.
    pub(crate) fn take(&self) -> Bytes {
        std::mem::take(&mut self.lock().bytes).freeze()
    }

    /// Whether anything was dropped for being past the cap.
    pub(crate) fn overflowed(&self) -> bool {
        self.lock().overflowed
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for Capture {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_cap_and_flags_the_rest() {
        let c = Capture::new(5);
        c.append(b"abc");
        assert!(!c.overflowed());
        c.append(b"defg");
        assert!(c.overflowed());
        assert_eq!(c.take(), "abcde");
    }
}

//! An instance's stdout and stderr: read while it runs, kept up to a cap per
//! invocation, and handed over as that invocation's logs.
//!
//! Output is read only while Wisp waits on the instance (its start-up and each
//! invocation); what it writes while idle waits in the pipe and is counted to the
//! next invocation. When a runtime answers, whatever it wrote before answering is
//! already in the pipe: [`Pipes::drain_now`] reads it without waiting.

use crate::invocation::Logs;
use bytes::{Bytes, BytesMut};
use std::io;
use tokio::net::unix::pipe;
use tokio::process::{ChildStderr, ChildStdout};

pub(crate) struct Pipes {
    stdout: Option<pipe::Receiver>,
    stderr: Option<pipe::Receiver>,
    out: BytesMut,
    err: BytesMut,
    cap: usize,
    truncated: bool,
}

impl Pipes {
    pub(crate) fn new(stdout: ChildStdout, stderr: ChildStderr, cap: usize) -> io::Result<Pipes> {
        Ok(Pipes {
            stdout: Some(pipe::Receiver::from_owned_fd(stdout.into_owned_fd()?)?),
            stderr: Some(pipe::Receiver::from_owned_fd(stderr.into_owned_fd()?)?),
            out: BytesMut::new(),
            err: BytesMut::new(),
            cap,
            truncated: false,
        })
    }

    /// Reads both pipes as output arrives. Never returns: run it in a `select!`
    /// beside what is awaited.
    pub(crate) async fn pump(&mut self) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let ready = tokio::select! {
                r = readable(&self.stdout) => (r, true),
                r = readable(&self.stderr) => (r, false),
            };
            if let (Err(_), is_out) = ready {
                *self.side(is_out) = None;
                continue;
            }
            self.read_available(ready.1, &mut buf);
        }
    }

    /// Reads what is in the pipes now, without waiting.
    pub(crate) fn drain_now(&mut self) {
        let mut buf = vec![0u8; 16 * 1024];
        self.read_available(true, &mut buf);
        self.read_available(false, &mut buf);
    }

    fn side(&mut self, is_out: bool) -> &mut Option<pipe::Receiver> {
        if is_out {
            &mut self.stdout
        } else {
            &mut self.stderr
        }
    }

    fn read_available(&mut self, is_out: bool, buf: &mut [u8]) {
        loop {
            let Some(receiver) = self.side(is_out).as_ref() else {
                return;
            };
            match receiver.try_read(buf) {
                Ok(0) => {
                    *self.side(is_out) = None;
                    return;
                }
                Ok(n) => self.keep(is_out, n, buf),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    *self.side(is_out) = None;
                    return;
                }
            }
        }
    }

    fn keep(&mut self, is_out: bool, n: usize, buf: &[u8]) {
        let used = self.out.len() + self.err.len();
        let room = self.cap.saturating_sub(used);
        if n > room {
            self.truncated = true;
        }
        let target = if is_out { &mut self.out } else { &mut self.err };
        target.extend_from_slice(&buf[..n.min(room)]);
    }

    /// Takes what was captured since the last call.
    pub(crate) fn take(&mut self) -> Logs {
        let logs = Logs {
            stdout: Bytes::from(std::mem::take(&mut self.out)),
            stderr: Bytes::from(std::mem::take(&mut self.err)),
            truncated: self.truncated,
        };
        self.truncated = false;
        logs
    }
}

/// Waits until `receiver` can be read; forever when it is closed.
async fn readable(receiver: &Option<pipe::Receiver>) -> io::Result<()> {
    match receiver {
        Some(r) => r.readable().await,
        None => std::future::pending().await,
    }
}

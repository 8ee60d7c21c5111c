//! The guest's side: invocations of kv-kit's bench route
//! (`GET …/kv/{store}/{key}/bench?op=get|set&n=N`, see `tests/fixtures/kv-kit/src/lib.rs`),
//! each worker on its own keep-alive HTTP/1.1 connection (what wrk does with `-c`). Every
//! answer is checked: status 200 and `{"n": N, "found": N}` (each get found the key, each
//! set was made).

use crate::Op;
use crate::load::{self, Rate, Tally, Window};
use anyhow::{Context as _, Result, bail, ensure};
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Instant;

/// Where the route is.
pub struct Guest {
    /// `HOST:PORT`.
    authority: String,
    /// `/kv/{store}/{key}`.
    path: String,
    /// Bytes of the value a set writes.
    bytes: usize,
}

impl Guest {
    pub fn new(addr: &str, store: &str, key: &str, bytes: usize) -> Guest {
        Guest {
            authority: addr
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            path: format!("/kv/{store}/{key}"),
            bytes,
        }
    }

    /// One invocation making `n` calls, on a connection of its own; checked.
    pub async fn once(&self, op: Op, n: usize) -> Result<()> {
        let mut conn = self.connect().await?;
        self.invoke(&mut conn, &self.uri(op, n), n).await
    }

    /// Invocations per second at [`load::CONCURRENCY`], each making `n` calls.
    pub async fn rate(self: &Arc<Self>, op: Op, n: usize, seconds: f64) -> Result<Rate> {
        let uri: Arc<str> = self.uri(op, n).into();
        load::measure(seconds, |_, window| worker(self.clone(), uri.clone(), n, window)).await
    }

    fn uri(&self, op: Op, n: usize) -> String {
        format!("{}/bench?op={op}&n={n}&bytes={}", self.path, self.bytes)
    }

    /// Opens one HTTP/1.1 connection (`TCP_NODELAY`, as the server sets it).
    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("failed to connect to {}", self.authority))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // A broken connection shows up as the error of the request that was on it.
            let _ = connection.await;
        });
        Ok(sender)
    }

    async fn invoke(&self, conn: &mut SendRequest<Empty<Bytes>>, uri: &str, n: usize) -> Result<()> {
        let request = Request::get(uri)
            .header(header::HOST, &self.authority)
            .body(Empty::new())?;
        conn.ready().await?;
        let response = conn.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if status != StatusCode::OK {
            bail!("GET {uri} answered {status}: {}", String::from_utf8_lossy(&body));
        }
        let answer: serde_json::Value = serde_json::from_slice(&body)
            .with_context(|| format!("GET {uri}: not JSON: {}", String::from_utf8_lossy(&body)))?;
        let expected = serde_json::json!({"n": n, "found": n});
        ensure!(
            answer == expected,
            "GET {uri} answered {answer}, expected {expected}"
        );
        Ok(())
    }
}

async fn worker(guest: Arc<Guest>, uri: Arc<str>, n: usize, window: Window) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut conn = guest.connect().await?;
    while window.open() {
        let sent = Instant::now();
        guest.invoke(&mut conn, &uri, n).await?;
        tally.record(&window, sent);
    }
    Ok(tally)
}

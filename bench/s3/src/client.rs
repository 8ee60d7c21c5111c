//! The HTTP/1.1 side of the load client: one keep-alive connection per worker (what wrk
//! does with `-c`), signed path-style requests, bodies that are counted, not kept.

use crate::sigv4::{self, Signer};
use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Where the server is and who we are.
#[derive(Clone)]
pub struct Endpoint {
    /// `127.0.0.1:9000`: what we connect to and send as `Host`.
    pub authority: String,
    pub access_key: String,
    pub secret: String,
}

impl Endpoint {
    /// `endpoint` is `http://HOST:PORT[/]` or `HOST:PORT`.
    pub fn new(endpoint: &str, access_key: &str, secret: &str) -> Result<Self> {
        let authority = endpoint
            .strip_prefix("http://")
            .unwrap_or(endpoint)
            .trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || endpoint.starts_with("https://") {
            bail!("invalid endpoint `{endpoint}`: expected http://HOST:PORT");
        }
        Ok(Self {
            authority: authority.to_owned(),
            access_key: access_key.to_owned(),
            secret: secret.to_owned(),
        })
    }

    pub fn signer(&self) -> Signer {
        Signer::new(&self.access_key, &self.secret)
    }

    /// Opens one HTTP/1.1 connection (`TCP_NODELAY`, as the servers set it).
    pub async fn connect<B>(&self) -> Result<SendRequest<B>>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
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

    /// A signed request for `/{bucket}` or `/{bucket}/{key}` with `UNSIGNED-PAYLOAD`.
    pub fn request<B: Body>(
        &self,
        signer: &mut Signer,
        method: Method,
        path: &str,
        body: B,
    ) -> Result<Request<B>> {
        let amz_date = sigv4::amz_date();
        let authorization = signer.authorization(&sigv4::Request {
            method: method.as_str(),
            host: &self.authority,
            path,
            query: &[],
            payload_hash: sigv4::UNSIGNED_PAYLOAD,
            amz_date: &amz_date,
        });
        let send_length = method == Method::PUT;
        let mut builder = Request::builder()
            .method(method)
            .uri(sigv4::encode_path(path))
            .header(header::HOST, &self.authority)
            .header("x-amz-date", amz_date)
            .header("x-amz-content-sha256", sigv4::UNSIGNED_PAYLOAD)
            .header(header::AUTHORIZATION, authorization);
        if let Some(length) = body.size_hint().exact()
            && (length > 0 || send_length)
        {
            builder = builder.header(header::CONTENT_LENGTH, length);
        }
        Ok(builder.body(body)?)
    }

    /// Creates `bucket` unless it exists. A `409` (`BucketAlreadyOwnedByYou`, or
    /// `BucketAlreadyExists` from s3s-fs) after a `404` from `HEAD` means another client
    /// made it meanwhile: fine.
    pub async fn ensure_bucket(&self, bucket: &str) -> Result<()> {
        let mut signer = self.signer();
        let mut conn = self.connect::<Full>().await?;
        let path = format!("/{bucket}");
        let head = send(
            &mut conn,
            self.request(&mut signer, Method::HEAD, &path, Full::new(Bytes::new()))?,
        )
        .await?;
        let status = head.status();
        drain(head).await?;
        match status {
            StatusCode::OK => return Ok(()),
            StatusCode::NOT_FOUND => {}
            other => bail!("HEAD /{bucket} answered {other}"),
        }
        let put = send(
            &mut conn,
            self.request(&mut signer, Method::PUT, &path, Full::new(Bytes::new()))?,
        )
        .await?;
        match put.status() {
            StatusCode::OK | StatusCode::CONFLICT => {
                drain(put).await?;
                Ok(())
            }
            other => bail!("PUT /{bucket} answered {other}: {}", text(put).await),
        }
    }
}

/// Sends `request` once the connection can take it: on HTTP/1.1 that is after the last
/// response was read to its end *and* the connection task has seen so, which may be a
/// moment later (sending before fails with "connection was not ready").
pub async fn send<B>(conn: &mut SendRequest<B>, request: Request<B>) -> Result<Response<Incoming>>
where
    B: Body + 'static,
{
    conn.ready().await?;
    Ok(conn.send_request(request).await?)
}

/// Reads a response body to its end, keeping only its length.
pub async fn drain(response: Response<Incoming>) -> Result<u64> {
    let mut body = response.into_body();
    let mut length = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            length += data.len() as u64;
        }
    }
    Ok(length)
}

/// An error response's body (S3 XML), for messages; at most 1 KiB of it.
pub async fn text(response: Response<Incoming>) -> String {
    match response.into_body().collect().await {
        Ok(body) => {
            let bytes = body.to_bytes();
            String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).into_owned()
        }
        Err(err) => format!("(body unreadable: {err})"),
    }
}

/// A request body held in memory (a refcounted `Bytes`: cloning it per request is free).
pub type Full = http_body_util::Full<Bytes>;

/// A body of `remaining` bytes made by repeating `chunk`: an object of any size streamed
/// with no more than one chunk in memory.
pub struct Generated {
    chunk: Bytes,
    remaining: u64,
}

impl Generated {
    pub fn new(chunk: Bytes, length: u64) -> Self {
        Self {
            chunk,
            remaining: length,
        }
    }
}

impl Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 || self.chunk.is_empty() {
            return Poll::Ready(None);
        }
        let n = usize::try_from(self.remaining).map_or(self.chunk.len(), |r| r.min(self.chunk.len()));
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// `len` random bytes (incompressible, so no layer can shortcut them).
pub fn random_bytes(len: usize) -> Result<Bytes> {
    use ring::rand::SecureRandom as _;
    let mut buf = vec![0u8; len];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn generated_body_has_the_exact_length() {
        let body = Generated::new(Bytes::from_static(b"0123456789"), 25);
        assert_eq!(body.size_hint().exact(), Some(25));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"0123456789012345678901234");
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::new("http://127.0.0.1:9000/", "a", "s")
                .unwrap()
                .authority,
            "127.0.0.1:9000"
        );
        assert_eq!(
            Endpoint::new("127.0.0.1:9000", "a", "s").unwrap().authority,
            "127.0.0.1:9000"
        );
        assert!(Endpoint::new("https://127.0.0.1:9000", "a", "s").is_err());
        assert!(Endpoint::new("http://127.0.0.1:9000/bucket", "a", "s").is_err());
    }
}

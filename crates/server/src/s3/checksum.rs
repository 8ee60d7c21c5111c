//! The additional checksums a client sends with an upload (`x-amz-checksum-crc32`,
//! `…-crc32c`, `…-crc64nvme`, `…-sha1`, `…-sha256`), in a header or in the trailer of
//! an aws-chunked body: [`verify`] computes each one asked for while the body streams
//! into the engine and fails the body — so nothing is stored — when one differs.
//!
//! The engine keeps only the MD5 (the ETag), so the checksums are checked and
//! answered, not kept: reads do not return them.

use bytes::Bytes;
use futures::Stream;
use s3s::TrailingHeaders;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::Checksum as _;
use s3s::crypto::{Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::Checksum;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use wisp_engine::ByteStream;

const ALGORITHMS: [&str; 5] = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"];

/// The checksums an upload declares: values given in headers, and algorithms whose
/// values come later (named by `x-amz-sdk-checksum-algorithm` or `x-amz-trailer`).
#[derive(Default, Debug)]
pub(super) struct Declared {
    /// Per algorithm of [`ALGORITHMS`]: asked for, and the value if given.
    wanted: [bool; 5],
    given: [Option<String>; 5],
}

impl Declared {
    pub(super) fn from_headers(headers: &http::HeaderMap) -> Declared {
        let mut d = Declared::default();
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        for (i, algorithm) in ALGORITHMS.iter().enumerate() {
            if let Some(v) = text(&format!("x-amz-checksum-{algorithm}")) {
                d.wanted[i] = true;
                d.given[i] = Some(v.to_string());
            }
        }
        let named = [
            text("x-amz-sdk-checksum-algorithm"),
            text("x-amz-checksum-algorithm"),
        ];
        for name in named.into_iter().flatten() {
            if let Some(i) = ALGORITHMS.iter().position(|a| a.eq_ignore_ascii_case(name)) {
                d.wanted[i] = true;
            }
        }
        for trailer in text("x-amz-trailer").into_iter().flat_map(|t| t.split(',')) {
            let trailer = trailer.trim().to_ascii_lowercase();
            if let Some(i) = ALGORITHMS
                .iter()
                .position(|a| trailer.strip_prefix("x-amz-checksum-") == Some(a))
            {
                d.wanted[i] = true;
            }
        }
        d
    }

    fn any(&self) -> bool {
        self.wanted.iter().any(|w| *w)
    }

    fn hasher(&self) -> ChecksumHasher {
        ChecksumHasher {
            crc32: self.wanted[0].then(Crc32::new),
            crc32c: self.wanted[1].then(Crc32c::new),
            crc64nvme: self.wanted[2].then(Crc64Nvme::new),
            sha1: self.wanted[3].then(Sha1::new),
            sha256: self.wanted[4].then(Sha256::new),
        }
    }
}

/// What checking found, once the body ended: the checksums computed, or the first
/// that differs from what the client declared.
#[derive(Clone, Default)]
pub(super) struct Verdict(Arc<Mutex<Option<Result<Checksum, String>>>>);

impl Verdict {
    /// The checksums to answer with (none when none were asked for or the body did
    /// not end), or the mismatch (S3's `BadDigest`).
    pub(super) fn outcome(&self) -> Result<Checksum, s3s::S3Error> {
        match self.0.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            Some(Err(message)) => Err(s3s::S3Error::with_message(s3s::S3ErrorCode::BadDigest, message)),
            Some(Ok(checksum)) => Ok(checksum),
            None => Ok(Checksum::default()),
        }
    }
}

/// `body`, checked against what `declared` names; `trailers`: the aws-chunked body's
/// trailing headers, read when the body ends.
pub(super) fn verify(
    body: ByteStream,
    declared: Declared,
    trailers: Option<TrailingHeaders>,
) -> (ByteStream, Verdict) {
    let verdict = Verdict::default();
    if !declared.any() {
        return (body, verdict);
    }
    let hasher = Some(declared.hasher());
    let checked = Checked {
        body,
        hasher,
        declared,
        trailers,
        verdict: verdict.clone(),
    };
    (Box::pin(checked), verdict)
}

struct Checked {
    body: ByteStream,
    /// Taken when the body ends.
    hasher: Option<ChecksumHasher>,
    declared: Declared,
    trailers: Option<TrailingHeaders>,
    verdict: Verdict,
}

impl Checked {
    /// Compares what was computed with what was declared (a trailer's value wins over
    /// a header's, as it is the later word).
    fn judge(&mut self, computed: &Checksum) -> Result<(), String> {
        let mut expected = self.declared.given.clone();
        if let Some(trailers) = &self.trailers {
            trailers.read(|h| {
                for (i, algorithm) in ALGORITHMS.iter().enumerate() {
                    if let Some(v) = h
                        .get(format!("x-amz-checksum-{algorithm}"))
                        .and_then(|v| v.to_str().ok())
                    {
                        expected[i] = Some(v.trim().to_string());
                    }
                }
            });
        }
        let got = [
            &computed.checksum_crc32,
            &computed.checksum_crc32c,
            &computed.checksum_crc64nvme,
            &computed.checksum_sha1,
            &computed.checksum_sha256,
        ];
        for (i, algorithm) in ALGORITHMS.iter().enumerate() {
            if let Some(want) = &expected[i]
                && got[i].as_deref() != Some(want.as_str())
            {
                return Err(format!(
                    "the {} checksum you specified ({want}) did not match the body's ({})",
                    algorithm.to_ascii_uppercase(),
                    got[i].as_deref().unwrap_or("not computed")
                ));
            }
        }
        Ok(())
    }
}

impl Stream for Checked {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.body.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                if let Some(h) = &mut this.hasher {
                    h.update(&bytes);
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(None) => {
                let Some(hasher) = this.hasher.take() else {
                    return Poll::Ready(None);
                };
                let computed = hasher.finalize();
                let judged = this.judge(&computed);
                let failed = judged.as_ref().err().cloned();
                *this.verdict.0.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(judged.map(|()| computed));
                match failed {
                    Some(message) => Poll::Ready(Some(Err(std::io::Error::other(message)))),
                    None => Poll::Ready(None),
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn body(parts: &[&'static [u8]]) -> ByteStream {
        Box::pin(futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        ))
    }

    async fn drain(mut s: ByteStream) -> Result<Vec<u8>, std::io::Error> {
        let mut all = Vec::new();
        while let Some(chunk) = s.next().await {
            all.extend_from_slice(&chunk?);
        }
        Ok(all)
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[tokio::test]
    async fn matching_checksums_pass_and_are_answered() {
        // CRC32 of "hello world" is 0x0d4a1185.
        let declared = Declared::from_headers(&headers(&[("x-amz-checksum-crc32", "DUoRhQ==")]));
        let (s, verdict) = verify(body(&[b"hello ", b"world"]), declared, None);
        assert_eq!(drain(s).await.ok().as_deref(), Some(&b"hello world"[..]));
        let checksum = verdict.outcome().ok().unwrap_or_default();
        assert_eq!(checksum.checksum_crc32.as_deref(), Some("DUoRhQ=="));
        assert!(checksum.checksum_sha256.is_none());
    }

    #[tokio::test]
    async fn a_wrong_checksum_fails_the_body() {
        let declared = Declared::from_headers(&headers(&[("x-amz-checksum-crc32", "AAAAAA==")]));
        let (s, verdict) = verify(body(&[b"hello world"]), declared, None);
        assert!(drain(s).await.is_err());
        let e = verdict.outcome().err().map(|e| e.code().as_str().to_string());
        assert_eq!(e.as_deref(), Some("BadDigest"));
    }

    #[tokio::test]
    async fn a_named_algorithm_without_a_value_is_computed_not_checked() {
        let declared = Declared::from_headers(&headers(&[
            ("x-amz-sdk-checksum-algorithm", "SHA256"),
            ("x-amz-trailer", "x-amz-checksum-crc32c"),
        ]));
        assert_eq!(declared.wanted, [false, true, false, false, true]);
        let (s, verdict) = verify(body(&[b"abc"]), declared, None);
        assert!(drain(s).await.is_ok());
        let checksum = verdict.outcome().ok().unwrap_or_default();
        assert_eq!(
            checksum.checksum_sha256.as_deref(),
            Some("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=")
        );
        assert!(checksum.checksum_crc32c.is_some());
    }

    #[tokio::test]
    async fn nothing_declared_passes_the_body_through() {
        let (s, verdict) = verify(body(&[b"x"]), Declared::default(), None);
        assert!(drain(s).await.is_ok());
        assert!(verdict.outcome().ok().is_some_and(|c| c.checksum_crc32.is_none()));
    }
}

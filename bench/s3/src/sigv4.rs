//! AWS Signature Version 4 for the benchmark's requests: service `s3`, region `us-east-1`,
//! path-style URLs, the signed headers `host;x-amz-content-sha256;x-amz-date` and nothing
//! else. The load client sends `x-amz-content-sha256: UNSIGNED-PAYLOAD`, so a request's
//! body is never hashed: what is measured is the server, not the client hashing 1 MiB.
//!
//! HMAC-SHA256 and SHA-256 come from `ring`. The signing key depends only on the secret
//! and the day, so a [`Signer`] keeps the last one and derives a new one when the date
//! changes (four HMACs saved per request).

use ring::{digest, hmac};

/// The payload hash that tells the server the body is not part of the signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

const REGION: &str = "us-east-1";
const SERVICE: &str = "s3";
const SIGNED_HEADERS: &str = "host;x-amz-content-sha256;x-amz-date";

/// One request to sign. `path` is the decoded path (`/bucket/key`); it is URI-encoded
/// here, as it must be on the wire (see [`encode_path`]).
pub struct Request<'a> {
    pub method: &'a str,
    /// The `Host` header as sent: `127.0.0.1:9000`.
    pub host: &'a str,
    pub path: &'a str,
    /// Decoded query parameters, in any order.
    pub query: &'a [(&'a str, &'a str)],
    /// The `x-amz-content-sha256` header as sent: [`UNSIGNED_PAYLOAD`] or a hex SHA-256.
    pub payload_hash: &'a str,
    /// The `x-amz-date` header as sent: `20130524T000000Z` (see [`amz_date`]).
    pub amz_date: &'a str,
}

/// Signs requests with one access key.
pub struct Signer {
    access_key: String,
    secret: String,
    /// The day (`YYYYMMDD`) and the signing key derived for it.
    key: Option<(String, hmac::Key)>,
}

impl Signer {
    pub fn new(access_key: &str, secret: &str) -> Self {
        Self {
            access_key: access_key.to_owned(),
            secret: secret.to_owned(),
            key: None,
        }
    }

    /// The `Authorization` header value for `request`.
    pub fn authorization(&mut self, request: &Request<'_>) -> String {
        let day = request.amz_date.get(..8).unwrap_or(request.amz_date);
        let canonical = canonical_request(request);
        let scope = format!("{day}/{REGION}/{SERVICE}/aws4_request");
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
            request.amz_date,
            hex::encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
        );
        let signature = hex::encode(hmac::sign(self.signing_key(day), string_to_sign.as_bytes()));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope},SignedHeaders={SIGNED_HEADERS},Signature={signature}",
            self.access_key
        )
    }

    fn signing_key(&mut self, day: &str) -> &hmac::Key {
        let current = match self.key.take() {
            Some((cached, key)) if cached == day => (cached, key),
            _ => (day.to_owned(), derive_signing_key(&self.secret, day)),
        };
        &self.key.insert(current).1
    }
}

fn derive_signing_key(secret: &str, day: &str) -> hmac::Key {
    let step = |key: &[u8], data: &str| hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes());
    let k_date = step(format!("AWS4{secret}").as_bytes(), day);
    let k_region = step(k_date.as_ref(), REGION);
    let k_service = step(k_region.as_ref(), SERVICE);
    let k_signing = step(k_service.as_ref(), "aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

fn canonical_request(request: &Request<'_>) -> String {
    let mut query: Vec<(String, String)> = request
        .query
        .iter()
        .map(|(k, v)| (encode(k, true), encode(v, true)))
        .collect();
    query.sort();
    let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}\n{}\n{}\nhost:{}\nx-amz-content-sha256:{}\nx-amz-date:{}\n\n{SIGNED_HEADERS}\n{}",
        request.method,
        encode_path(request.path),
        query.join("&"),
        request.host.trim(),
        request.payload_hash,
        request.amz_date,
        request.payload_hash,
    )
}

/// The path as sent and as signed: every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`)
/// and `/` percent-encoded. S3 encodes the path once (other AWS services twice).
pub fn encode_path(path: &str) -> String {
    encode(path, false)
}

fn encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (b == b'/' && !encode_slash)
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `x-amz-date` value for now: `YYYYMMDDTHHMMSSZ` in UTC.
pub fn amz_date() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The examples of AWS's "Signature Calculations for the Authorization Header:
    // Transferring Payload in a Single Chunk" (Amazon S3 API reference,
    // sig-v4-header-based-auth.html): the two that sign exactly
    // `host;x-amz-content-sha256;x-amz-date`, with the documented canonical requests
    // and signatures.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn example<'a>(query: &'a [(&'a str, &'a str)]) -> Request<'a> {
        Request {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/",
            query,
            payload_hash: EMPTY_SHA256,
            amz_date: "20130524T000000Z",
        }
    }

    fn signature(authorization: &str) -> &str {
        authorization.rsplit("Signature=").next().unwrap()
    }

    #[test]
    fn aws_example_get_bucket_lifecycle() {
        let request = example(&[("lifecycle", "")]);
        assert_eq!(
            canonical_request(&request),
            "GET\n/\nlifecycle=\nhost:examplebucket.s3.amazonaws.com\n\
             x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let authorization = Signer::new("AKIAIOSFODNN7EXAMPLE", SECRET).authorization(&request);
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;x-amz-content-sha256;x-amz-date,\
             Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
    }

    #[test]
    fn aws_example_list_objects() {
        // Out of order on purpose: the canonical query string is sorted.
        let request = example(&[("prefix", "J"), ("max-keys", "2")]);
        let mut signer = Signer::new("AKIAIOSFODNN7EXAMPLE", SECRET);
        assert_eq!(
            signature(&signer.authorization(&request)),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
        // The cached signing key gives the same answer.
        assert_eq!(
            signature(&signer.authorization(&request)),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn signing_key_follows_the_date() {
        let mut signer = Signer::new("AKIAIOSFODNN7EXAMPLE", SECRET);
        let mut request = example(&[("lifecycle", "")]);
        request.amz_date = "20130525T000000Z";
        let next_day = signer.authorization(&request);
        assert!(next_day.contains("/20130525/us-east-1/s3/aws4_request"));
        request.amz_date = "20130524T000000Z";
        assert_eq!(
            signature(&signer.authorization(&request)),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
    }

    #[test]
    fn path_encoding() {
        assert_eq!(
            encode_path("/bucket/a b/c$d~e_f.g-h"),
            "/bucket/a%20b/c%24d~e_f.g-h"
        );
        assert_eq!(encode_path("/b/\u{1234}"), "/b/%E1%88%B4");
        assert_eq!(encode("a/b=c", true), "a%2Fb%3Dc");
    }

    #[test]
    fn amz_date_shape() {
        let date = amz_date();
        assert_eq!(date.len(), 16);
        assert_eq!(&date[8..9], "T");
        assert!(date.ends_with('Z'));
    }
}

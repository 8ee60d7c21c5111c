//! AWS Signature Version 4 verification, so the AWS CLI, boto3 and the other AWS SDKs
//! can call Wisp's Lambda-compatible paths with a Wisp API key as their credentials:
//! the key's id (`WK…`) as the access key id, its secret as the secret access key.
//!
//! This module owns the verifier and nothing else: it does no I/O and knows no keys.
//! The auth layer calls [`is_sigv4`] to pick this scheme, buffers the body (a Lambda
//! payload is at most 6 MiB), and calls [`verify`] with a lookup from access key id to
//! secret; on success it gets the [`Credential`] back and decides what the key may do.
//! [`SigV4Error::aws_error_type`] names the exception AWS answers each refusal with.
//!
//! # What is checked
//!
//! The canonical request is rebuilt as AWS (and botocore) build it for every service
//! but S3: the path as it came on the wire is normalised (`.`/`..` and empty segments
//! removed) and percent-encoded once more, so `hello%3Alive` is signed as
//! `hello%253Alive`; the query is decoded, re-encoded per RFC 3986 and sorted; each
//! signed header's values are trimmed, inner whitespace runs collapsed, and joined with
//! `,`. The payload hash is `x-amz-content-sha256` when the client sent it (its value is
//! then checked against the body unless it is `UNSIGNED-PAYLOAD`, which leaves the body
//! unsigned, as AWS allows), else the body's SHA-256. The request time (`X-Amz-Date`,
//! else `Date`) must be within [`MAX_SKEW`] of the server's, the credential scope's
//! date must be its date, `host` must be signed, and the scope's service must be
//! `lambda`. Any region is accepted: a Wisp server is one region, whatever the client
//! is configured with. Signatures are compared in constant time.
//!
//! Not supported: presigned URLs (`X-Amz-Signature` in the query), chunked payload
//! signing (`STREAMING-…`) and session tokens (an `x-amz-security-token` is only one
//! more signed header).

use chrono::{DateTime, NaiveDateTime, Utc};
use http::HeaderMap;
use http::header::{AUTHORIZATION, DATE};
use http::request::Parts;
use percent_encoding::percent_decode_str;
use ring::{digest, hmac};
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;

/// The only algorithm SigV4 defines, and the scheme of its `Authorization` header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The service the Lambda-compatible paths must be signed for.
pub const LAMBDA: &str = "lambda";

/// How far the request time may be from the server's: AWS's limit.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

const AMZ_DATE: &str = "x-amz-date";
const CONTENT_SHA256: &str = "x-amz-content-sha256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// `X-Amz-Date`'s form, and the request time's in the string to sign.
const ISO8601_BASIC: &str = "%Y%m%dT%H%M%SZ";
const EXPECTED_FORM: &str = "`AWS4-HMAC-SHA256 Credential=KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request, \
     SignedHeaders=host;x-amz-date, Signature=HEX`";

/// What a request's `Authorization: AWS4-HMAC-SHA256 …` header claims: its
/// credential scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// A Wisp API key id, such as `WKABCDEFGHIJKLMNOP`.
    pub access_key_id: String,
    /// The scope's date, `YYYYMMDD`.
    pub date: String,
    /// Whatever region the client was configured with.
    pub region: String,
    pub service: String,
}

/// Why a SigV4 request was refused. No message holds the secret or the signature the
/// server expected.
#[derive(Debug, thiserror::Error)]
pub enum SigV4Error {
    #[error("the request has no `Authorization: AWS4-HMAC-SHA256 …` header")]
    NotSigV4,
    #[error("malformed SigV4 Authorization header: {0}; expected {EXPECTED_FORM}")]
    MalformedAuthorization(String),
    #[error("the request has no `X-Amz-Date` (or `Date`) header: SigV4 signs the request time")]
    MissingDate,
    #[error("invalid `{header}` header `{value}`: expected {expected}")]
    InvalidHeader {
        header: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "the credential is scoped to date `{scope}`, but the request time is `{request_time}`: the two must agree"
    )]
    ScopeDateMismatch { scope: String, request_time: String },
    #[error("the credential is scoped to service `{got}`: sign the request for service `{expected}`")]
    WrongService { expected: String, got: String },
    #[error(
        "signature expired: the request time `{request_time}` is more than {} minutes from the server's time `{server_time}`; check the client's clock",
        MAX_SKEW.as_secs() / 60
    )]
    RequestTimeTooSkewed {
        request_time: String,
        server_time: String,
    },
    #[error("`host` is not among the signed headers (`SignedHeaders={signed_headers}`): SigV4 requires it")]
    HostNotSigned { signed_headers: String },
    #[error("signed header `{0}` is not in the request: was it removed on the way?")]
    SignedHeaderMissing(String),
    #[error("unknown access key id `{0}`: use a Wisp API key's id (`WK…`) as the AWS access key id")]
    UnknownAccessKey(String),
    #[error(
        "signature mismatch: the request was not signed with the secret of `{access_key_id}`, or was changed after signing (check the secret access key, and that no proxy rewrites the path, query or signed headers); the canonical request the server built is:\n{canonical_request}"
    )]
    SignatureMismatch {
        access_key_id: String,
        canonical_request: String,
    },
    #[error(
        "the body was changed after signing: `x-amz-content-sha256` is `{claimed}`, but the body's SHA-256 is `{actual}`"
    )]
    BodyHashMismatch { claimed: String, actual: String },
    #[error("`x-amz-content-sha256: {0}` (chunked payload signing) is not supported: sign the whole body")]
    UnsupportedPayload(String),
}

impl SigV4Error {
    /// The exception AWS answers this refusal with (Lambda's `x-amzn-ErrorType`),
    /// so SDKs report it as they would AWS's.
    pub fn aws_error_type(&self) -> &'static str {
        match self {
            SigV4Error::NotSigV4 => "MissingAuthenticationTokenException",
            SigV4Error::MalformedAuthorization(_)
            | SigV4Error::MissingDate
            | SigV4Error::InvalidHeader { .. }
            | SigV4Error::HostNotSigned { .. }
            | SigV4Error::SignedHeaderMissing(_)
            | SigV4Error::UnsupportedPayload(_) => "IncompleteSignatureException",
            SigV4Error::UnknownAccessKey(_) => "UnrecognizedClientException",
            SigV4Error::ScopeDateMismatch { .. }
            | SigV4Error::WrongService { .. }
            | SigV4Error::RequestTimeTooSkewed { .. }
            | SigV4Error::SignatureMismatch { .. }
            | SigV4Error::BodyHashMismatch { .. } => "InvalidSignatureException",
        }
    }
}

/// Whether the request claims SigV4 header authentication (`Authorization:
/// AWS4-HMAC-SHA256 …`), rather than another scheme such as `Bearer`.
pub fn is_sigv4(headers: &HeaderMap) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(ALGORITHM))
        .is_some_and(|rest| rest.starts_with(' '))
}

/// Verifies a request to a Lambda-compatible path: `parts` and its whole `body`,
/// signed for service `lambda` in any region, against the secret `secret_of` returns
/// for the credential's access key id (`None`: no such key). `now` is the server's
/// time. Returns the verified credential.
///
/// `secret_of` is called at most once, after the header has parsed and the request
/// time has passed, so a malformed or stale request costs no lookup. The secret is
/// any bytes (`String`, `Vec<u8>`, a zeroising wrapper): the caller's type, so this
/// module need not own how secrets are held.
pub fn verify<S: AsRef<[u8]>>(
    parts: &Parts,
    body: &[u8],
    now: SystemTime,
    secret_of: impl FnOnce(&Credential) -> Option<S>,
) -> Result<Credential, SigV4Error> {
    verify_for(LAMBDA, parts, body, now, secret_of)
}

/// [`verify`] for requests signed for `service` (AWS's test vectors use `service`).
pub fn verify_for<S: AsRef<[u8]>>(
    service: &str,
    parts: &Parts,
    body: &[u8],
    now: SystemTime,
    secret_of: impl FnOnce(&Credential) -> Option<S>,
) -> Result<Credential, SigV4Error> {
    let authorization = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(SigV4Error::NotSigV4)?
        .to_str()
        .map_err(|_| SigV4Error::MalformedAuthorization("it is not ASCII".to_string()))?;
    let auth = Authorization::parse(authorization)?;
    let credential = auth.credential;

    let (request_time, at) = request_time(&parts.headers)?;
    let server_time = DateTime::<Utc>::from(now);
    let skew = (server_time - at).abs();
    if skew.to_std().unwrap_or(Duration::MAX) > MAX_SKEW {
        return Err(SigV4Error::RequestTimeTooSkewed {
            request_time,
            server_time: server_time.format(ISO8601_BASIC).to_string(),
        });
    }
    if request_time.get(..8) != Some(credential.date.as_str()) {
        return Err(SigV4Error::ScopeDateMismatch {
            scope: credential.date,
            request_time,
        });
    }
    if credential.service != service {
        return Err(SigV4Error::WrongService {
            expected: service.to_string(),
            got: credential.service,
        });
    }
    if !auth.signed_headers.split(';').any(|name| name == "host") {
        return Err(SigV4Error::HostNotSigned {
            signed_headers: auth.signed_headers.to_string(),
        });
    }

    let payload = Payload::of(&parts.headers)?;
    let body_hash = match &payload {
        Payload::Unsigned => None,
        Payload::Claimed(_) | Payload::Body => Some(hex::encode(digest::digest(&digest::SHA256, body))),
    };
    let payload_hash = match (&payload, &body_hash) {
        (Payload::Claimed(claimed), _) => claimed.as_str(),
        (Payload::Body, Some(hash)) => hash.as_str(),
        _ => UNSIGNED_PAYLOAD,
    };
    let canonical = canonical_request(parts, auth.signed_headers, payload_hash)?;

    let Some(secret) = secret_of(&credential) else {
        return Err(SigV4Error::UnknownAccessKey(credential.access_key_id));
    };
    let expected = signature(secret.as_ref(), &credential, &request_time, &canonical);
    if !bool::from(expected.as_ref().ct_eq(&auth.signature)) {
        return Err(SigV4Error::SignatureMismatch {
            access_key_id: credential.access_key_id,
            canonical_request: String::from_utf8_lossy(&canonical).into_owned(),
        });
    }
    // Checked after the signature: the hash the client claims is what it signed, so
    // a mismatch here means the body changed on the way.
    if let (Payload::Claimed(claimed), Some(actual)) = (payload, body_hash)
        && !claimed.eq_ignore_ascii_case(&actual)
    {
        return Err(SigV4Error::BodyHashMismatch { claimed, actual });
    }
    Ok(credential)
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug)]
struct Authorization<'a> {
    credential: Credential,
    /// As sent: it is part of the canonical request verbatim.
    signed_headers: &'a str,
    signature: [u8; 32],
}

impl<'a> Authorization<'a> {
    fn parse(header: &'a str) -> Result<Authorization<'a>, SigV4Error> {
        let rest = header
            .strip_prefix(ALGORITHM)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or(SigV4Error::NotSigV4)?;
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for component in rest.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let Some((name, value)) = component.split_once('=') else {
                return Err(SigV4Error::MalformedAuthorization(format!(
                    "`{component}` is not NAME=VALUE"
                )));
            };
            match name.trim() {
                "Credential" => credential = Some(value.trim()),
                "SignedHeaders" => signed_headers = Some(value.trim()),
                "Signature" => signature = Some(value.trim()),
                _ => {}
            }
        }
        let missing: Vec<&str> = [
            ("Credential=", credential.is_none()),
            ("SignedHeaders=", signed_headers.is_none()),
            ("Signature=", signature.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, missing)| missing.then_some(name))
        .collect();
        let (Some(credential), Some(signed_headers), Some(signature)) =
            (credential, signed_headers, signature)
        else {
            return Err(SigV4Error::MalformedAuthorization(format!(
                "missing `{}`",
                missing.join("`, `")
            )));
        };

        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, terminator] = scope[..] else {
            return Err(SigV4Error::MalformedAuthorization(format!(
                "credential `{credential}` has {} parts, not 5 (KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request)",
                scope.len()
            )));
        };
        if access_key_id.is_empty() || region.is_empty() || service.is_empty() {
            return Err(SigV4Error::MalformedAuthorization(format!(
                "credential `{credential}` has an empty access key id, region or service"
            )));
        }
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SigV4Error::MalformedAuthorization(format!(
                "credential `{credential}` has date `{date}`, not YYYYMMDD"
            )));
        }
        if terminator != "aws4_request" {
            return Err(SigV4Error::MalformedAuthorization(format!(
                "credential `{credential}` ends in `{terminator}`, not `aws4_request`"
            )));
        }
        if signed_headers.split(';').any(|name| {
            name.is_empty()
                || name
                    .bytes()
                    .any(|b| b.is_ascii_uppercase() || b.is_ascii_whitespace())
        }) {
            return Err(SigV4Error::MalformedAuthorization(format!(
                "`SignedHeaders={signed_headers}` must be lowercase header names separated by `;`"
            )));
        }
        let mut bytes = [0u8; 32];
        if hex::decode_to_slice(signature, &mut bytes).is_err() {
            return Err(SigV4Error::MalformedAuthorization(format!(
                "`Signature={signature}` is not 64 hexadecimal digits"
            )));
        }
        Ok(Authorization {
            credential: Credential {
                access_key_id: access_key_id.to_string(),
                date: date.to_string(),
                region: region.to_string(),
                service: service.to_string(),
            },
            signed_headers,
            signature: bytes,
        })
    }
}

/// The request time, as the string to sign carries it (`YYYYMMDDTHHMMSSZ`) and as
/// an instant: from `X-Amz-Date`, else from `Date` (an HTTP date).
fn request_time(headers: &HeaderMap) -> Result<(String, DateTime<Utc>), SigV4Error> {
    if let Some(value) = headers.get(AMZ_DATE) {
        let invalid = || SigV4Error::InvalidHeader {
            header: "X-Amz-Date",
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            expected: "UTC in the form YYYYMMDDTHHMMSSZ, such as `20260314T150926Z`",
        };
        let text = value.to_str().map_err(|_| invalid())?;
        if text.len() != 16 {
            return Err(invalid());
        }
        let at = NaiveDateTime::parse_from_str(text, ISO8601_BASIC).map_err(|_| invalid())?;
        return Ok((text.to_string(), at.and_utc()));
    }
    let value = headers.get(DATE).ok_or(SigV4Error::MissingDate)?;
    let invalid = || SigV4Error::InvalidHeader {
        header: "Date",
        value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        expected: "an HTTP date, such as `Sat, 14 Mar 2026 15:09:26 GMT`",
    };
    let text = value.to_str().map_err(|_| invalid())?;
    let at = DateTime::parse_from_rfc2822(text)
        .map_err(|_| invalid())?
        .with_timezone(&Utc);
    Ok((at.format(ISO8601_BASIC).to_string(), at))
}

/// Where the canonical request's payload hash comes from.
enum Payload {
    /// `x-amz-content-sha256` names the body's hash: it must match the body.
    Claimed(String),
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD`: the body is not signed.
    Unsigned,
    /// No `x-amz-content-sha256`: the body's hash.
    Body,
}

impl Payload {
    fn of(headers: &HeaderMap) -> Result<Payload, SigV4Error> {
        let Some(value) = headers.get(CONTENT_SHA256) else {
            return Ok(Payload::Body);
        };
        let text = value.to_str().unwrap_or_default();
        if text == UNSIGNED_PAYLOAD {
            Ok(Payload::Unsigned)
        } else if text.starts_with("STREAMING-") {
            Err(SigV4Error::UnsupportedPayload(text.to_string()))
        } else if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Payload::Claimed(text.to_string()))
        } else {
            Err(SigV4Error::InvalidHeader {
                header: "x-amz-content-sha256",
                value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
                expected: "the body's SHA-256 in hexadecimal, or `UNSIGNED-PAYLOAD`",
            })
        }
    }
}

/// The canonical request, in bytes: a signed header's value may be any bytes.
fn canonical_request(parts: &Parts, signed_headers: &str, payload_hash: &str) -> Result<Vec<u8>, SigV4Error> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_path(parts.uri.path()).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(parts.uri.query().unwrap_or("")).as_bytes());
    out.push(b'\n');
    for name in signed_headers.split(';') {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let mut values = parts.headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            // HTTP/2 carries the host as `:authority`, which hyper puts in the URI.
            match parts.uri.authority() {
                Some(authority) if name == "host" => out.extend_from_slice(authority.as_str().as_bytes()),
                _ => return Err(SigV4Error::SignedHeaderMissing(name.to_string())),
            }
        }
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            trim_all(value.as_bytes(), &mut out);
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    Ok(out)
}

/// Appends `value` without leading or trailing whitespace, each inner run of it one
/// space (AWS's Trimall; botocore's `' '.join(value.split())`).
fn trim_all(value: &[u8], out: &mut Vec<u8>) {
    for (i, word) in value
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(word);
    }
}

/// The canonical path of every service but S3, from the path as sent (still
/// percent-encoded): dot segments and empty segments removed, then each segment
/// percent-encoded again, so `%3A` becomes `%253A` (botocore's `_normalize_url_path`).
fn canonical_path(raw: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in raw.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(raw.len() + 16);
    for segment in &segments {
        out.push('/');
        uri_encode(segment.as_bytes(), &mut out);
    }
    if segments.is_empty() || raw.ends_with('/') {
        out.push('/');
    }
    out
}

/// The canonical query: each name and value decoded, then encoded per RFC 3986, the
/// pairs sorted by name then value. A `+` is taken literally, as botocore never sends
/// one for a space.
fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (reencode(name), reencode(value))
        })
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(raw.len() + 16);
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

fn reencode(component: &str) -> String {
    let decoded: Vec<u8> = percent_decode_str(component).collect();
    let mut out = String::with_capacity(decoded.len());
    uri_encode(&decoded, &mut out);
    out
}

/// Percent-encodes every byte but RFC 3986's unreserved characters, in uppercase hex.
fn uri_encode(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// The signature of `canonical_request`: HMAC-SHA256 of the string to sign, keyed by
/// the secret derived through the credential scope.
fn signature(
    secret: &[u8],
    credential: &Credential,
    request_time: &str,
    canonical_request: &[u8],
) -> hmac::Tag {
    let scope = format!(
        "{}/{}/{}/aws4_request",
        credential.date, credential.region, credential.service
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{request_time}\n{scope}\n{}",
        hex::encode(digest::digest(&digest::SHA256, canonical_request))
    );
    let mut key = Vec::with_capacity(4 + secret.len());
    key.extend_from_slice(b"AWS4");
    key.extend_from_slice(secret);
    let mut tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        credential.date.as_bytes(),
    );
    for part in [
        credential.region.as_str(),
        credential.service.as_str(),
        "aws4_request",
    ] {
        tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref()), part.as_bytes());
    }
    hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref()),
        string_to_sign.as_bytes(),
    )
}

#[cfg(test)]
mod tests;

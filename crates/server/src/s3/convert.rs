//! Between `s3s`'s types and the engine's: [`ObjectError`] as S3's error codes and
//! statuses, dates, ETags, conditional headers (of reads and of writes), ranges,
//! `Content-MD5`, user metadata, the headers an object keeps, copy sources, opaque list
//! tokens, and request and response bodies as streams.

use base64::Engine as _;
use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use s3s::dto::{
    CopySource, ETag, ETagCondition, Metadata, ObjectCannedACL, Range, StreamingBlob, Timestamp,
    TimestampFormat,
};
use s3s::stream::RemainingLength;
use s3s::{S3Error, S3ErrorCode, S3Result, StdError};
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use wisp_core::{BucketName, ObjectError, UnixMillis};
use wisp_engine::{ByteRange, ByteStream, ReadConditions};
use wisp_store::Condition;

/// What a client is told when Wisp itself failed (the cause is logged, never sent).
pub(super) fn internal_error() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InternalError,
        "We encountered an internal error. Please try again.",
    )
}

/// An engine refusal as S3 answers it: the code S3 names it with, its status, and
/// the engine's message. Internal errors are logged here and answered without detail.
pub(super) fn error(e: ObjectError) -> S3Error {
    if let ObjectError::Internal(cause) = &e {
        tracing::error!("s3: object storage failed: {cause}");
        return internal_error();
    }
    let code = S3ErrorCode::from_bytes(e.s3_code().as_bytes())
        .unwrap_or_else(|| S3ErrorCode::Custom(e.s3_code().into()));
    let mut error = S3Error::with_message(code, e.to_string());
    match e {
        ObjectError::QuotaExceeded(_) => error.set_status_code(http::StatusCode::FORBIDDEN),
        ObjectError::InvalidRange { size } => {
            // S3 says how long the object is; the error document is still XML.
            let mut headers = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::try_from(format!("bytes */{size}")) {
                headers.insert(http::header::CONTENT_RANGE, v);
            }
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/xml"),
            );
            error.set_headers(headers);
        }
        ObjectError::NotModified { etag, modified_ms } => {
            // A 304 carries the validators a 200 would have (RFC 9110, 15.4.5); `finish`
            // drops its body.
            let mut headers = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::try_from(format!("\"{etag}\"")) {
                headers.insert(http::header::ETAG, v);
            }
            if let Some(v) =
                http_date(&timestamp(modified_ms)).and_then(|d| http::HeaderValue::try_from(d).ok())
            {
                headers.insert(http::header::LAST_MODIFIED, v);
            }
            error.set_headers(headers);
        }
        // Every other code s3s knows has its status; one it does not is the client's.
        _ if error.status_code().is_none() => error.set_status_code(http::StatusCode::BAD_REQUEST),
        _ => {}
    }
    error
}

pub(super) fn invalid_argument(message: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, message.into())
}

pub(super) fn not_implemented(message: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::NotImplemented, message.into())
}

/// A bucket name from a request, by S3's naming rules.
pub(super) fn bucket(name: &str) -> S3Result<BucketName> {
    BucketName::new(name).map_err(error)
}

/// An ETag as S3 answers it (quoted on the wire).
pub(super) fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_string())
}

pub(super) fn timestamp(ms: UnixMillis) -> Timestamp {
    let at = match u64::try_from(ms) {
        Ok(ms) => SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
        Err(_) => SystemTime::UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs()),
    };
    Timestamp::from(at)
}

/// A date as HTTP writes it (`Wed, 21 Oct 2015 07:28:00 GMT`).
pub(super) fn http_date(at: &Timestamp) -> Option<String> {
    let mut text = Vec::new();
    at.format(TimestampFormat::HttpDate, &mut text).ok()?;
    String::from_utf8(text).ok()
}

/// A date from a request, in milliseconds since the epoch.
pub(super) fn millis(at: &Timestamp) -> S3Result<UnixMillis> {
    // `Timestamp` keeps its `time` value private; its epoch-seconds form is public.
    let mut text = Vec::new();
    at.format(TimestampFormat::EpochSeconds, &mut text)
        .map_err(|e| invalid_argument(format!("invalid date: {e}")))?;
    std::str::from_utf8(&text)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite())
        .map(|s| (s * 1000.0).round() as UnixMillis)
        .ok_or_else(|| invalid_argument("invalid date"))
}

/// An `If-Match` / `If-None-Match` value as the engine reads it (its own header form).
pub(super) fn condition(c: &ETagCondition) -> String {
    match c {
        ETagCondition::Any => "*".to_string(),
        ETagCondition::ETag(ETag::Strong(v)) => format!("\"{v}\""),
        ETagCondition::ETag(ETag::Weak(v)) => format!("W/\"{v}\""),
    }
}

/// The conditional headers of a read (or the `x-amz-copy-source-if-*` of a copy).
pub(super) fn read_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<ReadConditions> {
    Ok(ReadConditions {
        if_match: if_match.map(condition),
        if_none_match: if_none_match.map(condition),
        if_modified_since: if_modified_since.map(millis).transpose()?,
        if_unmodified_since: if_unmodified_since.map(millis).transpose()?,
    })
}

/// What a write's `If-Match` / `If-None-Match` ask of the object the key holds:
/// `If-None-Match: *` (create only), `If-Match: *` (replace only) or `If-Match: ETAG`
/// (replace only that object).
pub(super) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<Condition> {
    match (if_match, if_none_match) {
        (None, None) => Ok(Condition::None),
        (None, Some(ETagCondition::Any)) => Ok(Condition::Absent),
        (Some(c), None) => Ok(match_condition(c)),
        (None, Some(ETagCondition::ETag(_))) => {
            Err(not_implemented("If-None-Match on a write takes only `*`"))
        }
        (Some(_), Some(_)) => Err(not_implemented(
            "a write takes If-Match or If-None-Match, not both",
        )),
    }
}

/// What an `If-Match` of a write or a delete asks: that an object exists (`*`), or that
/// it has this ETag.
pub(super) fn match_condition(c: &ETagCondition) -> Condition {
    match c {
        ETagCondition::Any => Condition::Present,
        ETagCondition::ETag(tag) => etag_condition(tag),
    }
}

/// The condition a `DeleteObjects` entry's `ETag` asks (`*`: that the object exists).
pub(super) fn etag_condition(tag: &ETag) -> Condition {
    match tag.value() {
        "*" => Condition::Present,
        value => Condition::EtagIs(value.to_string()),
    }
}

pub(super) fn byte_range(range: Range) -> ByteRange {
    match range {
        Range::Int {
            first,
            last: Some(last),
        } => ByteRange::Between(first, last),
        Range::Int { first, last: None } => ByteRange::From(first),
        Range::Suffix { length } => ByteRange::Last(length),
    }
}

/// `x-amz-copy-source-range`: `bytes=first-last`, the only form S3 takes there.
pub(super) fn copy_range(text: &str) -> S3Result<ByteRange> {
    let bad = || {
        invalid_argument(format!(
            "the x-amz-copy-source-range `{text}` is not valid: use bytes=first-last"
        ))
    };
    match ByteRange::parse(text) {
        Some(range @ ByteRange::Between(first, last)) if first <= last => Ok(range),
        _ => Err(bad()),
    }
}

/// `Content-MD5`: the base64 of 16 bytes.
pub(super) fn content_md5(text: &str) -> S3Result<[u8; 16]> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::InvalidDigest,
                "the Content-MD5 you specified is not valid",
            )
        })
}

/// `Content-Length` as the engine takes it.
pub(super) fn length(length: Option<i64>) -> S3Result<Option<u64>> {
    length
        .map(|l| u64::try_from(l).map_err(|_| invalid_argument("Content-Length may not be negative")))
        .transpose()
}

/// `x-amz-meta-*` as the engine keeps it: names in lowercase.
pub(super) fn metadata_in(metadata: Option<Metadata>) -> BTreeMap<String, String> {
    metadata
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

pub(super) fn metadata_out(metadata: &BTreeMap<String, String>) -> Option<Metadata> {
    (!metadata.is_empty()).then(|| metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// The headers an object keeps ([`wisp_core::object::OBJECT_HEADERS`]), as `s3s`
/// carries them on a write's input and a read's output.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct ObjectHeaders {
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<Timestamp>,
}

impl ObjectHeaders {
    /// As the engine keeps them: by lowercase name, `expires` as an HTTP date.
    pub fn into_map(self) -> S3Result<BTreeMap<String, String>> {
        let expires = match self.expires {
            Some(at) => Some(http_date(&at).ok_or_else(|| invalid_argument("invalid Expires date"))?),
            None => None,
        };
        // `aws-chunked` says how this request's body was sent, not what the object holds:
        // S3 does not keep it.
        let content_encoding = self.content_encoding.and_then(|e| {
            let codings: Vec<&str> = e
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
                .collect();
            (!codings.is_empty()).then(|| codings.join(","))
        });
        Ok([
            ("cache-control", self.cache_control),
            ("content-disposition", self.content_disposition),
            ("content-encoding", content_encoding),
            ("content-language", self.content_language),
            ("expires", expires),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_string(), value?)))
        .collect())
    }

    /// What the engine kept; an `expires` that is not an HTTP date (a `/v1` write
    /// checks it, so none should be) is left out.
    pub fn from_map(headers: &BTreeMap<String, String>) -> ObjectHeaders {
        let text = |name: &str| headers.get(name).cloned();
        ObjectHeaders {
            cache_control: text("cache-control"),
            content_disposition: text("content-disposition"),
            content_encoding: text("content-encoding"),
            content_language: text("content-language"),
            expires: headers
                .get("expires")
                .and_then(|d| Timestamp::parse(TimestampFormat::HttpDate, d).ok()),
        }
    }

    /// These, with each header `answer` gives (a read's `response-*` parameter) in
    /// place of the kept one.
    pub fn overridden(self, answer: ObjectHeaders) -> ObjectHeaders {
        ObjectHeaders {
            cache_control: answer.cache_control.or(self.cache_control),
            content_disposition: answer.content_disposition.or(self.content_disposition),
            content_encoding: answer.content_encoding.or(self.content_encoding),
            content_language: answer.content_language.or(self.content_language),
            expires: answer.expires.or(self.expires),
        }
    }
}

/// What S3 answers for an object stored without a content type.
pub(super) fn content_type(stored: Option<&String>) -> String {
    stored
        .cloned()
        .unwrap_or_else(|| "binary/octet-stream".to_string())
}

/// The bucket and key `x-amz-copy-source` names (versions are not kept).
pub(super) fn copy_source(source: &CopySource) -> S3Result<(BucketName, String)> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            unversioned(version_id.as_deref())?;
            Ok((self::bucket(bucket)?, key.to_string()))
        }
        CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => Err(not_implemented(
            "copying from an access point or an Outpost is not supported: name the source as bucket/key",
        )),
    }
}

/// Refuses a version id other than `null` (the version every object of an
/// unversioned bucket has).
pub(super) fn unversioned(version_id: Option<&str>) -> S3Result<()> {
    match version_id {
        None | Some("null") => Ok(()),
        Some(v) => Err(invalid_argument(format!(
            "invalid version id `{v}`: Wisp's buckets keep no versions"
        ))),
    }
}

/// What a write may ask for beyond bytes and metadata; Wisp keeps none of it, so
/// anything that would change who may read the object, or how, is refused rather
/// than dropped.
#[derive(Default)]
pub(super) struct WriteOptions<'a> {
    pub acl: Option<&'a ObjectCannedACL>,
    pub grants: bool,
    pub tagging: bool,
    pub sse_customer: bool,
    pub sse: Option<&'a str>,
    pub object_lock: bool,
}

pub(super) fn refuse_unsupported(o: WriteOptions<'_>) -> S3Result<()> {
    if o.grants
        || o.acl
            .is_some_and(|a| !["private", "bucket-owner-full-control"].contains(&a.as_str()))
    {
        return Err(S3Error::with_message(
            S3ErrorCode::AccessControlListNotSupported,
            "The bucket does not allow ACLs: objects are readable only with a key of the bucket's namespace",
        ));
    }
    if o.tagging {
        return Err(not_implemented("object tags are not supported"));
    }
    if o.sse_customer {
        return Err(not_implemented(
            "server-side encryption with customer-provided keys (SSE-C) is not supported",
        ));
    }
    if let Some(sse) = o.sse
        && sse != "AES256"
    {
        return Err(not_implemented(format!(
            "server-side encryption `{sse}` is not supported"
        )));
    }
    if o.object_lock {
        return Err(not_implemented("object lock is not supported"));
    }
    Ok(())
}

/// A list continuation token: opaque to clients, the key a page starts after.
pub(super) fn token(after: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after)
}

pub(super) fn untoken(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| invalid_argument("The continuation token provided is incorrect"))
}

/// A key, prefix or marker in a listing asked for with `encoding-type=url`: every
/// byte but the unreserved ones and `/` percent-encoded (clients decode it with
/// `unquote` or `unquote_plus`, so `+` and space are encoded too).
pub(super) fn url_encode(text: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(text, KEEP).to_string()
}

/// A request body as the engine reads it.
pub(super) fn body_in(body: Option<StreamingBlob>) -> ByteStream {
    match body {
        Some(body) => Box::pin(body.map_err(std::io::Error::other)),
        None => Box::pin(futures::stream::empty()),
    }
}

/// An object's bytes as `s3s` answers them, `len` bytes long.
pub(super) fn body_out(body: ByteStream, len: u64) -> StreamingBlob {
    StreamingBlob::new(Outgoing {
        body: Mutex::new(body),
        remaining: len,
    })
}

/// The engine's stream (`Send`) as `s3s` takes one (`Send + Sync`, with its length).
/// The mutex is never locked: polling has `&mut` access ([`Mutex::get_mut`]).
struct Outgoing {
    body: Mutex<ByteStream>,
    remaining: u64,
}

impl Stream for Outgoing {
    type Item = Result<Bytes, StdError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let body = this
            .body
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match body.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                this.remaining = this.remaining.saturating_sub(bytes.len() as u64);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl s3s::stream::ByteStream for Outgoing {
    fn remaining_length(&self) -> RemainingLength {
        usize::try_from(self.remaining)
            .map_or_else(|_| RemainingLength::unknown(), RemainingLength::new_exact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn errors_keep_s3s_codes_and_statuses() {
        let cases = [
            (ObjectError::InvalidRange { size: 10 }, "InvalidRange", 416),
            (ObjectError::PreconditionFailed, "PreconditionFailed", 412),
            (
                ObjectError::NotModified {
                    etag: "abc".into(),
                    modified_ms: 1_445_412_480_000,
                },
                "NotModified",
                304,
            ),
            (
                ObjectError::EntityTooSmall {
                    part: 1,
                    size: 1,
                    min: 5,
                },
                "EntityTooSmall",
                400,
            ),
            (ObjectError::InvalidPart("p".into()), "InvalidPart", 400),
            (ObjectError::InvalidPartOrder, "InvalidPartOrder", 400),
            (ObjectError::BadDigest, "BadDigest", 400),
            (ObjectError::KeyTooLong { bytes: 2000 }, "KeyTooLongError", 400),
            (
                ObjectError::InvalidBucketName("b".into()),
                "InvalidBucketName",
                400,
            ),
            (ObjectError::InvalidKey("k".into()), "InvalidArgument", 400),
            (ObjectError::QuotaExceeded("full".into()), "QuotaExceeded", 403),
            (ObjectError::NoSuchBucket("b".into()), "NoSuchBucket", 404),
            (ObjectError::NoSuchKey("k".into()), "NoSuchKey", 404),
            (ObjectError::NoSuchUpload("u".into()), "NoSuchUpload", 404),
            (ObjectError::BucketNotEmpty("b".into()), "BucketNotEmpty", 409),
            (
                ObjectError::BucketExists("b".into()),
                "BucketAlreadyOwnedByYou",
                409,
            ),
            (ObjectError::EntityTooLarge { max: 1 }, "EntityTooLarge", 400),
            (ObjectError::IncompleteBody, "IncompleteBody", 400),
            (ObjectError::Internal("disk on fire".into()), "InternalError", 500),
        ];
        for (e, code, status) in cases {
            let message = e.to_string();
            let internal = matches!(e, ObjectError::Internal(_));
            let s3 = error(e);
            assert_eq!(s3.code().as_str(), code);
            assert_eq!(s3.status_code().map(|s| s.as_u16()), Some(status), "{code}");
            if internal {
                assert!(!s3.message().unwrap_or_default().contains("fire"));
            } else {
                assert_eq!(s3.message(), Some(message.as_str()));
            }
        }
        let range = error(ObjectError::InvalidRange { size: 10 });
        let headers = range.headers().cloned().unwrap_or_default();
        assert_eq!(
            headers.get("content-range").map(|v| v.as_bytes()),
            Some(&b"bytes */10"[..])
        );
        let not_modified = error(ObjectError::NotModified {
            etag: "abc".into(),
            modified_ms: 1_445_412_480_000,
        });
        let headers = not_modified.headers().cloned().unwrap_or_default();
        assert_eq!(headers.get("etag").map(|v| v.as_bytes()), Some(&b"\"abc\""[..]));
        assert_eq!(
            headers.get("last-modified").map(|v| v.as_bytes()),
            Some(&b"Wed, 21 Oct 2015 07:28:00 GMT"[..])
        );
    }

    #[test]
    fn write_conditions_follow_s3() {
        let tag = ETagCondition::ETag(ETag::Strong("abc".into()));
        let any = ETagCondition::Any;
        assert_eq!(write_condition(None, None).ok(), Some(Condition::None));
        assert_eq!(write_condition(None, Some(&any)).ok(), Some(Condition::Absent));
        assert_eq!(write_condition(Some(&any), None).ok(), Some(Condition::Present));
        assert_eq!(
            write_condition(Some(&tag), None).ok(),
            Some(Condition::EtagIs("abc".into()))
        );
        assert!(write_condition(None, Some(&tag)).is_err());
        assert!(write_condition(Some(&tag), Some(&any)).is_err());
        assert_eq!(etag_condition(&ETag::Strong("*".into())), Condition::Present);
    }

    #[test]
    fn object_headers_round_trip_and_give_way_to_overrides() -> S3Result<()> {
        let expires = Timestamp::parse(TimestampFormat::HttpDate, "Wed, 21 Oct 2015 07:28:00 GMT")
            .map_err(|_| invalid_argument("test"))?;
        let given = ObjectHeaders {
            cache_control: Some("max-age=60".into()),
            content_disposition: Some("attachment; filename=\"a.txt\"".into()),
            content_encoding: None,
            content_language: Some("en".into()),
            expires: Some(expires),
        };
        let kept = given.clone().into_map()?;
        assert_eq!(
            kept.get("expires").map(String::as_str),
            Some("Wed, 21 Oct 2015 07:28:00 GMT")
        );
        assert!(!kept.contains_key("content-encoding"));
        assert_eq!(ObjectHeaders::from_map(&kept), given);
        let answered = ObjectHeaders::from_map(&kept).overridden(ObjectHeaders {
            cache_control: Some("no-store".into()),
            content_encoding: Some("gzip".into()),
            ..ObjectHeaders::default()
        });
        assert_eq!(answered.cache_control.as_deref(), Some("no-store"));
        assert_eq!(answered.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(answered.content_language.as_deref(), Some("en"));
        let odd = BTreeMap::from([("expires".to_string(), "0".to_string())]);
        assert_eq!(ObjectHeaders::from_map(&odd).expires, None);
        let encoding = |e: &str| {
            ObjectHeaders {
                content_encoding: Some(e.into()),
                ..ObjectHeaders::default()
            }
            .into_map()
            .map(|m| m.get("content-encoding").cloned())
        };
        assert_eq!(encoding("aws-chunked")?, None);
        assert_eq!(encoding("aws-chunked, gzip")?.as_deref(), Some("gzip"));
        assert_eq!(encoding("gzip")?.as_deref(), Some("gzip"));
        Ok(())
    }

    #[test]
    fn dates_round_trip_through_timestamps() -> S3Result<()> {
        for ms in [0, 1_700_000_000_123, 1_700_000_000_000, 999] {
            assert_eq!(millis(&timestamp(ms))?, ms);
        }
        let http = Timestamp::parse(TimestampFormat::HttpDate, "Wed, 21 Oct 2015 07:28:00 GMT")
            .map_err(|_| invalid_argument("test"))?;
        assert_eq!(millis(&http)?, 1_445_412_480_000);
        Ok(())
    }

    #[test]
    fn conditions_and_ranges_convert() {
        assert_eq!(condition(&ETagCondition::Any), "*");
        assert_eq!(
            condition(&ETagCondition::ETag(ETag::Strong("abc".into()))),
            "\"abc\""
        );
        assert_eq!(
            condition(&ETagCondition::ETag(ETag::Weak("abc".into()))),
            "W/\"abc\""
        );
        // A list arrives from s3s as one strong tag holding the inner quotes.
        assert_eq!(
            condition(&ETagCondition::ETag(ETag::Strong("a\", \"b".into()))),
            "\"a\", \"b\""
        );
        assert_eq!(
            byte_range(Range::Int {
                first: 1,
                last: Some(5)
            }),
            ByteRange::Between(1, 5)
        );
        assert_eq!(
            byte_range(Range::Int { first: 7, last: None }),
            ByteRange::From(7)
        );
        assert_eq!(byte_range(Range::Suffix { length: 3 }), ByteRange::Last(3));
        assert_eq!(copy_range("bytes=0-99").ok(), Some(ByteRange::Between(0, 99)));
        for bad in ["0-99", "bytes=5-1", "bytes=-5", "bytes=1-", "bytes=a-b"] {
            assert!(copy_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests_tokens_and_encoding() {
        let md5 = [0x1bu8; 16];
        let text = base64::engine::general_purpose::STANDARD.encode(md5);
        assert_eq!(content_md5(&text).ok(), Some(md5));
        assert_eq!(
            content_md5("bm90IDE2IGJ5dGVz")
                .err()
                .map(|e| e.code().as_str().to_string()),
            Some("InvalidDigest".to_string())
        );
        for key in ["", "a/b c", "ü+&="] {
            assert_eq!(untoken(&token(key)).ok().as_deref(), Some(key));
        }
        assert!(untoken("***").is_err());
        assert_eq!(
            url_encode("in/My Photo+1 ü.jpg"),
            "in/My%20Photo%2B1%20%C3%BC.jpg"
        );
        assert_eq!(url_encode("a-b_c.d~e"), "a-b_c.d~e");
    }

    #[test]
    fn metadata_versions_and_options() {
        let mut given = Metadata::default();
        given.insert("Color".into(), "blue".into());
        let kept = metadata_in(Some(given));
        assert_eq!(kept.get("color").map(String::as_str), Some("blue"));
        assert_eq!(metadata_out(&kept).map(|m| m.len()), Some(1));
        assert!(metadata_out(&BTreeMap::new()).is_none());
        assert!(unversioned(None).is_ok() && unversioned(Some("null")).is_ok());
        assert!(unversioned(Some("3HL4kqtJ")).is_err());
        let public = ObjectCannedACL::from("public-read".to_string());
        let private = ObjectCannedACL::from("private".to_string());
        assert!(
            refuse_unsupported(WriteOptions {
                acl: Some(&private),
                ..WriteOptions::default()
            })
            .is_ok()
        );
        assert_eq!(
            refuse_unsupported(WriteOptions {
                acl: Some(&public),
                ..WriteOptions::default()
            })
            .err()
            .map(|e| e.code().as_str().to_string()),
            Some("AccessControlListNotSupported".to_string())
        );
        assert!(
            refuse_unsupported(WriteOptions {
                sse: Some("AES256"),
                ..WriteOptions::default()
            })
            .is_ok()
        );
        assert!(
            refuse_unsupported(WriteOptions {
                sse: Some("aws:kms"),
                ..WriteOptions::default()
            })
            .is_err()
        );
        assert!(
            refuse_unsupported(WriteOptions {
                tagging: true,
                ..WriteOptions::default()
            })
            .is_err()
        );
    }

    #[tokio::test]
    async fn bodies_stream_both_ways() {
        use s3s::stream::ByteStream as _;
        let stream: ByteStream = Box::pin(futures::stream::iter([
            Ok(Bytes::from_static(b"hello ")),
            Ok(Bytes::from_static(b"world")),
        ]));
        let out = body_out(stream, 11);
        assert_eq!(out.remaining_length().exact(), Some(11));
        let mut back = body_in(Some(out));
        let mut all = Vec::new();
        while let Some(chunk) = back.next().await {
            all.extend_from_slice(&chunk.unwrap_or_default());
        }
        assert_eq!(all, b"hello world");
    }
}

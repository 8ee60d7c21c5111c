//! `/v1/buckets`: object storage through Wisp's own API — create, list, show and delete
//! a namespace's buckets; put, get (whole or one byte range), head, list and delete their
//! objects, each with HTTP's conditional headers (`If-Match`, `If-None-Match`, and on
//! reads `If-Modified-Since` / `If-Unmodified-Since`). The S3 listener serves the same
//! buckets in S3's protocol; this is the JSON side, which the CLI's `wisp bucket` and
//! `wisp object` use.
//!
//! Bytes stream both ways: a put hands the request body to the engine as it arrives
//! (the route has no body limit but the engine's largest object), and a get streams the
//! blob into the response, so no object is ever held whole in memory here.

use super::functions::{EngineState, query_params};
use super::json::{read_fields, read_json};
use crate::auth::Scope;
use crate::platform::PlatformCall;
use crate::problem::ApiError;
use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use wisp_core::object::OBJECT_HEADERS;
use wisp_core::wall::rfc3339_ms;
use wisp_core::{BucketName, ErrorCode, Limits, ObjectError, UnixMillis};
use wisp_engine::{ByteRange, ByteStream, Engine, EngineError, ObjectPut, ReadConditions};
use wisp_store::{BucketRecord, Condition, ListQuery, ObjectRecord};

/// The prefix of the request and response headers that carry user metadata
/// (`x-wisp-meta-camera: x100`, stored as `camera`).
const META_PREFIX: &str = "x-wisp-meta-";

/// The bucket and object routes.
pub(super) fn router() -> Router<Arc<Engine>> {
    Router::new()
        .route("/v1/buckets", get(list))
        .route("/v1/buckets/{bucket}", get(show).put(create).delete(delete))
        .route("/v1/buckets/{bucket}/objects", get(list_objects))
        .route(
            "/v1/buckets/{bucket}/objects/{*key}",
            get(get_object)
                .head(head_object)
                .put(put_object)
                .delete(delete_object)
                // The engine caps an object at `Limits::max_object_bytes` as it streams.
                .layer(DefaultBodyLimit::disable()),
        )
}

impl From<ObjectError> for ApiError {
    fn from(e: ObjectError) -> ApiError {
        let size = match &e {
            ObjectError::InvalidRange { size } => Some(*size),
            _ => None,
        };
        let mut error = EngineError::from(e);
        // RFC 9110: a 416 says how long the representation is.
        if let Some(value) = size.and_then(|s| HeaderValue::from_str(&format!("bytes */{s}")).ok()) {
            error.headers_mut().insert(header::CONTENT_RANGE, value);
        }
        ApiError(error)
    }
}

fn parse_bucket(name: &str) -> Result<BucketName, ApiError> {
    BucketName::new(name).map_err(ApiError::from)
}

/// A bucket as the API shows it.
#[derive(Serialize)]
struct BucketView {
    name: String,
    created_at: String,
    /// How many objects it holds, and their bytes together.
    objects: u64,
    bytes: u64,
    /// The most bytes it may hold; `null`: no quota of its own.
    quota_bytes: Option<u64>,
}

impl BucketView {
    fn new(b: BucketRecord) -> BucketView {
        BucketView {
            name: b.name.to_string(),
            created_at: rfc3339_ms(b.created_ms),
            objects: b.objects,
            bytes: b.bytes,
            quota_bytes: b.quota_bytes,
        }
    }
}

/// An object as the API shows it.
#[derive(Serialize)]
struct ObjectView {
    key: String,
    size: u64,
    /// The ETag without quotes (the `ETag` header has them).
    etag: String,
    content_type: Option<String>,
    modified_at: String,
    metadata: BTreeMap<String, String>,
}

impl ObjectView {
    fn new(o: ObjectRecord) -> ObjectView {
        ObjectView {
            key: o.key,
            size: o.size,
            etag: o.etag,
            content_type: o.content_type,
            modified_at: rfc3339_ms(o.modified_ms),
            metadata: o.metadata,
        }
    }
}

async fn list(scope: Scope, State(engine): EngineState) -> Result<Json<Value>, ApiError> {
    let buckets: Vec<BucketView> = engine
        .buckets(&scope.namespace)
        .await?
        .into_iter()
        .map(BucketView::new)
        .collect();
    Ok(Json(json!({ "buckets": buckets })))
}

async fn show(
    scope: Scope,
    State(engine): EngineState,
    Path(bucket): Path<String>,
) -> Result<Json<BucketView>, ApiError> {
    let bucket = parse_bucket(&bucket)?;
    Ok(Json(BucketView::new(
        engine.bucket(&scope.namespace, &bucket).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BucketIn {
    quota_bytes: Option<u64>,
}

const CREATE_TAKES: &str =
    "`{\"quota_bytes\": 10737418240}` (optional; an empty body makes a bucket without a quota)";

async fn create(
    scope: Scope,
    State(engine): EngineState,
    Path(bucket): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let bucket = parse_bucket(&bucket)?;
    let quota = match read_json(&engine, body, CREATE_TAKES).await? {
        None => None,
        Some(value) => {
            read_fields::<BucketIn>(value, CREATE_TAKES)
                .map_err(|e| ApiError::new(ErrorCode::InvalidConfig, format!("invalid bucket: {e}")))?
                .quota_bytes
        }
    };
    if quota == Some(0) {
        return Err(ApiError::new(
            ErrorCode::InvalidConfig,
            "invalid bucket: quota_bytes must be at least 1 (leave it out for no quota)",
        ));
    }
    let record = engine.create_bucket(&scope.namespace, &bucket, quota).await?;
    let detail = quota.map(|q| format!("quota {q} bytes"));
    scope
        .audit(&engine, "bucket.create", bucket.as_str(), detail)
        .await;
    Ok((StatusCode::CREATED, Json(BucketView::new(record))).into_response())
}

async fn delete(
    scope: Scope,
    State(engine): EngineState,
    Path(bucket): Path<String>,
) -> Result<StatusCode, ApiError> {
    let bucket = parse_bucket(&bucket)?;
    engine.delete_bucket(&scope.namespace, &bucket).await?;
    scope.audit(&engine, "bucket.delete", bucket.as_str(), None).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    #[serde(default)]
    prefix: String,
    delimiter: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

const LIST_TAKES: &str = "`prefix`, `delimiter`, `after` (a listing's `next`) and `limit` (1 to 1000)";

async fn list_objects(
    scope: Scope,
    State(engine): EngineState,
    Path(bucket): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let bucket = parse_bucket(&bucket)?;
    let Query(params) = query_params(params, LIST_TAKES)?;
    let limit = params.limit.unwrap_or(Limits::MAX_KEYS);
    if !(1..=Limits::MAX_KEYS).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("`limit` must be 1 to {} (it is {limit})", Limits::MAX_KEYS),
        ));
    }
    let query = ListQuery {
        prefix: params.prefix,
        // `delimiter=` (empty) is no delimiter, as in S3.
        delimiter: params.delimiter.filter(|d| !d.is_empty()),
        after: params.after.filter(|a| !a.is_empty()),
        max_keys: limit,
    };
    let listing = engine.list_objects(&scope.namespace, &bucket, query).await?;
    let objects: Vec<ObjectView> = listing.objects.into_iter().map(ObjectView::new).collect();
    Ok(Json(json!({
        "objects": objects,
        "common_prefixes": listing.common_prefixes,
        "truncated": listing.truncated,
        "next": listing.next,
    })))
}

fn bad_request(detail: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, detail)
}

/// A header's value as text.
fn text(name: &HeaderName, value: &HeaderValue) -> Result<String, ApiError> {
    value
        .to_str()
        .map(str::to_string)
        .map_err(|_| bad_request(format!("the `{name}` header is not visible ASCII")))
}

/// What a write's `If-Match` / `If-None-Match` ask of the object the key holds:
/// `If-None-Match: *` (create only), `If-Match: *` (only if it exists) or
/// `If-Match: "ETAG"` (only if it is that object). A delete takes `If-Match` alone.
fn write_condition(headers: &HeaderMap) -> Result<Condition, ApiError> {
    let header = |name: &HeaderName| headers.get(name).map(|v| text(name, v)).transpose();
    let (if_match, if_none_match) = (header(&header::IF_MATCH)?, header(&header::IF_NONE_MATCH)?);
    match (if_match, if_none_match) {
        (None, None) => Ok(Condition::None),
        (None, Some(v)) if v.trim() == "*" => Ok(Condition::Absent),
        (None, Some(v)) => Err(bad_request(format!(
            "`If-None-Match: {v}` on a write: a write takes only `If-None-Match: *` (create only)"
        ))),
        (Some(v), None) if v.trim() == "*" => Ok(Condition::Present),
        (Some(v), None) if v.contains(',') => {
            Err(bad_request(format!("`If-Match: {v}` on a write: name one ETag")))
        }
        (Some(v), None) => {
            let v = v.trim();
            let v = v.strip_prefix("W/").unwrap_or(v);
            Ok(Condition::EtagIs(v.trim_matches('"').to_string()))
        }
        (Some(_), Some(_)) => Err(bad_request(
            "a write takes `If-Match` or `If-None-Match`, not both".into(),
        )),
    }
}

/// The conditional headers of a read. A date that is not an HTTP date is ignored, as
/// RFC 9110 asks.
fn read_conditions(headers: &HeaderMap) -> Result<ReadConditions, ApiError> {
    let header = |name: &HeaderName| headers.get(name).map(|v| text(name, v)).transpose();
    let date = |name: &HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date)
    };
    Ok(ReadConditions {
        if_match: header(&header::IF_MATCH)?,
        if_none_match: header(&header::IF_NONE_MATCH)?,
        if_modified_since: date(&header::IF_MODIFIED_SINCE),
        if_unmodified_since: date(&header::IF_UNMODIFIED_SINCE),
    })
}

/// What a put says besides its bytes: `Content-Type`, `Content-Length`, the headers an
/// object keeps (`Cache-Control`, …, `Expires`), the `x-wisp-meta-*` headers and the
/// conditional ones.
fn object_put(headers: &HeaderMap) -> Result<ObjectPut, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| text(&header::CONTENT_TYPE, v))
        .transpose()?;
    let length = headers
        .get(header::CONTENT_LENGTH)
        .map(|v| {
            text(&header::CONTENT_LENGTH, v)?
                .parse::<u64>()
                .map_err(|_| bad_request("the `content-length` header is not a number".into()))
        })
        .transpose()?;
    let mut metadata = BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(META_PREFIX)
            && !key.is_empty()
        {
            metadata.insert(key.to_string(), text(name, value)?);
        }
    }
    let mut kept = BTreeMap::new();
    for name in OBJECT_HEADERS {
        let Some(value) = headers.get(name) else {
            continue;
        };
        let mut value = text(&HeaderName::from_static(name), value)?;
        if name == "expires" {
            // Kept as S3 keeps it, so both APIs answer the same date.
            let at = parse_http_date(&value).ok_or_else(|| {
                bad_request(format!(
                    "`Expires: {value}` is not an HTTP date (`Tue, 14 Nov 2023 22:13:20 GMT`)"
                ))
            })?;
            value = http_date(at);
        }
        kept.insert(name.to_string(), value);
    }
    Ok(ObjectPut {
        content_type,
        metadata,
        headers: kept,
        length,
        condition: write_condition(headers)?,
        ..ObjectPut::default()
    })
}

async fn put_object(
    scope: Scope,
    State(engine): EngineState,
    platform: Option<axum::Extension<PlatformCall>>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<ObjectView>, ApiError> {
    let bucket = parse_bucket(&bucket)?;
    let put = object_put(&headers)?;
    let bytes: ByteStream = Box::pin(body.into_data_stream().map_err(std::io::Error::other));
    let cause = scope.write_cause(&engine, platform.as_deref(), &headers);
    let record = engine
        .put_object(&scope.namespace, &bucket, &key, put, bytes, cause)
        .await?;
    Ok(Json(ObjectView::new(record)))
}

/// The `Range` header's one range (`bytes=0-99`, `bytes=100-`, `bytes=-100`).
fn parse_range(value: Option<&HeaderValue>) -> Result<Option<ByteRange>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let bad = || {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "cannot read `Range: {text}`: ask for one range, `bytes=FIRST-LAST` (inclusive), `bytes=FIRST-` or `bytes=-LENGTH`"
            ),
        )
    };
    ByteRange::parse(text).map(Some).ok_or_else(bad)
}

/// `ms` as an HTTP date (`Tue, 14 Nov 2023 22:13:20 GMT`).
fn http_date(ms: UnixMillis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// An HTTP date (`Tue, 14 Nov 2023 22:13:20 GMT`), in milliseconds since the epoch.
fn parse_http_date(text: &str) -> Option<UnixMillis> {
    chrono::DateTime::parse_from_rfc2822(text.trim())
        .ok()
        .map(|at| at.timestamp_millis())
}

/// The answer to a conditional read that found the object unchanged: `304`, no body,
/// with the validators a `200` would carry.
fn not_modified(etag: &str, modified_ms: UnixMillis) -> Response {
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    validators(etag, modified_ms, response.headers_mut());
    response
}

/// `ETag` (quoted) and `Last-Modified`.
fn validators(etag: &str, modified_ms: UnixMillis, headers: &mut HeaderMap) {
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        headers.insert(header::ETAG, etag);
    }
    if let Ok(date) = HeaderValue::from_str(&http_date(modified_ms)) {
        headers.insert(header::LAST_MODIFIED, date);
    }
}

/// The headers that describe an object: its type, ETag, date, the headers it keeps and
/// its metadata.
fn object_headers(record: &ObjectRecord, headers: &mut HeaderMap) {
    let content_type = record
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    validators(&record.etag, record.modified_ms, headers);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    for (name, value) in &record.headers {
        // Only the headers an object keeps; a value a header cannot carry is left out.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) && OBJECT_HEADERS.contains(&name.as_str())
        {
            headers.insert(name, value);
        }
    }
    for (name, value) in &record.metadata {
        let name = HeaderName::from_bytes(format!("{META_PREFIX}{name}").as_bytes());
        // Metadata written through S3 may hold what a header cannot carry: left out.
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    }
}

async fn get_object(
    scope: Scope,
    State(engine): EngineState,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bucket = parse_bucket(&bucket)?;
    let range = parse_range(headers.get(header::RANGE))?;
    let conditions = read_conditions(&headers)?;
    let read = match engine
        .get_object(&scope.namespace, &bucket, &key, range, &conditions)
        .await
    {
        Ok(read) => read,
        Err(ObjectError::NotModified { etag, modified_ms }) => return Ok(not_modified(&etag, modified_ms)),
        Err(e) => return Err(e.into()),
    };
    let length = read.len();
    let mut response = Response::new(axum::body::Body::from_stream(read.body));
    let out = response.headers_mut();
    object_headers(&read.record, out);
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some((start, end)) = read.range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let span = format!("bytes {start}-{}/{}", end - 1, read.record.size);
        if let Ok(value) = HeaderValue::from_str(&span) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

async fn head_object(
    scope: Scope,
    State(engine): EngineState,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bucket = parse_bucket(&bucket)?;
    let conditions = read_conditions(&headers)?;
    let record = match engine
        .head_object(&scope.namespace, &bucket, &key, &conditions)
        .await
    {
        Ok(record) => record,
        Err(ObjectError::NotModified { etag, modified_ms }) => return Ok(not_modified(&etag, modified_ms)),
        Err(e) => return Err(e.into()),
    };
    let mut response = Response::new(axum::body::Body::empty());
    object_headers(&record, response.headers_mut());
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(record.size));
    Ok(response)
}

/// Deleting a key that holds nothing is no error (as in S3): the key is free either way.
/// With `If-Match` it is (`404`), and an object with another ETag stays (`412`).
async fn delete_object(
    scope: Scope,
    State(engine): EngineState,
    platform: Option<axum::Extension<PlatformCall>>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let bucket = parse_bucket(&bucket)?;
    if headers.contains_key(header::IF_NONE_MATCH) {
        return Err(bad_request(
            "a delete takes `If-Match` (an ETag, or `*`), not `If-None-Match`".into(),
        ));
    }
    let condition = write_condition(&headers)?;
    let cause = scope.write_cause(&engine, platform.as_deref(), &headers);
    engine
        .delete_object(&scope.namespace, &bucket, &key, condition, cause)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> Result<Option<ByteRange>, String> {
        parse_range(Some(&HeaderValue::from_str(text).unwrap())).map_err(|e| e.0.detail)
    }

    #[test]
    fn ranges_read_the_three_forms_and_refuse_the_rest() {
        assert_eq!(range("bytes=0-99"), Ok(Some(ByteRange::Between(0, 99))));
        assert_eq!(range("bytes=100-"), Ok(Some(ByteRange::From(100))));
        assert_eq!(range("bytes=-5"), Ok(Some(ByteRange::Last(5))));
        assert_eq!(parse_range(None).map_err(|e| e.0.detail), Ok(None));
        for bad in ["bytes=-", "bytes=a-b", "items=0-1", "bytes=0-1,4-5", "0-1"] {
            let e = range(bad).unwrap_err();
            assert!(e.contains(&format!("`Range: {bad}`")), "{e}");
        }
    }

    #[test]
    fn puts_take_type_length_and_metadata_from_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        headers.insert("x-wisp-meta-camera", HeaderValue::from_static("x100"));
        headers.insert("x-other", HeaderValue::from_static("no"));
        let put = object_put(&headers).unwrap();
        assert_eq!(put.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(put.length, Some(12));
        assert_eq!(
            put.metadata,
            BTreeMap::from([("camera".to_string(), "x100".to_string())])
        );
        assert!(put.headers.is_empty());
        assert_eq!(put.condition, Condition::None);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("twelve"));
        assert!(object_put(&headers).is_err());
    }

    #[test]
    fn puts_keep_the_object_headers_and_check_expires() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
        headers.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static("en"));
        headers.insert(
            header::EXPIRES,
            HeaderValue::from_static("Tue, 14 Nov 2023 22:13:20 +0000"),
        );
        let put = object_put(&headers).unwrap();
        assert_eq!(
            put.headers,
            BTreeMap::from([
                ("cache-control".to_string(), "max-age=60".to_string()),
                ("content-language".to_string(), "en".to_string()),
                ("expires".to_string(), "Tue, 14 Nov 2023 22:13:20 GMT".to_string()),
            ])
        );
        headers.insert(header::EXPIRES, HeaderValue::from_static("tomorrow"));
        let e = object_put(&headers).map(|_| ()).unwrap_err().0.detail;
        assert!(e.contains("`Expires: tomorrow` is not an HTTP date"), "{e}");
    }

    #[test]
    fn writes_take_one_condition() {
        let condition = |pairs: &[(HeaderName, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(name.clone(), HeaderValue::from_static(value));
            }
            write_condition(&headers).map_err(|e| e.0.detail)
        };
        assert_eq!(condition(&[]), Ok(Condition::None));
        assert_eq!(condition(&[(header::IF_NONE_MATCH, "*")]), Ok(Condition::Absent));
        assert_eq!(condition(&[(header::IF_MATCH, "*")]), Ok(Condition::Present));
        assert_eq!(
            condition(&[(header::IF_MATCH, "\"abc\"")]),
            Ok(Condition::EtagIs("abc".into()))
        );
        assert_eq!(
            condition(&[(header::IF_MATCH, "abc")]),
            Ok(Condition::EtagIs("abc".into()))
        );
        assert!(condition(&[(header::IF_NONE_MATCH, "\"abc\"")]).is_err());
        assert!(condition(&[(header::IF_MATCH, "\"a\", \"b\"")]).is_err());
        assert!(condition(&[(header::IF_MATCH, "*"), (header::IF_NONE_MATCH, "*")]).is_err());
    }

    #[test]
    fn reads_take_conditions_and_ignore_bad_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"abc\""));
        headers.insert(
            header::IF_MODIFIED_SINCE,
            HeaderValue::from_static("Tue, 14 Nov 2023 22:13:20 GMT"),
        );
        headers.insert(header::IF_UNMODIFIED_SINCE, HeaderValue::from_static("yesterday"));
        let c = read_conditions(&headers).unwrap();
        assert_eq!(c.if_none_match.as_deref(), Some("\"abc\""));
        assert_eq!(c.if_modified_since, Some(1_700_000_000_000));
        assert_eq!(c.if_unmodified_since, None);
        assert_eq!(c.if_match, None);
    }

    #[test]
    fn not_modified_carries_the_validators() {
        let response = not_modified("abc", 1_700_000_000_123);
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(response.headers()[header::ETAG], "\"abc\"");
        assert_eq!(
            response.headers()[header::LAST_MODIFIED],
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
    }

    #[test]
    fn dates_are_http_dates() {
        assert_eq!(http_date(1_700_000_000_123), "Tue, 14 Nov 2023 22:13:20 GMT");
    }

    #[test]
    fn a_range_past_the_end_says_the_size() {
        let e = ApiError::from(ObjectError::InvalidRange { size: 10 });
        assert_eq!(e.0.code, ErrorCode::RangeNotSatisfiable);
        let headers = e.0.headers.unwrap();
        assert_eq!(headers[header::CONTENT_RANGE], "bytes */10");
    }
}

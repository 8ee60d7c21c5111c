//! What the three functions of the thumbnails example share: the metadata record kept for
//! each photo, the `meta` key-value store (through `wasi:keyvalue`), Wisp's platform address
//! (`http://wisp.internal`: the buckets as path-style S3, and topics), and a few helpers.
//!
//! Run the example with `cargo run --release -- up examples/thumbnails` from the repository
//! root; see `examples/thumbnails/README.md`.

wit_bindgen::generate!({
    path: "../../../crates/runtime/wit/keyvalue",
    world: "wasi:keyvalue/imports",
});

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};
use wasi::keyvalue::{batch, store};
use wstd::http::{Body, Client, Error, Request, Response, Result, StatusCode};

/// The bucket users upload photos to; each new object there invokes `thumbnail`.
pub const PHOTOS: &str = "photos";
/// The bucket `thumbnail` writes the thumbnails to.
pub const THUMBS: &str = "thumbs";
/// The key-value store holding one [`Meta`] per photo, under the photo's key.
pub const META_STORE: &str = "meta";
/// The topic `thumbnail` publishes each new [`Meta`] to.
pub const TOPIC: &str = "thumbnails";
/// Wisp's platform address: reached in-process through `wasi:http`, held to the grants of
/// the function (`buckets`, `topics`, …) in `wisp.toml`, no credentials needed.
const PLATFORM: &str = "http://wisp.internal";

/// What is known of a photo and its thumbnail: the value of the photo's key in the `meta`
/// store, the body of each message on the `thumbnails` topic, and what `GET /thumbs` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The photo's key in the `photos` bucket.
    pub key: String,
    /// The thumbnail's key in the `thumbs` bucket: [`thumb_key`] of `key`.
    pub thumb_key: String,
    /// The photo's format: `png` or `jpeg`.
    pub format: String,
    /// The photo's size in pixels.
    pub width: u32,
    pub height: u32,
    /// The thumbnail's size in pixels: at most 128 × 128, in the photo's aspect ratio.
    pub thumb_width: u32,
    pub thumb_height: u32,
    /// The photo's size in bytes.
    pub bytes: u64,
    /// The thumbnail's size in bytes.
    pub thumb_bytes: u64,
    /// When the thumbnail was made, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// The key of a photo's thumbnail in the `thumbs` bucket: the photo's key with `.png` added
/// (`cat.jpg` → `cat.jpg.png`), so `cat.jpg` and `cat.png` get thumbnails of their own.
pub fn thumb_key(photo_key: &str) -> String {
    format!("{photo_key}.png")
}

/// Milliseconds since the Unix epoch, by the host's wall clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------------------
// The `meta` store

/// The `meta` store, opened (the function needs `kv = ["meta"]` in `wisp.toml`).
pub fn meta_store() -> Result<store::Bucket> {
    store::open(META_STORE).map_err(kv_error)
}

/// Writes `meta` under its photo's key.
pub fn put_meta(bucket: &store::Bucket, meta: &Meta) -> Result<()> {
    let value = serde_json::to_vec(meta)?;
    bucket.set(&meta.key, &value).map_err(kv_error)
}

/// The record of the photo `key`, if there is one (and it reads as a [`Meta`]).
pub fn get_meta(bucket: &store::Bucket, key: &str) -> Result<Option<Meta>> {
    let value = bucket.get(key).map_err(kv_error)?;
    Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
}

/// Every record of the store, in key order. Values that are not a [`Meta`] are skipped.
pub fn all_meta(bucket: &store::Bucket) -> Result<Vec<Meta>> {
    let mut metas = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = bucket.list_keys(cursor.as_deref()).map_err(kv_error)?;
        if !page.keys.is_empty() {
            let values = batch::get_many(bucket, &page.keys).map_err(kv_error)?;
            metas.extend(
                values
                    .into_iter()
                    .flatten()
                    .filter_map(|(_, value)| serde_json::from_slice::<Meta>(&value).ok()),
            );
        }
        match page.cursor {
            Some(next) if !page.keys.is_empty() => cursor = Some(next),
            _ => return Ok(metas),
        }
    }
}

/// Deletes the record of the photo `key` (nothing there is no error).
pub fn delete_meta(bucket: &store::Bucket, key: &str) -> Result<()> {
    bucket.delete(key).map_err(kv_error)
}

fn kv_error(e: store::Error) -> Error {
    let text = match e {
        store::Error::NoSuchStore => format!("the key-value store `{META_STORE}` does not exist"),
        store::Error::AccessDenied => {
            format!("the key-value store `{META_STORE}` is not granted (kv = [\"{META_STORE}\"])")
        }
        store::Error::Other(detail) => format!("key-value store `{META_STORE}`: {detail}"),
    };
    Error::msg(text)
}

// ---------------------------------------------------------------------------------------
// Buckets and topics, through the platform address

/// The object `key` of `bucket` (`None` when the key holds nothing).
pub async fn get_object(bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
    let req = Request::get(object_url(bucket, key)).body(Body::empty())?;
    let mut res = Client::new().send(req).await?;
    match res.status() {
        StatusCode::NOT_FOUND => Ok(None),
        s if s.is_success() => Ok(Some(res.body_mut().contents().await?.to_vec())),
        s => Err(refused(&format!("GET {bucket}/{key}"), s, res).await),
    }
}

/// Stores `bytes` as the object `key` of `bucket`, replacing what it held.
pub async fn put_object(bucket: &str, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<()> {
    let req = Request::put(object_url(bucket, key))
        .header("content-type", content_type)
        .header("content-length", bytes.len())
        .body(Body::from(bytes))?;
    let res = Client::new().send(req).await?;
    if !res.status().is_success() {
        return Err(refused(&format!("PUT {bucket}/{key}"), res.status(), res).await);
    }
    Ok(())
}

/// Deletes the object `key` of `bucket` (a key that holds nothing is no error, as in S3).
pub async fn delete_object(bucket: &str, key: &str) -> Result<()> {
    let req = Request::delete(object_url(bucket, key)).body(Body::empty())?;
    let res = Client::new().send(req).await?;
    if !res.status().is_success() && res.status() != StatusCode::NOT_FOUND {
        return Err(refused(&format!("DELETE {bucket}/{key}"), res.status(), res).await);
    }
    Ok(())
}

/// Publishes `message` to `topic` with `String` attributes (name, value), as the control
/// API's `POST /v1/topics/{topic}/messages` does.
pub async fn publish(topic: &str, message: &str, attributes: &[(&str, &str)]) -> Result<()> {
    let attributes: serde_json::Map<String, serde_json::Value> = attributes
        .iter()
        .map(|(name, value)| {
            let attribute = serde_json::json!({ "DataType": "String", "StringValue": value });
            ((*name).to_owned(), attribute)
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "message": message, "attributes": attributes }))?;
    let req = Request::post(format!("{PLATFORM}/v1/topics/{topic}/messages"))
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Body::from(body))?;
    let res = Client::new().send(req).await?;
    if !res.status().is_success() {
        return Err(refused(&format!("publish to topic `{topic}`"), res.status(), res).await);
    }
    Ok(())
}

fn object_url(bucket: &str, key: &str) -> String {
    format!("{PLATFORM}/{bucket}/{}", encode_key(key))
}

/// The error for a request the platform answered with `status`, with the start of its body
/// (S3's XML error or Wisp's problem document says why).
async fn refused(what: &str, status: StatusCode, mut res: Response<Body>) -> Error {
    let body = res
        .body_mut()
        .contents()
        .await
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let detail = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    Error::msg(format!("{what}: the platform answered {status}: {detail}"))
}

// ---------------------------------------------------------------------------------------
// Keys in URLs

/// An object key for a URL path: each byte outside S3's unreserved set (and `/`, which
/// separates the key's segments in the path too) percent-encoded.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes `s`; with `plus_is_space`, `+` is a space first (the form S3 event
/// notifications write keys in, and query strings use).
pub fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON response with `status`.
pub fn json_response(status: u16, value: &serde_json::Value) -> Result<Response<Body>> {
    let body = serde_json::to_vec(value)?;
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Body::from(body))?)
}

/// A failure as the platform should see it: `500` with `{"error"}` (an async invocation that
/// answers 5xx has failed, and the first bytes of the body are its `last_error`). The error
/// also goes to stderr, so `wisp logs` shows it.
pub fn failure(error: &Error) -> Result<Response<Body>> {
    let text = format!("{error:#}");
    eprintln!("error: {text}");
    json_response(500, &serde_json::json!({ "error": text }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_urls() {
        assert_eq!(encode_key("2024/my cat+1.jpg"), "2024/my%20cat%2B1.jpg");
        assert_eq!(decode("2024/my%20cat%2B1.jpg", false), "2024/my cat+1.jpg");
        assert_eq!(decode("my+cat%2B1.jpg", true), "my cat+1.jpg");
    }
}

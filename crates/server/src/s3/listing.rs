//! `ListObjects` (v1: `marker`, `NextMarker` when a delimiter is given) and
//! `ListObjectsV2` (opaque continuation tokens, `start-after`, `KeyCount`), both with
//! `encoding-type=url`, which percent-encodes every key and prefix of the answer.

use super::auth::caller;
use super::buckets::owner;
use super::convert::{bucket, error, etag, invalid_argument, timestamp, token, untoken, url_encode};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};
use wisp_core::{Limits, Namespace};
use wisp_engine::Engine;
use wisp_store::{ListQuery, Listing};

/// The page size when a request names none (and the most one may name).
const DEFAULT_MAX_KEYS: i32 = Limits::MAX_KEYS as i32;

/// `encoding-type`: only `url` exists.
fn url_encoded(encoding: Option<&EncodingType>) -> S3Result<bool> {
    match encoding.map(EncodingType::as_str) {
        None => Ok(false),
        Some(EncodingType::URL) => Ok(true),
        Some(other) => Err(invalid_argument(format!(
            "Invalid Encoding Method specified in Request: `{other}` (use url)"
        ))),
    }
}

/// How a listing's text is written back.
struct Writer {
    url: bool,
}

impl Writer {
    fn text(&self, s: &str) -> String {
        if self.url { url_encode(s) } else { s.to_string() }
    }

    fn opt(&self, s: Option<&String>) -> Option<String> {
        s.map(|s| self.text(s))
    }
}

fn max_keys(asked: Option<i32>) -> S3Result<i32> {
    match asked {
        None => Ok(DEFAULT_MAX_KEYS),
        Some(n) if n < 0 => Err(invalid_argument("max-keys may not be negative")),
        Some(n) => Ok(n.min(DEFAULT_MAX_KEYS)),
    }
}

/// A page of the bucket, or an empty one for `max-keys=0`.
async fn page(engine: &Engine, namespace: &Namespace, name: &str, query: ListQuery) -> S3Result<Listing> {
    let name = bucket(name)?;
    engine.list_objects(namespace, &name, query).await.map_err(error)
}

fn contents(
    listing: &Listing,
    w: &Writer,
    with_owner: Option<&Namespace>,
) -> (Option<Vec<Object>>, Option<Vec<CommonPrefix>>) {
    let objects: Vec<Object> = listing
        .objects
        .iter()
        .map(|o| Object {
            e_tag: Some(etag(&o.etag)),
            key: Some(w.text(&o.key)),
            last_modified: Some(timestamp(o.modified_ms)),
            owner: with_owner.map(owner),
            size: Some(i64::try_from(o.size).unwrap_or(i64::MAX)),
            storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
            ..Object::default()
        })
        .collect();
    let prefixes: Vec<CommonPrefix> = listing
        .common_prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(w.text(p)),
        })
        .collect();
    (
        (!objects.is_empty()).then_some(objects),
        (!prefixes.is_empty()).then_some(prefixes),
    )
}

pub(super) async fn list_v1(
    engine: &Engine,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let caller = caller(&req)?;
    let input = req.input;
    let w = Writer {
        url: url_encoded(input.encoding_type.as_ref())?,
    };
    let max = max_keys(input.max_keys)?;
    let listing = page(
        engine,
        &caller.namespace,
        &input.bucket,
        ListQuery {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            after: input.marker.clone().filter(|m| !m.is_empty()),
            max_keys: max.unsigned_abs(),
        },
    )
    .await?;
    let (contents, common_prefixes) = contents(&listing, &w, Some(&caller.namespace));
    // S3 gives NextMarker only with a delimiter; without one, clients go on from the
    // last key, which is the same place.
    let next_marker = if input.delimiter.is_some() {
        w.opt(listing.next.as_ref())
    } else {
        None
    };
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(w.text(input.prefix.as_deref().unwrap_or_default())),
        marker: Some(w.text(input.marker.as_deref().unwrap_or_default())),
        max_keys: Some(max),
        is_truncated: Some(listing.truncated),
        contents,
        common_prefixes,
        delimiter: w.opt(input.delimiter.as_ref()),
        next_marker,
        encoding_type: input.encoding_type,
        request_charged: None,
    }))
}

pub(super) async fn list_v2(
    engine: &Engine,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let caller = caller(&req)?;
    let input = req.input;
    let w = Writer {
        url: url_encoded(input.encoding_type.as_ref())?,
    };
    let max = max_keys(input.max_keys)?;
    // The token, when given, is where the previous page ended; start-after counts only
    // on the first page.
    let after = match input.continuation_token.as_deref() {
        Some(t) => Some(untoken(t)?),
        None => input.start_after.clone().filter(|s| !s.is_empty()),
    };
    let listing = page(
        engine,
        &caller.namespace,
        &input.bucket,
        ListQuery {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            after,
            max_keys: max.unsigned_abs(),
        },
    )
    .await?;
    let key_count = listing.objects.len() + listing.common_prefixes.len();
    let with_owner = (input.fetch_owner == Some(true)).then_some(&caller.namespace);
    let (contents, common_prefixes) = contents(&listing, &w, with_owner);
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(w.text(input.prefix.as_deref().unwrap_or_default())),
        max_keys: Some(max),
        key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
        continuation_token: input.continuation_token,
        is_truncated: Some(listing.truncated),
        next_continuation_token: listing.next.as_deref().filter(|_| listing.truncated).map(token),
        contents,
        common_prefixes,
        delimiter: w.opt(input.delimiter.as_ref()),
        encoding_type: input.encoding_type,
        start_after: w.opt(input.start_after.as_ref()),
        request_charged: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use wisp_core::BucketName;
    use wisp_store::ObjectRecord;

    #[test]
    fn max_keys_and_encoding_are_checked() {
        assert_eq!(max_keys(None).ok(), Some(1000));
        assert_eq!(max_keys(Some(5000)).ok(), Some(1000));
        assert_eq!(max_keys(Some(0)).ok(), Some(0));
        assert!(max_keys(Some(-1)).is_err());
        assert_eq!(url_encoded(None).ok(), Some(false));
        assert_eq!(
            url_encoded(Some(&EncodingType::from("url".to_string()))).ok(),
            Some(true)
        );
        assert!(url_encoded(Some(&EncodingType::from("base64".to_string()))).is_err());
    }

    #[test]
    fn listings_are_written_encoded_when_asked() -> Result<(), Box<dyn std::error::Error>> {
        let record = ObjectRecord {
            namespace: Namespace::new("default")?,
            bucket: BucketName::new("photos")?,
            key: "a b/ü.jpg".into(),
            blob: "x".into(),
            size: 3,
            etag: "abc".into(),
            content_type: None,
            metadata: BTreeMap::new(),
            headers: BTreeMap::new(),
            modified_ms: 0,
        };
        let listing = Listing {
            objects: vec![record],
            common_prefixes: vec!["c d/".into()],
            truncated: false,
            next: None,
        };
        let (objects, prefixes) = contents(&listing, &Writer { url: true }, None);
        let objects = objects.unwrap_or_default();
        assert_eq!(objects[0].key.as_deref(), Some("a%20b/%C3%BC.jpg"));
        assert_eq!(objects[0].e_tag, Some(ETag::Strong("abc".into())));
        assert!(objects[0].owner.is_none());
        assert_eq!(prefixes.unwrap_or_default()[0].prefix.as_deref(), Some("c%20d/"));
        let (objects, _) = contents(&listing, &Writer { url: false }, None);
        assert_eq!(objects.unwrap_or_default()[0].key.as_deref(), Some("a b/ü.jpg"));
        Ok(())
    }
}

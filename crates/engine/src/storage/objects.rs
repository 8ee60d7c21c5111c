//! Objects: put (streamed into a blob, then committed with its events), get and head
//! (with ranges and conditional requests), copy, delete and list.

use super::{io_error, store_error};
use crate::{Cause, Engine};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::collections::BTreeMap;
use std::pin::Pin;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use wisp_core::wall::{UnixMillis, now_ms};
use wisp_core::{BucketName, Namespace, ObjectError, StorageEvent, object::check_key};
use wisp_store::{
    BucketRecord, Condition, ListQuery, Listing, ObjectDeleted, ObjectRecord, ObjectWrite, PutObject,
    WrittenBlob,
};

/// Bytes streamed in or out.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// How many bytes a read hands on at a time.
const READ_CHUNK: usize = 256 * 1024;

/// What a put says about the object besides its bytes.
#[derive(Clone, Debug, Default)]
pub struct ObjectPut {
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*` without the prefix).
    pub metadata: BTreeMap<String, String>,
    /// The headers the object is served with ([`wisp_core::object::OBJECT_HEADERS`]).
    pub headers: BTreeMap<String, String>,
    /// `Content-MD5`: the body must hash to it.
    pub content_md5: Option<[u8; 16]>,
    /// `Content-Length`, when the client declared it: the body must be this long.
    pub length: Option<u64>,
    pub condition: Condition,
}

/// What an object says about itself besides its bytes: what a multipart upload starts
/// with, and what a copy with S3's `REPLACE` directive gives the copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*` without the prefix).
    pub metadata: BTreeMap<String, String>,
    /// The headers the object is served with ([`wisp_core::object::OBJECT_HEADERS`]).
    pub headers: BTreeMap<String, String>,
}

/// The conditional headers of a read (RFC 9110's order of evaluation).
#[derive(Clone, Debug, Default)]
pub struct ReadConditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<UnixMillis>,
    pub if_unmodified_since: Option<UnixMillis>,
}

/// A `Range: bytes=…` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last`, inclusive.
    Between(u64, u64),
    /// `first-`.
    From(u64),
    /// `-n`: the last `n` bytes.
    Last(u64),
}

impl ByteRange {
    /// Reads one range as HTTP writes it: `bytes=FIRST-LAST` (inclusive), `bytes=FIRST-`
    /// or `bytes=-LENGTH`; `None` for anything else (several ranges, other units).
    pub fn parse(text: &str) -> Option<ByteRange> {
        let (first, last) = text.trim().strip_prefix("bytes=")?.split_once('-')?;
        let number = |s: &str| s.trim().parse::<u64>().ok();
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (false, false) => Some(ByteRange::Between(number(first)?, number(last)?)),
            (false, true) => Some(ByteRange::From(number(first)?)),
            (true, false) => Some(ByteRange::Last(number(last)?)),
            (true, true) => None,
        }
    }

    /// The half-open byte span of an object of `size` bytes this range asks for.
    pub fn resolve(self, size: u64) -> Result<(u64, u64), ObjectError> {
        let invalid = Err(ObjectError::InvalidRange { size });
        match self {
            ByteRange::Between(first, last) if first <= last && first < size => {
                Ok((first, (last + 1).min(size)))
            }
            ByteRange::From(first) if first < size => Ok((first, size)),
            ByteRange::Last(n) if n > 0 && size > 0 => Ok((size.saturating_sub(n), size)),
            _ => invalid,
        }
    }
}

/// An object being read: its record, the span read (`None`: all of it) and the bytes.
pub struct ObjectRead {
    pub record: ObjectRecord,
    pub range: Option<(u64, u64)>,
    pub body: ByteStream,
}

impl ObjectRead {
    /// How many bytes `body` yields.
    pub fn len(&self) -> u64 {
        self.range.map_or(self.record.size, |(start, end)| end - start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An ETag as a client writes it, without quotes.
pub(super) fn bare_etag(etag: &str) -> &str {
    let etag = etag.trim();
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    etag.trim_matches('"')
}

/// Whether an `If-Match` / `If-None-Match` list names `etag` (`*` names any).
fn names(list: &str, etag: &str) -> bool {
    list.split(',').any(|e| {
        let e = e.trim();
        e == "*" || bare_etag(e) == etag
    })
}

/// Whether the object passes the read's conditions: `PreconditionFailed` or
/// `NotModified` (with the object's validators) when it does not.
fn check(record: &ObjectRecord, c: &ReadConditions) -> Result<(), ObjectError> {
    let not_modified = || ObjectError::NotModified {
        etag: record.etag.clone(),
        modified_ms: record.modified_ms,
    };
    // HTTP dates have whole seconds: compare at that grain.
    let modified_s = record.modified_ms.div_euclid(1000);
    if let Some(list) = &c.if_match {
        if !names(list, &record.etag) {
            return Err(ObjectError::PreconditionFailed);
        }
    } else if let Some(since) = c.if_unmodified_since
        && modified_s > since.div_euclid(1000)
    {
        return Err(ObjectError::PreconditionFailed);
    }
    if let Some(list) = &c.if_none_match {
        if names(list, &record.etag) {
            return Err(not_modified());
        }
    } else if let Some(since) = c.if_modified_since
        && modified_s <= since.div_euclid(1000)
    {
        return Err(not_modified());
    }
    Ok(())
}

/// Checks user metadata against S3's cap.
pub(super) fn check_metadata(metadata: &BTreeMap<String, String>) -> Result<(), ObjectError> {
    let bytes: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > wisp_core::Limits::MAX_USER_METADATA_BYTES {
        return Err(ObjectError::InvalidArgument(format!(
            "the object's user metadata is {bytes} bytes; at most {} are allowed",
            wisp_core::Limits::MAX_USER_METADATA_BYTES
        )));
    }
    Ok(())
}

impl Engine {
    /// Streams `body` into a new durable blob of at most `max` bytes, checking the
    /// declared length and MD5. Nothing is left behind on failure.
    pub(super) async fn write_blob(
        &self,
        mut body: ByteStream,
        max: u64,
        length: Option<u64>,
        content_md5: Option<[u8; 16]>,
    ) -> Result<WrittenBlob, ObjectError> {
        if let Some(length) = length
            && length > max
        {
            return Err(ObjectError::EntityTooLarge { max });
        }
        let mut writer = self.storage.blobs.create();
        while let Some(chunk) = body.next().await {
            // The client's fault: it went away, or a signed chunk did not verify.
            let chunk = chunk.map_err(|e| {
                ObjectError::InvalidArgument(format!("the request body could not be read: {e}"))
            })?;
            if writer.size() + chunk.len() as u64 > max {
                return Err(ObjectError::EntityTooLarge { max });
            }
            writer
                .write(&chunk)
                .await
                .map_err(|e| io_error("writing a blob", e))?;
        }
        if length.is_some_and(|l| l != writer.size()) {
            return Err(ObjectError::IncompleteBody);
        }
        let written = writer.finish().await.map_err(|e| io_error("writing a blob", e))?;
        if content_md5.is_some_and(|md5| md5 != written.md5) {
            let _ = self.storage.blobs.remove(&written.id).await;
            return Err(ObjectError::BadDigest);
        }
        Ok(written)
    }

    /// Stores an object from a stream of its bytes; its record. `cause`: what the
    /// events it causes carry (see [`Engine::write_cause`]).
    pub async fn put_object(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
        put: ObjectPut,
        body: ByteStream,
        cause: Cause,
    ) -> Result<ObjectRecord, ObjectError> {
        check_key(key)?;
        check_metadata(&put.metadata)?;
        // The bucket is looked up while the body streams in; a missing one stops the
        // write at once (the unfinished blob goes with it).
        let (bucket_record, written) = tokio::try_join!(
            self.bucket(namespace, bucket),
            self.write_blob(body, self.limits.max_object_bytes, put.length, put.content_md5)
        )?;
        let record = ObjectRecord {
            namespace: namespace.clone(),
            bucket: bucket.clone(),
            key: key.to_string(),
            blob: written.id,
            size: written.size,
            etag: hex::encode(written.md5),
            content_type: put.content_type,
            metadata: put.metadata,
            headers: put.headers,
            modified_ms: now_ms(),
        };
        self.commit_object(record, &bucket_record, StorageEvent::Put, put.condition, &cause)
            .await
    }

    /// Commits a record whose blob is durable, with its events; removes the blob it
    /// replaced, or its own blob when the commit is refused.
    pub(super) async fn commit_object(
        &self,
        record: ObjectRecord,
        bucket: &BucketRecord,
        event: StorageEvent,
        condition: Condition,
        cause: &Cause,
    ) -> Result<ObjectRecord, ObjectError> {
        let events = self.storage_events(bucket, event, &record.key, Some(&record), cause);
        let notify = !events.is_empty();
        let put = PutObject {
            record: record.clone(),
            events,
            condition,
            namespace_limit: self.storage_limit(&record.namespace),
        };
        let written = self.store.put_object(put).await;
        self.settle(written, record, notify).await
    }

    /// What a put's answer means: on success the replaced blob goes and the pipeline
    /// wakes for the events; otherwise the new blob goes.
    pub(super) async fn settle(
        &self,
        written: wisp_store::Result<ObjectWrite>,
        record: ObjectRecord,
        notify: bool,
    ) -> Result<ObjectRecord, ObjectError> {
        let refused = match written {
            Ok(ObjectWrite::Stored { replaced }) => {
                if notify {
                    self.pipeline.wake();
                }
                // Removed after the answer: nothing names it any more.
                self.discard_blobs(replaced.map(|r| r.blob));
                return Ok(record);
            }
            Ok(ObjectWrite::NoBucket) => ObjectError::NoSuchBucket(record.bucket.to_string()),
            Ok(ObjectWrite::OverQuota(why)) => ObjectError::QuotaExceeded(why),
            Ok(ObjectWrite::ConditionFailed) => ObjectError::PreconditionFailed,
            Err(e) => store_error(e),
        };
        self.remove_blobs([record.blob]).await;
        Err(refused)
    }

    /// An object's record, if it passes `conditions`.
    pub async fn head_object(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
        conditions: &ReadConditions,
    ) -> Result<ObjectRecord, ObjectError> {
        check_key(key)?;
        let record = match self
            .store
            .get_object(namespace, bucket, key)
            .await
            .map_err(store_error)?
        {
            Some(record) => record,
            None => {
                // S3 tells a missing bucket from a missing key.
                self.bucket(namespace, bucket).await?;
                return Err(ObjectError::NoSuchKey(key.to_string()));
            }
        };
        check(&record, conditions)?;
        Ok(record)
    }

    /// Reads an object (or a range of it), if it passes `conditions`. The blob is
    /// opened before this returns, so an overwrite or delete after it leaves this read
    /// its whole old object.
    pub async fn get_object(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
        range: Option<ByteRange>,
        conditions: &ReadConditions,
    ) -> Result<ObjectRead, ObjectError> {
        // A delete or overwrite between reading the record and opening its blob
        // removes the blob: read the record again, once.
        for _ in 0..2 {
            let record = self.head_object(namespace, bucket, key, conditions).await?;
            let span = range.map(|r| r.resolve(record.size)).transpose()?;
            let mut file = match self.storage.blobs.open_blob(&record.blob).await {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("opening a blob", e)),
            };
            let (start, end) = span.unwrap_or((0, record.size));
            if start > 0 {
                file.seek(std::io::SeekFrom::Start(start))
                    .await
                    .map_err(|e| io_error("seeking a blob", e))?;
            }
            let reader = file.take(end - start);
            let body = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK);
            return Ok(ObjectRead {
                record,
                range: span,
                body: Box::pin(body),
            });
        }
        Err(ObjectError::NoSuchKey(key.to_string()))
    }

    /// Copies an object (its bytes into a new blob). `replace`: the copy's content type,
    /// metadata and headers (S3's `REPLACE` directive); `None` keeps the source's.
    #[allow(
        clippy::too_many_arguments,
        reason = "an S3 copy names two objects and how to copy"
    )]
    pub async fn copy_object(
        &self,
        namespace: &Namespace,
        source: (&BucketName, &str),
        target: (&BucketName, &str),
        replace: Option<ObjectInfo>,
        source_conditions: &ReadConditions,
        cause: Cause,
    ) -> Result<ObjectRecord, ObjectError> {
        check_key(target.1)?;
        let target_bucket = self.bucket(namespace, target.0).await?;
        let read = self
            .get_object(namespace, source.0, source.1, None, source_conditions)
            .await
            .map_err(|e| match e {
                // A failed source condition is a failed precondition for a copy.
                ObjectError::NotModified { .. } => ObjectError::PreconditionFailed,
                e => e,
            })?;
        let info = replace.unwrap_or_else(|| ObjectInfo {
            content_type: read.record.content_type.clone(),
            metadata: read.record.metadata.clone(),
            headers: read.record.headers.clone(),
        });
        check_metadata(&info.metadata)?;
        let size = read.record.size;
        let written = self
            .write_blob(read.body, self.limits.max_object_bytes, Some(size), None)
            .await?;
        let record = ObjectRecord {
            namespace: namespace.clone(),
            bucket: target.0.clone(),
            key: target.1.to_string(),
            blob: written.id,
            size: written.size,
            etag: hex::encode(written.md5),
            content_type: info.content_type,
            metadata: info.metadata,
            headers: info.headers,
            modified_ms: now_ms(),
        };
        self.commit_object(
            record,
            &target_bucket,
            StorageEvent::Copy,
            Condition::None,
            &cause,
        )
        .await
    }

    /// Deletes an object if `condition` holds for it (checked in the store's
    /// transaction). Deleting a key that holds nothing is no error (as in S3), unless
    /// the delete is conditional: then it is `NoSuchKey`, as S3 answers an `If-Match`
    /// delete of a missing key.
    pub async fn delete_object(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
        condition: Condition,
        cause: Cause,
    ) -> Result<(), ObjectError> {
        check_key(key)?;
        let bucket_record = self.bucket(namespace, bucket).await?;
        let events = self.storage_events(&bucket_record, StorageEvent::Delete, key, None, &cause);
        let notify = !events.is_empty();
        let conditional = condition != Condition::None;
        match self
            .store
            .delete_object(namespace, bucket, key, condition, events)
            .await
            .map_err(store_error)?
        {
            ObjectDeleted::Deleted { removed } => {
                if notify {
                    self.pipeline.wake();
                }
                self.remove_blobs([removed.blob]).await;
                Ok(())
            }
            ObjectDeleted::NotFound if conditional => Err(ObjectError::NoSuchKey(key.to_string())),
            ObjectDeleted::NotFound => Ok(()),
            ObjectDeleted::ConditionFailed => Err(ObjectError::PreconditionFailed),
        }
    }

    /// A page of a bucket's listing; `max_keys` is capped at 1,000.
    pub async fn list_objects(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        mut query: ListQuery,
    ) -> Result<Listing, ObjectError> {
        query.max_keys = query.max_keys.min(wisp_core::Limits::MAX_KEYS);
        self.store
            .list_objects(namespace, bucket, &query)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ObjectError::NoSuchBucket(bucket.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_http_writes_them() {
        assert_eq!(ByteRange::parse("bytes=0-99"), Some(ByteRange::Between(0, 99)));
        assert_eq!(ByteRange::parse(" bytes=100- "), Some(ByteRange::From(100)));
        assert_eq!(ByteRange::parse("bytes=-5"), Some(ByteRange::Last(5)));
        for bad in ["bytes=-", "bytes=a-b", "items=0-1", "bytes=0-1,5-6", "0-1"] {
            assert_eq!(ByteRange::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges_resolve_as_s3_does() {
        assert_eq!(ByteRange::Between(0, 9).resolve(100), Ok((0, 10)));
        assert_eq!(ByteRange::Between(90, 200).resolve(100), Ok((90, 100)));
        assert_eq!(ByteRange::From(99).resolve(100), Ok((99, 100)));
        assert_eq!(ByteRange::Last(10).resolve(100), Ok((90, 100)));
        assert_eq!(ByteRange::Last(1000).resolve(100), Ok((0, 100)));
        for bad in [
            ByteRange::From(100),
            ByteRange::Between(100, 200),
            ByteRange::Last(0),
        ] {
            assert_eq!(bad.resolve(100), Err(ObjectError::InvalidRange { size: 100 }));
        }
        assert!(ByteRange::Last(5).resolve(0).is_err());
    }

    #[test]
    fn conditions_follow_http_precedence() {
        let record = ObjectRecord {
            namespace: Namespace::new("default").unwrap_or_else(|_| unreachable!()),
            bucket: BucketName::new("bkt").unwrap_or_else(|_| unreachable!()),
            key: "k".into(),
            blob: "x".into(),
            size: 1,
            etag: "abc".into(),
            content_type: None,
            metadata: BTreeMap::new(),
            headers: BTreeMap::new(),
            modified_ms: 10_000,
        };
        let not_modified = Err(ObjectError::NotModified {
            etag: "abc".into(),
            modified_ms: 10_000,
        });
        let c = |f: fn(&mut ReadConditions)| {
            let mut c = ReadConditions::default();
            f(&mut c);
            check(&record, &c)
        };
        assert_eq!(c(|c| c.if_match = Some("\"abc\"".into())), Ok(()));
        assert_eq!(
            c(|c| c.if_match = Some("\"zzz\"".into())),
            Err(ObjectError::PreconditionFailed)
        );
        assert_eq!(c(|c| c.if_none_match = Some("*".into())), not_modified);
        assert_eq!(c(|c| c.if_modified_since = Some(10_500)), not_modified);
        assert_eq!(c(|c| c.if_modified_since = Some(9_000)), Ok(()));
        assert_eq!(
            c(|c| c.if_unmodified_since = Some(9_000)),
            Err(ObjectError::PreconditionFailed)
        );
        // If-Match wins over If-Unmodified-Since.
        assert_eq!(
            c(|c| {
                c.if_match = Some("abc".into());
                c.if_unmodified_since = Some(0);
            }),
            Ok(())
        );
    }
}

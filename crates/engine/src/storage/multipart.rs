//! Multipart uploads: parts stream into blobs of their own; completing an upload checks
//! the parts the client lists (order, ETags, sizes), writes them one after another into
//! the object's blob (a kernel copy), and commits the object, its events and the
//! upload's removal together.

use super::objects::{ByteRange, ByteStream, ObjectInfo, ReadConditions, bare_etag};
use super::store_error;
use crate::{Cause, Engine};
use md5::{Digest, Md5};
use std::collections::HashMap;
use wisp_core::wall::now_ms;
use wisp_core::{BucketName, Limits, Namespace, ObjectError, StorageEvent, object::check_key};
use wisp_store::{Condition, ObjectRecord, PartRecord, PartWrite, PutObject, UploadRecord, WrittenBlob};

fn check_part_number(number: u32) -> Result<(), ObjectError> {
    if !(1..=Limits::MAX_PARTS).contains(&number) {
        return Err(ObjectError::InvalidArgument(format!(
            "part number {number} is out of range: use 1 to {}",
            Limits::MAX_PARTS
        )));
    }
    Ok(())
}

impl Engine {
    /// Starts a multipart upload of an object that will say `info` about itself.
    pub async fn create_upload(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
        info: ObjectInfo,
    ) -> Result<UploadRecord, ObjectError> {
        check_key(key)?;
        super::objects::check_metadata(&info.metadata)?;
        let upload = UploadRecord {
            namespace: namespace.clone(),
            bucket: bucket.clone(),
            key: key.to_string(),
            upload_id: uuid::Uuid::now_v7().simple().to_string(),
            created_ms: now_ms(),
            content_type: info.content_type,
            metadata: info.metadata,
            headers: info.headers,
        };
        if !self.store.create_upload(&upload).await.map_err(store_error)? {
            return Err(ObjectError::NoSuchBucket(bucket.to_string()));
        }
        Ok(upload)
    }

    /// The upload `upload_id` of `key`, or `NoSuchUpload` (`NoSuchBucket` when the
    /// bucket is what is missing).
    async fn upload(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord, ObjectError> {
        match self
            .store
            .get_upload(namespace, bucket, upload_id)
            .await
            .map_err(store_error)?
        {
            Some(upload) if upload.key == key => Ok(upload),
            _ => {
                self.bucket(namespace, bucket).await?;
                Err(ObjectError::NoSuchUpload(upload_id.to_string()))
            }
        }
    }

    /// Uploads one part from a stream.
    #[allow(
        clippy::too_many_arguments,
        reason = "S3's UploadPart names the upload, the part and its checks"
    )]
    pub async fn upload_part(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
        upload_id: &str,
        number: u32,
        body: ByteStream,
        length: Option<u64>,
        content_md5: Option<[u8; 16]>,
    ) -> Result<PartRecord, ObjectError> {
        check_part_number(number)?;
        self.upload(namespace, bucket, key, upload_id).await?;
        let max = Limits::MAX_PART_BYTES.min(self.limits.max_object_bytes);
        let written = self.write_blob(body, max, length, content_md5).await?;
        self.record_part(upload_id, number, written).await
    }

    /// Records a part whose blob is durable; removes the part it replaced, or its own
    /// blob when the upload is gone.
    async fn record_part(
        &self,
        upload_id: &str,
        number: u32,
        written: WrittenBlob,
    ) -> Result<PartRecord, ObjectError> {
        let part = PartRecord {
            upload_id: upload_id.to_string(),
            number,
            blob: written.id,
            size: written.size,
            etag: hex::encode(written.md5),
            modified_ms: now_ms(),
        };
        match self.store.put_part(&part).await {
            Ok(PartWrite::Stored { replaced }) => {
                self.remove_blobs(replaced.map(|p| p.blob)).await;
                Ok(part)
            }
            Ok(PartWrite::NoUpload) => {
                self.remove_blobs([part.blob]).await;
                Err(ObjectError::NoSuchUpload(part.upload_id))
            }
            Err(e) => {
                self.remove_blobs([part.blob]).await;
                Err(store_error(e))
            }
        }
    }

    /// Uploads one part copied from (a range of) an existing object.
    #[allow(
        clippy::too_many_arguments,
        reason = "S3's UploadPartCopy names the upload, the part and its source"
    )]
    pub async fn upload_part_copy(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
        upload_id: &str,
        number: u32,
        source: (&BucketName, &str),
        range: Option<ByteRange>,
        source_conditions: &ReadConditions,
    ) -> Result<PartRecord, ObjectError> {
        check_part_number(number)?;
        self.upload(namespace, bucket, key, upload_id).await?;
        let read = self
            .get_object(namespace, source.0, source.1, range, source_conditions)
            .await
            .map_err(|e| match e {
                ObjectError::NotModified { .. } => ObjectError::PreconditionFailed,
                e => e,
            })?;
        let length = read.len();
        let written = self
            .write_blob(read.body, Limits::MAX_PART_BYTES, Some(length), None)
            .await?;
        self.record_part(upload_id, number, written).await
    }

    /// An upload's parts numbered above `after`, at most `max` (capped at 1,000), and
    /// whether more follow.
    pub async fn list_parts(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
        upload_id: &str,
        after: u32,
        max: u32,
    ) -> Result<(UploadRecord, Vec<PartRecord>, bool), ObjectError> {
        let upload = self.upload(namespace, bucket, key, upload_id).await?;
        let max = max.clamp(1, Limits::MAX_KEYS);
        let mut parts = self
            .store
            .list_parts(upload_id, after, max + 1)
            .await
            .map_err(store_error)?;
        let truncated = parts.len() > max as usize;
        parts.truncate(max as usize);
        Ok((upload, parts, truncated))
    }

    /// Completes an upload from the parts the client lists (number and ETag, in
    /// ascending order): each must have been uploaded with that ETag, and every one but
    /// the last must hold at least 5 MiB. The object's ETag is S3's: the MD5 of the
    /// parts' MD5s, then `-N`. `condition` is checked against the object the key holds
    /// (S3's `If-None-Match: *` / `If-Match` on completion) when the object is committed;
    /// a refused completion leaves the upload to be completed again.
    #[allow(
        clippy::too_many_arguments,
        reason = "S3's CompleteMultipartUpload names the upload and its parts"
    )]
    pub async fn complete_upload(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
        upload_id: &str,
        listed: Vec<(u32, String)>,
        condition: Condition,
        cause: Cause,
    ) -> Result<ObjectRecord, ObjectError> {
        let upload = self.upload(namespace, bucket, key, upload_id).await?;
        let bucket_record = self.bucket(namespace, bucket).await?;
        // Refused early, before the parts are joined; the commit checks it again.
        if condition != Condition::None {
            let current = self
                .store
                .get_object(namespace, bucket, key)
                .await
                .map_err(store_error)?;
            if !condition.holds(current.as_ref()) {
                return Err(ObjectError::PreconditionFailed);
            }
        }
        if listed.is_empty() {
            return Err(ObjectError::InvalidArgument(
                "a multipart upload is completed with at least one part".into(),
            ));
        }
        if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(ObjectError::InvalidPartOrder);
        }
        let uploaded: HashMap<u32, PartRecord> = self
            .store
            .list_parts(upload_id, 0, Limits::MAX_PARTS)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|p| (p.number, p))
            .collect();
        let mut chosen = Vec::with_capacity(listed.len());
        let mut md5s = Md5::new();
        let mut size = 0u64;
        for (i, (number, etag)) in listed.iter().enumerate() {
            let part = uploaded.get(number).filter(|p| p.etag == bare_etag(etag)).ok_or_else(|| {
                ObjectError::InvalidPart(format!(
                    "part {number} with ETag {etag} was not uploaded to upload `{upload_id}` (or has another ETag)"
                ))
            })?;
            if i + 1 < listed.len() && part.size < Limits::MIN_PART_BYTES {
                return Err(ObjectError::EntityTooSmall {
                    part: *number,
                    size: part.size,
                    min: Limits::MIN_PART_BYTES,
                });
            }
            let digest = hex::decode(&part.etag)
                .map_err(|_| ObjectError::Internal(format!("part {number} has a bad ETag")))?;
            md5s.update(&digest);
            size += part.size;
            chosen.push(part.blob.clone());
        }
        if size > self.limits.max_object_bytes {
            return Err(ObjectError::EntityTooLarge {
                max: self.limits.max_object_bytes,
            });
        }
        let (blob, written) = self
            .storage
            .blobs
            .concat(&chosen)
            .await
            .map_err(|e| super::io_error("joining the parts", e))?;
        if written != size {
            self.remove_blobs([blob]).await;
            return Err(ObjectError::Internal(format!(
                "the parts of upload `{upload_id}` hold {written} bytes, not the {size} their records say"
            )));
        }
        let record = ObjectRecord {
            namespace: namespace.clone(),
            bucket: bucket.clone(),
            key: key.to_string(),
            blob,
            size,
            etag: format!("{}-{}", hex::encode(md5s.finalize()), listed.len()),
            content_type: upload.content_type,
            metadata: upload.metadata,
            headers: upload.headers,
            modified_ms: now_ms(),
        };
        let events = self.storage_events(
            &bucket_record,
            StorageEvent::CompleteMultipartUpload,
            key,
            Some(&record),
            &cause,
        );
        let notify = !events.is_empty();
        let put = PutObject {
            record: record.clone(),
            events,
            condition,
            namespace_limit: self.storage_limit(namespace),
        };
        match self.store.complete_upload(upload_id, put).await {
            Ok(Some((written, parts))) => {
                self.remove_blobs(parts.into_iter().map(|p| p.blob)).await;
                self.settle(Ok(written), record, notify).await
            }
            Ok(None) => {
                self.remove_blobs([record.blob]).await;
                Err(ObjectError::NoSuchUpload(upload_id.to_string()))
            }
            Err(e) => self.settle(Err(e), record, notify).await,
        }
    }

    /// Aborts an upload: its parts go.
    pub async fn abort_upload(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
        upload_id: &str,
    ) -> Result<(), ObjectError> {
        self.upload(namespace, bucket, key, upload_id).await?;
        match self
            .store
            .abort_upload(namespace, bucket, upload_id)
            .await
            .map_err(store_error)?
        {
            Some(parts) => {
                self.remove_blobs(parts.into_iter().map(|p| p.blob)).await;
                Ok(())
            }
            None => Err(ObjectError::NoSuchUpload(upload_id.to_string())),
        }
    }

    /// A bucket's unfinished uploads (see [`wisp_store::Objects::list_uploads`]), at
    /// most `max` (capped at 1,000), and whether more follow.
    pub async fn list_uploads(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        prefix: &str,
        after: Option<(String, String)>,
        max: u32,
    ) -> Result<(Vec<UploadRecord>, bool), ObjectError> {
        self.bucket(namespace, bucket).await?;
        let max = max.clamp(1, Limits::MAX_KEYS);
        let mut uploads = self
            .store
            .list_uploads(namespace, bucket, prefix, after, max + 1)
            .await
            .map_err(store_error)?;
        let truncated = uploads.len() > max as usize;
        uploads.truncate(max as usize);
        Ok((uploads, truncated))
    }
}

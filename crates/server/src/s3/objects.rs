//! Object operations: `PutObject` (streamed, with `Content-MD5`, additional checksums
//! and `If-None-Match: *` / `If-Match`), `GetObject` and `HeadObject` (ranges,
//! conditional reads, `response-*` overrides), `DeleteObject` and `DeleteObjects` (with
//! `If-Match`), and `CopyObject`.
//!
//! An object keeps `Cache-Control`, `Content-Disposition`, `Content-Encoding`,
//! `Content-Language` and `Expires` ([`ObjectHeaders`]) and answers them on every read;
//! a storage class is accepted and dropped; anything that would change who may read an
//! object is refused ([`convert::refuse_unsupported`]).

use super::auth::{caller, write_cause};
use super::checksum::{Declared, verify};
use super::convert::{
    self, ObjectHeaders, WriteOptions, body_in, body_out, bucket, byte_range, content_md5, content_type,
    copy_source, error, etag, etag_condition, invalid_argument, length, match_condition, metadata_in,
    metadata_out, not_implemented, read_conditions, refuse_unsupported, timestamp, unversioned,
    write_condition,
};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use wisp_core::ObjectError;
use wisp_engine::{Engine, ObjectInfo, ObjectPut};
use wisp_store::{Condition, ObjectRecord};

/// The most keys one `DeleteObjects` may name.
const MAX_DELETE_KEYS: usize = 1000;

pub(super) async fn put(
    engine: &Engine,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let caller = caller(&req)?;
    let cause = write_cause(engine, &req, &caller);
    let declared = Declared::from_headers(&req.headers);
    let trailers = req.trailing_headers.clone();
    let input = req.input;
    refuse_unsupported(WriteOptions {
        acl: input.acl.as_ref(),
        grants: input.grant_full_control.is_some()
            || input.grant_read.is_some()
            || input.grant_read_acp.is_some()
            || input.grant_write_acp.is_some(),
        tagging: input.tagging.is_some(),
        sse_customer: input.sse_customer_algorithm.is_some(),
        sse: input.server_side_encryption.as_ref().map(|s| s.as_str()),
        object_lock: input.object_lock_mode.is_some() || input.object_lock_legal_hold_status.is_some(),
    })?;
    if input.write_offset_bytes.is_some() {
        return Err(not_implemented("appending to an object is not supported"));
    }
    let name = bucket(&input.bucket)?;
    let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    let headers = ObjectHeaders {
        cache_control: input.cache_control,
        content_disposition: input.content_disposition,
        content_encoding: input.content_encoding,
        content_language: input.content_language,
        expires: input.expires,
    };
    let put = ObjectPut {
        content_type: input.content_type,
        metadata: metadata_in(input.metadata),
        headers: headers.into_map()?,
        content_md5: input.content_md5.as_deref().map(content_md5).transpose()?,
        length: length(input.content_length)?,
        condition,
    };
    let (body, verdict) = verify(body_in(input.body), declared, trailers);
    let written = engine
        .put_object(&caller.namespace, &name, &input.key, put, body, cause)
        .await;
    // A checksum that did not match failed the body; say so rather than what the
    // engine made of the failed body.
    let checksum = verdict.outcome()?;
    let record = written.map_err(error)?;
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(etag(&record.etag)),
        checksum_crc32: checksum.checksum_crc32,
        checksum_crc32c: checksum.checksum_crc32c,
        checksum_crc64nvme: checksum.checksum_crc64nvme,
        checksum_sha1: checksum.checksum_sha1,
        checksum_sha256: checksum.checksum_sha256,
        ..PutObjectOutput::default()
    }))
}

pub(super) async fn get(
    engine: &Engine,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let caller = caller(&req)?;
    let input = req.input;
    unversioned(input.version_id.as_deref())?;
    if input.part_number.is_some() {
        return Err(not_implemented(
            "reading an object by part number is not supported: use a Range",
        ));
    }
    let name = bucket(&input.bucket)?;
    let conditions = read_conditions(
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    let overrides = Overrides {
        content_type: input.response_content_type,
        headers: ObjectHeaders {
            cache_control: input.response_cache_control,
            content_disposition: input.response_content_disposition,
            content_encoding: input.response_content_encoding,
            content_language: input.response_content_language,
            expires: input.response_expires,
        },
    };
    let read = engine
        .get_object(
            &caller.namespace,
            &name,
            &input.key,
            input.range.map(byte_range),
            &conditions,
        )
        .await
        .map_err(error)?;
    let len = read.len();
    let record = read.record;
    let content_range = read
        .range
        .map(|(start, end)| format!("bytes {start}-{}/{}", end.saturating_sub(1), record.size));
    let served = Served::new(&record, overrides);
    Ok(S3Response::new(GetObjectOutput {
        accept_ranges: Some("bytes".to_string()),
        content_length: Some(i64::try_from(len).map_err(|_| convert::internal_error())?),
        content_range,
        content_type: Some(served.content_type),
        cache_control: served.headers.cache_control,
        content_disposition: served.headers.content_disposition,
        content_encoding: served.headers.content_encoding,
        content_language: served.headers.content_language,
        expires: served.headers.expires,
        e_tag: Some(etag(&record.etag)),
        last_modified: Some(timestamp(record.modified_ms)),
        metadata: metadata_out(&record.metadata),
        body: Some(body_out(read.body, len)),
        ..GetObjectOutput::default()
    }))
}

pub(super) async fn head(
    engine: &Engine,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let caller = caller(&req)?;
    let input = req.input;
    unversioned(input.version_id.as_deref())?;
    if input.part_number.is_some() {
        return Err(not_implemented(
            "reading an object by part number is not supported: use a Range",
        ));
    }
    let name = bucket(&input.bucket)?;
    let conditions = read_conditions(
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    let overrides = Overrides {
        content_type: input.response_content_type,
        headers: ObjectHeaders {
            cache_control: input.response_cache_control,
            content_disposition: input.response_content_disposition,
            content_encoding: input.response_content_encoding,
            content_language: input.response_content_language,
            expires: input.response_expires,
        },
    };
    // A Range on HEAD is ignored (as HTTP allows): the answer describes the object.
    let record = engine
        .head_object(&caller.namespace, &name, &input.key, &conditions)
        .await
        .map_err(error)?;
    let served = Served::new(&record, overrides);
    Ok(S3Response::new(HeadObjectOutput {
        accept_ranges: Some("bytes".to_string()),
        content_length: Some(i64::try_from(record.size).map_err(|_| convert::internal_error())?),
        content_type: Some(served.content_type),
        cache_control: served.headers.cache_control,
        content_disposition: served.headers.content_disposition,
        content_encoding: served.headers.content_encoding,
        content_language: served.headers.content_language,
        expires: served.headers.expires,
        e_tag: Some(etag(&record.etag)),
        last_modified: Some(timestamp(record.modified_ms)),
        metadata: metadata_out(&record.metadata),
        ..HeadObjectOutput::default()
    }))
}

pub(super) async fn delete(
    engine: &Engine,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let caller = caller(&req)?;
    let cause = write_cause(engine, &req, &caller);
    let input = req.input;
    unversioned(input.version_id.as_deref())?;
    if input.if_match_last_modified_time.is_some() || input.if_match_size.is_some() {
        return Err(not_implemented(
            "deletes conditional on a modification time or a size are not supported: use If-Match",
        ));
    }
    let name = bucket(&input.bucket)?;
    let condition = input.if_match.as_ref().map_or(Condition::None, match_condition);
    engine
        .delete_object(&caller.namespace, &name, &input.key, condition, cause)
        .await
        .map_err(error)?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

pub(super) async fn delete_many(
    engine: &Engine,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let caller = caller(&req)?;
    let cause = write_cause(engine, &req, &caller);
    let input = req.input;
    let name = bucket(&input.bucket)?;
    let objects = input.delete.objects;
    if objects.len() > MAX_DELETE_KEYS {
        return Err(S3Error::with_message(
            S3ErrorCode::MalformedXML,
            format!(
                "a DeleteObjects request names at most {MAX_DELETE_KEYS} keys; this one names {}",
                objects.len()
            ),
        ));
    }
    // A missing bucket fails the whole request, as in S3.
    engine.bucket(&caller.namespace, &name).await.map_err(error)?;
    let quiet = input.delete.quiet == Some(true);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for object in objects {
        let refusal = |code: &str, message: String| Error {
            code: Some(code.to_string()),
            key: Some(object.key.clone()),
            message: Some(message),
            version_id: object.version_id.clone(),
        };
        if let Err(e) = unversioned(object.version_id.as_deref()) {
            errors.push(refusal(
                "InvalidArgument",
                e.message().unwrap_or_default().to_string(),
            ));
            continue;
        }
        if object.last_modified_time.is_some() || object.size.is_some() {
            errors.push(refusal(
                "NotImplemented",
                "deletes conditional on a modification time or a size are not supported: use ETag".into(),
            ));
            continue;
        }
        let condition = object.e_tag.as_ref().map_or(Condition::None, etag_condition);
        match engine
            .delete_object(&caller.namespace, &name, &object.key, condition, cause.clone())
            .await
        {
            Ok(()) => {
                if !quiet {
                    deleted.push(DeletedObject {
                        key: Some(object.key.clone()),
                        version_id: object.version_id.clone(),
                        ..DeletedObject::default()
                    });
                }
            }
            Err(ObjectError::Internal(cause)) => {
                tracing::error!("s3: deleting `{}` of bucket `{name}` failed: {cause}", object.key);
                errors.push(refusal(
                    "InternalError",
                    "We encountered an internal error. Please try again.".into(),
                ));
            }
            Err(e) => errors.push(refusal(e.s3_code(), e.to_string())),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: (!deleted.is_empty()).then_some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..DeleteObjectsOutput::default()
    }))
}

pub(super) async fn copy(
    engine: &Engine,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let caller = caller(&req)?;
    let cause = write_cause(engine, &req, &caller);
    let input = req.input;
    refuse_unsupported(WriteOptions {
        acl: input.acl.as_ref(),
        grants: input.grant_full_control.is_some()
            || input.grant_read.is_some()
            || input.grant_read_acp.is_some()
            || input.grant_write_acp.is_some(),
        tagging: input.tagging.is_some(),
        sse_customer: input.sse_customer_algorithm.is_some()
            || input.copy_source_sse_customer_algorithm.is_some(),
        sse: input.server_side_encryption.as_ref().map(|s| s.as_str()),
        object_lock: input.object_lock_mode.is_some() || input.object_lock_legal_hold_status.is_some(),
    })?;
    let target = bucket(&input.bucket)?;
    let (source_bucket, source_key) = copy_source(&input.copy_source)?;
    let replace = match input.metadata_directive.as_ref().map(|d| d.as_str()) {
        None | Some(MetadataDirective::COPY) => None,
        Some(MetadataDirective::REPLACE) => Some(ObjectInfo {
            content_type: input.content_type,
            metadata: metadata_in(input.metadata),
            headers: ObjectHeaders {
                cache_control: input.cache_control,
                content_disposition: input.content_disposition,
                content_encoding: input.content_encoding,
                content_language: input.content_language,
                expires: input.expires,
            }
            .into_map()?,
        }),
        Some(other) => {
            return Err(invalid_argument(format!(
                "unknown metadata directive `{other}`: use COPY or REPLACE"
            )));
        }
    };
    if replace.is_none() && source_bucket == target && source_key == input.key {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing \
             the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    let conditions = read_conditions(
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    )?;
    let record = engine
        .copy_object(
            &caller.namespace,
            (&source_bucket, &source_key),
            (&target, &input.key),
            replace,
            &conditions,
            cause,
        )
        .await
        .map_err(error)?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&record.etag)),
            last_modified: Some(timestamp(record.modified_ms)),
            ..CopyObjectResult::default()
        }),
        ..CopyObjectOutput::default()
    }))
}

/// `GetObject`'s and `HeadObject`'s `response-*` parameters: what the answer says in
/// place of what the object keeps. S3 takes them only on signed requests, as every
/// request here is. (`s3s` sets them on a `GetObject` answer too; the answer here is
/// already what it sets.)
struct Overrides {
    content_type: Option<String>,
    headers: ObjectHeaders,
}

/// The content type and headers a read answers with.
struct Served {
    content_type: String,
    headers: ObjectHeaders,
}

impl Served {
    fn new(record: &ObjectRecord, overrides: Overrides) -> Served {
        Served {
            content_type: overrides
                .content_type
                .unwrap_or_else(|| content_type(record.content_type.as_ref())),
            headers: ObjectHeaders::from_map(&record.headers).overridden(overrides.headers),
        }
    }
}

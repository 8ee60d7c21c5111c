//! Multipart uploads: `CreateMultipartUpload`, `UploadPart` (streamed, checked like a
//! put), `UploadPartCopy` (with `x-amz-copy-source-range`), `ListParts`,
//! `CompleteMultipartUpload` (whose ETag is S3's `"md5-of-md5s-N"`, with `If-None-Match:
//! *` / `If-Match`),
//! `AbortMultipartUpload` and `ListMultipartUploads`.

use super::auth::{caller, write_cause};
use super::buckets::owner;
use super::checksum::{Declared, verify};
use super::convert::{
    ObjectHeaders, WriteOptions, body_in, bucket, content_md5, copy_range, copy_source, error, etag,
    invalid_argument, length, metadata_in, not_implemented, read_conditions, refuse_unsupported, timestamp,
    url_encode, write_condition,
};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};
use wisp_core::{Limits, Namespace};
use wisp_engine::{Engine, ObjectInfo};

/// The most parts or uploads one page lists (and the default).
const MAX_PAGE: i32 = Limits::MAX_KEYS as i32;

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=Limits::MAX_PARTS).contains(n))
        .ok_or_else(|| {
            invalid_argument(format!(
                "Part number must be an integer between 1 and {}, inclusive (not {n})",
                Limits::MAX_PARTS
            ))
        })
}

/// A page size: `max-parts` / `max-uploads`.
fn page_size(asked: Option<i32>, what: &str) -> S3Result<u32> {
    match asked {
        None => Ok(MAX_PAGE.unsigned_abs()),
        Some(n) if n < 0 => Err(invalid_argument(format!("{what} may not be negative"))),
        Some(n) => Ok(n.min(MAX_PAGE).unsigned_abs()),
    }
}

fn initiator(namespace: &Namespace) -> Initiator {
    Initiator {
        display_name: Some(namespace.to_string()),
        id: Some(namespace.to_string()),
    }
}

pub(super) async fn create(
    engine: &Engine,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let caller = caller(&req)?;
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
    let name = bucket(&input.bucket)?;
    let info = ObjectInfo {
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
    };
    let upload = engine
        .create_upload(&caller.namespace, &name, &input.key, info)
        .await
        .map_err(error)?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload.upload_id),
        ..CreateMultipartUploadOutput::default()
    }))
}

pub(super) async fn upload_part(
    engine: &Engine,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let caller = caller(&req)?;
    let declared = Declared::from_headers(&req.headers);
    let trailers = req.trailing_headers.clone();
    let input = req.input;
    if input.sse_customer_algorithm.is_some() {
        return Err(not_implemented(
            "server-side encryption with customer-provided keys (SSE-C) is not supported",
        ));
    }
    let name = bucket(&input.bucket)?;
    let number = part_number(input.part_number)?;
    let md5 = input.content_md5.as_deref().map(content_md5).transpose()?;
    let (body, verdict) = verify(body_in(input.body), declared, trailers);
    let part = engine
        .upload_part(
            &caller.namespace,
            &name,
            &input.key,
            &input.upload_id,
            number,
            body,
            length(input.content_length)?,
            md5,
        )
        .await;
    let checksum = verdict.outcome()?;
    let part = part.map_err(error)?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(etag(&part.etag)),
        checksum_crc32: checksum.checksum_crc32,
        checksum_crc32c: checksum.checksum_crc32c,
        checksum_crc64nvme: checksum.checksum_crc64nvme,
        checksum_sha1: checksum.checksum_sha1,
        checksum_sha256: checksum.checksum_sha256,
        ..UploadPartOutput::default()
    }))
}

pub(super) async fn upload_part_copy(
    engine: &Engine,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let caller = caller(&req)?;
    let input = req.input;
    if input.sse_customer_algorithm.is_some() || input.copy_source_sse_customer_algorithm.is_some() {
        return Err(not_implemented(
            "server-side encryption with customer-provided keys (SSE-C) is not supported",
        ));
    }
    let name = bucket(&input.bucket)?;
    let number = part_number(input.part_number)?;
    let (source_bucket, source_key) = copy_source(&input.copy_source)?;
    let range = input.copy_source_range.as_deref().map(copy_range).transpose()?;
    let conditions = read_conditions(
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    )?;
    let part = engine
        .upload_part_copy(
            &caller.namespace,
            &name,
            &input.key,
            &input.upload_id,
            number,
            (&source_bucket, &source_key),
            range,
            &conditions,
        )
        .await
        .map_err(error)?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&part.etag)),
            last_modified: Some(timestamp(part.modified_ms)),
            ..CopyPartResult::default()
        }),
        ..UploadPartCopyOutput::default()
    }))
}

pub(super) async fn list_parts(
    engine: &Engine,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let caller = caller(&req)?;
    let input = req.input;
    let name = bucket(&input.bucket)?;
    let after = match input.part_number_marker {
        None => 0,
        Some(n) => {
            u32::try_from(n).map_err(|_| invalid_argument("part-number-marker may not be negative"))?
        }
    };
    let max = page_size(input.max_parts, "max-parts")?;
    let (upload, parts, truncated) = if max == 0 {
        // The engine lists at least one part; a page of none lists none.
        let (upload, _, _) = engine
            .list_parts(&caller.namespace, &name, &input.key, &input.upload_id, after, 1)
            .await
            .map_err(error)?;
        (upload, Vec::new(), false)
    } else {
        engine
            .list_parts(&caller.namespace, &name, &input.key, &input.upload_id, after, max)
            .await
            .map_err(error)?
    };
    let next = parts.last().map(|p| p.number).filter(|_| truncated);
    let parts: Vec<Part> = parts
        .into_iter()
        .map(|p| Part {
            e_tag: Some(etag(&p.etag)),
            last_modified: Some(timestamp(p.modified_ms)),
            part_number: i32::try_from(p.number).ok(),
            size: Some(i64::try_from(p.size).unwrap_or(i64::MAX)),
            ..Part::default()
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(upload.key),
        upload_id: Some(upload.upload_id),
        initiator: Some(initiator(&caller.namespace)),
        owner: Some(owner(&caller.namespace)),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        is_truncated: Some(truncated),
        max_parts: Some(i32::try_from(max).unwrap_or(MAX_PAGE)),
        part_number_marker: Some(i32::try_from(after).unwrap_or(i32::MAX)),
        next_part_number_marker: next.and_then(|n| i32::try_from(n).ok()),
        parts: Some(parts),
        ..ListPartsOutput::default()
    }))
}

pub(super) async fn complete(
    engine: &Engine,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let caller = caller(&req)?;
    let cause = write_cause(engine, &req, &caller);
    // The object's URL, as S3 answers it (plain HTTP unless the request says otherwise).
    let origin = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|host| format!("{}://{host}", req.uri.scheme_str().unwrap_or("http")));
    let input = req.input;
    let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    let name = bucket(&input.bucket)?;
    let mut listed = Vec::new();
    for part in input.multipart_upload.and_then(|m| m.parts).unwrap_or_default() {
        let (Some(number), Some(tag)) = (part.part_number, part.e_tag) else {
            return Err(s3s::S3Error::with_message(
                s3s::S3ErrorCode::MalformedXML,
                "every Part of a CompleteMultipartUpload needs a PartNumber and an ETag",
            ));
        };
        listed.push((part_number(number)?, tag.value().to_string()));
    }
    let record = engine
        .complete_upload(
            &caller.namespace,
            &name,
            &input.key,
            &input.upload_id,
            listed,
            condition,
            cause,
        )
        .await
        .map_err(error)?;
    let location = match origin {
        Some(origin) => format!("{origin}/{name}/{}", url_encode(&input.key)),
        None => format!("/{name}/{}", url_encode(&input.key)),
    };
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        e_tag: Some(etag(&record.etag)),
        location: Some(location),
        ..CompleteMultipartUploadOutput::default()
    }))
}

pub(super) async fn abort(
    engine: &Engine,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let caller = caller(&req)?;
    let input = req.input;
    if input.if_match_initiated_time.is_some() {
        return Err(not_implemented(
            "conditional AbortMultipartUpload is not supported",
        ));
    }
    let name = bucket(&input.bucket)?;
    engine
        .abort_upload(&caller.namespace, &name, &input.key, &input.upload_id)
        .await
        .map_err(error)?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

/// Above every upload id (they are lowercase hex): `(key, AFTER_EVERY_ID)` lists the
/// uploads of keys after `key`.
const AFTER_EVERY_ID: &str = "~";

pub(super) async fn list_uploads(
    engine: &Engine,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let caller = caller(&req)?;
    let input = req.input;
    if input.delimiter.as_deref().is_some_and(|d| !d.is_empty()) {
        return Err(not_implemented(
            "listing multipart uploads with a delimiter is not supported",
        ));
    }
    let url = match input.encoding_type.as_ref().map(EncodingType::as_str) {
        None => false,
        Some(EncodingType::URL) => true,
        Some(other) => {
            return Err(invalid_argument(format!(
                "Invalid Encoding Method specified in Request: `{other}` (use url)"
            )));
        }
    };
    let text = |s: &str| if url { url_encode(s) } else { s.to_string() };
    let name = bucket(&input.bucket)?;
    let max = page_size(input.max_uploads, "max-uploads")?;
    // S3: the upload id marker counts only with a key marker; a key marker alone
    // starts after every upload of that key.
    let after = input.key_marker.clone().filter(|k| !k.is_empty()).map(|key| {
        let id = input
            .upload_id_marker
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| AFTER_EVERY_ID.to_string());
        (key, id)
    });
    let prefix = input.prefix.clone().unwrap_or_default();
    let (uploads, truncated) = if max == 0 {
        engine.bucket(&caller.namespace, &name).await.map_err(error)?;
        (Vec::new(), false)
    } else {
        engine
            .list_uploads(&caller.namespace, &name, &prefix, after, max)
            .await
            .map_err(error)?
    };
    let last = uploads.last().filter(|_| truncated);
    let next_key_marker = last.map(|u| text(&u.key));
    let next_upload_id_marker = last.map(|u| u.upload_id.clone());
    let uploads: Vec<MultipartUpload> = uploads
        .into_iter()
        .map(|u| MultipartUpload {
            initiated: Some(timestamp(u.created_ms)),
            initiator: Some(initiator(&caller.namespace)),
            key: Some(text(&u.key)),
            owner: Some(owner(&caller.namespace)),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            upload_id: Some(u.upload_id),
            ..MultipartUpload::default()
        })
        .collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        encoding_type: input.encoding_type,
        is_truncated: Some(truncated),
        key_marker: Some(text(input.key_marker.as_deref().unwrap_or_default())),
        upload_id_marker: Some(input.upload_id_marker.unwrap_or_default()),
        max_uploads: Some(i32::try_from(max).unwrap_or(MAX_PAGE)),
        next_key_marker,
        next_upload_id_marker,
        prefix: Some(text(&prefix)),
        uploads: (!uploads.is_empty()).then_some(uploads),
        ..ListMultipartUploadsOutput::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_numbers_and_page_sizes_are_checked() {
        assert_eq!(part_number(1).ok(), Some(1));
        assert_eq!(part_number(10_000).ok(), Some(10_000));
        for bad in [0, -1, 10_001] {
            assert!(part_number(bad).is_err(), "{bad}");
        }
        assert_eq!(page_size(None, "max-parts").ok(), Some(1000));
        assert_eq!(page_size(Some(5), "max-parts").ok(), Some(5));
        assert_eq!(page_size(Some(50_000), "max-parts").ok(), Some(1000));
        assert!(page_size(Some(-2), "max-parts").is_err());
        // Upload ids are lowercase hex, all below the marker that skips a key.
        assert!("0189abcdef".repeat(4).as_str() < AFTER_EVERY_ID);
    }
}

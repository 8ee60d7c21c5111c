//! Bucket operations: `ListBuckets` (the caller's namespace's, with S3's prefix and
//! continuation), `CreateBucket`, `DeleteBucket`, `HeadBucket`, `GetBucketLocation`.

use super::REGION;
use super::auth::caller;
use super::convert::{bucket, error, invalid_argument, not_implemented, timestamp, token, untoken};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};
use wisp_core::Namespace;
use wisp_engine::Engine;

/// The owner every listing names: the namespace (S3's owner is the account).
pub(super) fn owner(namespace: &Namespace) -> Owner {
    Owner {
        display_name: Some(namespace.to_string()),
        id: Some(namespace.to_string()),
    }
}

pub(super) async fn list(
    engine: &Engine,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let caller = caller(&req)?;
    let input = req.input;
    let max = match input.max_buckets {
        None => usize::MAX,
        Some(n @ 1..=10_000) => n as usize,
        Some(n) => {
            return Err(invalid_argument(format!(
                "max-buckets {n} is out of range: use 1 to 10000"
            )));
        }
    };
    let after = input.continuation_token.as_deref().map(untoken).transpose()?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let mut buckets: Vec<Bucket> = engine
        .buckets(&caller.namespace)
        .await
        .map_err(error)?
        .into_iter()
        .filter(|b| b.name.as_str().starts_with(&prefix))
        // A function sees the buckets it is granted, and no others.
        .filter(|b| caller.grants.as_ref().is_none_or(|g| g.bucket(&b.name).is_some()))
        .filter(|b| after.as_deref().is_none_or(|a| b.name.as_str() > a))
        .take(max.saturating_add(1))
        .map(|b| Bucket {
            bucket_region: Some(REGION.to_string()),
            creation_date: Some(timestamp(b.created_ms)),
            name: Some(b.name.to_string()),
        })
        .collect();
    let next = if buckets.len() > max {
        buckets.truncate(max);
        buckets.last().and_then(|b| b.name.as_deref()).map(token)
    } else {
        None
    };
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        continuation_token: next,
        owner: Some(owner(&caller.namespace)),
        prefix: input.prefix,
    }))
}

pub(super) async fn create(
    engine: &Engine,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let caller = caller(&req)?;
    let input = req.input;
    let name = bucket(&input.bucket)?;
    if input.object_lock_enabled_for_bucket == Some(true) {
        return Err(not_implemented("object lock is not supported"));
    }
    let grants = [
        &input.grant_full_control,
        &input.grant_read,
        &input.grant_read_acp,
        &input.grant_write,
        &input.grant_write_acp,
    ];
    if grants.iter().any(|g| g.is_some()) || input.acl.as_ref().is_some_and(|a| a.as_str() != "private") {
        return Err(s3s::S3Error::with_message(
            s3s::S3ErrorCode::AccessControlListNotSupported,
            "The bucket does not allow ACLs: a bucket is readable only with a key of its namespace",
        ));
    }
    // A location constraint is accepted and not kept: Wisp has one region.
    engine
        .create_bucket(&caller.namespace, &name, None)
        .await
        .map_err(error)?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{name}")),
    }))
}

pub(super) async fn delete(
    engine: &Engine,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let caller = caller(&req)?;
    let name = bucket(&req.input.bucket)?;
    engine
        .delete_bucket(&caller.namespace, &name)
        .await
        .map_err(error)?;
    Ok(S3Response::new(DeleteBucketOutput::default()))
}

pub(super) async fn head(
    engine: &Engine,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let caller = caller(&req)?;
    let name = bucket(&req.input.bucket)?;
    engine.bucket(&caller.namespace, &name).await.map_err(error)?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(REGION.to_string()),
        ..HeadBucketOutput::default()
    }))
}

pub(super) async fn location(
    engine: &Engine,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let caller = caller(&req)?;
    let name = bucket(&req.input.bucket)?;
    engine.bucket(&caller.namespace, &name).await.map_err(error)?;
    // us-east-1 is S3's empty location constraint.
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: None,
    }))
}

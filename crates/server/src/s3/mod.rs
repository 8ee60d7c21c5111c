//! The S3 API: the protocol adapter the S3 listener serves. `s3s` parses S3's REST
//! protocol (routing, XML bodies, SigV4 headers and presigned URLs, aws-chunked
//! uploads); this module implements its [`S3`] trait over the engine's object storage.
//!
//! [`handler`] builds the [`S3Handler`]: `s3s`'s service with [`auth`]'s key lookup and
//! role check. The operations live by concern — [`buckets`], [`objects`], [`listing`],
//! [`multipart`], [`notifications`] — over [`convert`] (errors, dates, ETags, ranges,
//! bodies) and [`checksum`] (the `x-amz-checksum-*` a client sends). Every operation
//! not implemented here answers `NotImplemented` (the trait's default).
//!
//! # Design
//!
//! Each request is signed with a Wisp key (a person's `WK…` or a function's `WF…`):
//! the access check finds its [`Caller`](wisp_engine::Caller) once and leaves it in the
//! request's extensions, where every operation reads its namespace. Buckets belong to a
//! namespace, so another tenant's bucket is simply absent (`NoSuchBucket`). Bodies
//! stream both ways; the only bodies read whole are the small XML documents, capped by
//! [`XML_MAX_BODY`]. Browser form uploads (`PostObject`) are refused before `s3s`
//! would buffer their file.

mod auth;
mod buckets;
mod checksum;
mod convert;
mod listing;
mod multipart;
mod notifications;
mod objects;

use http::{Request, Response};
use http_body_util::BodyExt;
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use std::sync::Arc;
use wisp_engine::{Body, Engine};

/// The largest XML request body read (`DeleteObjects` of 1,000 long keys,
/// `CompleteMultipartUpload` of 10,000 parts with checksums, notification rules).
const XML_MAX_BODY: usize = 8 * 1024 * 1024;

/// The region Wisp's S3 API answers as (so `GetBucketLocation` says nothing, as S3
/// does for `us-east-1`).
const REGION: &str = "us-east-1";

/// Serves the S3 API; built by [`handler`].
pub struct S3Handler {
    service: S3Service,
}

/// The S3 API over `engine`'s object storage.
pub fn handler(engine: Arc<Engine>) -> S3Handler {
    let mut builder = S3ServiceBuilder::new(Storage {
        engine: engine.clone(),
    });
    let mut config = s3s::config::S3Config::default();
    config.xml_max_body_size = XML_MAX_BODY;
    // PostObject is refused before s3s sees it (see `is_form_upload`); should one get
    // through, it may buffer nothing.
    config.post_object_max_file_size = 0;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(config))));
    builder.set_auth(auth::Keys {
        engine: engine.clone(),
    });
    builder.set_access(auth::Roles { engine });
    S3Handler {
        service: builder.build(),
    }
}

impl S3Handler {
    /// Answers one request: always an S3 response (errors as S3's XML documents).
    pub async fn handle(&self, request: Request<Body>) -> Response<Body> {
        if is_form_upload(&request) {
            return error_response(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "browser form uploads (POST Object) are not supported: use PutObject or a presigned PUT URL",
            ));
        }
        let request = request.map(s3s::Body::http_body_unsync);
        match self.service.call(request).await {
            Ok(response) => finish(response),
            Err(e) => {
                tracing::error!("s3: cannot answer a request: {:?}", s3s::StdError::from(e));
                plain_internal_error()
            }
        }
    }
}

/// Whether a request is a browser form upload (`POST /bucket` of
/// `multipart/form-data`), which `s3s` would read whole before checking its access.
fn is_form_upload<B>(request: &Request<B>) -> bool {
    request.method() == http::Method::POST
        && request
            .headers()
            .get_all(http::header::CONTENT_TYPE)
            .iter()
            .any(|v| {
                v.to_str().is_ok_and(|v| {
                    v.split(';')
                        .next()
                        .is_some_and(|m| m.trim().eq_ignore_ascii_case("multipart/form-data"))
                })
            })
}

/// An `s3s` response as the listener's; a `304 Not Modified` loses the error document
/// `s3s` gives it (it has no body).
fn finish(response: s3s::HttpResponse) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    if parts.status == http::StatusCode::NOT_MODIFIED {
        parts.headers.remove(http::header::CONTENT_LENGTH);
        parts.headers.remove(http::header::CONTENT_TYPE);
        return Response::from_parts(parts, wisp_engine::body::empty());
    }
    Response::from_parts(parts, body.boxed_unsync())
}

fn error_response(error: S3Error) -> Response<Body> {
    match error.to_http_response() {
        Ok(response) => finish(response),
        Err(e) => {
            tracing::error!("s3: cannot render an error: {e:?}");
            plain_internal_error()
        }
    }
}

fn plain_internal_error() -> Response<Body> {
    let mut response = Response::new(wisp_engine::body::full(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code>\
         <Message>We encountered an internal error. Please try again.</Message></Error>",
    ));
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    response
}

/// Wisp's [`S3`]: each operation is a function of its module.
struct Storage {
    engine: Arc<Engine>,
}

#[async_trait::async_trait]
impl S3 for Storage {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        buckets::list(&self.engine, req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        buckets::create(&self.engine, req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        buckets::delete(&self.engine, req).await
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        buckets::head(&self.engine, req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        buckets::location(&self.engine, req).await
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        objects::put(&self.engine, req).await
    }

    async fn post_object(&self, _req: S3Request<PostObjectInput>) -> S3Result<S3Response<PostObjectOutput>> {
        Err(s3s::s3_error!(
            NotImplemented,
            "browser form uploads (POST Object) are not supported"
        ))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        objects::get(&self.engine, req).await
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        objects::head(&self.engine, req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        objects::delete(&self.engine, req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        objects::delete_many(&self.engine, req).await
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        objects::copy(&self.engine, req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        listing::list_v1(&self.engine, req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        listing::list_v2(&self.engine, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create(&self.engine, req).await
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(&self.engine, req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(&self.engine, req).await
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(&self.engine, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete(&self.engine, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort(&self.engine, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_uploads(&self.engine, req).await
    }

    async fn put_bucket_notification_configuration(
        &self,
        req: S3Request<PutBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketNotificationConfigurationOutput>> {
        notifications::put(&self.engine, req).await
    }

    async fn get_bucket_notification_configuration(
        &self,
        req: S3Request<GetBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
        notifications::get(&self.engine, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_uploads_are_recognised() {
        let request = |method: &str, content_type: &str| {
            Request::builder()
                .method(method)
                .uri("/bucket")
                .header("content-type", content_type)
                .body(())
                .unwrap_or_else(|_| unreachable!())
        };
        assert!(is_form_upload(&request(
            "POST",
            "multipart/form-data; boundary=x"
        )));
        assert!(is_form_upload(&request("POST", "Multipart/Form-Data;boundary=x")));
        assert!(!is_form_upload(&request(
            "PUT",
            "multipart/form-data; boundary=x"
        )));
        assert!(!is_form_upload(&request("POST", "application/xml")));
    }
}

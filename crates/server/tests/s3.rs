//! The S3 API in process: SigV4-signed requests go straight to `S3Handler::handle` (no
//! socket), over a real SQLite store and blob directory. End-to-end runs with the AWS
//! CLI and boto3 live in the binary's tests; these cover the adapter's own rules:
//! signatures and roles, tenancy, and the shape of a few answers.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use std::sync::Arc;
use wisp_core::{Limits, Namespace, Role};
use wisp_engine::Engine;
use wisp_runtime::wasm::{WasmConfig, WasmRuntime};
use wisp_runtime::{Body, body};
use wisp_server::s3::{S3Handler, handler};
use wisp_store::{NamespaceSettings, SqliteStore};

const ADMIN_ID: &str = "WKSTHREETESTADMIN2";
const ADMIN_SECRET: &str = "s3-test-admin-secret-0123456789abcdefghi";

struct Harness {
    s3: S3Handler,
    engine: Arc<Engine>,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("wisp.db")).unwrap();
    let runtime = WasmRuntime::new(WasmConfig::new(dir.path().join("cache"))).unwrap();
    let engine = Engine::start(
        Arc::new(store),
        Arc::new(runtime),
        Limits::DEFAULT,
        wisp_engine::KeepAlivePolicy::fixed_default(),
        wisp_engine::RetrySettings::default(),
        wisp_engine::MasterKey::generate().unwrap(),
        wisp_engine::StorageConfig {
            blobs: wisp_store::BlobDir::open(&dir.path().join("objects")).unwrap(),
        },
    )
    .await
    .unwrap();
    engine
        .bootstrap(Some(&format!("{ADMIN_ID}.{ADMIN_SECRET}")))
        .await
        .unwrap();
    Harness {
        s3: handler(engine.clone()),
        engine,
        _dir: dir,
    }
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data.as_bytes()).as_ref().to_vec()
}

/// A request signed with AWS Signature V4 (unsigned payload), as an SDK signs one.
/// `query` is written as sent: keys and values already encoded, in sorted order.
fn signed(method: &str, path: &str, query: &str, body: impl Into<Bytes>, key: (&str, &str)) -> Request<Body> {
    let now = chrono::Utc::now();
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = now.format("%Y%m%d").to_string();
    let host = "127.0.0.1:9000";
    let canonical_query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p.contains('=') {
                p.to_string()
            } else {
                format!("{p}=")
            }
        })
        .collect::<Vec<_>>()
        .join("&");
    let canonical = format!(
        "{method}\n{path}\n{canonical_query}\nhost:{host}\nx-amz-content-sha256:UNSIGNED-PAYLOAD\n\
         x-amz-date:{amz_date}\n\nhost;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD"
    );
    let scope = format!("{date}/us-east-1/s3/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()))
    );
    let mut signing_key = hmac(format!("AWS4{}", key.1).as_bytes(), &date);
    for part in ["us-east-1", "s3", "aws4_request"] {
        signing_key = hmac(&signing_key, part);
    }
    let signature = hex::encode(hmac(&signing_key, &string_to_sign));
    let uri = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let body: Bytes = body.into();
    Request::builder()
        .method(method)
        .uri(uri)
        .header("host", host)
        .header("x-amz-date", amz_date)
        .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        .header("content-length", body.len())
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
                 Signature={signature}",
                key.0
            ),
        )
        .body(body::full(body))
        .unwrap()
}

const ADMIN: (&str, &str) = (ADMIN_ID, ADMIN_SECRET);

async fn text(response: Response<Body>) -> (u16, String) {
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn code(xml: &str) -> &str {
    xml.split("<Code>")
        .nth(1)
        .and_then(|s| s.split("</Code>").next())
        .unwrap_or("")
}

#[tokio::test]
async fn objects_round_trip_and_list_encoded() {
    let h = harness().await;
    let (status, _) = text(h.s3.handle(signed("PUT", "/photos", "", "", ADMIN)).await).await;
    assert_eq!(status, 200);

    let put =
        h.s3.handle(signed("PUT", "/photos/in/a%20b.txt", "", "hello world", ADMIN))
            .await;
    assert_eq!(put.status(), 200);
    assert_eq!(
        put.headers().get("etag").unwrap(),
        "\"5eb63bbbe01eeed093cb22bb8f5acdc3\""
    );

    let mut get = signed("GET", "/photos/in/a%20b.txt", "", "", ADMIN);
    get.headers_mut().insert("range", "bytes=6-".parse().unwrap());
    let got = h.s3.handle(get).await;
    assert_eq!(got.status(), 206);
    assert_eq!(got.headers().get("content-range").unwrap(), "bytes 6-10/11");
    assert_eq!(got.headers().get("content-length").unwrap(), "5");
    assert_eq!(text(got).await.1, "world");

    let (status, xml) = text(
        h.s3.handle(signed(
            "GET",
            "/photos",
            "encoding-type=url&list-type=2",
            "",
            ADMIN,
        ))
        .await,
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<Key>in/a%20b.txt</Key>"), "{xml}");
    assert!(xml.contains("<KeyCount>1</KeyCount>"), "{xml}");

    let (status, xml) = text(h.s3.handle(signed("GET", "/photos/nothing", "", "", ADMIN)).await).await;
    assert_eq!((status, code(&xml)), (404, "NoSuchKey"));

    let (status, _) = text(
        h.s3.handle(signed("DELETE", "/photos/in/a%20b.txt", "", "", ADMIN))
            .await,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = text(h.s3.handle(signed("DELETE", "/photos", "", "", ADMIN)).await).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn signatures_roles_and_tenants_are_enforced() {
    let h = harness().await;
    assert_eq!(
        h.s3.handle(signed("PUT", "/photos", "", "", ADMIN))
            .await
            .status(),
        200
    );

    // No signature at all.
    let anonymous = Request::builder()
        .uri("/photos/x")
        .header("host", "127.0.0.1:9000")
        .body(body::empty())
        .unwrap();
    let (status, xml) = text(h.s3.handle(anonymous).await).await;
    assert_eq!((status, code(&xml)), (403, "AccessDenied"));

    // An unknown key, and a known key with the wrong secret.
    let (status, xml) = text(
        h.s3.handle(signed(
            "GET",
            "/photos/x",
            "",
            "",
            ("WKAAAAAAAAAAAAAAAA", ADMIN_SECRET),
        ))
        .await,
    )
    .await;
    assert_eq!((status, code(&xml)), (403, "InvalidAccessKeyId"));
    let (status, xml) = text(
        h.s3.handle(signed("GET", "/photos/x", "", "", (ADMIN_ID, "not-the-secret")))
            .await,
    )
    .await;
    assert_eq!((status, code(&xml)), (403, "SignatureDoesNotMatch"));

    // A read key reads, and may not write.
    let default = Namespace::new("default").unwrap();
    let reader = h
        .engine
        .create_key(None, &default, Role::Read, None, None, None)
        .await
        .unwrap();
    let reader = (reader.record.id.as_str(), reader.secret.as_str());
    let (status, xml) = text(
        h.s3.handle(signed("GET", "/photos", "list-type=2", "", reader))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    let (status, xml) = text(h.s3.handle(signed("PUT", "/photos/x", "", "data", reader)).await).await;
    assert_eq!((status, code(&xml)), (403, "AccessDenied"));
    assert!(xml.contains("role `read`"), "{xml}");

    // Another namespace has its own buckets and cannot see these.
    let other = Namespace::new("other").unwrap();
    h.engine
        .create_namespace(&other, &NamespaceSettings::default())
        .await
        .unwrap();
    let stranger = h
        .engine
        .create_key(None, &other, Role::Deploy, None, None, None)
        .await
        .unwrap();
    let stranger = (stranger.record.id.as_str(), stranger.secret.as_str());
    let (status, xml) = text(
        h.s3.handle(signed("GET", "/photos", "list-type=2", "", stranger))
            .await,
    )
    .await;
    assert_eq!((status, code(&xml)), (404, "NoSuchBucket"));
    let (status, xml) = text(h.s3.handle(signed("GET", "/", "", "", stranger)).await).await;
    assert_eq!(status, 200);
    assert!(!xml.contains("photos"), "{xml}");
    let (status, _) = text(h.s3.handle(signed("PUT", "/photos", "", "", stranger)).await).await;
    assert_eq!(status, 200);
    let (status, xml) = text(h.s3.handle(signed("PUT", "/photos", "", "", ADMIN)).await).await;
    assert_eq!((status, code(&xml)), (409, "BucketAlreadyOwnedByYou"));
}

#[tokio::test]
async fn objects_keep_their_headers_and_conditions_answer_as_s3_does() {
    let h = harness().await;
    let (status, _) = text(h.s3.handle(signed("PUT", "/docs", "", "", ADMIN)).await).await;
    assert_eq!(status, 200);
    let mut put = signed("PUT", "/docs/a.txt", "", "hello", ADMIN);
    for (name, value) in [
        ("cache-control", "max-age=60"),
        ("content-disposition", "attachment; filename=\"a.txt\""),
        ("content-language", "en"),
        ("expires", "Wed, 21 Oct 2015 07:28:00 GMT"),
    ] {
        put.headers_mut().insert(name, value.parse().unwrap());
    }
    let put = h.s3.handle(put).await;
    assert_eq!(put.status(), 200);
    let etag = put.headers()["etag"].clone();

    // Kept, and answered on every read; a `response-*` parameter answers in its place.
    for method in ["GET", "HEAD"] {
        let got = h.s3.handle(signed(method, "/docs/a.txt", "", "", ADMIN)).await;
        assert_eq!(got.status(), 200, "{method}");
        let headers = got.headers();
        assert_eq!(headers["cache-control"], "max-age=60", "{method}");
        assert_eq!(headers["content-disposition"], "attachment; filename=\"a.txt\"");
        assert_eq!(headers["content-language"], "en");
        assert_eq!(headers["expires"], "Wed, 21 Oct 2015 07:28:00 GMT");
        assert!(headers.get("content-encoding").is_none());
    }
    let got =
        h.s3.handle(signed(
            "GET",
            "/docs/a.txt",
            "response-cache-control=no-store&response-content-type=text%2Fx-note",
            "",
            ADMIN,
        ))
        .await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["cache-control"], "no-store");
    assert_eq!(got.headers()["content-type"], "text/x-note");
    assert_eq!(got.headers()["content-language"], "en");

    // A 304 has no body, and keeps the validators a 200 would have.
    for method in ["GET", "HEAD"] {
        let mut get = signed(method, "/docs/a.txt", "", "", ADMIN);
        get.headers_mut().insert("if-none-match", etag.clone());
        let got = h.s3.handle(get).await;
        assert_eq!(got.status(), 304, "{method}");
        assert_eq!(got.headers()["etag"], etag);
        assert!(got.headers()["last-modified"].to_str().unwrap().ends_with(" GMT"));
        assert!(got.headers().get("content-type").is_none());
        assert_eq!(text(got).await.1, "");
    }

    // A delete with If-Match removes only that object; a missing key is NoSuchKey.
    let mut delete = signed("DELETE", "/docs/a.txt", "", "", ADMIN);
    delete
        .headers_mut()
        .insert("if-match", "\"0123\"".parse().unwrap());
    let (status, xml) = text(h.s3.handle(delete).await).await;
    assert_eq!((status, code(&xml)), (412, "PreconditionFailed"));
    let mut delete = signed("DELETE", "/docs/a.txt", "", "", ADMIN);
    delete.headers_mut().insert("if-match", etag.clone());
    assert_eq!(h.s3.handle(delete).await.status(), 204);
    let mut delete = signed("DELETE", "/docs/a.txt", "", "", ADMIN);
    delete.headers_mut().insert("if-match", "*".parse().unwrap());
    let (status, xml) = text(h.s3.handle(delete).await).await;
    assert_eq!((status, code(&xml)), (404, "NoSuchKey"));
    let (status, _) = text(h.s3.handle(signed("DELETE", "/docs/a.txt", "", "", ADMIN)).await).await;
    assert_eq!(status, 204, "an unconditional delete of nothing is no error");

    // `If-Match: *` on a put: only over an object that exists.
    let mut put = signed("PUT", "/docs/b.txt", "", "b", ADMIN);
    put.headers_mut().insert("if-match", "*".parse().unwrap());
    let (status, xml) = text(h.s3.handle(put).await).await;
    assert_eq!((status, code(&xml)), (412, "PreconditionFailed"));
}

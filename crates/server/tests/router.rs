//! The server's routing and the control API, in process: requests go straight to
//! `App::handle` (no socket), over a real SQLite store and the real wasm runtime.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use wisp_core::Limits;
use wisp_engine::Engine;
use wisp_runtime::wasm::{WasmConfig, WasmRuntime};
use wisp_runtime::{Body, body};
use wisp_server::App;
use wisp_store::SqliteStore;

struct Harness {
    app: App,
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
    engine.bootstrap(Some(ADMIN)).await.unwrap();
    Harness {
        app: App::new(engine),
        _dir: dir,
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../tests/fixtures/{name}.wasm"));
    std::fs::read(path).unwrap()
}

/// The admin key the harness's engine starts with; every request carries it.
const ADMIN: &str = "WKROUTERTESTADMIN2.router-test-admin-secret-0123456789abcde";

fn request(method: &str, uri: &str, body: impl Into<Bytes>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(body::full(body))
        .unwrap()
}

fn multipart(config: &Value, code: &[u8]) -> Request<Body> {
    const BOUNDARY: &str = "wisp-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"config\"\r\n\r\n{config}\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"code\"; filename=\"c.wasm\"\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(code);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    Request::builder()
        .method("PUT")
        .uri("/v1/functions/kit")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body::full(body))
        .unwrap()
}

async fn json(response: Response<Body>) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, content_type, value)
}

#[tokio::test]
async fn api_paths_answer_json_and_problems() {
    let h = harness().await;
    let (status, _, health) = json(h.app.handle(request("GET", "/v1/health", "")).await).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));

    let (status, ct, doc) = json(h.app.handle(request("GET", "/v1/nowhere", "")).await).await;
    assert_eq!(
        (status, ct.as_str(), doc["code"].as_str()),
        (404, "application/problem+json", Some("not_found"))
    );

    let (status, _, doc) = json(h.app.handle(request("POST", "/v1/functions", "")).await).await;
    assert_eq!((status, doc["code"].as_str()), (405, Some("method_not_allowed")));

    let (status, _, doc) = json(h.app.handle(request("GET", "/v1/functions/UPPER", "")).await).await;
    assert_eq!((status, doc["code"].as_str()), (400, Some("invalid_name")));

    // The dashboard is HTML: without a session, its pages lead to the login page, and
    // a page it does not have is an HTML 404.
    let (status, ct, _) = json(h.app.handle(request("GET", "/ui", "")).await).await;
    assert_eq!((status, ct.as_str()), (303, ""));
    let (status, ct, _) = json(h.app.handle(request("GET", "/ui/x", "")).await).await;
    assert_eq!((status, ct.as_str()), (404, "text/html; charset=utf-8"));
    for reserved in [
        "/metrics/x",
        "/2015-03-31/functions/x/invocations",
        "/2018-06-01/runtime/invocation/next",
    ] {
        let (status, _, doc) = json(h.app.handle(request("GET", reserved, "")).await).await;
        assert_eq!(
            (status, doc["code"].as_str()),
            (404, Some("not_found")),
            "{reserved}"
        );
    }
    // Prefixes are whole segments: `/v1x` is a user path.
    let (status, _, doc) = json(h.app.handle(request("GET", "/v1x", "")).await).await;
    assert_eq!((status, doc["code"].as_str()), (404, Some("route_not_found")));
}

#[tokio::test]
async fn deploy_route_and_invoke_in_process() {
    let h = harness().await;
    let config = json!({"kind": "event", "routes": [{"path": "/e/:action", "methods": ["GET"]}]});
    let (status, _, answer) = json(h.app.handle(multipart(&config, &fixture("event-kit"))).await).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["status"], "created");
    assert_eq!(answer["function"]["loaded"], true);

    let (status, _, out) = json(
        h.app
            .handle(request(
                "POST",
                "/v1/functions/kit/invoke",
                r#"{"action":"hello","name":"X"}"#,
            ))
            .await,
    )
    .await;
    assert_eq!((status, out["message"].as_str()), (200, Some("Hello, X!")));

    let (status, _, event) = json(h.app.handle(request("GET", "/e/echo?q=1", "")).await).await;
    assert_eq!(status, 200);
    assert_eq!(event["routeKey"], "GET /e/{action}");
    assert_eq!(event["pathParameters"]["action"], "echo");

    let (status, _, doc) = json(h.app.handle(request("POST", "/e/echo", "")).await).await;
    assert_eq!((status, doc["code"].as_str()), (405, Some("method_not_allowed")));

    // Redeploying the same code and configuration changes nothing.
    let (status, _, answer) = json(h.app.handle(multipart(&config, &fixture("event-kit"))).await).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("unchanged")));
}

/// Which requests the control router sends to Lambda's `Invoke` (they answer in
/// Lambda's error shape); every other path under its prefix is reserved and not
/// served (a `not_found` problem document).
#[tokio::test]
async fn only_lambdas_invoke_is_routed_to_it() {
    let h = harness().await;
    for path in [
        "/2015-03-31/functions/kit/invocations",
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Ax/invocations",
    ] {
        let response = h.app.handle(request("POST", path, "{}")).await;
        let kind = response.headers().get("x-amzn-errortype").cloned();
        assert!(kind.is_some(), "{path} did not reach Invoke");
    }
    for (method, path) in [
        ("GET", "/2015-03-31/functions/kit/invocations"),
        ("POST", "/2015-03-31/functions//invocations"),
        ("POST", "/2015-03-31/functions/a/b/invocations"),
        ("POST", "/2015-03-31/functions/kit"),
        ("POST", "/2015-03-31/functions/kit/invocations/x"),
    ] {
        let response = h.app.handle(request(method, path, "")).await;
        assert!(
            !response.headers().contains_key("x-amzn-errortype"),
            "{method} {path} reached Invoke"
        );
        let (status, ct, doc) = json(response).await;
        assert_eq!(
            (status, ct.as_str(), doc["code"].as_str()),
            (404, "application/problem+json", Some("not_found")),
            "{method} {path}"
        );
    }
}

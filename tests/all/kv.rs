//! Key-value stores from inside wasm guests (issue 17): `tests/fixtures/kv-kit.wasm` calls
//! `wasi:keyvalue@0.2.0-draft2` (store, atomics, batch) through the routes its docs list,
//! over the stores its function is granted (`"kv": [...]`).

use crate::util::{bin, client, deploy_fixture};
use serde_json::{Value, json};
use wisp_test_support::TestServer;

async fn create_store(server: &TestServer, name: &str) {
    let r = client()
        .put(server.at(&format!("/v1/kv/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// A server with store `cache` (and `other`, which kv-kit is not granted), and kv-kit
/// at `/kv/*` granted `cache` and `missing` (which does not exist).
async fn setup() -> TestServer {
    let server = TestServer::serve(bin());
    create_store(&server, "cache").await;
    create_store(&server, "other").await;
    deploy_fixture(
        &server,
        "kv-kit",
        "kv-kit",
        json!({
            "kind": "http",
            "routes": [{"path": "/kv/*"}],
            "kv": ["cache", "missing"],
            "max_concurrency": 50,
        }),
    )
    .await;
    server
}

/// Sends `method path` with `body` to the guest; its status and JSON answer.
async fn call(server: &TestServer, method: &str, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let r = client()
        .request(method, server.at(path))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
    (status, value)
}

async fn ok(server: &TestServer, method: &str, path: &str, body: impl Into<reqwest::Body>) -> Value {
    let (status, value) = call(server, method, path, body).await;
    assert_eq!(status, 200, "{method} {path}: {value}");
    value
}

#[tokio::test]
async fn guests_get_set_delete_list_and_batch_through_wasi_keyvalue() {
    let server = setup().await;

    assert_eq!(ok(&server, "GET", "/kv/cache/a", "").await["value"], Value::Null);
    ok(&server, "PUT", "/kv/cache/a", "hello").await;
    assert_eq!(ok(&server, "GET", "/kv/cache/a", "").await["value"], "hello");
    assert_eq!(ok(&server, "GET", "/kv/cache/a/exists", "").await["exists"], true);
    // The guest and the API see one store.
    let r = client()
        .get(server.at("/v1/kv/cache/keys/a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello");
    ok(&server, "DELETE", "/kv/cache/a", "").await;
    assert_eq!(
        ok(&server, "GET", "/kv/cache/a/exists", "").await["exists"],
        false
    );
    // Deleting what is not there is no error.
    ok(&server, "DELETE", "/kv/cache/a", "").await;

    // 150 keys in two batches (a batch holds at most 100), listed over two pages.
    for range in [0..100, 100..150] {
        let batch: serde_json::Map<String, Value> = range
            .map(|i| (format!("k{i:03}"), json!(format!("v{i:03}"))))
            .collect();
        ok(
            &server,
            "POST",
            "/kv/cache/batch/set",
            Value::Object(batch).to_string(),
        )
        .await;
    }
    let mut keys = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/kv/cache?cursor={c}"),
            None => "/kv/cache".to_string(),
        };
        let page = ok(&server, "GET", &path, "").await;
        pages += 1;
        keys.extend(
            page["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string()),
        );
        match page["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages < 10, "the cursor never ends");
    }
    assert_eq!(pages, 2);
    let expected: Vec<String> = (0..150).map(|i| format!("k{i:03}")).collect();
    assert_eq!(keys, expected);

    let got = ok(
        &server,
        "POST",
        "/kv/cache/batch/get",
        r#"["k001", "nope", "k149"]"#,
    )
    .await;
    assert_eq!(
        got["values"],
        json!([{"key": "k001", "value": "v001"}, null, {"key": "k149", "value": "v149"}])
    );
    ok(
        &server,
        "POST",
        "/kv/cache/batch/delete",
        r#"["k001", "k002", "nope"]"#,
    )
    .await;
    let got = ok(
        &server,
        "POST",
        "/kv/cache/batch/get",
        r#"["k001", "k002", "k003"]"#,
    )
    .await;
    assert_eq!(
        got["values"],
        json!([null, null, {"key": "k003", "value": "v003"}])
    );

    // A batch past the limit is refused, saying why.
    let too_many: serde_json::Map<String, Value> = (0..101).map(|i| (format!("x{i}"), json!("v"))).collect();
    let (status, answer) = call(
        &server,
        "POST",
        "/kv/cache/batch/set",
        Value::Object(too_many).to_string(),
    )
    .await;
    assert_eq!(status, 500, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("at most 100"),
        "{answer}"
    );
}

#[tokio::test]
async fn compare_and_swap_lets_one_of_two_writers_win() {
    let server = setup().await;

    // On one key, two handles read the same version: the first swap wins.
    let race = ok(&server, "POST", "/kv/cache/c/cas-race", "").await;
    assert_eq!(race, json!({"first": "swapped", "second": "cas-failed"}));
    assert_eq!(ok(&server, "GET", "/kv/cache/c", "").await["value"], "first");

    // A handle over an absent key swaps only while it stays absent.
    ok(&server, "POST", "/kv/cache/fresh/cas", "one").await;
    let (status, answer) = call(&server, "POST", "/kv/cache/fresh/cas", "two").await;
    assert_eq!(
        (status, &answer["error"]),
        (409, &json!("unexpected")),
        "{answer}"
    );

    // Two invocations read `one`, both wait, both swap: exactly one wins, and the loser's
    // fresh handle sees the winner's value.
    let (a, b) = tokio::join!(
        call(&server, "POST", "/kv/cache/fresh/cas?expect=one&hold_ms=300", "A"),
        call(&server, "POST", "/kv/cache/fresh/cas?expect=one&hold_ms=300", "B"),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let (winner, loser) = if a.0 == 200 { ("A", b.1) } else { ("B", a.1) };
    assert_eq!(loser, json!({"error": "cas-failed", "current": winner}));
    assert_eq!(ok(&server, "GET", "/kv/cache/fresh", "").await["value"], winner);
}

#[tokio::test]
async fn increments_from_50_concurrent_invocations_count_exactly() {
    let server = setup().await;
    let calls = (0..50).map(|_| call(&server, "POST", "/kv/cache/hits/incr?by=1", ""));
    let answers = futures::future::join_all(calls).await;
    let mut seen: Vec<i64> = answers
        .iter()
        .map(|(status, value)| {
            assert_eq!(*status, 200, "{value}");
            value["value"].as_i64().unwrap()
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        (1..=50).collect::<Vec<_>>(),
        "every increment saw its own sum"
    );
    assert_eq!(ok(&server, "GET", "/kv/cache/hits", "").await["value"], "50");
    assert_eq!(
        ok(&server, "POST", "/kv/cache/hits/incr?by=-60", "").await["value"],
        -10
    );

    // What is not a number is not incremented.
    ok(&server, "PUT", "/kv/cache/word", "hello").await;
    let (status, answer) = call(&server, "POST", "/kv/cache/word/incr", "").await;
    assert_eq!(status, 500, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("decimal text"),
        "{answer}"
    );
}

#[tokio::test]
async fn stores_must_be_granted_and_exist_and_entries_fit_the_limits() {
    let server = setup().await;
    // `other` exists but is not granted; `missing` is granted but does not exist.
    assert_eq!(
        call(&server, "GET", "/kv/other/a", "").await,
        (403, json!({"error": "access-denied"}))
    );
    assert_eq!(
        call(&server, "GET", "/kv/missing/a", "").await,
        (404, json!({"error": "no-such-store"}))
    );

    let long_key = "k".repeat(1025);
    let (status, answer) = call(&server, "PUT", &format!("/kv/cache/{long_key}"), "v").await;
    assert_eq!(status, 500, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("at most 1024 bytes"),
        "{answer}"
    );

    let big = vec![b'x'; 1024 * 1024 + 1];
    let (status, answer) = call(&server, "PUT", "/kv/cache/big", big).await;
    assert_eq!(status, 500, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("at most 1048576 bytes"),
        "{answer}"
    );
    // A value at the limit fits.
    ok(&server, "PUT", "/kv/cache/big", vec![b'x'; 1024 * 1024]).await;
}

//! A native (Python) function using Wisp's services over HTTP, with the endpoint and
//! credential Wisp puts in its environment (`WISP_KV_URL`, `WISP_TOKEN`): a key-value
//! store (expiry, compare-and-set, exact increments under concurrency, stores it is not
//! granted) and sending to queues, each by grant.

use crate::native::{deploy_kit, invoke_ok};
use crate::util::{client, server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

async fn kv(server: &TestServer, function: &str, call: Value) -> Value {
    let mut event = call;
    event["action"] = json!("kv");
    invoke_ok(server, function, event).await
}

async fn create_store(server: &TestServer, name: &str) {
    let r = client()
        .put(server.at(&format!("/v1/kv/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn a_python_function_uses_its_granted_store_with_ttls_cas_and_exact_increments() {
    let server = server();
    create_store(&server, "sessions").await;
    create_store(&server, "private").await;
    deploy_kit(&server, "py", json!({"kv": ["sessions"], "max_concurrency": 50})).await;

    // A value with a one-second TTL is there, then gone.
    let set = kv(
        &server,
        "py",
        json!({"path": "/sessions/keys/token", "method": "PUT", "body": "abc", "headers": {"Wisp-TTL": "1s"}}),
    )
    .await;
    assert_eq!(set["status"], 200, "{set}");
    let got = kv(&server, "py", json!({"path": "/sessions/keys/token"})).await;
    assert_eq!(
        (got["status"].as_u64(), got["body"].as_str()),
        (Some(200), Some("abc")),
        "{got}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = kv(&server, "py", json!({"path": "/sessions/keys/token"})).await;
        if got["status"] == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the entry never expired: {got}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Compare-and-set: a write with the version read wins once; a second with the same
    // (now stale) version is refused.
    let first = kv(
        &server,
        "py",
        json!({"path": "/sessions/keys/cart", "method": "PUT", "body": "1"}),
    )
    .await;
    let etag = first["etag"].as_str().unwrap().to_string();
    let won = kv(
        &server,
        "py",
        json!({"path": "/sessions/keys/cart", "method": "PUT", "body": "2", "headers": {"If-Match": etag}}),
    )
    .await;
    assert_eq!(won["status"], 200, "{won}");
    let lost = kv(
        &server,
        "py",
        json!({"path": "/sessions/keys/cart", "method": "PUT", "body": "3", "headers": {"If-Match": etag}}),
    )
    .await;
    assert_eq!(lost["status"], 412, "{lost}");
    let got = kv(&server, "py", json!({"path": "/sessions/keys/cart"})).await;
    assert_eq!(got["body"], "2", "{got}");

    // 50 concurrent invocations each add one: the count is exact.
    let calls = (0..50).map(|_| {
        let server = &server;
        async move {
            kv(
                server,
                "py",
                json!({"path": "/sessions/increment/hits", "method": "POST", "body": "{\"by\": 1}",
                       "headers": {"Content-Type": "application/json"}}),
            )
            .await
        }
    });
    for answer in futures::future::join_all(calls).await {
        assert_eq!(answer["status"], 200, "{answer}");
    }
    let got = kv(&server, "py", json!({"path": "/sessions/keys/hits"})).await;
    assert_eq!(got["body"], "50", "{got}");

    // A store it is not granted: refused, whatever the method.
    for (method, body) in [("GET", Value::Null), ("PUT", json!("x"))] {
        let denied = kv(
            &server,
            "py",
            json!({"path": "/private/keys/k", "method": method, "body": body}),
        )
        .await;
        assert_eq!(denied["status"], 403, "{method}: {denied}");
        assert!(
            denied["body"].as_str().unwrap().contains("not granted"),
            "{denied}"
        );
    }
    // Stores are made by people: a function cannot create or drop one.
    let made = kv(&server, "py", json!({"path": "/other", "method": "PUT"})).await;
    assert_eq!(made["status"], 403, "{made}");
}

#[tokio::test]
async fn a_python_function_sends_only_to_the_queues_it_is_granted() {
    let server = server();
    for queue in ["jobs", "audit"] {
        let r = client()
            .put(server.at(&format!("/v1/queues/{queue}")))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    deploy_kit(&server, "producer", json!({"queues": ["jobs"]})).await;
    let send = |queue: &str| {
        json!({"action": "service", "path": format!("/v1/queues/{queue}/messages"), "method": "POST",
               "body": "{\"body\": \"hello\"}", "headers": {"Content-Type": "application/json"}})
    };
    let sent = invoke_ok(&server, "producer", send("jobs")).await;
    assert_eq!(sent["status"], 201, "{sent}");
    let denied = invoke_ok(&server, "producer", send("audit")).await;
    assert_eq!(denied["status"], 403, "{denied}");
    assert!(
        denied["body"]
            .as_str()
            .unwrap()
            .contains("not granted queue `audit`"),
        "{denied}"
    );
    // The message is there for a person's receive; nothing reached the other queue.
    let r = client()
        .post(server.at("/v1/queues/jobs/receive"))
        .json(&json!({"max": 10}))
        .send()
        .await
        .unwrap();
    let received: Value = r.json().await.unwrap();
    assert_eq!(received["messages"][0]["body"], "hello", "{received}");
    // Nothing else of the control API is served on the services endpoint.
    let other = invoke_ok(
        &server,
        "producer",
        json!({"action": "service", "path": "/v1/queues/jobs/receive", "method": "POST", "body": "{}"}),
    )
    .await;
    assert_eq!(other["status"], 404, "{other}");
}

//! Trace roots through async work: every invocation record names the root it ran
//! under, and what an invocation causes asynchronously — an async call, a queue message
//! whose trigger runs a function — runs under the same root; a client's async invoke
//! may start the trace with `X-Amzn-Trace-Id`.

use crate::util::{client, deploy_fixture, get_json, server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

/// A client's trace root, of X-Ray's form.
const CLIENT_ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

/// Deploys http-kit as `name` on `/{name}/{*rest}`, with `extra` merged into its config.
async fn deploy_kit(server: &TestServer, name: &str, extra: Value) {
    let mut config = json!({
        "kind": "http",
        "routes": [format!("/{name}/*rest")],
    });
    for (key, value) in extra.as_object().into_iter().flatten() {
        config[key] = value.clone();
    }
    deploy_fixture(server, name, "http-kit", config).await;
}

/// The invocation records of `function` once there are `n` (up to 20 s).
async fn records(server: &TestServer, function: &str, n: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let r = get_json(server, &format!("/v1/functions/{function}/invocations?limit=100")).await;
        let list = r["invocations"].as_array().cloned().unwrap_or_default();
        if list.len() >= n {
            return list;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{function} has {} invocation records, not {n}: {r}",
            list.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `trace` of the only invocation record of `function`.
async fn only_trace(server: &TestServer, function: &str) -> String {
    let list = records(server, function, 1).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let trace = list[0]["trace"].as_str().unwrap_or_default().to_string();
    assert!(is_root(&trace), "not a trace root: {:?}", list[0]);
    trace
}

/// `1-<8 hex>-<24 hex>`.
fn is_root(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    matches!(parts.as_slice(), ["1", epoch, id] if hex(epoch, 8) && hex(id, 24))
}

#[tokio::test]
async fn an_async_call_runs_in_its_callers_trace() {
    let server = server();
    deploy_kit(&server, "callee", json!({"env": {"KIT_ACTION": "hello"}})).await;
    deploy_kit(&server, "caller", json!({"invoke": ["callee"]})).await;
    let r = client()
        .post(server.at("/caller/call?to=callee&type=Event"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    // The caller was asked with no trace: it started its own, which the callee's run,
    // later and through the async pipeline, carries on.
    let caller = only_trace(&server, "caller").await;
    let callee = only_trace(&server, "callee").await;
    assert_eq!(callee, caller);
}

#[tokio::test]
async fn a_queue_message_carries_its_senders_trace_to_the_function_it_triggers() {
    let server = server();
    let r = client()
        .put(server.at("/v1/queues/jobs"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    deploy_kit(
        &server,
        "consumer",
        json!({
            "queue": {"queue": "jobs", "batch_size": 1},
            "env": {"KIT_ACTION": "hello"},
        }),
    )
    .await;
    deploy_kit(
        &server,
        "sender",
        json!({
            "queues": ["jobs"],
            "env": {
                "KIT_SEND_URL": "http://wisp.internal/v1/queues/jobs/messages",
                "KIT_SEND_BODY": "{\"body\": \"work\"}",
            },
        }),
    )
    .await;
    let r = client().post(server.at("/sender/send")).send().await.unwrap();
    let sent: Value = r.json().await.unwrap();
    assert_eq!(sent["status"], 201, "{sent}");
    let sender = only_trace(&server, "sender").await;
    let consumer = only_trace(&server, "consumer").await;
    assert_eq!(consumer, sender);
}

/// `POST /v1/functions/NAME/invoke` async with `trace_header`; the event's id.
async fn invoke_async(server: &TestServer, name: &str, trace_header: &str) -> String {
    let r = client()
        .post(server.at(&format!("/v1/functions/{name}/invoke")))
        .header("x-wisp-invocation-type", "event")
        .header("x-amzn-trace-id", trace_header)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    let body: Value = r.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_async_invoke_runs_in_the_clients_trace_and_ignores_a_malformed_one() {
    let server = server();
    deploy_kit(&server, "kit", json!({"env": {"KIT_ACTION": "hello"}})).await;
    let header = format!("Root={CLIENT_ROOT};Parent=53995c3f42cd8ad8;Sampled=0");
    let id = invoke_async(&server, "kit", &header).await;
    let event = get_json(&server, &format!("/v1/invocations/{id}")).await;
    assert_eq!(event["trace"], CLIENT_ROOT, "{event}");
    let list = records(&server, "kit", 1).await;
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["trace"], CLIENT_ROOT, "{list:?}");

    // Not of X-Ray's form: ignored, and the invocation starts a root of its own.
    let id = invoke_async(&server, "kit", "Root=2-nothex;Parent=zz").await;
    let event = get_json(&server, &format!("/v1/invocations/{id}")).await;
    assert!(event.get("trace").is_none(), "{event}");
    let list = records(&server, "kit", 2).await;
    let run = list.iter().find(|r| r["id"] == id.as_str()).unwrap();
    let own = run["trace"].as_str().unwrap();
    assert!(is_root(own) && own != CLIENT_ROOT, "{run}");

    // Lambda's Invoke with `X-Amz-Invocation-Type: Event` takes the header too.
    let r = client()
        .post(server.at("/2015-03-31/functions/kit/invocations"))
        .header("x-amz-invocation-type", "Event")
        .header("x-amzn-trace-id", &header)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    let id = r.headers()["x-amzn-requestid"].to_str().unwrap().to_string();
    let list = records(&server, "kit", 3).await;
    let run = list.iter().find(|r| r["id"] == id.as_str()).unwrap();
    assert_eq!(run["trace"], CLIENT_ROOT, "{run}");
}

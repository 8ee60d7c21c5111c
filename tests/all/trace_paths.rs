//! The trace root through the async paths `trace.rs` does not walk: a guest's topic
//! message to its function and queue subscribers, an object write to the function its
//! bucket notifies, and an event's run to its function destination; and a route request
//! or a synchronous invoke that names its trace (W3C `traceparent`, X-Ray's
//! `X-Amzn-Trace-Id`).

use crate::util::{client, deploy_fixture, get_json, server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

/// A client's trace root, of X-Ray's form.
const CLIENT_ROOT: &str = "1-5759e988-0123456789abcdef01234567";

fn trace_header() -> String {
    format!("Root={CLIENT_ROOT};Parent=53995c3f42cd8ad8;Sampled=0")
}

/// Deploys http-kit as `name` on `/{name}/{*rest}`, with `extra` merged into its config.
async fn deploy_kit(server: &TestServer, name: &str, extra: Value) {
    let mut config = json!({"kind": "http", "routes": [format!("/{name}/*rest")]});
    for (key, value) in extra.as_object().into_iter().flatten() {
        config[key] = value.clone();
    }
    deploy_fixture(server, name, "http-kit", config).await;
}

/// The `trace` of the first invocation record of `function`, once there is one (up to
/// 20 s).
async fn trace_of(server: &TestServer, function: &str) -> String {
    let record = first_record(server, function).await;
    record["trace"].as_str().unwrap_or_default().to_string()
}

/// The first invocation record of `function`, once there is one (up to 20 s).
async fn first_record(server: &TestServer, function: &str) -> Value {
    let started = Instant::now();
    loop {
        let r = get_json(server, &format!("/v1/functions/{function}/invocations?limit=10")).await;
        if let Some(record) = r["invocations"].as_array().and_then(|list| list.first()) {
            return record.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{function} never ran: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `PUT path` with `body`: the answer's status must be a success.
async fn put(server: &TestServer, path: &str, body: Value) {
    let r = client().put(server.at(path)).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "PUT {path}: {:?}", r.text().await);
}

/// `POST path` with `body`: the answer's status must be a success.
async fn post(server: &TestServer, path: &str, body: Value) {
    let r = client().post(server.at(path)).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "POST {path}: {:?}", r.text().await);
}

#[tokio::test]
async fn a_guests_topic_message_reaches_function_and_queue_subscribers_in_its_trace() {
    let server = server();
    put(&server, "/v1/topics/orders", json!({})).await;
    put(&server, "/v1/queues/orders-q", json!({})).await;
    let hello = json!({"env": {"KIT_ACTION": "hello"}});
    deploy_kit(&server, "direct", hello.clone()).await;
    let mut by_queue = hello;
    by_queue["queue"] = json!({"queue": "orders-q", "batch_size": 1});
    deploy_kit(&server, "queued", by_queue).await;
    let subscriptions = "/v1/topics/orders/subscriptions";
    post(&server, subscriptions, json!({"function": "direct"})).await;
    post(&server, subscriptions, json!({"queue": "orders-q"})).await;
    deploy_kit(
        &server,
        "publisher",
        json!({
            "topics": ["orders"],
            "env": {
                "KIT_SEND_URL": "http://wisp.internal/v1/topics/orders/messages",
                "KIT_SEND_BODY": "{\"message\": \"an order\"}",
            },
        }),
    )
    .await;

    let r = client().post(server.at("/publisher/send")).send().await.unwrap();
    let sent: Value = r.json().await.unwrap();
    assert_eq!(sent["status"], 201, "{sent}");
    let publisher = trace_of(&server, "publisher").await;
    assert!(publisher.starts_with("1-"), "{publisher}");
    assert_eq!(
        trace_of(&server, "direct").await,
        publisher,
        "the function subscriber"
    );
    assert_eq!(
        trace_of(&server, "queued").await,
        publisher,
        "through the queue subscriber"
    );
    // Both name the publishing run as their parent.
    let publisher = first_record(&server, "publisher").await;
    for subscriber in ["direct", "queued"] {
        let record = first_record(&server, subscriber).await;
        assert_eq!(record["parent"], publisher["id"], "{subscriber}: {record}");
    }
}

#[tokio::test]
async fn an_object_write_notifies_its_function_in_the_writers_trace() {
    let server = server();
    let r = client().put(server.at("/v1/buckets/inbox")).send().await.unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    deploy_kit(
        &server,
        "reactor",
        json!({
            "env": {"KIT_ACTION": "hello"},
            "storage": {"bucket": "inbox", "events": ["ObjectCreated:*"]},
        }),
    )
    .await;
    let r = client()
        .put(server.at("/v1/buckets/inbox/objects/photo.txt"))
        .header("x-amzn-trace-id", trace_header())
        .body("pixels")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    assert_eq!(trace_of(&server, "reactor").await, CLIENT_ROOT);
    // A client's write: no invocation caused the run.
    assert_eq!(first_record(&server, "reactor").await["parent"], Value::Null);
}

#[tokio::test]
async fn an_events_function_destination_runs_in_the_events_trace() {
    let server = server();
    deploy_fixture(&server, "sink", "event-kit", json!({"kind": "event"})).await;
    let config = json!({"kind": "event", "on_success": "function:sink"});
    deploy_fixture(&server, "first", "event-kit", config).await;
    let r = client()
        .post(server.at("/v1/functions/first/invoke"))
        .header("x-wisp-invocation-type", "event")
        .header("x-amzn-trace-id", trace_header())
        .json(&json!({"action": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    assert_eq!(trace_of(&server, "first").await, CLIENT_ROOT);
    assert_eq!(trace_of(&server, "sink").await, CLIENT_ROOT, "the destination");
    // The destination's run is a child of the event's run.
    let (first, sink) = (
        first_record(&server, "first").await,
        first_record(&server, "sink").await,
    );
    assert_eq!(sink["parent"], first["id"], "{sink}");
}

/// The invocation record of run `id` of `function` (up to 20 s).
async fn record_of(server: &TestServer, function: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let r = get_json(server, &format!("/v1/functions/{function}/invocations?limit=100")).await;
        let list = r["invocations"].as_array().cloned().unwrap_or_default();
        if let Some(record) = list.into_iter().find(|r| r["id"] == id) {
            return record;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no record of {id}: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_route_request_runs_in_the_trace_its_traceparent_or_xray_header_names() {
    let server = server();
    deploy_kit(&server, "web", json!({"env": {"KIT_ACTION": "hello"}})).await;
    // GET /web/x with `headers`: the trace its invocation record names.
    let traced = async |headers: &[(&str, &str)]| -> String {
        let mut request = client().get(server.at("/web/x"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 200, "{headers:?}");
        let id = r.headers()["x-wisp-invocation-id"].to_str().unwrap().to_string();
        let record = record_of(&server, "web", &id).await;
        record["trace"].as_str().unwrap().to_string()
    };
    let w3c = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_eq!(
        traced(&[("traceparent", w3c)]).await,
        "1-4bf92f35-77b34da6a3ce929d0e0e4736",
        "W3C's trace-id, as an X-Ray root"
    );
    let xray = trace_header();
    assert_eq!(traced(&[("x-amzn-trace-id", xray.as_str())]).await, CLIENT_ROOT);
    assert_eq!(
        traced(&[
            ("traceparent", "00-not-a-trace-01"),
            ("x-amzn-trace-id", xray.as_str())
        ])
        .await,
        CLIENT_ROOT,
        "a malformed traceparent gives way to X-Ray's header"
    );
    // Neither: a root of its own, different each time.
    let own = traced(&[("traceparent", "garbage")]).await;
    assert!(own.starts_with("1-") && own != CLIENT_ROOT, "{own}");
    assert_ne!(traced(&[]).await, own);
}

#[tokio::test]
async fn a_synchronous_invoke_runs_in_the_trace_its_client_names() {
    let server = server();
    deploy_kit(&server, "kit", json!({"env": {"KIT_ACTION": "hello"}})).await;
    // The API's invoke with W3C's header, then Lambda's RequestResponse with X-Ray's.
    let r = client()
        .post(server.at("/v1/functions/kit/invoke"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let id = r.headers()["x-wisp-invocation-id"].to_str().unwrap().to_string();
    let record = record_of(&server, "kit", &id).await;
    assert_eq!(record["trace"], "1-4bf92f35-77b34da6a3ce929d0e0e4736", "{record}");

    let r = client()
        .post(server.at("/2015-03-31/functions/kit/invocations"))
        .header("x-amzn-trace-id", trace_header())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let id = r.headers()["x-amzn-requestid"].to_str().unwrap().to_string();
    let record = record_of(&server, "kit", &id).await;
    assert_eq!(record["trace"], CLIENT_ROOT, "{record}");
}

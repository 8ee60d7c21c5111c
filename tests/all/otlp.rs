//! Traces leaving Wisp: the `traceparent` (and X-Ray header) an http guest gets, naming
//! its own invocation's span in the request's trace; the `_X_AMZN_TRACE_ID` a native
//! function sees; and `wisp serve --otlp-endpoint`, which sends a span per invocation to
//! a real OTLP/HTTP receiver (the loopback receiver of `topics_webhook`), sends the last
//! ones before a graceful shutdown ends, holds up no invocation when the collector is
//! down, and refuses a URL it cannot use at start.

use crate::topics_webhook::{Received, Receiver};
use crate::util::{bin, client, deploy_fixture, get_json, server, server_with};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

/// A client's W3C trace context.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// Its trace id, and the X-Ray root Wisp records it as.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const ROOT: &str = "1-4bf92f35-77b34da6a3ce929d0e0e4736";

/// The span of invocation `id`: the last 16 hex digits of its UUID.
fn span_of(id: &str) -> String {
    let hex: String = id.chars().filter(char::is_ascii_hexdigit).collect();
    hex[hex.len() - 16..].to_string()
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

/// Deploys http-kit as `name` on `/{name}/{*rest}`, with `extra` merged into its config.
async fn deploy_kit(server: &TestServer, name: &str, extra: Value) {
    let mut config = json!({ "kind": "http", "routes": [format!("/{name}/*rest")] });
    for (key, value) in extra.as_object().into_iter().flatten() {
        config[key] = value.clone();
    }
    deploy_fixture(server, name, "http-kit", config).await;
}

#[tokio::test]
async fn an_http_guest_gets_a_traceparent_naming_its_own_span_in_the_requests_trace() {
    let server = server();
    deploy_kit(&server, "kit", json!({})).await;
    // `info` answers with the request the guest got.
    let seen = async |headers: &[(&str, &str)]| -> (String, Value) {
        let mut request = client().get(server.at("/kit/info"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let id = r.headers()["x-wisp-invocation-id"].to_str().unwrap().to_string();
        let info: Value = r.json().await.unwrap();
        (id, info["headers"].clone())
    };
    let (id, headers) = seen(&[("traceparent", TRACEPARENT), ("tracestate", "vendor=abc")]).await;
    let span = span_of(&id);
    assert_eq!(
        headers["traceparent"],
        format!("00-{TRACE_ID}-{span}-01"),
        "the client's trace, this invocation's span: {headers}"
    );
    assert_eq!(headers["tracestate"], "vendor=abc", "{headers}");
    assert_eq!(
        headers["x-amzn-trace-id"],
        format!("Root={ROOT};Parent={span};Sampled=1"),
        "{headers}"
    );
    assert_eq!(record_of(&server, "kit", &id).await["trace"], ROOT);

    // No trace named: the invocation's own root, the one its record carries.
    let (id, headers) = seen(&[]).await;
    let record = record_of(&server, "kit", &id).await;
    let root = record["trace"].as_str().unwrap();
    let trace_id = root.trim_start_matches("1-").replace('-', "");
    assert_eq!(
        headers["traceparent"],
        format!("00-{trace_id}-{}-01", span_of(&id)),
        "{headers} {record}"
    );
    assert!(headers.get("tracestate").is_none(), "{headers}");
}

#[tokio::test]
async fn a_native_function_sees_its_trace_in_x_amzn_trace_id() {
    let server = server();
    crate::native::deploy_kit(&server, "py", json!({})).await;
    let r = client()
        .post(server.at("/v1/functions/py/invoke"))
        .header("traceparent", TRACEPARENT)
        .json(&json!({"action": "env"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-wisp-invocation-id"].to_str().unwrap().to_string();
    let env: Value = r.json().await.unwrap();
    // The bootstrap sets it from `Lambda-Runtime-Trace-Id`, as AWS's runtimes do.
    assert_eq!(
        env["_X_AMZN_TRACE_ID"],
        format!("Root={ROOT};Parent={};Sampled=1", span_of(&id)),
        "{env}"
    );
}

/// Every span the receiver got, each with its resource's `service.name` beside it.
fn spans(received: &[Received]) -> Vec<Value> {
    let mut spans = Vec::new();
    for request in received {
        let doc: Value = serde_json::from_str(&request.body).unwrap();
        for resource in doc["resourceSpans"].as_array().unwrap() {
            let service = resource["resource"]["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == "service.name")
                .map(|a| a["value"]["stringValue"].clone())
                .unwrap();
            for scope in resource["scopeSpans"].as_array().unwrap() {
                for span in scope["spans"].as_array().unwrap() {
                    let mut span = span.clone();
                    span["service"] = service.clone();
                    spans.push(span);
                }
            }
        }
    }
    spans
}

/// The value of attribute `key` of `span`.
fn attribute(span: &Value, key: &str) -> Value {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| a["value"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn an_otlp_receiver_gets_a_span_per_invocation_with_its_trace_and_parent() {
    let receiver = Receiver::start(200).await;
    let server = server_with(&["--otlp-endpoint", &receiver.url("")]);
    // chain-a calls chain-b (sync, through the platform address), which answers.
    deploy_kit(&server, "chain-b", json!({"env": {"KIT_ACTION": "chain"}})).await;
    let next = json!({"env": {"KIT_ACTION": "chain", "CHAIN_NEXT": "chain-b"}, "invoke": ["chain-b"]});
    deploy_kit(&server, "chain-a", next).await;
    let r = client()
        .get(server.at("/chain-a/chain"))
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let a_id = r.headers()["x-wisp-invocation-id"].to_str().unwrap().to_string();
    assert_eq!(r.text().await.unwrap(), "Hello, world!\n");

    let got = receiver
        .until(Duration::from_secs(20), |got| {
            let names: Vec<Value> = spans(got).iter().map(|s| s["name"].clone()).collect();
            names.contains(&json!("chain-a")) && names.contains(&json!("chain-b"))
        })
        .await;
    for request in &got {
        assert_eq!(request.path, "/v1/traces");
        assert_eq!(request.headers["content-type"], "application/json");
    }
    let all = spans(&got);
    assert_eq!(all.len(), 2, "one span per invocation: {all:#?}");
    let span = |name: &str| all.iter().find(|s| s["name"] == name).unwrap().clone();
    let (a, b) = (span("chain-a"), span("chain-b"));
    for s in [&a, &b] {
        assert_eq!(s["traceId"], TRACE_ID, "the client's trace: {s}");
        assert_eq!(s["kind"], 2, "{s}");
        assert!(s.get("status").is_none(), "{s}");
        let (start, end) = (
            s["startTimeUnixNano"].as_str().unwrap().parse::<u128>().unwrap(),
            s["endTimeUnixNano"].as_str().unwrap().parse::<u128>().unwrap(),
        );
        assert!(end >= start && start > 1_600_000_000_000_000_000, "{s}");
        assert_eq!(attribute(s, "faas.version"), json!({"intValue": "1"}), "{s}");
        assert!(attribute(s, "faas.coldstart")["boolValue"].is_boolean(), "{s}");
    }
    assert_eq!(a["service"], "chain-a");
    assert_eq!(a["spanId"], span_of(&a_id), "the span its guest was told of");
    assert_eq!(attribute(&a, "faas.invocation_id"), json!({"stringValue": a_id}));
    assert!(a.get("parentSpanId").is_none(), "{a}");
    assert_eq!(b["parentSpanId"], a["spanId"], "chain-b is chain-a's child: {b}");
    let b_id = attribute(&b, "faas.invocation_id")["stringValue"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(b["spanId"], span_of(&b_id));
    let b_record = record_of(&server, "chain-b", &b_id).await;
    assert_eq!(b_record["parent"], a_id.as_str(), "{b_record}");
    assert_eq!(b_record["trace"], ROOT, "{b_record}");

    // A failed run's span says so.
    deploy_kit(&server, "broken", json!({})).await;
    let r = client().get(server.at("/broken/trap")).send().await.unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());
    let got = receiver
        .until(Duration::from_secs(20), |got| {
            spans(got).iter().any(|s| s["name"] == "broken")
        })
        .await;
    let broken = spans(&got).into_iter().find(|s| s["name"] == "broken").unwrap();
    assert_eq!(broken["status"]["code"], 2, "{broken}");
    assert_eq!(broken["status"]["message"], "function_error", "{broken}");
    assert_eq!(
        attribute(&broken, "wisp.error_code"),
        json!({"stringValue": "function_error"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_spans_are_sent_before_a_graceful_shutdown_ends() {
    // The collector is busy at first: the POST is retried 250 ms later, which a
    // shutdown that did not wait for the exporter would cut off.
    let receiver = Receiver::start(503).await;
    let mut server = server_with(&["--otlp-endpoint", &receiver.url("")]);
    deploy_kit(&server, "last", json!({})).await;
    let (status, got) = (receiver.status.clone(), receiver.got.clone());
    tokio::spawn(async move {
        while got.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        status.store(200, std::sync::atomic::Ordering::SeqCst);
    });
    let r = client().get(server.at("/last/hello")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-wisp-invocation-id"].to_str().unwrap().to_string();
    // At once: the record is still in the log writer's batch.
    server.signal("TERM");
    let status = tokio::task::block_in_place(|| server.wait(Duration::from_secs(30)));
    assert!(status.success(), "{status:?}");
    let got = receiver.received();
    let answers: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(answers, [503, 200], "tried, then tried again before the exit");
    for request in &got {
        let ids: Vec<Value> = spans(std::slice::from_ref(request))
            .iter()
            .map(|s| attribute(s, "faas.invocation_id"))
            .collect();
        assert_eq!(ids, [json!({ "stringValue": id })], "the run's span");
    }
}

#[tokio::test]
async fn an_unreachable_collector_holds_up_no_invocation() {
    // A port bound and never listened on, held for the whole test: connecting is refused,
    // and no other test's server can take the port meanwhile (a port merely freed could
    // be, and one that accepts and never answers holds each export up to its timeout).
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = held.local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = server_with(&["--otlp-endpoint", &endpoint]);
    deploy_kit(&server, "kit", json!({"env": {"KIT_ACTION": "hello"}})).await;
    for _ in 0..5 {
        let started = Instant::now();
        let r = client().get(server.at("/kit/x")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
    // The exporter tried, retried and gave up on those spans, and said so.
    let needle = format!("exporting to {endpoint}/v1/traces failed");
    let started = Instant::now();
    while !server.stderr().contains(&needle) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no warning about the lost spans: {}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = client().get(server.at("/kit/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn an_otlp_endpoint_wisp_cannot_use_is_refused_at_start() {
    for (bad, why) in [
        ("localhost:4318", "is not a URL"),
        ("grpc://localhost:4317", "scheme `grpc`"),
        ("http://user:pw@collector:4318", "userinfo"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--otlp-endpoint",
                bad,
                "--data-dir",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}: {stderr}");
        assert!(
            stderr.contains("--otlp-endpoint") && stderr.contains(why),
            "{bad}: {stderr}"
        );
    }
    // From the environment too.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("WISP_OTLP_ENDPOINT", "ftp://collector:4318")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("scheme `ftp`"), "{stderr}");
}

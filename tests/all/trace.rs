//! Trace roots through async work: every invocation record names the root it ran
//! under, and what an invocation causes asynchronously — an async call, a queue message
//! whose trigger runs a function — runs under the same root; a client's async invoke
//! may start the trace with `X-Amzn-Trace-Id`. Each record names its parent (the
//! invocation that called it or sent what it ran for), so `GET /v1/traces/{root}` and
//! `wisp trace` read a request's tree from the records alone.

use crate::tenancy::create_key;
use crate::util::{client, deploy_fixture, expect_problem, get_json, server, wisp, wisp_fails};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;
use wisp_test_support::keyed_client;

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
    // The callee's parent is the caller's run.
    let (caller, callee) = (
        records(&server, "caller", 1).await,
        records(&server, "callee", 1).await,
    );
    assert_eq!(callee[0]["parent"], caller[0]["id"], "{callee:?}");
    assert_eq!(caller[0]["parent"], Value::Null, "{caller:?}");
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
    // The message's sender is the parent of the run it triggered.
    let (sender, consumer) = (
        records(&server, "sender", 1).await,
        records(&server, "consumer", 1).await,
    );
    assert_eq!(consumer[0]["parent"], sender[0]["id"], "{consumer:?}");
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

/// `GET /v1/traces/{root}` once it lists `n` invocations (records land in batches).
async fn trace_of(server: &TestServer, root: &str, n: usize) -> Value {
    let started = Instant::now();
    loop {
        let r = get_json(server, &format!("/v1/traces/{root}")).await;
        if r["invocations"].as_array().map_or(0, Vec::len) >= n {
            return r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "trace {root} lacks invocations: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The listed invocation of `function` in trace answer `trace`.
fn run_of<'a>(trace: &'a Value, function: &str) -> &'a Value {
    trace["invocations"]
        .as_array()
        .and_then(|list| list.iter().find(|i| i["function"] == function))
        .unwrap_or_else(|| panic!("no invocation of {function} in {trace}"))
}

#[tokio::test]
async fn a_trace_reads_as_a_tree_of_sync_and_async_calls() {
    let server = server();
    // A route request to chain-a, which calls chain-b, which calls chain-c (sync, as
    // bench/invoke-chain deploys them).
    deploy_kit(&server, "chain-c", json!({"env": {"KIT_ACTION": "chain"}})).await;
    let next = |to: &str| json!({"env": {"KIT_ACTION": "chain", "CHAIN_NEXT": to}, "invoke": [to]});
    deploy_kit(&server, "chain-b", next("chain-c")).await;
    deploy_kit(&server, "chain-a", next("chain-b")).await;
    let r = client().get(server.at("/chain-a/chain")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "Hello, world!\n");
    let root = only_trace(&server, "chain-a").await;
    let trace = trace_of(&server, &root, 3).await;
    assert_eq!(trace["trace"], root.as_str());
    let list = trace["invocations"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{trace}");
    let (a, b, c) = (
        run_of(&trace, "chain-a"),
        run_of(&trace, "chain-b"),
        run_of(&trace, "chain-c"),
    );
    assert_eq!(a["parent"], Value::Null, "{trace}");
    assert_eq!(b["parent"], a["id"], "{trace}");
    assert_eq!(c["parent"], b["id"], "{trace}");
    for i in list {
        assert_eq!(i["version"], 1, "{i}");
        assert!(
            i["started_at"].is_string() && i["run_us"].is_u64() && i["cold"].is_boolean(),
            "{i}"
        );
        assert_eq!(i["error"], Value::Null, "{i}");
    }
    // The invocation records name their parents too.
    let b_record = records(&server, "chain-b", 1).await;
    assert_eq!(b_record[0]["parent"], a["id"], "{b_record:?}");

    // `wisp trace` draws the tree: each call indented under its caller.
    let tree = wisp(&server, &["trace", &root]);
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), 3, "{tree}");
    let id = |i: &Value| i["id"].as_str().unwrap().to_owned();
    assert!(
        lines[0].starts_with(&format!("chain-a v1 {} +0ms ", id(a))),
        "{tree}"
    );
    assert!(
        lines[1].starts_with(&format!("  chain-b v1 {} +", id(b))),
        "{tree}"
    );
    assert!(
        lines[2].starts_with(&format!("    chain-c v1 {} +", id(c))),
        "{tree}"
    );
    let json: Value = serde_json::from_str(&wisp(&server, &["trace", &root, "--json"])).unwrap();
    assert_eq!(json, trace);
    let refused = wisp_fails(&server, &["trace", "not-a-root"], 2);
    assert!(refused.contains("not a trace root"), "{refused}");

    // An async call: the callee runs later, through the async pipeline, as a child of
    // the caller's run.
    deploy_kit(&server, "callee", json!({"env": {"KIT_ACTION": "hello"}})).await;
    deploy_kit(&server, "caller", json!({"invoke": ["callee"]})).await;
    let r = client()
        .post(server.at("/caller/call?to=callee&type=Event"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let root = only_trace(&server, "caller").await;
    let trace = trace_of(&server, &root, 2).await;
    let (caller, callee) = (run_of(&trace, "caller"), run_of(&trace, "callee"));
    assert_eq!(caller["parent"], Value::Null, "{trace}");
    assert_eq!(callee["parent"], caller["id"], "{trace}");
    let tree = wisp(&server, &["trace", &root]);
    assert!(
        tree.starts_with("caller v1 ") && tree.contains("\n  callee v1 "),
        "{tree}"
    );

    // A malformed root is refused; a root no record carries is not found, as is this
    // trace for a key of another namespace.
    let r = client()
        .get(server.at("/v1/traces/1-nothex"))
        .send()
        .await
        .unwrap();
    let doc = expect_problem(r, 400, "invalid_request").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("not a trace root"),
        "{doc}"
    );
    let r = client()
        .get(server.at(&format!("/v1/traces/{CLIENT_ROOT}")))
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "trace_not_found").await;
    let made = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({"name": "other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let theirs = keyed_client(&create_key(&server, "other", "read", None).await);
    let r = theirs
        .get(server.at(&format!("/v1/traces/{root}")))
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "trace_not_found").await;
}

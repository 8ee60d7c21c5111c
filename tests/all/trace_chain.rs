//! One trace followed through every hop at once: a route request that names its trace
//! with `traceparent` calls a function asynchronously, which sends a queue message,
//! whose trigger runs a function, which calls another synchronously. `trace.rs` and
//! `trace_paths.rs` walk each hop alone; here the root and the parent links must survive
//! the whole chain, and `GET /v1/traces/{root}` and `wisp trace` must read it as one
//! tree.

use crate::util::{client, deploy_fixture, get_json, wisp};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

/// The client's W3C trace context, and its trace-id as the X-Ray root records carry.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const ROOT: &str = "1-4bf92f35-77b34da6a3ce929d0e0e4736";

/// Deploys http-kit as `name` on `/{name}/{*rest}`, with `extra` merged into its config.
async fn deploy_kit(server: &TestServer, name: &str, extra: Value) {
    let mut config = json!({"kind": "http", "routes": [format!("/{name}/*rest")]});
    for (key, value) in extra.as_object().into_iter().flatten() {
        config[key] = value.clone();
    }
    deploy_fixture(server, name, "http-kit", config).await;
}

/// `GET /v1/traces/{ROOT}` once it lists `n` invocations (up to 20 s: the hops after
/// the route's run are asynchronous, and records land in batches).
async fn trace_when(server: &TestServer, n: usize) -> Value {
    let started = Instant::now();
    loop {
        let r = get_json(server, &format!("/v1/traces/{ROOT}")).await;
        if r["invocations"].as_array().map_or(0, Vec::len) >= n {
            return r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "trace {ROOT} lacks invocations: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The only invocation record of `function`, from its own list.
async fn only_record(server: &TestServer, function: &str) -> Value {
    let r = get_json(server, &format!("/v1/functions/{function}/invocations?limit=10")).await;
    let list = r["invocations"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 1, "{function}: {r}");
    list[0].clone()
}

#[tokio::test]
async fn a_route_requests_trace_follows_an_async_call_a_queue_message_and_a_sync_call() {
    let server = crate::util::server();
    let r = client()
        .put(server.at("/v1/queues/jobs"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    // front (route) -async-> relay -queue message-> worker (trigger) -sync-> leaf.
    deploy_kit(&server, "leaf", json!({"env": {"KIT_ACTION": "hello"}})).await;
    deploy_kit(
        &server,
        "worker",
        json!({
            "queue": {"queue": "jobs", "batch_size": 1},
            "env": {"KIT_ACTION": "chain", "CHAIN_NEXT": "leaf"},
            "invoke": ["leaf"],
        }),
    )
    .await;
    deploy_kit(
        &server,
        "relay",
        json!({
            "queues": ["jobs"],
            "env": {
                "KIT_ACTION": "send",
                "KIT_SEND_URL": "http://wisp.internal/v1/queues/jobs/messages",
                "KIT_SEND_BODY": "{\"body\": \"work\"}",
            },
        }),
    )
    .await;
    deploy_kit(&server, "front", json!({"invoke": ["relay"]})).await;

    let r = client()
        .post(server.at("/front/call?to=relay&type=Event"))
        .header("traceparent", TRACEPARENT)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    let trace = trace_when(&server, 4).await;
    assert_eq!(trace["trace"], ROOT, "{trace}");
    let list = trace["invocations"].as_array().unwrap();
    assert_eq!(list.len(), 4, "{trace}");
    let run = |function: &str| {
        list.iter()
            .find(|i| i["function"] == function)
            .unwrap_or_else(|| panic!("no invocation of {function} in {trace}"))
    };
    let (front, relay, worker, leaf) = (run("front"), run("relay"), run("worker"), run("leaf"));
    // A chain: each run's parent is the run that caused it; the client's span is not an
    // invocation, so the route's run has none.
    assert_eq!(front["parent"], Value::Null, "{trace}");
    assert_eq!(relay["parent"], front["id"], "{trace}");
    assert_eq!(worker["parent"], relay["id"], "{trace}");
    assert_eq!(leaf["parent"], worker["id"], "{trace}");
    for i in list {
        assert_eq!(i["error"], Value::Null, "{i}");
    }

    // Each function's own record says the same as the trace.
    for (function, parent) in [
        ("front", &Value::Null),
        ("relay", &front["id"]),
        ("worker", &relay["id"]),
        ("leaf", &worker["id"]),
    ] {
        let record = only_record(&server, function).await;
        assert_eq!(record["trace"], ROOT, "{function}: {record}");
        assert_eq!(&record["parent"], parent, "{function}: {record}");
    }

    // `wisp trace` draws the chain, each run indented under the one that caused it.
    let tree = wisp(&server, &["trace", ROOT]);
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), 4, "{tree}");
    let id = |i: &Value| i["id"].as_str().unwrap().to_owned();
    for (depth, (function, i)) in [
        ("front", front),
        ("relay", relay),
        ("worker", worker),
        ("leaf", leaf),
    ]
    .into_iter()
    .enumerate()
    {
        let head = format!("{}{function} v1 {} +", "  ".repeat(depth), id(i));
        assert!(lines[depth].starts_with(&head), "{tree}");
    }
}

//! Nodes sharing a NATS JetStream store (`wisp serve --store nats://…`), on one machine
//! with real `nats-server`s: a deploy on one node is served by the others within a second,
//! async work runs wherever it was accepted and is seen everywhere, a schedule fires once
//! per slot across nodes, and a node that loses NATS says so and accepts no async work.

use crate::util::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;
use wisp_test_support::nats::NatsCluster;

/// A node on `nats` with its data in `dir`, sharing `master` (the first node's data
/// directory, whose `master.key` every node needs) unless it is the first.
fn node(nats: &str, dir: &Path, master: Option<&Path>) -> TestServer {
    if let Some(first) = master {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(first.join("master.key"), dir.join("master.key")).unwrap();
    }
    TestServer::spawn(bin(), &["serve", "--store", nats, "--s3-listen", "off"], dir)
}

/// Two nodes on one NATS server.
fn two_nodes(nats: &NatsCluster, temp: &Path) -> (TestServer, TestServer) {
    let a = node(&nats.url(), &temp.join("a"), None);
    let b = node(&nats.url(), &temp.join("b"), Some(&temp.join("a")));
    (a, b)
}

/// Polls `GET path` on `server` until `ready` accepts the answer (status and JSON), at
/// most `within`; returns how long it took.
async fn until(
    server: &TestServer,
    path: &str,
    within: Duration,
    ready: impl Fn(u16, &Value) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let response = client().get(server.at(path)).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if ready(status, &body) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "GET {path}: still {status} {body} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_deploy_on_one_node_is_served_by_another() {
    let nats = NatsCluster::start(1);
    let temp = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&nats, temp.path());

    deploy_fixture(&a, "greet", "event-kit", json!({ "kind": "event" })).await;
    let seen = until(&b, "/v1/functions/greet", Duration::from_secs(5), |s, _| s == 200).await;
    assert!(
        seen < Duration::from_secs(1),
        "node B saw the deploy after {seen:?}"
    );
    let answer: Value = client()
        .post(b.at("/v1/functions/greet/invoke"))
        .json(&json!({ "action": "hello", "name": "B" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer, json!({ "message": "Hello, B!" }));

    // Async: accepted by B, visible (and run once) from A.
    let response = client()
        .post(b.at("/v1/functions/greet/invoke"))
        .header("x-wisp-invocation-type", "event")
        .json(&json!({ "action": "hello" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.headers()["x-wisp-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    until(
        &a,
        &format!("/v1/invocations/{id}"),
        Duration::from_secs(20),
        |s, v| s == 200 && v["status"] == "succeeded",
    )
    .await;

    // Both nodes are listed, each up.
    let cluster = get_json(&a, "/v1/cluster").await;
    let nodes = cluster["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{cluster}");
    assert!(nodes.iter().all(|n| n["up"] == true), "{cluster}");

    // A delete on B stops A serving the function.
    let deleted = client().delete(b.at("/v1/functions/greet")).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    until(&a, "/v1/functions/greet", Duration::from_secs(2), |s, _| s == 404).await;
}

#[tokio::test]
async fn a_secret_set_on_one_node_reaches_functions_on_another() {
    let nats = NatsCluster::start(1);
    let temp = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&nats, temp.path());
    let put = client()
        .put(a.at("/v1/secrets/db"))
        .body("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let config = json!({ "kind": "event", "env": { "DB": { "secret": "db" } } });
    deploy_fixture(&a, "envy", "event-kit", config).await;
    // B learns the function by the registry's watch and the secret at its next
    // heartbeat (every 2 s): until then an instance there cannot start.
    let started = Instant::now();
    loop {
        let response = client()
            .post(b.at("/v1/functions/envy/invoke"))
            .json(&json!({ "action": "env" }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == 200 {
            assert_eq!(body["DB"], "s3cret", "{body}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "still {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_schedule_fires_once_per_slot_across_nodes() {
    let nats = NatsCluster::start(1);
    let temp = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&nats, temp.path());
    let config = json!({ "kind": "event", "schedule": "* * * * * *" });
    deploy_fixture(&a, "tick", "event-kit", config).await;
    // Both nodes run the schedule's task; each slot is one event whichever wins.
    until(&b, "/v1/functions/tick", Duration::from_secs(5), |s, _| s == 200).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let runs = get_json(&a, "/v1/functions/tick/invocations?limit=1000").await["invocations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut slots: Vec<String> = runs
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();
    let all = slots.len();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), all, "a slot ran twice: {runs:?}");
    assert!(
        (3..=7).contains(&all),
        "{all} runs in about 5 one-second slots: {runs:?}"
    );
}

#[tokio::test]
async fn a_node_that_loses_nats_refuses_async_work_and_says_so() {
    let mut nats = NatsCluster::start(1);
    let temp = tempfile::tempdir().unwrap();
    let server = node(&nats.url(), &temp.path().join("a"), None);
    deploy_fixture(&server, "work", "event-kit", json!({ "kind": "event" })).await;
    until(&server, "/v1/health", Duration::from_secs(5), |s, v| {
        s == 200 && v["store"]["reachable"] == true
    })
    .await;

    nats.kill(0);
    let response = client()
        .post(server.at("/v1/functions/work/invoke"))
        .header("x-wisp-invocation-type", "event")
        .json(&json!({}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    expect_problem(response, 503, "store_unavailable").await;
    until(&server, "/v1/health", Duration::from_secs(15), |s, v| {
        s == 503 && v["status"] == "unavailable" && v["store"]["reachable"] == false
    })
    .await;

    // NATS back: the node says so and takes async work again.
    nats.restart(0);
    until(&server, "/v1/health", Duration::from_secs(20), |s, _| s == 200).await;
    let response = client()
        .post(server.at("/v1/functions/work/invoke"))
        .header("x-wisp-invocation-type", "event")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn a_killed_nodes_running_events_run_again_on_another() {
    let nats = NatsCluster::start(1);
    let temp = tempfile::tempdir().unwrap();
    let (a, mut b) = two_nodes(&nats, temp.path());
    let config = json!({ "kind": "event", "timeout": "3s", "max_retries": 0 });
    deploy_fixture(&a, "spin", "event-kit", config).await;
    until(&b, "/v1/functions/spin", Duration::from_secs(5), |s, _| s == 200).await;
    // Accepted by B, which runs it at once (it spins until its timeout).
    let response = client()
        .post(b.at("/v1/functions/spin/invoke"))
        .header("x-wisp-invocation-type", "event")
        .json(&json!({ "action": "loop" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.headers()["x-wisp-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.signal("KILL");
    b.wait(Duration::from_secs(10));
    // Once B's heartbeat is 10 s old, A frees B's lease and runs the event: it times out
    // again, and with no retries it is a dead letter, not a lease held forever.
    let took = until(
        &a,
        &format!("/v1/invocations/{id}"),
        Duration::from_secs(40),
        |s, v| s == 200 && v["status"] == "failed",
    )
    .await;
    assert!(
        took >= Duration::from_secs(8),
        "released before B was gone: {took:?}"
    );
    let cluster = get_json(&a, "/v1/cluster").await;
    let gone = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["up"] == false)
        .count();
    assert_eq!(gone, 1, "{cluster}");
}

#[tokio::test]
async fn an_object_put_through_one_node_is_read_through_another() {
    // Object bytes were blobs in each node's data directory: B found the object's
    // metadata in the shared store but not its bytes.
    let nats = NatsCluster::start(1);
    let temp = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&nats, temp.path());
    let made = client().put(a.at("/v1/buckets/shared")).send().await.unwrap();
    assert!(made.status().is_success(), "{}", made.status());
    let bytes: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let put = client()
        .put(a.at("/v1/buckets/shared/objects/dir/big.bin"))
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);

    let got = client()
        .get(b.at("/v1/buckets/shared/objects/dir/big.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert!(got.bytes().await.unwrap() == bytes, "B read other bytes");
    // A range, now from B's own copy.
    let part = client()
        .get(b.at("/v1/buckets/shared/objects/dir/big.bin"))
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert!(
        part.bytes().await.unwrap() == bytes[1000..2000],
        "B read another range"
    );
}

#[tokio::test]
async fn a_node_started_while_nats_is_down_waits_for_it() {
    let mut nats = NatsCluster::start(1);
    let url = nats.url();
    nats.kill(0);
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("a");
    let starting = std::thread::spawn(move || node(&url, &dir, None));
    std::thread::sleep(Duration::from_secs(3));
    nats.restart(0);
    let server = starting.join().unwrap();
    assert!(
        server.stderr().contains("cannot open the store on NATS"),
        "{}",
        server.stderr()
    );
    until(&server, "/v1/health", Duration::from_secs(10), |s, _| s == 200).await;
}

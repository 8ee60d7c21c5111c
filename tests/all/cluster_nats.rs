//! Nodes sharing a NATS JetStream store (`wisp serve --store nats://…`), on one machine
//! with real `nats-server`s: a deploy on one node is served by the others within a second,
//! async work runs wherever it was accepted and is seen everywhere, a schedule fires once
//! per slot across nodes, and a node that loses NATS says so and accepts no async work.

use crate::util::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use wisp_store::Events;
use wisp_test_support::TestServer;
use wisp_test_support::nats::NatsCluster;

/// A node on `nats` with its data in `dir`, sharing `master` (the first node's data
/// directory, whose `master.key` every node needs) unless it is the first.
fn node(nats: &str, dir: &Path, master: Option<&Path>) -> TestServer {
    node_with(nats, dir, master, &[])
}

/// [`node`], with more arguments to `wisp serve`.
fn node_with(nats: &str, dir: &Path, master: Option<&Path>, extra: &[&str]) -> TestServer {
    if let Some(first) = master {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(first.join("master.key"), dir.join("master.key")).unwrap();
    }
    let mut args = vec!["serve", "--store", nats, "--s3-listen", "off"];
    args.extend_from_slice(extra);
    TestServer::spawn(bin(), &args, dir)
}

/// Waits until `server` lists `n` nodes up, and then a heartbeat more, so that every
/// node has counted them (each counts at its own heartbeat).
async fn until_up(server: &TestServer, n: usize) {
    until(server, "/v1/cluster", Duration::from_secs(10), |s, v| {
        s == 200
            && v["nodes"]
                .as_array()
                .is_some_and(|nodes| nodes.iter().filter(|n| n["up"] == true).count() == n)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
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
    // Any call that reads the store says the same, not `500 internal`.
    let read = client()
        .get(server.at("/v1/invocations/no-such-event"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(read.headers()["retry-after"], "1");
    expect_problem(read, 503, "store_unavailable").await;
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

/// A write of an event leased to a node whose answer the node never heard (a NATS server
/// killed mid-commit) leaves the event leased to a live node that is not running it: the
/// node finds it at its next two looks at its leases (every 10 s) and frees it, and it
/// runs. Here the test writes such an event itself, under the node's name.
#[tokio::test]
async fn an_event_leased_to_a_node_that_never_heard_of_it_still_runs() {
    let nats = NatsCluster::start(1);
    let temp = tempfile::tempdir().unwrap();
    let a = node(&nats.url(), &temp.path().join("a"), None);
    deploy_fixture(&a, "greet", "event-kit", json!({ "kind": "event" })).await;
    let store = lease_event_to(&nats.url(), &temp.path().join("a"), "orphan-1").await;
    let status = get_json(&a, "/v1/invocations/orphan-1").await;
    assert_eq!(status["status"], "running", "leased: {status}");

    let took = until(&a, "/v1/invocations/orphan-1", Duration::from_secs(45), |s, v| {
        s == 200 && v["status"] == "succeeded"
    })
    .await;
    assert!(
        took >= Duration::from_secs(5),
        "freed at the first look, not the second: {took:?}"
    );
    assert!(
        a.stderr().contains("leased to this node but not running here"),
        "{}",
        a.stderr()
    );
    assert_eq!(store.held_leases().await.unwrap(), []);
}

/// The namespace's concurrency cap holds across nodes: with a cap of 2 on two nodes, each
/// holds one, so a third call at once is refused on either node (one node alone would
/// have run two).
#[tokio::test]
async fn a_namespace_concurrency_cap_holds_across_nodes() {
    let nats = NatsCluster::start(1);
    let temp = tempfile::tempdir().unwrap();
    let cap = ["--namespace-max-concurrency", "2"];
    let a = node_with(&nats.url(), &temp.path().join("a"), None, &cap);
    let b = node_with(
        &nats.url(),
        &temp.path().join("b"),
        Some(&temp.path().join("a")),
        &cap,
    );
    let config = json!({ "kind": "http", "routes": ["/s/:action"], "queue_timeout": "200ms" });
    one_running_on_each_refuses_a_third(&a, &b, config, "namespace `default` is running its limit").await;
}

/// A monthly request quota holds across nodes: what one node admitted counts on the
/// other once the usage reaches the store (about two seconds), so calls spread over two
/// nodes run exactly the quota.
#[tokio::test]
async fn a_request_quota_holds_across_nodes() {
    let nats = NatsCluster::start(1);
    let temp = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&nats, temp.path());
    let config = json!({ "kind": "http", "routes": ["/q/:action"] });
    deploy_fixture(&a, "counted", "http-kit", config).await;
    until(&b, "/v1/functions/counted", Duration::from_secs(5), |s, _| {
        s == 200
    })
    .await;
    let set = client()
        .patch(a.at("/v1/namespaces/default"))
        .json(&json!({ "quota": { "requests": 10 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    until(&b, "/v1/namespaces/default", Duration::from_secs(5), |_, v| {
        v["quota"]["requests"] == 10
    })
    .await;

    let mut ok = 0;
    for _ in 0..6 {
        let answer = client().get(a.at("/q/hello")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        ok += 1;
    }
    // B learns of A's six from the store (its reconcile, once a second).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut refused = 0;
    for _ in 0..10 {
        let answer = client().get(b.at("/q/hello")).send().await.unwrap();
        match answer.status().as_u16() {
            200 => ok += 1,
            429 => refused += 1,
            other => panic!("{other}: {}", answer.text().await.unwrap()),
        }
    }
    assert_eq!((ok, refused), (10, 6), "B admitted past the quota");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late = client().get(a.at("/q/hello")).send().await.unwrap();
    expect_problem(late, 429, "quota_exceeded").await;
}

/// Schedules have no leader to lose: while one of two nodes is killed, the other goes on
/// firing each slot once.
#[tokio::test]
async fn a_schedule_fires_once_per_slot_while_a_node_is_killed() {
    let nats = NatsCluster::start(1);
    let temp = tempfile::tempdir().unwrap();
    let (mut a, b) = two_nodes(&nats, temp.path());
    let config = json!({ "kind": "event", "schedule": "* * * * * *" });
    deploy_fixture(&a, "tick", "event-kit", config).await;
    until(&b, "/v1/functions/tick", Duration::from_secs(5), |s, _| s == 200).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.signal("KILL");
    a.wait(Duration::from_secs(10));
    // As records show `started_at`: RFC 3339 in UTC, which sorts as time does.
    let killed_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let runs = get_json(&b, "/v1/functions/tick/invocations?limit=1000").await["invocations"]
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
        (5..=9).contains(&all),
        "{all} runs in about 7 one-second slots, one node killed midway: {runs:?}"
    );
    let after_kill = runs
        .iter()
        .filter(|r| r["started_at"].as_str().is_some_and(|t| t > killed_at.as_str()))
        .count();
    assert!(after_kill >= 3, "{after_kill} runs after the kill: {runs:?}");
}

/// A TCP proxy to a NATS server that a test can cut (every connection dropped, new ones
/// refused) and mend: one node's way to NATS, failing while the others' works.
struct Cuttable {
    url: String,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Cuttable {
    async fn to(nats_url: &str) -> Cuttable {
        use std::sync::atomic::Ordering;
        let target = nats_url.trim_start_matches("nats://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("nats://{}", listener.local_addr().unwrap());
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (accepting, held) = (open.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let link = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                held.lock().unwrap().push(link.abort_handle());
            }
        });
        Cuttable { url, open, links }
    }

    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn mend(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// An event leased to node `node` (its name, from its data directory `dir`), written by
/// the test itself: as if the node had claimed it.
async fn lease_event_to(nats: &str, dir: &Path, id: &str) -> wisp_store::JetStreamStore {
    let name = std::fs::read_to_string(dir.join("node.name")).unwrap();
    let store = wisp_store::JetStreamStore::connect(nats, "wisp")
        .await
        .unwrap()
        .with_node(name.trim())
        .unwrap();
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let now = now_us / 1000;
    let event = wisp_store::NewEvent {
        namespace: wisp_core::Namespace::new("default").unwrap(),
        function: wisp_core::FunctionName::new("greet").unwrap(),
        id: id.to_owned(),
        payload: br#"{"action":"hello","name":"leased"}"#.to_vec(),
        idempotency_key: None,
        chain_depth: 0,
        source: "api".to_owned(),
        qualifier: None,
        trace: None,
        parent: None,
        created_us: now_us,
        run_at: now,
        lease: Some(wisp_store::Lease {
            until: now + 40 * 60 * 1000,
            started_us: now_us,
        }),
    };
    store.enqueue_events(&[event], now_us).await.unwrap();
    store
}

/// After an outage of the store longer than a node's silence allowance, every node's
/// heartbeat is old: a node back first must not take the others for gone (and run their
/// events a second time) before its own heartbeats have reached the store for that long.
/// Here NATS is down 12 s, and node B's way to it 4 s longer than A's; B holds a lease.
// Multi-threaded: the proxy's tasks run while the test blocks starting a node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_store_outage_no_live_node_is_taken_for_gone() {
    let mut nats = NatsCluster::start(1);
    let temp = tempfile::tempdir().unwrap();
    let to_b = Cuttable::to(&nats.url()).await;
    let a = node(&nats.url(), &temp.path().join("a"), None);
    let b = node(&to_b.url, &temp.path().join("b"), Some(&temp.path().join("a")));
    deploy_fixture(&a, "greet", "event-kit", json!({ "kind": "event" })).await;
    until(&b, "/v1/functions/greet", Duration::from_secs(5), |s, _| s == 200).await;
    until_up(&a, 2).await;
    lease_event_to(&nats.url(), &temp.path().join("b"), "held-by-b").await;

    nats.kill(0);
    to_b.cut();
    tokio::time::sleep(Duration::from_secs(12)).await;
    nats.restart(0);
    until(&a, "/v1/health", Duration::from_secs(20), |s, _| s == 200).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    to_b.mend();
    until(&b, "/v1/health", Duration::from_secs(20), |s, _| s == 200).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(
        !a.stderr().contains("is gone"),
        "A took B for gone after the outage: {}",
        a.stderr()
    );
    // B itself frees the lease it holds without running the event, and it runs.
    until(
        &a,
        "/v1/invocations/held-by-b",
        Duration::from_secs(30),
        |s, v| s == 200 && v["status"] == "succeeded",
    )
    .await;
}

/// A version's `max_concurrency` holds across nodes as the namespace cap does: of 2 on
/// two nodes, each holds one, and a second call at once on either node is refused.
#[tokio::test]
async fn a_functions_max_concurrency_holds_across_nodes() {
    let nats = NatsCluster::start(1);
    let temp = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&nats, temp.path());
    let config = json!({
        "kind": "http",
        "routes": ["/s/:action"],
        "max_concurrency": 2,
        "queue_timeout": "200ms",
    });
    one_running_on_each_refuses_a_third(
        &a,
        &b,
        config,
        "its share of its max_concurrency of 2 (1 invocations on each of the 2 nodes up)",
    )
    .await;
}

/// Deploys http-kit as `slow` (on `/s/:action`, with `config`) through `a`, starts a slow
/// call on each node, and checks that a third call, on either node, is refused
/// `429 throttled` with a detail containing `refusal`; then that both slots free again.
async fn one_running_on_each_refuses_a_third(a: &TestServer, b: &TestServer, config: Value, refusal: &str) {
    deploy_fixture(a, "slow", "http-kit", config).await;
    until(b, "/v1/functions/slow", Duration::from_secs(5), |s, _| s == 200).await;
    until_up(a, 2).await;

    let slow: Vec<_> = [a, b]
        .into_iter()
        .map(|node| {
            let url = node.at("/s/sleep?ms=2000");
            tokio::spawn(async move { client().get(url).send().await.unwrap().status() })
        })
        .collect();
    for node in [a, b] {
        until(node, "/v1/functions/slow", Duration::from_secs(5), |_, f| {
            f["instances"]["busy"] == 1
        })
        .await;
    }
    for node in [a, b] {
        let refused = client().get(node.at("/s/hello")).send().await.unwrap();
        let doc = expect_problem(refused, 429, "throttled").await;
        let detail = doc["detail"].as_str().unwrap();
        assert!(detail.contains(refusal), "{doc}");
    }
    for request in slow {
        assert_eq!(request.await.unwrap(), 200);
    }
    for node in [a, b] {
        let after = client().get(node.at("/s/hello")).send().await.unwrap();
        assert_eq!(after.status(), 200, "slots free again");
    }
}

/// The issue's shape: three nodes on a three-server NATS cluster, every bucket and stream
/// on all three (`--store-replicas 3`): a deploy on A is served by B and C, and an async
/// invoke accepted by C runs and is seen from A, also while one NATS server is down.
#[tokio::test]
async fn three_nodes_on_three_nats_servers_serve_a_deploy_made_on_one() {
    let mut nats = NatsCluster::start(3);
    let temp = tempfile::tempdir().unwrap();
    let replicas = ["--store-replicas", "3"];
    let first = temp.path().join("a");
    let a = node_with(&nats.url(), &first, None, &replicas);
    let b = node_with(&nats.url(), &temp.path().join("b"), Some(&first), &replicas);
    let c = node_with(&nats.url(), &temp.path().join("c"), Some(&first), &replicas);

    deploy_fixture(&a, "greet", "event-kit", json!({ "kind": "event" })).await;
    for (node, name) in [(&b, "B"), (&c, "C")] {
        until(node, "/v1/functions/greet", Duration::from_secs(5), |s, _| {
            s == 200
        })
        .await;
        let answer: Value = client()
            .post(node.at("/v1/functions/greet/invoke"))
            .json(&json!({ "action": "hello", "name": name }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer, json!({ "message": format!("Hello, {name}!") }));
    }
    until_up(&a, 3).await;

    nats.kill(1);
    // Accepting may wait out the streams' leader elections (a few seconds): retried as a
    // client would on 503.
    let started = Instant::now();
    let id = loop {
        let response = client()
            .post(c.at("/v1/functions/greet/invoke"))
            .header("x-wisp-invocation-type", "event")
            .json(&json!({ "action": "hello", "name": "C" }))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        if response.status() == 202 {
            break response.headers()["x-wisp-invocation-id"]
                .to_str()
                .unwrap()
                .to_owned();
        }
        assert_eq!(response.status(), 503, "{}", response.text().await.unwrap());
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not accepted within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    until(
        &a,
        &format!("/v1/invocations/{id}"),
        Duration::from_secs(30),
        |s, v| s == 200 && v["status"] == "succeeded",
    )
    .await;
}

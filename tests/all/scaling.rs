//! Elastic scaling: concurrency limits and the queue in front of them, scale to zero,
//! prewarming `min_instances`, and the cold-start telemetry every invocation records.

use crate::native::{deploy_kit, invoke, invoke_ok};
use crate::util::{bin, client, deploy_fixture, expect_problem, get_json, server};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wisp_test_support::TestServer;

/// Counts invocations running at once: the Python kit's `concurrent` action says `in`
/// when it starts and `out` before it returns, and waits for the answer to each, so
/// the count never lags behind the function.
struct Counter {
    port: u16,
    peak: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
}

async fn counter() -> Counter {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (now, peak, total) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (p, t) = (peak.clone(), total.clone());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (now, peak) = (now.clone(), p.clone());
            t.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (read, mut write) = socket.split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    match line.as_str() {
                        "in" => {
                            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(running, Ordering::SeqCst);
                        }
                        "out" => {
                            now.fetch_sub(1, Ordering::SeqCst);
                        }
                        other => panic!("the counter got `{other}`"),
                    }
                    write.write_all(b"ok\n").await.unwrap();
                }
            });
        }
    });
    Counter { port, peak, total }
}

/// The function as the API shows it.
async fn function(server: &TestServer, name: &str) -> Value {
    get_json(server, &format!("/v1/functions/{name}")).await
}

/// Polls the function until `ready` accepts it (10 s at most); returns the last view.
async fn function_when(server: &TestServer, name: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let view = function(server, name).await;
        if ready(&view) || started.elapsed() > Duration::from_secs(10) {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn server_timing(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("server-timing")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_burst_of_a_thousand_is_answered_and_never_runs_more_than_max_concurrency() {
    let server = TestServer::serve(bin());
    let counter = counter().await;
    let outbound = format!("http://127.0.0.1:{}", counter.port);
    deploy_kit(
        &server,
        "narrow",
        json!({ "max_concurrency": 10, "outbound": [outbound] }),
    )
    .await;
    let event = json!({ "action": "concurrent", "port": counter.port, "ms": 20 });
    let http = client();
    let url = server.at("/v1/functions/narrow/invoke");
    let requests = (0..1000).map(|_| {
        let (http, url, event) = (http.clone(), url.clone(), event.clone());
        tokio::spawn(async move {
            let response = http.post(url).json(&event).send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").cloned();
            let body: Value = response.json().await.unwrap();
            (status, retry_after, body)
        })
    });
    let mut answered = [0usize; 2];
    for request in requests.collect::<Vec<_>>() {
        let (status, retry_after, body) = request.await.unwrap();
        match status {
            200 => {
                assert_eq!(body, json!({ "ran": true }));
                answered[0] += 1;
            }
            429 => {
                assert_eq!(body["code"], "throttled", "{body}");
                assert_eq!(retry_after.unwrap(), "1");
                answered[1] += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let [ok, throttled] = answered;
    assert_eq!(ok + throttled, 1000);
    // Ten run and a hundred (the default max_queue) wait: at least those succeed.
    assert!(ok >= 110, "{ok} succeeded, {throttled} throttled");
    assert_eq!(
        counter.total.load(Ordering::SeqCst),
        ok,
        "every 200 ran exactly once"
    );
    let peak = counter.peak.load(Ordering::SeqCst);
    assert!((1..=10).contains(&peak), "the function saw {peak} at once");
    let view = function(&server, "narrow").await;
    assert_eq!(view["invocations"], ok as u64, "{view}");
    assert_eq!(view["throttled"], throttled as u64, "{view}");
    assert!(view["instances"]["idle"].as_u64().unwrap() <= 10, "{view}");
}

#[tokio::test]
async fn a_full_queue_is_refused_at_once_and_a_long_wait_times_out() {
    let server = TestServer::serve(bin());
    let config = json!({ "max_concurrency": 1, "max_queue": 1, "queue_timeout": "1s" });
    deploy_kit(&server, "single", config).await;
    invoke_ok(&server, "single", json!({ "action": "echo" })).await;
    let slow = {
        let url = server.at("/v1/functions/single/invoke");
        tokio::spawn(async move {
            client()
                .post(url)
                .json(&json!({ "action": "sleep", "ms": 2500 }))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    function_when(&server, "single", |f| f["instances"]["busy"] == 1).await;
    let waiter = {
        let url = server.at("/v1/functions/single/invoke");
        tokio::spawn(async move {
            let started = Instant::now();
            let response = client().post(url).json(&json!({})).send().await.unwrap();
            (started.elapsed(), response)
        })
    };
    function_when(&server, "single", |f| f["queued"] == 1).await;
    // The one place in the queue is taken: refused without waiting.
    let started = Instant::now();
    let full = invoke(&server, "single", json!({})).await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(full.headers()["retry-after"], "1");
    let doc = expect_problem(full, 429, "throttled").await;
    assert!(doc["detail"].as_str().unwrap().contains("queue is full"), "{doc}");
    let (waited, response) = waiter.await.unwrap();
    assert!(waited >= Duration::from_millis(990), "waited {waited:?}");
    let doc = expect_problem(response, 429, "throttled").await;
    assert!(doc["detail"].as_str().unwrap().contains("waited 1s"), "{doc}");
    assert_eq!(slow.await.unwrap(), 200);
    let view = function(&server, "single").await;
    assert_eq!(
        (view["throttled"].as_u64(), view["queued"].as_u64()),
        (Some(2), Some(0)),
        "{view}"
    );
}

#[tokio::test]
async fn idle_wasm_code_is_unloaded_and_reloaded_on_the_next_request() {
    // Two seconds: long enough that a loaded CI machine still sees the pool warm first.
    let server = TestServer::serve_with(bin(), &["--keep-alive", "2s"]);
    deploy_fixture(
        &server,
        "kit",
        "http-kit",
        json!({ "kind": "http", "routes": ["/kit/:action"] }),
    )
    .await;
    assert_eq!(
        function(&server, "kit").await["loaded"],
        true,
        "deploying loads the code"
    );
    let released = function_when(&server, "kit", |f| f["loaded"] == false).await;
    assert_eq!(released["loaded"], false, "scaled to zero: {released}");

    let cold = client().get(server.at("/kit/hello")).send().await.unwrap();
    assert_eq!(cold.status(), 200);
    let timing = server_timing(&cold);
    assert!(
        timing.starts_with("queue;dur=") && timing.contains(", init;dur="),
        "{timing}"
    );
    let warm = client().get(server.at("/kit/hello")).send().await.unwrap();
    assert!(!server_timing(&warm).contains("init"), "{}", server_timing(&warm));
    let view = function(&server, "kit").await;
    assert_eq!(
        (view["cold_starts"].as_u64(), view["invocations"].as_u64()),
        (Some(1), Some(2)),
        "{view}"
    );
    assert_eq!(view["loaded"], true);
    // And released again once idle.
    let view = function_when(&server, "kit", |f| f["loaded"] == false).await;
    assert_eq!(view["loaded"], false, "{view}");

    // Each invocation's record says whether it was cold, and its times.
    let records = records_when(&server, "kit", 2).await;
    assert_eq!(records["invocations"][0]["cold"], true, "{records}");
    assert!(
        records["invocations"][0]["init_us"].as_u64().unwrap() > 0,
        "{records}"
    );
    assert_eq!(records["invocations"][1]["cold"], false, "{records}");
    assert!(records["invocations"][1]["init_us"].is_null(), "{records}");
    assert_eq!(records["summary"]["cold_starts"], 1, "{records}");
    let cold = get_json(&server, "/v1/functions/kit/invocations?cold=true").await;
    assert_eq!(cold["invocations"].as_array().unwrap().len(), 1, "{cold}");

    // Bad queries are refused by name; so is a function that does not exist.
    for (query, says) in [
        ("limit=0", "`limit` must be between 1 and 10000"),
        ("limit=10001", "`limit` must be between 1 and 10000"),
        ("cold=maybe", "use `limit` (a number) and `cold` (true or false)"),
        ("colder=true", "use `limit` (a number) and `cold` (true or false)"),
    ] {
        let url = server.at(&format!("/v1/functions/kit/invocations?{query}"));
        let doc = expect_problem(client().get(url).send().await.unwrap(), 400, "invalid_request").await;
        assert!(doc["detail"].as_str().unwrap().contains(says), "{query}: {doc}");
    }
    let missing = client()
        .get(server.at("/v1/functions/ghost/invocations"))
        .send()
        .await
        .unwrap();
    expect_problem(missing, 404, "function_not_found").await;
}

/// The function's invocation records once `count` are stored.
async fn records_when(server: &TestServer, name: &str, count: usize) -> Value {
    let started = Instant::now();
    loop {
        let records = get_json(server, &format!("/v1/functions/{name}/invocations")).await;
        let n = records["invocations"].as_array().map_or(0, Vec::len);
        if n >= count || started.elapsed() > Duration::from_secs(10) {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn idle_process_instances_are_stopped_and_the_next_invocation_starts_one() {
    let server = TestServer::serve_with(bin(), &["--keep-alive", "2s"]);
    deploy_kit(&server, "py", json!({})).await;
    let first = invoke(&server, "py", json!({ "action": "echo" })).await;
    assert!(server_timing(&first).contains("init;dur="), "a cold start");
    let view = function(&server, "py").await;
    assert_eq!(view["instances"]["idle"], 1, "{view}");
    let view = function_when(&server, "py", |f| f["instances"]["idle"] == 0).await;
    assert_eq!(
        view["instances"],
        json!({ "busy": 0, "idle": 0, "starting": 0 }),
        "{view}"
    );
    let again = invoke(&server, "py", json!({ "action": "echo" })).await;
    assert_eq!(again.status(), 200);
    assert!(server_timing(&again).contains("init;dur="), "a cold start again");
    assert_eq!(function(&server, "py").await["cold_starts"], 2);
}

#[tokio::test]
async fn a_burst_on_a_cold_process_function_starts_instances_a_few_at_a_time() {
    // Forty short invocations at once, with room for a hundred: instances start a
    // few at a time (one per core, at least two), and the waiting invocations take
    // the first instances given back, instead of forty processes starting at once.
    let server = TestServer::serve_with(bin(), &[]);
    deploy_kit(&server, "burst", json!({})).await;
    let burst: Vec<_> = (0..40)
        .map(|n| {
            let (client, url) = (client(), server.at("/v1/functions/burst/invoke"));
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .json(&json!({ "action": "echo", "n": n }))
                    .send()
                    .await
                    .unwrap();
                response.status()
            })
        })
        .collect();
    let mut most_starting = 0;
    while !burst.iter().all(|task| task.is_finished()) {
        let view = function(&server, "burst").await;
        most_starting = most_starting.max(view["instances"]["starting"].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for task in burst {
        assert_eq!(task.await.unwrap(), 200);
    }
    let turns = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    assert!(
        most_starting <= turns as u64,
        "{most_starting} instances were starting at once (at most {turns})"
    );
    let view = function(&server, "burst").await;
    let started = view["cold_starts"].as_u64().unwrap();
    assert!(
        (1..20).contains(&started),
        "forty short invocations started {started} instances: {view}"
    );
    assert_eq!(view["invocations"], 40, "{view}");
}

#[tokio::test]
async fn min_instances_are_prewarmed_at_deploy_and_at_start_up_and_kept() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let args = ["serve", "--keep-alive", "1s"];
    let server = TestServer::spawn(bin(), &args, &dir);
    deploy_kit(&server, "ready", json!({ "min_instances": 2 })).await;
    let view = function_when(&server, "ready", |f| f["instances"]["idle"] == 2).await;
    assert_eq!(view["instances"]["idle"], 2, "prewarmed at deploy: {view}");
    // Well past the keep-alive, they are still there.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(function(&server, "ready").await["instances"]["idle"], 2);
    let warm = invoke(&server, "ready", json!({ "action": "echo" })).await;
    assert_eq!(warm.status(), 200);
    assert!(!server_timing(&warm).contains("init"), "{}", server_timing(&warm));
    assert_eq!(function(&server, "ready").await["cold_starts"], 0);
    drop(server);

    let server = TestServer::spawn(bin(), &args, &dir);
    let view = function_when(&server, "ready", |f| f["instances"]["idle"] == 2).await;
    assert_eq!(view["instances"]["idle"], 2, "prewarmed at start-up: {view}");
    let warm = invoke(&server, "ready", json!({ "action": "echo" })).await;
    assert!(!server_timing(&warm).contains("init"), "{}", server_timing(&warm));
}

#[tokio::test]
async fn bad_scaling_settings_are_refused_with_the_field_named() {
    let server = TestServer::serve(bin());
    for (config, field) in [
        (json!({ "kind": "http", "max_concurrency": 0 }), "max_concurrency"),
        (
            json!({ "kind": "http", "max_concurrency": 2, "min_instances": 3 }),
            "min_instances",
        ),
        (json!({ "kind": "http", "max_queue": 100_000 }), "max_queue"),
        (json!({ "kind": "http", "queue_timeout": "2h" }), "queue_timeout"),
    ] {
        let response = wisp_test_support::deploy(
            &client(),
            &server,
            "bad",
            config,
            wisp_test_support::fixture_bytes("http-kit"),
        )
        .await;
        let doc = expect_problem(response, 400, "invalid_config").await;
        assert!(doc["detail"].as_str().unwrap().starts_with(field), "{doc}");
    }
    let refused = std::process::Command::new(bin())
        .args(["serve", "--keep-alive-policy", "lru", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("'lru'") && stderr.contains("fixed, adaptive"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_wasm_burst_is_held_to_max_concurrency_and_every_request_answered() {
    let server = TestServer::serve(bin());
    let config = json!({ "kind": "http", "routes": ["/kit/:action"], "max_concurrency": 5, "max_queue": 20 });
    deploy_fixture(&server, "kit", "http-kit", config).await;
    let http = client();
    let url = server.at("/kit/sleep?ms=40");
    let requests: Vec<_> = (0..300)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { http.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    // Watch the pool while the burst runs.
    let mut busiest = 0;
    let watch_until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < watch_until {
        let view = function(&server, "kit").await;
        busiest = busiest.max(view["instances"]["busy"].as_u64().unwrap());
        assert!(view["queued"].as_u64().unwrap() <= 20, "{view}");
    }
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(ok + throttled, 300, "{statuses:?}");
    assert!(ok >= 25, "five run and twenty wait: {ok} succeeded");
    assert!(busiest <= 5, "{busiest} ran at once");
    let view = function(&server, "kit").await;
    assert_eq!(
        (view["invocations"].as_u64(), view["throttled"].as_u64()),
        (Some(ok as u64), Some(throttled as u64)),
        "{view}"
    );
}

#[tokio::test]
async fn the_namespace_cap_holds_across_functions() {
    let server = TestServer::serve_with(bin(), &["--namespace-max-concurrency", "2"]);
    let config = json!({ "kind": "http", "routes": ["/a/:action"], "queue_timeout": "200ms" });
    deploy_fixture(&server, "a", "http-kit", config).await;
    let config = json!({ "kind": "http", "routes": ["/b/:action"], "queue_timeout": "200ms" });
    deploy_fixture(&server, "b", "http-kit", config).await;
    let slow: Vec<_> = ["/a/sleep?ms=1500", "/b/sleep?ms=1500"]
        .into_iter()
        .map(|path| {
            let url = server.at(path);
            tokio::spawn(async move { client().get(url).send().await.unwrap().status() })
        })
        .collect();
    function_when(&server, "b", |f| f["instances"]["busy"] == 1).await;
    function_when(&server, "a", |f| f["instances"]["busy"] == 1).await;
    let refused = client().get(server.at("/a/hello")).send().await.unwrap();
    let doc = expect_problem(refused, 429, "throttled").await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("namespace `default` is running its limit of 2"),
        "{doc}"
    );
    for request in slow {
        assert_eq!(request.await.unwrap(), 200);
    }
    let after = client().get(server.at("/b/hello")).send().await.unwrap();
    assert_eq!(after.status(), 200, "slots free again");
}

/// A namespace's own `max_concurrency` replaces the server's default, takes effect for
/// invocations admitted after the change, and `null` gives the default back.
#[tokio::test]
async fn a_namespaces_own_cap_replaces_the_servers_default() {
    let server = server();
    let config = json!({ "kind": "http", "routes": ["/a/:action"], "queue_timeout": "200ms" });
    deploy_fixture(&server, "a", "http-kit", config).await;
    let set = |cap: Value| {
        let url = server.at("/v1/namespaces/default");
        async move {
            let r = client()
                .patch(url)
                .json(&json!({ "max_concurrency": cap }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let view = set(json!(1)).await;
    assert_eq!(
        (
            view["max_concurrency"].as_u64(),
            view["max_concurrency_is_default"].as_bool()
        ),
        (Some(1), Some(false))
    );
    let slow = {
        let url = server.at("/a/sleep?ms=1500");
        tokio::spawn(async move { client().get(url).send().await.unwrap().status() })
    };
    function_when(&server, "a", |f| f["instances"]["busy"] == 1).await;
    let refused = client().get(server.at("/a/hello")).send().await.unwrap();
    let doc = expect_problem(refused, 429, "throttled").await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("namespace `default` is running its limit of 1"),
        "{doc}"
    );
    let view = set(Value::Null).await;
    assert_eq!(view["max_concurrency_is_default"], true);
    let served = client().get(server.at("/a/hello")).send().await.unwrap();
    assert_eq!(
        served.status(),
        200,
        "the default cap (1000) is back while one still runs"
    );
    assert_eq!(slow.await.unwrap(), 200);
    let r = client()
        .patch(server.at("/v1/namespaces/default"))
        .json(&json!({ "max_concurrency": 0 }))
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_config").await;
}

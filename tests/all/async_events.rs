//! The async pipeline end to end: durable 202s, retries then dead letters then
//! redrive, destinations in Lambda's shape, idempotency keys, the loop guard, queue
//! triggers with partial batch failure, and cron triggers across a restart.

use crate::native::deploy_kit;
use crate::util::{bin, client, deploy_fixture, expect_problem, get_json, line_text, logs_when};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

/// A server whose retries come back within a tenth of a second.
fn fast_retries() -> TestServer {
    TestServer::serve_with(
        bin(),
        &["--async-retry-base", "50ms", "--async-retry-max", "200ms"],
    )
}

/// Invokes `name` async with `event`; returns the 202's body.
async fn invoke_async(server: &TestServer, name: &str, event: &Value, key: Option<&str>) -> Value {
    let mut request = client()
        .post(server.at(&format!("/v1/functions/{name}/invoke")))
        .header("x-wisp-invocation-type", "event")
        .json(event);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    let id = response.headers()["x-wisp-invocation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["location"], format!("/v1/invocations/{id}"));
    body
}

/// The invocation once `done` accepts it (up to 20 s).
async fn invocation_when(server: &TestServer, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let v = get_json(server, &format!("/v1/invocations/{id}")).await;
        if done(&v) {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "invocation {id} never got there: {v}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn finished(v: &Value) -> bool {
    matches!(v["status"].as_str(), Some("succeeded" | "failed"))
}

/// The invocation records of a function.
async fn records(server: &TestServer, name: &str) -> Vec<Value> {
    get_json(server, &format!("/v1/functions/{name}/invocations?limit=1000")).await["invocations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn an_async_invoke_runs_once_and_reports_its_result() {
    let server = TestServer::serve(bin());
    deploy_fixture(&server, "greet", "event-kit", json!({ "kind": "event" })).await;
    let accepted = invoke_async(
        &server,
        "greet",
        &json!({ "action": "hello", "name": "async" }),
        None,
    )
    .await;
    assert_eq!(accepted["duplicate"], false);
    let id = accepted["id"].as_str().unwrap();
    let done = invocation_when(&server, id, finished).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["result"]["message"], "Hello, async!");
    assert_eq!(done["payload"]["name"], "async");
    assert!(done["start_delay_ms"].as_f64().unwrap() >= 0.0, "{done}");
    // `Prefer: respond-async` asks for the same.
    let response = client()
        .post(server.at("/v1/functions/greet/invoke"))
        .header("prefer", "respond-async")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    // An unknown function is refused at once, never accepted.
    let response = client()
        .post(server.at("/v1/functions/nope/invoke"))
        .header("x-wisp-invocation-type", "event")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_problem(response, 404, "function_not_found").await;
    // Bad input says what is wrong.
    let response = client()
        .post(server.at("/v1/functions/greet/invoke"))
        .header("x-wisp-invocation-type", "later")
        .send()
        .await
        .unwrap();
    let doc = expect_problem(response, 400, "invalid_request").await;
    assert!(doc["detail"].as_str().unwrap().contains("`event`"), "{doc}");
    let response = client()
        .post(server.at("/v1/functions/greet/invoke"))
        .header("x-wisp-invocation-type", "event")
        .body(vec![b'x'; 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    expect_problem(response, 413, "payload_too_large").await;
    let response = client()
        .get(server.at("/v1/invocations/0193-nope"))
        .send()
        .await
        .unwrap();
    expect_problem(response, 404, "invocation_not_found").await;
}

#[tokio::test]
async fn failures_retry_then_dead_letter_then_redrive() {
    let server = fast_retries();
    let config = json!({ "kind": "event", "max_retries": 2 });
    deploy_fixture(&server, "worker", "event-kit", config).await;
    let accepted = invoke_async(&server, "worker", &json!({ "action": "exit", "code": 3 }), None).await;
    let id = accepted["id"].as_str().unwrap().to_string();
    let dead = invocation_when(&server, &id, finished).await;
    assert_eq!(dead["status"], "failed", "{dead}");
    assert_eq!(dead["attempts"], 3, "one run and max_retries = 2 retries: {dead}");
    assert_eq!(dead["failure"], "retries_exhausted");
    assert!(
        dead["last_error"].as_str().unwrap().starts_with("function_error"),
        "{dead}"
    );
    // Every attempt ran as the same invocation id.
    let runs: Vec<Value> = records(&server, "worker").await;
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(runs.iter().all(|r| r["id"] == id.as_str()), "{runs:?}");

    // The dead letter is listed, and redriving it after a fix runs it again.
    let dlq = get_json(&server, "/v1/functions/worker/dlq").await;
    assert_eq!(dlq["dead_letters"][0]["id"], id.as_str(), "{dlq}");
    assert_eq!(dlq["counts"]["failed"], 1);
    // The fix: an http function under the same name answers any POST with 200.
    let response = wisp_test_support::deploy(
        &client(),
        &server,
        "worker",
        json!({ "kind": "http" }),
        wisp_test_support::fixture_bytes("http-kit"),
    )
    .await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let redrive = client()
        .post(server.at("/v1/functions/worker/dlq/redrive"))
        .send()
        .await
        .unwrap();
    assert_eq!(redrive.status(), 200);
    let body: Value = redrive.json().await.unwrap();
    assert_eq!(body["ids"], json!([id]));
    let done = invocation_when(&server, &id, |v| v["status"] == "succeeded").await;
    assert_eq!(done["attempts"], 1, "a redrive starts afresh: {done}");
    assert_eq!(done["result"]["method"], "POST", "{done}");
    let dlq = get_json(&server, "/v1/functions/worker/dlq").await;
    assert_eq!(dlq["dead_letters"], json!([]));

    // Purge drops dead letters for good.
    deploy_fixture(
        &server,
        "doomed",
        "event-kit",
        json!({ "kind": "event", "max_retries": 0 }),
    )
    .await;
    let id = invoke_async(&server, "doomed", &json!({ "action": "trap" }), None).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    invocation_when(&server, &id, |v| v["status"] == "failed").await;
    let purge = client()
        .delete(server.at("/v1/functions/doomed/dlq"))
        .send()
        .await
        .unwrap();
    assert_eq!(purge.json::<Value>().await.unwrap()["purged"], 1);
    let response = client()
        .get(server.at(&format!("/v1/invocations/{id}")))
        .send()
        .await
        .unwrap();
    expect_problem(response, 404, "invocation_not_found").await;
}

#[tokio::test]
async fn an_event_too_old_is_dead_lettered_by_age() {
    let server = TestServer::serve_with(bin(), &["--async-retry-base", "2s", "--async-retry-max", "2s"]);
    let config = json!({ "kind": "event", "max_retries": 5, "max_event_age": "1s" });
    deploy_fixture(&server, "aging", "event-kit", config).await;
    let id = invoke_async(&server, "aging", &json!({ "action": "exit" }), None).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dead = invocation_when(&server, &id, finished).await;
    assert_eq!(dead["failure"], "event_age_exceeded", "{dead}");
    assert_eq!(dead["attempts"], 1, "{dead}");
}

#[tokio::test]
async fn destinations_get_lambda_shaped_records() {
    let server = fast_retries();
    for queue in ["done", "failed"] {
        let response = client()
            .put(server.at(&format!("/v1/queues/{queue}")))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{:?}", response.text().await);
    }
    deploy_fixture(&server, "sink", "event-kit", json!({ "kind": "event" })).await;
    let config = json!({
        "kind": "event",
        "max_retries": 1,
        "on_success": "queue:done",
        "on_failure": "queue:failed",
    });
    deploy_fixture(&server, "orders", "event-kit", config).await;
    let ok = invoke_async(
        &server,
        "orders",
        &json!({ "action": "hello", "name": "o1" }),
        None,
    )
    .await;
    let bad = invoke_async(&server, "orders", &json!({ "action": "exit", "code": 4 }), None).await;
    for accepted in [&ok, &bad] {
        invocation_when(&server, accepted["id"].as_str().unwrap(), finished).await;
    }
    let receive = |queue: &'static str| {
        let server = &server;
        async move {
            let response = client()
                .post(server.at(&format!("/v1/queues/{queue}/receive")))
                .json(&json!({ "max": 10 }))
                .send()
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap();
            let messages = body["messages"].as_array().cloned().unwrap_or_default();
            assert_eq!(messages.len(), 1, "{queue}: {body}");
            serde_json::from_str::<Value>(messages[0]["body"].as_str().unwrap()).unwrap()
        }
    };
    let success = receive("done").await;
    assert_eq!(success["version"], "1.0");
    assert_eq!(success["requestContext"]["requestId"], ok["id"]);
    assert_eq!(success["requestContext"]["condition"], "Success");
    assert_eq!(success["requestContext"]["approximateInvokeCount"], 1);
    assert!(
        success["requestContext"]["functionArn"]
            .as_str()
            .unwrap()
            .ends_with(":function:orders:live"),
        "an event that names no qualifier runs `live`: {success}"
    );
    assert_eq!(success["requestPayload"]["name"], "o1");
    assert_eq!(success["responseContext"]["statusCode"], 200);
    assert_eq!(success["responseContext"]["executedVersion"], "1");
    assert_eq!(success["responsePayload"]["message"], "Hello, o1!");
    let failure = receive("failed").await;
    assert_eq!(failure["requestContext"]["requestId"], bad["id"]);
    assert_eq!(failure["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(failure["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(failure["responseContext"]["functionError"], "Unhandled");
    assert_eq!(failure["responseContext"]["executedVersion"], "1");
    assert_eq!(failure["requestPayload"]["code"], 4);
    assert!(
        failure["responsePayload"]["errorMessage"].is_string(),
        "{failure}"
    );

    // A function destination gets the record as an async event of its own.
    let config = json!({ "kind": "event", "on_success": "function:sink" });
    deploy_fixture(&server, "chained", "event-kit", config).await;
    let first = invoke_async(&server, "chained", &json!({ "action": "hello" }), None).await;
    invocation_when(&server, first["id"].as_str().unwrap(), finished).await;
    let started = Instant::now();
    let sink_run = loop {
        if let Some(run) = records(&server, "sink").await.into_iter().next() {
            break run;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the sink never ran");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let event = invocation_when(&server, sink_run["id"].as_str().unwrap(), finished).await;
    assert_eq!(event["source"], "destination:chained");
    assert_eq!(event["chain_depth"], 1);
    assert_eq!(
        event["result"]["requestContext"]["requestId"], first["id"],
        "{event}"
    );
}

#[tokio::test]
async fn an_idempotency_key_runs_an_event_once() {
    let server = TestServer::serve(bin());
    deploy_fixture(&server, "pay", "event-kit", json!({ "kind": "event" })).await;
    let event = json!({ "action": "hello", "name": "once" });
    let first = invoke_async(&server, "pay", &event, Some("order-17")).await;
    let again = invoke_async(&server, "pay", &event, Some("order-17")).await;
    assert_eq!(first["id"], again["id"]);
    assert_eq!(
        (first["duplicate"].clone(), again["duplicate"].clone()),
        (json!(false), json!(true))
    );
    let other = invoke_async(&server, "pay", &event, Some("order-18")).await;
    assert_ne!(other["id"], first["id"]);
    for accepted in [&first, &other] {
        invocation_when(&server, accepted["id"].as_str().unwrap(), finished).await;
    }
    // Give a wrongly accepted duplicate time to run, then count the runs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runs = records(&server, "pay").await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let v = get_json(
        &server,
        &format!("/v1/invocations/{}", first["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(v["idempotency_key"], "order-17");
}

#[tokio::test]
async fn a_chain_that_triggers_itself_is_cut_after_16_hops() {
    let server = TestServer::serve(bin());
    // ping → pong → ping …: each success sends a record on to the other.
    for (name, next) in [("ping", "pong"), ("pong", "ping")] {
        let config = json!({ "handler": "app.ack", "on_success": format!("function:{next}") });
        deploy_kit(&server, name, config).await;
    }
    invoke_async(&server, "ping", &json!({ "action": "hello" }), None).await;
    // Hops 0 to 15 run (8 each); the 17th event, at 16 hops, is ping's and is cut.
    let lines = logs_when(&server, "/v1/functions/ping/logs?limit=1000", |lines| {
        lines.iter().any(|l| line_text(l).contains("hops"))
    })
    .await;
    let cut = lines
        .iter()
        .map(line_text)
        .find(|l| l.contains("hops"))
        .expect("a log line says why the chain was cut");
    assert!(cut.starts_with("wisp: event"), "{cut}");
    assert!(cut.contains("16 hops") && cut.contains("loop"), "{cut}");
    let dlq = get_json(&server, "/v1/functions/ping/dlq").await;
    assert_eq!(dlq["dead_letters"][0]["failure"], "loop_detected", "{dlq}");
    assert_eq!(dlq["dead_letters"][0]["chain_depth"], 16, "{dlq}");
    assert_eq!(records(&server, "ping").await.len(), 8);
    assert_eq!(records(&server, "pong").await.len(), 8);
}

#[tokio::test]
async fn a_queue_trigger_deletes_only_what_succeeded() {
    let server = TestServer::serve(bin());
    let queue =
        json!({ "visibility_timeout": "1s", "max_receive_count": 2, "dead_letter_queue": "jobs-dlq" });
    for (name, config) in [("jobs-dlq", json!({})), ("jobs", queue)] {
        let response = client()
            .put(server.at(&format!("/v1/queues/{name}")))
            .json(&config)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{:?}", response.text().await);
    }
    let messages = json!({ "messages": [
        { "body": "one" }, { "body": "please fail" }, { "body": "three" },
    ]});
    // Sent before the function exists: the queue holds them, and the trigger wakes
    // the function at zero scale.
    let response = client()
        .post(server.at("/v1/queues/jobs/messages"))
        .json(&messages)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{:?}", response.text().await);
    let trigger = json!({ "queue": "jobs", "batch_size": 10, "max_batching_window": "200ms" });
    deploy_kit(
        &server,
        "consumer",
        json!({ "handler": "app.sqs_batch", "queue": trigger }),
    )
    .await;
    // `one` and `three` are delivered once; `please fail` twice (its visibility
    // timeout runs out after the first failure), then moves to the dead-letter queue.
    let started = Instant::now();
    let dlq = loop {
        let q = get_json(&server, "/v1/queues/jobs-dlq").await;
        if q["messages"]["visible"].as_u64() == Some(1) {
            break q;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nothing reached the DLQ: {q}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lines = logs_when(&server, "/v1/functions/consumer/logs?limit=1000", |_| true).await;
    let got: Vec<&str> = lines
        .iter()
        .map(line_text)
        .filter(|l| l.starts_with("got "))
        .collect();
    let count = |body: &str| got.iter().filter(|l| **l == format!("got {body}")).count();
    assert_eq!(
        (count("one"), count("three"), count("please fail")),
        (1, 1, 2),
        "{got:?} {dlq}"
    );
    let jobs = get_json(&server, "/v1/queues/jobs").await;
    assert_eq!(jobs["messages"]["visible"], 0, "{jobs}");
    assert_eq!(jobs["messages"]["in_flight"], 0, "{jobs}");
    let event_lines: Vec<&str> = lines.iter().map(line_text).collect();
    assert!(
        !event_lines.iter().any(|l| l.contains("whole batch failed")),
        "{event_lines:?}"
    );
}

#[tokio::test]
async fn a_schedule_fires_each_slot_once_across_a_restart() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let server = TestServer::serve_in(bin(), &dir);
    let config = json!({ "kind": "event", "schedule": "* * * * * *" });
    deploy_fixture(&server, "tick", "event-kit", config).await;
    let runs = |server: &TestServer| {
        let server = server.url.clone();
        async move {
            let list: Value = client()
                .get(format!("{server}/v1/functions/tick/invocations?limit=1000"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            list["invocations"].as_array().cloned().unwrap_or_default()
        }
    };
    let started = Instant::now();
    while runs(&server).await.len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the schedule never fired twice"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
    // Down for a few slots, then back: the slot now due fires, older ones are skipped
    // and the log says which.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let server = TestServer::serve_in(bin(), &dir);
    let lines = logs_when(&server, "/v1/functions/tick/logs?limit=1000", |lines| {
        lines.iter().any(|l| line_text(l).contains("skipped"))
    })
    .await;
    let skipped = lines
        .iter()
        .map(line_text)
        .find(|l| l.contains("skipped"))
        .expect("a log line names the skipped slots");
    assert!(skipped.contains("missed slot"), "{skipped}");
    let before = Instant::now();
    while runs(&server).await.len() < 5 && before.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every run had an EventBridge event for a distinct slot.
    let mut slots = Vec::new();
    for run in runs(&server).await {
        let event = get_json(
            &server,
            &format!("/v1/invocations/{}", run["id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(event["payload"]["detail-type"], "Scheduled Event", "{event}");
        assert_eq!(event["payload"]["source"], "aws.events");
        slots.push(event["payload"]["time"].as_str().unwrap().to_string());
    }
    let distinct: std::collections::BTreeSet<_> = slots.iter().collect();
    assert_eq!(distinct.len(), slots.len(), "a slot fired twice: {slots:?}");
    assert!(slots.len() >= 3, "{slots:?}");
}

#[tokio::test]
async fn an_outcome_the_store_refuses_is_retried_and_holds_up_nothing_else() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let server = TestServer::spawn(bin(), &["serve"], &dir);
    deploy_fixture(&server, "stuck", "event-kit", json!({ "kind": "event" })).await;
    deploy_fixture(&server, "fine", "event-kit", json!({ "kind": "event" })).await;
    // The database refuses every outcome of `stuck`, as a failing disk or a bug would
    // refuse one write in a batch (the server's connections see the new trigger).
    let db = rusqlite::Connection::open(dir.join("wisp.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_stuck BEFORE UPDATE OF status ON events
         WHEN OLD.function = 'stuck' AND NEW.status <> 'pending'
         BEGIN SELECT RAISE(ABORT, 'the test refuses this outcome'); END;",
    )
    .unwrap();
    let hello = json!({ "action": "hello", "name": "events" });
    let stuck = invoke_async(&server, "stuck", &hello, None).await;
    let stuck_id = stuck["id"].as_str().unwrap().to_owned();
    // Outcomes written in the same batches as the refused one, and new events after
    // it, all go through.
    let mut fine = Vec::new();
    for _ in 0..20 {
        fine.push(invoke_async(&server, "fine", &hello, None).await);
    }
    for accepted in &fine {
        let v = invocation_when(&server, accepted["id"].as_str().unwrap(), finished).await;
        assert_eq!(v["status"], "succeeded", "{v}");
    }
    // The refused outcome is kept, not dropped: the event shows as running until the
    // store takes it, and is not run again meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = get_json(&server, &format!("/v1/invocations/{stuck_id}")).await;
    assert_eq!(v["status"], "running", "{v}");
    db.execute_batch("DROP TRIGGER refuse_stuck").unwrap();
    let v = invocation_when(&server, &stuck_id, finished).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["attempts"], 1, "the event ran once: {v}");
    let records = get_json(&server, "/v1/functions/stuck/invocations").await;
    assert_eq!(records["invocations"].as_array().unwrap().len(), 1, "{records}");
}

#[tokio::test]
async fn an_http_function_answering_5xx_to_an_event_is_recorded_as_failed() {
    let server = fast_retries();
    let config =
        json!({"kind": "http", "env": {"KIT_ACTION": "status", "KIT_STATUS": "503"}, "max_retries": 1});
    deploy_fixture(&server, "unwell", "http-kit", config).await;
    let accepted = invoke_async(&server, "unwell", &json!({}), None).await;
    let id = accepted["id"].as_str().unwrap();
    let done = invocation_when(&server, id, finished).await;
    assert_eq!(done["status"], "failed", "{done}");
    // Each attempt's record says what the pipeline counted: the function's failure.
    let started = Instant::now();
    let runs = loop {
        let runs = records(&server, "unwell").await;
        if runs.len() >= 2 || started.elapsed() > Duration::from_secs(5) {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(runs.len(), 2, "two attempts: {runs:?}");
    for run in &runs {
        assert_eq!(run["error"], "function_error", "{run}");
    }
}

//! Circuit breakers on topic deliveries: a webhook that fails opens the breaker from
//! its topic (the defaults: half of at least 10 calls over 10 s, open 5 s); while it is
//! open nothing is sent to the webhook and the deliveries wait without counting
//! attempts; once the webhook recovers every message arrives and none is
//! dead-lettered. `GET /v1/breakers` and `wisp breakers` show the breaker to its own
//! namespace only. Async destinations have breakers too: records to a function that is
//! gone open one, and a record sent while it is open waits, then runs.

use crate::topics_webhook::{Receiver, call, create_topic};
use crate::util::{client, deploy_fixture, get_json, json_when, server, wisp};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

/// The breaker from topic `orders` to `callee`, if `GET /v1/breakers` lists it.
async fn breaker(server: &TestServer, callee: &str) -> Option<Value> {
    let listed = get_json(server, "/v1/breakers").await;
    listed["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["caller"] == "topic:default/orders" && b["callee"] == callee)
        .cloned()
}

/// Waits (up to `within`) for the breaker to `callee` to be in `state`.
async fn until_state(server: &TestServer, callee: &str, state: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let found = breaker(server, callee).await;
        if let Some(b) = &found
            && b["state"] == state
        {
            return b.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the breaker never became {state}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_failing_webhook_opens_its_breaker_and_deliveries_wait_for_it() {
    let server = server();
    let receiver = Receiver::start(500).await;
    create_topic(&server, "orders").await;
    let url = receiver.url("/hook");
    let callee = format!("webhook:{url}");
    let sub = call(
        &server,
        reqwest::Method::POST,
        "/v1/topics/orders/subscriptions",
        json!({"webhook": url}),
        201,
    )
    .await;
    // 20 messages: their first attempts alone are enough calls to open the breaker.
    let mut ids = BTreeSet::new();
    for batch in 0..2 {
        let messages: Vec<Value> = (0..10)
            .map(|i| json!({"message": format!("m{batch}-{i}")}))
            .collect();
        let published = call(
            &server,
            reqwest::Method::POST,
            "/v1/topics/orders/messages",
            json!({"messages": messages}),
            201,
        )
        .await;
        for id in published["ids"].as_array().unwrap() {
            ids.insert(id.as_str().unwrap().to_string());
        }
    }

    let open = until_state(&server, &callee, "open", Duration::from_secs(10)).await;
    assert!(open["failures"].as_u64().unwrap() >= 10, "{open}");
    assert!(open["half_open_at"].is_string(), "{open}");
    assert_eq!(open["config"]["open_for"], "5s", "{open}");
    // Another namespace has no breakers: a namespace sees those its callers hold.
    let made = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({"name": "other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let theirs: Value = client()
        .get(server.at("/v1/breakers"))
        .header("wisp-namespace", "other")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs, json!({"breakers": []}));
    let listed = wisp(&server, &["breakers"]);
    assert!(
        listed.contains("topic:default/orders") && listed.contains(&callee) && listed.contains("open"),
        "{listed}"
    );
    // Calls in flight when it opened land; after that, nothing while it stays open
    // (retries fall due every second or two, and each waits for the breaker instead).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = receiver.received().len();
    assert!((10..=20).contains(&before), "{before}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received().len(), before, "requests while open");
    assert_eq!(
        breaker(&server, &callee).await.unwrap()["state"],
        "open",
        "still open"
    );

    // The webhook recovers: a probe closes the breaker and every message arrives.
    receiver.status.store(200, Ordering::SeqCst);
    let got = receiver
        .until(Duration::from_secs(30), |got| {
            let delivered: BTreeSet<&str> = got
                .iter()
                .filter(|r| r.status == 200)
                .map(|r| r.headers["x-amz-sns-message-id"].as_str())
                .collect();
            delivered.len() == ids.len()
        })
        .await;
    let delivered: BTreeSet<String> = got
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.headers["x-amz-sns-message-id"].clone())
        .collect();
    assert_eq!(delivered, ids);
    let closed = until_state(&server, &callee, "closed", Duration::from_secs(5)).await;
    assert!(closed["transitions"].as_u64().unwrap() >= 3, "{closed}");
    let path = format!(
        "/v1/topics/orders/subscriptions/{}/dead-letters",
        sub["id"].as_str().unwrap()
    );
    let dead = get_json(&server, &path).await;
    assert_eq!(dead["dead_letters"], json!([]), "{dead}");
}

/// Asks for an async run of `name`; answers its id.
async fn invoke_async(server: &TestServer, name: &str) -> String {
    let response = client()
        .post(server.at(&format!("/v1/functions/{name}/invoke")))
        .header("x-wisp-invocation-type", "event")
        .json(&json!({"action": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    response.headers()["x-wisp-invocation-id"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_destination_that_is_gone_opens_its_breaker_and_later_records_wait_for_it() {
    let server = server();
    deploy_fixture(&server, "sink", "event-kit", json!({"kind": "event"})).await;
    let config = json!({"kind": "event", "on_success": "function:sink"});
    deploy_fixture(&server, "orders", "event-kit", config).await;
    let r = client()
        .delete(server.at("/v1/functions/sink"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{:?}", r.text().await);
    // Ten records to a function that is gone fail the breaker's minimum of calls.
    for _ in 0..10 {
        let id = invoke_async(&server, "orders").await;
        json_when(&server, &format!("/v1/invocations/{id}"), |v| {
            v["status"] == "succeeded"
        })
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let open = loop {
        let listed = get_json(&server, "/v1/breakers").await;
        let found = listed["breakers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["caller"] == "function:default/orders" && b["callee"] == "function:default/sink")
            .cloned();
        if let Some(b) = found.filter(|b| b["state"] == "open") {
            break b;
        }
        assert!(Instant::now() < deadline, "never open: {listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(open["failures"], 10, "{open}");
    // The sink is back; a record sent while the breaker is open waits for it, then
    // runs the sink.
    deploy_fixture(&server, "sink", "event-kit", json!({"kind": "event"})).await;
    let started = Instant::now();
    let id = invoke_async(&server, "orders").await;
    json_when(&server, &format!("/v1/invocations/{id}"), |v| {
        v["status"] == "succeeded"
    })
    .await;
    let ran = |v: &Value| v["invocations"].as_array().is_some_and(|runs| !runs.is_empty());
    let early = get_json(&server, "/v1/functions/sink/invocations").await;
    assert!(!ran(&early), "the record did not wait: {early}");
    let runs = json_when(&server, "/v1/functions/sink/invocations", ran).await;
    assert!(ran(&runs), "the record never ran the sink: {runs}");
    // It waited for the breaker (open for 5 s from the tenth failure).
    assert!(started.elapsed() >= Duration::from_secs(2), "{runs}");
}

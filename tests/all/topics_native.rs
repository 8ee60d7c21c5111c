//! A native (Python) function publishing to topics at its services endpoint
//! (`POST /v1/topics/{name}/messages` with `WISP_TOKEN`): allowed by its `topics`
//! grant, refused without it, and `topic_not_found` for a granted topic that is not
//! there.

use crate::native::{deploy_kit, invoke_ok};
use crate::topics_webhook::{call, create_topic};
use crate::util::{client, server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

/// The `service` action publishing `message` to `topic`.
fn publish(topic: &str, message: &str) -> Value {
    json!({"action": "service", "path": format!("/v1/topics/{topic}/messages"), "method": "POST",
           "body": json!({"message": message}).to_string(),
           "headers": {"Content-Type": "application/json"}})
}

/// The bodies `queue` holds, waiting (up to 10 s) until there are `n`.
async fn receive(server: &TestServer, queue: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut bodies = Vec::new();
    loop {
        let got: Value = client()
            .post(server.at(&format!("/v1/queues/{queue}/receive")))
            .json(&json!({"max": 10}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for m in got["messages"].as_array().unwrap() {
            bodies.push(m["body"].as_str().unwrap().to_string());
        }
        if bodies.len() >= n {
            return bodies;
        }
        assert!(Instant::now() < deadline, "{queue} got only {bodies:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_python_function_publishes_only_to_the_topics_it_is_granted() {
    let server = server();
    create_topic(&server, "t").await;
    create_topic(&server, "other").await;
    let made = client()
        .put(server.at("/v1/queues/inbox"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success(), "{}", made.text().await.unwrap());
    call(
        &server,
        reqwest::Method::POST,
        "/v1/topics/t/subscriptions",
        json!({"queue": "inbox", "raw_message_delivery": true}),
        201,
    )
    .await;
    call(
        &server,
        reqwest::Method::POST,
        "/v1/topics/other/subscriptions",
        json!({"queue": "inbox", "raw_message_delivery": true}),
        201,
    )
    .await;
    deploy_kit(&server, "publisher", json!({"topics": ["t", "ghost"]})).await;
    deploy_kit(&server, "stranger", json!({})).await;

    let sent = invoke_ok(&server, "publisher", publish("t", "hello")).await;
    assert_eq!(sent["status"], 201, "{sent}");
    let answer: Value = serde_json::from_str(sent["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["id"].as_str().unwrap().len(), 36, "{answer}");
    assert_eq!(receive(&server, "inbox", 1).await, ["hello"]);

    // Not granted: refused, naming the grant to add.
    for (function, topic) in [("publisher", "other"), ("stranger", "t")] {
        let denied = invoke_ok(&server, function, publish(topic, "nope")).await;
        assert_eq!(denied["status"], 403, "{denied}");
        let problem: Value = serde_json::from_str(denied["body"].as_str().unwrap()).unwrap();
        assert_eq!(problem["code"], "forbidden", "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("not granted topic `{topic}`")) && detail.contains("`topics`"),
            "{detail}"
        );
    }
    // Granted, but there is no such topic.
    let missing = invoke_ok(&server, "publisher", publish("ghost", "boo")).await;
    assert_eq!(missing["status"], 404, "{missing}");
    let problem: Value = serde_json::from_str(missing["body"].as_str().unwrap()).unwrap();
    assert_eq!(problem["code"], "topic_not_found", "{problem}");

    // Nothing refused reached the queue.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let got: Value = client()
        .post(server.at("/v1/queues/inbox/receive"))
        .json(&json!({"max": 10}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["messages"], json!([]), "{got}");
}

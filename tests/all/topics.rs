//! Topics (pub/sub) end to end: fan-out to function and queue subscribers by their
//! filter policies, the SNS event and notification shapes, bad input, and namespaces.

use crate::util::{client, deploy_fixture, expect_problem, get_json, server};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

async fn send(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = client().request(method, server.at(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// `method path` with `body`, asserting `status`; the answer's JSON.
async fn ok(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    let r = send(server, method.clone(), path, body).await;
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The bodies of the messages one receive from `queue` takes (they stay hidden for the
/// queue's visibility timeout, so each comes once unless it is redelivered).
async fn receive(server: &TestServer, queue: &str) -> Vec<Value> {
    let path = format!("/v1/queues/{queue}/receive");
    let got = ok(
        server,
        reqwest::Method::POST,
        &path,
        Some(json!({"max": 10})),
        200,
    )
    .await;
    got["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(m["body"].as_str().unwrap()).unwrap())
        .collect()
}

/// The SNS notification a received message carries: a queue subscriber's message is
/// one; a function's success record carries its response, the echoed SNS event.
fn notification(from_function: bool, body: &Value) -> Value {
    if from_function {
        let event = &body["responsePayload"];
        let record = &event["Records"][0];
        assert_eq!(record["EventSource"], "aws:sns", "{body}");
        assert_eq!(record["EventVersion"], "1.0", "{body}");
        assert!(
            record["EventSubscriptionArn"]
                .as_str()
                .unwrap()
                .starts_with("arn:aws:sns:local:000000000000:orders:"),
            "{body}"
        );
        record["Sns"].clone()
    } else {
        body.clone()
    }
}

#[tokio::test]
async fn a_topic_fans_out_to_each_subscriber_the_messages_its_filter_matches() {
    use reqwest::Method;
    let server = server();
    for queue in ["f1-out", "f2-out", "q3"] {
        ok(&server, Method::PUT, &format!("/v1/queues/{queue}"), None, 201).await;
    }
    for (name, out) in [("f1", "f1-out"), ("f2", "f2-out")] {
        let config = json!({ "kind": "event", "on_success": format!("queue:{out}") });
        deploy_fixture(&server, name, "event-kit", config).await;
    }
    let created = ok(&server, Method::PUT, "/v1/topics/orders", None, 201).await;
    assert_eq!(created["status"], "created");
    assert_eq!(created["topic"]["arn"], "arn:aws:sns:local:000000000000:orders");
    ok(&server, Method::PUT, "/v1/topics/orders", None, 200).await;

    let subs = "/v1/topics/orders/subscriptions";
    let f1 = json!({"function": "f1", "filter_policy": {"color": ["red"]}});
    let s1 = ok(&server, Method::POST, subs, Some(f1.clone()), 201).await;
    assert_eq!(s1["function"], "f1");
    assert_eq!(s1["filter_policy"], json!({"color": ["red"]}));
    assert_eq!(s1["filter_policy_scope"], "MessageAttributes");
    // The same subscription again is the existing one.
    let again = ok(&server, Method::POST, subs, Some(f1), 200).await;
    assert_eq!(again["id"], s1["id"]);
    let f2 = json!({"function": "f2", "filter_policy": {"size": [{"numeric": [">", 10]}]}});
    ok(&server, Method::POST, subs, Some(f2), 201).await;
    let q3 = json!({
        "queue": "q3",
        "filter_policy": {"kind": ["x"]},
        "filter_policy_scope": "MessageBody",
    });
    let s3 = ok(&server, Method::POST, subs, Some(q3), 201).await;
    assert_eq!(s3["queue"], "q3");
    let listed = get_json(&server, subs).await;
    assert_eq!(listed["subscriptions"].as_array().unwrap().len(), 3, "{listed}");

    let attrs = |color: &str, size: u32| {
        json!({
            "color": {"DataType": "String", "StringValue": color},
            "size": {"DataType": "Number", "StringValue": size.to_string()},
        })
    };
    let publish = "/v1/topics/orders/messages";
    let m0 = ok(
        &server,
        Method::POST,
        publish,
        Some(json!({"message": r#"{"kind":"x"}"#, "attributes": attrs("red", 5)})),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m1 = ok(
        &server,
        Method::POST,
        publish,
        Some(json!({"message": "plain", "attributes": attrs("blue", 20)})),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let batch = ok(
        &server,
        Method::POST,
        publish,
        Some(json!({"messages": [
            {"message": r#"{"kind":"y"}"#, "attributes": attrs("red", 50)},
            {"message": r#"{"kind":"x"}"#},
        ]})),
        201,
    )
    .await;
    let ids: Vec<String> = batch["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let (m2, m3) = (ids[0].clone(), ids[1].clone());

    let expected = |ids: &[&String]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let wants = [
        ("f1-out", true, expected(&[&m0, &m2])),
        ("f2-out", true, expected(&[&m1, &m2])),
        ("q3", false, expected(&[&m0, &m3])),
    ];
    let started = Instant::now();
    let mut got: Vec<BTreeSet<String>> = vec![BTreeSet::new(); wants.len()];
    loop {
        for (i, (queue, from_function, _)) in wants.iter().enumerate() {
            for body in receive(&server, queue).await {
                let sns = notification(*from_function, &body);
                assert_eq!(sns["Type"], "Notification", "{body}");
                assert_eq!(sns["TopicArn"], "arn:aws:sns:local:000000000000:orders");
                assert!(sns["Timestamp"].as_str().unwrap().ends_with('Z'), "{sns}");
                let id = sns["MessageId"].as_str().unwrap().to_string();
                if id == m0 {
                    assert_eq!(sns["Message"], r#"{"kind":"x"}"#);
                    assert_eq!(
                        sns["MessageAttributes"]["color"],
                        json!({"Type": "String", "Value": "red"})
                    );
                }
                if id == m1 {
                    assert_eq!(sns["Message"], "plain");
                    assert_eq!(
                        sns["MessageAttributes"]["size"],
                        json!({"Type": "Number", "Value": "20"})
                    );
                }
                got[i].insert(id);
            }
        }
        let done = wants.iter().zip(&got).all(|((_, _, want), got)| got == want);
        if done && started.elapsed() > Duration::from_millis(1500) {
            // Time enough for an unwanted delivery to show too.
            break;
        }
        for ((queue, _, want), got) in wants.iter().zip(&got) {
            assert!(
                got.is_subset(want),
                "{queue} got a message its filter refuses: {got:?}, wants {want:?}"
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "deliveries never completed: got {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for ((queue, _, want), got) in wants.iter().zip(&got) {
        assert_eq!(got, want, "{queue}");
    }

    // Unsubscribing stops deliveries; deleting the topic removes it.
    let path = format!("{subs}/{}", s3["id"].as_str().unwrap());
    assert_eq!(send(&server, Method::DELETE, &path, None).await.status(), 204);
    let r = send(&server, Method::DELETE, &path, None).await;
    expect_problem(r, 404, "not_found").await;
    let listed = get_json(&server, subs).await;
    assert_eq!(listed["subscriptions"].as_array().unwrap().len(), 2, "{listed}");
    let topics = get_json(&server, "/v1/topics").await;
    assert_eq!(topics["topics"][0]["name"], "orders", "{topics}");
    assert_eq!(
        send(&server, Method::DELETE, "/v1/topics/orders", None)
            .await
            .status(),
        204
    );
    let r = send(&server, Method::GET, "/v1/topics/orders", None).await;
    expect_problem(r, 404, "topic_not_found").await;
}

#[tokio::test]
async fn bad_input_and_other_namespaces_get_clear_errors() {
    use reqwest::Method;
    let server = server();
    deploy_fixture(&server, "f1", "event-kit", json!({ "kind": "event" })).await;
    ok(&server, Method::PUT, "/v1/topics/orders", None, 201).await;
    let subs = "/v1/topics/orders/subscriptions";

    let r = send(
        &server,
        Method::POST,
        subs,
        Some(json!({"function": "f1", "filter_policy": {"color": "red"}})),
    )
    .await;
    let doc = expect_problem(r, 400, "invalid_request").await;
    assert!(doc["detail"].as_str().unwrap().contains("color"), "{doc}");
    let r = send(
        &server,
        Method::POST,
        subs,
        Some(json!({"function": "f1", "filter_policy": {"a": ["x"]}, "filter_policy_scope": "Body"})),
    )
    .await;
    expect_problem(r, 400, "invalid_request").await;
    let r = send(&server, Method::POST, subs, Some(json!({"function": "ghost"}))).await;
    expect_problem(r, 404, "function_not_found").await;
    let r = send(&server, Method::POST, subs, Some(json!({"queue": "ghost"}))).await;
    expect_problem(r, 404, "queue_not_found").await;
    let r = send(
        &server,
        Method::POST,
        subs,
        Some(json!({"webhook": "gopher://example.com/hook"})),
    )
    .await;
    let doc = expect_problem(r, 400, "invalid_request").await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("unsupported scheme `gopher`"),
        "{doc}"
    );
    let r = send(
        &server,
        Method::POST,
        "/v1/topics/ghost/subscriptions",
        Some(json!({"function": "f1"})),
    )
    .await;
    expect_problem(r, 404, "topic_not_found").await;

    let r = send(
        &server,
        Method::POST,
        "/v1/topics/ghost/messages",
        Some(json!({"message": "hi"})),
    )
    .await;
    expect_problem(r, 404, "topic_not_found").await;
    let r = send(
        &server,
        Method::POST,
        "/v1/topics/orders/messages",
        Some(json!({"message": "hi", "attributes": {"n": {"DataType": "Number", "StringValue": "many"}}})),
    )
    .await;
    expect_problem(r, 400, "invalid_request").await;
    let r = send(
        &server,
        Method::POST,
        "/v1/topics/orders/messages",
        Some(json!({"body": "hi"})),
    )
    .await;
    expect_problem(r, 400, "invalid_request").await;
    let r = send(&server, Method::PUT, "/v1/topics/Bad_Name", None).await;
    expect_problem(r, 400, "invalid_name").await;

    // Another namespace sees nothing of this one's topic.
    ok(
        &server,
        Method::POST,
        "/v1/namespaces",
        Some(json!({"name": "beta"})),
        201,
    )
    .await;
    let in_beta = |method: Method, path: &str| {
        client()
            .request(method, server.at(path))
            .header("wisp-namespace", "beta")
    };
    let r = in_beta(Method::GET, "/v1/topics/orders").send().await.unwrap();
    expect_problem(r, 404, "topic_not_found").await;
    let r = in_beta(Method::POST, "/v1/topics/orders/messages")
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "topic_not_found").await;
    let r = in_beta(Method::GET, "/v1/topics/orders/subscriptions")
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "topic_not_found").await;
    let r = in_beta(Method::DELETE, "/v1/topics/orders").send().await.unwrap();
    expect_problem(r, 404, "topic_not_found").await;
    let listed: Value = in_beta(Method::GET, "/v1/topics")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["topics"], json!([]), "{listed}");
    // Still there in its own namespace.
    ok(&server, Method::GET, "/v1/topics/orders", None, 200).await;
}

#[tokio::test]
async fn a_failed_delivery_is_retried_until_the_subscriber_can_take_it() {
    use reqwest::Method;
    let server = server();
    ok(&server, Method::PUT, "/v1/queues/late", None, 201).await;
    ok(&server, Method::PUT, "/v1/topics/news", None, 201).await;
    let sub = json!({"queue": "late", "raw_message_delivery": true});
    ok(
        &server,
        Method::POST,
        "/v1/topics/news/subscriptions",
        Some(sub),
        201,
    )
    .await;
    // The queue goes away under the subscription: the hand-off fails and is retried.
    assert_eq!(
        send(&server, Method::DELETE, "/v1/queues/late", None)
            .await
            .status(),
        204
    );
    ok(
        &server,
        Method::POST,
        "/v1/topics/news/messages",
        Some(json!({"message": "extra"})),
        201,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ok(&server, Method::PUT, "/v1/queues/late", None, 201).await;
    let started = Instant::now();
    loop {
        let path = "/v1/queues/late/receive";
        let got = ok(&server, Method::POST, path, Some(json!({"max": 10})), 200).await;
        if let Some(m) = got["messages"].as_array().and_then(|m| m.first()) {
            // Raw delivery: the body as published.
            assert_eq!(m["body"], "extra", "{got}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the retry never delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_delivery_refused_for_good_becomes_a_dead_letter_of_its_subscription() {
    use reqwest::Method;
    let server = server();
    ok(&server, Method::PUT, "/v1/queues/small", None, 201).await;
    ok(&server, Method::PUT, "/v1/topics/big", None, 201).await;
    let sub = ok(
        &server,
        Method::POST,
        "/v1/topics/big/subscriptions",
        Some(json!({"queue": "small"})),
        201,
    )
    .await;
    // The message fits a topic, but its notification does not fit a queue message.
    let message = "x".repeat(256 * 1024 - 16);
    let id = ok(
        &server,
        Method::POST,
        "/v1/topics/big/messages",
        Some(json!({"message": message})),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!(
        "/v1/topics/big/subscriptions/{}/dead-letters",
        sub["id"].as_str().unwrap()
    );
    let started = Instant::now();
    loop {
        let dead = get_json(&server, &path).await;
        if let Some(d) = dead["dead_letters"].as_array().and_then(|d| d.first()) {
            assert_eq!(d["message_id"], id.as_str(), "{d}");
            assert!(d["reason"].as_str().unwrap().contains("payload_too_large"), "{d}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never dead-lettered: {dead}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = send(
        &server,
        Method::GET,
        "/v1/topics/big/subscriptions/nope/dead-letters",
        None,
    )
    .await;
    expect_problem(r, 404, "not_found").await;
}

//! The CLI's `wisp topic` against a real server: topics, subscriptions with filter
//! policies, publishing, and input checked before any request.

use crate::util::{bin, get_json, wisp, wisp_fails};
use serde_json::Value;
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

#[tokio::test]
async fn topic_commands_subscribe_a_queue_with_a_filter_publish_and_remove() {
    let server = TestServer::serve(bin());
    wisp(&server, &["queue", "create", "reds"]);
    let out = wisp(&server, &["topic", "create", "orders"]);
    assert_eq!(out, "created    topic orders\n");
    let out = wisp(&server, &["topic", "create", "orders"]);
    assert_eq!(out, "unchanged  topic orders\n");

    let out = wisp(
        &server,
        &[
            "topic",
            "subscribe",
            "orders",
            "--queue",
            "reds",
            "--filter-policy",
            r#"{"color": ["red"]}"#,
            "--raw",
        ],
    );
    assert!(
        out.starts_with("subscribed subscription ")
            && out.contains("queue reds of orders, filter {\"color\":[\"red\"]}, raw"),
        "{out}"
    );
    let listed: Value =
        serde_json::from_str(&wisp(&server, &["topic", "subscriptions", "orders", "--json"])).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed[0]["queue"], "reds");
    let out = wisp(&server, &["topic", "subscriptions", "orders"]);
    assert!(out.contains(&id) && out.contains("queue reds"), "{out}");

    let blue = wisp(
        &server,
        &["topic", "publish", "orders", "blue one", "--attr", "color=blue"],
    );
    assert_eq!(blue.trim().len(), 36, "{blue}");
    let red = wisp(
        &server,
        &[
            "topic",
            "publish",
            "orders",
            "red one",
            "--attr",
            "color=red",
            "--number-attr",
            "size=3",
        ],
    );
    assert_eq!(red.trim().len(), 36, "{red}");

    // Only the matching message reaches the queue (raw: the body as published).
    let started = Instant::now();
    loop {
        let stats = get_json(&server, "/v1/queues/reds").await;
        if stats["messages"]["visible"] == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{stats}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = wisp(&server, &["queue", "receive", "reds", "--max", "10", "--delete"]);
    assert!(out.ends_with("\nred one\n") && !out.contains("blue one"), "{out}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = get_json(&server, "/v1/queues/reds").await;
    assert_eq!(stats["messages"]["visible"], 0, "{stats}");

    let topics: Value = serde_json::from_str(&wisp(&server, &["topic", "ls", "--json"])).unwrap();
    assert_eq!(topics[0]["name"], "orders");
    let out = wisp(&server, &["topic", "ls"]);
    assert!(out.contains("arn:aws:sns:local:000000000000:orders"), "{out}");

    let out = wisp(&server, &["topic", "unsubscribe", "orders", &id]);
    assert_eq!(out, format!("removed subscription {id} of orders\n"));
    let err = wisp_fails(&server, &["topic", "unsubscribe", "orders", &id], 4);
    assert!(err.contains("not_found"), "{err}");
    let out = wisp(&server, &["topic", "rm", "orders"]);
    assert_eq!(out, "removed topic orders\n");
    let err = wisp_fails(&server, &["topic", "publish", "orders", "x"], 4);
    assert!(err.contains("topic_not_found"), "{err}");
}

#[tokio::test]
async fn topic_commands_check_their_input_first() {
    let server = TestServer::serve(bin());
    let err = wisp_fails(&server, &["topic", "create", "Bad_Name"], 2);
    assert!(err.contains("Bad_Name"), "{err}");
    wisp(&server, &["topic", "create", "orders"]);
    let err = wisp_fails(
        &server,
        &[
            "topic",
            "subscribe",
            "orders",
            "--queue",
            "q",
            "--filter-policy",
            "{nope",
        ],
        2,
    );
    assert!(err.contains("--filter-policy is not JSON"), "{err}");
    let err = wisp_fails(
        &server,
        &[
            "topic",
            "subscribe",
            "orders",
            "--queue",
            "q",
            "--filter-policy",
            r#"{"color": "red"}"#,
        ],
        2,
    );
    assert!(err.contains("--filter-policy"), "{err}");
    let err = wisp_fails(
        &server,
        &["topic", "publish", "orders", "x", "--number-attr", "n=big"],
        2,
    );
    assert!(err.contains("is not a number"), "{err}");
    let err = wisp_fails(
        &server,
        &["topic", "subscribe", "orders", "--webhook", "ftp://example.com/h"],
        2,
    );
    assert!(err.contains("http:// or https://"), "{err}");
    let err = wisp_fails(
        &server,
        &["topic", "subscribe", "orders", "--function", "f", "--raw"],
        2,
    );
    assert!(err.contains("--raw"), "{err}");
    // A webhook is subscribed (to another topic: `orders` must stay without
    // subscriptions); a URL the server finds malformed is its refusal.
    wisp(&server, &["topic", "create", "hooks"]);
    let out = wisp(
        &server,
        &[
            "topic",
            "subscribe",
            "hooks",
            "--webhook",
            "https://hooks.example.com/o",
            "--raw",
        ],
    );
    assert!(
        out.contains("webhook https://hooks.example.com/o of hooks, raw"),
        "{out}"
    );
    let err = wisp_fails(
        &server,
        &[
            "topic",
            "subscribe",
            "hooks",
            "--webhook",
            "https://u:p@example.com/",
        ],
        4,
    );
    assert!(err.contains("userinfo"), "{err}");
    // The server's refusals: a subscriber that does not exist.
    let err = wisp_fails(&server, &["topic", "subscribe", "orders", "--queue", "ghost"], 4);
    assert!(err.contains("queue_not_found"), "{err}");
    let out = wisp(&server, &["topic", "subscriptions", "orders", "--json"]);
    assert_eq!(out.trim(), "[]");
}

#[tokio::test]
async fn deploy_creates_the_manifests_topics_and_subscriptions_after_the_queues() {
    let server = TestServer::serve(bin());
    let app = tempfile::tempdir().unwrap();
    let wasm = wisp_test_support::fixture("event-kit");
    std::fs::write(
        app.path().join("wisp.toml"),
        format!(
            "[app]\nname = \"shop\"\n\n\
             [functions.worker]\nsource = {:?}\nkind = \"event\"\n\n\
             [topics.orders]\nsubscriptions = [\n  {{ queue = \"reds\", filter_policy = {{ color = [\"red\"] }}, raw = true }},\n  {{ function = \"worker\" }},\n]\n\n\
             [queues.reds]\n",
            wasm.display().to_string()
        ),
    )
    .unwrap();
    let path = app.path().to_str().unwrap();
    let out = wisp(&server, &["deploy", path]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(lines[1].starts_with("created    queue reds"), "{out}");
    assert!(lines[2].starts_with("created    worker"), "{out}");
    assert_eq!(lines[3], "created    topic orders", "{out}");
    assert!(
        lines[4].starts_with("created    subscription ") && lines[4].contains("queue reds of orders"),
        "{out}"
    );
    assert!(
        lines[5].starts_with("created    subscription ") && lines[5].contains("function worker of orders"),
        "{out}"
    );
    let subscriptions = get_json(&server, "/v1/topics/orders/subscriptions").await;
    assert_eq!(
        subscriptions["subscriptions"][0]["filter_policy"],
        serde_json::json!({"color": ["red"]})
    );
    assert_eq!(subscriptions["subscriptions"][0]["raw_message_delivery"], true);

    let out = wisp(&server, &["deploy", path]);
    assert!(out.contains("unchanged  topic orders"), "{out}");
    assert_eq!(out.matches("unchanged  subscription ").count(), 2, "{out}");
    let subscriptions = get_json(&server, "/v1/topics/orders/subscriptions").await;
    assert_eq!(subscriptions["subscriptions"].as_array().unwrap().len(), 2);
}

//! The queue API: queues as resources, messages sent, received, hidden, deleted,
//! dead-lettered and redriven, and its answers to bad input.

use crate::util::{client, deploy_fixture, expect_problem, get_json, server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

async fn put_queue(server: &TestServer, name: &str, config: Value) -> reqwest::Response {
    client()
        .put(server.at(&format!("/v1/queues/{name}")))
        .json(&config)
        .send()
        .await
        .unwrap()
}

async fn create(server: &TestServer, name: &str, config: Value) {
    let r = put_queue(server, name, config).await;
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, 201, "creating queue {name}: {body}");
}

async fn post(server: &TestServer, path: &str, body: Value) -> reqwest::Response {
    client().post(server.at(path)).json(&body).send().await.unwrap()
}

/// `POST path` with `body`, asserting `status`; the answer's JSON.
async fn post_ok(server: &TestServer, path: &str, body: Value, status: u16) -> Value {
    let r = post(server, path, body).await;
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "POST {path}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn receive(server: &TestServer, queue: &str, body: Value) -> Value {
    post_ok(server, &format!("/v1/queues/{queue}/receive"), body, 200).await
}

fn bodies(received: &Value) -> Vec<&str> {
    received["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect()
}

/// Receives from `queue` until `ready` accepts what came (messages become visible
/// again when their visibility timeout is over); at most 10 s.
async fn receive_when(
    server: &TestServer,
    queue: &str,
    body: Value,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let got = receive(server, queue, body.clone()).await;
        if ready(&got) || started.elapsed() > Duration::from_secs(10) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn queues_are_created_shown_listed_updated_and_deleted() {
    let server = server();
    let c = client();
    let r = put_queue(&server, "jobs", json!({"visibility_timeout": "45s"})).await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["status"], "created");
    assert_eq!(created["queue"]["name"], "jobs");
    assert_eq!(created["queue"]["namespace"], "default");
    assert_eq!(created["queue"]["config"]["visibility_timeout"], "45s");
    assert_eq!(created["queue"]["config"]["retention"], "4days");
    assert_eq!(
        created["queue"]["messages"],
        json!({"visible": 0, "in_flight": 0, "delayed": 0})
    );

    let r = put_queue(&server, "jobs", json!({"visibility_timeout": "45s"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "unchanged");
    let r = put_queue(&server, "jobs", json!({"retention": "1h"})).await;
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["status"], "updated");
    // A PUT is the whole configuration: what it leaves out is back to its default.
    assert_eq!(updated["queue"]["config"]["visibility_timeout"], "30s");
    assert_eq!(updated["queue"]["config"]["retention"], "1h");

    // No body at all is every default.
    let r = c.put(server.at("/v1/queues/other")).send().await.unwrap();
    assert_eq!(r.status(), 201);

    let got = get_json(&server, "/v1/queues/jobs").await;
    assert_eq!(got["config"]["retention"], "1h");
    let list = get_json(&server, "/v1/queues").await;
    let names: Vec<&str> = list["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["jobs", "other"]);

    let r = c.delete(server.at("/v1/queues/jobs")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    expect_problem(
        c.get(server.at("/v1/queues/jobs")).send().await.unwrap(),
        404,
        "queue_not_found",
    )
    .await;
    expect_problem(
        c.delete(server.at("/v1/queues/jobs")).send().await.unwrap(),
        404,
        "queue_not_found",
    )
    .await;
}

#[tokio::test]
async fn messages_are_sent_received_hidden_for_the_visibility_timeout_and_deleted() {
    let server = server();
    create(&server, "jobs", json!({})).await;
    let one = post_ok(&server, "/v1/queues/jobs/messages", json!({"body": "first"}), 201).await;
    let first_id = one["id"].as_str().unwrap().to_string();
    let batch = post_ok(
        &server,
        "/v1/queues/jobs/messages",
        json!({"messages": [{"body": "second"}, {"body": "{\"json\":true}"}, {"body": "fourth"}]}),
        201,
    )
    .await;
    assert_eq!(batch["ids"].as_array().unwrap().len(), 3);

    // Sending order; each received once; invisible to the next receive.
    let got = receive(&server, "jobs", json!({"max": 10, "visibility_timeout": "300ms"})).await;
    assert_eq!(bodies(&got), ["first", "second", "{\"json\":true}", "fourth"]);
    let m = &got["messages"][0];
    assert_eq!(m["id"], first_id.as_str());
    assert_eq!(m["receive_count"], 1);
    assert!(
        m["receipt_handle"].is_string() && m["sent_at"].is_string() && m["first_received_at"].is_string()
    );
    assert_eq!(receive(&server, "jobs", json!({})).await["messages"], json!([]));
    let stats = get_json(&server, "/v1/queues/jobs").await;
    assert_eq!(
        stats["messages"],
        json!({"visible": 0, "in_flight": 4, "delayed": 0})
    );

    // Two are deleted; the other two come back once their visibility timeout is over.
    let receipts: Vec<&str> = got["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["receipt_handle"].as_str().unwrap())
        .collect();
    let deleted = post_ok(
        &server,
        "/v1/queues/jobs/delete",
        json!({"receipts": [receipts[0], receipts[2]]}),
        200,
    )
    .await;
    assert_eq!(deleted, json!({"deleted": 2, "stale": []}));
    let again = receive_when(
        &server,
        "jobs",
        json!({"max": 10, "visibility_timeout": "30s"}),
        |g| !g["messages"].as_array().unwrap().is_empty(),
    )
    .await;
    assert_eq!(bodies(&again), ["second", "fourth"]);
    assert_eq!(again["messages"][0]["receive_count"], 2);

    // The first receive's handle of a message received again is stale: reported, not
    // an error, and the rest of the batch is deleted.
    let fresh = again["messages"][0]["receipt_handle"].as_str().unwrap();
    let deleted = post_ok(
        &server,
        "/v1/queues/jobs/delete",
        json!({"receipts": [receipts[1], fresh]}),
        200,
    )
    .await;
    assert_eq!(deleted, json!({"deleted": 1, "stale": [receipts[1]]}));

    // A delayed message is invisible until its delay is over.
    post_ok(
        &server,
        "/v1/queues/jobs/messages",
        json!({"body": "later", "delay": "300ms"}),
        201,
    )
    .await;
    let stats = get_json(&server, "/v1/queues/jobs").await;
    assert_eq!(stats["messages"]["delayed"], 1);
    let later = receive_when(&server, "jobs", json!({}), |g| {
        !g["messages"].as_array().unwrap().is_empty()
    })
    .await;
    assert_eq!(bodies(&later), ["later"]);

    // Purge drops everything, in flight or not.
    post_ok(&server, "/v1/queues/jobs/messages", json!({"body": "x"}), 201).await;
    let purged = post_ok(&server, "/v1/queues/jobs/purge", json!({}), 200).await;
    assert_eq!(purged["purged"], 3);
    let stats = get_json(&server, "/v1/queues/jobs").await;
    assert_eq!(
        stats["messages"],
        json!({"visible": 0, "in_flight": 0, "delayed": 0})
    );
}

#[tokio::test]
async fn messages_past_max_receive_count_move_to_the_dead_letter_queue_and_redrive_back() {
    let server = server();
    let c = client();
    create(&server, "jobs-dlq", json!({})).await;
    create(
        &server,
        "jobs",
        json!({"max_receive_count": 2, "dead_letter_queue": "jobs-dlq", "visibility_timeout": "100ms"}),
    )
    .await;
    let sent = post_ok(
        &server,
        "/v1/queues/jobs/messages",
        json!({"body": "poison"}),
        201,
    )
    .await;
    let id = sent["id"].as_str().unwrap();

    // Received twice without a delete; the third receive moves it instead.
    for count in 1..=2 {
        let got = receive_when(&server, "jobs", json!({}), |g| {
            !g["messages"].as_array().unwrap().is_empty()
        })
        .await;
        assert_eq!(got["messages"][0]["receive_count"], count);
    }
    let moved = receive_when(&server, "jobs", json!({}), |g| {
        !g["dead_lettered"].as_array().unwrap().is_empty()
    })
    .await;
    assert_eq!(moved["dead_lettered"], json!([id]));
    assert_eq!(moved["messages"], json!([]));
    let dlq = get_json(&server, "/v1/queues/jobs-dlq").await;
    assert_eq!(dlq["messages"]["visible"], 1);

    // The dead-letter queue is in use while `jobs` names it.
    let doc = expect_problem(
        c.delete(server.at("/v1/queues/jobs-dlq")).send().await.unwrap(),
        409,
        "queue_in_use",
    )
    .await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("dead_letter_queue of queue `jobs`"),
        "{doc}"
    );

    // Redrive moves it back to `jobs`, where it is received afresh.
    let redriven = post_ok(&server, "/v1/queues/jobs-dlq/redrive", json!({}), 200).await;
    assert_eq!(redriven["redriven"], 1);
    assert_eq!(
        get_json(&server, "/v1/queues/jobs-dlq").await["messages"]["visible"],
        0
    );
    let back = receive(&server, "jobs", json!({})).await;
    assert_eq!(bodies(&back), ["poison"]);
    assert_eq!(back["messages"][0]["id"], id);

    // A queue that a function's trigger names is in use too.
    create(&server, "work", json!({})).await;
    deploy_fixture(
        &server,
        "worker",
        "event-kit",
        json!({"kind": "event", "queue": "work"}),
    )
    .await;
    let doc = expect_problem(
        c.delete(server.at("/v1/queues/work")).send().await.unwrap(),
        409,
        "queue_in_use",
    )
    .await;
    assert!(
        doc["detail"].as_str().unwrap().contains("function `worker`"),
        "{doc}"
    );
}

#[tokio::test]
async fn bad_queue_requests_get_specific_problems() {
    let server = server();
    let c = client();
    create(&server, "jobs", json!({})).await;

    // Configurations: the detail names the field.
    let cases = [
        (json!({"colour": "red"}), "unknown field `colour`"),
        (
            json!({"visibility_timeout": "soon"}),
            "visibility_timeout: invalid duration `soon`",
        ),
        (
            json!({"visibility_timeout": 30}),
            "visibility_timeout: invalid type",
        ),
        (json!({"visibility_timeout": "13h"}), "visibility_timeout"),
        (json!({"retention": "1s"}), "retention"),
        (json!({"max_receive_count": 3}), "dead_letter_queue"),
        (json!({"dead_letter_queue": "jobs-dlq"}), "max_receive_count"),
        (
            json!({"max_receive_count": 3, "dead_letter_queue": "ghost"}),
            "dead_letter_queue: there is no queue named `ghost`",
        ),
        (
            json!({"max_receive_count": 3, "dead_letter_queue": "jobs"}),
            "its own dead-letter queue",
        ),
        (
            json!({"max_receive_count": 3, "dead_letter_queue": "Bad"}),
            "dead_letter_queue: invalid queue name `Bad`",
        ),
        (json!(["not", "an", "object"]), "must be a JSON object"),
    ];
    for (config, needle) in cases {
        let doc = expect_problem(
            put_queue(&server, "jobs", config.clone()).await,
            400,
            "invalid_config",
        )
        .await;
        assert!(
            doc["detail"].as_str().unwrap().contains(needle),
            "{config}: {doc}"
        );
    }
    let r = c
        .put(server.at("/v1/queues/jobs"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_request").await;
    let doc = expect_problem(
        put_queue(&server, "Bad_Name", json!({})).await,
        400,
        "invalid_name",
    )
    .await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("invalid queue name `Bad_Name`"),
        "{doc}"
    );
    expect_problem(
        c.get(server.at("/v1/queues/Bad_Name")).send().await.unwrap(),
        400,
        "invalid_name",
    )
    .await;

    // A queue that does not exist, whatever the operation.
    for (path, body) in [
        ("/v1/queues/ghost/messages", json!({"body": "x"})),
        ("/v1/queues/ghost/receive", json!({})),
        ("/v1/queues/ghost/receive", json!({"visibility_timeout": "1s"})),
        ("/v1/queues/ghost/delete", json!({"receipts": ["r"]})),
        ("/v1/queues/ghost/purge", json!({})),
        ("/v1/queues/ghost/redrive", json!({})),
    ] {
        let doc = expect_problem(post(&server, path, body).await, 404, "queue_not_found").await;
        assert_eq!(doc["detail"], "there is no queue named `ghost`");
    }

    // Sends.
    let too_many: Vec<Value> = (0..101).map(|i| json!({"body": format!("m{i}")})).collect();
    let big = "x".repeat(256 * 1024 + 1);
    let cases = [
        (
            json!({"messages": too_many}),
            400,
            "invalid_request",
            "send 1 to 100 messages",
        ),
        (
            json!({"messages": []}),
            400,
            "invalid_request",
            "send 1 to 100 messages",
        ),
        (
            json!({"body": big}),
            413,
            "payload_too_large",
            "at most 262144 bytes",
        ),
        (
            json!({"body": {"k": 1}}),
            400,
            "invalid_request",
            "`body` must be a string, not an object",
        ),
        (
            json!({"body": 7}),
            400,
            "invalid_request",
            "`body` must be a string, not a number",
        ),
        (
            json!({"messages": [{"body": "ok"}, {"body": ["x"]}]}),
            400,
            "invalid_request",
            "message 1: `body` must be a string, not a list",
        ),
        (json!({}), 400, "invalid_request", "missing field `body`"),
        (
            json!({"body": "x", "dealy": "1s"}),
            400,
            "invalid_request",
            "unknown field `dealy`",
        ),
        (
            json!({"body": "x", "delay": "soon"}),
            400,
            "invalid_request",
            "delay: invalid duration `soon`",
        ),
        (
            json!({"body": "x", "delay": "16m"}),
            400,
            "invalid_request",
            "a delay is at most 15m",
        ),
        (
            json!({"body": "x", "messages": [{"body": "y"}]}),
            400,
            "invalid_request",
            "a batch has only `messages`",
        ),
    ];
    for (body, status, code, needle) in cases {
        let doc = expect_problem(
            post(&server, "/v1/queues/jobs/messages", body).await,
            status,
            code,
        )
        .await;
        assert!(
            doc["detail"].as_str().unwrap().contains(needle),
            "{needle}: {doc}"
        );
    }
    let r = c
        .post(server.at("/v1/queues/jobs/messages"))
        .send()
        .await
        .unwrap();
    let doc = expect_problem(r, 400, "invalid_request").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("the body is empty"),
        "{doc}"
    );
    let r = c
        .post(server.at("/v1/queues/jobs/messages"))
        .header("x-wisp-chain-depth", "many")
        .json(&json!({"body": "x"}))
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_request").await;
    // Nothing of the refused sends arrived.
    assert_eq!(
        get_json(&server, "/v1/queues/jobs").await["messages"]["visible"],
        0
    );

    // Receives and deletes.
    let cases = [
        ("/v1/queues/jobs/receive", json!({"max": 0}), "receive 1 to 100"),
        ("/v1/queues/jobs/receive", json!({"max": 101}), "receive 1 to 100"),
        (
            "/v1/queues/jobs/receive",
            json!({"visibility_timeout": "13h"}),
            "visibility_timeout is at most",
        ),
        (
            "/v1/queues/jobs/receive",
            json!({"wait": "1s"}),
            "unknown field `wait`",
        ),
        (
            "/v1/queues/jobs/delete",
            json!({"receipts": []}),
            "delete 1 to 100",
        ),
        (
            "/v1/queues/jobs/delete",
            json!({"receipt": "r"}),
            "unknown field `receipt`",
        ),
    ];
    for (path, body, needle) in cases {
        let doc = expect_problem(post(&server, path, body).await, 400, "invalid_request").await;
        assert!(
            doc["detail"].as_str().unwrap().contains(needle),
            "{needle}: {doc}"
        );
    }
    expect_problem(
        c.get(server.at("/v1/queues/jobs/receive")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
}

//! The dashboard's queue, topic and schedule pages over plain HTTP: the rows they
//! show, their empty states, their actions taking effect (a sent message is received
//! through the API, a published one reaches a queue subscriber), a read key seeing no
//! buttons and refused when it posts, another namespace's key seeing none of it,
//! CSRF-less posts and bad names refused, a schedule's next run in the future, and
//! more than a page of queues.

use crate::tenancy::create_key;
use crate::ui::{csrf, log_in, page, post};
use crate::util::{client, deploy_fixture, server};
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime};
use wisp_test_support::{TEST_ADMIN_KEY, TestServer};

async fn put_queue(server: &TestServer, name: &str, config: Value) {
    let r = client()
        .put(server.at(&format!("/v1/queues/{name}")))
        .json(&config)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// Receives from a queue through the API until a message comes (or 20 s pass).
async fn receive_one(server: &TestServer, queue: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = client()
            .post(server.at(&format!("/v1/queues/{queue}/receive")))
            .json(&json!({ "max": 1 }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let got: Value = r.json().await.unwrap();
        if let Some(m) = got["messages"].as_array().and_then(|m| m.first()) {
            return m.clone();
        }
        assert!(Instant::now() < deadline, "nothing came to {queue}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A post as a browser makes it, without following the redirect: status and where to.
async fn submit(server: &TestServer, session: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = crate::ui::browser()
        .post(server.at(path))
        .header("cookie", session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(crate::ui::encode(form))
        .send()
        .await
        .unwrap();
    let to = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), to)
}

#[tokio::test]
async fn the_queue_pages_show_queues_and_send_purge_and_redrive_as_the_api_allows() {
    let server = server();
    let admin = log_in(&server, TEST_ADMIN_KEY).await;

    // Empty: the page says how to make one.
    let (status, empty) = page(&server, &admin, "/ui/queues").await;
    assert_eq!(status, 200);
    assert!(empty.contains("wisp queue create NAME"), "{empty}");

    put_queue(&server, "jobs-dlq", json!({})).await;
    put_queue(
        &server,
        "jobs",
        json!({ "max_receive_count": 2, "dead_letter_queue": "jobs-dlq", "visibility_timeout": "45s" }),
    )
    .await;
    put_queue(&server, "work", json!({})).await;
    deploy_fixture(
        &server,
        "worker",
        "event-kit",
        json!({ "kind": "event", "queue": { "queue": "work", "batch_size": 5 } }),
    )
    .await;

    let (_, list) = page(&server, &admin, "/ui/queues").await;
    for q in ["jobs", "jobs-dlq", "work"] {
        assert!(list.contains(&format!(r#"<tr data-queue="{q}">"#)), "{list}");
    }
    assert!(
        list.contains(
            r#"<a href="/ui/queues/jobs-dlq">jobs-dlq</a> <span class="dim">after 2 receives</span>"#
        ),
        "{list}"
    );
    assert!(list.contains("<td>worker</td>"), "{list}");

    // One queue: its settings and triggers.
    let (status, work) = page(&server, &admin, "/ui/queues/work").await;
    assert_eq!(status, 200);
    assert!(work.contains(r#"<tr data-function="worker">"#), "{work}");
    assert!(work.contains(r#"<td class="num">5</td>"#), "{work}");
    let (_, jobs) = page(&server, &admin, "/ui/queues/jobs").await;
    assert!(
        jobs.contains("45s") && jobs.contains("No function is triggered"),
        "{jobs}"
    );
    for form in [r#"id="send""#, r#"id="purge""#] {
        assert!(jobs.contains(form), "{form}: {jobs}");
    }
    assert!(
        !jobs.contains(r#"id="redrive""#),
        "jobs is no queue's dead-letter queue"
    );
    assert!(jobs.contains("does not receive messages"), "{jobs}");

    // Send from the page; the API receives it.
    let token = csrf(&jobs);
    let (status, _) = post(&server, &admin, "/ui/queues/jobs/messages", &[("body", "x")]).await;
    assert_eq!(status, 403, "no CSRF token");
    let (status, to) = submit(
        &server,
        &admin,
        "/ui/queues/jobs/messages",
        &[("csrf", &token), ("body", "hello from the page"), ("delay", "")],
    )
    .await;
    assert_eq!(status, 303);
    assert!(to.starts_with("/ui/queues/jobs?sent="), "{to}");
    let (_, sent) = page(&server, &admin, &to).await;
    assert!(sent.contains(r#"<dd id="visible">1</dd>"#), "{sent}");
    assert!(sent.contains(r#"<p class="notice">Message "#), "{sent}");
    let message = receive_one(&server, "jobs").await;
    assert_eq!(message["body"], "hello from the page");
    assert_eq!(
        to,
        format!("/ui/queues/jobs?sent={}", message["id"].as_str().unwrap())
    );
    let (_, after) = page(&server, &admin, "/ui/queues/jobs").await;
    assert!(after.contains(r#"<dd id="in-flight">1</dd>"#), "{after}");

    // Purge, through the page.
    let (status, to) = submit(&server, &admin, "/ui/queues/jobs/purge", &[("csrf", &token)]).await;
    assert_eq!((status, to.as_str()), (303, "/ui/queues/jobs?purged=1"));
    let shown: Value = crate::util::get_json(&server, "/v1/queues/jobs").await;
    assert_eq!(shown["messages"]["in_flight"], 0, "{shown}");

    // A message received too often lands in the dead-letter queue; its page redrives it.
    let r = client()
        .post(server.at("/v1/queues/jobs/messages"))
        .json(&json!({ "body": "poison" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut dead_lettered = false;
    for _ in 0..5 {
        let got: Value = client()
            .post(server.at("/v1/queues/jobs/receive"))
            .json(&json!({ "visibility_timeout": "0s" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !got["dead_lettered"].as_array().unwrap().is_empty() {
            dead_lettered = true;
            break;
        }
    }
    assert!(dead_lettered, "the message reached the dead-letter queue");
    let (_, dlq) = page(&server, &admin, "/ui/queues/jobs-dlq").await;
    assert!(dlq.contains(r#"<dd id="visible">1</dd>"#), "{dlq}");
    assert!(
        dlq.contains(r#"id="dead-letters-of""#) && dlq.contains(r#"id="redrive""#),
        "{dlq}"
    );
    let (status, to) = submit(
        &server,
        &admin,
        "/ui/queues/jobs-dlq/redrive",
        &[("csrf", &token)],
    )
    .await;
    assert_eq!((status, to.as_str()), (303, "/ui/queues/jobs-dlq?redriven=1"));
    assert_eq!(receive_one(&server, "jobs").await["body"], "poison");

    // Bad and unknown names.
    let (status, _) = page(&server, &admin, "/ui/queues/Bad_Name").await;
    assert_eq!(status, 400);
    let (status, _) = submit(&server, &admin, "/ui/queues/Bad_Name/purge", &[("csrf", &token)]).await;
    assert_eq!(status, 400);
    let (status, _) = page(&server, &admin, "/ui/queues/none").await;
    assert_eq!(status, 404);

    // A read key sees the queues but no action, and its posts are refused.
    let reader = log_in(&server, &create_key(&server, "default", "read", None).await).await;
    let (status, read) = page(&server, &reader, "/ui/queues/jobs").await;
    assert_eq!(status, 200);
    for form in [r#"id="send""#, r#"id="purge""#, r#"id="redrive""#] {
        assert!(!read.contains(form), "{form}: {read}");
    }
    let read_token = csrf(&read);
    for action in ["messages", "purge"] {
        let (status, _) = post(
            &server,
            &reader,
            &format!("/ui/queues/jobs/{action}"),
            &[("csrf", &read_token), ("body", "no")],
        )
        .await;
        assert_eq!(status, 403, "{action}");
    }
    // An invoke key may not read queues (GET /v1/queues/jobs), but may send, as the
    // API's POST …/messages; not purge.
    let invoker = log_in(&server, &create_key(&server, "default", "invoke", None).await).await;
    let (status, refused) = page(&server, &invoker, "/ui/queues/jobs").await;
    assert_eq!(status, 403, "{refused}");
    let invoke_token = csrf(&refused);
    let (status, to) = submit(
        &server,
        &invoker,
        "/ui/queues/jobs/messages",
        &[("csrf", &invoke_token), ("body", "from an invoke key")],
    )
    .await;
    assert_eq!(status, 303, "{to}");
    assert_eq!(receive_one(&server, "jobs").await["body"], "from an invoke key");
    let (status, _) = submit(
        &server,
        &invoker,
        "/ui/queues/jobs/purge",
        &[("csrf", &invoke_token)],
    )
    .await;
    assert_eq!(status, 403);

    // Another namespace's key sees none of these.
    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({ "name": "beta" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let other = log_in(&server, &create_key(&server, "beta", "admin", None).await).await;
    let (_, theirs) = page(&server, &other, "/ui/queues").await;
    assert!(!theirs.contains("data-queue="), "{theirs}");
    let (status, _) = page(&server, &other, "/ui/queues/jobs").await;
    assert_eq!(status, 404);
    let other_token = csrf(&theirs);
    let (status, _) = submit(
        &server,
        &other,
        "/ui/queues/jobs/purge",
        &[("csrf", &other_token)],
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn more_than_a_page_of_queues_is_paged() {
    let server = server();
    let admin = log_in(&server, TEST_ADMIN_KEY).await;
    for i in 0..105 {
        put_queue(&server, &format!("q{i:03}"), json!({})).await;
    }
    let (_, first) = page(&server, &admin, "/ui/queues").await;
    assert_eq!(first.matches("<tr data-queue=").count(), 100);
    assert!(
        first.contains(r#"<tr data-queue="q099">"#) && !first.contains("q100"),
        "{first}"
    );
    assert!(first.contains("1–100 of 105"), "{first}");
    assert!(
        first.contains(r#"<a href="/ui/queues?page=2" rel="next">"#),
        "{first}"
    );
    let (_, second) = page(&server, &admin, "/ui/queues?page=2").await;
    assert_eq!(second.matches("<tr data-queue=").count(), 5);
    assert!(second.contains(r#"<tr data-queue="q104">"#), "{second}");
    assert!(
        second.contains(r#"<a href="/ui/queues?page=1" rel="prev">"#),
        "{second}"
    );
    assert!(!second.contains(r#"rel="next""#), "{second}");
}

#[tokio::test]
async fn the_topic_pages_show_subscriptions_and_publish_to_them() {
    let server = server();
    let admin = log_in(&server, TEST_ADMIN_KEY).await;
    let (_, empty) = page(&server, &admin, "/ui/topics").await;
    assert!(empty.contains("wisp topic create NAME"), "{empty}");

    let r = client().put(server.at("/v1/topics/orders")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = client().put(server.at("/v1/topics/quiet")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    put_queue(&server, "reds", json!({})).await;
    let r = client()
        .post(server.at("/v1/topics/orders/subscriptions"))
        .json(
            &json!({ "queue": "reds", "filter_policy": { "color": ["red"] }, "raw_message_delivery": true }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let subscription: Value = r.json().await.unwrap();
    let id = subscription["id"].as_str().unwrap().to_string();

    let (status, list) = page(&server, &admin, "/ui/topics").await;
    assert_eq!(status, 200);
    assert!(list.contains(r#"<tr data-topic="orders">"#), "{list}");
    let orders_row = &list[list.find(r#"<tr data-topic="orders">"#).unwrap()..];
    assert!(orders_row.contains(r#"<td class="num">1</td>"#), "{orders_row}");

    let (status, orders) = page(&server, &admin, "/ui/topics/orders").await;
    assert_eq!(status, 200);
    assert!(
        orders.contains(&format!(r#"<tr data-subscription="{id}">"#)),
        "{orders}"
    );
    assert!(
        orders.contains(r#"<a href="/ui/queues/reds">reds</a>"#),
        "{orders}"
    );
    assert!(
        orders.contains("{&#34;color&#34;:[&#34;red&#34;]}"),
        "the filter policy as JSON: {orders}"
    );
    assert!(orders.contains(r#"id="publish""#), "{orders}");
    let (_, quiet) = page(&server, &admin, "/ui/topics/quiet").await;
    assert!(quiet.contains("Nothing is subscribed"), "{quiet}");

    // Publish from the page: a red one reaches the queue.
    let token = csrf(&orders);
    let (status, _) = post(&server, &admin, "/ui/topics/orders/messages", &[("message", "x")]).await;
    assert_eq!(status, 403, "no CSRF token");
    let (status, _) = submit(
        &server,
        &admin,
        "/ui/topics/orders/messages",
        &[("csrf", &token), ("message", "x"), ("attributes", "{not json")],
    )
    .await;
    assert_eq!(status, 400, "attributes that are not JSON");
    let (status, to) = submit(
        &server,
        &admin,
        "/ui/topics/orders/messages",
        &[
            ("csrf", &token),
            ("message", "a red one"),
            ("attributes", r#"{"color": "red"}"#),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert!(to.starts_with("/ui/topics/orders?published="), "{to}");
    let (_, published) = page(&server, &admin, &to).await;
    assert!(published.contains("published."), "{published}");
    let message = receive_one(&server, "reds").await;
    assert_eq!(message["body"], "a red one");

    let (status, _) = page(&server, &admin, "/ui/topics/Bad_Name").await;
    assert_eq!(status, 400);
    let (status, _) = page(&server, &admin, "/ui/topics/none").await;
    assert_eq!(status, 404);

    // A read key: no publish form, and a publish is refused.
    let reader = log_in(&server, &create_key(&server, "default", "read", None).await).await;
    let (status, read) = page(&server, &reader, "/ui/topics/orders").await;
    assert_eq!(status, 200);
    assert!(!read.contains(r#"id="publish""#), "{read}");
    let (status, _) = post(
        &server,
        &reader,
        "/ui/topics/orders/messages",
        &[("csrf", &csrf(&read)), ("message", "no")],
    )
    .await;
    assert_eq!(status, 403);

    // Another namespace sees none of it.
    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({ "name": "beta" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let other = log_in(&server, &create_key(&server, "beta", "admin", None).await).await;
    let (_, theirs) = page(&server, &other, "/ui/topics").await;
    assert!(!theirs.contains("data-topic="), "{theirs}");
    let (status, _) = page(&server, &other, "/ui/topics/orders").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_schedules_page_shows_each_schedule_with_its_next_runs() {
    let server = server();
    let admin = log_in(&server, TEST_ADMIN_KEY).await;
    let (_, empty) = page(&server, &admin, "/ui/schedules").await;
    assert!(empty.contains("runs on a schedule"), "{empty}");

    deploy_fixture(
        &server,
        "nightly",
        "event-kit",
        json!({
            "kind": "event",
            "schedule": ["rate(1 day)", { "expression": "0 3 1 1 *", "timezone": "Europe/Berlin" }],
        }),
    )
    .await;
    let (status, list) = page(&server, &admin, "/ui/schedules").await;
    assert_eq!(status, 200);
    assert_eq!(
        list.matches(r#"<tr data-function="nightly""#).count(),
        2,
        "{list}"
    );
    assert!(
        list.contains(r#"<a href="/ui/functions/nightly">nightly</a>"#),
        "{list}"
    );
    assert!(list.contains("<td>Europe/Berlin</td>"), "{list}");
    assert!(list.contains("<code>rate(1 day)</code>"), "{list}");
    let now = SystemTime::now();
    let mut nexts = 0;
    for part in list.split(r#"<time class="next">"#).skip(1) {
        let at = &part[..part.find("</time>").unwrap()];
        let at = humantime::parse_rfc3339(at).unwrap();
        assert!(at > now, "the next run {at:?} is in the future");
        nexts += 1;
    }
    assert_eq!(nexts, 2, "{list}");
    // `0 3 1 1 *` in Berlin is 02:00 UTC on 1 January (winter time).
    assert!(list.contains("-01-01T02:00:00Z"), "{list}");

    // A schedule that has fired shows its last run.
    deploy_fixture(
        &server,
        "tick",
        "event-kit",
        json!({ "kind": "event", "schedule": "* * * * * *" }),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = page(&server, &admin, "/ui/schedules").await;
        let row = &list[list.find(r#"<tr data-function="tick""#).unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        if row.contains("<td><time>") {
            break;
        }
        assert!(Instant::now() < deadline, "no last run shown: {row}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Read keys see it too; another namespace does not.
    let reader = log_in(&server, &create_key(&server, "default", "read", None).await).await;
    let (status, read) = page(&server, &reader, "/ui/schedules").await;
    assert_eq!(status, 200);
    assert!(read.contains(r#"<tr data-function="nightly""#), "{read}");
    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({ "name": "beta" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let other = log_in(&server, &create_key(&server, "beta", "read", None).await).await;
    let (_, theirs) = page(&server, &other, "/ui/schedules").await;
    assert!(!theirs.contains("nightly"), "{theirs}");
}

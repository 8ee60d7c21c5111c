//! Quotas and budgets (issue 14): a namespace's monthly limits stop work at admission —
//! sync calls and routes answer `quota_exceeded`, new async invocations and queue sends
//! are refused, accepted events wait and run once the quota is raised — with its own
//! prices and free tier, and warnings in the audit trail.

use crate::native::deploy_kit;
use crate::util::{bin, client, deploy_fixture, expect_problem, get_json, json_when, server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

async fn patch_default(server: &TestServer, patch: Value) -> reqwest::Response {
    client()
        .patch(server.at("/v1/namespaces/default"))
        .json(&patch)
        .send()
        .await
        .unwrap()
}

async fn set_default(server: &TestServer, patch: Value) -> Value {
    let response = patch_default(server, patch).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn invoke_async(server: &TestServer, name: &str, event: &Value) -> reqwest::Response {
    client()
        .post(server.at(&format!("/v1/functions/{name}/invoke")))
        .header("x-wisp-invocation-type", "event")
        .json(event)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_request_quota_admits_exactly_its_number_and_refuses_the_rest() {
    let server = server();
    let config = json!({"kind": "http", "routes": ["/s/:action"], "max_concurrency": 50});
    deploy_fixture(&server, "sleepy", "http-kit", config).await;
    let put = client()
        .put(server.at("/v1/queues/jobs"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let set = set_default(&server, json!({"quota": {"requests": 10}})).await;
    assert_eq!(set["quota"]["requests"], 10);
    assert_eq!(set["month"]["stopped_by"], Value::Null);

    // A burst of 30 at once: exactly 10 run.
    let calls = (0..30).map(|_| client().get(server.at("/s/sleep?ms=30")).send());
    let answers = futures::future::join_all(calls).await;
    let mut ok = 0;
    let mut refused = Vec::new();
    for answer in answers {
        let answer = answer.unwrap();
        match answer.status().as_u16() {
            200 => ok += 1,
            _ => refused.push(answer),
        }
    }
    assert_eq!(ok, 10, "{} refused", refused.len());
    assert_eq!(refused.len(), 20);
    let first = refused.pop().unwrap();
    let retry_after: u64 = first.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 0 && retry_after <= 31 * 86_400, "{retry_after}");
    let doc = expect_problem(first, 429, "quota_exceeded").await;
    let detail = doc["detail"].as_str().unwrap();
    assert!(detail.contains("monthly requests limit"), "{detail}");
    for answer in refused {
        expect_problem(answer, 429, "quota_exceeded").await;
    }
    let shown = get_json(&server, "/v1/namespaces/default").await;
    assert_eq!(shown["month"]["stopped_by"], "requests", "{shown}");
    assert_eq!(shown["month"]["requests"], 10);

    // Every way in is refused the same way: the invoke API, Lambda's, async, queue sends.
    let sync = client()
        .post(server.at("/v1/functions/sleepy/invoke"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_problem(sync, 429, "quota_exceeded").await;
    let lambda = client()
        .post(server.at("/2015-03-31/functions/sleepy/invocations"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(lambda.status(), 429);
    assert_eq!(lambda.headers()["x-amzn-errortype"], "TooManyRequestsException");
    expect_problem(
        invoke_async(&server, "sleepy", &json!({})).await,
        429,
        "quota_exceeded",
    )
    .await;
    let send = client()
        .post(server.at("/v1/queues/jobs/messages"))
        .json(&json!({"body": "x"}))
        .send()
        .await
        .unwrap();
    expect_problem(send, 429, "quota_exceeded").await;

    // The refused were not billed: the rollup has the 10 that ran.
    let usage = json_when(&server, "/v1/usage?group_by=namespace", |u| {
        u["total"]["requests"] == 10
    })
    .await;
    assert_eq!(usage["total"]["requests"], 10, "{usage}");

    // Raised: admitted at once, not a second later.
    let raised = set_default(&server, json!({"quota": {"requests": 11}})).await;
    assert_eq!(raised["month"]["stopped_by"], Value::Null, "{raised}");
    let r = client().get(server.at("/s/sleep?ms=1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client().get(server.at("/s/sleep?ms=1")).send().await.unwrap();
    expect_problem(r, 429, "quota_exceeded").await;
    // Removed: no limit.
    set_default(&server, json!({"quota": {"requests": null}})).await;
    let r = client().get(server.at("/s/sleep?ms=1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// The async events of a namespace, by status.
async fn event_counts(server: &TestServer, name: &str) -> Value {
    get_json(server, &format!("/v1/functions/{name}/dlq?limit=1")).await["counts"].clone()
}

#[tokio::test]
async fn accepted_async_events_wait_for_a_raised_quota_then_run() {
    let server = server();
    // One at a time, 300 ms each: twelve events are all accepted long before five ran.
    deploy_kit(&server, "slow", json!({"max_concurrency": 1})).await;
    set_default(&server, json!({"quota": {"requests": 5}})).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let accepted = invoke_async(&server, "slow", &json!({"action": "sleep", "ms": 300, "i": i})).await;
        assert_eq!(accepted.status(), 202, "event {i}: {:?}", accepted.text().await);
        let body: Value = accepted.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let stopped = json_when(&server, "/v1/namespaces/default", |ns| {
        ns["month"]["stopped_by"] == "requests"
    })
    .await;
    assert_eq!(stopped["month"]["stopped_by"], "requests", "{stopped}");
    let counts = json_when(&server, "/v1/functions/slow/dlq?limit=1", |d| {
        d["counts"]["succeeded"] == 5
    })
    .await["counts"]
        .clone();
    assert_eq!(counts["succeeded"], 5, "{counts}");
    // The rest wait: not run, not dead-lettered, however long the quota holds.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let counts = event_counts(&server, "slow").await;
    assert_eq!(
        (counts["succeeded"].as_u64(), counts["failed"].as_u64()),
        (Some(5), Some(0)),
        "{counts}"
    );
    assert_eq!(
        counts["queued"].as_u64().unwrap() + counts["running"].as_u64().unwrap(),
        7
    );
    let last = get_json(&server, &format!("/v1/invocations/{}", ids[11])).await;
    assert_eq!(last["status"], "queued", "{last}");
    assert_eq!(last["attempts"], 0, "{last}");
    assert!(
        last["last_error"]
            .as_str()
            .unwrap_or("")
            .starts_with("quota_exceeded:"),
        "{last}"
    );
    assert!(last["held_ms"].as_u64().unwrap_or(0) > 0, "{last}");
    // New events are refused meanwhile.
    expect_problem(
        invoke_async(&server, "slow", &json!({})).await,
        429,
        "quota_exceeded",
    )
    .await;

    // Raised: the held events run at once, all of them.
    let started = Instant::now();
    set_default(&server, json!({"quota": {"requests": 100}})).await;
    let counts = json_when(&server, "/v1/functions/slow/dlq?limit=1", |d| {
        d["counts"]["succeeded"] == 12
    })
    .await["counts"]
        .clone();
    assert_eq!(counts["succeeded"], 12, "{counts}");
    assert_eq!(counts["failed"], 0);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "held events took {:?} to run after the raise",
        started.elapsed()
    );
    let usage = json_when(&server, "/v1/usage", |u| u["total"]["requests"] == 12).await;
    assert_eq!(usage["total"]["requests"], 12, "{usage}");
}

#[tokio::test]
async fn a_budget_at_the_namespaces_own_prices_stops_work_after_a_warning() {
    let server = server();
    deploy_fixture(
        &server,
        "kit",
        "http-kit",
        json!({"kind": "http", "routes": ["/k/:action"]}),
    )
    .await;
    // A dollar a request, nothing free, three dollars to spend; a warning at half.
    let set = set_default(
        &server,
        json!({
            "prices": {"per_million_requests": "1000000", "per_gb_second": "0"},
            "free_tier": {"requests": 0, "gb_seconds": 0},
            "quota": {"budget": "3.00", "warn_percent": 50},
        }),
    )
    .await;
    assert_eq!(set["prices"]["per_request"], "1.00", "{set}");
    assert_eq!(set["free_tier"], json!({"requests": 0, "gb_seconds": 0}));
    assert_eq!(set["quota"]["budget"], "3.00");
    for i in 1..=3 {
        let r = client().get(server.at("/k/echo")).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        // The cost is judged when the run has finished; wait for it.
        let shown = json_when(&server, "/v1/namespaces/default", |ns| {
            ns["month"]["requests"] == i
        })
        .await;
        assert_eq!(shown["month"]["cost"], format!("{i}.00"), "{shown}");
    }
    let shown = json_when(&server, "/v1/namespaces/default", |ns| {
        ns["month"]["stopped_by"] == "budget"
    })
    .await;
    assert_eq!(shown["month"]["stopped_by"], "budget", "{shown}");
    let r = client().get(server.at("/k/echo")).send().await.unwrap();
    let doc = expect_problem(r, 429, "quota_exceeded").await;
    assert!(doc["detail"].as_str().unwrap().contains("budget"), "{doc}");

    // The usage report costs at the namespace's prices.
    let usage = json_when(&server, "/v1/usage", |u| u["total"]["requests"] == 3).await;
    assert_eq!(usage["total"]["cost"], "3.00", "{usage}");
    // An admin's report covers every namespace, so its prices are the server's.
    assert_eq!(usage["prices"]["per_request"], "0.0000002");

    // The warning and the stop are in the audit trail, by the server itself.
    let audit = json_when(&server, "/v1/audit", |a| {
        a["entries"].as_array().is_some_and(|e| {
            e.iter().any(|x| x["action"] == "quota.exceeded")
                && e.iter().any(|x| x["action"] == "quota.warning")
        })
    })
    .await;
    let entries = audit["entries"].as_array().unwrap();
    let warning = entries.iter().find(|e| e["action"] == "quota.warning").unwrap();
    assert!(
        warning["detail"].as_str().unwrap().contains("budget at 66.6%"),
        "{warning}"
    );
    assert_eq!(warning["key_id"], Value::Null);
    assert_eq!(
        entries.iter().filter(|e| e["action"] == "quota.exceeded").count(),
        1,
        "{audit}"
    );
}

#[tokio::test]
async fn bad_quota_settings_are_refused_and_change_nothing() {
    let server = server();
    let cases = [
        (json!({"quota": {"requests": -1}}), "quota"),
        (
            json!({"quota": {"requests": 1_000_000_000_001u64}}),
            "quota.requests",
        ),
        (json!({"quota": {"gb_seconds": "lots"}}), "quota"),
        (json!({"quota": {"budget": 10.5}}), "as a string"),
        (json!({"quota": {"budget": "-3"}}), "invalid amount"),
        (json!({"quota": {"budget": "ten"}}), "invalid amount"),
        (json!({"quota": {"warn_percent": 100}}), "quota.warn_percent"),
        (json!({"quota": {"warn_percent": 0}}), "quota.warn_percent"),
        (json!({"quota": {"request": 5}}), "unknown field `request`"),
        (json!({"quota": 5}), "quota"),
        (json!({"free_tier": {"requests": -5}}), "free_tier"),
        (
            json!({"prices": {"per_gb_second": "0.0000000000001"}}),
            "more than 12 decimals",
        ),
        (json!({"budget": "3.00"}), "unknown setting `budget`"),
    ];
    for (patch, says) in cases {
        let response = patch_default(&server, patch.clone()).await;
        let doc = expect_problem(response, 400, "invalid_config").await;
        let detail = doc["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{patch}: {detail}");
    }
    let shown = get_json(&server, "/v1/namespaces/default").await;
    assert_eq!(
        shown["quota"],
        json!({"requests": null, "gb_seconds": null, "budget": null, "warn_percent": null, "storage_bytes": null})
    );
    // An unknown namespace.
    let r = client()
        .patch(server.at("/v1/namespaces/nowhere"))
        .json(&json!({"quota": {"requests": 5}}))
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "namespace_not_found").await;

    // The CLI sets them, and refuses a number that does not read before sending.
    let set = server
        .cli(bin())
        .args([
            "ns",
            "set",
            "default",
            "--quota-requests",
            "5",
            "--budget",
            "10.00",
            "--warn-percent",
            "80",
        ])
        .output()
        .unwrap();
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let out = String::from_utf8_lossy(&set.stdout);
    assert!(out.contains("this month: 0 requests"), "{out}");
    let shown = get_json(&server, "/v1/namespaces/default").await;
    assert_eq!(
        shown["quota"],
        json!({"requests": 5, "gb_seconds": null, "budget": "10.00", "warn_percent": 80, "storage_bytes": null})
    );
    let bad = server
        .cli(bin())
        .args(["ns", "set", "default", "--quota-requests", "lots"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--quota-requests: `lots` is not a whole number"));
    let none = server
        .cli(bin())
        .args([
            "ns",
            "set",
            "default",
            "--quota-requests",
            "none",
            "--budget",
            "none",
        ])
        .output()
        .unwrap();
    assert!(none.status.success());
    let shown = get_json(&server, "/v1/namespaces/default").await;
    assert_eq!(shown["quota"]["requests"], Value::Null);
    assert_eq!(shown["quota"]["budget"], Value::Null);
    assert_eq!(shown["quota"]["warn_percent"], 80);
}

#[tokio::test]
async fn schedules_skip_their_runs_while_the_quota_stops_work_and_resume_after() {
    let server = server();
    set_default(&server, json!({"quota": {"requests": 0}})).await;
    let config = json!({"kind": "event", "schedule": "* * * * * *"});
    deploy_fixture(&server, "tick", "event-kit", config).await;
    // Every second's slot is skipped, and the function's log says why.
    let lines = crate::util::logs_when(&server, "/v1/functions/tick/logs?limit=100", |lines| {
        lines
            .iter()
            .filter(|l| crate::util::line_text(l).contains("skipped its run"))
            .count()
            >= 2
    })
    .await;
    let skipped: Vec<&str> = lines
        .iter()
        .map(crate::util::line_text)
        .filter(|l| l.contains("skipped its run"))
        .collect();
    assert!(skipped.len() >= 2, "{lines:?}");
    assert!(skipped[0].contains("monthly requests limit"), "{}", skipped[0]);
    let records = get_json(&server, "/v1/functions/tick/invocations").await;
    assert_eq!(records["invocations"], json!([]), "a skipped slot ran");
    let counts = get_json(&server, "/v1/functions/tick/dlq?limit=1").await["counts"].clone();
    assert_eq!(counts["succeeded"], 0, "{counts}");
    assert_eq!(counts["queued"], 0, "a skipped slot was queued: {counts}");

    // No limit: the next slots run.
    set_default(&server, json!({"quota": {"requests": null}})).await;
    let records = json_when(&server, "/v1/functions/tick/invocations", |r| {
        r["invocations"].as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    assert!(
        records["invocations"].as_array().is_some_and(|l| !l.is_empty()),
        "the schedule did not resume: {records}"
    );
}

//! Metering (issue 14, first part): every invocation's billed time lands in its record
//! and in the usage rollup, which `GET /v1/usage` and `wisp usage` report with its cost.

use crate::util::{bin, client, deploy_fixture, expect_problem, get_json, server};
use serde_json::{Value, json};

/// The usage report at `query` once `ready` accepts it.
async fn usage_when(
    server: &wisp_test_support::TestServer,
    query: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    crate::util::json_when(server, &format!("/v1/usage?{query}"), ready).await
}

#[tokio::test]
async fn every_invocation_is_billed_by_the_millisecond_and_reported_with_its_cost() {
    let server = server();
    let config = json!({"kind": "http", "routes": ["/s/:action"], "memory_mb": 256});
    deploy_fixture(&server, "sleepy", "http-kit", config).await;
    deploy_fixture(&server, "ev", "event-kit", json!({"kind": "event"})).await;
    for _ in 0..10 {
        let r = client().get(server.at("/s/sleep?ms=50")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    for _ in 0..3 {
        let r = client()
            .post(server.at("/v1/functions/ev/invoke"))
            .json(&json!({"action": "hello", "name": "Ada"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let usage = usage_when(&server, "group_by=function", |u| u["total"]["requests"] == 13).await;
    let rows = usage["rows"].as_array().unwrap();
    let sleepy = rows.iter().find(|r| r["function"] == "sleepy").unwrap();
    assert_eq!(sleepy["requests"], 10, "{usage}");
    assert_eq!(sleepy["errors"], 0);
    let billed = sleepy["billed_ms"].as_u64().unwrap();
    assert!(
        (500..=600).contains(&billed),
        "10 × 50 ms sleeps billed {billed} ms"
    );
    // The rollup is the sum of the invocation records, each billed as its run rounded up.
    let records = get_json(&server, "/v1/functions/sleepy/invocations").await;
    let records = records["invocations"].as_array().unwrap();
    assert_eq!(records.len(), 10);
    let mut summed = 0;
    for r in records {
        let run_us = r["run_us"].as_u64().unwrap();
        let billed_ms = r["billed_ms"].as_u64().unwrap();
        assert_eq!(billed_ms, run_us.div_ceil(1000).max(1), "{r}");
        assert_eq!(r["memory_mb"], 256);
        summed += billed_ms;
    }
    assert_eq!(summed, billed);
    // GB-s = 256/1024 GB × billed seconds; the cost at Lambda's prices.
    let gb_s: f64 = sleepy["gb_seconds"].as_str().unwrap().parse().unwrap();
    assert!((gb_s - billed as f64 / 4000.0).abs() < 1e-6, "{sleepy}");
    let ev = rows.iter().find(|r| r["function"] == "ev").unwrap();
    assert_eq!(ev["requests"], 3);
    assert_eq!(
        usage["prices"],
        json!({"per_request": "0.0000002", "per_gb_second": "0.0000166667"})
    );
    assert!(
        usage["total"]["cost"].as_str().unwrap().starts_with("0.0000"),
        "{usage}"
    );

    // By hour: one row this hour; an empty period has none.
    let hourly = get_json(&server, "/v1/usage?group_by=hour").await;
    assert_eq!(hourly["rows"].as_array().unwrap().len(), 1, "{hourly}");
    assert_eq!(hourly["rows"][0]["requests"], 13);
    let old = get_json(&server, "/v1/usage?from=2020-01-01&to=2020-02-01").await;
    assert_eq!(old["rows"], json!([]));
    assert_eq!(old["total"]["requests"], 0);

    // Deleting the function keeps what it used.
    let r = client()
        .delete(server.at("/v1/functions/sleepy"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let after = get_json(&server, "/v1/usage?group_by=function").await;
    assert_eq!(after["total"]["requests"], 13, "{after}");

    let out = server.cli(bin()).args(["usage", "--csv"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        csv.starts_with("function,requests,errors,billed_ms,gb-s,cost"),
        "{csv}"
    );
    assert!(csv.lines().any(|l| l.starts_with("sleepy,10,0,")), "{csv}");
}

#[tokio::test]
async fn bad_usage_queries_name_the_parameter() {
    let server = server();
    for (query, says) in [
        ("group_by=week", "group_by"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-02-01&to=2026-01-01", "must be before"),
        ("colour=red", "parameters"),
        ("function=Bad_Name", "invalid function name"),
    ] {
        let r = client()
            .get(server.at(&format!("/v1/usage?{query}")))
            .send()
            .await
            .unwrap();
        let code = if says == "invalid function name" {
            "invalid_name"
        } else {
            "invalid_request"
        };
        let doc = expect_problem(r, 400, code).await;
        assert!(doc["detail"].as_str().unwrap().contains(says), "{query}: {doc}");
    }
}

/// Every attempt of an async invocation is a run, billed as Lambda bills each retry,
/// though the attempts share the invocation id.
#[tokio::test]
async fn each_retry_of_an_async_invocation_is_billed() {
    let server = wisp_test_support::TestServer::serve_with(
        bin(),
        &["--async-retry-base", "1ms", "--async-retry-max", "5ms"],
    );
    deploy_fixture(
        &server,
        "worker",
        "event-kit",
        json!({"kind": "event", "max_retries": 2}),
    )
    .await;
    let r = client()
        .post(server.at("/v1/functions/worker/invoke"))
        .header("x-wisp-invocation-type", "event")
        .json(&json!({"action": "exit", "code": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let usage = usage_when(&server, "group_by=function&function=worker", |u| {
        u["total"]["requests"] == 3
    })
    .await;
    assert_eq!(usage["total"]["requests"], 3, "{usage}");
    assert_eq!(usage["total"]["errors"], 3, "{usage}");
}

//! A function's recent history: the charts on its dashboard page (inline SVG, an hour or
//! a day) and `GET /v1/functions/{name}/stats` they are drawn from; and the functions
//! page's cost column and pages.

use crate::tenancy::create_key;
use crate::ui::{log_in, page, post};
use crate::util::{client, deploy_fixture, expect_problem, server};
use serde_json::{Value, json};
use wisp_test_support::{deploy, fixture_bytes};

async fn invoke(server: &wisp_test_support::TestServer, name: &str, event: Value) -> u16 {
    client()
        .post(server.at(&format!("/v1/functions/{name}/invoke")))
        .json(&event)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn stats(server: &wisp_test_support::TestServer, query: &str) -> reqwest::Response {
    client()
        .get(server.at(&format!("/v1/functions/echo/stats{query}")))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_functions_charts_and_stats_show_what_it_ran_this_hour() {
    let server = server();
    deploy_fixture(&server, "echo", "event-kit", json!({ "kind": "event" })).await;
    let session = log_in(&server, wisp_test_support::TEST_ADMIN_KEY).await;
    // The server says where its dashboard is.
    let line = format!("Dashboard at {} (log in with an API key", server.at("/ui"));
    assert!(server.stderr().contains(&line), "{}", server.stderr());

    // Nothing ran yet: every point is zero, and the charts say so.
    let doc: Value = stats(&server, "").await.json().await.unwrap();
    assert_eq!(doc["window"], "hour");
    assert_eq!(doc["step_seconds"], 60);
    let points = doc["points"].as_array().unwrap();
    assert_eq!(points.len(), 60);
    assert!(
        points
            .iter()
            .all(|p| p["invocations"] == 0 && p["p99_seconds"].is_null())
    );
    let (status, html) = page(&server, &session, "/ui/functions/echo").await;
    assert_eq!(status, 200);
    assert!(html.contains("No invocations."), "{html}");
    assert!(!html.contains("<rect"), "an idle function's charts have no bars");

    for _ in 0..3 {
        assert_eq!(invoke(&server, "echo", json!({})).await, 200);
    }
    assert_eq!(
        invoke(&server, "echo", json!({ "action": "exit", "code": 3 })).await,
        502
    );

    // The minute still open is read live: no need to wait for its end.
    let doc: Value = stats(&server, "").await.json().await.unwrap();
    let points = doc["points"].as_array().unwrap();
    let last = points.last().unwrap();
    let before = &points[points.len() - 2];
    // The last minute may have just closed between the invokes and the read.
    let (invocations, errors) = (
        last["invocations"].as_u64().unwrap() + before["invocations"].as_u64().unwrap(),
        last["errors"].as_u64().unwrap() + before["errors"].as_u64().unwrap(),
    );
    assert_eq!((invocations, errors), (4, 1), "{doc}");
    assert_eq!(doc["totals"]["invocations"], 4);
    assert_eq!(doc["totals"]["errors"], 1);
    assert!(last["p99_seconds"].as_f64().unwrap() > 0.0 || before["p99_seconds"].as_f64().unwrap() > 0.0);

    let (status, html) = page(&server, &session, "/ui/functions/echo").await;
    assert_eq!(status, 200);
    for id in ["chart-invocations", "chart-errors", "chart-latency"] {
        assert!(html.contains(&format!(r#"id="{id}""#)), "no {id}");
    }
    assert!(html.contains("4 invocations in all"), "{html}");
    assert!(html.contains("1 errors in all"), "{html}");
    assert!(html.contains(r#"<polyline class="p99""#), "{html}");
    assert!(html.contains(" invocations</title></rect>"), "{html}");

    // The day's window: quarter hours.
    let doc: Value = stats(&server, "?window=day").await.json().await.unwrap();
    assert_eq!(
        (doc["window"].as_str(), doc["points"].as_array().unwrap().len()),
        (Some("day"), 96)
    );
    let day: u64 = doc["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["invocations"].as_u64().unwrap())
        .sum();
    assert_eq!(day, 4);
    let (status, html) = page(&server, &session, "/ui/functions/echo?window=day").await;
    assert_eq!(status, 200);
    assert!(html.contains("the last day, per 15 minutes") && html.contains("4 invocations in all"));

    // A second version, and an alias splitting the traffic: each version's row names
    // the alias with its share, the functions page names it with its versions.
    let r = deploy(
        &client(),
        &server,
        "echo",
        json!({ "kind": "event", "memory_mb": 256 }),
        fixture_bytes("event-kit"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = client()
        .put(server.at("/v1/functions/echo/aliases/canary"))
        .json(&json!({ "version": 1, "additional": { "version": 2, "weight": 0.1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (_, html) = page(&server, &session, "/ui/functions/echo").await;
    let row = |v: u32| {
        let at = html.find(&format!(r#"data-version="{v}""#)).unwrap();
        html[at..at + html[at..].find("</tr>").unwrap()].to_string()
    };
    assert!(row(1).contains("canary 90%"), "{}", row(1));
    assert!(row(2).contains("<td>canary 10%, live</td>"), "{}", row(2));
    let (_, html) = page(&server, &session, "/ui/functions").await;
    assert!(html.contains("canary v1+v2"), "{html}");

    // Rolling back, disabling and enabling from the page are in the audit trail, as
    // the API's requests are.
    let token = crate::ui::csrf(&html);
    for (action, form) in [
        ("rollback", vec![("csrf", token.as_str()), ("version", "1")]),
        ("disable", vec![("csrf", token.as_str())]),
        ("enable", vec![("csrf", token.as_str())]),
    ] {
        let (status, body) = post(&server, &session, &format!("/ui/functions/echo/{action}"), &form).await;
        assert_eq!(status, 303, "{action}: {body}");
    }
    let audit: Value = client()
        .get(server.at("/v1/audit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let done: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == "echo" && e["key_id"].is_string() && e["source"].is_string())
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for expected in [
        ("function.rollback", "live 2 → 1"),
        ("function.disable", ""),
        ("function.enable", ""),
    ] {
        assert!(
            done.iter()
                .any(|(a, d)| a == expected.0 && d.contains(expected.1)),
            "{expected:?} not in {done:?}"
        );
    }

    // Bad input.
    expect_problem(stats(&server, "?window=week").await, 400, "invalid_request").await;
    let (status, html) = page(&server, &session, "/ui/functions/echo?window=week").await;
    assert_eq!(status, 400);
    assert!(html.contains("`week` is not a window"), "{html}");
    let r = client()
        .get(server.at("/v1/functions/nope/stats"))
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "function_not_found").await;

    // A read key may read them; a key of another namespace sees no such function.
    let read = create_key(&server, "default", "read", None).await;
    let r = reqwest::Client::new()
        .get(server.at("/v1/functions/echo/stats"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({ "name": "other" }))
        .send()
        .await
        .unwrap();
    let other = create_key(&server, "other", "deploy", None).await;
    let r = reqwest::Client::new()
        .get(server.at("/v1/functions/echo/stats"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "function_not_found").await;
}

#[tokio::test]
async fn the_functions_page_shows_each_ones_cost_and_pages_past_a_hundred() {
    let server = server();
    for i in 0..101 {
        deploy_fixture(
            &server,
            &format!("f{i:03}"),
            "event-kit",
            json!({ "kind": "event" }),
        )
        .await;
    }
    assert_eq!(invoke(&server, "f000", json!({})).await, 200);
    let session = log_in(&server, wisp_test_support::TEST_ADMIN_KEY).await;

    let (status, html) = page(&server, &session, "/ui/functions").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-function="f099""#) && !html.contains(r#"data-function="f100""#));
    assert!(html.contains("1–100 of 101"), "{html}");
    assert!(
        html.contains(r#"href="/ui/functions?page=2" rel="next""#),
        "{html}"
    );
    // f000 ran once: its month costs something (its row's last cell is a price).
    let row = &html[html.find(r#"data-function="f000""#).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("$0.0000"), "{row}");

    let (status, html) = page(&server, &session, "/ui/functions?page=2").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-function="f100""#) && !html.contains(r#"data-function="f099""#));
    assert!(html.contains("101–101 of 101") && html.contains(r#"rel="prev""#));
    // Past the end: the last page.
    let (_, html) = page(&server, &session, "/ui/functions?page=9").await;
    assert!(html.contains(r#"data-function="f100""#));
    let (status, _) = page(&server, &session, "/ui/functions?page=x").await;
    assert_eq!(status, 400);
}

//! The dashboard over plain HTTP, as a browser without JavaScript uses it: logging in
//! with a key (and refusing a bad one), the session cookie's attributes, pages that
//! show what the key's role and namespace allow, a dead letter redriven from its page,
//! and posts refused without the
//! session's CSRF token, by a role that may not, after a revoke, or with a forged
//! cookie. `tests/all/dashboard.rs` drives the same pages in a real browser.

use crate::tenancy::create_key;
use crate::util::{client, deploy_fixture, server};
use serde_json::json;
use wisp_test_support::TestServer;

/// A client that follows no redirects and keeps no cookies: each step is seen.
pub(crate) fn browser() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in with `key`; the `wisp_session=…` pair to send back.
pub(crate) async fn log_in(server: &TestServer, key: &str) -> String {
    let r = browser()
        .post(server.at("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("key", key)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/functions");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains(key.split('.').nth(1).unwrap()),
        "the key's secret is never in the cookie"
    );
    cookie.split(';').next().unwrap().to_string()
}

/// `pairs` as an HTML form posts them.
pub(crate) fn encode(pairs: &[(&str, &str)]) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `GET path` with the session: status and body.
pub(crate) async fn page(server: &TestServer, session: &str, path: &str) -> (u16, String) {
    let r = browser()
        .get(server.at(path))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `POST path` with the session and `form`: status and body.
pub(crate) async fn post(
    server: &TestServer,
    session: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let r = browser()
        .post(server.at(path))
        .header("cookie", session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(form))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The CSRF token in a page's forms.
pub(crate) fn csrf(html: &str) -> String {
    let at = html
        .find(r#"name="csrf" value=""#)
        .expect("a form with a CSRF token")
        + 19;
    html[at..at + 64].to_string()
}

#[tokio::test]
async fn the_dashboard_shows_and_allows_what_the_keys_role_and_namespace_allow() {
    let server = server();
    deploy_fixture(
        &server,
        "echo",
        "event-kit",
        json!({ "kind": "event", "max_retries": 0 }),
    )
    .await;
    let admin = wisp_test_support::TEST_ADMIN_KEY.to_string();

    // No session: pages lead to the login page; a post is refused.
    let r = browser().get(server.at("/ui/functions")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["location"].to_str().unwrap()),
        (303, "/ui/login")
    );
    let r = browser()
        .post(server.at("/ui/functions/echo/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = browser()
        .post(server.at("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("key", "WKNOTAKEY.nope")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains(r#"<p class="error">"#));

    // An admin sees the function and every action, and invokes it.
    let session = log_in(&server, &admin).await;
    let (status, list) = page(&server, &session, "/ui/functions").await;
    assert_eq!(status, 200);
    assert!(list.contains(r#"<tr data-function="echo">"#), "{list}");
    let (_, echo) = page(&server, &session, "/ui/functions/echo").await;
    for form in [r#"id="invoke""#, r#"id="disable""#] {
        assert!(echo.contains(form), "{form}");
    }
    let token = csrf(&echo);
    let (status, _) = post(
        &server,
        &session,
        "/ui/functions/echo/invoke",
        &[("payload", r#"{"action":"hello","name":"Ada"}"#)],
    )
    .await;
    assert_eq!(status, 403, "no CSRF token");
    let (status, _) = post(
        &server,
        &session,
        "/ui/functions/echo/invoke",
        &[("csrf", &"0".repeat(64)), ("payload", "{}")],
    )
    .await;
    assert_eq!(status, 403, "a wrong CSRF token");
    // Post, redirect, get: the answer is shown on the function's page, which a reload
    // shows again without invoking again.
    let r = browser()
        .post(server.at("/ui/functions/echo/invoke"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[
            ("csrf", &token),
            ("payload", r#"{"action":"hello","name":"Ada"}"#),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let shown_at = r.headers()["location"].to_str().unwrap().to_string();
    assert!(shown_at.starts_with("/ui/functions/echo?result="), "{shown_at}");
    for _ in 0..2 {
        let (status, answered) = page(&server, &session, &shown_at).await;
        assert_eq!(status, 200);
        assert!(
            answered.contains(r#"<pre id="invoke-result">{&#34;message&#34;:&#34;Hello, Ada!&#34;}"#),
            "{answered}"
        );
        assert!(
            answered.contains("&#34;name&#34;:&#34;Ada&#34;"),
            "the payload is kept in the form: {answered}"
        );
        // With the end of the run's log, closed by its REPORT line.
        let log = answered
            .split_once(r#"<pre id="invoke-log">"#)
            .and_then(|(_, rest)| rest.split_once("</pre>"))
            .map(|(log, _)| log)
            .unwrap_or_else(|| panic!("no log shown: {answered}"));
        assert!(
            log.contains("REPORT RequestId: ") && log.contains("Billed Duration: "),
            "{log}"
        );
    }
    let runs = crate::util::get_json(&server, "/v1/functions/echo/invocations").await;
    assert_eq!(runs["invocations"].as_array().unwrap().len(), 1, "{runs}");

    // An async event that fails is a dead letter (no retries); the page redrives it.
    let r = client()
        .post(server.at("/v1/functions/echo/invoke"))
        .header("x-wisp-invocation-type", "event")
        .json(&json!({ "action": "exit", "code": 3 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let event: serde_json::Value = r.json().await.unwrap();
    let id = event["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let letters = loop {
        let (_, letters) = page(&server, &session, "/ui/functions/echo/dead-letters").await;
        if letters.contains(&format!(r#"<tr data-event="{id}">"#)) {
            break letters;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dead letter shown: {letters}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(letters.contains(r#"class="redrive""#), "{letters}");
    let r = browser()
        .post(server.at("/ui/functions/echo/dead-letters/redrive"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", &csrf(&letters)), ("id", &id)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/ui/functions/echo/dead-letters?redriven=1"
    );

    // The alarms page lists the namespace's alarms; one alarm's page shows its rule.
    let rule =
        json!({ "metric": "queue_age", "queue": "later", "threshold": "5m", "description": "jobs wait" });
    let r = client()
        .put(server.at("/v1/alarms/backlog"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (_, alarms) = page(&server, &session, "/ui/alarms").await;
    assert!(alarms.contains(r#"<tr data-alarm="backlog">"#), "{alarms}");
    assert!(alarms.contains("INSUFFICIENT_DATA"), "{alarms}");
    let (status, alarm) = page(&server, &session, "/ui/alarms/backlog").await;
    assert_eq!(status, 200);
    assert!(
        alarm.contains("queue_age of queue later &#62; 5m for 1 of 1 periods of 1m"),
        "{alarm}"
    );
    assert!(
        alarm.contains("No changes of state yet.") && alarm.contains("jobs wait"),
        "{alarm}"
    );
    let (status, _) = page(&server, &session, "/ui/alarms/none").await;
    assert_eq!(status, 404);

    // A read key sees the pages but no action, and its posts are refused.
    let reader = create_key(&server, "default", "read", None).await;
    let read_session = log_in(&server, &reader).await;
    let (status, echo) = page(&server, &read_session, "/ui/functions/echo").await;
    assert_eq!(status, 200);
    let (_, not_theirs) = page(&server, &read_session, &shown_at).await;
    assert!(
        !not_theirs.contains("invoke-result"),
        "an answer is shown to the key that asked only"
    );
    assert!(
        !echo.contains(r#"id="invoke""#) && !echo.contains(r#"id="disable""#),
        "{echo}"
    );
    let token = csrf(&echo);
    let (status, refused) = post(
        &server,
        &read_session,
        "/ui/functions/echo/disable",
        &[("csrf", &token)],
    )
    .await;
    assert_eq!(status, 403);
    assert!(refused.contains("may not do that"), "{refused}");
    let (status, _) = post(
        &server,
        &read_session,
        "/ui/functions/echo/invoke",
        &[("csrf", &token), ("payload", "{}")],
    )
    .await;
    assert_eq!(status, 403);

    // Another namespace's key sees nothing of this one.
    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({ "name": "other" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let outsider = create_key(&server, "other", "deploy", None).await;
    let outside = log_in(&server, &outsider).await;
    let (_, list) = page(&server, &outside, "/ui/functions").await;
    assert!(
        !list.contains("echo") && list.contains(r#"<p class="empty">"#),
        "{list}"
    );
    let (status, outside_page) = page(&server, &outside, "/ui/functions/echo").await;
    assert_eq!(status, 404);
    assert!(
        !outside_page.contains(r#"action="/ui/namespace""#),
        "only admins switch"
    );
    let token = csrf(&outside_page);
    let (status, _) = post(
        &server,
        &outside,
        "/ui/namespace",
        &[("csrf", &token), ("namespace", "default")],
    )
    .await;
    assert_eq!(status, 403);

    // An admin key switches namespaces, as X-Wisp-Namespace does in the API.
    let (_, list) = page(&server, &session, "/ui/functions").await;
    assert!(
        list.contains("<option selected>default</option>") && list.contains("<option>other</option>"),
        "{list}"
    );
    let r = browser()
        .post(server.at("/ui/namespace"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", &csrf(&list)), ("namespace", "other")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let chosen = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(chosen, "wisp_namespace=other");
    let (_, list) = page(&server, &format!("{session}; {chosen}"), "/ui/functions").await;
    assert!(
        list.contains("<h1>Functions <small>in other</small></h1>") && !list.contains("echo"),
        "{list}"
    );

    // A forged or tampered cookie is no session; a revoked key ends its sessions.
    // The last character changed (to `0`, or to `1` when it is `0` already: the test
    // passed a session unchanged when it ended in `0`).
    let last = if read_session.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &read_session[..read_session.len() - 1]);
    let (status, _) = page(&server, &tampered, "/ui/functions").await;
    assert_eq!(status, 303);
    let id = reader.split('.').next().unwrap();
    let r = client()
        .delete(server.at(&format!("/v1/keys/{id}")))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _) = page(&server, &read_session, "/ui/functions").await;
        if status == 303 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked key's session still works"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Logging out clears the cookie; the page's assets are served from the binary.
    let (_, echo) = page(&server, &session, "/ui/functions/echo").await;
    let r = browser()
        .post(server.at("/ui/logout"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", csrf(&echo).as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let r = browser()
        .get(server.at("/ui/assets/wisp.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/css");
    let r = browser()
        .get(server.at("/ui/assets/htmx.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_usage_page_shows_the_month_by_function_and_the_quota() {
    let server = server();
    deploy_fixture(&server, "echo", "event-kit", json!({ "kind": "event" })).await;
    let session = log_in(&server, wisp_test_support::TEST_ADMIN_KEY).await;
    let (status, usage) = page(&server, &session, "/ui/usage").await;
    assert_eq!(status, 200);
    assert!(usage.contains(r#"<p class="empty">No quota"#), "{usage}");
    assert!(usage.contains("Nothing ran this month yet."), "{usage}");

    let r = client()
        .patch(server.at("/v1/namespaces/default"))
        .json(&json!({ "quota": { "requests": 4 } }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    for _ in 0..2 {
        let r = client()
            .post(server.at("/v1/functions/echo/invoke"))
            .json(&json!({ "action": "hello" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Usage is rolled up from invocation records, written in batches.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let usage = loop {
        let (_, usage) = page(&server, &session, "/ui/usage").await;
        if usage.contains(r#"<tr data-function="echo"><td>echo</td><td class="num">2</td>"#) {
            break usage;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "echo's month never showed: {usage}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        usage.contains(r#"<tr><td>requests</td><td class="num">2</td><td class="num">4</td><td class="num">50%</td></tr>"#),
        "{usage}"
    );
}

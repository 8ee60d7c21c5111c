//! The dashboard's API keys page (admin keys only: create with the token shown once,
//! revoke, a revoke of the session's own key ending it), its async events page
//! (across functions, filtered, a page at a time) and the `Secure` attribute its
//! cookies get over TLS only, over real HTTP as a browser without JavaScript uses them.

use crate::listener::write_cert;
use crate::tenancy::create_key;
use crate::ui::{browser, csrf, encode, log_in, page, post};
use crate::util::{bin, client, deploy_fixture, get_json, server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wisp_test_support::{TEST_ADMIN_KEY, TestServer};

/// `POST path` with the session and `form`: status and where it leads.
async fn post_to(server: &TestServer, session: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = browser()
        .post(server.at(path))
        .header("cookie", session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(form))
        .send()
        .await
        .unwrap();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), location)
}

async fn new_namespace(server: &TestServer, name: &str) {
    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

async fn keys(server: &TestServer) -> Vec<Value> {
    get_json(server, "/v1/keys").await["keys"]
        .as_array()
        .unwrap()
        .clone()
}

/// The ids of the rows a page's table shows, in order (`<tr data-ATTR="ID">`).
fn rows(html: &str, attr: &str) -> Vec<String> {
    let marker = format!(r#"<tr data-{attr}=""#);
    html.split(&marker)
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

/// A link of the pager (`rel="next"`, …), unescaped.
fn link(html: &str, rel: &str) -> Option<String> {
    let end = html.find(&format!(r#"" rel="{rel}""#))?;
    let start = html[..end].rfind(r#"href=""#)? + 6;
    Some(html[start..end].replace("&#38;", "&").replace("&amp;", "&"))
}

#[tokio::test]
async fn the_keys_page_creates_a_key_shown_once_and_revokes_for_admins_only() {
    let server = server();
    new_namespace(&server, "other").await;
    let deployer = create_key(&server, "default", "deploy", None).await;
    let reader = create_key(&server, "default", "read", None).await;
    let outsider = create_key(&server, "other", "read", Some("30d")).await;
    let admin = log_in(&server, TEST_ADMIN_KEY).await;

    // An admin sees every namespace's keys, with their namespace, role and status.
    let (status, list) = page(&server, &admin, "/ui/keys").await;
    assert_eq!(status, 200);
    assert!(
        list.contains(r#"<a href="/ui/keys" aria-current="page">Keys</a>"#),
        "{list}"
    );
    let outsider_id = outsider.split('.').next().unwrap();
    let shown = rows(&list, "key");
    for key in [&deployer, &reader, &outsider] {
        let id = key.split('.').next().unwrap();
        assert!(shown.iter().any(|s| s == id), "{id} in {shown:?}");
        assert!(
            !list.contains(key.split('.').nth(1).unwrap()),
            "never a key's secret"
        );
    }
    let row = &list[list.find(&format!(r#"<tr data-key="{outsider_id}">"#)).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    for cell in ["<td>other</td>", "<td>read</td>", ">active<", "/ui/keys/"] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    assert!(list.contains(r#"id="create-key""#));
    // Filtered to one namespace, as GET /v1/keys?namespace= is.
    let (_, others) = page(&server, &admin, "/ui/keys?namespace=other").await;
    assert_eq!(rows(&others, "key"), [outsider_id]);
    let (status, _) = page(&server, &admin, "/ui/keys?namespace=Not_A_Name").await;
    assert_eq!(status, 400);

    // Other roles: no link, and 403 on the page and on its posts (even with a token).
    for key in [&deployer, &reader, &outsider] {
        let session = log_in(&server, key).await;
        let (_, functions) = page(&server, &session, "/ui/functions").await;
        assert!(!functions.contains(r#"href="/ui/keys""#), "{functions}");
        let (status, _) = page(&server, &session, "/ui/keys").await;
        assert_eq!(status, 403);
        let token = csrf(&functions);
        let (status, _) = post(
            &server,
            &session,
            "/ui/keys",
            &[("csrf", &token), ("namespace", "default"), ("role", "admin")],
        )
        .await;
        assert_eq!(status, 403, "a non-admin creates no key");
        let (status, _) = post(
            &server,
            &session,
            &format!("/ui/keys/{outsider_id}/revoke"),
            &[("csrf", &token)],
        )
        .await;
        assert_eq!(status, 403, "a non-admin revokes no key");
    }
    let before = keys(&server).await.len();

    // Without the session's CSRF token: refused, nothing made or revoked.
    let token = csrf(&list);
    let (status, _) = post(
        &server,
        &admin,
        "/ui/keys",
        &[("namespace", "default"), ("role", "read")],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post(&server, &admin, &format!("/ui/keys/{outsider_id}/revoke"), &[]).await;
    assert_eq!(status, 403);
    // Bad input: 400, a well-formed id that is no key: 404.
    for form in [
        [("namespace", "default"), ("role", "owner"), ("expires_in", "")],
        [("namespace", "Not_A_Name"), ("role", "read"), ("expires_in", "")],
        [("namespace", "default"), ("role", "read"), ("expires_in", "soon")],
    ] {
        let mut form = form.to_vec();
        form.push(("csrf", &token));
        let (status, _) = post(&server, &admin, "/ui/keys", &form).await;
        assert_eq!(status, 400, "{form:?}");
    }
    let (status, _) = post(
        &server,
        &admin,
        "/ui/keys",
        &[("csrf", &token), ("namespace", "nowhere"), ("role", "read")],
    )
    .await;
    assert_eq!(status, 404, "no such namespace");
    let (status, _) = post(&server, &admin, "/ui/keys/nope/revoke", &[("csrf", &token)]).await;
    assert_eq!(status, 400);
    let (status, _) = post(
        &server,
        &admin,
        "/ui/keys/WKAAAAAAAAAAAAAAAA/revoke",
        &[("csrf", &token)],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(keys(&server).await.len(), before);

    // Create: post, redirect, get. The token is shown once; a reload shows it no more
    // and makes no second key.
    let (status, to) = post_to(
        &server,
        &admin,
        "/ui/keys",
        &[
            ("csrf", &token),
            ("namespace", "other"),
            ("role", "deploy"),
            ("name", "ci"),
            ("expires_in", "30d"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert!(to.starts_with("/ui/keys?created="), "{to}");
    let (status, shown) = page(&server, &admin, &to).await;
    assert_eq!(status, 200);
    let at = shown.find(r#"<pre id="new-token">"#).expect("the token is shown") + 20;
    let new_token = shown[at..at + shown[at..].find("</pre>").unwrap()].to_string();
    let new_id = new_token.split('.').next().unwrap().to_string();
    assert!(shown.contains(&format!("Key {new_id} created")), "{shown}");
    let (_, again) = page(&server, &admin, &to).await;
    assert!(
        !again.contains(&new_token) && !again.contains("new-token"),
        "shown twice"
    );
    assert!(again.contains(r#"id="token-gone""#), "{again}");
    let listed = keys(&server).await;
    assert_eq!(listed.len(), before + 1, "one key made");
    let made = listed.iter().find(|k| k["id"] == new_id.as_str()).unwrap();
    assert_eq!(
        (&made["namespace"], &made["role"], &made["name"]),
        (&json!("other"), &json!("deploy"), &json!("ci"))
    );
    assert!(made["expires_at"].is_string(), "{made}");
    // The token works: as a bearer key, in its namespace.
    let r = wisp_test_support::keyed_client(&new_token)
        .get(server.at("/v1/functions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Another key's session never sees the token kept for this one.
    let admin_two = create_key(&server, "default", "admin", None).await;
    let second_admin = log_in(&server, &admin_two).await;
    let (_, theirs) = page(&server, &second_admin, &to).await;
    assert!(!theirs.contains("new-token"), "{theirs}");

    // Revoke: the key is refused at once.
    let (status, to) = post_to(
        &server,
        &admin,
        &format!("/ui/keys/{new_id}/revoke"),
        &[("csrf", &token)],
    )
    .await;
    assert_eq!(
        (status, to.as_str()),
        (303, format!("/ui/keys?revoked={new_id}").as_str())
    );
    let r = wisp_test_support::keyed_client(&new_token)
        .get(server.at("/v1/functions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (_, list) = page(&server, &admin, "/ui/keys").await;
    let row = &list[list.find(&format!(r#"<tr data-key="{new_id}">"#)).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains(">revoked<") && !row.contains("<form"), "{row}");
    let audit = get_json(&server, "/v1/audit?namespace=other").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == new_id.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["key.revoke", "key.create"], "{audit}");

    // Revoking the session's own key ends the session: the next page is the login.
    let (_, list) = page(&server, &second_admin, "/ui/keys").await;
    let own = admin_two.split('.').next().unwrap();
    assert!(list.contains("(ends this session)"), "{list}");
    let (status, to) = post_to(
        &server,
        &second_admin,
        &format!("/ui/keys/{own}/revoke"),
        &[("csrf", &csrf(&list))],
    )
    .await;
    assert_eq!((status, to.as_str()), (303, "/ui/login"));
    let r = browser()
        .get(server.at("/ui/keys"))
        .header("cookie", &second_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["location"].to_str().unwrap()),
        (303, "/ui/login")
    );

    // Pages of 100: a namespace of 105 keys, newest first, over two pages.
    new_namespace(&server, "many").await;
    let mut made = Vec::new();
    for _ in 0..105 {
        let token = create_key(&server, "many", "read", None).await;
        made.push(token.split('.').next().unwrap().to_string());
    }
    let (_, first) = page(&server, &admin, "/ui/keys?namespace=many").await;
    let first_rows = rows(&first, "key");
    assert_eq!(first_rows.len(), 100);
    assert_eq!(first_rows[0], made[104], "newest first");
    let next = link(&first, "next").expect("a next page");
    assert_eq!(next, "/ui/keys?namespace=many&page=2");
    let (_, second) = page(&server, &admin, &next).await;
    let second_rows = rows(&second, "key");
    assert_eq!(second_rows.len(), 5);
    let mut all: Vec<String> = first_rows.into_iter().chain(second_rows).collect();
    all.sort();
    made.sort();
    assert_eq!(all, made, "every key once");
    assert!(link(&second, "next").is_none());
    assert_eq!(
        link(&second, "prev").as_deref(),
        Some("/ui/keys?namespace=many&page=1")
    );
}

/// Invokes `name` asynchronously with `payload`; the event's id.
async fn invoke_async(server: &TestServer, name: &str, payload: Value) -> String {
    let r = client()
        .post(server.at(&format!("/v1/functions/{name}/invoke")))
        .header("x-wisp-invocation-type", "event")
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let event: Value = r.json().await.unwrap();
    event["id"].as_str().unwrap().to_string()
}

/// Waits until the event is no longer pending; its status.
async fn settled(server: &TestServer, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let event = get_json(server, &format!("/v1/invocations/{id}")).await;
        let status = event["status"].as_str().unwrap_or_default().to_string();
        if status == "succeeded" || status == "failed" {
            return status;
        }
        assert!(Instant::now() < deadline, "event {id} still {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_events_page_shows_the_backlog_and_a_functions_events_by_status_and_page() {
    let server = server();
    for name in ["echo", "other-fn"] {
        deploy_fixture(
            &server,
            name,
            "event-kit",
            json!({ "kind": "event", "max_retries": 0 }),
        )
        .await;
    }
    let admin = log_in(&server, TEST_ADMIN_KEY).await;
    let (status, empty) = page(&server, &admin, "/ui/events").await;
    assert_eq!(status, 200);
    assert!(
        empty.contains("Nothing is queued, running or dead") && empty.contains("wisp invoke NAME --async"),
        "{empty}"
    );

    let failed = invoke_async(&server, "echo", json!({ "action": "exit", "code": 3 })).await;
    let succeeded = invoke_async(&server, "other-fn", json!({ "action": "hello", "name": "Ada" })).await;
    assert_eq!(settled(&server, &failed).await, "failed");
    assert_eq!(settled(&server, &succeeded).await, "succeeded");

    // The backlog: echo has a dead letter; other-fn has nothing queued, running or dead.
    let (status, list) = page(&server, &admin, "/ui/events").await;
    assert_eq!(status, 200);
    assert!(
        list.contains(r#"<a href="/ui/events" aria-current="page">Events</a>"#),
        "{list}"
    );
    assert_eq!(rows(&list, "function"), ["echo"]);
    assert!(
        list.contains(r#"<a href="/ui/events?function=echo&amp;status=failed">1</a>"#),
        "{list}"
    );

    // A function's events, by status (pending by default).
    let (_, dead) = page(&server, &admin, "/ui/events?function=echo&status=failed").await;
    assert_eq!(rows(&dead, "event"), std::slice::from_ref(&failed));
    let row = &dead[dead.find(&format!(r#"<tr data-event="{failed}">"#)).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains(r#"href="/ui/functions/echo/dead-letters""#), "{row}");
    assert!(row.contains(r#"<td class="num">1</td>"#), "one attempt: {row}");
    let last_error = get_json(&server, &format!("/v1/invocations/{failed}")).await["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        row.contains(&format!(r#"<td class="bad">{last_error}</td>"#)),
        "{last_error} in {row}"
    );
    let (_, done) = page(&server, &admin, "/ui/events?function=other-fn&status=succeeded").await;
    assert_eq!(rows(&done, "event"), std::slice::from_ref(&succeeded));
    let row = &done[done.find(&format!(r#"<tr data-event="{succeeded}">"#)).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains(">succeeded<") && !row.contains("dead-letters"),
        "{row}"
    );
    let (_, none) = page(&server, &admin, "/ui/events?function=other-fn").await;
    assert!(
        rows(&none, "event").is_empty() && none.contains("No pending events of <code>other-fn</code>"),
        "{none}"
    );
    // Bad input: 400; a function that is not there: 404.
    for (path, want) in [
        ("/ui/events?status=bogus", 400),
        ("/ui/events?function=Not_A_Name", 400),
        ("/ui/events?function=echo&after=garbage", 400),
        ("/ui/events?function=nosuch", 404),
    ] {
        let (status, _) = page(&server, &admin, path).await;
        assert_eq!(status, want, "{path}");
    }

    // Roles as the API's: a read key sees the page, an invoke key may not read.
    let reader = log_in(&server, &create_key(&server, "default", "read", None).await).await;
    let (status, read) = page(&server, &reader, "/ui/events?function=echo&status=failed").await;
    assert_eq!(status, 200);
    assert_eq!(rows(&read, "event").len(), 1);
    let invoker = log_in(&server, &create_key(&server, "default", "invoke", None).await).await;
    let (status, _) = page(&server, &invoker, "/ui/events").await;
    assert_eq!(status, 403);
    // Another namespace's key sees none of these events, nor the function.
    new_namespace(&server, "other").await;
    let outsider = log_in(&server, &create_key(&server, "other", "deploy", None).await).await;
    let (status, outside) = page(&server, &outsider, "/ui/events").await;
    assert_eq!(status, 200);
    assert!(rows(&outside, "function").is_empty(), "{outside}");
    assert!(
        !outside.contains(&failed) && !outside.contains("other-fn"),
        "{outside}"
    );
    let (status, _) = page(&server, &outsider, "/ui/events?function=echo&status=failed").await;
    assert_eq!(status, 404);

    // Pages of 100 by the store's cursor: 104 successes of echo over two pages, each once.
    let mut made = Vec::new();
    for n in 0..104 {
        made.push(
            invoke_async(
                &server,
                "echo",
                json!({ "action": "hello", "name": n.to_string() }),
            )
            .await,
        );
    }
    for id in &made {
        assert_eq!(settled(&server, id).await, "succeeded");
    }
    let path = "/ui/events?function=echo&status=succeeded";
    let (_, first) = page(&server, &admin, path).await;
    let first_rows = rows(&first, "event");
    assert_eq!(first_rows.len(), 100);
    assert_eq!(first_rows[0], made[103], "newest first");
    let next = link(&first, "next").expect("a next page");
    assert!(
        next.starts_with("/ui/events?function=echo&status=succeeded&after="),
        "{next}"
    );
    let (status, second) = page(&server, &admin, &next).await;
    assert_eq!(status, 200);
    let second_rows = rows(&second, "event");
    assert_eq!(second_rows.len(), 4);
    assert!(link(&second, "next").is_none());
    assert_eq!(link(&second, "first").as_deref(), Some(path));
    let mut all: Vec<String> = first_rows.into_iter().chain(second_rows).collect();
    all.sort();
    made.sort();
    assert_eq!(all, made, "every event once");
}

/// The `Set-Cookie` of a login with the admin key through `client`.
async fn login_cookie(client: &reqwest::Client, server: &TestServer) -> String {
    let r = client
        .post(server.at("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("key", TEST_ADMIN_KEY)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    r.headers()["set-cookie"].to_str().unwrap().to_string()
}

/// The `Set-Cookie` of switching to namespace `other` with `session`.
async fn switch_cookie(client: &reqwest::Client, server: &TestServer, session: &str) -> String {
    let r = client
        .get(server.at("/ui/functions"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    let token = csrf(&r.text().await.unwrap());
    let r = client
        .post(server.at("/ui/namespace"))
        .header("cookie", session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", &token), ("namespace", "other")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    r.headers()["set-cookie"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn the_dashboards_cookies_are_secure_over_tls_only() {
    // Plain HTTP: no Secure (a browser would drop the cookie on http://localhost).
    let plain = server();
    new_namespace(&plain, "other").await;
    let cookie = login_cookie(&browser(), &plain).await;
    assert!(!cookie.contains("Secure"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let switched = switch_cookie(&browser(), &plain, &session).await;
    assert!(
        switched.starts_with("wisp_namespace=other;") && !switched.contains("Secure"),
        "{switched}"
    );

    // Behind --tls-cert: both cookies are Secure, and still HttpOnly and Strict.
    let dir = tempfile::tempdir().unwrap();
    let cert = write_cert(dir.path());
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let tls = TestServer::serve_with(
        bin(),
        &[
            "--tls-cert",
            cert_file.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
        ],
    );
    assert!(tls.url.starts_with("https://"), "{}", tls.url);
    let _ = client(); // installs the crypto provider
    let trusting = reqwest::Client::builder()
        .tls_certs_only([cert])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let created = trusting
        .post(tls.at("/v1/namespaces"))
        .bearer_auth(TEST_ADMIN_KEY)
        .json(&json!({ "name": "other" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let cookie = login_cookie(&trusting, &tls).await;
    for attribute in ["; Secure", "HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_string();
    let switched = switch_cookie(&trusting, &tls, &session).await;
    assert!(
        switched.starts_with("wisp_namespace=other;") && switched.contains("; Secure"),
        "{switched}"
    );
    let r = trusting
        .post(tls.at("/ui/logout"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[(
            "csrf",
            &csrf(&page_over(&trusting, &tls, &session).await),
        )]))
        .send()
        .await
        .unwrap();
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("; Secure"),
        "{cleared}"
    );
}

async fn page_over(client: &reqwest::Client, server: &TestServer, session: &str) -> String {
    client
        .get(server.at("/ui/functions"))
        .header("cookie", session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

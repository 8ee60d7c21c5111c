//! HTTP functions behind routes and the invoke API: the wasi:http path.

use crate::util::{client, deploy_fixture, expect_problem, http_config, logs_when, server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test]
async fn http_function_serves_its_routes_and_the_invoke_api() {
    let server = server();
    deploy_fixture(
        &server,
        "kit",
        "http-kit",
        http_config(json!([{"path": "/kit/*"}, {"path": "/hello"}])),
    )
    .await;
    let c = client();

    let r = c.get(server.at("/hello")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-wisp-invocation-id"));
    assert_eq!(r.text().await.unwrap(), "Hello, world!\n");

    // The guest sees the request as sent: method, path, query, headers, body.
    let r = c
        .put(server.at("/kit/info?a=1&b=two"))
        .header("x-custom", "yes")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["method"], "PUT");
    assert_eq!(info["path"], "/kit/info");
    assert_eq!(info["query"], "a=1&b=two");
    assert_eq!(info["headers"]["x-custom"], "yes");
    assert_eq!(info["body"], "payload");

    // The invoke API sends the payload as `POST /`.
    let r = c
        .post(server.at("/v1/functions/kit/invoke"))
        .body(r#"{"x":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    assert_eq!(
        (info["method"].as_str(), info["path"].as_str()),
        (Some("POST"), Some("/"))
    );
    assert_eq!(info["body"], r#"{"x":1}"#);
    assert_eq!(info["headers"]["content-type"], "application/json");

    // The guest's own status codes pass through.
    let r = c.get(server.at("/kit/status?code=418")).send().await.unwrap();
    assert_eq!(r.status(), 418);
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let server = server();
    deploy_fixture(&server, "kit", "http-kit", http_config(json!(["/kit/*"]))).await;
    let c = client();

    // A 1 MiB request body comes back byte for byte.
    let payload: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let r = c
        .post(server.at("/kit/echo"))
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), payload.as_slice());

    // The first chunk arrives long before the last one is written.
    let started = Instant::now();
    let mut r = c
        .get(server.at("/kit/stream?chunks=3&delay_ms=300"))
        .send()
        .await
        .unwrap();
    let first = r.chunk().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert_eq!(first.as_ref(), b"chunk 0\n");
    let mut rest = Vec::new();
    while let Some(chunk) = r.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"chunk 1\nchunk 2\n");
    assert!(
        first_at + Duration::from_millis(400) < started.elapsed(),
        "first chunk at {first_at:?}, end at {:?}: the response was buffered",
        started.elapsed()
    );
}

#[tokio::test]
async fn routes_match_methods_and_unknown_paths_get_problems() {
    let server = server();
    deploy_fixture(
        &server,
        "kit",
        "http-kit",
        http_config(json!([{"path": "/items/:id", "methods": ["GET", "DELETE"]}])),
    )
    .await;
    let c = client();
    assert_eq!(c.get(server.at("/items/7")).send().await.unwrap().status(), 200);

    let r = c.post(server.at("/items/7")).send().await.unwrap();
    assert_eq!(r.headers()["allow"], "DELETE, GET");
    expect_problem(r, 405, "method_not_allowed").await;

    let r = c.get(server.at("/nothing/here")).send().await.unwrap();
    expect_problem(r, 404, "route_not_found").await;

    // Reserved prefixes are never routed to functions: the dashboard's pages are
    // HTML, the rest problem documents.
    let r = c.get(server.at("/ui/x")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let r = c.get(server.at("/2018-06-01/x")).send().await.unwrap();
    expect_problem(r, 404, "not_found").await;
    let r = c.get(server.at("/v1/nope")).send().await.unwrap();
    expect_problem(r, 404, "not_found").await;
}

#[tokio::test]
async fn guest_output_becomes_logs_with_the_invocation_id() {
    let server = server();
    deploy_fixture(&server, "kit", "http-kit", http_config(json!(["/kit/*"]))).await;
    let c = client();
    let r = c.get(server.at("/kit/log")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-wisp-invocation-id"].to_str().unwrap().to_string();

    // Logs are written in the background.
    let query = format!("/v1/functions/kit/logs?invocation={id}");
    let lines = logs_when(&server, &query, |lines| lines.len() >= 2).await;
    let text: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["stream"].as_str().unwrap(), l["line"].as_str().unwrap()))
        .collect();
    assert!(text.contains(&("stdout", "hello from stdout")), "{lines:?}");
    assert!(text.contains(&("stderr", "hello from stderr")), "{lines:?}");
    assert!(lines.iter().all(|l| l["invocation_id"] == id.as_str()));
    // Guest output never reaches the server's own stdout or stderr.
    assert!(!server.stdout().contains("hello from"), "{}", server.stdout());
    assert!(!server.stderr().contains("hello from"), "{}", server.stderr());
}

/// Issue 12: a third-party wasi:http component deployed with `routes = ["/*"]`
/// answered `route_not_found` at `/`, where `wasmtime serve` runs it.
#[tokio::test]
async fn issue_12_a_wildcard_route_answers_its_prefix_too() {
    let server = server();
    deploy_fixture(&server, "site", "http-kit", http_config(json!(["/*"]))).await;
    deploy_fixture(&server, "files", "http-kit", http_config(json!(["/files/*"]))).await;
    let c = client();
    for (path, action_path) in [("/", "/"), ("/files", "/files"), ("/files/", "/files/")] {
        let r = c.get(server.at(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let info: Value = r.json().await.unwrap();
        assert_eq!(info["path"], action_path, "{path}");
    }
    let r = c.get(server.at("/files/hello")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "Hello, world!\n");
    let r = c.get(server.at("/any/where/hello")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "Hello, world!\n");
}

/// A guest's outgoing HTTP request goes through the services seam and is refused
/// with wasi:http's `HTTP-request-denied` before anything is connected: nothing is
/// granted by default. The fixture sends its GET with wstd's `Body::empty()`, as
/// guests usually do; the host used to drop that body at once, and the guest saw
/// `connection reset` instead of the refusal.
#[tokio::test]
async fn outgoing_http_is_denied_by_default() {
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    upstream.set_nonblocking(true).unwrap();
    let port = upstream.local_addr().unwrap().port();
    let server = server();
    deploy_fixture(&server, "kit", "http-kit", http_config(json!(["/kit/*"]))).await;
    let url = format!("/kit/fetch?url=http%3A%2F%2F127.0.0.1%3A{port}%2Fsecret");
    let r = client().get(server.at(&url)).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let answer: Value = r.json().await.unwrap();
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.contains("HttpRequestDenied"), "{answer}");
    match upstream.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the denied request reached the upstream: {other:?}"),
    }
}

/// Creates namespace `name` and deploys `event-kit` into it as `hello` on
/// `/hello/:action`, with `NS` in its environment to tell the copies apart.
/// (Needs the identity layer: an admin key and `Wisp-Namespace`.)
async fn deploy_hello_in(server: &wisp_test_support::TestServer, namespace: &str) {
    let c = client();
    if namespace != "default" {
        let r = c
            .post(server.at("/v1/namespaces"))
            .json(&json!({"name": namespace}))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "creating namespace {namespace}: {}",
            r.status()
        );
    }
    let config = json!({"kind": "event", "env": {"NS": namespace}, "routes": ["/hello/:action"]});
    let form = reqwest::multipart::Form::new()
        .part(
            "config",
            reqwest::multipart::Part::bytes(serde_json::to_vec(&config).unwrap())
                .mime_str("application/json")
                .unwrap(),
        )
        .part(
            "code",
            reqwest::multipart::Part::bytes(wisp_test_support::fixture_bytes("event-kit"))
                .file_name("code.wasm"),
        );
    let r = c
        .put(server.at("/v1/functions/hello"))
        .header("wisp-namespace", namespace)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(
        status,
        201,
        "deploying hello in {namespace}: {}",
        r.text().await.unwrap()
    );
}

/// Which namespace's `hello` answered a request.
async fn answered_by(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    let env: Value = response.json().await.unwrap();
    env["NS"].as_str().unwrap_or_default().to_string()
}

/// Two namespaces each serve `/hello`: `default` at the root, others under `/@N/` and
/// at `N.<domain>`; an unknown namespace is "no route" like any unknown path.
#[tokio::test]
async fn namespaces_each_have_their_routes_by_path_prefix_and_by_host() {
    let server = crate::util::server_with(&["--domain", "example.com"]);
    for namespace in ["default", "team", "other"] {
        deploy_hello_in(&server, namespace).await;
    }
    let c = client();
    // The default namespace at the root, as ever; the bare domain is the default too.
    assert_eq!(
        answered_by(c.get(server.at("/hello/env")).send().await.unwrap()).await,
        "default"
    );
    let r = c
        .get(server.at("/hello/env"))
        .header("host", "example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(answered_by(r).await, "default");
    for namespace in ["team", "other"] {
        // By the path prefix, which the function does not see.
        let r = c
            .get(server.at(&format!("/@{namespace}/hello/echo?x=1")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let event: Value = r.json().await.unwrap();
        assert_eq!(event["rawPath"], "/hello/echo");
        assert_eq!(event["rawQueryString"], "x=1");
        assert_eq!(event["headers"]["x-forwarded-prefix"], format!("/@{namespace}"));
        let r = c
            .get(server.at(&format!("/@{namespace}/hello/env")))
            .send()
            .await
            .unwrap();
        assert_eq!(answered_by(r).await, namespace);
        // By the host.
        let r = c
            .get(server.at("/hello/env"))
            .header("host", format!("{namespace}.example.com"))
            .send()
            .await
            .unwrap();
        assert_eq!(answered_by(r).await, namespace);
    }
    // An unknown namespace is just an unknown route.
    let r = c.get(server.at("/@nobody/hello/env")).send().await.unwrap();
    let doc = expect_problem(r, 404, "route_not_found").await;
    assert_eq!(doc["detail"], "no route matches `/@nobody/hello/env`");
    let r = c
        .get(server.at("/hello/env"))
        .header("host", "nobody.example.com")
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "route_not_found").await;
}

/// Without a domain, hosts mean nothing, and a namespace with no routes is "no route"
/// like any other path.
#[tokio::test]
async fn without_a_domain_hosts_reach_the_default_namespace() {
    let server = server();
    deploy_fixture(&server, "kit", "http-kit", http_config(json!(["/kit/*"]))).await;
    let c = client();
    let r = c
        .get(server.at("/kit/info"))
        .header("host", "team.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(server.at("/@team/kit/info")).send().await.unwrap();
    let doc = expect_problem(r, 404, "route_not_found").await;
    assert_eq!(doc["detail"], "no route matches `/@team/kit/info`");
    // The default namespace by name.
    let r = c.get(server.at("/@default/kit/info")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["path"], "/kit/info");
    assert_eq!(info["headers"]["x-forwarded-prefix"], "/@default");
}

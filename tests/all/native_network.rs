//! What a native function can reach: in a network namespace of its own (Wisp as
//! root), only its Runtime API, Wisp's services through the forwarded port (S3 and
//! `/v1/kv`, each only by grant) and, through the proxy it is given, the hosts it is
//! granted; not Wisp's control API, not another local port, not the outside.

use crate::native::{deploy_kit, invoke_ok, is_root};
use crate::util::{client, python_package, server};
use serde_json::{Value, json};
use std::io::{Read, Write};
use wisp_test_support::TestServer;

/// A loopback HTTP server answering every request `200 hello from PATH` until the
/// test ends; its address.
fn http_server() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("?").to_string();
                let body = format!("hello from {path}");
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    addr
}

fn s3_addr(server: &TestServer) -> String {
    let url = server.s3_url.as_deref().expect("the test server serves S3");
    url.split_once("://").unwrap().1.trim_end_matches('/').to_string()
}

#[tokio::test]
async fn a_native_instance_reaches_only_its_runtime_api_its_services_and_granted_hosts() {
    let server = server();
    if !is_root() {
        // Without root there is no namespace: the server says so at start.
        assert!(
            server
                .stderr_containing("NOT isolated")
                .contains("the host's network, NOT isolated"),
            "{}",
            server.stderr()
        );
        return;
    }
    let granted = http_server();
    let other = http_server();
    deploy_kit(
        &server,
        "netkit",
        json!({"outbound": [format!("http://{granted}")]}),
    )
    .await;
    let env = invoke_ok(&server, "netkit", json!({"action": "env"})).await;
    assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:9001", "{env}");
    assert_eq!(env["AWS_ENDPOINT_URL_S3"], "http://127.0.0.1:9002", "{env}");
    assert_eq!(env["WISP_KV_URL"], "http://127.0.0.1:9002/v1/kv", "{env}");
    assert_eq!(env["HTTPS_PROXY"], "http://127.0.0.1:9003", "{env}");

    // Direct connections: Wisp's control API, its S3 listener from outside, another
    // local port, an outside address — none is reachable.
    let targets = [
        server.addr().to_string(),
        s3_addr(&server),
        other.to_string(),
        "10.255.255.1:80".to_string(),
        "[::1]:22".to_string(),
    ];
    let reached = invoke_ok(&server, "netkit", json!({"action": "reach", "targets": targets})).await;
    for target in &targets {
        assert_ne!(reached[target], "connected", "{target} was reachable: {reached}");
    }
    // Its own namespace's ports are there.
    let own = invoke_ok(
        &server,
        "netkit",
        json!({"action": "reach", "targets": ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"]}),
    )
    .await;
    assert!(
        own.as_object().unwrap().values().all(|v| v == "connected"),
        "{own}"
    );

    // The services port leads to Wisp's S3 listener (an unsigned request is refused by S3).
    let s3 = invoke_ok(
        &server,
        "netkit",
        json!({"action": "fetch", "url": "http://127.0.0.1:9002/"}),
    )
    .await;
    assert_eq!(s3["status"], 403, "{s3}");
    assert!(s3["body"].as_str().unwrap().contains("AccessDenied"), "{s3}");
    // ...and nothing of the control API is served there.
    let control = invoke_ok(
        &server,
        "netkit",
        json!({"action": "fetch", "url": "http://127.0.0.1:9002/v1/functions"}),
    )
    .await;
    assert_ne!(control["status"], 200, "{control}");

    // Through the proxy: the granted host answers, another port does not.
    let fetched = invoke_ok(
        &server,
        "netkit",
        json!({"action": "fetch", "url": format!("http://{granted}/granted")}),
    )
    .await;
    assert_eq!(fetched["status"], 200, "{fetched}");
    assert_eq!(fetched["body"], "hello from /granted", "{fetched}");
    let refused = invoke_ok(
        &server,
        "netkit",
        json!({"action": "fetch", "url": format!("http://{other}/other")}),
    )
    .await;
    assert_eq!(refused["status"], 403, "{refused}");
    let control = invoke_ok(
        &server,
        "netkit",
        json!({"action": "fetch", "url": server.at("/v1/functions")}),
    )
    .await;
    assert_eq!(
        control["status"], 403,
        "the control API through the proxy: {control}"
    );
}

#[tokio::test]
async fn a_native_function_reaches_only_the_buckets_it_is_granted_with_their_access() {
    let server = server();
    let c = client();
    for bucket in ["inbox", "secret-stuff"] {
        let r = c
            .put(server.at(&format!("/v1/buckets/{bucket}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = c
            .put(server.at(&format!("/v1/buckets/{bucket}/objects/note.txt")))
            .body(format!("in {bucket}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let boto3 = python_package("boto3==1.44.5");
    deploy_kit(
        &server,
        "reader",
        json!({
            "buckets": ["inbox:read"],
            "env": {"PYTHONPATH": boto3.to_str().unwrap()},
        }),
    )
    .await;
    let call = |event: Value| invoke_ok(&server, "reader", event);
    let got = call(json!({"action": "s3", "op": "get", "bucket": "inbox", "key": "note.txt"})).await;
    assert_eq!(got["ok"], "in inbox", "{got}");
    let listed = call(json!({"action": "s3", "op": "list", "bucket": "inbox"})).await;
    assert_eq!(listed["ok"], json!(["note.txt"]), "{listed}");
    let put = call(json!({"action": "s3", "op": "put", "bucket": "inbox", "key": "x", "body": "no"})).await;
    assert_eq!(put["error"], "AccessDenied", "a read grant does not write: {put}");
    let other = call(json!({"action": "s3", "op": "get", "bucket": "secret-stuff", "key": "note.txt"})).await;
    assert_eq!(other["error"], "AccessDenied", "an ungranted bucket: {other}");
    let buckets = call(json!({"action": "s3", "op": "buckets"})).await;
    assert_eq!(
        buckets["ok"],
        json!(["inbox"]),
        "only granted buckets are listed: {buckets}"
    );
}

#[tokio::test]
async fn a_native_function_with_no_grants_reaches_no_bucket() {
    let server = server();
    let r = client().put(server.at("/v1/buckets/inbox")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let boto3 = python_package("boto3==1.44.5");
    deploy_kit(
        &server,
        "nothing",
        json!({"env": {"PYTHONPATH": boto3.to_str().unwrap()}}),
    )
    .await;
    let put = invoke_ok(
        &server,
        "nothing",
        json!({"action": "s3", "op": "put", "bucket": "inbox", "key": "x", "body": "no"}),
    )
    .await;
    assert_eq!(put["error"], "AccessDenied", "{put}");
}

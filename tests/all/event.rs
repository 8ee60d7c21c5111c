//! Event functions (WASI command programs), invoked directly and behind routes as
//! API Gateway v2 events.

use crate::util::{client, deploy_fixture, expect_problem, server};
use serde_json::{Value, json};

#[tokio::test]
async fn p1_modules_and_p2_commands_both_run_as_event_functions() {
    let server = server();
    deploy_fixture(
        &server,
        "kit",
        "event-kit",
        json!({"kind": "event", "env": {"GREETING": "hi"}}),
    )
    .await;
    deploy_fixture(&server, "cmd", "event-cmd", json!({"kind": "event"})).await;
    let c = client();
    for name in ["kit", "cmd"] {
        let r = c
            .post(server.at(&format!("/v1/functions/{name}/invoke")))
            .body(r#"{"action":"hello","name":"Ada"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.text().await.unwrap(), r#"{"message":"Hello, Ada!"}"#, "{name}");
    }
    // The function's env, and nothing of the server's.
    let r = c
        .post(server.at("/v1/functions/kit/invoke"))
        .body(r#"{"action":"env"}"#)
        .send()
        .await
        .unwrap();
    let env: Value = r.json().await.unwrap();
    assert_eq!(env["GREETING"], "hi");
    assert!(env.get("PATH").is_none() && env.get("HOME").is_none(), "{env}");
}

#[tokio::test]
async fn failures_are_function_errors() {
    let server = server();
    deploy_fixture(&server, "kit", "event-kit", json!({"kind": "event"})).await;
    deploy_fixture(&server, "cmd", "event-cmd", json!({"kind": "event"})).await;
    let c = client();
    let invoke = |name: &str, body: &'static str| {
        c.post(server.at(&format!("/v1/functions/{name}/invoke")))
            .body(body)
            .send()
    };
    let doc = expect_problem(
        invoke("kit", r#"{"action":"trap"}"#).await.unwrap(),
        502,
        "function_error",
    )
    .await;
    assert!(doc["detail"].as_str().unwrap().contains("trapped"), "{doc}");
    assert!(doc["invocation_id"].is_string());
    let doc = expect_problem(
        invoke("kit", r#"{"action":"exit","code":7}"#).await.unwrap(),
        502,
        "function_error",
    )
    .await;
    assert!(doc["detail"].as_str().unwrap().contains("status 7"), "{doc}");
    expect_problem(
        invoke("cmd", r#"{"action":"exit","code":7}"#).await.unwrap(),
        502,
        "function_error",
    )
    .await;
    expect_problem(invoke("kit", "not json").await.unwrap(), 502, "function_error").await;
    // Exit status 0 is success.
    let r = invoke("kit", r#"{"action":"exit","code":0}"#).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn routes_pass_api_gateway_v2_events_and_read_back_responses() {
    let server = server();
    deploy_fixture(
        &server,
        "kit",
        "event-kit",
        json!({"kind": "event", "routes": [{"path": "/e/:action", "methods": ["POST"]}, "/e/:action/*"]}),
    )
    .await;
    let c = client();

    // `echo` returns the event Wisp built.
    let r = c
        .post(server.at("/e/echo?x=1&x=2"))
        .header("cookie", "a=1; b=2")
        .header("content-type", "application/json")
        .body(r#"{"k":"v"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let event: Value = r.json().await.unwrap();
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "POST /e/{action}");
    assert_eq!(event["rawPath"], "/e/echo");
    assert_eq!(event["rawQueryString"], "x=1&x=2");
    assert_eq!(event["queryStringParameters"]["x"], "1,2");
    assert_eq!(event["pathParameters"]["action"], "echo");
    assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
    assert_eq!(event["requestContext"]["http"]["method"], "POST");
    assert_eq!(event["requestContext"]["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(event["requestContext"]["stage"], "$default");
    assert_eq!(event["body"], r#"{"k":"v"}"#);
    assert_eq!(event["isBase64Encoded"], false);

    // Binary bodies are base64; the wildcard is `proxy`.
    let r = c
        .get(server.at("/e/echo/a/b.bin"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 255])
        .send()
        .await
        .unwrap();
    let event: Value = r.json().await.unwrap();
    assert_eq!(event["routeKey"], "ANY /e/{action}/{proxy+}");
    assert_eq!(event["pathParameters"]["proxy"], "a/b.bin");
    assert_eq!(event["body"], "AP8=");
    assert_eq!(event["isBase64Encoded"], true);

    // Structured responses set status, headers and body.
    let r = c.post(server.at("/e/apigw")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-kit"], "yes");
    assert_eq!(r.text().await.unwrap(), "created");
    let r = c.post(server.at("/e/apigw_b64")).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &[0, 1, 2, 255]);
    // A bare JSON value is a 200 JSON response holding it.
    let r = c.post(server.at("/e/bare")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#""just a string""#);
    // Output that is not JSON is an invalid response.
    expect_problem(
        c.post(server.at("/e/garbage")).send().await.unwrap(),
        502,
        "invalid_response",
    )
    .await;
}

//! Function-to-function calls through `wisp:platform/functions` (one host call, no HTTP
//! request): the same grant, existence and payload checks, loop guard, deadline and
//! breaker as Lambda's Invoke at the platform address, with errors as the interface's
//! `call-error` (Wisp's code and a message). http-kit's `call?to=NAME&via=platform`
//! makes the call and answers the callee's answer, or 502 `{"code", "message"}`.

use crate::calls::{deploy_kit_fn, invocations};
use crate::util::{client, get_json, server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

/// `POST /{caller}/call?to={callee}&via=platform[&type=…]` with `payload`: status and body.
async fn call(server: &TestServer, caller: &str, callee: &str, extra: &str, payload: &str) -> (u16, String) {
    let r = client()
        .post(server.at(&format!("/{caller}/call?to={callee}&via=platform{extra}")))
        .body(payload.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A refused call's `{"code", "message"}` (the caller answers it 502).
fn refusal(status: u16, body: &str) -> (String, String) {
    assert_eq!(status, 502, "a refused call: {body}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (
        v["code"].as_str().unwrap().to_owned(),
        v["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_wasm_function_calls_another_through_wisp_platform() {
    let server = server();
    deploy_kit_fn(&server, "echoer", json!({"env": {"KIT_ACTION": "echo"}})).await;
    deploy_kit_fn(&server, "caller", json!({"invoke": ["echoer", "nobody"]})).await;
    deploy_kit_fn(&server, "stranger", json!({})).await;

    // The callee gets the payload as `POST /`'s body and its answer comes back whole.
    let (status, body) = call(&server, "caller", "echoer", "", "ping from caller").await;
    assert_eq!((status, body.as_str()), (200, "ping from caller"));
    let runs = invocations(&server, "echoer", 1).await;
    assert_eq!(runs.len(), 1, "metered to the callee: {runs:?}");
    // The caller ends after its callee: its record may land in a later batch.
    let callers = invocations(&server, "caller", 1).await;
    let caller_id = callers[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        runs[0]["parent"],
        caller_id.as_str(),
        "the call's parent is its caller's run: {runs:?}"
    );

    // A qualifier: `$LATEST`, and a version that does not exist.
    let (status, body) = call(&server, "caller", "echoer:%24LATEST", "", "q").await;
    assert_eq!((status, body.as_str()), (200, "q"));
    let (code, message) = {
        let (status, body) = call(&server, "caller", "echoer:7", "", "q").await;
        refusal(status, &body)
    };
    assert_eq!(code, "version_not_found", "{message}");

    // Not granted: refused first, whether or not the callee exists.
    for callee in ["echoer", "nobody"] {
        let (status, body) = call(&server, "stranger", callee, "", "{}").await;
        let (code, message) = refusal(status, &body);
        assert_eq!(code, "forbidden", "{message}");
        assert!(
            message.contains(&format!("not granted invoke of function `{callee}`")),
            "{message}"
        );
    }
    // Granted but never deployed.
    let (status, body) = call(&server, "caller", "nobody", "", "{}").await;
    assert_eq!(refusal(status, &body).0, "function_not_found", "{body}");
    // Names no function could have.
    for bad in ["Echoer", "echoer:", "echoer%3Aa%3Ab"] {
        let (status, body) = call(&server, "caller", bad, "", "{}").await;
        let (code, message) = refusal(status, &body);
        assert_eq!(code, "invalid_request", "{bad}: {message}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        invocations(&server, "echoer", 2).await.len(),
        2,
        "refused calls run nothing"
    );

    // Asynchronously: the event's id, then its run by the pipeline.
    let (status, body) = call(&server, "caller", "echoer", "&type=Event", "later").await;
    assert_eq!(status, 202, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!id.is_empty(), "{body}");
    assert_eq!(invocations(&server, "echoer", 3).await.len(), 3);
    let event = get_json(&server, &format!("/v1/invocations/{id}")).await;
    assert_eq!(event["function"], "echoer", "the id is the event's: {event}");
    assert_eq!(
        (event["source"].as_str(), event["chain_depth"].as_u64()),
        (Some("function:caller"), Some(1)),
        "{event}"
    );
}

#[tokio::test]
async fn a_platform_call_is_held_to_the_payload_limit() {
    let server = server();
    deploy_kit_fn(&server, "echoer", json!({"env": {"KIT_ACTION": "echo"}})).await;
    deploy_kit_fn(&server, "caller", json!({"invoke": ["echoer"], "memory_mb": 64})).await;
    // The async limit (1 MiB) is below the request's (6 MiB by default).
    let big = "x".repeat(1024 * 1024 + 1);
    let (status, body) = call(&server, "caller", "echoer", "&type=Event", &big).await;
    let (code, message) = refusal(status, &body);
    assert_eq!(code, "payload_too_large", "{message}");
    assert!(message.contains("at most 1048576"), "{message}");
}

#[tokio::test]
async fn a_platform_call_fails_fast_behind_an_open_breaker_and_is_cut_by_the_guards() {
    let server = server();
    let breaker = json!({"failure_rate": 0.5, "min_calls": 3, "window": "30s", "open_for": "1h"});
    deploy_kit_fn(
        &server,
        "flaky",
        json!({"env": {"KIT_ACTION": "trap"}, "breaker": breaker}),
    )
    .await;
    deploy_kit_fn(
        &server,
        "spinner",
        json!({"env": {"KIT_ACTION": "loop"}, "timeout": "30s"}),
    )
    .await;
    deploy_kit_fn(
        &server,
        "caller",
        json!({"invoke": ["flaky", "spinner"], "timeout": "500ms"}),
    )
    .await;

    // The callee's own failure is the call's error, with what it said.
    for _ in 0..3 {
        let (status, body) = call(&server, "caller", "flaky", "", "{}").await;
        let (code, message) = refusal(status, &body);
        assert_eq!(code, "function_error", "{message}");
    }
    assert_eq!(invocations(&server, "flaky", 3).await.len(), 3);
    for _ in 0..5 {
        let (status, body) = call(&server, "caller", "flaky", "", "{}").await;
        let (code, message) = refusal(status, &body);
        assert_eq!(code, "circuit_open", "{message}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        invocations(&server, "flaky", 3).await.len(),
        3,
        "nothing ran while open"
    );

    // Cut at the caller's 500 ms, not the callee's 30 s.
    let started = Instant::now();
    let (status, body) = call(&server, "caller", "spinner", "", "{}").await;
    assert!(started.elapsed() < Duration::from_secs(5), "{status}: {body}");
    let runs = invocations(&server, "spinner", 1).await;
    assert_eq!(runs[0]["error"], "timeout", "{runs:?}");
    assert!(runs[0]["run_us"].as_u64().unwrap() < 2_000_000, "{runs:?}");

    // A function calling itself through the interface meets the loop guard.
    deploy_kit_fn(
        &server,
        "looper",
        json!({"env": {"KIT_ACTION": "chain", "CHAIN_NEXT": "looper", "CHAIN_VIA": "platform"},
               "invoke": ["looper"], "max_concurrency": 32}),
    )
    .await;
    let r = client()
        .post(server.at("/looper/chain"))
        .body("{}")
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    // Each level answers its callee's refusal as 502 `{"code", "message"}`, the deepest
    // with `loop_detected`; the ones above it pass on a 502 answer.
    assert!(
        body.contains("loop_detected") || body.contains("calling itself"),
        "{body}"
    );
    assert_eq!(invocations(&server, "looper", 17).await.len(), 17);
}

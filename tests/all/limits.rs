//! Limits that a guest or a client crosses: time, memory, body size.

use crate::util::{client, deploy_fixture, expect_problem, http_config, server};
use futures::future::join_all;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn an_infinite_loop_is_answered_timeout_within_timeout_plus_100ms() {
    let server = server();
    deploy_fixture(
        &server,
        "kit",
        "http-kit",
        json!({"kind": "http", "timeout": "500ms", "routes": ["/kit/*"]}),
    )
    .await;
    deploy_fixture(
        &server,
        "ev",
        "event-kit",
        json!({"kind": "event", "timeout": "500ms"}),
    )
    .await;
    let c = client();
    // Warm both up so the measurement is of the limit, not of a cold start.
    assert_eq!(c.get(server.at("/kit/hello")).send().await.unwrap().status(), 200);
    c.post(server.at("/v1/functions/ev/invoke"))
        .body(r#"{"action":"hello"}"#)
        .send()
        .await
        .unwrap();

    let started = Instant::now();
    let r = c.get(server.at("/kit/loop")).send().await.unwrap();
    let took = started.elapsed();
    expect_problem(r, 504, "timeout").await;
    assert!(
        took < Duration::from_millis(600),
        "computing guest answered after {took:?}"
    );

    let started = Instant::now();
    let r = c
        .post(server.at("/v1/functions/ev/invoke"))
        .body(r#"{"action":"loop"}"#)
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    expect_problem(r, 504, "timeout").await;
    assert!(
        took < Duration::from_millis(600),
        "computing event guest answered after {took:?}"
    );

    // Time spent in a host call counts too.
    let started = Instant::now();
    let r = c.get(server.at("/kit/sleep?ms=5000")).send().await.unwrap();
    let took = started.elapsed();
    expect_problem(r, 504, "timeout").await;
    assert!(
        took < Duration::from_millis(600),
        "sleeping guest answered after {took:?}"
    );
}

#[tokio::test]
async fn a_memory_bomb_is_out_of_memory_and_others_keep_serving() {
    let server = server();
    deploy_fixture(
        &server,
        "bomb",
        "http-kit",
        json!({"kind": "http", "memory_mb": 32, "routes": ["/bomb/*"]}),
    )
    .await;
    deploy_fixture(
        &server,
        "evbomb",
        "event-kit",
        json!({"kind": "event", "memory_mb": 16}),
    )
    .await;
    deploy_fixture(&server, "other", "http-kit", http_config(json!(["/other/*"]))).await;
    let c = client();
    let bombs = (0..4).map(|_| c.get(server.at("/bomb/oom")).send());
    let others = (0..8).map(|_| c.get(server.at("/other/hello")).send());
    let (bombs, others) = tokio::join!(join_all(bombs), join_all(others));
    for r in bombs {
        let doc = expect_problem(r.unwrap(), 502, "out_of_memory").await;
        assert!(doc["detail"].as_str().unwrap().contains("32 MB"), "{doc}");
    }
    for r in others {
        assert_eq!(r.unwrap().status(), 200);
    }
    let r = c
        .post(server.at("/v1/functions/evbomb/invoke"))
        .body(r#"{"action":"oom"}"#)
        .send()
        .await
        .unwrap();
    expect_problem(r, 502, "out_of_memory").await;
    assert_eq!(
        c.get(server.at("/other/hello")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let server = server();
    deploy_fixture(&server, "kit", "http-kit", http_config(json!(["/kit/*"]))).await;
    deploy_fixture(
        &server,
        "ev",
        "event-kit",
        json!({"kind": "event", "routes": ["/ev"]}),
    )
    .await;
    let c = client();
    let big = vec![b'x'; 6 * 1024 * 1024 + 1];

    // Declared length: refused before the body is read.
    let r = c
        .post(server.at("/kit/echo"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    expect_problem(r, 413, "payload_too_large").await;
    let r = c.post(server.at("/ev")).body(big.clone()).send().await.unwrap();
    expect_problem(r, 413, "payload_too_large").await;
    let r = c
        .post(server.at("/v1/functions/ev/invoke"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    expect_problem(r, 413, "payload_too_large").await;

    // Chunked, no declared length: cut off while streaming. A guest that reads the
    // body before answering gets the 413 answered for it.
    let chunked = || {
        let chunks: Vec<_> = big
            .chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect();
        reqwest::Body::wrap_stream(futures::stream::iter(chunks))
    };
    let r = c
        .post(server.at("/kit/info"))
        .body(chunked())
        .send()
        .await
        .unwrap();
    expect_problem(r, 413, "payload_too_large").await;
    let r = c.post(server.at("/ev")).body(chunked()).send().await.unwrap();
    expect_problem(r, 413, "payload_too_large").await;
    // A guest that already started streaming its answer cannot be answered 413: its
    // response is cut off instead, never completed as if all was well.
    match c.post(server.at("/kit/echo")).body(chunked()).send().await {
        Ok(r) if r.status() == 413 => {}
        Ok(r) => {
            assert_eq!(r.status(), 200);
            let body = r.bytes().await;
            assert!(
                body.is_err(),
                "a cut-off echo completed with {} bytes",
                body.unwrap().len()
            );
        }
        Err(_) => {}
    }

    // Exactly at the limit is fine.
    let ok = vec![b'x'; 6 * 1024 * 1024];
    let r = c.post(server.at("/kit/echo")).body(ok).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 6 * 1024 * 1024);
}

#[tokio::test]
async fn a_trap_is_a_function_error() {
    let server = server();
    deploy_fixture(&server, "kit", "http-kit", http_config(json!(["/kit/*"]))).await;
    let r = client().get(server.at("/kit/trap")).send().await.unwrap();
    let doc = expect_problem(r, 502, "function_error").await;
    assert!(doc["detail"].as_str().unwrap().contains("trap"), "{doc}");
}

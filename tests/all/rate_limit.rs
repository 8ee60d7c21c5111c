//! Rate limits of routes: GCRA per client, `429 rate_limited` with `Retry-After` and
//! the `RateLimit-*` headers past it, separate from concurrency throttling.

use crate::util::{client, deploy_fixture, expect_problem, server};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_burst_past_the_limit_is_refused_per_client_with_the_headers() {
    let server = server();
    let config = json!({"kind": "http", "routes": [
        {"path": "/limited/*", "rate_limit": "1/m", "burst": 3},
        "/free/*",
    ]});
    deploy_fixture(&server, "kit", "http-kit", config).await;
    let c = client();
    let get = |path: &str| c.get(server.at(path)).send();

    // The burst passes, counting down.
    for remaining in ["2", "1", "0"] {
        let r = get("/limited/info").await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "ratelimit-limit"), "3");
        assert_eq!(header(&r, "ratelimit-remaining"), remaining);
        let reset: u64 = header(&r, "ratelimit-reset").parse().unwrap();
        assert!((1..=180).contains(&reset), "{reset}");
    }
    // Then the rest are refused without running: about a minute to wait.
    for _ in 0..3 {
        let r = get("/limited/info").await.unwrap();
        let retry: u64 = header(&r, "retry-after").parse().unwrap();
        assert!((55..=60).contains(&retry), "Retry-After {retry}");
        assert_eq!(header(&r, "ratelimit-remaining"), "0");
        let reset: u64 = header(&r, "ratelimit-reset").parse().unwrap();
        assert!((175..=180).contains(&reset), "RateLimit-Reset {reset}");
        expect_problem(r, 429, "rate_limited").await;
    }
    let view: Value = c
        .get(server.at("/v1/functions/kit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["invocations"], 3, "{view}");
    assert_eq!(view["throttled"], 0, "rate limits are not throttling: {view}");

    // Another route of the function has no limit, and no headers.
    let r = get("/free/info").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("ratelimit-limit").is_none());

    // Another client address has its own allowance.
    let other = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let r = other.get(server.at("/limited/info")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "ratelimit-remaining"), "2");
}

#[tokio::test]
async fn a_function_limit_is_shared_by_its_routes_and_counts_jwt_subjects_apart() {
    const SECRET: &str = "a shared secret of at least 32 bytes";
    let server = server();
    let jwt = json!({"issuer": "me", "audience": "api", "secret": SECRET});
    let config = json!({
        "kind": "http",
        "rate_limit": "2/h",
        "rate_limit_by": "key",
        "routes": ["/a/*", "/b/*", {"path": "/me/*", "auth": "jwt", "jwt": jwt}],
    });
    deploy_fixture(&server, "kit", "http-kit", config).await;
    let c = client();
    // Public routes count by address, across the function's routes.
    assert_eq!(c.get(server.at("/a/info")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(server.at("/b/info")).send().await.unwrap().status(), 200);
    let r = c.get(server.at("/a/info")).send().await.unwrap();
    expect_problem(r, 429, "rate_limited").await;

    // The JWT route counts each subject on its own, whatever its address.
    let token = |sub: &str| {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let claims = json!({"sub": sub, "iss": "me", "aud": "api", "exp": exp});
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let me = |sub: &str| {
        c.get(server.at("/me/info"))
            .header("authorization", format!("Bearer {}", token(sub)))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(me("ada").await.unwrap().status(), 200);
    }
    expect_problem(me("ada").await.unwrap(), 429, "rate_limited").await;
    assert_eq!(me("grace").await.unwrap().status(), 200);
    // A refused token does not spend anyone's allowance.
    let r = c
        .get(server.at("/me/info"))
        .header("authorization", "Bearer nope")
        .send()
        .await
        .unwrap();
    expect_problem(r, 401, "unauthorized").await;
    assert_eq!(me("grace").await.unwrap().status(), 200);
}

//! The control API: deploy, versions, list, get, delete, and its answers to bad input.

use crate::util::{client, deploy_fixture, expect_problem, http_config, server};
use serde_json::{Value, json};
use wisp_test_support::{deploy, fixture_bytes};

#[tokio::test]
async fn deploy_reports_created_published_unchanged_and_versions_are_numbered() {
    let server = server();
    let c = client();
    let code = fixture_bytes("http-kit");
    let r = deploy(&c, &server, "kit", http_config(json!(["/a"])), code.clone()).await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["status"], "created");
    assert_eq!(first["version"], 1);
    assert_eq!(first["function"]["version"], 1);
    assert_eq!(first["function"]["aliases"], json!({ "live": { "version": 1 } }));
    let v1 = first["function"]["version_id"].as_str().unwrap().to_string();
    assert_eq!(v1.len(), 64);

    let r = deploy(&c, &server, "kit", http_config(json!(["/a"])), code.clone()).await;
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["status"], "unchanged");
    assert_eq!(again["version"], 1);
    assert_eq!(again["function"]["version_id"], v1.as_str());

    let r = deploy(&c, &server, "kit", http_config(json!(["/b"])), code.clone()).await;
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["status"], "published");
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["previous"], json!({ "version": 1 }));
    assert_eq!(updated["function"]["latest_version"], 2);
    assert_ne!(updated["function"]["version_id"], v1.as_str());
    // The old route is gone, the new one serves.
    expect_problem(
        c.get(server.at("/a")).send().await.unwrap(),
        404,
        "route_not_found",
    )
    .await;
    assert_eq!(c.get(server.at("/b")).send().await.unwrap().status(), 200);

    let got: Value = c
        .get(server.at("/v1/functions/kit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["name"], "kit");
    assert_eq!(got["kind"], "http");
    assert_eq!(got["config"]["memory_mb"], 128);
    assert_eq!(got["config"]["timeout"], "30s");
    assert_eq!(got["code_size"], code.len());
    let list: Value = c
        .get(server.at("/v1/functions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["functions"].as_array().unwrap().len(), 1);

    let r = c.delete(server.at("/v1/functions/kit")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    expect_problem(
        c.get(server.at("/b")).send().await.unwrap(),
        404,
        "route_not_found",
    )
    .await;
    expect_problem(
        c.get(server.at("/v1/functions/kit")).send().await.unwrap(),
        404,
        "function_not_found",
    )
    .await;
    expect_problem(
        c.delete(server.at("/v1/functions/kit")).send().await.unwrap(),
        404,
        "function_not_found",
    )
    .await;
}

#[tokio::test]
async fn bad_code_is_refused_and_nothing_is_lost() {
    let server = server();
    let c = client();
    deploy_fixture(&server, "good", "http-kit", http_config(json!(["/good"]))).await;

    let r = deploy(
        &c,
        &server,
        "bad",
        json!({"kind": "http"}),
        b"this is not wasm".to_vec(),
    )
    .await;
    let doc = expect_problem(r, 400, "invalid_code").await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly binary"),
        "{doc}"
    );

    // Valid header, garbage after it.
    let mut broken = b"\0asm\x01\0\0\0".to_vec();
    broken.extend_from_slice(&[0xff; 64]);
    let r = deploy(&c, &server, "bad", json!({"kind": "event"}), broken).await;
    let doc = expect_problem(r, 400, "invalid_code").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("invalid WebAssembly"),
        "{doc}"
    );

    // The wrong kind for the code, both ways.
    let r = deploy(
        &c,
        &server,
        "bad",
        json!({"kind": "http"}),
        fixture_bytes("event-kit"),
    )
    .await;
    let doc = expect_problem(r, 400, "invalid_code").await;
    assert!(doc["detail"].as_str().unwrap().contains("core module"), "{doc}");
    let r = deploy(
        &c,
        &server,
        "bad",
        json!({"kind": "event"}),
        fixture_bytes("http-kit"),
    )
    .await;
    let doc = expect_problem(r, 400, "invalid_code").await;
    assert!(doc["detail"].as_str().unwrap().contains("wasi:cli/run"), "{doc}");
    let r = deploy(
        &c,
        &server,
        "bad",
        json!({"kind": "http"}),
        fixture_bytes("event-cmd"),
    )
    .await;
    expect_problem(r, 400, "invalid_code").await;

    // A failed deploy over an existing function leaves it serving as it was.
    let r = deploy(
        &c,
        &server,
        "good",
        http_config(json!(["/good"])),
        b"junk".to_vec(),
    )
    .await;
    expect_problem(r, 400, "invalid_code").await;
    assert_eq!(c.get(server.at("/good")).send().await.unwrap().status(), 200);
    let list: Value = c
        .get(server.at("/v1/functions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["good"]);
}

#[tokio::test]
async fn bad_configs_names_and_requests_get_specific_problems() {
    let server = server();
    let c = client();
    let code = fixture_bytes("http-kit");
    let cases = [
        (
            json!({"kind": "lambda"}),
            400,
            "invalid_config",
            "unknown variant",
        ),
        (
            json!({"kind": "http", "memroy_mb": 1}),
            400,
            "invalid_config",
            "unknown field `memroy_mb`",
        ),
        (
            json!({"kind": "http", "memory_mb": 0}),
            400,
            "invalid_config",
            "memory_mb",
        ),
        (
            json!({"kind": "http", "timeout": "forever"}),
            400,
            "invalid_config",
            "invalid duration",
        ),
        (
            json!({"kind": "http", "timeout": "2h"}),
            400,
            "invalid_config",
            "out of range",
        ),
        (
            json!({"kind": "http", "routes": ["nope"]}),
            400,
            "invalid_config",
            "must start with '/'",
        ),
        (
            json!({"kind": "http", "routes": ["/v1/mine"]}),
            400,
            "reserved_route",
            "reserved",
        ),
        (
            json!({"kind": "http", "routes": ["/metrics"]}),
            400,
            "reserved_route",
            "reserved",
        ),
        (
            json!({"kind": "http", "routes": ["/2018-06-01/runtime"]}),
            400,
            "reserved_route",
            "reserved",
        ),
        (
            json!({"kind": "http", "routes": [{"path": "/x", "methods": ["G T"]}]}),
            400,
            "invalid_config",
            "invalid method",
        ),
    ];
    for (config, status, code_name, needle) in cases {
        let r = deploy(&c, &server, "f", config.clone(), code.clone()).await;
        let doc = expect_problem(r, status, code_name).await;
        assert!(
            doc["detail"].as_str().unwrap().contains(needle),
            "{config}: {doc}"
        );
    }

    let r = deploy(&c, &server, "Bad_Name", json!({"kind": "http"}), code.clone()).await;
    expect_problem(r, 400, "invalid_name").await;

    // Not multipart, missing parts, unknown parts.
    let r = c
        .put(server.at("/v1/functions/f"))
        .body("{}")
        .send()
        .await
        .unwrap();
    expect_problem(r, 415, "unsupported_media_type").await;
    let form = reqwest::multipart::Form::new().text("config", r#"{"kind":"http"}"#);
    let r = c
        .put(server.at("/v1/functions/f"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let doc = expect_problem(r, 400, "invalid_request").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("`code` part is missing"),
        "{doc}"
    );
    let form = reqwest::multipart::Form::new().text("extra", "x");
    let r = c
        .put(server.at("/v1/functions/f"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_request").await;

    // Unknown functions.
    let r = c
        .post(server.at("/v1/functions/ghost/invoke"))
        .body("{}")
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "function_not_found").await;
    let r = c.get(server.at("/v1/functions/ghost/logs")).send().await.unwrap();
    expect_problem(r, 404, "function_not_found").await;
    let r = c
        .get(server.at("/v1/functions/ghost/logs?limit=zero"))
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_request").await;
    let r = c.patch(server.at("/v1/functions/ghost")).send().await.unwrap();
    expect_problem(r, 405, "method_not_allowed").await;

    // Nothing of the above was deployed.
    let list: Value = c
        .get(server.at("/v1/functions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["functions"], json!([]));
}

#[tokio::test]
async fn conflicting_routes_across_functions_are_refused() {
    let server = server();
    let c = client();
    deploy_fixture(
        &server,
        "users",
        "http-kit",
        http_config(json!([{"path": "/users/:id", "methods": ["GET"]}])),
    )
    .await;
    let r = deploy(
        &c,
        &server,
        "profile",
        http_config(json!([{"path": "/users/:name"}])),
        fixture_bytes("http-kit"),
    )
    .await;
    let doc = expect_problem(r, 409, "route_conflict").await;
    assert!(doc["detail"].as_str().unwrap().contains("`users`"), "{doc}");
    // Another method on the same path is fine, as is a literal beside the parameter.
    deploy_fixture(
        &server,
        "creator",
        "http-kit",
        http_config(json!([{"path": "/users/:id", "methods": ["POST"]}])),
    )
    .await;
    deploy_fixture(&server, "me", "http-kit", http_config(json!(["/users/me"]))).await;
    let info: Value = c
        .post(server.at("/users/7"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["method"], "POST");
}

/// Issue 12: a store failure is answered `500 internal` without its cause, and the
/// cause is in the server's log exactly once (it used to be logged where the error
/// was made and again where the 500 was rendered).
#[tokio::test]
async fn issue_12_an_internal_error_is_logged_once_and_not_leaked() {
    let server = server();
    // The database refuses one queue, as a failing disk would refuse a write.
    let db = rusqlite::Connection::open(server.data_dir.join("wisp.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_doomed BEFORE INSERT ON queues
         WHEN NEW.name = 'doomed'
         BEGIN SELECT RAISE(ABORT, 'the test refuses queue doomed'); END;",
    )
    .unwrap();
    let r = client()
        .put(server.at("/v1/queues/doomed"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let doc = expect_problem(r, 500, "internal").await;
    let detail = doc["detail"].as_str().unwrap();
    assert!(!detail.contains("the test refuses"), "the cause leaked: {detail}");
    let log = server.stderr_containing("the test refuses queue doomed");
    assert_eq!(
        log.matches("the test refuses queue doomed").count(),
        1,
        "the cause is logged once:\n{log}"
    );
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert_eq!(errors.len(), 1, "one error, one log line: {errors:#?}");
    // Other queues are stored as ever.
    let r = client()
        .put(server.at("/v1/queues/fine"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

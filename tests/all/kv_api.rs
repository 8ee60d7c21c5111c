//! Key-value stores through Wisp's own interfaces (issue 17): the `/v1/kv` API (ETags
//! and compare-and-set, time to live, increments, listing with a cursor, batches, bad
//! input, roles and namespaces), the same routes on the S3 listener for functions'
//! tokens (and nothing else of the API there), the CLI's `wisp kv`, and `wisp deploy`
//! creating the stores a manifest declares.

use crate::tenancy::create_key;
use crate::util::{bin, client, expect_problem, get_json, wisp, wisp_fails, wisp_on_terminal};
use serde_json::{Value, json};
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};
use wisp_test_support::{TestServer, anonymous_client, fixture, keyed_client};

async fn create_store(server: &TestServer, name: &str) {
    let r = client()
        .put(server.at(&format!("/v1/kv/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// `PUT` a key; its version.
async fn set(server: &TestServer, store: &str, key: &str, value: &str) -> u64 {
    let r = client()
        .put(server.at(&format!("/v1/kv/{store}/keys/{key}")))
        .body(value.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    let version = body["version"].as_u64().unwrap();
    assert_eq!(etag, format!("\"{version}\""));
    version
}

#[tokio::test]
async fn keys_round_trip_with_etags_conditions_ttls_increments_lists_and_batches() {
    let server = TestServer::serve(bin());
    let http = client();
    create_store(&server, "cache").await;
    let r = http.put(server.at("/v1/kv/cache")).send().await.unwrap();
    expect_problem(r, 409, "kv_store_exists").await;
    let shown = get_json(&server, "/v1/kv/cache").await;
    assert_eq!(shown["name"], "cache");
    assert!(shown["created_at"].is_string(), "{shown}");
    let listed = get_json(&server, "/v1/kv").await;
    assert_eq!(listed["stores"][0]["name"], "cache", "{listed}");

    // A key with `/` and a space; the value comes back byte for byte with its ETag.
    let v1 = set(&server, "cache", "user/ada%20l", "hello").await;
    let at = server.at("/v1/kv/cache/keys/user/ada%20l");
    let r = http.get(&at).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], format!("\"{v1}\"").as_str());
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert!(r.headers().get("wisp-expires-at").is_none());
    assert_eq!(r.text().await.unwrap(), "hello");
    let r = http.head(&at).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "5");
    let r = http
        .get(&at)
        .header("if-none-match", format!("\"{v1}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // Compare-and-set: the right version writes, a stale one is refused.
    let r = http
        .put(&at)
        .header("if-match", format!("\"{v1}\""))
        .body("hello again")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v2 = r.json::<Value>().await.unwrap()["version"].as_u64().unwrap();
    assert!(v2 > v1);
    let r = http
        .put(&at)
        .header("if-match", format!("\"{v1}\""))
        .body("lost update")
        .send()
        .await
        .unwrap();
    let doc = expect_problem(r, 412, "precondition_failed").await;
    assert!(
        doc["detail"].as_str().unwrap().contains(&format!("version {v2}")),
        "{doc}"
    );
    let r = http
        .put(&at)
        .header("if-none-match", "*")
        .body("x")
        .send()
        .await
        .unwrap();
    expect_problem(r, 412, "precondition_failed").await;
    let r = http
        .put(server.at("/v1/kv/cache/keys/fresh"))
        .header("if-none-match", "*")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http.get(&at).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "hello again");

    // A time to live: said on reads, and gone once it passes.
    let r = http
        .put(server.at("/v1/kv/cache/keys/session"))
        .header("wisp-ttl", "1s")
        .body("s")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(server.at("/v1/kv/cache/keys/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("wisp-expires-at").is_some());
    let started = Instant::now();
    loop {
        let r = http
            .get(server.at("/v1/kv/cache/keys/session"))
            .send()
            .await
            .unwrap();
        if r.status() == 404 {
            expect_problem(r, 404, "kv_key_not_found").await;
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the entry outlived its TTL"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Increments: 1 by default, any step, and a refusal for what is not a number.
    let incr = |by: Option<i64>| {
        let r = http.post(server.at("/v1/kv/cache/increment/hits"));
        match by {
            Some(by) => r.json(&json!({ "by": by })),
            None => r,
        }
    };
    let r = incr(None).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["value"], 1);
    let r = incr(Some(5)).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["value"], 6);
    assert!(body["version"].is_u64(), "{body}");
    let r = http
        .get(server.at("/v1/kv/cache/keys/hits"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "6");
    let r = http
        .post(server.at("/v1/kv/cache/increment/fresh"))
        .send()
        .await
        .unwrap();
    expect_problem(r, 409, "kv_not_a_number").await;

    // Listing: pages of 2 with a cursor, and a prefix.
    create_store(&server, "pages").await;
    for key in ["a1", "a2", "a3", "b1", "b2"] {
        set(&server, "pages", key, key).await;
    }
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = server.at("/v1/kv/pages/keys?limit=2");
        if let Some(after) = &after {
            url.push_str(&format!("&after={after}"));
        }
        let page: Value = http.get(url).send().await.unwrap().json().await.unwrap();
        pages += 1;
        keys.extend(
            page["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(keys, ["a1", "a2", "a3", "b1", "b2"]);
    assert_eq!(pages, 3);
    let page = get_json(&server, "/v1/kv/pages/keys?prefix=b").await;
    assert_eq!(page, json!({ "keys": ["b1", "b2"], "next": null }));

    // Batches: set (text and base64), get in order with misses, delete.
    let batch = |body: Value| http.post(server.at("/v1/kv/pages/batch")).json(&body).send();
    let r = batch(json!({ "set": { "c1": "one", "c2": "two" }, "ttl": "1h" }))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let versions: Value = r.json().await.unwrap();
    assert!(
        versions["versions"]["c1"].is_u64() && versions["versions"]["c2"].is_u64(),
        "{versions}"
    );
    let r = batch(json!({ "set": { "bin": "/wA=" }, "encoding": "base64" }))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = batch(json!({ "get": ["c2", "ghost", "bin"] })).await.unwrap();
    let got: Value = r.json().await.unwrap();
    let entries = got["entries"].as_array().unwrap();
    assert_eq!(entries[0]["key"], "c2");
    assert_eq!(entries[0]["value"], "two");
    assert!(entries[0]["expires_at"].is_string(), "{got}");
    assert_eq!(entries[1], json!({ "key": "ghost", "value": null }));
    assert_eq!(entries[2]["value"], "/wA=");
    assert_eq!(entries[2]["encoding"], "base64");
    let r = http.get(server.at("/v1/kv/pages/keys/bin")).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), [0xff, 0x00]);
    let r = batch(json!({ "delete": ["c1", "c2", "ghost"] })).await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({ "deleted": 2 }));

    // Deletes: a stale If-Match is refused, then it goes, and a second time is a 404.
    let r = http
        .delete(&at)
        .header("if-match", format!("\"{v1}\""))
        .send()
        .await
        .unwrap();
    expect_problem(r, 412, "precondition_failed").await;
    let r = http.delete(&at).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = http.delete(&at).send().await.unwrap();
    expect_problem(r, 404, "kv_key_not_found").await;
    let r = http.get(&at).send().await.unwrap();
    expect_problem(r, 404, "kv_key_not_found").await;

    // Dropping a store drops its keys.
    let r = http.delete(server.at("/v1/kv/pages")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = http.get(server.at("/v1/kv/pages")).send().await.unwrap();
    expect_problem(r, 404, "kv_store_not_found").await;
    let r = http.get(server.at("/v1/kv/pages/keys/a1")).send().await.unwrap();
    expect_problem(r, 404, "kv_store_not_found").await;
    let r = http.delete(server.at("/v1/kv/pages")).send().await.unwrap();
    expect_problem(r, 404, "kv_store_not_found").await;
}

#[tokio::test]
async fn bad_input_gets_a_problem_that_says_what_was_wrong() {
    let server = TestServer::serve(bin());
    let http = client();
    create_store(&server, "cache").await;
    set(&server, "cache", "text", "not a number").await;

    let r = http.put(server.at("/v1/kv/Bad_Name")).send().await.unwrap();
    let doc = expect_problem(r, 400, "invalid_name").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("lowercase letters"),
        "{doc}"
    );
    let r = http
        .get(server.at("/v1/kv/Bad_Name/keys/k"))
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_name").await;
    let r = http.get(server.at("/v1/kv/ghost/keys/k")).send().await.unwrap();
    expect_problem(r, 404, "kv_store_not_found").await;
    let r = http
        .put(server.at("/v1/kv/ghost/keys/k"))
        .body("v")
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "kv_store_not_found").await;

    // Sizes: a key over 1 KiB, a value over 1 MiB.
    let long = "k".repeat(1025);
    let r = http
        .put(server.at(&format!("/v1/kv/cache/keys/{long}")))
        .body("v")
        .send()
        .await
        .unwrap();
    let doc = expect_problem(r, 400, "invalid_request").await;
    assert!(doc["detail"].as_str().unwrap().contains("1024 bytes"), "{doc}");
    let r = http
        .put(server.at("/v1/kv/cache/keys/big"))
        .body(vec![b'x'; 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    expect_problem(r, 413, "payload_too_large").await;
    let r = http
        .put(server.at("/v1/kv/cache/keys/big"))
        .body(vec![b'x'; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a value of exactly the limit is taken");

    // Listing limits.
    for bad in ["0", "1001", "many"] {
        let r = http
            .get(server.at(&format!("/v1/kv/cache/keys?limit={bad}")))
            .send()
            .await
            .unwrap();
        expect_problem(r, 400, "invalid_request").await;
    }
    let r = http
        .get(server.at("/v1/kv/cache/keys?limit=1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Conditions and time to live.
    let at = server.at("/v1/kv/cache/keys/text");
    for (name, value) in [
        ("if-match", "\"abc\""),
        ("if-match", "*"),
        ("if-none-match", "\"3\""),
        ("wisp-ttl", "soon"),
        ("wisp-ttl", "0"),
    ] {
        let r = http.put(&at).header(name, value).body("v").send().await.unwrap();
        let doc = expect_problem(r, 400, "invalid_request").await;
        assert!(doc["detail"].as_str().unwrap().contains(value), "{name}: {doc}");
    }
    let r = http
        .delete(&at)
        .header("if-none-match", "*")
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_request").await;

    // Increments and batches: bodies that are not what they take.
    let post = |path: &str, body: &'static str| {
        http.post(server.at(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = post("/v1/kv/cache/increment/n", "{\"by\": ").await.unwrap();
    expect_problem(r, 400, "invalid_request").await;
    let r = post("/v1/kv/cache/increment/n", "{\"step\": 2}").await.unwrap();
    expect_problem(r, 400, "invalid_request").await;
    let r = post("/v1/kv/cache/increment/n", "{\"by\": 1.5}").await.unwrap();
    expect_problem(r, 400, "invalid_request").await;
    let r = post("/v1/kv/cache/increment/text", "").await.unwrap();
    expect_problem(r, 409, "kv_not_a_number").await;
    for body in [
        "not json",
        "[]",
        "{}",
        "{\"get\": [\"a\"], \"delete\": [\"b\"]}",
        "{\"get\": [\"a\"], \"ttl\": \"1s\"}",
        "{\"set\": {\"a\": \"!!\"}, \"encoding\": \"base64\"}",
        "{\"set\": {\"a\": 1}}",
        "{\"get\": [\"a\"], \"encoding\": \"hex\"}",
    ] {
        let r = post("/v1/kv/cache/batch", body).await.unwrap();
        let doc = expect_problem(r, 400, "invalid_request").await;
        assert!(!doc["detail"].as_str().unwrap().is_empty(), "{body}");
    }
    let many: Vec<String> = (0..101).map(|i| format!("k{i}")).collect();
    let r = http
        .post(server.at("/v1/kv/cache/batch"))
        .json(&json!({ "get": many }))
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_request").await;
    let r = http.patch(server.at("/v1/kv/cache")).send().await.unwrap();
    expect_problem(r, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn roles_decide_who_writes_and_another_namespace_sees_nothing() {
    let server = TestServer::serve(bin());
    create_store(&server, "cache").await;
    set(&server, "cache", "k", "v").await;
    for role in ["read", "invoke"] {
        let token = create_key(&server, "default", role, None).await;
        let http = keyed_client(&token);
        let r = http.get(server.at("/v1/kv/cache/keys/k")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{role}");
        let r = http.get(server.at("/v1/kv/cache/keys")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{role}");
        let r = http
            .put(server.at("/v1/kv/cache/keys/k"))
            .body("w")
            .send()
            .await
            .unwrap();
        expect_problem(r, 403, "forbidden").await;
        let r = http
            .delete(server.at("/v1/kv/cache/keys/k"))
            .send()
            .await
            .unwrap();
        expect_problem(r, 403, "forbidden").await;
        let r = http.put(server.at("/v1/kv/other")).send().await.unwrap();
        expect_problem(r, 403, "forbidden").await;
        let r = http
            .post(server.at("/v1/kv/cache/increment/n"))
            .send()
            .await
            .unwrap();
        expect_problem(r, 403, "forbidden").await;
    }

    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({ "name": "other" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token = create_key(&server, "other", "deploy", None).await;
    let http = keyed_client(&token);
    let r = http.get(server.at("/v1/kv/cache")).send().await.unwrap();
    expect_problem(r, 404, "kv_store_not_found").await;
    let r = http.get(server.at("/v1/kv/cache/keys/k")).send().await.unwrap();
    expect_problem(r, 404, "kv_store_not_found").await;
    let listed: Value = http
        .get(server.at("/v1/kv"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!({ "stores": [] }));
    // Its own store of the same name is another store.
    let r = http.put(server.at("/v1/kv/cache")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = http.get(server.at("/v1/kv/cache/keys/k")).send().await.unwrap();
    expect_problem(r, 404, "kv_key_not_found").await;
}

#[tokio::test]
async fn the_s3_listener_serves_kv_to_bearer_tokens_and_nothing_else_of_the_api() {
    let server = TestServer::serve(bin());
    create_store(&server, "cache").await;
    set(&server, "cache", "k", "v").await;
    let s3 = server
        .s3_url
        .clone()
        .expect("wisp serve announces its S3 listener");

    let r = anonymous_client()
        .get(format!("{s3}/v1/kv"))
        .send()
        .await
        .unwrap();
    let doc = expect_problem(r, 401, "unauthorized").await;
    assert!(doc["detail"].as_str().unwrap().contains("WISP_TOKEN"), "{doc}");
    let r = keyed_client("not-a-key")
        .get(format!("{s3}/v1/kv/cache/keys/k"))
        .send()
        .await
        .unwrap();
    expect_problem(r, 401, "unauthorized").await;

    // A person's key works there as on the main listener.
    let http = client();
    let r = http.get(format!("{s3}/v1/kv/cache/keys/k")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "v");
    let r = http
        .put(format!("{s3}/v1/kv/cache/keys/k2"))
        .body("w")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(format!("{s3}/v1/kv/ghost/keys/k")).send().await.unwrap();
    expect_problem(r, 404, "kv_store_not_found").await;
    let r = http
        .get(format!("{s3}/v1/kv/cache/nothing"))
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "not_found").await;

    // Under `/v1` only the services functions call are served: the rest of the control
    // API is not there (404, whoever asks).
    for path in [
        "/v1/functions",
        "/v1/health",
        "/v1/buckets",
        "/v1/kvx",
        "/v1/queues/q/receive",
    ] {
        let r = http.get(format!("{s3}{path}")).send().await.unwrap();
        expect_problem(r, 404, "not_found").await;
    }
    // Everything else on that listener is S3's.
    for path in ["/", "/v2/functions"] {
        let r = http.get(format!("{s3}{path}")).send().await.unwrap();
        let content_type = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = r.text().await.unwrap();
        assert!(
            !content_type.contains("json") && !body.contains("\"code\""),
            "GET {path} on the S3 listener answered {content_type}: {body}"
        );
    }
}

#[tokio::test]
async fn the_kv_commands_manage_stores_and_keys() {
    let server = TestServer::serve(bin());
    assert_eq!(
        wisp(&server, &["kv", "create", "cache"]),
        "created key-value store cache\n"
    );
    let err = wisp_fails(&server, &["kv", "create", "cache"], 4);
    assert!(err.contains("kv_store_exists"), "{err}");
    let err = wisp_fails(&server, &["kv", "create", "Cache"], 2);
    assert!(err.contains("key-value store name `Cache`"), "{err}");
    let table = wisp(&server, &["kv", "ls"]);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().next() == Some("cache")),
        "{table}"
    );
    let stores: Value = serde_json::from_str(&wisp(&server, &["kv", "ls", "--json"])).unwrap();
    assert_eq!(stores[0]["name"], "cache");

    let out = wisp(&server, &["kv", "set", "cache", "user/ada", "hello world"]);
    assert!(out.starts_with("set cache/user/ada (version "), "{out}");
    assert_eq!(wisp(&server, &["kv", "get", "cache", "user/ada"]), "hello world");
    let version: u64 = out
        .trim()
        .trim_start_matches("set cache/user/ada (version ")
        .trim_end_matches(')')
        .parse()
        .unwrap();
    let err = wisp_fails(
        &server,
        &[
            "kv",
            "set",
            "cache",
            "user/ada",
            "x",
            "--if-version",
            &(version + 100).to_string(),
        ],
        4,
    );
    assert!(err.contains("precondition_failed"), "{err}");
    wisp(
        &server,
        &[
            "kv",
            "set",
            "cache",
            "user/ada",
            "again",
            "--if-version",
            &version.to_string(),
        ],
    );
    let err = wisp_fails(
        &server,
        &["kv", "set", "cache", "user/ada", "x", "--if-absent"],
        4,
    );
    assert!(err.contains("precondition_failed"), "{err}");
    let out = wisp(&server, &["kv", "set", "cache", "temp", "t", "--ttl", "1h"]);
    assert!(out.contains("expires in 1h"), "{out}");
    let err = wisp_fails(&server, &["kv", "set", "cache", "temp", "t", "--ttl", "soon"], 2);
    assert!(err.contains("soon"), "{err}");

    // A value from stdin, bytes as they are.
    let mut child = server
        .cli(bin())
        .args(["kv", "set", "cache", "blob", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"line 1\nline 2\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(wisp(&server, &["kv", "get", "cache", "blob"]), "line 1\nline 2\n");
    // On a terminal a value without a line end gets one, so the prompt starts a line;
    // one that has it gets no second.
    assert_eq!(
        wisp_on_terminal(&server, &["kv", "get", "cache", "user/ada"]),
        "again\r\n"
    );
    assert_eq!(
        wisp_on_terminal(&server, &["kv", "get", "cache", "blob"]),
        "line 1\r\nline 2\r\n"
    );

    assert_eq!(wisp(&server, &["kv", "incr", "cache", "hits"]), "1\n");
    assert_eq!(
        wisp(&server, &["kv", "incr", "cache", "hits", "--by", "-3"]),
        "-2\n"
    );
    let err = wisp_fails(&server, &["kv", "incr", "cache", "blob"], 4);
    assert!(err.contains("kv_not_a_number"), "{err}");

    assert_eq!(
        wisp(&server, &["kv", "ls", "cache"]),
        "blob\nhits\ntemp\nuser/ada\n"
    );
    assert_eq!(
        wisp(&server, &["kv", "ls", "cache", "--prefix", "user/"]),
        "user/ada\n"
    );
    let keys: Value =
        serde_json::from_str(&wisp(&server, &["kv", "ls", "cache", "--limit", "2", "--json"])).unwrap();
    assert_eq!(keys, json!(["blob", "hits"]));

    assert_eq!(
        wisp(&server, &["kv", "rm", "cache", "temp"]),
        "removed cache/temp\n"
    );
    let err = wisp_fails(&server, &["kv", "get", "cache", "temp"], 4);
    assert!(
        err.contains("kv_key_not_found") && err.contains("wisp kv ls STORE"),
        "{err}"
    );
    let err = wisp_fails(&server, &["kv", "get", "ghost", "k"], 4);
    assert!(
        err.contains("kv_store_not_found") && err.contains("wisp kv create"),
        "{err}"
    );

    assert_eq!(
        wisp(&server, &["kv", "drop", "cache"]),
        "removed key-value store cache\n"
    );
    let err = wisp_fails(&server, &["kv", "drop", "cache"], 4);
    assert!(err.contains("kv_store_not_found"), "{err}");
}

#[tokio::test]
async fn deploy_creates_the_manifests_kv_stores_and_keeps_them() {
    let server = TestServer::serve(bin());
    let app = tempfile::tempdir().unwrap();
    let wasm = fixture("event-kit");
    std::fs::write(
        app.path().join("wisp.toml"),
        format!(
            "[app]\nname = \"shop\"\n\n\
             [functions.cart]\nsource = {:?}\nkind = \"event\"\nkv = [\"cache\"]\n\n\
             [kv.cache]\n",
            wasm.display().to_string()
        ),
    )
    .unwrap();
    let path = app.path().to_str().unwrap();
    let out = wisp(&server, &["deploy", path]);
    assert!(out.contains("created    kv store cache"), "{out}");
    let stores = get_json(&server, "/v1/kv").await;
    assert_eq!(stores["stores"][0]["name"], "cache", "{stores}");
    set(&server, "cache", "k", "kept").await;

    let out = wisp(&server, &["deploy", path]);
    assert!(out.contains("unchanged  kv store cache"), "{out}");
    let r = client()
        .get(server.at("/v1/kv/cache/keys/k"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "kept");

    // A bad name points at itself.
    std::fs::write(
        app.path().join("wisp.toml"),
        format!(
            "[app]\nname = \"shop\"\n\n\
             [functions.cart]\nsource = {:?}\nkind = \"event\"\n\n\
             [kv.Cache]\n",
            wasm.display().to_string()
        ),
    )
    .unwrap();
    let err = wisp_fails(&server, &["deploy", path], 2);
    assert!(
        err.contains(":8:5") && err.contains("key-value store name `Cache`"),
        "{err}"
    );
}

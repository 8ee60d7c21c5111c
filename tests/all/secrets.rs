//! Secrets (issue 17): set from the CLI's stdin, listed without values, never read
//! back by any API nor found in the clear in the data directory or the server's log;
//! a function's `env` refers to one and each new instance (native or wasm) gets its
//! current value, so a rotation needs no deploy; bad input and tenancy.

use crate::native::{deploy_kit, invoke, invoke_ok};
use crate::util::{bin, client, deploy_fixture, expect_problem, server, text};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use wisp_test_support::{TestServer, deploy, fixture_bytes, keyed_client};

const VALUE: &str = "hunter2-correct-horse-battery";
const ROTATED: &str = "rotated-staple-7c1f";

/// Runs `wisp ARGS` against `server` with `stdin` piped in.
fn cli_with_stdin(server: &TestServer, args: &[&str], stdin: &str) -> Output {
    let mut child = server
        .cli(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn cli(server: &TestServer, args: &[&str]) -> Output {
    server.cli(bin()).args(args).output().unwrap()
}

async fn put_secret(server: &TestServer, name: &str, value: &str) -> reqwest::Response {
    client()
        .put(server.at(&format!("/v1/secrets/{name}")))
        .body(value.to_owned())
        .send()
        .await
        .unwrap()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

/// Deploys the event kit as `name` in namespace `ns` with `config`.
async fn deploy_in(server: &TestServer, ns: &str, name: &str, config: Value) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .part(
            "config",
            reqwest::multipart::Part::bytes(serde_json::to_vec(&config).unwrap())
                .mime_str("application/json")
                .unwrap(),
        )
        .part(
            "code",
            reqwest::multipart::Part::bytes(fixture_bytes("event-kit")).file_name("code.wasm"),
        );
    client()
        .put(server.at(&format!("/v1/functions/{name}")))
        .header("wisp-namespace", ns)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

fn kit_env(secret: &str) -> Value {
    json!({ "PLAIN": "text", "DB_PASSWORD": { "secret": secret } })
}

#[tokio::test]
async fn a_secret_set_from_stdin_is_listed_without_its_value_and_never_read_back() {
    let server = server();
    let out = cli_with_stdin(&server, &["secret", "set", "db"], &format!("{VALUE}\n"));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("created secret db"), "{stdout}");

    let out = cli(&server, &["secret", "ls"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("db") && stdout.contains("CREATED"), "{stdout}");
    assert!(!stdout.contains(VALUE), "ls printed the value: {stdout}");

    // The API lists names and times only, and has no route that reads a value.
    let list: Value = client()
        .get(server.at("/v1/secrets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["secrets"][0]["name"], "db", "{list}");
    assert!(list["secrets"][0]["created_at"].is_string(), "{list}");
    assert!(!list.to_string().contains(VALUE), "{list}");
    let r = client().get(server.at("/v1/secrets/db")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(!r.text().await.unwrap().contains(VALUE));

    // Set again: an update; the newline `echo` adds was dropped from stdin only.
    let r = put_secret(&server, "db", ROTATED).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "updated");

    // Neither value is in the clear anywhere in the data directory (the database, its
    // WAL, the key files) nor in the server's log.
    for value in [VALUE, ROTATED] {
        let found = files_containing(&server.data_dir, value.as_bytes());
        assert!(found.is_empty(), "`{value}` in the clear in {found:?}");
        assert!(!server.stderr().contains(value), "the server logged `{value}`");
        assert!(!server.stdout().contains(value), "the server printed `{value}`");
    }
    // The audit trail names the secret, not its value.
    let audit = client()
        .get(server.at("/v1/audit"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        audit.contains("secret.create") && audit.contains("secret.update"),
        "{audit}"
    );
    assert!(!audit.contains(VALUE) && !audit.contains(ROTATED), "{audit}");

    let out = cli(&server, &["secret", "rm", "db"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(text(&out).0.contains("removed secret db"));
    let out = cli(&server, &["secret", "rm", "db"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("no secret `db`"), "{}", text(&out).1);
    let out = cli(&server, &["secret", "ls"]);
    assert!(text(&out).1.contains("No secrets"), "{}", text(&out).1);
}

/// A native (Python) function sees its secret; a rotation reaches the next instance
/// without a deploy; a deleted secret fails the next instance start, clearly.
#[tokio::test]
async fn a_native_function_gets_the_value_at_instance_start_and_rotation_needs_no_deploy() {
    let server = server();
    assert_eq!(put_secret(&server, "db", VALUE).await.status(), 201);
    deploy_kit(&server, "shop", json!({ "env": kit_env("db") })).await;
    let env = invoke_ok(&server, "shop", json!({"action": "env"})).await;
    assert_eq!(
        (env["DB_PASSWORD"].as_str(), env["PLAIN"].as_str()),
        (Some(VALUE), Some("text"))
    );

    // The function as the API shows it carries the reference, not the value.
    let shown = client()
        .get(server.at("/v1/functions/shop"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(shown.contains(r#""DB_PASSWORD":{"secret":"db"}"#), "{shown}");
    assert!(!shown.contains(VALUE), "{shown}");

    // Rotated: the warm instance keeps what it started with; a new one gets the new
    // value, with no deploy in between.
    assert_eq!(put_secret(&server, "db", ROTATED).await.status(), 200);
    let warm = invoke_ok(&server, "shop", json!({"action": "env"})).await;
    assert_eq!(warm["DB_PASSWORD"], VALUE);
    let _ = invoke(&server, "shop", json!({"action": "exit", "code": 1})).await;
    let fresh = invoke_ok(&server, "shop", json!({"action": "env"})).await;
    assert_eq!(fresh["DB_PASSWORD"], ROTATED, "a new instance kept the old value");
    let versions: Value = client()
        .get(server.at("/v1/functions/shop/versions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        versions["versions"].as_array().map(Vec::len),
        Some(1),
        "{versions}"
    );

    // Deleted: the next instance does not start (never an empty value), and says why
    // in the invocation's error and the function's log.
    let r = client().delete(server.at("/v1/secrets/db")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let _ = invoke(&server, "shop", json!({"action": "exit", "code": 1})).await;
    let doc = expect_problem(
        invoke(&server, "shop", json!({"action": "env"})).await,
        502,
        "function_error",
    )
    .await;
    let detail = doc["detail"].as_str().unwrap();
    assert!(
        detail.contains("secret `db`") && detail.contains("wisp secret set db"),
        "{doc}"
    );
    let lines = crate::util::logs_when(&server, "/v1/functions/shop/logs", |lines| {
        lines
            .iter()
            .any(|l| crate::util::line_text(l).contains("secret `db`"))
    })
    .await;
    let logs: Vec<&str> = lines.iter().map(crate::util::line_text).collect();
    assert!(logs.iter().any(|l| l.contains("did not start")), "{logs:?}");
    for value in [VALUE, ROTATED] {
        assert!(!server.stderr().contains(value), "the server logged `{value}`");
    }
}

/// A wasm guest's environment resolves per instance too (one per invocation).
#[tokio::test]
async fn a_wasm_guest_sees_the_current_value() {
    let server = server();
    assert_eq!(put_secret(&server, "db", VALUE).await.status(), 201);
    deploy_fixture(
        &server,
        "kit",
        "event-kit",
        json!({"kind": "event", "env": kit_env("db")}),
    )
    .await;
    let env_of = || async {
        let r = client()
            .post(server.at("/v1/functions/kit/invoke"))
            .body(r#"{"action":"env"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    };
    let env = env_of().await;
    assert_eq!(
        (env["DB_PASSWORD"].as_str(), env["PLAIN"].as_str()),
        (Some(VALUE), Some("text"))
    );
    assert_eq!(put_secret(&server, "db", ROTATED).await.status(), 200);
    assert_eq!(env_of().await["DB_PASSWORD"], ROTATED);
    // A function without references is untouched by secrets.
    deploy_fixture(
        &server,
        "plain",
        "event-kit",
        json!({"kind": "event", "env": {"GREETING": "hi"}}),
    )
    .await;
    let r = client()
        .post(server.at("/v1/functions/plain/invoke"))
        .body(r#"{"action":"env"}"#)
        .send()
        .await
        .unwrap();
    let env: Value = r.json().await.unwrap();
    assert_eq!(env["GREETING"], "hi");
    assert!(env.get("DB_PASSWORD").is_none(), "{env}");
}

#[tokio::test]
async fn bad_names_values_and_references_are_refused_clearly() {
    let server = server();
    let doc = expect_problem(put_secret(&server, "DB_Pass", "x").await, 400, "invalid_name").await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("invalid secret name `DB_Pass`"),
        "{doc}"
    );
    let big = "x".repeat(wisp_core::Limits::MAX_SECRET_VALUE_BYTES + 1);
    expect_problem(put_secret(&server, "big", &big).await, 413, "payload_too_large").await;
    let exactly = "x".repeat(wisp_core::Limits::MAX_SECRET_VALUE_BYTES);
    assert_eq!(put_secret(&server, "big", &exactly).await.status(), 201);
    let r = client()
        .put(server.at("/v1/secrets/binary"))
        .body(vec![0xff_u8, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    let doc = expect_problem(r, 400, "invalid_request").await;
    assert!(doc["detail"].as_str().unwrap().contains("not UTF-8"), "{doc}");
    expect_problem(
        client()
            .delete(server.at("/v1/secrets/ghost"))
            .send()
            .await
            .unwrap(),
        404,
        "secret_not_found",
    )
    .await;
    // The CLI checks the name before any request.
    let out = cli_with_stdin(&server, &["secret", "set", "Bad_Name"], "x");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);

    // A deploy that refers to a secret the namespace does not have is refused.
    let r = deploy(
        &client(),
        &server,
        "kit",
        json!({"kind": "event", "env": kit_env("missing")}),
        fixture_bytes("event-kit"),
    )
    .await;
    let doc = expect_problem(r, 404, "secret_not_found").await;
    let detail = doc["detail"].as_str().unwrap();
    assert!(
        detail.contains("env.DB_PASSWORD") && detail.contains("wisp secret set missing"),
        "{doc}"
    );
    // A malformed reference, through the API and in wisp.toml.
    let r = deploy(
        &client(),
        &server,
        "kit",
        json!({"kind": "event", "env": {"DB_PASSWORD": {"secret": 5}}}),
        fixture_bytes("event-kit"),
    )
    .await;
    assert_eq!(r.status(), 400, "{}", r.text().await.unwrap());
    let temp = tempfile::tempdir().unwrap();
    std::fs::write(
        temp.path().join("wisp.toml"),
        "[app]\nname = \"x\"\n\n[functions.f]\nsource = \"f.wasm\"\nkind = \"event\"\nenv = { DB_PASSWORD = { secret = 5 } }\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("deploy")
        .arg(temp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out).1;
    assert!(stderr.contains("wisp.toml:7:34"), "{stderr}");
    assert!(stderr.contains("env.DB_PASSWORD.secret"), "{stderr}");
}

/// Another namespace neither sees nor uses this one's secret, and each namespace's
/// functions get their own namespace's value. Read keys list; only deploy keys set.
#[tokio::test]
async fn a_secret_belongs_to_its_namespace() {
    let server = server();
    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({"name": "other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(put_secret(&server, "db", VALUE).await.status(), 201);
    let in_other = |request: reqwest::RequestBuilder| request.header("wisp-namespace", "other");

    let list: Value = in_other(client().get(server.at("/v1/secrets")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["secrets"], json!([]), "{list}");
    expect_problem(
        in_other(client().delete(server.at("/v1/secrets/db")))
            .send()
            .await
            .unwrap(),
        404,
        "secret_not_found",
    )
    .await;
    // A deploy in `other` cannot refer to `default`'s secret.
    let config = json!({"kind": "event", "env": kit_env("db")});
    let r = deploy_in(&server, "other", "kit", config.clone()).await;
    expect_problem(r, 404, "secret_not_found").await;
    // With a `db` of its own, it gets its own value.
    let r = in_other(client().put(server.at("/v1/secrets/db")))
        .body("other-value")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = deploy_in(&server, "other", "kit", config.clone()).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    deploy_fixture(&server, "kit", "event-kit", config).await;
    let env_in = |ns: &'static str| {
        let server = &server;
        async move {
            let r = client()
                .post(server.at("/v1/functions/kit/invoke"))
                .header("wisp-namespace", ns)
                .body(r#"{"action":"env"}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["DB_PASSWORD"].clone()
        }
    };
    assert_eq!(env_in("default").await, VALUE);
    assert_eq!(env_in("other").await, "other-value");

    // Roles: a read key lists, a deploy key sets; a read key may not set.
    let key = |role: &'static str| {
        let server = &server;
        async move {
            let r = client()
                .post(server.at("/v1/keys"))
                .json(&json!({"role": role, "namespace": "default"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let key: Value = r.json().await.unwrap();
            keyed_client(key["token"].as_str().unwrap())
        }
    };
    let reader = key("read").await;
    let r = reader.get(server.at("/v1/secrets")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = reader
        .put(server.at("/v1/secrets/db"))
        .body("x")
        .send()
        .await
        .unwrap();
    expect_problem(r, 403, "forbidden").await;
    let deployer = key("deploy").await;
    let r = deployer
        .put(server.at("/v1/secrets/db"))
        .body(ROTATED)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = key("invoke")
        .await
        .get(server.at("/v1/secrets"))
        .send()
        .await
        .unwrap();
    expect_problem(r, 403, "forbidden").await;
}

/// `wisp deploy` of a wisp.toml whose `env` refers to a secret: refused, naming it, until
/// the secret is set; then the function sees the value.
#[tokio::test]
async fn wisp_deploy_of_a_manifest_with_a_reference_needs_the_secret_first() {
    let server = server();
    let app = tempfile::tempdir().unwrap();
    std::fs::copy(
        wisp_test_support::fixture("event-kit"),
        app.path().join("kit.wasm"),
    )
    .unwrap();
    std::fs::write(
        app.path().join("wisp.toml"),
        "[app]\nname = \"shop\"\n\n[functions.kit]\nsource = \"kit.wasm\"\nkind = \"event\"\n\
         env = { DB_PASSWORD = { secret = \"db\" } }\n",
    )
    .unwrap();
    let deploy_dir = app.path().to_str().unwrap();
    let out = cli(&server, &["deploy", deploy_dir]);
    assert!(!out.status.success());
    let stderr = text(&out).1;
    assert!(
        stderr.contains("secret `db`") && stderr.contains("wisp secret set db"),
        "{stderr}"
    );
    let out = cli_with_stdin(&server, &["secret", "set", "db"], VALUE);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = cli(&server, &["deploy", deploy_dir]);
    assert!(out.status.success(), "{}", text(&out).1);
    let r = client()
        .post(server.at("/v1/functions/kit/invoke"))
        .body(r#"{"action":"env"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["DB_PASSWORD"], VALUE);
}

/// Deleting a namespace deletes its secrets: one made again under the name starts empty.
#[tokio::test]
async fn deleting_a_namespace_deletes_its_secrets() {
    let server = server();
    let create = || {
        client()
            .post(server.at("/v1/namespaces"))
            .json(&json!({"name": "temp"}))
            .send()
    };
    assert_eq!(create().await.unwrap().status(), 201);
    let r = client()
        .put(server.at("/v1/secrets/db"))
        .header("wisp-namespace", "temp")
        .body(VALUE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client()
        .delete(server.at("/v1/namespaces/temp"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(create().await.unwrap().status(), 201);
    let list: Value = client()
        .get(server.at("/v1/secrets"))
        .header("wisp-namespace", "temp")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["secrets"], json!([]), "{list}");
    // The engine forgot them too: a deploy in the new `temp` cannot refer to `db`.
    let r = deploy_in(
        &server,
        "temp",
        "kit",
        json!({"kind": "event", "env": kit_env("db")}),
    )
    .await;
    expect_problem(r, 404, "secret_not_found").await;
}

/// The engine loads every secret back from the store when it starts: a function that
/// refers to one serves again after a restart, with the last value set.
#[tokio::test]
async fn secrets_outlive_a_restart() {
    let mut server = server();
    assert_eq!(put_secret(&server, "db", VALUE).await.status(), 201);
    assert_eq!(put_secret(&server, "db", ROTATED).await.status(), 200);
    deploy_fixture(
        &server,
        "kit",
        "event-kit",
        json!({"kind": "event", "env": kit_env("db")}),
    )
    .await;
    server.crash_and_restart();
    let r = client()
        .post(server.at("/v1/functions/kit/invoke"))
        .body(r#"{"action":"env"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["DB_PASSWORD"], ROTATED);
    let out = cli(&server, &["secret", "ls"]);
    assert!(text(&out).0.contains("db"), "{}", text(&out).1);
}

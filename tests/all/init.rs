//! `wisp init`: every template renders; those that need no wasm toolchain (Python, Node,
//! cron, queue worker) are deployed with `wisp deploy` and answer as their READMEs say.

use crate::util::{bin, client, get_json, json_when, line_text, logs_when, server, text};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use wisp_test_support::TestServer;

/// `wisp init ARGS`.
fn init(args: &[&str]) -> Output {
    Command::new(bin()).arg("init").args(args).output().unwrap()
}

/// `wisp init --template TEMPLATE DIR`, which must succeed; its stdout.
fn init_ok(template: &str, dir: &Path) -> String {
    let out = init(&["--template", template, dir.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "wisp init --template {template}: {stderr}");
    stdout
}

/// `wisp init ARGS`, which must fail with `code`; its stderr.
fn init_fails(args: &[&str], code: i32) -> String {
    let out = init(args);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(code), "wisp init {args:?}: {stderr}");
    stderr
}

/// Runs `wisp ARGS` against `server`, which must succeed; its stdout.
fn wisp(server: &TestServer, args: &[&str]) -> String {
    let out = server.cli(bin()).args(args).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "wisp {args:?}: {stderr}");
    stdout
}

/// Renders `template` as the app `name`, deploys it, and returns the directory.
fn init_and_deploy(server: &TestServer, template: &str, name: &str) -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join(name);
    let stdout = init_ok(template, &dir);
    assert!(
        stdout.contains(&format!("Created app `{name}` from the `{template}` template")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("cd {} && wisp up", dir.display())),
        "{stdout}"
    );
    let deployed = wisp(server, &["deploy", dir.to_str().unwrap()]);
    assert!(deployed.contains(&format!("created    {name}")), "{deployed}");
    temp
}

/// `wisp invoke NAME --data DATA`, parsed.
fn invoke(server: &TestServer, name: &str, data: &str) -> Value {
    let out = wisp(server, &["invoke", name, "--data", data]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{name} answered {out:?}: {e}"))
}

async fn http_template_answers(template: &str, name: &str) {
    let server = server();
    let _app = init_and_deploy(&server, template, name);
    assert_eq!(
        invoke(&server, name, r#"{"name":"Ada"}"#),
        json!({"message": "Hello, Ada!"}),
        "{template}"
    );
    let response = client()
        .get(server.at(&format!("/{name}/Ada")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{template}");
    assert_eq!(response.text().await.unwrap(), "Hello, Ada!\n", "{template}");
    let response = client()
        .get(server.at(&format!("/{name}?name=Bob")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "Hello, Bob!\n", "{template}");
}

#[tokio::test]
async fn the_python_template_deploys_and_answers() {
    http_template_answers("python", "hello-py").await;
}

#[tokio::test]
async fn the_node_template_deploys_and_answers() {
    http_template_answers("node", "hello-node").await;
}

#[tokio::test]
async fn python_is_the_default_template() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("plain");
    let out = init(&[dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(text(&out).0.contains("from the `python` template"));
    assert!(dir.join("app.py").is_file() && dir.join(".gitignore").is_file());
}

#[tokio::test]
async fn the_cron_template_deploys_with_its_schedule_and_runs_when_invoked() {
    let server = server();
    let _app = init_and_deploy(&server, "cron", "nightly");
    let function = get_json(&server, "/v1/functions/nightly").await;
    assert!(function.to_string().contains("rate(1 minute)"), "{function}");
    let answer = invoke(&server, "nightly", r#"{"time":"2030-01-01T09:00:00Z"}"#);
    assert_eq!(
        answer,
        json!({"job": "nightly", "slot": "2030-01-01T09:00:00Z", "done": true})
    );
    let lines = logs_when(&server, "/v1/functions/nightly/logs", |lines| {
        lines
            .iter()
            .any(|l| line_text(l).contains("running the nightly job for 2030-01-01T09:00:00Z"))
    })
    .await;
    assert!(
        lines
            .iter()
            .any(|l| line_text(l).contains("running the nightly job for 2030-01-01T09:00:00Z")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn the_queue_worker_template_processes_what_is_sent_to_its_queue() {
    let server = server();
    let _app = init_and_deploy(&server, "queue-worker", "resizer");
    // `wisp deploy` created the queue and its dead-letter queue.
    let queues = wisp(&server, &["queue", "ls"]);
    assert!(
        queues.contains("resizer-jobs ") && queues.contains("resizer-jobs-dlq"),
        "{queues}"
    );
    let id = wisp(
        &server,
        &["queue", "send", "resizer-jobs", r#"{"task":"resize","id":7}"#],
    );
    assert_eq!(id.trim().len(), 36, "{id}");
    let processed = |lines: &[Value]| {
        lines
            .iter()
            .any(|l| line_text(l).contains("processed {'task': 'resize', 'id': 7}"))
    };
    let lines = logs_when(&server, "/v1/functions/resizer/logs", processed).await;
    assert!(processed(&lines), "{lines:?}");
    // It succeeded, so the message was deleted.
    let stats = json_when(&server, "/v1/queues/resizer-jobs", |q| {
        q["messages"] == json!({"visible": 0, "in_flight": 0, "delayed": 0})
    })
    .await;
    assert_eq!(
        stats["messages"],
        json!({"visible": 0, "in_flight": 0, "delayed": 0}),
        "{stats}"
    );
    // A batch by hand, as the README shows: one bad message is reported, not the batch.
    let answer = invoke(
        &server,
        "resizer",
        r#"{"Records":[{"messageId":"m1","body":"hello"},{"messageId":"m2","body":"{\"fail\":true}"}]}"#,
    );
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": "m2"}]}));
}

#[test]
fn the_rust_templates_render_a_manifest_a_crate_and_a_readme() {
    for (template, target, wasm) in [
        (
            "http-rust",
            "wasm32-wasip2",
            "target/wasm32-wasip2/release/my_api.wasm",
        ),
        (
            "event-rust",
            "wasm32-wasip1",
            "target/wasm32-wasip1/release/my-api.wasm",
        ),
    ] {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("my-api");
        let stdout = init_ok(template, &dir);
        let build = format!("cargo build --release --target {target}");
        assert!(
            stdout.contains(&format!("rustup target add {target}")) && stdout.contains(&build),
            "{stdout}"
        );

        let manifest = wisp_manifest::load(&dir).unwrap();
        assert_eq!(manifest.app, "my-api");
        assert_eq!(manifest.functions.len(), 1);
        assert_eq!(manifest.functions[0].name.as_str(), "my-api");
        assert_eq!(manifest.functions[0].source, dir.join(wasm), "{template}");

        let cargo: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(cargo["package"]["name"].as_str(), Some("my-api"), "{template}");
        let dependency = if template == "http-rust" {
            "wstd"
        } else {
            "serde_json"
        };
        assert!(cargo["dependencies"].get(dependency).is_some(), "{template}");
        let source = if template == "http-rust" {
            "src/lib.rs"
        } else {
            "src/main.rs"
        };
        assert!(dir.join(source).is_file(), "{template}");

        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(
            readme.starts_with("# my-api\n")
                && readme.contains(&format!("rustup target add {target}"))
                && readme.contains(&build)
                && readme.contains("wisp up"),
            "{readme}"
        );
        let gitignore = std::fs::read_to_string(dir.join(".gitignore")).unwrap();
        assert!(gitignore.contains("/target") && gitignore.contains(".wisp/"));
    }
}

#[test]
fn list_names_every_template_and_the_default() {
    let out = init(&["--list"]);
    assert!(out.status.success());
    let (stdout, _) = text(&out);
    let names: Vec<&str> = stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "http-rust",
            "event-rust",
            "python",
            "node",
            "cron",
            "queue-worker"
        ]
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("python ") && l.ends_with("[default]")),
        "{stdout}"
    );
}

#[test]
fn a_directory_that_is_not_empty_is_refused_unless_forced() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("busy");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    std::fs::write(dir.join("wisp.toml"), "# old").unwrap();
    let path = dir.to_str().unwrap();
    // `.git` alone does not count: `git init && wisp init .` works.
    let fresh = temp.path().join("fresh");
    std::fs::create_dir_all(fresh.join(".git")).unwrap();
    let out = init(&[fresh.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out).1);

    let err = init_fails(&[path], 2);
    assert!(
        err.contains(&format!("`{path}` is not empty")) && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(dir.join("wisp.toml")).unwrap(), "# old");
    assert!(!dir.join("app.py").exists());

    let out = init(&["--force", path]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("wisp.toml (replaced)"), "{stdout}");
    assert!(wisp_manifest::load(&dir).is_ok());
    assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine");
}

#[test]
fn an_unknown_template_is_refused_with_the_list() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("app");
    let err = init_fails(&["--template", "rust", dir.to_str().unwrap()], 2);
    assert!(err.contains("invalid value 'rust'"), "{err}");
    for name in [
        "http-rust",
        "event-rust",
        "python",
        "node",
        "cron",
        "queue-worker",
    ] {
        assert!(err.contains(name), "{name} missing from: {err}");
    }
    assert!(!dir.exists());
}

#[test]
fn an_invalid_name_is_refused_with_a_suggestion() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("My_App");
    let err = init_fails(&[dir.to_str().unwrap()], 2);
    assert!(
        err.contains("invalid app name `My_App`: use lowercase letters") && err.contains("--name my-app"),
        "{err}"
    );
    assert!(!dir.exists());

    // --name names it instead.
    let out = init(&["--name", "my-app", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(wisp_manifest::load(&dir).unwrap().app, "my-app");

    let err = init_fails(&["--name", "Bad", temp.path().join("x").to_str().unwrap()], 2);
    assert!(err.contains("--name: invalid app name `Bad`"), "{err}");
    // A name too long for the queue-worker's dead-letter queue (`NAME-jobs-dlq`).
    let long = format!("q{}", "x".repeat(60));
    let err = init_fails(
        &[
            "--template",
            "queue-worker",
            "--name",
            &long,
            temp.path().join("y").to_str().unwrap(),
        ],
        2,
    );
    assert!(
        err.contains("does not fit this template") && err.contains("shorter"),
        "{err}"
    );
}

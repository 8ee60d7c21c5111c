//! Helpers shared by the end-to-end tests.

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use wisp_test_support::{TestServer, deploy, fixture_bytes};

/// The binary under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wisp"))
}

pub fn client() -> reqwest::Client {
    wisp_test_support::http_client()
}

/// A fresh server.
pub fn server() -> TestServer {
    TestServer::serve(bin())
}

/// A fresh server started with `wisp serve EXTRA…`.
pub fn server_with(extra: &[&str]) -> TestServer {
    TestServer::serve_with(bin(), extra)
}

/// Deploys a fixture and asserts it was created.
pub async fn deploy_fixture(server: &TestServer, name: &str, fixture: &str, config: Value) {
    let response = deploy(&client(), server, name, config, fixture_bytes(fixture)).await;
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 201, "deploying {name} from {fixture}: {body}");
}

/// Asserts a response is a problem document with `status` and `code`; returns it.
pub async fn expect_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string()),
        Some("application/problem+json".to_string()),
        "not a problem document (status {})",
        response.status()
    );
    let got = response.status().as_u16();
    let doc: Value = response.json().await.unwrap();
    assert_eq!((got, doc["code"].as_str().unwrap()), (status, code), "{doc}");
    assert_eq!(doc["status"], status);
    assert_eq!(doc["type"], format!("urn:wisp:error:{code}"));
    assert!(doc["title"].is_string() && doc["detail"].is_string(), "{doc}");
    doc
}

/// The config of an http function on `routes`.
pub fn http_config(routes: Value) -> Value {
    json!({ "kind": "http", "routes": routes })
}

/// `GET path` as JSON.
pub async fn get_json(server: &TestServer, path: &str) -> Value {
    client()
        .get(server.at(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET path` as JSON once `ready` accepts it (or after 10 s, as it is then): logs,
/// invocation records and usage reach the store in batches, a moment after the
/// invocation answers.
pub async fn json_when(server: &TestServer, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let json = get_json(server, path).await;
        if ready(&json) || started.elapsed() > Duration::from_secs(10) {
            return json;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The log lines at `query` (`/v1/functions/NAME/logs?...`) once `ready` accepts them.
pub async fn logs_when(server: &TestServer, query: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let logs = json_when(server, query, |logs| {
        ready(logs["lines"].as_array().map(Vec::as_slice).unwrap_or_default())
    })
    .await;
    logs["lines"].as_array().cloned().unwrap_or_default()
}

/// The text of a log line.
pub fn line_text(line: &Value) -> &str {
    line["line"].as_str().unwrap()
}

/// A Python package from PyPI (`name==version`), installed with pip into
/// `target/…/test-deps/NAME-VERSION` once per target directory, for tests that drive a
/// real client; returns the directory to put on `PYTHONPATH`. The first use needs the
/// registry; a machine without pip fails the test, it never skips it.
pub fn python_package(requirement: &str) -> std::path::PathBuf {
    let deps = bin().parent().unwrap().join("test-deps");
    let dir = deps.join(requirement.replace("==", "-"));
    let done = dir.join(".installed");
    if done.exists() {
        return dir;
    }
    std::fs::create_dir_all(&deps).unwrap();
    let lock = std::fs::File::create(deps.join(".lock")).unwrap();
    lock.lock().unwrap();
    if !done.exists() {
        let status = std::process::Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&dir)
            .arg(requirement)
            .status()
            .unwrap_or_else(|e| panic!("python3 -m pip must be available to install {requirement}: {e}"));
        assert!(status.success(), "pip could not install {requirement}");
        std::fs::write(&done, "").unwrap();
    }
    dir
}

/// A command's stdout and stderr, as text.
pub fn text(output: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `wisp ARGS` against `server`; asserts it succeeded; its stdout.
pub fn wisp(server: &TestServer, args: &[&str]) -> String {
    let out = server.cli(bin()).args(args).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "wisp {args:?}: {stderr}");
    stdout
}

/// Runs `wisp ARGS` with its stdout on a terminal (a pseudo-terminal `script(1)` makes);
/// asserts it succeeded; what the terminal showed (line ends as `\r\n`).
pub fn wisp_on_terminal(server: &TestServer, args: &[&str]) -> String {
    let cli = server.cli(bin());
    let quote = |word: &str| format!("'{}'", word.replace('\'', r"'\''"));
    let line = std::iter::once(cli.get_program().to_string_lossy().into_owned())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|word| quote(&word))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = std::process::Command::new("script");
    script
        .args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .stdin(std::process::Stdio::null());
    for (name, value) in cli.get_envs() {
        match value {
            Some(value) => script.env(name, value),
            None => script.env_remove(name),
        };
    }
    let out = script.output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "wisp {args:?} on a terminal: {stdout}{stderr}"
    );
    stdout
}

/// Runs `wisp ARGS`, expecting it to fail with `code`; its stderr.
pub fn wisp_fails(server: &TestServer, args: &[&str], code: i32) -> String {
    let out = server.cli(bin()).args(args).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(code), "wisp {args:?}: {stderr}");
    stderr
}

//! Process functions: native code under the Lambda Runtime API, through the real
//! binary. Real clients only: AWS's `lambda_runtime` crate, AWS's `awslambdaric`,
//! and Wisp's own Python and Node bootstraps.

use crate::util::{bin, client, expect_problem, get_json, json_when, line_text, logs_when, server};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wisp_test_support::{TestServer, deploy, repo_root};

/// Zips a directory as `wisp deploy` does.
pub fn zip_dir(dir: &Path) -> Vec<u8> {
    wisp_package::pack_dir(dir, &wisp_package::UnpackLimits::default()).unwrap()
}

/// A directory holding `files` (name, content, executable).
pub fn dir_with(files: &[(&str, &[u8], bool)]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for (name, content, executable) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        let mode = if *executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    dir
}

/// The `lambda_runtime` test function, as cargo built it beside the tests.
fn rust_fixture() -> PathBuf {
    let path = bin().parent().unwrap().join("examples/lambda-rust-fixture");
    assert!(
        path.is_file(),
        "{} is missing: `cargo test` builds it (example `lambda-rust-fixture`); run `cargo build --examples`",
        path.display()
    );
    path
}

fn rust_zip() -> Vec<u8> {
    let binary = std::fs::read(rust_fixture()).unwrap();
    let dir = dir_with(&[("bootstrap", &binary, true)]);
    zip_dir(dir.path())
}

fn python_kit_zip() -> Vec<u8> {
    zip_dir(&repo_root().join("tests/native/python-kit"))
}

async fn deploy_zip(server: &TestServer, name: &str, config: Value, zip: Vec<u8>) {
    let response = deploy(&client(), server, name, config, zip).await;
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 201, "deploying {name}: {body}");
}

pub(crate) async fn invoke(server: &TestServer, name: &str, event: Value) -> reqwest::Response {
    client()
        .post(server.at(&format!("/v1/functions/{name}/invoke")))
        .json(&event)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn invoke_ok(server: &TestServer, name: &str, event: Value) -> Value {
    let response = invoke(server, name, event).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Deploys the Python test kit as `name`, its config `python("app.handler")` plus `extra`.
pub(crate) async fn deploy_kit(server: &TestServer, name: &str, extra: Value) {
    let mut config = python("app.handler");
    for (key, value) in extra.as_object().into_iter().flatten() {
        config[key] = value.clone();
    }
    deploy_zip(server, name, config, python_kit_zip()).await;
}

fn python(handler: &str) -> Value {
    json!({ "kind": "event", "runtime": "python", "handler": handler })
}

/// Waits (up to 5 s) until `path` no longer exists.
async fn until_gone(path: &Path) {
    let started = Instant::now();
    while path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{} survived",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ids of the host processes whose command line contains `marker`, zombies included.
fn pids_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

/// Host processes whose command line contains `marker`, zombies included: each id and
/// its state.
fn processes_with(marker: &str) -> Vec<String> {
    pids_with(marker)
        .into_iter()
        .map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            format!("{pid:?} {}", status.lines().nth(2).unwrap_or(""))
        })
        .collect()
}

/// Waits (up to 5 s) until no process carries `marker`. Only the full sandbox (root:
/// a PID namespace per instance) promises this; without it, a process that left the
/// group survives and a killed one may linger as a zombie of a PID 1 that does not reap
/// (docs/native.md), so the check is skipped.
async fn assert_no_process_with(marker: &str) {
    if !is_root() {
        return;
    }
    let started = Instant::now();
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "processes survived: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

#[tokio::test]
async fn a_lambda_runtime_binary_runs_unmodified_and_instances_are_reused() {
    let server = server();
    deploy_zip(
        &server,
        "orders",
        json!({"kind": "event", "runtime": "process", "memory_mb": 256}),
        rust_zip(),
    )
    .await;
    let response = invoke(&server, "orders", json!({"order": 7})).await;
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-wisp-invocation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let first: Value = response.json().await.unwrap();
    assert_eq!(first["event"], json!({"order": 7}));
    assert_eq!(
        first["request_id"], id,
        "the Runtime API's request id is the invocation id"
    );
    assert_eq!(first["function_name"], "orders");
    assert_eq!(first["memory_mb"], 256);
    assert_eq!(
        first["function_arn"],
        "arn:aws:lambda:local:000000000000:function:orders"
    );
    let deadline = first["deadline_ms"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        deadline > now && deadline <= now + 30_000,
        "deadline {deadline}, now {now}"
    );

    // Warm: the same process serves the next invocation.
    let second = invoke_ok(&server, "orders", json!({})).await;
    assert_eq!(second["log_stream"], first["log_stream"]);
    // The cold start's REPORT line has its init time; the warm one's has none.
    let is_report = |l: &&Value| line_text(l).starts_with("REPORT");
    let lines = logs_when(&server, "/v1/functions/orders/logs", |lines| {
        lines.iter().filter(is_report).count() >= 2
    })
    .await;
    let reports: Vec<&str> = lines.iter().filter(is_report).map(line_text).collect();
    assert_eq!(reports.len(), 2, "{lines:?}");
    assert!(
        reports[0].contains("Init Duration: ") && reports[0].contains("Max Memory Used: "),
        "{reports:?}"
    );
    assert!(!reports[1].contains("Init Duration"), "{reports:?}");

    // The error path: lambda_runtime posts the handler's error.
    let doc = expect_problem(
        invoke(&server, "orders", json!({"action": "fail", "order": 9})).await,
        502,
        "function_error",
    )
    .await;
    assert_eq!(doc["error"]["errorType"], "FixtureError", "{doc}");
    assert_eq!(doc["error"]["errorMessage"], "refused order 9", "{doc}");
    // A handled error keeps the instance.
    assert_eq!(
        invoke_ok(&server, "orders", json!({})).await["log_stream"],
        first["log_stream"]
    );

    // A crash mid-invocation is Lambda's Runtime.ExitError, and the instance is replaced.
    let doc = expect_problem(
        invoke(&server, "orders", json!({"action": "exit"})).await,
        502,
        "function_error",
    )
    .await;
    assert_eq!(doc["error"]["errorType"], "Runtime.ExitError", "{doc}");
    assert!(
        doc["error"]["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited with error: exit status 3"),
        "{doc}"
    );
    let after = invoke_ok(&server, "orders", json!({})).await;
    assert_ne!(after["log_stream"], first["log_stream"], "a new instance");
    assert_eq!(after["event"], json!({}));
}

#[tokio::test]
async fn a_timeout_kills_every_process_of_the_instance() {
    let server = server();
    deploy_kit(&server, "slow", json!({"timeout": "1500ms"})).await;
    let marker = format!("7{}.5", std::process::id());
    let started = Instant::now();
    let doc = expect_problem(
        invoke(&server, "slow", json!({"action": "orphans", "marker": marker})).await,
        504,
        "timeout",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(doc["error"]["errorType"], "Sandbox.Timedout", "{doc}");
    assert!(
        doc["error"]["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Task timed out after 1.50 seconds"),
        "{doc}"
    );
    // Both children, the one that left the process group too, are gone and reaped.
    assert_no_process_with(&marker).await;
    // And the function serves on, from a new instance.
    invoke_ok(&server, "slow", json!({"action": "echo"})).await;
}

#[tokio::test]
async fn a_fork_bomb_is_contained_and_reaped() {
    let server = server();
    // Memory enough for a thousand `sleep`s: the process limit is what stops it.
    deploy_kit(&server, "bomb", json!({"timeout": "60s", "memory_mb": 2048})).await;
    let marker = format!("8{}.25", std::process::id());
    // The bomb hits the process limit, not the machine's: fork fails with EAGAIN.
    let report = invoke_ok(&server, "bomb", json!({"action": "fork_bomb", "marker": marker})).await;
    let forks = report["forks"].as_u64().unwrap();
    assert!(forks > 100 && forks < 1024, "{report}");
    assert_eq!(report["error"], "EAGAIN", "{report}");
    assert!(
        !processes_with(&marker).is_empty(),
        "the children should still be sleeping"
    );
    // The instance ends (here: the runtime exits): every child goes with it, reaped.
    let _ = invoke(&server, "bomb", json!({"action": "exit", "code": 1})).await;
    assert_no_process_with(&marker).await;
    // The server is fine, and the function serves on from a new instance.
    invoke_ok(&server, "bomb", json!({"action": "echo"})).await;
}

#[tokio::test]
async fn memory_open_files_and_user_are_capped() {
    let server = server();
    deploy_kit(&server, "caps", json!({"memory_mb": 64})).await;
    // Memory: past 64 MB the instance is stopped (cgroup) or its allocation fails (rlimit).
    let response = invoke(&server, "caps", json!({"action": "memory", "mb": 200})).await;
    let doc: Value = response.json().await.unwrap();
    match doc["code"].as_str() {
        Some("out_of_memory") => assert_eq!(doc["error"]["errorType"], "Runtime.OutOfMemory", "{doc}"),
        _ => assert_eq!(doc["error"]["errorType"], "MemoryError", "{doc}"),
    }
    // Within the limit, fine.
    assert_eq!(
        invoke_ok(&server, "caps", json!({"action": "memory", "mb": 16})).await["allocated_mb"],
        16
    );

    // Open files: the 1,025th fails with EMFILE.
    let files = invoke_ok(&server, "caps", json!({"action": "open_files"})).await;
    assert_eq!(files["error"], "EMFILE", "{files}");
    assert_eq!(files["highest_fd"], 1023, "{files}");

    // Who it runs as, and what it may write.
    let who = invoke_ok(&server, "caps", json!({"action": "whoami"})).await;
    if is_root() {
        assert_eq!(who["uid"], 65534, "{who}");
        assert_eq!(who["groups"], json!([]), "{who}");
        assert_eq!(who["cwd"], "/var/task");
        let write = invoke_ok(&server, "caps", json!({"action": "write_code"})).await;
        assert_eq!(write["written"], false, "the code is read-only: {write}");
    }
}

#[tokio::test]
async fn each_instance_has_a_private_temp_dir_wiped_when_it_ends() {
    let server = server();
    deploy_kit(&server, "tmp", json!({"timeout": "2s"})).await;
    let first = invoke_ok(&server, "tmp", json!({"action": "tmp_write", "name": "one"})).await;
    assert_eq!(first["files"], json!(["one"]), "{first}");
    // The same (warm) instance still has it.
    let again = invoke_ok(&server, "tmp", json!({"action": "tmp_list"})).await;
    assert_eq!(again["files"], json!(["one"]));
    // A crash ends the instance; its successor starts with an empty temp dir.
    let _ = invoke(&server, "tmp", json!({"action": "exit", "code": 1})).await;
    let fresh = invoke_ok(&server, "tmp", json!({"action": "tmp_list"})).await;
    assert_eq!(fresh["files"], json!([]), "{fresh}");
    // Nothing of it is left on the host.
    let instances = server.data_dir.join("instances");
    let left: Vec<_> = std::fs::read_dir(&instances)
        .map(|d| d.flatten().count())
        .into_iter()
        .collect();
    assert!(left.iter().all(|n| *n <= 1), "{left:?}");
}

#[tokio::test]
async fn instances_see_lambdas_environment_and_nothing_of_the_servers() {
    let server = server();
    let mut config = python("app.handler");
    config["env"] = json!({"STAGE": "test", "TZ": "Europe/Paris"});
    config["memory_mb"] = json!(192);
    deploy_zip(&server, "envy", config, python_kit_zip()).await;
    let env = invoke_ok(&server, "envy", json!({"action": "env"})).await;
    assert_eq!(env["STAGE"], "test");
    assert_eq!(env["TZ"], "Europe/Paris", "the function's env may set TZ");
    assert_eq!(env["_HANDLER"], "app.handler");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "envy");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "192");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "1", "{env}");
    assert!(
        env["AWS_LAMBDA_RUNTIME_API"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{env}"
    );
    // Where Wisp's services and the outside are reached from.
    assert!(env["AWS_ENDPOINT_URL_S3"].is_string(), "{env}");
    assert!(env["WISP_TOKEN"].as_str().unwrap().starts_with("WF"), "{env}");
    for key in ["LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "TMPDIR", "PATH"] {
        assert!(env[key].is_string(), "{key} missing: {env}");
    }
    // Nothing of the server's own environment (the test runner's, passed to wisp).
    assert!(
        env.get("CARGO_MANIFEST_DIR").is_none() && env.get("WISP_LOG").is_none(),
        "{env}"
    );
    // The Python context.
    let echo = invoke_ok(&server, "envy", json!({"action": "echo", "n": 1})).await;
    assert_eq!(echo["function_name"], "envy");
    assert_eq!(echo["memory_limit_in_mb"], 192);
    let remaining = echo["remaining_ms"].as_i64().unwrap();
    assert!(remaining > 25_000 && remaining <= 30_000, "{echo}");
}

#[tokio::test]
async fn handler_errors_init_errors_and_logs_are_lambda_shaped() {
    let server = server();
    deploy_zip(&server, "kit", python("app.handler"), python_kit_zip()).await;
    let doc = expect_problem(
        invoke(&server, "kit", json!({"action": "fail", "order": 4})).await,
        502,
        "function_error",
    )
    .await;
    assert_eq!(doc["error"]["errorType"], "ValueError", "{doc}");
    assert_eq!(doc["error"]["errorMessage"], "bad order 4");
    assert!(
        doc["error"]["stackTrace"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{doc}"
    );

    // Output on both streams is the invocation's logs.
    let response = invoke(&server, "kit", json!({"action": "log", "text": "needle-42"})).await;
    let id = response.headers()["x-wisp-invocation-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(response.status(), 200);
    let lines = logs_when(
        &server,
        &format!("/v1/functions/kit/logs?invocation={id}"),
        |lines| lines.iter().any(|l| line_text(l).starts_with("REPORT")),
    )
    .await;
    let lines: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["stream"].as_str().unwrap().to_string(),
                line_text(l).to_string(),
            )
        })
        .collect();
    assert!(
        lines.contains(&("stdout".into(), "to stdout: needle-42".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&("stderr".into(), "to stderr: needle-42".into())),
        "{lines:?}"
    );
    // Closed by Lambda's REPORT line.
    let (stream, report) = lines.last().unwrap();
    assert_eq!(stream, "stderr");
    assert!(
        report.starts_with(&format!("REPORT RequestId: {id}\tDuration: ")),
        "{report}"
    );
    assert!(report.contains("\tMemory Size: 128 MB"), "{report}");

    // Through Lambda's Invoke with `LogType: Tail`, the same output comes back at once, in
    // `X-Amz-Log-Result`, closed by the runtime's own REPORT line (and no second one).
    let response = client()
        .post(server.at("/2015-03-31/functions/kit/invocations"))
        .header("x-amz-log-type", "Tail")
        .json(&json!({"action": "log", "text": "needle-43"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_string();
    let tail = response.headers()["x-amz-log-result"].to_str().unwrap();
    let tail =
        String::from_utf8(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, tail).unwrap())
            .unwrap();
    assert!(tail.contains("to stdout: needle-43\n"), "{tail}");
    assert!(tail.contains("to stderr: needle-43\n"), "{tail}");
    assert_eq!(tail.matches("REPORT RequestId: ").count(), 1, "{tail}");
    let report = tail.lines().last().unwrap();
    assert!(
        report.starts_with(&format!("REPORT RequestId: {id}\tDuration: ")),
        "{tail}"
    );

    // Output past the per-invocation cap is dropped, and the log says so.
    let response = invoke(&server, "kit", json!({"action": "log_flood", "kib": 1024})).await;
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-wisp-invocation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let query = format!("/v1/functions/kit/logs?invocation={id}&limit=10000");
    let lines = logs_when(&server, &query, |lines| {
        lines
            .iter()
            .any(|l| line_text(l).contains("log limit was dropped"))
    })
    .await;
    let kept: usize = lines.iter().map(|l| line_text(l).len() + 1).sum();
    assert!(kept < 300 * 1024, "{kept} bytes kept");
    assert!(
        lines
            .iter()
            .any(|l| line_text(l).contains("log limit was dropped")),
        "no truncation notice"
    );

    // A module that fails at import: an init error, reported as the runtime reported it.
    let broken = dir_with(&[(
        "app.py",
        b"import no_such_module\n\ndef handler(e, c):\n    return 1\n",
        false,
    )]);
    deploy_zip(&server, "broken", python("app.handler"), zip_dir(broken.path())).await;
    let doc = expect_problem(invoke(&server, "broken", json!({})).await, 502, "function_error").await;
    assert_eq!(doc["error"]["errorType"], "Runtime.ImportModuleError", "{doc}");
    assert!(
        doc["error"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("no_such_module"),
        "{doc}"
    );
}

#[tokio::test]
async fn bad_code_is_refused_at_deploy_and_nothing_escapes_the_zip() {
    let server = server();
    let c = client();
    let refused = |name: &'static str, config: Value, code: Vec<u8>| {
        let c = c.clone();
        let server = &server;
        async move { expect_problem(deploy(&c, server, name, config, code).await, 400, "invalid_code").await }
    };
    let process = json!({"kind": "event", "runtime": "process"});

    let no_bootstrap = dir_with(&[("main.sh", b"#!/bin/sh\n", true)]);
    let doc = refused("a", process.clone(), zip_dir(no_bootstrap.path())).await;
    assert!(
        doc["detail"].as_str().unwrap().contains("has no `bootstrap`"),
        "{doc}"
    );

    let not_executable = dir_with(&[("bootstrap", b"#!/bin/sh\n", false)]);
    let doc = refused("b", process.clone(), zip_dir(not_executable.path())).await;
    assert!(
        doc["detail"].as_str().unwrap().contains("not executable"),
        "{doc}"
    );

    let doc = refused("c", process.clone(), b"#!/bin/sh\necho hi\n".to_vec()).await;
    assert!(
        doc["detail"].as_str().unwrap().contains("not a zip archive"),
        "{doc}"
    );
    let doc = refused(
        "d",
        python("app.handler"),
        wisp_test_support::fixture_bytes("event-kit"),
    )
    .await;
    assert!(
        doc["detail"].as_str().unwrap().contains("WebAssembly binary"),
        "{doc}"
    );

    let no_module = dir_with(&[("other.py", b"", false)]);
    let doc = refused("e", python("app.handler"), zip_dir(no_module.path())).await;
    assert!(doc["detail"].as_str().unwrap().contains("`app.py`"), "{doc}");

    // Zip slip: an entry climbing out of the function's directory.
    let evil = {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        zip.start_file("bootstrap", options).unwrap();
        zip.write_all(b"#!/bin/sh\n").unwrap();
        zip.start_file("../../escaped-by-zip-slip", options).unwrap();
        zip.write_all(b"pwned").unwrap();
        zip.finish().unwrap().into_inner()
    };
    let doc = refused("f", process.clone(), evil).await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("escapes the function's directory"),
        "{doc}"
    );
    let data = &server.data_dir;
    for dir in [
        data.to_path_buf(),
        data.join("functions"),
        data.parent().unwrap().to_path_buf(),
    ] {
        assert!(
            !dir.join("escaped-by-zip-slip").exists(),
            "written under {}",
            dir.display()
        );
    }
    // Nothing of the refused deploys is registered.
    let list = get_json(&server, "/v1/functions").await;
    assert_eq!(list["functions"], json!([]));

    // A wasm function may not name a handler; a process function may not be `http`.
    let doc = expect_problem(
        deploy(
            &c,
            &server,
            "g",
            json!({"kind": "http", "runtime": "node", "handler": "index.handler"}),
            vec![],
        )
        .await,
        400,
        "invalid_config",
    )
    .await;
    assert!(
        doc["detail"].as_str().unwrap().contains("use kind `event`"),
        "{doc}"
    );
}

/// As on Lambda, a handler's `context.function_version` is the number of the version that
/// runs, and `context.invoked_function_arn` the ARN it was invoked by: qualified by the
/// version or alias its caller named, bare when none.
#[tokio::test]
async fn a_handler_knows_its_version_number_and_the_arn_it_was_invoked_by() {
    let server = server();
    deploy_kit(&server, "py", json!({})).await;
    let mut config = python("app.handler");
    config["env"] = json!({"STAGE": "two"});
    let r = deploy(&client(), &server, "py", config, python_kit_zip()).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = client()
        .put(server.at("/v1/functions/py/aliases/prod"))
        .json(&json!({"version": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let arn = "arn:aws:lambda:local:000000000000:function:py";
    for (name, version, invoked) in [
        ("py", "2", arn.to_string()),
        ("py:prod", "1", format!("{arn}:prod")),
        ("py:2", "2", format!("{arn}:2")),
        ("py:1", "1", format!("{arn}:1")),
        ("py:$LATEST", "2", format!("{arn}:$LATEST")),
        ("py:live", "2", format!("{arn}:live")),
    ] {
        let response = client()
            .post(server.at(&format!("/2015-03-31/functions/{name}/invocations")))
            .json(&json!({"action": "echo"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["function_version"], version, "{name}: {answer}");
        assert_eq!(answer["invoked_function_arn"], invoked, "{name}: {answer}");
        assert!(
            answer["log_stream"]
                .as_str()
                .unwrap()
                .contains(&format!("/[{version}]")),
            "{name}: {answer}"
        );
    }
    // A route or Wisp's own API runs `live` unqualified, as Lambda's unqualified ARN says.
    let answer = invoke_ok(&server, "py", json!({"action": "echo"})).await;
    assert_eq!(answer["invoked_function_arn"], arn, "{answer}");
    assert_eq!(answer["function_version"], "2", "{answer}");
    // An async event runs as what it named.
    let response = client()
        .post(server.at("/2015-03-31/functions/py:prod/invocations"))
        .header("x-amz-invocation-type", "Event")
        .json(&json!({"action": "echo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_string();
    let event = json_when(&server, &format!("/v1/invocations/{id}"), |v| {
        v["status"] == "succeeded"
    })
    .await;
    assert_eq!(
        event["result"]["invoked_function_arn"],
        format!("{arn}:prod"),
        "{event}"
    );
    assert_eq!(event["result"]["function_version"], "1", "{event}");
}

/// `X-Amz-Client-Context` as an SDK sends it: base64 of a JSON object, here written with
/// line breaks and non-ASCII text.
fn client_context_header() -> String {
    let json = "{\n  \"client\": {\"app_title\": \"shop\"},\n  \"custom\": {\"tenant\": \"Ærø\", \"tier\": 2},\n  \"env\": {\"locale\": \"da\"}\n}";
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, json)
}

#[tokio::test]
async fn lambdas_client_context_reaches_python_and_node_handlers() {
    let server = server();
    deploy_kit(&server, "py", json!({})).await;
    let code = dir_with(&[(
        "index.js",
        b"exports.handler = async (event, context) => ({ cc: context.clientContext ?? null });\n",
        false,
    )]);
    let config = json!({"kind": "event", "runtime": "node", "handler": "index.handler"});
    deploy_zip(&server, "js", config, zip_dir(code.path())).await;
    let invoke_with = |name: &str, context: Option<String>| {
        let mut request = client()
            .post(server.at(&format!("/2015-03-31/functions/{name}/invocations")))
            .json(&json!({"action": "echo"}));
        if let Some(context) = context {
            request = request.header("x-amz-client-context", context);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers().get("x-amz-function-error"), None);
            response.json::<Value>().await.unwrap()
        }
    };
    let expected = json!({
        "client": {"app_title": "shop"},
        "custom": {"tenant": "Ærø", "tier": 2},
        "env": {"locale": "da"},
    });
    let answer = invoke_with("py", Some(client_context_header())).await;
    assert_eq!(answer["client_context"], expected, "{answer}");
    let answer = invoke_with("js", Some(client_context_header())).await;
    assert_eq!(answer["cc"], expected, "{answer}");
    // Only the invocation that was sent one has it: not the next on the same instance.
    let answer = invoke_with("py", None).await;
    assert_eq!(answer["client_context"], Value::Null, "{answer}");
    let answer = invoke_with("js", None).await;
    assert_eq!(answer["cc"], Value::Null, "{answer}");
}

#[tokio::test]
async fn node_handlers_sync_async_and_throwing() {
    let server = server();
    let code = dir_with(&[(
        "index.js",
        b"exports.sync = (event, context) => ({ sum: event.a + event.b, fn: context.functionName });\n\
          exports.later = async (event) => { await new Promise(r => setTimeout(r, 20)); return { later: event.n }; };\n\
          exports.throws = async () => { const e = new TypeError('no such order'); throw e; };\n\
          exports.callback = (event, context, callback) => setTimeout(() => callback(null, { cb: event.n }), 5);\n\
          exports.forgets = (event, context, callback) => {};\n",
        false,
    )]);
    let zip = zip_dir(code.path());
    for handler in ["sync", "later", "throws", "callback", "forgets"] {
        let config = json!({"kind": "event", "runtime": "node", "handler": format!("index.{handler}")});
        deploy_zip(&server, handler, config, zip.clone()).await;
    }
    assert_eq!(
        invoke_ok(&server, "sync", json!({"a": 2, "b": 3})).await,
        json!({"sum": 5, "fn": "sync"})
    );
    assert_eq!(
        invoke_ok(&server, "later", json!({"n": 7})).await,
        json!({"later": 7})
    );
    let doc = expect_problem(invoke(&server, "throws", json!({})).await, 502, "function_error").await;
    assert_eq!(doc["error"]["errorType"], "TypeError", "{doc}");
    assert_eq!(doc["error"]["errorMessage"], "no such order", "{doc}");
    assert_eq!(
        invoke_ok(&server, "callback", json!({"n": 3})).await,
        json!({"cb": 3})
    );
    // A callback handler that never calls back and leaves nothing scheduled: `null`, as AWS.
    assert_eq!(invoke_ok(&server, "forgets", json!({})).await, Value::Null);
    // Its instance serves on.
    assert_eq!(invoke_ok(&server, "forgets", json!({})).await, Value::Null);
}

/// AWS's own Python runtime interface client, installed from PyPI once per target
/// directory (the tests need the registry the first time).
fn awslambdaric() -> PathBuf {
    crate::util::python_package("awslambdaric==4.2.2")
}

#[tokio::test]
async fn awslambdaric_is_satisfied_by_wisps_runtime_api() {
    let ric = awslambdaric();
    // The function's code: the handler, AWS's client beside it, and a bootstrap
    // that starts the client as AWS documents for custom images.
    let code = tempfile::tempdir().unwrap();
    copy_dir(&ric, code.path());
    std::fs::write(
        code.path().join("app.py"),
        "def handler(event, context):\n    if event.get('fail'):\n        raise KeyError('missing sku')\n    cc = context.client_context\n    return {'got': event, 'request_id': context.aws_request_id, 'custom': cc and cc.custom}\n",
    )
    .unwrap();
    std::fs::write(
        code.path().join("bootstrap"),
        "#!/bin/sh\nexec python3 -m awslambdaric app.handler\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            code.path().join("bootstrap"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    let server = server();
    deploy_zip(
        &server,
        "ric",
        json!({"kind": "event", "runtime": "process", "handler": "app.handler"}),
        zip_dir(code.path()),
    )
    .await;
    let response = invoke(&server, "ric", json!({"sku": "A-1"})).await;
    let id = response.headers()["x-wisp-invocation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = response.text().await.unwrap();
    let answer: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(
        answer,
        json!({"got": {"sku": "A-1"}, "request_id": id, "custom": null})
    );
    // Lambda's `ClientContext`, as AWS's client reads it into `context.client_context`.
    let response = client()
        .post(server.at("/2015-03-31/functions/ric/invocations"))
        .header("x-amz-client-context", client_context_header())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["custom"], json!({"tenant": "Ærø", "tier": 2}), "{answer}");
    let doc = expect_problem(
        invoke(&server, "ric", json!({"fail": true})).await,
        502,
        "function_error",
    )
    .await;
    assert_eq!(doc["error"]["errorType"], "KeyError", "{doc}");
    // Warm, and still answering.
    invoke_ok(&server, "ric", json!({})).await;
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test]
async fn the_python_and_node_examples_serve_as_they_are() {
    for example in ["python", "node"] {
        let temp = tempfile::tempdir().unwrap();
        let dir = repo_root().join("examples").join(example);
        let server = TestServer::spawn(bin(), &["up", dir.to_str().unwrap()], &temp.path().join("data"));
        let c = client();
        let response = c.get(server.at("/hello/ada")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{example}");
        assert_eq!(response.text().await.unwrap().trim(), "Hello, ada!", "{example}");
        let response = c.get(server.at("/hello?name=bo")).send().await.unwrap();
        assert_eq!(response.text().await.unwrap().trim(), "Hello, bo!", "{example}");
        let echo = invoke_ok(&server, "echo", json!({"a": 1})).await;
        assert_eq!(echo["event"], json!({"a": 1}), "{example}: {echo}");
    }
}

/// A line of `/proc/PID/status` (`Threads`, `PPid`…) as a number.
fn status_field(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .parse()
        .ok()
}

/// The names of a process's threads.
fn thread_names(pid: &str) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The server returns freed memory to the system in the background (jemalloc's
/// background thread), and its instance shims, the same binary, start no thread of
/// their own: each is one thread, before and after it has started a runtime.
#[tokio::test]
async fn the_server_frees_memory_in_the_background_and_its_shims_are_one_thread() {
    let server = server();
    deploy_kit(&server, "echo", json!({})).await;
    invoke_ok(&server, "echo", json!({"a": 1})).await;
    let server_pid = server.pid().to_string();
    assert!(
        thread_names(&server_pid)
            .iter()
            .any(|name| name.starts_with("jemalloc_bg")),
        "no background thread returns freed memory: {:?}",
        thread_names(&server_pid)
    );
    let shims: Vec<String> = pids_with("__instance-shim")
        .into_iter()
        .filter(|pid| status_field(pid, "PPid") == Some(u64::from(server.pid())))
        .collect();
    assert!(!shims.is_empty(), "the server started no shim");
    for pid in &shims {
        assert_eq!(
            status_field(pid, "Threads"),
            Some(1),
            "shim {pid} runs threads {:?}",
            thread_names(pid)
        );
    }
}

#[tokio::test]
async fn deploying_a_directory_twice_is_unchanged_and_ls_shows_the_runtime() {
    let server = server();
    let app = repo_root().join("examples/python");
    let deploy = || {
        server
            .cli(bin())
            .args(["deploy", app.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let first = deploy();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stdout = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(
        stdout.contains("created") && stdout.contains("hello") && stdout.contains("echo"),
        "{stdout}"
    );
    // The directory is zipped the same way every time: nothing changed, nothing deploys.
    let second = deploy();
    let stdout = String::from_utf8_lossy(&second.stdout).to_string();
    assert_eq!(stdout.matches("unchanged").count(), 2, "{stdout}");

    let ls = server.cli(bin()).arg("ls").output().unwrap();
    let stdout = String::from_utf8_lossy(&ls.stdout).to_string();
    let header: Vec<&str> = stdout.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header[..3], ["NAME", "KIND", "RUNTIME"]);
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("hello") && l.contains("python app.hello")),
        "{stdout}"
    );
}

#[tokio::test]
async fn an_instance_cannot_use_another_instances_runtime_api() {
    if !is_root() {
        return; // the check needs the instances' cgroups
    }
    let server = server();
    deploy_zip(&server, "victim", python("app.handler"), python_kit_zip()).await;
    deploy_zip(&server, "thief", python("app.handler"), python_kit_zip()).await;
    let env = invoke_ok(&server, "victim", json!({"action": "env"})).await;
    let api = env["AWS_LAMBDA_RUNTIME_API"].as_str().unwrap().to_string();
    let own_network = api == "127.0.0.1:9001";
    let stolen = invoke(&server, "thief", json!({"action": "steal", "api": api})).await;
    let status = stolen.status();
    let stolen = stolen.text().await.unwrap();
    if own_network {
        // With a network of its own, the victim's address leads to the thief's own
        // Runtime API (the victim's cannot be reached at all): asking it for the next
        // event mid-invocation fails the thief's own invocation.
        assert_eq!(status, 502, "{stolen}");
        assert!(stolen.contains("without answering this one"), "{stolen}");
    } else {
        assert_eq!(status, 200, "{stolen}");
        assert!(stolen.contains("\"refused\""), "{stolen}");
    }
    // The victim serves on, undisturbed.
    assert_eq!(
        invoke_ok(&server, "victim", json!({"action": "echo"})).await["function_name"],
        "victim"
    );
    if own_network {
        return;
    }
    assert!(
        server
            .stderr_containing("refused a Runtime API connection")
            .contains("refused a Runtime API connection")
    );
}

#[tokio::test]
async fn no_instance_outlives_a_killed_server() {
    let mut server = server();
    deploy_kit(&server, "linger", json!({"timeout": "60s"})).await;
    let marker = format!("6{}.125", std::process::id());
    // An invocation in flight, whose instance has children of its own.
    let url = server.at("/v1/functions/linger/invoke");
    let event = json!({"action": "orphans", "marker": marker});
    let in_flight = tokio::spawn(async move { client().post(url).json(&event).send().await });
    let started = Instant::now();
    while processes_with(&marker).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the children never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.signal("KILL");
    server.wait(Duration::from_secs(5));
    assert!(in_flight.await.unwrap().is_err(), "the server is gone");
    assert_no_process_with(&marker).await;
}

/// A hand-written runtime that breaks the protocol on purpose: it answers an id that
/// is not the invocation's, then the right one; its second event it fails without a
/// body. The Runtime API's answers go to stderr.
const ROGUE_RUNTIME: &str = r#"#!/usr/bin/python3
import http.client, os, sys
api = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
def call(method, path, body=None, headers={}):
    api.request(method, "/2018-06-01/runtime" + path, body, headers)
    r = api.getresponse()
    return r.status, r.headers, r.read()
n = 0
while True:
    status, headers, event = call("GET", "/invocation/next")
    request_id = headers["Lambda-Runtime-Aws-Request-Id"]
    n += 1
    if n == 1:
        status, _, answer = call("POST", "/invocation/not-the-id/response", b'"wrong"')
        print("wrong id:", status, answer.decode(), file=sys.stderr, flush=True)
        call("POST", "/invocation/%s/response" % request_id, b'{"right":true}')
    else:
        status, _, answer = call("POST", "/invocation/%s/error" % request_id, b"",
                                 {"Lambda-Runtime-Function-Error-Type": "Rogue.Failure"})
"#;

#[tokio::test]
async fn runtimes_that_break_the_protocol_get_lambdas_answers() {
    let server = server();
    let process = json!({"kind": "event", "runtime": "process"});
    let rogue = dir_with(&[("bootstrap", ROGUE_RUNTIME.as_bytes(), true)]);
    deploy_zip(&server, "rogue", process.clone(), zip_dir(rogue.path())).await;
    let response = invoke(&server, "rogue", json!({})).await;
    let id = response.headers()["x-wisp-invocation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = response.text().await.unwrap();
    if text != r#"{"right":true}"# {
        let query = format!("/v1/functions/rogue/logs?invocation={id}");
        let lines = logs_when(&server, &query, |l| !l.is_empty()).await;
        panic!("{text}\nlogs: {lines:?}\nserver: {}", server.stderr());
    }
    let lines = logs_when(
        &server,
        &format!("/v1/functions/rogue/logs?invocation={id}"),
        |lines| lines.iter().any(|l| line_text(l).starts_with("wrong id:")),
    )
    .await;
    let wrong = lines
        .iter()
        .map(line_text)
        .find(|l| l.starts_with("wrong id:"))
        .unwrap();
    assert!(
        wrong.starts_with("wrong id: 400") && wrong.contains("InvalidRequestID"),
        "{wrong}"
    );
    // An error with no body: its type from the header.
    let doc = expect_problem(invoke(&server, "rogue", json!({})).await, 502, "function_error").await;
    assert_eq!(doc["error"]["errorType"], "Rogue.Failure", "{doc}");

    // A runtime that exits before asking for work.
    let quitter = dir_with(&[("bootstrap", b"#!/bin/sh\necho giving up >&2\nexit 0\n", true)]);
    deploy_zip(&server, "quitter", process.clone(), zip_dir(quitter.path())).await;
    let doc = expect_problem(invoke(&server, "quitter", json!({})).await, 502, "function_error").await;
    assert_eq!(doc["error"]["errorType"], "Runtime.ExitError", "{doc}");
    assert_eq!(
        doc["error"]["errorMessage"], "Runtime exited without providing a reason",
        "{doc}"
    );

    // A bootstrap that cannot be executed: Lambda's Runtime.InvalidEntrypoint, with the
    // reason in the function's log.
    let bad = dir_with(&[("bootstrap", b"#!/no/such/interpreter\n", true)]);
    deploy_zip(&server, "bad", process.clone(), zip_dir(bad.path())).await;
    let response = invoke(&server, "bad", json!({})).await;
    let id = response.headers()["x-wisp-invocation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let doc = expect_problem(response, 502, "function_error").await;
    assert_eq!(doc["error"]["errorType"], "Runtime.InvalidEntrypoint", "{doc}");
    let query = format!("/v1/functions/bad/logs?invocation={id}");
    let lines = logs_when(&server, &query, |l| {
        l.iter()
            .any(|l| line_text(l).contains("cannot start the runtime"))
    })
    .await;
    assert!(
        lines
            .iter()
            .any(|l| line_text(l).contains("No such file or directory")),
        "{lines:?}"
    );

    // A result over 6 MiB: the runtime is told 413, the caller gets response_too_large,
    // and the instance serves on.
    deploy_zip(&server, "big", python("app.handler"), python_kit_zip()).await;
    let first = invoke_ok(&server, "big", json!({"action": "echo"})).await;
    let doc = expect_problem(
        invoke(&server, "big", json!({"action": "big", "mb": 7})).await,
        502,
        "response_too_large",
    )
    .await;
    assert!(doc["detail"].as_str().unwrap().contains("6291456"), "{doc}");
    let after = invoke_ok(&server, "big", json!({"action": "echo"})).await;
    assert_eq!(after["log_stream"], first["log_stream"], "the same instance");
}

/// The pids cgroup of an instance, from its log stream name (`…/[VERSION]INSTANCE`).
fn instance_cgroup(server: &TestServer, log_stream: &str) -> PathBuf {
    let instance = log_stream.rsplit(']').next().unwrap();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let pids_path = own
        .lines()
        .find_map(|l| {
            l.split(':')
                .nth(1)
                .filter(|c| c.split(',').any(|c| c == "pids"))
                .map(|_| l)
        })
        .and_then(|l| l.splitn(3, ':').nth(2))
        .unwrap_or("/")
        .to_string();
    PathBuf::from("/sys/fs/cgroup/pids")
        .join(pids_path.trim_start_matches('/'))
        .join(format!("wisp-{}", server.pid()))
        .join(instance)
}

#[tokio::test]
async fn replacing_or_deleting_a_function_stops_its_instances() {
    if !is_root() || !Path::new("/sys/fs/cgroup/pids").is_dir() {
        return; // instances are found through their cgroups
    }
    let server = server();
    deploy_zip(&server, "short", python("app.handler"), python_kit_zip()).await;
    let first = invoke_ok(&server, "short", json!({"action": "echo"})).await;
    let cgroup = instance_cgroup(&server, first["log_stream"].as_str().unwrap());
    assert!(
        cgroup.join("cgroup.procs").exists(),
        "{} missing",
        cgroup.display()
    );

    // A new version replaces the pool: the old instance stops.
    let mut config = python("app.handler");
    config["env"] = json!({"V": "2"});
    let response = deploy(&client(), &server, "short", config, python_kit_zip()).await;
    assert_eq!(response.status(), 200);
    until_gone(&cgroup).await;

    let second = invoke_ok(&server, "short", json!({"action": "echo"})).await;
    let cgroup = instance_cgroup(&server, second["log_stream"].as_str().unwrap());
    assert!(cgroup.exists());
    let response = client()
        .delete(server.at("/v1/functions/short"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    until_gone(&cgroup).await;
}

#[tokio::test]
async fn unpacked_code_goes_when_no_version_uses_it() {
    let server = server();
    let c = client();
    let code_hash = |answer: &Value| answer["function"]["code_hash"].as_str().unwrap().to_string();
    let deploy_json = |config: Value, code: Vec<u8>| {
        let c = c.clone();
        let server = &server;
        async move {
            let response = deploy(&c, server, "tidy", config, code).await;
            assert!(response.status().is_success());
            response.json::<Value>().await.unwrap()
        }
    };
    let functions = server.data_dir.join("functions");
    let first = code_hash(&deploy_json(python("app.handler"), python_kit_zip()).await);
    invoke_ok(&server, "tidy", json!({"action": "echo"})).await;
    assert!(functions.join(&first).is_dir());

    // The same code under a new configuration keeps the directory.
    let mut config = python("app.handler");
    config["memory_mb"] = json!(64);
    assert_eq!(code_hash(&deploy_json(config, python_kit_zip()).await), first);
    invoke_ok(&server, "tidy", json!({"action": "echo"})).await;
    assert!(functions.join(&first).is_dir());

    // New code: the old directory goes once nothing uses it.
    let other = dir_with(&[(
        "app.py",
        b"def handler(event, context):\n    return 'v2'\n",
        false,
    )]);
    let second = code_hash(&deploy_json(python("app.handler"), zip_dir(other.path())).await);
    assert_ne!(second, first);
    assert_eq!(invoke_ok(&server, "tidy", json!({})).await, json!("v2"));
    until_gone(&functions.join(&first)).await;
    assert!(functions.join(&second).is_dir());

    // Deleted: nothing left.
    assert!(
        c.delete(server.at("/v1/functions/tidy"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    until_gone(&functions.join(&second)).await;
    // The directory is moved aside at once and removed in the background.
    let started = Instant::now();
    loop {
        let left: Vec<_> = std::fs::read_dir(&functions)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{left:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

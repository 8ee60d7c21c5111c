//! The CLI against a real server: up, deploy, invoke, ls, rm, logs, and its errors.

use crate::util::{bin, client, text};
use std::process::Command;
use wisp_test_support::{TestServer, repo_root};

#[tokio::test]
async fn up_serves_the_example_app() {
    let temp = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(
        bin(),
        &["up", repo_root().join("examples/hello").to_str().unwrap()],
        &temp.path().join("data"),
    );
    let c = client();
    let r = c.get(server.at("/hello")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "Hello, world!\n");
    let r = c.get(server.at("/hello/Ada")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "Hello, Ada!\n");
    let r = c.get(server.at("/greet/Bob")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap().trim_end(),
        r#"{"message":"Greetings, Bob!"}"#
    );
    let stdout = server.stdout_containing("created    hello");
    assert!(stdout.contains("created    hello"), "{stdout}");
}

#[tokio::test]
async fn deploy_invoke_ls_rm_logs() {
    let server = TestServer::serve(bin());
    let app = repo_root().join("examples/hello");

    let out = server.cli(bin()).arg("deploy").arg(&app).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("created    hello"), "{stdout}");
    assert!(stdout.contains("created    greet"), "{stdout}");
    let out = server
        .cli(bin())
        .arg("deploy")
        .arg(app.join("wisp.toml"))
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("unchanged  hello") && stdout.contains("unchanged  greet"),
        "{stdout}"
    );

    let out = server
        .cli(bin())
        .args(["invoke", "greet", "--data", r#"{"name":"Ada"}"#])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(text(&out).0, "{\"message\":\"Greetings, Ada!\"}\n");

    let out = server.cli(bin()).arg("ls").output().unwrap();
    let (stdout, _) = text(&out);
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header[0], "NAME");
    let names: Vec<&str> = lines.map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(names, vec!["greet", "hello"]);
    let out = server.cli(bin()).args(["ls", "--json"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);

    // The greet function logs who it greeted.
    let mut found = false;
    for _ in 0..50 {
        let out = server.cli(bin()).args(["logs", "greet"]).output().unwrap();
        if text(&out).0.contains("Ada") {
            found = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(found, "greet's log line never showed up");

    // Its invocation is recorded: warm (deploying loaded the code), with its times.
    let out = server.cli(bin()).args(["invocations", "greet"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let mut lines = stdout.lines();
    assert!(
        lines.next().unwrap().trim_start().starts_with("STARTED"),
        "{stdout}"
    );
    let row = lines.next().unwrap();
    assert!(row.contains(" warm ") && row.contains(" ms"), "{stdout}");
    assert!(stdout.contains("1 invocations kept: 0 cold starts"), "{stdout}");
    let out = server.cli(bin()).args(["ls"]).output().unwrap();
    let (stdout, _) = text(&out);
    let greet = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("greet"))
        .unwrap();
    assert!(
        greet.contains("loaded, 0 busy") && greet.contains(" 0/1 "),
        "{stdout}"
    );

    let out = server.cli(bin()).args(["rm", "greet"]).output().unwrap();
    assert_eq!(text(&out).0, "removed greet\n");
    let out = server.cli(bin()).args(["invoke", "greet"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("no function named `greet`") && stderr.contains("hint: run `wisp ls`"),
        "{stderr}"
    );
}

#[test]
fn cli_errors_name_the_problem_and_the_fix() {
    // No server at the address.
    let out = Command::new(bin())
        .args(["ls", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("cannot reach the Wisp server at http://127.0.0.1:9"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: start one with `wisp serve`"), "{stderr}");

    // A sandbox user that does not exist: the server refuses to start, saying so.
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--sandbox-user",
            "no-such-user-xyz",
            "--data-dir",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("there is no user `no-such-user-xyz` on this machine"),
        "{stderr}"
    );

    // A manifest error shows file, line and column.
    let temp = tempfile::tempdir().unwrap();
    std::fs::write(
        temp.path().join("wisp.toml"),
        "[app]\nname = \"x\"\n\n[functions.f]\nsource = \"f.wasm\"\nkind = \"http\"\nmemroy_mb = 3\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("deploy")
        .arg(temp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let (_, stderr) = text(&out);
    assert!(stderr.contains("wisp.toml:7:1"), "{stderr}");
    assert!(stderr.contains("memroy_mb"), "{stderr}");

    // A missing source says which function and what to do.
    std::fs::write(
        temp.path().join("wisp.toml"),
        "[app]\nname = \"x\"\n\n[functions.f]\nsource = \"f.wasm\"\nkind = \"http\"\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("deploy")
        .arg(temp.path())
        .args(["--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(stderr.contains("the source of function `f`"), "{stderr}");

    // Bad --data and bad names never reach a server.
    let out = Command::new(bin())
        .args(["invoke", "f", "--data", "{nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("--data is not valid JSON"));
    let out = Command::new(bin()).args(["rm", "Bad_Name"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("invalid function name `Bad_Name`"));
}

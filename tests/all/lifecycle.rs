//! The server's life: restarts, the artifact cache, graceful shutdown, the data dir lock.

use crate::util::{bin, client, deploy_fixture, http_config};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

fn artifacts(data_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for engine_dir in std::fs::read_dir(data_dir.join("cache")).unwrap() {
        for file in std::fs::read_dir(engine_dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "cwasm") {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn after_a_restart_functions_serve_again_without_recompiling() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let c = client();
    {
        let server = TestServer::serve_in(bin(), &dir);
        deploy_fixture(&server, "kit", "http-kit", http_config(json!(["/kit/*"]))).await;
        deploy_fixture(
            &server,
            "ev",
            "event-kit",
            json!({"kind": "event", "routes": ["/ev"]}),
        )
        .await;
        assert_eq!(c.get(server.at("/kit/hello")).send().await.unwrap().status(), 200);
    }
    let before: Vec<_> = artifacts(&dir)
        .into_iter()
        .map(|p| (p.clone(), std::fs::metadata(&p).unwrap().modified().unwrap()))
        .collect();
    assert_eq!(before.len(), 2, "one artifact per code");

    let server = TestServer::serve_in(bin(), &dir);
    let r = c.get(server.at("/kit/hello")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "Hello, world!\n");
    let r = c.get(server.at("/ev?action=hello")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"message":"Hello, world!"}"#);
    server.stderr_containing("loaded `kit` from the artifact cache");
    let log = server.stderr_containing("loaded `ev` from the artifact cache");
    assert!(log.contains("loaded `kit` from the artifact cache"), "{log}");
    assert!(log.contains("loaded `ev` from the artifact cache"), "{log}");
    assert!(!log.contains("compiled `"), "{log}");
    for (path, modified) in before {
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            modified,
            "{} was rewritten",
            path.display()
        );
    }
}

#[tokio::test]
async fn a_corrupt_artifact_is_recompiled_not_trusted() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let c = client();
    {
        let server = TestServer::serve_in(bin(), &dir);
        deploy_fixture(&server, "kit", "http-kit", http_config(json!(["/kit/*"]))).await;
    }
    let artifact = artifacts(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 4096] {
        *b ^= 0x5a;
    }
    std::fs::write(&artifact, &bytes).unwrap();

    let server = TestServer::serve_in(bin(), &dir);
    let r = c.get(server.at("/kit/hello")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "Hello, world!\n");
    let log = server.stderr_containing("compiled `kit`");
    assert!(log.contains("fails its checksum"), "{log}");
    assert!(log.contains("compiled `kit`"), "{log}");
    assert_ne!(
        std::fs::read(&artifact).unwrap(),
        bytes,
        "the corrupt artifact was replaced"
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_0() {
    let mut server = TestServer::serve(bin());
    deploy_fixture(&server, "kit", "http-kit", http_config(json!(["/kit/*"]))).await;
    let c = client();
    assert_eq!(c.get(server.at("/kit/hello")).send().await.unwrap().status(), 200);

    let slow = tokio::spawn(c.get(server.at("/kit/sleep?ms=1000")).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    server.signal("TERM");
    let r = slow.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "slept 1000");
    let status = server.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "stderr: {}", server.stderr());
    assert!(
        signalled.elapsed() >= Duration::from_millis(500),
        "exited before the request finished"
    );
    // New connections are refused once it is gone.
    assert!(c.get(server.at("/kit/hello")).send().await.is_err());
}

#[tokio::test]
async fn sigint_exits_0() {
    let mut server = TestServer::serve(bin());
    server.signal("INT");
    assert_eq!(server.wait(Duration::from_secs(10)).code(), Some(0));
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let server = TestServer::serve(bin());
    let output = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is in use by another Wisp server"), "{stderr}");
}

#[tokio::test]
async fn listening_on_a_taken_port_says_so() {
    let server = TestServer::serve(bin());
    let addr = server.url.trim_start_matches("http://").to_string();
    let temp = tempfile::tempdir().unwrap();
    let output = Command::new(bin())
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(temp.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot listen on `{addr}`")), "{stderr}");
}

/// Issue 12: every deploy compiled its code, even when the artifact cache held that
/// code's artifact already (300 functions sharing one .wasm took 82 s to deploy).
/// Deploying known code now loads the artifact: it is not written again.
#[tokio::test]
async fn issue_12_deploying_known_code_loads_it_from_the_cache() {
    use std::os::unix::fs::MetadataExt;
    let server = TestServer::serve(bin());
    deploy_fixture(&server, "one", "http-kit", http_config(json!(["/one/*"]))).await;
    let written = artifacts(&server.data_dir);
    assert_eq!(written.len(), 1);
    let identity = |p: &std::path::Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.ino(), m.modified().unwrap())
    };
    let before = identity(&written[0]);
    // Another function with the same code, and a new version of the first (a config
    // change) load the artifact instead of compiling.
    deploy_fixture(&server, "two", "http-kit", http_config(json!(["/two/*"]))).await;
    let r = wisp_test_support::deploy(
        &client(),
        &server,
        "one",
        json!({"kind": "http", "routes": ["/one/*"], "memory_mb": 64}),
        wisp_test_support::fixture_bytes("http-kit"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(artifacts(&server.data_dir), written);
    assert_eq!(identity(&written[0]), before, "the artifact was compiled again");
    let c = client();
    for path in ["/one/hello", "/two/hello"] {
        let r = c.get(server.at(path)).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "Hello, world!\n", "{path}");
    }
}

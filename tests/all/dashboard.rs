//! The dashboard (`/ui`, issue 20) in a real browser: Debian's Chromium, headless, driven
//! by `tests/browser/dashboard.mjs` (npm's playwright-core). The server is set up here; the
//! script logs in with each key, clicks through the pages, and writes a screenshot of each
//! into `target/…/test-output/dashboard/`. `scripts/browser-deps.sh` installs Chromium and
//! playwright-core (CI runs it); without them this test fails, it never skips.

use crate::tenancy::create_key;
use crate::util::{bin, client, get_json, json_when, line_text, logs_when, server, text, wisp};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wisp_test_support::{TEST_ADMIN_KEY, TestServer, fixture_bytes, repo_root};

/// The browser the script launches.
const CHROMIUM: &str = "/usr/bin/chromium";

/// Fails, saying how to install them, unless Chromium, node and playwright-core are here.
fn browser_deps() -> PathBuf {
    let browser = repo_root().join("tests/browser");
    let missing: Vec<&str> = [
        (Path::new(CHROMIUM).exists(), CHROMIUM),
        (
            browser.join("node_modules/playwright-core").is_dir(),
            "tests/browser/node_modules/playwright-core",
        ),
        (Command::new("node").arg("--version").output().is_ok(), "node"),
    ]
    .into_iter()
    .filter_map(|(there, what)| (!there).then_some(what))
    .collect();
    assert!(
        missing.is_empty(),
        "the dashboard's browser test needs {}: run scripts/browser-deps.sh (CI does)",
        missing.join(", ")
    );
    browser
}

/// Deploys the example app, then `greet` again with another greeting: version 1 greets
/// with `Greetings`, version 2 (live) with `Howdy`.
async fn deploy_hello_twice(server: &TestServer) {
    let app = repo_root().join("examples/hello");
    let out = wisp(server, &["deploy", app.to_str().unwrap()]);
    assert!(out.contains("created    greet"), "{out}");
    let temp = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(app.join("wisp.toml")).unwrap();
    let changed = manifest.replace("GREETING = \"Greetings\"", "GREETING = \"Howdy\"");
    assert_ne!(
        manifest, changed,
        "examples/hello/wisp.toml no longer sets GREETING"
    );
    std::fs::write(temp.path().join("wisp.toml"), changed).unwrap();
    let wasm = temp.path().join("wasm");
    std::fs::create_dir(&wasm).unwrap();
    for guest in ["hello.wasm", "greet.wasm"] {
        std::fs::copy(app.join("wasm").join(guest), wasm.join(guest)).unwrap();
    }
    wisp(server, &["deploy", temp.path().to_str().unwrap()]);
    let versions = get_json(server, "/v1/functions/greet/versions").await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2, "{versions}");
}

/// A dead letter of `worker` (an event function that exits 3, with no retries), and then
/// the fix: `worker` redeployed as an http function that answers any POST, so a redrive
/// succeeds. Returns the dead letter's id.
async fn dead_letter(server: &TestServer) -> String {
    let config = json!({ "kind": "event", "max_retries": 0 });
    let r = wisp_test_support::deploy(&client(), server, "worker", config, fixture_bytes("event-kit")).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let r = client()
        .post(server.at("/v1/functions/worker/invoke"))
        .header("x-wisp-invocation-type", "event")
        .json(&json!({ "action": "exit", "code": 3 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    while get_json(server, "/v1/functions/worker/dlq").await["dead_letters"][0]["id"] != id.as_str() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{id} was never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let config = json!({ "kind": "http" });
    let r = wisp_test_support::deploy(&client(), server, "worker", config, fixture_bytes("http-kit")).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    id
}

#[tokio::test]
async fn the_dashboard_in_a_real_browser() {
    let browser = browser_deps();
    let server = server();
    deploy_hello_twice(&server).await;
    let dead = dead_letter(&server).await;
    let read_key = create_key(&server, "default", "read", None).await;
    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({ "name": "other" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // The strongest role short of admin: even it sees nothing of `default`.
    let other_key = create_key(&server, "other", "deploy", None).await;

    let shots = bin().parent().unwrap().join("test-output/dashboard");
    let _ = std::fs::remove_dir_all(&shots);
    println!("screenshots: {}", shots.display());
    let out = Command::new("node")
        .arg(browser.join("dashboard.mjs"))
        .env("WISP_URL", &server.url)
        .env("ADMIN_KEY", TEST_ADMIN_KEY)
        .env("READ_KEY", &read_key)
        .env("OTHER_KEY", &other_key)
        .env("SHOTS_DIR", &shots)
        .env("DEAD_LETTER", format!("worker/{dead}"))
        .env("CHROMIUM", CHROMIUM)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser script failed ({}); screenshots in {}\n{stdout}{stderr}\nserver:\n{}",
        out.status,
        shots.display(),
        server.stderr()
    );

    // What the pages did, as the API sees it: greet rolled back to 1, the dead letter
    // redriven and run, and the read key's invoke never run.
    let aliases = get_json(&server, "/v1/functions/greet/aliases").await;
    let live = aliases["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "live");
    assert_eq!(live.unwrap()["version"], 1, "{aliases}");
    let path = format!("/v1/invocations/{dead}");
    let redriven = json_when(&server, &path, |v| v["status"] == "succeeded").await;
    assert_eq!(redriven["status"], "succeeded", "{redriven}");
    let lines = logs_when(&server, "/v1/functions/greet/logs", |_| true).await;
    let said = |text: &str| lines.iter().any(|l| line_text(l).contains(text));
    assert!(said("greeted Ada") && !said("greeted Eve"), "{lines:?}");
}

//! App deploys: every function of a wisp.toml in one request, all or nothing; `wisp
//! plan` says what a deploy would do and changes nothing; `--prune` deletes what the
//! manifest no longer has.

use crate::util::{bin, get_json, server};
use serde_json::Value;
use std::path::Path;
use wisp_test_support::{TestServer, fixture};

/// Writes `wisp.toml` (app `shop`) with `functions` (each a `[functions.NAME]` body)
/// into `dir`, with the http-kit fixture as `kit.wasm` and a file that is not wasm.
fn write_app(dir: &Path, functions: &[(&str, &str)]) {
    std::fs::copy(fixture("http-kit"), dir.join("kit.wasm")).unwrap();
    std::fs::write(dir.join("broken.wasm"), b"not webassembly").unwrap();
    let mut toml = String::from("[app]\nname = \"shop\"\n");
    for (name, body) in functions {
        toml.push_str(&format!("\n[functions.{name}]\n{body}\n"));
    }
    std::fs::write(dir.join("wisp.toml"), toml).unwrap();
}

fn wisp(server: &TestServer, args: &[&str]) -> (Option<i32>, String) {
    let out = server.cli(bin()).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

const KIT: &str = "source = \"kit.wasm\"\nkind = \"http\"";

fn kit(route: &str, v: &str) -> String {
    format!("{KIT}\nroutes = [\"{route}\"]\nenv = {{ V = \"{v}\" }}")
}

async fn versions(server: &TestServer) -> Vec<(String, u64)> {
    let list = get_json(server, "/v1/functions").await;
    let mut got: Vec<(String, u64)> = list["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["version"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    got
}

#[tokio::test]
async fn an_app_deploys_all_or_nothing() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_string();
    // One function does not compile: none of the app is deployed.
    write_app(
        dir.path(),
        &[
            ("a", &kit("/a", "1")),
            ("b", "source = \"broken.wasm\"\nkind = \"http\""),
            ("c", &kit("/c", "1")),
        ],
    );
    let (code, text) = wisp(&server, &["deploy", &path]);
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains("function `b`") && text.contains("none of them changed"),
        "{text}"
    );
    assert!(
        versions(&server).await.is_empty(),
        "a failed app deploy left functions behind"
    );

    write_app(dir.path(), &[("a", &kit("/a", "1")), ("c", &kit("/c", "1"))]);
    let (code, text) = wisp(&server, &["deploy", &path]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("created    a"), "{text}");

    // Over a deployed app: a changed function and a broken one change nothing.
    write_app(
        dir.path(),
        &[
            ("a", &kit("/a", "2")),
            ("b", "source = \"broken.wasm\"\nkind = \"http\""),
            ("c", &kit("/c", "1")),
        ],
    );
    let (code, text) = wisp(&server, &["deploy", &path]);
    assert_ne!(code, Some(0), "{text}");
    assert_eq!(versions(&server).await, [("a".into(), 1), ("c".into(), 1)]);

    // Two functions on one route: refused whole, before anything compiles.
    write_app(
        dir.path(),
        &[("a", &kit("/same", "3")), ("c", &kit("/same", "3"))],
    );
    let (code, text) = wisp(&server, &["deploy", &path]);
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("conflicts"), "{text}");
    assert_eq!(versions(&server).await, [("a".into(), 1), ("c".into(), 1)]);
    let audit = get_json(&server, "/v1/audit").await;
    assert!(audit.to_string().contains("app.deploy"), "{audit}");
}

#[tokio::test]
async fn plan_shows_what_deploy_and_prune_would_do_and_changes_nothing() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_string();
    write_app(dir.path(), &[("a", &kit("/a", "1")), ("b", &kit("/b", "1"))]);
    let (code, text) = wisp(&server, &["plan", &path]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("create     a") && text.contains("create     b"),
        "{text}"
    );
    assert!(versions(&server).await.is_empty(), "plan deployed something");
    assert_eq!(wisp(&server, &["deploy", &path]).0, Some(0));

    // a changes, b goes, c is new.
    write_app(dir.path(), &[("a", &kit("/a", "2")), ("c", &kit("/c", "1"))]);
    let (code, text) = wisp(&server, &["plan", &path]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("publish    a (version 2)"), "{text}");
    assert!(text.contains("create     c"), "{text}");
    assert!(text.contains("stray      b"), "{text}");
    let (_, text) = wisp(&server, &["plan", "--prune", &path]);
    assert!(text.contains("delete     b"), "{text}");
    assert!(text.contains("3 change(s)"), "{text}");
    assert_eq!(
        versions(&server).await,
        [("a".into(), 1), ("b".into(), 1)],
        "plan changed something"
    );

    // Without --prune, b stays (and is named); with it, b goes.
    let (code, text) = wisp(&server, &["deploy", &path]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("no longer in wisp.toml: b"), "{text}");
    assert_eq!(
        versions(&server).await,
        [("a".into(), 2), ("b".into(), 1), ("c".into(), 1)]
    );
    let (code, text) = wisp(&server, &["deploy", "--prune", &path]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("deleted    b"), "{text}");
    assert!(text.contains("unchanged  a"), "{text}");
    assert_eq!(versions(&server).await, [("a".into(), 2), ("c".into(), 1)]);
    let (_, text) = wisp(&server, &["plan", &path]);
    assert!(text.contains("0 change(s)"), "{text}");
}

#[tokio::test]
async fn functions_sharing_code_are_uploaded_and_compiled_once() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_string();
    let bodies: Vec<(String, String)> = (0..40)
        .map(|i| (format!("f{i}"), kit(&format!("/f{i}"), "1")))
        .collect();
    let functions: Vec<(&str, &str)> = bodies.iter().map(|(n, b)| (n.as_str(), b.as_str())).collect();
    write_app(dir.path(), &functions);
    let (code, text) = wisp(&server, &["deploy", &path]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(versions(&server).await.len(), 40);
    let r = crate::util::client().get(server.at("/f39")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Bad requests to the endpoint itself.
    let c = crate::util::client();
    let form = reqwest::multipart::Form::new().text(
        "manifest",
        r#"{"functions": [{"name": "x", "config": {"kind": "http"}, "code": "00"}]}"#,
    );
    let r = c
        .put(server.at("/v1/apps/shop"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let doc = crate::util::expect_problem(r, 400, "invalid_request").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("no `code` part"),
        "{doc}"
    );
    let form = reqwest::multipart::Form::new().text("manifest", "{\"functions\": 3}");
    let r = c
        .put(server.at("/v1/apps/shop"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    crate::util::expect_problem(r, 400, "invalid_request").await;
    let r = c
        .put(server.at("/v1/apps/Shop_1"))
        .multipart(reqwest::multipart::Form::new())
        .send()
        .await
        .unwrap();
    crate::util::expect_problem(r, 400, "invalid_name").await;
    let _: Value = get_json(&server, "/v1/functions/f0").await;
}

/// `wisp up --watch` redeploys when a file changes, says what changed and what
/// failed, and keeps serving through a broken save.
#[tokio::test]
async fn up_watch_redeploys_on_change_and_survives_a_broken_save() {
    let temp = tempfile::tempdir().unwrap();
    let app = temp.path().join("app");
    std::fs::create_dir(&app).unwrap();
    write_app(&app, &[("a", &kit("/a/*", "1"))]);
    let server = TestServer::spawn(
        bin(),
        &["up", "--watch", app.to_str().unwrap()],
        &temp.path().join("data"),
    );
    let env = |server: &TestServer| {
        let url = server.at("/a/env");
        async move {
            let r = crate::util::client().get(url).send().await.unwrap();
            r.json::<Value>().await.unwrap()["V"]
                .as_str()
                .unwrap_or("")
                .to_string()
        }
    };
    assert_eq!(env(&server).await, "1");
    server.stderr_containing("Watching");

    // A broken manifest: reported, and the function serves on.
    std::fs::write(
        app.join("wisp.toml"),
        "[app]\nname = \"shop\"\n[functions.a]\nkind = 3\n",
    )
    .unwrap();
    let log = server.stderr_containing("keeps serving");
    assert!(log.contains("wisp.toml"), "{log}");
    assert_eq!(env(&server).await, "1");

    // Fixed and changed: redeployed as version 2.
    write_app(&app, &[("a", &kit("/a/*", "2"))]);
    let out = server.stdout_containing("published  a");
    assert!(out.contains("published  a                    v2"), "{out}");
    assert_eq!(env(&server).await, "2");
}

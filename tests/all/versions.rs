//! Versions, aliases and the lifecycle: numbered versions, weighted aliases splitting
//! traffic, qualifiers, rollback without compiling, disable holding work and enable
//! releasing it, switching `live` under load, the CLI, and bad input.

use crate::util::{bin, client, expect_problem, get_json, json_when, server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wisp_test_support::{TestServer, deploy, fixture_bytes};

/// Publishes a version of `kit` (http-kit on `/kit/*`) that differs by `env.V`.
async fn publish(server: &TestServer, v: u32) -> Value {
    let config = json!({
        "kind": "http",
        "routes": ["/kit/*"],
        "env": { "V": v.to_string() },
    });
    let r = deploy(&client(), server, "kit", config, fixture_bytes("http-kit")).await;
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

async fn set_alias(server: &TestServer, alias: &str, body: Value) -> reqwest::Response {
    client()
        .put(server.at(&format!("/v1/functions/kit/aliases/{alias}")))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The version that answered a request, from its `X-Wisp-Version`.
fn version_of(r: &reqwest::Response) -> u32 {
    r.headers()["x-wisp-version"].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn weighted_aliases_split_traffic_and_rollback_reuses_the_old_artifact() {
    let server = server();
    for v in 1..=3 {
        let answer = publish(&server, v).await;
        assert_eq!(answer["version"], v);
    }
    // Versions 1 and 2 are kept; `live` runs 3.
    let versions = get_json(&server, "/v1/functions/kit/versions").await;
    let numbers: Vec<&Value> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["version"])
        .collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert_eq!(versions["versions"][0]["aliases"], json!(["live"]));

    // Each version runs its own configuration, by qualifier.
    for v in 1..=3 {
        let r = client()
            .post(server.at(&format!("/v1/functions/kit:{v}/invoke")))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(version_of(&r), v);
    }

    // 90/10 between 2 and 3, measured over 10,000 requests on the route.
    let r = set_alias(
        &server,
        "live",
        json!({"version": 2, "additional": {"version": 3, "weight": 0.1}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let c = client();
    let mut to_3 = 0;
    let total = 10_000;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, url) = (c.clone(), server.at("/kit/hello"));
        tasks.push(tokio::spawn(async move {
            let mut seen = [0u32; 2];
            for _ in 0..total / 8 {
                let r = c.get(&url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                seen[usize::from(version_of(&r) == 3)] += 1;
            }
            seen
        }));
    }
    for task in tasks {
        let [two, three] = task.await.unwrap();
        assert_eq!(two + three, total / 8);
        to_3 += three;
    }
    let share = f64::from(to_3) / f64::from(total);
    assert!(
        (share - 0.1).abs() <= 0.02,
        "version 3 took {share} of the traffic, not 0.1 ± 0.02"
    );

    // Roll back: first the split goes (2 alone), then 2 → 1.
    let r = client()
        .post(server.at("/v1/functions/kit/rollback"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["aliases"]["live"],
        json!({"version": 2})
    );
    let r = client()
        .post(server.at("/v1/functions/kit/rollback"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["aliases"]["live"],
        json!({"version": 1})
    );
    let r = c.get(server.at("/kit/env")).send().await.unwrap();
    assert_eq!(version_of(&r), 1);
    assert_eq!(r.json::<Value>().await.unwrap()["V"], "1");
    // Version 1 was compiled once, at its deploy: switching back loads that artifact.
    let log = server.stderr_containing("loaded `kit` from the artifact cache");
    assert!(log.contains("loaded `kit` from the artifact cache"), "{log}");
    assert!(
        !log.contains("compiled `kit`"),
        "switching back compiled again:\n{log}"
    );

    // The invocation record says which version ran.
    let records = json_when(&server, "/v1/functions/kit/invocations?limit=1", |r| {
        r["invocations"][0]["version"] == 1
    })
    .await;
    assert_eq!(records["invocations"][0]["version"], 1, "{records}");

    // --to names the version; the newest is `$LATEST`.
    let r = client()
        .post(server.at("/v1/functions/kit/rollback"))
        .json(&json!({"to": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["version"], 3);
    let r = client()
        .post(server.at("/v1/functions/kit:$LATEST/invoke"))
        .send()
        .await
        .unwrap();
    assert_eq!(version_of(&r), 3);
}

#[tokio::test]
async fn a_disabled_function_refuses_calls_and_holds_its_events_until_enabled() {
    let server = server();
    publish(&server, 1).await;
    let r = client()
        .post(server.at("/v1/functions/kit/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["disabled"], true);

    expect_problem(
        client().get(server.at("/kit/hello")).send().await.unwrap(),
        409,
        "function_disabled",
    )
    .await;
    expect_problem(
        client()
            .post(server.at("/v1/functions/kit/invoke"))
            .send()
            .await
            .unwrap(),
        409,
        "function_disabled",
    )
    .await;

    // Async events are accepted and wait: not run, not dead-lettered.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = client()
            .post(server.at("/v1/functions/kit/invoke"))
            .header("x-wisp-invocation-type", "event")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let held = json_when(&server, &format!("/v1/invocations/{}", ids[2]), |e| {
        e["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("function_disabled:"))
    })
    .await;
    assert_eq!(held["status"], "queued", "{held}");
    assert_eq!(held["attempts"], 0, "{held}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dlq = get_json(&server, "/v1/functions/kit/dlq?limit=1").await;
    assert_eq!(
        (
            dlq["counts"]["succeeded"].as_u64(),
            dlq["counts"]["failed"].as_u64()
        ),
        (Some(0), Some(0))
    );

    // Enabled: what waited runs at once.
    let started = Instant::now();
    let r = client()
        .post(server.at("/v1/functions/kit/enable"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["disabled"], false);
    let dlq = json_when(&server, "/v1/functions/kit/dlq?limit=1", |d| {
        d["counts"]["succeeded"] == 3
    })
    .await;
    assert_eq!(dlq["counts"]["succeeded"], 3, "{dlq}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "held events took {:?}",
        started.elapsed()
    );
    assert_eq!(
        client()
            .get(server.at("/kit/hello"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let audit = get_json(&server, "/v1/audit").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"function.disable") && actions.contains(&"function.enable"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn switching_live_under_load_drops_no_request() {
    let server = server();
    publish(&server, 1).await;
    publish(&server, 2).await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (c, url, done) = (client(), server.at("/kit/hello"), done.clone());
        load.push(tokio::spawn(async move {
            let mut answered = 0u32;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let r = c.get(&url).send().await.unwrap();
                assert_eq!(r.status(), 200, "a request failed while live switched");
                answered += 1;
            }
            answered
        }));
    }
    for i in 0..100 {
        let r = set_alias(&server, "live", json!({"version": 1 + i % 2})).await;
        assert_eq!(r.status(), 200);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = 0;
    for task in load {
        answered += task.await.unwrap();
    }
    assert!(answered > 0);
}

#[tokio::test]
async fn aliases_refuse_bad_input() {
    let server = server();
    publish(&server, 1).await;
    publish(&server, 2).await;
    for (body, needle) in [
        (
            json!({"version": 1, "additional": {"version": 2, "weight": 1.5}}),
            "from 0 to 1",
        ),
        (
            json!({"version": 1, "additional": {"version": 2, "weight": -0.1}}),
            "from 0 to 1",
        ),
        (
            json!({"version": 1, "additional": {"version": 1, "weight": 0.5}}),
            "must differ",
        ),
        (json!({"version": 0}), "numbered from 1"),
        (json!({"version": "two"}), "not valid"),
        (
            json!({"version": 1, "additional": {"version": 2, "weight": 0.1}, "latest": 0.1}),
            "unknown field",
        ),
        (
            json!({"version": 1, "additional": {"version": 2}}),
            "missing field `weight`",
        ),
    ] {
        let doc = expect_problem(
            set_alias(&server, "beta", body.clone()).await,
            400,
            "invalid_request",
        )
        .await;
        assert!(doc["detail"].as_str().unwrap().contains(needle), "{body}: {doc}");
    }
    let doc = expect_problem(
        set_alias(&server, "beta", json!({"version": 9})).await,
        404,
        "version_not_found",
    )
    .await;
    assert!(doc["detail"].as_str().unwrap().contains("no version 9"), "{doc}");
    expect_problem(
        set_alias(
            &server,
            "beta",
            json!({"version": 1, "additional": {"version": 7, "weight": 0.5}}),
        )
        .await,
        404,
        "version_not_found",
    )
    .await;
    expect_problem(
        set_alias(&server, "Beta_1", json!({"version": 1})).await,
        400,
        "invalid_name",
    )
    .await;
    expect_problem(
        client()
            .put(server.at("/v1/functions/kit/aliases/beta"))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    expect_problem(
        client()
            .delete(server.at("/v1/functions/kit/aliases/live"))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    expect_problem(
        client()
            .delete(server.at("/v1/functions/kit/aliases/none"))
            .send()
            .await
            .unwrap(),
        404,
        "alias_not_found",
    )
    .await;
    let r = client()
        .put(server.at("/v1/functions/nope/aliases/beta"))
        .json(&json!({"version": 1}))
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "function_not_found").await;
}

#[tokio::test]
async fn qualifiers_and_rollbacks_refuse_what_does_not_exist() {
    let server = server();
    publish(&server, 1).await;
    for (path, status, code) in [
        ("/v1/functions/kit:9/invoke", 404, "version_not_found"),
        ("/v1/functions/kit:beta/invoke", 404, "alias_not_found"),
        ("/v1/functions/kit:0/invoke", 400, "invalid_request"),
        ("/v1/functions/kit:Beta/invoke", 400, "invalid_request"),
        ("/v1/functions/kit/invoke?qualifier=9", 404, "version_not_found"),
        (
            "/v1/functions/kit:1/invoke?qualifier=live",
            400,
            "invalid_request",
        ),
        ("/v1/functions/kit/invoke?version=1", 400, "invalid_request"),
    ] {
        let r = client().post(server.at(path)).body("{}").send().await.unwrap();
        expect_problem(r, status, code).await;
    }
    // An async invocation naming no alias is refused at once, not dead-lettered later.
    let r = client()
        .post(server.at("/v1/functions/kit:beta/invoke"))
        .header("x-wisp-invocation-type", "event")
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "alias_not_found").await;
    // Nothing before version 1.
    let r = client()
        .post(server.at("/v1/functions/kit/rollback"))
        .send()
        .await
        .unwrap();
    let doc = expect_problem(r, 404, "version_not_found").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("no version before 1"),
        "{doc}"
    );
    for (body, code) in [
        (json!({"to": 5}), "version_not_found"),
        (json!({"to": "one"}), "invalid_request"),
        (json!({"version": 1}), "invalid_request"),
    ] {
        let r = client()
            .post(server.at("/v1/functions/kit/rollback"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = if code == "version_not_found" { 404 } else { 400 };
        expect_problem(r, status, code).await;
    }
    expect_problem(
        client()
            .post(server.at("/v1/functions/nope/disable"))
            .send()
            .await
            .unwrap(),
        404,
        "function_not_found",
    )
    .await;
}

#[tokio::test]
async fn the_cli_lists_versions_sets_aliases_rolls_back_and_disables() {
    let server = server();
    publish(&server, 1).await;
    publish(&server, 2).await;
    let wisp = |args: &[&str]| {
        let out = server.cli(bin()).args(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = wisp(&["versions", "kit"]);
    assert_eq!(code, Some(0), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].trim_start().starts_with("VERSION"), "{text}");
    assert!(
        lines[1].trim_start().starts_with('2') && lines[1].contains("live"),
        "{text}"
    );
    assert!(lines[2].trim_start().starts_with('1'), "{text}");

    let (code, text) = wisp(&["alias", "set", "kit", "live", "1", "--weight", "2=0.25"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("kit:live → 1 + 2 at 25%"), "{text}");
    let (_, text) = wisp(&["ls"]);
    assert!(text.contains("1 + 2 at 25%"), "{text}");
    let (code, text) = wisp(&["alias", "set", "kit", "live", "1", "--weight", "2=2"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("from 0 to 1"), "{text}");

    let (code, text) = wisp(&["alias", "rm", "kit", "a/b"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("invalid alias name `a/b`"), "{text}");
    let (code, text) = wisp(&["rollback", "kit"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("kit: live → 1"), "{text}");
    let (code, text) = wisp(&["rollback", "kit", "--to", "2"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("live → 2"), "{text}");

    let (code, text) = wisp(&["invoke", "kit:1", "--data", "{}"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = wisp(&["invoke", "kit:0"]);
    assert_eq!(code, Some(2), "{text}");

    let (code, text) = wisp(&["disable", "kit"]);
    assert_eq!(code, Some(0), "{text}");
    let (_, text) = wisp(&["ls"]);
    assert!(text.contains("2 (disabled)"), "{text}");
    let (code, text) = wisp(&["invoke", "kit"]);
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("disabled"), "{text}");
    let (code, text) = wisp(&["enable", "kit"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = wisp(&["alias", "ls", "kit"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("live") && text.contains('2'), "{text}");
}

#[tokio::test]
async fn versions_past_keep_versions_go_unless_an_alias_names_them() {
    let server = crate::util::server_with(&["--keep-versions", "2"]);
    publish(&server, 1).await;
    let r = set_alias(&server, "stable", json!({"version": 1})).await;
    assert_eq!(r.status(), 200);
    for v in 2..=5 {
        publish(&server, v).await;
    }
    let versions = get_json(&server, "/v1/functions/kit/versions").await;
    let numbers: Vec<&Value> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["version"])
        .collect();
    assert_eq!(numbers, [5, 4, 1], "{versions}");
    let r = client()
        .post(server.at("/v1/functions/kit:2/invoke"))
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "version_not_found").await;
    let r = client()
        .post(server.at("/v1/functions/kit:stable/invoke"))
        .send()
        .await
        .unwrap();
    assert_eq!(version_of(&r), 1);
}

#[tokio::test]
async fn an_async_invocation_runs_the_version_it_names() {
    let server = server();
    publish(&server, 1).await;
    publish(&server, 2).await;
    let r = client()
        .post(server.at("/v1/functions/kit:1/invoke"))
        .header("x-wisp-invocation-type", "event")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let event = json_when(&server, &format!("/v1/invocations/{id}"), |e| {
        e["status"] == "succeeded"
    })
    .await;
    assert_eq!(event["status"], "succeeded", "{event}");
    assert_eq!(event["qualifier"], "1", "{event}");
    let records = json_when(&server, "/v1/functions/kit/invocations", |r| {
        r["invocations"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(records["invocations"][0]["version"], 1, "{records}");
}

/// The compiled artifacts of code no kept version uses leave the cache: pruned versions
/// and deleted functions do not fill the disk.
#[tokio::test]
async fn artifacts_of_pruned_and_deleted_code_leave_the_cache() {
    let server = crate::util::server_with(&["--keep-versions", "1"]);
    let artifacts = || -> Vec<String> {
        let mut names = Vec::new();
        for dir in std::fs::read_dir(server.data_dir.join("cache")).unwrap() {
            for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
                let name = file.unwrap().file_name().to_string_lossy().into_owned();
                if name.ends_with(".cwasm") {
                    names.push(name);
                }
            }
        }
        names
    };
    let http = fixture_bytes("http-kit");
    let r = deploy(
        &client(),
        &server,
        "kit",
        json!({"kind": "http", "routes": ["/kit/*"]}),
        http,
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(artifacts().len(), 1);
    let http_artifact = artifacts()[0].clone();
    let event = fixture_bytes("event-kit");
    let r = deploy(&client(), &server, "kit", json!({"kind": "event"}), event).await;
    assert_eq!(r.status(), 200);
    let left = artifacts();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0], http_artifact, "the pruned version's artifact stayed");
    let r = client()
        .delete(server.at("/v1/functions/kit"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(artifacts().is_empty(), "{:?}", artifacts());
}

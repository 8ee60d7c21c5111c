//! The CLI's `wisp queue`, `wisp dlq` and `wisp invoke --async` against a real
//! server, and `wisp deploy` creating the queues of a manifest.

use crate::util::{bin, deploy_fixture, get_json, text, wisp, wisp_fails};
use serde_json::json;
use std::time::{Duration, Instant};
use wisp_test_support::{TestServer, fixture};

#[tokio::test]
async fn queue_commands_create_send_receive_purge_and_remove() {
    let server = TestServer::serve(bin());
    let out = wisp(&server, &["queue", "create", "jobs-dlq"]);
    assert!(out.starts_with("created    queue jobs-dlq"), "{out}");
    let out = wisp(
        &server,
        &[
            "queue",
            "create",
            "jobs",
            "--visibility-timeout",
            "1m",
            "--max-receive-count",
            "3",
            "--dead-letter-queue",
            "jobs-dlq",
        ],
    );
    assert!(
        out.contains("visibility 1m") && out.contains("to jobs-dlq after 3 receives"),
        "{out}"
    );

    let id = wisp(&server, &["queue", "send", "jobs", "hello there"]);
    assert_eq!(id.trim().len(), 36, "{id}");
    wisp(&server, &["queue", "send", "jobs", "later", "--delay", "10m"]);
    let out = wisp(&server, &["queue", "ls"]);
    let row = out.lines().find(|l| l.trim_start().starts_with("jobs ")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..6], ["jobs", "1", "0", "1", "1m", "4days"], "{out}");
    assert!(row.contains("jobs-dlq after 3 receives"), "{out}");
    let listed: serde_json::Value = serde_json::from_str(&wisp(&server, &["queue", "ls", "--json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // Receive and delete: printed once, gone after.
    let out = wisp(&server, &["queue", "receive", "jobs", "--delete"]);
    assert!(
        out.starts_with(&format!("message {} (receive 1", id.trim())),
        "{out}"
    );
    assert!(out.ends_with("\nhello there\n"), "{out}");
    let stats = get_json(&server, "/v1/queues/jobs").await;
    assert_eq!(
        stats["messages"],
        json!({"visible": 0, "in_flight": 0, "delayed": 1})
    );
    let out = server
        .cli(bin())
        .args(["queue", "receive", "jobs"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(text(&out).1.contains("No message of `jobs` is visible now."));

    let out = wisp(&server, &["queue", "purge", "jobs"]);
    assert_eq!(out, "purged 1 messages from jobs\n");
    let out = wisp(&server, &["queue", "redrive", "jobs-dlq"]);
    assert_eq!(
        out,
        "moved 0 messages from jobs-dlq back to the queues they came from\n"
    );

    // Errors: what was wrong, and what to do.
    let err = wisp_fails(&server, &["queue", "rm", "jobs-dlq"], 4);
    assert!(
        err.contains("dead_letter_queue of queue `jobs`") && err.contains("queue_in_use"),
        "{err}"
    );
    let err = wisp_fails(&server, &["queue", "send", "ghost", "x"], 4);
    assert!(
        err.contains("there is no queue named `ghost`") && err.contains("hint: run `wisp queue ls`"),
        "{err}"
    );
    let err = wisp_fails(&server, &["queue", "create", "Bad_Name"], 2);
    assert!(err.contains("invalid queue name `Bad_Name`"), "{err}");
    let err = wisp_fails(&server, &["queue", "send", "jobs", "x", "--delay", "soon"], 2);
    assert!(err.contains("--delay: invalid duration `soon`"), "{err}");
    let err = wisp_fails(&server, &["queue", "create", "q", "--max-receive-count", "3"], 2);
    assert!(err.contains("--dead-letter-queue"), "{err}");

    let out = wisp(&server, &["queue", "rm", "jobs", "jobs-dlq"]);
    assert_eq!(out, "removed queue jobs\nremoved queue jobs-dlq\n");
}

/// Waits until the async invocation `id` has `status`.
async fn wait_for_status(server: &TestServer, id: &str, status: &str) {
    let started = Instant::now();
    loop {
        let event = get_json(server, &format!("/v1/invocations/{id}")).await;
        if event["status"] == status {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{event}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn dlq_commands_list_show_redrive_and_purge_dead_letters() {
    let server = TestServer::serve(bin());
    deploy_fixture(
        &server,
        "kit",
        "event-kit",
        json!({"kind": "event", "max_retries": 0}),
    )
    .await;

    // `invoke --async` prints the id; an idempotency key gives the same id again.
    let id = wisp(
        &server,
        &["invoke", "kit", "--async", "--data", r#"{"action":"trap"}"#],
    );
    let id = id.trim().to_string();
    assert_eq!(id.len(), 36, "{id}");
    let keyed = [
        "invoke",
        "kit",
        "--async",
        "--idempotency-key",
        "k1",
        "--data",
        r#"{"action":"hello"}"#,
    ];
    let first = wisp(&server, &keyed);
    let out = server.cli(bin()).args(keyed).output().unwrap();
    let (again, stderr) = text(&out);
    assert_eq!(first, again);
    assert!(stderr.contains("same idempotency key"), "{stderr}");
    let err = wisp_fails(&server, &["invoke", "kit", "--idempotency-key", "k"], 2);
    assert!(err.contains("--async"), "{err}");

    wait_for_status(&server, &id, "failed").await;
    wait_for_status(&server, first.trim(), "succeeded").await;
    let out = wisp(&server, &["dlq", "ls", "kit"]);
    assert!(
        out.lines().next().unwrap().trim_start().starts_with("ID"),
        "{out}"
    );
    let row = out.lines().find(|l| l.contains(&id)).unwrap();
    assert!(row.contains("retries_exhausted"), "{out}");
    assert!(
        out.contains("0 queued, 0 running, 1 succeeded (kept 24h), 1 dead"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&wisp(&server, &["dlq", "ls", "kit", "--json"])).unwrap();
    assert_eq!(json["dead_letters"][0]["id"], id.as_str());

    let out = wisp(&server, &["dlq", "show", &id]);
    assert!(out.contains("status        failed\n"), "{out}");
    assert!(out.contains("attempts      1\n"), "{out}");
    assert!(out.contains("failure       retries_exhausted\n"), "{out}");
    assert!(out.contains("last error") && out.contains("trapped"), "{out}");
    assert!(
        out.contains("payload:\n  {\n    \"action\": \"trap\"\n  }"),
        "{out}"
    );
    let err = wisp_fails(&server, &["dlq", "show", "no-such-id"], 4);
    assert!(
        err.contains("invocation_not_found") && err.contains("hint:"),
        "{err}"
    );

    // Purging everything needs --yes.
    let err = wisp_fails(&server, &["dlq", "purge", "kit"], 2);
    assert!(
        err.contains("refusing without --yes") && err.contains("--id ID"),
        "{err}"
    );

    let before = get_json(&server, &format!("/v1/invocations/{id}")).await;
    let out = wisp(&server, &["dlq", "redrive", "kit", "--id", &id]);
    assert_eq!(out, "redrove 1 dead letter of `kit`\n");
    // It runs again (afresh: a redrive starts its attempts over) and fails again.
    let started = Instant::now();
    loop {
        let event = get_json(&server, &format!("/v1/invocations/{id}")).await;
        if event["status"] == "failed" && event["started_at"] != before["started_at"] {
            assert_eq!(event["attempts"], 1, "{event}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{event}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = wisp(&server, &["dlq", "purge", "kit", "--yes"]);
    assert_eq!(out, "purged 1 dead letter of `kit`\n");
    let out = server.cli(bin()).args(["dlq", "ls", "kit"]).output().unwrap();
    assert!(text(&out).1.contains("`kit` has no dead letters."));
    let err = wisp_fails(&server, &["dlq", "ls", "ghost"], 4);
    assert!(err.contains("function_not_found"), "{err}");
}

#[tokio::test]
async fn deploy_creates_the_manifests_queues_dead_letter_queues_first() {
    let server = TestServer::serve(bin());
    let app = tempfile::tempdir().unwrap();
    let wasm = fixture("event-kit");
    std::fs::write(
        app.path().join("wisp.toml"),
        format!(
            "[app]\nname = \"shop\"\n\n\
             [functions.worker]\nsource = {:?}\nkind = \"event\"\nqueue = \"orders\"\n\n\
             [queues.orders]\nvisibility_timeout = \"1m\"\nmax_receive_count = 3\ndead_letter_queue = \"orders-dlq\"\n\n\
             [queues.orders-dlq]\nretention = \"14d\"\n",
            wasm.display().to_string()
        ),
    )
    .unwrap();
    let path = app.path().to_str().unwrap();
    let out = wisp(&server, &["deploy", path]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(lines[1].starts_with("created    queue orders-dlq"), "{out}");
    assert!(lines[2].starts_with("created    queue orders "), "{out}");
    assert!(lines[3].starts_with("created    worker"), "{out}");
    let orders = get_json(&server, "/v1/queues/orders").await;
    assert_eq!(orders["config"]["dead_letter_queue"], "orders-dlq");
    let out = wisp(&server, &["deploy", path]);
    assert!(
        out.contains("unchanged  queue orders-dlq")
            && out.contains("unchanged  queue orders ")
            && out.contains("unchanged  worker"),
        "{out}"
    );
}

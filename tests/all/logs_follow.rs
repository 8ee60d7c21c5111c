//! Live logs: `wisp logs -f` and `GET …/logs?follow=true` (server-sent events) see lines
//! written after they started, resume after a cursor, end when the function is deleted;
//! the filters, and the 400s for bad values.

use crate::util::{bin, client, deploy_fixture, expect_problem, http_config, logs_when, server};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

/// Runs `GET /kit/log` (one stdout and one stderr line); its invocation id.
async fn log_once(server: &TestServer) -> String {
    let r = client().get(server.at("/kit/log")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["x-wisp-invocation-id"].to_str().unwrap().to_string()
}

async fn kit() -> TestServer {
    let server = server();
    deploy_fixture(&server, "kit", "http-kit", http_config(json!(["/kit/*"]))).await;
    server
}

/// The next line of `lines` that `wanted` accepts, within 10 s.
fn next_matching(lines: &mpsc::Receiver<String>, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no matching line within 10 s: {e}"));
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("`{line}`: {e}"));
        if wanted(&value) {
            return value;
        }
    }
}

#[tokio::test]
async fn logs_follow_cli_sees_a_line_written_after_it_started() {
    let server = kit().await;
    let before = log_once(&server).await;
    logs_when(&server, "/v1/functions/kit/logs", |lines| lines.len() >= 2).await;

    let mut child = server
        .cli(bin())
        .args(["logs", "-f", "kit", "--json", "--contains", "stdout"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // The recent line first: the follower is connected.
    let old = next_matching(&lines, |_| true);
    assert_eq!(old["invocation_id"], before.as_str());
    assert_eq!(old["line"], "hello from stdout", "the filter applies: {old}");

    let after = log_once(&server).await;
    let new = next_matching(&lines, |l| l["invocation_id"] == after.as_str());
    assert_eq!(new["line"], "hello from stdout");
    assert_eq!(new["stream"], "stdout");
    assert_eq!(new["version"], 1);
    assert!(new["cursor"].as_u64().unwrap() > old["cursor"].as_u64().unwrap());
    assert!(lines.try_recv().is_err(), "the stderr line passed the filter");

    // Ctrl-C ends it, successfully.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// A followed log's events as they arrive: `(event, id, data)`.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(server: &TestServer, query: &str, last_id: Option<&str>) -> Events {
        let mut request = client().get(server.at(&format!("/v1/functions/kit/logs?follow=true{query}")));
        if let Some(id) = last_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), within 10 s.
    async fn next(&mut self) -> (String, Option<String>, String) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let (mut kind, mut id, mut data) = (String::new(), None, String::new());
                    for line in block.lines() {
                        match line.split_once(':') {
                            Some(("event", v)) => kind = v.trim().to_string(),
                            Some(("id", v)) => id = Some(v.trim().to_string()),
                            Some(("data", v)) => data = v.trim_start().to_string(),
                            _ => {}
                        }
                    }
                    if !data.is_empty() {
                        return (kind, id, data);
                    }
                    continue;
                }
                let chunk = self.response.chunk().await.unwrap().expect("the stream ended");
                self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .expect("no event within 10 s")
    }

    async fn line(&mut self) -> (String, Value) {
        let (kind, id, data) = self.next().await;
        assert_eq!(kind, "", "not a line: {data}");
        (id.unwrap(), serde_json::from_str(&data).unwrap())
    }
}

#[tokio::test]
async fn logs_follow_over_sse_resumes_after_last_event_id() {
    let server = kit().await;
    let first = log_once(&server).await;
    logs_when(&server, "/v1/functions/kit/logs", |lines| lines.len() >= 2).await;

    let mut events = Events::open(&server, "&contains=stderr", None).await;
    let (id, line) = events.line().await;
    assert_eq!(
        (line["invocation_id"].as_str(), line["stream"].as_str()),
        (Some(first.as_str()), Some("stderr"))
    );
    assert_eq!(id, line["cursor"].to_string(), "the event id is the cursor");

    let second = log_once(&server).await;
    let (second_id, line) = events.line().await;
    assert_eq!(line["invocation_id"], second.as_str());
    assert_eq!(line["line"], "hello from stderr");
    drop(events);

    // A client that lost the connection after the first line resumes with the second.
    let third = log_once(&server).await;
    let mut resumed = Events::open(&server, "&contains=stderr", Some(&id)).await;
    let (resumed_id, line) = resumed.line().await;
    assert_eq!((resumed_id, &line["invocation_id"]), (second_id, &json!(second)));
    let (_, line) = resumed.line().await;
    assert_eq!(line["invocation_id"], third.as_str());

    // Deleting the function ends the stream.
    let r = client()
        .delete(server.at("/v1/functions/kit"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (kind, _, data) = resumed.next().await;
    assert_eq!(kind, "end", "{data}");
    let rest = tokio::time::timeout(Duration::from_secs(5), resumed.response.chunk())
        .await
        .expect("the stream did not close");
    assert!(matches!(rest, Ok(None)), "{rest:?}");
}

#[tokio::test]
async fn logs_filters_by_invocation_version_time_and_text() {
    let server = kit().await;
    let first = log_once(&server).await;
    let second = log_once(&server).await;
    let all = logs_when(&server, "/v1/functions/kit/logs", |lines| lines.len() >= 4).await;
    assert!(
        all.iter()
            .all(|l| l["version"] == 1 && l["cursor"].as_u64().unwrap() > 0),
        "{all:?}"
    );

    let get = |query: &str| {
        let url = server.at(&format!("/v1/functions/kit/logs?{query}"));
        async move {
            let r = client().get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            body["lines"].as_array().unwrap().clone()
        }
    };
    let of_first = get(&format!("invocation={first}")).await;
    assert_eq!(of_first.len(), 2);
    assert!(of_first.iter().all(|l| l["invocation_id"] == first.as_str()));
    let stdout = get("contains=from%20stdout").await;
    assert_eq!(stdout.len(), 2);
    assert!(stdout.iter().all(|l| l["stream"] == "stdout"));
    assert_eq!(get("version=1").await.len(), 4);
    assert!(get("version=2").await.is_empty());
    assert_eq!(get("since=1h&until=2999-01-01T00:00:00Z").await.len(), 4);
    assert!(get("since=2999-01-01T00:00:00Z").await.is_empty());
    assert!(get("until=2000-01-01T00:00:00%2B02:00").await.is_empty());
    let both = get(&format!("invocation={second}&contains=stderr")).await;
    assert_eq!(both.len(), 1);
    assert_eq!(both[0]["line"], "hello from stderr");
}

#[tokio::test]
async fn logs_refuse_bad_filter_values_with_a_specific_message() {
    let server = kit().await;
    let c = client();
    for (query, says) in [
        ("version=two", "invalid `version` `two`"),
        ("version=0", "invalid `version` `0`"),
        ("version=-1", "invalid `version` `-1`"),
        ("since=yesterday", "invalid `since` `yesterday`"),
        ("until=2026-02-30T00:00:00Z", "invalid `until`"),
        ("since=1m&until=1h", "is after `until`"),
        ("contains=", "`contains` is empty"),
        ("invocation=", "`invocation` is empty"),
        ("follow=maybe", "invalid `follow` `maybe`"),
        ("limit=0", "`limit` must be between 1 and 10000"),
        ("colour=red", "unknown field `colour`"),
    ] {
        let r = c
            .get(server.at(&format!("/v1/functions/kit/logs?{query}")))
            .send()
            .await
            .unwrap();
        let doc = expect_problem(r, 400, "invalid_request").await;
        let detail = doc["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{query}: {detail}");
    }
    let r = c
        .get(server.at("/v1/functions/kit/logs?follow=true"))
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    let doc = expect_problem(r, 400, "invalid_request").await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("invalid `Last-Event-ID` `yesterday`"),
        "{doc}"
    );
    let r = c
        .get(server.at("/v1/functions/ghost/logs?follow=true"))
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "function_not_found").await;
}

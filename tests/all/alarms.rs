//! Alarms end to end: a function starts failing, its error-rate alarm goes to ALARM
//! and back to OK when it recovers, each change POSTed once to a webhook and sent to a
//! queue for the states its action names; a change whose action was cut short by a
//! crash is carried out again after the restart; rules are checked at `PUT`; state
//! shows on `/metrics`.

use crate::topics_webhook::Receiver;
use crate::util::{client, deploy_fixture, expect_problem, get_json, server};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wisp_test_support::TestServer;

/// `GET /v1/alarms/{name}` once its state is `state` (failing after `within`).
async fn alarm_in(server: &TestServer, name: &str, state: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let alarm = get_json(server, &format!("/v1/alarms/{name}")).await;
        if alarm["state"] == state {
            return alarm;
        }
        assert!(
            Instant::now() < deadline,
            "alarm `{name}` never reached {state}: {alarm:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Invokes `function` every 20 ms until `stop`, failing (`exit 3`) while `failing`.
fn traffic(server: &TestServer, function: &str, failing: Arc<AtomicBool>, stop: Arc<AtomicBool>) {
    let url = server.at(&format!("/v1/functions/{function}/invoke"));
    tokio::spawn(async move {
        let client = client();
        while !stop.load(Ordering::SeqCst) {
            let event = if failing.load(Ordering::SeqCst) {
                json!({ "action": "exit", "code": 3 })
            } else {
                json!({ "action": "hello" })
            };
            let _ = client.post(&url).json(&event).send().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_function_raises_its_alarm_and_recovers_firing_each_change_once() {
    let server = server();
    let client = client();
    deploy_fixture(&server, "work", "event-kit", json!({ "kind": "event" })).await;
    let response = client.put(server.at("/v1/queues/alerts")).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let hook = Receiver::start(200).await;
    let rule = json!({
        "metric": "error_rate",
        "function": "work",
        "threshold": 0.5,
        "period": "1s",
        "evaluation_periods": 2,
        // Once the traffic stops, the alarm stays OK (the default would move it to
        // INSUFFICIENT_DATA two periods later: a third change).
        "missing_data": "ignore",
        "description": "work is failing",
        "actions": [
            { "webhook": hook.url("/alarms") },
            { "queue": "alerts", "on": ["ALARM"] },
        ],
    });
    let response = client
        .put(server.at("/v1/alarms/work-errors"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let put: Value = response.json().await.unwrap();
    assert_eq!(put["status"], "created");
    assert_eq!(put["alarm"]["state"], "INSUFFICIENT_DATA");
    assert_eq!(
        put["alarm"]["condition"],
        "error_rate of function work > 0.5 for 2 of 2 periods of 1s"
    );

    let (failing, stop) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(false)));
    traffic(&server, "work", failing.clone(), stop.clone());
    let raised = alarm_in(&server, "work-errors", "ALARM", Duration::from_secs(30)).await;
    assert!(
        raised["reason"]
            .as_str()
            .unwrap()
            .starts_with("2 of the last 2 datapoints (1, 1) > 0.5"),
        "{raised:#}"
    );
    failing.store(false, Ordering::SeqCst);
    let recovered = alarm_in(&server, "work-errors", "OK", Duration::from_secs(30)).await;
    stop.store(true, Ordering::SeqCst);

    // The history, newest first: ALARM, then OK (and nothing else: no data came
    // before the first failures, so INSUFFICIENT_DATA went straight to ALARM).
    let history = recovered["history"].as_array().unwrap();
    let moves: Vec<(&str, &str)> = history
        .iter()
        .rev()
        .map(|t| (t["from"].as_str().unwrap(), t["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        moves,
        [("INSUFFICIENT_DATA", "ALARM"), ("ALARM", "OK")],
        "{recovered:#}"
    );
    assert_eq!(recovered["transitions"], 2);

    // The webhook got each change once, in order, with its id.
    let got = hook.until(Duration::from_secs(10), |got| got.len() >= 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = if hook.received().len() > got.len() {
        hook.received()
    } else {
        got
    };
    assert_eq!(got.len(), 2, "one POST per change: {got:#?}");
    let docs: Vec<Value> = got
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(docs[0]["state"], "ALARM");
    assert_eq!(docs[0]["from"], "INSUFFICIENT_DATA");
    assert_eq!(docs[0]["id"], "default/work-errors/1");
    assert_eq!(docs[0]["value"], 1.0);
    assert_eq!(docs[0]["description"], "work is failing");
    assert_eq!(docs[1]["state"], "OK");
    assert_eq!(docs[1]["seq"], 2);
    assert_eq!(got[0].path, "/alarms");
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert_eq!(got[1].headers["wisp-alarm-change"], "default/work-errors/2");

    // The queue got the ALARM change only.
    let received: Value = client
        .post(server.at("/v1/queues/alerts/receive"))
        .json(&json!({ "max": 10 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages = received["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{received:#}");
    let message: Value = serde_json::from_str(messages[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(message["state"], "ALARM");

    // Both changes are marked notified, with no action errors.
    let shown = get_json(&server, "/v1/alarms/work-errors").await;
    assert_eq!(shown["notified"], 2, "{shown:#}");
    assert!(
        shown["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["action_errors"] == json!([]))
    );

    // `/metrics` shows the state.
    let metrics = client
        .get(server.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"wisp_alarm_state{namespace="default",alarm="work-errors",state="OK"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"wisp_alarm_state{namespace="default",alarm="work-errors",state="ALARM"} 0"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_actions_did_not_finish_is_carried_out_again_after_a_crash() {
    let mut server = server();
    let client = client();
    deploy_fixture(&server, "work", "event-kit", json!({ "kind": "event" })).await;
    // The first POST gets no answer: the change is recorded, its action in flight.
    let hook = Receiver::start(0).await;
    let rule = json!({
        "metric": "error_rate",
        "function": "work",
        "threshold": 0.5,
        "period": "1s",
        "missing_data": "ignore",
        "actions": [{ "webhook": hook.url("/alarms") }],
    });
    let response = client
        .put(server.at("/v1/alarms/work-errors"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let stop = Arc::new(AtomicBool::new(false));
    traffic(&server, "work", Arc::new(AtomicBool::new(true)), stop.clone());
    hook.until(Duration::from_secs(30), |got| !got.is_empty()).await;
    stop.store(true, Ordering::SeqCst);
    let alarm = get_json(&server, "/v1/alarms/work-errors").await;
    assert_eq!(
        (alarm["state"].as_str(), alarm["notified"].as_u64()),
        (Some("ALARM"), Some(0)),
        "{alarm:#}"
    );

    hook.status.store(200, Ordering::SeqCst);
    tokio::task::block_in_place(|| server.crash_and_restart());
    let got = hook.until(Duration::from_secs(20), |got| got.len() >= 2).await;
    let ids: Vec<&str> = got
        .iter()
        .map(|r| r.headers["wisp-alarm-change"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["default/work-errors/1", "default/work-errors/1"],
        "the same change, again"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alarm = get_json(&server, "/v1/alarms/work-errors").await;
        if alarm["notified"] == 1 {
            assert_eq!(alarm["state"], "ALARM", "the state outlives the crash: {alarm:#}");
            assert_eq!(alarm["transitions"], 1);
            break;
        }
        assert!(Instant::now() < deadline, "never marked notified: {alarm:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hook.received().len(), 2, "marked, so not sent a third time");
}

#[tokio::test]
async fn rules_are_checked_when_put() {
    let server = server();
    let client = client();
    let put = |name: &str, rule: Value| {
        client
            .put(server.at(&format!("/v1/alarms/{name}")))
            .json(&rule)
            .send()
    };
    let cases = [
        (
            json!({ "metric": "error_rate", "threshold": 0.1 }),
            "name it with `function`",
        ),
        (
            json!({ "metric": "error_rate", "function": "a", "threshold": 5 }),
            "fraction from 0 to 1",
        ),
        (
            json!({ "metric": "latency", "function": "a", "threshold": 1 }),
            "unknown variant `latency`",
        ),
        (
            json!({ "metric": "errors", "function": "a", "threshold": 1, "period": "10ms" }),
            "period",
        ),
        (
            json!({ "metric": "errors", "function": "a", "threshold": 1, "actions": [{ "webhook": "ftp://x/y" }] }),
            "actions[0]: webhook `ftp://x/y` has unsupported scheme",
        ),
        (
            json!({ "metric": "errors", "function": "a", "threshold": 1, "colour": "red" }),
            "unknown field `colour`",
        ),
        (json!([1]), "must be a JSON object"),
    ];
    for (rule, expected) in cases {
        let problem = expect_problem(put("x", rule.clone()).await.unwrap(), 400, "invalid_request").await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(expected), "{rule}: {detail}");
    }
    let rule =
        json!({ "metric": "errors", "function": "a", "threshold": 1, "actions": [{ "function": "pager" }] });
    let problem = expect_problem(put("x", rule).await.unwrap(), 404, "function_not_found").await;
    assert!(
        problem["detail"].as_str().unwrap().starts_with("actions[0]: "),
        "{problem}"
    );
    expect_problem(put("Bad_Name", json!({})).await.unwrap(), 400, "invalid_name").await;
    let response = client.get(server.at("/v1/alarms/none")).send().await.unwrap();
    expect_problem(response, 404, "alarm_not_found").await;
    let response = client.delete(server.at("/v1/alarms/none")).send().await.unwrap();
    expect_problem(response, 404, "alarm_not_found").await;
    assert_eq!(
        get_json(&server, "/v1/alarms").await,
        json!({ "alarms": [] }),
        "nothing was made"
    );

    // A rule watching what does not exist yet is taken: it has no data.
    let rule = json!({ "metric": "queue_age", "queue": "later", "threshold": "5m", "period": "1s" });
    let response = put("backlog", rule.clone()).await.unwrap();
    assert_eq!(response.status(), 201);
    let response = put("backlog", rule).await.unwrap();
    let again: Value = response.json().await.unwrap();
    assert_eq!(again["status"], "unchanged");
    assert_eq!(again["alarm"]["spec"]["threshold"], 300.0);
    // It stays INSUFFICIENT_DATA, and says why.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alarm = get_json(&server, "/v1/alarms/backlog").await;
        if alarm["judged"]["reason"] == "no data in the last 1 periods: there is no queue `later`" {
            assert_eq!(alarm["state"], "INSUFFICIENT_DATA");
            assert_eq!(alarm["transitions"], 0);
            assert_eq!(alarm["judged"]["value"], Value::Null);
            break;
        }
        assert!(Instant::now() < deadline, "never judged: {alarm:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = client
        .delete(server.at("/v1/alarms/backlog"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(get_json(&server, "/v1/alarms").await, json!({ "alarms": [] }));
}

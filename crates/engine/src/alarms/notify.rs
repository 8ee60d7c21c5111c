//! Carrying out an alarm's actions on a change of state: the change as a JSON document
//! ([`document`]) sent to each action whose `on` names the state entered: a webhook
//! POST (retried), an async invocation of a function, a queue message or a topic
//! message. Then the change is marked notified in the store, with what failed.

use crate::topics::webhook;
use crate::{AsyncOptions, Cause, Engine, Outgoing};
use http::{Method, Request, header};
use serde_json::{Value, json};
use std::sync::Weak;
use std::time::Duration;
use wisp_core::alarm::ActionTarget;
use wisp_core::wall::rfc3339_ms;
use wisp_runtime::body;
use wisp_store::{AlarmRecord, AlarmTransition};

/// How many times an action is tried before it is given up.
pub(crate) const ATTEMPTS: u32 = 5;
/// The wait before the second try; doubled before each one after.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The id a change is known by in every action: `namespace/alarm/seq`.
pub(crate) fn change_id(record: &AlarmRecord, seq: u64) -> String {
    format!("{}/{}/{seq}", record.namespace, record.name)
}

/// The document every action receives about `change` (`docs/alarms.md` shows it).
pub(crate) fn document(record: &AlarmRecord, change: &AlarmTransition) -> Value {
    let spec = &record.spec;
    let mut doc = json!({
        "type": "wisp.alarm.state_change",
        "id": change_id(record, change.seq),
        "namespace": record.namespace.as_str(),
        "alarm": record.name.as_str(),
        "seq": change.seq,
        "from": change.from,
        "state": change.to,
        "reason": change.reason,
        "value": change.value,
        "at": rfc3339_ms(change.at_ms),
        "metric": spec.metric,
        "condition": spec.condition(),
        "comparison": spec.comparison,
        "threshold": spec.threshold,
        "period_seconds": spec.period.as_secs(),
        "evaluation_periods": spec.evaluation_periods,
        "datapoints_to_alarm": spec.datapoints(),
    });
    if let Some(f) = &spec.function {
        doc["function"] = json!(f.as_str());
    }
    if let Some(q) = &spec.queue {
        doc["queue"] = json!(q.as_str());
    }
    if let Some(d) = &spec.description {
        doc["description"] = json!(d);
    }
    doc
}

/// Carries out the actions of every change of `record` not yet notified, oldest first,
/// marking each in the store once its actions are done or given up. Holds the engine
/// only while it tries an action: a shutdown stops it between tries, leaving the
/// change unmarked, to be carried out after the restart.
pub(super) async fn notify(me: Weak<Engine>, record: AlarmRecord) {
    for change in record.unnotified() {
        let doc = document(&record, change).to_string();
        let mut errors = Vec::new();
        for action in record.spec.actions.iter().filter(|a| a.runs_on(change.to)) {
            let Some(outcome) = run_action(&me, &record, change, &action.target, &doc).await else {
                return;
            };
            if let Err(why) = outcome {
                tracing::warn!(
                    "alarm `{}` of namespace `{}`: {} for change {} to {}: {why}",
                    record.name,
                    record.namespace,
                    action.target,
                    change.seq,
                    change.to
                );
                // A webhook's failure names its URL already.
                errors.push(match &action.target {
                    ActionTarget::Webhook(_) => why,
                    target => format!("{target}: {why}"),
                });
            }
        }
        let Some(engine) = me.upgrade() else { return };
        if let Err(e) = engine
            .store
            .mark_alarm_notified(&record.namespace, &record.name, change.seq, &errors)
            .await
        {
            // Not marked: the actions run again later, as at-least-once allows.
            tracing::warn!(
                "cannot mark alarm `{}`'s change {} notified: {e}",
                record.name,
                change.seq
            );
            return;
        }
    }
}

/// One action, tried up to [`ATTEMPTS`] times while it fails in a way another try
/// may fix: `Err` says why it failed for good; `None`, that the engine stopped.
async fn run_action(
    me: &Weak<Engine>,
    record: &AlarmRecord,
    change: &AlarmTransition,
    target: &ActionTarget,
    doc: &str,
) -> Option<Result<(), String>> {
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let tried = try_action(&*me.upgrade()?, record, change, target, doc).await;
        match tried {
            Ok(()) => return Some(Ok(())),
            Err(Failure::Final(why)) => return Some(Err(why)),
            Err(Failure::Retry(why)) if attempt >= ATTEMPTS => {
                return Some(Err(format!("{why} (after {ATTEMPTS} tries)")));
            }
            Err(Failure::Retry(_)) => {}
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
        attempt += 1;
    }
}

async fn try_action(
    engine: &Engine,
    record: &AlarmRecord,
    change: &AlarmTransition,
    target: &ActionTarget,
    doc: &str,
) -> Result<(), Failure> {
    let ns = &record.namespace;
    let id = change_id(record, change.seq);
    let engine_failure = |e: crate::EngineError| {
        if e.code.status() >= 500 {
            Failure::Retry(e.detail)
        } else {
            Failure::Final(e.detail)
        }
    };
    match target {
        ActionTarget::Webhook(url) => {
            let request = Request::builder()
                .method(Method::POST)
                .uri(url)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::USER_AGENT, "Wisp-Alarms/1")
                .header("wisp-alarm-change", &id)
                .body(body::full(doc.to_owned()))
                .map_err(|e| Failure::Final(format!("cannot build the request to `{url}`: {e}")))?;
            webhook::send(url, request)
                .await
                .map_err(|webhook::Failed(why)| Failure::Retry(why))
        }
        ActionTarget::Function(function) => {
            let options = AsyncOptions {
                // A change carried out again is the same event, not a second one.
                idempotency_key: Some(format!("alarm:{id}")),
                source: "alarm".to_owned(),
                ..AsyncOptions::default()
            };
            engine
                .enqueue(ns, function, doc.to_owned().into(), options)
                .await
                .map(drop)
                .map_err(engine_failure)
        }
        ActionTarget::Queue(queue) => {
            let message = Outgoing {
                body: doc.to_owned(),
                delay: Duration::ZERO,
            };
            engine
                .send_messages(ns, queue, vec![message], Cause::default())
                .await
                .map(drop)
                .map_err(engine_failure)
        }
        ActionTarget::Topic(topic) => engine
            .publish_message(ns, topic, doc.to_owned(), Default::default(), Cause::default())
            .await
            .map(drop)
            .map_err(engine_failure),
    }
}

/// Why an action failed: for now (another try may work), or for good.
enum Failure {
    Retry(String),
    Final(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_core::{AlarmName, AlarmState, Namespace};

    #[test]
    fn the_document_says_what_changed_and_why() {
        let spec = serde_json::from_str(
            r#"{"metric":"error_rate","function":"api","threshold":0.1,"period":"10s","evaluation_periods":3,"description":"API failing"}"#,
        )
        .unwrap();
        let change = AlarmTransition {
            seq: 2,
            at_ms: 1_700_000_000_000,
            from: AlarmState::Ok,
            to: AlarmState::Alarm,
            reason: "3 of the last 3 datapoints …".into(),
            value: Some(0.5),
            action_errors: vec![],
        };
        let record = AlarmRecord {
            namespace: Namespace::new("default").unwrap(),
            name: AlarmName::new("api-errors").unwrap(),
            spec,
            state: AlarmState::Alarm,
            reason: change.reason.clone(),
            state_since_ms: change.at_ms,
            created_ms: 0,
            updated_ms: 0,
            history: vec![change.clone()],
            transitions: 2,
            notified: 1,
            revision: 7,
        };
        let doc = document(&record, &change);
        assert_eq!(doc["id"], "default/api-errors/2");
        assert_eq!(
            (doc["from"].as_str(), doc["state"].as_str()),
            (Some("OK"), Some("ALARM"))
        );
        assert_eq!(doc["value"], 0.5);
        assert_eq!(doc["function"], "api");
        assert_eq!(doc["period_seconds"], 10);
        assert_eq!(doc["datapoints_to_alarm"], 3);
        assert_eq!(doc["at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(doc["description"], "API failing");
    }
}

//! The dashboard's alarms: the list with each one's state, and one alarm with its rule,
//! why it is in its state, and its history of changes with what their actions did.

use super::{Chrome, Page, Viewer};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use std::sync::Arc;
use wisp_core::AlarmName;
use wisp_core::wall::rfc3339_ms;
use wisp_engine::Engine;

struct AlarmRow {
    name: String,
    state: String,
    condition: String,
    since: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "ui/alarms.html")]
struct AlarmsPage {
    chrome: Option<Chrome>,
    namespace: String,
    rows: Vec<AlarmRow>,
}

pub(super) async fn list(viewer: Viewer, State(engine): State<Arc<Engine>>) -> Result<Page, Page> {
    viewer.must(Method::GET, "/v1/alarms")?;
    let ns = &viewer.namespace;
    let rows = engine
        .alarms(ns)
        .await?
        .into_iter()
        .map(|a| AlarmRow {
            name: a.name.to_string(),
            state: a.state.as_str().to_owned(),
            condition: a.spec.condition(),
            since: rfc3339_ms(a.state_since_ms),
            reason: a.reason,
        })
        .collect();
    Ok(Page::ok(&AlarmsPage {
        chrome: Some(viewer.chrome("alarms")),
        namespace: ns.to_string(),
        rows,
    }))
}

struct ChangeRow {
    seq: u64,
    at: String,
    from: &'static str,
    to: &'static str,
    value: String,
    reason: String,
    actions: String,
    errors: Vec<String>,
}

#[derive(Template)]
#[template(path = "ui/alarm.html")]
struct AlarmPage {
    chrome: Option<Chrome>,
    name: String,
    state: &'static str,
    description: Option<String>,
    condition: String,
    since: String,
    missing: String,
    actions: String,
    reason: String,
    judged: Option<String>,
    history: Vec<ChangeRow>,
}

/// A datapoint as the page shows it: up to four decimals, durations with `s`.
fn value(v: Option<f64>, duration: bool) -> String {
    let Some(v) = v else {
        return "–".to_owned();
    };
    let text = format!("{v:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if duration {
        format!("{text}s")
    } else {
        text.to_owned()
    }
}

pub(super) async fn show(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
) -> Result<Page, Page> {
    let name =
        AlarmName::new(name).map_err(|e| Page::error(StatusCode::BAD_REQUEST, "Bad name", &e.to_string()))?;
    viewer.must(Method::GET, &format!("/v1/alarms/{name}"))?;
    let ns = &viewer.namespace;
    let alarm = engine.alarm(ns, &name).await?;
    let duration = alarm.spec.metric.is_duration();
    let actions = alarm
        .spec
        .actions
        .iter()
        .map(|a| match a.on.as_slice() {
            [] => a.target.to_string(),
            on => format!(
                "{} (on {})",
                a.target,
                on.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let has_actions = !alarm.spec.actions.is_empty();
    let history = alarm
        .history
        .iter()
        .rev()
        .map(|t| ChangeRow {
            seq: t.seq,
            at: rfc3339_ms(t.at_ms),
            from: t.from.as_str(),
            to: t.to.as_str(),
            value: value(t.value, duration),
            reason: t.reason.clone(),
            actions: if !t.action_errors.is_empty() {
                t.action_errors.join("; ")
            } else if !has_actions {
                "–".to_owned()
            } else if t.seq > alarm.notified {
                "not carried out yet".to_owned()
            } else {
                "done".to_owned()
            },
            errors: t.action_errors.clone(),
        })
        .collect();
    let judged = engine
        .alarm_judged(ns, &name)
        .map(|j| format!("{}: {}", rfc3339_ms(j.at_ms), j.reason));
    Ok(Page::ok(&AlarmPage {
        chrome: Some(viewer.chrome("alarms")),
        name: name.to_string(),
        state: alarm.state.as_str(),
        description: alarm.spec.description.clone(),
        condition: alarm.spec.condition(),
        since: rfc3339_ms(alarm.state_since_ms),
        missing: serde_json::to_value(alarm.spec.missing_data)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        actions,
        reason: alarm.reason.clone(),
        judged,
        history,
    }))
}

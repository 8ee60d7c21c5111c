//! The dashboard's queue pages: every queue of the namespace with what it holds
//! (`/ui/queues`), and one queue (`/ui/queues/NAME`) with its settings, the functions
//! it triggers, and the actions the API allows on it: send a message, purge, redrive
//! a dead-letter queue. The pages never receive a message: a receive would hide it
//! from the queue's consumers for the visibility timeout.

use super::paging::{PageQuery, Pager};
use super::{Chrome, Page, Viewer};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wisp_core::wall::{now_ms, rfc3339_ms};
use wisp_core::{Namespace, QueueName};
use wisp_engine::{Engine, Outgoing};
use wisp_store::{QueueRecord, QueueStats};

pub(super) fn queue_name(name: &str) -> Result<QueueName, Page> {
    QueueName::new(name).map_err(|e| Page::error(StatusCode::BAD_REQUEST, "Bad name", &e.to_string()))
}

/// A span as the pages show it, to the second: `45s`, `3m 20s`, `2h 5m`, `4d 1h`.
pub(super) fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) if s == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h {m}m"),
        (_, 0, _) => format!("{d}d"),
        _ => format!("{d}d {h}h"),
    }
}

/// A function a queue triggers.
struct TriggerRow {
    function: String,
    batch_size: u32,
    window: String,
    disabled: bool,
}

/// The queue triggers of the namespace's functions, by queue.
fn triggers(engine: &Engine, ns: &Namespace) -> HashMap<QueueName, Vec<TriggerRow>> {
    let mut by_queue: HashMap<QueueName, Vec<TriggerRow>> = HashMap::new();
    for deployed in engine.functions(ns) {
        for trigger in &deployed.config().queue {
            by_queue
                .entry(trigger.queue.clone())
                .or_default()
                .push(TriggerRow {
                    function: deployed.record.name.to_string(),
                    batch_size: trigger.batch_size,
                    window: if trigger.max_batching_window.is_zero() {
                        "none".to_owned()
                    } else {
                        humantime::format_duration(trigger.max_batching_window).to_string()
                    },
                    disabled: deployed.record.disabled,
                });
        }
    }
    by_queue
}

struct QueueRow {
    name: String,
    visible: u64,
    in_flight: u64,
    delayed: u64,
    /// The age of its oldest message ("–" when empty).
    oldest: String,
    dead_letter_queue: Option<String>,
    max_receive_count: Option<u32>,
    triggers: String,
}

#[derive(Template)]
#[template(path = "ui/queues.html")]
struct QueuesPage {
    chrome: Option<Chrome>,
    namespace: String,
    rows: Vec<QueueRow>,
    pager: Pager,
}

pub(super) async fn list(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Query(query): Query<PageQuery>,
) -> Result<Page, Page> {
    viewer.must(Method::GET, "/v1/queues")?;
    let ns = &viewer.namespace;
    let now = now_ms();
    let oldest: HashMap<QueueName, i64> = engine
        .queue_depths(ns)
        .await?
        .into_iter()
        .filter_map(|d| Some((d.queue, d.oldest_sent_ms?)))
        .collect();
    let triggers = triggers(&engine, ns);
    let mut queues = engine.queues(ns).await?;
    queues.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let (shown, pager) = Pager::cut(queues, query.page, "/ui/queues");
    let rows = shown
        .into_iter()
        .map(|(record, stats): (QueueRecord, QueueStats)| QueueRow {
            oldest: oldest
                .get(&record.name)
                .map_or_else(|| "–".to_owned(), |sent| span(now - sent)),
            triggers: triggers
                .get(&record.name)
                .map(|t| {
                    t.iter()
                        .map(|t| t.function.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            name: record.name.to_string(),
            visible: stats.visible,
            in_flight: stats.in_flight,
            delayed: stats.delayed,
            dead_letter_queue: record.config.dead_letter_queue.map(|q| q.to_string()),
            max_receive_count: record.config.max_receive_count,
        })
        .collect();
    Ok(Page::ok(&QueuesPage {
        chrome: Some(viewer.chrome("queues")),
        namespace: ns.to_string(),
        rows,
        pager,
    }))
}

#[derive(Template)]
#[template(path = "ui/queue.html")]
struct QueuePage {
    chrome: Option<Chrome>,
    csrf: String,
    name: String,
    stats: QueueStats,
    oldest: String,
    visibility_timeout: String,
    retention: String,
    max_receive_count: Option<u32>,
    dead_letter_queue: Option<String>,
    /// The queues whose dead-letter queue this one is.
    dead_letters_of: Vec<String>,
    created: String,
    updated: String,
    triggers: Vec<TriggerRow>,
    can_send: bool,
    can_purge: bool,
    can_redrive: bool,
    done: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Done {
    sent: Option<String>,
    purged: Option<u64>,
    redriven: Option<u64>,
}

pub(super) async fn show(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Result<Page, Page> {
    let name = queue_name(&name)?;
    let api = format!("/v1/queues/{name}");
    viewer.must(Method::GET, &api)?;
    let ns = &viewer.namespace;
    let (record, stats) = engine.queue(ns, &name).await?;
    let oldest = engine
        .queue_depths(ns)
        .await?
        .into_iter()
        .find(|d| d.queue == name)
        .and_then(|d| d.oldest_sent_ms)
        .map_or_else(|| "–".to_owned(), |sent| span(now_ms() - sent));
    let mut dead_letters_of: Vec<String> = engine
        .queues(ns)
        .await?
        .into_iter()
        .filter(|(other, _)| other.config.dead_letter_queue.as_ref() == Some(&name))
        .map(|(other, _)| other.name.to_string())
        .collect();
    dead_letters_of.sort();
    let done = match (done.sent, done.purged, done.redriven) {
        (Some(id), _, _) => Some(format!("Message {id} sent.")),
        (_, Some(n), _) => Some(format!("{n} message(s) purged.")),
        (_, _, Some(n)) => Some(format!("{n} message(s) moved back to the queues they came from.")),
        _ => None,
    };
    let config = record.config;
    Ok(Page::ok(&QueuePage {
        chrome: Some(viewer.chrome("queues")),
        csrf: viewer.csrf.clone(),
        can_send: viewer.may(Method::POST, &format!("{api}/messages")),
        can_purge: viewer.may(Method::POST, &format!("{api}/purge")),
        can_redrive: !dead_letters_of.is_empty() && viewer.may(Method::POST, &format!("{api}/redrive")),
        triggers: triggers(&engine, ns).remove(&name).unwrap_or_default(),
        name: name.to_string(),
        stats,
        oldest,
        visibility_timeout: humantime::format_duration(config.visibility_timeout).to_string(),
        retention: humantime::format_duration(config.retention).to_string(),
        max_receive_count: config.max_receive_count,
        dead_letter_queue: config.dead_letter_queue.map(|q| q.to_string()),
        dead_letters_of,
        created: rfc3339_ms(record.created_at),
        updated: rfc3339_ms(record.updated_at),
        done,
    }))
}

#[derive(Deserialize)]
pub(super) struct SendForm {
    body: String,
    /// As the API takes it (`5s`); empty or absent: none.
    #[serde(default)]
    delay: String,
}

/// Sends one message, as `POST /v1/queues/NAME/messages` does.
pub(super) async fn send(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Page> {
    let form: SendForm = viewer.accept(&body)?;
    let name = queue_name(&name)?;
    viewer.must(Method::POST, &format!("/v1/queues/{name}/messages"))?;
    viewer.caller.check_queue_grant(&name)?;
    let delay = match form.delay.trim() {
        "" => Duration::ZERO,
        text => wisp_core::duration_text::parse(text)
            .map_err(|e| Page::error(StatusCode::BAD_REQUEST, "Bad delay", &format!("delay: {e}")))?,
    };
    let cause = engine.write_cause(&viewer.caller, None, None);
    let message = Outgoing {
        body: form.body,
        delay,
    };
    let ids = engine
        .send_messages(&viewer.namespace, &name, vec![message], cause)
        .await?;
    let id = ids.into_iter().next().unwrap_or_default();
    Ok(Redirect::to(&format!("/ui/queues/{name}?sent={id}")).into_response())
}

/// Drops every message, as `POST /v1/queues/NAME/purge` does.
pub(super) async fn purge(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Page> {
    viewer.accept::<serde::de::IgnoredAny>(&body)?;
    let name = queue_name(&name)?;
    viewer.must(Method::POST, &format!("/v1/queues/{name}/purge"))?;
    let purged = engine.purge_queue(&viewer.namespace, &name).await?;
    Ok(Redirect::to(&format!("/ui/queues/{name}?purged={purged}")).into_response())
}

/// Moves a dead-letter queue's messages back, as `POST /v1/queues/NAME/redrive` does.
pub(super) async fn redrive(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Page> {
    viewer.accept::<serde::de::IgnoredAny>(&body)?;
    let name = queue_name(&name)?;
    viewer.must(Method::POST, &format!("/v1/queues/{name}/redrive"))?;
    let redriven = engine.redrive_queue(&viewer.namespace, &name).await?;
    Ok(Redirect::to(&format!("/ui/queues/{name}?redriven={redriven}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_to_the_second() {
        assert_eq!(span(-5), "0s");
        assert_eq!(span(45_900), "45s");
        assert_eq!(span(200_000), "3m 20s");
        assert_eq!(span(180_000), "3m");
        assert_eq!(span(2 * 3_600_000 + 5 * 60_000 + 7_000), "2h 5m");
        assert_eq!(span(3_600_000), "1h");
        assert_eq!(span(4 * 86_400_000 + 3_600_000), "4d 1h");
        assert_eq!(span(2 * 86_400_000 + 60_000), "2d");
    }
}

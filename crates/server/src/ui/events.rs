//! The async events page (`/ui/events`): the namespace's backlog, function by function
//! (queued, running and dead events, and how old the oldest waiting one is), and one
//! function's events of one status, newest first, a page at a time by the store's
//! cursor ([`Pager::cursor`]). Dead letters link to their function's dead letters page,
//! where they are redriven or purged.
//!
//! It stands for the API's reads of async events: `GET /v1/functions` (the backlog, and
//! the functions to choose from) and, for a function's events,
//! `GET /v1/functions/NAME/dlq`; each row is what `GET /v1/invocations/ID` shows of the
//! event.

use super::functions::function_name;
use super::paging::{PER_PAGE, PageQuery, Pager};
use super::{Chrome, Page, Viewer};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use serde::Deserialize;
use std::sync::Arc;
use wisp_core::wall::{now_ms, rfc3339_ms};
use wisp_core::{FunctionName, UnixMicros, UnixMillis};
use wisp_engine::Engine;
use wisp_store::{EventQuery, EventRecord, EventStatus};

/// The statuses the filter offers: the store's.
const STATUSES: [EventStatus; 3] = [EventStatus::Pending, EventStatus::Succeeded, EventStatus::Failed];

struct EventRow {
    id: String,
    function: String,
    /// `queued`, `retrying`, `running`, `succeeded` or `failed`.
    state: &'static str,
    attempts: u32,
    created: String,
    next_attempt: String,
    error: String,
}

/// Where an event is, finer than its stored status: a pending event is `running`
/// under a lease, else `retrying` once an attempt failed (or a quota held it), else
/// `queued`.
fn state(event: &EventRecord) -> &'static str {
    match event.status {
        EventStatus::Pending if event.leased_until.is_some() => "running",
        EventStatus::Pending if event.attempts > 0 || event.last_error.is_some() => "retrying",
        EventStatus::Pending => "queued",
        EventStatus::Succeeded => "succeeded",
        EventStatus::Failed => "failed",
    }
}

impl EventRow {
    fn new(event: EventRecord) -> EventRow {
        let waiting = event.status == EventStatus::Pending && event.leased_until.is_none();
        EventRow {
            state: state(&event),
            function: event.function.to_string(),
            attempts: event.attempts,
            created: rfc3339_ms(event.created_us / 1000),
            next_attempt: if waiting {
                rfc3339_ms(event.run_at)
            } else {
                "–".to_owned()
            },
            error: event.last_error.unwrap_or_default(),
            id: event.id,
        }
    }
}

/// A page's cursor: the `created_us` and id of the last event of the page before, as
/// `CREATED_US:ID`.
fn cursor(event: &EventRecord) -> String {
    format!("{}:{}", event.created_us, event.id)
}

/// [`cursor`] read back; `None` for anything else (the id half must look like an event
/// id, a UUID).
fn parse_cursor(text: &str) -> Option<(UnixMicros, String)> {
    let (created, id) = text.split_once(':')?;
    let uuid = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    Some((created.parse().ok()?, id.to_owned())).filter(|_| uuid)
}

/// A function's line of the backlog.
struct BacklogRow {
    function: String,
    queued: u64,
    running: u64,
    failed: u64,
    /// How long the oldest pending event has waited.
    oldest: String,
}

#[derive(Template)]
#[template(path = "ui/events.html")]
struct EventsPage {
    chrome: Option<Chrome>,
    namespace: String,
    /// Without a function chosen: the backlog.
    backlog: Vec<BacklogRow>,
    /// With one: its events of `status`.
    rows: Vec<EventRow>,
    pager: Pager,
    functions: Vec<String>,
    /// The function chosen (empty for none) and the status shown.
    function: String,
    status: &'static str,
    statuses: [&'static str; 3],
}

#[derive(Deserialize)]
pub(super) struct Filters {
    function: Option<String>,
    status: Option<String>,
}

/// How long ago `ms` was, roughly: `42s`, `5m`, `3h`, `2d`.
fn age(ms: UnixMillis) -> String {
    let s = (now_ms() - ms).max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

pub(super) async fn list(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Query(filters): Query<Filters>,
    Query(paging): Query<PageQuery>,
) -> Result<Page, Page> {
    viewer.must(Method::GET, "/v1/functions")?;
    let ns = &viewer.namespace;
    let function: Option<FunctionName> = match filters.function.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) => Some(function_name(name)?),
    };
    let status = match filters.status.as_deref().map(str::trim) {
        None | Some("") => EventStatus::Pending,
        Some(text) => STATUSES.into_iter().find(|s| s.as_str() == text).ok_or_else(|| {
            Page::error(
                StatusCode::BAD_REQUEST,
                "Bad status",
                &format!("`{text}` is not a status: pending, succeeded or failed."),
            )
        })?,
    };
    let functions = engine
        .functions(ns)
        .iter()
        .map(|d| d.record.name.to_string())
        .collect();
    let mut page = EventsPage {
        chrome: Some(viewer.chrome("events")),
        namespace: ns.to_string(),
        backlog: Vec::new(),
        rows: Vec::new(),
        pager: Pager::cursor(None, None, "/ui/events"),
        functions,
        function: String::new(),
        status: status.as_str(),
        statuses: STATUSES.map(EventStatus::as_str),
    };
    let Some(function) = function else {
        page.backlog = engine
            .event_backlog(ns)
            .await?
            .into_iter()
            .map(|b| BacklogRow {
                function: b.function.to_string(),
                queued: b.queued,
                running: b.running,
                failed: b.failed,
                oldest: b.oldest_pending_ms.map_or_else(|| "–".to_owned(), age),
            })
            .collect();
        return Ok(Page::ok(&page));
    };
    viewer.must(Method::GET, &format!("/v1/functions/{function}/dlq"))?;
    let before = match paging.after.as_deref() {
        None | Some("") => None,
        Some(text) => Some(parse_cursor(text).ok_or_else(|| {
            Page::error(
                StatusCode::BAD_REQUEST,
                "Bad page",
                "The page's link is not one this page made: start again from the first page.",
            )
        })?),
    };
    let query = EventQuery {
        namespace: ns.clone(),
        function: function.clone(),
        status,
        before,
        // One more than a page: whether there is a next one.
        limit: PER_PAGE + 1,
    };
    let mut events = engine.browse_events(&query).await?;
    let more = events.len() > PER_PAGE;
    events.truncate(PER_PAGE);
    let next = more.then(|| events.last().map(cursor)).flatten();
    let filter = [("function", function.as_str()), ("status", status.as_str())];
    let base = format!(
        "/ui/events?{}",
        serde_urlencoded::to_string(filter).unwrap_or_default()
    );
    page.pager = Pager::cursor(
        next.as_deref(),
        paging.after.as_deref().filter(|a| !a.is_empty()),
        &base,
    );
    page.rows = events.into_iter().map(EventRow::new).collect();
    page.function = function.to_string();
    Ok(Page::ok(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_nothing_else_does() {
        let id = "0193a0c4-7b1e-7cc0-9d1e-1234567890ab";
        assert_eq!(
            parse_cursor(&format!("1733360000123456:{id}")),
            Some((1_733_360_000_123_456, id.to_owned()))
        );
        for bad in ["", "12", ":x", "x:0193", "12:", "12:a b", "12:<script>"] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }
}

//! `GET /v1/functions/{name}/logs`: a function's log lines, listed (JSON) or followed
//! (`?follow=true`, server-sent events), with the same filters either way.
//!
//! Following streams from the engine's [`wisp_engine::Engine::follow_logs`]: each event
//! is one line, its `id:` the line's cursor, so a client that reconnects with
//! `Last-Event-ID` misses nothing kept and sees nothing twice. The stream is a plain
//! future polled by the connection: when the client goes away it is dropped, and no
//! task is left behind.

use super::functions::{EngineState, limit_param, parse_name, query_params};
use crate::auth::Scope;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;
use wisp_core::wall::{UnixMillis, millis, now_ms, rfc3339_ms};
use wisp_core::{ErrorCode, duration_text};
use wisp_store::{LOG_LINES_KEPT_PER_FUNCTION, LogLine, LogQuery};

/// How often a followed log sends a comment when no line came, so proxies and
/// clients keep the connection open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The longest `contains` text.
const CONTAINS_MAX: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogParams {
    limit: Option<usize>,
    invocation: Option<String>,
    version: Option<String>,
    since: Option<String>,
    until: Option<String>,
    contains: Option<String>,
    follow: Option<String>,
}

const TAKES: &str = "`limit` (a number), `invocation` (an id), `version` (a number), `since` and `until` \
    (RFC 3339 or a duration ago like `10m`), `contains` (text) and `follow` (true or false)";

/// One line as the API shows it, in a listing and as a followed event's data.
#[derive(Serialize)]
struct LogView {
    time: String,
    invocation_id: String,
    stream: &'static str,
    line: String,
    /// The number of the version that wrote it; `0` for Wisp's own notes and lines
    /// written before Wisp recorded it.
    version: u32,
    /// Its place in the function's log: a followed event's `id`.
    cursor: u64,
}

impl From<LogLine> for LogView {
    fn from(l: LogLine) -> LogView {
        LogView {
            time: rfc3339_ms(l.time),
            invocation_id: l.invocation_id,
            stream: l.stream.as_str(),
            line: l.line,
            version: l.version,
            cursor: l.cursor,
        }
    }
}

fn invalid(detail: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, detail)
}

/// A time: RFC 3339 (`2026-01-02T03:04:05Z`), or a duration before `now` (`10m`, `1h 30m`).
fn parse_time(key: &str, text: &str, now: UnixMillis) -> Result<UnixMillis, ApiError> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp_millis());
    }
    match duration_text::parse(text) {
        Ok(ago) => Ok(now.saturating_sub(millis(ago))),
        Err(_) => Err(invalid(format!(
            "invalid `{key}` `{text}`: use an RFC 3339 time like `2026-01-02T03:04:05Z` or a duration ago like `10m`"
        ))),
    }
}

/// The query the parameters ask for, and whether to follow.
fn parse_query(params: LogParams, now: UnixMillis) -> Result<(LogQuery, bool), ApiError> {
    let limit = limit_param(params.limit, LOG_LINES_KEPT_PER_FUNCTION)?;
    let version = params
        .version
        .map(|text| match text.parse::<u32>() {
            Ok(n @ 1..) => Ok(n),
            _ => Err(invalid(format!(
                "invalid `version` `{text}`: use a version number, 1 or more"
            ))),
        })
        .transpose()?;
    let since = params.since.map(|t| parse_time("since", &t, now)).transpose()?;
    let until = params.until.map(|t| parse_time("until", &t, now)).transpose()?;
    if let (Some(since), Some(until)) = (since, until)
        && since > until
    {
        return Err(invalid(format!(
            "`since` ({}) is after `until` ({}): no line can match",
            rfc3339_ms(since),
            rfc3339_ms(until)
        )));
    }
    if params.invocation.as_deref() == Some("") {
        return Err(invalid("`invocation` is empty: name an invocation id".into()));
    }
    match params.contains.as_deref() {
        Some("") => return Err(invalid("`contains` is empty: give the text to look for".into())),
        Some(text) if text.len() > CONTAINS_MAX => {
            return Err(invalid(format!(
                "`contains` is {} bytes long: at most {CONTAINS_MAX}",
                text.len()
            )));
        }
        _ => {}
    }
    let follow = match params.follow.as_deref() {
        None | Some("false" | "0") => false,
        Some("true" | "1" | "") => true,
        Some(other) => return Err(invalid(format!("invalid `follow` `{other}`: use true or false"))),
    };
    let query = LogQuery {
        invocation_id: params.invocation,
        limit,
        version,
        since,
        until,
        contains: params.contains,
        after: None,
    };
    Ok((query, follow))
}

/// The cursor a reconnecting client names in `Last-Event-ID`.
fn resume_cursor(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            invalid(format!(
                "invalid `Last-Event-ID` `{}`: use the `id` of the last event received",
                String::from_utf8_lossy(value.as_bytes())
            ))
        })
}

/// `GET /v1/functions/{name}/logs`: the newest matching lines, oldest first; with
/// `follow=true`, those and then every matching line as it is written, as server-sent
/// events.
pub(crate) async fn logs(
    scope: Scope,
    State(engine): EngineState,
    Path(name): Path<String>,
    headers: HeaderMap,
    params: Result<Query<LogParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let name = parse_name(&name)?;
    let Query(params) = query_params(params, TAKES)?;
    let (query, follow) = parse_query(params, now_ms())?;
    if !follow {
        let lines: Vec<LogView> = engine
            .logs(&scope.namespace, &name, &query)
            .await?
            .into_iter()
            .map(LogView::from)
            .collect();
        return Ok(Json(serde_json::json!({ "lines": lines })).into_response());
    }
    let resume = resume_cursor(&headers)?;
    let follower = engine.follow_logs(&scope.namespace, &name, query, resume)?;
    // Each step yields the events of one read: its lines, or a last `end` or `error`.
    let what = format!("{}/{name}", scope.namespace);
    let events = futures::stream::unfold(Some(follower), move |follower| {
        let what = what.clone();
        async move {
            let mut follower = follower?;
            let (events, next) = match follower.next().await {
                Ok(Some(lines)) => {
                    let events: Vec<Event> = lines.into_iter().map(line_event).collect();
                    (events, Some(follower))
                }
                Ok(None) => (vec![end_event("the function is no longer deployed")], None),
                Err(e) => {
                    // Internal details stay in the server's log, as for any request.
                    tracing::warn!("following the logs of `{what}` failed: {}", e.with_cause());
                    let data = serde_json::json!({ "code": e.code.as_str() }).to_string();
                    (vec![Event::default().event("error").data(data)], None)
                }
            };
            Some((
                futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>)),
                next,
            ))
        }
    });
    let events = futures::StreamExt::flatten(events);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response())
}

fn line_event(line: LogLine) -> Event {
    let id = line.cursor.to_string();
    let data = serde_json::to_string(&LogView::from(line)).unwrap_or_default();
    Event::default().id(id).data(data)
}

fn end_event(reason: &str) -> Event {
    Event::default()
        .event("end")
        .data(serde_json::json!({ "reason": reason }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> LogParams {
        let text = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        Query::<LogParams>::try_from_uri(&format!("http://x/?{text}").parse().unwrap())
            .unwrap()
            .0
    }

    #[test]
    fn times_are_rfc3339_or_a_duration_ago() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_time("since", "10m", now).unwrap(), now - 600_000);
        assert_eq!(
            parse_time("since", "2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000_000
        );
        let e = parse_time("since", "yesterday", now).unwrap_err();
        assert!(
            e.0.detail.contains("invalid `since` `yesterday`"),
            "{}",
            e.0.detail
        );
    }

    #[test]
    fn filters_parse_and_bad_values_say_which() {
        let (q, follow) = parse_query(
            params(&[
                ("version", "3"),
                ("contains", "boom"),
                ("follow", "true"),
                ("since", "1h"),
            ]),
            3_600_000,
        )
        .unwrap();
        assert_eq!(
            (q.version, q.contains.as_deref(), q.since, follow),
            (Some(3), Some("boom"), Some(0), true)
        );
        for (key, value, says) in [
            ("version", "x", "invalid `version` `x`"),
            ("version", "0", "invalid `version` `0`"),
            ("since", "soon", "invalid `since` `soon`"),
            ("until", "2026-13-01", "invalid `until`"),
            ("contains", "", "`contains` is empty"),
            ("invocation", "", "`invocation` is empty"),
            ("follow", "maybe", "invalid `follow` `maybe`"),
            ("limit", "0", "`limit` must be between"),
        ] {
            let e = parse_query(params(&[(key, value)]), 0).err().unwrap();
            assert!(e.0.detail.contains(says), "{key}={value}: {}", e.0.detail);
        }
        let e = parse_query(params(&[("since", "1m"), ("until", "1h")]), 10_000_000)
            .err()
            .unwrap();
        assert!(e.0.detail.contains("is after `until`"), "{}", e.0.detail);
    }
}

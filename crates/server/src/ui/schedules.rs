//! The dashboard's schedules page (`/ui/schedules`): every schedule trigger of the
//! namespace's functions, with its next slots as the scheduler computes them
//! ([`ParsedSchedule::next_after`], the scheduler's own code) and the slot it last
//! fired for since the server started. Allowed as `GET /v1/functions` is.

use super::paging::{PageQuery, Pager};
use super::{Chrome, Page, Viewer};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::Method;
use std::sync::Arc;
use wisp_core::schedule::ParsedSchedule;
use wisp_core::wall::{now_ms, rfc3339_s};
use wisp_core::{Schedule, UnixMillis};
use wisp_engine::Engine;

/// Next slots a row shows.
const NEXT_SHOWN: usize = 3;

struct ScheduleRow {
    function: String,
    expression: String,
    timezone: Option<String>,
    catch_up: bool,
    disabled: bool,
    /// The next slots, soonest first, as RFC 3339 (UTC).
    next: Vec<String>,
    /// How long until the first of them.
    next_in: String,
    last: Option<String>,
    /// Why the schedule cannot run (it no longer parses), if it cannot.
    error: Option<String>,
}

/// The `count` slots after `now`, by the scheduler's rule.
fn next_slots(parsed: &ParsedSchedule, now: UnixMillis, count: usize) -> Vec<UnixMillis> {
    let mut slots = Vec::with_capacity(count);
    let mut t = now;
    while slots.len() < count {
        let Some(next) = parsed.next_after(t) else {
            break;
        };
        slots.push(next);
        t = next;
    }
    slots
}

#[derive(Template)]
#[template(path = "ui/schedules.html")]
struct SchedulesPage {
    chrome: Option<Chrome>,
    namespace: String,
    now: String,
    rows: Vec<ScheduleRow>,
    pager: Pager,
}

pub(super) async fn list(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Query(query): Query<PageQuery>,
) -> Result<Page, Page> {
    viewer.must(Method::GET, "/v1/functions")?;
    let ns = &viewer.namespace;
    let mut functions = engine.functions(ns);
    functions.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    let all: Vec<(Arc<wisp_engine::Deployed>, Schedule)> = functions
        .into_iter()
        .flat_map(|d| {
            let schedules = d.config().schedule.clone();
            schedules.into_iter().map(move |s| (d.clone(), s))
        })
        .collect();
    let (shown, pager) = Pager::cut(all, query.page, "/ui/schedules");
    let now = now_ms();
    let rows = shown
        .into_iter()
        .map(|(d, schedule)| {
            let name = &d.record.name;
            let (next, error) = match ParsedSchedule::parse(&schedule) {
                Ok(parsed) => (next_slots(&parsed, now, NEXT_SHOWN), None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
            ScheduleRow {
                function: name.to_string(),
                next_in: next
                    .first()
                    .map(|t| super::queues::span(t - now))
                    .unwrap_or_default(),
                next: next.into_iter().map(rfc3339_s).collect(),
                last: engine
                    .schedule_last_fired(ns, name, &schedule.key())
                    .map(rfc3339_s),
                expression: schedule.expression,
                timezone: schedule.timezone,
                catch_up: schedule.catch_up,
                disabled: d.record.disabled,
                error,
            }
        })
        .collect();
    Ok(Page::ok(&SchedulesPage {
        chrome: Some(viewer.chrome("schedules")),
        namespace: ns.to_string(),
        now: rfc3339_s(now),
        rows,
        pager,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_slots_follow_each_other() {
        let every_five = ParsedSchedule::parse(&Schedule {
            expression: "*/5 * * * *".to_owned(),
            timezone: None,
            catch_up: false,
        })
        .unwrap();
        // 2023-11-14T22:13:20Z
        let now = 1_700_000_000_000;
        let slots: Vec<String> = next_slots(&every_five, now, 3)
            .into_iter()
            .map(rfc3339_s)
            .collect();
        assert_eq!(
            slots,
            [
                "2023-11-14T22:15:00Z",
                "2023-11-14T22:20:00Z",
                "2023-11-14T22:25:00Z"
            ]
        );
    }
}

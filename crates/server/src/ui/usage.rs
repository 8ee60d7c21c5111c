//! The dashboard's usage page: the namespace's calendar month (UTC) — requests,
//! GB-seconds and cost past the free tier, each limit of its quota with its share used,
//! whether the quota stops its work — and each function's month at the namespace's
//! prices. Allowed as `GET /v1/usage` is.

use super::{Chrome, Page, Viewer};
use askama::Template;
use axum::extract::State;
use axum::http::Method;
use std::sync::Arc;
use wisp_core::Namespace;
use wisp_core::billing::{Money, Used, gb_seconds_text, month_of};
use wisp_core::wall::{now_ms, rfc3339_ms};
use wisp_engine::{Engine, EngineError};
use wisp_store::{UsageGrouping, UsageQuery};

struct LimitRow {
    name: &'static str,
    used: String,
    quota: String,
    share: String,
    over: bool,
}

/// A function's month so far.
pub(super) struct FunctionRow {
    pub function: String,
    requests: u64,
    errors: u64,
    gb_seconds: String,
    pub cost: Money,
}

#[derive(Template)]
#[template(path = "ui/usage.html")]
struct UsagePage {
    chrome: Option<Chrome>,
    namespace: String,
    month: String,
    stopped: Option<String>,
    requests: u64,
    gb_seconds: String,
    cost: Money,
    free: String,
    limits: Vec<LimitRow>,
    rows: Vec<FunctionRow>,
}

fn share(used: f64, quota: f64) -> (String, bool) {
    if quota <= 0.0 {
        return ("100%".to_owned(), true);
    }
    let share = used / quota;
    (format!("{:.0}%", share * 100.0), share >= 1.0)
}

/// Each function's month so far at the namespace's prices, in one grouped read.
pub(super) async fn function_months(
    engine: &Engine,
    ns: &Namespace,
) -> Result<Vec<FunctionRow>, EngineError> {
    let plan = engine.plan(ns);
    let (from, to) = month_of(now_ms());
    let query = UsageQuery {
        namespace: Some(ns.clone()),
        function: None,
        from,
        to,
        group_by: UsageGrouping::Function,
    };
    Ok(engine
        .usage(&query)
        .await?
        .into_iter()
        .map(|r| {
            let used = Used {
                requests: r.requests,
                mb_ms: r.mb_ms,
                reserved_mb_ms: r.reserved_mb_ms,
                capacity_mb_ms: r.capacity_mb_ms,
            };
            FunctionRow {
                function: r.function.map(|f| f.to_string()).unwrap_or_default(),
                requests: r.requests,
                errors: r.errors,
                gb_seconds: gb_seconds_text(r.mb_ms),
                cost: plan.prices.cost_of(used),
            }
        })
        .collect())
}

pub(super) async fn show(viewer: Viewer, State(engine): State<Arc<Engine>>) -> Result<Page, Page> {
    viewer.must(Method::GET, "/v1/usage")?;
    let ns = &viewer.namespace;
    let plan = engine.plan(ns);
    let (used, stopped) = engine.month_usage(ns);
    let (from, _) = month_of(now_ms());
    let cost = plan.cost(used);
    let quota = &plan.quota;
    let mut limits = Vec::new();
    if let Some(q) = quota.requests {
        let (share, over) = share(used.requests as f64, q as f64);
        limits.push(LimitRow {
            name: "requests",
            used: used.requests.to_string(),
            quota: q.to_string(),
            share,
            over,
        });
    }
    if let Some(q) = quota.gb_seconds {
        let gb = used.mb_ms as f64 / wisp_core::billing::MB_MS_PER_GB_SECOND as f64;
        let (share, over) = share(gb, q as f64);
        limits.push(LimitRow {
            name: "GB-seconds",
            used: gb_seconds_text(used.mb_ms),
            quota: q.to_string(),
            share,
            over,
        });
    }
    if let Some(budget) = quota.budget {
        let (share, over) = share(cost.picodollars() as f64, budget.picodollars() as f64);
        limits.push(LimitRow {
            name: "budget",
            used: cost.to_string(),
            quota: budget.to_string(),
            share,
            over,
        });
    }
    let rows = function_months(&engine, ns).await?;
    Ok(Page::ok(&UsagePage {
        chrome: Some(viewer.chrome("usage")),
        namespace: ns.to_string(),
        month: format!("{} to now", &rfc3339_ms(from)[..10]),
        stopped: stopped.map(|limit| {
            format!("The quota stops this namespace's work: its {} limit is reached. New invocations are refused until the month ends or an admin raises it.", limit.as_str())
        }),
        requests: used.requests,
        gb_seconds: gb_seconds_text(used.mb_ms),
        cost,
        free: format!("{} requests, {} GB-s", plan.free_requests, plan.free_gb_seconds),
        limits,
        rows,
    }))
}

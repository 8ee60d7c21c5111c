//! `/v1/usage`: what a namespace's invocations used and cost — requests, errors,
//! billed time, GB-seconds and the cost at each namespace's prices (before its free
//! tier) — over a period, grouped by function, version, day or hour. A key reads its
//! own namespace's; an admin key every namespace's unless it names one
//! (`Wisp-Namespace`).

use super::functions::{EngineState, parse_name};
use crate::auth::Scope;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wisp_core::ErrorCode;
use wisp_core::billing::{Money, Used, gb_seconds_text, month_of};
use wisp_core::wall::{now_ms, rfc3339_s};
use wisp_store::{UsageGrouping, UsageQuery, UsageRow};

const TAKES: &str = "from and to (RFC 3339 times or YYYY-MM-DD dates, UTC; by default this calendar month), \
                     group_by (namespace, function, version, day or hour; default function), function (a name)";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Params {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
    function: Option<String>,
}

#[derive(Serialize)]
struct RowView {
    namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    function: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<String>,
    requests: u64,
    errors: u64,
    billed_ms: u64,
    gb_seconds: String,
    /// The part of `gb_seconds` that ran on reserved capacity (`min_instances`).
    reserved_gb_seconds: String,
    /// Reserved capacity held, used or not.
    capacity_gb_seconds: String,
    cost: Money,
}

/// A row's usage in the units prices apply to.
fn used(r: &UsageRow) -> Used {
    Used {
        requests: r.requests,
        mb_ms: r.mb_ms,
        reserved_mb_ms: r.reserved_mb_ms,
        capacity_mb_ms: r.capacity_mb_ms,
    }
}

fn bad(e: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, e)
}

/// A time bound: an RFC 3339 time, or a UTC date (its midnight).
fn parse_time(name: &str, text: &str) -> Result<i64, ApiError> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(midnight) = date.and_hms_opt(0, 0, 0)
    {
        return Ok(midnight.and_utc().timestamp_millis());
    }
    Err(bad(format!(
        "{name}: `{text}` is not a time; give an RFC 3339 time (2026-12-01T00:00:00Z) or a date (2026-12-01)"
    )))
}

fn grouping(text: &str) -> Result<UsageGrouping, ApiError> {
    Ok(match text {
        "namespace" => UsageGrouping::Namespace,
        "function" => UsageGrouping::Function,
        "version" => UsageGrouping::Version,
        "day" => UsageGrouping::Day,
        "hour" => UsageGrouping::Hour,
        other => {
            return Err(bad(format!(
                "group_by: `{other}` is not a grouping; use namespace, function, version, day or hour"
            )));
        }
    })
}

pub(super) async fn report(
    scope: Scope,
    State(engine): EngineState,
    headers: HeaderMap,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) =
        params.map_err(|e| bad(format!("bad query: {}; parameters: {TAKES}", e.body_text())))?;
    let (month_start, month_end) = month_of(now_ms());
    let from = params
        .from
        .as_deref()
        .map(|t| parse_time("from", t))
        .transpose()?
        .unwrap_or(month_start);
    let to = params
        .to
        .as_deref()
        .map(|t| parse_time("to", t))
        .transpose()?
        .unwrap_or(month_end);
    if from >= to {
        return Err(bad(format!(
            "from ({}) must be before to ({})",
            rfc3339_s(from),
            rfc3339_s(to)
        )));
    }
    let group_by = grouping(params.group_by.as_deref().unwrap_or("function"))?;
    let function = params.function.as_deref().map(parse_name).transpose()?;
    let namespace = scope.namespace_or_all(&headers);
    let rows = engine
        .usage(&UsageQuery {
            namespace: namespace.clone(),
            function,
            from,
            to,
            group_by,
        })
        .await?;
    // Each row at its namespace's prices; the answer's prices are the namespace's when
    // it covers one, else the server's.
    let prices = match &namespace {
        Some(namespace) => engine.plan(namespace).prices,
        None => engine.prices(),
    };
    let priced: Vec<(&UsageRow, Money)> = rows
        .iter()
        .map(|r| (r, engine.plan(&r.namespace).prices.cost_of(used(r))))
        .collect();
    let view = |(r, cost): &(&UsageRow, Money)| RowView {
        namespace: r.namespace.to_string(),
        function: r.function.as_ref().map(ToString::to_string),
        version: r.version.as_ref().map(ToString::to_string),
        period: r.period.map(rfc3339_s),
        requests: r.requests,
        errors: r.errors,
        billed_ms: r.billed_ms,
        gb_seconds: gb_seconds_text(r.mb_ms),
        reserved_gb_seconds: gb_seconds_text(r.reserved_mb_ms),
        capacity_gb_seconds: gb_seconds_text(r.capacity_mb_ms),
        cost: *cost,
    };
    let list: Vec<RowView> = priced.iter().map(view).collect();
    let requests: u64 = rows.iter().map(|r| r.requests).sum();
    let mb_ms: u64 = rows.iter().map(|r| r.mb_ms).sum();
    Ok(Json(json!({
        "from": rfc3339_s(from),
        "to": rfc3339_s(to),
        "prices": prices,
        "rows": list,
        "total": {
            "requests": requests,
            "errors": rows.iter().map(|r| r.errors).sum::<u64>(),
            "billed_ms": rows.iter().map(|r| r.billed_ms).sum::<u64>(),
            "gb_seconds": gb_seconds_text(mb_ms),
            "reserved_gb_seconds": gb_seconds_text(rows.iter().map(|r| r.reserved_mb_ms).sum()),
            "capacity_gb_seconds": gb_seconds_text(rows.iter().map(|r| r.capacity_mb_ms).sum()),
            "cost": priced.iter().map(|(_, cost)| *cost).sum::<Money>(),
        },
    })))
}

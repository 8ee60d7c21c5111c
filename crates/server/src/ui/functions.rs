//! The dashboard's functions pages (the list, one function with its versions,
//! invocations and logs), and the actions on a function: invoke, roll back (make a
//! version live), disable and enable. Each page or action is allowed when the API
//! request it stands for would be.

use super::charts::{self, Chart};
use super::paging::{PageQuery, Pager};
use super::results::{self, Shown};
use super::usage;
use super::{Chrome, Page, Viewer};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use http_body_util::BodyExt;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wisp_core::wall::rfc3339_ms;
use wisp_core::{FunctionName, Namespace};
use wisp_engine::history::Window;
use wisp_engine::{Deployed, Engine, InvokeOptions};
use wisp_store::{InvocationQuery, LogQuery, LogStream};

/// Invocations the function page shows.
const INVOCATIONS_SHOWN: usize = 20;
/// Log lines the function page shows.
const LOG_LINES_SHOWN: usize = 50;
/// The most of an invocation's answer the page shows.
const RESULT_SHOWN: usize = 64 * 1024;

pub(super) fn function_name(name: &str) -> Result<FunctionName, Page> {
    FunctionName::new(name).map_err(|e| Page::error(StatusCode::BAD_REQUEST, "Bad name", &e.to_string()))
}

fn deployed(engine: &Engine, ns: &Namespace, name: &FunctionName) -> Result<Arc<Deployed>, Page> {
    engine.function(ns, name).ok_or_else(|| {
        Page::error(
            StatusCode::NOT_FOUND,
            "No such function",
            &format!("There is no function `{name}` in namespace `{ns}`."),
        )
    })
}

/// A duration in seconds as the pages show it: `850µs`, `12.3ms`, `2.40s`.
pub(super) fn seconds(s: Option<f64>) -> String {
    match s {
        None => "–".to_owned(),
        Some(s) if s < 0.001 => format!("{:.0}µs", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.1}ms", s * 1e3),
        Some(s) => format!("{s:.2}s"),
    }
}

fn micros(us: u64) -> String {
    seconds(Some(us as f64 / 1e6))
}

/// A route as `GET /path` (its methods, if it names any, then its path).
fn route(r: &wisp_core::Route) -> String {
    match r.methods.as_slice() {
        [] => r.path.clone(),
        methods => format!("{} {}", methods.join("|"), r.path),
    }
}

fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".to_owned();
    }
    format!("{:.0}%", part as f64 * 100.0 / whole as f64)
}

struct FunctionRow {
    name: String,
    kind: String,
    runtime: String,
    live: u32,
    versions: usize,
    /// Its aliases besides `live`, each with where it leads (`canary v3`).
    aliases: String,
    disabled: bool,
    busy: usize,
    idle: usize,
    invocations: u64,
    errors: u64,
    error_share: String,
    p50: String,
    p99: String,
    cold_share: String,
    /// This month's cost at the namespace's prices (`–` for a key that may not read
    /// usage).
    cost: String,
}

#[derive(Template)]
#[template(path = "ui/functions.html")]
struct FunctionsPage {
    chrome: Option<Chrome>,
    namespace: String,
    rows: Vec<FunctionRow>,
    pager: Pager,
}

pub(super) async fn list(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Query(paging): Query<PageQuery>,
) -> Result<Page, Page> {
    viewer.must(Method::GET, "/v1/functions")?;
    let ns = &viewer.namespace;
    let (functions, pager) = Pager::cut(engine.functions(ns), paging.page, "/ui/functions");
    let stats = engine.namespace_stats(ns);
    let costs: HashMap<String, String> = if viewer.may(Method::GET, "/v1/usage") {
        usage::function_months(&engine, ns)
            .await?
            .into_iter()
            .map(|m| (m.function, m.cost.to_string()))
            .collect()
    } else {
        HashMap::new()
    };
    let rows = functions
        .iter()
        .map(|d| {
            let stats = stats.get(&d.record.name).copied().unwrap_or_default();
            let (busy, idle) = d
                .versions()
                .map(|v| v.status().instances)
                .fold((0, 0), |(b, i), s| (b + s.busy, i + s.idle));
            let config = d.config();
            FunctionRow {
                name: d.record.name.to_string(),
                kind: config.kind.as_str().to_owned(),
                runtime: config.runtime.to_string(),
                live: d.record.live().version,
                versions: d.record.versions.len(),
                aliases: d
                    .record
                    .aliases
                    .iter()
                    .filter(|(alias, _)| alias.as_str() != wisp_core::version::LIVE)
                    .map(|(alias, target)| match target.additional {
                        None => format!("{alias} v{}", target.version),
                        Some(extra) => format!("{alias} v{}+v{}", target.version, extra.version),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                disabled: d.record.disabled,
                busy,
                idle,
                invocations: stats.invocations,
                errors: stats.errors,
                error_share: share(stats.errors, stats.invocations),
                p50: seconds(stats.p50_seconds),
                p99: seconds(stats.p99_seconds),
                cold_share: share(stats.cold_starts, stats.invocations),
                cost: costs
                    .get(d.record.name.as_str())
                    .cloned()
                    .unwrap_or_else(|| "–".to_owned()),
            }
        })
        .collect();
    Ok(Page::ok(&FunctionsPage {
        chrome: Some(viewer.chrome("functions")),
        namespace: ns.to_string(),
        rows,
        pager,
    }))
}

struct VersionRow {
    number: u32,
    created: String,
    code: String,
    aliases: String,
    live: bool,
}

/// An alias as a version's row names it: `live`, or with its share of the traffic
/// when it splits it (`canary 10%`); `None` when it does not lead to `number`.
fn alias_share(alias: &wisp_core::AliasName, target: &wisp_core::AliasTarget, number: u32) -> Option<String> {
    let percent = |share: f64| format!("{alias} {}%", (share * 1000.0).round() / 10.0);
    match target.additional {
        None if target.version == number => Some(alias.to_string()),
        Some(extra) if target.version == number => Some(percent(1.0 - extra.weight.share())),
        Some(extra) if extra.version == number => Some(percent(extra.weight.share())),
        _ => None,
    }
}

struct InvocationRow {
    id: String,
    started: String,
    version: u32,
    cold: bool,
    run: String,
    queued: String,
    ok: bool,
    outcome: String,
}

struct LogRow {
    time: String,
    text: String,
    stderr: bool,
}

#[derive(Template)]
#[template(path = "ui/function.html")]
struct FunctionPage {
    chrome: Option<Chrome>,
    csrf: String,
    name: String,
    disabled: bool,
    kind: String,
    runtime: String,
    memory_mb: u32,
    timeout: String,
    routes: String,
    app: String,
    /// Since the server started: invocations, errors, p50 and p99.
    counts: String,
    versions: Vec<VersionRow>,
    invocations: Vec<InvocationRow>,
    lines: Vec<LogRow>,
    can_invoke: bool,
    can_deploy: bool,
    payload: String,
    result: Option<Shown>,
    charts: Vec<Chart>,
    window_day: bool,
}

#[derive(Template)]
#[template(path = "ui/logs_section.html")]
struct LogsSection {
    name: String,
    lines: Vec<LogRow>,
}

async fn log_rows(engine: &Engine, ns: &Namespace, name: &FunctionName) -> Result<Vec<LogRow>, Page> {
    let query = LogQuery {
        limit: LOG_LINES_SHOWN,
        ..LogQuery::default()
    };
    Ok(engine
        .logs(ns, name, &query)
        .await?
        .into_iter()
        .map(|l| LogRow {
            time: rfc3339_ms(l.time),
            text: l.line,
            stderr: l.stream == LogStream::Stderr,
        })
        .collect())
}

async fn function_page(
    viewer: &Viewer,
    engine: &Engine,
    name: &FunctionName,
    result: Option<Shown>,
    window: Window,
) -> Result<Page, Page> {
    let path = format!("/v1/functions/{name}");
    viewer.must(Method::GET, &path)?;
    let ns = &viewer.namespace;
    let d = deployed(engine, ns, name)?;
    let record = &d.record;
    let live = record.live().version;
    let versions = record
        .versions
        .iter()
        .rev()
        .map(|v| VersionRow {
            number: v.number,
            created: rfc3339_ms(v.created_at),
            code: format!("{} KiB", v.code_size.div_ceil(1024)),
            aliases: record
                .aliases
                .iter()
                .filter_map(|(alias, target)| alias_share(alias, target, v.number))
                .collect::<Vec<_>>()
                .join(", "),
            live: v.number == live,
        })
        .collect();
    let query = InvocationQuery {
        limit: INVOCATIONS_SHOWN,
        ..InvocationQuery::default()
    };
    let (records, _) = engine.invocations(ns, name, &query).await?;
    // The newest first.
    let invocations = records
        .into_iter()
        .rev()
        .map(|r| InvocationRow {
            ok: r.error.is_none(),
            outcome: r.error.clone().unwrap_or_else(|| "ok".to_owned()),
            id: r.id,
            started: rfc3339_ms(r.started_at),
            version: r.version_number,
            cold: r.cold,
            run: micros(r.run_us),
            queued: micros(r.queue_us),
        })
        .collect();
    let config = d.config();
    let stats = engine.function_stats(ns, name);
    let counts = format!(
        "{} ({} errors), p50 {}, p99 {}",
        stats.invocations,
        stats.errors,
        seconds(stats.p50_seconds),
        seconds(stats.p99_seconds)
    );
    let page = FunctionPage {
        chrome: Some(viewer.chrome("functions")),
        csrf: viewer.csrf.clone(),
        name: name.to_string(),
        disabled: record.disabled,
        kind: config.kind.as_str().to_owned(),
        runtime: config.runtime.to_string(),
        memory_mb: config.memory_mb,
        timeout: humantime::format_duration(config.timeout).to_string(),
        routes: config.routes.iter().map(route).collect::<Vec<_>>().join(", "),
        app: record.app.clone().unwrap_or_else(|| "–".to_owned()),
        counts,
        versions,
        invocations,
        lines: log_rows(engine, ns, name).await?,
        can_invoke: viewer.may(Method::POST, &format!("{path}/invoke")),
        can_deploy: viewer.may(Method::POST, &format!("{path}/rollback")),
        payload: result
            .as_ref()
            .map_or_else(|| "{}".to_owned(), |r| r.payload.clone()),
        result,
        charts: charts::charts(&engine.function_history(ns, name, window), window),
        window_day: window == Window::Day,
    };
    Ok(Page::ok(&page))
}

#[derive(Deserialize)]
pub(super) struct ShowQuery {
    /// An invoke's answer to show (what [`invoke`] redirects with).
    result: Option<String>,
    /// The charts' span: `hour` (the default) or `day`.
    window: Option<String>,
}

pub(super) async fn show(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Page, Page> {
    let name = function_name(&name)?;
    let window = charts::window(query.window.as_deref())
        .map_err(|e| Page::error(StatusCode::BAD_REQUEST, "Bad window", &e))?;
    let result = query
        .result
        .and_then(|id| results::find(&viewer.caller.key_id, &id));
    function_page(&viewer, &engine, &name, result, window).await
}

/// The logs section alone, for htmx to refresh.
pub(super) async fn logs(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
) -> Result<Page, Page> {
    let name = function_name(&name)?;
    viewer.must(Method::GET, &format!("/v1/functions/{name}/logs"))?;
    let ns = &viewer.namespace;
    deployed(&engine, ns, &name)?;
    let lines = log_rows(&engine, ns, &name).await?;
    Ok(Page::ok(&LogsSection {
        name: name.to_string(),
        lines,
    }))
}

#[derive(Deserialize)]
pub(super) struct InvokeForm {
    #[serde(default)]
    payload: String,
}

/// Invokes the function (its `live` alias) with the payload, then sends the browser to
/// the function's page with the answer and the end of the run's log (post, redirect,
/// get: a reload does not invoke again).
pub(super) async fn invoke(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Page> {
    let form: InvokeForm = viewer.accept(&body)?;
    let name = function_name(&name)?;
    viewer.must(Method::POST, &format!("/v1/functions/{name}/invoke"))?;
    let ns = &viewer.namespace;
    let (sender, tail) = wisp_engine::log_tail();
    let mut result = match engine
        .invoke(
            ns,
            &name,
            form.payload.clone().into(),
            None,
            InvokeOptions {
                tail: Some(sender),
                ..InvokeOptions::default()
            },
        )
        .await
    {
        Ok(response) => {
            let status = response.status();
            let body =
                match tokio::time::timeout(Duration::from_secs(30), response.into_body().collect()).await {
                    Ok(Ok(collected)) => {
                        let bytes = collected.to_bytes();
                        let shown = &bytes[..bytes.len().min(RESULT_SHOWN)];
                        String::from_utf8_lossy(shown).into_owned()
                    }
                    Ok(Err(e)) => format!("(the answer's body could not be read: {e})"),
                    Err(_) => "(the answer's body took longer than 30 s)".to_owned(),
                };
            Shown {
                status: status.to_string(),
                body,
                payload: form.payload.clone(),
                log: None,
            }
        }
        Err(e) => Shown {
            status: format!("{} {}", e.code.status(), e.code.as_str()),
            body: e.detail,
            payload: form.payload.clone(),
            log: None,
        },
    };
    // The end of the run's log (a refused call has none).
    result.log = tail.when_finished().await;
    let id = results::keep(&viewer.caller.key_id, result);
    Ok(Redirect::to(&format!("/ui/functions/{name}?result={id}")).into_response())
}

#[derive(Deserialize)]
pub(super) struct RollbackForm {
    version: Option<u32>,
}

/// Makes a version live (the API's rollback with `to`).
pub(super) async fn rollback(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Page> {
    let form: RollbackForm = viewer.accept(&body)?;
    let name = function_name(&name)?;
    viewer.must(Method::POST, &format!("/v1/functions/{name}/rollback"))?;
    let ns = &viewer.namespace;
    let before = deployed(&engine, ns, &name)?.record.live().clone();
    let record = engine.rollback(ns, &name, form.version).await?;
    let detail = format!("live {before} → {}", record.live());
    viewer
        .audit(&engine, ns, "function.rollback", name.as_str(), Some(detail))
        .await;
    Ok(Redirect::to(&format!("/ui/functions/{name}")).into_response())
}

async fn set_disabled(
    viewer: Viewer,
    engine: &Engine,
    name: &str,
    body: &[u8],
    disabled: bool,
) -> Result<Response, Page> {
    viewer.accept::<serde::de::IgnoredAny>(body)?;
    let name = function_name(name)?;
    let action = if disabled { "disable" } else { "enable" };
    viewer.must(Method::POST, &format!("/v1/functions/{name}/{action}"))?;
    engine.set_disabled(&viewer.namespace, &name, disabled).await?;
    let action = if disabled {
        "function.disable"
    } else {
        "function.enable"
    };
    viewer
        .audit(engine, &viewer.namespace, action, name.as_str(), None)
        .await;
    Ok(Redirect::to(&format!("/ui/functions/{name}")).into_response())
}

pub(super) async fn disable(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Page> {
    set_disabled(viewer, &engine, &name, &body, true).await
}

pub(super) async fn enable(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Page> {
    set_disabled(viewer, &engine, &name, &body, false).await
}

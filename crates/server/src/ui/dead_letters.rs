//! A function's dead letters (`/ui/functions/NAME/dead-letters`): the async events it
//! gave up, with why, and the actions on them — redrive one or all, purge all — each
//! allowed when its API request (`GET …/dlq`, `POST …/dlq/redrive`, `DELETE …/dlq`)
//! would be.

use super::functions::function_name;
use super::{Chrome, Page, Viewer};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::sync::Arc;
use wisp_core::wall::rfc3339_ms;
use wisp_engine::Engine;
use wisp_store::EventStatus;

/// Dead letters the page lists at most.
const SHOWN: usize = 100;
/// The most of a payload a row shows.
const PAYLOAD_SHOWN: usize = 200;

struct DeadLetterRow {
    id: String,
    created: String,
    attempts: u32,
    error: String,
    payload: String,
}

#[derive(Template)]
#[template(path = "ui/dead_letters.html")]
struct DeadLettersPage {
    chrome: Option<Chrome>,
    csrf: String,
    name: String,
    rows: Vec<DeadLetterRow>,
    can_redrive: bool,
    done: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Done {
    redriven: Option<usize>,
    purged: Option<u64>,
}

pub(super) async fn list(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Result<Page, Page> {
    let name = function_name(&name)?;
    let api = format!("/v1/functions/{name}/dlq");
    viewer.must(Method::GET, &api)?;
    let ns = &viewer.namespace;
    let rows = engine
        .events_of(ns, &name, EventStatus::Failed, SHOWN)
        .await?
        .into_iter()
        .map(|e| {
            let payload = String::from_utf8_lossy(&e.payload);
            let mut shown: String = payload.chars().take(PAYLOAD_SHOWN).collect();
            if shown.len() < payload.len() {
                shown.push('…');
            }
            DeadLetterRow {
                created: rfc3339_ms(e.created_us / 1000),
                attempts: e.attempts,
                error: e.last_error.unwrap_or_default(),
                payload: shown,
                id: e.id,
            }
        })
        .collect();
    let done = match (done.redriven, done.purged) {
        (Some(n), _) => Some(format!("{n} dead letter(s) sent to run again.")),
        (_, Some(n)) => Some(format!("{n} dead letter(s) purged.")),
        _ => None,
    };
    Ok(Page::ok(&DeadLettersPage {
        chrome: Some(viewer.chrome("functions")),
        csrf: viewer.csrf.clone(),
        name: name.to_string(),
        rows,
        can_redrive: viewer.may(Method::POST, &format!("{api}/redrive")),
        done,
    }))
}

#[derive(Deserialize)]
pub(super) struct RedriveForm {
    /// One event; none: all of them.
    id: Option<String>,
}

pub(super) async fn redrive(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Page> {
    let form: RedriveForm = viewer.accept(&body)?;
    let name = function_name(&name)?;
    viewer.must(Method::POST, &format!("/v1/functions/{name}/dlq/redrive"))?;
    let ids = form.id.map(|id| vec![id]);
    let redriven = engine.redrive(&viewer.namespace, &name, ids.as_deref()).await?;
    let to = format!("/ui/functions/{name}/dead-letters?redriven={}", redriven.len());
    Ok(Redirect::to(&to).into_response())
}

pub(super) async fn purge(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Page> {
    viewer.accept::<serde::de::IgnoredAny>(&body)?;
    let name = function_name(&name)?;
    viewer.must(Method::DELETE, &format!("/v1/functions/{name}/dlq"))?;
    let purged = engine.purge(&viewer.namespace, &name, None).await?;
    Ok(Redirect::to(&format!("/ui/functions/{name}/dead-letters?purged={purged}")).into_response())
}

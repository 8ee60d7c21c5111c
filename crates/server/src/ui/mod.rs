//! The web dashboard at `/ui`: server-rendered HTML (askama templates under
//! `templates/ui/`, assets under `assets/` embedded in the binary), readable without
//! JavaScript; htmx refreshes the live parts. A person logs in with a Wisp API key
//! ([`session`]); every page and action is then checked against that key's role and
//! namespace exactly as the API checks the request it stands for
//! ([`session::Viewer::may`]), and every form carries the session's CSRF token.
//! `docs/dashboard.md` is the reference.

mod alarms;
mod buckets;
mod charts;
mod dead_letters;
mod events;
mod functions;
mod keys;
mod kv;
mod paging;
mod queues;
mod results;
mod schedules;
mod session;
mod topics;
mod usage;

use askama::Template;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use wisp_engine::Engine;

pub(crate) use session::Viewer;

/// The dashboard's routes; they sit outside the API's auth layer, behind their own
/// session check.
fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/namespace", post(session::switch_namespace))
        .route("/ui/assets/{file}", get(asset))
        .route("/ui/functions", get(functions::list))
        .route("/ui/functions/{name}", get(functions::show))
        .route("/ui/functions/{name}/logs", get(functions::logs))
        .route("/ui/functions/{name}/invoke", post(functions::invoke))
        .route("/ui/functions/{name}/rollback", post(functions::rollback))
        .route("/ui/functions/{name}/disable", post(functions::disable))
        .route("/ui/functions/{name}/enable", post(functions::enable))
        .route("/ui/functions/{name}/dead-letters", get(dead_letters::list))
        .route(
            "/ui/functions/{name}/dead-letters/redrive",
            post(dead_letters::redrive),
        )
        .route(
            "/ui/functions/{name}/dead-letters/purge",
            post(dead_letters::purge),
        )
        .route("/ui/usage", get(usage::show))
        .route("/ui/alarms", get(alarms::list))
        .route("/ui/alarms/{name}", get(alarms::show))
        .route("/ui/queues", get(queues::list))
        .route("/ui/queues/{name}", get(queues::show))
        .route("/ui/queues/{name}/messages", post(queues::send))
        .route("/ui/queues/{name}/purge", post(queues::purge))
        .route("/ui/queues/{name}/redrive", post(queues::redrive))
        .route("/ui/topics", get(topics::list))
        .route("/ui/topics/{name}", get(topics::show))
        .route("/ui/topics/{name}/messages", post(topics::publish))
        .route("/ui/schedules", get(schedules::list))
        .route("/ui/buckets", get(buckets::list))
        .route("/ui/buckets/{name}", get(buckets::show))
        .route("/ui/buckets/{name}/object", get(buckets::object))
        .route("/ui/buckets/{name}/download", get(buckets::download))
        .route("/ui/buckets/{name}/delete", post(buckets::delete))
        .route("/ui/kv", get(kv::list))
        .route("/ui/kv/{name}", get(kv::show))
        .route("/ui/kv/{name}/key", get(kv::key))
        .route("/ui/kv/{name}/delete", post(kv::delete))
        .route("/ui/events", get(events::list))
        .route("/ui/keys", get(keys::list).post(keys::create))
        .route("/ui/keys/{id}/revoke", post(keys::revoke))
        .route("/ui/{*rest}", axum::routing::any(not_found))
}

/// [`routes`] with their error pages drawn for whoever is logged in.
pub(crate) fn routes_for(engine: &Arc<Engine>) -> Router<Arc<Engine>> {
    routes().layer(axum::middleware::from_fn_with_state(engine.clone(), with_chrome))
}

/// Draws an error page again with the navigation, when a logged-in viewer gets one:
/// the handler that failed may not have known who was looking.
async fn with_chrome(
    axum::extract::State(engine): axum::extract::State<Arc<Engine>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let viewer = session::viewer(&engine, &parts);
    // The handler's extractor reads it from here: the session is checked once.
    parts.extensions.insert(viewer.clone());
    let response = next.run(axum::extract::Request::from_parts(parts, body)).await;
    let (Some(viewer), Some(failure)) = (viewer, response.extensions().get::<Failure>().cloned()) else {
        return response;
    };
    let page = ErrorPage {
        chrome: Some(viewer.chrome("")),
        heading: &failure.heading,
        message: &failure.message,
    };
    match page.render() {
        Ok(html) => Page {
            status: response.status(),
            html,
            error: None,
        }
        .into_response(),
        Err(_) => response,
    }
}

/// `/ui`: the functions once logged in, else the login page.
async fn home(viewer: Option<Viewer>) -> Redirect {
    match viewer {
        Some(_) => Redirect::to("/ui/functions"),
        None => Redirect::to("/ui/login"),
    }
}

async fn not_found() -> Page {
    Page::error(StatusCode::NOT_FOUND, "Not found", "There is no such page.")
}

/// The stylesheet and scripts, from the binary.
#[derive(rust_embed::RustEmbed)]
#[folder = "assets/"]
struct Assets;

async fn asset(Path(file): Path<String>) -> Response {
    match Assets::get(&file) {
        Some(asset) => {
            let mime = asset.metadata.mimetype();
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_str(mime)
                            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
                    ),
                    (
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("public, max-age=3600"),
                    ),
                ],
                asset.data,
            )
                .into_response()
        }
        None => not_found().await.into_response(),
    }
}

/// What every logged-in page shows around its content.
pub(crate) struct Chrome {
    pub namespace: String,
    /// Every namespace, for an admin key's switcher (empty for other keys).
    pub namespaces: Vec<String>,
    pub role: String,
    pub key_id: String,
    pub csrf: String,
    /// Which item of the navigation is this page's.
    pub active: &'static str,
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage<'a> {
    chrome: Option<Chrome>,
    heading: &'a str,
    message: &'a str,
}

/// A rendered page, or an error page, with its status.
pub(crate) struct Page {
    status: StatusCode,
    html: String,
    /// For an error page: what it says, so [`with_chrome`] can draw it again with the
    /// navigation of a logged-in viewer.
    error: Option<Failure>,
}

/// What an error page says.
#[derive(Clone)]
struct Failure {
    heading: String,
    message: String,
}

impl Page {
    /// `template` rendered, `200`.
    pub(crate) fn ok(template: &impl Template) -> Page {
        Page::with_status(StatusCode::OK, template)
    }

    pub(crate) fn with_status(status: StatusCode, template: &impl Template) -> Page {
        match template.render() {
            Ok(html) => Page {
                status,
                html,
                error: None,
            },
            Err(e) => {
                tracing::error!("cannot render a dashboard page: {e}");
                Page::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The page could not be drawn; the server's log says why.",
                )
            }
        }
    }

    /// A page saying what went wrong.
    pub(crate) fn error(status: StatusCode, heading: &str, message: &str) -> Page {
        let page = ErrorPage {
            chrome: None,
            heading,
            message,
        };
        Page {
            status,
            html: page.render().unwrap_or_else(|_| message.to_owned()),
            error: Some(Failure {
                heading: heading.to_owned(),
                message: message.to_owned(),
            }),
        }
    }

    /// An engine error as a page, with the status the API would answer.
    pub(crate) fn from_engine(e: &wisp_engine::EngineError) -> Page {
        let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Page::error(status, e.code.title(), &e.detail)
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (self.status, Html(self.html)).into_response();
        if let Some(failure) = self.error {
            response.extensions_mut().insert(failure);
        }
        // Pages hold a session's data: never cached, never framed.
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'"),
        );
        response
    }
}

impl From<wisp_engine::EngineError> for Page {
    fn from(e: wisp_engine::EngineError) -> Page {
        Page::from_engine(&e)
    }
}

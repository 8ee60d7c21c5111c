//! Logging in and out of the dashboard, and who is looking ([`Viewer`]).
//!
//! Logging in checks an API key as the API does and sets `wisp_session`: HttpOnly,
//! `SameSite=Strict`, path `/ui`, for [`SESSION_TTL`], holding the key's id and the
//! session's end under the engine's MAC (never the key's secret). Every request after
//! checks the cookie and the key again, so revoking a key ends its sessions. Each form
//! carries the session's CSRF token ([`Viewer::check_form`]).

use super::{Chrome, Page};
use crate::auth::role_allows;
use askama::Template;
use axum::Form;
use axum::extract::{FromRequestParts, OptionalFromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use wisp_engine::{Caller, Engine};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "wisp_session";
/// How long a session lasts.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The person looking at a page: the caller their session names, and the session's
/// CSRF token.
pub(crate) struct Viewer {
    pub caller: Caller,
    pub csrf: String,
}

impl Viewer {
    /// Whether the key's role allows the API request a page or an action stands for
    /// (`GET /v1/functions` for the functions page): the API's own rule.
    pub(crate) fn may(&self, method: Method, api_path: &str) -> bool {
        role_allows(self.caller.role, &method, api_path)
    }

    /// As [`Viewer::may`], or a `403` page saying what the key lacks.
    pub(crate) fn must(&self, method: Method, api_path: &str) -> Result<(), Page> {
        if self.may(method.clone(), api_path) {
            return Ok(());
        }
        Err(Page::error(
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!(
                "This {} key may not do that (it stands for `{method} {api_path}`).",
                self.caller.role
            ),
        ))
    }

    /// Reads a posted form (`application/x-www-form-urlencoded`, whatever the request
    /// says its type is) after checking its CSRF token: a `403` page when the token is
    /// missing or wrong, a `400` one when the rest does not read as a `T`.
    pub(crate) fn accept<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, Page> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        let token = pairs.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str());
        if !token.is_some_and(|t| self.csrf_matches(t)) {
            return Err(Page::error(
                StatusCode::FORBIDDEN,
                "Form expired",
                "The form did not carry this session's token (an old page, or a request from another site). Reload the page and try again.",
            ));
        }
        serde_urlencoded::from_bytes(body).map_err(|e| {
            Page::error(
                StatusCode::BAD_REQUEST,
                "Bad form",
                &format!("The form does not read: {e}."),
            )
        })
    }

    fn csrf_matches(&self, token: &str) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }

    /// The page chrome for this viewer, with `active` the navigation item.
    pub(crate) fn chrome(&self, active: &'static str) -> Chrome {
        Chrome {
            namespace: self.caller.namespace.to_string(),
            role: self.caller.role.to_string(),
            key_id: self.caller.key_id.clone(),
            csrf: self.csrf.clone(),
            active,
        }
    }
}

/// The `wisp_session` cookie of a request, if it has one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn viewer(engine: &Engine, parts: &Parts) -> Option<Viewer> {
    let session = session_cookie(&parts.headers)?;
    let caller = engine.session(session).ok()?;
    Some(Viewer {
        csrf: engine.csrf_token(session),
        caller,
    })
}

impl FromRequestParts<Arc<Engine>> for Viewer {
    type Rejection = Response;

    /// Without a valid session: a page (`GET`) goes to the login page; anything else
    /// is `401`.
    async fn from_request_parts(parts: &mut Parts, engine: &Arc<Engine>) -> Result<Viewer, Response> {
        viewer(engine, parts).ok_or_else(|| {
            if parts.method == Method::GET {
                Redirect::to("/ui/login").into_response()
            } else {
                Page::error(
                    StatusCode::UNAUTHORIZED,
                    "Not logged in",
                    "Your session has ended, or its key was revoked: log in again.",
                )
                .into_response()
            }
        })
    }
}

impl OptionalFromRequestParts<Arc<Engine>> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        engine: &Arc<Engine>,
    ) -> Result<Option<Viewer>, Self::Rejection> {
        Ok(viewer(engine, parts))
    }
}

#[derive(Template)]
#[template(path = "ui/login.html")]
struct LoginPage {
    chrome: Option<Chrome>,
    error: Option<String>,
}

pub(super) async fn login_page(viewer: Option<Viewer>) -> Response {
    if viewer.is_some() {
        return Redirect::to("/ui/functions").into_response();
    }
    Page::ok(&LoginPage {
        chrome: None,
        error: None,
    })
    .into_response()
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    key: String,
}

/// Checks the key as the API would and starts a session.
pub(super) async fn login(
    State(engine): State<Arc<Engine>>,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let refused = |error: String| {
        Page::with_status(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                chrome: None,
                error: Some(error),
            },
        )
        .into_response()
    };
    let Ok(Form(form)) = form else {
        return refused("Send the form with a key.".to_owned());
    };
    let caller = match engine.authenticate(form.key.trim()) {
        Ok(caller) => caller,
        Err(e) => return refused(format!("{} Check the key and try again.", e.detail)),
    };
    let session = engine.start_session(&caller, SESSION_TTL);
    let cookie = format!(
        "{COOKIE}={session}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    let mut response = Redirect::to("/ui/functions").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Ends the session in this browser: the cookie is cleared. (A session is not a
/// record on the server: a copy of the cookie stays valid until it ends or its key
/// is revoked.)
pub(super) async fn logout(viewer: Viewer, body: axum::body::Bytes) -> Response {
    if let Err(page) = viewer.accept::<serde::de::IgnoredAny>(&body) {
        return page.into_response();
    }
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("wisp_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

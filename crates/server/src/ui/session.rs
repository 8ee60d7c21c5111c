//! Logging in and out of the dashboard, and who is looking ([`Viewer`]).
//!
//! Logging in checks an API key as the API does and sets `wisp_session`: HttpOnly,
//! `SameSite=Strict`, path `/ui`, `Secure` when served over TLS, for [`SESSION_TTL`],
//! holding the key's id and the session's end under the engine's MAC (never the key's
//! secret). Every request after checks the cookie and the key again, so revoking a key
//! ends its sessions. Each form carries the session's CSRF token
//! ([`Viewer::check_form`]).

use super::{Chrome, Page};
use crate::auth::role_allows;
use crate::listen::OverTls;
use askama::Template;
use axum::extract::{FromRequestParts, OptionalFromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use wisp_core::{Namespace, Role};
use wisp_engine::{Caller, ClientAddr, Engine};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "wisp_session";
/// How long a session lasts.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The person looking at a page: the caller their session names, and the session's
/// CSRF token.
#[derive(Clone)]
pub(crate) struct Viewer {
    pub caller: Caller,
    /// The namespace the pages show: the key's own, or for an admin key the one it
    /// switched to (the `wisp_namespace` cookie), as `X-Wisp-Namespace` names it to
    /// the API.
    pub namespace: Namespace,
    pub csrf: String,
    /// Every namespace, for an admin key's switcher; empty for other keys.
    namespaces: Vec<String>,
    /// The address the request came from, for the audit trail.
    source: Option<std::net::IpAddr>,
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

    /// Records a change made from the dashboard in the audit trail, as the API records
    /// the request the action stands for.
    pub(crate) async fn audit(
        &self,
        engine: &Engine,
        namespace: &Namespace,
        action: &'static str,
        target: &str,
        detail: Option<String>,
    ) {
        engine
            .audit(wisp_engine::AuditRecord {
                by: Some(&self.caller),
                namespace,
                action,
                target,
                detail,
                source: self.source.map(|ip| ip.to_string()),
            })
            .await;
    }

    /// The page chrome for this viewer, with `active` the navigation item.
    pub(crate) fn chrome(&self, active: &'static str) -> Chrome {
        Chrome {
            namespace: self.namespace.to_string(),
            namespaces: self.namespaces.clone(),
            role: self.caller.role.to_string(),
            key_id: self.caller.key_id.clone(),
            csrf: self.csrf.clone(),
            active,
        }
    }
}

/// The cookie an admin key's chosen namespace is kept in.
const NAMESPACE_COOKIE: &str = "wisp_namespace";

/// What every dashboard cookie says besides its value: `Secure` too when the request
/// came over TLS ([`OverTls`]); not over plain HTTP, where a browser would drop it.
fn attributes(tls: Option<Extension<OverTls>>) -> &'static str {
    match tls {
        Some(_) => "Path=/ui; HttpOnly; SameSite=Strict; Secure",
        None => "Path=/ui; HttpOnly; SameSite=Strict",
    }
}

/// The cookie `name` of a request, if it has one.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// The viewer of a request: the one the dashboard's layer found (and kept in the
/// request's extensions, so a request checks its session once), else found here.
fn found(engine: &Engine, parts: &Parts) -> Option<Viewer> {
    match parts.extensions.get::<Option<Viewer>>() {
        Some(viewer) => viewer.clone(),
        None => viewer(engine, parts),
    }
}

pub(super) fn viewer(engine: &Engine, parts: &Parts) -> Option<Viewer> {
    let session = cookie(&parts.headers, COOKIE)?;
    let caller = engine.session(session).ok()?;
    let admin = caller.role == Role::Admin;
    let chosen = cookie(&parts.headers, NAMESPACE_COOKIE)
        .filter(|_| admin)
        .and_then(|name| Namespace::new(name).ok())
        .filter(|name| engine.namespace_exists(name));
    let namespaces = if admin {
        engine
            .namespaces()
            .into_iter()
            .map(|n| n.name.to_string())
            .collect()
    } else {
        Vec::new()
    };
    Some(Viewer {
        csrf: engine.csrf_token(session),
        namespace: chosen.unwrap_or_else(|| caller.namespace.clone()),
        caller,
        namespaces,
        source: parts.extensions.get::<ClientAddr>().map(|a| a.0.ip()),
    })
}

impl FromRequestParts<Arc<Engine>> for Viewer {
    type Rejection = Response;

    /// Without a valid session: a page (`GET`) goes to the login page; anything else
    /// is `401`.
    async fn from_request_parts(parts: &mut Parts, engine: &Arc<Engine>) -> Result<Viewer, Response> {
        found(engine, parts).ok_or_else(|| {
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
        Ok(found(engine, parts))
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
    tls: Option<Extension<OverTls>>,
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
        "{COOKIE}={session}; {}; Max-Age={}",
        attributes(tls),
        SESSION_TTL.as_secs()
    );
    let mut response = Redirect::to("/ui/functions").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
pub(super) struct NamespaceForm {
    namespace: String,
}

/// Switches an admin key's pages to another namespace (kept in a cookie for the
/// session's length).
pub(super) async fn switch_namespace(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    tls: Option<Extension<OverTls>>,
    body: axum::body::Bytes,
) -> Response {
    let form: NamespaceForm = match viewer.accept(&body) {
        Ok(form) => form,
        Err(page) => return page.into_response(),
    };
    if viewer.caller.role != Role::Admin {
        return Page::error(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Only an admin key may look into another namespace.",
        )
        .into_response();
    }
    let Some(namespace) = Namespace::new(form.namespace.as_str())
        .ok()
        .filter(|n| engine.namespace_exists(n))
    else {
        return Page::error(
            StatusCode::NOT_FOUND,
            "No such namespace",
            &format!("There is no namespace `{}`.", form.namespace),
        )
        .into_response();
    };
    let cookie = format!(
        "{NAMESPACE_COOKIE}={namespace}; {}; Max-Age={}",
        attributes(tls),
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
pub(super) async fn logout(
    viewer: Viewer,
    tls: Option<Extension<OverTls>>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(page) = viewer.accept::<serde::de::IgnoredAny>(&body) {
        return page.into_response();
    }
    let mut response = Redirect::to("/ui/login").into_response();
    let cleared = format!("{COOKIE}=; {}; Max-Age=0", attributes(tls));
    if let Ok(value) = HeaderValue::from_str(&cleared) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

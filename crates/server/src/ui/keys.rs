//! The API keys page (`/ui/keys`, admin keys only, as `/v1/keys` is): every key of
//! every namespace (or of one), with its role, name, dates and whether it still works;
//! creating a key (its token shown once) and revoking one.
//!
//! A new key's token goes through [`super::results`] (post, redirect, get), and the page
//! [`results::take`]s it: a reload neither creates a second key nor shows the token
//! again. Revoking the key the session was started with ends the session, as a revoke
//! ends every session of that key.

use super::paging::{PageQuery, Pager};
use super::results::{self, Shown};
use super::{Chrome, Page, Viewer};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::sync::Arc;
use wisp_core::wall::{now_ms, rfc3339_ms};
use wisp_core::{Namespace, Role, UnixMillis};
use wisp_engine::Engine;
use wisp_engine::identity::secret::is_key_id;
use wisp_store::ApiKeyRecord;

struct KeyRow {
    id: String,
    name: String,
    namespace: String,
    role: String,
    /// `active`, `expired` or `revoked`, as the API says.
    status: &'static str,
    created: String,
    created_by: String,
    expires: String,
    last_used: String,
    revoked: String,
    /// The key this session was started with.
    own: bool,
}

/// `active`, `expired` or `revoked`: what `GET /v1/keys` calls a key's status.
fn status(record: &ApiKeyRecord, now: UnixMillis) -> &'static str {
    if record.revoked_at.is_some() {
        "revoked"
    } else if record.expires_at.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    }
}

fn when(at: Option<UnixMillis>) -> String {
    at.map_or_else(|| "–".to_owned(), rfc3339_ms)
}

/// A key just created, as the page shows it once.
struct Created {
    id: String,
    token: String,
}

#[derive(Template)]
#[template(path = "ui/keys.html")]
struct KeysPage {
    chrome: Option<Chrome>,
    csrf: String,
    rows: Vec<KeyRow>,
    pager: Pager,
    /// Every namespace (the filter's and the create form's choices).
    namespaces: Vec<String>,
    /// The namespace the list is filtered to; empty: every namespace.
    filter: String,
    /// The create form's namespace: the one the pages show.
    namespace: String,
    roles: [&'static str; 4],
    can_create: bool,
    can_revoke: bool,
    created: Option<Created>,
    /// A key was created, but its token was shown already (a reload).
    created_gone: bool,
    revoked: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    /// Only this namespace's keys (`GET /v1/keys?namespace=`); empty or none: all.
    namespace: Option<String>,
    /// A created key's token to show (what [`create`] redirects with).
    created: Option<String>,
    /// A key just revoked.
    revoked: Option<String>,
}

fn namespace_name(name: &str) -> Result<Namespace, Page> {
    Namespace::new(name).map_err(|e| Page::error(StatusCode::BAD_REQUEST, "Bad namespace", &e.to_string()))
}

fn key_id(id: &str) -> Result<&str, Page> {
    if is_key_id(id) {
        return Ok(id);
    }
    Err(Page::error(
        StatusCode::BAD_REQUEST,
        "Bad key id",
        &format!("`{id}` is not a key id: `WK` and 16 of A-Z2-7."),
    ))
}

pub(super) async fn list(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Query(query): Query<ListQuery>,
    Query(paging): Query<PageQuery>,
) -> Result<Page, Page> {
    viewer.must(Method::GET, "/v1/keys")?;
    let filter = match query.namespace.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) => Some(namespace_name(name)?),
    };
    let api = match &filter {
        None => "/v1/keys".to_owned(),
        Some(ns) => format!("/v1/keys?namespace={ns}"),
    };
    let mut records = engine.keys(filter.as_ref()).await?;
    // Newest first, as the audit trail and the events are.
    records.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
    let now = now_ms();
    let rows: Vec<KeyRow> = records
        .iter()
        .map(|r| KeyRow {
            id: r.id.clone(),
            name: r.name.clone().unwrap_or_default(),
            namespace: r.namespace.to_string(),
            role: r.role.to_string(),
            status: status(r, now),
            created: rfc3339_ms(r.created_at),
            created_by: r.created_by.clone().unwrap_or_else(|| "the server".to_owned()),
            expires: when(r.expires_at),
            last_used: when(r.last_used_at),
            revoked: when(r.revoked_at),
            own: r.id == viewer.caller.key_id,
        })
        .collect();
    let base = api.replace("/v1/keys", "/ui/keys");
    let (rows, pager) = Pager::cut(rows, paging.page, &base);
    let taken = query
        .created
        .as_deref()
        .map(|id| results::take(&viewer.caller.key_id, id));
    let created = taken.clone().flatten().map(|shown| Created {
        id: shown.status,
        token: shown.body,
    });
    Ok(Page::ok(&KeysPage {
        chrome: Some(viewer.chrome("keys")),
        csrf: viewer.csrf.clone(),
        rows,
        pager,
        namespaces: engine
            .namespaces()
            .into_iter()
            .map(|n| n.name.to_string())
            .collect(),
        filter: filter.map(|n| n.to_string()).unwrap_or_default(),
        namespace: viewer.namespace.to_string(),
        roles: Role::ALL.map(Role::as_str),
        can_create: viewer.may(Method::POST, "/v1/keys"),
        can_revoke: viewer.may(Method::DELETE, "/v1/keys/WKAAAAAAAAAAAAAAAA"),
        created_gone: taken.is_some_and(|t| t.is_none()),
        created,
        revoked: query.revoked.filter(|id| is_key_id(id)),
    }))
}

#[derive(Deserialize)]
pub(super) struct CreateForm {
    namespace: String,
    role: String,
    #[serde(default)]
    name: String,
    /// From now: `30d`, `12h`; empty: never.
    #[serde(default)]
    expires_in: String,
}

fn bad(message: &str) -> Page {
    Page::error(StatusCode::BAD_REQUEST, "Bad form", message)
}

/// Creates a key (`POST /v1/keys`), then shows its token once on the keys page.
pub(super) async fn create(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    body: Bytes,
) -> Result<Response, Page> {
    let form: CreateForm = viewer.accept(&body)?;
    viewer.must(Method::POST, "/v1/keys")?;
    let namespace = namespace_name(form.namespace.trim())?;
    let role = Role::parse(form.role.trim()).map_err(|e| bad(&format!("role: {e}")))?;
    let name = Some(form.name.trim().to_owned()).filter(|n| !n.is_empty());
    let expires_at = match form.expires_in.trim() {
        "" => None,
        text => {
            let after =
                wisp_core::duration_text::parse(text).map_err(|e| bad(&format!("expires in: {e}")))?;
            let millis = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
            Some(now_ms().saturating_add(millis))
        }
    };
    let key = engine
        .create_key(Some(&viewer.caller), &namespace, role, name, expires_at, None)
        .await?;
    viewer
        .audit(
            &engine,
            &namespace,
            "key.create",
            &key.record.id,
            Some(format!("role {role}")),
        )
        .await;
    // `status` carries the key's id, `body` its token: nothing else keeps the token.
    let shown = Shown {
        status: key.record.id.clone(),
        body: key.token,
        payload: String::new(),
        log: None,
    };
    let id = results::keep(&viewer.caller.key_id, shown);
    Ok(Redirect::to(&format!("/ui/keys?created={id}")).into_response())
}

/// Revokes a key (`DELETE /v1/keys/ID`). Revoking the session's own key ends the
/// session: the browser goes to the login page.
pub(super) async fn revoke(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Page> {
    viewer.accept::<serde::de::IgnoredAny>(&body)?;
    let id = key_id(&id)?;
    viewer.must(Method::DELETE, &format!("/v1/keys/{id}"))?;
    let before = engine.key(id).await?;
    let record = engine.revoke_key(id).await?;
    if before.revoked_at.is_none() {
        viewer
            .audit(&engine, &record.namespace, "key.revoke", &record.id, None)
            .await;
    }
    if id == viewer.caller.key_id {
        return Ok(Redirect::to("/ui/login").into_response());
    }
    Ok(Redirect::to(&format!("/ui/keys?revoked={id}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        revoked_at: Option<UnixMillis>,
        expires_at: Option<UnixMillis>,
    ) -> Result<ApiKeyRecord, wisp_core::NameError> {
        Ok(ApiKeyRecord {
            id: "WKAAAAAAAAAAAAAAAA".to_owned(),
            namespace: Namespace::new("default")?,
            role: Role::Read,
            name: None,
            secret_hash: Vec::new(),
            sealed_secret: Vec::new(),
            created_at: 0,
            created_by: None,
            expires_at,
            revoked_at,
            last_used_at: None,
        })
    }

    #[test]
    fn a_keys_status_is_revoked_before_expired_before_active() -> Result<(), wisp_core::NameError> {
        assert_eq!(status(&record(None, None)?, 10), "active");
        assert_eq!(status(&record(None, Some(11))?, 10), "active");
        assert_eq!(status(&record(None, Some(10))?, 10), "expired");
        assert_eq!(status(&record(Some(5), Some(1))?, 10), "revoked");
        Ok(())
    }

    #[test]
    fn a_key_id_is_checked_before_it_reaches_the_engine() {
        assert!(key_id("WKAAAAAAAAAAAAAAAA").is_ok());
        for bad in ["", "WK", "wkaaaaaaaaaaaaaaaa", "WKAAAAAAAAAAAAAAA1", "../x"] {
            assert!(key_id(bad).is_err(), "{bad}");
        }
    }
}

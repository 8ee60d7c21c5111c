//! The dashboard's key-value pages: the namespace's stores (`/ui/kv`), one store's
//! keys with a preview of each value, its version and expiry (`/ui/kv/STORE?prefix=…`,
//! paged by the store's cursor), one key's whole value (`…/key?key=…`), and deleting a
//! key. Each is allowed when its `/v1/kv` request would be (`GET /v1/kv`,
//! `GET …/keys`, `GET` / `DELETE …/keys/KEY`).

use super::buckets::{link, query};
use super::paging::{PER_PAGE, PageQuery, Pager};
use super::{Chrome, Page, Viewer};
use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use std::sync::Arc;
use wisp_core::KvStoreName;
use wisp_core::wall::rfc3339_ms;
use wisp_engine::{Engine, KvCondition};

/// The most of a value a row of the list shows, in characters.
const PREVIEW_CHARS: usize = 200;
/// The most of a binary value a key's page shows, in bytes (as hex).
const HEX_SHOWN: usize = 4096;

/// What a key keeps unescaped in an API path (as `wisp kv` writes it).
const KEY_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

fn key_api(store: &KvStoreName, key: &str) -> String {
    format!("/v1/kv/{store}/keys/{}", utf8_percent_encode(key, KEY_ESCAPES))
}

fn store_name(name: &str) -> Result<KvStoreName, Page> {
    KvStoreName::new(name).map_err(|e| Page::error(StatusCode::BAD_REQUEST, "Bad name", &e.to_string()))
}

/// Whether a value reads as text: UTF-8 (a sequence cut at the end of what is looked
/// at counts) without control characters but tab and line ends.
fn is_text(value: &[u8]) -> bool {
    let head = &value[..value.len().min(8192)];
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() => {
            // Cut in the middle of a character: what is before it decides.
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// A row's preview of a value: its first [`PREVIEW_CHARS`] characters (lossy UTF-8,
/// `…` when there is more), or `binary, N bytes`.
fn preview(value: &[u8]) -> (String, bool) {
    if !is_text(value) {
        return (format!("binary, {} bytes", value.len()), true);
    }
    // Enough bytes for PREVIEW_CHARS characters of up to 4 bytes each.
    let head = &value[..value.len().min(PREVIEW_CHARS * 4 + 4)];
    let text = String::from_utf8_lossy(head);
    let mut shown: String = text.chars().take(PREVIEW_CHARS).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    (shown, false)
}

/// The first [`HEX_SHOWN`] bytes of a binary value as a hex dump, 16 a line.
fn hex_dump(value: &[u8]) -> String {
    value[..value.len().min(HEX_SHOWN)]
        .chunks(16)
        .enumerate()
        .map(|(i, line)| {
            let bytes: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:08x}  {}", i * 16, bytes.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

struct StoreRow {
    name: String,
    created: String,
}

#[derive(Template)]
#[template(path = "ui/kv_stores.html")]
struct StoresPage {
    chrome: Option<Chrome>,
    namespace: String,
    rows: Vec<StoreRow>,
}

pub(super) async fn list(viewer: Viewer, State(engine): State<Arc<Engine>>) -> Result<Page, Page> {
    viewer.must(Method::GET, "/v1/kv")?;
    let rows = engine
        .list_kv_stores(&viewer.namespace)
        .await?
        .into_iter()
        .filter(|r| viewer.caller.check_kv_grant(&r.name).is_ok())
        .map(|r| StoreRow {
            name: r.name.to_string(),
            created: rfc3339_ms(r.created_ms),
        })
        .collect();
    Ok(Page::ok(&StoresPage {
        chrome: Some(viewer.chrome("kv")),
        namespace: viewer.namespace.to_string(),
        rows,
    }))
}

#[derive(Deserialize, Default)]
pub(super) struct StoreQuery {
    #[serde(default)]
    prefix: String,
    /// A key just deleted (or found holding nothing), for the notice.
    deleted: Option<String>,
    absent: Option<String>,
}

struct KeyRow {
    key: String,
    href: String,
    preview: String,
    binary: bool,
    version: u64,
    expires: String,
}

#[derive(Template)]
#[template(path = "ui/kv_store.html")]
struct StorePage {
    chrome: Option<Chrome>,
    csrf: String,
    name: String,
    prefix: String,
    rows: Vec<KeyRow>,
    pager: Pager,
    can_delete: bool,
    done: Option<String>,
}

pub(super) async fn show(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    store_query: Result<Query<StoreQuery>, QueryRejection>,
    paging: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Page, Page> {
    let name = store_name(&name)?;
    let (q, paging) = (query(store_query)?, query(paging)?);
    viewer.must(Method::GET, &format!("/v1/kv/{name}/keys"))?;
    viewer.caller.check_kv_grant(&name)?;
    let ns = &viewer.namespace;
    let after = paging.after.filter(|a| !a.is_empty());
    let page = engine
        .kv_list(ns, &name, &q.prefix, after.as_deref(), PER_PAGE)
        .await?;
    // One read for the page's values (a page is at most a batch).
    let entries = engine.kv_get_many(ns, &name, &page.keys).await?;
    let home = format!("/ui/kv/{name}");
    let rows = entries
        .into_iter()
        // A key that expired or went since the listing is left out.
        .flatten()
        .map(|entry| {
            let (preview, binary) = preview(&entry.value);
            KeyRow {
                href: link(&format!("{home}/key"), &[("key", &entry.key)]),
                preview,
                binary,
                version: entry.version,
                expires: entry.expires_ms.map(rfc3339_ms).unwrap_or_default(),
                key: entry.key,
            }
        })
        .collect();
    let here = link(&home, &[("prefix", &q.prefix)]);
    let done = match (q.deleted, q.absent) {
        (Some(key), _) => Some(format!("Deleted {key}.")),
        (_, Some(key)) => Some(format!("{key} held nothing (deleted or expired already).")),
        _ => None,
    };
    Ok(Page::ok(&StorePage {
        chrome: Some(viewer.chrome("kv")),
        csrf: viewer.csrf.clone(),
        can_delete: viewer.may(Method::DELETE, &key_api(&name, "")),
        name: name.to_string(),
        rows,
        pager: Pager::cursor(page.next.as_deref(), after.as_deref(), &here),
        done,
        prefix: q.prefix,
    }))
}

#[derive(Deserialize)]
pub(super) struct KeyQuery {
    key: String,
}

#[derive(Template)]
#[template(path = "ui/kv_key.html")]
struct KeyPage {
    chrome: Option<Chrome>,
    csrf: String,
    name: String,
    key: String,
    /// The value as text, or a hex dump of a binary one's start.
    value: String,
    binary: bool,
    bytes: usize,
    version: u64,
    expires: String,
    can_delete: bool,
}

pub(super) async fn key(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    key: Result<Query<KeyQuery>, QueryRejection>,
) -> Result<Page, Page> {
    let name = store_name(&name)?;
    let KeyQuery { key } = query(key)?;
    let api = key_api(&name, &key);
    viewer.must(Method::GET, &api)?;
    viewer.caller.check_kv_grant(&name)?;
    let entry = engine
        .kv_get(&viewer.namespace, &name, &key)
        .await?
        .ok_or_else(|| {
            Page::error(
                StatusCode::NOT_FOUND,
                "No such key",
                &format!("Key `{key}` of store `{name}` holds nothing."),
            )
        })?;
    let binary = !is_text(&entry.value);
    let value = if binary {
        hex_dump(&entry.value)
    } else {
        String::from_utf8_lossy(&entry.value).into_owned()
    };
    Ok(Page::ok(&KeyPage {
        chrome: Some(viewer.chrome("kv")),
        csrf: viewer.csrf.clone(),
        can_delete: viewer.may(Method::DELETE, &api),
        name: name.to_string(),
        value,
        binary,
        bytes: entry.value.len(),
        version: entry.version,
        expires: entry.expires_ms.map(rfc3339_ms).unwrap_or_default(),
        key,
    }))
}

#[derive(Deserialize)]
pub(super) struct DeleteForm {
    key: String,
    /// The listing's prefix, to go back to.
    #[serde(default)]
    prefix: String,
}

/// Deletes a key (as `DELETE /v1/kv/STORE/keys/KEY` does), then shows the store.
pub(super) async fn delete(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Page> {
    let form: DeleteForm = viewer.accept(&body)?;
    let name = store_name(&name)?;
    viewer.must(Method::DELETE, &key_api(&name, &form.key))?;
    viewer.caller.check_kv_grant(&name)?;
    let held = engine
        .kv_delete(&viewer.namespace, &name, &form.key, KvCondition::Any)
        .await?;
    let notice = if held { "deleted" } else { "absent" };
    let to = link(
        &format!("/ui/kv/{name}"),
        &[("prefix", &form.prefix), (notice, &form.key)],
    );
    Ok(Redirect::to(&to).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_is_the_start_of_text_or_says_binary() {
        assert_eq!(preview(b"hello"), ("hello".to_owned(), false));
        let long = "é".repeat(300);
        let (shown, binary) = preview(long.as_bytes());
        assert!(!binary);
        assert_eq!(shown, format!("{}…", "é".repeat(200)));
        assert_eq!(preview(&[0, 1, 2, 255]), ("binary, 4 bytes".to_owned(), true));
        assert_eq!(preview(b"line\n\ttab"), ("line\n\ttab".to_owned(), false));
        // Cut in a character past what is looked at: still text.
        let mut cut = "a".repeat(8191).into_bytes();
        cut.extend_from_slice("é".as_bytes());
        assert!(is_text(&cut));
        assert!(!is_text(&[b'a', 0xff, b'b']));
    }

    #[test]
    fn binary_values_show_as_hex() {
        assert_eq!(
            hex_dump(&(0u8..18).collect::<Vec<_>>()),
            "00000000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f\n00000010  10 11"
        );
        assert_eq!(hex_dump(&[0; 10_000]).lines().count(), HEX_SHOWN / 16);
    }
}

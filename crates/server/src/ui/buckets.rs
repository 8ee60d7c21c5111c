//! The dashboard's bucket pages: the namespace's buckets (`/ui/buckets`), one bucket
//! browsed like a file manager (`/ui/buckets/NAME?prefix=…&after=…`: the keys split at
//! `/`, folders first, paged by the store's cursor), an object's metadata
//! (`…/object?key=…`), its download (`…/download?key=…`) and deleting it. Each is
//! allowed when its `/v1/buckets` request would be (`GET /v1/buckets`,
//! `GET …/objects`, `GET` / `DELETE …/objects/KEY`).
//!
//! A download never runs as the dashboard: it is sent as an attachment of type
//! `application/octet-stream`, with `nosniff` and a sandboxing CSP, streamed from the
//! blob as the API streams it.

use super::paging::{PER_PAGE, PageQuery, Pager};
use super::{Chrome, Page, Viewer};
use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use std::sync::Arc;
use wisp_core::wall::rfc3339_ms;
use wisp_core::{BucketName, ObjectError};
use wisp_engine::{Engine, EngineError, ReadConditions};
use wisp_store::{Condition, ListQuery};

/// What a key keeps unescaped in an API path (as the CLI writes it): `/` separates
/// its segments there too.
const KEY_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// What a file name keeps unescaped in `filename*=UTF-8''…` (RFC 8187's attr-char,
/// less what some browsers mistake).
const FILENAME_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The API path of a key (`/v1/buckets/photos/objects/a%20b/c.jpg`): what a page or
/// action on it stands for.
fn object_api(bucket: &BucketName, key: &str) -> String {
    format!(
        "/v1/buckets/{bucket}/objects/{}",
        utf8_percent_encode(key, KEY_ESCAPES)
    )
}

pub(super) fn bucket_name(name: &str) -> Result<BucketName, Page> {
    BucketName::new(name).map_err(|e| Page::error(StatusCode::BAD_REQUEST, "Bad name", &e.to_string()))
}

/// A query string that does not read: a `400` page.
pub(super) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, Page> {
    query.map(|Query(q)| q).map_err(|e| {
        Page::error(
            StatusCode::BAD_REQUEST,
            "Bad address",
            &format!("The page's query does not read: {}.", e.body_text()),
        )
    })
}

fn object_error(e: ObjectError) -> Page {
    Page::from_engine(&EngineError::from(e))
}

/// `base` with `pairs` as its query (percent-encoded; empty values left out).
pub(super) fn link(base: &str, pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<_> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    if pairs.is_empty() {
        return base.to_owned();
    }
    format!(
        "{base}?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}

/// A size as people read it: `812 B`, `1.5 KiB`, `12.0 MiB`.
pub(super) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut size = n as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

/// The breadcrumbs of a prefix: each folder of it with the prefix that opens it
/// (`a/b c/` → `a` at `a/`, `b c` at `a/b c/`); a last part without its `/` (a prefix
/// typed by hand) is a crumb of its own.
fn crumbs(prefix: &str) -> Vec<(String, String)> {
    let mut crumbs = Vec::new();
    let mut end = 0;
    for part in prefix.split_inclusive('/') {
        end += part.len();
        crumbs.push((part.trim_end_matches('/').to_owned(), prefix[..end].to_owned()));
    }
    crumbs
}

/// The folder a key sits in (`a/b/c.txt` → `a/b/`; none at the top).
fn folder_of(key: &str) -> &str {
    key.rfind('/').map_or("", |at| &key[..=at])
}

struct BucketRow {
    name: String,
    created: String,
    objects: u64,
    size: String,
    quota: String,
    notifications: String,
}

#[derive(Template)]
#[template(path = "ui/buckets.html")]
struct BucketsPage {
    chrome: Option<Chrome>,
    namespace: String,
    rows: Vec<BucketRow>,
}

pub(super) async fn list(viewer: Viewer, State(engine): State<Arc<Engine>>) -> Result<Page, Page> {
    viewer.must(Method::GET, "/v1/buckets")?;
    let rows = engine
        .buckets(&viewer.namespace)
        .await
        .map_err(object_error)?
        .into_iter()
        .map(|b| {
            let mut functions: Vec<String> = b.notifications.iter().map(|r| r.function.to_string()).collect();
            functions.sort();
            functions.dedup();
            BucketRow {
                name: b.name.to_string(),
                created: rfc3339_ms(b.created_ms),
                objects: b.objects,
                size: human_bytes(b.bytes),
                quota: b.quota_bytes.map(human_bytes).unwrap_or_default(),
                notifications: match b.notifications.len() {
                    0 => String::new(),
                    n => format!(
                        "{n} rule{} → {}",
                        if n == 1 { "" } else { "s" },
                        functions.join(", ")
                    ),
                },
            }
        })
        .collect();
    Ok(Page::ok(&BucketsPage {
        chrome: Some(viewer.chrome("buckets")),
        namespace: viewer.namespace.to_string(),
        rows,
    }))
}

#[derive(Deserialize, Default)]
pub(super) struct BrowseQuery {
    #[serde(default)]
    prefix: String,
    /// A key just deleted, for the notice.
    deleted: Option<String>,
}

struct Crumb {
    label: String,
    href: String,
}

struct FolderRow {
    name: String,
    href: String,
}

struct ObjectRow {
    key: String,
    name: String,
    href: String,
    size: String,
    modified: String,
    content_type: String,
}

#[derive(Template)]
#[template(path = "ui/bucket.html")]
struct BucketPage {
    chrome: Option<Chrome>,
    csrf: String,
    name: String,
    prefix: String,
    crumbs: Vec<Crumb>,
    folders: Vec<FolderRow>,
    objects: Vec<ObjectRow>,
    pager: Pager,
    can_delete: bool,
    done: Option<String>,
}

pub(super) async fn show(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    browse: Result<Query<BrowseQuery>, QueryRejection>,
    paging: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Page, Page> {
    let name = bucket_name(&name)?;
    let (browse, paging) = (query(browse)?, query(paging)?);
    viewer.must(Method::GET, &format!("/v1/buckets/{name}/objects"))?;
    let after = paging.after.filter(|a| !a.is_empty());
    let listing = engine
        .list_objects(
            &viewer.namespace,
            &name,
            ListQuery {
                prefix: browse.prefix.clone(),
                delimiter: Some("/".to_owned()),
                after: after.clone(),
                max_keys: PER_PAGE as u32,
            },
        )
        .await
        .map_err(object_error)?;
    let home = format!("/ui/buckets/{name}");
    let here = link(&home, &[("prefix", &browse.prefix)]);
    let relative = |key: &str| key.strip_prefix(browse.prefix.as_str()).unwrap_or(key).to_owned();
    let folders = listing
        .common_prefixes
        .iter()
        .map(|p| FolderRow {
            name: relative(p),
            href: link(&home, &[("prefix", p)]),
        })
        .collect();
    let objects = listing
        .objects
        .into_iter()
        .map(|o| ObjectRow {
            name: relative(&o.key),
            href: link(&format!("{home}/object"), &[("key", &o.key)]),
            size: human_bytes(o.size),
            modified: rfc3339_ms(o.modified_ms),
            content_type: o.content_type.unwrap_or_default(),
            key: o.key,
        })
        .collect();
    let crumbs = crumbs(&browse.prefix)
        .into_iter()
        .map(|(label, prefix)| Crumb {
            label,
            href: link(&home, &[("prefix", &prefix)]),
        })
        .collect();
    let next = listing.next.filter(|_| listing.truncated);
    Ok(Page::ok(&BucketPage {
        chrome: Some(viewer.chrome("buckets")),
        csrf: viewer.csrf.clone(),
        can_delete: viewer.may(Method::DELETE, &object_api(&name, "")),
        name: name.to_string(),
        crumbs,
        folders,
        objects,
        pager: Pager::cursor(next.as_deref(), after.as_deref(), &here),
        done: browse.deleted.map(|key| format!("Deleted {key}.")),
        prefix: browse.prefix,
    }))
}

#[derive(Deserialize)]
pub(super) struct KeyQuery {
    key: String,
}

#[derive(Template)]
#[template(path = "ui/object.html")]
struct ObjectPage {
    chrome: Option<Chrome>,
    csrf: String,
    name: String,
    key: String,
    folder: String,
    folder_href: String,
    download: String,
    size: String,
    bytes: u64,
    etag: String,
    content_type: String,
    modified: String,
    metadata: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    can_delete: bool,
}

pub(super) async fn object(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    key: Result<Query<KeyQuery>, QueryRejection>,
) -> Result<Page, Page> {
    let name = bucket_name(&name)?;
    let KeyQuery { key } = query(key)?;
    let api = object_api(&name, &key);
    viewer.must(Method::GET, &api)?;
    let record = engine
        .head_object(&viewer.namespace, &name, &key, &ReadConditions::default())
        .await
        .map_err(object_error)?;
    let home = format!("/ui/buckets/{name}");
    let folder = folder_of(&key).to_owned();
    Ok(Page::ok(&ObjectPage {
        chrome: Some(viewer.chrome("buckets")),
        csrf: viewer.csrf.clone(),
        can_delete: viewer.may(Method::DELETE, &api),
        folder_href: link(&home, &[("prefix", &folder)]),
        download: link(&format!("{home}/download"), &[("key", &key)]),
        name: name.to_string(),
        folder,
        size: human_bytes(record.size),
        bytes: record.size,
        etag: record.etag,
        content_type: record.content_type.unwrap_or_default(),
        modified: rfc3339_ms(record.modified_ms),
        metadata: record.metadata.into_iter().collect(),
        headers: record.headers.into_iter().collect(),
        key,
    }))
}

/// `Content-Disposition: attachment` naming the key's last part: a plain ASCII
/// `filename` for old clients and the exact name in `filename*`.
fn attachment(key: &str) -> String {
    let file = key
        .rsplit('/')
        .next()
        .filter(|f| !f.is_empty())
        .unwrap_or("download");
    let plain: String = file
        .chars()
        .map(|c| match c {
            ' ' | '!' | '#'..='[' | ']'..='~' if c != ';' && c != '%' => c,
            _ => '_',
        })
        .collect();
    format!(
        "attachment; filename=\"{plain}\"; filename*=UTF-8''{}",
        utf8_percent_encode(file, FILENAME_ESCAPES)
    )
}

/// The object's bytes, streamed, as a file to save: never a page of the dashboard's
/// origin (attachment, `nosniff`, a sandboxing CSP, an opaque type).
pub(super) async fn download(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    key: Result<Query<KeyQuery>, QueryRejection>,
) -> Result<Response, Page> {
    let name = bucket_name(&name)?;
    let KeyQuery { key } = query(key)?;
    viewer.must(Method::GET, &object_api(&name, &key))?;
    let read = engine
        .get_object(&viewer.namespace, &name, &key, None, &ReadConditions::default())
        .await
        .map_err(object_error)?;
    let length = read.len();
    let mut response = Response::new(Body::from_stream(read.body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(value) = HeaderValue::from_str(&attachment(&key)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    } else {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", read.record.etag)) {
        headers.insert(header::ETAG, etag);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub(super) struct DeleteForm {
    key: String,
}

/// Deletes an object (as `DELETE /v1/buckets/NAME/objects/KEY` does), then shows its
/// folder.
pub(super) async fn delete(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Page> {
    let form: DeleteForm = viewer.accept(&body)?;
    let name = bucket_name(&name)?;
    viewer.must(Method::DELETE, &object_api(&name, &form.key))?;
    let cause = engine.write_cause(&viewer.caller, None, None);
    engine
        .delete_object(&viewer.namespace, &name, &form.key, Condition::None, cause)
        .await
        .map_err(object_error)?;
    let to = link(
        &format!("/ui/buckets/{name}"),
        &[("prefix", folder_of(&form.key)), ("deleted", &form.key)],
    );
    Ok(Redirect::to(&to).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12 * 1024 * 1024), "12.0 MiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn a_prefix_is_crumbs_of_its_folders() {
        assert_eq!(crumbs(""), Vec::<(String, String)>::new());
        assert_eq!(
            crumbs("a/b c/"),
            vec![
                ("a".to_owned(), "a/".to_owned()),
                ("b c".to_owned(), "a/b c/".to_owned())
            ]
        );
        assert_eq!(
            crumbs("a/ph"),
            vec![
                ("a".to_owned(), "a/".to_owned()),
                ("ph".to_owned(), "a/ph".to_owned())
            ]
        );
        assert_eq!(folder_of("a/b/c.txt"), "a/b/");
        assert_eq!(folder_of("top.txt"), "");
    }

    #[test]
    fn links_encode_every_query_value() {
        assert_eq!(link("/ui/buckets/b", &[("prefix", "")]), "/ui/buckets/b");
        assert_eq!(
            link("/ui/buckets/b/object", &[("key", "a b/é&#+.txt")]),
            "/ui/buckets/b/object?key=a+b%2F%C3%A9%26%23%2B.txt"
        );
        assert_eq!(
            object_api(&BucketName::new("bkt").unwrap(), "a b/é#"),
            "/v1/buckets/bkt/objects/a%20b/%C3%A9%23"
        );
    }

    #[test]
    fn an_attachment_names_the_keys_file_plainly_and_exactly() {
        assert_eq!(
            attachment("photos/été \"1\";.jpg"),
            "attachment; filename=\"_t_ _1__.jpg\"; filename*=UTF-8''%C3%A9t%C3%A9%20%221%22%3B.jpg"
        );
        assert_eq!(
            attachment("dir/"),
            "attachment; filename=\"download\"; filename*=UTF-8''download"
        );
    }
}

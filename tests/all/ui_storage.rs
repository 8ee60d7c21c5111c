//! The dashboard's bucket and key-value pages over plain HTTP: objects and keys written
//! through the API appear; folders and breadcrumbs navigate; keys with spaces, slashes,
//! unicode, `&` and `#` round-trip through the links; lists page past the store's page
//! by its cursor; a download is an attachment that cannot run as the dashboard, with
//! the object's bytes; deletes take effect (checked through the API); a read key sees
//! no delete buttons and is refused when it posts anyway; another namespace's key sees
//! nothing; CSRF-less posts, missing buckets and stores, and bad names are refused.

use crate::tenancy::create_key;
use crate::ui::{browser, csrf, encode, log_in, page, post};
use crate::util::{client, server};
use serde_json::{Value, json};
use wisp_test_support::{TEST_ADMIN_KEY, TestServer};

/// What askama escapes, read back.
fn unescape(text: &str) -> String {
    text.replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
}

/// The address of the first link at or after `marker` (a row's, a link's own id).
fn href_after(html: &str, marker: &str) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {html}"));
    let start = at + html[at..].find("href=\"").expect("a link") + 6;
    let end = start + html[start..].find('"').unwrap();
    unescape(&html[start..end])
}

/// The address of the pager's link `rel` (`next`, `first`).
fn pager_link(html: &str, rel: &str) -> String {
    let marker = format!(r#" rel="{rel}">"#);
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {rel} link in {html}"));
    let start = html[..at].rfind("href=\"").unwrap() + 6;
    unescape(&html[start..at - 1])
}

/// How many rows of `kind` (`data-key`, `data-prefix`) a page shows.
fn rows(html: &str, kind: &str) -> usize {
    html.matches(&format!("<tr {kind}=")).count()
        + html.matches(&format!("<tr class=\"folder\" {kind}=")).count()
}

/// A post as a browser makes it, without following the redirect: status and where to.
async fn submit(server: &TestServer, session: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = browser()
        .post(server.at(path))
        .header("cookie", session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(form))
        .send()
        .await
        .unwrap();
    let to = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), to)
}

/// A key as it goes in an API path: each segment percent-encoded.
fn key_path(key: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    key.split('/')
        .map(|s| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

async fn put_object(server: &TestServer, bucket: &str, key: &str, body: &[u8], headers: &[(&str, &str)]) {
    let mut request = client()
        .put(server.at(&format!("/v1/buckets/{bucket}/objects/{}", key_path(key))))
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let r = request.send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn object_status(server: &TestServer, bucket: &str, key: &str) -> u16 {
    client()
        .head(server.at(&format!("/v1/buckets/{bucket}/objects/{}", key_path(key))))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn new_namespace(server: &TestServer, name: &str) {
    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn buckets_browse_like_folders_download_safely_and_delete() {
    let server = server();
    let session = log_in(&server, TEST_ADMIN_KEY).await;
    let (status, empty) = page(&server, &session, "/ui/buckets").await;
    assert_eq!(status, 200);
    assert!(
        empty.contains(r#"<p class="empty">"#) && empty.contains("wisp bucket create NAME"),
        "{empty}"
    );

    let r = client()
        .put(server.at("/v1/buckets/photos"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    put_object(
        &server,
        "photos",
        "top.txt",
        b"hello",
        &[("content-type", "text/plain"), ("x-wisp-meta-camera", "x100")],
    )
    .await;
    let odd = "a b/é & #1.html";
    let script = b"<html><script>alert(document.cookie)</script></html>";
    put_object(&server, "photos", odd, script, &[("content-type", "text/html")]).await;
    for i in 0..105 {
        put_object(&server, "photos", &format!("many/k{i:03}"), b"x", &[]).await;
    }
    put_object(&server, "photos", "many/sub/deep.txt", b"deep", &[]).await;

    // The list, then the bucket's top: folders first, then the objects.
    let (_, list) = page(&server, &session, "/ui/buckets").await;
    assert!(list.contains(r#"<tr data-bucket="photos">"#), "{list}");
    assert!(list.contains(">108<"), "its object count: {list}");
    let (status, top) = page(&server, &session, "/ui/buckets/photos").await;
    assert_eq!(status, 200);
    assert!(top.contains(r#"<tr class="folder" data-prefix="a b/">"#), "{top}");
    assert!(
        top.contains(r#"<tr class="folder" data-prefix="many/">"#),
        "{top}"
    );
    assert!(top.contains(r#"<tr data-key="top.txt">"#), "{top}");
    assert_eq!(rows(&top, "data-key"), 1, "{top}");
    assert!(top.contains("5 B") && top.contains("text/plain"), "{top}");
    assert!(top.contains(r#"class="delete""#), "an admin may delete");

    // A folder's link sets the prefix; its object's key survives the round trip.
    let folder = href_after(&top, r#"data-prefix="a b/">"#);
    assert_eq!(folder, "/ui/buckets/photos?prefix=a+b%2F");
    let (status, inside) = page(&server, &session, &folder).await;
    assert_eq!(status, 200);
    assert!(
        inside.contains(r#"<tr data-key="a b/é &#38; #1.html">"#),
        "{inside}"
    );
    assert!(
        inside.contains(r#"<a href="/ui/buckets/photos?prefix=a+b%2F" aria-current="page">a b</a>"#),
        "the breadcrumbs end at the folder: {inside}"
    );
    let object_at = href_after(&inside, r#"data-key="a b/é &#38; #1.html">"#);
    assert_eq!(
        object_at,
        "/ui/buckets/photos/object?key=a+b%2F%C3%A9+%26+%231.html"
    );
    let (status, object) = page(&server, &session, &object_at).await;
    assert_eq!(status, 200);
    assert!(
        object.contains(r#"<h1 class="key">a b/é &#38; #1.html</h1>"#),
        "{object}"
    );
    assert!(object.contains("text/html") && object.contains(&format!("{} B", script.len())));

    // The download: the bytes, as an attachment that cannot run as the dashboard.
    let download = href_after(&object, r#"id="download""#);
    let r = browser()
        .get(server.at(&download))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let headers = r.headers().clone();
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["content-security-policy"], "default-src 'none'; sandbox");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; ")
            && disposition.contains("filename*=UTF-8''%C3%A9%20%26%20%231.html"),
        "{disposition}"
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), script);

    // The top object's page shows its metadata.
    let (_, object) = page(&server, &session, &href_after(&top, r#"data-key="top.txt">"#)).await;
    assert!(
        object.contains("<tr><th>camera</th><td><code>x100</code></td></tr>"),
        "{object}"
    );

    // More than a page: the store's cursor leads on, and back to the first page.
    let (_, many) = page(&server, &session, "/ui/buckets/photos?prefix=many%2F").await;
    assert_eq!(rows(&many, "data-key"), 100, "{many}");
    assert!(many.contains(r#"<tr data-key="many/k099">"#) && !many.contains("many/k100"));
    assert!(!many.contains(r#"rel="first""#));
    let next = pager_link(&many, "next");
    assert_eq!(next, "/ui/buckets/photos?prefix=many%2F&after=many%2Fk099");
    let (_, rest) = page(&server, &session, &next).await;
    assert_eq!(rows(&rest, "data-key"), 5, "{rest}");
    assert!(rest.contains(r#"<tr data-key="many/k104">"#), "{rest}");
    assert!(
        rest.contains(r#"<tr class="folder" data-prefix="sub/">"#),
        "{rest}"
    );
    assert!(!rest.contains(r#"rel="next""#));
    assert_eq!(pager_link(&rest, "first"), "/ui/buckets/photos?prefix=many%2F");

    // Posts: refused without the token; a delete takes effect and shows its folder.
    let token = csrf(&inside);
    let (status, _) = post(&server, &session, "/ui/buckets/photos/delete", &[("key", odd)]).await;
    assert_eq!(status, 403, "no CSRF token");
    assert_eq!(object_status(&server, "photos", odd).await, 200);
    let (status, to) = submit(
        &server,
        &session,
        "/ui/buckets/photos/delete",
        &[("csrf", &token), ("key", odd)],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(
        to,
        "/ui/buckets/photos?prefix=a+b%2F&deleted=a+b%2F%C3%A9+%26+%231.html"
    );
    assert_eq!(object_status(&server, "photos", odd).await, 404);
    let (_, after) = page(&server, &session, &to).await;
    assert!(
        after.contains(r#"<p class="notice">Deleted a b/é &#38; #1.html.</p>"#),
        "{after}"
    );
    assert!(!after.contains("data-key="), "{after}");

    // Missing and bad names.
    for (path, status) in [
        ("/ui/buckets/nope", 404),
        ("/ui/buckets/nope/object?key=x", 404),
        ("/ui/buckets/photos/object?key=gone", 404),
        ("/ui/buckets/photos/download?key=gone", 404),
        ("/ui/buckets/Bad_Name", 400),
        ("/ui/buckets/Bad_Name/object?key=x", 400),
        ("/ui/buckets/photos/object", 400),
    ] {
        assert_eq!(page(&server, &session, path).await.0, status, "{path}");
    }

    // A read key browses and downloads, sees no delete, and is refused when it posts.
    let reader = log_in(&server, &create_key(&server, "default", "read", None).await).await;
    let (status, top) = page(&server, &reader, "/ui/buckets/photos").await;
    assert_eq!(status, 200);
    assert!(top.contains(r#"<tr data-key="top.txt">"#), "{top}");
    assert!(!top.contains(r#"class="delete""#), "{top}");
    let (status, object) = page(&server, &reader, "/ui/buckets/photos/object?key=top.txt").await;
    assert_eq!(status, 200);
    assert!(!object.contains(r#"id="delete""#) && object.contains(r#"id="download""#));
    let (status, refused) = post(
        &server,
        &reader,
        "/ui/buckets/photos/delete",
        &[("csrf", &csrf(&object)), ("key", "top.txt")],
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        refused.contains("DELETE /v1/buckets/photos/objects/top.txt"),
        "{refused}"
    );
    assert_eq!(object_status(&server, "photos", "top.txt").await, 200);

    // Another namespace's key sees none of it and touches nothing.
    new_namespace(&server, "other").await;
    let outsider = log_in(&server, &create_key(&server, "other", "deploy", None).await).await;
    let (_, list) = page(&server, &outsider, "/ui/buckets").await;
    assert!(
        !list.contains("photos") && list.contains(r#"<p class="empty">"#),
        "{list}"
    );
    for path in [
        "/ui/buckets/photos",
        "/ui/buckets/photos/object?key=top.txt",
        "/ui/buckets/photos/download?key=top.txt",
    ] {
        let (status, body) = page(&server, &outsider, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(!body.contains("hello"), "{body}");
    }
    let (_, theirs) = page(&server, &outsider, "/ui/buckets").await;
    let (status, _) = post(
        &server,
        &outsider,
        "/ui/buckets/photos/delete",
        &[("csrf", &csrf(&theirs)), ("key", "top.txt")],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(object_status(&server, "photos", "top.txt").await, 200);
}

async fn kv_put(server: &TestServer, store: &str, key: &str, value: &[u8], ttl: Option<&str>) {
    let mut request = client()
        .put(server.at(&format!("/v1/kv/{store}/keys/{}", key_path(key))))
        .body(value.to_vec());
    if let Some(ttl) = ttl {
        request = request.header("wisp-ttl", ttl);
    }
    let r = request.send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn kv_status(server: &TestServer, store: &str, key: &str) -> u16 {
    client()
        .get(server.at(&format!("/v1/kv/{store}/keys/{}", key_path(key))))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn kv_stores_show_keys_with_previews_page_by_cursor_and_delete() {
    let server = server();
    let session = log_in(&server, TEST_ADMIN_KEY).await;
    let (_, empty) = page(&server, &session, "/ui/kv").await;
    assert!(
        empty.contains(r#"<p class="empty">"#) && empty.contains("wisp kv create NAME"),
        "{empty}"
    );
    let r = client().put(server.at("/v1/kv/prefs")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let (_, store) = page(&server, &session, "/ui/kv/prefs").await;
    assert!(store.contains("wisp kv set prefs KEY VALUE"), "{store}");

    let odd = "user/a b&c#é";
    kv_put(&server, "prefs", odd, b"dark <mode>", None).await;
    kv_put(&server, "prefs", "bin", &[0, 1, 2, 255], None).await;
    kv_put(&server, "prefs", "later", b"soon gone", Some("1h")).await;
    kv_put(&server, "prefs", "long", "y".repeat(300).as_bytes(), None).await;
    for half in [0..100, 100..105] {
        let set: serde_json::Map<String, Value> = half.map(|i| (format!("n/k{i:03}"), json!("v"))).collect();
        let r = client()
            .post(server.at("/v1/kv/prefs/batch"))
            .json(&json!({ "set": set }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    let (_, stores) = page(&server, &session, "/ui/kv").await;
    assert!(stores.contains(r#"<tr data-store="prefs">"#), "{stores}");

    // The first page: previews, versions, expiry; the cursor leads to the rest.
    let (status, first) = page(&server, &session, "/ui/kv/prefs").await;
    assert_eq!(status, 200);
    assert_eq!(rows(&first, "data-key"), 100, "{first}");
    assert!(
        first.contains(r#"<span class="dim">binary, 4 bytes</span>"#),
        "{first}"
    );
    assert!(
        first.contains(&format!(r#"<code class="preview">{}…</code>"#, "y".repeat(200))),
        "{first}"
    );
    let later = &first[first.find(r#"<tr data-key="later">"#).unwrap()..];
    let later = &later[..later.find("</tr>").unwrap()];
    assert!(
        !later.contains("never") && later.contains('T'),
        "an expiry: {later}"
    );
    assert!(first.contains(r#"class="delete""#));
    let next = pager_link(&first, "next");
    let (_, second) = page(&server, &session, &next).await;
    assert_eq!(rows(&second, "data-key"), 9, "{second}");
    assert!(second.contains(r#"<tr data-key="user/a b&#38;c#é">"#), "{second}");
    assert!(
        second.contains("<code class=\"preview\">dark &#60;mode&#62;</code>"),
        "{second}"
    );
    assert_eq!(pager_link(&second, "first"), "/ui/kv/prefs");

    // A prefix pages by the cursor too, and keeps the prefix in its links.
    let (_, n) = page(&server, &session, "/ui/kv/prefs?prefix=n%2F").await;
    assert_eq!(rows(&n, "data-key"), 100, "{n}");
    let next = pager_link(&n, "next");
    assert_eq!(next, "/ui/kv/prefs?prefix=n%2F&after=n%2Fk099");
    let (_, rest) = page(&server, &session, &next).await;
    assert_eq!(rows(&rest, "data-key"), 5, "{rest}");
    assert_eq!(pager_link(&rest, "first"), "/ui/kv/prefs?prefix=n%2F");

    // A key's page: its whole value, escaped, and its version; the key round-trips.
    let key_at = href_after(&second, r#"<tr data-key="user/a b&#38;c#é">"#);
    assert_eq!(key_at, "/ui/kv/prefs/key?key=user%2Fa+b%26c%23%C3%A9");
    let (status, key) = page(&server, &session, &key_at).await;
    assert_eq!(status, 200);
    assert!(
        key.contains(r#"<pre id="value">dark &#60;mode&#62;</pre>"#),
        "{key}"
    );
    assert!(key.contains("<dt>Version</dt>"), "{key}");
    let (_, binary) = page(&server, &session, "/ui/kv/prefs/key?key=bin").await;
    assert!(
        binary.contains(r#"<pre id="value">00000000  00 01 02 ff</pre>"#),
        "{binary}"
    );

    // Deleting: refused without the token; then gone through the API too.
    let token = csrf(&key);
    let (status, _) = post(&server, &session, "/ui/kv/prefs/delete", &[("key", odd)]).await;
    assert_eq!(status, 403, "no CSRF token");
    assert_eq!(kv_status(&server, "prefs", odd).await, 200);
    let (status, to) = submit(
        &server,
        &session,
        "/ui/kv/prefs/delete",
        &[("csrf", &token), ("key", odd), ("prefix", "user/")],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(to, "/ui/kv/prefs?prefix=user%2F&deleted=user%2Fa+b%26c%23%C3%A9");
    assert_eq!(kv_status(&server, "prefs", odd).await, 404);
    let (_, after) = page(&server, &session, &to).await;
    assert!(after.contains("Deleted user/a b&#38;c#é."), "{after}");
    assert!(!after.contains("data-key="), "{after}");

    for (path, status) in [
        ("/ui/kv/nope", 404),
        ("/ui/kv/nope/key?key=x", 404),
        ("/ui/kv/prefs/key?key=gone", 404),
        ("/ui/kv/Bad_Name", 400),
        ("/ui/kv/prefs/key", 400),
    ] {
        assert_eq!(page(&server, &session, path).await.0, status, "{path}");
    }

    // A read key sees the keys but no delete, and is refused when it posts.
    let reader = log_in(&server, &create_key(&server, "default", "read", None).await).await;
    let (status, keys) = page(&server, &reader, "/ui/kv/prefs").await;
    assert_eq!(status, 200);
    assert!(keys.contains(r#"<tr data-key="bin">"#) && !keys.contains(r#"class="delete""#));
    let (_, one) = page(&server, &reader, "/ui/kv/prefs/key?key=bin").await;
    assert!(!one.contains(r#"id="delete""#), "{one}");
    let (status, _) = post(
        &server,
        &reader,
        "/ui/kv/prefs/delete",
        &[("csrf", &csrf(&one)), ("key", "bin")],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(kv_status(&server, "prefs", "bin").await, 200);

    // Another namespace's key sees none of it and touches nothing.
    new_namespace(&server, "other").await;
    let outsider = log_in(&server, &create_key(&server, "other", "deploy", None).await).await;
    let (_, list) = page(&server, &outsider, "/ui/kv").await;
    assert!(
        !list.contains("prefs") && list.contains(r#"<p class="empty">"#),
        "{list}"
    );
    for path in ["/ui/kv/prefs", "/ui/kv/prefs/key?key=bin"] {
        assert_eq!(page(&server, &outsider, path).await.0, 404, "{path}");
    }
    let (status, _) = post(
        &server,
        &outsider,
        "/ui/kv/prefs/delete",
        &[("csrf", &csrf(&list)), ("key", "bin")],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(kv_status(&server, "prefs", "bin").await, 200);
}

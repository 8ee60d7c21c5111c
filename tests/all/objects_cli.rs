//! Object storage through Wisp's own interfaces: the CLI's `wisp bucket` and
//! `wisp object` against a real server, and the `/v1/buckets` API they use (ranges,
//! heads, metadata, the headers an object keeps, conditional requests, errors, and
//! another namespace's key seeing none of it), and `wisp deploy` creating the buckets
//! a manifest declares.

use crate::util::{bin, client, expect_problem, get_json, text, wisp, wisp_fails};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::process::Stdio;
use wisp_test_support::{TestServer, fixture, keyed_client};

/// Runs `wisp ARGS` with `input` on stdin; asserts it succeeded; its stdout.
fn wisp_with_stdin(server: &TestServer, args: &[&str], input: &[u8]) -> String {
    let mut child = server
        .cli(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "wisp {args:?}: {stderr}");
    stdout
}

/// `len` bytes without a short period, so a range read from the wrong offset shows.
fn pattern(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The cells of the table row whose first cell is `first`.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row `{first}` in:\n{table}"))
}

/// A `deploy` key of a new namespace `name`.
async fn key_of_another_namespace(server: &TestServer, name: &str) -> String {
    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client()
        .post(server.at("/v1/keys"))
        .json(&json!({ "namespace": name, "role": "deploy" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let key: Value = r.json().await.unwrap();
    key["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn bucket_and_object_commands_stream_files_both_ways() {
    let server = TestServer::serve(bin());
    let dir = tempfile::tempdir().unwrap();
    let out = wisp(&server, &["bucket", "create", "photos", "--quota", "1GiB"]);
    assert_eq!(out, "created bucket photos (quota 1.0 GiB)\n");
    let err = wisp_fails(&server, &["bucket", "create", "photos"], 4);
    assert!(err.contains("bucket_exists"), "{err}");

    // Over the progress bar's threshold, from disk; and a small one from stdin.
    let big = pattern(12 * 1024 * 1024 + 3);
    let big_path = dir.path().join("big.bin");
    std::fs::write(&big_path, &big).unwrap();
    let big_file = big_path.to_str().unwrap();
    let out = wisp(&server, &["object", "put", "photos", "raw/big.bin", big_file]);
    assert_eq!(
        out,
        "uploaded photos/raw/big.bin (12.0 MiB, application/octet-stream)\n"
    );
    let out = wisp_with_stdin(
        &server,
        &["object", "put", "photos", "notes/hello.txt", "-"],
        b"hello, objects\n",
    );
    assert_eq!(
        out,
        "uploaded photos/notes/hello.txt (15 B, text/plain; charset=utf-8)\n"
    );

    // Listing: a table, a prefix, JSON, a limit.
    let table = wisp(&server, &["object", "ls", "photos"]);
    assert_eq!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["KEY", "SIZE", "MODIFIED", "CONTENT", "TYPE"]
    );
    assert_eq!(row(&table, "raw/big.bin")[1..3], ["12.0", "MiB"], "{table}");
    let hello = row(&table, "notes/hello.txt");
    assert_eq!(hello[1..3], ["15", "B"], "{table}");
    assert_eq!(hello[4..], ["text/plain;", "charset=utf-8"], "{table}");
    let out = wisp(&server, &["object", "ls", "photos", "raw/"]);
    assert!(out.contains("raw/big.bin") && !out.contains("hello"), "{out}");
    let listed: Value = serde_json::from_str(&wisp(&server, &["object", "ls", "photos", "--json"])).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|o| o["key"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["notes/hello.txt", "raw/big.bin"]
    );
    assert_eq!(listed[1]["size"], big.len());
    assert_eq!(listed[1]["etag"].as_str().unwrap().len(), 32, "{}", listed[1]);
    assert_eq!(listed[1]["content_type"], "application/octet-stream");
    assert_eq!(listed[1]["metadata"], json!({}));
    let limited: Value = serde_json::from_str(&wisp(
        &server,
        &["object", "ls", "photos", "--limit", "1", "--json"],
    ))
    .unwrap();
    assert_eq!(limited.as_array().unwrap().len(), 1);
    let buckets = wisp(&server, &["bucket", "ls"]);
    assert_eq!(
        row(&buckets, "photos")[1..6],
        ["2", "12.0", "MiB", "1.0", "GiB"],
        "{buckets}"
    );

    // Downloads: to a file (byte for byte) and to stdout.
    let got_path = dir.path().join("got.bin");
    wisp(
        &server,
        &[
            "object",
            "get",
            "photos",
            "raw/big.bin",
            got_path.to_str().unwrap(),
        ],
    );
    assert_eq!(sha256(&std::fs::read(&got_path).unwrap()), sha256(&big));
    let out = wisp(&server, &["object", "get", "photos", "notes/hello.txt"]);
    assert_eq!(out, "hello, objects\n");

    // Errors: what was wrong, and what to do; nothing written for a missing object.
    let missing = dir.path().join("missing.bin");
    let err = wisp_fails(
        &server,
        &["object", "get", "photos", "ghost.txt", missing.to_str().unwrap()],
        4,
    );
    assert!(
        err.contains("object_not_found") && err.contains("hint: run `wisp object ls BUCKET`"),
        "{err}"
    );
    assert!(!missing.exists());
    let err = wisp_fails(&server, &["object", "put", "ghost", "k", big_file], 4);
    assert!(
        err.contains("bucket_not_found") && err.contains("wisp bucket ls"),
        "{err}"
    );
    let err = wisp_fails(&server, &["bucket", "create", "Bad_Name"], 2);
    assert!(
        err.contains("bucket name `Bad_Name` may hold only lowercase letters"),
        "{err}"
    );
    let err = wisp_fails(&server, &["object", "ls", "Bad_Name"], 2);
    assert!(err.contains("bucket name `Bad_Name`"), "{err}");
    let err = wisp_fails(&server, &["object", "put", "photos", "k", "/no/such/file"], 2);
    assert!(err.contains("cannot read `/no/such/file`"), "{err}");
    let err = wisp_fails(&server, &["object", "put", "photos", "k", "/"], 2);
    assert!(err.contains("`/` is not a file"), "{err}");
    let err = wisp_fails(&server, &["bucket", "create", "x-y", "--quota", "lots"], 2);
    assert!(err.contains("lots"), "{err}");
    let err = wisp_fails(&server, &["bucket", "rm", "photos"], 4);
    assert!(
        err.contains("bucket_not_empty") && err.contains("wisp object rm"),
        "{err}"
    );

    // Another namespace's key sees no bucket here.
    let other = key_of_another_namespace(&server, "other").await;
    let err = {
        let out = server
            .cli(bin())
            .env("WISP_KEY", &other)
            .args(["object", "get", "photos", "notes/hello.txt"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4));
        text(&out).1
    };
    assert!(err.contains("bucket_not_found"), "{err}");

    let out = wisp(
        &server,
        &["object", "rm", "photos", "raw/big.bin", "notes/hello.txt"],
    );
    assert_eq!(
        out,
        "removed photos/raw/big.bin\nremoved photos/notes/hello.txt\n"
    );
    let out = server
        .cli(bin())
        .args(["object", "ls", "photos"])
        .output()
        .unwrap();
    assert!(
        text(&out).1.contains("No objects in `photos`"),
        "{:?}",
        text(&out)
    );
    assert_eq!(
        wisp(&server, &["bucket", "rm", "photos"]),
        "removed bucket photos\n"
    );
    let out = server.cli(bin()).args(["bucket", "ls"]).output().unwrap();
    assert!(text(&out).1.contains("No buckets."), "{:?}", text(&out));
}

#[tokio::test]
async fn the_api_serves_ranges_heads_metadata_and_odd_keys() {
    let server = TestServer::serve(bin());
    let http = client();
    let r = http.put(server.at("/v1/buckets/media")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let bucket: Value = r.json().await.unwrap();
    assert_eq!(
        (
            &bucket["name"],
            &bucket["objects"],
            &bucket["bytes"],
            &bucket["quota_bytes"]
        ),
        (&json!("media"), &json!(0), &json!(0), &Value::Null)
    );
    assert!(bucket["created_at"].as_str().unwrap().ends_with('Z'), "{bucket}");

    let data = pattern(100_000);
    let url = server.at("/v1/buckets/media/objects/clips/a.bin");
    let r = http
        .put(&url)
        .header("content-type", "video/mp4")
        .header("x-wisp-meta-camera", "x100")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let object: Value = r.json().await.unwrap();
    assert_eq!(object["key"], "clips/a.bin");
    assert_eq!(object["size"], data.len());
    assert_eq!(object["content_type"], "video/mp4");
    assert_eq!(object["metadata"], json!({"camera": "x100"}));
    let etag = object["etag"].as_str().unwrap().to_string();

    // A range: 206, Content-Range, exactly those bytes.
    let r = http
        .get(&url)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 1000-1999/100000");
    assert_eq!(r.headers()["content-length"], "1000");
    assert_eq!(r.headers()["etag"], format!("\"{etag}\""));
    assert_eq!(r.bytes().await.unwrap(), data[1000..2000]);
    let r = http.get(&url).header("range", "bytes=-10").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 99990-99999/100000");
    assert_eq!(r.bytes().await.unwrap(), data[99_990..]);
    let r = http
        .get(&url)
        .header("range", "bytes=100000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-range"], "bytes */100000");
    expect_problem(r, 416, "range_not_satisfiable").await;
    let r = http
        .get(&url)
        .header("range", "bytes=0-1,5-6")
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_request").await;

    // The whole object, and its head.
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "video/mp4");
    assert_eq!(r.headers()["x-wisp-meta-camera"], "x100");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert!(r.headers()["last-modified"].to_str().unwrap().ends_with(" GMT"));
    assert_eq!(r.bytes().await.unwrap(), data);
    let r = http.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "100000");
    assert_eq!(r.headers()["etag"], format!("\"{etag}\""));
    assert!(r.bytes().await.unwrap().is_empty());

    // Keys are the rest of the path, percent-decoded; the CLI encodes them.
    let odd = "odd keys/ü #1?.txt";
    wisp_with_stdin(&server, &["object", "put", "media", odd, "-"], b"odd");
    let r = http
        .get(server.at("/v1/buckets/media/objects/odd%20keys/%C3%BC%20%231%3F.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "odd");
    assert_eq!(wisp(&server, &["object", "get", "media", odd]), "odd");

    // A listing by pages, with a delimiter.
    let r = http
        .get(server.at("/v1/buckets/media/objects?delimiter=/&limit=1"))
        .send()
        .await
        .unwrap();
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["common_prefixes"], json!(["clips/"]), "{page}");
    assert_eq!(page["truncated"], true, "{page}");
    let next = page["next"].as_str().unwrap();
    let r = http
        .get(server.at("/v1/buckets/media/objects"))
        .query(&[("delimiter", "/"), ("after", next)])
        .send()
        .await
        .unwrap();
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["common_prefixes"], json!(["odd keys/"]), "{page}");
    assert_eq!(page["truncated"], false, "{page}");
    let r = http
        .get(server.at("/v1/buckets/media/objects?limit=0"))
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_request").await;

    // Missing things and bad names.
    let r = http
        .get(server.at("/v1/buckets/media/objects/ghost"))
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "object_not_found").await;
    let r = http.get(server.at("/v1/buckets/ghost")).send().await.unwrap();
    expect_problem(r, 404, "bucket_not_found").await;
    let r = http.put(server.at("/v1/buckets/Bad_Name")).send().await.unwrap();
    let problem = expect_problem(r, 400, "invalid_name").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("bucket name `Bad_Name`"),
        "{problem}"
    );
    let r = http
        .put(server.at("/v1/buckets/quota-zero"))
        .json(&json!({"quota_bytes": 0}))
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_config").await;
    let r = http
        .put(server.at("/v1/buckets/typo"))
        .json(&json!({"quota": 5}))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(r, 400, "invalid_config").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `quota`"),
        "{problem}"
    );
    let r = http.delete(server.at("/v1/buckets/media")).send().await.unwrap();
    expect_problem(r, 409, "bucket_not_empty").await;

    // Another namespace's key: this namespace's bucket does not exist for it.
    let other = keyed_client(&key_of_another_namespace(&server, "other").await);
    for path in [
        "/v1/buckets/media",
        "/v1/buckets/media/objects",
        "/v1/buckets/media/objects/clips/a.bin",
    ] {
        let r = other.get(server.at(path)).send().await.unwrap();
        expect_problem(r, 404, "bucket_not_found").await;
    }
    let r = other
        .put(server.at("/v1/buckets/media/objects/x"))
        .body("x")
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "bucket_not_found").await;
    let r = other.get(server.at("/v1/buckets")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"buckets": []}));

    // Deleting: a key that holds nothing is no error; then the bucket goes.
    for key in ["clips/a.bin", "odd%20keys/%C3%BC%20%231%3F.txt", "never-was"] {
        let r = http
            .delete(server.at(&format!("/v1/buckets/media/objects/{key}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{key}");
    }
    let r = http.delete(server.at("/v1/buckets/media")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = http.get(server.at("/v1/buckets/media")).send().await.unwrap();
    expect_problem(r, 404, "bucket_not_found").await;
}

#[tokio::test]
async fn the_api_keeps_object_headers_and_answers_conditional_requests() {
    let server = TestServer::serve(bin());
    let http = client();
    let r = http.put(server.at("/v1/buckets/site")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let url = server.at("/v1/buckets/site/objects/index.html");

    // Kept from the upload, answered on every read.
    let kept = [
        ("cache-control", "max-age=60"),
        ("content-disposition", "inline"),
        ("content-encoding", "identity"),
        ("content-language", "en"),
        ("expires", "Wed, 21 Oct 2015 07:28:00 GMT"),
    ];
    let mut put = http.put(&url).header("content-type", "text/html");
    for (name, value) in kept {
        put = put.header(name, value);
    }
    let r = put.body("<p>v1</p>").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v1 = format!(
        "\"{}\"",
        r.json::<Value>().await.unwrap()["etag"].as_str().unwrap()
    );
    for r in [
        http.get(&url).send().await.unwrap(),
        http.head(&url).send().await.unwrap(),
    ] {
        assert_eq!(r.status(), 200);
        for (name, value) in kept {
            assert_eq!(r.headers()[name], value, "{name}");
        }
    }
    let r = http
        .put(server.at("/v1/buckets/site/objects/bad"))
        .header("expires", "tomorrow")
        .body("x")
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_request").await;

    // A conditional read: 304 with the validators, no body; 412 when If-Match fails.
    for request in [http.get(&url), http.head(&url)] {
        let r = request.header("if-none-match", &v1).send().await.unwrap();
        assert_eq!(r.status(), 304);
        assert_eq!(r.headers()["etag"], v1.as_str());
        let modified = r.headers()["last-modified"].to_str().unwrap().to_string();
        assert!(modified.ends_with(" GMT"), "{modified}");
        assert!(r.bytes().await.unwrap().is_empty());
        let r = http
            .get(&url)
            .header("if-modified-since", &modified)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);
    }
    let r = http
        .get(&url)
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "<p>v1</p>");
    let r = http
        .get(&url)
        .header("if-match", "\"other\"")
        .send()
        .await
        .unwrap();
    expect_problem(r, 412, "precondition_failed").await;

    // Conditional writes: create only, replace only, replace only that version.
    let put = |condition: (&'static str, String), body: &'static str| {
        http.put(&url).header(condition.0, condition.1).body(body).send()
    };
    let r = put(("if-none-match", "*".into()), "<p>x</p>").await.unwrap();
    expect_problem(r, 412, "precondition_failed").await;
    let r = put(("if-match", "\"other\"".into()), "<p>x</p>").await.unwrap();
    expect_problem(r, 412, "precondition_failed").await;
    let r = put(("if-match", v1.clone()), "<p>v2</p>").await.unwrap();
    assert_eq!(r.status(), 200);
    let v2 = format!(
        "\"{}\"",
        r.json::<Value>().await.unwrap()["etag"].as_str().unwrap()
    );
    let r = http
        .put(server.at("/v1/buckets/site/objects/new.html"))
        .header("if-match", "*")
        .body("x")
        .send()
        .await
        .unwrap();
    expect_problem(r, 412, "precondition_failed").await;
    let r = http.get(&url).send().await.unwrap();
    assert!(
        r.headers().get("cache-control").is_none(),
        "a put replaces the headers too"
    );
    assert_eq!(r.text().await.unwrap(), "<p>v2</p>");

    // Conditional deletes: only that version; a missing key is then an error.
    let r = http.delete(&url).header("if-match", &v1).send().await.unwrap();
    expect_problem(r, 412, "precondition_failed").await;
    let r = http.delete(&url).header("if-match", &v2).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = http.delete(&url).header("if-match", "*").send().await.unwrap();
    expect_problem(r, 404, "object_not_found").await;
    let r = http.delete(&url).send().await.unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn deploy_creates_the_manifests_buckets_and_leaves_them_on_a_second_deploy() {
    let server = TestServer::serve(bin());
    let app = tempfile::tempdir().unwrap();
    let wasm = fixture("event-kit");
    std::fs::write(
        app.path().join("wisp.toml"),
        format!(
            "[app]\nname = \"gallery\"\n\n\
             [functions.thumbnail]\nsource = {:?}\nkind = \"event\"\nstorage = \"photos\"\n\n\
             [buckets.photos]\nquota = \"1MiB\"\n\n\
             [buckets.thumbnails]\n",
            wasm.display().to_string()
        ),
    )
    .unwrap();
    let path = app.path().to_str().unwrap();
    let out = wisp(&server, &["deploy", path]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(lines[1].starts_with("created    bucket photos"), "{out}");
    assert!(lines[1].ends_with("quota 1.0 MiB"), "{out}");
    assert!(lines[2].starts_with("created    bucket thumbnails"), "{out}");
    assert!(lines[3].starts_with("created    thumbnail"), "{out}");
    let before = get_json(&server, "/v1/buckets").await;
    let buckets = before["buckets"].as_array().unwrap();
    let names: Vec<&str> = buckets.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["photos", "thumbnails"]);
    assert_eq!(buckets[0]["quota_bytes"], 1024 * 1024);
    assert_eq!(buckets[1]["quota_bytes"], Value::Null);

    let out = wisp(&server, &["deploy", path]);
    assert!(
        out.contains("unchanged  bucket photos")
            && out.contains("unchanged  bucket thumbnails")
            && out.contains("unchanged  thumbnail"),
        "{out}"
    );
    assert_eq!(get_json(&server, "/v1/buckets").await, before);
}

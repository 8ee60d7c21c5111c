//! The `examples/thumbnails` app as committed, end to end: `wisp deploy` of its directory;
//! a PNG uploaded with `wisp object put` and a JPEG with the AWS CLI become thumbnails in
//! `thumbs`, records in the `meta` store and messages on the `thumbnails` topic (received
//! from its queue); `GET /thumbs` lists them and the key-auth route serves them; `cleanup`
//! keeps them at its default age and deletes them at age 0. A file that is not an image
//! fails its invocation cleanly and stops nothing else.

use crate::util::{client, get_json, json_when, logs_when, python_package, server, text, wisp};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wisp_test_support::{TEST_ADMIN_KEY, TestServer, anonymous_client, keyed_client, repo_root};

fn example() -> PathBuf {
    repo_root().join("examples/thumbnails")
}

/// Polls `probe` until it gives `Some` (or panics after 60 s, saying what it waited for):
/// the thumbnails are made asynchronously, a moment after the upload is answered.
async fn until<T, F: Future<Output = Option<T>>>(what: &str, probe: impl Fn() -> F) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An object key as a URL path: `/` kept, everything else outside the unreserved set encoded.
fn encode(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The object `key` of `bucket` through the API; `None` when there is none.
async fn object(server: &TestServer, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let path = format!("/v1/buckets/{bucket}/objects/{}", encode(key));
    let r = client().get(server.at(&path)).send().await.unwrap();
    match r.status().as_u16() {
        200 => Some(r.bytes().await.unwrap().to_vec()),
        404 => None,
        status => panic!("GET {path}: {status} {}", r.text().await.unwrap()),
    }
}

/// The `meta` store's record of the photo `key`; `None` when there is none.
async fn meta(server: &TestServer, key: &str) -> Option<Value> {
    let path = format!("/v1/kv/meta/keys/{}", encode(key));
    let r = client().get(server.at(&path)).send().await.unwrap();
    match r.status().as_u16() {
        200 => Some(serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()),
        404 => None,
        status => panic!("GET {path}: {status} {}", r.text().await.unwrap()),
    }
}

/// The bodies of the messages one receive from `queue` takes, deleting them.
async fn receive(server: &TestServer, queue: &str) -> Vec<Value> {
    let path = format!("/v1/queues/{queue}/receive");
    let r = client()
        .post(server.at(&path))
        .json(&json!({ "max": 10 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.unwrap();
    let messages = got["messages"].as_array().cloned().unwrap_or_default();
    if !messages.is_empty() {
        let receipts: Vec<&Value> = messages.iter().map(|m| &m["receipt_handle"]).collect();
        let r = client()
            .post(server.at(&format!("/v1/queues/{queue}/delete")))
            .json(&json!({ "receipts": receipts }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "deleting the messages received from {queue}");
    }
    messages
        .iter()
        .map(|m| serde_json::from_str(m["body"].as_str().unwrap()).unwrap())
        .collect()
}

/// The width and height in a PNG's header, checking its signature and `IHDR` chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.len() > 24, "a PNG of {} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR", "no IHDR first");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// Uploads `file` as `s3://photos/KEY` with the AWS CLI, against the server's S3 listener.
fn aws_cp(server: &TestServer, file: &Path, key: &str) {
    let awscli = python_package("awscli==1.46.3");
    let (id, secret) = TEST_ADMIN_KEY.split_once('.').unwrap();
    let out = Command::new("python3")
        .args([
            "-m",
            "awscli",
            "--endpoint-url",
            server.s3_url.as_deref().unwrap(),
        ])
        .args(["s3", "cp"])
        .arg(file)
        .arg(format!("s3://photos/{key}"))
        .env("PYTHONPATH", awscli)
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "aws s3 cp: {stdout}{stderr}");
}

/// Checks the thumbnail and record of a photo of `width` × `height` uploaded as `key` in
/// `format`; returns the thumbnail's bytes.
async fn check_thumbnail(
    server: &TestServer,
    key: &str,
    format: &str,
    (width, height): (u32, u32),
) -> Vec<u8> {
    let thumb_key = format!("{key}.png");
    let png = until(&format!("thumbs/{thumb_key}"), || {
        object(server, "thumbs", &thumb_key)
    })
    .await;
    let (w, h) = png_size(&png);
    // Fit in 128 × 128, the long side at 128, the aspect ratio kept (to the pixel).
    assert_eq!(w.max(h), 128, "{key}: thumbnail {w}x{h}");
    let (long, short, thumb_short) = if width >= height {
        (width, height, h)
    } else {
        (height, width, w)
    };
    let expected_short = f64::from(short) * 128.0 / f64::from(long);
    assert!(
        (f64::from(thumb_short) - expected_short).abs() <= 1.0,
        "{key}: {w}x{h} for {width}x{height}"
    );

    let record = until(&format!("the record of {key}"), || meta(server, key)).await;
    assert_eq!(record["key"], key, "{record}");
    assert_eq!(record["thumb_key"], thumb_key, "{record}");
    assert_eq!(record["format"], format, "{record}");
    assert_eq!(
        (record["width"].as_u64(), record["height"].as_u64()),
        (Some(width.into()), Some(height.into())),
        "{record}"
    );
    assert_eq!(
        (record["thumb_width"].as_u64(), record["thumb_height"].as_u64()),
        (Some(w.into()), Some(h.into())),
        "{record}"
    );
    assert_eq!(record["thumb_bytes"].as_u64(), Some(png.len() as u64), "{record}");
    assert!(record["bytes"].as_u64().unwrap() > 0, "{record}");
    let age_ms = wall_ms().saturating_sub(record["created_at_ms"].as_u64().unwrap());
    assert!(age_ms < 120_000, "created {age_ms} ms ago: {record}");
    png
}

fn wall_ms() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(now.as_millis()).unwrap()
}

#[tokio::test]
async fn the_thumbnails_example_runs_from_upload_to_cleanup() {
    let server = server();
    let dir = example();
    let deployed = wisp(&server, &["deploy", dir.to_str().unwrap()]);
    for made in [
        "thumbnail",
        "api",
        "cleanup",
        "photos",
        "thumbs",
        "meta",
        "thumbnail-events",
        "thumbnails",
    ] {
        assert!(
            deployed.contains(made),
            "`{made}` not in the deploy's output:\n{deployed}"
        );
    }

    // A file that is not an image first: it fails on its own and stops nothing after it.
    let notes = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(notes.path(), "not a picture, just some text\n").unwrap();
    wisp(
        &server,
        &[
            "object",
            "put",
            "photos",
            "notes.txt",
            notes.path().to_str().unwrap(),
        ],
    );
    let failed = until("the failure record of notes.txt", || async {
        receive(&server, "thumbnail-failed").await.into_iter().next()
    })
    .await;
    assert_eq!(
        failed["requestContext"]["condition"], "RetriesExhausted",
        "{failed}"
    );
    assert_eq!(
        failed["requestPayload"]["Records"][0]["s3"]["object"]["key"], "notes.txt",
        "{failed}"
    );
    assert!(
        failed.to_string().contains("is not a PNG or JPEG image"),
        "{failed}"
    );
    let dlq = json_when(&server, "/v1/functions/thumbnail/dlq", |dlq| {
        dlq["dead_letters"][0].is_object()
    })
    .await;
    let dead = &dlq["dead_letters"][0];
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .contains("`notes.txt` is not a PNG or JPEG image"),
        "{dlq}"
    );
    let logs = logs_when(&server, "/v1/functions/thumbnail/logs", |lines| {
        lines
            .iter()
            .any(|l| l["line"].as_str().unwrap_or_default().contains("notes.txt"))
    })
    .await;
    assert!(
        logs.iter().any(|l| l["line"]
            .as_str()
            .unwrap()
            .contains("error: `notes.txt` is not a PNG or JPEG")),
        "{logs:?}"
    );
    let id = dead["id"].as_str().unwrap();
    let invocation = get_json(&server, &format!("/v1/invocations/{id}")).await;
    assert_eq!(
        (
            &invocation["status"],
            &invocation["failure"],
            &invocation["attempts"]
        ),
        (&json!("failed"), &json!("retries_exhausted"), &json!(1)),
        "{invocation}"
    );
    assert_eq!(object(&server, "thumbs", "notes.txt.png").await, None);
    assert_eq!(meta(&server, "notes.txt").await, None);

    // A PNG with the CLI, a JPEG (in a folder, with a space) with the AWS CLI.
    let landscape = dir.join("samples/landscape.png");
    let lighthouse = dir.join("samples/lighthouse.jpg");
    wisp(
        &server,
        &[
            "object",
            "put",
            "photos",
            "landscape.png",
            landscape.to_str().unwrap(),
        ],
    );
    aws_cp(&server, &lighthouse, "trips/old lighthouse.jpg");
    let landscape_png = check_thumbnail(&server, "landscape.png", "png", (320, 200)).await;
    let lighthouse_png = check_thumbnail(&server, "trips/old lighthouse.jpg", "jpeg", (240, 400)).await;

    // Each thumbnail was published to the topic, which its queue holds.
    let mut published: Vec<Value> = Vec::new();
    let started = Instant::now();
    while published.len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {published:?} on thumbnail-events"
        );
        published.extend(receive(&server, "thumbnail-events").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut keys: Vec<&str> = published.iter().map(|m| m["key"].as_str().unwrap()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["landscape.png", "trips/old lighthouse.jpg"],
        "{published:?}"
    );
    assert!(
        published.iter().all(|m| m["thumb_width"].as_u64() <= Some(128)),
        "{published:?}"
    );

    // The list is public; a thumbnail needs a key.
    let list: Value = anonymous_client()
        .get(server.at("/thumbs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = list["thumbnails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["landscape.png", "trips/old lighthouse.jpg"], "{list}");
    let r = anonymous_client()
        .get(server.at("/thumbs/landscape.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the key-auth route served without a key");
    let r = keyed_client("WKNOSUCHKEY.nope")
        .get(server.at("/thumbs/landscape.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the key-auth route served with a bad key");
    let r = keyed_client(TEST_ADMIN_KEY)
        .get(server.at("/thumbs/landscape.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().to_vec(), landscape_png);
    let path = format!("/thumbs/{}", encode("trips/old lighthouse.jpg"));
    let r = keyed_client(TEST_ADMIN_KEY)
        .get(server.at(&path))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), lighthouse_png);
    let r = keyed_client(TEST_ADMIN_KEY)
        .get(server.at("/thumbs/nothing.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Cleanup at its configured age (7d) keeps them; at age 0 it deletes them.
    let kept: Value = serde_json::from_str(&wisp(&server, &["invoke", "cleanup"])).unwrap();
    assert_eq!(
        kept,
        json!({ "max_age_seconds": 604_800, "deleted": [], "kept": 2 })
    );
    let out = wisp(
        &server,
        &["invoke", "cleanup", "--data", r#"{"max_age_seconds": 0}"#],
    );
    let swept: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        swept,
        json!({ "max_age_seconds": 0, "deleted": ["landscape.png", "trips/old lighthouse.jpg"], "kept": 0 })
    );
    for key in ["landscape.png", "trips/old lighthouse.jpg"] {
        assert_eq!(
            object(&server, "thumbs", &format!("{key}.png")).await,
            None,
            "{key}"
        );
        assert_eq!(meta(&server, key).await, None, "{key}");
        assert!(
            object(&server, "photos", key).await.is_some(),
            "cleanup deleted the photo {key}"
        );
    }
    let list = get_json(&server, "/thumbs").await;
    assert_eq!(list, json!({ "thumbnails": [] }));
    let r = keyed_client(TEST_ADMIN_KEY)
        .get(server.at("/thumbs/landscape.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

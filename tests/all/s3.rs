//! Object storage through the S3 listener, with real clients: the AWS CLI (copies,
//! listings, a 50 MB multipart upload and download, sync, presigned URLs), boto3
//! (every operation and the bad input each refuses, `tests/s3/clients.py`), an upload
//! event that runs a Python function writing with stock boto3 and stops at the chain
//! limit, and `kill -9` during concurrent uploads.

use crate::native::zip_dir;
use crate::tenancy::create_key;
use crate::util::{client, json_when, python_package, server};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use wisp_test_support::{TEST_ADMIN_KEY, TestServer, deploy, repo_root};

fn s3_url(server: &TestServer) -> String {
    server
        .s3_url
        .clone()
        .expect("wisp serve announces its S3 listener")
}

/// `python3 ARGS…` with boto3 (and the AWS CLI) importable.
fn python(args: &[&str]) -> Command {
    let boto3 = python_package("boto3==1.44.5");
    let mut command = Command::new("python3");
    command
        .args(args)
        .env("PYTHONPATH", boto3)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    command
}

/// `aws --endpoint-url S3 ARGS…` with the admin key as credentials.
fn aws(server: &TestServer, args: &[&str]) -> Output {
    let awscli = python_package("awscli==1.46.3");
    let (id, secret) = TEST_ADMIN_KEY.split_once('.').unwrap();
    Command::new("python3")
        .args(["-m", "awscli", "--endpoint-url", &s3_url(server)])
        .args(args)
        .env("PYTHONPATH", awscli)
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap()
}

fn aws_ok(server: &TestServer, args: &[&str]) -> String {
    let out = aws(server, args);
    assert!(
        out.status.success(),
        "aws {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `size` bytes that do not repeat in any short period (so a misplaced part shows).
fn noise(size: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[tokio::test]
async fn the_aws_cli_copies_lists_syncs_presigns_and_moves_50_mb_in_parts() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    aws_ok(&server, &["s3", "mb", "s3://photos"]);
    let big = dir.path().join("big.bin");
    std::fs::write(&big, noise(50 * 1024 * 1024)).unwrap();
    aws_ok(
        &server,
        &["s3", "cp", big.to_str().unwrap(), "s3://photos/big.bin"],
    );
    let down = dir.path().join("down.bin");
    aws_ok(
        &server,
        &["s3", "cp", "s3://photos/big.bin", down.to_str().unwrap()],
    );
    assert_eq!(
        sha256_of(&down),
        sha256_of(&big),
        "the 50 MB object came back whole"
    );
    // The CLI uploads it in 8 MiB parts: S3's multipart ETag says how many.
    let head: Value = serde_json::from_str(&aws_ok(
        &server,
        &["s3api", "head-object", "--bucket", "photos", "--key", "big.bin"],
    ))
    .unwrap();
    assert!(head["ETag"].as_str().unwrap().ends_with("-7\""), "{head}");
    assert_eq!(head["ContentLength"], 50 * 1024 * 1024);

    let tree = dir.path().join("tree");
    for (name, text) in [
        ("a.txt", "alpha"),
        ("sub/b.txt", "beta"),
        ("sub/c d.txt", "gamma"),
    ] {
        std::fs::create_dir_all(tree.join(name).parent().unwrap()).unwrap();
        std::fs::write(tree.join(name), text).unwrap();
    }
    aws_ok(
        &server,
        &["s3", "sync", tree.to_str().unwrap(), "s3://photos/tree/"],
    );
    let listed = aws_ok(&server, &["s3", "ls", "--recursive", "s3://photos/tree/"]);
    for key in ["tree/a.txt", "tree/sub/b.txt", "tree/sub/c d.txt"] {
        assert!(listed.contains(key), "{key} in {listed}");
    }
    let top = aws_ok(&server, &["s3", "ls", "s3://photos/"]);
    assert!(top.contains("PRE tree/") && top.contains("big.bin"), "{top}");
    // A second sync finds nothing to copy.
    let again = aws_ok(
        &server,
        &["s3", "sync", tree.to_str().unwrap(), "s3://photos/tree/"],
    );
    assert!(again.trim().is_empty(), "{again}");

    let url = aws_ok(
        &server,
        &["s3", "presign", "s3://photos/tree/a.txt", "--expires-in", "60"],
    );
    let fetched = Command::new("curl").args(["-sf", url.trim()]).output().unwrap();
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    assert_eq!(fetched.stdout, b"alpha");
    let tampered = url.trim().replace("tree/a.txt", "tree/sub/b.txt");
    let refused = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &tampered])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&refused.stdout),
        "403",
        "a presigned URL signs its key"
    );

    aws_ok(&server, &["s3", "rm", "s3://photos/big.bin"]);
    let out = aws(&server, &["s3", "rb", "s3://photos"]);
    assert!(!out.status.success(), "a bucket with objects is not removed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("BucketNotEmpty"));
    aws_ok(&server, &["s3", "rb", "--force", "s3://photos"]);
    assert!(!aws_ok(&server, &["s3", "ls"]).contains("photos"));
    // Nothing is left on disk but what objects still name (here: nothing).
    let blobs: usize = walk(&server.data_dir.join("objects/data")).len();
    assert_eq!(blobs, 0, "removed objects take their files with them");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test]
async fn boto3_runs_every_operation_and_gets_s3s_errors_for_bad_input() {
    let server = server();
    let invoke_key = create_key(&server, "default", "invoke", None).await;
    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({"name": "beta"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let other = create_key(&server, "beta", "deploy", None).await;
    let script = repo_root().join("tests/s3/clients.py");
    let out = python(&[
        script.to_str().unwrap(),
        &s3_url(&server),
        TEST_ADMIN_KEY,
        &invoke_key,
        &other,
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("OK"),
        "{}\n{}\nserver:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
}

/// Deploys `tests/native/s3-notify` (Python, with boto3 beside it) as `name`,
/// triggered by `storage` and granted `buckets`.
async fn deploy_notified(server: &TestServer, name: &str, storage: Value, buckets: Value) {
    let code = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_root().join("tests/native/s3-notify/app.py"),
        code.path().join("app.py"),
    )
    .unwrap();
    let config = json!({
        "kind": "event",
        "runtime": "python",
        "handler": "app.handler",
        "max_retries": 0,
        "env": {"PYTHONPATH": python_package("boto3==1.44.5").to_str().unwrap()},
        "storage": storage,
        "buckets": buckets,
    });
    let response = deploy(&client(), server, name, config, zip_dir(code.path())).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
}

async fn object_text(server: &TestServer, bucket: &str, key: &str) -> Option<String> {
    let out = aws(server, &["s3", "cp", &format!("s3://{bucket}/{key}"), "-"]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn an_upload_event_runs_a_function_that_writes_with_boto3_and_its_loop_is_cut() {
    let server = server();
    aws_ok(&server, &["s3", "mb", "s3://inbox"]);
    // The function is triggered by every object created in the bucket it writes to.
    deploy_notified(&server, "seer", json!("inbox"), json!(["inbox"])).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cat photo.jpg");
    std::fs::write(&file, b"not really a jpeg").unwrap();
    aws_ok(
        &server,
        &["s3", "cp", file.to_str().unwrap(), "s3://inbox/in/cat photo.jpg"],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        if let Some(text) = object_text(&server, "inbox", "in/cat photo.jpg.seen").await {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no derived object; server:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let seen: Value = serde_json::from_str(&seen).unwrap();
    assert_eq!(
        seen["key"], "in/cat photo.jpg",
        "the key arrives URL-encoded and decodes back"
    );
    assert_eq!(seen["size"], 17);
    assert_eq!(
        seen["etag"],
        hex::encode(md5_of(b"not really a jpeg")),
        "eTag unquoted"
    );
    assert_eq!(
        (seen["event"].as_str(), seen["source"].as_str()),
        (Some("ObjectCreated:Put"), Some("aws:s3"))
    );
    // Its own writes trigger it again, one hop deeper each time, until the chain limit
    // dead-letters the event: a loop that stops by itself.
    let dead = json_when(&server, "/v1/functions/seer/dlq", |v| {
        v["dead_letters"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await;
    let reason = dead["dead_letters"][0].to_string();
    assert!(reason.contains("chain") || reason.contains("loop"), "{dead}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let keys = aws_ok(&server, &["s3", "ls", "--recursive", "s3://inbox/"]);
    let count = keys.lines().count();
    assert!(
        (2..=18).contains(&count),
        "the chain stopped near its limit: {count} objects\n{keys}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = aws_ok(&server, &["s3", "ls", "--recursive", "s3://inbox/"]);
    assert_eq!(later.lines().count(), count, "and stays stopped");
}

fn md5_of(bytes: &[u8]) -> [u8; 16] {
    md5::Md5::digest(bytes).into()
}

#[tokio::test]
async fn kill_9_during_concurrent_uploads_leaves_no_torn_object_and_loses_no_acknowledged_one() {
    let mut server = server();
    aws_ok(&server, &["s3", "mb", "s3://crash"]);
    let script = repo_root().join("tests/s3/crash_uploads.py");
    let dir = tempfile::tempdir().unwrap();
    let acked = dir.path().join("acked.txt");
    let uploader = python(&[
        "-u",
        script.to_str().unwrap(),
        "upload",
        &s3_url(&server),
        TEST_ADMIN_KEY,
        "crash",
    ])
    .stdout(std::fs::File::create(&acked).unwrap())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // Kill it once uploads are flowing.
    let started = Instant::now();
    while std::fs::read_to_string(&acked)
        .unwrap_or_default()
        .lines()
        .count()
        < 40
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "uploads never got going"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.crash_and_restart();
    let uploaded = uploader.wait_with_output().unwrap();
    assert!(uploaded.status.success());
    let out = python(&[
        script.to_str().unwrap(),
        "verify",
        &s3_url(&server),
        TEST_ADMIN_KEY,
        "crash",
        acked.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The writes the kill cut short left no files: the start swept them.
    assert!(walk(&server.data_dir.join("objects/tmp")).is_empty());
    let objects = std::fs::read_to_string(&acked).unwrap().lines().count();
    let files = walk(&server.data_dir.join("objects/data")).len();
    assert!(
        files >= objects,
        "{files} blobs for {objects} acknowledged objects"
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    let listed: usize = listed
        .split("listed=")
        .nth(1)
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert_eq!(
        files, listed,
        "every blob on disk is an object's, and every object has one"
    );
}

#[tokio::test]
async fn deleting_a_namespace_with_force_takes_its_buckets_objects_and_files() {
    let server = server();
    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({"name": "team"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let in_team = |request: reqwest::RequestBuilder| request.header("wisp-namespace", "team");
    let r = in_team(client().put(server.at("/v1/buckets/scratch")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = in_team(client().put(server.at("/v1/buckets/scratch/objects/a/b.txt")))
        .body("kept until the namespace goes")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(walk(&server.data_dir.join("objects/data")).len(), 1);
    let r = client()
        .delete(server.at("/v1/namespaces/team"))
        .send()
        .await
        .unwrap();
    let problem = crate::util::expect_problem(r, 409, "namespace_not_empty").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("1 bucket(s)"),
        "{problem}"
    );
    let r = client()
        .delete(server.at("/v1/namespaces/team?force=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(
        walk(&server.data_dir.join("objects/data")).is_empty(),
        "its files went too"
    );
    // A namespace of the same name starts empty.
    client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({"name": "team"}))
        .send()
        .await
        .unwrap();
    let r = in_team(client().get(server.at("/v1/buckets")))
        .send()
        .await
        .unwrap();
    let buckets: Value = r.json().await.unwrap();
    assert_eq!(buckets["buckets"], json!([]));
}

#[tokio::test]
async fn bucket_and_namespace_quotas_refuse_what_does_not_fit_and_store_nothing() {
    let server = server();
    let put = |path: &str, body: &'static str| client().put(server.at(path)).body(body).send();
    let r = client()
        .put(server.at("/v1/buckets/small"))
        .json(&json!({"quota_bytes": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        put("/v1/buckets/small/objects/a", "123456")
            .await
            .unwrap()
            .status(),
        200
    );
    let r = put("/v1/buckets/small/objects/b", "123456").await.unwrap();
    let problem = crate::util::expect_problem(r, 403, "storage_quota_exceeded").await;
    assert!(problem["detail"].as_str().unwrap().contains("small"), "{problem}");
    // An overwrite counts only what it adds.
    assert_eq!(
        put("/v1/buckets/small/objects/a", "1234567890")
            .await
            .unwrap()
            .status(),
        200
    );
    // The namespace's own quota, set by an admin, holds across its buckets.
    let r = client()
        .patch(server.at("/v1/namespaces/default"))
        .json(&json!({"quota": {"storage_bytes": 16}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(
        client()
            .put(server.at("/v1/buckets/big"))
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let r = put("/v1/buckets/big/objects/c", "1234567").await.unwrap();
    crate::util::expect_problem(r, 403, "storage_quota_exceeded").await;
    assert_eq!(
        put("/v1/buckets/big/objects/c", "123456").await.unwrap().status(),
        200
    );
    // Nothing refused was kept: two objects, two files (the one the overwrite replaced
    // goes just after its answer).
    let deadline = Instant::now() + Duration::from_secs(10);
    while walk(&server.data_dir.join("objects/data")).len() != 2 {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            walk(&server.data_dir.join("objects/data"))
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = client()
        .get(server.at("/v1/buckets/big/objects/c"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "123456");
    // The CLI lifts it (back to the server's: none).
    let out = server
        .cli(crate::util::bin())
        .args(["ns", "set", "default", "--quota-storage", "none"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        put("/v1/buckets/big/objects/d", "1234567")
            .await
            .unwrap()
            .status(),
        200
    );
    let out = server
        .cli(crate::util::bin())
        .args(["ns", "set", "default", "--quota-storage", "lots"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--quota-storage"));
}

/// S3's own way to subscribe: a bucket notification configuration naming a function
/// (by name or by Lambda ARN) invokes it for matching events; one naming a function
/// the namespace lacks, or a topic, is refused; reading it back gives what was set.
#[tokio::test]
async fn a_bucket_notification_configuration_invokes_its_function() {
    let server = server();
    crate::util::deploy_fixture(&server, "kit", "event-kit", json!({"kind": "event"})).await;
    let script = r#"
import sys, boto3
from botocore.config import Config
from botocore.exceptions import ClientError
endpoint, token = sys.argv[1:3]
key_id, secret = token.split(".", 1)
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key_id,
                  aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))
s3.create_bucket(Bucket="inbox")
def config(arn, **extra):
    rule = {"Id": "to-kit", "LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}}}
    return {"LambdaFunctionConfigurations": [rule], **extra}
def refused(code, **kwargs):
    try:
        s3.put_bucket_notification_configuration(Bucket="inbox", **kwargs)
    except ClientError as e:
        assert e.response["Error"]["Code"] == code, e.response["Error"]
        return
    raise AssertionError(f"not refused: {kwargs}")
refused("InvalidArgument", NotificationConfiguration=config("ghost"))
refused("NotImplemented", NotificationConfiguration={"TopicConfigurations": [
    {"TopicArn": "arn:aws:sns:us-east-1:1:t", "Events": ["s3:ObjectCreated:*"]}]})
s3.put_bucket_notification_configuration(
    Bucket="inbox", NotificationConfiguration=config("arn:aws:lambda:us-east-1:123456789012:function:kit"))
got = s3.get_bucket_notification_configuration(Bucket="inbox")["LambdaFunctionConfigurations"]
assert len(got) == 1 and got[0]["Id"] == "to-kit" and got[0]["LambdaFunctionArn"].endswith(":function:kit"), got
assert got[0]["Filter"]["Key"]["FilterRules"] == [{"Name": "Prefix", "Value": "in/"}] or \
       got[0]["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "in/"}], got
s3.put_object(Bucket="inbox", Key="out/skipped.txt", Body=b"not under in/")
s3.put_object(Bucket="inbox", Key="in/taken.txt", Body=b"under in/")
print("OK")
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.py");
    std::fs::write(&path, script).unwrap();
    let out = python(&[path.to_str().unwrap(), &s3_url(&server), TEST_ADMIN_KEY])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The matching upload runs the function once, with its key; the other, not at all.
    let invocations = json_when(&server, "/v1/functions/kit/invocations", |v| {
        v["invocations"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = crate::util::get_json(&server, "/v1/functions/kit/invocations").await;
    assert_eq!(again["invocations"].as_array().unwrap().len(), 1, "{invocations}");
    let id = again["invocations"][0]["id"].as_str().unwrap().to_string();
    let event = crate::util::get_json(&server, &format!("/v1/invocations/{id}")).await;
    let text = event.to_string();
    assert!(
        text.contains("in/taken.txt") && text.contains("to-kit"),
        "{event}"
    );
}

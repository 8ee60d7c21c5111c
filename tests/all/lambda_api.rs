//! The Lambda-compatible invoke (`POST /2015-03-31/functions/{name}/invocations`),
//! called as the AWS CLI calls it: its headers, its percent-encoded ARNs, its
//! `Qualifier` query.

use crate::util::{client, deploy_fixture, expect_problem, get_json, server};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wisp_test_support::{TEST_ADMIN_KEY, TestServer};

/// The path of Lambda's Invoke for `function` as botocore writes it: every
/// character but unreserved ones and '/' percent-encoded.
fn invoke_path(function: &str) -> String {
    let mut path = String::from("/2015-03-31/functions/");
    for b in function.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            path.push(b as char);
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    path.push_str("/invocations");
    path
}

/// A request with the headers the AWS CLI (botocore) sends for `lambda invoke`, but
/// its signature.
fn aws_cli(server: &TestServer, path_and_query: &str) -> reqwest::RequestBuilder {
    client()
        .post(server.at(path_and_query))
        .header(
            "user-agent",
            "aws-cli/1.45.11 md/Botocore#1.43.11 ua/2.1 os/linux lang/python#3.11.7 botocore/1.43.11",
        )
        // Signed by the test admin key as a bearer token (`client()`), not SigV4:
        // these tests are about Lambda's paths and headers; `sigv4.rs` signs for real.
        .header("amz-sdk-invocation-id", "516996a8-5457-4094-ac1e-df75a82b49ff")
        .header("amz-sdk-request", "attempt=1")
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

/// Asserts a Lambda-shaped error; returns its `Message`.
async fn expect_lambda_error(r: reqwest::Response, status: u16, kind: &str) -> String {
    assert_eq!(r.status(), status);
    assert_eq!(header(&r, "x-amzn-errortype"), Some(kind));
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    assert!(header(&r, "x-amzn-requestid").is_some_and(|id| id.len() == 36));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["Type"], "User", "{body}");
    body["Message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn request_response_runs_the_function_under_every_name_form() {
    let server = server();
    deploy_fixture(&server, "kit", "event-kit", json!({"kind": "event"})).await;
    let names = [
        invoke_path("kit"),
        invoke_path("kit:$LATEST"),
        invoke_path("arn:aws:lambda:us-east-1:123456789012:function:kit"),
        invoke_path("arn:aws:lambda:us-east-1:123456789012:function:kit:$LATEST"),
        invoke_path("123456789012:function:kit"),
        format!("{}?Qualifier=%24LATEST", invoke_path("kit")),
        format!(
            "{}?Qualifier=%24LATEST",
            invoke_path("arn:aws:lambda:eu-west-1:123456789012:function:kit")
        ),
    ];
    for path in names {
        let r = aws_cli(&server, &path)
            .body(r#"{"action":"hello","name":"Ada"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(&r, "x-amz-executed-version"), Some("1"));
        assert_eq!(header(&r, "x-amz-function-error"), None);
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        let id = header(&r, "x-amzn-requestid").unwrap().to_string();
        assert_eq!(header(&r, "x-wisp-invocation-id"), Some(id.as_str()));
        assert_eq!(r.text().await.unwrap(), r#"{"message":"Hello, Ada!"}"#, "{path}");
    }
    // The explicit type is the default.
    let r = aws_cli(&server, &invoke_path("kit"))
        .header("x-amz-invocation-type", "RequestResponse")
        .body(r#"{"action":"hello"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), r#"{"message":"Hello, world!"}"#);
}

#[tokio::test]
async fn an_answer_over_6_mib_is_the_functions_failure_not_a_stream() {
    let server = server();
    // http-kit called with no action describes the request as JSON, body included: a
    // 4 MiB payload of `"` comes back escaped, over 8 MiB.
    deploy_fixture(&server, "kit", "http-kit", json!({"kind": "http"})).await;
    let r = aws_cli(&server, &invoke_path("kit"))
        .body(vec![b'"'; 4 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-amz-function-error"), Some("Unhandled"));
    assert_eq!(header(&r, "x-amz-executed-version"), Some("1"));
    assert!(header(&r, "x-amzn-requestid").is_some_and(|id| id.len() == 36));
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["errorType"], "Function.ResponseSizeTooLarge", "{doc}");
    assert!(
        doc["errorMessage"].as_str().unwrap().contains("6291456 bytes"),
        "{doc}"
    );
    // A small answer is read whole and sent with its length.
    let r = aws_cli(&server, &invoke_path("kit"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-amz-function-error"), None);
    let length: usize = header(&r, "content-length").unwrap().parse().unwrap();
    let answer = r.bytes().await.unwrap();
    assert_eq!(answer.len(), length);
    let doc: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(doc["body"], "{}");
    assert_eq!(doc["headers"].get("x-amz-client-context"), None, "{doc}");

    // Lambda's `ClientContext` reaches an http function as `X-Amz-Client-Context`: base64
    // of the client's JSON object, made compact.
    let sent = "{\n  \"custom\": {\"tenant\": \"Ærø\"}\n}";
    let r = aws_cli(&server, &invoke_path("kit"))
        .header("x-amz-client-context", BASE64.encode(sent))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    let got = doc["headers"]["x-amz-client-context"].as_str().unwrap();
    let got = String::from_utf8(BASE64.decode(got).unwrap()).unwrap();
    // One line of ASCII (a header's value is one), the same JSON object.
    assert!(got.is_ascii() && !got.contains('\n'), "{got}");
    assert_eq!(
        serde_json::from_str::<Value>(&got).unwrap(),
        json!({"custom": {"tenant": "Ærø"}})
    );
}

#[tokio::test]
async fn a_failing_function_answers_200_with_lambdas_error_document() {
    let server = server();
    deploy_fixture(
        &server,
        "kit",
        "event-kit",
        json!({"kind": "event", "timeout": "300ms"}),
    )
    .await;
    for (event, error_type, message) in [
        (r#"{"action":"trap"}"#, "Runtime.ExitError", "trapped"),
        (r#"{"action":"exit","code":7}"#, "Runtime.ExitError", "status 7"),
        (r#"{"action":"loop"}"#, "Sandbox.Timedout", ""),
    ] {
        let r = aws_cli(&server, &invoke_path("kit"))
            .body(event)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{event}");
        assert_eq!(header(&r, "x-amz-function-error"), Some("Unhandled"));
        assert_eq!(header(&r, "x-amz-executed-version"), Some("1"));
        let id = header(&r, "x-amzn-requestid").unwrap().to_string();
        let doc: Value = r.json().await.unwrap();
        assert_eq!(doc["errorType"], error_type, "{doc}");
        assert!(doc["errorMessage"].as_str().unwrap().contains(message), "{doc}");
        // The request id is the invocation id: its records carry it.
        let started = Instant::now();
        loop {
            let records = get_json(&server, "/v1/functions/kit/invocations").await;
            let ids: Vec<&str> = records["invocations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap())
                .collect();
            if ids.contains(&id.as_str()) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{id} never recorded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn event_invocations_are_accepted_then_run() {
    let server = server();
    deploy_fixture(&server, "kit", "event-kit", json!({"kind": "event"})).await;
    let r = aws_cli(
        &server,
        &invoke_path("arn:aws:lambda:us-east-1:123456789012:function:kit"),
    )
    .header("x-amz-invocation-type", "Event")
    .body(r#"{"action":"hello","name":"Eve"}"#)
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let id = header(&r, "x-amzn-requestid").unwrap().to_string();
    assert_eq!(r.bytes().await.unwrap().len(), 0);
    let started = Instant::now();
    let event = loop {
        let event = get_json(&server, &format!("/v1/invocations/{id}")).await;
        if event["status"] == "succeeded" {
            break event;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{event}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(event["function"], "kit");
    assert_eq!(event["payload"], json!({"action": "hello", "name": "Eve"}));
    assert_eq!(event["result"], json!({"message": "Hello, Eve!"}));

    // An event is at most 1 MiB (a sync invoke takes 6 MiB).
    let big = format!(r#"{{"action":"echo","pad":"{}"}}"#, "x".repeat(1024 * 1024));
    let r = aws_cli(&server, &invoke_path("kit"))
        .header("x-amz-invocation-type", "Event")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let message = expect_lambda_error(r, 413, "RequestEntityTooLargeException").await;
    assert!(message.contains("1048576 bytes"), "{message}");
    let r = aws_cli(&server, &invoke_path("kit"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = aws_cli(&server, &invoke_path("kit"))
        .body(vec![b' '; 6 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    expect_lambda_error(r, 413, "RequestEntityTooLargeException").await;
}

#[tokio::test]
async fn dry_runs_unknown_functions_and_bad_requests_answer_in_lambdas_shape() {
    let server = server();
    deploy_fixture(&server, "kit", "event-kit", json!({"kind": "event"})).await;
    let r = aws_cli(&server, &invoke_path("kit"))
        .header("x-amz-invocation-type", "DryRun")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(header(&r, "x-amzn-requestid").is_some());

    for (name, arn) in [
        ("ghost", "arn:aws:lambda:local:000000000000:function:ghost"),
        (
            "arn:aws:lambda:eu-west-1:123456789012:function:ghost",
            "arn:aws:lambda:eu-west-1:123456789012:function:ghost",
        ),
    ] {
        for kind in ["RequestResponse", "Event", "DryRun"] {
            let r = aws_cli(&server, &invoke_path(name))
                .header("x-amz-invocation-type", kind)
                .body("{}")
                .send()
                .await
                .unwrap();
            let message = expect_lambda_error(r, 404, "ResourceNotFoundException").await;
            assert_eq!(message, format!("Function not found: {arn}"));
        }
    }

    let (invalid, content) = ("InvalidParameterValueException", "InvalidRequestContentException");
    let long_context = BASE64.encode(format!("{{\"custom\": \"{}\"}}", "x".repeat(2700)));
    for (name, value, kind, says) in [
        (
            "x-amz-invocation-type",
            "event",
            invalid,
            ["'event' at 'invocationType'", "[Event, RequestResponse, DryRun]"],
        ),
        (
            "x-amz-log-type",
            "tail",
            invalid,
            ["'tail' at 'logType'", "[Tail, None]"],
        ),
        (
            "x-amz-client-context",
            "not base64!",
            content,
            ["Client context", "not base64"],
        ),
        (
            "x-amz-client-context",
            &BASE64.encode("[1, 2]"),
            content,
            ["Client context", "not an object"],
        ),
        (
            "x-amz-client-context",
            &BASE64.encode("{\"custom\": "),
            content,
            ["Client context", "not decode to JSON"],
        ),
        (
            "x-amz-client-context",
            &long_context,
            content,
            ["Client context", "3620 bytes, over the limit of 3583"],
        ),
    ] {
        // Checked before the call runs or is queued, whichever kind it is.
        for kind_of_call in ["RequestResponse", "Event"] {
            let mut r = aws_cli(&server, &invoke_path("kit")).header(name, value);
            if name != "x-amz-invocation-type" {
                r = r.header("x-amz-invocation-type", kind_of_call);
            }
            let r = r.send().await.unwrap();
            let message = expect_lambda_error(r, 400, kind).await;
            for part in says {
                assert!(message.contains(part), "{name}: {message}");
            }
        }
    }

    // A qualifier naming no alias or kept version: the function is not found.
    for (path, arn) in [
        (
            invoke_path("kit:prod"),
            "arn:aws:lambda:local:000000000000:function:kit:prod",
        ),
        (
            format!("{}?Qualifier=3", invoke_path("kit")),
            "arn:aws:lambda:local:000000000000:function:kit:3",
        ),
    ] {
        let r = aws_cli(&server, &path).body("{}").send().await.unwrap();
        let message = expect_lambda_error(r, 404, "ResourceNotFoundException").await;
        assert_eq!(message, format!("Function not found: {arn}"));
    }

    for (path, needle) in [
        (invoke_path("kit:Prod_1"), "invalid qualifier `Prod_1`"),
        (
            format!("{}?Qualifier=0", invoke_path("kit")),
            "invalid qualifier `0`: invalid version `0`: versions are numbered from 1",
        ),
        (
            format!("{}?Qualifier=prod", invoke_path("kit:$LATEST")),
            "does not match the specified qualifier",
        ),
        (
            invoke_path("arn:aws:lambda:us-east-1:1:layer:kit"),
            "not a function name or ARN",
        ),
        (invoke_path("My_Function"), "invalid function name `My_Function`"),
    ] {
        let r = aws_cli(&server, &path).body("{}").send().await.unwrap();
        let message = expect_lambda_error(r, 400, "InvalidParameterValueException").await;
        assert!(message.contains(needle), "{path}: {message}");
    }

    // Other Lambda operations are reserved paths Wisp does not serve.
    for (method, path) in [
        (reqwest::Method::GET, "/2015-03-31/event-source-mappings/"),
        (reqwest::Method::GET, "/2015-03-31/functions/kit/invocations"),
        (
            reqwest::Method::POST,
            "/2015-03-31/functions/kit/invocations/extra",
        ),
    ] {
        let r = client().request(method, server.at(path)).send().await.unwrap();
        expect_problem(r, 404, "not_found").await;
    }
}

#[tokio::test]
async fn a_full_function_is_throttled_with_429() {
    let server = server();
    deploy_fixture(
        &server,
        "kit",
        "event-kit",
        json!({"kind": "event", "timeout": "10s", "max_concurrency": 1, "max_queue": 0}),
    )
    .await;
    let busy = tokio::spawn({
        let request = aws_cli(&server, &invoke_path("kit")).body(r#"{"action":"loop"}"#);
        async move { request.send().await }
    });
    // Once the one slot is taken, the next invoke is refused at once.
    let started = Instant::now();
    while get_json(&server, "/v1/functions/kit").await["instances"]["busy"] != 1 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the loop never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = aws_cli(&server, &invoke_path("kit"))
        .body(r#"{"action":"hello"}"#)
        .send()
        .await
        .unwrap();
    assert!(header(&r, "retry-after").is_some());
    let message = expect_lambda_error(r, 429, "TooManyRequestsException").await;
    assert!(!message.is_empty());
    busy.abort();
}

/// Runs a boto3 `script` (given the server's URL and the admin key as its arguments,
/// with boto3 from `boto3` on its path) and reads the JSON it prints.
async fn boto3_json(boto3: &std::path::Path, script: &str, server: &TestServer) -> Value {
    let output = tokio::process::Command::new("python3")
        .args(["-c", script, &server.at(""), TEST_ADMIN_KEY])
        .env("PYTHONPATH", boto3)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The same calls through boto3 (installed from PyPI on first use).
///
/// Issue 12: this test used to pass silently when boto3 was absent; a test of a real
/// client installs it.
#[tokio::test]
async fn boto3_invokes() {
    let boto3 = crate::util::python_package("boto3==1.44.5");
    let server = server();
    deploy_fixture(&server, "kit", "event-kit", json!({"kind": "event"})).await;
    let script = r#"
import base64, json, sys, boto3, botocore
key_id, secret = sys.argv[2].split(".", 1)
def client(key_id, secret):
    return boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1",
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        config=botocore.config.Config(retries={"max_attempts": 0}))
lam = client(key_id, secret)
out = {}
r = lam.invoke(FunctionName="kit", Payload=json.dumps({"action": "hello", "name": "Ada"}))
out["sync"] = [r["StatusCode"], r["ExecutedVersion"], json.loads(r["Payload"].read())]
r = lam.invoke(FunctionName="arn:aws:lambda:us-east-1:123456789012:function:kit", Qualifier="$LATEST",
               Payload=b'{"action":"trap"}')
out["failed"] = [r["StatusCode"], r.get("FunctionError"), json.loads(r["Payload"].read())["errorType"]]
def tail(r):
    return [r["StatusCode"], r.get("FunctionError"), base64.b64decode(r["LogResult"]).decode(),
            r["ResponseMetadata"]["RequestId"]]
r = lam.invoke(FunctionName="kit", LogType="Tail", Payload=b'{"action":"log"}')
out["tail"] = tail(r)
r = lam.invoke(FunctionName="kit", LogType="Tail", Payload=b'{"action":"trap"}')
out["failed_tail"] = tail(r)
r = lam.invoke(FunctionName="kit", LogType="None", Payload=b'{"action":"log"}')
out["no_tail"] = "LogResult" in r
r = lam.invoke(FunctionName="kit", InvocationType="Event", Payload=b'{"action":"hello"}')
out["event"] = [r["StatusCode"], len(r["ResponseMetadata"]["RequestId"])]
r = lam.invoke(FunctionName="kit", InvocationType="DryRun")
out["dry"] = r["StatusCode"]
try:
    lam.invoke(FunctionName="ghost", Payload=b"{}")
except lam.exceptions.ResourceNotFoundException as e:
    out["missing"] = e.response["Error"]["Message"]
def refusal(key_id, secret):
    try:
        client(key_id, secret).invoke(FunctionName="kit", Payload=b"{}")
    except botocore.exceptions.ClientError as e:
        return [e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]]
out["wrong_secret"] = refusal(key_id, "x" * 40)
out["unknown_key"] = refusal("WKAAAAAAAAAAAAAAAA", secret)
print(json.dumps(out))
"#;
    let out = boto3_json(&boto3, script, &server).await;
    assert_eq!(out["sync"], json!([200, "1", {"message": "Hello, Ada!"}]));
    assert_eq!(out["failed"], json!([200, "Unhandled", "Runtime.ExitError"]));
    // `LogType="Tail"`: the end of the run's log and its REPORT line, base64 in
    // `LogResult`, for a failed run too; not with `LogType="None"`.
    let (log, id) = (&out["tail"][2], out["tail"][3].as_str().unwrap());
    assert_eq!(out["tail"][0], 200);
    assert_eq!(
        log.as_str().unwrap().split_once("\tDuration: ").unwrap().0,
        format!("hello from stderr\nhello from stderr\nREPORT RequestId: {id}"),
        "{log}"
    );
    let failed = out["failed_tail"][2].as_str().unwrap();
    assert_eq!(out["failed_tail"][1], "Unhandled");
    assert!(failed.contains("trap"), "{failed}");
    assert!(
        failed.contains(&format!(
            "REPORT RequestId: {}\t",
            out["failed_tail"][3].as_str().unwrap()
        )),
        "{failed}"
    );
    assert_eq!(out["no_tail"], false);
    assert_eq!(out["event"], json!([202, 36]));
    assert_eq!(out["dry"], 204);
    assert_eq!(
        out["missing"],
        "Function not found: arn:aws:lambda:local:000000000000:function:ghost"
    );
    assert_eq!(out["wrong_secret"], json!([401, "InvalidSignatureException"]));
    assert_eq!(out["unknown_key"], json!([401, "UnrecognizedClientException"]));
}

/// `InvokeWithResponseStream` through boto3: an http function's answer arrives in
/// pieces as it makes them, an event function's whole; failures and the log's end come
/// in `InvokeComplete`; the call's own errors are Lambda's.
#[tokio::test]
async fn boto3_streams_answers_with_invoke_with_response_stream() {
    let boto3 = crate::util::python_package("boto3==1.44.5");
    let server = server();
    let http = |action: &str| json!({"kind": "http", "env": {"KIT_ACTION": action}});
    deploy_fixture(&server, "chunks", "http-kit", http("stream")).await;
    deploy_fixture(&server, "trapper", "http-kit", http("trap")).await;
    deploy_fixture(&server, "kit", "event-kit", json!({"kind": "event"})).await;
    let script = r#"
import base64, json, sys, time, boto3, botocore
key_id, secret = sys.argv[2].split(".", 1)
lam = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id=key_id, aws_secret_access_key=secret,
                   config=botocore.config.Config(retries={"max_attempts": 0}))
def events(**kwargs):
    started = time.monotonic()
    r = lam.invoke_with_response_stream(**kwargs)
    seen = []
    for event in r["EventStream"]:
        ms = round((time.monotonic() - started) * 1000)
        if "PayloadChunk" in event:
            seen.append(["chunk", event["PayloadChunk"]["Payload"].decode(), ms])
        else:
            complete = dict(event["InvokeComplete"])
            if "LogResult" in complete:
                complete["LogResult"] = base64.b64decode(complete["LogResult"]).decode()
            seen.append(["complete", complete, ms])
    return {"status": r["StatusCode"], "version": r["ExecutedVersion"],
            "id": r["ResponseMetadata"]["RequestId"], "events": seen}
out = {}
out["chunks"] = events(FunctionName="chunks", Payload=b"{}")
out["trap"] = events(FunctionName="trapper", Payload=b"{}", LogType="Tail")
out["event"] = events(FunctionName="kit:1", Payload=json.dumps({"action": "hello", "name": "Ada"}))
out["dry"] = lam.invoke_with_response_stream(FunctionName="kit", InvocationType="DryRun")["StatusCode"]
try:
    lam.invoke_with_response_stream(FunctionName="ghost", Payload=b"{}")
except lam.exceptions.ResourceNotFoundException as e:
    out["missing"] = e.response["Error"]["Message"]
print(json.dumps(out))
"#;
    let out = boto3_json(&boto3, script, &server).await;

    // http-kit's `stream`: three chunks 100 ms apart, each its own event, as it is made.
    let chunks = &out["chunks"];
    assert_eq!(chunks["status"], 200, "{chunks}");
    assert_eq!(chunks["version"], "1", "{chunks}");
    let events = chunks["events"].as_array().unwrap();
    let texts: Vec<&Value> = events.iter().map(|e| &e[1]).collect();
    assert_eq!(
        texts,
        [
            &json!("chunk 0\n"),
            &json!("chunk 1\n"),
            &json!("chunk 2\n"),
            &json!({})
        ],
        "{chunks}"
    );
    let at = |i: usize| events[i][2].as_u64().unwrap();
    assert!(
        at(2) >= at(0) + 150,
        "the chunks came as they were made: {chunks}"
    );

    // A function that fails before answering: a stream of its failure alone, with its log.
    let trap = &out["trap"];
    let events = trap["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{trap}");
    let complete = &events[0][1];
    assert_eq!(complete["ErrorCode"], "Runtime.ExitError", "{trap}");
    assert!(
        complete["ErrorDetails"].as_str().unwrap().contains("trap"),
        "{trap}"
    );
    let log = complete["LogResult"].as_str().unwrap();
    assert!(log.contains("http-kit: trap requested"), "{log}");
    assert!(
        log.contains(&format!("REPORT RequestId: {}\t", trap["id"].as_str().unwrap())),
        "{log}"
    );

    // An event function's answer is one chunk.
    let event = &out["event"];
    assert_eq!(event["version"], "1", "{event}");
    let events = event["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{event}");
    let answer: Value = serde_json::from_str(events[0][1].as_str().unwrap()).unwrap();
    assert_eq!(answer, json!({"message": "Hello, Ada!"}));
    assert_eq!(events[1][1], json!({}));

    assert_eq!(out["dry"], 204);
    assert_eq!(
        out["missing"],
        "Function not found: arn:aws:lambda:local:000000000000:function:ghost"
    );

    // `Event` is not a streaming invocation type.
    let r = aws_cli(
        &server,
        "/2021-11-15/functions/kit/response-streaming-invocations",
    )
    .header("x-amz-invocation-type", "Event")
    .send()
    .await
    .unwrap();
    let message = expect_lambda_error(r, 400, "InvalidParameterValueException").await;
    assert!(message.contains("[RequestResponse, DryRun]"), "{message}");
    // Nothing else is served under its prefix.
    let r = aws_cli(&server, "/2021-11-15/functions/kit")
        .send()
        .await
        .unwrap();
    expect_problem(r, 404, "not_found").await;
}

/// The AWS CLI invokes with a Wisp key as ordinary AWS credentials (SigV4), and a
/// wrong secret is refused.
#[tokio::test]
async fn aws_cli_invokes_with_a_wisp_key() {
    let awscli = crate::util::python_package("awscli==1.46.3");
    let server = server();
    deploy_fixture(&server, "kit", "event-kit", json!({"kind": "event"})).await;
    let (key_id, secret) = TEST_ADMIN_KEY.split_once('.').unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let aws = |secret: &str| {
        let mut command = std::process::Command::new("python3");
        command
            .args([
                "-m",
                "awscli",
                "lambda",
                "invoke",
                "--endpoint-url",
                &server.at(""),
            ])
            .args(["--function-name", "kit"])
            .args(["--payload", r#"{"action":"hello","name":"Ada"}"#])
            .arg(&out)
            .env("PYTHONPATH", &awscli)
            .env("AWS_ACCESS_KEY_ID", key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_DEFAULT_REGION", "eu-west-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_MAX_ATTEMPTS", "1");
        command.output().unwrap()
    };
    let good = aws(secret);
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    let answer: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(answer, json!({"message": "Hello, Ada!"}));
    let bad = aws(&"x".repeat(40));
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("InvalidSignatureException"), "{stderr}");
}

//! Lambda's management API (`/2015-03-31/functions…`), driven by the clients deploy
//! tools are built on: boto3 and the AWS CLI, signing with the test admin key.
//! Functions made this way are Wisp functions: `/v1` shows them.

use crate::native::{dir_with, zip_dir};
use crate::util::{client, get_json, server};
use serde_json::{Value, json};
use wisp_test_support::{TEST_ADMIN_KEY, TestServer};

/// Runs a boto3 script with the server's endpoint and the admin key as `sys.argv[1:3]`
/// and `sys.argv[3]` as `phase`; returns what it printed, as JSON.
async fn boto3(server: &TestServer, script: &str, phase: &str) -> Value {
    let boto3 = crate::util::python_package("boto3==1.44.5");
    let output = tokio::process::Command::new("python3")
        .args(["-c", script, &server.at(""), TEST_ADMIN_KEY, phase])
        .env("PYTHONPATH", &boto3)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{phase}: {stderr}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

const BOTO3: &str = r#"
import base64, hashlib, io, json, os, sys, zipfile, boto3, botocore
endpoint, key, phase = sys.argv[1:4]
key_id, secret = key.split(".", 1)
lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id=key_id, aws_secret_access_key=secret,
                   config=botocore.config.Config(retries={"max_attempts": 0}))

def zipped(extra):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "import os\ndef handler(event, context):\n"
                             "    return {\"v\": os.environ.get(\"V\"), \"event\": event%s}\n" % extra)
    return buf.getvalue()

def doc(r):
    r.pop("ResponseMetadata", None)
    return r

def invoke(**kw):
    r = lam.invoke(Payload=json.dumps({"n": 1}), **kw)
    return [r["ExecutedVersion"], json.loads(r["Payload"].read())]

def error(call, **kw):
    try:
        call(**kw)
    except botocore.exceptions.ClientError as e:
        return [e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"],
                e.response["Error"]["Message"]]
    return None

out = {}
if phase == "deploy":
    v1, v2 = zipped(""), zipped(", \"code\": 2")
    out["sha"] = [base64.b64encode(hashlib.sha256(v1).digest()).decode(), len(v1)]
    out["create"] = doc(lam.create_function(
        FunctionName="py", Runtime="python3.12", Role="arn:aws:iam::123456789012:role/ignored",
        Handler="app.handler", Code={"ZipFile": v1}, MemorySize=256, Timeout=5,
        Environment={"Variables": {"V": "1"}}, Description="ignored", Publish=True))
    out["invoke1"] = invoke(FunctionName="py")
    out["code"] = doc(lam.update_function_code(FunctionName="py", ZipFile=v2))
    out["invoke2"] = invoke(FunctionName="py")
    out["config"] = doc(lam.update_function_configuration(
        FunctionName="py", Environment={"Variables": {"V": "2"}}, MemorySize=512))
    out["invoke3"] = invoke(FunctionName="py")
    out["publish"] = doc(lam.publish_version(FunctionName="py"))
    out["versions"] = [[v["Version"], v["FunctionArn"], v["MemorySize"]]
                       for v in lam.list_versions_by_function(FunctionName="py")["Versions"]]
    out["create_alias"] = doc(lam.create_alias(
        FunctionName="py", Name="canary", FunctionVersion="2", Description="ignored",
        RoutingConfig={"AdditionalVersionWeights": {"3": 0.5}}))
    out["get_alias"] = doc(lam.get_alias(FunctionName="py", Name="canary"))
    out["aliases"] = [[a["Name"], a["FunctionVersion"]] for a in lam.list_aliases(FunctionName="py")["Aliases"]]
    out["canary_runs"] = sorted({invoke(FunctionName="py", Qualifier="canary")[0] for _ in range(10)})
    out["update_alias"] = doc(lam.update_alias(
        FunctionName="py", Name="canary", FunctionVersion="1", RoutingConfig={"AdditionalVersionWeights": {}}))
    out["canary"] = invoke(FunctionName="py", Qualifier="canary")
    out["version2"] = invoke(FunctionName="py", Qualifier="2")
    out["latest"] = invoke(FunctionName="arn:aws:lambda:us-east-1:123456789012:function:py", Qualifier="$LATEST")
    out["get"] = doc(lam.get_function(FunctionName="py"))
    out["get1"] = doc(lam.get_function(FunctionName="py", Qualifier="1"))
    out["get_canary"] = doc(lam.get_function_configuration(FunctionName="py:canary"))
    out["list"] = [[f["FunctionName"], f["Runtime"], f["Version"]] for f in lam.list_functions()["Functions"]]
    out["list_all"] = [[f["FunctionName"], f["Version"]]
                       for p in lam.get_paginator("list_functions").paginate(FunctionVersion="ALL",
                                                                             PaginationConfig={"PageSize": 2})
                       for f in p["Functions"]]
    # Bad input.
    create = dict(FunctionName="bad", Role="r", Handler="app.handler", Code={"ZipFile": v1})
    out["java"] = error(lam.create_function, **{**create, "Runtime": "java21"})
    out["no_handler"] = error(lam.create_function, **{**create, "Runtime": "python3.12", "Handler": ""})
    out["exists"] = error(lam.create_function, **{**create, "FunctionName": "py", "Runtime": "python3.12"})
    out["not_zip"] = error(lam.create_function, **{**create, "Runtime": "python3.12", "Code": {"ZipFile": b"not a zip"}})
    out["missing"] = error(lam.get_function, FunctionName="ghost")
    out["missing_version"] = error(lam.create_alias, FunctionName="py", Name="x", FunctionVersion="99")
    # Code past the 6 MiB an invoke may carry: the signed upload is read whole to check it.
    big = io.BytesIO()
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as z:
        z.writestr("app.py", "def handler(event, context):\n    return 'big'\n")
        z.writestr("blob.bin", os.urandom(7 * 1024 * 1024))
    lam.create_function(FunctionName="big", Runtime="python3.12", Role="r", Handler="app.handler",
                        Code={"ZipFile": big.getvalue()})
    out["big"] = invoke(FunctionName="big")
    lam.delete_function(FunctionName="big")
    out["alias_exists"] = error(lam.create_alias, FunctionName="py", Name="canary", FunctionVersion="1")
    out["over_one"] = error(lam.create_alias, FunctionName="py", Name="x", FunctionVersion="1",
                            RoutingConfig={"AdditionalVersionWeights": {"2": 1.5}})
    out["two_more"] = error(lam.create_alias, FunctionName="py", Name="x", FunctionVersion="1",
                            RoutingConfig={"AdditionalVersionWeights": {"2": 0.1, "3": 0.1}})
    out["stale"] = error(lam.update_function_configuration, FunctionName="py", MemorySize=128, RevisionId="1")
else:
    out["delete_alias"] = lam.delete_alias(FunctionName="py", Name="canary")["ResponseMetadata"]["HTTPStatusCode"]
    out["alias_gone"] = error(lam.get_alias, FunctionName="py", Name="canary")
    out["delete"] = lam.delete_function(FunctionName="py")["ResponseMetadata"]["HTTPStatusCode"]
    out["gone"] = error(lam.get_function, FunctionName="py")
print(json.dumps(out))
"#;

#[tokio::test]
async fn boto3_manages_functions_versions_and_aliases() {
    let server = server();
    let out = boto3(&server, BOTO3, "deploy").await;
    let arn = "arn:aws:lambda:local:000000000000:function:py";

    let created = &out["create"];
    assert_eq!(created["FunctionName"], "py");
    // Publish=True answers the version published.
    assert_eq!(created["FunctionArn"], format!("{arn}:1"));
    assert_eq!(created["Version"], "1");
    assert_eq!(created["Runtime"], "python3.12");
    assert_eq!(created["Handler"], "app.handler");
    assert_eq!(created["MemorySize"], 256);
    assert_eq!(created["Timeout"], 5);
    assert_eq!(created["Environment"], json!({"Variables": {"V": "1"}}));
    assert_eq!(created["CodeSha256"], out["sha"][0]);
    assert_eq!(created["CodeSize"], out["sha"][1]);
    assert_eq!(
        (
            &created["State"],
            &created["LastUpdateStatus"],
            &created["PackageType"]
        ),
        (&json!("Active"), &json!("Successful"), &json!("Zip"))
    );
    let modified = created["LastModified"].as_str().unwrap();
    assert!(
        modified.len() == 28 && modified.ends_with("+0000") && modified.as_bytes()[10] == b'T',
        "{modified}"
    );
    assert!(created["RevisionId"].as_str().is_some_and(|r| !r.is_empty()));

    assert_eq!(out["invoke1"], json!(["1", {"v": "1", "event": {"n": 1}}]));
    assert_eq!(out["big"], json!(["1", "big"]), "a 7 MiB zip through SigV4");
    assert_eq!(out["code"]["Version"], "$LATEST");
    assert_eq!(out["code"]["FunctionArn"], arn);
    assert_eq!(out["code"]["MemorySize"], 256);
    assert_eq!(
        out["invoke2"],
        json!(["2", {"v": "1", "event": {"n": 1}, "code": 2}])
    );
    assert_eq!(out["config"]["MemorySize"], 512);
    assert_eq!(out["config"]["Environment"], json!({"Variables": {"V": "2"}}));
    // The configuration changed, the code did not.
    assert_eq!(out["config"]["CodeSha256"], out["code"]["CodeSha256"]);
    assert_eq!(
        out["invoke3"],
        json!(["3", {"v": "2", "event": {"n": 1}, "code": 2}])
    );
    assert_eq!(out["publish"]["Version"], "3");
    assert_eq!(out["publish"]["FunctionArn"], format!("{arn}:3"));
    assert_eq!(
        out["versions"],
        json!([
            ["$LATEST", format!("{arn}:$LATEST"), 512],
            ["1", format!("{arn}:1"), 256],
            ["2", format!("{arn}:2"), 256],
            ["3", format!("{arn}:3"), 512],
        ])
    );

    let alias = &out["create_alias"];
    assert_eq!(alias["AliasArn"], format!("{arn}:canary"));
    assert_eq!(alias["Name"], "canary");
    assert_eq!(alias["FunctionVersion"], "2");
    assert_eq!(
        alias["RoutingConfig"],
        json!({"AdditionalVersionWeights": {"3": 0.5}})
    );
    assert_eq!(out["get_alias"], *alias);
    assert_eq!(out["aliases"], json!([["canary", "2"], ["live", "3"]]));
    assert_eq!(out["canary_runs"], json!(["2", "3"]));
    assert_eq!(out["update_alias"]["FunctionVersion"], "1");
    assert_eq!(out["update_alias"].get("RoutingConfig"), None);
    assert_eq!(out["canary"], json!(["1", {"v": "1", "event": {"n": 1}}]));
    assert_eq!(
        out["version2"],
        json!(["2", {"v": "1", "event": {"n": 1}, "code": 2}])
    );
    assert_eq!(out["latest"][0], "3");

    assert_eq!(out["get"]["Configuration"]["Version"], "$LATEST");
    assert_eq!(out["get"]["Configuration"]["MemorySize"], 512);
    assert_eq!(out["get1"]["Configuration"]["Version"], "1");
    assert_eq!(out["get1"]["Configuration"]["FunctionArn"], format!("{arn}:1"));
    assert_eq!(
        out["get1"]["Configuration"]["Environment"],
        json!({"Variables": {"V": "1"}})
    );
    assert_eq!(out["get_canary"]["Version"], "1");
    assert_eq!(out["get_canary"]["FunctionArn"], format!("{arn}:canary"));
    assert_eq!(out["list"], json!([["py", "python3.12", "$LATEST"]]));
    // Pages of two, followed by the paginator through NextMarker.
    assert_eq!(
        out["list_all"],
        json!([["py", "$LATEST"], ["py", "1"], ["py", "2"], ["py", "3"]])
    );

    let error = |key: &str, status: u16, kind: &str, needle: &str| {
        let e = &out[key];
        assert_eq!((&e[0], &e[1]), (&json!(status), &json!(kind)), "{key}: {e}");
        assert!(e[2].as_str().unwrap().contains(needle), "{key}: {e}");
    };
    error("java", 400, "InvalidParameterValueException", "java21");
    error(
        "no_handler",
        400,
        "InvalidParameterValueException",
        "Handler is required",
    );
    error(
        "exists",
        409,
        "ResourceConflictException",
        "Function already exist: py",
    );
    error("not_zip", 400, "InvalidParameterValueException", "not a zip");
    error(
        "missing",
        404,
        "ResourceNotFoundException",
        "Function not found: arn:aws:lambda:local:000000000000:function:ghost",
    );
    error(
        "missing_version",
        404,
        "ResourceNotFoundException",
        &format!("{arn}:99"),
    );
    error(
        "alias_exists",
        409,
        "ResourceConflictException",
        &format!("{arn}:canary"),
    );
    error("over_one", 400, "InvalidParameterValueException", "from 0 to 1");
    error(
        "two_more",
        400,
        "InvalidParameterValueException",
        "one additional version",
    );
    error("stale", 412, "PreconditionFailedException", "Revision Id");

    // The same function through /v1, with what the Lambda API did in the audit trail.
    let function = get_json(&server, "/v1/functions/py").await;
    assert_eq!(
        (&function["config"]["runtime"], &function["kind"]),
        (&json!("python"), &json!("event"))
    );
    assert_eq!(function["config"]["handler"], "app.handler");
    assert_eq!(function["config"]["timeout"], "5s");
    assert_eq!(function["latest_version"], 3);
    assert_eq!(function["aliases"]["canary"], json!({"version": 1}));
    let listed = get_json(&server, "/v1/functions").await;
    assert_eq!(listed["functions"][0]["name"], "py");
    let audit = get_json(&server, "/v1/audit").await.to_string();
    for action in ["function.deploy", "function.alias"] {
        assert!(audit.contains(action), "{action}: {audit}");
    }

    let out = boto3(&server, BOTO3, "delete").await;
    assert_eq!(out["delete_alias"], 204);
    error_in(&out["alias_gone"], 404, "ResourceNotFoundException");
    assert_eq!(out["delete"], 204);
    error_in(&out["gone"], 404, "ResourceNotFoundException");
    assert_eq!(get_json(&server, "/v1/functions").await["functions"], json!([]));
    let audit = get_json(&server, "/v1/audit").await.to_string();
    assert!(audit.contains("function.delete"), "{audit}");
}

fn error_in(e: &Value, status: u16, kind: &str) {
    assert_eq!((&e[0], &e[1]), (&json!(status), &json!(kind)), "{e}");
}

/// `python3 -m awscli lambda ARGS…` against `server`, signed with the admin key;
/// returns its JSON output.
fn aws(server: &TestServer, args: &[&str]) -> Value {
    let awscli = crate::util::python_package("awscli==1.46.3");
    let (key_id, secret) = TEST_ADMIN_KEY.split_once('.').unwrap();
    let output = std::process::Command::new("python3")
        .args(["-m", "awscli", "lambda"])
        .args(args)
        .args(["--endpoint-url", &server.at(""), "--output", "json"])
        .env("PYTHONPATH", &awscli)
        .env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "aws lambda {args:?}: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn the_aws_cli_creates_publishes_aliases_invokes_and_deletes() {
    let server = server();
    let source =
        b"import os\ndef handler(event, context):\n    return {\"v\": os.environ[\"V\"], \"event\": event}\n";
    let dir = dir_with(&[("app.py", source, false)]);
    let files = tempfile::tempdir().unwrap();
    let zip = files.path().join("code.zip");
    std::fs::write(&zip, zip_dir(dir.path())).unwrap();
    let zip_arg = format!("fileb://{}", zip.display());
    let out_file = files.path().join("out.json");

    let created = aws(
        &server,
        &[
            "create-function",
            "--function-name",
            "cli",
            "--runtime",
            "python3.11",
            "--role",
            "arn:aws:iam::123456789012:role/ignored",
            "--handler",
            "app.handler",
            "--zip-file",
            &zip_arg,
            "--environment",
            "Variables={V=cli}",
        ],
    );
    assert_eq!(created["Version"], "$LATEST");
    // Lambda's default timeout, where Wisp's own is 30 s.
    assert_eq!(
        (&created["Timeout"], &created["MemorySize"]),
        (&json!(3), &json!(128))
    );
    let published = aws(&server, &["publish-version", "--function-name", "cli"]);
    assert_eq!(published["Version"], "1");
    let alias = aws(
        &server,
        &[
            "create-alias",
            "--function-name",
            "cli",
            "--name",
            "prod",
            "--function-version",
            "1",
        ],
    );
    assert_eq!(
        alias["AliasArn"],
        "arn:aws:lambda:local:000000000000:function:cli:prod"
    );
    let invoked = aws(
        &server,
        &[
            "invoke",
            "--function-name",
            "cli",
            "--qualifier",
            "prod",
            "--payload",
            r#"{"n":2}"#,
            out_file.to_str().unwrap(),
        ],
    );
    assert_eq!(invoked["ExecutedVersion"], "1");
    let answer: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(answer, json!({"v": "cli", "event": {"n": 2}}));
    let listed = aws(&server, &["list-functions"]);
    assert_eq!(listed["Functions"][0]["FunctionName"], "cli");
    // The CLI prints the status of an answer without a body.
    let deleted = aws(&server, &["delete-function", "--function-name", "cli"]);
    assert_eq!(deleted, json!({"StatusCode": 204}));
    assert_eq!(get_json(&server, "/v1/functions").await["functions"], json!([]));
}

/// What each role may do under Lambda's prefix: `read` lists and gets, `invoke`
/// invokes, only `deploy` changes; and `ListFunctions` answers with or without the
/// trailing slash the SDKs send.
#[tokio::test]
async fn reads_invokes_and_changes_need_their_roles() {
    let server = server();
    let key = |role: &'static str| {
        let server = &server;
        async move {
            let r = client()
                .post(server.at("/v1/keys"))
                .json(&json!({ "role": role }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let key: Value = r.json().await.unwrap();
            key["token"].as_str().unwrap().to_string()
        }
    };
    let (read, invoke, deploy) = (key("read").await, key("invoke").await, key("deploy").await);
    let source = b"def handler(event, context):\n    return event\n";
    let zip = zip_dir(dir_with(&[("app.py", source, false)]).path());
    let create = json!({
        "FunctionName": "echo", "Runtime": "python3.12", "Handler": "app.handler",
        "Role": "r", "Code": {"ZipFile": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, zip)},
    });
    let send = |key: &str, method: reqwest::Method, path: &str, body: Option<&Value>| {
        let mut request = reqwest::Client::new()
            .request(method, server.at(path))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send()
    };
    for key in [&read, &invoke] {
        let r = send(key, reqwest::Method::POST, "/2015-03-31/functions", Some(&create))
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()["x-amzn-errortype"], "AccessDeniedException");
    }
    let r = send(
        &deploy,
        reqwest::Method::POST,
        "/2015-03-31/functions",
        Some(&create),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    for path in ["/2015-03-31/functions", "/2015-03-31/functions/"] {
        let r = send(&read, reqwest::Method::GET, path, None).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let list: Value = r.json().await.unwrap();
        assert_eq!(list["Functions"][0]["FunctionName"], "echo", "{path}");
    }
    let invoke_path = "/2015-03-31/functions/echo/invocations";
    let event = json!({"hi": 1});
    let r = send(&read, reqwest::Method::POST, invoke_path, Some(&event))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = send(&invoke, reqwest::Method::POST, invoke_path, Some(&event))
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), event);
    for key in [&read, &invoke] {
        let r = send(key, reqwest::Method::DELETE, "/2015-03-31/functions/echo", None)
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
    let r = send(
        &deploy,
        reqwest::Method::DELETE,
        "/2015-03-31/functions/echo",
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
}

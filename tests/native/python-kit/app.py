"""A Python function for Wisp's process-runtime tests: the event's `action` picks
what it does, and each action crosses one limit of the sandbox or shows one thing
the function can see."""

import errno
import json
import os
import subprocess
import sys
import time


def handler(event, context):
    action = event.get("action", "echo")
    return ACTIONS[action](event, context)


def echo(event, context):
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "log_stream": context.log_stream_name,
        "pid": os.getpid(),
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "client_context": client_context(context),
    }


def client_context(context):
    """Lambda's ClientContext as the handler's `context` carries it, or None."""
    cc = context.client_context
    if cc is None:
        return None
    return {"client": vars(cc.client), "custom": cc.custom, "env": cc.env}


def env(event, context):
    return dict(os.environ)


def whoami(event, context):
    return {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "cwd": os.getcwd()}


def fail(event, context):
    raise ValueError("bad order %s" % event.get("order"))


def exit_now(event, context):
    sys.stdout.flush()
    os._exit(event.get("code", 3))


def sleep(event, context):
    time.sleep(event.get("ms", 100) / 1000)
    return {"slept_ms": event.get("ms", 100)}


def log(event, context):
    print("to stdout: %s" % event.get("text", "hello"))
    print("to stderr: %s" % event.get("text", "hello"), file=sys.stderr)
    return {"logged": True}


def log_flood(event, context):
    line = "x" * 1023
    for _ in range(event.get("kib", 1024)):
        print(line)
    return {"flooded": True}


def orphans(event, context):
    """Starts children that outlive the handler: one in the process group, one in a
    session of its own; then overstays the timeout. Their command line carries the
    event's marker so the test can look for them on the host."""
    marker = event["marker"]
    subprocess.Popen(["sleep", marker])
    subprocess.Popen(["sleep", marker], start_new_session=True)
    time.sleep(60)


def memory(event, context):
    chunks = []
    for _ in range(event.get("mb", 1024)):
        chunks.append(bytearray(1024 * 1024))
        chunks[-1][::4096] = b"x" * len(chunks[-1][::4096])
    return {"allocated_mb": len(chunks)}


def fork_bomb(event, context):
    """Forks sleeping children until the kernel refuses; they stay behind."""
    marker = event["marker"]
    forks = 0
    error = None
    while forks < 100000:
        try:
            subprocess.Popen(["sleep", marker])
            forks += 1
        except OSError as e:
            error = errno.errorcode.get(e.errno, str(e.errno))
            break
    return {"forks": forks, "error": error}


def open_files(event, context):
    handles = []
    try:
        while True:
            handles.append(open("/dev/null"))
    except OSError as e:
        highest = max(h.fileno() for h in handles)
        result = {"opened": len(handles), "highest_fd": highest, "error": errno.errorcode.get(e.errno)}
    for h in handles:
        h.close()
    return result


def tmp_write(event, context):
    tmp = os.environ["TMPDIR"]
    with open(os.path.join(tmp, event.get("name", "mark")), "w") as f:
        f.write("written by %s" % context.aws_request_id)
    return {"tmpdir": tmp, "files": sorted(os.listdir(tmp))}


def tmp_list(event, context):
    tmp = os.environ["TMPDIR"]
    return {"tmpdir": tmp, "files": sorted(os.listdir(tmp))}


def write_code(event, context):
    try:
        with open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "planted"), "w") as f:
            f.write("x")
        return {"written": True}
    except OSError as e:
        return {"written": False, "error": errno.errorcode.get(e.errno)}


def big(event, context):
    return "x" * (event.get("mb", 7) * 1024 * 1024)


def steal(event, context):
    """Asks another instance's Runtime API for its next event."""
    import http.client
    try:
        conn = http.client.HTTPConnection(event["api"], timeout=2)
        conn.request("GET", "/2018-06-01/runtime/invocation/next")
        response = conn.getresponse()
        return {"outcome": "answered", "status": response.status}
    except (OSError, http.client.HTTPException) as e:
        return {"outcome": "refused", "error": type(e).__name__}


def connect_to_test(port, timeout=None):
    """A TCP connection to the test's own server on the host's loopback port `port`.
    In a network of its own (Wisp as root) the instance reaches the host only through
    the proxy it is given, by an HTTP CONNECT tunnel (the function is granted
    http://127.0.0.1:PORT); otherwise directly."""
    import socket
    import urllib.parse

    proxy = os.environ.get("HTTPS_PROXY")
    if not proxy:
        return socket.create_connection(("127.0.0.1", port), timeout=timeout)
    where = urllib.parse.urlsplit(proxy)
    tunnel = socket.create_connection((where.hostname, where.port), timeout=timeout)
    tunnel.sendall(("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, port)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = tunnel.recv(1)
        if not chunk:
            raise ConnectionError("the proxy closed the tunnel")
        head += chunk
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError("the proxy refused the tunnel: %r" % head)
    return tunnel


def concurrent(event, context):
    """Tells the test's counter when it starts and when it ends, waiting for the
    counter's answer each time, so the counter's count is exactly the invocations
    running at once, however late it reads."""
    with connect_to_test(event["port"]) as counter:
        replies = counter.makefile("r")
        counter.sendall(b"in\n")
        replies.readline()
        time.sleep(event.get("ms", 20) / 1000)
        counter.sendall(b"out\n")
        replies.readline()
    return {"ran": True}


def record(event, context):
    """Reports its invocation id and the event's `seq` to the test's recorder, and
    waits for the recorder's answer: once it returns, the report has arrived, so a run
    that completes is never missing from the recorder's count."""
    with connect_to_test(event["port"], timeout=10) as recorder:
        replies = recorder.makefile("r")
        recorder.sendall(("%s %s\n" % (context.aws_request_id, event.get("seq", "-"))).encode())
        if replies.readline().strip() != "ok":
            raise ConnectionError("the recorder did not answer")
    return {"recorded": context.aws_request_id}


ACTIONS = {
    "record": record,
    "concurrent": concurrent,
    "steal": steal,
    "big": big,
    "echo": echo,
    "env": env,
    "whoami": whoami,
    "fail": fail,
    "exit": exit_now,
    "sleep": sleep,
    "log": log,
    "log_flood": log_flood,
    "orphans": orphans,
    "memory": memory,
    "fork_bomb": fork_bomb,
    "open_files": open_files,
    "tmp_write": tmp_write,
    "tmp_list": tmp_list,
    "write_code": write_code,
    "reach": lambda event, context: reach(event, context),
    "fetch": lambda event, context: fetch(event, context),
    "s3": lambda event, context: s3(event, context),
    "kv": lambda event, context: kv(event, context),
    "service": lambda event, context: service(event, context),
    "invoke": lambda event, context: invoke(event, context),
}


def sqs_batch(event, context):
    """A queue trigger's handler (Lambda's ReportBatchItemFailures): every record
    whose body contains `fail` is reported failed, the rest succeed. Prints each
    body, so the test can count deliveries in the function's log."""
    failures = []
    for record in event["Records"]:
        print("got %s" % record["body"])
        if "fail" in record["body"]:
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def reach(event, context):
    """Tries a TCP connection to each `targets` entry (host:port); says what happened."""
    import socket
    outcome = {}
    for target in event["targets"]:
        host, port = target.rsplit(":", 1)
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
                outcome[target] = "connected"
        except OSError as e:
            outcome[target] = type(e).__name__
    return outcome


def fetch(event, context):
    """GETs `url` with urllib, which follows the HTTP(S)_PROXY the instance is given,
    sending `headers`; answers the status and body, or the error."""
    import urllib.error
    import urllib.request
    request = urllib.request.Request(event["url"], headers=event.get("headers", {}),
                                     method=event.get("method", "GET"),
                                     data=event.get("body", "").encode() or None)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return {"status": response.status, "body": response.read().decode(errors="replace")}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode(errors="replace")}
    except (OSError, urllib.error.URLError) as e:
        return {"error": "%s: %s" % (type(e).__name__, e)}


def s3(event, context):
    """One S3 call with stock boto3 (credentials and endpoint from the environment):
    `op` is get, put or list; answers what came back, or the error's code."""
    import boto3
    import botocore.exceptions
    client = boto3.client("s3")
    try:
        if event["op"] == "get":
            body = client.get_object(Bucket=event["bucket"], Key=event["key"])["Body"].read()
            return {"ok": body.decode()}
        if event["op"] == "put":
            client.put_object(Bucket=event["bucket"], Key=event["key"], Body=event["body"].encode())
            return {"ok": True}
        if event["op"] == "list":
            listed = client.list_objects_v2(Bucket=event["bucket"])
            return {"ok": [o["Key"] for o in listed.get("Contents", [])]}
        if event["op"] == "buckets":
            return {"ok": [b["Name"] for b in client.list_buckets()["Buckets"]]}
    except botocore.exceptions.ClientError as e:
        return {"error": e.response["Error"]["Code"]}
    raise ValueError("unknown op %s" % event["op"])


def invoke(event, context):
    """Calls function `function` with stock boto3's Lambda client (credentials and
    endpoint from the environment, AWS_ENDPOINT_URL_LAMBDA), with `payload` (JSON) and
    `type` (RequestResponse by default). Answers the status, the function error, the
    payload as text and how long the call took; or the error's code."""
    import boto3
    import botocore.config
    import botocore.exceptions
    client = boto3.client("lambda", region_name="us-east-1",
                          config=botocore.config.Config(retries={"max_attempts": 1},
                                                        read_timeout=30))
    started = time.monotonic()
    try:
        answer = client.invoke(FunctionName=event["function"],
                               InvocationType=event.get("type", "RequestResponse"),
                               Payload=json.dumps(event.get("payload", {})).encode())
    except botocore.exceptions.ClientError as e:
        return {"error": e.response["Error"]["Code"],
                "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                "elapsed_ms": (time.monotonic() - started) * 1000}
    return {"status": answer["StatusCode"],
            "function_error": answer.get("FunctionError"),
            "payload": answer["Payload"].read().decode(errors="replace"),
            "elapsed_ms": (time.monotonic() - started) * 1000}


def kv(event, context):
    """One call to Wisp's key-value API, where the instance is told it is (WISP_KV_URL),
    with the credential it is given (WISP_TOKEN): `path` under /v1/kv, `method`,
    `headers`, `body`. Answers the status, the ETag and the body."""
    return call_service(os.environ["WISP_KV_URL"] + event["path"], event)


def service(event, context):
    """Like `kv`, for any path of the services endpoint (AWS_ENDPOINT_URL_S3)."""
    return call_service(os.environ["AWS_ENDPOINT_URL_S3"] + event["path"], event)


def call_service(url, event):
    import urllib.error
    import urllib.request
    headers = {"Authorization": "Bearer " + os.environ["WISP_TOKEN"]}
    headers.update(event.get("headers", {}))
    body = event.get("body")
    request = urllib.request.Request(url, headers=headers,
                                     method=event.get("method", "GET"),
                                     data=None if body is None else body.encode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return {"status": response.status, "etag": response.headers.get("ETag"),
                    "body": response.read().decode(errors="replace")}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "etag": e.headers.get("ETag"), "body": e.read().decode(errors="replace")}


def ack(event, context):
    """Answers a small constant whatever the event (a destination's records nest
    their request, so echoing them back would double them at every hop)."""
    return {"ok": True}

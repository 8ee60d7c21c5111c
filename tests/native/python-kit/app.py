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
    }


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


def concurrent(event, context):
    """Tells the test's counter when it starts and when it ends, waiting for the
    counter's answer each time, so the counter's count is exactly the invocations
    running at once, however late it reads."""
    import socket

    with socket.create_connection(("127.0.0.1", event["port"])) as counter:
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
    import socket

    with socket.create_connection(("127.0.0.1", event["port"]), timeout=10) as recorder:
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


def ack(event, context):
    """Answers a small constant whatever the event (a destination's records nest
    their request, so echoing them back would double them at every hop)."""
    return {"ok": True}

"""Wisp's bootstrap for `runtime = "python"` functions.

Wisp starts it as `python3 -u python.py` with the function's code directory as
the working directory. It speaks AWS Lambda's Runtime API (2018-06-01) at
$AWS_LAMBDA_RUNTIME_API: it imports the handler named by $_HANDLER once, then
loops: fetch the next event, call `handler(event, context)`, post the result or
the error. Standard library only; behaviour follows AWS's Python runtime
(awslambdaric) wherever that defines it. See README.md beside this file.
"""

import decimal
import importlib
import json
import logging
import os
import signal
import socket
import sys
import time
import traceback
from types import SimpleNamespace

API_PREFIX = "/2018-06-01/runtime"
BOOTSTRAP_FILE = os.path.abspath(__file__)
IMPORTLIB_DIR = os.path.dirname(importlib.__file__)
request_id = ""  # the invocation in flight, for log lines


class Fault(Exception):
    """An error the runtime itself reports, with a `Runtime.*` type."""

    def __init__(self, error_type, message, trace=None):
        super().__init__(message)
        self.error_type, self.message, self.trace = error_type, message, trace or []


def fatal(message):
    """Wisp is gone or broke the protocol: one line on stderr, status 1."""
    sys.stderr.write("wisp python runtime: %s\n" % message)
    sys.stderr.flush()
    os._exit(1)


class Headers(dict):
    """Response headers by lower-case name, looked up in any case."""

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)


class RuntimeAPI:
    """One keep-alive HTTP/1.1 connection to the Runtime API, without timeouts:
    `next` is a long poll that may block for as long as there is no work.

    A small client over a socket rather than `http.client`, which imports the
    `email` and `ssl` packages: ~45 ms of every cold start."""

    def __init__(self, address):
        self.address = address
        host, _, port = address.rpartition(":")
        self.endpoint = (host.strip("[]"), int(port))
        self.sock = None
        self.buffer = b""

    def connect(self):
        self.sock = socket.create_connection(self.endpoint)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = None

    def request(self, method, path, body=None, headers=None):
        # One retry on a fresh connection covers a kept-alive socket the
        # server closed while we were idle; a second failure means Wisp is gone.
        for attempt in (1, 2):
            try:
                if self.sock is None:
                    self.connect()
                self.send(method, API_PREFIX + path, body, headers or {})
                return self.receive()
            except (OSError, ValueError) as e:
                self.close()
                if attempt == 2:
                    fatal("cannot reach the Runtime API at %s: %s" % (self.address, e))

    def send(self, method, path, body, headers):
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % self.address]
        lines.extend("%s: %s" % item for item in headers.items())
        if body is not None:
            lines.append("Content-Length: %d" % len(body))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.sock.sendall(head + body if body else head)

    def read_until(self, marker):
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ValueError("connection closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(marker, 1)
        return line

    def read_exactly(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise ValueError("connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def receive(self):
        """Reads one response: (status, headers with lower-case names, body)."""
        head = self.read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = Headers()
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = self.read_exactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.read_until(b"\r\n").split(b";")[0], 16)
                chunk = self.read_exactly(size + 2)[:size]
                if size == 0:
                    break
                body += chunk
        else:
            body = b""
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def next(self):
        status, headers, body = self.request("GET", "/invocation/next")
        if status != 200:
            fatal("GET /invocation/next answered HTTP %d: %r" % (status, body[:200]))
        return headers, body

    def post(self, path, body, error_type=None):
        headers = {"Content-Type": "application/json"}
        if error_type:
            headers["Lambda-Runtime-Function-Error-Type"] = error_type
        status, _, answer = self.request("POST", path, body, headers)
        if not 200 <= status < 300:
            # Wisp has already decided how this invocation ends (e.g. 413 for
            # a response too large); say so in the logs and carry on.
            sys.stderr.write("wisp python runtime: POST %s answered HTTP %d: %s\n"
                             % (path, status, answer[:200].decode("utf-8", "replace")))


def load_handler(spec):
    """Imports `module.function` ("src/app.handler" for src/app.py) as AWS does."""
    try:
        module_name, function_name = spec.rsplit(".", 1)
    except ValueError as e:
        raise Fault("Runtime.MalformedHandlerName", "Bad handler '%s': %s" % (spec, e))
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise Fault("Runtime.BuiltInModuleConflict",
                    "Cannot use built-in module %s as a handler module" % module_name)
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as e:
        raise Fault("Runtime.ImportModuleError",
                    "Unable to import module '%s': %s" % (module_name, e))
    except SyntaxError as e:
        raise Fault("Runtime.UserCodeSyntaxError",
                    "Syntax error in module '%s': %s" % (module_name, e),
                    ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)])
    handler = getattr(module, function_name, None)
    if handler is None:
        raise Fault("Runtime.HandlerNotFound",
                    "Handler '%s' missing on module '%s'" % (function_name, module_name))
    if not callable(handler):
        raise Fault("Runtime.HandlerNotFound",
                    "Handler '%s' on module '%s' is not callable" % (function_name, module_name))
    return handler


def error_result(exc):
    """The Runtime API error body for an exception: the user's frames only."""
    if isinstance(exc, Fault):
        return {"errorMessage": exc.message, "errorType": exc.error_type, "stackTrace": exc.trace}
    frames = traceback.extract_tb(exc.__traceback__)
    while frames and (frames[0].filename == BOOTSTRAP_FILE
                      or frames[0].filename.startswith("<frozen importlib")
                      or os.path.dirname(frames[0].filename) == IMPORTLIB_DIR):
        frames = frames[1:]
    return {"errorMessage": str(exc), "errorType": type(exc).__name__,
            "stackTrace": traceback.format_list(frames)}


def log_error(result):
    """Writes an error to stderr the way AWS's runtime logs it."""
    lines = ["[ERROR] %s: %s" % (result["errorType"], result["errorMessage"])]
    if result["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        lines.extend(line for entry in result["stackTrace"] for line in entry.splitlines())
    sys.stderr.write("\n".join(lines) + "\n")


def to_json(value):
    """JSON bytes for a result; Decimal as a number, NaN and Infinity refused."""
    def default(obj):
        if isinstance(obj, decimal.Decimal):
            return int(obj) if obj == obj.to_integral_value() else float(obj)
        raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)
    try:
        return json.dumps(value, default=default, ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, OverflowError, RecursionError) as e:
        raise Fault("Runtime.MarshalError", "Unable to marshal response: %s" % e)


class Context:
    """The `context` argument, with the attributes of AWS's LambdaContext."""

    def __init__(self, headers):
        env = os.environ.get
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self.function_name = env("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = env("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = int(env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 0)
        self.log_group_name = env("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env("AWS_LAMBDA_LOG_STREAM_NAME")
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        identity = json_header(headers, "Lambda-Runtime-Cognito-Identity") or {}
        self.identity = SimpleNamespace(
            cognito_identity_id=identity.get("cognitoIdentityId"),
            cognito_identity_pool_id=identity.get("cognitoIdentityPoolId"))
        client_context = json_header(headers, "Lambda-Runtime-Client-Context")
        self.client_context = None
        if client_context is not None:
            self.client_context = SimpleNamespace(
                client=SimpleNamespace(**(client_context.get("client") or {})),
                custom=client_context.get("custom"), env=client_context.get("env"))

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)


def json_header(headers, name):
    text = headers.get(name)
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise Fault("Runtime.LambdaContextUnmarshalError", "Unable to parse %s JSON: %s" % (name, e))


def handle(api, handler, headers, body):
    """Runs one invocation and posts its outcome."""
    invocation = "/invocation/%s" % headers.get("Lambda-Runtime-Aws-Request-Id", "")
    try:
        try:
            event = json.loads(body)
        except ValueError as e:
            raise Fault("Runtime.UnmarshalError", "Unable to unmarshal input: %s" % e)
        result = to_json(handler(event, Context(headers)))
    except Exception as e:  # SystemExit and KeyboardInterrupt end the process
        failure = error_result(e)
        log_error(failure)
        api.post(invocation + "/error", to_json(failure), failure["errorType"])
        return
    api.post(invocation + "/response", result)


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = request_id
        return True


def setup_logging():
    """A root handler on stderr in AWS's format, so `logging` works as there."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    logging.getLogger().addHandler(handler)


def exit_quietly(_signum, _frame):
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(0)


def main():
    global request_id
    signal.signal(signal.SIGTERM, exit_quietly)
    signal.signal(signal.SIGINT, exit_quietly)
    address, spec = os.environ.get("AWS_LAMBDA_RUNTIME_API"), os.environ.get("_HANDLER")
    if not address or spec is None:
        fatal("AWS_LAMBDA_RUNTIME_API and _HANDLER must be set")
    api = RuntimeAPI(address)
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    # Python put this file's directory first on sys.path; user code goes there instead.
    runtime_dir = os.path.dirname(os.path.realpath(BOOTSTRAP_FILE))
    sys.path[:] = [task_root] + [p for p in sys.path if os.path.realpath(p or ".") != runtime_dir]
    setup_logging()

    try:
        handler = load_handler(spec)
    except Exception as e:  # a user module may raise anything while importing
        failure = error_result(e)
        log_error(failure)
        api.post("/init/error", to_json(failure), failure["errorType"])
        sys.exit(1)

    while True:
        headers, body = api.next()
        request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        trace_id = headers.get("Lambda-Runtime-Trace-Id")
        if trace_id:
            os.environ["_X_AMZN_TRACE_ID"] = trace_id
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        handle(api, handler, headers, body)


if __name__ == "__main__":
    main()

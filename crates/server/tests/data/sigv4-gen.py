#!/usr/bin/env python3
"""Generates sigv4-botocore.json: Lambda Invoke requests signed by real botocore.

The unit tests in crates/server/src/sigv4.rs verify these requests, so they check
Wisp's verifier against what the AWS CLI and boto3 actually send, without Python.

Run from the repository root (needs botocore; `pip install botocore`):

    python3 crates/server/tests/data/sigv4-gen.py > crates/server/tests/data/sigv4-botocore.json

The clock is frozen and no request leaves the process: a `before-send` hook records
the signed request and answers it with a canned response.
"""

import datetime
import hashlib
import json
import sys
from unittest import mock

import botocore
import botocore.auth
import botocore.session
from botocore.awsrequest import AWSResponse

ACCESS_KEY_ID = "WKABCDEFGHIJKLMNOP"
SECRET = "wsk_Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eA"
NOW = datetime.datetime(2026, 3, 14, 15, 9, 26, tzinfo=datetime.timezone.utc)


class Raw:
    """A stand-in for urllib3's response that `AWSResponse` can read."""

    def __init__(self, body):
        self.body = body

    def stream(self, *args, **kwargs):
        yield self.body


def sign(name, endpoint, region, params, before_sign=None):
    session = botocore.session.get_session()
    client = session.create_client(
        "lambda",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET,
    )
    captured = {}

    def record(request, **kwargs):
        captured["request"] = request
        return AWSResponse(request.url, 200, {}, Raw(b"{}"))

    if before_sign is not None:
        client.meta.events.register("before-sign.lambda.Invoke", before_sign)
    client.meta.events.register("before-send.lambda.Invoke", record)
    original = botocore.auth.SigV4Auth.canonical_request

    def canonical_request(self, request):
        captured["canonical_request"] = original(self, request)
        return captured["canonical_request"]

    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=NOW.replace(tzinfo=None)), \
            mock.patch.object(botocore.auth.SigV4Auth, "canonical_request", canonical_request):
        client.invoke(**params)
    request = captured["request"]
    url = request.url
    # Keep the path and query exactly as they go on the wire.
    rest = url.partition("://")[2].partition("/")[2]
    # The HTTP client adds Host; botocore signs the value it will send.
    headers = [["Host", botocore.auth._host_from_url(url)]]
    headers += [[k, v.decode() if isinstance(v, bytes) else v] for k, v in request.headers.items()]
    body = request.body or b""
    if hasattr(body, "read"):
        body = body.read()
    return {
        "name": name,
        "method": request.method,
        "uri": "/" + rest,
        "headers": headers,
        "body": body.decode("utf-8"),
        "now": int(NOW.timestamp()),
        "access_key_id": ACCESS_KEY_ID,
        "secret": SECRET,
        "region": region,
        # What botocore signed, so a failing test can show where the two differ.
        "canonical_request": captured["canonical_request"],
    }


def content_sha256(request, **kwargs):
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(request.body or b"").hexdigest()


def unsigned_payload(request, **kwargs):
    request.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"


cases = [
    sign("json-body", "http://localhost:8080", "us-east-1",
         {"FunctionName": "hello", "Payload": b'{"name": "wisp", "n": 1}'}),
    sign("qualified-name", "http://localhost:8080", "us-east-1",
         {"FunctionName": "hello:live", "Payload": b'{"a": [1, 2, 3]}'}),
    sign("qualifier-query", "https://wisp.example.com", "eu-west-1",
         {"FunctionName": "hello", "Qualifier": "live", "InvocationType": "Event",
          "LogType": "None", "Payload": b"{}"}),
    sign("arn-name", "http://127.0.0.1:9000", "ap-southeast-2",
         {"FunctionName": "arn:aws:lambda:ap-southeast-2:123456789012:function:hello:live",
          "Payload": b'"plain string"'}),
    sign("empty-body", "http://localhost:8080", "us-east-1",
         {"FunctionName": "hello"}),
    sign("content-sha256", "http://localhost:8080", "us-east-1",
         {"FunctionName": "hello", "Payload": b'{"x": true}'}, before_sign=content_sha256),
    sign("unsigned-payload", "https://wisp.example.com", "us-east-1",
         {"FunctionName": "hello", "Payload": b'{"x": false}'}, before_sign=unsigned_payload),
]

json.dump({"botocore": botocore.__version__, "cases": cases}, sys.stdout, indent=1)
sys.stdout.write("\n")

"""Handlers for examples/python: the Lambda programming model, standard library only."""

import json
import logging
import os

logger = logging.getLogger()
logger.setLevel(logging.INFO)

# Module scope runs once per instance, at init: put clients and caches here.
GREETING = os.environ.get("GREETING", "Hello")


def hello(event, context):
    """GET /hello[/:name][?name=...]: an API Gateway v2 event in, an HTTP response out."""
    name = ((event.get("pathParameters") or {}).get("name")
            or (event.get("queryStringParameters") or {}).get("name")
            or "world")
    logger.info("greeting %s", name)  # goes to the function's logs (stderr)
    return {
        "statusCode": 200,
        "headers": {"content-type": "text/plain; charset=utf-8"},
        "body": f"{GREETING}, {name}!\n",
    }


def echo(event, context):
    """Invoked through the API only: returns what it got and who it is."""
    print(f"echo invoked with {json.dumps(event)}")  # stdout: also the function's logs
    return {
        "event": event,
        "requestId": context.aws_request_id,
        "functionName": context.function_name,
        "memoryLimitInMB": context.memory_limit_in_mb,
        "remainingTimeInMillis": context.get_remaining_time_in_millis(),
    }

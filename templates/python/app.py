"""The `{{name}}` function: the AWS Lambda programming model, standard library only.

Run it with `wisp up` in this directory, then, from another terminal in it:

    curl localhost:8080/{{name}}/Ada                  # Hello, Ada!
    wisp invoke {{name}} --data '{"name":"Ada"}'      # {"message": "Hello, Ada!"}
"""

import logging
import os

logger = logging.getLogger()
logger.setLevel(logging.INFO)

# Module scope runs once per instance, before the first event: put clients and caches here.
GREETING = os.environ.get("GREETING", "Hello")


def handler(event, context):
    """An HTTP request through a route, or any JSON event through `wisp invoke`."""
    event = event if isinstance(event, dict) else {}
    if "requestContext" in event:
        # Through a route: an API Gateway HTTP API (v2.0) event in, an HTTP response out.
        name = ((event.get("pathParameters") or {}).get("who")
                or (event.get("queryStringParameters") or {}).get("name")
                or "world")
        logger.info("greeting %s over HTTP", name)  # stderr: the function's logs
        return {
            "statusCode": 200,
            "headers": {"content-type": "text/plain; charset=utf-8"},
            "body": f"{GREETING}, {name}!\n",
        }
    # Invoked directly: the event is whatever JSON the caller sent.
    name = event.get("name") or "world"
    logger.info("greeting %s", name)
    return {"message": f"{GREETING}, {name}!"}

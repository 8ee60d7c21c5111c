"""The `{{name}}` queue worker: run by Wisp on batches of messages from `{{name}}-jobs`.

Run it with `wisp up` in this directory, then, from another terminal in it:

    wisp queue send {{name}}-jobs '{"task":"resize","id":7}'
    wisp logs {{name}}                  # processed {'task': 'resize', 'id': 7}
"""

import json
import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    """An SQS-shaped batch in; the messages that failed out (the others are deleted)."""
    event = event if isinstance(event, dict) else {}
    failures = []
    for record in event.get("Records") or []:
        try:
            process(record["body"])
        except Exception:  # one bad message must not fail the whole batch
            logger.exception("message %s failed; it will be retried", record["messageId"])
            failures.append({"itemIdentifier": record["messageId"]})
    # Lambda's ReportBatchItemFailures: these stay on the queue and come back after its
    # visibility timeout; every other message of the batch is deleted.
    return {"batchItemFailures": failures}


def process(body):
    """One message's work. Raise to have the message retried."""
    try:
        job = json.loads(body)
    except ValueError:
        job = body  # not JSON: plain text is fine too
    if isinstance(job, dict) and job.get("fail"):
        raise RuntimeError("the job asked to fail")
    print(f"processed {job!r}")  # stdout: the function's logs

"""The `{{name}}` job: run by Wisp on the schedule in wisp.toml.

Run it with `wisp up` in this directory; it runs every minute. From another terminal in it:

    wisp logs {{name}}                                               # a line per run
    wisp invoke {{name}} --data '{"time":"2030-01-01T09:00:00Z"}'    # run it now
"""

import logging
from datetime import datetime, timezone

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    """Each run gets an EventBridge `Scheduled Event`; its `time` is the slot it runs for."""
    event = event if isinstance(event, dict) else {}
    slot = event.get("time") or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return run_job(slot)


def run_job(slot):
    """The job's work. An exception fails the run; its traceback goes to the logs."""
    logger.info("running the {{name}} job for %s", slot)
    return {"job": "{{name}}", "slot": slot, "done": True}

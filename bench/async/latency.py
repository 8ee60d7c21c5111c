"""Enqueue-to-start latency of async invocations: sends COUNT async invokes, one every
GAP_MS (on a fixed schedule, one keep-alive connection), then reads each event's
`start_delay_ms` (acceptance to first start, as the server measured it) from
`GET /v1/invocations/{id}` and prints one number a line. Usage: latency.py ADDR NAME COUNT GAP_MS"""

import http.client
import json
import os
import sys
import time

addr, name = sys.argv[1], sys.argv[2]
count, gap = int(sys.argv[3]), float(sys.argv[4]) / 1000
body = json.dumps({"action": "hello", "name": "latency"}).encode()
# The benchmark server's admin key (bench/lib.sh exports it).
auth = {"Authorization": "Bearer " + os.environ["WISP_KEY"]}
headers = {"Content-Type": "application/json", "X-Wisp-Invocation-Type": "event", **auth}
conn = http.client.HTTPConnection(addr)


def call(method, path, data=None, extra=None):
    conn.request(method, path, data, extra or auth)
    response = conn.getresponse()
    return response.status, response.read()


ids = []
started = time.perf_counter()
for i in range(count):
    delay = started + i * gap - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    status, answer = call("POST", "/v1/functions/%s/invoke" % name, body, headers)
    if status != 202:
        sys.exit("an async invoke answered %d: %s" % (status, answer[:200]))
    ids.append(json.loads(answer)["id"])
sent_in = time.perf_counter() - started

delays = []
deadline = time.monotonic() + 60
for event_id in ids:
    while True:
        status, answer = call("GET", "/v1/invocations/%s" % event_id)
        view = json.loads(answer)
        if status == 200 and view.get("start_delay_ms") is not None:
            delays.append(view["start_delay_ms"])
            break
        if time.monotonic() > deadline:
            sys.exit("%s never started: %s" % (event_id, view))
        time.sleep(0.05)
print("sent %d in %.2f s" % (count, sent_in), file=sys.stderr)
for d in delays:
    print("%.3f" % d)

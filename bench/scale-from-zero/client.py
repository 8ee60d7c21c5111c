"""Sequential GETs on one keep-alive connection: prints each request's latency in ms
(request written → response read whole), whether Wisp's Server-Timing header says it
was a cold start (an `init` entry), and that init time in ms (`-` when warm). Usage: client.py URL COUNT GAP_MS"""

import http.client
import sys
import time
import urllib.parse

url = urllib.parse.urlsplit(sys.argv[1])
count, gap = int(sys.argv[2]), float(sys.argv[3]) / 1000
conn = http.client.HTTPConnection(url.hostname, url.port)
conn.connect()
for _ in range(count):
    time.sleep(gap)
    started = time.perf_counter()
    conn.request("GET", url.path)
    response = conn.getresponse()
    response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        sys.exit("answered %d" % response.status)
    timing = response.getheader("server-timing") or ""
    init = timing.split("init;dur=")[1] if "init;dur=" in timing else None
    print("%.3f %s %s" % (elapsed, "cold" if init else "warm", init or "-"))

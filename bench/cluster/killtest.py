#!/usr/bin/env python3
"""bench/cluster kill test driver (stdlib only).

Sends async invokes of FUNCTION at RATE per second for SECONDS, round-robin over the
cluster's nodes, each with a unique idempotency key and a payload carrying a unique token.
A request that fails (connection refused, timeout, 503, any status but 202) is retried on
the next node with the SAME idempotency key until it is answered 202, so each event is
accepted once. Meanwhile it SIGKILLs a Wisp node every KILL_EVERY seconds (each node in
turn) and starts it again (same data dir, same name), and SIGKILLs one NATS server once
midway and starts it again NATS_DOWN seconds later.

Then it waits until every accepted event has succeeded (GET /v1/invocations/ID from any
live node), and counts runs per event from the function's invocation records.

Usage: killtest.py CONFIG.json   (written by run.sh)
Prints a report on stdout; its last line is `KILLTEST accepted=N lost=N duplicates=N
kills=N ...`. Exit status 0 when it got that far (the floor is run.sh's to judge), 2 when
the harness itself failed (a node or NATS server that did not come back).
"""
import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

cfg = json.load(open(sys.argv[1]))
AUTH = {"Authorization": "Bearer " + cfg["key"]}
NODES = cfg["nodes"]            # [{"name", "addr", "start", "pidfile", "log"}]
NATS = cfg["nats"]              # [{"name", "monitor", "start", "pidfile", "log"}]
FUNCTION = cfg["function"]
RATE = float(cfg["rate"])
SECONDS = float(cfg["seconds"])
KILL_EVERY = float(cfg["kill_every"])
NATS_KILL_AT = float(cfg["nats_kill_at"])
NATS_DOWN = float(cfg["nats_down"])
RESTART_DELAY = float(cfg["restart_delay"])
READY_TIMEOUT = float(cfg["ready_timeout"])
SETTLE_TIMEOUT = float(cfg["settle_timeout"])
ACCEPT_TIMEOUT = float(cfg["accept_timeout"])
WORKERS = int(cfg.get("workers", 48))
RUN = cfg["run_id"]

t0 = time.monotonic()
log_lock = threading.Lock()
harness_errors = []


def log(msg):
    with log_lock:
        print(f"[{time.monotonic() - t0:7.2f}s] {msg}", flush=True)


def request(addr, method, path, body=None, headers=None, timeout=10.0):
    """→ (status, headers dict (lowercase), body bytes); raises OSError/HTTPException."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        h = dict(AUTH)
        if headers:
            h.update(headers)
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def read_pid(pidfile):
    try:
        return int(open(pidfile).read().strip())
    except (OSError, ValueError):
        return None


def sigkill(proc_cfg):
    pid = read_pid(proc_cfg["pidfile"])
    if pid is None:
        raise RuntimeError(f"no pid for {proc_cfg['name']}")
    os.kill(pid, signal.SIGKILL)
    # Wait until it is gone (it may be our child or run.sh's).
    for _ in range(500):
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break  # a zombie: dead, its parent has not reaped it yet
        except (ProcessLookupError, FileNotFoundError):
            break
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.01)
    else:
        raise RuntimeError(f"{proc_cfg['name']} (pid {pid}) still alive 5 s after SIGKILL")
    return pid


def spawn(proc_cfg):
    # The start script writes its pid file and execs the server, its output appended to
    # its log files; a new session so that run.sh's job control does not reap it.
    return subprocess.Popen(["sh", proc_cfg["start"]], stdin=subprocess.DEVNULL,
                            start_new_session=True)


def wait_node_ready(node, timeout):
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status, _, body = request(node["addr"], "GET", "/v1/health", timeout=2)
            if status == 200:
                return time.monotonic() - (deadline - timeout)
            last = f"{status} {body[:200]!r}"
        except (OSError, http.client.HTTPException) as e:
            last = repr(e)
        time.sleep(0.1)
    raise RuntimeError(f"{node['name']} not healthy within {timeout:.0f} s (last: {last})")


def wait_nats_ready(server, timeout):
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server["monitor"], timeout=2)
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            body = r.read()
            conn.close()
            if r.status == 200:
                return time.monotonic() - (deadline - timeout)
            last = f"{r.status} {body[:200]!r}"
        except (OSError, http.client.HTTPException) as e:
            last = repr(e)
        time.sleep(0.1)
    raise RuntimeError(f"NATS {server['name']} not healthy within {timeout:.0f} s (last: {last})")


# ---- node liveness, as the driver believes it (for reads after the load) ----
down = set()
down_lock = threading.Lock()
kills = {"node": 0, "nats": 0}
events_log = []  # (t, text)


def chaos():
    """Kills and restarts nodes (each in turn every KILL_EVERY s) and one NATS server."""
    plan = []
    t = KILL_EVERY
    i = 0
    while t < SECONDS:
        plan.append((t, "node", i % len(NODES)))
        t += KILL_EVERY
        i += 1
    if NATS_KILL_AT > 0:
        plan.append((NATS_KILL_AT, "nats", 1 % len(NATS)))
    plan.sort()
    pending = []  # restarts waiting: (t, kind, index)
    for at, kind, idx in plan:
        pending.append((at, "kill", kind, idx))
        pending.append((at + (RESTART_DELAY if kind == "node" else NATS_DOWN), "start", kind, idx))
    pending.sort(key=lambda p: p[0])
    waiters = []
    for at, action, kind, idx in pending:
        delay = at - (time.monotonic() - t0)
        if delay > 0:
            time.sleep(delay)
        try:
            if kind == "node":
                node = NODES[idx]
                if action == "kill":
                    with down_lock:
                        down.add(node["name"])
                    pid = sigkill(node)
                    kills["node"] += 1
                    log(f"SIGKILL node {node['name']} (pid {pid})")
                else:
                    spawn(node)
                    log(f"restart node {node['name']}")

                    def ready(node=node):
                        try:
                            took = wait_node_ready(node, READY_TIMEOUT)
                            log(f"node {node['name']} healthy again ({took:.1f} s after its start)")
                            with down_lock:
                                down.discard(node["name"])
                        except RuntimeError as e:
                            log(f"HARNESS: {e}")
                            harness_errors.append(str(e))
                    w = threading.Thread(target=ready, daemon=True)
                    w.start()
                    waiters.append(w)
            else:
                server = NATS[idx]
                if action == "kill":
                    pid = sigkill(server)
                    kills["nats"] += 1
                    log(f"SIGKILL NATS server {server['name']} (pid {pid})")
                else:
                    spawn(server)
                    log(f"restart NATS server {server['name']}")

                    def ready(server=server):
                        try:
                            took = wait_nats_ready(server, READY_TIMEOUT)
                            log(f"NATS {server['name']} healthy again ({took:.1f} s after its start)")
                        except RuntimeError as e:
                            log(f"HARNESS: {e}")
                            harness_errors.append(str(e))
                    w = threading.Thread(target=ready, daemon=True)
                    w.start()
                    waiters.append(w)
        except Exception as e:  # noqa: BLE001 - reported, fails the run
            log(f"HARNESS: {kind} {action} {idx}: {e!r}")
            harness_errors.append(f"{kind} {action} {idx}: {e!r}")
    for w in waiters:
        w.join()


# ---- the load ----
accepted = {}            # key -> id
token_of = {}            # id -> the token its payload carried
ids_by_key = {}          # key -> set of ids answered (should be one)
accept_lock = threading.Lock()
stats = {"sent": 0, "attempts": 0, "retries": 0, "refused": 0, "status": {}, "given_up": 0}
stats_lock = threading.Lock()
accept_latency = []      # seconds from first try to the 202
jobs = queue.Queue()


def count(what, status=None):
    with stats_lock:
        if status is None:
            stats[what] += 1
        else:
            stats["status"][status] = stats["status"].get(status, 0) + 1


def send(n):
    key = f"{RUN}-{n:06d}"
    token = f"tok-{RUN}-{n:06d}"
    body = json.dumps({"action": "hello", "name": token}).encode()
    headers = {"Content-Type": "application/json", "X-Wisp-Invocation-Type": "event",
               "Idempotency-Key": key}
    start = time.monotonic()
    node_i = n % len(NODES)
    tries = 0
    while True:
        node = NODES[node_i]
        tries += 1
        count("attempts")
        try:
            status, h, data = request(node["addr"], "POST", f"/v1/functions/{FUNCTION}/invoke",
                                      body=body, headers=headers, timeout=10)
            count(None, status)
            if status == 202:
                event_id = h.get("x-wisp-invocation-id")
                if not event_id:
                    event_id = json.loads(data)["id"]
                with accept_lock:
                    ids_by_key.setdefault(key, set()).add(event_id)
                    accepted.setdefault(key, event_id)
                    token_of.setdefault(event_id, token)
                accept_latency.append(time.monotonic() - start)
                return
        except (OSError, http.client.HTTPException) as e:
            count(None, type(e).__name__)
        if time.monotonic() - start > ACCEPT_TIMEOUT:
            count("given_up")
            log(f"gave up on {key} after {tries} tries over {ACCEPT_TIMEOUT:.0f} s")
            return
        count("retries")
        node_i = (node_i + 1) % len(NODES)
        if tries % len(NODES) == 0:
            time.sleep(0.2)  # every node refused it: give them a moment


def worker():
    while True:
        n = jobs.get()
        if n is None:
            return
        send(n)


def main():
    log(f"kill test: {RATE:.0f} async invokes/s for {SECONDS:.0f} s over {len(NODES)} nodes; "
        f"a node killed every {KILL_EVERY:.0f} s, NATS {NATS[1 % len(NATS)]['name']} killed at "
        f"{NATS_KILL_AT:.0f} s for {NATS_DOWN:.0f} s")
    workers = [threading.Thread(target=worker, daemon=True) for _ in range(WORKERS)]
    for w in workers:
        w.start()
    chaos_thread = threading.Thread(target=chaos, daemon=True)
    chaos_thread.start()
    total = int(RATE * SECONDS)
    backlog_max = 0
    for n in range(total):
        at = n / RATE
        delay = at - (time.monotonic() - t0)
        if delay > 0:
            time.sleep(delay)
        jobs.put(n)
        backlog_max = max(backlog_max, jobs.qsize())
        stats["sent"] += 1
        if n and n % int(RATE * 5) == 0:
            log(f"sent {n}, accepted {len(accepted)}, backlog {jobs.qsize()}")
    for _ in workers:
        jobs.put(None)
    load_end = time.monotonic()
    for w in workers:
        w.join()
    log(f"load done: {stats['sent']} sent in {load_end - t0:.1f} s, all answered "
        f"{time.monotonic() - load_end:.1f} s later; {len(accepted)} accepted")
    chaos_thread.join()
    if harness_errors:
        log("HARNESS errors: " + "; ".join(harness_errors))

    # ---- settle: every accepted event succeeded? ----
    def live_nodes():
        with down_lock:
            return [n for n in NODES if n["name"] not in down]

    keys_with_two_ids = {k: v for k, v in ids_by_key.items() if len(v) > 1}
    ids = sorted(set(accepted.values()))
    status_of = {}
    settle_start = time.monotonic()
    remaining = list(ids)
    round_i = 0
    while remaining and time.monotonic() - settle_start < SETTLE_TIMEOUT:
        round_i += 1
        nodes = live_nodes() or NODES
        q = queue.Queue()
        for i, eid in enumerate(remaining):
            q.put((i, eid))
        results = {}

        def checker():
            while True:
                try:
                    i, eid = q.get_nowait()
                except queue.Empty:
                    return
                for k in range(len(nodes)):
                    node = nodes[(i + k) % len(nodes)]
                    try:
                        st, _, data = request(node["addr"], "GET", f"/v1/invocations/{eid}", timeout=10)
                        if st == 200:
                            results[eid] = json.loads(data)
                            break
                        results[eid] = {"status": f"http {st}: {data[:120]!r}"}
                        if st == 404:
                            break
                    except (OSError, http.client.HTTPException) as e:
                        results[eid] = {"status": f"error {e!r}"}
        ts = [threading.Thread(target=checker) for _ in range(16)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        status_of.update(results)
        remaining = [e for e in remaining if status_of.get(e, {}).get("status") != "succeeded"]
        by = {}
        for e in remaining:
            s = str(status_of.get(e, {}).get("status"))
            by[s if len(s) < 40 else s[:40] + "…"] = by.get(s, 0) + 1
        log(f"settle round {round_i}: {len(ids) - len(remaining)}/{len(ids)} succeeded"
            + (f"; not yet: {by}" if by else ""))
        if remaining:
            time.sleep(2)
    settle_took = time.monotonic() - settle_start
    lost = remaining
    # Each succeeded event carried its own token and the function answered to it.
    wrong = []
    for eid in ids:
        v = status_of.get(eid, {})
        if v.get("status") != "succeeded":
            continue
        tok = token_of.get(eid)
        name = (v.get("payload") or {}).get("name") if isinstance(v.get("payload"), dict) else None
        msg = (v.get("result") or {}).get("message") if isinstance(v.get("result"), dict) else None
        if name != tok or msg != f"Hello, {tok}!":
            wrong.append((eid, tok, name, msg))

    # ---- runs per event: the function's invocation records ----
    records = None
    rec_err = None
    for node in live_nodes() or NODES:
        try:
            st, _, data = request(node["addr"], "GET",
                                  f"/v1/functions/{FUNCTION}/invocations?limit=10000", timeout=60)
            if st == 200:
                records = json.loads(data)["invocations"]
                break
            rec_err = f"{node['name']}: {st} {data[:200]!r}"
        except (OSError, http.client.HTTPException) as e:
            rec_err = f"{node['name']}: {e!r}"
    runs = {}
    if records is not None:
        for r in records:
            runs[r["id"]] = runs.get(r["id"], 0) + 1
    accepted_ids = set(ids)
    dup_ids = {e: c for e, c in runs.items() if c > 1}
    duplicates = sum(c - 1 for e, c in dup_ids.items() if e in accepted_ids)
    records_of_accepted = sum(1 for e in runs if e in accepted_ids)
    foreign = sum(1 for e in runs if e not in accepted_ids)
    attempts_extra = sum(max(0, int(s.get("attempts", 1)) - 1)
                         for s in status_of.values() if isinstance(s.get("attempts"), int))
    lat = sorted(accept_latency)

    def pct(p):
        return lat[min(len(lat) - 1, int(len(lat) * p))] * 1000 if lat else 0

    print()
    print("kill test report")
    print(f"  sent {stats['sent']} events, {len(accepted)} accepted (202), {stats['given_up']} given up "
          f"after {ACCEPT_TIMEOUT:.0f} s of retries")
    print(f"  requests: {stats['attempts']} ({stats['retries']} retries); answers: "
          + ", ".join(f"{k}={v}" for k, v in sorted(stats['status'].items(), key=lambda kv: str(kv[0]))))
    print(f"  time to a 202 (retries included): p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, "
          f"max {pct(1.0):.1f} ms")
    print(f"  keys answered with more than one event id: {len(keys_with_two_ids)}"
          + (f" e.g. {list(keys_with_two_ids.items())[:3]}" if keys_with_two_ids else ""))
    print(f"  kills: {kills['node']} node SIGKILLs, {kills['nats']} NATS SIGKILLs")
    print(f"  settled in {settle_took:.1f} s: {len(ids) - len(lost)}/{len(ids)} succeeded; lost {len(lost)}")
    print(f"  succeeded events whose payload or result is not their own token's: {len(wrong)}")
    for w in wrong[:5]:
        print(f"    {w}")
    for e in lost[:10]:
        print(f"    lost {e}: {json.dumps(status_of.get(e))[:300]}")
    if records is None:
        print(f"  invocation records: could not be read ({rec_err})")
    else:
        print(f"  invocation records: {len(records)} ({records_of_accepted} distinct accepted events, "
              f"{foreign} other ids); events with more than one run: {len(dup_ids)}, extra runs {duplicates}")
        for e, c in list(dup_ids.items())[:10]:
            print(f"    {e}: {c} runs")
        missing_rec = len(accepted_ids) - records_of_accepted
        if missing_rec:
            print(f"  note: {missing_rec} accepted events have no invocation record (a run killed before "
                  f"its record was written, or records not kept)")
    print(f"  attempts beyond the first, summed over accepted events: {attempts_extra}")
    dups_out = duplicates if records is not None else -1
    print(f"KILLTEST accepted={len(accepted)} lost={len(lost)} duplicates={dups_out} "
          f"kills={kills['node'] + kills['nats']} given_up={stats['given_up']} "
          f"two_ids={len(keys_with_two_ids)} wrong_payload={len(wrong)} harness_errors={len(harness_errors)}")
    return 2 if harness_errors else 0


if __name__ == "__main__":
    sys.exit(main())

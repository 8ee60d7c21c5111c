#!/usr/bin/env bash
# bench/cluster: a Wisp cluster on NATS JetStream (issue 21), all on loopback.
#
# Starts a 3-server NATS cluster (JetStream, max_payload 2MB) and three Wisp nodes sharing
# it (`--store nats://… --store-replicas 3`, one master.key), deploys the event-kit fixture
# as `kit` (kind event), then:
#   1. throughput, 1 node vs 3 nodes: async enqueues answered 202 per second and sync
#      invokes answered 200 per second, with wrk (c=16 per node; with three nodes, one wrk
#      per node at once, summed), beside raw hyper in the same run;
#   2. the kill test (killtest.py): RATE async invokes/s for KILL_SECONDS round-robin over the
#      three nodes, each with its own idempotency key and token, a failed request retried on
#      the next node with the same key until a 202; meanwhile a node is SIGKILLed and
#      restarted (same data dir and name) every KILL_EVERY seconds, each in turn, and one
#      NATS server is SIGKILLed midway and restarted NATS_DOWN seconds later. Then every
#      accepted event must succeed (lost), and the function's invocation records give the
#      runs per event (duplicates: runs beyond one).
# Floor (issue 21): lost = 0 and duplicates <= 1% of accepted; exit 1 when broken.
#
# Run with: bench/cluster/run.sh   (DURATION=5s RATE=200 KILL_SECONDS=30 KILL_EVERY=8
#           NATS_DOWN=5 by default; WISP=path/to/wisp to run another build; KEEP=1 keeps
#           the work dir with every node's and NATS server's log)
# Needs: wrk (apt-get install wrk), curl, python3, and nats-server >= 2.12
#        ($WISP_NATS_SERVER, else scripts/nats-server.sh installs one).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
duration="${DURATION:-5s}"
rate="${RATE:-200}"
kill_seconds="${KILL_SECONDS:-30}"
kill_every="${KILL_EVERY:-8}"
nats_down="${NATS_DOWN:-5}"
conns="${CONNECTIONS:-16}"
here="$root/bench/cluster"
# shellcheck source=../lib.sh
source "$root/bench/lib.sh"   # $work (removed at exit), $pids (killed at exit)
need wrk curl python3

# Every node and NATS server is started by a script in $work that writes its pid to
# $work/pids/NAME and execs it (the kill test restarts them the same way): at exit,
# kill whatever those files name, then lib.sh's cleanup.
mkdir -p "$work/pids"
stop_all() {
    local f
    for f in "$work"/pids/*; do
        [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
    done
    if [ -n "${KEEP:-}" ]; then
        echo "work dir kept: $work" >&2
        work="$(mktemp -d)"   # lib.sh's cleanup removes this one instead
    fi
    cleanup
}
trap stop_all EXIT

echo "building (release)…" >&2
target="${CARGO_TARGET_DIR:-$root/target}"
if [ -n "${WISP:-}" ]; then
    cargo build --release --locked -q -p wisp-bench-hyper-hello
else
    cargo build --release --locked -q -p wisp -p wisp-bench-hyper-hello
fi
wisp="${WISP:-$target/release/wisp}"
hyper="$target/release/wisp-bench-hyper-hello"
nats_server="${WISP_NATS_SERVER:-$(bash scripts/nats-server.sh)}"
"$nats_server" --version >&2

# tail_logs NAME…: the last lines of each named server's stderr (on a failure).
tail_logs() {
    local n
    for n in "$@"; do
        echo "---- tail of $n's log ($work/$n.log) ----" >&2
        tail -n 40 "$work/$n.log" >&2 || true
    done
}

# ---------------------------------------------------------------- NATS cluster
declare -a nats_port nats_route nats_mon
for i in 1 2 3; do
    nats_port[i]="$(free_port)"; nats_route[i]="$(free_port)"; nats_mon[i]="$(free_port)"
done
nats_urls=""
for i in 1 2 3; do
    routes=""
    for j in 1 2 3; do
        [ "$j" = "$i" ] && continue
        routes+="${routes:+, }nats-route://127.0.0.1:${nats_route[j]}"
    done
    cat >"$work/nats$i.conf" <<EOF
server_name: nats$i
listen: 127.0.0.1:${nats_port[i]}
http: 127.0.0.1:${nats_mon[i]}
max_payload: 2MB
jetstream {
  store_dir: "$work/nats$i-js"
}
cluster {
  name: wisp-bench
  listen: 127.0.0.1:${nats_route[i]}
  routes: [$routes]
}
EOF
    cat >"$work/start-nats$i.sh" <<EOF
echo \$\$ >"$work/pids/nats$i"
echo "==== start \$(date -u +%T.%N)" >>"$work/nats$i.log"
exec "$nats_server" -c "$work/nats$i.conf" >>"$work/nats$i.log" 2>&1
EOF
    nats_urls+="${nats_urls:+,}nats://127.0.0.1:${nats_port[i]}"
done

healthz() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/healthz" 2>/dev/null || true; }
echo "starting a 3-server NATS cluster…" >&2
for i in 1 2 3; do sh "$work/start-nats$i.sh" & disown; done
for i in 1 2 3; do
    ok=
    for _ in $(seq 1 300); do   # 30 s
        [ "$(healthz "${nats_mon[i]}")" = 200 ] && { ok=1; break; }
        sleep 0.1
    done
    [ -n "$ok" ] || { echo "NATS server nats$i not healthy within 30 s" >&2; tail_logs "nats$i"; exit 1; }
done
echo "NATS cluster healthy: $nats_urls" >&2

# ---------------------------------------------------------------- Wisp nodes
declare -a node_port
for i in 1 2 3; do
    node_port[i]="$(free_port)"
    mkdir -p "$work/node$i"
    cat >"$work/start-node$i.sh" <<EOF
echo \$\$ >"$work/pids/node$i"
echo "==== start \$(date -u +%T.%N)" >>"$work/node$i.log"
WISP_BOOTSTRAP_KEY="$bench_key" exec "$wisp" serve --store "$nats_urls" --store-prefix bench \
    --store-replicas 3 --node-name node$i --data-dir "$work/node$i" \
    --listen 127.0.0.1:${node_port[i]} --s3-listen off >>"$work/node$i.out" 2>>"$work/node$i.log"
EOF
done

# node_ready I TIMEOUT_S: waits until node I answers /v1/health 200, else fails loudly.
node_ready() {
    local i="$1" t="$2" code=
    for _ in $(seq 1 $((t * 10))); do
        code="$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "http://127.0.0.1:${node_port[i]}/v1/health" 2>/dev/null || true)"
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    echo "node$i not healthy within $t s (last answer: $code)" >&2
    tail_logs "node$i"
    exit 1
}

echo "starting node1…" >&2
sh "$work/start-node1.sh" & disown
node_ready 1 60
[ -s "$work/node1/master.key" ] || { echo "node1 made no master.key" >&2; exit 1; }
for i in 2 3; do cp "$work/node1/master.key" "$work/node$i/master.key"; done

base1="http://127.0.0.1:${node_port[1]}"
status="$(curl -s "${auth[@]}" -o "$work/deploy.json" -w '%{http_code}' -X PUT "$base1/v1/functions/kit" \
    -F 'config={"kind":"event"};type=application/json' -F "code=@tests/fixtures/event-kit.wasm")"
[ "$status" = 201 ] || { echo "deploy of kit answered $status: $(cat "$work/deploy.json")" >&2; exit 1; }
# The kill test's own function, so that its invocation records (10,000 kept per function)
# hold its events only.
status="$(curl -s "${auth[@]}" -o "$work/deploy.json" -w '%{http_code}' -X PUT "$base1/v1/functions/crash" \
    -F 'config={"kind":"event"};type=application/json' -F "code=@tests/fixtures/event-kit.wasm")"
[ "$status" = 201 ] || { echo "deploy of crash answered $status: $(cat "$work/deploy.json")" >&2; exit 1; }

# The answers are what the counts assume: 202 with an event id, 200 when sync.
check_node() {
    local base="$1" code
    code="$(curl -s "${auth[@]}" -o "$work/check.json" -D "$work/headers" -w '%{http_code}' -X POST "$base/v1/functions/kit/invoke" \
        -H 'X-Wisp-Invocation-Type: event' -H 'Content-Type: application/json' -d '{"action":"hello","name":"bench"}')"
    [ "$code" = 202 ] || { echo "$base: an async invoke answered $code: $(cat "$work/check.json")" >&2; exit 1; }
    grep -qi '^x-wisp-invocation-id:' "$work/headers" || { echo "$base: a 202 without x-wisp-invocation-id" >&2; exit 1; }
    code="$(curl -s "${auth[@]}" -o "$work/check.json" -w '%{http_code}' -X POST "$base/v1/functions/kit/invoke" -d '{"action":"hello","name":"bench"}')"
    [ "$code" = 200 ] || { echo "$base: a sync invoke answered $code: $(cat "$work/check.json")" >&2; exit 1; }
}
check_node "$base1"

# wrk_run URL EXPECT METHOD ASYNC OUT: one wrk run (after a 1 s warm-up) into OUT.
wrk_run() {
    local url="$1" out="$5"; shift; local expect="$1" method="$2" async="$3"
    wrk -t1 -c"$conns" -d1s "${auth[@]}" -s "$root/bench/async/count.lua" "$url" -- "$expect" "$method" "$async" >/dev/null 2>&1 || true
    wrk -t1 -c"$conns" -d"$duration" "${auth[@]}" -s "$root/bench/async/count.lua" "$url" -- "$expect" "$method" "$async" >"$out" 2>&1
}
# rate_nodes EXPECT METHOD ASYNC BASE… → "per_s other": wrk against each base at once, summed.
rate_nodes() {
    local expect="$1" method="$2" async="$3"; shift 3
    local k=0 base wpids=()
    for base in "$@"; do
        wrk_run "$base/v1/functions/kit/invoke" "$expect" "$method" "$async" "$work/wrk$k.out" &
        wpids+=($!); k=$((k + 1))
    done
    for p in "${wpids[@]}"; do wait "$p" || { echo "wrk failed" >&2; cat "$work"/wrk*.out >&2; exit 1; }; done
    cat "$work"/wrk*.out | awk '/^COUNTED/ {
        split($2, e, "="); split($3, o, "="); split($4, s, "=")
        per += e[2] / s[2]; other += o[2]; n++
    } END { if (n == 0) exit 1; printf "%d %d\n", per, other }'
    rm -f "$work"/wrk*.out
}

# counts → "queued running succeeded failed" of kit's async events
# (an answer other than 200 is shown and asked again, 10 times at most, then it fails).
counts() {
    local code try
    for try in $(seq 1 10); do
        code="$(curl -s -m 30 "${auth[@]}" -o "$work/counts.json" -w '%{http_code}' "$base1/v1/functions/kit/dlq?limit=1" || true)"
        if [ "$code" = 200 ]; then
            python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["counts"]
print(c["queued"], c["running"], c["succeeded"], c["failed"])' "$work/counts.json"
            return 0
        fi
        echo "  counting kit's events: node1 answered $code: $(head -c 300 "$work/counts.json" 2>/dev/null) (try $try of 10)" >&2
        sleep 1
    done
    echo "counting kit's events failed 10 times" >&2
    return 1
}
# drain → waits until no kit event is queued or running (DRAIN_TIMEOUT s, 120 by default);
# sets $drained_events (queued or running when it began) and $drained_s; a timeout is
# reported and fails the run at the end.
drain_failed=0
drain() {
    local started queued running succeeded failed limit
    limit="${DRAIN_TIMEOUT:-120}"
    started="$(date +%s)"
    read -r queued running succeeded failed < <(counts)
    drained_events=$((queued + running))
    while [ $((queued + running)) -gt 0 ]; do
        if [ $(( $(date +%s) - started )) -ge "$limit" ]; then
            echo "  DRAIN TIMEOUT: $((queued + running)) events still queued or running after $limit s" >&2
            drain_failed=1; break
        fi
        sleep 0.5
        read -r queued running succeeded failed < <(counts)
    done
    [ "$failed" -eq 0 ] || echo "  $failed kit events failed" >&2
    drained_s=$(( $(date +%s) - started ))
}

echo "raw hyper…" >&2
hyper_port="$(free_port)"
"$hyper" "127.0.0.1:$hyper_port" >"$work/hyper.out" 2>"$work/hyper.log" &
hyper_pid=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$hyper_port/hello" && break; sleep 0.05; done
wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$hyper_port/hello" >/dev/null 2>&1 || true
wrk -t1 -c"$conns" -d"$duration" -s "$root/bench/async/count.lua" "http://127.0.0.1:$hyper_port/hello" -- 200 GET sync >"$work/hyper.wrk"
hyper_rps="$(awk '/^COUNTED/ { split($2, e, "="); split($4, s, "="); printf "%d", e[2] / s[2] }' "$work/hyper.wrk")"
kill "$hyper_pid"; wait "$hyper_pid" 2>/dev/null || true

echo "1 node: sync invoke…" >&2
read -r sync1 sync1_other < <(rate_nodes 200 POST sync "$base1")
echo "1 node: async enqueue…" >&2
read -r async1 async1_other < <(rate_nodes 202 POST event "$base1")
echo "  draining…" >&2
drain; drain1_events=$drained_events drain1_s=$drained_s

echo "starting node2 and node3…" >&2
sh "$work/start-node2.sh" & disown
sh "$work/start-node3.sh" & disown
node_ready 2 60; node_ready 3 60
bases=()
for i in 1 2 3; do bases+=("http://127.0.0.1:${node_port[i]}"); done
for b in "${bases[@]:1}"; do check_node "$b"; done
curl -sf "${auth[@]}" "$base1/v1/cluster" >"$work/cluster.json" || { echo "GET /v1/cluster failed" >&2; exit 1; }
up="$(python3 -c 'import json,sys; print(sum(1 for n in json.load(open(sys.argv[1]))["nodes"] if n.get("up")))' "$work/cluster.json")"
[ "$up" = 3 ] || { echo "GET /v1/cluster shows $up nodes up, not 3: $(cat "$work/cluster.json")" >&2; exit 1; }

echo "3 nodes: sync invoke…" >&2
read -r sync3 sync3_other < <(rate_nodes 200 POST sync "${bases[@]}")
echo "3 nodes: async enqueue…" >&2
read -r async3 async3_other < <(rate_nodes 202 POST event "${bases[@]}")
echo "  draining…" >&2
drain; drain3_events=$drained_events drain3_s=$drained_s

# ---------------------------------------------------------------- the kill test
echo "the kill test…" >&2
python3 - "$work" "$bench_key" "$rate" "$kill_seconds" "$kill_every" "$nats_down" \
    "${node_port[1]}" "${node_port[2]}" "${node_port[3]}" "${nats_mon[1]}" "${nats_mon[2]}" "${nats_mon[3]}" \
    >"$work/killtest.json" <<'EOF'
import json, sys
work, key, rate, secs, every, down = sys.argv[1:7]
ports, mons = sys.argv[7:10], sys.argv[10:13]
print(json.dumps({
    "key": key, "function": "crash", "rate": rate, "seconds": secs, "kill_every": every,
    "nats_kill_at": float(secs) / 2 - 3, "nats_down": down, "restart_delay": 1,
    "ready_timeout": 60, "settle_timeout": 300, "accept_timeout": 60,
    "run_id": "k" + str(__import__("os").getpid()),
    "nodes": [{"name": f"node{i+1}", "addr": f"127.0.0.1:{p}", "start": f"{work}/start-node{i+1}.sh",
               "pidfile": f"{work}/pids/node{i+1}", "log": f"{work}/node{i+1}.log"} for i, p in enumerate(ports)],
    "nats": [{"name": f"nats{i+1}", "monitor": int(m), "start": f"{work}/start-nats{i+1}.sh",
              "pidfile": f"{work}/pids/nats{i+1}", "log": f"{work}/nats{i+1}.log"} for i, m in enumerate(mons)],
}))
EOF
kt_status=0
python3 "$here/killtest.py" "$work/killtest.json" | tee "$work/killtest.out" || kt_status=$?
kline="$(grep '^KILLTEST ' "$work/killtest.out" | tail -n1 || true)"
if [ -z "$kline" ]; then
    echo "the kill test did not get as far as its count (exit $kt_status)" >&2
    tail_logs node1 node2 node3 nats1 nats2 nats3
    exit 1
fi
field() { sed -n "s/.* $1=\([-0-9]*\).*/\1/p" <<<"$kline"; }
accepted="$(field accepted)"; lost="$(field lost)"; duplicates="$(field duplicates)"; kills="$(field kills)"
given_up="$(field given_up)"; two_ids="$(field two_ids)"; wrong="$(field wrong_payload)"

# Which servers had to restart and how each node's log ended each life.
echo
echo "node logs over the whole run (starts, WARN/ERROR lines, events a restart ran again)"
for n in node1 node2 node3; do
    printf '  %s: %s starts, %s WARN lines, %s ERROR lines, %s events run again after a restart\n' "$n" \
        "$(grep -c '^==== start' "$work/$n.log" || true)" \
        "$(grep -c ' WARN ' "$work/$n.log" || true)" "$(grep -c ' ERROR ' "$work/$n.log" || true)" \
        "$(sed -n 's/.* \([0-9][0-9]*\) async events were running when Wisp stopped.*/\1/p' "$work/$n.log" | awk '{ s += $1 } END { print s + 0 }')"
    grep -E ' ERROR |^error' "$work/$n.log" | sed 's/^/      /' | head -n 8 || true
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "cluster: 3 NATS servers (JetStream, R3) + Wisp nodes, event-kit wasm (hello), wrk -t1 -c$conns per node -d$duration, $(nproc) cores, all on loopback"
printf '%-44s %10s %10s %8s\n' "" "1 node" "3 nodes" "3/1"
printf '%-44s %10s %10s %8s\n' "async enqueue (202) per s" "$async1" "$async3" "$(ratio "$async3" "$async1")"
printf '%-44s %10s %10s %8s\n' "sync invoke (200) per s" "$sync1" "$sync3" "$(ratio "$sync3" "$sync1")"
printf '%-44s %10s\n' "raw hyper (200) per s, c=$conns" "$hyper_rps"
echo "sync/hyper: 1 node $(ratio "$sync1" "$hyper_rps"), 3 nodes $(ratio "$sync3" "$hyper_rps")"
echo "answers other than expected: sync $sync1_other / $sync3_other, async $async1_other / $async3_other"
echo "queue after the async runs: 1 node $drain1_events events left, drained in $drain1_s s; 3 nodes $drain3_events left, drained in $drain3_s s"
echo "kill test: $accepted accepted, $lost lost, $duplicates duplicate runs, $kills kills, $given_up never accepted, $two_ids keys with two ids"

status=0
if [ "$lost" != 0 ]; then echo "FLOOR BROKEN: $lost accepted events never succeeded"; status=1; fi
if [ "$duplicates" -lt 0 ]; then echo "FLOOR UNKNOWN: the invocation records could not be read"; status=1
elif [ $((duplicates * 100)) -gt "$accepted" ]; then echo "FLOOR BROKEN: $duplicates duplicate runs > 1% of $accepted"; status=1; fi
[ "$given_up" = 0 ] || { echo "FAILED: $given_up events were never accepted within the retry window"; status=1; }
[ "$wrong" = 0 ] || { echo "FAILED: $wrong succeeded events show another event's payload or result"; status=1; }
[ "$two_ids" = 0 ] || { echo "FAILED: $two_ids idempotency keys were answered with two event ids"; status=1; }
[ "$kt_status" = 0 ] || { echo "FAILED: the kill test's harness reported errors (exit $kt_status)"; status=1; }
[ "$drain_failed" = 0 ] || { echo "FAILED: a throughput run's queue did not drain in time"; status=1; }
if [ "$status" != 0 ]; then tail_logs node1 node2 node3; fi
awk -v d="$duplicates" -v a="$accepted" 'BEGIN { printf "duplicates: %.2f%% of accepted (floor: 1%%), lost: floor 0\n", a ? 100 * d / a : 0 }'
echo "RESULT nodes=3 async_per_s=$async3 sync_rps=$sync3 accepted=$accepted lost=$lost duplicates=$duplicates kills=$kills"
exit "$status"

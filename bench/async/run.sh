#!/usr/bin/env bash
# bench/async: async invocations. How many durable enqueues per second Wisp accepts
# (`202`, answered only once the event is committed to SQLite) with 1 and 16 clients,
# against a sync invoke of the same function and raw hyper in the same run; then how
# long an accepted event waits before it starts, at a moderate rate on an idle queue.
#
# The function is the event-kit wasm fixture (`hello`: a few microseconds of work), so
# what is measured is the pipeline. The events accepted during a throughput run also
# run, during and after it (the dispatcher shares the machine); the queue is drained
# before each run and the rate at which it drains is shown.
#
# Run with: bench/async/run.sh           (DURATION=5s COUNT=500 GAP_MS=2 by default;
#           WISP=path/to/wisp to run another build, for an A/B)
# Needs: wrk (apt-get install wrk), curl, python3.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
duration="${DURATION:-5s}"
count="${COUNT:-500}"
gap_ms="${GAP_MS:-2}"
here="$root/bench/async"
# shellcheck source=../lib.sh
source "$root/bench/lib.sh"   # $work (removed at exit), $pids (killed at exit)
need wrk curl python3

echo "building (release)…" >&2
target="${CARGO_TARGET_DIR:-$root/target}"
if [ -n "${WISP:-}" ]; then   # an A/B: the wisp binary given, only the reference built
    cargo build --release --locked -q -p wisp-bench-hyper-hello
else
    cargo build --release --locked -q -p wisp -p wisp-bench-hyper-hello
fi
wisp="${WISP:-$target/release/wisp}"
hyper="$target/release/wisp-bench-hyper-hello"

# rate URL CONNECTIONS EXPECT METHOD ASYNC → "per_s other": answers with status EXPECT
# per second under wrk, and how many answers had another status.
rate() {
    local url="$1" c="$2"; shift 2
    wrk -t1 -c"$c" -d1s "${auth[@]}" -s "$here/count.lua" "$url" -- "$@" >/dev/null 2>&1 || true   # warm-up
    local out
    out="$(wrk -t1 -c"$c" -d"$duration" "${auth[@]}" -s "$here/count.lua" "$url" -- "$@")"
    awk '/^COUNTED/ {
        split($2, e, "="); split($3, o, "="); split($4, s, "=")
        printf "%d %d\n", e[2] / s[2], o[2]
    }' <<<"$out"
}

# counts → "queued running succeeded failed" of the function's async events
counts() {
    curl -sf "${auth[@]}" "http://$addr/v1/functions/kit/dlq?limit=1" | python3 -c '
import json, sys
c = json.load(sys.stdin)["counts"]
print(c["queued"], c["running"], c["succeeded"], c["failed"])'
}

# drain → waits until no event is queued or running; prints "events seconds"
drain() {
    local started queued running succeeded failed before
    started="$(date +%s.%N)"
    read -r queued running succeeded failed < <(counts)
    before=$((queued + running))
    for _ in $(seq 1 600); do   # 2 minutes at most
        [ $((queued + running)) -eq 0 ] && break
        sleep 0.2
        read -r queued running succeeded failed < <(counts)
    done
    [ $((queued + running)) -eq 0 ] || echo "  $((queued + running)) events still queued or running after 2 minutes" >&2
    [ "$failed" -eq 0 ] || echo "  $failed events failed" >&2
    echo "$before $(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')"
}

echo "raw hyper…" >&2
start hyper "$hyper" "127.0.0.1:$(free_port)"
read -r hyper_rps _ < <(rate "http://$addr/hello" 16 200 GET sync)
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

start wisp "$wisp" serve --listen "127.0.0.1:$(free_port)" --data-dir "$work/data"
status="$(curl -s "${auth[@]}" -o "$work/deploy.json" -w '%{http_code}' -X PUT "http://$addr/v1/functions/kit" \
    -F 'config={"kind":"event"};type=application/json' -F "code=@tests/fixtures/event-kit.wasm")"
[ "$status" = 201 ] || { echo "deploy answered $status: $(cat "$work/deploy.json")" >&2; exit 1; }
invoke="http://$addr/v1/functions/kit/invoke"

# The answers are what the counts assume: 202 with an event id, and 200 when sync.
check="$(curl -s "${auth[@]}" -D "$work/headers" -X POST "$invoke" -H 'X-Wisp-Invocation-Type: event' \
    -H 'Content-Type: application/json' -d '{"action":"hello","name":"bench"}')"
grep -q '^HTTP/1.1 202' "$work/headers" || { echo "an async invoke did not answer 202: $(head -n1 "$work/headers") $check" >&2; exit 1; }
id="$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["status"] == "accepted"; print(d["id"])' "$check")"
curl -sf "${auth[@]}" "http://$addr/v1/invocations/$id" >/dev/null || { echo "GET /v1/invocations/$id failed" >&2; exit 1; }
sync_status="$(curl -s "${auth[@]}" -o /dev/null -w '%{http_code}' -X POST "$invoke" -d '{"action":"hello","name":"bench"}')"
[ "$sync_status" = 200 ] || { echo "a sync invoke answered $sync_status" >&2; exit 1; }

echo "wisp: sync invoke…" >&2
read -r sync_rps sync_other < <(rate "$invoke" 16 200 POST sync)
drain >/dev/null
declare -A enqueue drained
for c in 1 16; do
    echo "wisp: async enqueue, c=$c…" >&2
    read -r r other < <(rate "$invoke" "$c" 202 POST event)
    [ "$other" -eq 0 ] || echo "  c=$c: $other answers were not 202" >&2
    enqueue[$c]=$r
    read -r events seconds < <(drain)
    drained[$c]="$events left queued, drained in $seconds s"
done

echo "wisp: enqueue-to-start latency ($count events, one every $gap_ms ms)…" >&2
python3 "$here/latency.py" "$addr" kit "$count" "$gap_ms" >"$work/delays"
read -r start_p50 start_p99 start_n < <(sort -n "$work/delays" | awk '
    {a[NR] = $1}
    END {
        i = int(NR * 0.99 + 0.5); if (i < 1) i = 1
        printf "%.3f %.3f %d\n", a[int((NR + 1) / 2)], a[i], NR
    }')
read -r queued running succeeded failed < <(counts)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "async: event-kit wasm (hello), wrk -t1 -d$duration, $(nproc) cores; data dir on $(df --output=fstype "$work" | tail -n1)"
printf '%-40s %10s\n' "" "per s"
printf '%-40s %10s   (%s)\n' "wisp async enqueue (202), c=1" "${enqueue[1]}" "${drained[1]}"
printf '%-40s %10s   (%s)\n' "wisp async enqueue (202), c=16" "${enqueue[16]}" "${drained[16]}"
printf '%-40s %10s\n' "wisp sync invoke (200), c=16" "$sync_rps"
printf '%-40s %10s\n' "raw hyper (200), c=16" "$hyper_rps"
[ "$sync_other" -eq 0 ] || echo "  the sync run had $sync_other answers other than 200"
echo "enqueue/sync c=16: $(ratio "${enqueue[16]}" "$sync_rps")   enqueue/hyper c=16: $(ratio "${enqueue[16]}" "$hyper_rps")"
echo "enqueue to start: p50 $start_p50 ms, p99 $start_p99 ms ($start_n events, one every $gap_ms ms)"
echo "events in all: $succeeded succeeded, $failed failed, $((queued + running)) left"
echo "RESULT enqueue_per_s_1=${enqueue[1]} enqueue_per_s_16=${enqueue[16]} start_p50_ms=$start_p50 start_p99_ms=$start_p99"

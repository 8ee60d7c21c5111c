#!/usr/bin/env bash
# bench/metrics-scrape: the time of a `/metrics` scrape of a server with N functions
# (default 1000; an app deploy of examples/hello's http function N times, each invoked
# once), and whether scraping holds up invocations: the rps of the `hello` route at c=16
# while another client scrapes back to back, against its rps with no scrape (the
# reference, measured in turns in the same run).
#
# Bars (issue 19): a scrape of 1,000 functions in ≤ 50 ms; invocations not blocked. A
# back-to-back scraper takes a core of its own, so on 2 cores `ratio` shows the CPU shared,
# not a lock: at Prometheus' 15 s interval a scrape costs 35 ms / 15 s of one core.
#
# Run with: bench/metrics-scrape/run.sh   (N=1000, ROUNDS=3, DURATION=5s; WISP=path/to/wisp
# to skip the build). Needs: wrk, curl.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
n="${N:-1000}"
rounds="${ROUNDS:-3}"
duration="${DURATION:-5s}"
# shellcheck source=../lib.sh
source "$root/bench/lib.sh"   # $work (removed at exit), $pids (killed at exit)
need wrk

release_wisp   # $WISP: the given build, else this checkout's
many_functions "$n"   # $addr: a server with N functions f0…, each invoked once
families=$(curl -s "${auth[@]}" "http://$addr/metrics" | grep -c '^wisp_invocations_total{.*outcome="success"} 1$' || true)
[ "$families" = "$n" ] || { echo "the scrape shows $families functions invoked once, not $n" >&2; exit 1; }

# Scrape times, 30 scrapes, in ms.
times="$work/times"
for _ in $(seq 1 30); do
    curl -s -o /dev/null "${auth[@]}" -w '%{time_total}\n' "http://$addr/metrics"
done | awk '{printf "%.3f\n", $1 * 1000}' | sort -n >"$times"
bytes=$(curl -s "${auth[@]}" "http://$addr/metrics" | wc -c)
p50=$(awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}' "$times")
max=$(tail -n1 "$times")

# rps URL: requests per second of wrk at c=16.
rps() {
    wrk -t1 -c16 -d1s "$1" >/dev/null 2>&1 || true
    wrk -t1 -c16 -d"$duration" "$1" | awk '/^Requests\/sec/ {print $2}'
}
scraper() { while :; do curl -s -o /dev/null "${auth[@]}" "http://$addr/metrics"; done; }
quiet=() loud=()
for r in $(seq 1 "$rounds"); do
    quiet+=("$(rps "http://$addr/f0")")
    scraper & scraping=$!
    loud+=("$(rps "http://$addr/f0")")
    kill "$scraping"; wait "$scraping" 2>/dev/null || true
    echo "round $r: no scrape ${quiet[-1]} rps, scraping ${loud[-1]} rps" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
q=$(median "${quiet[@]}")
l=$(median "${loud[@]}")
ratio=$(echo "$l / $q" | bc -l)
printf 'scrape of %d functions (%d bytes): p50 %.1f ms, max %.1f ms\n' "$n" "$bytes" "$p50" "$max"
printf 'hello at c=16: %.0f rps without scrapes, %.0f rps while scraping back to back (ratio %.3f)\n' "$q" "$l" "$ratio"
printf 'RESULT functions=%d scrape_ms_p50=%.1f scrape_ms_max=%.1f scrape_bytes=%d rps_quiet=%.0f rps_scraping=%.0f ratio=%.3f\n' \
    "$n" "$p50" "$max" "$bytes" "$q" "$l" "$ratio"

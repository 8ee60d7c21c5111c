#!/usr/bin/env bash
# bench/dashboard: how long the dashboard's pages take with N functions (default 1000;
# examples/hello's http function deployed N times, each invoked once), against the API
# listing the same functions (`GET /v1/functions`, the reference) in the same run.
#
# Bar (issue 20): every page loads in under 200 ms with 1,000 functions.
#
# Run with: bench/dashboard/run.sh   (N=1000, TIMES=30; WISP=path/to/wisp to skip the
# build). Needs: curl.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
n="${N:-1000}"
times="${TIMES:-30}"
# shellcheck source=../lib.sh
source "$root/bench/lib.sh"   # $work (removed at exit), $pids (killed at exit)

if [ -z "${WISP:-}" ]; then
    echo "building (release)…" >&2
    cargo build --release --locked -q -p wisp
    WISP="${CARGO_TARGET_DIR:-$root/target}/release/wisp"
fi
many_functions "$n"   # $addr: a server with N functions f0…, each invoked once
sleep 1   # invocation records and logs reach the store in batches

# Log in as a browser does: the session cookie in a jar.
jar="$work/jar"
key="$bench_key"
code=$(curl -s -o /dev/null -w '%{http_code}' -c "$jar" --data-urlencode "key=$key" "http://$addr/ui/login")
[ "$code" = 303 ] || { echo "logging in answered $code" >&2; exit 1; }
rows=$(curl -s -b "$jar" "http://$addr/ui/functions" | grep -c '<tr data-function=' || true)
[ "$rows" = "$n" ] || { echo "the functions page lists $rows functions, not $n" >&2; exit 1; }

# p50 and max of TIMES loads of a URL, in ms: "p50 max".
timed() {
    for _ in $(seq 1 "$times"); do
        curl -s -o /dev/null "$@" -w '%{time_total}\n'
    done | awk '{printf "%.3f\n", $1 * 1000}' | sort -n |
        awk '{a[NR]=$1} END {printf "%.1f %.1f\n", a[int((NR + 1) / 2)], a[NR]}'
}
read -r list_p50 list_max < <(timed -b "$jar" "http://$addr/ui/functions")
read -r one_p50 one_max < <(timed -b "$jar" "http://$addr/ui/functions/f0")
read -r alarms_p50 alarms_max < <(timed -b "$jar" "http://$addr/ui/alarms")
read -r api_p50 api_max < <(timed "${auth[@]}" "http://$addr/v1/functions")
bytes=$(curl -s -b "$jar" "http://$addr/ui/functions" | wc -c)
ratio=$(echo "$list_p50 / $api_p50" | bc -l)
printf 'functions page (%d functions, %d bytes): p50 %.1f ms, max %.1f ms\n' "$n" "$bytes" "$list_p50" "$list_max"
printf 'a function page: p50 %.1f ms, max %.1f ms; alarms page: p50 %.1f ms, max %.1f ms\n' "$one_p50" "$one_max" "$alarms_p50" "$alarms_max"
printf 'GET /v1/functions (reference): p50 %.1f ms, max %.1f ms; page / API: %.2f\n' "$api_p50" "$api_max" "$ratio"
printf 'RESULT functions=%d list_ms_p50=%.1f list_ms_max=%.1f function_ms_p50=%.1f function_ms_max=%.1f alarms_ms_p50=%.1f api_list_ms_p50=%.1f ratio=%.2f\n' \
    "$n" "$list_p50" "$list_max" "$one_p50" "$one_max" "$alarms_p50" "$api_p50" "$ratio"

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

release_wisp   # $WISP: the given build, else this checkout's
many_functions "$n"   # $addr: a server with N functions f0…, each invoked once
sleep 1   # invocation records and logs reach the store in batches

# Log in as a browser does: the session cookie in a jar.
jar="$work/jar"
key="$bench_key"
code=$(curl -s -o /dev/null -w '%{http_code}' -c "$jar" --data-urlencode "key=$key" "http://$addr/ui/login")
[ "$code" = 303 ] || { echo "logging in answered $code" >&2; exit 1; }
rows=$(curl -s -b "$jar" "http://$addr/ui/functions" | grep -c '<tr data-function=' || true)
[ "$rows" = "$(( n < 100 ? n : 100 ))" ] || { echo "the functions page lists $rows functions" >&2; exit 1; }
last=$(( (n + 99) / 100 ))

# p50 and max of TIMES loads of a URL, in ms: "p50 max".
timed() {
    for _ in $(seq 1 "$times"); do
        curl -s -o /dev/null "$@" -w '%{time_total}\n'
    done | awk '{printf "%.3f\n", $1 * 1000}' | sort -n |
        awk '{a[NR]=$1} END {printf "%.1f %.1f\n", a[int((NR + 1) / 2)], a[NR]}'
}
# Every page of the navigation, and the function pages.
pages=(/ui/functions "/ui/functions?page=$last" /ui/functions/f0 "/ui/functions/f0?window=day"
    /ui/events /ui/queues /ui/topics /ui/schedules /ui/buckets /ui/kv /ui/alarms /ui/usage /ui/keys)
slowest_page="" slowest_p50=0 slowest_max=0
for page in "${pages[@]}"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -b "$jar" "http://$addr$page")
    [ "$code" = 200 ] || { echo "$page answered $code" >&2; exit 1; }
    read -r p50 max < <(timed -b "$jar" "http://$addr$page")
    printf '%-32s p50 %6.1f ms  max %6.1f ms\n' "$page" "$p50" "$max"
    case "$page" in
        /ui/functions) list_p50=$p50 list_max=$max ;;
        /ui/functions/f0) one_p50=$p50 one_max=$max ;;
    esac
    if (( $(echo "$p50 > $slowest_p50" | bc -l) )); then
        slowest_page=$page slowest_p50=$p50 slowest_max=$max
    fi
done
read -r api_p50 api_max < <(timed "${auth[@]}" "http://$addr/v1/functions")
bytes=$(curl -s -b "$jar" "http://$addr/ui/functions" | wc -c)
ratio=$(echo "$list_p50 / $api_p50" | bc -l)
printf 'functions page (%d functions, 100 a page, %d bytes): p50 %.1f ms, max %.1f ms\n' "$n" "$bytes" "$list_p50" "$list_max"
printf 'slowest page: %s, p50 %.1f ms, max %.1f ms (bar: 200 ms)\n' "$slowest_page" "$slowest_p50" "$slowest_max"
printf 'GET /v1/functions (reference, all %d): p50 %.1f ms, max %.1f ms; functions page / API: %.2f\n' "$n" "$api_p50" "$api_max" "$ratio"
printf 'RESULT functions=%d pages=%d slowest_page=%s slowest_ms_p50=%.1f slowest_ms_max=%.1f list_ms_p50=%.1f function_ms_p50=%.1f function_ms_max=%.1f api_list_ms_p50=%.1f ratio=%.2f\n' \
    "$n" "${#pages[@]}" "$slowest_page" "$slowest_p50" "$slowest_max" "$list_p50" "$one_p50" "$one_max" "$api_p50" "$ratio"

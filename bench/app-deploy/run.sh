#!/usr/bin/env bash
# bench/app-deploy: `wisp deploy` of an app of N functions (default 1000) sharing one
# .wasm (examples/hello's http function), on a fresh server: the wall time of the
# deploy and the server's resident memory after it, against the same server deploying
# one such function (the reference: N deploys of one function would take N times it).
#
# Bars (issue 15): 1,000 functions in ≤ 20 s, the server under 200 MB RSS.
#
# Run with: bench/app-deploy/run.sh        (N=1000; WISP=path/to/wisp to skip the build)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
n="${N:-1000}"
# shellcheck source=../lib.sh
source "$root/bench/lib.sh"   # $work (removed at exit), $pids (killed at exit)

release_wisp   # $WISP: the given build, else this checkout's
wasm="$root/examples/hello/wasm/hello.wasm"

# app DIR COUNT: an app of COUNT functions f0…, each on its own route.
app() {
    mkdir -p "$1"
    cp "$wasm" "$1/hello.wasm"
    {
        printf '[app]\nname = "many"\n'
        for i in $(seq 0 $(($2 - 1))); do
            printf '\n[functions.f%d]\nsource = "hello.wasm"\nkind = "http"\nroutes = ["/f%d"]\n' "$i" "$i"
        done
    } >"$1/wisp.toml"
}

# seconds COMMAND…: the wall time of a command, in seconds.
seconds() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}

app "$work/one" 1
app "$work/many" "$n"
start wisp "$WISP" serve --listen 127.0.0.1:0 --data-dir "$work/data"
export WISP_SERVER="http://$addr"
one=$(seconds "$WISP" deploy "$work/one")
"$WISP" rm f0 >/dev/null
many=$(seconds "$WISP" deploy "$work/many")
pid="${pids[-1]}"
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/f$((n - 1))")
[ "$code" = 200 ] || { echo "the last function answered $code" >&2; exit 1; }

ratio=$(echo "$many / ($n * $one)" | bc -l)
printf 'one function:  %.3f s\n%d functions: %.3f s (%.2f ms each)\nserver RSS after: %d MB\n' \
    "$one" "$n" "$many" "$(echo "$many * 1000 / $n" | bc -l)" "$((rss_kb / 1024))"
printf 'ratio (N functions in one deploy / N one-function deploys): %.4f\n' "$ratio"
printf 'RESULT functions=%d deploy_s=%.3f one_s=%.3f ratio=%.4f rss_mb=%d\n' \
    "$n" "$many" "$one" "$ratio" "$((rss_kb / 1024))"

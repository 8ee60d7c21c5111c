#!/usr/bin/env bash
# bench/http-hello: the example `hello` component served by raw hyper (the reference),
# by `wasmtime serve -Scli` (when installed) and by Wisp, under wrk at c=1 and c=16;
# then Wisp's first-request latency after a deploy and after a restart (cold starts).
#
# Run with: bench/http-hello/run.sh            (DURATION=10s by default; e.g. DURATION=5s;
#           WISP=path/to/wisp to run another build, for an A/B)
#           ROUTE_AUTH=key bench/http-hello/run.sh   (Wisp's /hello route takes `auth = "key"`:
#           wrk sends `Authorization: Bearer $KEY`, an invoke key made through `POST /v1/keys`
#           with the data dir's admin key, or $KEY when set; the reference runs are the same)
# Needs: wrk (apt-get install wrk). Optional: wasmtime 48.x on PATH
#        (cargo install wasmtime-cli --version 48.0.8 --locked, ~15 min).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
duration="${DURATION:-10s}"
route_auth="${ROUTE_AUTH:-public}"
case "$route_auth" in public|key) ;; *) echo "ROUTE_AUTH is public or key, not $route_auth" >&2; exit 2;; esac
wrk_args=()   # extra wrk arguments for the Wisp runs (the key's header)
threads="${THREADS:-1}"
restarts="${RESTARTS:-7}"
component="examples/hello/wasm/hello.wasm"
# shellcheck source=../lib.sh
source "$root/bench/lib.sh"   # $work (removed at exit), $pids (killed at exit)

need wrk

echo "building (release)…" >&2
target="${CARGO_TARGET_DIR:-$root/target}"
if [ -n "${WISP:-}" ]; then   # an A/B: the wisp binary given, only the reference built
    cargo build --release --locked -q -p wisp-bench-hyper-hello
else
    cargo build --release --locked -q -p wisp -p wisp-bench-hyper-hello
fi
wisp="${WISP:-$target/release/wisp}"
hyper="$target/release/wisp-bench-hyper-hello"

# wrk URL CONNECTIONS → "rps p50_us p99_us"
measure() {
    local url="$1" c="$2"
    wrk -t"$threads" -c"$c" -d1s "${wrk_args[@]}" "$url" >/dev/null 2>&1 || true   # warm-up
    local out
    out="$(wrk -t"$threads" -c"$c" -d"$duration" --latency "${wrk_args[@]}" "$url")"
    local rps p50 p99
    rps="$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")"
    p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
    p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
    local errors
    errors="$(awk '/Non-2xx|Socket errors/' <<<"$out")"
    [ -n "$errors" ] && echo "  wrk reported: $errors" >&2
    echo "$rps $(to_us "$p50") $(to_us "$p99")"
}

# wrk latency "123.45us" / "1.20ms" / "2.00s" → microseconds
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) print int(n + 0.5)
        else if (v ~ /ms$/) print int(n * 1000 + 0.5)
        else if (v ~ /s$/) print int(n * 1000000 + 0.5)
        else print v
    }'
}

declare -A rps p50 p99
run_all() { # name url
    for c in 1 16; do
        read -r r a b < <(measure "$2" "$c")
        rps[$1,$c]=$r; p50[$1,$c]=$a; p99[$1,$c]=$b
        printf '  %-15s c=%-3s %8s rps   p50 %6s us   p99 %6s us\n' "$1" "$c" "$r" "$a" "$b" >&2
    done
}

echo "raw hyper" >&2
start hyper "$hyper" "127.0.0.1:$(free_port)"
run_all hyper "http://$addr/hello"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

wasmtime_state=absent
if command -v wasmtime >/dev/null && wasmtime --version | grep -q '^wasmtime 48\.'; then
    echo "wasmtime serve -Scli ($(wasmtime --version))" >&2
    port="$(free_port)"
    wasmtime serve -Scli --addr "127.0.0.1:$port" "$component" >"$work/wasmtime.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$port/hello" && break; sleep 0.05; done
    run_all wasmtime "http://127.0.0.1:$port/hello"
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
    wasmtime_state=present
else
    echo "wasmtime serve: skipped (wasmtime 48.x not on PATH; cargo install wasmtime-cli --version 48.0.8 --locked)" >&2
fi

echo "wisp (route auth: $route_auth)" >&2
data="$work/wisp-data"
port="$(free_port)"
app=examples/hello
if [ "$route_auth" = key ]; then
    # The same app, its route behind `auth = "key"`.
    app="$work/hello-key"
    mkdir -p "$app/wasm"
    cp "$component" "$app/wasm/hello.wasm"
    printf '[app]\nname = "hello"\n\n[functions.hello]\nsource = "wasm/hello.wasm"\nkind = "http"\nroutes = [{ path = "/hello", auth = "key" }]\n' >"$app/wisp.toml"
fi
start wisp "$wisp" up "$app" --listen "127.0.0.1:$port" --data-dir "$data"
if [ "$route_auth" = key ]; then
    key="${KEY:-}"
    if [ -z "$key" ]; then
        admin="$(cat "$data/admin.key")"
        key="$(curl -sf -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
            -d '{"namespace": "default", "role": "invoke"}' "http://$addr/v1/keys" |
            sed -n 's/.*"token" *: *"\([^"]*\)".*/\1/p')"
        [ -n "$key" ] || key="$admin"   # no POST /v1/keys: the admin key invokes too
    fi
    status="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "http://$addr/hello")"
    [ "$status" = 200 ] || { echo "the key route answered $status with the key; stopping" >&2; exit 1; }
    wrk_args=(-H "Authorization: Bearer $key")
fi
run_all wisp "http://$addr/hello"
wrk_args=()

# Cold starts. After a deploy: a new function (the code is loaded at deploy; its
# first request is its first instance). After a restart: the code is loaded from the
# artifact cache by the first request.
ttfb_ms() { curl -s -o /dev/null -w '%{time_starttransfer}' "$1" | awk '{printf "%.3f", $1 * 1000}'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
deploy_samples=()
for i in $(seq 1 "$restarts"); do
    mkdir -p "$work/app$i/wasm"
    cp "$component" "$work/app$i/wasm/hello.wasm"
    printf '[app]\nname = "cold%s"\n\n[functions.cold%s]\nsource = "wasm/hello.wasm"\nkind = "http"\nenv = { RUN = "%s" }\nroutes = ["/cold%s"]\n' "$i" "$i" "$i" "$i" >"$work/app$i/wisp.toml"
    WISP_SERVER="http://$addr" WISP_DATA_DIR="$data" "$wisp" deploy "$work/app$i" >/dev/null
    deploy_samples+=("$(ttfb_ms "http://$addr/cold$i")")
done
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

restart_samples=()
for i in $(seq 1 "$restarts"); do
    sleep 1   # let the previous process's exit (unmapping its instance pool) settle
    start restart "$wisp" serve --listen "127.0.0.1:$port" --data-dir "$data"
    restart_samples+=("$(ttfb_ms "http://$addr/hello")")
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
done
cold_deploy="$(printf '%s\n' "${deploy_samples[@]}" | median)"
cold_restart="$(printf '%s\n' "${restart_samples[@]}" | median)"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "http-hello: $component, wrk -t$threads -d$duration, median of $restarts cold starts, wisp route auth: $route_auth"
printf '%-22s %10s %10s %10s %10s %10s %10s\n' "" "rps c=1" "p50 us" "p99 us" "rps c=16" "p50 us" "p99 us"
for name in hyper wasmtime wisp; do
    [ -z "${rps[$name,16]:-}" ] && continue
    printf '%-22s %10s %10s %10s %10s %10s %10s\n' "$name" "${rps[$name,1]}" "${p50[$name,1]}" "${p99[$name,1]}" "${rps[$name,16]}" "${p50[$name,16]}" "${p99[$name,16]}"
done
echo "wisp/hyper rps:          c=1 $(ratio "${rps[wisp,1]}" "${rps[hyper,1]}")  c=16 $(ratio "${rps[wisp,16]}" "${rps[hyper,16]}")"
if [ "$wasmtime_state" = present ]; then
    echo "wisp/wasmtime-serve rps: c=1 $(ratio "${rps[wisp,1]}" "${rps[wasmtime,1]}")  c=16 $(ratio "${rps[wisp,16]}" "${rps[wasmtime,16]}")"
    wasmtime_rps="${rps[wasmtime,16]}"
else
    echo "wisp/wasmtime-serve rps: absent (wasmtime 48.x not installed)"
    wasmtime_rps=absent
fi
echo "cold start, first byte:  after deploy ${cold_deploy} ms (samples: ${deploy_samples[*]})"
echo "                         after restart ${cold_restart} ms (samples: ${restart_samples[*]})"
echo "RESULT wisp_rps=${rps[wisp,16]} hyper_rps=${rps[hyper,16]} wasmtime_serve_rps=${wasmtime_rps} cold_restart_ms=${cold_restart}"

#!/usr/bin/env bash
# bench/invoke-chain: what one function-to-function call costs. A chain of three http-kit
# functions, chain-a → chain-b → chain-c, each calling the next in-process through the
# platform address (http://wisp.internal, Lambda's Invoke API, over wasi:http), and the same
# chain of plat-a → plat-b → plat-c calling through `wisp:platform/functions` (one host call
# per hop), against one function, `single`, doing the same work (the end of the chain:
# `Hello, world!`), under wrk at c=16 in interleaved rounds of the same run; the per-hop cost
# of each way from the rates, against the issue's floor (<= 100 us per hop).
# bench/invoke-chain/README.md says how it is derived.
#
# Run with: bench/invoke-chain/run.sh     (DURATION=10s per measurement, ROUNDS=3;
#                                          e.g. DURATION=5s ROUNDS=5 bench/invoke-chain/run.sh;
#                                          WISP=path/to/wisp runs another build, for an A/B)
#           C1=0 leaves out the unloaded (c=1) rounds, which only add a diagnostic line.
# Needs: wrk (apt-get install wrk), curl, python3.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
duration="${DURATION:-10s}"
rounds="${ROUNDS:-3}"
with_c1="${C1:-1}"
conns=16
hops=2
component=tests/fixtures/http-kit.wasm
# shellcheck source=../lib.sh
source "$root/bench/lib.sh"   # $work (removed at exit), $pids (killed at exit), $auth
need wrk curl python3

release_wisp   # $WISP: the given build (WISP=path/to/wisp, for an A/B), else this checkout's

start wisp "$WISP" serve --listen "127.0.0.1:$(free_port)" --s3-listen off --data-dir "$work/wisp"
echo "wisp serve on $addr, data in $work/wisp" >&2

# deploy NAME ROUTE ENV_JSON INVOKE_JSON: http-kit as NAME on ROUTE. KIT_ACTION=chain makes
# the kit chain when it is called (`POST /`) as well as on its route (`…/chain`).
deploy() {
    local config
    config="{\"kind\": \"http\", \"routes\": [{\"path\": \"$2\"}], \"env\": $3, \"invoke\": $4, \"max_concurrency\": 32}"
    local status
    status="$(curl -s "${auth[@]}" -o "$work/deploy-$1.json" -w '%{http_code}' -X PUT \
        "http://$addr/v1/functions/$1" -F "config=$config;type=application/json" -F "code=@$component")"
    [ "$status" = 201 ] || { echo "deploying $1 answered $status: $(cat "$work/deploy-$1.json")" >&2; exit 1; }
}
deploy chain-c /chain-c/chain '{"KIT_ACTION": "chain"}' '[]'
deploy chain-b /chain-b/chain '{"KIT_ACTION": "chain", "CHAIN_NEXT": "chain-c"}' '["chain-c"]'
deploy chain-a /chain-a/chain '{"KIT_ACTION": "chain", "CHAIN_NEXT": "chain-b"}' '["chain-b"]'
deploy single /single/chain '{"KIT_ACTION": "chain"}' '[]'
deploy plat-c /plat-c/chain '{"KIT_ACTION": "chain"}' '[]'
deploy plat-b /plat-b/chain '{"KIT_ACTION": "chain", "CHAIN_NEXT": "plat-c", "CHAIN_VIA": "platform"}' '["plat-c"]'
deploy plat-a /plat-a/chain '{"KIT_ACTION": "chain", "CHAIN_NEXT": "plat-b", "CHAIN_VIA": "platform"}' '["plat-b"]'
# The breaker's fail-fast answer: `breaker-caller` calls `flaky`, which traps, until the
# breaker on breaker-caller → flaky opens (3 calls); then each call is refused at once.
breaker='{"failure_rate": 0.5, "min_calls": 3, "window": "1h", "open_for": "1h"}'
config="{\"kind\": \"http\", \"env\": {\"KIT_ACTION\": \"trap\"}, \"breaker\": $breaker}"
[ "$(curl -s "${auth[@]}" -o /dev/null -w '%{http_code}' -X PUT "http://$addr/v1/functions/flaky" \
    -F "config=$config;type=application/json" -F "code=@$component")" = 201 ] || { echo "deploying flaky failed" >&2; exit 1; }
deploy breaker-caller /breaker-caller/call '{}' '["flaky"]'

declare -A url=([chain]="http://$addr/chain-a/chain" [platform]="http://$addr/plat-a/chain"
    [single]="http://$addr/single/chain")
variants=(chain platform single)

# invocations NAME → how many invocations of NAME the store has recorded
invocations() {
    curl -sf "${auth[@]}" "http://$addr/v1/functions/$1/invocations?limit=1" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["summary"]["invocations"])'
}

# Both answer the work's answer, and the chain's reaches chain-c: a fast wrong answer (a
# refused call, an `info` instead of a hop) must not count.
for v in "${variants[@]}"; do
    body="$(curl -s -w '\n%{http_code}' "${url[$v]}")"
    [ "$body" = $'Hello, world!\n\n200' ] || { echo "$v answered, instead of 200 Hello, world!:" >&2; echo "$body" >&2; exit 1; }
done
for _ in $(seq 1 100); do   # records reach the store in batches, a moment after the answer
    [ "$(invocations chain-c)" -ge 1 ] && [ "$(invocations chain-b)" -ge 1 ] && break
    sleep 0.1
done
for _ in $(seq 1 100); do
    [ "$(invocations plat-c)" -ge 1 ] && [ "$(invocations plat-b)" -ge 1 ] && break
    sleep 0.1
done
for f in chain-b chain-c plat-b plat-c; do
    [ "$(invocations "$f")" -ge 1 ] || { echo "a request to ${f%-*}-a did not reach $f" >&2; exit 1; }
done

# rps VARIANT CONNECTIONS → "rps p50_us": requests per second and the median latency
# (any non-2xx answer or socket error stops the run)
rps() {
    wrk -t1 -c"$2" -d1s "${url[$1]}" >/dev/null 2>&1 || true   # warm-up
    local out
    out="$(wrk -t1 -c"$2" -d"$duration" --latency "${url[$1]}")"
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then echo "$1 at c=$2 had errors:" >&2; echo "$out" >&2; exit 1; fi
    local r p50
    r="$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")"
    p50="$(awk '$1=="50%" {v = $2; n = v + 0
        if (v ~ /us$/) n = n; else if (v ~ /ms$/) n *= 1000; else if (v ~ /s$/) n *= 1000000
        printf "%d", n + 0.5}' <<<"$out")"
    echo "$r $p50"
}

# open_us → "p50 p99": how long the caller waits for `circuit_open` once the breaker is open,
# as the guest times its own call (`x-kit-call-us`), over 200 calls made one at a time.
open_us() {
    local times=() i status took
    for i in $(seq 1 203); do
        read -r status took < <(curl -s -o /dev/null -D - "http://$addr/breaker-caller/call?to=flaky" |
            awk 'NR == 1 {s = $2} tolower($1) == "x-kit-call-us:" {t = $2 + 0} END {print s, t}')
        [ "$i" -le 3 ] && continue   # the three failures that open it
        [ "$status" = 503 ] || { echo "an open breaker answered $status" >&2; exit 1; }
        times+=("$took")
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int(NR * 0.5)], a[int(NR * 0.99)]}'
}
read -r open_p50 open_p99 < <(open_us)
[ "$(invocations flaky)" = 3 ] || { echo "flaky ran while its breaker was open" >&2; exit 1; }
echo "open breaker: circuit_open answered in p50 $open_p50 us, p99 $open_p99 us (caller-timed, 200 calls)" >&2

levels=("$conns")
[ "$with_c1" = 1 ] && levels+=(1)
declare -A samples lat
echo "measuring: $rounds rounds × ${#levels[@]} levels × ${#variants[@]} variants × (1 s + $duration)…" >&2
for round in $(seq 1 "$rounds"); do
    # Turns rotate, so that no variant always runs first or on a warmer machine.
    order=("${variants[@]}")
    for _ in $(seq 2 "$round"); do order=("${order[@]:1}" "${order[0]}"); done
    for c in "${levels[@]}"; do
        for v in "${order[@]}"; do
            read -r r p50 < <(rps "$v" "$c")
            samples[$v,$c]+="$r "
            lat[$v,$c]+="$p50 "
            printf 'round %s  c=%-3s %-7s %8s rps  p50 %6s us\n' "$round" "$c" "$v" "$r" "$p50" >&2
        done
    done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# per_hop CHAIN_RPS SINGLE_RPS N → (N/chain − N/single)·1e6 / hops, in µs. With N = the
# machine's cores, at saturation: the machine time one hop costs (what the floor holds).
# With N = the connections: the latency one hop adds at that load (that cost, queued).
per_hop() {
    awk -v a="$1" -v b="$2" -v c="$3" -v h="$hops" 'BEGIN {
        if (a > 0 && b > 0) printf "%.0f", (c / a - c / b) * 1e6 / h; else print "n/a" }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }

chain="$(median <<<"${samples[chain,$conns]}")"
platform="$(median <<<"${samples[platform,$conns]}")"
single="$(median <<<"${samples[single,$conns]}")"
cores="$(nproc)"
hop="$(per_hop "$chain" "$single" "$cores")"
hop_latency="$(per_hop "$chain" "$single" "$conns")"
platform_hop="$(per_hop "$platform" "$single" "$cores")"
# A hop against the machine time of a whole request to one function (`cores / single`):
# what a hop costs in units of the platform's own request, which does not move with the
# machine's speed as the µs figure does.
per_request() {
    awk -v h="$1" -v s="$single" -v c="$cores" 'BEGIN {
        if (h != "n/a" && s > 0) printf "%.2f", h / (c / s * 1e6); else print "n/a" }'
}
hop_ratio="$(per_request "$hop")"
platform_ratio="$(per_request "$platform_hop")"
echo
echo "invoke-chain: $hops hops (chain: wasi:http to the platform address; platform: wisp:platform/functions) against single, http-kit, wrk -t1 -d$duration, $rounds rounds in turns, medians"
printf '%-12s %8s %8s   %s\n' "" "rps" "p50 us" "rounds"
for c in "${levels[@]}"; do
    for v in "${variants[@]}"; do
        printf '%-12s %8s %8s   %s\n' "$v c=$c" "$(median <<<"${samples[$v,$c]}")" \
            "$(median <<<"${lat[$v,$c]}")" "${samples[$v,$c]% }"
    done
done
echo "chain/single rps at c=$conns: $(ratio "$chain" "$single"); platform/single: $(ratio "$platform" "$single")"
if [ "$with_c1" = 1 ]; then
    for v in chain platform; do
        echo "per hop ($v), unloaded (c=1): $(per_hop "$(median <<<"${samples[$v,1]}")" "$(median <<<"${samples[single,1]}")" 1) us"
    done
fi
verdict() { awk -v h="$1" 'BEGIN { print (h != "n/a" && h <= 100) ? "yes" : "no" }'; }
echo "per hop at c=$conns, wasi:http: $hop us of machine time ($cores cores); floor, <= 100 us per hop: $(verdict "$hop")"
echo "per hop at c=$conns, wisp:platform: $platform_hop us of machine time; floor, <= 100 us per hop: $(verdict "$platform_hop")"
echo "per hop at c=$conns, as latency (wasi:http): $hop_latency us (that cost, queued behind $conns connections)"
echo "per hop / one request to one function (machine time): wasi:http $hop_ratio, wisp:platform $platform_ratio"
open_ok="$(awk -v p="$open_p99" 'BEGIN { print (p + 0 < 1000) ? "yes" : "no" }')"
echo "circuit_open answer: p50 $open_p50 us, p99 $open_p99 us; bar, < 1 ms: $open_ok"
echo "RESULT chain_rps=$chain platform_rps=$platform single_rps=$single per_hop_us=$hop per_hop_platform_us=$platform_hop per_hop_latency_us=$hop_latency hop_per_request=$hop_ratio platform_hop_per_request=$platform_ratio circuit_open_us=$open_p50 circuit_open_p99_us=$open_p99"

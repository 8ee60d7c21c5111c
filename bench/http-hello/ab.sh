#!/usr/bin/env bash
# bench/http-hello/ab.sh: an A/B of the request path between two builds of wisp, in one
# sitting: the example `hello` route served by BEFORE, by AFTER, and by AFTER with the
# route behind `auth = "key"` (wrk sends the key), measured in turns, ROUNDS times each,
# at c=1 and c=16. Each request-path layer's issue quotes this against the build before it.
#
# Run with: bench/http-hello/ab.sh BEFORE_WISP AFTER_WISP   (ROUNDS=3, DURATION=10s)
#   e.g. git worktree add /work/before <rev> && (cd /work/before && cargo build --release -p wisp)
#        bench/http-hello/ab.sh /work/before/target/release/wisp target/release/wisp
#   KEY_ROUTE=0 leaves out the key route (for a BEFORE and AFTER that both lack route auth).
#   AFTER_PATCH='{"quota": {...}}' sets the AFTER server's `default` namespace with that
#   merge patch first (e.g. BEFORE = AFTER = one build, to measure admission under a quota).
# Needs: wrk (apt-get install wrk).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
before="${1:?usage: ab.sh BEFORE_WISP AFTER_WISP}"
after="${2:?usage: ab.sh BEFORE_WISP AFTER_WISP}"
rounds="${ROUNDS:-3}"
duration="${DURATION:-10s}"
key_route="${KEY_ROUTE:-1}"
# shellcheck source=../lib.sh
source "$root/bench/lib.sh"
need wrk

component="examples/hello/wasm/hello.wasm"
keyed="$work/hello-key"
mkdir -p "$keyed/wasm"
cp "$component" "$keyed/wasm/hello.wasm"
printf '[app]\nname = "hello"\n\n[functions.hello]\nsource = "wasm/hello.wasm"\nkind = "http"\nroutes = [{ path = "/hello", auth = "key" }]\n' >"$keyed/wisp.toml"

declare -A url
start before "$before" up examples/hello --listen "127.0.0.1:$(free_port)" --data-dir "$work/before"
url[before]="http://$addr/hello"
start after "$after" up examples/hello --listen "127.0.0.1:$(free_port)" --data-dir "$work/after"
url[after]="http://$addr/hello"
if [ -n "${AFTER_PATCH:-}" ]; then
    curl -sf -X PATCH "${auth[@]}" -H 'content-type: application/json' -d "$AFTER_PATCH" \
        "http://$addr/v1/namespaces/default" >/dev/null \
        || { echo "AFTER_PATCH was refused" >&2; exit 1; }
fi
variants=(before after)
if [ "$key_route" = 1 ]; then
    start after-key "$after" up "$keyed" --listen "127.0.0.1:$(free_port)" --data-dir "$work/after-key"
    url[after-key]="http://$addr/hello"
    status="$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "${url[after-key]}")"
    [ "$status" = 200 ] || { echo "the key route answered $status with the key" >&2; exit 1; }
    status="$(curl -s -o /dev/null -w '%{http_code}' "${url[after-key]}")"
    [ "$status" = 401 ] || { echo "the key route answered $status without a key" >&2; exit 1; }
    variants+=(after-key)
fi

# rps VARIANT CONNECTIONS → requests per second (any non-2xx answer fails the run)
rps() {
    local extra=()
    [ "$1" = after-key ] && extra=("${auth[@]}")
    wrk -t1 -c"$2" -d1s "${extra[@]}" "${url[$1]}" >/dev/null 2>&1 || true   # warm-up
    local out
    out="$(wrk -t1 -c"$2" -d"$duration" "${extra[@]}" "${url[$1]}")"
    if grep -q 'Non-2xx' <<<"$out"; then echo "$1 answered non-2xx:" >&2; echo "$out" >&2; exit 1; fi
    awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out"
}

declare -A samples
for round in $(seq 1 "$rounds"); do
    for c in 1 16; do
        for v in "${variants[@]}"; do
            r="$(rps "$v" "$c")"
            samples[$v,$c]+="$r "
            printf 'round %s  c=%-3s %-10s %8s rps\n' "$round" "$c" "$v" "$r" >&2
        done
    done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
echo
echo "http-hello A/B: $rounds rounds in turns, wrk -t1 -d$duration, medians"
result="RESULT"
for c in 1 16; do
    b="$(median <<<"${samples[before,$c]}")"
    a="$(median <<<"${samples[after,$c]}")"
    line="c=$c  before $b rps (${samples[before,$c]% })  after $a rps (${samples[after,$c]% })  after/before $(ratio "$a" "$b")"
    result+=" before_c${c}=$b after_c${c}=$a public_ratio_c${c}=$(ratio "$a" "$b")"
    if [ "$key_route" = 1 ]; then
        k="$(median <<<"${samples[after-key,$c]}")"
        line+="  key route $k rps (${samples[after-key,$c]% })  key/before $(ratio "$k" "$b")"
        result+=" key_c${c}=$k key_ratio_c${c}=$(ratio "$k" "$b")"
    fi
    echo "$line"
done
echo "$result"

#!/usr/bin/env bash
# bench/scale-from-zero: the latency of the first request to a wasm http function
# whose pool was released (scale to zero: its code unloaded), against the same
# request to a warm pool and to raw hyper, in one run.
#
# Wisp runs with --keep-alive 0s, so every pool is released the moment its request
# ends and every request is a scale-from-zero: the code is reloaded from the
# artifact cache (mmap + InstancePre) before the guest runs. The client checks each
# answer's Server-Timing header, and counts only requests that really were cold.
#
# Run with: bench/scale-from-zero/run.sh        (COUNT=300 requests each by default;
#           WISP=path/to/wisp runs another build, for an A/B)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
count="${COUNT:-300}"
gap_ms="${GAP_MS:-5}"
# shellcheck source=../lib.sh
source "$root/bench/lib.sh"   # $work (removed at exit), $pids (killed at exit)
need python3

echo "building (release)…" >&2
target="${CARGO_TARGET_DIR:-$root/target}"
if [ -n "${WISP:-}" ]; then   # an A/B: the wisp binary given, only the reference built
    cargo build --release --locked -q -p wisp-bench-hyper-hello
    wisp="$WISP"
else
    cargo build --release --locked -q -p wisp -p wisp-bench-hyper-hello
    wisp="$target/release/wisp"
fi
hyper="$target/release/wisp-bench-hyper-hello"
client="$root/bench/scale-from-zero/client.py"

# sample NAME URL → writes "ms cold|warm" lines to $work/NAME
sample() {
    python3 "$client" "$2" 20 "$gap_ms" >/dev/null   # warm-up (connections, caches)
    python3 "$client" "$2" "$count" "$gap_ms" >"$work/$1"
}

# stats FILE KIND → "p50 p99 n" over the lines of KIND
stats() {
    awk -v kind="$2" '$2 == kind {print $1}' "$1" | sort -n | awk '
        {a[NR] = $1}
        END {
            if (NR == 0) { print "n/a n/a 0"; exit }
            p50 = a[int((NR + 1) / 2)]; i = int(NR * 0.99 + 0.5); if (i < 1) i = 1
            printf "%.3f %.3f %d\n", p50, a[i], NR
        }'
}

start hyper "$hyper" "127.0.0.1:$(free_port)"
sample hyper "http://$addr/hello"

start warm "$wisp" up examples/hello --listen "127.0.0.1:$(free_port)" --data-dir "$work/data-warm"
sample warm "http://$addr/hello"

start cold "$wisp" up examples/hello --keep-alive 0s --listen "127.0.0.1:$(free_port)" --data-dir "$work/data-cold"
sample cold "http://$addr/hello"

read -r hyper_p50 hyper_p99 _ < <(stats "$work/hyper" warm)
read -r warm_p50 warm_p99 _ < <(stats "$work/warm" warm)
read -r cold_p50 cold_p99 cold_n < <(stats "$work/cold" cold)
missed="$(awk '$2 == "warm"' "$work/cold" | wc -l)"
init_p50="$(awk '$2 == "cold" {print $3}' "$work/cold" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"

echo
echo "scale-from-zero: examples/hello, $count sequential requests each, ${gap_ms} ms apart, one connection"
printf '%-34s %9s %9s\n' "" "p50 ms" "p99 ms"
printf '%-34s %9s %9s\n' "raw hyper" "$hyper_p50" "$hyper_p99"
printf '%-34s %9s %9s\n' "wisp, warm pool" "$warm_p50" "$warm_p99"
printf '%-34s %9s %9s   (%s cold of %s; %s found warm)\n' "wisp, released pool (scale from 0)" "$cold_p50" "$cold_p99" "$cold_n" "$count" "$missed"
awk -v c="$cold_p50" -v w="$warm_p50" -v i="$init_p50" 'BEGIN { printf "cold/warm p50: %.2fx (+%.3f ms; the server timed the reload itself at %s ms p50)\n", c / w, c - w, i }'
echo "RESULT p50_ms=$cold_p50 p99_ms=$cold_p99"

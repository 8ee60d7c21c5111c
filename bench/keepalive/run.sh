#!/usr/bin/env bash
# bench/keepalive: replays a day of an Azure-shaped invocation trace (OrcBench, seed pinned)
# through Wisp's real autoscaler (crates/scaling) with a simulated clock, under fixed
# keep-alive windows of 1, 5, 10, 20 and 60 minutes and under the adaptive (hybrid histogram)
# policy, and reports per-function cold-start percentages, memory held warm while idle, and
# the cold-start latency added. The reference is fixed 10 minutes (AWS Lambda's window).
#
# Run with: bench/keepalive/run.sh [REPLAY FLAGS…]
#   e.g. bench/keepalive/run.sh --memory-mb 256 --python-cold-ms 120
# The trace is generated once (about 4 minutes on one core, 1.7 GB) and cached under
# target/keepalive/; later runs take about half a minute. Needs python3 (pip installs
# orcbench when it is missing).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

# A full day so every function's idle-time histogram fills; 5% of OrcBench's workload
# (465 functions, 20.7 M invocations); the seed is pinned so every run replays the same trace.
group=10 scale=0.05 minutes=1440 seed=42
orcbench_version=0.1.4
cache="target/keepalive" # relative to the repository root, so the report names it briefly
trace="$cache/orcbench-n$group-scale$scale-runtime$minutes-seed$seed.csv"

if [ ! -s "$trace" ]; then
    python3 -c 'import orcbench' 2>/dev/null \
        || python3 -m pip install --quiet "orcbench==$orcbench_version" >&2
    mkdir -p "$cache"
    echo "generating the trace (once; about 4 minutes)…" >&2
    python3 -m orcbench trace --N "$group" --scale "$scale" --runtime "$minutes" --seed "$seed" \
        --out "$trace.partial" >&2
    mv "$trace.partial" "$trace"
fi

echo "building (release)…" >&2
cargo build --release --locked -q -p wisp-scaling --bin keepalive-replay
"${CARGO_TARGET_DIR:-$root/target}/release/keepalive-replay" "$trace" "$@"

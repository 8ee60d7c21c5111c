#!/usr/bin/env bash
# bench/kv: key-value calls from a wasm guest (kv-kit's bench route, wasi:keyvalue over the
# engine over SQLite) against the same store calls made directly on a SqliteStore by the
# bench's own process, in the same run: c=16, rounds interleaved, medians reported; the
# per-call cost of each side and the floor's verdict (a guest call costs <= 20 us over a
# direct one). bench/kv/README.md says how the per-call costs are derived.
#
# Run with: bench/kv/run.sh            (DURATION=5s per row, ROUNDS=3, CALLS=50 calls per invocation;
#                                       e.g. DURATION=10s ROUNDS=5 bench/kv/run.sh)
# The scratch directory is `mktemp -d`: TMPDIR picks the disk under test (both databases are there).
# Needs: nothing beyond cargo and curl (the load client is bench/kv's own binary).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
duration="${DURATION:-5s}"
rounds="${ROUNDS:-3}"
calls="${CALLS:-50}"
component=tests/fixtures/kv-kit.wasm
# shellcheck source=../lib.sh
source "$root/bench/lib.sh"   # $work (removed at exit), $pids (killed at exit), $auth

echo "building (release)…" >&2
cargo build --release --locked -q -p wisp -p wisp-bench-kv
target="${CARGO_TARGET_DIR:-$root/target}"
wisp="$target/release/wisp"
bench="$target/release/wisp-bench-kv"

start wisp "$wisp" serve --listen "127.0.0.1:$(free_port)" --s3-listen off --data-dir "$work/wisp"
echo "wisp serve on $addr, data in $work/wisp" >&2

# The store, and kv-kit granted it; the bench route is GET /kv/bench/k/bench?op=…&n=….
status="$(curl -s "${auth[@]}" -o "$work/store.json" -w '%{http_code}' -X PUT "http://$addr/v1/kv/bench")"
[ "$status" = 201 ] || { echo "creating the store answered $status: $(cat "$work/store.json")" >&2; exit 1; }
config='{"kind": "http", "routes": [{"path": "/kv/*"}], "kv": ["bench"], "max_concurrency": 32}'
status="$(curl -s "${auth[@]}" -o "$work/deploy.json" -w '%{http_code}' -X PUT "http://$addr/v1/functions/kvbench" \
    -F "config=$config;type=application/json" -F "code=@$component")"
[ "$status" = 201 ] || { echo "deploy answered $status: $(cat "$work/deploy.json")" >&2; exit 1; }

echo "measuring: 7 rows × $rounds rounds × ($duration + 0.5 s)…" >&2
"$bench" "$addr" "$work/direct/kv.db" "$duration" "$rounds" "$calls"

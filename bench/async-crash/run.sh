#!/usr/bin/env bash
# bench/async-crash: async invocations across crashes. Runs the end-to-end test
# `async_crash` (tests/all/async_crash.rs): a Python function records every run while
# async invokes arrive at 150/s for 10 s and the server is killed with SIGKILL and
# restarted on the same data directory six times; then every event that was answered
# 202 must have run (lost=0), and at most 1% more than once.
#
# Run with: bench/async-crash/run.sh        (a debug build, as the tests use; ~30 s)
# The last line is the test's RESULT line.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

echo "building the tests (debug)…" >&2
status=0
cargo test --test all --no-run -q 2>&1 | tail -n 20 >&2
cargo test --test all -q async_crash -- --nocapture 2>&1 | tee "$log" || status=$?
result="$(grep -a '^RESULT ' "$log" | tail -n1 || true)"
echo "${result:-RESULT missing: the test did not get as far as its count (exit $status)}"
exit "$status"

#!/usr/bin/env bash
# bench/lambda: native functions under Wisp — cold start (first invocation of a new
# version: spawn, sandbox, init, invoke) and warm invocation overhead, for a Rust binary
# built with AWS's `lambda_runtime`, and for Python and Node handlers under Wisp's own runtimes.
#
# References, measured in the same run:
# - spawn: starting the Rust bootstrap binary and letting it exit (hyperfine -N), the
#   floor of any cold start;
# - in-process: the same handler logic called directly in its own language;
# - loopback HTTP: raw hyper answering over the same kind of connection (wrk c=1).
#
# Run with: bench/lambda/run.sh          (DURATION=10s COLD=20 by default)
# Needs: wrk and hyperfine (apt-get install wrk hyperfine), python3. Run as root for the
# full sandbox (cgroups, namespaces), as a production server would.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
duration="${DURATION:-10s}"
cold_runs="${COLD:-20}"
# shellcheck source=../lib.sh
source "$root/bench/lib.sh"   # $work (removed at exit), $pids (killed at exit)

need wrk hyperfine

echo "building (release)…" >&2
cargo build --release --locked -q -p wisp --bin wisp --example lambda-rust-fixture -p wisp-bench-hyper-hello
target="${CARGO_TARGET_DIR:-$root/target}"
wisp="$target/release/wisp"
fixture="$target/release/examples/lambda-rust-fixture"
hyper="$target/release/wisp-bench-hyper-hello"

# wrk_p50 URL [BODY] → p50 latency in µs at one connection
wrk_p50() {
    local url="$1" body="${2:-}" script="$work/post.lua"
    if [ -n "$body" ]; then
        printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' \
            "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$body")" >"$script"
    else
        : >"$script"
    fi
    wrk -t1 -c1 -d1s "${auth[@]}" -s "$script" "$url" >/dev/null 2>&1 || true   # warm-up
    wrk -t1 -c1 -d"$duration" --latency "${auth[@]}" -s "$script" "$url" | python3 -c '
import re, sys
text = sys.stdin.read()
m = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
if not m:
    sys.exit("cannot read wrk output:\n" + text)
value, unit = float(m.group(1)), m.group(2)
print("%.1f" % (value * {"us": 1, "ms": 1e3, "s": 1e6}[unit]))'
}

# The functions' code.
mkdir -p "$work/node"
cat >"$work/node/index.js" <<'JS'
exports.handler = async (event, context) => ({ event, requestId: context.awsRequestId });
JS
python3 - "$fixture" "$work/rust.zip" "$root/tests/native/python-kit" "$work/python.zip" "$work/node" "$work/node.zip" <<'PY'
import os, sys, zipfile
binary, rust_zip, kit, py_zip, node_dir, node_zip = sys.argv[1:]
with zipfile.ZipFile(node_zip, "w", zipfile.ZIP_DEFLATED) as z:
    z.write(os.path.join(node_dir, "index.js"), "index.js")
with zipfile.ZipFile(rust_zip, "w", zipfile.ZIP_STORED) as z:
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = (0o100755 << 16)
    z.writestr(info, open(binary, "rb").read())
with zipfile.ZipFile(py_zip, "w", zipfile.ZIP_DEFLATED) as z:
    z.write(os.path.join(kit, "app.py"), "app.py")
PY

echo "spawn: the Rust bootstrap starting and exiting…" >&2
hyperfine -N --warmup 5 --runs 100 --export-json "$work/spawn.json" "$fixture --in-process 1" >/dev/null 2>&1
spawn_ms="$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.3f" % (r["median"]*1e3))' "$work/spawn.json")"

echo "in-process handlers…" >&2
rust_inproc_us="$("$fixture" --in-process 200000)"
python_inproc_us="$(cd "$root/tests/native/python-kit" && python3 - <<'PY'
import timeit, types, app
ctx = types.SimpleNamespace(aws_request_id="id", function_name="py", memory_limit_in_mb=128,
                            log_stream_name="s", get_remaining_time_in_millis=lambda: 30000)
event = {"action": "echo"}
n = 100000
print("%.3f" % (timeit.timeit(lambda: app.handler(event, ctx), number=n) / n * 1e6))
PY
)"

node_inproc_us="$(cd "$work/node" && node -e '
const { handler } = require("./index.js");
const context = { awsRequestId: "id" };
(async () => {
  const n = 100000, event = { action: "echo" };
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await handler(event, context);
  console.log((Number(process.hrtime.bigint() - started) / 1e3 / n).toFixed(3));
})();')"

echo "loopback HTTP reference (raw hyper)…" >&2
port="$(free_port)"
"$hyper" "127.0.0.1:$port" >/dev/null 2>&1 &
pids+=($!)
sleep 0.5
hyper_us="$(wrk_p50 "http://127.0.0.1:$port/")"

start wisp "$wisp" serve --listen 127.0.0.1:0 --data-dir "$work/data"
sandbox="$(grep -o 'process functions run as .*' "$work/wisp.log" | head -n1)"
echo "wisp: $sandbox" >&2

# cold NAME CONFIG_JSON ZIP → median ms of the first invocation of $cold_runs new versions
cold() {
    python3 - "$addr" "$1" "$2" "$3" "$cold_runs" <<'PY'
import http.client, json, os, statistics, sys, time, uuid
auth = {"Authorization": "Bearer " + os.environ["WISP_KEY"]}
addr, name, config, zip_path, runs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], int(sys.argv[5])
code = open(zip_path, "rb").read()
def deploy(config):
    boundary = uuid.uuid4().hex
    parts = [("config", "application/json", json.dumps(config).encode()), ("code", "application/zip", code)]
    body = b""
    for field, mime, data in parts:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{field}\"\r\n"
                 f"Content-Type: {mime}\r\n\r\n").encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    c = http.client.HTTPConnection(addr)
    c.request("PUT", f"/v1/functions/{name}", body, {"Content-Type": f"multipart/form-data; boundary={boundary}", **auth})
    r = c.getresponse(); r.read()
    if r.status not in (200, 201):
        sys.exit(f"deploy failed: {r.status}")
times = []
c = http.client.HTTPConnection(addr)
for i in range(runs + 2):
    config["env"] = {"BENCH_RUN": str(i)}          # a new version: a new, empty pool
    deploy(config)
    time.sleep(0.05)
    started = time.perf_counter()
    c.request("POST", f"/v1/functions/{name}/invoke", b'{"action":"echo"}', {"Content-Type": "application/json", **auth})
    r = c.getresponse(); r.read()
    elapsed = time.perf_counter() - started
    if r.status != 200:
        sys.exit(f"invoke failed: {r.status}")
    if i >= 2:
        times.append(elapsed * 1e3)
print("%.2f" % statistics.median(times))
PY
}

echo "rust: cold starts…" >&2
rust_cold_ms="$(cold rust '{"kind":"event","runtime":"process"}' "$work/rust.zip")"
echo "rust: warm invocations…" >&2
rust_p50_us="$(wrk_p50 "http://$addr/v1/functions/rust/invoke" '{"action":"echo"}')"
echo "python: cold starts…" >&2
python_cold_ms="$(cold py '{"kind":"event","runtime":"python","handler":"app.handler"}' "$work/python.zip")"
echo "python: warm invocations…" >&2
python_p50_us="$(wrk_p50 "http://$addr/v1/functions/py/invoke" '{"action":"echo"}')"

echo "node: cold starts…" >&2
node_cold_ms="$(cold nd '{"kind":"event","runtime":"node","handler":"index.handler"}' "$work/node.zip")"
echo "node: warm invocations…" >&2
node_p50_us="$(wrk_p50 "http://$addr/v1/functions/nd/invoke" '{"action":"echo"}')"
node_warm_us="$(python3 -c 'import sys; print("%.1f" % (float(sys.argv[1]) - float(sys.argv[2])))' "$node_p50_us" "$node_inproc_us")"

read -r rust_warm_us python_warm_us rust_over_http python_over_http < <(python3 -c '
import sys
rp, ri, pp, pi, h = map(float, sys.argv[1:])
print("%.1f %.1f %.1f %.1f" % (rp - ri, pp - pi, rp - ri - h, pp - pi - h))' \
    "$rust_p50_us" "$rust_inproc_us" "$python_p50_us" "$python_inproc_us" "$hyper_us")

cat <<EOF2

native functions, $(nproc) cores; $sandbox
  spawn (Rust bootstrap start+exit, median)   ${spawn_ms} ms
  loopback HTTP round trip (raw hyper p50)    ${hyper_us} µs

                 cold (median)   warm invoke p50   in-process   warm overhead   overhead beyond the HTTP hop
  rust           ${rust_cold_ms} ms        ${rust_p50_us} µs          ${rust_inproc_us} µs     ${rust_warm_us} µs        ${rust_over_http} µs
  python         ${python_cold_ms} ms        ${python_p50_us} µs          ${python_inproc_us} µs     ${python_warm_us} µs        ${python_over_http} µs
  node           ${node_cold_ms} ms        ${node_p50_us} µs          ${node_inproc_us} µs     ${node_warm_us} µs

  rust cold - spawn = $(python3 -c "print('%.2f' % ($rust_cold_ms - $spawn_ms))") ms (floor: ≤ 20 ms, goal ≤ 5 ms); warm overhead floor ≤ 1000 µs, goal ≤ 200 µs
EOF2
echo "NODE node_cold_ms=$node_cold_ms node_warm_us=$node_warm_us"
echo "RESULT rust_cold_ms=$rust_cold_ms rust_warm_us=$rust_warm_us python_cold_ms=$python_cold_ms python_warm_us=$python_warm_us spawn_ms=$spawn_ms"

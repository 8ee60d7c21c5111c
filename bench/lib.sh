# Shell helpers shared by the benchmarks. Sourcing this makes $work, a scratch directory,
# and $pids, the background servers; at exit the servers are killed and $work removed.

work="$(mktemp -d)"

# The admin key of every server a benchmark starts (`--bootstrap-key` on its first start),
# which the `wisp` CLI (WISP_KEY) and the benchmarks' requests to the API send:
# `curl "${auth[@]}" …`, `wrk "${auth[@]}" …`.
bench_key="WKBENCHKEYBENCHKEY.bench-admin-secret-0123456789-abcdefghij"
export WISP_BOOTSTRAP_KEY="$bench_key" WISP_KEY="$bench_key"
auth=(-H "Authorization: Bearer $bench_key")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# need TOOL…: installs each missing Debian tool when root, else says how.
need() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null && continue
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get install -y -qq "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null; }
        else
            echo "$tool is needed: apt-get install $tool" >&2
            exit 1
        fi
    done
}

# start NAME COMMAND…: starts a server in the background, waits for its
# "Serving HTTP on http://ADDR/" line, and sets $addr.
start() {
    local log="$work/$1.log"; shift
    "$@" >"$work/stdout.log" 2>"$log" &
    pids+=($!)
    for _ in $(seq 1 600); do
        addr="$(sed -n 's#.*Serving HTTP on http://\([^/]*\)/.*#\1#p' "$log" | head -n1)"
        [ -n "$addr" ] && return 0
        sleep 0.05
    done
    echo "server did not start: $*" >&2
    cat "$log" >&2
    exit 1
}

# release_wisp: sets $WISP to the wisp binary to measure: the one given in WISP (an A/B of
# another build), else this checkout's, built in release mode.
release_wisp() {
    if [ -z "${WISP:-}" ]; then
        echo "building (release)…" >&2
        cargo build --release --locked -q -p wisp
        WISP="${CARGO_TARGET_DIR:-$root/target}/release/wisp"
    fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# many_functions N: starts `$WISP serve` (sets $addr and WISP_SERVER), deploys an app of N
# functions f0…f(N-1), each examples/hello's http function on the route /fI, and invokes
# each once.
many_functions() {
    local n="$1"
    mkdir -p "$work/app"
    cp "$root/examples/hello/wasm/hello.wasm" "$work/app/hello.wasm"
    {
        printf '[app]\nname = "many"\n'
        for i in $(seq 0 $((n - 1))); do
            printf '\n[functions.f%d]\nsource = "hello.wasm"\nkind = "http"\nroutes = ["/f%d"]\n' "$i" "$i"
        done
    } >"$work/app/wisp.toml"
    start wisp "$WISP" serve --listen 127.0.0.1:0 --data-dir "$work/data"
    export WISP_SERVER="http://$addr"
    "$WISP" deploy "$work/app" >/dev/null
    echo "deployed $n functions; invoking each once…" >&2
    for i in $(seq 0 $((n - 1))); do printf 'url = "http://%s/f%d"\noutput = "/dev/null"\n' "$addr" "$i"; done >"$work/urls"
    curl -s --parallel --parallel-max 16 -K "$work/urls" 2>/dev/null
}

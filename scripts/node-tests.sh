#!/usr/bin/env bash
# Installs the Node clients the tests run (tests/api/compat/node/: socket.io-client from the npm
# registry): `npm ci` only when package-lock.json changed since the last install (its digest is
# kept in node_modules), as scripts/web.sh does for the UI. The tests call it (and `make test`).
set -euo pipefail
cd "$(dirname "$0")/../tests/api/compat/node"

if ! command -v npm >/dev/null 2>&1; then
    echo "node-tests.sh: npm is needed for the Node clients' tests (Debian: apt-get install npm)" >&2
    exit 1
fi
stamp=node_modules/.jobcast-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    # --ignore-scripts: socket.io-client and its dependencies are plain JavaScript.
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
    echo "$want" > "$stamp"
fi

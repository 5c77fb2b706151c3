#!/usr/bin/env bash
# Builds the web UI (web/) into src/jobcast/web/static/: `npm ci` only when package-lock.json
# changed since the last install (its digest is kept in web/node_modules), then the type check
# and the bundle. `make web` calls it when a source changed; the wheel's build hook when the
# built files are missing.
set -euo pipefail
cd "$(dirname "$0")/../web"

if ! command -v npm >/dev/null 2>&1; then
    echo "web.sh: npm is needed to build the web UI (Debian: apt-get install npm)" >&2
    exit 1
fi
stamp=node_modules/.jobcast-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    # --ignore-scripts: nothing here needs an install script (esbuild finds its platform
    # binary through its optional dependency), and none runs that was not reviewed.
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
    echo "$want" > "$stamp"
fi
node_modules/.bin/tsc --noEmit -p tsconfig.json
node build.mjs

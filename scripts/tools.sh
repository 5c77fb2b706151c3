#!/usr/bin/env bash
# Installs the real programs the tests drive (tmux, asciinema, promtool, chromium, redis-server, ...) when missing.
# Idempotent and quick when all are there: one `command -v` per tool, apt only for what lacks.
set -euo pipefail

# command -> Debian package that provides it
declare -A PACKAGES=(
    [tmux]=tmux
    [screen]=screen
    [script]=bsdutils
    [asciinema]=asciinema
    [promtool]=prometheus
    # the browser the web UI's tests drive (Playwright never downloads one here)
    [chromium]=chromium
    # builds the web UI (scripts/web.sh)
    [npm]=npm
    # the Redis store's tests start their own (tests/conftest.py `redis_server`)
    [redis-server]=redis-server
)

missing=()
for cmd in "${!PACKAGES[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${PACKAGES[$cmd]}")
done
# the tests launch this very path (tests/conftest.py `browser`)
if [ ! -x /usr/bin/chromium ] && [[ ! " ${missing[*]} " == *" chromium "* ]]; then
    missing+=(chromium)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "tools.sh: missing ${missing[*]} and no apt-get to install them; install them by hand" >&2
    exit 1
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "tools.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# --no-install-recommends: prometheus would otherwise pull a whole node-exporter stack.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

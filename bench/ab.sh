#!/usr/bin/env bash
# Same-hour A/B, interleaved: the code at OLD (default cf0afe1, before issue 11) against this
# checkout for bulk, ttfb and fanout-sse; then this checkout's fan-out with auth on and off.
#   bash bench/ab.sh            figures in $OUT (default /tmp/jobcast-ab), one file per run
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${OLD:-cf0afe1}
OUT=${OUT:-/tmp/jobcast-ab}
TREE=${TREE:-/tmp/jobcast-ab-old}
mkdir -p "$OUT"
[ -d "$TREE" ] || git worktree add -f "$TREE" "$OLD" >/dev/null
PY=.venv/bin/python
for r in 1 2 3; do
  PYTHONPATH="$TREE/src" $PY bench/run.py bulk ttfb fanout-sse --runs 1 > "$OUT/old-$r.txt" 2>&1
  $PY bench/run.py bulk ttfb fanout-sse --runs 1 > "$OUT/new-$r.txt" 2>&1
done
for r in 1 2 3 4; do
  $PY bench/run.py fanout-sse --runs 1 --server-env JOBCAST_AUTH=token > "$OUT/auth-on-$r.txt" 2>&1
  $PY bench/run.py fanout-sse --runs 1 --server-env JOBCAST_AUTH=none > "$OUT/auth-off-$r.txt" 2>&1
done
echo "figures in $OUT"

#!/usr/bin/env bash
# The web UI's third-party browser assets (htmx and its SSE extension), from the npm registry at the
# versions package-lock.json pins, copied into user_service/web/static/vendor (not committed). Node runs
# here only, never when the platform runs. Idempotent: does nothing while the copy is newer than the lock.
#   scripts/web-assets.sh        (npm's work in $PHARMACY_STATE_DIR/web-assets, default .run/)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
vendor=user_service/web/static/vendor
stamp="$vendor/.installed"
[ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ] && [ "$stamp" -nt "$0" ] && exit 0

log() { printf '[web-assets] %s\n' "$*" >&2; }
command -v npm >/dev/null || { log "npm is needed at set-up (Node 20) to fetch htmx; install Node"; exit 1; }
state="${PHARMACY_STATE_DIR:-$root/.run}"
work="$state/web-assets"
rm -rf "$work"
mkdir -p "$work" "$vendor"
cp package.json package-lock.json "$work/"
log "installing htmx from the npm registry (package-lock.json)"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
cp "$work/node_modules/htmx.org/dist/htmx.min.js" "$vendor/htmx.min.js"
cp "$work/node_modules/htmx-ext-sse/dist/sse.min.js" "$vendor/htmx-ext-sse.min.js"
for package in htmx.org htmx-ext-sse; do
  cp "$work/node_modules/$package/LICENSE" "$vendor/$package.LICENSE" 2>/dev/null || true
done
touch "$stamp"

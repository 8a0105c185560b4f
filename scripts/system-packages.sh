#!/usr/bin/env bash
# Installs the Debian packages the scan engine and its tests need: tesseract with English, and the fonts the
# OCR benchmark and tests print prescriptions in; with --browser also chromium, which the web UI's browser
# tests drive (Playwright launches it by its path: `playwright install` cannot download here).
# Idempotent: does nothing when all are present.
#   scripts/system-packages.sh [--browser]        (log in $PHARMACY_STATE_DIR/apt-scan.log, default .run/)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="${PHARMACY_STATE_DIR:-$root/.run}"
mkdir -p "$state"
packages=(tesseract-ocr tesseract-ocr-eng fonts-dejavu-core fonts-liberation2 fonts-freefont-ttf)
[ "${1:-}" = "--browser" ] && packages+=(chromium)

log() { printf '[system-packages] %s\n' "$*" >&2; }

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1
  fi
}

log "installing Debian's ${missing[*]} (log: $state/apt-scan.log)"
# Another apt (infra.sh, a parallel CI step) may hold the lock: wait for it rather than fail.
as_root apt-get -o DPkg::Lock::Timeout=300 update -qq >"$state/apt-scan.log" 2>&1 \
  || { log "apt-get update failed; see $state/apt-scan.log"; exit 1; }
as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
  "${missing[@]}" >>"$state/apt-scan.log" 2>&1 \
  || { log "apt-get install ${missing[*]} failed; see $state/apt-scan.log"; exit 1; }

#!/usr/bin/env bash
# The OCR benchmark: installs tesseract and the fonts when missing, then python -m benchmarks.ocr (--help for options).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/bootstrap.sh
scripts/system-packages.sh
exec .venv/bin/python -m benchmarks.ocr "$@"

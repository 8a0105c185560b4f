#!/usr/bin/env bash
# The store benchmark: starts the store when needed, then benchmarks/store.py (--help for options).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/bootstrap.sh
scripts/infra.sh start-store
eval "$(scripts/infra.sh env)"
exec .venv/bin/python benchmarks/store.py "$@"

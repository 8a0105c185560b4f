#!/usr/bin/env bash
# The saga benchmark: starts RabbitMQ and FerretDB when needed, then python -m benchmarks.saga (--help for options).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/bootstrap.sh
scripts/infra.sh start
eval "$(scripts/infra.sh env)"
exec .venv/bin/python -m benchmarks.saga "$@"

#!/usr/bin/env bash
# Runs the test suite against a real RabbitMQ and a real store (started here unless RABBITMQ_URL / MONGODB_URL are set).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/bootstrap.sh
scripts/system-packages.sh --browser
scripts/infra.sh start
eval "$(scripts/infra.sh env)"
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Runs the test suite against a real RabbitMQ and a real store (started here unless RABBITMQ_URL / MONGODB_URL are set).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/bootstrap.sh
scripts/system-packages.sh --browser
# helm and kubeconform for the chart's tests (tests/unit/test_helm_chart.py): minutes once, then cached.
scripts/k8s-tools.sh >/dev/null
scripts/infra.sh start
eval "$(scripts/infra.sh env)"
exec .venv/bin/python -m pytest "$@"

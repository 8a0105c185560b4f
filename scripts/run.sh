#!/usr/bin/env bash
# Runs the whole platform locally: RabbitMQ, FerretDB and tesseract (installed if missing), then the services.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/bootstrap.sh
scripts/system-packages.sh
scripts/infra.sh start
eval "$(scripts/infra.sh env)"
# A development admin so the catalogue can be filled at once; set your own in the environment.
export ADMIN_EMAIL=${ADMIN_EMAIL:-admin@example.com}
export ADMIN_PASSWORD=${ADMIN_PASSWORD:-admin-password-change-me}
echo "Admin account: $ADMIN_EMAIL / $ADMIN_PASSWORD"
exec .venv/bin/python -m service_runtime.launcher "$@"

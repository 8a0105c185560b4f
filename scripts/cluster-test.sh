#!/usr/bin/env bash
# `make cluster-test`: a three-node RabbitMQ cluster (scripts/cluster.sh) and FerretDB (scripts/infra.sh's
# store), fresh, then tests/cluster against them with RABBITMQ_URL naming every node. Everything started
# here is stopped on the way out, also when the test fails.
#   PHARMACY_STATE_DIR (default .run/cluster-test), CLUSTER_FERRETDB_PORT (27062: its own store, never the
#   FERRETDB_PORT of the platform's infra, which make test may have left running), CLUSTER_PORTS ("5631 5632 5633"),
#   CLUSTER_ORDERS (120): how many orders the patients send. CLUSTER_NODE_PREFIX ("pharmacy-c"): the nodes'
#   names (scripts/cluster.sh); a second cluster test on this machine needs other ports and prefix.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PHARMACY_STATE_DIR="${PHARMACY_STATE_DIR:-$root/.run/cluster-test}"
export FERRETDB_PORT="${CLUSTER_FERRETDB_PORT:-27062}"
# The fault suite's load, sized for this test (its module reads FAULT_ORDERS when imported).
export FAULT_ORDERS="${CLUSTER_ORDERS:-120}"
unset RABBITMQ_URL MONGODB_URL
scripts/bootstrap.sh

stop_everything() {
  scripts/infra.sh stop-store || true
  scripts/cluster.sh stop || true
}
trap stop_everything EXIT

# A fresh cluster each time: the nodes join from scratch (timed) and no queue of an earlier run is left.
stop_everything
rm -rf "$PHARMACY_STATE_DIR/cluster" "$PHARMACY_STATE_DIR/ferretdb"
scripts/cluster.sh start
scripts/infra.sh start-store
eval "$(scripts/cluster.sh env)"
export MONGODB_URL="mongodb://127.0.0.1:$FERRETDB_PORT/"
.venv/bin/python -m pytest -m cluster tests/cluster "$@"

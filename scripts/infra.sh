#!/usr/bin/env bash
# Starts the platform's two backing services on loopback, installing them where they are missing:
#   RabbitMQ from Debian's rabbitmq-server, FerretDB 1.24.2 (SQLite backend) built from the Go module proxy
#   with our patch (scripts/ferretdb/).
# Where RABBITMQ_URL / MONGODB_URL are set, that service is left alone and the URL is used as it is.
#
#   scripts/infra.sh start    start what is missing, wait until both answer
#   scripts/infra.sh stop     stop what this script started
#   scripts/infra.sh env      print the export lines for the URLs in use
#   scripts/infra.sh stop-rabbitmq | start-rabbitmq | stop-store | start-store
#                             one of the two alone (the fault tests restart them under load)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="${PHARMACY_STATE_DIR:-$root/.run}"
bin="$state/bin"
rabbit_port="${RABBITMQ_PORT:-5672}"
mongo_port="${FERRETDB_PORT:-27017}"
ferretdb_version="v1.24.2"
# One node per port, so a second platform (another checkout, CI) can run beside the first.
rabbit_node="pharmacy-$rabbit_port@localhost"
mkdir -p "$state" "$bin"

log() { printf '[infra] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() { # name port seconds [closed]: until the port opens, or with `closed` until it closes
  local deadline=$((SECONDS + $3)) want="${4:-open}"
  while if [ "$want" = open ]; then ! port_open "$2"; else port_open "$2"; fi; do
    if ((SECONDS > deadline)); then log "$1: port $2 not $want within $3 s; see $state/$1.log"; return 1; fi
    sleep 0.2
  done
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1
  fi
}

install_rabbitmq() {
  command -v rabbitmq-server >/dev/null && return 0
  [ -x /usr/sbin/rabbitmq-server ] && return 0
  log "installing Debian's rabbitmq-server"
  as_root apt-get -o DPkg::Lock::Timeout=300 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq rabbitmq-server >"$state/apt.log" 2>&1 \
    || { log "apt-get install rabbitmq-server failed; see $state/apt.log"; return 1; }
}

start_rabbitmq() {
  if [ -n "${RABBITMQ_URL:-}" ]; then log "RABBITMQ_URL is set: using it"; return 0; fi
  if port_open "$rabbit_port"; then log "RabbitMQ already listening on $rabbit_port"; return 0; fi
  install_rabbitmq
  local base="$state/rabbitmq"
  mkdir -p "$base"
  # The Debian scripts drop to the rabbitmq user when started as root: give it the folders.
  if [ "$(id -u)" -eq 0 ] && id rabbitmq >/dev/null 2>&1; then chown -R rabbitmq:rabbitmq "$base"; fi
  # Each service's events are spread over its partition queues by a consistent-hash exchange: the
  # plugin ships with Debian's package and is enabled for this node only.
  echo '[rabbitmq_consistent_hash_exchange].' >"$base/enabled_plugins"
  if [ "$(id -u)" -eq 0 ] && id rabbitmq >/dev/null 2>&1; then chown rabbitmq:rabbitmq "$base/enabled_plugins"; fi
  log "starting RabbitMQ on 127.0.0.1:$rabbit_port (data in $base)"
  RABBITMQ_NODENAME="$rabbit_node" \
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
  RABBITMQ_NODE_PORT="$rabbit_port" \
  RABBITMQ_DIST_PORT=$((rabbit_port + 20000)) \
  RABBITMQ_MNESIA_BASE="$base/mnesia" \
  RABBITMQ_LOG_BASE="$base/log" \
  RABBITMQ_PID_FILE="$base/rabbitmq.pid" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins" \
  ERL_EPMD_ADDRESS=127.0.0.1 \
    nohup /usr/sbin/rabbitmq-server >"$state/rabbitmq.log" 2>&1 &
  echo $! >"$state/rabbitmq.launcher.pid"
  wait_for_port rabbitmq "$rabbit_port" 120
  log "RabbitMQ is up"
}

# Our patch to FerretDB (scripts/ferretdb/: indexes that queries use, pushdown of `_id` and indexed
# equality, atomic updates per collection). The binary's name carries the patch's hash, so a changed
# patch builds a new binary and an unpatched `ferretdb` (on PATH or from an older script) is never run.
ferretdb_patch="$root/scripts/ferretdb/ferretdb-$ferretdb_version.patch"
ferretdb_bin="$bin/ferretdb-$ferretdb_version-$(sha256sum "$ferretdb_patch" | cut -c1-12)"

build_ferretdb() {
  if [ -x "$ferretdb_bin" ]; then return 0; fi
  # Built once per checkout: another state folder (make cluster-test's, a helper's) copies that build.
  local built
  built="$root/.run/bin/$(basename "$ferretdb_bin")"
  if [ "$built" != "$ferretdb_bin" ] && [ -x "$built" ]; then
    cp "$built" "$ferretdb_bin.tmp" && mv "$ferretdb_bin.tmp" "$ferretdb_bin" || return 1
    return 0
  fi
  command -v go >/dev/null || { log "go is not installed: cannot build FerretDB"; return 1; }
  log "building FerretDB $ferretdb_version with our patch, with go (a few minutes, once)"
  # `go install ...@v1.24.2` builds a binary that panics at start: the module zip lacks the
  # generated build/version/version.txt. So: download the module, add that file, patch, build it.
  local dir src
  dir=$(GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$ferretdb_version" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { log "go mod download of FerretDB failed"; return 1; }
  src=$(mktemp -d)/ferretdb
  cp -r "$dir" "$src"
  chmod -R u+w "$src"
  echo "$ferretdb_version" >"$src/build/version/version.txt"
  patch -s -p1 -d "$src" <"$ferretdb_patch" || { log "our FerretDB patch does not apply"; return 1; }
  rm -f "$bin/ferretdb-$ferretdb_version-"* # builds of an earlier patch
  (cd "$src" && go build -trimpath -o "$ferretdb_bin.tmp" ./cmd/ferretdb)
  mv "$ferretdb_bin.tmp" "$ferretdb_bin"
  rm -rf "$(dirname "$src")"
}

start_ferretdb() {
  if [ -n "${MONGODB_URL:-}" ]; then log "MONGODB_URL is set: using it"; return 0; fi
  if port_open "$mongo_port"; then log "a MongoDB-wire server already listens on $mongo_port"; return 0; fi
  local exe
  if command -v mongod >/dev/null; then
    mkdir -p "$state/mongod"
    log "starting mongod on 127.0.0.1:$mongo_port"
    nohup mongod --bind_ip 127.0.0.1 --port "$mongo_port" --dbpath "$state/mongod" >"$state/ferretdb.log" 2>&1 &
  else
    build_ferretdb
    exe="$ferretdb_bin"
    mkdir -p "$state/ferretdb/data"
    log "starting FerretDB (SQLite) on 127.0.0.1:$mongo_port (data in $state/ferretdb)"
    nohup "$exe" --handler=sqlite --sqlite-url="file:$state/ferretdb/data/?_pragma=synchronous(normal)" --state-dir="$state/ferretdb" \
      --listen-addr="127.0.0.1:$mongo_port" --telemetry=disable --log-level=warn \
      --debug-addr="127.0.0.1:$((mongo_port + 10000))" \
      >"$state/ferretdb.log" 2>&1 &
  fi
  echo $! >"$state/ferretdb.pid"
  wait_for_port ferretdb "$mongo_port" 60
  log "store is up"
}

stop_ferretdb() {
  if [ -f "$state/ferretdb.pid" ]; then
    kill "$(cat "$state/ferretdb.pid")" 2>/dev/null || true
    rm -f "$state/ferretdb.pid"
    wait_for_port ferretdb "$mongo_port" 30 closed
  fi
}

stop_rabbitmq() {
  if [ -f "$state/rabbitmq.launcher.pid" ]; then
    RABBITMQ_NODENAME="$rabbit_node" rabbitmqctl stop >/dev/null 2>&1 \
      || kill "$(cat "$state/rabbitmq.launcher.pid")" 2>/dev/null || true
    rm -f "$state/rabbitmq.launcher.pid"
    wait_for_port rabbitmq "$rabbit_port" 60 closed
  fi
}

stop_all() { stop_ferretdb; stop_rabbitmq; }

print_env() {
  echo "export RABBITMQ_URL=${RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:$rabbit_port/}"
  echo "export MONGODB_URL=${MONGODB_URL:-mongodb://127.0.0.1:$mongo_port/}"
}

case "${1:-start}" in
  start) start_rabbitmq; start_ferretdb ;;
  stop) stop_all ;;
  env) print_env ;;
  stop-rabbitmq) stop_rabbitmq ;;
  start-rabbitmq) start_rabbitmq ;;
  stop-store) stop_ferretdb ;;
  start-store) start_ferretdb ;;
  *) echo "usage: $0 start|stop|env|stop-rabbitmq|start-rabbitmq|stop-store|start-store" >&2; exit 2 ;;
esac

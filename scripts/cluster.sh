#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this one machine (the RabbitMQ docs' "A Cluster on a Single
# Machine"), of Debian's rabbitmq-server, for `make cluster-test`. Each node has its own name, AMQP and
# distribution port and folders under $PHARMACY_STATE_DIR/cluster/, and the three share an Erlang
# cookie of their own (never ~/.erlang.cookie, so no other node on this machine can be reached).
# The management plugin stays off; the consistent-hash exchange the platform needs is on.
#
#   scripts/cluster.sh start          start the three nodes, join 2 and 3 to 1, print the join time
#   scripts/cluster.sh stop           stop the nodes this script started
#   scripts/cluster.sh env            print RABBITMQ_URL with every node's address
#   scripts/cluster.sh stop-node N    stop node N (1..3) alone; start-node N starts it and waits
#   scripts/cluster.sh ctl N ARGS...  rabbitmqctl against node N; `queues N ARGS...` rabbitmq-queues
#
# Ports: CLUSTER_PORTS (default "5631 5632 5633") for AMQP; each node's distribution port is its AMQP
# port + 20000. Names: CLUSTER_NODE_PREFIX (default "pharmacy-c") + 1..3 @localhost; a second cluster on
# this machine needs a prefix of its own, as epmd holds one node per name.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="${PHARMACY_STATE_DIR:-$root/.run}"
base="$state/cluster"
read -r -a ports <<<"${CLUSTER_PORTS:-5631 5632 5633}"
rabbit_bin=/usr/lib/rabbitmq/bin
mkdir -p "$base"

log() { printf '[cluster] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

node_name() { echo "${CLUSTER_NODE_PREFIX:-pharmacy-c}$1@localhost"; }
node_port() { echo "${ports[$(($1 - 1))]}"; }

# The cookie lives in the cluster's own HOME, which the server and the CLI tools both read it from.
cookie_home() {
  if [ ! -f "$base/.erlang.cookie" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$base/.erlang.cookie"
    chmod 400 "$base/.erlang.cookie"
  fi
  echo "$base"
}

ctl() { # node args...: rabbitmqctl against one node
  local n=$1
  shift
  HOME=$(cookie_home) "$rabbit_bin/rabbitmqctl" -n "$(node_name "$n")" "$@"
}

queues() {
  local n=$1
  shift
  HOME=$(cookie_home) "$rabbit_bin/rabbitmq-queues" -n "$(node_name "$n")" "$@"
}

start_node() {
  local n=$1 port dir
  port=$(node_port "$n")
  dir="$base/node$n"
  if port_open "$port"; then
    if ctl "$n" status >/dev/null 2>&1; then log "node $n already runs on $port"; return 0; fi
    log "port $port is taken by something else (see ss -ltn); set CLUSTER_PORTS"
    return 1
  fi
  if port_open $((port + 20000)); then log "distribution port $((port + 20000)) is taken"; return 1; fi
  mkdir -p "$dir"
  echo '[rabbitmq_consistent_hash_exchange].' >"$dir/enabled_plugins"
  # A timer dead-lettered (at least once) into a partition whose leader is lost is sent again when
  # no confirm came within this; RabbitMQ's default, 3 minutes, outlasts the test's wait for the end.
  echo '[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, 15000}]}].' >"$dir/advanced.config"
  log "starting $(node_name "$n") on 127.0.0.1:$port (data in $dir)"
  HOME=$(cookie_home) \
  RABBITMQ_NODENAME="$(node_name "$n")" \
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
  RABBITMQ_NODE_PORT="$port" \
  RABBITMQ_DIST_PORT=$((port + 20000)) \
  RABBITMQ_MNESIA_BASE="$dir/mnesia" \
  RABBITMQ_LOG_BASE="$dir/log" \
  RABBITMQ_PID_FILE="$dir/rabbitmq.pid" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
  RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
  ERL_EPMD_ADDRESS=127.0.0.1 \
    nohup "$rabbit_bin/rabbitmq-server" >"$dir/server.log" 2>&1 &
  echo $! >"$dir/launcher.pid"
  local deadline=$((SECONDS + 120))
  until port_open "$port"; do
    if ((SECONDS > deadline)); then log "node $n did not listen on $port in 120 s; see $dir/server.log"; return 1; fi
    sleep 0.2
  done
}

stop_node() {
  local n=$1 dir="$base/node$1"
  [ -f "$dir/launcher.pid" ] || return 0
  ctl "$n" stop >/dev/null 2>&1 || kill "$(cat "$dir/launcher.pid")" 2>/dev/null || true
  rm -f "$dir/launcher.pid"
  local deadline=$((SECONDS + 60))
  while port_open "$(node_port "$n")"; do
    if ((SECONDS > deadline)); then log "node $n still listens after 60 s"; return 1; fi
    sleep 0.2
  done
}


start_cluster() {
  for n in 1 2 3; do start_node "$n"; done
  local started
  started=$(date +%s.%N)
  for n in 2 3; do
    if ctl 1 cluster_status 2>/dev/null | grep -q "$(node_name "$n")"; then log "node $n had joined already"; continue; fi
    log "joining $(node_name "$n") to $(node_name 1)"
    ctl "$n" stop_app >/dev/null
    ctl "$n" join_cluster "$(node_name 1)" >/dev/null
    ctl "$n" start_app >/dev/null
  done
  ctl 1 await_startup >/dev/null
  local took
  took=$(echo "$(date +%s.%N) - $started" | bc | xargs printf '%.1f')
  echo "$took" >"$base/join-seconds"
  log "joined nodes 2 and 3 to node 1 in $took s"
  # Quorum queues get a member on every node by themselves (their initial group size is the cluster's
  # size when declared). The platform's RPC and work queues are classic: without this mirroring they
  # live on one node and are gone while it is down. Quorum queues ignore these keys.
  ctl 1 set_policy --apply-to queues --priority 0 pharmacy-classic-mirrored '.*' \
    '{"ha-mode":"all","ha-sync-mode":"automatic","ha-promote-on-shutdown":"always","ha-promote-on-failure":"always"}' >/dev/null
  log "running: $(ctl 1 cluster_status | sed -n '/Running Nodes/,/Versions/p' | grep @ | tr '\n' ' ')"
}

print_env() {
  local urls=()
  for port in "${ports[@]}"; do urls+=("amqp://guest:guest@127.0.0.1:$port/"); done
  (IFS=,; echo "export RABBITMQ_URL=${urls[*]}")
}

case "${1:-start}" in
  start) start_cluster ;;
  stop) for n in 3 2 1; do stop_node "$n"; done ;;
  env) print_env ;;
  stop-node) stop_node "$2" ;;
  start-node) start_node "$2"; ctl "$2" await_startup >/dev/null ;;
  ctl) shift; ctl "$@" ;;
  queues) shift; queues "$@" ;;
  *) echo "usage: $0 start|stop|env|stop-node N|start-node N|ctl N ...|queues N ..." >&2; exit 2 ;;
esac

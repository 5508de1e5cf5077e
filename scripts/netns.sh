#!/usr/bin/env bash
# Simulated hosts for the scale-out benchmark (docs/scaling.md): network
# namespaces maestra-host1..N, each joined to this machine by a veth pair
# (10.77.K.1 here, 10.77.K.2 inside), with PostgreSQL (5432) and Redis (6379)
# reachable from inside at 10.77.K.1 through socat relays (both servers listen
# on loopback only, which a namespace cannot reach; the relay keeps them so).
#   scripts/netns.sh up 2      # maestra-host1 and maestra-host2
#   scripts/netns.sh down
#   ip netns exec maestra-host1 <command>   # a process "on" host 1
# Needs root (ip netns), iproute2 and socat.
set -euo pipefail
RUN=/run/maestra-netns
PORTS=(5432 6379)

up() {
  local hosts=${1:-2}
  mkdir -p "$RUN"
  for k in $(seq 1 "$hosts"); do
    local ns=maestra-host$k out=mh$k-out in=mh$k-in
    ip netns list | grep -qw "$ns" && continue
    ip netns add "$ns"
    ip link add "$out" type veth peer name "$in"
    ip link set "$in" netns "$ns"
    ip addr add "10.77.$k.1/24" dev "$out"
    ip link set "$out" up
    ip netns exec "$ns" ip addr add "10.77.$k.2/24" dev "$in"
    ip netns exec "$ns" ip link set "$in" up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip route add default via "10.77.$k.1"
    for port in "${PORTS[@]}"; do
      socat "TCP-LISTEN:$port,bind=10.77.$k.1,fork,reuseaddr,nodelay" "TCP:127.0.0.1:$port,nodelay" &
      echo $! >>"$RUN/relays.pid"
    done
    echo "==> $ns: reaches PostgreSQL and Redis at 10.77.$k.1"
  done
}

down() {
  if [ -f "$RUN/relays.pid" ]; then
    xargs -r kill <"$RUN/relays.pid" 2>/dev/null || true
    rm -f "$RUN/relays.pid"
  fi
  for ns in $(ip netns list | awk '/^maestra-host/ {print $1}'); do
    ip netns delete "$ns"
  done
  for link in $(ip -o link show | awk -F': ' '/mh[0-9]+-out/ {print $2}' | cut -d@ -f1); do
    ip link delete "$link" 2>/dev/null || true
  done
  echo "==> simulated hosts removed"
}

case "${1:-}" in
  up) up "${2:-2}" ;;
  down) down ;;
  *) echo "usage: $0 up [hosts] | down" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Several "hosts" on this machine, for measuring distributed training across
# real network links: one network namespace per host (embark-h0, embark-h1,
# ...), each joined to a bridge by a veth pair, addresses 10.77.0.1, .2, ...
# (the bridge, in the root namespace, is 10.77.0.254), and a qdisc on every
# host's link shaping what it sends: `tc netem` for delay (and rate), or a
# token bucket (tbf) for a rate alone, since some kernels lack sch_netem.
# Needs root (CAP_NET_ADMIN).
#   bench/netem.sh up HOSTS [RATE [DELAY]]   e.g. up 2 1gbit 25ms (RTT 50 ms)
#   bench/netem.sh down
# A rank runs in host i with `ip netns exec embark-hI ...`; see
# bench/dist_bench.sh, which sets this up and tears it down itself.
set -euo pipefail
BR=embark-br
case "${1:-}" in
  up)
    hosts=${2:?hosts}
    rate=${3:-}
    delay=${4:-}
    "$0" down 2>/dev/null || true
    ip link add "$BR" type bridge
    ip addr add 10.77.0.254/24 dev "$BR"
    ip link set "$BR" up
    for ((i = 0; i < hosts; i++)); do
      ns=embark-h$i
      ip netns add "$ns"
      ip link add "embark-v$i" type veth peer name eth0 netns "$ns"
      ip link set "embark-v$i" master "$BR" up
      ip -n "$ns" addr add "10.77.0.$((i + 1))/24" dev eth0
      ip -n "$ns" link set eth0 up
      ip -n "$ns" link set lo up
      if [ -n "$delay" ]; then
        args=(delay "$delay")
        [ -n "$rate" ] && args+=(rate "$rate")
        # A queue deep enough for the delay-bandwidth product.
        if ! ip netns exec "$ns" tc qdisc add dev eth0 root netem "${args[@]}" limit 100000; then
          echo "netem.sh: this kernel has no netem qdisc (sch_netem): cannot add delay" >&2
          "$0" down
          exit 1
        fi
      elif [ -n "$rate" ]; then
        # Rate only: a token bucket (present in kernels without netem).
        ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$rate" burst 256kb latency 20ms
      fi
    done
    ;;
  down)
    for ns in $(ip netns list | awk '/^embark-h/ {print $1}'); do ip netns del "$ns"; done
    ip link del "$BR" 2>/dev/null || true
    ;;
  *)
    echo "usage: $0 up HOSTS [RATE [DELAY]] | down" >&2
    exit 2
    ;;
esac

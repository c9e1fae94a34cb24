#!/usr/bin/env bash
# iperf3 through `braid run` against a Linux iperf3 server made MPTCP by mptcpize, beside
# Linux <-> Linux (mptcpize on both ends), on the same two 100 Mbit/s paths in the same run
# (root; network namespaces).
#
#   braid run -- iperf3 -c   (braid's TUNs 10.78.1.1, 10.78.2.1 in R) --+
#                                       R ==veth1 (10.79.1.0/24, tbf 100mbit both ends)== P
#   C (10.80.1.2, 10.80.2.2) --unshaped-+ ==veth2 (10.79.2.0/24, tbf 100mbit both ends)==
#
#   P runs `mptcpize run iperf3 -s`; C runs `mptcpize run iperf3 -c` with a `subflow` endpoint
#   on 10.80.2.2 (its second subflow); braid's path manager opens braid's second subflow from
#   10.78.2.1. Routes keep subflows on their path (policy rules in R and P), as in
#   scripts/bench-interop.sh. Rows: upload (client sends) and download (-R) each.
#
# Goodput is iperf3's receiver figure (end.sum_received). Usage: scripts/bench-run.sh
#   SECONDS=N   length of each iperf3 run (default 10)
#   BRAID=path/to/braid to skip the build.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${SECONDS_PER_RUN:-${SECS:-10}}"
if [ "$(id -u)" != 0 ]; then
  echo "bench-run: needs root (network namespaces, TUN devices)" >&2
  exit 1
fi
for t in iperf3 mptcpize; do
  command -v "$t" >/dev/null || { echo "bench-run: needs $t (apt-get install -y iperf3 mptcpize)" >&2; exit 1; }
done
if [ -z "${BRAID:-}" ]; then
  cargo build --release -p braid >&2
  BRAID="${CARGO_TARGET_DIR:-target}/release/braid"
fi

id=$(printf '%06x' $((RANDOM * 32768 + RANDOM)))
R="braid-benchr-r-$id"; P="braid-benchr-p-$id"; C="braid-benchr-c-$id"
tmp=$(mktemp -d)
cleanup() {
  for ns in "$R" "$P" "$C"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

for ns in "$R" "$P" "$C"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1
for ns in "$R" "$P"; do
  for k in all default; do ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$k.rp_filter=0"; done
done
for i in 1 2; do
  ip link add "r$i$id" netns "$R" type veth peer name "p$i$id" netns "$P"
  ip -n "$R" addr add "10.79.$i.1/24" dev "r$i$id"
  ip -n "$P" addr add "10.79.$i.2/24" dev "p$i$id"
  ip -n "$R" link set "r$i$id" up
  ip -n "$P" link set "p$i$id" up
  ip netns exec "$R" tc qdisc add dev "r$i$id" root tbf rate 100mbit burst 64kb latency 50ms
  ip netns exec "$P" tc qdisc add dev "p$i$id" root tbf rate 100mbit burst 64kb latency 50ms
  ip -n "$P" route add "10.78.$i.0/24" via "10.79.$i.1"
  ip -n "$P" route add "10.80.$i.0/24" via "10.79.$i.1"
done
ip -n "$P" rule add from 10.79.2.2 table 102
ip -n "$P" route add default via 10.79.2.1 table 102
ip link add "c$id" netns "$C" type veth peer name "rc$id" netns "$R"
for i in 1 2; do
  ip -n "$C" addr add "10.80.$i.2/24" dev "c$id"
  ip -n "$R" addr add "10.80.$i.1/24" dev "rc$id"
done
ip -n "$C" link set "c$id" up
ip -n "$R" link set "rc$id" up
ip -n "$C" route add 10.79.0.0/16 via 10.80.1.1
ip -n "$R" route add 10.79.1.2 via 10.79.2.2 dev "r2$id" table 102
for src in 10.78.2.0/24 10.80.2.0/24; do
  ip -n "$R" rule add from "$src" to 10.79.1.2 table 102
done
for ns in "$P" "$C"; do
  ip -n "$ns" mptcp limits set subflows 4 add_addr_accepted 4
done
ip -n "$C" mptcp endpoint add 10.80.2.2 dev "c$id" subflow

paths=(--path "tun=bq1$id,local=10.78.1.1,peer=10.78.1.2/24,netns=$R"
       --path "tun=bq2$id,local=10.78.2.1,peer=10.78.2.2/24,netns=$R")

# One iperf3 run against a fresh one-off server in P; prints the receiver's Mbit/s.
# $1 = output name, rest = the client command (ending in iperf3 ...).
iperf_row() {
  local name=$1; shift
  ip netns exec "$P" mptcpize run iperf3 -s -1 -p 5201 >"$tmp/$name.srv" 2>&1 &
  local srv=$!
  for _ in $(seq 100); do
    ip netns exec "$P" ss -Hltn 2>/dev/null | grep -q ':5201 ' && break
    sleep 0.05
  done
  "$@" >"$tmp/$name.json" 2>"$tmp/$name.err" || true
  wait "$srv" || true
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(round(v["end"]["sum_received"]["bits_per_second"]/1e6, 1))' \
    "$tmp/$name.json" 2>/dev/null || { echo failed; echo "--- $name:" >&2; tail -5 "$tmp/$name.err" "$tmp/$name.json" >&2; }
}
mptcp_counters() {
  ip netns exec "$P" cat /proc/net/netstat | awk '/^MPTcpExt:/ { if (!h) { split($0, k); h = 1 } else { for (i = 2; i <= NF; i++) if (k[i] == "MPCapableSYNRX" || k[i] == "MPJoinAckRx") printf "%s=%s ", k[i], $i } }'
}

echo "bench-run: iperf3 -t $secs, 2 paths x 100 Mbit/s (tbf both ways)" >&2
b_up=$(iperf_row bup timeout 120 "$BRAID" run "${paths[@]}" --quiet -- iperf3 -J -c 10.79.1.2 -p 5201 -t "$secs")
b_down=$(iperf_row bdown timeout 120 "$BRAID" run "${paths[@]}" --quiet -- iperf3 -J -R -c 10.79.1.2 -p 5201 -t "$secs")
c1=$(mptcp_counters)
l_up=$(iperf_row lup timeout 120 ip netns exec "$C" mptcpize run iperf3 -J -c 10.79.1.2 -p 5201 -t "$secs")
l_down=$(iperf_row ldown timeout 120 ip netns exec "$C" mptcpize run iperf3 -J -R -c 10.79.1.2 -p 5201 -t "$secs")
c2=$(mptcp_counters)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "?" }'; }
printf '\niperf3, 2 paths x 100 Mbit/s (tbf both ways), %s s per run\n' "$secs"
printf '%-28s %12s %14s %8s\n' "direction" "braid run" "Linux<->Linux" "ratio"
printf '%-28s %12s %14s %8s\n' "upload (client sends)" "$b_up" "$l_up" "$(ratio "$b_up" "$l_up")"
printf '%-28s %12s %14s %8s\n' "download (-R, server sends)" "$b_down" "$l_down" "$(ratio "$b_down" "$l_down")"
echo "(Mbit/s, iperf3's receiver figure; P's MPTcpExt after the two braid rows: $c1; at the end: $c2;"
echo " iperf3 opens two connections per run, control and data: each one MP_CAPABLE and joined)"

#!/usr/bin/env bash
# Handover benchmark (issue 10): the longest pause at the receiving application when path 1 of
# two is silently blackholed mid-upload, braid → Linux beside Linux → Linux, on the same router
# topology, RUNS runs each (default 3).
#
#   namespaces: client ── router ── server        (names hb-cli-PID, hb-rtr-PID, hb-srv-PID)
#   Linux → Linux: client veths c1 10.90.1.1 and c2 10.90.2.1 (router .254 each), an MPTCP
#     client with endpoint 10.90.2.1 subflow (source routing per path); each client veth shaped
#     to RATE by tbf (its egress: the upload's direction).
#   braid → Linux: braid's two TUN devices moved into the router (10.91.1.1 and 10.91.2.1 are
#     braid's, 10.91.x.254 the router's), each shaped to RATE by braid's own emulation.
#   Server: 10.90.9.2 behind the router's veth; a Python MPTCP receiver (IPPROTO_MPTCP) that
#     timestamps every read and reports the longest gap between two reads.
#   Blackhole: HOLD seconds into the upload the router silently drops path 1 both ways: an
#     `ip rule ... iif DEV blackhole` for what arrives from it and a /32 blackhole route for what
#     goes to it. No link goes down: only timeouts can find it.
#
# Departures from the defaults: no added delay (Linux has no netem here: RTTs are sub-ms, the
# same for both); rates by tbf (Linux) and by braid's emulation (braid).
#
# Usage: sudo scripts/bench-handover.sh [--runs N] [--bytes N] [--rate RATE] [--hold SECONDS]
# Needs root, kernel MPTCP, python3, ip, tc. Prints one line per run (the receiver's longest
# pause, where it was, and how long the sender took to exit after the receiver was done) and a
# summary.
set -euo pipefail

RUNS=3
BYTES=$((120 * 1000 * 1000))
RATE=100mbit
HOLD=1.5
EXIT_WAIT=10
BRAID=${BRAID:-$(dirname "$0")/../target/release/braid}
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --bytes) BYTES=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --hold) HOLD=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "bench-handover.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench-handover.sh: needs root (namespaces, TUN devices)" >&2; exit 2; }
[ -x "$BRAID" ] || { echo "bench-handover.sh: no braid binary at $BRAID (cargo build --release)" >&2; exit 2; }

CLI=hb-cli-$$ RTR=hb-rtr-$$ SRV=hb-srv-$$
WORK=$(mktemp -d /tmp/bench-handover.XXXXXX)
cleanup() {
  for ns in "$CLI" "$RTR" "$SRV"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/recv.py" <<'EOF'
import json, socket, sys, time
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port)); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
total, last, gap, gap_at, first = 0, None, 0.0, 0.0, None
while True:
    b = c.recv(1 << 18)
    now = time.monotonic()
    if not b:
        break
    if last is not None and now - last > gap:
        gap, gap_at = now - last, now - first
    if first is None:
        first = now
    last = now
    total += len(b)
print(json.dumps({"bytes": total, "max_gap_ms": round(gap * 1000, 1),
                  "gap_at_s": round(gap_at, 2), "seconds": round(last - first, 2)}), flush=True)
EOF
cat > "$WORK/send.py" <<'EOF'
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.connect((host, port))
block = b"\xa5" * (1 << 16)
while n > 0:
    k = s.send(block[:min(n, len(block))]); n -= k
s.shutdown(socket.SHUT_WR)
while s.recv(4096):
    pass
EOF

nsx() { ip netns exec "$@"; }

setup() {
  for ns in "$CLI" "$RTR" "$SRV"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    for k in all default; do nsx "$ns" sysctl -qw "net.ipv4.conf.$k.rp_filter=0"; done
    ip -n "$ns" mptcp limits set subflows 4 add_addr_accepted 4
  done
  nsx "$RTR" sysctl -qw net.ipv4.ip_forward=1
  for i in 1 2; do
    ip link add c$i netns "$CLI" type veth peer name r$i netns "$RTR"
    ip -n "$CLI" addr add 10.90.$i.1/24 dev c$i
    ip -n "$RTR" addr add 10.90.$i.254/24 dev r$i
    ip -n "$CLI" link set c$i up
    ip -n "$RTR" link set r$i up
    nsx "$CLI" tc qdisc add dev c$i root tbf rate "$RATE" burst 64kb latency 50ms
  done
  ip -n "$CLI" route add default via 10.90.1.254 dev c1
  ip -n "$CLI" rule add from 10.90.2.1 table 2
  ip -n "$CLI" route add default via 10.90.2.254 dev c2 table 2
  ip -n "$CLI" mptcp endpoint add 10.90.2.1 dev c2 subflow
  ip link add s0 netns "$SRV" type veth peer name r9 netns "$RTR"
  ip -n "$SRV" addr add 10.90.9.2/24 dev s0
  ip -n "$RTR" addr add 10.90.9.254/24 dev r9
  ip -n "$SRV" link set s0 up
  ip -n "$RTR" link set r9 up
  ip -n "$SRV" route add default via 10.90.9.254
}

blackhole() { # dev, address on its far side
  ip -n "$RTR" rule add iif "$1" blackhole prio 10
  ip -n "$RTR" route add blackhole "$2/32"
}
unblackhole() {
  ip -n "$RTR" rule del iif "$1" blackhole prio 10 2>/dev/null || true
  ip -n "$RTR" route del blackhole "$2/32" 2>/dev/null || true
}

# One run: $1 = linux|braid, $2 = port. Prints the receiver's JSON.
one() {
  local kind=$1 port=$2 out=$WORK/recv-$1-$2.json
  nsx "$SRV" python3 "$WORK/recv.py" "$port" > "$out" &
  local rpid=$!
  for _ in $(seq 100); do grep -q ready "$out" 2>/dev/null && break; sleep 0.05; done
  if [ "$kind" = linux ]; then
    nsx "$CLI" python3 "$WORK/send.py" 10.90.9.2 "$port" "$BYTES" &
    local spid=$!
    sleep "$HOLD"; blackhole r1 10.90.1.1
  else
    "$BRAID" connect --quiet --no-hash \
      --path "tun=hbt0$$,local=10.91.1.1,peer=10.91.1.254/24,netns=$RTR,rate=$RATE" \
      --path "tun=hbt1$$,local=10.91.2.1,peer=10.91.2.254/24,netns=$RTR,rate=$RATE" \
      --bytes "$BYTES" --timeout 120s --control "$WORK/c.sock" "10.90.9.2:$port" > /dev/null &
    local spid=$!
    sleep "$HOLD"; blackhole "hbt0$$" 10.91.1.1
  fi
  wait "$rpid" || true
  # The sender should end soon after the receiver read everything (issue 10, item 0); one that
  # has not after EXIT_WAIT seconds is stopped and reported as such.
  local t0=$SECONDS exit_lag
  while kill -0 "$spid" 2>/dev/null && [ $((SECONDS - t0)) -lt "$EXIT_WAIT" ]; do sleep 0.1; done
  if kill -0 "$spid" 2>/dev/null; then
    kill "$spid" 2>/dev/null || true
    exit_lag="\"killed after ${EXIT_WAIT}s\""
  else
    exit_lag=$((SECONDS - t0))
  fi
  wait "$spid" 2>/dev/null || true
  if [ "$kind" = linux ]; then unblackhole r1 10.90.1.1; else unblackhole "hbt0$$" 10.91.1.1; fi
  tail -1 "$out" | sed "s/}\$/, \"sender_exit_after_s\": $exit_lag}/"
}

setup
declare -A WORST
port=6100
for kind in braid linux; do
  WORST[$kind]=0
  for r in $(seq "$RUNS"); do
    port=$((port + 1))
    line=$(one "$kind" "$port")
    echo "$kind run $r: $line"
    gap=$(echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["max_gap_ms"])')
    WORST[$kind]=$(python3 -c "print(max(${WORST[$kind]}, $gap))")
  done
done
echo "longest receiver pause, worst of $RUNS runs (path 1 blackholed ${HOLD}s in, $RATE per path, $BYTES bytes):"
echo "  braid -> Linux: ${WORST[braid]} ms"
echo "  Linux -> Linux: ${WORST[linux]} ms"

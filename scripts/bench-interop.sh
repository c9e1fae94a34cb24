#!/usr/bin/env bash
# Throughput of braid against the Linux kernel's TCP, beside Linux against itself, on this
# machine (root; network namespaces). One unshaped path, one run each, the same size:
#
#   braid -> Linux   braid connect over a TUN device into namespace P, python3 sink in P
#   Linux -> braid   python3 source in P, braid listen on the TUN device
#   Linux -> Linux   python3 source in namespace A, sink in namespace B, over a veth pair
#
# Goodput is measured on the Linux side for every row (python: connection established until
# the peer's FIN was read), and braid's own report is shown beside it.
# Usage: scripts/bench-interop.sh [SIZE_BYTES]   (default 1 GiB). BRAID=path/to/braid to skip
# the build. (MPTCP rows come later.)
set -euo pipefail
cd "$(dirname "$0")/.."

size="${1:-1073741824}"
if [ "$(id -u)" != 0 ]; then
  echo "bench-interop: needs root (network namespaces, TUN devices)" >&2
  exit 1
fi
if [ -z "${BRAID:-}" ]; then
  cargo build --release -p braid >&2
  BRAID="${CARGO_TARGET_DIR:-target}/release/braid"
fi

id=$(printf '%06x' $((RANDOM * 32768 + RANDOM)))
P="braid-bench-p-$id"; A="braid-bench-a-$id"; B="braid-bench-b-$id"
tun="bb$id"
x=$((RANDOM % 200 + 20))
tmp=$(mktemp -d)
cleanup() {
  for ns in "$P" "$A" "$B"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

for ns in "$P" "$A" "$B"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
ip link add "va$id" netns "$A" type veth peer name "vb$id" netns "$B"
ip -n "$A" addr add "10.78.$x.1/24" dev "va$id"
ip -n "$B" addr add "10.78.$x.2/24" dev "vb$id"
ip -n "$A" link set "va$id" up
ip -n "$B" link set "vb$id" up

cat >"$tmp/sink.py" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(1)
print('ready', flush=True)
c, _ = s.accept(); t0 = time.monotonic(); n = 0
buf = bytearray(1 << 20)
while True:
    k = c.recv_into(buf)
    if not k: break
    n += k
dt = time.monotonic() - t0
c.close()
print(n, dt, flush=True)
EOF
cat >"$tmp/source.py" <<'EOF'
import socket, sys, time, os
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
end = time.time() + 30
while True:
    try:
        c = socket.create_connection((host, port), timeout=5); break
    except OSError:
        if time.time() > end: raise
        time.sleep(0.05)
c.settimeout(120)
t0 = time.monotonic(); block = os.urandom(1 << 20); n = 0
while n < size:
    k = min(len(block), size - n); c.sendall(block[:k]); n += k
c.shutdown(socket.SHUT_WR)
while c.recv(65536): pass
dt = time.monotonic() - t0
c.close()
print(n, dt, flush=True)
EOF

# Waits for "ready" on the first line of file $1.
wait_ready() {
  for _ in $(seq 100); do
    grep -q ready "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench-interop: server did not start" >&2; cat "$1" >&2; exit 1
}
# "BYTES SECONDS" -> Mbit/s
mbps() { awk '{ if ($2 > 0) printf "%.0f", $1 * 8 / $2 / 1e6; else print "?" }' <<<"$1"; }
braid_mbps() { python3 -c 'import json,sys; print(round(json.loads(sys.stdin.read().splitlines()[-1])["goodput_mbps"]))'; }

path="tun=$tun,local=10.77.$x.1,peer=10.77.$x.2/24,netns=$P"

# braid -> Linux
ip netns exec "$P" python3 "$tmp/sink.py" 5000 >"$tmp/s1" 2>&1 &
wait_ready "$tmp/s1"
b1=$(timeout 300 "$BRAID" connect --path "$path" "10.77.$x.2:5000" --bytes "$size" --json --no-hash --seed 1 | braid_mbps)
wait
l1=$(tail -1 "$tmp/s1")

# Linux -> braid
ip netns exec "$P" python3 "$tmp/source.py" "10.77.$x.1" 5001 "$size" >"$tmp/c2" 2>&1 &
b2=$(timeout 300 "$BRAID" listen --path "$path" --port 5001 --json --no-hash --seed 2 | braid_mbps)
wait
l2=$(tail -1 "$tmp/c2")

# Linux -> Linux over veth
ip netns exec "$B" python3 "$tmp/sink.py" 5002 >"$tmp/s3" 2>&1 &
wait_ready "$tmp/s3"
ip netns exec "$A" python3 "$tmp/source.py" "10.78.$x.2" 5002 "$size" >"$tmp/c3" 2>&1
wait
l3=$(tail -1 "$tmp/c3")

r1=$(mbps "$l1"); r2=$(mbps "$l2"); r3=$(mbps "$l3")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "?" }'; }
printf '\n%-16s %14s %12s %16s %14s\n' "direction" "bytes" "Mbit/s" "braid's Mbit/s" "vs Linux->Linux"
printf '%-16s %14s %12s %16s %14s\n' "braid -> Linux" "$size" "$r1" "$b1" "$(ratio "$r1" "$r3")"
printf '%-16s %14s %12s %16s %14s\n' "Linux -> braid" "$size" "$r2" "$b2" "$(ratio "$r2" "$r3")"
printf '%-16s %14s %12s %16s %14s\n' "Linux -> Linux" "$size" "$r3" "-" "1.000"

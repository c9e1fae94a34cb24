#!/usr/bin/env bash
# Many idle connections and the connection setup rate: a Linux client (python3, IPPROTO_MPTCP)
# opens N connections to `braid listen` over one TUN path and holds them open, idle; beside it
# the same client against a Linux MPTCP server over a veth pair (root; network namespaces).
#
#   braid listen (TUN 10.81.1.1) <== TUN ==> namespace C (10.81.1.2): the client
#   namespace S (10.82.1.1)      <== veth ==> namespace C2 (10.82.1.2): the same client, Linux server
#
# Reported per row: connections established, setup rate (connections per second while opening
# them, 256 handshakes in flight at most), and memory: braid's RSS with N connections over its RSS
# with none; for Linux the kernel's socket memory (/proc/net/sockstat "mem", pages) and the
# slab bytes of the TCP/MPTCP caches, before and after.
# Usage: scripts/bench-conns.sh [N]   (default 10000)
#   SUBFLOWS=2   the Linux client also opens a second subflow per connection from 10.81.2.2
#                (braid: a second path; Linux: a second veth)
#   BRAID=path/to/braid to skip the build.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000}"
subflows="${SUBFLOWS:-1}"
if [ "$(id -u)" != 0 ]; then
  echo "bench-conns: needs root (network namespaces, TUN devices)" >&2
  exit 1
fi
if [ -z "${BRAID:-}" ]; then
  cargo build --release -p braid >&2
  BRAID="${CARGO_TARGET_DIR:-target}/release/braid"
fi
id=$(printf '%06x' $((RANDOM * 32768 + RANDOM)))
C="braid-conns-c-$id"; S="braid-conns-s-$id"; C2="braid-conns-c2-$id"
tmp=$(mktemp -d)
bpid=""
cleanup() {
  [ -n "$bpid" ] && kill "$bpid" 2>/dev/null || true
  for ns in "$C" "$S" "$C2"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

cat >"$tmp/client.py" <<'EOF'
# Opens N MPTCP connections to HOST:PORT (at most 256 handshakes in flight), reports the
# setup rate, then holds them idle until stdin closes.
import selectors, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
IPPROTO_MPTCP = 262
sel = selectors.DefaultSelector()
done, pending, opened, failed, socks = 0, 0, 0, 0, []
t0 = time.monotonic()
while done + failed < n:
    while opened < n and pending < 256:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
        s.setblocking(False)
        s.connect_ex((host, port))
        sel.register(s, selectors.EVENT_WRITE)
        opened += 1
        pending += 1
    for key, _ in sel.select(timeout=10):
        s = key.fileobj
        sel.unregister(s)
        pending -= 1
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            done += 1
            socks.append(s)
        else:
            failed += 1
            s.close()
    if time.monotonic() - t0 > 120:
        break
dt = time.monotonic() - t0
print(f"established {done} failed {failed} in {dt:.2f} s: {done / dt:.0f} conn/s", flush=True)
print("ready", flush=True)
sys.stdin.read()
EOF
cat >"$tmp/server.py" <<'EOF'
# Accepts MPTCP connections on PORT and holds them.
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(4096)
print("ready", flush=True)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
EOF

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
sockmem() { ip netns exec "$1" awk '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }
slab_bytes() {
  awk '$1 ~ /^(TCP|MPTCP|tcp_bind_bucket|request_sock_TCP|mptcp)/ { s += $2 * $4 } END { print s + 0 }' /proc/slabinfo
}
wait_line() { # file, pattern
  for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.2; done
  echo "bench-conns: no \"$2\" in $1:" >&2; cat "$1" >&2; exit 1
}
limits() {
  ip netns exec "$1" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
  ip netns exec "$1" sysctl -qw net.core.somaxconn=4096
  ip netns exec "$1" sysctl -qw net.ipv4.tcp_max_syn_backlog=4096
  ip -n "$1" mptcp limits set subflows 2 add_addr_accepted 2
}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((n + 100)) ]; then
  echo "bench-conns: open-file limit $(ulimit -n) is below N=$n (+100)" >&2; exit 1
fi

# --- braid listen ---
ip netns add "$C"; ip -n "$C" link set lo up; limits "$C"
paths=(--path "tun=bc$id,local=10.81.1.1,peer=10.81.1.2/24,netns=$C")
if [ "$subflows" = 2 ]; then
  paths+=(--path "tun=bd$id,local=10.81.2.1,peer=10.81.2.2/24,netns=$C")
fi
"$BRAID" listen "${paths[@]}" --port 7000 --count 1000000 >"$tmp/braid.out" 2>"$tmp/braid.err" &
bpid=$!
wait_line "$tmp/braid.err" "control socket"
sleep 0.5
if [ "$subflows" = 2 ]; then
  ip -n "$C" mptcp endpoint add 10.81.2.2 dev "bd$id" subflow
fi
rss0=$(rss_kib "$bpid")
coproc CL { ip netns exec "$C" python3 "$tmp/client.py" 10.81.1.1 7000 "$n" 2>&1; }
read -r line <&"${CL[0]}"; echo "braid listen : $line"
sleep 2
rss1=$(rss_kib "$bpid")
est=$(awk '{print $2}' <<<"$line")
echo "braid listen : RSS ${rss0} KiB idle, ${rss1} KiB with $est connections: $(( (rss1 - rss0) * 1024 / (est > 0 ? est : 1) )) bytes per connection ($subflows subflow(s) each)"
kill "$CL_PID" 2>/dev/null || true
kill "$bpid"; wait "$bpid" 2>/dev/null || true; bpid=""

# --- Linux server ---
ip netns add "$S"; ip netns add "$C2"
for ns in "$S" "$C2"; do ip -n "$ns" link set lo up; limits "$ns"; done
ip link add "vs$id" netns "$S" type veth peer name "vc$id" netns "$C2"
ip -n "$S" addr add 10.82.1.1/24 dev "vs$id"; ip -n "$S" link set "vs$id" up
ip -n "$C2" addr add 10.82.1.2/24 dev "vc$id"; ip -n "$C2" link set "vc$id" up
if [ "$subflows" = 2 ]; then
  ip link add "ws$id" netns "$S" type veth peer name "wc$id" netns "$C2"
  ip -n "$S" addr add 10.82.2.1/24 dev "ws$id"; ip -n "$S" link set "ws$id" up
  ip -n "$C2" addr add 10.82.2.2/24 dev "wc$id"; ip -n "$C2" link set "wc$id" up
  ip -n "$C2" mptcp endpoint add 10.82.2.2 dev "wc$id" subflow
fi
ip netns exec "$S" python3 "$tmp/server.py" 7000 >"$tmp/srv.out" 2>&1 &
spid=$!
wait_line "$tmp/srv.out" ready
m0=$(sockmem "$S"); s0=$(slab_bytes)
coproc CL2 { ip netns exec "$C2" python3 "$tmp/client.py" 10.82.1.1 7000 "$n" 2>&1; }
read -r line <&"${CL2[0]}"; echo "Linux server : $line"
sleep 2
m1=$(sockmem "$S"); s1=$(slab_bytes)
est=$(awk '{print $2}' <<<"$line")
echo "Linux server : socket memory +$(( (m1 - m0) * 4 )) KiB (server namespace, sockstat), slab +$(( (s1 - s0) / 1024 )) KiB (both ends, TCP/MPTCP caches): $(( (s1 - s0) / 2 / (est > 0 ? est : 1) )) bytes per end per connection"
kill "$CL2_PID" 2>/dev/null || true
kill "$spid" 2>/dev/null || true

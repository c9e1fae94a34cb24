#!/usr/bin/env bash
# Throughput of braid against the Linux kernel's TCP and MPTCP, beside Linux against itself, on
# this machine (root; network namespaces).
#
# TCP: one unshaped path, one run each, the same size:
#   braid -> Linux   braid connect over a TUN device into namespace P, python3 sink in P
#   Linux -> braid   python3 source in P, braid listen on the TUN device
#   Linux -> Linux   python3 source in namespace A, sink in namespace B, over a veth pair
#
# MPTCP: two paths of 100 Mbit/s (RATE=none: unshaped), every row on the same topology and the
# same shaper:
#
#   braid (TUNs 10.78.1.1, 10.78.2.1) --+
#                                       R ==veth1 (10.79.1.0/24, tbf 100mbit both ends)== P
#   C (10.80.1.2, 10.80.2.2) --unshaped-+ ==veth2 (10.79.2.0/24, tbf 100mbit both ends)==
#
#   Routes keep subflows on their path: P's second address 10.79.2.2 and braid's/C's second
#   addresses use veth2 (policy rules in R and P), everything else veth1. The Linux side is
#   tests/interop/mptcp_peer.py (IPPROTO_MPTCP socket) with `ip mptcp limits set subflows 4
#   add_addr_accepted 4`; a Linux client opens its second subflow from a `subflow` endpoint.
#   braid -> Linux   braid connect (two paths) to P 10.79.1.2; braid joins from 10.78.2.1
#   Linux -> braid   P (endpoint 10.79.2.2) to braid listen on 10.78.1.1
#   Linux -> Linux   C (endpoint 10.80.2.2) to P 10.79.1.2: the same direction as braid -> Linux
#   Linux <- Linux   P (endpoint 10.79.2.2) to C 10.80.1.2: the same direction as Linux -> braid
#   Shaping is rate only (tbf); DELAY=TIME adds one-way delay to braid's paths through braid's
#   own emulation (delay=), none by default (the Linux rows have none either).
#
# CPU s/GiB: user + system seconds of braid's process and of the Linux peer's process
# (/usr/bin/time; the kernel work done in their system calls included, softirq work in other
# contexts not), per GiB moved; Linux rows: both Linux processes.
# Goodput is measured on the Linux side for every row (python: connection established until
# the peer's FIN was read), and braid's own report is shown beside it.
# Usage: scripts/bench-interop.sh [SIZE_BYTES]   (TCP rows, default 1 GiB)
#   MPTCP_SIZE=BYTES   MPTCP transfer size (default 512 MiB: about 22 s at 2 x 100 Mbit/s)
#   ONLY=tcp|mptcp     run one part only
#   RATE=RATE|none     the MPTCP paths' tbf rate (default 100mbit; none: unshaped)
#   BRAID=path/to/braid to skip the build.
#   KEEP=1             keep the raw outputs (JSON reports, peer logs, captures of the braid
#                      MPTCP rows) and name their folder.
set -euo pipefail
cd "$(dirname "$0")/.."

size="${1:-1073741824}"
msize="${MPTCP_SIZE:-536870912}"
rate="${RATE:-100mbit}"
only="${ONLY:-}"
peer_py="$PWD/tests/interop/mptcp_peer.py"
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
R="braid-bench-r-$id"; P2="braid-bench-p2-$id"; C="braid-bench-c-$id"
cleanup() {
  for ns in "$P" "$A" "$B" "$R" "$P2" "$C"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "bench-interop: outputs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

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

# Runs "$@" and writes its CPU seconds (user + system, children included) into file $1.
cpu() { local out=$1; shift; /usr/bin/time -f '%U %S' -o "$out" "$@"; }
# CPU seconds per GiB: BYTES FILE... (the files cpu wrote; a missing one counts 0).
cpu_gib() {
  local bytes=$1; shift
  cat "$@" 2>/dev/null | awk -v b="$bytes" '$1 ~ /^[0-9.]+$/ { t += $1 + $2 } END { if (b > 0) printf "%.2f", t / (b / 1073741824); else print "?" }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "?" }'; }

if [ "$only" != mptcp ]; then
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

path="tun=$tun,local=10.77.$x.1,peer=10.77.$x.2/24,netns=$P"

# braid -> Linux
cpu "$tmp/u1p" ip netns exec "$P" python3 "$tmp/sink.py" 5000 >"$tmp/s1" 2>&1 &
wait_ready "$tmp/s1"
b1=$(cpu "$tmp/u1b" timeout 300 "$BRAID" connect --path "$path" "10.77.$x.2:5000" --bytes "$size" --json --no-hash --seed 1 | braid_mbps)
wait
l1=$(tail -1 "$tmp/s1")

# Linux -> braid
cpu "$tmp/u2p" ip netns exec "$P" python3 "$tmp/source.py" "10.77.$x.1" 5001 "$size" >"$tmp/c2" 2>&1 &
b2=$(cpu "$tmp/u2b" timeout 300 "$BRAID" listen --path "$path" --port 5001 --json --no-hash --seed 2 | braid_mbps)
wait
l2=$(tail -1 "$tmp/c2")

# Linux -> Linux over veth
cpu "$tmp/u3p" ip netns exec "$B" python3 "$tmp/sink.py" 5002 >"$tmp/s3" 2>&1 &
wait_ready "$tmp/s3"
cpu "$tmp/u3q" ip netns exec "$A" python3 "$tmp/source.py" "10.78.$x.2" 5002 "$size" >"$tmp/c3" 2>&1
wait
l3=$(tail -1 "$tmp/c3")

r1=$(mbps "$l1"); r2=$(mbps "$l2"); r3=$(mbps "$l3")
printf '\n%-16s %14s %12s %16s %14s %22s\n' "direction" "bytes" "Mbit/s" "braid's Mbit/s" "vs Linux->Linux" "CPU s/GiB (braid+peer)"
printf '%-16s %14s %12s %16s %14s %22s\n' "braid -> Linux" "$size" "$r1" "$b1" "$(ratio "$r1" "$r3")" "$(cpu_gib "$size" "$tmp/u1b" "$tmp/u1p") ($(cpu_gib "$size" "$tmp/u1b")+$(cpu_gib "$size" "$tmp/u1p"))"
printf '%-16s %14s %12s %16s %14s %22s\n' "Linux -> braid" "$size" "$r2" "$b2" "$(ratio "$r2" "$r3")" "$(cpu_gib "$size" "$tmp/u2b" "$tmp/u2p") ($(cpu_gib "$size" "$tmp/u2b")+$(cpu_gib "$size" "$tmp/u2p"))"
printf '%-16s %14s %12s %16s %14s %22s\n' "Linux -> Linux" "$size" "$r3" "-" "1.000" "$(cpu_gib "$size" "$tmp/u3p" "$tmp/u3q") (both Linux ends)"
fi

[ "$only" = tcp ] && exit 0

# ---------------------------------------------------------------- MPTCP, two shaped paths
for ns in "$R" "$P2" "$C"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1
for ns in "$R" "$P2"; do
  for k in all default; do ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$k.rp_filter=0"; done
done
for i in 1 2; do
  ip link add "r$i$id" netns "$R" type veth peer name "p$i$id" netns "$P2"
  ip -n "$R" addr add "10.79.$i.1/24" dev "r$i$id"
  ip -n "$P2" addr add "10.79.$i.2/24" dev "p$i$id"
  ip -n "$R" link set "r$i$id" up
  ip -n "$P2" link set "p$i$id" up
  if [ "$rate" != none ]; then
    ip netns exec "$R" tc qdisc add dev "r$i$id" root tbf rate "$rate" burst 64kb latency 50ms
    ip netns exec "$P2" tc qdisc add dev "p$i$id" root tbf rate "$rate" burst 64kb latency 50ms
  fi
  # P: braid's and C's path-i addresses are behind veth i.
  ip -n "$P2" route add "10.78.$i.0/24" via "10.79.$i.1"
  ip -n "$P2" route add "10.80.$i.0/24" via "10.79.$i.1"
done
# P's second address always leaves by veth 2 (its subflows to braid's or C's first address).
ip -n "$P2" rule add from 10.79.2.2 table 102
ip -n "$P2" route add default via 10.79.2.1 table 102
ip link add "c$id" netns "$C" type veth peer name "rc$id" netns "$R"
for i in 1 2; do
  ip -n "$C" addr add "10.80.$i.2/24" dev "c$id"
  ip -n "$R" addr add "10.80.$i.1/24" dev "rc$id"
done
ip -n "$C" link set "c$id" up
ip -n "$R" link set "rc$id" up
ip -n "$C" route add 10.79.0.0/16 via 10.80.1.1
# R: second-path sources reach P's first address over veth 2; everything else by destination.
ip -n "$R" route add 10.79.1.2 via 10.79.2.2 dev "r2$id" table 102
for src in 10.78.2.0/24 10.80.2.0/24; do
  ip -n "$R" rule add from "$src" to 10.79.1.2 table 102
done
for ns in "$P2" "$C"; do
  ip -n "$ns" mptcp limits set subflows 4 add_addr_accepted 4
done

delay="${DELAY:+,delay=$DELAY}"
mpaths=(--path "tun=bm1$id,local=10.78.1.1,peer=10.78.1.2/24,netns=$R$delay"
        --path "tun=bm2$id,local=10.78.2.1,peer=10.78.2.2/24,netns=$R$delay")
# Field $2 of the last JSON line of file $1.
field() { python3 -c 'import json,sys; v=json.loads(open(sys.argv[1]).read().splitlines()[-1]); f=v.get(sys.argv[2]); print(round(f) if isinstance(f, float) else f)' "$1" "$2"; }
# Subflows braid's report lists (1 until braid reports MPTCP subflows).
braid_sf() { python3 -c 'import json,sys; v=json.loads(open(sys.argv[1]).read().splitlines()[-1]); print(len(v.get("subflows") or []))' "$1"; }
# Subflows of the kernel's connection: 1 + the extra ones MPTCP_INFO showed; "tcp" on fallback.
linux_sf() { python3 -c 'import json,sys; v=json.loads(open(sys.argv[1]).read().splitlines()[-1]); print(1 + v["extra_subflows"] if v["mptcp"] else "tcp")' "$1"; }
peer() { local ns=$1; shift; ip netns exec "$ns" python3 "$peer_py" "$@"; }

echo "bench-interop: MPTCP rows, $msize bytes each, 2 x $rate (tbf)${DELAY:+, braid delay=$DELAY}" >&2

# braid -> Linux
cpu "$tmp/v1p" ip netns exec "$P2" python3 "$peer_py" server --port 6000 --fast >"$tmp/m1s" 2>&1 &
wait_ready "$tmp/m1s"
cpu "$tmp/v1b" timeout 300 "$BRAID" connect "${mpaths[@]}" 10.79.1.2:6000 --bytes "$msize" --json --no-hash --seed 1 \
  ${KEEP:+--pcap "$tmp/m1.pcap"} >"$tmp/m1b" || true
wait || true

# Linux -> braid (P opens its second subflow from 10.79.2.2)
ip -n "$P2" mptcp endpoint add 10.79.2.2 dev "p2$id" subflow
cpu "$tmp/v2b" timeout 300 "$BRAID" listen "${mpaths[@]}" --port 6001 --json --no-hash --seed 2 \
  ${KEEP:+--pcap "$tmp/m2.pcap"} >"$tmp/m2b" &
for _ in $(seq 100); do ip -n "$R" -o addr show dev "bm2$id" 2>/dev/null | grep -q 10.78.2.2 && break; sleep 0.1; done
cpu "$tmp/v2p" ip netns exec "$P2" python3 "$peer_py" client --connect 10.78.1.1 --port 6001 --send "$msize" --fast >"$tmp/m2c" 2>&1 || true
wait || true
ip -n "$P2" mptcp endpoint flush

# Linux -> Linux: C (second subflow from 10.80.2.2) to P
ip -n "$C" mptcp endpoint add 10.80.2.2 dev "c$id" subflow
cpu "$tmp/v3p" ip netns exec "$P2" python3 "$peer_py" server --port 6002 --fast >"$tmp/m3s" 2>&1 &
wait_ready "$tmp/m3s"
cpu "$tmp/v3q" ip netns exec "$C" python3 "$peer_py" client --connect 10.79.1.2 --port 6002 --send "$msize" --fast >"$tmp/m3c" 2>&1 || true
wait || true
ip -n "$C" mptcp endpoint flush

# Linux <- Linux: P (second subflow from 10.79.2.2) to C
ip -n "$P2" mptcp endpoint add 10.79.2.2 dev "p2$id" subflow
cpu "$tmp/v4p" ip netns exec "$C" python3 "$peer_py" server --port 6003 --fast >"$tmp/m4s" 2>&1 &
wait_ready "$tmp/m4s"
cpu "$tmp/v4q" ip netns exec "$P2" python3 "$peer_py" client --connect 10.80.1.2 --port 6003 --send "$msize" --fast >"$tmp/m4c" 2>&1 || true
wait || true
ip -n "$P2" mptcp endpoint flush

# Each row: Linux-side goodput, or "failed" (and the output shown below the table).
row_rate() { field "$1" "$2" 2>/dev/null || echo failed; }
m1=$(row_rate "$tmp/m1s" rx_mbps); m2=$(row_rate "$tmp/m2c" tx_mbps)
m3=$(row_rate "$tmp/m3s" rx_mbps); m4=$(row_rate "$tmp/m4c" tx_mbps)
mb1=$(field "$tmp/m1b" goodput_mbps 2>/dev/null || echo -); mb2=$(field "$tmp/m2b" goodput_mbps 2>/dev/null || echo -)
s1="$(linux_sf "$tmp/m1s" 2>/dev/null || echo ?)/$(braid_sf "$tmp/m1b" 2>/dev/null || echo ?)"
s2="$(linux_sf "$tmp/m2c" 2>/dev/null || echo ?)/$(braid_sf "$tmp/m2b" 2>/dev/null || echo ?)"
s3="$(linux_sf "$tmp/m3s" 2>/dev/null || echo ?)"; s4="$(linux_sf "$tmp/m4s" 2>/dev/null || echo ?)"
printf '\nMPTCP, 2 paths x %s (tbf both ways), %s bytes%s\n' "$rate" "$msize" "${DELAY:+, braid delay=$DELAY}"
printf '%-16s %12s %12s %16s %18s %22s\n' "direction" "subflows" "Mbit/s" "braid's Mbit/s" "vs Linux<->Linux" "CPU s/GiB (braid+peer)"
printf '%-16s %12s %12s %16s %18s %22s\n' "braid -> Linux" "$s1" "$m1" "$mb1" "$(ratio "$m1" "$m3")" "$(cpu_gib "$msize" "$tmp/v1b" "$tmp/v1p") ($(cpu_gib "$msize" "$tmp/v1b")+$(cpu_gib "$msize" "$tmp/v1p"))"
printf '%-16s %12s %12s %16s %18s %22s\n' "Linux -> braid" "$s2" "$m2" "$mb2" "$(ratio "$m2" "$m4")" "$(cpu_gib "$msize" "$tmp/v2b" "$tmp/v2p") ($(cpu_gib "$msize" "$tmp/v2b")+$(cpu_gib "$msize" "$tmp/v2p"))"
printf '%-16s %12s %12s %16s %18s %22s\n' "Linux(C)->(P)" "$s3" "$m3" "-" "1.000" "$(cpu_gib "$msize" "$tmp/v3p" "$tmp/v3q") (both Linux ends)"
printf '%-16s %12s %12s %16s %18s %22s\n' "Linux(P)->(C)" "$s4" "$m4" "-" "1.000" "$(cpu_gib "$msize" "$tmp/v4p" "$tmp/v4q") (both Linux ends)"
echo "(subflows: Linux's count [MPTCP_INFO, 'tcp' = fell back] / braid's report; braid rows are compared with the Linux row of the same direction)"
if [ -n "${VERBOSE:-}" ]; then
  for ns in "$P2" "$C"; do
    echo "MPTcpExt in $ns:" >&2
    ip netns exec "$ns" cat /proc/net/netstat | awk '/^MPTcpExt:/ { if (!h) { split($0, k); h = 1 } else { for (i = 2; i <= NF; i++) if ($i > 0) printf " %s=%s", k[i], $i; print "" } }' >&2
  done
fi
for f in m1s m1b m2b m2c m3s m3c m4s m4c; do
  if ! python3 -c 'import json,sys; json.loads(open(sys.argv[1]).read().splitlines()[-1])' "$tmp/$f" 2>/dev/null; then
    echo "--- $f (no report):" >&2; tail -5 "$tmp/$f" >&2
  fi
done

#!/usr/bin/env bash
# Long MPTCP transfers between braid and the Linux kernel over one unshaped TUN path, each way,
# so that the subflow sequence space (2^32) and the low 32 bits of the data sequence space wrap
# at least once: braid -> Linux, then Linux -> braid, SHA-256 compared on both ends (root).
#
#   braid (TUN, 10.76.X.1) ---- kernel in namespace P (10.76.X.2), tests/interop/mptcp_peer.py
#
# Usage: scripts/long-interop.sh [SIZE_BYTES]   (default 5 GiB each way)
#   BRAID=path/to/braid to skip the build.
# Prints one line per direction and exits non-zero when a transfer was not intact or not MPTCP.
set -euo pipefail
cd "$(dirname "$0")/.."

size="${1:-5368709120}"
peer_py="$PWD/tests/interop/mptcp_peer.py"
if [ "$(id -u)" != 0 ]; then
  echo "long-interop: needs root (network namespaces, TUN devices)" >&2
  exit 1
fi
if [ -z "${BRAID:-}" ]; then
  cargo build --release -p braid >&2
  BRAID="${CARGO_TARGET_DIR:-target}/release/braid"
fi

id=$(printf '%06x' $((RANDOM * 32768 + RANDOM)))
P="braid-long-p-$id"
x=$((RANDOM % 200 + 20))
tmp=$(mktemp -d)
cleanup() {
  ip netns del "$P" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$P"
ip -n "$P" link set lo up
path="tun=bl$id,local=10.76.$x.1,peer=10.76.$x.2/24,netns=$P"
secs=$((size / 20000000 + 120))

json() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d'"$1"')'; }
fail=0

# braid -> Linux
ip netns exec "$P" python3 "$peer_py" server --port 5000 >"$tmp/s1" 2>&1 &
for _ in $(seq 100); do grep -q ready "$tmp/s1" && break; sleep 0.1; done
timeout "$secs" "$BRAID" connect --path "$path" "10.76.$x.2:5000" --bytes "$size" --json --seed 1 \
  >"$tmp/b1" 2>"$tmp/b1.err" || { echo "braid connect failed:"; cat "$tmp/b1.err"; fail=1; }
wait
b_sha=$(json '["sha256"]' <"$tmp/b1" || echo none)
l_sha=$(json '["rx_sha256"]' <"$tmp/s1" || echo none)
l_mptcp=$(json '["mptcp"]' <"$tmp/s1" || echo none)
l_rx=$(json '["rx_bytes"]' <"$tmp/s1" || echo 0)
l_mbps=$(json '["rx_mbps"]' <"$tmp/s1" || echo 0)
ok=no; [ "$b_sha" = "$l_sha" ] && [ "$l_rx" = "$size" ] && [ "$l_mptcp" = True ] && ok=yes
[ "$ok" = yes ] || fail=1
printf 'braid -> Linux: %s bytes read by Linux, mptcp %s, %.0f Mbit/s, sha256 equal: %s\n' \
  "$l_rx" "$l_mptcp" "$l_mbps" "$ok"

# Linux -> braid
ip netns exec "$P" python3 "$peer_py" client --connect "10.76.$x.1" --port 5001 --send "$size" \
  >"$tmp/c2" 2>&1 &
timeout "$secs" "$BRAID" listen --path "$path" --port 5001 --json --seed 2 \
  >"$tmp/b2" 2>"$tmp/b2.err" || { echo "braid listen failed:"; cat "$tmp/b2.err"; fail=1; }
wait
b_sha=$(json '["sha256"]' <"$tmp/b2" || echo none)
b_rx=$(json '["bytes"]' <"$tmp/b2" || echo 0)
l_sha=$(json '["tx_sha256"]' <"$tmp/c2" || echo none)
l_mptcp=$(json '["mptcp"]' <"$tmp/c2" || echo none)
l_mbps=$(json '["tx_mbps"]' <"$tmp/c2" || echo 0)
ok=no; [ "$b_sha" = "$l_sha" ] && [ "$b_rx" = "$size" ] && [ "$l_mptcp" = True ] && ok=yes
[ "$ok" = yes ] || fail=1
printf 'Linux -> braid: %s bytes read by braid, mptcp %s, %.0f Mbit/s, sha256 equal: %s\n' \
  "$b_rx" "$l_mptcp" "$l_mbps" "$ok"
exit "$fail"

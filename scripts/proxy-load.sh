#!/usr/bin/env bash
# Load through `braid proxy` (root): a Linux MPTCP HTTP server in namespace P behind two TUN
# paths, then 100 parallel downloads of 1 MiB and N sequential downloads of 64 KiB (default
# 1000) with curl --socks5, every one checked (HTTP 200, size; SHA-256 for the parallel ones).
# Prints failures and braid's VmRSS: after start, after the parallel and the sequential runs,
# and again after the TIME_WAIT period (60 s) has released the closed connections.
# Usage: scripts/proxy-load.sh [N]      KEEP_WAIT=0 skips the final 65 s wait.
set -euo pipefail
N=${1:-1000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BRAID=${BRAID:-$ROOT/target/release/braid}
[ -x "$BRAID" ] || cargo build --release -p braid --manifest-path "$ROOT/Cargo.toml"
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
NS=braid-load-$$
DIR=$(mktemp -d)
SOCK=$DIR/ctl.sock
SOCKS=127.0.0.1:11090
cleanup() {
  [ -n "${BP:-}" ] && kill -INT "$BP" 2>/dev/null && wait "$BP" 2>/dev/null || true
  [ -n "${HP:-}" ] && kill "$HP" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" mptcp limits set subflows 4 add_addr_accepted 4
mkdir -p "$DIR/www"
head -c $((1 << 20)) /dev/urandom > "$DIR/www/m"
head -c 65536 /dev/urandom > "$DIR/www/k"
SUM=$(sha256sum "$DIR/www/m" | cut -c1-64)
"$BRAID" proxy --quiet --socks $SOCKS --control "$SOCK" \
  --path tun=bl$$a,local=10.81.1.1,peer=10.81.1.2/24,netns=$NS \
  --path tun=bl$$b,local=10.81.2.1,peer=10.81.2.2/24,netns=$NS &
BP=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
ip netns exec "$NS" mptcpize run python3 "$ROOT/tests/interop/http_server.py" \
  --bind 10.81.1.2 --port 8000 --dir "$DIR/www" > "$DIR/server.out" &
HP=$!
for _ in $(seq 100); do grep -q ready "$DIR/server.out" 2>/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' /proc/$BP/status; }
curl -sS --socks5 $SOCKS http://10.81.1.2:8000/k -o /dev/null
R0=$(rss)
T0=$(date +%s.%N)
for i in $(seq 100); do
  ( curl -sS --max-time 90 --socks5 $SOCKS http://10.81.1.2:8000/m -o "$DIR/p$i" \
    && [ "$(sha256sum "$DIR/p$i" | cut -c1-64)" = "$SUM" ] || echo "parallel $i failed" ) &
done > "$DIR/par.log" 2>&1
wait $(jobs -p | grep -v -e "^$BP\$" -e "^$HP\$") 2>/dev/null || true
T1=$(date +%s.%N)
PF=$(grep -c failed "$DIR/par.log" || true)
rm -f "$DIR"/p*
R1=$(rss)
SF=0
for _ in $(seq "$N"); do
  out=$(curl -sS --max-time 30 --socks5 $SOCKS http://10.81.1.2:8000/k -o /dev/null -w '%{http_code} %{size_download}' || true)
  [ "$out" = "200 65536" ] || SF=$((SF + 1))
done
T2=$(date +%s.%N)
R2=$(rss)
HELD=$("$BRAID" status --control "$SOCK" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"].get("EngineConnections", 0))')
echo "parallel: 100 x 1 MiB, $PF failed, $(awk "BEGIN{printf \"%.1f\", $T1 - $T0}") s"
echo "sequential: $N x 64 KiB, $SF failed, $(awk "BEGIN{printf \"%.1f\", $T2 - $T1}") s"
echo "braid VmRSS: ${R0} KiB after start, ${R1} KiB after parallel, ${R2} KiB after sequential ($HELD connections still in TIME_WAIT)"
if [ "${KEEP_WAIT:-1}" != 0 ]; then
  sleep 65
  HELD=$("$BRAID" status --control "$SOCK" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"].get("EngineConnections", 0))')
  echo "braid VmRSS after TIME_WAIT: $(rss) KiB ($HELD connections held)"
fi
[ "$PF" = 0 ] && [ "$SF" = 0 ]

#!/usr/bin/env bash
# Issue 10 in the simulator (default shapes: 1500 MTU, drop-tail queue of one BDP, RTO floor
# 200 ms): the handover table (path 0 blackholed at 2 s mid-transfer, several RTT pairs and
# seeds: the longest pause of the receiving application), failback after a long outage (time
# from path 0's return to its first data packet at the server), a path flapping 5 times
# (intact, goodput beside the same run without flaps), and a backup path (its share while the
# regular path works, the pause when the regular one goes down, its return).
# Usage: scripts/bench-handover-sim.sh [SEEDS...]   (default: 1 2 3)
#   BRAID=path/to/braid to skip the build.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("${@:-1 2 3}")
[ $# -eq 0 ] && seeds=(1 2 3)
braid="${BRAID:-}"
if [ -z "$braid" ]; then
    cargo build --release -q -p braid
    braid=target/release/braid
fi
sim() { "$braid" sim --quiet --json "$@"; }
py_row() {
    python3 -c '
import json, sys
label = sys.argv[1]
r = json.load(sys.stdin)
c = r["counters"]["client"]
ret = [x.get("first_data_ms") for x in r["returns"]]
sub = {}
for s in r["subflows"]:
    sub[s["path"]] = sub.get(s["path"], 0) + s["bytes_sent"]
total = sum(sub.values()) or 1
fields = [f"{label:30}", "intact=" + str(r["intact"]), "pause=%.1f ms" % r["max_stall_ms"],
          "goodput=%.1f Mbit/s" % r["goodput_mbps"]]
for k in ("SubflowStale", "SubflowRecover", "Reinjections"):
    fields.append("%s=%d" % (k, c.get(k, 0)))
fields.append("path1=%.2f%%" % (100.0 * sub.get(1, 0) / total))
if ret:
    fields.append("return->data=" + ",".join("-" if t is None else "%.1f" % t for t in ret) + " ms")
print(" ".join(fields))
' "$1"
}
echo "== handover: path 0 (100mbit) blackholed at 2 s, 96 MiB, longest receiver pause"
for pair in "10ms 20ms" "10ms 10ms" "5ms 40ms" "40ms 5ms"; do
    set -- $pair
    for s in "${seeds[@]}"; do
        sim --path "100mbit/$1/down=2s" --path "100mbit/$2" --bytes 96MiB --seed "$s" |
            py_row "$1+$2 seed $s"
    done
done
echo "== failback: --path 100mbit/10ms/down=2s/up=20s --path 10mbit/10ms, 64 MiB"
sim --path 100mbit/10ms/down=2s/up=20s --path 10mbit/10ms --bytes 64MiB --seed "${seeds[0]}" | py_row "failback"
echo "== flapping path 0 (down 0.5 s every second, 5 times) beside 100mbit/20ms, 128 MiB"
sim --path 100mbit/10ms/down=1s/up=1500ms/down=2s/up=2500ms/down=3s/up=3500ms/down=4s/up=4500ms/down=5s/up=5500ms \
    --path 100mbit/20ms --bytes 128MiB --seed "${seeds[0]}" | py_row "flaps x5"
sim --path 100mbit/10ms --path 100mbit/20ms --bytes 128MiB --seed "${seeds[0]}" | py_row "no flaps"
echo "== backup: --path A --path B/backup"
sim --path 100mbit/10ms --path 100mbit/10ms/backup --bytes 64MiB --seed "${seeds[0]}" | py_row "A works"
sim --path 100mbit/10ms/down=2s/up=4s --path 100mbit/10ms/backup --bytes 96MiB --seed "${seeds[0]}" | py_row "A down 2-4 s"

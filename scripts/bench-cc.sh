#!/usr/bin/env bash
# Issue 9 in the simulator (default shapes: 1500 MTU, drop-tail queue of one BDP, RTO floor
# 200 ms): RFC 6356's goals for every congestion controller braid registers, the autotuning
# cases and the lossy-path case, with the seeds given.
# Usage: scripts/bench-cc.sh [SEEDS...]   (default: 1; the lossy-path table uses 1 2 3 4 5)
#   BRAID=path/to/braid to skip the build; LONG=1 adds the competing cases with 1 GiB (about
#   a minute to four of simulated time: the flows converge; 64 MiB ends after 4 s).
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("$@")
[ $# -eq 0 ] && seeds=(1)
braid="${BRAID:-}"
if [ -z "$braid" ]; then
    cargo build --release -q -p braid
    braid=target/release/braid
fi
ccs=$("$braid" sim --help | sed -n 's/.*--cc <CC>.*: \(.*\) \[default.*/\1/p' | tr -d ,)
[ -n "$ccs" ] || { echo "no controller names in braid sim --help" >&2; exit 1; }
sim() { "$braid" sim --quiet --json "$@"; }
# braid's goodput, the competing flows' goodput, and their ratio.
ratio() {
    python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["intact"], "not intact"
c = sum(x["goodput_mbps"] for x in r["competing"])
print("%.1f / %.1f = %.2f" % (r["goodput_mbps"], c, r["goodput_mbps"] / c if c else float("inf")))'
}
both() {
    python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["intact"], "not intact"
c = sum(x["goodput_mbps"] for x in r["competing"])
print("%.1f, %.1f" % (r["goodput_mbps"], c))'
}
goodput() {
    python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["intact"], "not intact"
m = r["memory"]["client"]["peak_bytes"] + r["memory"]["server"]["peak_bytes"]
print("%.1f (%.1f MiB buffers)" % (r["goodput_mbps"], m / 1048576.0))'
}
for s in "${seeds[@]}"; do
    echo "== seed $s: RFC 6356 goals (competing flows are CUBIC; Mbit/s)"
    echo "| --cc | shared 100 Mbit/s bottleneck: braid / TCP | two paths, TCP on the first: braid, TCP | 100mbit/10ms + 20mbit/50ms, 64 MiB |"
    echo "|---|---|---|---|"
    for cc in $ccs; do
        a=$(sim --cc "$cc" --seed "$s" --path 100mbit/10ms --path 100mbit/10ms/link=0 --competing 1 | ratio)
        b=$(sim --cc "$cc" --seed "$s" --path 100mbit/10ms --path 100mbit/10ms --competing 1 | both)
        c=$(sim --cc "$cc" --seed "$s" --path 100mbit/10ms --path 20mbit/50ms --bytes 64MiB | goodput)
        echo "| $cc | $a | $b | $c |"
    done
    if [ -n "${LONG:-}" ]; then
        echo "== seed $s: the same competing cases with --bytes 1GiB"
        for cc in $ccs; do
            a=$(sim --cc "$cc" --seed "$s" --path 100mbit/10ms --path 100mbit/10ms/link=0 --competing 1 --bytes 1GiB | ratio)
            b=$(sim --cc "$cc" --seed "$s" --path 100mbit/10ms --path 100mbit/10ms --competing 1 --bytes 1GiB | both)
            echo "| $cc | $a | $b |"
        done
    fi
    echo "== seed $s: autotuning, --path 100mbit/1ms --path 100mbit/100ms (no buffer flags)"
    for n in 64MiB 256MiB 1GiB; do
        echo "$n: $(sim --seed "$s" --path 100mbit/1ms --path 100mbit/100ms --bytes "$n" | goodput)"
    done
done
echo "== lossy path beside a clean one, 64 MiB and 256 MiB, seeds 1-5 (Mbit/s; lossy first | clean first)"
for n in 64MiB 256MiB; do
    for s in 1 2 3 4 5; do
        line="$n seed $s: TCP alone on the clean path $(sim --mode tcp --seed "$s" --path 100mbit/10ms --bytes "$n" | goodput)"
        for cc in $ccs; do
            x=$(sim --cc "$cc" --seed "$s" --path 100mbit/10ms/loss=5% --path 100mbit/10ms --bytes "$n" |
                python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["goodput_mbps"])')
            y=$(sim --cc "$cc" --seed "$s" --path 100mbit/10ms --path 100mbit/10ms/loss=5% --bytes "$n" |
                python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["goodput_mbps"])')
            line="$line  $cc $x|$y"
        done
        echo "$line"
    done
done

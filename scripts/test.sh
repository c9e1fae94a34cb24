#!/usr/bin/env bash
# The whole test suite: formatting, lints, every crate's tests (release build: the simulator
# scenarios move gigabytes), the README's examples, and — in CI or with --fuzz — bounded fuzzing
# runs. Run as root on a Debian/Ubuntu machine it first installs, when missing, the tools the
# interop tests use; without root the tests that need root skip, and the summary at the end says
# how many did and why (under CI=true they fail instead).
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz=0
[ "${CI:-}" = "true" ] && fuzz=1
[ "${1:-}" = "--fuzz" ] && fuzz=1
fuzz_seconds="${FUZZ_SECONDS:-60}"
# A fixed seed makes the CI fuzzing a reproducible regression run (set FUZZ_SEED=0 for a random one).
fuzz_seed="${FUZZ_SEED:-1}"

# Tools the interop tests use, as "command:Debian package": tshark judges our packets, tcpdump
# captures, iproute2 builds the namespaces (ip, ss), python3, curl and iperf3 are Linux's own
# clients and servers, mptcpize runs them over the kernel's MPTCP.
tools="tshark:tshark tcpdump:tcpdump iperf3:iperf3 mptcpize:mptcpize curl:curl ip:iproute2 ss:iproute2 python3:python3"
missing=()
for t in $tools; do
  if ! command -v "${t%%:*}" >/dev/null 2>&1; then
    case " ${missing[*]:-} " in *" ${t#*:} "*) ;; *) missing+=("${t#*:}") ;; esac
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing with apt-get: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "== missing: ${missing[*]} (tests that need them skip; run as root to install them)"
  fi
fi

# Every test that skips appends "name: reason" here (crates/braid/tests/common: skip).
skip_log=$(mktemp)
trap 'rm -f "$skip_log"' EXIT
export BRAID_SKIP_LOG="$skip_log"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test (release)"
cargo test --workspace --release
# Long runs, ignored by default (each moves 8 GiB through the simulator: every sequence space
# passes 2^31 and 2^32), run here.
echo "== long simulator runs (8 GiB)"
cargo test --release -p braid-sim --test long -- --ignored

if [ "$fuzz" = 1 ]; then
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
  fi
  for target in $(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz list); do
    echo "== fuzz $target for ${fuzz_seconds}s"
    # New inputs go to a scratch directory; the committed seeds stay as they are.
    scratch=$(mktemp -d)
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$scratch" corpus/"$target" -- \
      -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -seed="$fuzz_seed")
    rm -rf "$scratch"
  done
fi

took="$((SECONDS / 60))m$((SECONDS % 60))s"
skipped=$(wc -l <"$skip_log")
if [ "$skipped" -gt 0 ]; then
  echo "== $skipped tests SKIPPED: they count as passed above, but tested nothing. Why:"
  sed 's/^[^:]*: //' "$skip_log" | sort | uniq -c | sed 's/^ */   /; s/^\(   [0-9]*\) /\1 x /'
  echo "   (the tests: $(sed 's/: .*//' "$skip_log" | sort | tr '\n' ',' | sed 's/,$//; s/,/, /g'))"
  echo "== all tests passed in $took, $skipped of them skipped"
else
  echo "== all tests passed in $took, none skipped"
fi

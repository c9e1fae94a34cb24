#!/usr/bin/env bash
# The whole test suite: formatting, lints, every crate's tests (release build: the simulator
# scenarios move gigabytes), and — in CI or with --fuzz — bounded fuzzing runs.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz=0
[ "${CI:-}" = "true" ] && fuzz=1
[ "${1:-}" = "--fuzz" ] && fuzz=1
fuzz_seconds="${FUZZ_SECONDS:-60}"
# A fixed seed makes the CI fuzzing a reproducible regression run (set FUZZ_SEED=0 for a random one).
fuzz_seed="${FUZZ_SEED:-1}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test (release)"
cargo test --workspace --release

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
echo "== all tests passed"

#!/usr/bin/env bash
# The project's test command: unit, fuzz, golden-pcap, tshark and namespace
# integration tests.
#
# Tests that need root (they create their own network namespaces and remove them,
# attach XDP programs) are marked #[ignore]: run as root, this script includes
# them; run otherwise, cargo reports them as ignored, never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Cases for the property tests that feed arbitrary bytes through the pipeline.
export EIP_FUZZ_CASES="${EIP_FUZZ_CASES:-20000}"
# The daemon's integration tests drive both binaries; cargo builds only the tested
# crate's own binary for them, so build eipctl (and eipd) first, same profile.
cargo build --workspace --all-features --release --bins
ignored=()
if [ "$(id -u)" -eq 0 ]; then
  ignored=(--include-ignored)
else
  echo "test.sh: not root: the namespace/XDP tests are reported as ignored" >&2
fi
# `helper_` tests are child processes of other tests; `measure_` ones are
# measurements run by hand.
cargo test --workspace --all-features --release -- --test-threads=1 \
  "${ignored[@]}" --skip helper_ --skip measure_ "$@"

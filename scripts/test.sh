#!/usr/bin/env bash
# The project's test command: unit, fuzz, golden-pcap, tshark and namespace
# integration tests. Integration tests need root (they create their own network
# namespaces and remove them); they fail rather than skip without it unless
# EIP_SKIP_ROOT_TESTS=1 is set.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Cases for the property tests that feed arbitrary bytes through the pipeline.
export EIP_FUZZ_CASES="${EIP_FUZZ_CASES:-20000}"
cargo test --workspace --all-features --release -- --test-threads=1 "$@"

#!/usr/bin/env bash
# Coverage-guided fuzzing with AFL++ (cargo-afl, stable toolchain) of the three
# places outside bytes enter: the pipeline, the control-socket request parser and
# the configuration parser. Targets and corpus: fuzz/ (README "Fuzzing").
#
#   scripts/fuzz.sh ci [SCALE]          each target for a fixed number of executions
#                                       (pipeline and request 200,000, config 3,000:
#                                       it builds Maglev tables), times SCALE (default
#                                       1); fails on any crash or hang
#   scripts/fuzz.sh run TARGET SECONDS  one target for a time, on all cores
#   scripts/fuzz.sh seed                rewrite fuzz/corpus from the pcap fixtures
#
# Prints, per target: executions, execs/s, edges found, bitmap coverage, crashes,
# hangs. Findings stay in fuzz/out/<target>/default/{crashes,hangs}; a fixed crash
# belongs in fuzz/corpus/<target>/ so the corpus test keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
mode="${1:-ci}"
# Separate target dirs: AFL's instrumentation flags would rebuild the plain one.
plain_target="$PWD/target" afl_target="$PWD/target-afl"
afl_build() { CARGO_TARGET_DIR="$afl_target" cargo afl build --release --bins; }

if ! command -v cargo-afl >/dev/null; then
  cargo install cargo-afl --locked --version '^0.18'
fi
# The AFL++ runtime is built once per toolchain (cargo install may have done it).
cargo afl config --build >/dev/null 2>&1 || true

export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
  AFL_FAST_CAL=1 AFL_QUIET=1

stat_of() { sed -n "s/^$2 *: //p" "$1/default/fuzzer_stats" | tr -d ' %'; }

report() {
  local target=$1 out=$2 crashes hangs
  crashes=$(find "$out/default/crashes" -name 'id:*' 2>/dev/null | wc -l)
  hangs=$(find "$out/default/hangs" -name 'id:*' 2>/dev/null | wc -l)
  printf '| %-8s | %10s | %8s | %6s | %7s%% | %7s | %5s |\n' "$target" \
    "$(stat_of "$out" execs_done)" "$(stat_of "$out" execs_per_sec)" \
    "$(stat_of "$out" edges_found)" "$(stat_of "$out" bitmap_cvg)" "$crashes" "$hangs"
  [ "$crashes" -eq 0 ] && [ "$hangs" -eq 0 ]
}

header() {
  echo '| target   | executions | execs/s  | edges  | bitmap   | crashes | hangs |'
  echo '|----------|-----------:|---------:|-------:|---------:|--------:|------:|'
}

case "$mode" in
  seed)
    CARGO_TARGET_DIR="$plain_target" cargo run --release --bin seed
    ;;
  ci)
    scale="${2:-1}"
    declare -A execs=([pipeline]=$((200000 * scale)) [request]=$((200000 * scale)) [config]=$((3000 * scale)))
    CARGO_TARGET_DIR="$plain_target" cargo test --release --lib
    afl_build
    rows=() failed=0
    mkdir -p out
    for target in pipeline request config; do
      out=out/$target
      rm -rf "$out"
      # -E: stop after about this many executions; -V: and never run past 10 min.
      cargo afl fuzz -i "corpus/$target" -o "$out" -E "${execs[$target]}" -V 600 \
        "$afl_target/release/$target" >"out-$target.log" 2>&1 ||
        { echo "fuzz.sh: AFL failed on $target:" >&2; tail -20 "out-$target.log" >&2; exit 1; }
      rows+=("$target")
    done
    header
    for target in "${rows[@]}"; do report "$target" "out/$target" || failed=1; done
    if [ "$failed" -ne 0 ]; then
      echo "fuzz.sh: crashes or hangs: see fuzz/out/<target>/default/" >&2
      exit 1
    fi
    ;;
  run)
    target="${2:?target: pipeline, request or config}" seconds="${3:?seconds}"
    afl_build
    out=out/$target
    rm -rf "$out"
    mkdir -p out
    cargo afl fuzz -i "corpus/$target" -o "$out" -V "$seconds" \
      "$afl_target/release/$target" >"out-$target.log" 2>&1 || true
    header
    report "$target" "$out"
    ;;
  *)
    echo "usage: $0 ci [EXECS] | run TARGET SECONDS | seed" >&2
    exit 2
    ;;
esac

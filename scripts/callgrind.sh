#!/usr/bin/env bash
# Instructions per packet of the pipeline, per benchmark case, exact under callgrind.
#
#   scripts/callgrind.sh [--packets N] [--batch N] [CASE-SUBSTRING...]
#
# Runs `eip-bench --runs 1 --packets N` once per case under
# `valgrind --tool=callgrind`, collecting only inside `Pipeline::process` and inside
# the benchmark's minimal loop (`MiniTables::process`), and prints a table of
# instructions per packet for both and their ratio. Instruction counts do not depend
# on the machine's load or clock, so two builds compare exactly (same command, same
# packet count). Table building and the copy of frames into buffers are not counted.
# Installs valgrind with apt when it is missing (fresh Debian machine).
set -euo pipefail
cd "$(dirname "$0")/.."

packets=131072
batch=64
cases=()
while [ $# -gt 0 ]; do
  case "$1" in
    --packets) packets="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) cases+=("$1"); shift ;;
  esac
done
if [ ${#cases[@]} -eq 0 ]; then
  cases=("64B, 1k EIPs" "IMIX 7:4:1, 1k EIPs" "returns (decap), 1k EIPs" "64B, 1M EIPs" "service, 1000 backends")
fi

if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
  echo "installing valgrind" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi

cargo build --release -p eip-bench >&2
bench="${CARGO_TARGET_DIR:-target}/release/eip-bench"
out_dir=$(mktemp -d)
trap 'rm -rf "$out_dir"' EXIT

# The largest inclusive count of the lines naming this function: its total (other
# lines are the parts of it inlined from other files).
inclusive() {
  callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
    awk -v fn="$2" 'index($0, fn) { gsub(",", "", $1); if ($1 + 0 > max) max = $1 + 0 } END { print max + 0 }'
}

echo "instructions per packet inside Pipeline::process, callgrind, $packets packets per case, batch $batch"
echo
echo "| case | pipeline instructions/packet | minimal loop instructions/packet | ratio |"
echo "|---|---:|---:|---:|"
for c in "${cases[@]}"; do
  out="$out_dir/callgrind.out"
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    --toggle-collect='eip_dataplane::pipeline::Pipeline::process' \
    --toggle-collect='eip_bench::minimal::MiniTables::process' \
    "$bench" --case "$c" --runs 1 --packets "$packets" --batch "$batch" >"$out_dir/bench.log" 2>&1 || {
      cat "$out_dir/bench.log" >&2
      echo "case '$c' failed under valgrind" >&2
      exit 1
    }
  grep -q '^| ' "$out_dir/bench.log" || { echo "case '$c': no such benchmark case" >&2; exit 1; }
  pipeline=$(inclusive "$out" "eip_dataplane::pipeline::Pipeline::process")
  minimal=$(inclusive "$out" "eip_bench::minimal::MiniTables::process")
  awk -v c="$c" -v p="$pipeline" -v m="$minimal" -v n="$packets" 'BEGIN {
    if (p == 0) { print "no instructions counted in Pipeline::process for " c > "/dev/stderr"; exit 1 }
    printf "| %s | %.1f | %.1f | %.2fx |\n", c, p / n, m / n, (m > 0 ? p / m : 0)
  }'
done

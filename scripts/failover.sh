#!/usr/bin/env bash
# Failover on the namespace testbed: two backbone links to the region, eipd with
# fast path probes, six ICMP flows to the EIP (10 ms apart each). At +4 s the
# region starts dropping everything arriving on link bb1 (the forward direction of
# path bb1: what a cut fibre looks like to the POP), at +7 s the link comes back.
# Prints, per flow, the path it was on, the replies lost and the longest gap, and
# eipd's path events with their times. Needs root; tears everything down.
#
#   scripts/failover.sh [--interval-ms 10] [--timeout-ms 50]
set -euo pipefail
cd "$(dirname "$0")/.."
INTERVAL=10; TIMEOUT=50
while [ $# -gt 0 ]; do
  case $1 in
    --interval-ms) INTERVAL=$2; shift 2 ;;
    --timeout-ms) TIMEOUT=$2; shift 2 ;;
    *) echo "usage: $0 [--interval-ms N] [--timeout-ms N]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "failover: needs root" >&2; exit 1; }
EIPD=${EIPD:-target/release/eipd}
[ -x "$EIPD" ] || cargo build --release --bin eipd
ID=fo$((RANDOM % 100000))
WORK=$(mktemp -d /tmp/eipfailover.XXXXXX)
EIPD_PID=""
cleanup() {
  [ -n "$EIPD_PID" ] && { kill -INT "$EIPD_PID" 2>/dev/null || true; wait "$EIPD_PID" 2>/dev/null || true; }
  scripts/testbed.sh down --id "$ID" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/testbed.sh up --id "$ID" --paths 2 --no-services >/dev/null
# shellcheck disable=SC1090
source <(scripts/testbed.sh env --id "$ID")
ip netns exec "$TB_NS_POP" "$EIPD" run --config "$TB_EIPD_CONFIG" --state "$WORK/state.json" \
  --socket "$WORK/control.sock" --idle-sleep --probe-interval-ms "$INTERVAL" --probe-timeout-ms "$TIMEOUT" \
  >"$WORK/eipd.log" 2>&1 &
EIPD_PID=$!
# Paths start up (as the tables hold them); give the probes a second to confirm.
for _ in $(seq 100); do
  grep -q "eipd: running" "$WORK/eipd.log" && break
  sleep 0.1
done
sleep 1
T0=$(date +%s.%N)
for k in 1 2 3 4 5 6; do
  # -D: timestamps; each ping is its own ICMP flow (its own identifier).
  ip netns exec "$TB_NS_CLIENT" ping -D -i 0.01 -w 10 -W 1 192.0.2.10 >"$WORK/ping$k.log" 2>&1 &
done
sleep 4
CUT=$(date +%s.%N)
ip netns exec "$TB_NS_REGION" nft add table netdev eipcut
ip netns exec "$TB_NS_REGION" nft add chain netdev eipcut c "{ type filter hook ingress device rg-bb1 priority 0; policy drop; }"
sleep 3
RESTORE=$(date +%s.%N)
ip netns exec "$TB_NS_REGION" nft delete table netdev eipcut
wait $(jobs -p | grep -v "^$EIPD_PID$") 2>/dev/null || true
sleep 0.5

echo "probe interval ${INTERVAL} ms, timeout ${TIMEOUT} ms; cut of bb1 at +$(awk "BEGIN{printf \"%.2f\", $CUT - $T0}") s, restored at +$(awk "BEGIN{printf \"%.2f\", $RESTORE - $T0}") s"
echo "flow  sent  lost  longest gap (ms)  gap starts after cut (ms)"
for k in 1 2 3 4 5 6; do
  /usr/bin/python3 - "$WORK/ping$k.log" "$CUT" "$k" <<'PY'
import re, sys
log, cut, k = sys.argv[1], float(sys.argv[2]), sys.argv[3]
times = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\].*icmp_seq=", open(log).read(), re.M)]
sent = re.search(r"(\d+) packets transmitted", open(log).read())
sent = int(sent.group(1)) if sent else 0
gaps = [(b - a, a) for a, b in zip(times, times[1:])]
gap, start = max(gaps) if gaps else (0, cut)
print(f"{k:>4}  {sent:>4}  {sent - len(times):>4}  {gap * 1000:>16.0f}  {(start - cut) * 1000:>25.0f}")
PY
done
echo "eipd path events (seconds after the cut):"
# Log lines start with the epoch time in seconds (eipd's human log format).
awk -v cut="$CUT" -v restore="$RESTORE" '/(path bb|region beijing|path states in force)/ && $1 ~ /^[0-9]+\.[0-9]+$/ {
  line = $0; sub(/^[0-9.]+ +[A-Z]+ +/, "", line)
  printf "  %+8.3f  %s\n", $1 - cut, line
}' "$WORK/eipd.log"
down=$(awk '/path bb1: up -> down/ {print $1; exit}' "$WORK/eipd.log")
up=$(awk -v r="$RESTORE" '/path bb1: down -> up/ && $1 > r {print $1; exit}' "$WORK/eipd.log")
[ -n "$down" ] && awk -v a="$CUT" -v b="$down" 'BEGIN{printf "bb1 declared down %.0f ms after the cut\n", (b - a) * 1000}'
[ -n "$up" ] && awk -v a="$RESTORE" -v b="$up" 'BEGIN{printf "bb1 back up %.0f ms after the repair\n", (b - a) * 1000}'

#!/usr/bin/env bash
# Scale measurements on the namespace testbed (two backbone paths): for each N,
# eipd runs with N extra 1:1 EIPs (10.64.0.0/10, backends in 10.128.0.0/10) on
# top of the testbed's configuration, and the script measures
#   - build:    `eipd check` of the configuration (parse + table build), seconds;
#   - start:    launch to a control socket answering (boot from configuration);
#   - change:   1,000 alternating add_eip / remove_eip over ONE persistent control
#               connection, request to reply (in force on every worker and
#               durable when the reply arrives), p50 / p99 / max in ms, while a
#               ping flow (every 10 ms) to an EIP they leave alone runs: "flow
#               lost" is how many of its requests got no reply;
#   - restart:  eipd killed (SIGKILL) after those changes and started again:
#               launch to the socket answering with the last committed version;
#   - RSS:      eipd's resident memory after start, and bytes per EIP over the
#               run with no extra EIP;
#   - failover: six ICMP flows to 192.0.2.10 (10 ms apart), path bb1 cut at the
#               region: when eipd declared it down, when the new tables were in
#               force, the longest gap of any flow and the replies lost by flows
#               that were on bb0 (they must lose nothing).
# Prints one table. Needs root; tears everything down (SCALE_LOG=FILE keeps
# eipd's log there).
#
# The extra EIPs are in an EIP list file (`[pop] eips_file`); --inline-toml
# writes them as `[[eips]]` tables in the TOML instead (slower to parse).
#
#   scripts/scale.sh [--interval-ms 10] [--timeout-ms 50] [--inline-toml] [N ...]
#   (default N: 1000 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
INTERVAL=10; TIMEOUT=50; INLINE=0; SIZES=()
while [ $# -gt 0 ]; do
  case $1 in
    --interval-ms) INTERVAL=$2; shift 2 ;;
    --timeout-ms) TIMEOUT=$2; shift 2 ;;
    --inline-toml) INLINE=1; shift ;;
    [0-9]*) SIZES+=("$1"); shift ;;
    *) echo "usage: $0 [--interval-ms N] [--timeout-ms N] [--inline-toml] [N ...]" >&2; exit 2 ;;
  esac
done
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 100000)
[ "$(id -u)" -eq 0 ] || { echo "scale: needs root" >&2; exit 1; }
PY=/usr/bin/python3
EIPD=${EIPD:-${CARGO_TARGET_DIR:-target}/release/eipd}
[ -x "$EIPD" ] || cargo build --release --bin eipd
ID=sc$((RANDOM % 100000))
WORK=$(mktemp -d /tmp/eipscale.XXXXXX)
EIPD_PID=""
stop_eipd() {
  if [ -n "$EIPD_PID" ]; then
    kill "-${1:-INT}" "$EIPD_PID" 2>/dev/null || true
    wait "$EIPD_PID" 2>/dev/null || true
    EIPD_PID=""
  fi
}
cleanup() {
  stop_eipd
  scripts/testbed.sh down --id "$ID" >/dev/null 2>&1 || true
  [ -z "${SCALE_LOG:-}" ] || cp "$WORK/eipd.log" "$SCALE_LOG" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/testbed.sh up --id "$ID" --paths 2 --no-services >/dev/null
# shellcheck disable=SC1090
source <(scripts/testbed.sh env --id "$ID")

# The testbed's configuration with N extra 1:1 EIPs: in an EIP list file
# (`[pop] eips_file`, one JSON object per line), or as `[[eips]]` TOML with
# --inline-toml.
make_config() { # N FILE
  local list; list="$(dirname "$2")/eips-$1.jsonl"
  if [ "$INLINE" = 1 ]; then
    cp "$TB_EIPD_CONFIG" "$2"
  else
    sed "0,/^\[pop\]/s||[pop]\neips_file = \"$(basename "$list")\"|" "$TB_EIPD_CONFIG" >"$2"
  fi
  "$PY" - "$1" "$INLINE" >>"$2" 3>"$list" <<'PY'
import ipaddress, os, sys
n, inline = int(sys.argv[1]), sys.argv[2] == "1"
eip = int(ipaddress.IPv4Address("10.64.0.0"))
backend = int(ipaddress.IPv4Address("10.128.0.0"))
out = sys.stdout if inline else os.fdopen(3, "w")
for i in range(n):
    a, b = ipaddress.IPv4Address(eip + i), ipaddress.IPv4Address(backend + i)
    if inline:
        out.write(f'[[eips]]\naddress = "{a}"\nregion = "beijing"\nbackend = "{b}"\n')
    else:
        out.write(f'{{"address": "{a}", "region": "beijing", "backend": "{b}"}}\n')
out.flush()
PY
}

# Starts eipd on CONFIG with state STATE; prints seconds until the socket answers.
start_eipd() { # CONFIG STATE MAX_EIPS
  rm -f "$WORK/control.sock"
  local t0; t0=$(date +%s.%N)
  ip netns exec "$TB_NS_POP" "$EIPD" run --config "$1" --state "$2" --max-eips "$3" \
    --socket "$WORK/control.sock" --idle-sleep --probe-interval-ms "$INTERVAL" \
    --probe-timeout-ms "$TIMEOUT" >>"$WORK/eipd.log" 2>&1 &
  EIPD_PID=$!
  "$PY" - "$WORK/control.sock" "$t0" <<'PY'
import json, socket, sys, time
path, t0 = sys.argv[1], float(sys.argv[2])
deadline = time.time() + 600
while time.time() < deadline:
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        s.sendall(b'{"cmd":"show_tables"}\n')
        reply = json.loads(s.makefile().readline())
        print(f"{time.time() - t0:.2f} {reply['version']}")
        sys.exit(0)
    except OSError:
        time.sleep(0.02)
sys.exit("eipd did not answer")
PY
}

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$EIPD_PID/status"; }

# 1,000 changes over one connection; prints p50 p99 max (ms) and the last version.
changes() {
  "$PY" - "$WORK/control.sock" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
lat, version = [], 0
for i in range(1000):
    a = f"10.200.{i // 2 // 250}.{i // 2 % 250 + 1}"
    b = f"10.201.{i // 2 // 250}.{i // 2 % 250 + 1}"
    if i % 2 == 0:
        req = {"cmd": "add_eip", "eip": {"address": a, "region": "beijing", "backend": b}}
    else:
        req = {"cmd": "remove_eip", "address": a}
    t = time.perf_counter()
    f.write(json.dumps(req).encode() + b"\n"); f.flush()
    reply = json.loads(f.readline())
    lat.append((time.perf_counter() - t) * 1000)
    if not reply.get("ok"):
        sys.exit(f"change {i} failed: {reply}")
    version = reply["version"]
lat.sort()
# One more EIP left in force, to check the restart.
f.write(json.dumps({"cmd": "add_eip", "eip": {"address": "10.200.9.9", "region": "beijing", "backend": "10.201.9.9"}}).encode() + b"\n"); f.flush()
version = json.loads(f.readline())["version"]
print(f"{lat[len(lat) // 2]:.2f} {lat[int(len(lat) * 0.99)]:.2f} {lat[-1]:.2f} {version}")
PY
}

# Path cut at the region's end of bb1 while six flows run; prints
# "declared_down_ms in_force_ms longest_gap_ms lost_on_bb0".
failover() {
  local logstart; logstart=$(wc -l <"$WORK/eipd.log")
  sleep 1
  for k in 1 2 3 4 5 6; do
    ip netns exec "$TB_NS_CLIENT" ping -D -i 0.01 -w 5 -W 1 192.0.2.10 >"$WORK/ping$k.log" 2>&1 &
  done
  sleep 2
  local cut; cut=$(date +%s.%N)
  ip netns exec "$TB_NS_REGION" nft add table netdev eipcut
  ip netns exec "$TB_NS_REGION" nft add chain netdev eipcut c "{ type filter hook ingress device rg-bb1 priority 0; policy drop; }"
  sleep 3
  wait $(jobs -p | grep -v "^$EIPD_PID$") 2>/dev/null || true
  ip netns exec "$TB_NS_REGION" nft delete table netdev eipcut
  tail -n +"$((logstart + 1))" "$WORK/eipd.log" >"$WORK/eipd.tail"
  "$PY" - "$WORK" "$cut" <<'PY'
import re, sys
work, cut = sys.argv[1], float(sys.argv[2])
down = inforce = None
for line in open(f"{work}/eipd.tail"):
    m = re.match(r"^(\d+\.\d+)\s", line)
    if not m:
        continue
    t = float(m.group(1))
    if down is None and "path bb1: up -> down" in line:
        down = t
    elif down is not None and inforce is None and "path states in force" in line:
        inforce = t
worst, lost_bb0 = 0.0, 0
for k in range(1, 7):
    text = open(f"{work}/ping{k}.log").read()
    times = [float(x) for x in re.findall(r"^\[(\d+\.\d+)\].*icmp_seq=", text, re.M)]
    sent = re.search(r"(\d+) packets transmitted", text)
    sent = int(sent.group(1)) if sent else 0
    gaps = [b - a for a, b in zip(times, times[1:]) if b > cut - 0.05]
    gap = max(gaps) if gaps else 0.0
    if gap < 0.05:  # a flow on bb0: any loss counts
        lost_bb0 += sent - len(times)
    worst = max(worst, gap)
ms = lambda t, base: f"{(t - base) * 1000:.0f}" if t else "-"
print(ms(down, cut), ms(inforce, cut), f"{worst * 1000:.0f}", lost_bb0)
PY
}

declare -A ROW
measure() { # N
  local n=$1 cfg="$WORK/pop-$1.toml" state="$WORK/state-$1/state.json"
  mkdir -p "$WORK/state-$n"
  make_config "$n" "$cfg"
  local max=$(( (n + 10) * 2 > 262144 ? (n + 10) * 2 : 262144 ))
  local t0 t1; t0=$(date +%s.%N)
  "$EIPD" check --config "$cfg" >/dev/null
  t1=$(date +%s.%N)
  local build; build=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b - a}')
  # Not in $(...): eipd's pid must stay in this shell.
  start_eipd "$cfg" "$state" "$max" >"$WORK/start.out"
  local start; start=$(cut -d' ' -f1 "$WORK/start.out")
  sleep 1
  local rss; rss=$(rss_kib)
  if [ "$n" -eq 0 ]; then
    ROW[$n]="$build|$start|-|-|-|$rss|-|-"
    stop_eipd INT
    return
  fi
  # A flow to an EIP the changes leave alone: it must lose nothing.
  ip netns exec "$TB_NS_CLIENT" ping -D -i 0.01 -W 1 192.0.2.10 >"$WORK/during.log" 2>&1 &
  local flow=$!
  sleep 0.5
  read -r p50 p99 pmax version < <(changes)
  sleep 0.5
  kill -INT "$flow" 2>/dev/null || true
  wait "$flow" 2>/dev/null || true
  # Requests up to the last answered one that got no reply (the one ping
  # sent as it was stopped does not count).
  local during
  during=$(awk 'match($0, /icmp_seq=[0-9]+/) { s = substr($0, RSTART + 9, RLENGTH - 9) + 0;
      if (s > hi) hi = s; n++ }
    END { if (n) printf "%d of %d", hi - n, hi; else print "no reply" }' \
    "$WORK/during.log")
  read -r down inforce gap lost < <(failover)
  stop_eipd KILL
  start_eipd "$cfg" "$state" "$max" >"$WORK/start.out"
  local restart; restart=$(cat "$WORK/start.out")
  local rversion=${restart#* }
  restart=${restart% *}
  [ "$rversion" = "$version" ] || restart="$restart (version $rversion, expected $version!)"
  stop_eipd INT
  ROW[$n]="$build|$start|$p50 / $p99 / $pmax|$during|$restart|$rss|$down / $inforce|$gap ms, $lost lost on bb0"
}

measure 0
for n in "${SIZES[@]}"; do
  echo "scale: measuring N=$n ..." >&2
  measure "$n"
done

base_rss=$(echo "${ROW[0]}" | cut -d'|' -f6)
printf "%-9s | %-9s | %-9s | %-24s | %-13s | %-10s | %-9s | %-9s | %-17s | %s\n" \
  "EIPs" "build (s)" "start (s)" "change p50/p99/max (ms)" "flow lost" "restart (s)" "RSS (MiB)" \
  "B per EIP" "cut: down/in force" "longest gap, loss"
for n in "${SIZES[@]}"; do
  IFS='|' read -r build start lat during restart rss fo gap <<<"${ROW[$n]}"
  per=$(awk -v r="$rss" -v b="$base_rss" -v n="$n" 'BEGIN{printf "%.0f", (r - b) * 1024 / n}')
  printf "%-9s | %-9s | %-9s | %-24s | %-13s | %-10s | %-9s | %-9s | %-17s | %s\n" \
    "$n" "$build" "$start" "$lat" "$during" "$restart" "$(awk -v r="$rss" 'BEGIN{printf "%.0f", r / 1024}')" "$per" \
    "$fo ms" "$gap"
done
echo "(EIPs $([ "$INLINE" = 1 ] && echo "as [[eips]] TOML" || echo "in an EIP list file"); probe interval ${INTERVAL} ms, timeout ${TIMEOUT} ms; base run without extra EIPs: RSS $((base_rss / 1024)) MiB)"

#!/usr/bin/env bash
# bench-veth.sh - packet-rate benchmark of the POP on the veth testbed.
#
# One testbed, one generator, three scenarios, measured the same way:
#   raw    trafgen (client ns) -> eip-inet with an XDP_DROP program: what the
#          veth pair itself delivers on this machine (upper bound).
#   eipd   eipd forwarding client -> EIP -> VXLAN toward the region. Runs only
#          if $EIPD is set: `$EIPD run --config <testbed pop.toml> $EIPD_ARGS`
#          in the POP namespace, pinned to the forwarding CPU.
#   linux  the Linux baseline (nftables DNAT + vxlan device in the POP ns).
# For eipd and linux the delivered rate is counted on the region's backbone
# veth(s), where an XDP_DROP program discards the frames (so the region's
# stack is never the bottleneck). Rates are rx_packets deltas over a fixed
# window after a warm-up; the median of --runs runs is reported.
#
# Generator: trafgen, one process, TX_RING fast path, for every scenario.
# trafgen pins its worker to CPU 0 itself (whatever taskset says), so the
# generator CPU is 0; the forwarder (eipd, or the kernel's forwarding for the
# baseline) gets --fwd-cpu (default 1). UDP to EIP 192.0.2.10 port 9 from
# 203.0.113.2, --flows source ports, full checksums (trafgen computes them).
# trafgen runs with sndbuf_shim.so preloaded (bigger SO_SNDBUF); without it
# trafgen aborts with EAGAIN as soon as the receiver queues packets for
# another CPU (see sndbuf_shim.c).
#
# Linux baseline steering (--linux-steer): how the POP's kernel work gets off
# the generator's CPU, as a NIC's IRQ affinity would do it:
#   rps  (default) RPS on eip-inet's rx queues -> --fwd-cpu
#   napi GRO on eip-inet (veth NAPI mode) + threaded NAPI, kthread pinned to
#        --fwd-cpu
#   none everything on the generator's CPU
#
# Options:
#   --runs N          runs per scenario and size (default 3)
#   --duration S      measurement window per run in seconds (default 5)
#   --warmup S        seconds of traffic before the window opens (default 1)
#   --sizes "A B"     Ethernet frame sizes incl. 4-byte FCS, RFC 2544 style
#                     (default "64 1518": 60-byte frames, and 1514-byte frames
#                     carrying 1500-byte IP packets)
#   --flows N         distinct UDP source ports (default 256)
#   --queues N        veth queues (default 1)
#   --paths 1|2       backbone links (default 1; delivered = sum over links)
#   --scenarios "..." subset of "raw eipd linux" (default all)
#   --fwd-cpu N       CPU for eipd / the baseline's forwarding (default 1)
#   --linux-steer M   rps | napi | none (default rps), see above
#   --no-sanity       skip the capture check of eipd/linux output
#   --id ID           testbed id (default b + random hex)
#   --csv FILE        also write per-run results (CSV) to FILE
#   --quiet-timeout S before each run, wait up to S seconds (default 20) for
#                     a 1-second sample in which no CPU is more than 15% busy
#                     (the machine is shared); 0 disables the wait
# Environment: EIPD (eipd binary), EIPD_ARGS (extra arguments),
#   EIPD_READY_TIMEOUT (seconds to wait for eipd to attach, default 15).

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TB=$SCRIPT_DIR/testbed.sh
RUNS=3; DURATION=5; WARMUP=1; SIZES="64 1518"; FLOWS=256; QUEUES=1; PATHS=1
SCENARIOS="raw eipd linux"; FWD_CPU=1; STEER=rps; SANITY=1; ID=""; CSV=""; QUIET_TIMEOUT=20; QUIET_MAX=15; BUSY_RUNS=0
EIPD=${EIPD:-}; EIPD_ARGS=${EIPD_ARGS:-}; EIPD_READY_TIMEOUT=${EIPD_READY_TIMEOUT:-15}
GEN_CPU=0   # trafgen forces its (single) worker onto CPU 0

die() { echo "bench: error: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --sizes) SIZES=$2; shift 2 ;;
    --flows) FLOWS=$2; shift 2 ;;
    --queues) QUEUES=$2; shift 2 ;;
    --paths) PATHS=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --fwd-cpu) FWD_CPU=$2; shift 2 ;;
    --linux-steer) STEER=$2; shift 2 ;;
    --no-sanity) SANITY=0; shift ;;
    --id) ID=$2; shift 2 ;;
    --csv) CSV=$2; shift 2 ;;
    --quiet-timeout) QUIET_TIMEOUT=$2; shift 2 ;;
    -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
for v in RUNS DURATION WARMUP FLOWS QUEUES FWD_CPU QUIET_TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "--${v,,} must be a number"
done
(( RUNS >= 1 && DURATION >= 1 && DURATION <= 60 && FLOWS >= 1 && FLOWS <= 60000 )) || die "bad --runs/--duration/--flows"
for s in $SIZES; do [[ $s =~ ^[0-9]+$ ]] && (( s >= 64 && s <= 1518 )) || die "sizes must be 64..1518"; done
for s in $SCENARIOS; do [[ $s == raw || $s == eipd || $s == linux ]] || die "unknown scenario $s"; done
[[ $STEER == rps || $STEER == napi || $STEER == none ]] || die "--linux-steer must be rps, napi or none"
for c in trafgen clang ip ethtool nft taskset timeout; do command -v $c >/dev/null || die "missing $c"; done
(( FWD_CPU < $(nproc) )) || die "--fwd-cpu $FWD_CPU: only $(nproc) CPUs"
[[ -n $ID ]] || ID=b$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')

WORK=$(mktemp -d /tmp/eipbench.XXXXXX)
RESULTS=$WORK/results.txt; : >"$RESULTS"
EIPD_PID=""; TG_PID=""; TB_UP=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $TG_PID ]]; then kill -INT "$TG_PID" 2>/dev/null || true; wait "$TG_PID" 2>/dev/null || true; fi
  [[ -n $EIPD_PID ]] && stop_eipd
  if [[ $TB_UP == 1 ]]; then "$TB" down --id "$ID" >/dev/null 2>&1 || say "testbed down failed for $ID"; fi
  rm -rf -- "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ helpers
clang -O2 -g -target bpf -I"/usr/include/$(uname -m)-linux-gnu" -c "$SCRIPT_DIR/xdp_drop.c" -o "$WORK/xdp_drop.o" \
  || die "compiling xdp_drop.c failed"
clang -O2 -shared -fPIC -o "$WORK/sndbuf_shim.so" "$SCRIPT_DIR/sndbuf_shim.c" -ldl \
  || die "compiling sndbuf_shim.c failed"

TB_UP=1
"$TB" up --id "$ID" --queues "$QUEUES" --paths "$PATHS" --no-services >/dev/null
# shellcheck disable=SC1090
source <("$TB" env --id "$ID")
REGION_BB_IFS=(); for ((i = 0; i < PATHS; i++)); do v=TB_REGION_BB${i}_IF; REGION_BB_IFS+=("${!v}"); done

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
xdp_on() { ip -n "$1" link set dev "$2" xdpdrv obj "$WORK/xdp_drop.o" sec xdp; }
xdp_off() { ip -n "$1" link set dev "$2" xdpdrv off 2>/dev/null || true; }
has_xdp() { ip -n "$1" link show dev "$2" | grep -q 'prog/xdp'; }
rx_sum() {  # rx_packets summed over interfaces of one namespace
  local ns=$1; shift; local d t=0
  for d in "$@"; do t=$((t + $(nsx "$ns" cat "/sys/class/net/$d/statistics/rx_packets"))); done
  echo $t
}
now_ns() { date +%s%N; }
# What trafgen pushed into its veth: transmitted + dropped at the veth (a veth
# counts a frame its peer could not take, e.g. a full backlog, as tx_dropped).
offered_count() {
  nsx "$TB_NS_CLIENT" sh -c "echo \$(( \$(cat /sys/class/net/$TB_CLIENT_IF/statistics/tx_packets) + \$(cat /sys/class/net/$TB_CLIENT_IF/statistics/tx_dropped) ))"
}
# cpu_snap: "cpuN total idle softirq" per CPU, from /proc/stat
cpu_snap() { awk '/^cpu[0-9]+ /{t=0; for (i=2;i<=NF;i++) t+=$i; print $1, t, $5+$6, $8}' /proc/stat; }
# cpu_busy SNAP0 SNAP1 -> "cpu0=99%(si 3%) cpu1=..." busy and softirq share per CPU
cpu_busy() {
  paste -d' ' <(echo "$1") <(echo "$2") | awk '{dt=$6-$2; if (dt<=0) dt=1; printf "%s=%d%%(si %d%%) ", $1, 100*(dt-($7-$3))/dt, 100*($8-$4)/dt}'
}

set_rps() {  # set_rps MASKHEX: RPS on every rx queue of the POP's Internet veth
  local q
  for q in $(nsx "$TB_NS_POP" sh -c "ls -d /sys/class/net/$TB_POP_INET_IF/queues/rx-*"); do
    nsx "$TB_NS_POP" sh -c "echo $1 > $q/rps_cpus"
  done
}

napi_threads() { ps -eo pid=,comm= | awk -v n="napi/$TB_POP_INET_IF-" 'index($2, n) == 1 {print $1}' | sort; }
NAPI_PINNED=""
steer_on() {
  case $STEER in
    rps) set_rps "$(printf '%x' $((1 << FWD_CPU)))" ;;
    napi)
      local before after p
      before=$(napi_threads)
      nsx "$TB_NS_POP" ethtool -K "$TB_POP_INET_IF" gro on >/dev/null
      nsx "$TB_NS_POP" sh -c "echo 1 > /sys/class/net/$TB_POP_INET_IF/threaded"
      sleep 0.2
      after=$(napi_threads)
      # Only the kthreads that appeared just now are ours (other testbeds use the same device name).
      NAPI_PINNED=$(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')
      [[ -n ${NAPI_PINNED// /} ]] || die "no new napi/$TB_POP_INET_IF-* kthread found"
      for p in $NAPI_PINNED; do taskset -p -c "$FWD_CPU" "$p" >/dev/null; done
      ;;
    none) ;;
  esac
}
steer_off() {
  case $STEER in
    rps) set_rps 0 ;;
    napi)
      nsx "$TB_NS_POP" sh -c "echo 0 > /sys/class/net/$TB_POP_INET_IF/threaded"
      nsx "$TB_NS_POP" ethtool -K "$TB_POP_INET_IF" gro off >/dev/null
      NAPI_PINNED="" ;;
    none) ;;
  esac
}

trafgen_cfg() {  # trafgen_cfg SIZE -> path of config
  local size=$1 frame payload f=$WORK/udp-$1.cfg
  frame=$((size - 4)); payload=$((frame - 42))
  cat >"$f" <<EOF
/* $size-byte frames incl. FCS ($frame on the veth): UDP $TB_CLIENT_IP -> $TB_EIP1:9, $FLOWS flows */
{
  eth(da=$TB_POP_INET_MAC, sa=$TB_CLIENT_MAC, type=0x0800),
  ipv4(saddr=$TB_CLIENT_IP, daddr=$TB_EIP1, ttl=64, proto=17),
  udp(sport=dinc(10000, $((10000 + FLOWS - 1))), dport=9),
  fill(0x42, $payload)
}
EOF
  echo "$f"
}

start_trafgen() {  # start_trafgen CFG SECONDS [extra trafgen args]
  local cfg=$1 secs=$2; shift 2
  taskset -c "$GEN_CPU" timeout -s INT "$secs" ip netns exec "$TB_NS_CLIENT" \
    env LD_PRELOAD="$WORK/sndbuf_shim.so" trafgen --dev "$TB_CLIENT_IF" --conf "$cfg" -P 1 --no-sock-mem -Q -C "$@" >"$WORK/trafgen.out" 2>"$WORK/trafgen.err" &
  TG_PID=$!
}

# Wait for a quiet moment: other users' jobs share these CPUs.
wait_quiet() {
  local i s0 s1 busy=0
  for ((i = 0; i < QUIET_TIMEOUT; i++)); do
    s0=$(cpu_snap); sleep 1; s1=$(cpu_snap)
    busy=$(paste -d' ' <(echo "$s0") <(echo "$s1") | awk '{dt=$6-$2; if (dt<=0) dt=1; b=int(100*(dt-($7-$3))/dt); if (b>m) m=b} END {print m+0}')
    (( busy <= QUIET_MAX )) && return 0
  done
  (( QUIET_TIMEOUT == 0 )) && return 0
  say "warning: a CPU is still ${busy}% busy after waiting ${QUIET_TIMEOUT}s; measuring anyway"
  BUSY_RUNS=$((BUSY_RUNS + 1))
}

# measure SCEN SIZE RUN RXNS RXDEV...
measure() {
  local scen=$1 size=$2 run=$3 rxns=$4; shift 4
  local cfg t0 t1 r0 r1 s0 s1 rx tx c0 c1 busy
  cfg=$(trafgen_cfg "$size")
  wait_quiet
  start_trafgen "$cfg" $((WARMUP + DURATION + 3))
  sleep "$WARMUP"
  kill -0 "$TG_PID" 2>/dev/null || { cat "$WORK/trafgen.err" >&2; die "trafgen exited early"; }
  r0=$(rx_sum "$rxns" "$@"); s0=$(offered_count); t0=$(now_ns); c0=$(cpu_snap)
  sleep "$DURATION"
  r1=$(rx_sum "$rxns" "$@"); s1=$(offered_count); t1=$(now_ns); c1=$(cpu_snap)
  busy=$(cpu_busy "$c0" "$c1")
  kill -INT "$TG_PID" 2>/dev/null || true; wait "$TG_PID" 2>/dev/null || true; TG_PID=""
  rx=$(( (r1 - r0) * 1000000000 / (t1 - t0) )); tx=$(( (s1 - s0) * 1000000000 / (t1 - t0) ))
  echo "$scen $size $run $rx $tx $busy" >>"$RESULTS"
  printf 'bench: run %d %-5s %4dB  delivered %9d pps  offered %9d pps  %s\n' "$run" "$scen" "$size" "$rx" "$tx" "$busy" >&2
}

# Capture a few frames at the region (before XDP_DROP goes on) and check that
# they are VXLAN to the region VTEP carrying UDP to the backend, checksums ok.
sanity() {
  local scen=$1 cap=$WORK/sanity-$1.txt cfg
  cfg=$(trafgen_cfg 64)
  local d tps=()
  : >"$cap"
  for d in "${REGION_BB_IFS[@]}"; do   # every link: the forwarder may use any path
    nsx "$TB_NS_REGION" timeout 4 tcpdump -nni "$d" -c 40 -vv "udp port $TB_VXLAN_PORT" >"$cap.$d" 2>/dev/null &
    tps+=($!)
  done
  sleep 1
  nsx "$TB_NS_CLIENT" env LD_PRELOAD="$WORK/sndbuf_shim.so" trafgen --dev "$TB_CLIENT_IF" --conf "$cfg" -P 1 --no-sock-mem -Q -C -n 300 >/dev/null 2>&1 || true
  wait "${tps[@]}" 2>/dev/null || true
  for d in "${REGION_BB_IFS[@]}"; do cat "$cap.$d" >>"$cap"; done
  if grep -q "$TB_POP_VTEP\.[0-9]* > $TB_REGION_VTEP\.$TB_VXLAN_PORT: .*VXLAN.*vni $TB_VNI" "$cap" \
     && grep -q "$TB_CLIENT_IP.* > $TB_EIP1_BACKEND.9: \[udp sum ok\]" "$cap" \
     && ! grep -qi 'bad' "$cap"; then
    say "sanity $scen: region receives VXLAN vni $TB_VNI to $TB_REGION_VTEP with inner UDP to $TB_EIP1_BACKEND, checksums ok"
  else
    say "sanity $scen: FAILED; capture:"; sed 's/^/    /' "$cap" >&2
    echo "sanity_failed $scen" >>"$RESULTS"
  fi
}

start_eipd() {
  local i
  say "starting: taskset -c $FWD_CPU $EIPD run --config $TB_EIPD_CONFIG $EIPD_ARGS (in $TB_NS_POP)"
  # shellcheck disable=SC2086
  taskset -c "$FWD_CPU" ip netns exec "$TB_NS_POP" "$EIPD" run --config "$TB_EIPD_CONFIG" --state "$TB_RUN_DIR/state.json" --socket "$TB_RUN_DIR/control.sock" $EIPD_ARGS \
    >"$WORK/eipd.log" 2>&1 &
  EIPD_PID=$!
  for ((i = 0; i < EIPD_READY_TIMEOUT * 10; i++)); do
    kill -0 "$EIPD_PID" 2>/dev/null || { sed 's/^/    eipd: /' "$WORK/eipd.log" >&2; EIPD_PID=""; die "eipd exited"; }
    has_xdp "$TB_NS_POP" "$TB_POP_INET_IF" && { sleep 1; return 0; }
    sleep 0.1
  done
  die "eipd did not attach XDP to $TB_POP_INET_IF within ${EIPD_READY_TIMEOUT}s"
}

stop_eipd() {
  local i
  # SIGINT first, then SIGTERM (a background job of a script starts with
  # SIGINT ignored unless the program installs its own handler), then KILL.
  kill -INT "$EIPD_PID" 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do kill -0 "$EIPD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -TERM "$EIPD_PID" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$EIPD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$EIPD_PID" 2>/dev/null && { say "eipd ignored SIGINT and SIGTERM; killing"; kill -KILL "$EIPD_PID" 2>/dev/null || true; }
  wait "$EIPD_PID" 2>/dev/null || true
  EIPD_PID=""
  local d
  for d in "$TB_POP_INET_IF" "$TB_POP_BB0_IF"; do
    if has_xdp "$TB_NS_POP" "$d"; then say "warning: XDP program left on $d after eipd exit; detaching"; xdp_off "$TB_NS_POP" "$d"; ip -n "$TB_NS_POP" link set dev "$d" xdpgeneric off 2>/dev/null || true; fi
  done
}

region_sink_on() { local d; for d in "${REGION_BB_IFS[@]}"; do xdp_on "$TB_NS_REGION" "$d"; done; }
region_sink_off() { local d; for d in "${REGION_BB_IFS[@]}"; do xdp_off "$TB_NS_REGION" "$d"; done; }

# ------------------------------------------------------------------ scenarios
scenario() {  # scenario NAME RUN
  local name=$1 run=$2 size
  case $name in
    raw)
      xdp_on "$TB_NS_POP" "$TB_POP_INET_IF"
      for size in $SIZES; do measure raw "$size" "$run" "$TB_NS_POP" "$TB_POP_INET_IF"; done
      xdp_off "$TB_NS_POP" "$TB_POP_INET_IF"
      ;;
    eipd)
      if [[ -z $EIPD ]]; then
        [[ $run == 1 ]] && say "eipd: skipped (set EIPD=/path/to/eipd to include it)"
        return 0
      fi
      [[ -x $EIPD ]] || die "EIPD=$EIPD is not executable"
      start_eipd
      [[ $SANITY == 1 && $run == 1 ]] && sanity eipd
      region_sink_on
      for size in $SIZES; do measure eipd "$size" "$run" "$TB_NS_REGION" "${REGION_BB_IFS[@]}"; done
      region_sink_off
      stop_eipd
      ;;
    linux)
      "$TB" baseline on --id "$ID" 2>/dev/null
      steer_on
      [[ $SANITY == 1 && $run == 1 ]] && sanity linux
      region_sink_on
      for size in $SIZES; do measure linux "$size" "$run" "$TB_NS_REGION" "${REGION_BB_IFS[@]}"; done
      region_sink_off
      steer_off
      "$TB" baseline off --id "$ID" 2>/dev/null
      ;;
  esac
}

say "testbed $ID: runs=$RUNS duration=${DURATION}s warmup=${WARMUP}s sizes='$SIZES' flows=$FLOWS queues=$QUEUES paths=$PATHS gen=CPU$GEN_CPU fwd=CPU$FWD_CPU linux-steer=$STEER"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((run = 1; run <= RUNS; run++)); do
  for s in $SCENARIOS; do scenario "$s" "$run"; done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ report
if [[ -n $CSV ]]; then
  { echo "scenario,frame_bytes,run,delivered_pps,offered_pps,cpu_during_window"
    grep -v '^sanity' "$RESULTS" | awk '{c=""; for (i=6;i<=NF;i++) c=c (i>6?" ":"") $i; print $1","$2","$3","$4","$5",\""c"\""}'; } >"$CSV"
fi
echo
echo "eipd veth benchmark: $(date -u +%FT%TZ) $(uname -r) $(nproc) CPUs; load avg before/after: $LOAD_BEFORE / $LOAD_AFTER"
echo "runs=$RUNS window=${DURATION}s warmup=${WARMUP}s flows=$FLOWS queues=$QUEUES paths=$PATHS generator=trafgen@CPU$GEN_CPU forwarder@CPU$FWD_CPU linux_steer=$STEER eipd=${EIPD:-not set}"
[[ $BUSY_RUNS -gt 0 ]] && echo "WARNING: $BUSY_RUNS measurement(s) started while another job kept a CPU busy; see the per-run cpu figures"
/usr/bin/env python3 - "$RESULTS" "$SIZES" <<'PYEOF'
import statistics, sys
path, sizes = sys.argv[1], [int(s) for s in sys.argv[2].split()]
rx, tx, bad = {}, {}, set()
for line in open(path):
    f = line.split()
    if f[0] == "sanity_failed":
        bad.add(f[1]); continue
    scen, size, run, r, t = f[0], int(f[1]), int(f[2]), int(f[3]), int(f[4])
    rx.setdefault((scen, size), []).append(r)
    tx.setdefault((scen, size), []).append(t)
names = {"raw": "raw veth -> XDP_DROP", "eipd": "eipd (AF_XDP)", "linux": "Linux nft DNAT + vxlan"}
def med(k, d=rx):
    return statistics.median(d[k]) if k in d else None
print()
print(f"{'frame':>6}  {'scenario':<24} {'median Mpps':>11} {'Gbit/s':>7} {'offered Mpps':>12}  runs (Mpps)")
for size in sizes:
    for scen in ("raw", "eipd", "linux"):
        k = (scen, size)
        if k not in rx:
            print(f"{size:>6}  {names[scen]:<24} {'skipped':>11}")
            continue
        m = med(k)
        g = m * size * 8 / 1e9
        runs = " ".join(f"{v/1e6:.3f}" for v in rx[k])
        flag = "  SANITY FAILED" if scen in bad else ""
        print(f"{size:>6}  {names[scen]:<24} {m/1e6:>11.3f} {g:>7.2f} {med(k, tx)/1e6:>12.3f}  {runs}{flag}")
print()
print("ratios of medians:")
for size in sizes:
    raw, e, l = med(("raw", size)), med(("eipd", size)), med(("linux", size))
    parts = []
    if e is not None and raw: parts.append(f"eipd/raw = {e/raw:.2f}")
    if l is not None and raw: parts.append(f"linux/raw = {l/raw:.2f}")
    if e is not None and l: parts.append(f"eipd/linux = {e/l:.2f}")
    print(f"  {size:>4}B: " + ("; ".join(parts) if parts else "n/a"))
print("\nGbit/s counts the input frame size incl. FCS (the --sizes value); delivered frames at the region are 50 bytes larger (VXLAN).")
PYEOF

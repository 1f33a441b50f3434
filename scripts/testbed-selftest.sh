#!/usr/bin/env bash
# testbed-selftest.sh - bring a testbed up, check it end to end, tear it down.
#
#   scripts/testbed-selftest.sh [--mode baseline|eipd] [--paths 1|2] [--queues N]
#                               [--id ID] [--failover] [--keep]
#
# --mode baseline (default): the POP is the Linux baseline (nftables + vxlan).
# --mode eipd: the POP is `$EIPD run --config <testbed pop.toml> $EIPD_ARGS`
#   (EIPD must be set); the same checks then test eipd.
# --failover: with --paths 2, take backbone link 0 down and check that traffic
#   still flows (done by default in baseline mode).
# --keep: leave the testbed up at the end (prints how to remove it).
#
# Checks: POP address ping + ARP, ping of both EIPs, HTTP page and 10 MiB file
# (sha256) through EIP 192.0.2.10, the TCP/80 service of 192.0.2.20 spreading
# over both backends, UDP echo through both EIPs, 1500-byte DF ping, valid
# checksums on the client link and on the backbone (tcpdump -vv), and after
# teardown: no namespaces, processes or run dir left. Exit status 0 = all passed.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TB=$SCRIPT_DIR/testbed.sh
MODE=baseline; PATHS=1; QUEUES=1; ID=""; FAILOVER=""; KEEP=0
EIPD=${EIPD:-}; EIPD_ARGS=${EIPD_ARGS:-}
# EIPD_LOG: where eipd's output goes (kept after the run; default: a temp file removed at the end).
EIPD_LOG=${EIPD_LOG:-}

while [[ $# -gt 0 ]]; do
  case $1 in
    --mode) MODE=$2; shift 2 ;;
    --paths) PATHS=$2; shift 2 ;;
    --queues) QUEUES=$2; shift 2 ;;
    --id) ID=$2; shift 2 ;;
    --failover) FAILOVER=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[[ $MODE == baseline || $MODE == eipd ]] || { echo "--mode baseline|eipd" >&2; exit 2; }
if [[ $MODE == eipd ]]; then
  [[ -n $EIPD && -x $EIPD ]] || { echo "--mode eipd needs EIPD=/path/to/eipd" >&2; exit 2; }
fi
for c in ip ping curl socat tcpdump sha256sum nginx; do
  command -v "$c" >/dev/null || { echo "missing $c (apt-get install iproute2 iputils-ping curl socat tcpdump nginx-light nftables)" >&2; exit 2; }
done
[[ -n $FAILOVER ]] || { [[ $MODE == baseline ]] && FAILOVER=1 || FAILOVER=0; }
[[ -n $ID ]] || ID=s$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')

PASS=0; FAIL=0; EIPD_PID=""; EIPD_RC=0; TB_UP=0
WORK=$(mktemp -d /tmp/eipselftest.XXXXXX)
ok() { PASS=$((PASS + 1)); echo "PASS  $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL  $*"; }
check() { local what=$1; shift; if "$@" >"$WORK/last.out" 2>&1; then ok "$what"; else bad "$what"; sed 's/^/      /' "$WORK/last.out" | tail -5; fi; }

stop_eipd() {
  [[ -n $EIPD_PID ]] || return 0
  kill -INT "$EIPD_PID" 2>/dev/null || true
  for _ in $(seq 20); do kill -0 "$EIPD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -TERM "$EIPD_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$EIPD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$EIPD_PID" 2>/dev/null || true
  EIPD_RC=0
  wait "$EIPD_PID" 2>/dev/null || EIPD_RC=$?
  EIPD_PID=""
}

leftovers() {
  local left=0
  if ip netns list | grep -q -- "-$ID-"; then echo "      namespaces left: $(ip netns list | grep -- "-$ID-" | tr '\n' ' ')"; left=1; fi
  if [[ -e ${TB_RUN_DIR:-/nonexistent} ]]; then echo "      run dir left: $TB_RUN_DIR"; left=1; fi
  # Live processes still inside one of the testbed's network namespaces
  # (a process keeps a namespace alive after `ip netns del`), or still
  # mentioning the run dir (pgrep never matches itself).
  local p link ino state
  for p in /proc/[0-9]*; do
    link=$(readlink "$p/ns/net" 2>/dev/null) || continue
    for ino in $NS_INODES; do
      if [[ $link == "net:[$ino]" ]]; then
        state=$(awk '{print $3}' "$p/stat" 2>/dev/null || echo '?')
        [[ $state == Z ]] && continue
        echo "      process ${p#/proc/} still in a testbed namespace: $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)"; left=1
      fi
    done
  done
  if pgrep -f -- "${TB_RUN_DIR:-/nonexistent}/" >/dev/null; then
    echo "      processes left:"; pgrep -a -f -- "$TB_RUN_DIR/"; left=1
  fi
  return $left
}

finish() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $EIPD_PID ]]; then
    stop_eipd
    if [[ $EIPD_RC == 0 ]] && grep -q "UMEM frames accounted" "$EIPD_LOG" \
        && ! grep -q "AUDIT FAILED" "$EIPD_LOG"; then
      ok "eipd stopped cleanly on SIGINT with every UMEM frame accounted for"
    else
      bad "eipd stop (exit $EIPD_RC):"; tail -25 "$EIPD_LOG" | sed 's/^/      /'
    fi
    if ip -n "$TB_NS_POP" link show 2>/dev/null | grep -q "prog/xdp"; then
      bad "an XDP program is still attached after eipd exited"
    else
      ok "no XDP program left attached after eipd exited"
    fi
  fi
  if [[ $TB_UP == 1 && $KEEP == 0 ]]; then
    "$TB" down --id "$ID" 2>/dev/null || true
    sleep 0.3
    if leftovers; then ok "teardown: no namespaces, processes or run dir left"; else bad "teardown left something behind"; fi
  elif [[ $KEEP == 1 ]]; then
    echo "testbed $ID kept: source <($TB env --id $ID); remove with: $TB down --id $ID"
  fi
  rm -rf -- "$WORK"
  echo "----"
  echo "selftest ($MODE, paths=$PATHS, queues=$QUEUES, id=$ID): $PASS passed, $FAIL failed"
  [[ $FAIL -eq 0 && $rc -eq 0 ]] && exit 0
  exit 1
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- bring up
args=(up --id "$ID" --paths "$PATHS" --queues "$QUEUES")
[[ $MODE == baseline ]] && args+=(--baseline)
TB_UP=1
"$TB" "${args[@]}" >/dev/null
# shellcheck disable=SC1090
source <("$TB" env --id "$ID")
NS_INODES=$(for ns in "$TB_NS_CLIENT" "$TB_NS_POP" "$TB_NS_REGION"; do stat -L -c %i "/run/netns/$ns"; done | tr '\n' ' ')
C=(ip netns exec "$TB_NS_CLIENT")
P=(ip netns exec "$TB_NS_POP")
R=(ip netns exec "$TB_NS_REGION")

if [[ $MODE == eipd ]]; then
  check "eipd check --config accepts the testbed config" "$EIPD" check --config "$TB_EIPD_CONFIG"
  # shellcheck disable=SC2086
  EIPD_LOG=${EIPD_LOG:-$WORK/eipd.log}
  "${P[@]}" "$EIPD" run --config "$TB_EIPD_CONFIG" --state "$TB_RUN_DIR/state.json" --socket "$TB_RUN_DIR/control.sock" $EIPD_ARGS >"$EIPD_LOG" 2>&1 &
  EIPD_PID=$!
  for _ in $(seq 150); do
    kill -0 "$EIPD_PID" 2>/dev/null || { bad "eipd exited:"; sed 's/^/      /' "$EIPD_LOG"; EIPD_PID=""; exit 1; }
    ip -n "$TB_NS_POP" link show "$TB_POP_INET_IF" | grep -q prog/xdp && break
    sleep 0.1
  done
  sleep 1
  ip -n "$TB_NS_POP" link show "$TB_POP_INET_IF" | grep -q prog/xdp && ok "eipd attached XDP to $TB_POP_INET_IF" \
    || bad "eipd did not attach XDP to $TB_POP_INET_IF"
fi

# ---------------------------------------------------------------- checks
# Captures for the checksum checks run during the HTTP/UDP checks.
"${C[@]}" timeout 25 tcpdump -nni "$TB_CLIENT_IF" -s 200 -w "$WORK/client.pcap" "ip and not arp" >/dev/null 2>&1 &
CAP1=$!
CAPS=("$CAP1")
for ((i = 0; i < PATHS; i++)); do   # every backbone link: ECMP may use any of them
  dev=TB_REGION_BB${i}_IF
  "${R[@]}" timeout 25 tcpdump -nni "${!dev}" -s 200 -w "$WORK/backbone$i.pcap" "udp port $TB_VXLAN_PORT" >/dev/null 2>&1 &
  CAPS+=($!)
done
sleep 1

check "client pings the POP address $TB_POP_INET_IP" "${C[@]}" ping -c 2 -i 0.2 -W 2 "$TB_POP_INET_IP"
check "client resolved $TB_POP_INET_IP by ARP to $TB_POP_INET_MAC" \
  sh -c "ip -n $TB_NS_CLIENT neigh show $TB_POP_INET_IP | grep -qi $TB_POP_INET_MAC"
check "ping EIP $TB_EIP1 (1:1 to $TB_EIP1_BACKEND)" "${C[@]}" ping -c 3 -i 0.2 -W 2 "$TB_EIP1"
check "ping EIP $TB_EIP2 (default backend $TB_EIP2_DEFAULT_BACKEND)" "${C[@]}" ping -c 3 -i 0.2 -W 2 "$TB_EIP2"
check "1500-byte DF ping through the tunnel ($TB_EIP1)" "${C[@]}" ping -c 2 -i 0.2 -W 2 -M do -s 1472 "$TB_EIP1"

page=$("${C[@]}" curl -sS -m 10 "http://$TB_EIP1/" 2>&1 || true)
[[ $page == "$TB_PAGE_TEXT" ]] && ok "HTTP page via $TB_EIP1" || bad "HTTP page via $TB_EIP1: got '$page'"

sum=$("${C[@]}" curl -sS -m 60 "http://$TB_EIP1$TB_BIGFILE_PATH" | sha256sum | cut -d' ' -f1 || true)
[[ $sum == "$TB_BIGFILE_SHA256" ]] && ok "10 MiB file via $TB_EIP1: sha256 $sum" || bad "10 MiB file via $TB_EIP1: sha256 $sum, expected $TB_BIGFILE_SHA256"

sum=$("${C[@]}" curl -sS -m 60 "http://$TB_EIP2$TB_BIGFILE_PATH" | sha256sum | cut -d' ' -f1 || true)
[[ $sum == "$TB_BIGFILE_SHA256" ]] && ok "10 MiB file via service $TB_EIP2:80: sha256 ok" || bad "10 MiB file via $TB_EIP2: sha256 $sum"

declare -A seen=()
for _ in $(seq 16); do
  b=$("${C[@]}" curl -sS -m 5 "http://$TB_EIP2/whoami" 2>/dev/null | sed -n 's/^backend=//p' || true)
  [[ -n $b ]] && seen[$b]=1
done
if [[ ${#seen[@]} -eq 2 ]]; then ok "TCP/80 service of $TB_EIP2 reached both backends (${!seen[*]})"
else bad "TCP/80 service of $TB_EIP2: backends seen: '${!seen[*]}' (want $TB_EIP2_BACKENDS)"; fi

for eip in "$TB_EIP1" "$TB_EIP2"; do
  msg="echo-$eip-$RANDOM"
  got=$(echo "$msg" | "${C[@]}" timeout 5 socat -T 2 - "UDP4:$eip:$TB_ECHO_PORT" 2>&1 || true)
  [[ $got == "$msg" ]] && ok "UDP echo via $eip:$TB_ECHO_PORT" || bad "UDP echo via $eip:$TB_ECHO_PORT: got '$got'"
done

sleep 0.5
kill -INT "${CAPS[@]}" 2>/dev/null || true
wait "${CAPS[@]}" 2>/dev/null || true
dump() { local f; for f in "$@"; do tcpdump -nr "$f" -vv 2>/dev/null; done; }
for link in client backbone; do
  if [[ $link == client ]]; then files=("$WORK/client.pcap"); else files=("$WORK"/backbone*.pcap); fi
  n=$(for f in "${files[@]}"; do tcpdump -nr "$f" 2>/dev/null; done | wc -l)
  badn=$(dump "${files[@]}" | grep -Eci 'incorrect|bad (udp |tcp )?cksum|bad cksum|wrong' || true)
  if [[ $n -gt 0 && $badn -eq 0 ]]; then ok "checksums valid on the $link link(s) ($n packets, tcpdump -vv; inner headers of VXLAN included)"
  else bad "checksums on the $link link(s): $badn bad of $n"; dump "${files[@]}" | grep -Ei -B1 'incorrect|bad|wrong' | head -6 | sed 's/^/      /' || true; fi
done

if [[ $PATHS == 2 && $FAILOVER == 1 ]]; then
  ip -n "$TB_NS_POP" link set "$TB_POP_BB0_IF" down
  sleep 0.5
  page=$("${C[@]}" curl -sS -m 10 "http://$TB_EIP1/" 2>&1 || true)
  [[ $page == "$TB_PAGE_TEXT" ]] && ok "failover: HTTP via $TB_EIP1 with backbone link 0 down" || bad "failover: got '$page'"
  got=$(echo x | "${C[@]}" timeout 5 socat -T 2 - "UDP4:$TB_EIP2:$TB_ECHO_PORT" 2>&1 || true)
  [[ $got == x ]] && ok "failover: UDP echo via $TB_EIP2 with link 0 down" || bad "failover: UDP echo got '$got'"
  ip -n "$TB_NS_POP" link set "$TB_POP_BB0_IF" up
fi

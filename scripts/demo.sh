#!/usr/bin/env bash
# The demo: one anycast EIP prefix announced from two POPs, a download that
# survives the death of the POP it entered.
#
#   client --- router (FRR) ---+--- POP A (eipd + BIRD) ===+
#                              +--- POP B (eipd + BIRD) ===+--- region (vxlan, nginx)
#
# Shows: nothing announced before eipd forwards; 192.0.2.0/24 learned from both
# POPs, POP A preferred; a rate-limited download via POP A; kill -9 of POP A's eipd
# (BIRD dies with it, the router withdraws); the download finishing via POP B with
# the right sha256; `eipctl show bgp`; a graceful drain of POP B's replacement.
# Tears everything down, also on failure or Ctrl-C. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root (network namespaces, XDP); run: sudo $0" >&2
  exit 1
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "installing dependencies (bird2, frr, nginx...) and building eipd"
scripts/install-deps.sh
# EIPD and EIPCTL may name binaries built already (e.g. a debug build).
if [ -z "${EIPD:-}" ] || [ -z "${EIPCTL:-}" ]; then
  cargo build --release --bin eipd --bin eipctl
  TARGET=${CARGO_TARGET_DIR:-$PWD/target}
  EIPD=$TARGET/release/eipd
  EIPCTL=$TARGET/release/eipctl
fi

ID=ad$((RANDOM % 1000))
cleanup() { scripts/anycast-testbed.sh down --id "$ID" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting the testbed ($ID): client, FRR router, POP A, POP B, region"
scripts/anycast-testbed.sh up --id "$ID" >/dev/null
# shellcheck disable=SC1090
source <(scripts/anycast-testbed.sh env --id "$ID")
routes() { ip netns exec "$AT_NS_ROUTER" vtysh --vty_socket "$AT_FRR_DIR" -c "show ip bgp $AT_EIP_PREFIX" | sed -n '/Paths:/,$p' | grep -E 'Paths|from|Community|best' || echo "  (no route)"; }
wait_log() { for _ in $(seq 200); do grep -q "$2" "$1" && return 0; sleep 0.05; done; echo "timeout waiting for '$2' in $1" >&2; exit 1; }

say "the router before any eipd runs: no route to $AT_EIP_PREFIX"
routes

say "starting eipd (with BIRD as its child) in POP A, then POP B"
PID_A=$(scripts/anycast-testbed.sh start-pop a "$EIPD" --id "$ID")
wait_log "$AT_RUN_DIR/popa.log" "announce: the data plane forwards it"
scripts/anycast-testbed.sh start-pop b "$EIPD" --id "$ID" >/dev/null
wait_log "$AT_RUN_DIR/popb.log" "announce: the data plane forwards it"
sleep 1
grep "bgp:" "$AT_RUN_DIR/popa.log"

say "the router now: $AT_EIP_PREFIX from both POPs, POP A preferred (POP B prepends)"
routes
"$EIPCTL" --socket "$AT_POPA_SOCKET" show bgp

say "a rate-limited download (16 MiB, curl --limit-rate 700k) from the client via POP A; kill -9 of POP A's eipd after 2 s"
ip netns exec "$AT_NS_CLIENT" curl -sS --keepalive-time 1 --limit-rate 700k -o "$AT_RUN_DIR/dl.bin" \
  -w "download: %{size_download} bytes in %{time_total} s\n" "http://$AT_EIP1/big.bin" &
CURL=$!
sleep 2
kill -9 "$PID_A"
echo "killed POP A's eipd; its BIRD: $(pgrep -f "popa.sock.bird" >/dev/null && echo still running || echo gone)"
sleep 0.3
routes
wait "$CURL"
[ "$(sha256sum <"$AT_RUN_DIR/dl.bin" | cut -d' ' -f1)" = "$AT_BIGFILE_SHA256" ] && echo "sha256 matches: the download finished via POP B"

say "POP B drains (eipctl drain): GRACEFUL_SHUTDOWN, wait, withdraw, stop"
"$EIPCTL" --socket "$AT_POPB_SOCKET" drain
sleep 0.5
routes
wait_log "$AT_RUN_DIR/popb.log" "BIRD stopped"
grep "bgp:" "$AT_RUN_DIR/popb.log" | tail -4
routes
say "done: tearing the testbed down"

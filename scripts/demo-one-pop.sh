#!/usr/bin/env bash
# The demo: one anycast EIP, end to end, on a namespace testbed (no NIC needed).
#
#   client ns ("the Internet") --veth--> POP ns (eipd on AF_XDP) ==VXLAN over veth==> region ns
#                                                                 (Linux vxlan device + nginx on 10.1.0.10)
#
# Builds eipd, starts the testbed and eipd, fetches a page from the EIP with curl
# from the client, pings the EIP, shows eipd's counters, and tears everything down
# (also on failure or Ctrl-C). Needs root (namespaces, XDP).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root (network namespaces, XDP); run: sudo $0" >&2
  exit 1
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "installing dependencies (Debian packages) and building eipd"
scripts/install-deps.sh
cargo build --release --bin eipd --bin eipctl
EIPD=$PWD/target/release/eipd

ID=demo$((RANDOM % 1000))
EIPD_PID=""
cleanup() {
  if [ -n "$EIPD_PID" ]; then kill -INT "$EIPD_PID" 2>/dev/null || true; wait "$EIPD_PID" 2>/dev/null || true; fi
  scripts/testbed.sh down --id "$ID" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting the testbed ($ID): client, POP and region namespaces"
scripts/testbed.sh up --id "$ID" >/dev/null
# shellcheck disable=SC1090
source <(scripts/testbed.sh env --id "$ID")
LOG=$TB_RUN_DIR/eipd.log

say "eipd configuration (generated for the testbed)"
"$EIPD" check --config "$TB_EIPD_CONFIG"

say "starting eipd in the POP namespace"
ip netns exec "$TB_NS_POP" "$EIPD" run --config "$TB_EIPD_CONFIG" --state "$TB_RUN_DIR/state.json" --socket "$TB_RUN_DIR/control.sock" --idle-sleep >"$LOG" 2>&1 &
EIPD_PID=$!
for _ in $(seq 100); do
  kill -0 "$EIPD_PID" 2>/dev/null || { cat "$LOG"; echo "demo: eipd exited" >&2; EIPD_PID=""; exit 1; }
  grep -q "eipd: running" "$LOG" && break
  sleep 0.1
done
sed -n '/eipd: running/,/stop with/p' "$LOG"

say "curl http://192.0.2.10/ from the client (EIP 1:1 -> backend 10.1.0.10 in the region)"
ip netns exec "$TB_NS_CLIENT" curl -sS --max-time 5 -D - http://192.0.2.10/

say "curl http://192.0.2.20/ four times (EIP with a TCP/80 service over two backends, Maglev)"
for _ in 1 2 3 4; do
  ip netns exec "$TB_NS_CLIENT" curl -sS --max-time 5 -o /dev/null -w "%{http_code} from %{remote_ip}:%{remote_port}, local port %{local_port}\n" \
    --local-port $((40000 + RANDOM % 20000)) http://192.0.2.20/
done

say "ping the EIP (answered by the backend through the tunnel)"
ip netns exec "$TB_NS_CLIENT" ping -c 3 -i 0.2 -W 1 192.0.2.10

say "stopping eipd: final counters"
kill -INT "$EIPD_PID"
wait "$EIPD_PID" || true
EIPD_PID=""
sed -n '/^final counters/,$p' "$LOG"
say "done: tearing the testbed down"

#!/usr/bin/env bash
# anycast-testbed.sh - two POPs announcing one EIP prefix to an independent router.
#
#   client --- router (FRR: zebra, bgpd, bfdd; AS 64496) ---+--- POP A (eipd + BIRD; AS 64497) ===+
#                                                            +--- POP B (eipd + BIRD; AS 64497) ===+--- region
#                                                                                     (vxlan, nginx, steering)
#
# The router learns 192.0.2.0/24 from both POPs over eBGP with BFD (100 ms x 3
# unless --bfd-interval-ms / --bfd-multiplier say otherwise: FRR's profile and
# the POPs' [bgp] both use them) and prefers POP A (POP B prepends its AS
# twice), or spreads flows over both (--ecmp: no prepend, maximum-paths 2).
# Each POP has its own backbone veth to the region, its own VTEP and inner MAC;
# the region steers returns to the ingress POP (scripts/region-steering.sh).
# eipd is not started here: see `start-pop`, the demo (scripts/demo.sh) and
# crates/eipd/tests/anycast_e2e.rs.
#
# Commands:
#   up [--ecmp] [--id ID] [--bfd-interval-ms N] [--bfd-multiplier M]
#                           build it (prints the id); writes popa.toml, popb.toml, env.
#                           BFD on the router and both POPs: N ms (10-10000, default
#                           $AT_BFD_INTERVAL_MS or 100) x M (2-255, default
#                           $AT_BFD_MULTIPLIER or 3)
#   down [--id ID]          stop everything in its namespaces and remove them
#   env [--id ID]           shell-sourceable AT_* variables
#   start-pop a|b EIPD [ARGS...]   start eipd in a POP (background; log in the run dir)
#   routes [--id ID]        the router's kernel routes to the EIP prefix
#
# Addresses (documentation ranges and 10/8 only, all inside the namespaces):
#   client 203.0.113.2/30 - router 203.0.113.1; router .9 - POP A .10 (/30); router .13 - POP B .14
#   POP A VTEP 198.51.100.1, backbone 198.51.100.9/30 - region .10
#   POP B VTEP 198.51.100.5, backbone 198.51.100.13/30 - region .14
#   region VTEP 198.51.100.2; inner: region 10.255.0.2, POP A 10.255.0.1, POP B 10.255.0.3
#   EIP 192.0.2.10 -> 10.1.0.10 (nginx); EIP 192.0.2.20 tcp/80 -> 10.1.0.20, 10.1.0.21
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=${AT_PREFIX:-eipany}
RUN_BASE=${AT_RUN_BASE:-/tmp}
PY=/usr/bin/python3

ROUTER_AS=64496
POP_AS=64497
VNI=100
EIP_PREFIX=192.0.2.0/24
EIP1=192.0.2.10; EIP1_BACKEND=10.1.0.10
EIP2=192.0.2.20; EIP2_BACKENDS=(10.1.0.20 10.1.0.21)
BACKENDS=(10.1.0.10 10.1.0.20 10.1.0.21)
REGION_VTEP=198.51.100.2
REGION_INNER_IP=10.255.0.2
REGION_VX_MAC=02:00:00:00:10:01
# Per POP: a b
POP_NAMES=(a b)
POP_VTEP=(198.51.100.1 198.51.100.5)
POP_INNER_IP=(10.255.0.1 10.255.0.3)
POP_INNER_MAC=(02:00:00:00:01:01 02:00:00:00:03:01)
POP_INET_IP=(203.0.113.10 203.0.113.14)
ROUTER_POP_IP=(203.0.113.9 203.0.113.13)
POP_INET_MAC=(02:00:00:00:01:10 02:00:00:00:03:10)
ROUTER_POP_MAC=(02:00:00:00:20:0a 02:00:00:00:20:0b)
POP_BB_IP=(198.51.100.9 198.51.100.13)
REGION_BB_IP=(198.51.100.10 198.51.100.14)
POP_BB_MAC=(02:00:00:00:01:20 02:00:00:00:03:20)
REGION_BB_MAC=(02:00:00:00:10:2a 02:00:00:00:10:2b)
CLIENT_IP=203.0.113.2; ROUTER_CLIENT_IP=203.0.113.1
BIGFILE_SIZE=$((16 * 1024 * 1024))

CMD=${1:-help}; [[ $# -gt 0 ]] && shift
ID=${AT_ID:-}
ECMP=0
BFD_INTERVAL_MS=${AT_BFD_INTERVAL_MS:-100}
BFD_MULTIPLIER=${AT_BFD_MULTIPLIER:-3}
POS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --id) ID=$2; shift 2 ;;
    --ecmp) ECMP=1; shift ;;
    --bfd-interval-ms) BFD_INTERVAL_MS=$2; shift 2 ;;
    --bfd-multiplier) BFD_MULTIPLIER=$2; shift 2 ;;
    *) POS+=("$1"); shift ;;
  esac
done

die() { echo "anycast-testbed: error: $*" >&2; exit 1; }
log() { echo "anycast-testbed: $*" >&2; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

set_names() {
  [[ $ID =~ ^[a-z0-9]{1,8}$ ]] || die "--id must be 1-8 chars of [a-z0-9]"
  RUN_DIR=$RUN_BASE/$PREFIX-$ID
  NS_CLIENT=$PREFIX-$ID-client
  NS_ROUTER=$PREFIX-$ID-router
  NS_POP=("$PREFIX-$ID-popa" "$PREFIX-$ID-popb")
  NS_REGION=$PREFIX-$ID-region
  ALL_NS=("$NS_CLIENT" "$NS_ROUTER" "${NS_POP[@]}" "$NS_REGION")
}

resolve_id() {
  if [[ -z $ID ]]; then
    local found=() d
    for d in "$RUN_BASE/$PREFIX"-*/; do [[ -f $d/env ]] && found+=("$(basename "$d")"); done
    [[ ${#found[@]} -eq 1 ]] || die "give --id (found ${#found[@]} testbeds)"
    ID=${found[0]#"$PREFIX"-}
  fi
  set_names
}

mk_ns() {
  ip netns add "$1"
  nsx "$1" ip link set lo up
  nsx "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    net.ipv4.fib_multipath_hash_policy=1 >/dev/null
}

# mk_veth NS_A IF_A MAC_A NS_B IF_B MAC_B MTU
mk_veth() {
  ip -n "$1" link add "$2" address "$3" mtu "$7" type veth peer name "$5" netns "$4" address "$6" mtu "$7"
  nsx "$1" ethtool -K "$2" tx off >/dev/null
  nsx "$4" ethtool -K "$5" tx off >/dev/null
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}

kill_ns_procs() {
  local ns=$1 pids p i
  for ((i = 0; i < 30; i++)); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z $pids ]] && return 0
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.1
  done
  for p in $(ip netns pids "$ns" 2>/dev/null || true); do kill -KILL "$p" 2>/dev/null || true; done
  sleep 0.2
}

teardown() {
  local ns
  for ns in "${ALL_NS[@]}"; do
    if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
      kill_ns_procs "$ns"
      ip netns del "$ns" 2>/dev/null || log "could not delete netns $ns"
    fi
  done
  [[ -d $RUN_DIR ]] && rm -rf -- "$RUN_DIR"
  return 0
}

pop_config() { # index
  local i=$1 prepend=0
  [[ $i == 1 && $ECMP == 0 ]] && prepend=2
  cat <<EOF
# eipd configuration of POP ${POP_NAMES[i]} (scripts/anycast-testbed.sh).
[pop]
name = "pop-${POP_NAMES[i]}"
vtep = "${POP_VTEP[i]}"
inner_mac = "${POP_INNER_MAC[i]}"
probe_source = "${POP_INNER_IP[i]}"

[[ports]]
name = "internet"
role = "internet"
interface = "eip-inet"
mac = "${POP_INET_MAC[i]}"
gateway = "${ROUTER_POP_IP[i]}"

[[ports]]
name = "backbone"
role = "backbone"
interface = "eip-bb0"
mac = "${POP_BB_MAC[i]}"

[[regions]]
name = "beijing"
vni = $VNI
vtep = "$REGION_VTEP"
inner_mac = "$REGION_VX_MAC"
probe_target = "$REGION_INNER_IP"

[[paths]]
name = "bb0"
region = "beijing"
port = "backbone"
next_hop_mac = "${REGION_BB_MAC[i]}"
mtu = 1550

[[eips]]
address = "$EIP1"
region = "beijing"
backend = "$EIP1_BACKEND"

[[eips]]
address = "$EIP2"
region = "beijing"
backend = "${EIP2_BACKENDS[0]}"
  [[eips.services]]
  protocol = "tcp"
  port = 80
  backends = [ { address = "${EIP2_BACKENDS[0]}", weight = 1 }, { address = "${EIP2_BACKENDS[1]}", weight = 1 } ]

[bgp]
local_as = $POP_AS
router_id = "${POP_INET_IP[i]}"
hold_down_ms = 1000
bfd_interval_ms = $BFD_INTERVAL_MS
bfd_multiplier = $BFD_MULTIPLIER
drain_wait_ms = ${AT_DRAIN_MS:-2000}
neighbors = [ { address = "${ROUTER_POP_IP[i]}", remote_as = $ROUTER_AS, local_address = "${POP_INET_IP[i]}" } ]
prefixes = [ { prefix = "$EIP_PREFIX", prepend = $prepend, communities = ["$POP_AS:$((i + 1))"] } ]
EOF
}

start_frr() {
  local d=$RUN_DIR/frr
  mkdir -p "$d"
  chown frr:frr "$d" 2>/dev/null || true
  cat >"$d/zebra.conf" <<EOF
hostname router
log file $d/zebra.log
EOF
  cat >"$d/bfdd.conf" <<EOF
hostname router
log file $d/bfdd.log
bfd
 profile fast
  transmit-interval $BFD_INTERVAL_MS
  receive-interval $BFD_INTERVAL_MS
  detect-multiplier $BFD_MULTIPLIER
 !
!
EOF
  {
    echo "hostname router"
    echo "log file $d/bgpd.log"
    # RFC 8326 on the receiving side: a route tagged GRACEFUL_SHUTDOWN loses
    # to any other path before it is withdrawn.
    echo "bgp community-list standard GSHUT seq 5 permit graceful-shutdown"
    echo "route-map FROM-POP permit 10"
    echo " match community GSHUT"
    echo " set local-preference 0"
    echo "route-map FROM-POP permit 20"
    echo "router bgp $ROUTER_AS"
    echo " bgp router-id $ROUTER_CLIENT_IP"
    echo " no bgp ebgp-requires-policy"
    echo " no bgp network import-check"
    echo " timers bgp 1 3"
    local i
    for i in 0 1; do
      echo " neighbor ${POP_INET_IP[i]} remote-as $POP_AS"
      echo " neighbor ${POP_INET_IP[i]} timers connect 1"
      echo " neighbor ${POP_INET_IP[i]} bfd profile fast"
    done
    echo " address-family ipv4 unicast"
    for i in 0 1; do echo "  neighbor ${POP_INET_IP[i]} route-map FROM-POP in"; done
    [[ $ECMP == 1 ]] && echo "  maximum-paths 2"
    echo " exit-address-family"
  } >"$d/bgpd.conf"
  chown -R frr:frr "$d" 2>/dev/null || true
  local common=(--vty_socket "$d" -z "$d/zserv.api")
  setsid ip netns exec "$NS_ROUTER" /usr/lib/frr/zebra -f "$d/zebra.conf" -i "$d/zebra.pid" "${common[@]}" \
    </dev/null >>"$d/zebra.out" 2>&1 &
  local i
  for ((i = 0; i < 50; i++)); do [[ -S $d/zserv.api ]] && break; sleep 0.1; done
  [[ -S $d/zserv.api ]] || die "zebra did not start (see $d/zebra.out)"
  setsid ip netns exec "$NS_ROUTER" /usr/lib/frr/bfdd -f "$d/bfdd.conf" -i "$d/bfdd.pid" "${common[@]}" \
    --bfdctl "$d/bfdd.sock" </dev/null >>"$d/bfdd.out" 2>&1 &
  setsid ip netns exec "$NS_ROUTER" /usr/lib/frr/bgpd -f "$d/bgpd.conf" -i "$d/bgpd.pid" "${common[@]}" \
    </dev/null >>"$d/bgpd.out" 2>&1 &
  for ((i = 0; i < 50; i++)); do
    nsx "$NS_ROUTER" ss -Hltn 'sport = :179' | grep -q . && return 0
    sleep 0.1
  done
  die "bgpd does not listen (see $d/bgpd.out)"
}

make_content() {
  local www=$RUN_DIR/www
  mkdir -p "$www"
  echo "eip anycast testbed: hello from region beijing" >"$www/index.html"
  head -c "$BIGFILE_SIZE" /dev/urandom >"$www/big.bin"
  ln "$www/big.bin" "$www/paced.bin"
  chmod -R a+rX "$www"
}

start_nginx() {
  local b listen="" tmp=$RUN_DIR/nginx-tmp
  mkdir -p "$tmp" "$RUN_DIR/log"
  for b in "${BACKENDS[@]}"; do listen+="listen $b:80; "; done
  cat >"$RUN_DIR/nginx.conf" <<EOF
user nobody nogroup;
worker_processes 1;
pid $RUN_DIR/nginx.pid;
error_log $RUN_DIR/log/nginx-error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $tmp/body; proxy_temp_path $tmp/proxy; fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi; scgi_temp_path $tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    server {
        $listen
        root $RUN_DIR/www;
        # big.bin again, paced by nginx (16 MiB at 2.5 MB/s: at least 6.5 s), for the
        # kill -9 test that needs a download of at least 5 s: curl's --limit-rate
        # alone was loose (16 MiB in 4.1 s once).
        location = /paced.bin { limit_rate 2500k; }
        location = /whoami { default_type text/plain; return 200 "backend=\$server_addr\n"; }
        # Health page for HTTP checks: 503 while www/sick-<backend address> exists.
        location = /healthz {
            default_type text/plain;
            if (-f \$document_root/sick-\$server_addr) { return 503 "sick \$server_addr\n"; }
            return 200 "ok \$server_addr\n";
        }
    }
}
EOF
  setsid ip netns exec "$NS_REGION" nginx -e "$RUN_DIR/log/nginx-error.log" -c "$RUN_DIR/nginx.conf" -g 'daemon off;' \
    </dev/null >>"$RUN_DIR/log/nginx.out" 2>&1 &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ $(nsx "$NS_REGION" ss -Hltn 'sport = :80' | wc -l) -ge ${#BACKENDS[@]} ]] && return 0
    sleep 0.1
  done
  die "nginx did not come up"
}

write_env() {
  local i
  {
    echo "export AT_ID=$ID"
    echo "export AT_RUN_DIR=$RUN_DIR"
    echo "export AT_ECMP=$ECMP"
    echo "export AT_BFD_INTERVAL_MS=$BFD_INTERVAL_MS"
    echo "export AT_BFD_MULTIPLIER=$BFD_MULTIPLIER"
    echo "export AT_NS_CLIENT=$NS_CLIENT"
    echo "export AT_NS_ROUTER=$NS_ROUTER"
    echo "export AT_NS_REGION=$NS_REGION"
    for i in 0 1; do
      local u=${POP_NAMES[i]^^}
      echo "export AT_NS_POP$u=${NS_POP[i]}"
      echo "export AT_POP${u}_CONFIG=$RUN_DIR/pop${POP_NAMES[i]}.toml"
      echo "export AT_POP${u}_SOCKET=$RUN_DIR/pop${POP_NAMES[i]}.sock"
      echo "export AT_POP${u}_INET_IP=${POP_INET_IP[i]}"
      echo "export AT_ROUTER_POP${u}_IP=${ROUTER_POP_IP[i]}"
      echo "export AT_ROUTER_POP${u}_IF=rt-pop${POP_NAMES[i]}"
      echo "export AT_REGION_BB${u}_IF=rg-pop${POP_NAMES[i]}"
    done
    echo "export AT_EIP_PREFIX=$EIP_PREFIX"
    echo "export AT_EIP1=$EIP1"
    echo "export AT_EIP2=$EIP2"
    echo "export AT_CLIENT_IP=$CLIENT_IP"
    echo "export AT_FRR_DIR=$RUN_DIR/frr"
    echo "export AT_BIGFILE_SIZE=$BIGFILE_SIZE"
    echo "export AT_BIGFILE_SHA256=$(sha256sum "$RUN_DIR/www/big.bin" | cut -d' ' -f1)"
  } >"$RUN_DIR/env"
}

UP_DONE=0
on_up_exit() {
  local rc=$?
  if [[ $UP_DONE != 1 ]]; then log "up failed (rc=$rc): tearing down $ID"; teardown; fi
  exit "$rc"
}

cmd_up() {
  for c in ip ethtool bridge nft nginx /usr/lib/frr/zebra /usr/lib/frr/bgpd /usr/lib/frr/bfdd bird; do
    command -v "$c" >/dev/null || die "missing $c (scripts/install-deps.sh installs bird2, frr, nginx-light, nftables)"
  done
  # The ranges both FRR (bfdd) and eipd's [bgp] accept.
  [[ $BFD_INTERVAL_MS =~ ^[0-9]{2,5}$ ]] && ((BFD_INTERVAL_MS >= 10 && BFD_INTERVAL_MS <= 10000)) ||
    die "--bfd-interval-ms must be 10-10000 (got '$BFD_INTERVAL_MS')"
  [[ $BFD_MULTIPLIER =~ ^[0-9]{1,3}$ ]] && ((BFD_MULTIPLIER >= 2 && BFD_MULTIPLIER <= 255)) ||
    die "--bfd-multiplier must be 2-255 (got '$BFD_MULTIPLIER')"
  [[ -n $ID ]] || ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
  set_names
  [[ ! -e $RUN_DIR ]] || die "run dir $RUN_DIR exists"
  trap on_up_exit EXIT
  mkdir -p "$RUN_DIR"; chmod 755 "$RUN_DIR"
  local ns i
  for ns in "${ALL_NS[@]}"; do mk_ns "$ns"; done

  # client - router
  mk_veth "$NS_CLIENT" cl-inet 02:00:00:00:02:10 "$NS_ROUTER" rt-client 02:00:00:00:20:01 1500
  ip -n "$NS_CLIENT" addr add "$CLIENT_IP/30" dev cl-inet
  ip -n "$NS_ROUTER" addr add "$ROUTER_CLIENT_IP/30" dev rt-client
  ip -n "$NS_CLIENT" route add default via "$ROUTER_CLIENT_IP"
  # Tests repeat one 5-tuple (curl --local-port) through another POP.
  nsx "$NS_CLIENT" sysctl -qw net.ipv4.tcp_tw_reuse=1 >/dev/null
  nsx "$NS_ROUTER" sysctl -qw net.ipv4.ip_forward=1 >/dev/null

  ip -n "$NS_REGION" addr add "$REGION_VTEP/32" dev lo
  for i in 0 1; do
    local p=${POP_NAMES[i]}
    # router - POP (the Internet link)
    mk_veth "${NS_POP[i]}" eip-inet "${POP_INET_MAC[i]}" "$NS_ROUTER" "rt-pop$p" "${ROUTER_POP_MAC[i]}" 1500
    ip -n "${NS_POP[i]}" addr add "${POP_INET_IP[i]}/30" dev eip-inet
    ip -n "$NS_ROUTER" addr add "${ROUTER_POP_IP[i]}/30" dev "rt-pop$p"
    # POP - region (the backbone)
    mk_veth "${NS_POP[i]}" eip-bb0 "${POP_BB_MAC[i]}" "$NS_REGION" "rg-pop$p" "${REGION_BB_MAC[i]}" 1550
    ip -n "${NS_POP[i]}" addr add "${POP_VTEP[i]}/32" dev lo
    ip -n "${NS_POP[i]}" addr add "${POP_BB_IP[i]}/30" dev eip-bb0
    ip -n "$NS_REGION" addr add "${REGION_BB_IP[i]}/30" dev "rg-pop$p"
    ip -n "${NS_POP[i]}" neigh replace "${REGION_BB_IP[i]}" lladdr "${REGION_BB_MAC[i]}" dev eip-bb0 nud permanent
    ip -n "$NS_REGION" neigh replace "${POP_BB_IP[i]}" lladdr "${POP_BB_MAC[i]}" dev "rg-pop$p" nud permanent
    ip -n "${NS_POP[i]}" route add "$REGION_VTEP/32" via "${REGION_BB_IP[i]}" dev eip-bb0
    ip -n "$NS_REGION" route add "${POP_VTEP[i]}/32" via "${POP_BB_IP[i]}" dev "rg-pop$p"
    pop_config "$i" >"$RUN_DIR/pop$p.toml"
  done

  # region: backends, vxlan, per-POP return steering
  local b
  for b in "${BACKENDS[@]}"; do ip -n "$NS_REGION" addr add "$b/32" dev lo; done
  ip -n "$NS_REGION" link add vx0 address "$REGION_VX_MAC" mtu 1500 type vxlan id "$VNI" \
    local "$REGION_VTEP" dstport 4789 nolearning
  nsx "$NS_REGION" ethtool -K vx0 tx off >/dev/null
  ip -n "$NS_REGION" addr add "$REGION_INNER_IP/24" dev vx0
  ip -n "$NS_REGION" link set vx0 up
  nsx "$NS_REGION" "$SCRIPT_DIR/region-steering.sh" --apply vx0 \
    "a,${POP_INNER_MAC[0]},${POP_VTEP[0]},${POP_INNER_IP[0]}" \
    "b,${POP_INNER_MAC[1]},${POP_VTEP[1]},${POP_INNER_IP[1]}" >/dev/null

  start_frr
  make_content
  start_nginx
  write_env
  UP_DONE=1
  trap - EXIT
  log "testbed $ID is up (ecmp=$ECMP, bfd ${BFD_INTERVAL_MS} ms x $BFD_MULTIPLIER); env: $RUN_DIR/env"
  echo "$ID"
}

cmd_start_pop() {
  resolve_id
  local which=${POS[0]:-} eipd=${POS[1]:-}
  [[ $which == a || $which == b ]] || die "usage: start-pop a|b EIPD [ARGS...]"
  [[ -x $eipd ]] || die "eipd binary '$eipd' not found"
  local i=0; [[ $which == b ]] && i=1
  setsid ip netns exec "${NS_POP[i]}" "$eipd" run --config "$RUN_DIR/pop$which.toml" \
    --state "$RUN_DIR/pop$which.state.json" --socket "$RUN_DIR/pop$which.sock" --idle-sleep --from config \
    "${POS[@]:2}" </dev/null >>"$RUN_DIR/pop$which.log" 2>&1 &
  echo $!
}

case $CMD in
  up) cmd_up ;;
  down) resolve_id; teardown; log "testbed $ID removed" ;;
  env) resolve_id; cat "$RUN_DIR/env" ;;
  start-pop) cmd_start_pop ;;
  routes) resolve_id; nsx "$NS_ROUTER" ip route show "$EIP_PREFIX" ;;
  help|-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$CMD'" ;;
esac

#!/usr/bin/env bash
# testbed.sh - network-namespace testbed for eipd (anycast EIP data plane).
#
# Three namespaces joined by veth pairs:
#
#   client (the Internet) --- pop (eipd, or Linux baseline) === region ("Beijing")
#
# See docs/testbed.md for the diagram, addresses and MACs.
#
# Commands:
#   up        build a testbed (prints its id and the env file path)
#   down      tear a testbed down (processes, namespaces, run dir)
#   env       print shell-sourceable TB_* variables of a testbed
#   config    print an eipd TOML config for the testbed (works without `up`)
#   baseline  on|off: switch the POP namespace to/from the Linux baseline
#             (nftables DNAT/SNAT + vxlan device) at runtime
#   exec      NODE CMD...: run CMD inside client|pop|region of a testbed
#   list      list testbeds (run dirs) on this machine
#
# Options (any order, after the command):
#   --id ID          run id (default for `up`: random 6 hex digits; for other
#                    commands: $TB_ID, or the only testbed found)
#   --queues N       veth queue count (numtxqueues/numrxqueues), default 1
#   --paths 1|2      backbone links POP<->region, default 1
#   --baseline       (up) also configure the Linux baseline in the POP
#   --bb-mtu N       backbone veth MTU, default 1550
#   --vx-mtu N       region (and baseline POP) vxlan device MTU, default 1500
#   --static-neigh   also pin the Internet-side neighbours (client<->POP);
#                    backbone neighbours are always static
#   --no-services    (up) do not start nginx / socat in the region
#   --all            (down) remove every testbed with this prefix (careful:
#                    other users of this script on the machine use the same prefix)
#   --keep-rundir    (down) keep the run dir (logs) instead of deleting it
#
# Environment: TB_PREFIX (default eiptb), TB_RUN_BASE (default /tmp).
#
# Safety: all traffic stays inside the namespaces created here. Only
# 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 10.0.0.0/8 are used.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=${TB_PREFIX:-eiptb}
RUN_BASE=${TB_RUN_BASE:-/tmp}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

# ---------------------------------------------------------------- constants
# Addresses (fixed; documented in docs/testbed.md).
CLIENT_IP=203.0.113.2
POP_INET_IP=203.0.113.1
INET_PLEN=24
POP_VTEP=198.51.100.1        # /32 on the POP's lo
REGION_VTEP=198.51.100.2     # /32 on the region's lo
# Backbone transfer nets (/30 per link). Index = path number.
POP_BB_IP=(198.51.100.9 198.51.100.13)
REGION_BB_IP=(198.51.100.10 198.51.100.14)
BB_PLEN=30
# Overlay (inner) next hops used on the vxlan segment.
POP_INNER_IP=10.255.0.1      # only configured in baseline mode (on the POP's vx0)
REGION_INNER_IP=10.255.0.2   # on the region's vx0
INNER_PLEN=24
VNI=100
VXLAN_PORT=4789
EIP1=192.0.2.10; EIP1_BACKEND=10.1.0.10
EIP2=192.0.2.20; EIP2_BACKENDS=(10.1.0.20 10.1.0.21); EIP2_DEFAULT=10.1.0.20
BACKENDS=(10.1.0.10 10.1.0.20 10.1.0.21)
ECHO_PORT=7
HTTP_PORT=80

# MACs: 02:00:00:00:<node>:<if>; node 01 = pop, 02 = client, 10 = region.
POP_INNER_MAC=02:00:00:00:01:01     # POP's MAC on the overlay (inner source MAC)
POP_INET_MAC=02:00:00:00:01:10
POP_BB_MAC=(02:00:00:00:01:20 02:00:00:00:01:21)
CLIENT_MAC=02:00:00:00:02:10
REGION_VX_MAC=02:00:00:00:10:01     # region vx0 (inner destination MAC)
REGION_BB_MAC=(02:00:00:00:10:20 02:00:00:00:10:21)

# Interface names (namespaces isolate them, so they are the same every run).
POP_INET_IF=eip-inet
POP_BB_IF=(eip-bb0 eip-bb1)
CLIENT_IF=cl-inet
REGION_BB_IF=(rg-bb0 rg-bb1)
VX_IF=vx0

BIGFILE_SIZE=$((10 * 1024 * 1024))
PAGE_TEXT="eip-testbed: hello from region beijing"

# ---------------------------------------------------------------- options
CMD=${1:-help}; [[ $# -gt 0 ]] && shift
ID=${TB_ID:-}
ID_GIVEN=0; [[ -n $ID ]] && ID_GIVEN=1
QUEUES=1; PATHS=1; BASELINE=0; BB_MTU=1550; VX_MTU=1500
STATIC_NEIGH=0; SERVICES=1; ALL=0; KEEP_RUNDIR=0
QUEUES_SET=0; PATHS_SET=0; BB_MTU_SET=0; VX_MTU_SET=0
POS=()

die() { echo "testbed: error: $*" >&2; exit 1; }
log() { echo "testbed: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --id) ID=$2; ID_GIVEN=1; shift 2 ;;
    --id=*) ID=${1#*=}; ID_GIVEN=1; shift ;;
    --queues) QUEUES=$2; QUEUES_SET=1; shift 2 ;;
    --queues=*) QUEUES=${1#*=}; QUEUES_SET=1; shift ;;
    --paths) PATHS=$2; PATHS_SET=1; shift 2 ;;
    --paths=*) PATHS=${1#*=}; PATHS_SET=1; shift ;;
    --baseline) BASELINE=1; shift ;;
    --bb-mtu) BB_MTU=$2; BB_MTU_SET=1; shift 2 ;;
    --vx-mtu) VX_MTU=$2; VX_MTU_SET=1; shift 2 ;;
    --static-neigh) STATIC_NEIGH=1; shift ;;
    --no-services) SERVICES=0; shift ;;
    --all) ALL=1; shift ;;
    --keep-rundir) KEEP_RUNDIR=1; shift ;;
    --) shift; POS+=("$@"); break ;;
    -h|--help) CMD=help; shift ;;
    *) POS+=("$1"); shift ;;
  esac
done

[[ $QUEUES =~ ^[0-9]+$ && $QUEUES -ge 1 && $QUEUES -le 64 ]] || die "--queues must be 1..64"
[[ $PATHS == 1 || $PATHS == 2 ]] || die "--paths must be 1 or 2"
[[ $ID =~ ^[a-z0-9]{0,8}$ ]] || die "--id must be 1-8 chars of [a-z0-9]"
[[ $BB_MTU =~ ^[0-9]+$ && $VX_MTU =~ ^[0-9]+$ ]] || die "MTUs must be numbers"
(( VX_MTU + 50 <= BB_MTU )) || log "warning: vx-mtu $VX_MTU + 50 > bb-mtu $BB_MTU: full-size inner packets will not fit"

set_names() {
  RUN_DIR=$RUN_BASE/$PREFIX-$ID
  NS_CLIENT=$PREFIX-$ID-client
  NS_POP=$PREFIX-$ID-pop
  NS_REGION=$PREFIX-$ID-region
}

# Pick the testbed for commands other than `up`.
resolve_id() {
  if [[ -z $ID ]]; then
    local found=() d
    for d in "$RUN_BASE/$PREFIX"-*/; do
      [[ -f $d/env ]] && found+=("$(basename "$d")")
    done
    [[ ${#found[@]} -eq 1 ]] || die "give --id (found ${#found[@]} testbeds: ${found[*]:-none})"
    ID=${found[0]#"$PREFIX"-}
  fi
  set_names
}

# Load settings of an existing testbed (queues, paths, MTUs) unless overridden.
load_state() {
  [[ -f $RUN_DIR/env ]] || return 1
  local q p b v
  q=$(sed -n 's/^export TB_QUEUES=//p' "$RUN_DIR/env")
  p=$(sed -n 's/^export TB_PATHS=//p' "$RUN_DIR/env")
  b=$(sed -n 's/^export TB_BB_MTU=//p' "$RUN_DIR/env")
  v=$(sed -n 's/^export TB_VX_MTU=//p' "$RUN_DIR/env")
  [[ $QUEUES_SET == 1 ]] || QUEUES=$q
  [[ $PATHS_SET == 1 ]] || PATHS=$p
  [[ $BB_MTU_SET == 1 ]] || BB_MTU=$b
  [[ $VX_MTU_SET == 1 ]] || VX_MTU=$v
  return 0
}

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
sysctl_ns() { local ns=$1; shift; local kv; for kv in "$@"; do nsx "$ns" sysctl -qw "$kv" >/dev/null; done; }

need() {
  local c missing=()
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
  [[ ${#missing[@]} -eq 0 ]] || die "missing tools: ${missing[*]} (apt-get install iproute2 ethtool nftables nginx-light socat curl)"
}

# ---------------------------------------------------------------- env / config
write_env() {
  local i
  {
    echo "# eipd testbed $ID ($(date -u +%FT%TZ)); source this file"
    echo "export TB_ID=$ID"
    echo "export TB_PREFIX=$PREFIX"
    echo "export TB_RUN_DIR=$RUN_DIR"
    echo "export TB_NS_CLIENT=$NS_CLIENT"
    echo "export TB_NS_POP=$NS_POP"
    echo "export TB_NS_REGION=$NS_REGION"
    echo "export TB_QUEUES=$QUEUES"
    echo "export TB_PATHS=$PATHS"
    echo "export TB_BB_MTU=$BB_MTU"
    echo "export TB_VX_MTU=$VX_MTU"
    echo "export TB_VNI=$VNI"
    echo "export TB_VXLAN_PORT=$VXLAN_PORT"
    echo "export TB_CLIENT_IF=$CLIENT_IF"
    echo "export TB_CLIENT_IP=$CLIENT_IP"
    echo "export TB_CLIENT_MAC=$CLIENT_MAC"
    echo "export TB_POP_INET_IF=$POP_INET_IF"
    echo "export TB_POP_INET_IP=$POP_INET_IP"
    echo "export TB_POP_INET_MAC=$POP_INET_MAC"
    echo "export TB_POP_VTEP=$POP_VTEP"
    echo "export TB_POP_INNER_MAC=$POP_INNER_MAC"
    echo "export TB_POP_INNER_IP=$POP_INNER_IP"
    for ((i = 0; i < PATHS; i++)); do
      echo "export TB_POP_BB${i}_IF=${POP_BB_IF[i]}"
      echo "export TB_POP_BB${i}_IP=${POP_BB_IP[i]}"
      echo "export TB_POP_BB${i}_MAC=${POP_BB_MAC[i]}"
      echo "export TB_REGION_BB${i}_IF=${REGION_BB_IF[i]}"
      echo "export TB_REGION_BB${i}_IP=${REGION_BB_IP[i]}"
      echo "export TB_REGION_BB${i}_MAC=${REGION_BB_MAC[i]}"
    done
    echo "export TB_REGION_VTEP=$REGION_VTEP"
    echo "export TB_REGION_VX_IF=$VX_IF"
    echo "export TB_REGION_VX_MAC=$REGION_VX_MAC"
    echo "export TB_REGION_INNER_IP=$REGION_INNER_IP"
    echo "export TB_EIP1=$EIP1"
    echo "export TB_EIP1_BACKEND=$EIP1_BACKEND"
    echo "export TB_EIP2=$EIP2"
    echo "export TB_EIP2_BACKENDS=\"${EIP2_BACKENDS[*]}\""
    echo "export TB_EIP2_DEFAULT_BACKEND=$EIP2_DEFAULT"
    echo "export TB_HTTP_PORT=$HTTP_PORT"
    echo "export TB_ECHO_PORT=$ECHO_PORT"
    echo "export TB_PAGE_TEXT=\"$PAGE_TEXT\""
    if [[ $SERVICES == 1 ]]; then
      echo "export TB_WWW_DIR=$RUN_DIR/www"
      echo "export TB_PAGE_SHA256=$(sha256sum "$RUN_DIR/www/index.html" | cut -d' ' -f1)"
      echo "export TB_BIGFILE_PATH=/big.bin"
      echo "export TB_BIGFILE_SIZE=$BIGFILE_SIZE"
      echo "export TB_BIGFILE_SHA256=$(sha256sum "$RUN_DIR/www/big.bin" | cut -d' ' -f1)"
    fi
    echo "export TB_EIPD_CONFIG=$RUN_DIR/pop.toml"
  } >"$RUN_DIR/env.tmp"
  mv "$RUN_DIR/env.tmp" "$RUN_DIR/env"
}

gen_config() {
  local i
  cat <<EOF
# eipd configuration for the namespace testbed (scripts/testbed.sh config).
# paths=$PATHS queues=$QUEUES bb_mtu=$BB_MTU vx_mtu=$VX_MTU
# Interfaces live in the POP namespace (${NS_POP:-$PREFIX-<id>-pop}).

[pop]
name = "testbed-pop"
vtep = "$POP_VTEP"
vxlan_port = $VXLAN_PORT
inner_mac = "$POP_INNER_MAC"
probe_source = "$POP_INNER_IP"         # inner source of path probes

[[ports]]
name = "internet"
role = "internet"
interface = "$POP_INET_IF"
mac = "$POP_INET_MAC"
gateway = "$CLIENT_IP"              # MAC learned from the kernel neighbour table
EOF
  for ((i = 0; i < PATHS; i++)); do
    cat <<EOF

[[ports]]
name = "backbone$i"
role = "backbone"
interface = "${POP_BB_IF[i]}"
mac = "${POP_BB_MAC[i]}"
EOF
  done
  cat <<EOF

[[regions]]
name = "beijing"
vni = $VNI
vtep = "$REGION_VTEP"
inner_mac = "$REGION_VX_MAC"
probe_target = "$REGION_INNER_IP"       # answers the POP's path probes (ICMP echo in VXLAN)
EOF
  for ((i = 0; i < PATHS; i++)); do
    cat <<EOF

[[paths]]
name = "bb$i"
region = "beijing"
port = "backbone$i"
next_hop_mac = "${REGION_BB_MAC[i]}"
source = "$POP_VTEP"
destination = "$REGION_VTEP"
mtu = $BB_MTU
weight = 1
EOF
  done
  cat <<EOF

[[eips]]
address = "$EIP1"
region = "beijing"
backend = "$EIP1_BACKEND"

[[eips]]
address = "$EIP2"
region = "beijing"
default_backend = "$EIP2_DEFAULT"
  [[eips.services]]
  protocol = "tcp"
  port = $HTTP_PORT
  backends = [ { address = "${EIP2_BACKENDS[0]}", port = $HTTP_PORT, weight = 1 }, { address = "${EIP2_BACKENDS[1]}", port = $HTTP_PORT, weight = 1 } ]
  [[eips.services]]
  protocol = "udp"
  port = $ECHO_PORT
  backends = [ { address = "${EIP2_BACKENDS[0]}", port = $ECHO_PORT, weight = 1 }, { address = "${EIP2_BACKENDS[1]}", port = $ECHO_PORT, weight = 1 } ]
EOF
}

# ---------------------------------------------------------------- teardown
kill_ns_procs() {
  local ns=$1 pids p i
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  [[ -n $pids ]] || return 0
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  for ((i = 0; i < 30; i++)); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z $pids ]] && return 0
    sleep 0.1
  done
  for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
  sleep 0.2
}

teardown() {
  local ns
  for ns in "$NS_CLIENT" "$NS_POP" "$NS_REGION"; do
    if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
      kill_ns_procs "$ns"
      ip netns del "$ns" 2>/dev/null || log "could not delete netns $ns"
    fi
  done
  if [[ -d $RUN_DIR && $KEEP_RUNDIR == 0 ]]; then
    rm -rf -- "$RUN_DIR"
  fi
}

# ---------------------------------------------------------------- up helpers
mk_ns() {
  local ns=$1
  ip netns add "$ns"
  nsx "$ns" ip link set lo up
  # Quiet, predictable links: no IPv6 chatter (ND/MLD/RS), no reverse-path
  # filtering, routes over a down link are ignored (failover tests), L4 ECMP hash.
  sysctl_ns "$ns" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    net.ipv4.conf.all.ignore_routes_with_linkdown=1 net.ipv4.conf.default.ignore_routes_with_linkdown=1 \
    net.ipv4.fib_multipath_hash_policy=1 net.ipv4.ip_forward=0
}

# mk_veth NS_A IF_A MAC_A MTU_A NS_B IF_B MAC_B MTU_B
mk_veth() {
  ip -n "$1" link add "$2" numtxqueues "$QUEUES" numrxqueues "$QUEUES" address "$3" mtu "$4" \
    type veth peer name "$6" netns "$5" numtxqueues "$QUEUES" numrxqueues "$QUEUES" address "$7" mtu "$8"
  # TX checksum offload off on both ends: frames must carry full checksums
  # because eipd rewrites them (see /work/shared/NOTES-afxdp.md). This also
  # disables TSO, so frames on the wire are MTU-sized.
  nsx "$1" ethtool -K "$2" tx off >/dev/null
  nsx "$5" ethtool -K "$6" tx off >/dev/null
  ip -n "$1" link set "$2" up
  ip -n "$5" link set "$6" up
}

make_content() {
  local www=$RUN_DIR/www
  mkdir -p "$www"
  printf '%s\n' "$PAGE_TEXT" >"$www/index.html"
  # 10 MiB of deterministic, position-dependent content:
  # sha256(0) || sha256(1) || ... (64-bit big-endian counters).
  "$PY" - "$www/big.bin" "$BIGFILE_SIZE" <<'PYEOF'
import hashlib, sys
path, size = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    n = 0; written = 0
    buf = bytearray()
    while written + len(buf) < size:
        buf += hashlib.sha256(n.to_bytes(8, "big")).digest(); n += 1
        if len(buf) >= 1 << 20:
            f.write(buf); written += len(buf); buf = bytearray()
    f.write(buf[: size - written])
PYEOF
  chmod -R a+rX "$www"
}

start_services() {
  local b listen="" tmp=$RUN_DIR/nginx-tmp
  mkdir -p "$tmp" "$RUN_DIR/log"
  for b in "${BACKENDS[@]}"; do listen+="    listen $b:$HTTP_PORT;"$'\n'; done
  cat >"$RUN_DIR/nginx.conf" <<EOF
# testbed-only nginx config ($RUN_DIR); never the system config.
user nobody nogroup;
worker_processes 1;
pid $RUN_DIR/nginx.pid;
error_log $RUN_DIR/log/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log $RUN_DIR/log/nginx-access.log;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    types { text/html html; application/octet-stream bin; }
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 10;
    server {
$listen        server_name _;
        root $RUN_DIR/www;
        location = /whoami { default_type text/plain; return 200 "backend=\$server_addr\n"; }
    }
}
EOF
  nsx "$NS_REGION" nginx -t -q -e "$RUN_DIR/log/nginx-error.log" -c "$RUN_DIR/nginx.conf" \
    || die "nginx config test failed (see $RUN_DIR/log/nginx-error.log)"
  # Foreground master in the region namespace, detached from our session.
  setsid ip netns exec "$NS_REGION" nginx -e "$RUN_DIR/log/nginx-error.log" -c "$RUN_DIR/nginx.conf" \
    -g 'daemon off;' </dev/null >>"$RUN_DIR/log/nginx.out" 2>&1 &
  echo $! >"$RUN_DIR/nginx.master.pid"
  # UDP echo responders (one socat per backend so replies leave from the backend address).
  for b in "${BACKENDS[@]}"; do
    setsid ip netns exec "$NS_REGION" socat -T 5 "UDP4-RECVFROM:$ECHO_PORT,bind=$b,reuseaddr,fork" PIPE \
      </dev/null >>"$RUN_DIR/log/socat-$b.log" 2>&1 &
    echo $! >"$RUN_DIR/socat-$b.pid"
  done
  # Wait until everything listens.
  local i ntcp nudp
  for ((i = 0; i < 50; i++)); do
    ntcp=$(nsx "$NS_REGION" ss -Hltn "sport = :$HTTP_PORT" | wc -l)
    nudp=$(nsx "$NS_REGION" ss -Hlun "sport = :$ECHO_PORT" | wc -l)
    [[ $ntcp -ge ${#BACKENDS[@]} && $nudp -ge ${#BACKENDS[@]} ]] && return 0
    sleep 0.1
  done
  die "services did not come up (tcp=$ntcp udp=$nudp); see $RUN_DIR/log"
}

# ---------------------------------------------------------------- baseline
baseline_on() {
  local i nh=()
  need nft
  # Overlay device in the POP. Its MAC is the POP inner MAC, which the region
  # uses (static neighbour 10.255.0.1) as the destination of returns.
  ip -n "$NS_POP" link add "$VX_IF" address "$POP_INNER_MAC" mtu "$VX_MTU" type vxlan id "$VNI" \
    local "$POP_VTEP" dstport "$VXLAN_PORT" nolearning
  nsx "$NS_POP" ethtool -K "$VX_IF" tx off >/dev/null
  ip -n "$NS_POP" addr add "$POP_INNER_IP/$INNER_PLEN" dev "$VX_IF"
  ip -n "$NS_POP" link set "$VX_IF" up
  ip -n "$NS_POP" neigh replace "$REGION_INNER_IP" lladdr "$REGION_VX_MAC" dev "$VX_IF" nud permanent
  bridge -n "$NS_POP" fdb append 00:00:00:00:00:00 dev "$VX_IF" dst "$REGION_VTEP"
  ip -n "$NS_POP" route replace 10.1.0.0/24 via "$REGION_INNER_IP" dev "$VX_IF"
  local b2="${EIP2_BACKENDS[0]}" b3="${EIP2_BACKENDS[1]}"
  nsx "$NS_POP" nft -f - <<EOF
table ip eip_baseline {
    # The tunnel itself (outer VXLAN) needs no connection tracking; without
    # these rules every inner flow would also create an outer conntrack entry.
    chain raw_prerouting {
        type filter hook prerouting priority raw; policy accept;
        ip daddr $POP_VTEP udp dport $VXLAN_PORT notrack
    }
    chain raw_output {
        type filter hook output priority raw; policy accept;
        ip saddr $POP_VTEP udp dport $VXLAN_PORT notrack
    }
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr $EIP1 dnat to $EIP1_BACKEND
        ip daddr $EIP2 tcp dport $HTTP_PORT dnat to numgen inc mod 2 map { 0 : $b2, 1 : $b3 }
        ip daddr $EIP2 udp dport $ECHO_PORT dnat to numgen inc mod 2 map { 0 : $b2, 1 : $b3 }
        ip daddr $EIP2 dnat to $EIP2_DEFAULT
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "$POP_INET_IF" ip saddr $EIP1_BACKEND snat to $EIP1
        oifname "$POP_INET_IF" ip saddr { $b2, $b3 } snat to $EIP2
    }
}
EOF
  sysctl_ns "$NS_POP" net.ipv4.ip_forward=1
  echo baseline >"$RUN_DIR/mode"
}

baseline_off() {
  sysctl_ns "$NS_POP" net.ipv4.ip_forward=0
  nsx "$NS_POP" nft delete table ip eip_baseline 2>/dev/null || true
  ip -n "$NS_POP" link del "$VX_IF" 2>/dev/null || true
  echo eipd >"$RUN_DIR/mode"
}

# ---------------------------------------------------------------- up
UP_DONE=0
on_up_exit() {
  local rc=$?
  if [[ $UP_DONE != 1 ]]; then
    log "up failed or interrupted (rc=$rc): tearing down $ID"
    trap - EXIT INT TERM
    KEEP_RUNDIR=0 teardown
  fi
  exit "$rc"
}

cmd_up() {
  need ip ethtool bridge ss sha256sum
  [[ $SERVICES == 1 ]] && need nginx socat
  if [[ -z $ID ]]; then ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n'); fi
  set_names
  [[ ! -e $RUN_DIR ]] || die "run dir $RUN_DIR exists (testbed $ID already up?)"
  local ns
  for ns in "$NS_CLIENT" "$NS_POP" "$NS_REGION"; do
    ! ip netns list | awk '{print $1}' | grep -qx "$ns" || die "netns $ns exists"
  done
  trap on_up_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "$RUN_DIR"; chmod 755 "$RUN_DIR"
  log "bringing up testbed $ID (queues=$QUEUES paths=$PATHS baseline=$BASELINE) in $RUN_DIR"

  mk_ns "$NS_CLIENT"; mk_ns "$NS_POP"; mk_ns "$NS_REGION"

  # --- client <-> POP (the Internet side)
  mk_veth "$NS_POP" "$POP_INET_IF" "$POP_INET_MAC" 1500 "$NS_CLIENT" "$CLIENT_IF" "$CLIENT_MAC" 1500
  ip -n "$NS_CLIENT" addr add "$CLIENT_IP/$INET_PLEN" dev "$CLIENT_IF"
  ip -n "$NS_POP" addr add "$POP_INET_IP/$INET_PLEN" dev "$POP_INET_IF"
  ip -n "$NS_CLIENT" route add 192.0.2.0/24 via "$POP_INET_IP" dev "$CLIENT_IF"
  ip -n "$NS_CLIENT" route add default via "$POP_INET_IP" dev "$CLIENT_IF"
  if [[ $STATIC_NEIGH == 1 ]]; then
    ip -n "$NS_CLIENT" neigh replace "$POP_INET_IP" lladdr "$POP_INET_MAC" dev "$CLIENT_IF" nud permanent
    ip -n "$NS_POP" neigh replace "$CLIENT_IP" lladdr "$CLIENT_MAC" dev "$POP_INET_IF" nud permanent
  fi

  # --- POP <-> region (backbone), one /30 per link; VTEPs are /32 on lo.
  ip -n "$NS_POP" addr add "$POP_VTEP/32" dev lo
  ip -n "$NS_REGION" addr add "$REGION_VTEP/32" dev lo
  local i pop_nh=() reg_nh=()
  for ((i = 0; i < PATHS; i++)); do
    mk_veth "$NS_POP" "${POP_BB_IF[i]}" "${POP_BB_MAC[i]}" "$BB_MTU" \
      "$NS_REGION" "${REGION_BB_IF[i]}" "${REGION_BB_MAC[i]}" "$BB_MTU"
    ip -n "$NS_POP" addr add "${POP_BB_IP[i]}/$BB_PLEN" dev "${POP_BB_IF[i]}"
    ip -n "$NS_REGION" addr add "${REGION_BB_IP[i]}/$BB_PLEN" dev "${REGION_BB_IF[i]}"
    # Static backbone neighbours: no dependence on ARP passing through eipd,
    # and benchmarks can put XDP_DROP on the region side.
    ip -n "$NS_POP" neigh replace "${REGION_BB_IP[i]}" lladdr "${REGION_BB_MAC[i]}" dev "${POP_BB_IF[i]}" nud permanent
    ip -n "$NS_REGION" neigh replace "${POP_BB_IP[i]}" lladdr "${POP_BB_MAC[i]}" dev "${REGION_BB_IF[i]}" nud permanent
    pop_nh+=(nexthop via "${REGION_BB_IP[i]}" dev "${POP_BB_IF[i]}")
    reg_nh+=(nexthop via "${POP_BB_IP[i]}" dev "${REGION_BB_IF[i]}")
  done
  if [[ $PATHS == 1 ]]; then
    ip -n "$NS_POP" route add "$REGION_VTEP/32" via "${REGION_BB_IP[0]}" dev "${POP_BB_IF[0]}"
    ip -n "$NS_REGION" route add "$POP_VTEP/32" via "${POP_BB_IP[0]}" dev "${REGION_BB_IF[0]}"
  else
    ip -n "$NS_POP" route add "$REGION_VTEP/32" "${pop_nh[@]}"
    ip -n "$NS_REGION" route add "$POP_VTEP/32" "${reg_nh[@]}"
  fi

  # --- region: backends on lo, vxlan toward the POP VTEP for returns.
  local b
  for b in "${BACKENDS[@]}"; do ip -n "$NS_REGION" addr add "$b/32" dev lo; done
  ip -n "$NS_REGION" link add "$VX_IF" address "$REGION_VX_MAC" mtu "$VX_MTU" type vxlan id "$VNI" \
    local "$REGION_VTEP" dstport "$VXLAN_PORT" nolearning
  nsx "$NS_REGION" ethtool -K "$VX_IF" tx off >/dev/null
  ip -n "$NS_REGION" addr add "$REGION_INNER_IP/$INNER_PLEN" dev "$VX_IF"
  ip -n "$NS_REGION" link set "$VX_IF" up
  ip -n "$NS_REGION" neigh replace "$POP_INNER_IP" lladdr "$POP_INNER_MAC" dev "$VX_IF" nud permanent
  bridge -n "$NS_REGION" fdb append 00:00:00:00:00:00 dev "$VX_IF" dst "$POP_VTEP"
  ip -n "$NS_REGION" route add default via "$POP_INNER_IP" dev "$VX_IF" onlink

  gen_config >"$RUN_DIR/pop.toml"
  if [[ $SERVICES == 1 ]]; then
    make_content
    start_services
  fi
  echo eipd >"$RUN_DIR/mode"
  [[ $BASELINE == 1 ]] && baseline_on
  write_env
  UP_DONE=1
  trap - EXIT INT TERM
  log "testbed $ID is up (mode: $(cat "$RUN_DIR/mode")); env: $RUN_DIR/env"
  echo "$ID"
}

cmd_down() {
  if [[ $ALL == 1 ]]; then
    local ns ids
    ids=$( { ip netns list | awk '{print $1}' | sed -n "s/^$PREFIX-\([a-z0-9]*\)-\(client\|pop\|region\)\$/\1/p"
             for d in "$RUN_BASE/$PREFIX"-*/; do [[ -d $d ]] && basename "$d" | sed "s/^$PREFIX-//"; done
           } | sort -u)
    for ID in $ids; do set_names; log "removing testbed $ID"; teardown; done
    return 0
  fi
  resolve_id
  trap '' INT TERM   # finish the teardown even if interrupted
  teardown
  log "testbed $ID removed"
}

cmd_env() {
  resolve_id
  [[ -f $RUN_DIR/env ]] || die "no env for testbed $ID"
  cat "$RUN_DIR/env"
  echo "export TB_MODE=$(cat "$RUN_DIR/mode" 2>/dev/null || echo unknown)"
}

cmd_config() {
  if [[ -n $ID ]] || compgen -G "$RUN_BASE/$PREFIX-*/env" >/dev/null; then
    # Use the settings of an existing testbed when there is one.
    if ( resolve_id ) >/dev/null 2>&1; then resolve_id; load_state || true; fi
  fi
  gen_config
}

cmd_baseline() {
  resolve_id; load_state || die "testbed $ID not found"
  case ${POS[0]:-} in
    on) [[ $(cat "$RUN_DIR/mode") == baseline ]] && { log "baseline already on"; return 0; }; baseline_on; log "baseline on" ;;
    off) baseline_off; log "baseline off (POP forwarding disabled; ready for eipd)" ;;
    *) die "usage: testbed.sh baseline on|off [--id ID]" ;;
  esac
}

cmd_exec() {
  resolve_id
  local node=${POS[0]:-}; [[ ${#POS[@]} -ge 2 ]] || die "usage: testbed.sh exec [--id ID] client|pop|region -- CMD..."
  local ns
  case $node in
    client) ns=$NS_CLIENT ;; pop) ns=$NS_POP ;; region) ns=$NS_REGION ;;
    *) die "node must be client, pop or region" ;;
  esac
  exec ip netns exec "$ns" "${POS[@]:1}"
}

cmd_list() {
  local d
  for d in "$RUN_BASE/$PREFIX"-*/; do
    [[ -f $d/env ]] || continue
    echo "$(basename "$d" | sed "s/^$PREFIX-//") $(cat "$d/mode" 2>/dev/null) $d"
  done
}

case $CMD in
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  config) cmd_config ;;
  baseline) cmd_baseline ;;
  exec) cmd_exec ;;
  list) cmd_list ;;
  help|-h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$CMD' (try: $0 help)" ;;
esac

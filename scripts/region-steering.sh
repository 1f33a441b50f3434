#!/usr/bin/env bash
# region-steering.sh - the region side of "returns leave through the ingress POP"
# for a stock Linux region (no new software): prints the commands, or runs them.
#
# Each POP has its own VTEP and its own inner MAC (the source MAC of what it puts
# into the tunnel). On the region's vxlan device:
#   - one FDB entry per POP: inner MAC -> POP VTEP (unicast, no flooding);
#   - one permanent neighbour per POP: POP inner address -> POP inner MAC;
#   - nftables marks the connection with the POP's number from the inner source
#     MAC of EVERY inbound packet (so the return follows a flow that moved), and
#     copies that mark to the packets the region sends back;
#   - fwmark N routes through table 100+N, whose default route is POP N's inner
#     address; unmarked traffic takes the main table (the first POP listed);
#     the outer packets to each POP's VTEP keep the main table (the vxlan device
#     routes them with the inner packet's mark).
#
# Usage: region-steering.sh [--apply] VXLAN_DEV POP...   (POP = name,inner_mac,vtep,inner_ip)
#   e.g. region-steering.sh --apply vx0 a,02:00:00:00:01:01,198.51.100.1,10.255.0.1 \
#                                       b,02:00:00:00:03:01,198.51.100.5,10.255.0.3
# Without --apply the commands are printed (review them, or pipe them to sh).
# Design and the rules: docs/anycast.md ("Returns through the ingress POP").
set -euo pipefail

APPLY=0
if [[ ${1:-} == --apply ]]; then APPLY=1; shift; fi
[[ $# -ge 2 ]] || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
DEV=$1; shift

cmds=()
nft_rules=""
n=0
for pop in "$@"; do
  IFS=, read -r name mac vtep inner <<<"$pop"
  [[ -n $name && -n $mac && -n $vtep && -n $inner ]] || { echo "region-steering: bad POP '$pop' (name,inner_mac,vtep,inner_ip)" >&2; exit 2; }
  n=$((n + 1))
  table=$((100 + n))
  cmds+=("bridge fdb append $mac dev $DEV dst $vtep")
  cmds+=("ip neigh replace $inner lladdr $mac dev $DEV nud permanent")
  cmds+=("ip route replace default via $inner dev $DEV onlink table $table")
  cmds+=("ip rule del fwmark $n table $table 2>/dev/null || true")
  cmds+=("ip rule add fwmark $n table $table priority $((1000 + n))")
  # The tunnel's own packets (outer, to the POP's VTEP) inherit the inner
  # packet's mark: they must keep the main table.
  cmds+=("ip rule del to $vtep lookup main 2>/dev/null || true")
  cmds+=("ip rule add to $vtep lookup main priority 1000")
  [[ $n == 1 ]] && cmds+=("ip route replace default via $inner dev $DEV onlink")
  nft_rules+="        iifname \"$DEV\" ether saddr $mac ct mark set $n   # POP $name"$'\n'
done

nft_table="table ip eip_region_steering {
    chain inbound {
        type filter hook prerouting priority mangle; policy accept;
$nft_rules    }
    chain outbound {
        type route hook output priority mangle; policy accept;
        ct mark != 0 meta mark set ct mark
    }
    chain forwarded {
        type filter hook prerouting priority mangle + 1; policy accept;
        iifname != \"$DEV\" ct mark != 0 meta mark set ct mark
    }
}"

if [[ $APPLY == 1 ]]; then
  for c in "${cmds[@]}"; do eval "$c"; done
  nft delete table ip eip_region_steering 2>/dev/null || true
  nft -f - <<<"$nft_table"
else
  printf '%s\n' "${cmds[@]}"
  printf "nft -f - <<'EOF'\n%s\nEOF\n" "$nft_table"
fi

#!/usr/bin/env bash
# Installs what building, testing and the demo need on a fresh Debian machine.
# Idempotent: skips the package manager when everything is already there.
set -euo pipefail

packages=(
  clang llvm libelf-dev          # the XDP program is C compiled with clang -target bpf
  tshark                         # independent dissector for replay outputs
  iproute2 iputils-ping nftables ethtool  # namespace testbed, Linux baseline
  nginx-light curl socat         # real HTTP server and client, UDP echo
  netsniff-ng tcpdump            # trafgen for the veth benchmark
  python3-scapy                  # fixture generator
  prometheus                     # promtool: checks the metrics exposition and the alert rules
  systemd man-db dpkg-dev        # unit checks (systemd-analyze verify runs man), .deb dependencies
  bird2 frr                      # anycast: BIRD is eipd's BGP speaker, FRR the independent router of the testbed
  valgrind                       # scripts/callgrind.sh: instructions per packet
)

sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The bird2 and frr packages start system-wide daemons on install. eipd runs its own
# BIRD (own configuration and control socket) and the testbed its own FRR, all inside
# namespaces: the system ones are not needed, so they are stopped and disabled.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  for unit in bird.service frr.service; do
    if systemctl is-enabled --quiet "$unit" 2>/dev/null || systemctl is-active --quiet "$unit" 2>/dev/null; then
      $sudo_cmd systemctl disable --now "$unit" >/dev/null 2>&1 || true
    fi
  done
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install the Rust toolchain (rustup) first" >&2
  exit 1
fi

#!/usr/bin/python3
"""Generates the golden pcap fixtures of the anycast-EIP data plane.

Run from anywhere with Debian's Python (it has scapy):

    /usr/bin/python3 pcap-fixtures/make_fixtures.py

For every scenario it writes, next to this script:

    <scenario>/input.pcap               frames as they arrive on one port
    <scenario>/input-port               only when that port is not the Internet port
    <scenario>/expected/<port>.pcap     what the POP must transmit on each port of
                                        pop.toml (empty pcaps where nothing is sent)
    <scenario>/expected-counters.json   every counter that must be non-zero, with its
                                        exact value; all others must be zero

and <scenario>/input.pcapng for the scenarios in PCAPNG_TWINS: the same frames
converted to pcapng by Wireshark's editcap (not by this script or the Rust code);

and in bench/ the benchmark inputs (a 1,000-EIP configuration, 64-byte frames to
those EIPs, an IMIX mix).

The expected outputs are *not* computed by the Rust code. This file re-implements
the written specification independently: the flow hash (crates/eip-dataplane/src/flow.rs), the
weighted Maglev table (crates/eip-dataplane/src/maglev.rs), path keys and table sizes
(crates/eip-dataplane/src/tables/build.rs), and the forwarding behaviour (class `Model`).
Packets are built with scapy with every checksum computed from scratch, so the
pipeline's incremental (RFC 1624) updates are checked against full recomputation.

Output is deterministic: fixed timestamps, no randomness without a fixed seed;
running the script twice gives identical files.
"""

from __future__ import annotations

import ipaddress
import json
import random
import shutil
import struct
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

from scapy.layers.dns import DNS, DNSQR, DNSRR, DNSRROPT, EDNS0TLV
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    PadN,
)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw

HERE = Path(__file__).resolve().parent
POP_TOML = HERE / "pop.toml"

# ---------------------------------------------------------------------------
# The specification, re-implemented: flow hash, Maglev, path keys.
# ---------------------------------------------------------------------------

MASK64 = (1 << 64) - 1
HASH_SEED = 0x9E3779B97F4A7C15  # flow.rs SEED: the 64-bit golden ratio
MAGLEV_OFFSET_SEED = 0x0FF5E70FF5E70FF5
MAGLEV_SKIP_SEED = 0x5C1B5C1B5C1B5C1B
MAGLEV_TABLE_SIZES = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65537, 131071, 262139)
MAGLEV_SLOTS_PER_BACKEND = 100
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3

PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 1, 6, 17, 58

# Bytes of encapsulation counted against the path MTU: IPv4 20 + UDP 8 + VXLAN 8 +
# inner Ethernet 14.
ENCAP_IP_OVERHEAD = 50
# Largest quote in an ICMP error the POP originates: the error fits in 576 bytes
# (IPv4, RFC 1812 4.3.2.3) or 1280 bytes (IPv6, RFC 4443 2.4).
MAX_QUOTE_V4 = 576 - 20 - 8
MAX_QUOTE_V6 = 1280 - 40 - 8


def fmix64(x: int) -> int:
    """MurmurHash3's 64-bit finaliser."""
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & MASK64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & MASK64
    x ^= x >> 33
    return x


# The flow hash's constants (flow.rs `K`): digits of pi, the first with its low half
# cleared.
FLOW_K = (0x243F6A8800000000, 0x85A308D313198A2E, 0x03707344A4093822, 0x299F31D0082EFA98)


def fold_mul(a: int, b: int) -> int:
    """The 128-bit product of two 64-bit words, its halves XORed."""
    p = (a & MASK64) * (b & MASK64)
    return (p & MASK64) ^ (p >> 64)


def flow_hash(src: str, dst: str, sport: int, dport: int, proto: int) -> int:
    """Flow hash of a packet as the client sends it: absorb(h, a, b) =
    fold_mul(h ^ a ^ K0, b ^ K1) from h = 0 over (src << 32 | dst, ports) for IPv4, or
    (src hi, src lo), (dst hi, dst lo), (0, ports) for IPv6, where ports = sport << 32 |
    dport << 16 | protocol; then fold_mul(h ^ K2, K3)."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    ports = sport << 32 | dport << 16 | proto

    def absorb(h: int, a: int, b: int) -> int:
        return fold_mul(h ^ a ^ FLOW_K[0], b ^ FLOW_K[1])

    if s.version == 4:
        h = absorb(0, int(s) << 32 | int(d), ports)
    else:
        h = absorb(0, int(s) >> 64, int(s) & MASK64)
        h = absorb(h, int(d) >> 64, int(d) & MASK64)
        h = absorb(h, 0, ports)
    return fold_mul(h ^ FLOW_K[2], FLOW_K[3])


def vxlan_source_port(h: int) -> int:
    """Outer UDP source port: 49152 + 14 bits of the flow hash (RFC 7348 section 5)."""
    return 0xC000 | ((h >> 16) & 0x3FFF)


def backend_slot(h: int, table_len: int) -> int:
    """Slot of a service's Maglev table: the low half of the hash modulo its size."""
    return (h & 0xFFFFFFFF) % table_len


def path_slot(h: int, table_len: int) -> int:
    """Slot of a region's path table: the high half of the hash."""
    return (h >> 32) % table_len


def table_size_for(entries: int) -> int:
    """Smallest listed prime with at least 100 slots per entry (else the largest)."""
    want = entries * MAGLEV_SLOTS_PER_BACKEND
    return next((m for m in MAGLEV_TABLE_SIZES if m >= want), MAGLEV_TABLE_SIZES[-1])


def addr_key(addr: str) -> int:
    """An address as 128 bits: IPv6 as is, IPv4 as IPv4-mapped IPv6."""
    a = ipaddress.ip_address(addr)
    return int(a) if a.version == 6 else 0xFFFF << 32 | int(a)


def backend_key(addr: str, port: int) -> int:
    """Maglev identity of a service backend: its address and port."""
    a = addr_key(addr)
    return fmix64(fmix64(HASH_SEED ^ (a >> 64)) ^ (a & MASK64)) ^ port


def path_key(name: str) -> int:
    """Maglev identity of a path: FNV-1a 64 of its name, then fmix64."""
    h = FNV_OFFSET
    for b in name.encode():
        h = ((h ^ b) * FNV_PRIME) & MASK64
    return fmix64(h)


def maglev_table(entries: list[tuple[int, int]], size: int) -> list[int]:
    """Maglev lookup table (slot -> entry index) over (key, weight) entries.

    Each round, every entry earns `weight` credit and, when its credit reaches the
    largest weight, spends that much to claim the next free slot of its permutation
    (offset + j * skip) mod size. Weight 0 claims nothing; no positive weight at all
    gives an empty table."""
    max_weight = max((w for _, w in entries), default=0)
    if max_weight == 0:
        return []
    perms = [
        (fmix64(key ^ MAGLEV_OFFSET_SEED) % size, fmix64(key ^ MAGLEV_SKIP_SEED) % (size - 1) + 1)
        for key, _ in entries
    ]
    nxt = [0] * len(entries)
    credit = [0] * len(entries)
    table = [-1] * size
    filled = 0
    while True:
        for i, (_, weight) in enumerate(entries):
            credit[i] += weight
            if credit[i] < max_weight:
                continue
            credit[i] -= max_weight
            offset, skip = perms[i]
            slot = (offset + nxt[i] * skip) % size
            while table[slot] != -1:
                nxt[i] += 1
                slot = (offset + nxt[i] * skip) % size
            table[slot] = i
            nxt[i] += 1
            filled += 1
            if filled == size:
                return table


def self_check() -> None:
    """Values pinned by crates/eip-dataplane/src/flow.rs: fail fast if this copy drifts."""
    assert fmix64(0) == 0
    assert fmix64(1) == 0xB456BCFC34C2CB2C
    assert flow_hash("203.0.113.2", "192.0.2.10", 40000, 80, 6) == 0x719980228979E637
    assert flow_hash("2001:db8::1", "2001:db8:1::10", 40000, 443, 6) == 0xA71C36B22712CE85
    assert table_size_for(1) == 251 and table_size_for(1000) == 131071


# ---------------------------------------------------------------------------
# The POP configuration (pop.toml), with the derived tables the spec describes.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Port:
    name: str
    role: str
    mac: str
    gateway_mac: str | None


@dataclass(frozen=True)
class PathCfg:
    name: str
    region: str
    port: str
    next_hop_mac: str
    source: str
    destination: str
    mtu: int
    weight: int
    state: str

    @property
    def inner_mtu(self) -> int:
        """Largest inner IP packet the path carries."""
        return self.mtu - ENCAP_IP_OVERHEAD


@dataclass
class Region:
    name: str
    vni: int
    vtep: str
    inner_mac: str
    path_table: list[PathCfg] = field(default_factory=list)
    panic: bool = False  # no path up: the table holds the paths that are down


@dataclass(frozen=True)
class Backend:
    address: str
    port: int
    weight: int


@dataclass
class Service:
    protocol: int
    port: int
    backends: list[Backend]
    table: list[int]


@dataclass
class Eip:
    address: str
    region: str
    backend: str | None
    services: list[Service]

    def service(self, protocol: int, port: int) -> Service | None:
        """The service of (protocol, destination port), if any."""
        return next((s for s in self.services if s.protocol == protocol and s.port == port), None)


class Pop:
    """pop.toml, plus the lookup tables a snapshot derives from it."""

    def __init__(self, path: Path):
        cfg = tomllib.loads(path.read_text())
        pop = cfg["pop"]
        self.vtep: str = pop["vtep"]
        self.vxlan_port: int = pop.get("vxlan_port", 4789)
        self.inner_mac: str = pop["inner_mac"]
        self.outer_ttl: int = pop.get("outer_ttl", 64)
        self.ports = {
            p["name"]: Port(p["name"], p["role"], p["mac"], p.get("gateway_mac")) for p in cfg["ports"]
        }
        self.internet = next(p for p in self.ports.values() if p.role in ("internet", "both"))
        self.regions = {
            r["name"]: Region(r["name"], r["vni"], r["vtep"], r["inner_mac"]) for r in cfg["regions"]
        }
        self.paths = [
            PathCfg(
                name=p["name"],
                region=p["region"],
                port=p["port"],
                next_hop_mac=p["next_hop_mac"],
                source=p.get("source", self.vtep),
                destination=p.get("destination", self.regions[p["region"]].vtep),
                mtu=p.get("mtu", 1500),
                weight=p.get("weight", 1),
                state=p.get("state", "up"),
            )
            for p in cfg["paths"]
        ]
        self.local_vteps = {self.vtep, *pop.get("extra_vteps", []), *(p.source for p in self.paths)}
        # (remote VTEP, VNI) -> region: the region's VTEP and every path destination.
        self.tunnels: dict[tuple[str, int], str] = {}
        for r in self.regions.values():
            self.tunnels[(r.vtep, r.vni)] = r.name
        for p in self.paths:
            self.tunnels.setdefault((p.destination, self.regions[p.region].vni), p.region)
        for r in self.regions.values():
            r.path_table, r.panic = self._path_table(r)
        self.eips: dict[str, Eip] = {}
        # (region, backend address) -> EIP address
        self.backend_owner: dict[tuple[str, int], str] = {}
        # (region, backend address, protocol, backend port) -> service port
        self.service_return: dict[tuple[str, int, int, int], int] = {}
        for e in cfg.get("eips", []):
            self._add_eip(e)

    def _path_table(self, region: Region) -> tuple[list[PathCfg], bool]:
        """Maglev over the region's usable paths: those up (weight > 0), else (panic)
        those down, else none."""
        mine = [p for p in self.paths if p.region == region.name and p.weight > 0]
        up = [p for p in mine if p.state == "up"]
        usable = up or [p for p in mine if p.state == "down"]
        slots = maglev_table([(path_key(p.name), p.weight) for p in usable], table_size_for(len(usable)))
        return [usable[i] for i in slots], not up and bool(usable)

    def _add_eip(self, e: dict) -> None:
        address, region = str(ipaddress.ip_address(e["address"])), e["region"]
        backend = e.get("backend") or e.get("default_backend")
        if backend:
            backend = str(ipaddress.ip_address(backend))
            self.backend_owner[(region, addr_key(backend))] = address
        services = []
        for s in e.get("services", []):
            protocol = {"tcp": PROTO_TCP, "udp": PROTO_UDP}[s["protocol"]]
            backends = [
                Backend(str(ipaddress.ip_address(b["address"])), b.get("port", s["port"]), b.get("weight", 1))
                for b in s["backends"]
            ]
            for b in backends:
                self.backend_owner[(region, addr_key(b.address))] = address
                self.service_return[(region, addr_key(b.address), protocol, b.port)] = s["port"]
            keyed = [(backend_key(b.address, b.port), b.weight) for b in backends]
            table = maglev_table(keyed, table_size_for(len(backends)))
            services.append(Service(protocol, s["port"], backends, table))
        self.eips[address] = Eip(address, region, backend, services)

    def eip(self, address: str) -> Eip | None:
        """The EIP with this address, if it is one."""
        return self.eips.get(str(ipaddress.ip_address(address)))

    def path_to(self, region: str, h: int) -> PathCfg:
        """The path a flow with hash `h` takes to `region`."""
        table = self.regions[region].path_table
        return table[path_slot(h, len(table))]


# ---------------------------------------------------------------------------
# Packets: one description, built with scapy, checksums from scratch.
# ---------------------------------------------------------------------------

# ICMP messages by (IPv6?, kind): scapy layer for the 4-byte "rest of header" word.
ICMP_KINDS: dict[tuple[bool, str], Callable[[int], Packet]] = {
    (False, "echo-request"): lambda w: ICMP(type=8, code=0, id=w >> 16, seq=w & 0xFFFF),
    (False, "echo-reply"): lambda w: ICMP(type=0, code=0, id=w >> 16, seq=w & 0xFFFF),
    (False, "frag-needed"): lambda w: ICMP(type=3, code=4, nexthopmtu=w),
    (False, "too-big"): lambda w: ICMP(type=3, code=4, nexthopmtu=w),  # IPv4 name: frag-needed
    (False, "host-unreachable"): lambda w: ICMP(type=3, code=1),
    (False, "port-unreachable"): lambda w: ICMP(type=3, code=3),
    (False, "time-exceeded"): lambda w: ICMP(type=11, code=0),
    (True, "echo-request"): lambda w: ICMPv6EchoRequest(id=w >> 16, seq=w & 0xFFFF),
    (True, "echo-reply"): lambda w: ICMPv6EchoReply(id=w >> 16, seq=w & 0xFFFF),
    (True, "too-big"): lambda w: ICMPv6PacketTooBig(mtu=w),
    (True, "port-unreachable"): lambda w: ICMPv6DestUnreach(code=4),
    (True, "time-exceeded"): lambda w: ICMPv6TimeExceeded(code=0),
}
ICMP_ERRORS = {"frag-needed", "host-unreachable", "port-unreachable", "time-exceeded", "too-big"}


@dataclass(frozen=True)
class Quote:
    """The packet an ICMP error quotes: its first `length` bytes."""

    pkt: Pkt
    length: int

    def bytes(self) -> bytes:
        return bytes(self.pkt.ip())[: self.length]


@dataclass(frozen=True)
class Pkt:
    """One IP packet, described by the fields the POP reads or rewrites.

    `proto` is "tcp", "udp", "icmp" (ICMPv6 for IPv6 addresses) or another protocol
    number. ICMP messages have a `kind` (see ICMP_KINDS) and a 4-byte `word` (echo
    identifier << 16 | sequence, or an MTU); errors carry a `quote`. `fragment`
    selects a byte range of the transport data (header included) of the whole
    datagram: the packet is then that IPv4 or IPv6 fragment (`ident` is its
    identification)."""

    src: str
    dst: str
    proto: str | int
    sport: int = 0
    dport: int = 0
    ttl: int = 64
    ident: int = 0x1C46
    df: bool = True
    payload: bytes = b""
    tcp_flags: str = "PA"
    tcp_options: tuple = ()
    seq: int = 1_000_000
    udp_zero_checksum: bool = False
    router_alert: bool = False  # IPv4 Router Alert option (RFC 2113): a 24-byte header
    dest_opts: bool = False  # IPv6 Destination Options header before the transport
    kind: str = ""
    word: int = 0
    quote: Quote | None = None
    fragment: tuple[int, int] | None = None

    @property
    def v6(self) -> bool:
        return ":" in self.src

    @property
    def proto_number(self) -> int:
        if self.proto == "tcp":
            return PROTO_TCP
        if self.proto == "udp":
            return PROTO_UDP
        if self.proto == "icmp":
            return PROTO_ICMPV6 if self.v6 else PROTO_ICMP
        return self.proto

    @property
    def is_icmp_error(self) -> bool:
        return self.proto == "icmp" and self.kind in ICMP_ERRORS

    @property
    def later_fragment(self) -> bool:
        return self.fragment is not None and self.fragment[0] > 0

    @property
    def mss(self) -> int | None:
        return next((v for k, v in self.tcp_options if k == "MSS"), None)

    def with_mss(self, mss: int) -> Pkt:
        return replace(self, tcp_options=tuple((k, mss if k == "MSS" else v) for k, v in self.tcp_options))

    def _l4(self) -> Packet:
        if self.proto == "tcp":
            ack = self.seq + 1 if "A" in self.tcp_flags else 0
            return TCP(
                sport=self.sport, dport=self.dport, seq=self.seq, ack=ack,
                flags=self.tcp_flags, window=64240, options=list(self.tcp_options),
            ) / Raw(self.payload)
        if self.proto == "udp":
            udp = UDP(sport=self.sport, dport=self.dport)
            if self.udp_zero_checksum:
                udp.chksum = 0
            return udp / Raw(self.payload)
        if self.proto == "icmp":
            body = self.quote.bytes() if self.quote else self.payload
            return ICMP_KINDS[(self.v6, self.kind)](self.word) / Raw(body)
        return Raw(self.payload)

    def ip(self) -> Packet:
        """The packet as a scapy object (checksums and lengths computed on build)."""
        if self.fragment is not None:
            return self._fragment()
        proto = self.proto_number
        if self.v6:
            next_header = 60 if self.dest_opts else proto
            ip6 = IPv6(src=self.src, dst=self.dst, hlim=self.ttl, tc=0, fl=0, nh=next_header)
            if self.dest_opts:
                ip6 = ip6 / IPv6ExtHdrDestOpt(nh=proto, options=[PadN(optdata=bytes(4))])
            return ip6 / self._l4()
        options = [IPOption_Router_Alert()] if self.router_alert else []
        return IP(src=self.src, dst=self.dst, ttl=self.ttl, id=self.ident, tos=0, proto=proto,
                  flags="DF" if self.df else 0, options=options) / self._l4()

    def _fragment(self) -> Packet:
        """This fragment: its byte range of the whole datagram's transport data (whose
        checksum covers the whole datagram) behind the fragment's own header."""
        whole = replace(self, fragment=None, dest_opts=False, router_alert=False).bytes()
        data = whole[40 if self.v6 else 20:]
        start, end = self.fragment
        assert start % 8 == 0 and end <= len(data)
        more = end < len(data)
        if self.v6:
            header = IPv6(src=self.src, dst=self.dst, hlim=self.ttl, tc=0, fl=0, nh=44) / IPv6ExtHdrFragment(
                nh=self.proto_number, offset=start // 8, m=int(more), id=self.ident)
        else:
            header = IP(src=self.src, dst=self.dst, ttl=self.ttl, id=self.ident, tos=0,
                        proto=self.proto_number, flags="MF" if more else 0, frag=start // 8)
        return header / Raw(data[start:end])

    def bytes(self) -> bytes:
        return bytes(self.ip())


def tcp(src: str, dst: str, sport: int, dport: int, **kw) -> Pkt:
    return Pkt(src, dst, "tcp", sport, dport, **kw)


def syn(src: str, dst: str, sport: int, dport: int, mss: int = 1460, odd_mss: bool = False, **kw) -> Pkt:
    """A TCP SYN with the options Linux sends; `odd_mss` puts a NOP before the MSS
    option, so its value sits at an odd offset of the segment."""
    opts = [("MSS", mss), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]
    if odd_mss:
        opts = [("NOP", None), ("MSS", mss), ("NOP", None), ("WScale", 7),
                ("SAckOK", b""), ("NOP", None), ("NOP", None)]
    return Pkt(src, dst, "tcp", sport, dport, tcp_flags="S", tcp_options=tuple(opts), **kw)


def udp(src: str, dst: str, sport: int, dport: int, **kw) -> Pkt:
    return Pkt(src, dst, "udp", sport, dport, **kw)


def echo(src: str, dst: str, ident: int, seq: int, reply: bool = False, **kw) -> Pkt:
    kind = "echo-reply" if reply else "echo-request"
    return Pkt(src, dst, "icmp", kind=kind, word=ident << 16 | seq, payload=filler(32, seq), **kw)


def icmp_error(src: str, dst: str, kind: str, quoted: Pkt, length: int, word: int = 0, **kw) -> Pkt:
    """An ICMP error from `src` to `dst` quoting the first `length` bytes of `quoted`."""
    return Pkt(src, dst, "icmp", kind=kind, word=word, quote=Quote(quoted, length), df=False, **kw)


def filler(n: int, seed: int = 0) -> bytes:
    """`n` deterministic payload bytes."""
    return bytes((seed * 31 + i * 7) & 0xFF for i in range(n))


def dns_query(qid: int, name: str = "www.example.com", pad: int = 0) -> bytes:
    """A DNS query (RFC 1035); with `pad`, an EDNS(0) padding option (RFC 7830) of
    that many bytes. Real messages, so that tshark's DNS dissector finds nothing
    malformed in the outputs."""
    extra = DNSRROPT(rclass=4096, rdata=[EDNS0TLV(optcode=12, optdata=bytes(pad))]) if pad else None
    return bytes(DNS(id=qid, rd=1, qd=DNSQR(qname=name, qtype="A"), ar=extra))


def dns_answer(qid: int, address: str, name: str = "www.example.com") -> bytes:
    """The answer to `dns_query(qid, name)`."""
    return bytes(DNS(id=qid, qr=1, rd=1, ra=1, qd=DNSQR(qname=name, qtype="A"),
                     an=DNSRR(rrname=name, ttl=300, rdata=address)))


def padded(frame: bytes) -> bytes:
    """An Ethernet frame as a NIC delivers it: at least 60 bytes (64 with FCS)."""
    return frame + bytes(max(0, 60 - len(frame)))


def ether(dst: str, src: str, ip: Packet, vlans: Iterable[tuple[int, int]] = ()) -> bytes:
    """Ethernet frame around `ip`, with VLAN tags given as (TPID, VID), outermost first."""
    l2: Packet = Ether(dst=dst, src=src)
    for tpid, vid in vlans:
        l2 = l2 / (Dot1AD(vlan=vid) if tpid == 0x88A8 else Dot1Q(vlan=vid))
    return bytes(l2 / ip)


# ---------------------------------------------------------------------------
# The behaviour the pipeline must have, written from the specification.
# ---------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the POP does with one frame: frames it sends, counters it moves."""

    sent: list[tuple[str, bytes]] = field(default_factory=list)
    counts: list[str] = field(default_factory=list)


class Model:
    """Expected forwarding behaviour. Holds the per-worker state the spec has: the
    memory of first fragments."""

    def __init__(self, pop: Pop):
        self.pop = pop
        # (client, EIP, protocol, IP ID) -> (backend, path) of a first fragment.
        self.fragments: dict[tuple[str, str, int, int], tuple[str, PathCfg]] = {}

    # -- client -> EIP ------------------------------------------------------

    def ingress(self, pkt: Pkt, macs: tuple[str, str]) -> Outcome:
        """A packet to an EIP arriving on the Internet port; `macs` = (dst, src) of
        its Ethernet header."""
        pop, eip = self.pop, self.pop.eip(pkt.dst)
        assert eip is not None, f"{pkt.dst} is not an EIP"
        if pkt.ttl <= 1:
            return self.originate(pkt, macs, "time-exceeded", 0, "ttl_expired", "icmp_time_exceeded_sent")
        counts = []
        dport = pkt.dport
        if pkt.is_icmp_error:
            backend, pkt, h = self.translate_ingress_error(eip, pkt)
            counts.append("events.icmp_error_translated")
            path = pop.path_to(eip.region, h)
        elif pkt.later_fragment:
            h = flow_hash(pkt.src, pkt.dst, 0, 0, pkt.proto_number)
            remembered = self.fragments.get((pkt.src, pkt.dst, pkt.proto_number, pkt.ident))
            if remembered:
                backend, path = remembered
            elif not eip.services and eip.backend:
                backend, path = eip.backend, pop.path_to(eip.region, h)
            else:
                return Outcome(counts=["drops.fragment_without_head"])
            counts.append("events.fragments")
        else:
            h = self.hash_of(pkt)
            backend, dport = self.choose_backend(eip, pkt)
            path = pop.path_to(eip.region, h)
            if pkt.fragment is not None:
                self.fragments[(pkt.src, pkt.dst, pkt.proto_number, pkt.ident)] = (backend, path)
                counts.append("events.fragments")

        if len(pkt.bytes()) > path.inner_mtu:
            if pkt.df or pkt.v6:
                return self.originate(pkt, macs, "too-big", path.inner_mtu, "too_big", "icmp_too_big_sent")
            return Outcome(counts=["drops.too_big"])
        mss_max = path.inner_mtu - (60 if pkt.v6 else 40)
        if "S" in pkt.tcp_flags and pkt.proto == "tcp" and pkt.mss is not None and pkt.mss > mss_max:
            pkt = pkt.with_mss(mss_max)
            counts.append("events.mss_clamped")
        inner = replace(pkt, dst=backend, dport=dport, ttl=pkt.ttl - 1)
        if pop.regions[eip.region].panic:
            counts.append("events.panic_path")
        counts.append("events.encapsulated")
        return Outcome([(path.port, self.vxlan_frame(path, h, inner))], counts)

    def hash_of(self, pkt: Pkt) -> int:
        """Flow hash with the ports the spec says: TCP/UDP ports, (identifier, 0) for
        an echo request, (0, 0) for anything else."""
        if pkt.proto in ("tcp", "udp") and not pkt.later_fragment:
            ports = (pkt.sport, pkt.dport)
        elif pkt.kind == "echo-request":
            ports = (pkt.word >> 16, 0)
        else:
            ports = (0, 0)
        return flow_hash(pkt.src, pkt.dst, *ports, pkt.proto_number)

    def choose_backend(self, eip: Eip, pkt: Pkt) -> tuple[str, int]:
        """(backend, destination port) of a new flow: the matching service's Maglev
        choice, else the 1:1 / default backend with the port unchanged."""
        service = eip.service(pkt.proto_number, pkt.dport) if pkt.proto in ("tcp", "udp") else None
        if service:
            b = service.backends[service.table[backend_slot(self.hash_of(pkt), len(service.table))]]
            return b.address, b.port
        assert eip.backend, "fixture sends unserved traffic to an EIP without default backend"
        return eip.backend, pkt.dport

    def backend_of(self, pkt: Pkt) -> tuple[str, int]:
        """(backend, port) a new flow to an EIP goes to."""
        return self.choose_backend(self.pop.eip(pkt.dst), pkt)

    def path_of(self, pkt: Pkt) -> str:
        """Name of the path a packet to an EIP takes."""
        return self.pop.path_to(self.pop.eip(pkt.dst).region, self.hash_of(pkt)).name

    def translate_ingress_error(self, eip: Eip, err: Pkt) -> tuple[str, Pkt, int]:
        """RFC 5508: an error about EIP -> client goes to the backend that sent the
        original, quoting it as the backend sent it. Returns (backend, translated
        error, hash of the quoted flow's forward direction)."""
        q = err.quote.pkt
        assert q.src == eip.address
        forward = replace(q, src=q.dst, dst=q.src, sport=q.dport, dport=q.sport)
        if q.kind == "echo-reply":
            forward = replace(forward, kind="echo-request")  # the client's echo flow
        h = self.hash_of(forward)
        backend, port = self.choose_backend(eip, forward)
        original = replace(q, src=backend, sport=port)
        return backend, replace(err, quote=replace(err.quote, pkt=original)), h

    def originate(self, pkt: Pkt, macs: tuple[str, str], kind: str, mtu: int,
                  drop: str, event: str) -> Outcome:
        """An ICMP error back to the sender, from the EIP, on the port the packet came
        in on, quoting the packet as received; never about an ICMP error or a later
        fragment (RFC 1122 3.2.2)."""
        if pkt.is_icmp_error or pkt.later_fragment:
            return Outcome(counts=[f"drops.{drop}"])
        quote = pkt.bytes()[: MAX_QUOTE_V6 if pkt.v6 else MAX_QUOTE_V4]
        error = Pkt(pkt.dst, pkt.src, "icmp", kind=kind, word=mtu, payload=quote, ttl=64, ident=0, df=False)
        frame = ether(dst=macs[1], src=macs[0], ip=error.ip())
        return Outcome([(self.pop.internet.name, frame)], [f"drops.{drop}", f"events.{event}"])

    def vxlan_frame(self, path: PathCfg, h: int, inner: Pkt) -> bytes:
        """The encapsulated frame on `path` for a flow with hash `h`."""
        pop, region = self.pop, self.pop.regions[path.region]
        return bytes(
            Ether(dst=path.next_hop_mac, src=pop.ports[path.port].mac, type=0x0800)
            / IP(ihl=5, tos=0, id=0, flags="DF", ttl=pop.outer_ttl, proto=PROTO_UDP,
                 src=path.source, dst=path.destination)
            / UDP(sport=vxlan_source_port(h), dport=pop.vxlan_port, chksum=0)
            / VXLAN(flags=0x08, vni=region.vni)
            / Ether(dst=region.inner_mac, src=pop.inner_mac, type=0x86DD if inner.v6 else 0x0800)
            / inner.ip()
        )

    # -- region -> client ---------------------------------------------------

    def from_tunnel(self, vtep: str, vni: int, pkt: Pkt, i_flag: bool = True) -> Outcome:
        """VXLAN from `vtep` to one of our VTEPs on the VXLAN port."""
        pop = self.pop
        if not i_flag:
            return Outcome(counts=["drops.bad_vxlan"])
        region = pop.tunnels.get((vtep, vni))
        if region is None:
            known = any(v == vtep for v, _ in pop.tunnels)
            return Outcome(counts=["drops.wrong_vni" if known else "drops.unknown_vtep"])
        if pkt.ttl <= 1:
            return Outcome(counts=["drops.ttl_expired"])
        counts = []
        if pkt.is_icmp_error:
            q = pkt.quote.pkt
            eip = pop.backend_owner.get((region, addr_key(q.dst)))
            if eip is None:
                return Outcome(counts=["drops.icmp_untranslatable"])
            port = self.service_port(region, eip, q.dst, q.proto_number, q.dport) or q.dport
            quote = replace(pkt.quote, pkt=replace(q, dst=eip, dport=port))
            out = replace(pkt, src=eip, quote=quote, ttl=pkt.ttl - 1)
            counts.append("events.icmp_error_translated")
        else:
            eip = pop.backend_owner.get((region, addr_key(pkt.src)))
            if eip is None:
                return Outcome(counts=["drops.unknown_backend"])
            port = pkt.sport
            if pkt.proto in ("tcp", "udp"):
                port = self.service_port(region, eip, pkt.src, pkt.proto_number, pkt.sport) or port
            out = replace(pkt, src=eip, sport=port, ttl=pkt.ttl - 1)
        counts.append("events.decapsulated")
        internet = pop.internet
        return Outcome([(internet.name, ether(internet.gateway_mac, internet.mac, out.ip()))], counts)

    def service_port(self, region: str, eip: str, backend: str, proto: int, port: int) -> int | None:
        """Service port to restore for traffic from a service backend's port."""
        if not self.pop.eips[eip].services:
            return None
        return self.pop.service_return.get((region, addr_key(backend), proto, port))

    def tunnel_frame(self, vtep: str, vni: int, pkt: Pkt, dst_vtep: str | None = None,
                     vxlan_flags: int = 0x08, dport: int | None = None,
                     vlans: Iterable[tuple[int, int]] = (), inner_padding: bool = False) -> bytes:
        """A frame arriving on the backbone: `pkt` in VXLAN from `vtep` (a region or
        path VTEP) to `dst_vtep` (default: the POP's), optionally VLAN-tagged, with the
        inner Ethernet frame optionally padded to 60 bytes."""
        pop = self.pop
        next_hop = next((p.next_hop_mac for p in pop.paths if p.destination == vtep), "02:00:00:00:02:fe")
        backbone = next(p for p in pop.ports.values() if p.role in ("backbone", "both"))
        region = next((r for r in pop.regions.values() if r.vni == vni), None)
        inner = ether(pop.inner_mac, region.inner_mac if region else "02:00:00:00:99:99", pkt.ip())
        h = flow_hash(pkt.src, pkt.dst, pkt.sport, pkt.dport, pkt.proto_number)
        outer = (
            IP(src=vtep, dst=dst_vtep or pop.vtep, ttl=64, id=0, flags="DF")
            / UDP(sport=vxlan_source_port(h), dport=dport or pop.vxlan_port, chksum=0)
            / VXLAN(flags=vxlan_flags, vni=vni)
            / Raw(padded(inner) if inner_padding else inner)
        )
        return ether(backbone.mac, next_hop, outer, vlans)


# ---------------------------------------------------------------------------
# Scenarios.
# ---------------------------------------------------------------------------

BASE_NS = 1_700_000_000_000_000_000
STEP_NS = 1_000_123  # sub-microsecond digits: nanosecond timestamps must survive


class Scenario:
    """One input capture and the expected outputs and counters."""

    def __init__(self, name: str, model: Model, input_port: str | None = None):
        self.name = name
        self.model = model
        self.pop = model.pop
        self.input_port = input_port or self.pop.internet.name
        self.inputs: list[tuple[int, bytes]] = []
        self.outputs: dict[str, list[tuple[int, bytes]]] = {p: [] for p in self.pop.ports}
        self.counts: Counter[str] = Counter()

    def add(self, frame: bytes, outcome: Outcome) -> Outcome:
        """Appends an input frame and what it must cause."""
        ts = BASE_NS + len(self.inputs) * STEP_NS
        self.inputs.append((ts, frame))
        for port, out in outcome.sent:
            self.outputs[port].append((ts, out))
        self.counts.update(["events.rx", *outcome.counts])
        return outcome

    # Frames by direction, each with its expected outcome from the model.

    def client(self, pkt: Pkt, vlans: Iterable[tuple[int, int]] = ()) -> Outcome:
        """`pkt` from the Internet to an EIP."""
        port = self.pop.internet
        frame = padded(ether(port.mac, port.gateway_mac, pkt.ip(), vlans))
        return self.add(frame, self.model.ingress(pkt, (port.mac, port.gateway_mac)))

    def tunnel(self, vtep: str, vni: int, pkt: Pkt, **kw) -> Outcome:
        """`pkt` from a region through the tunnel to our VTEP."""
        assert kw.get("dst_vtep", self.pop.vtep) in self.pop.local_vteps, "not ours: use kernel()"
        frame = self.model.tunnel_frame(vtep, vni, pkt, **kw)
        i_flag = (kw.get("vxlan_flags", 0x08) & 0x08) != 0
        return self.add(frame, self.model.from_tunnel(vtep, vni, pkt, i_flag))

    def kernel(self, frame: bytes) -> None:
        """A frame that is not for the data plane: handed to the kernel."""
        self.add(padded(frame), Outcome(counts=["events.to_kernel"]))

    def dropped(self, frame: bytes, reason: str) -> None:
        """A frame dropped for `reason`, written as is (not padded)."""
        self.add(frame, Outcome(counts=[f"drops.{reason}"]))

    # Output.

    def write(self, root: Path) -> None:
        out = root / self.name
        if out.exists():
            shutil.rmtree(out)
        (out / "expected").mkdir(parents=True)
        write_pcap(out / "input.pcap", self.inputs)
        if self.input_port != self.pop.internet.name:
            (out / "input-port").write_text(self.input_port + "\n")
        for port, frames in self.outputs.items():
            write_pcap(out / "expected" / f"{port}.pcap", frames)
        counters: dict[str, dict[str, int]] = {"drops": {}, "events": {}}
        for key, n in sorted(self.counts.items()):
            group, name = key.split(".")
            counters[group][name] = n
        (out / "expected-counters.json").write_text(json.dumps(counters, indent=2) + "\n")


def clients(n: int, base: int = 5) -> list[str]:
    return [f"203.0.113.{base + i}" for i in range(n)]


def used(outcomes: Iterable[Outcome], offset: int, length: int) -> set[bytes]:
    """Distinct values of bytes [offset, offset+length) in the frames sent."""
    return {frame[offset:offset + length] for o in outcomes for _, frame in o.sent}


def require(condition: bool, what: str) -> None:
    """A property a scenario exists to show; fails generation if an edit loses it."""
    if not condition:
        sys.exit(f"make_fixtures: scenario lost its point: {what}")


# Offsets in an encapsulated frame: outer IPv4 destination, inner destination port
# (IPv4 without options).
OUTER_DST, INNER_DPORT = 30, 64 + 20 + 2


def scenario_ingress_1to1(s: Scenario) -> None:
    """TCP and UDP flows to a 1:1 EIP; the flows must spread over both paths."""
    eip = "192.0.2.10"
    out = []
    for i, c in enumerate(clients(6)):
        out.append(s.client(syn(c, eip, 40000 + i, 443)))
        out.append(s.client(tcp(c, eip, 40000 + i, 443, payload=filler(200, i))))
    out.append(s.client(udp("203.0.113.20", eip, 33000, 53, payload=dns_query(1))))
    out.append(s.client(udp("203.0.113.21", eip, 33001, 123, payload=filler(48, 2), udp_zero_checksum=True)))
    out.append(s.client(udp("203.0.113.22", eip, 5000, 5000, payload=b"hi")))  # padded frame
    out.append(s.client(tcp("203.0.113.23", eip, 40100, 22, payload=filler(64, 3), router_alert=True)))
    out.append(s.client(Pkt("203.0.113.24", eip, 253, payload=filler(60, 4))))  # no ports
    require(len(used(out, OUTER_DST, 4)) == 2, "flows to 192.0.2.10 use both beijing paths")


def scenario_ingress_service(s: Scenario) -> None:
    """Maglev over service pools with port rewrites; other ports to the default backend."""
    eip = "192.0.2.20"
    web = [s.client(syn(c, eip, 41000 + i, 80)) for i, c in enumerate(clients(8))]
    dns = [s.client(udp(c, eip, 53000 + i, 53, payload=dns_query(i))) for i, c in enumerate(clients(6, 40))]
    s.client(tcp("203.0.113.60", eip, 42000, 443, payload=filler(100)))  # no service: default
    s.client(udp("203.0.113.61", eip, 42001, 80, payload=filler(20)))  # tcp/80 only: default
    # Checksum 0 (none) stays 0 through the address and port rewrite.
    sport = port_reaching(s.model, ("10.1.0.22", 5353), 42002, lambda p: udp("203.0.113.62", eip, p, 53))
    s.client(udp("203.0.113.62", eip, sport, 53, payload=dns_query(12), udp_zero_checksum=True))
    require(used(web, INNER_DPORT, 2) == {b"\x00\x50", b"\x1f\x90"}, "tcp/80 reaches :80 and :8080")
    require(used(dns, INNER_DPORT, 2) == {b"\x00\x35", b"\x14\xe9"}, "udp/53 reaches :53 and :5353")


def scenario_icmp_echo(s: Scenario) -> None:
    """Echo requests: hashed on (identifier, 0), to the 1:1 and the default backend."""
    for seq in (1, 2):
        s.client(echo("203.0.113.5", "192.0.2.10", 0x1234, seq))
        s.client(echo("203.0.113.6", "192.0.2.20", 0x0777, seq))
        s.client(echo("2001:db8:c::5", "2001:db8:e1::10", 0x4321, seq))


def scenario_return(s: Scenario) -> None:
    """Backends answering through the tunnel: SNAT to the EIP (and service port)."""
    bj, gz = s.pop.regions["beijing"], s.pop.regions["guangzhou"]
    client = "203.0.113.5"
    s.tunnel(bj.vtep, bj.vni, tcp("10.1.0.10", client, 443, 40000, payload=filler(300), ttl=63))
    s.tunnel(bj.vtep, bj.vni, udp("10.1.0.10", client, 53, 33000, payload=dns_answer(1, "192.0.2.80")))
    s.tunnel(bj.vtep, bj.vni, udp("10.1.0.10", client, 123, 33001, payload=filler(48),
                                  udp_zero_checksum=True))
    s.tunnel(bj.vtep, bj.vni, echo("10.1.0.10", client, 0x1234, 1, reply=True))
    s.tunnel(bj.vtep, bj.vni, tcp("10.1.0.21", client, 8080, 41000, payload=filler(120)))  # -> :80
    s.tunnel(bj.vtep, bj.vni, tcp("10.1.0.20", client, 80, 41001, payload=filler(120)))
    s.tunnel(bj.vtep, bj.vni, tcp("10.1.0.20", client, 443, 42000, payload=filler(50)))  # default backend
    s.tunnel(bj.vtep, bj.vni, udp("10.1.0.22", client, 5353, 53001,  # -> :53
                                  payload=dns_answer(2, "192.0.2.81")))
    s.tunnel(bj.vtep, bj.vni, udp("10.1.0.21", client, 53, 53002, payload=dns_answer(3, "192.0.2.82")))
    s.tunnel(bj.vtep, bj.vni, echo("10.1.0.20", client, 0x0777, 1, reply=True))
    s.tunnel(bj.vtep, bj.vni, tcp("fd00:1::10", "2001:db8:c::5", 443, 40000, payload=filler(80)))
    # Over the second path: its own VTEP pair.
    unicom = next(p for p in s.pop.paths if p.name == "bj-unicom")
    s.tunnel(unicom.destination, bj.vni, tcp("10.1.0.10", client, 443, 40001, payload=filler(30)),
             dst_vtep=unicom.source)
    s.tunnel(gz.vtep, gz.vni, tcp("10.2.0.30", client, 80, 40002, payload=filler(30)))
    # 802.1Q on the backbone; an inner frame padded to 60 bytes (padding not sent on).
    s.tunnel(bj.vtep, bj.vni, tcp("10.1.0.10", client, 443, 40003, payload=filler(10)), vlans=[(0x8100, 30)])
    s.tunnel(bj.vtep, bj.vni, tcp("10.1.0.10", client, 443, 40004, tcp_flags="A"), inner_padding=True)
    # To an extra local VTEP; UDP checksum 0 through the port restore.
    s.tunnel(bj.vtep, bj.vni, udp("10.1.0.22", client, 5353, 53003, payload=dns_answer(13, "192.0.2.84"),
                                  udp_zero_checksum=True), dst_vtep="198.51.100.9")


def scenario_tunnel_reject(s: Scenario) -> None:
    """VXLAN to our VTEP that must not be decapsulated."""
    bj, gz = s.pop.regions["beijing"], s.pop.regions["guangzhou"]
    pkt = tcp("10.1.0.10", "203.0.113.5", 443, 40000, payload=filler(20))
    s.tunnel("198.51.100.99", bj.vni, pkt)  # unknown VTEP
    s.tunnel(bj.vtep, 999, pkt)  # wrong VNI
    s.tunnel(bj.vtep, gz.vni, pkt)  # another region's VNI
    s.tunnel(bj.vtep, bj.vni, replace(pkt, src="10.1.0.99"))  # unknown backend
    s.tunnel(gz.vtep, gz.vni, pkt)  # a beijing backend, from guangzhou
    s.tunnel(bj.vtep, bj.vni, pkt, vxlan_flags=0x00)  # I flag clear
    frame = s.model.tunnel_frame(bj.vtep, bj.vni, pkt)
    s.dropped(frame[:14] + cut_ipv4(frame[14:], 20 + 8 + 8 + 10), "truncated")  # inner Ethernet cut


def scenario_icmp_error_ingress(s: Scenario) -> None:
    """RFC 5508: errors from the Internet about EIP -> client packets, to the backend."""
    router = "203.0.113.254"
    # 1:1, RFC 792 quote (IP header + 8 bytes: the TCP checksum is not quoted).
    reply = tcp("192.0.2.10", "203.0.113.5", 443, 40000, payload=filler(1400), ttl=60)
    s.client(icmp_error(router, "192.0.2.10", "frag-needed", reply, 28, word=1400))
    # Service with a port rewrite, RFC 1812 quote (as much as fits in 576 bytes).
    sport = port_reaching(s.model, ("10.1.0.21", 8080), 45000,
                          lambda p: tcp("203.0.113.7", "192.0.2.20", p, 80))
    reply = tcp("192.0.2.20", "203.0.113.7", 80, sport, payload=filler(1400), ttl=60)
    s.client(icmp_error(router, "192.0.2.20", "frag-needed", reply, 548, word=1400))
    # UDP service backend on :5353: the client's port unreachable about its answer.
    sport = port_reaching(s.model, ("10.1.0.22", 5353), 33000,
                          lambda p: udp("203.0.113.8", "192.0.2.20", p, 53))
    reply = udp("192.0.2.20", "203.0.113.8", 53, sport, payload=dns_answer(4, "192.0.2.83"), ttl=60)
    s.client(icmp_error("203.0.113.8", "192.0.2.20", "port-unreachable", reply, 128))
    # About an echo reply: follows the client's echo flow, hashed on (identifier, 0).
    reply = echo("192.0.2.10", "203.0.113.9", 0x2222, 7, reply=True, ttl=60)
    s.client(icmp_error("203.0.113.254", "192.0.2.10", "host-unreachable", reply, 28 + 32))
    # IPv6 packet too big: the ICMPv6 checksum covers the translated addresses too.
    reply = tcp("2001:db8:e1::10", "2001:db8:c::5", 443, 40000, payload=filler(1400))
    s.client(icmp_error("2001:db8:c::fe", "2001:db8:e1::10", "too-big", reply, 1232, word=1280))


def scenario_icmp_error_return(s: Scenario) -> None:
    """RFC 5508: errors from the region about client -> backend packets, to the client."""
    bj = s.pop.regions["beijing"]
    query = udp("203.0.113.8", "10.1.0.22", 33000, 5353, payload=dns_query(5), ttl=63)
    s.tunnel(bj.vtep, bj.vni, icmp_error("10.1.0.22", "203.0.113.8", "port-unreachable", query, 68))
    # From a router inside the region, not a backend; quotes IP + 8 bytes.
    data = tcp("203.0.113.5", "10.1.0.10", 40000, 443, payload=filler(100), ttl=1)
    s.tunnel(bj.vtep, bj.vni, icmp_error("10.1.255.1", "203.0.113.5", "time-exceeded", data, 28))
    # Service TCP backend on :8080, whole segment quoted.
    data = tcp("203.0.113.7", "10.1.0.21", 45000, 8080, payload=filler(60), ttl=62)
    s.tunnel(bj.vtep, bj.vni, icmp_error("10.1.0.21", "203.0.113.7", "frag-needed", data, 120, word=1300))
    query = udp("2001:db8:c::5", "fd00:1::10", 33000, 9, payload=filler(24))
    s.tunnel(bj.vtep, bj.vni, icmp_error("fd00:1::10", "2001:db8:c::5", "port-unreachable", query, 72))
    # Quoting a packet to an address that is no backend: nothing to translate.
    stray = udp("203.0.113.8", "10.1.0.99", 33000, 53, payload=dns_query(6))
    s.tunnel(bj.vtep, bj.vni, icmp_error("10.1.0.99", "203.0.113.8", "port-unreachable", stray, 36))


def scenario_mtu(s: Scenario) -> None:
    """A region behind a 1400-byte backbone MTU (inner MTU 1350)."""
    eip, c = "192.0.2.30", "203.0.113.5"
    s.client(syn(c, eip, 40000, 443, mss=1460))  # clamped to 1310
    s.client(syn(c, eip, 40001, 443, mss=1460, odd_mss=True))  # MSS value at an odd offset
    s.client(syn(c, eip, 40002, 443, mss=1200))  # already small enough
    s.client(syn(c, eip, 40003, 443, mss=1310))  # exactly the limit
    s.client(tcp(c, eip, 40004, 443, payload=filler(1350 - 40)))  # exactly the inner MTU
    s.client(tcp(c, eip, 40005, 443, payload=filler(1351 - 40)))  # one byte over, DF: ICMP
    s.client(tcp(c, eip, 40006, 443, payload=filler(1400 - 40)))  # DF: ICMP, 548-byte quote
    s.client(udp(c, eip, 40007, 443, payload=filler(1400 - 28), df=False))  # no DF: dropped


def scenario_fragments(s: Scenario) -> None:
    """Fragments: the first picks backend and path, later ones follow it."""
    m = s.model

    def remembered(first: Pkt) -> bool:
        """Does following the first fragment differ from hashing a portless packet?"""
        return m.path_of(first) != m.path_of(Pkt(first.src, first.dst, PROTO_UDP))

    eip, c = "192.0.2.20", "203.0.113.9"
    sport = first_port(34000, lambda p: m.backend_of(udp(c, eip, p, 53)) == ("10.1.0.22", 5353)
                       and remembered(udp(c, eip, p, 53)))
    query = udp(c, eip, sport, 53, payload=dns_query(7, pad=1852), ident=0x4242, df=False)
    for piece in ((0, 800), (800, 1600), (1600, 1908)):
        s.client(replace(query, fragment=piece))
    # A later fragment whose first fragment never came: no port, no backend choice.
    s.client(replace(query, ident=0x5151, fragment=(800, 1600)))
    # ... unless the EIP has no services: then it goes to the 1:1 backend.
    whole = udp(c, "192.0.2.10", 34001, 9000, payload=filler(1500), ident=0x6161, df=False)
    s.client(replace(whole, fragment=(1200, 1508)))
    # IPv6 (fragment header, 32-bit identification).
    eip6, c6 = "2001:db8:e1::10", "2001:db8:c::9"
    sport = first_port(35000, lambda p: remembered(udp(c6, eip6, p, 9000)))
    whole = udp(c6, eip6, sport, 9000, payload=filler(1800), ident=0x01020304)
    for piece in ((0, 1400), (1400, 1808)):
        s.client(replace(whole, fragment=piece))


def scenario_ttl_ingress(s: Scenario) -> None:
    """TTL expiring here: ICMP time exceeded from the EIP, never about an ICMP error."""
    c = "203.0.113.5"
    s.client(tcp(c, "192.0.2.10", 40000, 443, payload=filler(64), ttl=1))
    s.client(udp(c, "192.0.2.10", 40001, 53, payload=dns_query(8), ttl=0))
    s.client(tcp(c, "192.0.2.20", 40002, 80, payload=filler(700), ttl=1))  # quote cut to 548
    s.client(tcp(c, "192.0.2.10", 40003, 443, payload=filler(64), ttl=2))  # leaves with TTL 1
    reply = tcp("192.0.2.10", c, 443, 40000, payload=filler(40))
    s.client(icmp_error("203.0.113.254", "192.0.2.10", "frag-needed", reply, 28, word=1400, ttl=1))


def scenario_ttl_return(s: Scenario) -> None:
    """Inner TTL expiring on the way back: dropped (the backend's stack sees no error)."""
    bj = s.pop.regions["beijing"]
    s.tunnel(bj.vtep, bj.vni, tcp("10.1.0.10", "203.0.113.5", 443, 40000, payload=filler(20), ttl=1))
    s.tunnel(bj.vtep, bj.vni, tcp("fd00:1::10", "2001:db8:c::5", 443, 40000, payload=filler(20), ttl=1))
    s.tunnel(bj.vtep, bj.vni, tcp("10.1.0.10", "203.0.113.5", 443, 40001, payload=filler(20), ttl=2))


def scenario_ipv6(s: Scenario) -> None:
    """IPv6 EIPs: NAT66 ingress, hop limit expiry, packet too big, MSS clamp."""
    eip = "2001:db8:e1::10"
    out = []
    for i in range(4):
        c = f"2001:db8:c::{5 + i:x}"
        out.append(s.client(syn(c, eip, 40000 + i, 443)))
        out.append(s.client(tcp(c, eip, 40000 + i, 443, payload=filler(300, i))))
    out.append(s.client(udp("2001:db8:c::20", eip, 33000, 53, payload=dns_query(9))))
    out.append(s.client(tcp("2001:db8:c::21", eip, 33001, 443, payload=filler(40), dest_opts=True)))
    require(len(used(out, OUTER_DST, 4)) == 2, "IPv6 flows use both beijing paths")
    s.client(tcp("2001:db8:c::5", eip, 40000, 443, payload=filler(100), ttl=1))
    small = "2001:db8:e2::30"
    s.client(syn("2001:db8:c::5", small, 40010, 443, mss=1440))  # clamped to 1290
    s.client(tcp("2001:db8:c::5", small, 40011, 443, payload=filler(1350 - 60)))  # fits exactly
    s.client(tcp("2001:db8:c::5", small, 40012, 443, payload=filler(1400 - 60)))  # too big, quote 1232


def scenario_vlan(s: Scenario) -> None:
    """802.1Q and 802.1ad tags on the Internet port: parsed past, not sent on."""
    s.client(tcp("203.0.113.5", "192.0.2.10", 40000, 443, payload=filler(80)), vlans=[(0x8100, 100)])
    s.client(udp("203.0.113.6", "192.0.2.20", 53000, 53, payload=dns_query(10)),
             vlans=[(0x88A8, 200), (0x8100, 100)])
    s.client(tcp("2001:db8:c::5", "2001:db8:e1::10", 40000, 443, payload=filler(40)), vlans=[(0x8100, 100)])


def scenario_not_ours(s: Scenario) -> None:
    """Traffic for the host's own stack: handed to the kernel, nothing transmitted."""
    port = s.pop.internet
    mac, gw = port.mac, port.gateway_mac
    arp = ARP(op=1, hwsrc=gw, psrc="192.0.2.1", pdst="192.0.2.10")
    s.kernel(bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=gw) / arp))
    s.kernel(ether(mac, gw, tcp("203.0.113.5", "192.0.2.99", 40000, 443, payload=filler(20)).ip()))
    s.kernel(ether(mac, gw, tcp("2001:db8:c::5", "2001:db8:e1::99", 40000, 443).ip()))
    ns = IPv6(src="fe80::1", dst="ff02::1:ff00:10", hlim=255) / ICMPv6ND_NS(tgt="2001:db8:e1::10")
    s.kernel(ether("33:33:ff:00:00:10", gw, ns))
    s.kernel(ether(mac, gw, udp("203.0.113.5", s.pop.vtep, 40000, 53, payload=dns_query(11)).ip()))
    s.kernel(ether(mac, gw, echo("203.0.113.5", s.pop.vtep, 1, 1).ip()))  # ping the POP
    bj = s.pop.regions["beijing"]
    inner = tcp("10.1.0.10", "203.0.113.5", 443, 40000)
    s.kernel(s.model.tunnel_frame(bj.vtep, bj.vni, inner, dst_vtep="198.51.100.77"))  # not our VTEP
    s.kernel(s.model.tunnel_frame(bj.vtep, bj.vni, inner, dport=4790))  # our VTEP, not VXLAN's port
    s.kernel(bytes(Ether(dst="01:80:c2:00:00:0e", src=gw, type=0x88CC) / Raw(filler(40))))  # LLDP


def scenario_malformed(s: Scenario) -> None:
    """Frames that are cut short or whose headers lie: dropped, with the reason."""
    port = s.pop.internet
    to_eip = tcp("203.0.113.5", "192.0.2.10", 40000, 443, payload=filler(40))

    def frame_with(ip_bytes: bytes, vlan: bool = False) -> bytes:
        tag = bytes.fromhex("81000064") if vlan else b""
        return mac_bytes(port.mac) + mac_bytes(port.gateway_mac) + tag + b"\x08\x00" + ip_bytes

    good = to_eip.bytes()
    s.dropped(frame_with(good)[:10], "truncated")  # not even an Ethernet header
    s.dropped(frame_with(good, vlan=True)[:16], "truncated")  # VLAN tag cut
    s.dropped(frame_with(good[:12]), "truncated")  # IPv4 header cut
    s.dropped(padded(frame_with(good[:50])), "bad_ip_header")  # total length beyond the frame
    s.dropped(padded(frame_with(bytes([0x44]) + good[1:])), "bad_ip_header")  # IHL 4
    s.dropped(padded(frame_with(bytes([0x4F]) + good[1:40])), "bad_ip_header")  # IHL 15 > packet
    s.dropped(padded(frame_with(bytes([0x55]) + good[1:])), "bad_ip_header")  # version 5
    s.dropped(padded(frame_with(cut_ipv4(good, 20 + 10))), "bad_l4_header")  # 10 bytes of TCP
    for pkt in (udp("203.0.113.5", "192.0.2.10", 1, 2), echo("203.0.113.5", "192.0.2.10", 1, 1)):
        s.dropped(padded(frame_with(cut_ipv4(pkt.bytes(), 24))), "bad_l4_header")  # 4 bytes of UDP/ICMP
    v6 = tcp("2001:db8:c::5", "2001:db8:e1::10", 40000, 443, payload=filler(40)).bytes()
    v6_frame = mac_bytes(port.mac) + mac_bytes(port.gateway_mac) + b"\x86\xdd"
    s.dropped(v6_frame + v6[:30], "truncated")  # IPv6 header cut
    s.dropped(v6_frame + v6[:60], "bad_ip_header")  # payload length beyond the frame


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def cut_ipv4(ip_bytes: bytes, length: int) -> bytes:
    """The first `length` bytes of an IPv4 packet, its total length (and header
    checksum) saying so: a consistent header over a transport header cut short."""
    ip = IP(ip_bytes)
    ip.len, ip.chksum = length, None
    return bytes(ip)[:length]


def port_reaching(model: Model, want: tuple[str, int], start: int, make: Callable[[int], Pkt]) -> int:
    """First client port from `start` whose flow `make(port)` goes to `want` (backend, port)."""
    return first_port(start, lambda p: model.backend_of(make(p)) == want)


def first_port(start: int, ok: Callable[[int], bool]) -> int:
    """First port from `start` for which `ok` holds: lets a scenario show a given
    outcome (a backend, a path) without hard-coding hash results."""
    port = next((p for p in range(start, start + 1000) if ok(p)), None)
    require(port is not None, f"no port from {start} on gives the outcome the scenario needs")
    return port


SCENARIOS: dict[str, tuple[Callable[[Scenario], None], str | None]] = {
    "ingress-1to1": (scenario_ingress_1to1, None),
    "ingress-service": (scenario_ingress_service, None),
    "icmp-echo": (scenario_icmp_echo, None),
    "return": (scenario_return, "backbone"),
    "tunnel-reject": (scenario_tunnel_reject, "backbone"),
    "icmp-error-ingress": (scenario_icmp_error_ingress, None),
    "icmp-error-return": (scenario_icmp_error_return, "backbone"),
    "mtu": (scenario_mtu, None),
    "fragments": (scenario_fragments, None),
    "ttl-ingress": (scenario_ttl_ingress, None),
    "ttl-return": (scenario_ttl_return, "backbone"),
    "ipv6": (scenario_ipv6, None),
    "vlan": (scenario_vlan, None),
    "not-ours": (scenario_not_ours, None),
    "malformed": (scenario_malformed, None),
}


# ---------------------------------------------------------------------------
# pcap files.
# ---------------------------------------------------------------------------

PCAP_MAGIC_NANOS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1


def pcap_header() -> bytes:
    """Classic pcap global header exactly as eipd writes it: little-endian,
    nanosecond timestamps, version 2.4, snaplen 65535, Ethernet."""
    return struct.pack("<IHHiIII", PCAP_MAGIC_NANOS, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)


def pcap_record(ts_ns: int, frame: bytes) -> bytes:
    secs, nanos = divmod(ts_ns, 1_000_000_000)
    return struct.pack("<IIII", secs, nanos, len(frame), len(frame)) + frame


def write_pcap(path: Path, frames: Iterable[tuple[int, bytes]]) -> None:
    with path.open("wb") as f:
        f.write(pcap_header())
        for ts, frame in frames:
            f.write(pcap_record(ts, frame))


# ---------------------------------------------------------------------------
# Benchmark inputs: written with struct, scapy would take minutes.
# ---------------------------------------------------------------------------

BENCH_EIPS = 1000
BENCH_64B_FRAMES = 16_384
BENCH_IMIX_ROUNDS = 200  # of 12 frames: 7 x 64, 4 x 570, 1 x 1518 bytes
# Wire sizes include the 4-byte FCS, which a capture does not hold.
FCS = 4
# Client source ports: Linux's default ephemeral range (net.ipv4.ip_local_port_range).
EPHEMERAL_PORTS = range(32768, 61000)


def bench_eip(i: int) -> str:
    """EIP number i. The documentation ranges hold only 768 IPv4 addresses, so the
    benchmark's 1,000 EIPs come from the private 172.16.0.0/22."""
    return str(ipaddress.IPv4Address("172.16.0.0") + i)


def bench_config() -> str:
    """pop.toml's POP, ports, regions and paths with 1,000 1:1 IPv4 EIPs in beijing."""
    cfg = tomllib.loads(POP_TOML.read_text())
    lines = ["# Benchmark POP, generated by make_fixtures.py from pop.toml: 1,000 1:1 EIPs.", ""]
    lines += toml_table("[pop]", cfg["pop"])
    for section in ("ports", "regions", "paths"):
        for entry in cfg[section]:
            lines += toml_table(f"[[{section}]]", entry)
    for i in range(BENCH_EIPS):
        eip = {"address": bench_eip(i), "region": "beijing", "backend": f"10.100.{i // 256}.{i % 256}"}
        lines += toml_table("[[eips]]", eip)
    return "\n".join(lines)


def toml_table(header: str, entries: dict) -> list[str]:
    """A TOML table of strings and integers."""
    return [header, *(f"{k} = {json.dumps(v)}" for k, v in entries.items()), ""]


def inet_checksum(data: bytes) -> int:
    """RFC 1071 checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def fast_udp_frame(pop: Pop, src: str, dst: str, sport: int, dport: int, ident: int, wire_len: int) -> bytes:
    """An Ethernet/IPv4/UDP frame of `wire_len` bytes on the wire (FCS included)."""
    payload = filler(wire_len - FCS - 14 - 20 - 8, ident)
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    ulen = 8 + len(payload)
    pseudo = s + d + struct.pack("!BBH", 0, PROTO_UDP, ulen)
    udp_hdr = struct.pack("!HHHH", sport, dport, ulen, 0)
    csum = inet_checksum(pseudo + udp_hdr + payload) or 0xFFFF
    udp_hdr = struct.pack("!HHHH", sport, dport, ulen, csum)
    ip_hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, ident, 0x4000, 64, PROTO_UDP, 0, s, d)
    ip_hdr = ip_hdr[:10] + struct.pack("!H", inet_checksum(ip_hdr)) + ip_hdr[12:]
    eth = mac_bytes(pop.internet.mac) + mac_bytes(pop.internet.gateway_mac) + b"\x08\x00"
    return eth + ip_hdr + udp_hdr + payload


def write_bench(pop: Pop, root: Path) -> None:
    """bench/pop-1k.toml, bench/eip-1k-64b.pcap, bench/imix.pcap."""
    root.mkdir(exist_ok=True)
    (root / "pop-1k.toml").write_text(bench_config())
    rng = random.Random(20240501)

    def frame(n: int, wire_len: int) -> tuple[int, bytes]:
        client = f"203.0.113.{1 + rng.randrange(250)}"
        return BASE_NS + n * 100, fast_udp_frame(
            pop, client, bench_eip(n % BENCH_EIPS), rng.choice(EPHEMERAL_PORTS), 443, n & 0xFFFF, wire_len
        )

    write_pcap(root / "eip-1k-64b.pcap", (frame(n, 64) for n in range(BENCH_64B_FRAMES)))
    pattern = [64] * 7 + [570] * 4 + [1518]
    sizes = []
    for _ in range(BENCH_IMIX_ROUNDS):
        rng.shuffle(pattern)
        sizes.extend(pattern)
    write_pcap(root / "imix.pcap", (frame(n, size) for n, size in enumerate(sizes)))


# ---------------------------------------------------------------------------


# Scenarios whose input is also written as pcapng, by editcap (an independent writer).
PCAPNG_TWINS = ["return"]


def write_pcapng_twins() -> None:
    editcap = shutil.which("editcap")
    if editcap is None:
        sys.exit("make_fixtures: editcap not found (Debian: apt-get install -y wireshark-common)")
    for name in PCAPNG_TWINS:
        subprocess.run(
            [editcap, "-F", "pcapng", str(HERE / name / "input.pcap"), str(HERE / name / "input.pcapng")],
            check=True,
        )


def main() -> None:
    started = time.monotonic()
    self_check()
    pop = Pop(POP_TOML)
    for name, (build, input_port) in SCENARIOS.items():
        scenario = Scenario(name, Model(pop), input_port)
        build(scenario)
        scenario.write(HERE)
    write_pcapng_twins()
    stale = [d.name for d in HERE.iterdir() if (d / "input.pcap").exists() and d.name not in SCENARIOS]
    if stale:
        print(f"warning: directories no scenario writes any more: {', '.join(stale)}", file=sys.stderr)
    write_bench(pop, HERE / "bench")
    print(f"wrote {len(SCENARIOS)} scenarios and bench/ in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()

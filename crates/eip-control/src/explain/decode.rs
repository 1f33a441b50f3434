//! Reading a frame the pipeline transmitted with the data plane's wire views:
//! either a VXLAN packet (outer Ethernet, IPv4, UDP, VXLAN, inner Ethernet, the
//! NATed inner packet) or an ICMP error sent back to the client.

use eip_dataplane::wire::ethernet::EthernetFrame;
use eip_dataplane::wire::icmpv4::Icmpv4Packet;
use eip_dataplane::wire::icmpv6::Icmpv6Packet;
use eip_dataplane::wire::ipv4::Ipv4Packet;
use eip_dataplane::wire::ipv6::Ipv6Packet;
use eip_dataplane::wire::tcp::TcpPacket;
use eip_dataplane::wire::udp::UdpPacket;
use eip_dataplane::wire::vxlan::VxlanHeader;
use eip_dataplane::wire::{ethertype, ip_proto};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A transmitted frame, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Output {
    Encapsulated(Encapsulated),
    IcmpError(IcmpError),
    /// Neither (or malformed): `explain` reports it as a bug.
    Unknown,
}

/// The headers of a VXLAN packet and the packet inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Encapsulated {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub outer_src: Ipv4Addr,
    pub outer_dst: Ipv4Addr,
    pub udp_src: u16,
    pub udp_dst: u16,
    pub vni: u32,
    pub inner: Inner,
}

/// The inner IP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Inner {
    pub dst: IpAddr,
    /// TCP/UDP destination port.
    pub dst_port: Option<u16>,
    /// The MSS option of a TCP segment that has one.
    pub mss: Option<u16>,
}

/// An ICMP error to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IcmpError {
    /// Fragmentation needed (IPv4) / packet too big (IPv6), with the MTU told.
    TooBig {
        mtu: u32,
    },
    TimeExceeded,
    Other {
        kind: u8,
        code: u8,
    },
}

/// Reads `frame`.
pub(super) fn decode(frame: &[u8]) -> Output {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Output::Unknown;
    };
    let (dst_mac, src_mac) = (eth.dst_addr(), eth.src_addr());
    match eth.ethertype() {
        ethertype::IPV4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                return Output::Unknown;
            };
            match ip.protocol() {
                ip_proto::ICMP => icmpv4_error(ip.payload()),
                ip_proto::UDP => {
                    vxlan(dst_mac, src_mac, &ip).map_or(Output::Unknown, Output::Encapsulated)
                }
                _ => Output::Unknown,
            }
        }
        ethertype::IPV6 => {
            let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else {
                return Output::Unknown;
            };
            if ip.next_header() != ip_proto::ICMPV6 {
                return Output::Unknown;
            }
            match Icmpv6Packet::new_checked(ip.payload()) {
                Ok(icmp) => Output::IcmpError(match icmp.msg_type() {
                    2 => IcmpError::TooBig { mtu: icmp.mtu() },
                    3 => IcmpError::TimeExceeded,
                    kind => IcmpError::Other {
                        kind,
                        code: icmp.code(),
                    },
                }),
                Err(_) => Output::Unknown,
            }
        }
        _ => Output::Unknown,
    }
}

fn icmpv4_error(payload: &[u8]) -> Output {
    match Icmpv4Packet::new_checked(payload) {
        Ok(icmp) => Output::IcmpError(match (icmp.msg_type(), icmp.code()) {
            (3, 4) => IcmpError::TooBig {
                mtu: u32::from(icmp.next_hop_mtu()),
            },
            (11, _) => IcmpError::TimeExceeded,
            (kind, code) => IcmpError::Other { kind, code },
        }),
        Err(_) => Output::Unknown,
    }
}

fn vxlan(dst_mac: [u8; 6], src_mac: [u8; 6], ip: &Ipv4Packet<&[u8]>) -> Option<Encapsulated> {
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    let vx = VxlanHeader::new_checked(udp.payload()).ok()?;
    let inner_eth = EthernetFrame::new_checked(vx.payload()).ok()?;
    let inner = match inner_eth.ethertype() {
        ethertype::IPV4 => {
            let p = Ipv4Packet::new_checked(inner_eth.payload()).ok()?;
            let dst = IpAddr::V4(Ipv4Addr::from(p.dst_addr()));
            transport(dst, p.protocol(), p.payload())
        }
        ethertype::IPV6 => {
            let p = Ipv6Packet::new_checked(inner_eth.payload()).ok()?;
            let dst = IpAddr::V6(Ipv6Addr::from(p.dst_addr()));
            transport(dst, p.next_header(), p.payload())
        }
        _ => return None,
    };
    Some(Encapsulated {
        dst_mac,
        src_mac,
        outer_src: Ipv4Addr::from(ip.src_addr()),
        outer_dst: Ipv4Addr::from(ip.dst_addr()),
        udp_src: udp.src_port(),
        udp_dst: udp.dst_port(),
        vni: vx.vni(),
        inner,
    })
}

fn transport(dst: IpAddr, protocol: u8, payload: &[u8]) -> Inner {
    let (dst_port, mss) = match protocol {
        ip_proto::TCP => match TcpPacket::new_checked(payload) {
            Ok(t) => (Some(t.dst_port()), t.mss_option().map(|(_, mss)| mss)),
            Err(_) => (None, None),
        },
        ip_proto::UDP => match UdpPacket::new_checked(payload) {
            Ok(u) => (Some(u.dst_port()), None),
            Err(_) => (None, None),
        },
        _ => (None, None),
    };
    Inner { dst, dst_port, mss }
}

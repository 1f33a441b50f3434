//! VXLAN encapsulation (RFC 7348) into frame headroom, and TCP MSS clamping.
//!
//! A path's encapsulation is [`ENCAP_LEN`] bytes: outer Ethernet, IPv4 (no options),
//! UDP, VXLAN and inner Ethernet. [`EncapRepr::emit`] writes it once per path, when
//! the tables are built, with the wire `Repr`s; per packet, [`write_header`] copies
//! it and patches the few fields that depend on the packet through the wire views.

use super::parse::IpInfo;
use crate::counters::DropReason;
use crate::flow;
use crate::frame::Frame;
use crate::tables::{Path, ENCAP_IP_OVERHEAD, ENCAP_LEN};
use crate::wire::ethernet::{EthernetFrame, EthernetRepr};
use crate::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use crate::wire::udp::{UdpPacket, UdpRepr};
use crate::wire::vxlan::VxlanRepr;
use crate::wire::{checksum, ethernet, ethertype, ip_proto, ipv4, tcp::TcpPacket, udp, vxlan};
use core::ops::Range;

/// Where each header of the encapsulation lies.
mod layout {
    use super::*;

    pub const OUTER_ETHERNET: Range<usize> = 0..ethernet::HEADER_LEN;
    pub const OUTER_IPV4: Range<usize> = after(OUTER_ETHERNET, ipv4::MIN_HEADER_LEN);
    pub const UDP: Range<usize> = after(OUTER_IPV4, udp::HEADER_LEN);
    pub const VXLAN: Range<usize> = after(UDP, vxlan::HEADER_LEN);
    pub const INNER_ETHERNET: Range<usize> = after(VXLAN, ethernet::HEADER_LEN);

    const fn after(previous: Range<usize>, len: usize) -> Range<usize> {
        previous.end..previous.end + len
    }
}

const _: () = assert!(layout::INNER_ETHERNET.end == ENCAP_LEN);
const _: () = assert!(ENCAP_LEN - layout::OUTER_IPV4.start == ENCAP_IP_OVERHEAD as usize);

/// The per-path part of a VXLAN encapsulation, from which the path's template is
/// built on the control side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncapRepr {
    /// MAC of the next hop on the path's port.
    pub next_hop_mac: [u8; 6],
    /// Our MAC on that port.
    pub port_mac: [u8; 6],
    /// Outer source and destination (our VTEP, the region's).
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub ttl: u8,
    /// UDP destination port of VXLAN.
    pub vxlan_port: u16,
    pub vni: u32,
    /// Inner destination MAC (the region's VXLAN device) and source MAC (the POP's).
    pub inner_dst_mac: [u8; 6],
    pub inner_src_mac: [u8; 6],
}

impl EncapRepr {
    /// The path's template: the encapsulation of an empty inner packet (outer total
    /// length [`ENCAP_IP_OVERHEAD`] with its checksum, UDP source port 0, inner
    /// ethertype 0), which [`write_header`] completes per packet.
    pub fn emit(&self) -> [u8; ENCAP_LEN] {
        let mut t = [0u8; ENCAP_LEN];
        EthernetRepr {
            dst_addr: self.next_hop_mac,
            src_addr: self.port_mac,
            ethertype: ethertype::IPV4,
        }
        .emit(&mut t[layout::OUTER_ETHERNET]);
        Ipv4Repr {
            src: self.src,
            dst: self.dst,
            protocol: ip_proto::UDP,
            ttl: self.ttl,
            payload_len: (layout::INNER_ETHERNET.end - layout::UDP.start) as u16,
            // The backbone MTU is known: never fragment the tunnel.
            dont_frag: true,
            ident: 0,
            dscp_ecn: 0,
        }
        .emit(&mut t[layout::OUTER_IPV4]);
        UdpRepr {
            src_port: 0,
            dst_port: self.vxlan_port,
            payload_len: (layout::INNER_ETHERNET.end - layout::VXLAN.start) as u16,
        }
        .emit(&mut t[layout::UDP]);
        VxlanRepr { vni: self.vni }.emit(&mut t[layout::VXLAN]);
        EthernetRepr {
            dst_addr: self.inner_dst_mac,
            src_addr: self.inner_src_mac,
            ethertype: 0,
        }
        .emit(&mut t[layout::INNER_ETHERNET]);
        t
    }
}

/// Puts the path's encapsulation in front of the (already rewritten) inner IP packet.
/// The inner packet stays where it is; the outer headers go into the headroom that
/// the old Ethernet header and the buffer's headroom provide. Ethernet padding
/// behind the inner packet is cut off.
#[inline(always)]
pub fn encapsulate(
    frame: &mut Frame<'_>,
    ip: &IpInfo,
    path: &Path,
    hash: u64,
) -> Result<(), DropReason> {
    let inner_len = ip.total_len();
    // The outer headers end where the inner IP header starts.
    let head = (frame.head() + ip.l3).checked_sub(ENCAP_LEN);
    let data = head.and_then(|head| frame.reframe(head, ENCAP_LEN + inner_len));
    let Some(hdr) = data.and_then(|d| d.first_chunk_mut::<ENCAP_LEN>()) else {
        return Err(DropReason::NoRoom);
    };
    write_header(hdr, &path.template, inner_len as u16, ip.v6, hash);
    Ok(())
}

/// Writes a path's VXLAN encapsulation of an inner IP packet of `inner_len`
/// bytes whose flow hash is `hash`: the path's `template` with the outer total
/// length and checksum, the UDP source port (from `hash`) and length, and the
/// inner ethertype filled in. Shared by data (`encapsulate`) and the control
/// side's path probes, so that a probe is encapsulated exactly as data is.
#[inline(always)]
pub fn write_header(
    hdr: &mut [u8; ENCAP_LEN],
    template: &[u8; ENCAP_LEN],
    inner_len: u16,
    v6: bool,
    hash: u64,
) {
    *hdr = *template;
    let outer_len = inner_len + ENCAP_IP_OVERHEAD;
    // The views below are over constant ranges of a fixed-size array: their lengths
    // are those of the headers, known at compile time, so unchecked views cannot
    // index out of range (and their bounds checks fold away).
    let template_ip = Ipv4Packet::new_unchecked(&template[layout::OUTER_IPV4]);
    let mut ip = Ipv4Packet::new_unchecked(&mut hdr[layout::OUTER_IPV4]);
    ip.set_total_len(outer_len);
    ip.set_checksum_bytes(checksum::update16_grown_bytes(
        template_ip.checksum_bytes(),
        inner_len,
    ));
    let mut udp = UdpPacket::new_unchecked(&mut hdr[layout::UDP]);
    udp.set_src_port(flow::vxlan_source_port(hash));
    udp.set_len(outer_len - ipv4::MIN_HEADER_LEN as u16);
    EthernetFrame::new_unchecked(&mut hdr[layout::INNER_ETHERNET]).set_ethertype(if v6 {
        ethertype::IPV6
    } else {
        ethertype::IPV4
    });
}

/// Lowers the MSS option of a TCP SYN so that segments fit `inner_mtu` (RFC 879:
/// MSS = MTU - 40 for IPv4, - 60 for IPv6). Returns true when it changed something.
/// The MSS may sit at an odd offset (after one NOP), which the view's clamp handles.
#[inline]
pub fn clamp_mss(data: &mut [u8], ip: &IpInfo, inner_mtu: u16) -> bool {
    let Ok(mut tcp) = TcpPacket::new_checked(&mut data[ip.l4..ip.end]) else {
        return false;
    };
    if !tcp.syn() {
        return false;
    }
    tcp.clamp_mss(inner_mtu.saturating_sub(if ip.v6 { 60 } else { 40 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::vxlan::VxlanHeader;

    fn repr() -> EncapRepr {
        EncapRepr {
            next_hop_mac: [2, 0, 0, 0, 2, 2],
            port_mac: [2, 0, 0, 0, 0, 2],
            src: [198, 51, 100, 1],
            dst: [198, 51, 100, 2],
            ttl: 64,
            vxlan_port: 4789,
            vni: 0x12_3456,
            inner_dst_mac: [2, 0, 0, 0, 0x10, 1],
            inner_src_mac: [2, 0, 0, 0, 1, 1],
        }
    }

    /// The header as bytes, written down by hand for a 100-byte inner IPv4 packet.
    #[rustfmt::skip]
    const HEADER_100: [u8; ENCAP_LEN] = [
        // Ethernet: next hop, our port, IPv4
        2, 0, 0, 0, 2, 2,  2, 0, 0, 0, 0, 2,  0x08, 0x00,
        // IPv4: total 150, ident 0, DF, TTL 64, UDP, checksum, addresses
        0x45, 0, 0, 150,  0, 0, 0x40, 0,  64, 17, 0xe5, 0xec,  198, 51, 100, 1,  198, 51, 100, 2,
        // UDP: source port (patched below), 4789, length 130, no checksum
        0, 0, 0x12, 0xb5, 0, 130, 0, 0,
        // VXLAN: I flag, VNI 0x123456
        0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0,
        // Inner Ethernet: region, POP, IPv4
        2, 0, 0, 0, 0x10, 1,  2, 0, 0, 0, 1, 1,  0x08, 0x00,
    ];

    #[test]
    fn header_bytes() {
        let template = repr().emit();
        let mut hdr = [0xaau8; ENCAP_LEN];
        let hash = 0x1234_5678_9abc_def0;
        write_header(&mut hdr, &template, 100, false, hash);
        let mut expected = HEADER_100;
        expected[34..36].copy_from_slice(&flow::vxlan_source_port(hash).to_be_bytes());
        assert_eq!(hdr, expected);
        let ip = Ipv4Packet::new_checked(&hdr[14..34]).map(|_| ());
        assert!(
            ip.is_err(),
            "total length covers the inner packet, not here"
        );
        assert!(Ipv4Packet::new_checked_truncated(&hdr[14..34])
            .unwrap()
            .verify_checksum());
    }

    #[test]
    fn template_is_the_encapsulation_of_an_empty_packet() {
        let t = repr().emit();
        let ip = Ipv4Packet::new_checked(&t[layout::OUTER_IPV4.start..]).unwrap();
        assert_eq!(usize::from(ip.total_len()), ENCAP_LEN - 14);
        assert!(ip.verify_checksum());
        assert!(ip.dont_frag());
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port()), (0, 4789));
        let vx = VxlanHeader::new_checked(udp.payload()).unwrap();
        assert_eq!(VxlanRepr::parse(&vx), VxlanRepr { vni: 0x12_3456 });
        let inner = EthernetFrame::new_checked(vx.payload()).unwrap();
        assert_eq!(inner.ethertype(), 0);
        assert!(inner.payload().is_empty());
    }

    #[test]
    fn every_length_and_family_checks_out() {
        let template = repr().emit();
        let mut hdr = [0u8; ENCAP_LEN];
        for inner_len in [0u16, 1, 20, 1350, 9166] {
            for v6 in [false, true] {
                write_header(&mut hdr, &template, inner_len, v6, u64::from(inner_len));
                let ip = Ipv4Packet::new_checked_truncated(&hdr[14..34]).unwrap();
                assert!(ip.verify_checksum(), "{inner_len}");
                assert_eq!(ip.total_len(), inner_len + ENCAP_IP_OVERHEAD);
                let udp = UdpPacket::new_unchecked(&hdr[34..42]);
                assert_eq!(udp.len(), inner_len + ENCAP_IP_OVERHEAD - 20);
                let inner = EthernetFrame::new_checked(&hdr[50..]).unwrap();
                let et = if v6 { ethertype::IPV6 } else { ethertype::IPV4 };
                assert_eq!(inner.ethertype(), et);
            }
        }
    }
}

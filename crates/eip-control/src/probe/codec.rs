//! The probe on the wire: building the VXLAN-encapsulated ICMP echo request of
//! a path, and parsing the echo reply that comes back. No state: what a reply
//! means is the prober's business.

use eip_dataplane::pipeline::write_encap_header;
use eip_dataplane::tables::ENCAP_LEN;
use eip_dataplane::wire::ethernet::{self, EthernetFrame};
use eip_dataplane::wire::icmpv4::{self, Icmpv4Packet};
use eip_dataplane::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use eip_dataplane::wire::udp::UdpPacket;
use eip_dataplane::wire::vxlan::VxlanHeader;
use eip_dataplane::wire::{ethertype, ip_proto};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Bytes of echo data: the prober's nonce and the send time, 8 bytes each.
pub const PAYLOAD_LEN: usize = 16;
/// Inner IPv4 packet of a probe: IPv4 20 + ICMP 8 + payload.
pub const INNER_LEN: usize = 20 + icmpv4::HEADER_LEN + PAYLOAD_LEN;
/// A whole probe frame: the path's encapsulation and the inner packet.
pub const PROBE_FRAME_LEN: usize = ENCAP_LEN + INNER_LEN;
/// TTL of the inner packet.
const INNER_TTL: u8 = 64;

/// Why [`Prober::on_frame`](super::Prober::on_frame) did not count a frame as a
/// reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    /// A header is missing, short or inconsistent.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// No prober source address configured, or the inner packet is not an
    /// ICMP echo reply to it (e.g. an ICMP error about a probe).
    #[error("not an ICMP echo reply to the probe source")]
    NotEchoReply,
    /// The ICMP checksum is wrong.
    #[error("bad ICMP checksum")]
    BadChecksum,
    /// The identifier names no path probed now.
    #[error("echo identifier {ident} names no probed path")]
    UnknownIdent { ident: u16 },
    /// The reply did not come from the path's target and VNI.
    #[error("reply from {from} in VNI {vni}, but that path probes {target} in VNI {expected_vni}")]
    WrongSource {
        from: Ipv4Addr,
        vni: u32,
        target: Ipv4Addr,
        expected_vni: u32,
    },
    /// The payload does not carry this prober's nonce (a reply to another
    /// prober instance, or forged).
    #[error("echo data without this prober's nonce")]
    WrongNonce,
}

/// One probe, as it goes on the wire: an ICMP echo request from `source` to
/// `target`, in the path's VXLAN encapsulation exactly as the pipeline
/// encapsulates data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe<'a> {
    /// The path's encapsulation template.
    pub(crate) template: &'a [u8; ENCAP_LEN],
    /// Flow hash of the probe's inner flow (outer UDP source port).
    pub(crate) hash: u64,
    pub(crate) source: [u8; 4],
    pub(crate) target: [u8; 4],
    /// Echo identifier: names the path.
    pub(crate) ident: u16,
    pub(crate) seq: u16,
    /// The prober's nonce, echoed in the payload.
    pub(crate) nonce: u64,
    /// Send time, echoed in the payload.
    pub(crate) sent: Duration,
}

impl Probe<'_> {
    /// Builds the frame in `buf`, which the prober owns: nothing is allocated
    /// per probe.
    pub(crate) fn emit<'b>(&self, buf: &'b mut [u8; PROBE_FRAME_LEN]) -> &'b [u8] {
        let (hdr, inner) = buf.split_at_mut(ENCAP_LEN);
        let hdr: &mut [u8; ENCAP_LEN] = hdr.try_into().expect("ENCAP_LEN bytes");
        write_encap_header(hdr, self.template, INNER_LEN as u16, false, self.hash);
        Ipv4Repr {
            src: self.source,
            dst: self.target,
            protocol: ip_proto::ICMP,
            ttl: INNER_TTL,
            payload_len: (INNER_LEN - 20) as u16,
            dont_frag: true,
            ident: self.seq,
            dscp_ecn: 0,
        }
        .emit(inner);
        let mut icmp = Icmpv4Packet::new_unchecked(&mut inner[20..]);
        icmp.set_msg_type(icmpv4::ECHO_REQUEST);
        icmp.set_code(0);
        icmp.set_echo_ident(self.ident);
        icmp.set_echo_seq(self.seq);
        let data = icmp.payload_mut();
        data[..8].copy_from_slice(&self.nonce.to_be_bytes());
        let sent_ns = u64::try_from(self.sent.as_nanos()).unwrap_or(u64::MAX);
        data[8..16].copy_from_slice(&sent_ns.to_be_bytes());
        icmp.fill_checksum();
        &buf[..]
    }
}

/// The fields of an echo reply the prober checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) vni: u32,
    pub(crate) src: [u8; 4],
    pub(crate) dst: [u8; 4],
    pub(crate) ident: u16,
    pub(crate) seq: u16,
    pub(crate) nonce: u64,
    pub(crate) sent_ns: u64,
}

/// Outer Ethernet (up to two VLAN tags) / IPv4 / UDP to `vxlan_port` / VXLAN /
/// inner Ethernet / IPv4 / ICMP echo reply with our 16-byte payload.
pub(crate) fn parse_reply(frame: &[u8], vxlan_port: u16) -> Result<Reply, Ignored> {
    let (vni, ip) = parse_inner_ipv4(frame, vxlan_port)?;
    if ip.protocol() != ip_proto::ICMP || ip.is_fragment() {
        return Err(Ignored::NotEchoReply);
    }
    let icmp = Icmpv4Packet::new_checked(ip.payload()).map_err(|_| Ignored::Malformed("ICMP"))?;
    if icmp.msg_type() != icmpv4::ECHO_REPLY || icmp.code() != 0 {
        return Err(Ignored::NotEchoReply);
    }
    if !icmp.verify_checksum() {
        return Err(Ignored::BadChecksum);
    }
    let data = icmp.payload();
    let (Some(nonce), Some(sent)) = (data.get(..8), data.get(8..16)) else {
        return Err(Ignored::WrongNonce);
    };
    Ok(Reply {
        vni,
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        ident: icmp.echo_ident(),
        seq: icmp.echo_seq(),
        nonce: u64::from_be_bytes(nonce.try_into().expect("8 bytes")),
        sent_ns: u64::from_be_bytes(sent.try_into().expect("8 bytes")),
    })
}

/// The VNI and the inner IPv4 packet of a VXLAN frame to `vxlan_port` (shared
/// with the backend checks). A non-IPv4 inner packet is `NotEchoReply`.
pub(crate) fn parse_inner_ipv4(
    frame: &[u8],
    vxlan_port: u16,
) -> Result<(u32, Ipv4Packet<&[u8]>), Ignored> {
    let l2 = ethernet::parse_l2(frame).map_err(|_| Ignored::Malformed("outer Ethernet"))?;
    if l2.ethertype != ethertype::IPV4 {
        return Err(Ignored::Malformed("outer Ethernet (not IPv4)"));
    }
    let outer = Ipv4Packet::new_checked(&frame[l2.l3_offset..])
        .map_err(|_| Ignored::Malformed("outer IPv4"))?;
    if outer.protocol() != ip_proto::UDP || outer.is_fragment() {
        return Err(Ignored::Malformed(
            "outer IPv4 (not an unfragmented UDP datagram)",
        ));
    }
    let udp = UdpPacket::new_checked(outer.payload()).map_err(|_| Ignored::Malformed("UDP"))?;
    if udp.dst_port() != vxlan_port {
        return Err(Ignored::Malformed("UDP (not to the VXLAN port)"));
    }
    let vxlan = VxlanHeader::new_checked(udp.payload()).map_err(|_| Ignored::Malformed("VXLAN"))?;
    let inner_l2 = EthernetFrame::new_checked(vxlan.payload())
        .map_err(|_| Ignored::Malformed("inner Ethernet"))?;
    if inner_l2.ethertype() != ethertype::IPV4 {
        return Err(Ignored::NotEchoReply);
    }
    // The inner packet as a slice of `frame` (the views borrow their parent).
    let inner = inner_l2.payload();
    let start = inner.as_ptr() as usize - frame.as_ptr() as usize;
    let inner = &frame[start..start + inner.len()];
    let ip = Ipv4Packet::new_checked(inner).map_err(|_| Ignored::Malformed("inner IPv4"))?;
    Ok((vxlan.vni(), ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::testing::*;
    use crate::probe::Prober;
    use eip_dataplane::flow;
    use eip_dataplane::Verdict;
    use etherparse::{
        Icmpv4Type, LinkHeader, NetHeaders, PacketBuilder, PacketHeaders, TransportHeader,
    };

    #[test]
    fn probe_frames_are_byte_exact_vxlan() {
        let spec = spec();
        let t = tables(&spec, 1);
        let mut p = Prober::new(&t, config(), ms(1000)).unwrap();
        assert_eq!(p.len(), 2);
        // First probes spread over one interval: path 0 now, path 1 5 ms later.
        let first = poll_all(&mut p, ms(1000));
        assert_eq!(first.len(), 1);
        assert_eq!(p.next_deadline(), Some(ms(1005)));
        let second = poll_all(&mut p, ms(1005));
        assert_eq!(second.len(), 1);
        let reports = p.snapshots();
        for (i, (port, frame)) in first.iter().chain(&second).enumerate() {
            assert_eq!(*port, t.port_by_name(&format!("backbone{i}")).unwrap());
            assert_eq!(frame.len(), PROBE_FRAME_LEN);
            let ident = reports[i].ident;

            // Outer, checked by etherparse.
            let outer = PacketHeaders::from_ethernet_slice(frame).unwrap();
            let Some(LinkHeader::Ethernet2(eth)) = &outer.link else {
                panic!("no Ethernet")
            };
            assert_eq!((eth.destination, eth.source), (NEXT_HOP[i], BB_MAC[i]));
            let Some(NetHeaders::Ipv4(ip, _)) = &outer.net else {
                panic!("outer not IPv4")
            };
            assert_eq!((ip.source, ip.destination), (POP_VTEP, REGION_VTEP));
            assert_eq!(ip.header_checksum, ip.calc_header_checksum());
            assert_eq!(usize::from(ip.total_len), frame.len() - 14);
            assert!(ip.dont_fragment);
            assert_eq!(ip.time_to_live, 64);
            let Some(TransportHeader::Udp(udp)) = &outer.transport else {
                panic!("outer not UDP")
            };
            let hash = flow::hash_v4(PROBE_SOURCE, PROBE_TARGET, ident, 0, ip_proto::ICMP);
            assert_eq!(udp.source_port, flow::vxlan_source_port(hash));
            assert_eq!(udp.destination_port, 4789);
            assert_eq!(usize::from(udp.length), frame.len() - 34);
            assert_eq!(udp.checksum, 0);
            let vx = outer.payload.slice();
            assert_eq!(&vx[..8], &[0x08, 0, 0, 0, 0, 0, 100, 0]);

            // Inner, checked by etherparse.
            let inner = PacketHeaders::from_ethernet_slice(&vx[8..]).unwrap();
            let Some(LinkHeader::Ethernet2(eth)) = &inner.link else {
                panic!("no inner Ethernet")
            };
            assert_eq!(
                (eth.destination, eth.source, eth.ether_type.0),
                (REGION_INNER_MAC, POP_INNER_MAC, 0x0800)
            );
            let Some(NetHeaders::Ipv4(ip, _)) = &inner.net else {
                panic!("inner not IPv4")
            };
            assert_eq!((ip.source, ip.destination), (PROBE_SOURCE, PROBE_TARGET));
            assert_eq!(ip.header_checksum, ip.calc_header_checksum());
            assert_eq!(usize::from(ip.total_len), INNER_LEN);
            let Some(TransportHeader::Icmpv4(icmp)) = &inner.transport else {
                panic!("inner not ICMP")
            };
            let Icmpv4Type::EchoRequest(echo) = icmp.icmp_type else {
                panic!("not an echo request")
            };
            assert_eq!((echo.id, echo.seq), (ident, 0));
            let data = inner.payload.slice();
            assert_eq!(icmp.checksum, icmp.icmp_type.calc_checksum(data));
            assert_eq!(&data[..8], &NONCE.to_be_bytes());
            let sent = if i == 0 { ms(1000) } else { ms(1005) };
            assert_eq!(data[8..16], (sent.as_nanos() as u64).to_be_bytes());

            // And by our own wire layer: the same checks the pipeline makes.
            let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
            assert!(ip.verify_checksum());
            let udp = UdpPacket::new_checked(ip.payload()).unwrap();
            let vx = VxlanHeader::new_checked(udp.payload()).unwrap();
            assert_eq!(vx.vni(), VNI);
            let ip = Ipv4Packet::new_checked(&vx.payload()[14..]).unwrap();
            assert!(ip.verify_checksum());
            assert!(Icmpv4Packet::new_checked(ip.payload())
                .unwrap()
                .verify_checksum());
        }
        // Identifiers differ per path; sequence numbers count per path.
        assert_ne!(reports[0].ident, reports[1].ident);
        let next = poll_all(&mut p, ms(1010));
        assert_eq!(next.len(), 1);
        assert_eq!(Icmpv4Packet::new_unchecked(&next[0].1[84..]).echo_seq(), 1);
    }

    /// The prober's encapsulation writes exactly the bytes the pipeline writes
    /// for data: the same ICMP echo sent by a client to an EIP is encapsulated
    /// by the pipeline, and [`write_encap_header`] is run on its inner packet.
    #[test]
    fn encapsulation_equals_the_pipelines() {
        let t = tables(&spec(), 1);
        for ident in [1u16, 777, 40_000, 65_535] {
            let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 2, 0x10], INET_MAC)
                .ipv4(CLIENT, EIP, 64)
                .icmpv4_echo_request(ident, 9);
            let mut client = Vec::new();
            builder.write(&mut client, b"0123456789abcdef").unwrap();
            let (verdict, out) = pipeline(&t, &client, 0);
            let Verdict::Tx(port) = verdict else {
                panic!("{verdict:?}")
            };
            let hash = flow::hash_v4(CLIENT, EIP, ident, 0, ip_proto::ICMP);
            let path = &t.paths[usize::from(t.regions[0].path_for(hash))];
            assert_eq!(port, path.port);
            let mut hdr = [0u8; ENCAP_LEN];
            let inner_len = (out.len() - ENCAP_LEN) as u16;
            write_encap_header(&mut hdr, &path.template, inner_len, false, hash);
            assert_eq!(hdr, out[..ENCAP_LEN], "ident {ident}");
        }
    }
}

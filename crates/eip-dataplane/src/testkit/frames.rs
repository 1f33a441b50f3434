//! Frames for tests and benchmarks: Ethernet, IPv4/IPv6, TCP/UDP/ICMP and VXLAN,
//! in one chain of calls.
//!
//! Built with `etherparse`, an implementation independent of [`crate::wire`], so a
//! test that feeds these frames to the pipeline does not check our parser against
//! our own emitter. VXLAN, which etherparse lacks, is 8 bytes written here.
//!
//! ```
//! use eip_dataplane::testkit::frames::FrameBuilder;
//! use eip_dataplane::testkit::pop;
//!
//! // A client's TCP segment to an EIP...
//! let inner = FrameBuilder::ethernet(pop::GATEWAY_MAC, pop::INTERNET_MAC)
//!     .ipv4([203, 0, 113, 2], [192, 0, 2, 10], 64)
//!     .tcp(40000, 80)
//!     .build(b"hello");
//! // ...and a VXLAN packet carrying a frame.
//! let outer = FrameBuilder::ethernet([2, 0, 0, 0, 2, 0], pop::BACKBONE_MAC)
//!     .ipv4(pop::REGION_VTEP.octets(), pop::POP_VTEP.octets(), 64)
//!     .udp(50000, 4789)
//!     .vxlan(pop::VNI)
//!     .build(&inner);
//! assert_eq!(outer.len(), 14 + 20 + 8 + 8 + inner.len());
//! ```

use etherparse::{
    EtherType, Ethernet2Header, IcmpEchoHeader, Icmpv4Type, Icmpv6Type, IpHeaders, IpNumber,
    Ipv4Header, Ipv6Header, PacketBuilder, TcpHeader, TcpOptionElement,
};

/// What follows the Ethernet header.
#[derive(Debug, Clone)]
enum Net {
    /// No IP header: the payload follows the Ethernet header as it is (ARP...).
    Raw {
        ethertype: u16,
    },
    V4(Ipv4Header),
    V6(Ipv6Header),
}

/// What follows the IP header.
#[derive(Debug, Clone)]
enum Transport {
    /// The payload follows the IP header as it is, with this protocol number.
    Raw {
        protocol: u8,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    Tcp(TcpHeader),
    Icmpv4(Icmpv4Type),
    Icmpv6(Icmpv6Type),
}

/// A frame under construction; [`Self::build`] writes it around a payload.
///
/// Addresses are given source first, destination second, as etherparse takes them
/// (on the wire the Ethernet destination comes first). Lengths and checksums are
/// filled in. Setters that do not apply to the frame (`seq` on UDP, `dont_fragment`
/// on IPv6) panic: a test that asks for them is wrong.
#[derive(Debug, Clone)]
pub struct FrameBuilder {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    net: Net,
    transport: Transport,
    vxlan: Option<u32>,
}

impl FrameBuilder {
    /// An Ethernet frame from `src_mac` to `dst_mac`; add an IP header next, or give
    /// an [`ethertype`](Self::ethertype) for a non-IP payload.
    pub fn ethernet(src_mac: [u8; 6], dst_mac: [u8; 6]) -> Self {
        FrameBuilder {
            src_mac,
            dst_mac,
            net: Net::Raw { ethertype: 0 },
            transport: Transport::Raw { protocol: 0 },
            vxlan: None,
        }
    }

    /// The payload follows the Ethernet header directly, with this EtherType.
    pub fn ethertype(mut self, ethertype: u16) -> Self {
        self.net = Net::Raw { ethertype };
        self
    }

    /// An IPv4 header (identification 0, DF set, as etherparse builds it).
    pub fn ipv4(mut self, src: [u8; 4], dst: [u8; 4], ttl: u8) -> Self {
        self.net = Net::V4(Ipv4Header {
            source: src,
            destination: dst,
            time_to_live: ttl,
            ..Default::default()
        });
        self
    }

    /// Sets or clears the IPv4 Don't Fragment flag.
    pub fn dont_fragment(mut self, value: bool) -> Self {
        let Net::V4(ip) = &mut self.net else {
            panic!("dont_fragment on a frame without IPv4")
        };
        ip.dont_fragment = value;
        self
    }

    /// An IPv6 header (traffic class and flow label 0).
    pub fn ipv6(mut self, src: [u8; 16], dst: [u8; 16], hop_limit: u8) -> Self {
        self.net = Net::V6(Ipv6Header {
            source: src,
            destination: dst,
            hop_limit,
            ..Default::default()
        });
        self
    }

    /// The payload follows the IP header directly, with this protocol number.
    pub fn ip_payload(mut self, protocol: u8) -> Self {
        self.transport = Transport::Raw { protocol };
        self
    }

    /// A UDP header (with its checksum).
    pub fn udp(mut self, src_port: u16, dst_port: u16) -> Self {
        self.transport = Transport::Udp { src_port, dst_port };
        self
    }

    /// A TCP header: sequence number 0, window 1000, no flags; see [`Self::seq`],
    /// [`Self::syn`], [`Self::mss`].
    pub fn tcp(mut self, src_port: u16, dst_port: u16) -> Self {
        self.transport = Transport::Tcp(TcpHeader::new(src_port, dst_port, 0, 1000));
        self
    }

    fn tcp_header(&mut self) -> &mut TcpHeader {
        match &mut self.transport {
            Transport::Tcp(tcp) => tcp,
            _ => panic!("a TCP field on a frame without TCP"),
        }
    }

    /// Sets the TCP sequence number.
    pub fn seq(mut self, seq: u32) -> Self {
        self.tcp_header().sequence_number = seq;
        self
    }

    /// Sets the TCP SYN flag.
    pub fn syn(mut self) -> Self {
        self.tcp_header().syn = true;
        self
    }

    /// Adds a TCP MSS option.
    pub fn mss(mut self, mss: u16) -> Self {
        self.tcp_header()
            .set_options(&[TcpOptionElement::MaximumSegmentSize(mss)])
            .expect("one option fits");
        self
    }

    /// An ICMP echo request.
    pub fn icmpv4_echo_request(mut self, id: u16, seq: u16) -> Self {
        self.transport = Transport::Icmpv4(Icmpv4Type::EchoRequest(IcmpEchoHeader { id, seq }));
        self
    }

    /// An ICMP echo reply.
    pub fn icmpv4_echo_reply(mut self, id: u16, seq: u16) -> Self {
        self.transport = Transport::Icmpv4(Icmpv4Type::EchoReply(IcmpEchoHeader { id, seq }));
        self
    }

    /// Any ICMP message etherparse knows (errors quote the payload).
    pub fn icmpv4(mut self, icmp: Icmpv4Type) -> Self {
        self.transport = Transport::Icmpv4(icmp);
        self
    }

    /// An ICMPv6 echo request.
    pub fn icmpv6_echo_request(mut self, id: u16, seq: u16) -> Self {
        self.transport = Transport::Icmpv6(Icmpv6Type::EchoRequest(IcmpEchoHeader { id, seq }));
        self
    }

    /// Any ICMPv6 message etherparse knows (errors quote the payload).
    pub fn icmpv6(mut self, icmp: Icmpv6Type) -> Self {
        self.transport = Transport::Icmpv6(icmp);
        self
    }

    /// A VXLAN header (I flag, `vni`) in front of the payload, which is then the
    /// inner Ethernet frame. Goes with [`Self::udp`] to the POP's VXLAN port.
    pub fn vxlan(mut self, vni: u32) -> Self {
        assert!(vni < 1 << 24, "a VNI has 24 bits");
        self.vxlan = Some(vni);
        self
    }

    /// The frame around `payload`.
    ///
    /// # Panics
    /// If etherparse cannot write it (a payload too long for its headers).
    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let tunnelled;
        let payload = match self.vxlan {
            Some(vni) => {
                let [_, v0, v1, v2] = vni.to_be_bytes();
                let mut v = vec![0x08, 0, 0, 0, v0, v1, v2, 0];
                v.extend_from_slice(payload);
                tunnelled = v;
                &tunnelled[..]
            }
            None => payload,
        };
        let mut out = Vec::with_capacity(14 + 60 + payload.len());
        let ip = match &self.net {
            Net::Raw { ethertype } => {
                let eth = Ethernet2Header {
                    source: self.src_mac,
                    destination: self.dst_mac,
                    ether_type: EtherType(*ethertype),
                };
                out.extend_from_slice(&eth.to_bytes());
                out.extend_from_slice(payload);
                return out;
            }
            Net::V4(h) => IpHeaders::Ipv4(h.clone(), Default::default()),
            Net::V6(h) => IpHeaders::Ipv6(h.clone(), Default::default()),
        };
        let ip = PacketBuilder::ethernet2(self.src_mac, self.dst_mac).ip(ip);
        let written = match &self.transport {
            Transport::Raw { protocol } => ip.write(&mut out, IpNumber(*protocol), payload),
            Transport::Udp { src_port, dst_port } => {
                ip.udp(*src_port, *dst_port).write(&mut out, payload)
            }
            Transport::Tcp(tcp) => ip.tcp_header(tcp.clone()).write(&mut out, payload),
            Transport::Icmpv4(icmp) => ip.icmpv4(icmp.clone()).write(&mut out, payload),
            Transport::Icmpv6(icmp) => ip.icmpv6(*icmp).write(&mut out, payload),
        };
        written.expect("the test frame can be written");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ethernet::EthernetFrame, ipv4::Ipv4Packet, tcp::TcpPacket};
    use etherparse::{NetHeaders, PacketHeaders, TransportHeader};

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    #[test]
    fn same_bytes_as_etherparse() {
        let ours = FrameBuilder::ethernet(A, B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 9)
            .tcp(1, 2)
            .seq(7)
            .build(b"x");
        let mut theirs = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 9)
            .tcp(1, 2, 7, 1000)
            .write(&mut theirs, b"x")
            .unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn fields_land_where_asked() {
        let f = FrameBuilder::ethernet(A, B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 9)
            .dont_fragment(false)
            .tcp(1, 2)
            .syn()
            .mss(1460)
            .build(&[]);
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((eth.src_addr(), eth.dst_addr()), (A, B));
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(!ip.dont_frag() && ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.syn());
        assert_eq!(tcp.mss_option().map(|(_, mss)| mss), Some(1460));
    }

    #[test]
    fn vxlan_wraps_a_frame() {
        let inner = FrameBuilder::ethernet(A, B)
            .ipv6([1; 16], [2; 16], 64)
            .icmpv6_echo_request(1, 2)
            .build(b"ping");
        let outer = FrameBuilder::ethernet(B, A)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(50000, 4789)
            .vxlan(0xab_cdef)
            .build(&inner);
        let h = PacketHeaders::from_ethernet_slice(&outer).unwrap();
        let Some(TransportHeader::Udp(udp)) = h.transport else {
            panic!("not UDP")
        };
        assert_eq!(udp.destination_port, 4789);
        let vx = h.payload.slice();
        assert_eq!(&vx[..8], &[0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
        assert_eq!(&vx[8..], &inner[..]);
        let inner = PacketHeaders::from_ethernet_slice(&vx[8..]).unwrap();
        assert!(matches!(inner.net, Some(NetHeaders::Ipv6(..))));
    }

    #[test]
    fn raw_payloads() {
        let arp = FrameBuilder::ethernet(A, [0xff; 6])
            .ethertype(0x0806)
            .build(&[0; 28]);
        assert_eq!(arp.len(), 14 + 28);
        assert_eq!(&arp[12..14], &[0x08, 0x06]);
        let esp = FrameBuilder::ethernet(A, B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .ip_payload(50)
            .build(&[1, 2, 3]);
        let ip = Ipv4Packet::new_checked(&esp[14..]).unwrap();
        assert_eq!((ip.protocol(), ip.payload()), (50, &[1, 2, 3][..]));
    }

    #[test]
    #[should_panic(expected = "without TCP")]
    fn tcp_fields_need_tcp() {
        let _ = FrameBuilder::ethernet(A, B)
            .ipv4([0; 4], [0; 4], 1)
            .udp(1, 2)
            .syn();
    }
}

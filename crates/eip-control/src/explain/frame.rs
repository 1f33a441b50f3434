//! The frames `explain` feeds the pipeline: a flow's packet as it arrives on the
//! Internet port (Ethernet from the gateway, IPv4/IPv6, then a TCP SYN with an
//! MSS option, a TCP segment, a UDP datagram or an ICMP echo request), with
//! correct checksums, built with the data plane's own wire types.

use eip_dataplane::tables::Tables;
use eip_dataplane::wire::icmpv4::Icmpv4Packet;
use eip_dataplane::wire::icmpv6::Icmpv6Packet;
use eip_dataplane::wire::ipv4::Ipv4Repr;
use eip_dataplane::wire::ipv6::Ipv6Repr;
use eip_dataplane::wire::tcp::{self, TcpPacket};
use eip_dataplane::wire::udp::{UdpPacket, UdpRepr};
use eip_dataplane::wire::{ethertype, ip_proto};
use std::net::IpAddr;

/// ICMP echo request types.
const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REQUEST_V6: u8 = 128;
/// Hop limit of the packets built (far from expiring here).
const TTL: u8 = 64;
/// A TCP header with one option, MSS (kind 2, length 4).
const SYN_HEADER_LEN: usize = tcp::MIN_HEADER_LEN + 4;

/// The flow's fields a packet is built from (checked by `Explain::resolved`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Flow {
    /// IP protocol number.
    pub protocol: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TCP/UDP ports; for ICMP the echo identifier and 0.
    pub sport: u16,
    pub dport: u16,
}

/// Which packet of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// The first: a SYN with an MSS option of this value, a bare datagram, an
    /// echo request; DF set.
    First { mss: u16 },
    /// A packet of `size` bytes from the IP header on (a TCP segment that is no
    /// SYN), padded with zeros.
    Sized { size: usize, dont_frag: bool },
}

impl Flow {
    fn v6(&self) -> bool {
        self.src.is_ipv6()
    }

    /// Bytes of the IP header plus the transport header of [`Shape::Sized`].
    pub(super) fn min_size(&self) -> usize {
        let ip = if self.v6() { 40 } else { 20 };
        ip + if self.protocol == ip_proto::TCP {
            tcp::MIN_HEADER_LEN
        } else {
            8
        }
    }

    /// The Ethernet frame of one packet, as the gateway sends it to us.
    pub(super) fn frame(&self, tables: &Tables, shape: Shape) -> Vec<u8> {
        let v6 = self.v6();
        let ip_len = if v6 { 40 } else { 20 };
        let (size, dont_frag) = match shape {
            Shape::First { .. } if self.protocol == ip_proto::TCP => {
                (ip_len + SYN_HEADER_LEN, true)
            }
            Shape::First { .. } => (self.min_size(), true),
            Shape::Sized { size, dont_frag } => (size.max(self.min_size()), dont_frag),
        };
        let mut frame = vec![0u8; 14 + size];
        let port = &tables.ports[tables.internet_port as usize];
        frame[0..6].copy_from_slice(&port.mac);
        frame[6..12].copy_from_slice(&port.gateway_mac.unwrap_or([2, 0, 0, 0, 0, 0xfe]));
        let et = if v6 { ethertype::IPV6 } else { ethertype::IPV4 };
        frame[12..14].copy_from_slice(&et.to_be_bytes());
        let (l3, l4) = frame[14..].split_at_mut(ip_len);
        self.transport(l4, shape);
        let payload_len = l4.len() as u16;
        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                self.checksum_v4(l4, src.octets(), dst.octets());
                Ipv4Repr {
                    src: src.octets(),
                    dst: dst.octets(),
                    protocol: self.protocol,
                    ttl: TTL,
                    payload_len,
                    dont_frag,
                    ident: 1,
                    dscp_ecn: 0,
                }
                .emit(l3);
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                self.checksum_v6(l4, src.octets(), dst.octets());
                Ipv6Repr {
                    src: src.octets(),
                    dst: dst.octets(),
                    next_header: self.protocol,
                    hop_limit: TTL,
                    payload_len,
                    traffic_class: 0,
                    flow_label: 0,
                }
                .emit(l3);
            }
            // `Explain::resolved` refuses mixed families.
            _ => {}
        }
        frame
    }

    /// Writes the transport header (the rest stays zero), checksum excepted.
    fn transport(&self, l4: &mut [u8], shape: Shape) {
        match self.protocol {
            ip_proto::TCP => {
                l4[0..2].copy_from_slice(&self.sport.to_be_bytes());
                l4[2..4].copy_from_slice(&self.dport.to_be_bytes());
                l4[4..8].copy_from_slice(&1u32.to_be_bytes()); // sequence number
                l4[14..16].copy_from_slice(&u16::MAX.to_be_bytes()); // window
                match shape {
                    Shape::First { mss } => {
                        l4[12] = (SYN_HEADER_LEN as u8 / 4) << 4;
                        l4[13] = tcp::flags::SYN;
                        let [hi, lo] = mss.to_be_bytes();
                        l4[20..24].copy_from_slice(&[2, 4, hi, lo]);
                    }
                    Shape::Sized { .. } => {
                        l4[12] = (tcp::MIN_HEADER_LEN as u8 / 4) << 4;
                        l4[13] = tcp::flags::ACK | tcp::flags::PSH;
                    }
                }
            }
            ip_proto::UDP => UdpRepr {
                src_port: self.sport,
                dst_port: self.dport,
                payload_len: (l4.len() - 8) as u16,
            }
            .emit(l4),
            _ => {
                l4[0] = if self.v6() {
                    ECHO_REQUEST_V6
                } else {
                    ECHO_REQUEST_V4
                };
                l4[4..6].copy_from_slice(&self.sport.to_be_bytes());
                l4[6..8].copy_from_slice(&1u16.to_be_bytes()); // sequence number
            }
        }
    }

    fn checksum_v4(&self, l4: &mut [u8], src: [u8; 4], dst: [u8; 4]) {
        match self.protocol {
            ip_proto::TCP => {
                if let Ok(mut t) = TcpPacket::new_checked(l4) {
                    t.fill_checksum_v4(src, dst);
                }
            }
            ip_proto::UDP => {
                if let Ok(mut u) = UdpPacket::new_checked(l4) {
                    u.fill_checksum_v4(src, dst);
                }
            }
            _ => {
                if let Ok(mut i) = Icmpv4Packet::new_checked(l4) {
                    i.fill_checksum();
                }
            }
        }
    }

    fn checksum_v6(&self, l4: &mut [u8], src: [u8; 16], dst: [u8; 16]) {
        match self.protocol {
            ip_proto::TCP => {
                if let Ok(mut t) = TcpPacket::new_checked(l4) {
                    t.fill_checksum_v6(src, dst);
                }
            }
            ip_proto::UDP => {
                if let Ok(mut u) = UdpPacket::new_checked(l4) {
                    u.fill_checksum_v6(src, dst);
                }
            }
            _ => {
                if let Ok(mut i) = Icmpv6Packet::new_checked(l4) {
                    i.fill_checksum(src, dst);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::tests::example_tables;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn flow(protocol: u8, src: &str, dst: &str) -> Flow {
        Flow {
            protocol,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport: 40000,
            dport: 80,
        }
    }

    /// The frames parse, with valid checksums, in an implementation that is not
    /// ours.
    #[test]
    fn frames_are_well_formed() {
        let t = example_tables();
        let syn =
            flow(ip_proto::TCP, "198.51.100.7", "192.0.2.20").frame(&t, Shape::First { mss: 1460 });
        let p = SlicedPacket::from_ethernet(&syn).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!()
        };
        assert!(ip.header().dont_fragment());
        let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
            panic!()
        };
        assert!(tcp.syn() && !tcp.ack());
        assert_eq!((tcp.source_port(), tcp.destination_port()), (40000, 80));
        assert_eq!(
            tcp.calc_checksum_ipv4(ip.header().source(), ip.header().destination()),
            Ok(tcp.checksum())
        );
        assert_eq!(syn[0..6], t.ports[t.internet_port as usize].mac);

        let big = flow(ip_proto::UDP, "2001:db8::7", "2001:db8:e1::10").frame(
            &t,
            Shape::Sized {
                size: 1400,
                dont_frag: true,
            },
        );
        assert_eq!(big.len(), 14 + 1400);
        let p = SlicedPacket::from_ethernet(&big).unwrap();
        let Some(TransportSlice::Udp(udp)) = &p.transport else {
            panic!()
        };
        assert_eq!(udp.length(), 1400 - 40);

        let echo = flow(ip_proto::ICMPV6, "2001:db8::7", "2001:db8:e1::10")
            .frame(&t, Shape::First { mss: 0 });
        let p = SlicedPacket::from_ethernet(&echo).unwrap();
        let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
            panic!()
        };
        assert_eq!(icmp.type_u8(), ECHO_REQUEST_V6);
    }
}

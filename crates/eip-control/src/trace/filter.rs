//! [`Matcher`]: a [`TraceFilter`] compiled for the worker, matched against frame
//! bytes through the `wire` views. No allocation, no panic whatever the bytes.

use crate::api::{DropFilter, TraceFilter, TraceProtocol};
use eip_dataplane::wire::ethernet::parse_l2;
use eip_dataplane::wire::ipv4::Ipv4Packet;
use eip_dataplane::wire::ipv6::{self, Ipv6Packet};
use eip_dataplane::wire::{ethertype, ip_proto, vxlan};
use std::net::IpAddr;

/// An address as the bytes of its header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Addr {
    v6: bool,
    bytes: [u8; 16],
}

impl Addr {
    fn of(addr: IpAddr) -> Addr {
        let mut bytes = [0u8; 16];
        match addr {
            IpAddr::V4(a) => {
                bytes[..4].copy_from_slice(&a.octets());
                Addr { v6: false, bytes }
            }
            IpAddr::V6(a) => Addr {
                v6: true,
                bytes: a.octets(),
            },
        }
    }
}

/// The fields of one IP header (outer or inner) a filter looks at.
#[derive(Debug, Clone, Copy)]
struct Tuple {
    src: Addr,
    dst: Addr,
    protocol: u8,
    /// Source and destination port (TCP/UDP with its first 4 bytes present).
    ports: Option<(u16, u16)>,
}

/// A compiled [`TraceFilter`]: plain data, `Copy`, checked per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matcher {
    eip: Option<Addr>,
    protocol: Option<TraceProtocol>,
    src: Option<Addr>,
    src_port: Option<u16>,
    dst: Option<Addr>,
    dst_port: Option<u16>,
    drop: Option<DropFilter>,
}

impl Matcher {
    pub fn new(filter: &TraceFilter) -> Matcher {
        Matcher {
            eip: filter.eip.map(Addr::of),
            protocol: filter.protocol,
            src: filter.src.map(Addr::of),
            src_port: filter.src_port,
            dst: filter.dst.map(Addr::of),
            dst_port: filter.dst_port,
            drop: filter.drop,
        }
    }

    /// Does the filter look at headers at all? Without, every frame matches
    /// [`Self::frame_matches`], parseable or not.
    #[inline]
    pub fn has_header_criteria(&self) -> bool {
        self.eip.is_some()
            || self.protocol.is_some()
            || self.src.is_some()
            || self.src_port.is_some()
            || self.dst.is_some()
            || self.dst_port.is_some()
    }

    /// The drop criterion: with one, only dropped frames are traced, at the drop.
    #[inline]
    pub fn drop_filter(&self) -> Option<DropFilter> {
        self.drop
    }

    /// Do the header criteria hold for the Ethernet frame `frame`, on its outer
    /// IP header or, when it is VXLAN (UDP to `vxlan_port`), on the inner one?
    /// A frame that does not parse as IP matches only a filter without header
    /// criteria.
    #[inline]
    pub fn frame_matches(&self, frame: &[u8], vxlan_port: u16) -> bool {
        if !self.has_header_criteria() {
            return true;
        }
        let Some((outer, l4)) = ip_of(frame) else {
            return false;
        };
        if self.tuple_matches(&outer) {
            return true;
        }
        match (outer.protocol, outer.ports) {
            (ip_proto::UDP, Some((_, dport))) if dport == vxlan_port => {
                // UDP header, VXLAN header, inner Ethernet frame.
                let inner = l4.get(8 + vxlan::HEADER_LEN..).and_then(ip_of);
                inner.is_some_and(|(t, _)| self.tuple_matches(&t))
            }
            _ => false,
        }
    }

    #[inline]
    fn tuple_matches(&self, t: &Tuple) -> bool {
        let is = |want: Option<Addr>, got: Addr| want.is_none_or(|w| w == got);
        let port = |want: Option<u16>, got: Option<u16>| want.is_none_or(|w| Some(w) == got);
        let protocol_ok = match self.protocol {
            None => true,
            Some(TraceProtocol::Tcp) => t.protocol == ip_proto::TCP,
            Some(TraceProtocol::Udp) => t.protocol == ip_proto::UDP,
            Some(TraceProtocol::Icmp) => {
                t.protocol
                    == if t.src.v6 {
                        ip_proto::ICMPV6
                    } else {
                        ip_proto::ICMP
                    }
            }
        };
        protocol_ok
            && self.eip.is_none_or(|e| e == t.src || e == t.dst)
            && is(self.src, t.src)
            && is(self.dst, t.dst)
            && port(self.src_port, t.ports.map(|p| p.0))
            && port(self.dst_port, t.ports.map(|p| p.1))
    }
}

/// The IP header of an Ethernet frame (VLAN tags skipped) and its transport
/// bytes. Lenient on lengths: a packet whose payload is cut short (or whose length
/// field lies) still shows its addresses, so a filter on an EIP also catches the
/// malformed packets sent to it.
#[inline]
fn ip_of(frame: &[u8]) -> Option<(Tuple, &[u8])> {
    let l2 = parse_l2(frame).ok()?;
    let packet = frame.get(l2.l3_offset..)?;
    let (src, dst, protocol, l4, later_fragment) = match l2.ethertype {
        ethertype::IPV4 => {
            let ip = Ipv4Packet::new_checked_truncated(packet).ok()?;
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src[..4].copy_from_slice(&ip.src_addr());
            dst[..4].copy_from_slice(&ip.dst_addr());
            (
                Addr {
                    v6: false,
                    bytes: src,
                },
                Addr {
                    v6: false,
                    bytes: dst,
                },
                ip.protocol(),
                clamp(packet, ip.header_len(), usize::from(ip.total_len())),
                ip.frag_offset() != 0,
            )
        }
        ethertype::IPV6 => {
            let ip = Ipv6Packet::new_checked_truncated(packet).ok()?;
            let src = Addr {
                v6: true,
                bytes: ip.src_addr(),
            };
            let dst = Addr {
                v6: true,
                bytes: ip.dst_addr(),
            };
            // Through the extension headers when they parse; else the fixed header.
            match ipv6::find_transport(packet) {
                Ok(t) => (
                    src,
                    dst,
                    t.protocol,
                    packet.get(t.offset..).unwrap_or(&[]),
                    t.fragment.is_some_and(|f| f.offset != 0),
                ),
                Err(_) => {
                    let end = 40 + usize::from(ip.payload_len());
                    (src, dst, ip.next_header(), clamp(packet, 40, end), false)
                }
            }
        }
        _ => return None,
    };
    let ports = match protocol {
        ip_proto::TCP | ip_proto::UDP if !later_fragment && l4.len() >= 4 => Some((
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        )),
        _ => None,
    };
    Some((
        Tuple {
            src,
            dst,
            protocol,
            ports,
        },
        l4,
    ))
}

/// `packet[start..end]`, both clamped to the buffer (`payload()` of the views,
/// with the buffer's lifetime rather than the view's).
#[inline]
fn clamp(packet: &[u8], start: usize, end: usize) -> &[u8] {
    let end = end.min(packet.len());
    &packet[start.min(end)..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use eip_dataplane::counters::DropReason;
    use etherparse::PacketBuilder;

    const VXLAN: u16 = 4789;

    fn udp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4(src, dst, 64)
            .udp(sport, dport);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn tcp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4(src, dst, 64)
            .tcp(sport, dport, 1, 1000);
        let mut out = Vec::new();
        b.write(&mut out, b"GET / HTTP/1.1\r\n").unwrap();
        out
    }

    fn ping6(src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv6(src, dst, 64)
            .icmpv6_echo_request(7, 1);
        let mut out = Vec::new();
        b.write(&mut out, b"ping").unwrap();
        out
    }

    /// `inner` in VXLAN from 203.0.113.1 to the POP's VTEP 203.0.113.100.
    fn vxlan(inner: &[u8]) -> Vec<u8> {
        let mut payload = vec![0x08, 0, 0, 0, 0, 0, 100, 0];
        payload.extend_from_slice(inner);
        udp4([203, 0, 113, 1], 40000, [203, 0, 113, 100], VXLAN, &payload)
    }

    fn filter(json: &str) -> Matcher {
        Matcher::new(&serde_json::from_str::<TraceFilter>(json).unwrap())
    }

    #[test]
    fn empty_filter_takes_everything_even_garbage() {
        let m = filter("{}");
        assert!(!m.has_header_criteria());
        assert!(m.frame_matches(&[1, 2, 3], VXLAN));
        assert!(m.frame_matches(&tcp4([1; 4], 1, [2; 4], 2), VXLAN));
    }

    #[test]
    fn eip_matches_either_direction_and_vxlan_inner_headers() {
        let m = filter(r#"{"eip":"192.0.2.10"}"#);
        let to_eip = tcp4([198, 51, 100, 7], 40000, [192, 0, 2, 10], 80);
        let from_eip = tcp4([192, 0, 2, 10], 80, [198, 51, 100, 7], 40000);
        let other = tcp4([198, 51, 100, 7], 40000, [192, 0, 2, 20], 80);
        assert!(m.frame_matches(&to_eip, VXLAN));
        assert!(m.frame_matches(&from_eip, VXLAN));
        assert!(!m.frame_matches(&other, VXLAN));
        // The inner packet of a VXLAN frame counts; not at another UDP port.
        assert!(m.frame_matches(&vxlan(&from_eip), VXLAN));
        assert!(!m.frame_matches(&vxlan(&other), VXLAN));
        assert!(!m.frame_matches(&vxlan(&from_eip), 8472));
        // Garbage and non-IP do not match a filter with header criteria.
        assert!(!m.frame_matches(&[0xff; 10], VXLAN));
        let mut arp = to_eip.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!m.frame_matches(&arp, VXLAN));
        // A cut-short packet still shows its addresses.
        assert!(m.frame_matches(&to_eip[..34], VXLAN));
    }

    #[test]
    fn five_tuple_parts_all_must_hold_on_one_header() {
        let pkt = tcp4([198, 51, 100, 7], 40000, [192, 0, 2, 10], 80);
        for (json, want) in [
            (r#"{"protocol":"tcp"}"#, true),
            (r#"{"protocol":"udp"}"#, false),
            (r#"{"protocol":"icmp"}"#, false),
            (r#"{"src":"198.51.100.7","src_port":40000}"#, true),
            (r#"{"src":"198.51.100.7","src_port":40001}"#, false),
            (
                r#"{"dst":"192.0.2.10","dst_port":80,"protocol":"tcp"}"#,
                true,
            ),
            (r#"{"dst":"192.0.2.10","dst_port":443}"#, false),
            (r#"{"dst_port":80}"#, true),
            (r#"{"src":"192.0.2.10"}"#, false),
            (r#"{"eip":"2001:db8::10"}"#, false),
        ] {
            assert_eq!(filter(json).frame_matches(&pkt, VXLAN), want, "{json}");
        }
        // Outer UDP to the VTEP and inner TCP: `protocol: tcp` with the inner
        // destination holds on the inner header alone.
        let m = filter(r#"{"protocol":"tcp","dst":"192.0.2.10"}"#);
        assert!(m.frame_matches(&vxlan(&pkt), VXLAN));
        // Criteria split across the two headers do not combine.
        let m = filter(r#"{"protocol":"tcp","dst":"203.0.113.100"}"#);
        assert!(!m.frame_matches(&vxlan(&pkt), VXLAN));
    }

    #[test]
    fn icmp_means_icmpv6_for_ipv6_and_has_no_ports() {
        let eip6 = [
            0x20, 0x01, 0x0d, 0xb8, 0, 0xe1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let pkt = ping6([0xfd; 16], eip6);
        assert!(filter(r#"{"protocol":"icmp","eip":"2001:db8:e1::10"}"#).frame_matches(&pkt, VXLAN));
        assert!(!filter(r#"{"dst_port":0}"#).frame_matches(&pkt, VXLAN));
        assert!(!filter(r#"{"eip":"192.0.2.10"}"#).frame_matches(&pkt, VXLAN));
    }

    #[test]
    fn drop_criterion_is_kept_apart() {
        let m = filter(r#"{"drop":"no_path"}"#);
        assert!(!m.has_header_criteria());
        assert_eq!(
            m.drop_filter(),
            Some(DropFilter::Reason(DropReason::NoPath))
        );
        assert_eq!(filter("{}").drop_filter(), None);
    }
}

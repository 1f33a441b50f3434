//! ICMP the POP originates (time exceeded, too big) and ICMP errors it translates
//! (RFC 5508 §4.2: the quoted packet is NATed the inverse way of the outer one, so
//! the host that sent the original recognises it, and path MTU discovery works
//! through the NAT).

use super::ingress::service_backend;
use super::nat::{self, Sum};
use super::parse::{Fragment, IpInfo};
use super::Addr;
use crate::counters::DropReason;
use crate::flow;
use crate::frame::Frame;
use crate::tables::{Eip, EipId, RegionId, Tables};
use crate::wire::ethernet::{self, EthernetFrame, EthernetRepr};
use crate::wire::icmpv4::{self, Icmpv4Packet};
use crate::wire::icmpv6::{self, Icmpv6Packet};
use crate::wire::ipv4::{self, Ipv4Packet, Ipv4Repr};
use crate::wire::ipv6::{self, Ipv6Packet, Ipv6Repr};
use crate::wire::{checksum, ethertype, ip_proto, tcp::TcpPacket, udp::UdpPacket};

/// An error this POP sends back to a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// TTL / hop limit ran out here.
    TimeExceeded,
    /// The packet does not fit the path: IPv4 "fragmentation needed" (RFC 1191) or
    /// ICMPv6 "packet too big" (RFC 8201), with the MTU the sender should use.
    TooBig { mtu: u16 },
}

/// Most of the original packet an ICMPv4 error quotes (RFC 1812 §4.3.2.3: the
/// error fits in 576 bytes).
const MAX_QUOTE_V4: usize = 576 - 20 - 8;
/// ICMPv6 errors fit in the IPv6 minimum MTU (RFC 4443 §2.4).
const MAX_QUOTE_V6: usize = 1280 - 40 - 8;

/// Rewrites `frame` into an ICMP error to the sender of the packet at `ip`, sent from
/// the address the packet was sent to (the EIP). The quoted packet stays in place;
/// the new headers go in front of it. Returns false, leaving the frame unusable for
/// anything but a drop, when no error may be sent for this packet (RFC 1122
/// §3.2.2: never about an ICMP error or a non-first fragment) or there is no room.
pub fn originate(frame: &mut Frame<'_>, ip: &IpInfo, kind: ErrorKind) -> bool {
    let data = frame.data();
    if matches!(ip.fragment, Fragment::Later { .. }) {
        return false;
    }
    if ip.has_l4() && ip.end > ip.l4 {
        // `is_error` reads the type byte only, which `end > l4` proves is there.
        let msg = &data[ip.l4..ip.end];
        let is_error = if ip.v6 {
            ip.protocol == ip_proto::ICMPV6 && Icmpv6Packet::new_unchecked(msg).is_error()
        } else {
            ip.protocol == ip_proto::ICMP && Icmpv4Packet::new_unchecked(msg).is_error()
        };
        if is_error {
            return false;
        }
    }
    // Everything needed from the original headers, read before the new headers
    // overwrite them. The classifier checked the Ethernet and IP headers whole.
    let received = EthernetFrame::new_unchecked(&data[..ethernet::HEADER_LEN]);
    let (ip_len, max_quote, ethertype) = if ip.v6 {
        (ipv6::HEADER_LEN, MAX_QUOTE_V6, ethertype::IPV6)
    } else {
        (ipv4::MIN_HEADER_LEN, MAX_QUOTE_V4, ethertype::IPV4)
    };
    // Back where it came from: to the sender's MAC and address, from ours (the EIP).
    let eth = EthernetRepr {
        dst_addr: received.src_addr(),
        src_addr: received.dst_addr(),
        ethertype,
    };
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    if ip.v6 {
        let original = Ipv6Packet::new_unchecked(&data[ip.l3..ip.end]);
        (src, dst) = (original.dst_addr(), original.src_addr());
    } else {
        let original = Ipv4Packet::new_unchecked(&data[ip.l3..ip.end]);
        src[..4].copy_from_slice(&original.dst_addr());
        dst[..4].copy_from_slice(&original.src_addr());
    }

    let quote = ip.total_len().min(max_quote);
    let header = ethernet::HEADER_LEN + ip_len + icmpv4::HEADER_LEN;
    let moved = if ip.l3 < header {
        frame.push_head(header - ip.l3)
    } else {
        frame.pull_head(ip.l3 - header)
    };
    if !(moved && frame.set_len(header + quote)) {
        return false;
    }
    let icmp_len = icmpv4::HEADER_LEN + quote;
    let (l2, rest) = frame.data_mut().split_at_mut(ethernet::HEADER_LEN);
    eth.emit(l2);
    let (l3, msg) = rest.split_at_mut(ip_len);
    // `msg` is the ICMP header plus the quote, `icmp_len` bytes (the length just set).
    if ip.v6 {
        Ipv6Repr {
            src,
            dst,
            next_header: ip_proto::ICMPV6,
            hop_limit: 64,
            payload_len: icmp_len as u16,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(l3);
        let mut icmp = Icmpv6Packet::new_unchecked(msg);
        let (msg_type, rest) = match kind {
            ErrorKind::TimeExceeded => (icmpv6::TIME_EXCEEDED, 0),
            ErrorKind::TooBig { mtu } => (icmpv6::PACKET_TOO_BIG, u32::from(mtu)),
        };
        icmp.set_msg_type(msg_type);
        icmp.set_code(0);
        icmp.set_rest_of_header(rest);
        icmp.fill_checksum(src, dst);
    } else {
        Ipv4Repr {
            src: src[..4].try_into().unwrap(),
            dst: dst[..4].try_into().unwrap(),
            protocol: ip_proto::ICMP,
            ttl: 64,
            payload_len: icmp_len as u16,
            dont_frag: false,
            ident: 0,
            dscp_ecn: 0,
        }
        .emit(l3);
        let mut icmp = Icmpv4Packet::new_unchecked(msg);
        let (msg_type, code, rest) = match kind {
            ErrorKind::TimeExceeded => (icmpv4::TIME_EXCEEDED, icmpv4::TTL_EXCEEDED_IN_TRANSIT, 0),
            ErrorKind::TooBig { mtu } => (
                icmpv4::DEST_UNREACHABLE,
                icmpv4::FRAG_NEEDED,
                u32::from(mtu),
            ),
        };
        icmp.set_msg_type(msg_type);
        icmp.set_code(code);
        icmp.set_rest_of_header(rest);
        icmp.fill_checksum();
    }
    true
}

/// The packet an ICMP error quotes, parsed with the lenient view made for quotes:
/// it is usually cut short, so only its IP header must be whole. `end` is the end
/// of the outer packet.
fn quoted(data: &[u8], outer: &IpInfo) -> Result<IpInfo, DropReason> {
    let q = outer.l4 + icmpv4::HEADER_LEN;
    let end = outer.end;
    let bad = DropReason::IcmpUntranslatable;
    let quote = data.get(q..end).ok_or(bad)?;
    if outer.v6 {
        let ip = Ipv6Packet::new_checked_truncated(quote).map_err(|_| bad)?;
        let next = ip.next_header();
        // Extension headers in a quote: translate addresses only (protocol 59 = none).
        let protocol = match next {
            ip_proto::TCP | ip_proto::UDP | ip_proto::ICMPV6 => next,
            _ => ip_proto::NONE,
        };
        Ok(IpInfo {
            v6: true,
            l3: q,
            l4: q + ipv6::HEADER_LEN,
            end,
            protocol,
            fragment: Fragment::None,
            dont_frag: true,
            ttl: ip.hop_limit(),
        })
    } else {
        let ip = Ipv4Packet::new_checked_truncated(quote).map_err(|_| bad)?;
        let fragment = if ip.frag_offset() != 0 {
            Fragment::Later { ident: 0 }
        } else {
            Fragment::None
        };
        Ok(IpInfo {
            v6: false,
            l3: q,
            l4: q + ip.header_len(),
            end,
            protocol: ip.protocol(),
            fragment,
            dont_frag: false,
            ttl: ip.ttl(),
        })
    }
}

/// Ports of a quoted TCP/UDP header, when the quote holds them.
fn quoted_ports(data: &[u8], q: &IpInfo) -> Option<(u16, u16)> {
    // A quote may end right after the ports: only they are read, through unchecked
    // views over the 4 bytes that hold them.
    const PORTS_LEN: usize = 4;
    let tcp_or_udp = matches!(q.protocol, ip_proto::TCP | ip_proto::UDP);
    if !(tcp_or_udp && q.has_l4() && q.end >= q.l4 + PORTS_LEN) {
        return None;
    }
    let l4 = &data[q.l4..q.l4 + PORTS_LEN];
    Some(if q.protocol == ip_proto::TCP {
        let tcp = TcpPacket::new_unchecked(l4);
        (tcp.src_port(), tcp.dst_port())
    } else {
        let udp = UdpPacket::new_unchecked(l4);
        (udp.src_port(), udp.dst_port())
    })
}

/// Identifier of a quoted ICMP/ICMPv6 echo reply, when the quote holds it.
fn quoted_echo_reply_ident(data: &[u8], q: &IpInfo) -> Option<u16> {
    // Type to identifier: what the unchecked views below read, and all they read.
    const TO_IDENT_LEN: usize = 6;
    if !(q.has_l4() && q.end >= q.l4 + TO_IDENT_LEN) {
        return None;
    }
    let msg = &data[q.l4..q.l4 + TO_IDENT_LEN];
    if q.v6 {
        let m = Icmpv6Packet::new_unchecked(msg);
        (q.protocol == ip_proto::ICMPV6 && m.msg_type() == icmpv6::ECHO_REPLY)
            .then(|| m.echo_ident())
    } else {
        let m = Icmpv4Packet::new_unchecked(msg);
        (q.protocol == ip_proto::ICMP && m.msg_type() == icmpv4::ECHO_REPLY).then(|| m.echo_ident())
    }
}

/// Rewrites bytes inside the quote, the quote's own checksums (where the quote
/// still holds them) and the outer ICMP checksum, which covers all of these.
fn replace_quoted(
    data: &mut [u8],
    q: &IpInfo,
    outer: &IpInfo,
    at: usize,
    new: &[u8],
    address: bool,
) {
    let mut sums = [Sum {
        at: 0,
        udp_v4: false,
    }; 2];
    let mut n = 0;
    if address {
        if let Some(h) = nat::header_sum(q) {
            sums[n] = h;
            n += 1;
        }
    }
    if let Some(t) = nat::pseudo_header_sum(q) {
        if t.at + 2 <= q.end {
            sums[n] = t;
            n += 1;
        }
    }
    let len = new.len();
    let mut old = [0u8; 16];
    old[..len].copy_from_slice(&data[at..at + len]);
    let old_sums = sums.map(|s| u16::from_be_bytes([data[s.at], data[s.at + 1]]));
    nat::replace(data, at, new, &sums[..n]);
    let icmp_at = outer.l4 + 2;
    let mut c = u16::from_be_bytes([data[icmp_at], data[icmp_at + 1]]);
    c = checksum::update_bytes(c, &old[..len], new);
    for (s, old_value) in sums[..n].iter().zip(old_sums) {
        c = checksum::update16(
            c,
            old_value,
            u16::from_be_bytes([data[s.at], data[s.at + 1]]),
        );
    }
    data[icmp_at..icmp_at + 2].copy_from_slice(&c.to_be_bytes());
}

/// An ICMP error addressed to an EIP, translated toward its backend.
pub struct IngressError {
    pub backend: Addr,
    /// Hash of the flow the quoted packet belongs to, as the client sends it, so the
    /// error takes that flow's path.
    pub flow_hash: u64,
}

/// ICMP error from the Internet about a packet the EIP sent (backend -> client):
/// the quote's source is the EIP; make it the backend (and backend port).
pub fn translate_ingress_error(
    t: &Tables,
    eip: &Eip,
    data: &mut [u8],
    outer: &IpInfo,
) -> Result<IngressError, DropReason> {
    let q = quoted(data, outer)?;
    let n = q.addr_len();
    let eip_addr = Addr::of(eip.address);
    if data[q.src()..q.src() + n] != *eip_addr.as_slice() {
        return Err(DropReason::IcmpUntranslatable);
    }
    let ports = quoted_ports(data, &q);
    // The forward flow: client (quoted destination) -> EIP (quoted source). For a
    // quoted echo reply that is the client's echo requests, hashed on their identifier.
    let (fwd_sport, fwd_dport) = match (ports, quoted_echo_reply_ident(data, &q)) {
        (Some((s, d)), _) => (d, s),
        (None, Some(ident)) => (ident, 0),
        (None, None) => (0, 0),
    };
    let flow_hash = if q.v6 {
        let s: &[u8; 16] = data[q.dst()..q.dst() + 16].try_into().unwrap();
        let d: &[u8; 16] = data[q.src()..q.src() + 16].try_into().unwrap();
        flow::hash_v6(s, d, fwd_sport, fwd_dport, q.protocol)
    } else {
        let s: [u8; 4] = data[q.dst()..q.dst() + 4].try_into().unwrap();
        let d: [u8; 4] = data[q.src()..q.src() + 4].try_into().unwrap();
        flow::hash_v4(s, d, fwd_sport, fwd_dport, q.protocol)
    };
    let service = ports
        .and_then(|(service_port, _)| service_backend(t, eip, q.protocol, service_port, flow_hash));
    let (backend, port) = match (service, eip.backend) {
        (Some((b, port)), _) => (b, Some(port)),
        (None, Some(b)) => (Addr::of(b), None),
        (None, None) => return Err(DropReason::IcmpUntranslatable),
    };
    if backend.len != n {
        return Err(DropReason::FamilyMismatch);
    }
    replace_quoted(data, &q, outer, q.src(), backend.as_slice(), true);
    if let (Some(port), Some((sport, _))) = (port, ports) {
        if port != sport {
            replace_quoted(data, &q, outer, q.l4, &port.to_be_bytes(), false);
        }
    }
    Ok(IngressError { backend, flow_hash })
}

/// ICMP error coming back through the tunnel about a packet a client sent to a
/// backend (from the backend itself or from a router in the region): the quote's
/// destination is the backend; make it the EIP (and service port). Returns the EIP,
/// which also becomes the error's source.
pub fn translate_return_error(
    t: &Tables,
    region: RegionId,
    data: &mut [u8],
    outer: &IpInfo,
) -> Result<EipId, DropReason> {
    let q = quoted(data, outer)?;
    let n = q.addr_len();
    let backend = super::key_at(data, q.dst(), q.v6);
    let ports = quoted_ports(data, &q);
    let m = t
        .return_mapping(region, backend, q.protocol, ports.map(|p| p.1))
        .ok_or(DropReason::IcmpUntranslatable)?;
    let eip = Addr::of(t.eips.at(m.eip).address);
    if eip.len != n {
        return Err(DropReason::FamilyMismatch);
    }
    replace_quoted(data, &q, outer, q.dst(), eip.as_slice(), true);
    if let (Some(port), Some((_, dport))) = (m.service_port, ports) {
        if port != dport {
            replace_quoted(data, &q, outer, q.l4 + 2, &port.to_be_bytes(), false);
        }
    }
    Ok(m.eip)
}

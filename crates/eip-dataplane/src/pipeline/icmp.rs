//! ICMP the POP originates (time exceeded, too big) and ICMP errors it translates
//! (RFC 5508 §4.2: the quoted packet is NATed the inverse way of the outer one, so
//! the host that sent the original recognises it, and path MTU discovery works
//! through the NAT).

use super::nat::{self, Sum};
use super::parse::{Fragment, IpInfo};
use super::{service_backend, Addr};
use crate::counters::DropReason;
use crate::flow;
use crate::frame::Frame;
use crate::tables::{Eip, EipId, RegionId, Tables};
use crate::wire::{checksum, ip_proto, ipv4::Ipv4Repr, ipv6::Ipv6Repr};

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
        let t = data[ip.l4];
        let is_error = if ip.v6 {
            ip.protocol == ip_proto::ICMPV6 && t < 128
        } else {
            ip.protocol == ip_proto::ICMP && matches!(t, 3 | 4 | 5 | 11 | 12)
        };
        if is_error {
            return false;
        }
    }
    let mut macs = [0u8; 12];
    macs.copy_from_slice(&data[0..12]);
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    let n = ip.addr_len();
    // The error goes from the original destination back to the original source.
    src[..n].copy_from_slice(&data[ip.dst()..ip.dst() + n]);
    dst[..n].copy_from_slice(&data[ip.src()..ip.src() + n]);

    let (ip_len, max_quote) = if ip.v6 {
        (40, MAX_QUOTE_V6)
    } else {
        (20, MAX_QUOTE_V4)
    };
    let quote = ip.total_len().min(max_quote);
    let header = 14 + ip_len + 8;
    let moved = if ip.l3 < header {
        frame.push_head(header - ip.l3)
    } else {
        frame.pull_head(ip.l3 - header)
    };
    if !(moved && frame.set_len(header + quote)) {
        return false;
    }
    let d = frame.data_mut();
    d[0..6].copy_from_slice(&macs[6..12]);
    d[6..12].copy_from_slice(&macs[0..6]);
    let icmp_len = 8 + quote;
    let at = 14 + ip_len;
    if ip.v6 {
        d[12..14].copy_from_slice(&0x86DDu16.to_be_bytes());
        Ipv6Repr {
            src,
            dst,
            next_header: ip_proto::ICMPV6,
            hop_limit: 64,
            payload_len: icmp_len as u16,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut d[14..54]);
        let (t, rest) = match kind {
            ErrorKind::TimeExceeded => (3u8, 0u32),
            ErrorKind::TooBig { mtu } => (2u8, mtu as u32),
        };
        d[at] = t;
        d[at + 1] = 0;
        d[at + 2..at + 4].copy_from_slice(&[0, 0]);
        d[at + 4..at + 8].copy_from_slice(&rest.to_be_bytes());
        let sum = checksum::pseudo_header_v6(&src, &dst, ip_proto::ICMPV6, icmp_len as u32)
            + checksum::sum(&d[at..at + icmp_len]);
        d[at + 2..at + 4].copy_from_slice(&checksum::finish(sum).to_be_bytes());
    } else {
        d[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
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
        .emit(&mut d[14..34]);
        let (t, code, rest) = match kind {
            ErrorKind::TimeExceeded => (11u8, 0u8, 0u32),
            ErrorKind::TooBig { mtu } => (3u8, 4u8, mtu as u32),
        };
        d[at] = t;
        d[at + 1] = code;
        d[at + 2..at + 4].copy_from_slice(&[0, 0]);
        d[at + 4..at + 8].copy_from_slice(&rest.to_be_bytes());
        let c = checksum::finish(checksum::sum(&d[at..at + icmp_len]));
        d[at + 2..at + 4].copy_from_slice(&c.to_be_bytes());
    }
    true
}

/// The packet an ICMP error quotes, parsed leniently: it is usually cut short, so
/// only its header must be whole. `end` is the end of the outer packet.
fn quoted(data: &[u8], outer: &IpInfo) -> Result<IpInfo, DropReason> {
    let q = outer.l4 + 8;
    let end = outer.end;
    let bad = DropReason::IcmpUntranslatable;
    if outer.v6 {
        if end < q + 40 || data[q] >> 4 != 6 {
            return Err(bad);
        }
        let next = data[q + 6];
        // Extension headers in a quote: translate addresses only (protocol 59 = none).
        let protocol = match next {
            ip_proto::TCP | ip_proto::UDP | ip_proto::ICMPV6 => next,
            _ => ip_proto::NONE,
        };
        Ok(IpInfo {
            v6: true,
            l3: q,
            l4: q + 40,
            end,
            protocol,
            fragment: Fragment::None,
            dont_frag: true,
            ttl: data[q + 7],
        })
    } else {
        if end < q + 20 || data[q] >> 4 != 4 {
            return Err(bad);
        }
        let ihl = (data[q] & 0x0F) as usize * 4;
        if ihl < 20 || end < q + ihl {
            return Err(bad);
        }
        let offset = u16::from_be_bytes([data[q + 6], data[q + 7]]) & 0x1FFF;
        let fragment = if offset != 0 {
            Fragment::Later { ident: 0 }
        } else {
            Fragment::None
        };
        Ok(IpInfo {
            v6: false,
            l3: q,
            l4: q + ihl,
            end,
            protocol: data[q + 9],
            fragment,
            dont_frag: false,
            ttl: data[q + 8],
        })
    }
}

/// Ports of a quoted TCP/UDP header, when the quote holds them.
fn quoted_ports(data: &[u8], q: &IpInfo) -> Option<(u16, u16)> {
    (matches!(q.protocol, ip_proto::TCP | ip_proto::UDP) && q.has_l4() && q.end >= q.l4 + 4).then(
        || {
            (
                u16::from_be_bytes([data[q.l4], data[q.l4 + 1]]),
                u16::from_be_bytes([data[q.l4 + 2], data[q.l4 + 3]]),
            )
        },
    )
}

/// Identifier of a quoted ICMP/ICMPv6 echo reply, when the quote holds it.
fn quoted_echo_reply_ident(data: &[u8], q: &IpInfo) -> Option<u16> {
    let reply = if q.v6 {
        q.protocol == ip_proto::ICMPV6 && q.end >= q.l4 + 6 && data[q.l4] == 129
    } else {
        q.protocol == ip_proto::ICMP && q.end >= q.l4 + 6 && data[q.l4] == 0
    };
    (reply && q.has_l4()).then(|| u16::from_be_bytes([data[q.l4 + 4], data[q.l4 + 5]]))
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
    let eip = Addr::of(t.eips[m.eip as usize].address);
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

//! Classification: where the IP header, the transport header and the fields NAT
//! touches are, for IPv4 and IPv6 alike, validated once.

use crate::counters::DropReason;
use crate::wire::ethernet::{self, EthernetFrame};
use crate::wire::tcp::{self, TcpPacket};
use crate::wire::udp::{self, UdpPacket};
use crate::wire::{ethertype, ip_proto, ipv4::Ipv4Packet, ipv6};

/// Fragment position of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fragment {
    /// A whole datagram.
    None,
    /// Offset 0 with more to come: carries the transport header.
    First { ident: u32 },
    /// Offset > 0: no transport header.
    Later { ident: u32 },
}

/// Offsets (into the frame's data) and fields of one IP packet.
#[derive(Debug, Clone, Copy)]
pub struct IpInfo {
    pub v6: bool,
    /// Start of the IP header.
    pub l3: usize,
    /// Start of the transport header (or of fragment data for later fragments).
    pub l4: usize,
    /// One past the last byte of the IP packet (Ethernet padding excluded).
    pub end: usize,
    pub protocol: u8,
    pub fragment: Fragment,
    /// IPv4 don't-fragment bit (IPv6: always true, routers never fragment).
    pub dont_frag: bool,
    pub ttl: u8,
}

impl IpInfo {
    /// Length of the address fields.
    #[inline(always)]
    pub fn addr_len(&self) -> usize {
        if self.v6 {
            16
        } else {
            4
        }
    }
    /// Offset of the source address.
    #[inline(always)]
    pub fn src(&self) -> usize {
        self.l3 + if self.v6 { 8 } else { 12 }
    }
    /// Offset of the destination address.
    #[inline(always)]
    pub fn dst(&self) -> usize {
        self.l3 + if self.v6 { 24 } else { 16 }
    }
    /// Offset of the TTL / hop limit byte.
    #[inline(always)]
    pub fn ttl_offset(&self) -> usize {
        self.l3 + if self.v6 { 7 } else { 8 }
    }
    /// Length of the IP packet.
    #[inline(always)]
    pub fn total_len(&self) -> usize {
        self.end - self.l3
    }
    /// Does this packet carry the transport header?
    #[inline(always)]
    pub fn has_l4(&self) -> bool {
        !matches!(self.fragment, Fragment::Later { .. })
    }
    /// Is it a fragment at all?
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        !matches!(self.fragment, Fragment::None)
    }
}

/// Layer 2 result: the ethertype and where layer 3 starts.
#[inline(always)]
pub fn l2(data: &[u8]) -> Result<(u16, usize), DropReason> {
    // Fast path: untagged.
    if let Ok(frame) = EthernetFrame::new_checked(data) {
        let et = frame.ethertype();
        if et != ethertype::VLAN && et != ethertype::QINQ {
            return Ok((et, ethernet::HEADER_LEN));
        }
    }
    match ethernet::parse_l2(data) {
        Ok(l2) => Ok((l2.ethertype, l2.l3_offset)),
        Err(_) => Err(DropReason::Truncated),
    }
}

/// The common layout, parsed in one step: an untagged Ethernet frame carrying an
/// IPv4 header without options. Gives what [`l2`] then [`ipv4`] would give for it
/// (the same checks, on fixed offsets), or `None` for any other frame, which then
/// takes that general way (and gets its drop reason there).
#[inline(always)]
pub fn untagged_ipv4(data: &[u8]) -> Option<IpInfo> {
    if *data.get(12..14)? != ethertype::IPV4.to_be_bytes() {
        return None;
    }
    ipv4_no_options(data, ethernet::HEADER_LEN)
}

/// [`ipv4`] for the common header, without options: the same checks on fixed
/// offsets, or `None` when the header at `l3` is not that (then [`ipv4`] tells why).
#[inline(always)]
pub fn ipv4_no_options(data: &[u8], l3: usize) -> Option<IpInfo> {
    let h: &[u8; 20] = data.get(l3..l3 + 20)?.try_into().ok()?;
    // Version 4, a 20-byte header.
    if h[0] != 0x45 {
        return None;
    }
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    if total < 20 || total > data.len() - l3 {
        return None;
    }
    let ident = u16::from_be_bytes([h[4], h[5]]) as u32;
    let flags_offset = u16::from_be_bytes([h[6], h[7]]);
    let fragment = if flags_offset & 0x1FFF != 0 {
        Fragment::Later { ident }
    } else if flags_offset & 0x2000 != 0 {
        Fragment::First { ident }
    } else {
        Fragment::None
    };
    Some(IpInfo {
        v6: false,
        l3,
        l4: l3 + 20,
        end: l3 + total,
        protocol: h[9],
        fragment,
        dont_frag: flags_offset & 0x4000 != 0,
        ttl: h[8],
    })
}

/// Parses the IPv4 header at `l3`.
#[inline(always)]
pub fn ipv4(data: &[u8], l3: usize) -> Result<IpInfo, DropReason> {
    let bytes = &data[l3..];
    if bytes.len() < 20 {
        return Err(DropReason::Truncated);
    }
    let ip = Ipv4Packet::new_checked(bytes).map_err(|_| DropReason::BadIpHeader)?;
    let offset = ip.frag_offset();
    let ident = ip.ident() as u32;
    let fragment = if offset != 0 {
        Fragment::Later { ident }
    } else if ip.more_frags() {
        Fragment::First { ident }
    } else {
        Fragment::None
    };
    Ok(IpInfo {
        v6: false,
        l3,
        l4: l3 + ip.header_len(),
        end: l3 + ip.total_len() as usize,
        protocol: ip.protocol(),
        fragment,
        dont_frag: ip.dont_frag(),
        ttl: ip.ttl(),
    })
}

/// Parses the IPv6 header at `l3`, walking extension headers to the transport.
#[inline]
pub fn ipv6(data: &[u8], l3: usize) -> Result<IpInfo, DropReason> {
    let bytes = &data[l3..];
    if bytes.len() < 40 {
        return Err(DropReason::Truncated);
    }
    let ip = ipv6::Ipv6Packet::new_checked(bytes).map_err(|_| DropReason::BadIpHeader)?;
    let end = l3 + 40 + ip.payload_len() as usize;
    let ttl = ip.hop_limit();
    let (protocol, l4, fragment) = match ip.next_header() {
        p @ (ip_proto::TCP | ip_proto::UDP | ip_proto::ICMPV6) => (p, l3 + 40, Fragment::None),
        _ => {
            let t = ipv6::find_transport(&data[l3..end])
                .map_err(|_| DropReason::BadExtensionHeaders)?;
            let fragment = match t.fragment {
                None => Fragment::None,
                Some(f) if f.offset != 0 => Fragment::Later { ident: f.ident },
                Some(f) if f.more => Fragment::First { ident: f.ident },
                // An atomic fragment (offset 0, no more): a whole datagram.
                Some(_) => Fragment::None,
            };
            (t.protocol, l3 + t.offset, fragment)
        }
    };
    Ok(IpInfo {
        v6: true,
        l3,
        l4,
        end,
        protocol,
        fragment,
        dont_frag: true,
        ttl,
    })
}

/// Ports of a TCP/UDP packet, as plain fields (an `Option` of a pair made the
/// compiler spill and reload it byte-wise on the hot path).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ports {
    pub src: u16,
    pub dst: u16,
    /// False for other protocols and for later fragments.
    pub present: bool,
}

/// Is this a TCP/UDP packet whose transport header is invalid: cut short (also for
/// the checksum field NAT rewrites), a TCP data offset below 5 or past the packet,
/// a UDP length below 8 or past the packet? Such a packet is dropped, never
/// forwarded: the receiver would take its length fields at their word. A first
/// fragment's UDP length covers the whole datagram, so only its lower bound counts.
#[inline(always)]
pub fn l4_invalid(data: &[u8], ip: &IpInfo) -> bool {
    if !ip.has_l4() {
        return false;
    }
    let payload = ip.end.saturating_sub(ip.l4);
    match ip.protocol {
        ip_proto::TCP => match data.get(ip.l4 + 12) {
            Some(&b) if payload >= tcp::MIN_HEADER_LEN => {
                let header = usize::from(b >> 4) * 4;
                header < tcp::MIN_HEADER_LEN || header > payload
            }
            _ => true,
        },
        ip_proto::UDP => match data.get(ip.l4 + 4..ip.l4 + 6) {
            Some(l) if payload >= udp::HEADER_LEN => {
                let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
                let whole = matches!(ip.fragment, Fragment::None);
                len < udp::HEADER_LEN || whole && len > payload
            }
            _ => true,
        },
        _ => false,
    }
}

/// Ports of a TCP/UDP packet that carries a whole transport header (check
/// [`l4_truncated`] first); `present` is false otherwise.
#[inline(always)]
pub fn ports(data: &[u8], ip: &IpInfo) -> Ports {
    let tcp_or_udp = matches!(ip.protocol, ip_proto::TCP | ip_proto::UDP);
    if !(tcp_or_udp && ip.has_l4() && ip.end >= ip.l4 + udp::HEADER_LEN) {
        return Ports::default();
    }
    // Checked just above: the slice holds the ports of either header, the only
    // fields read through these unchecked views.
    let l4 = &data[ip.l4..ip.l4 + udp::HEADER_LEN];
    let (src, dst) = if ip.protocol == ip_proto::TCP {
        let tcp = TcpPacket::new_unchecked(l4);
        (tcp.src_port(), tcp.dst_port())
    } else {
        let udp = UdpPacket::new_unchecked(l4);
        (udp.src_port(), udp.dst_port())
    };
    Ports {
        src,
        dst,
        present: true,
    }
}

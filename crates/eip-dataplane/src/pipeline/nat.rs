//! In-place rewrites with RFC 1624 incremental checksum updates.
//!
//! A rewrite changes some bytes and then every checksum that covers them, each by
//! the difference between old and new bytes. Incremental updates keep a packet that
//! arrived with a wrong checksum wrong, so the receiver still drops it: the pipeline
//! need not verify checksums it only passes through.

use super::parse::IpInfo;
use crate::wire::{checksum, ip_proto};

/// A checksum field that covers some rewritten bytes.
#[derive(Debug, Clone, Copy)]
pub struct Sum {
    /// Offset of the 16-bit checksum field.
    pub at: usize,
    /// RFC 768: an IPv4 UDP checksum of 0 means "none" and stays 0; a computed 0 is
    /// sent as 0xFFFF.
    pub udp_v4: bool,
}

/// Writes `new` at `at` and adjusts every checksum in `sums`.
#[inline(always)]
pub fn replace(data: &mut [u8], at: usize, new: &[u8], sums: &[Sum]) {
    let n = new.len();
    let mut old = [0u8; 16];
    old[..n].copy_from_slice(&data[at..at + n]);
    data[at..at + n].copy_from_slice(new);
    for s in sums {
        let field = [data[s.at], data[s.at + 1]];
        let current = u16::from_be_bytes(field);
        if s.udp_v4 && current == 0 {
            continue;
        }
        let mut updated = match n {
            2 => checksum::update16(
                current,
                u16::from_be_bytes([old[0], old[1]]),
                u16::from_be_bytes([new[0], new[1]]),
            ),
            4 => checksum::update32(
                current,
                u32::from_be_bytes([old[0], old[1], old[2], old[3]]),
                u32::from_be_bytes([new[0], new[1], new[2], new[3]]),
            ),
            _ => checksum::update_bytes(current, &old[..n], new),
        };
        if s.udp_v4 && updated == 0 {
            updated = 0xFFFF;
        }
        data[s.at..s.at + 2].copy_from_slice(&updated.to_be_bytes());
    }
}

/// The transport checksum that covers the IP addresses (pseudo-header), if the packet
/// carries one: TCP, UDP, ICMPv6. ICMPv4's checksum does not cover addresses.
#[inline(always)]
pub fn pseudo_header_sum(ip: &IpInfo) -> Option<Sum> {
    if !ip.has_l4() {
        return None;
    }
    match ip.protocol {
        ip_proto::TCP => Some(Sum {
            at: ip.l4 + 16,
            udp_v4: false,
        }),
        ip_proto::UDP => Some(Sum {
            at: ip.l4 + 6,
            udp_v4: !ip.v6,
        }),
        ip_proto::ICMPV6 if ip.v6 => Some(Sum {
            at: ip.l4 + 2,
            udp_v4: false,
        }),
        _ => None,
    }
}

/// The IPv4 header checksum (IPv6 has none).
#[inline(always)]
pub fn header_sum(ip: &IpInfo) -> Option<Sum> {
    (!ip.v6).then_some(Sum {
        at: ip.l3 + 10,
        udp_v4: false,
    })
}

/// Rewrites an address field of the packet (`at` is `ip.src()` or `ip.dst()`) and
/// the IPv4 header and transport checksums over it.
#[inline(always)]
pub fn rewrite_addr(data: &mut [u8], ip: &IpInfo, at: usize, new: &[u8]) {
    match (header_sum(ip), pseudo_header_sum(ip)) {
        (Some(h), Some(t)) => replace(data, at, new, &[h, t]),
        (Some(h), None) => replace(data, at, new, &[h]),
        (None, Some(t)) => replace(data, at, new, &[t]),
        (None, None) => replace(data, at, new, &[]),
    }
}

/// Rewrites a TCP/UDP port (`at` is `ip.l4` for source, `ip.l4 + 2` for destination).
#[inline(always)]
pub fn rewrite_port(data: &mut [u8], ip: &IpInfo, at: usize, port: u16) {
    match pseudo_header_sum(ip) {
        Some(t) => replace(data, at, &port.to_be_bytes(), &[t]),
        None => replace(data, at, &port.to_be_bytes(), &[]),
    }
}

/// Offsets in the IPv4 header of the address fields [`rewrite_v4`] rewrites.
pub const V4_SRC: usize = 12;
pub const V4_DST: usize = 16;

/// The IPv4 NAT of a packet with a whole TCP or UDP header (the caller checked
/// both, and that the TTL is above 1): writes `new` into the address field at
/// `addr` of the IPv4 header ([`V4_SRC`] or [`V4_DST`]) and, when `port` is given,
/// a port at its offset in the transport header (0 source, 2 destination);
/// decrements the TTL; and updates each checksum once for all of it (RFC 1624
/// eqn. 3 over the sum of the changes, which gives the same bytes as one update
/// per change). The generic [`rewrite_addr`], [`rewrite_port`] and
/// [`decrement_ttl`] do the same for every family and shape.
#[inline(always)]
pub fn rewrite_v4(
    data: &mut [u8],
    ip: &IpInfo,
    addr: usize,
    new: [u8; 4],
    port: Option<(usize, u16)>,
) {
    debug_assert!(!ip.v6 && ip.ttl > 1 && matches!(ip.protocol, ip_proto::TCP | ip_proto::UDP));
    let (head, l4) = data.split_at_mut(ip.l4);
    let hdr: &mut [u8; 20] = (&mut head[ip.l3..ip.l3 + 20]).try_into().unwrap();
    if ip.protocol == ip_proto::TCP {
        rewrite_v4_headers::<TCP_SUM>(hdr, l4, addr, new, port)
    } else {
        rewrite_v4_headers::<UDP_SUM>(hdr, l4, addr, new, port)
    }
}

/// Offsets of the TCP and UDP checksums in their headers.
pub const TCP_SUM: usize = 16;
pub const UDP_SUM: usize = 6;

/// [`rewrite_v4`] on the IPv4 header without options and the transport header
/// (TCP when `SUM` is [`TCP_SUM`], UDP when it is [`UDP_SUM`]), for a caller that
/// holds them at fixed offsets: with fixed-size slices every bounds check folds.
#[inline(always)]
pub fn rewrite_v4_headers<const SUM: usize>(
    hdr: &mut [u8; 20],
    l4: &mut [u8],
    addr: usize,
    new: [u8; 4],
    port: Option<(usize, u16)>,
) {
    let udp = SUM == UDP_SUM;
    // Sums over the words as they lie in memory, native byte order: the checksum
    // of byte-swapped words is the byte-swapped checksum (RFC 1071 §2(B)), so
    // reading and writing the checksums natively needs no swap at all.
    let field: &mut [u8; 4] = (&mut hdr[addr..addr + 4]).try_into().unwrap();
    let old = u32::from_ne_bytes(*field);
    *field = new;
    // `!old + new` over 32 bits is the sum of the changes of both 16-bit halves.
    let mut delta = checksum::add32(!old, u32::from_ne_bytes(new));
    hdr[8] -= 1;
    let header = u16::from_ne_bytes([hdr[10], hdr[11]]);
    let header = !checksum::fold32(checksum::add32(u32::from(!header) + TTL_DECREMENT, delta));
    hdr[10..12].copy_from_slice(&header.to_ne_bytes());

    let l4 = &mut l4[..SUM + 2];
    if let Some((at, new_port)) = port {
        let old = u16::from_ne_bytes([l4[at], l4[at + 1]]);
        let new = new_port.to_be_bytes();
        l4[at..at + 2].copy_from_slice(&new);
        delta = checksum::add32(delta, u32::from(!old) + u32::from(u16::from_ne_bytes(new)));
    }
    let current = u16::from_ne_bytes([l4[SUM], l4[SUM + 1]]);
    // RFC 768: an IPv4 UDP checksum of 0 means "none" and stays 0; a computed 0 is
    // sent as 0xFFFF (both the same in either byte order).
    if udp && current == 0 {
        return;
    }
    let mut updated = !checksum::fold32(checksum::add32(u32::from(!current), delta));
    if udp && updated == 0 {
        updated = 0xFFFF;
    }
    l4[SUM..SUM + 2].copy_from_slice(&updated.to_ne_bytes());
}

/// The change of the IPv4 word holding TTL and protocol when the TTL drops by
/// one, `!(ttl << 8 | p) + ((ttl - 1) << 8 | p)` = 0xFEFF whatever both are, as
/// a word in memory order (0xFFFE on a little-endian machine).
const TTL_DECREMENT: u32 = u16::from_ne_bytes([0xFE, 0xFF]) as u32;

/// Decrements TTL / hop limit (the caller checked it is above 1).
#[inline(always)]
pub fn decrement_ttl(data: &mut [u8], ip: &IpInfo) {
    let at = ip.ttl_offset();
    if ip.v6 {
        data[at] -= 1;
    } else {
        // TTL shares a 16-bit word with the protocol: update over the aligned word.
        let word = [data[at] - 1, data[at + 1]];
        replace(
            data,
            at,
            &word,
            &[Sum {
                at: ip.l3 + 10,
                udp_v4: false,
            }],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse;
    use proptest::prelude::*;

    /// An untagged IPv4 frame without options, TCP or UDP, with arbitrary field
    /// values (checksums included), and its parsed offsets.
    fn frame(tcp: bool, bytes: &[u8], ttl: u8) -> (Vec<u8>, IpInfo) {
        let l4_len = if tcp { 20 } else { 8 };
        let mut f = bytes[..14 + 20 + l4_len].to_vec();
        f[12..15].copy_from_slice(&[0x08, 0x00, 0x45]);
        f[16..18].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        f[20..22].copy_from_slice(&[0, 0]);
        f[22] = ttl;
        f[23] = if tcp { ip_proto::TCP } else { ip_proto::UDP };
        let ip = parse::untagged_ipv4(&f).unwrap();
        (f, ip)
    }

    proptest! {
        /// The IPv4 rewrite writes the same bytes as the generic rewrites one after
        /// the other, checksums included (zero UDP checksums too).
        #[test]
        fn rewrite_v4_is_the_generic_rewrite(
            bytes in proptest::collection::vec(any::<u8>(), 54),
            tcp in any::<bool>(),
            ttl in 2u8..=255,
            src in any::<bool>(),
            new in any::<[u8; 4]>(),
            port in proptest::option::of(any::<u16>()),
            zero_udp_sum in any::<bool>(),
        ) {
            let (mut a, ip) = frame(tcp, &bytes, ttl);
            if !tcp && zero_udp_sum {
                a[40..42].copy_from_slice(&[0, 0]);
            }
            let mut b = a.clone();
            let (addr_at, port_at) = if src { (V4_SRC, 0) } else { (V4_DST, 2) };
            rewrite_v4(&mut a, &ip, addr_at, new, port.map(|p| (port_at, p)));
            rewrite_addr(&mut b, &ip, ip.l3 + addr_at, &new);
            if let Some(p) = port {
                rewrite_port(&mut b, &ip, ip.l4 + port_at, p);
            }
            decrement_ttl(&mut b, &ip);
            prop_assert_eq!(a, b);
        }
    }
}

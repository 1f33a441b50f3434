//! Which addresses are martians: the bogon prefixes a client source (and a
//! return destination) may not be in, and the narrower set no EIP or backend may
//! be. From the IANA special-purpose registries (RFC 6890 and updates).
//!
//! Documentation (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32)
//! is *not* a bogon here: RFC 6890 marks it not globally reachable, but a packet
//! from it poses none of the risks this filter exists for (loops through our own
//! addresses, reflection into the regions' private networks, broadcast and
//! multicast), and it is the address space of every example, lab and test of
//! this project. An operator who wants it dropped adds it to an ACL.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 prefixes never seen as a source on the Internet, with why.
pub const BOGONS_V4: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\" (RFC 791)"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private (RFC 1918)"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared CGN space (RFC 6598)",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private (RFC 1918)"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignments"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private (RFC 1918)"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking (RFC 2544)"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (
        Ipv4Addr::new(240, 0, 0, 0),
        4,
        "reserved (incl. broadcast 255.255.255.255)",
    ),
];

/// IPv6: every address outside global unicast 2000::/3 is a bogon (::, ::1,
/// IPv4-mapped, discard-only 100::/64, link-local, unique-local, multicast, ...)
/// but the well-known NAT64 prefix, which is globally reachable.
pub const GLOBAL_V6: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);
/// The NAT64 well-known prefix (RFC 6052).
pub const NAT64_V6: (Ipv6Addr, u8) = (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);

/// Is `addr` a bogon source (see [`BOGONS_V4`], [`GLOBAL_V6`])?
pub fn is_bogon(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => BOGONS_V4
            .iter()
            .any(|&(net, len, _)| within_v4(a, net, len)),
        IpAddr::V6(a) => {
            !within_v6(a, GLOBAL_V6.0, GLOBAL_V6.1) && !within_v6(a, NAT64_V6.0, NAT64_V6.1)
        }
    }
}

/// Why `addr` can never be an EIP or a backend, or None if it can be: it is
/// unspecified, loopback, link-local, multicast, broadcast, reserved, or an
/// IPv4-mapped IPv6 address. Private space is fine (backends live there).
pub fn unusable(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            match o[0] {
                0 => Some("in 0.0.0.0/8 (\"this network\", incl. 0.0.0.0)"),
                127 => Some("loopback (127.0.0.0/8)"),
                169 if o[1] == 254 => Some("link-local (169.254.0.0/16)"),
                224..=239 => Some("multicast (224.0.0.0/4)"),
                240..=255 => Some("reserved or broadcast (240.0.0.0/4)"),
                _ => None,
            }
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            if a.is_unspecified() {
                Some("unspecified (::)")
            } else if a.is_loopback() {
                Some("loopback (::1)")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local (fe80::/10)")
            } else if s[0] & 0xff00 == 0xff00 {
                Some("multicast (ff00::/8)")
            } else if a.to_ipv4_mapped().is_some() {
                Some("IPv4-mapped (::ffff:0:0/96)")
            } else {
                None
            }
        }
    }
}

fn within_v4(a: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(a) & mask == u32::from(net)
}

fn within_v6(a: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(a) & mask == u128::from(net)
}
